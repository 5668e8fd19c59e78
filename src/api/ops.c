/* Operating kiln (issue 7, docs/admin.md): GET /metrics, /health/detailed, /health/<name>, the
 * admin API under /api/v1/admin (keys, stats; auth lets only MASTER_API_KEY in) and the static
 * admin dashboard. The application context is the struct kiln_services of `kiln serve`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/exec_service.h"
#include "core/health.h"
#include "core/keys.h"
#include "core/services.h"
#include "util/assets.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

static struct kiln_services *ops_svc(struct http_req *req)
{
    struct kiln_services *svc = http_req_app(req);

    if (svc == NULL)
        http_reply_error(req, KILN_ERR_UNAVAILABLE, "Service not configured", NULL);
    return svc;
}

/* Refresh the gauges read from the store (sessions, files, bytes) before a render. */
static void ops_storage_gauges(struct kiln_services *svc)
{
    struct store_totals t = {0};
    struct errbuf eb;
    long long n = 0;

    if (svc->metrics == NULL)
        return;
    if (svc->store->ops->session_count(svc->store, NULL, &n, &eb) == KILN_OK)
        metrics_gauge_set(svc->metrics, METRIC_SESSIONS, NULL, n);
    if (svc->store->ops->session_totals(svc->store, NULL, &t, &eb) == KILN_OK) {
        metrics_gauge_set(svc->metrics, METRIC_FILES_STORED, NULL, t.files);
        metrics_gauge_set(svc->metrics, METRIC_FILE_BYTES_STORED, NULL, t.bytes);
    }
}

/* ---- /metrics ---- */

static void ops_metrics(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    struct errbuf eb;
    char *text = NULL;
    size_t len = 0;

    if (svc == NULL)
        return;
    if (svc->metrics == NULL) {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, "Metrics are not enabled", NULL);
        return;
    }
    ops_storage_gauges(svc);
    services_pool_metrics(svc);
    if (metrics_render_text(svc->metrics, &text, &len, &eb) != KILN_OK) {
        http_reply_error(req, KILN_ERR_INTERNAL, eb.msg, NULL);
        return;
    }
    http_reply_bytes(req, 200, METRICS_TEXT_CONTENT_TYPE, text, len);
    free(text);
}

/* ---- health ---- */

static json_t *ops_result_json(const struct health_result *r)
{
    return json_pack("{s:s, s:s, s:f}", "status", health_status_name(r->status), "message",
                     r->message, "latency_ms", r->latency_ms);
}

static json_t *ops_report_json(const struct health_report *rep)
{
    json_t *services = json_object();
    char ts[32] = "";
    time_t t = (time_t)rep->timestamp;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (size_t i = 0; i < rep->nservices; i++)
        json_object_set_new(services, rep->services[i].name, ops_result_json(&rep->services[i]));
    return json_pack("{s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I}}", "status",
                     health_status_name(rep->status), "timestamp", ts, "services", services,
                     "summary", "total_services", (json_int_t)rep->total_services,
                     "healthy_services", (json_int_t)rep->healthy_services, "degraded_services",
                     (json_int_t)rep->degraded_services, "unhealthy_services",
                     (json_int_t)rep->unhealthy_services);
}

static bool ops_use_cache(struct http_req *req)
{
    const char *v = http_req_query(req, "use_cache");

    return v == NULL || !(strcmp(v, "false") == 0 || strcmp(v, "0") == 0);
}

/* The answer of a report: 503 when unhealthy, X-Health-Status when degraded. */
static int ops_report_status(const struct health_report *rep)
{
    return rep->status == HEALTH_UNHEALTHY ? 503 : 200;
}

/* On the worker pool: a fresh round may take up to HEALTH_CHECK_TIMEOUT. */
static void ops_refresh_work(struct http_deferred *d, void *arg)
{
    struct health *h = arg;
    struct health_report rep;

    health_refresh(h);
    health_report(h, &rep);
    /* a deferred answer carries no extra headers: the status field says degraded */
    http_deferred_reply_json(d, ops_report_status(&rep), ops_report_json(&rep));
}

static void ops_health_detailed(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    struct health_report rep;

    if (svc == NULL)
        return;
    if (svc->health == NULL) {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, "Health checks are not enabled", NULL);
        return;
    }
    if (!ops_use_cache(req)) {
        http_req_defer_run(req, ops_refresh_work, svc->health, NULL);
        return;
    }
    health_report(svc->health, &rep);
    if (rep.status == HEALTH_DEGRADED)
        http_reply_header(req, "X-Health-Status", "degraded");
    http_reply_json(req, ops_report_status(&rep), ops_report_json(&rep));
}

static void ops_health_one(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    struct health_result r;
    struct errbuf eb;

    if (svc == NULL)
        return;
    if (svc->health == NULL) {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, "Health checks are not enabled", NULL);
        return;
    }
    if (health_check(svc->health, http_req_param(req, "dependency"), 0, &r, &eb) != KILN_OK) {
        http_reply_error(req, KILN_ERR_NOT_FOUND, "No such health check", NULL);
        return;
    }
    if (r.status == HEALTH_DEGRADED)
        http_reply_header(req, "X-Health-Status", "degraded");
    http_reply_json(req, r.status == HEALTH_UNHEALTHY ? 503 : 200, ops_result_json(&r));
}

/* ---- admin: keys ---- */

/* Read rate_limits (an object of window → positive integer or null) into upd. */
static enum kiln_err ops_limits(json_t *o, bool *set, long long *limits, struct errbuf *eb)
{
    const char *name;
    json_t *v;

    if (o == NULL || json_is_null(o))
        return KILN_OK;
    if (!json_is_object(o))
        return errbuf_set(eb, KILN_ERR_INVALID, "rate_limits must be an object");
    json_object_foreach(o, name, v)
    {
        int w;
        for (w = 0; w < KEYS_WINDOW__COUNT; w++)
            if (strcmp(name, keys_window_names[w]) == 0)
                break;
        if (w == KEYS_WINDOW__COUNT)
            return errbuf_set(eb, KILN_ERR_INVALID,
                              "rate_limits.%.40s: unknown window (per_second, per_minute, hourly, "
                              "daily, monthly)",
                              name);
        if (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == 0)) {
            limits[w] = 0;
        } else if (json_is_integer(v) && json_integer_value(v) > 0) {
            limits[w] = json_integer_value(v);
        } else {
            return errbuf_set(eb, KILN_ERR_INVALID,
                              "rate_limits.%s must be a positive integer or null", name);
        }
        set[w] = true;
    }
    return KILN_OK;
}

static void ops_keys_list(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    struct keys_record *recs = NULL;
    struct errbuf eb;
    size_t n = 0;
    json_t *a;

    if (svc == NULL)
        return;
    if (keys_list(svc->keys, &recs, &n, &eb) != KILN_OK) {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, eb.msg, NULL);
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, keys_record_json(&recs[i]));
    keys_records_free(recs, n);
    http_reply_json(req, 200, a);
}

static void ops_keys_create(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    json_t *body = http_req_json(req);
    struct keys_record rec = {0};
    bool set[KEYS_WINDOW__COUNT] = {0};
    long long limits[KEYS_WINDOW__COUNT] = {0};
    char secret[KEYS_SECRET_BUF];
    json_t *md;
    struct errbuf eb;
    enum kiln_err rc;

    if (svc == NULL)
        return;
    errbuf_clear(&eb);
    if (!json_is_object(body) || !json_is_string(json_object_get(body, "name"))) {
        http_reply_error(req, KILN_ERR_INVALID, "name (a string) is required", NULL);
        return;
    }
    md = json_object_get(body, "metadata");
    rc = ops_limits(json_object_get(body, "rate_limits"), set, limits, &eb);
    if (rc == KILN_OK)
        rc = keys_create(svc->keys, json_string_value(json_object_get(body, "name")), limits,
                         json_is_null(md) ? NULL : md, secret, &rec, &eb);
    if (rc) {
        http_reply_error(req, rc, eb.msg, NULL);
        return;
    }
    http_reply_json(req, 201,
                    json_pack("{s:s, s:s, s:o}", "api_key", secret, "key_hash", rec.key_hash,
                              "record", keys_record_json(&rec)));
    memset(secret, 0, sizeof secret);
    keys_record_clear(&rec);
}

static void ops_keys_update(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    json_t *body = http_req_json(req), *v;
    struct keys_update upd = {.enabled = -1};
    struct keys_record rec = {0};
    struct errbuf eb;
    enum kiln_err rc = KILN_OK;

    if (svc == NULL)
        return;
    errbuf_clear(&eb);
    if (!json_is_object(body)) {
        http_reply_error(req, KILN_ERR_INVALID, "body must be an object", NULL);
        return;
    }
    v = json_object_get(body, "name");
    if (v != NULL && !json_is_string(v))
        rc = errbuf_set(&eb, KILN_ERR_INVALID, "name must be a string");
    upd.name = json_string_value(v);
    v = json_object_get(body, "enabled");
    if (v != NULL && !json_is_boolean(v))
        rc = errbuf_set(&eb, KILN_ERR_INVALID, "enabled must be a boolean");
    if (json_is_boolean(v))
        upd.enabled = json_is_true(v);
    v = json_object_get(body, "metadata");
    if (v != NULL && !json_is_object(v))
        rc = errbuf_set(&eb, KILN_ERR_INVALID, "metadata must be an object");
    upd.metadata = json_is_object(v) ? v : NULL;
    if (rc == KILN_OK)
        rc = ops_limits(json_object_get(body, "rate_limits"), upd.set_limit, upd.limits, &eb);
    if (rc == KILN_OK)
        rc = keys_update(svc->keys, http_req_param(req, "key_hash"), &upd, &rec, &eb);
    if (rc) {
        http_reply_error(req, rc, eb.msg, NULL);
        return;
    }
    http_reply_json(req, 200, keys_record_json(&rec));
    keys_record_clear(&rec);
}

static void ops_keys_revoke(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    const char *hash = http_req_param(req, "key_hash");
    struct errbuf eb;
    enum kiln_err rc;

    if (svc == NULL)
        return;
    errbuf_clear(&eb);
    rc = keys_revoke(svc->keys, hash, &eb);
    if (rc) {
        http_reply_error(req, rc, eb.msg, NULL);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:b, s:s}", "deleted", 1, "key_hash", hash));
}

static void ops_stats(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    const char *h = http_req_query(req, "hours");
    long hours = 24;
    char *out = NULL;
    struct errbuf eb;

    if (svc == NULL)
        return;
    if (svc->metrics == NULL) {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, "Metrics are not enabled", NULL);
        return;
    }
    if (h != NULL) {
        char *end = NULL;
        hours = strtol(h, &end, 10);
        if (end == h || *end != '\0') {
            http_reply_error(req, KILN_ERR_INVALID, "hours must be an integer", NULL);
            return;
        }
        hours = hours < 1 ? 1 : hours > 24 ? 24 : hours;
    }
    ops_storage_gauges(svc);
    services_pool_metrics(svc);
    if (metrics_render_summary_json(svc->metrics, (unsigned)hours, 0, &out, &eb) != KILN_OK) {
        http_reply_error(req, KILN_ERR_INTERNAL, eb.msg, NULL);
        return;
    }
    http_reply_bytes(req, 200, "application/json", out, strlen(out));
    free(out);
}

/* ---- /__test/exec (hidden: KILN_TEST_ROUTES=1) ---- */

/* A minimal execution through core/exec_service (what /exec does, without the contract's
 * shapes), so that the metrics tests can run code whatever state the /exec route is in. */
struct ops_exec {
    struct kiln_services *svc;
    char *lang, *code;
};

static void ops_exec_work(struct http_deferred *d, void *arg)
{
    struct ops_exec *x = arg;
    struct exec_request er = {0};
    struct exec_response resp = {0};
    struct exec_error_info info;
    struct errbuf eb;
    enum kiln_err rc;

    errbuf_clear(&eb);
    er.lang = x->lang;
    er.code = x->code;
    er.code_len = strlen(x->code);
    er.cancel_fd = http_deferred_cancel_fd(d);
    rc = exec_service_run(x->svc, &er, &resp, &info, &eb);
    if (rc)
        http_deferred_reply_error(d, rc, eb.msg);
    else
        http_deferred_reply_json(d, 200,
                                 json_pack("{s:s, s:s, s:i, s:s}", "status", resp.status, "stdout",
                                           resp.stdout_text ? resp.stdout_text : "", "exit_code",
                                           resp.exit_code, "session_id", resp.session_id));
    exec_response_clear(&resp);
    free(x->lang);
    free(x->code);
    free(x);
}

static void ops_test_exec(struct http_req *req)
{
    struct kiln_services *svc = ops_svc(req);
    json_t *body = http_req_json(req);
    const char *lang = json_string_value(json_object_get(body, "lang"));
    const char *code = json_string_value(json_object_get(body, "code"));
    struct ops_exec *x;

    if (svc == NULL)
        return;
    if (lang == NULL || code == NULL) {
        http_reply_error(req, KILN_ERR_INVALID, "lang and code are required", NULL);
        return;
    }
    x = xcalloc(1, sizeof *x);
    x->svc = svc;
    x->lang = xstrdup(lang);
    x->code = xstrdup(code);
    http_req_defer_run(req, ops_exec_work, x, NULL);
}

/* ---- the dashboard (static, no credential: the page signs in with the master key) ---- */

#define OPS_DASHBOARD_CSP                                                                          \
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "          \
    "form-action 'none'"

static void ops_dashboard(struct http_req *req)
{
    const struct kiln_asset *a;
    char path[160];
    const char *file = http_req_param(req, "file");

    if (file != NULL)
        snprintf(path, sizeof path, "/admin-dashboard/%s", file);
    else
        snprintf(path, sizeof path, "/admin-dashboard");
    a = assets_find(path);
    if (a == NULL) {
        http_reply_error(req, KILN_ERR_NOT_FOUND, "Not found", NULL);
        return;
    }
    http_reply_header(req, "Content-Security-Policy", OPS_DASHBOARD_CSP);
    http_reply_header(req, "Cache-Control", "no-cache");
    http_reply_bytes(req, 200, assets_content_type(a->path), a->data, a->len);
}

/* The page with a trailing slash (typed or bookmarked): 308 to its one URL. Serving it there too
 * would work (the page's URLs are absolute), but one URL keeps history and bookmarks single. */
static void ops_dashboard_slash(struct http_req *req)
{
    http_reply_header(req, "Location", "/admin-dashboard");
    http_reply_bytes(req, 308, NULL, "", 0);
}

const struct http_route api_ops_routes[] = {
    {"GET", "/metrics", ops_metrics, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/health/detailed", ops_health_detailed, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/health/{dependency}", ops_health_one, 0, HTTP_BODY_NONE, 0, NULL},
    {"POST", "/__test/exec", ops_test_exec, HTTP_ROUTE_HIDDEN, HTTP_BODY_JSON, 0, NULL},
    {"GET", "/admin-dashboard", ops_dashboard, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/admin-dashboard/{file}", ops_dashboard, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/admin-dashboard/", ops_dashboard_slash, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
};
const size_t api_ops_routes_count = sizeof api_ops_routes / sizeof api_ops_routes[0];

const struct http_route api_admin_routes[] = {
    {"GET", "/keys", ops_keys_list, 0, HTTP_BODY_NONE, 0, NULL},
    {"POST", "/keys", ops_keys_create, 0, HTTP_BODY_JSON, 0, NULL},
    {"PATCH", "/keys/{key_hash}", ops_keys_update, 0, HTTP_BODY_JSON, 0, NULL},
    {"DELETE", "/keys/{key_hash}", ops_keys_revoke, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/stats", ops_stats, 0, HTTP_BODY_NONE, 0, NULL},
};
const size_t api_admin_routes_count = sizeof api_admin_routes / sizeof api_admin_routes[0];
