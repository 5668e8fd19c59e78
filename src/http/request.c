/* The request abstraction handlers see, the answers they give, and the headers every answer
 * carries (request id, security headers, CORS). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "http/internal.h"
#include "util/metrics.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* The strict policy of API answers: nothing may be loaded, framed or scripted. /docs sets its
 * own through http_reply_header(). */
#define HTTP_CSP_API "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

/* Characters accepted in a client's X-Request-ID: enough for UUIDs and trace ids, nothing that
 * could split a log line or a header. */
static bool http_req_id_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok || n >= HTTP_REQ_ID_MAX)
            return false;
    }
    return n > 0;
}

static void http_req_id_generate(char *out)
{
    unsigned char raw[16];
    static const char hex[] = "0123456789abcdef";

    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* The kernel's CSPRNG does not fail on 16 bytes once booted; a time-based id beats
         * none if it ever does. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(raw, &ts, sizeof ts < sizeof raw ? sizeof ts : sizeof raw);
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * sizeof raw] = '\0';
}

struct http_req *http_req_begin(struct http_server *srv, struct MHD_Connection *conn,
                                const char *url, const char *method)
{
    struct http_req *req = xcalloc(1, sizeof *req);
    const union MHD_ConnectionInfo *ci;
    const char *rid;

    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->path = url;
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        size_t len =
            sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        memcpy(&req->peer, sa, len);
        if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->client_ip,
                      sizeof req->client_ip);
        else
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->client_ip,
                      sizeof req->client_ip);
    }
    rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-ID");
    if (rid != NULL && http_req_id_ok(rid))
        snprintf(req->id, sizeof req->id, "%s", rid);
    else
        http_req_id_generate(req->id);
    req->rstatus =
        router_match(srv->router, method, url, &req->match, req->allow, sizeof req->allow);
    atomic_fetch_add(&srv->inflight, 1);
    return req;
}

void http_req_free_hdrs(struct http_req *req)
{
    while (req->hdrs != NULL) {
        struct http_hdr *h = req->hdrs;
        req->hdrs = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
}

/* The route label of req for the metrics: the matched pattern with its mount's prefix for admin
 * routes, the dashboard's files folded into one; NULL (counted as "other") when none matched. */
static const char *http_req_route_label(const struct http_req *req, char *buf, size_t size)
{
    const struct http_route *r = req->match.route;

    if (req->rstatus != ROUTER_FOUND || r == NULL)
        return NULL;
    if (strncmp(r->pattern, "/admin-dashboard", 16) == 0)
        return "/admin-dashboard";
    if (req->match.mount == HTTP_MOUNT_ADMIN) {
        snprintf(buf, size, "/api/v1/admin%s", r->pattern);
        return buf;
    }
    return r->pattern;
}

void http_req_end(struct http_req *req)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (req->srv->metrics != NULL) {
        char buf[160];
        metrics_record_http(req->srv->metrics, http_req_route_label(req, buf, sizeof buf),
                            req->method, (int)req->status,
                            (double)(now.tv_sec - req->start.tv_sec) +
                                (double)(now.tv_nsec - req->start.tv_nsec) / 1e9);
        /* file bytes whatever the handler: accepted uploads in, files served out */
        if (req->file_bytes_in > 0 && req->status >= 200 && req->status < 300)
            metrics_add(req->srv->metrics, METRIC_UPLOAD_BYTES_TOTAL, NULL, req->file_bytes_in);
        if (req->file_reply && req->status >= 200 && req->status < 300)
            metrics_add(req->srv->metrics, METRIC_DOWNLOAD_BYTES_TOTAL, NULL, req->bytes_out);
    }
    if (req->srv->cfg->enable_access_logs)
        log_access(req->srv->log ? req->srv->log : log_default(), req->id, req->method, req->path,
                   (int)req->status, (long long)req->bytes_out,
                   (double)(now.tv_sec - req->start.tv_sec) * 1e3 +
                       (double)(now.tv_nsec - req->start.tv_nsec) / 1e6,
                   req->client_ip);
    if (req->pp != NULL)
        MHD_destroy_post_processor(req->pp);
    if (req->state_free != NULL)
        req->state_free(req->state);
    if (req->resp != NULL)
        MHD_destroy_response(req->resp);
    for (size_t i = 0; i < req->nscratch; i++)
        free(req->scratch[i]);
    free(req->scratch);
    free(req->part_field);
    free(req->part_filename);
    free(req->body);
    json_decref(req->json);
    http_req_free_hdrs(req);
    atomic_fetch_sub(&req->srv->inflight, 1);
    free(req);
}

/* ---- accessors ---- */

const char *http_req_method(const struct http_req *req)
{
    return req->method;
}

const char *http_req_path(const struct http_req *req)
{
    return req->path;
}

const char *http_req_param(const struct http_req *req, const char *name)
{
    for (size_t i = 0; i < req->match.nparams; i++)
        if (strcmp(req->match.names[i], name) == 0)
            return req->match.values[i];
    return NULL;
}

const char *http_req_query(struct http_req *req, const char *name)
{
    /* The server installs an identity unescape callback, so MHD hands raw values; decode here
     * with the same strictness as paths. */
    const char *raw = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    char *dec;
    size_t n;

    if (raw == NULL)
        return NULL;
    n = strlen(raw);
    dec = xmalloc(n + 1);
    if (!router_pct_decode(raw, n, dec, true)) {
        free(dec);
        return NULL;
    }
    req->scratch = xreallocarray(req->scratch, req->nscratch + 1, sizeof *req->scratch);
    req->scratch[req->nscratch++] = dec;
    return dec;
}

const char *http_req_header(struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_req_client_ip(const struct http_req *req)
{
    return req->client_ip;
}

const struct sockaddr *http_req_peer(const struct http_req *req)
{
    return (const struct sockaddr *)&req->peer;
}

const char *http_req_id(const struct http_req *req)
{
    return req->id;
}

const struct auth_result *http_req_auth(const struct http_req *req)
{
    return req->has_auth ? &req->auth : NULL;
}

json_t *http_req_json(const struct http_req *req)
{
    return req->json;
}

const void *http_req_body(const struct http_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body ? req->body : "";
}

void *http_req_app(const struct http_req *req)
{
    return req->srv->app;
}

const struct kiln_config *http_req_config(const struct http_req *req)
{
    return req->srv->cfg;
}

bool http_req_draining(const struct http_req *req)
{
    return atomic_load(&req->srv->draining);
}

void http_req_set_state(struct http_req *req, void *state, void (*free_fn)(void *))
{
    if (req->state_free != NULL && req->state != state)
        req->state_free(req->state);
    req->state = state;
    req->state_free = free_fn;
}

void *http_req_state(const struct http_req *req)
{
    return req->state;
}

/* ---- answers ---- */

void http_reply_header(struct http_req *req, const char *name, const char *value)
{
    struct http_hdr *h = xmalloc(sizeof *h);

    h->name = xstrdup(name);
    h->value = xstrdup(value);
    h->next = req->hdrs;
    req->hdrs = h;
}

static bool http_hdr_set(const struct http_req *req, const char *name)
{
    for (const struct http_hdr *h = req->hdrs; h != NULL; h = h->next)
        if (strcasecmp(h->name, name) == 0)
            return true;
    return false;
}

/* Store resp as the answer unless one exists already (a handler bug: the first answer wins). */
static void http_req_set_resp(struct http_req *req, unsigned status, struct MHD_Response *resp,
                              uint64_t bytes)
{
    if (resp == NULL)
        return;
    if (req->resp != NULL || req->queued) {
        MHD_destroy_response(resp);
        return;
    }
    req->resp = resp;
    req->status = status;
    req->bytes_out = bytes;
}

void http_reply_bytes(struct http_req *req, int status, const char *content_type, const void *body,
                      size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

    if (r != NULL && content_type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    http_req_set_resp(req, (unsigned)status, r, len);
}

void http_reply_json(struct http_req *req, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    size_t len = s ? strlen(s) : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, s ? s : (void *)"", s ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);

    json_decref(body);
    if (r == NULL) {
        free(s);
        return;
    }
    if (body != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    http_req_set_resp(req, (unsigned)status, r, len);
}

char *http_error_body(const char *message, const char *error_type, json_t *details,
                      const char *req_id, long retry_after_s)
{
    struct timespec ts;
    json_t *o;
    char *s;

    clock_gettime(CLOCK_REALTIME, &ts);
    o = json_object();
    json_object_set_new(o, "error", json_string(message ? message : ""));
    json_object_set_new(o, "error_type", json_string(error_type));
    json_object_set_new(o, "details", details ? details : json_null());
    json_object_set_new(o, "request_id", json_string(req_id));
    json_object_set_new(o, "timestamp", json_real((double)ts.tv_sec + (double)ts.tv_nsec / 1e9));
    if (retry_after_s >= 0)
        json_object_set_new(o, "retry_after_seconds", json_integer(retry_after_s));
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s ? s : xstrdup("{}");
}

void http_reply_error_status(struct http_req *req, unsigned status, const char *error_type,
                             const char *message, json_t *details)
{
    char *s = http_error_body(message, error_type, details, req->id, -1);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);

    if (r == NULL) {
        free(s);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    http_req_set_resp(req, status, r, strlen(s));
}

void http_reply_error(struct http_req *req, enum kiln_err err, const char *message, json_t *details)
{
    http_reply_error_status(req, (unsigned)kiln_err_http_status(err), kiln_err_name(err), message,
                            details);
}

void http_reply_rate_limited(struct http_req *req, const char *message, long retry_after_s,
                             long limit)
{
    char *s = http_error_body(message, kiln_err_name(KILN_ERR_RATE_LIMITED), NULL, req->id,
                              retry_after_s < 1 ? 1 : retry_after_s);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    char num[32];

    if (r == NULL) {
        free(s);
        return;
    }
    if (retry_after_s < 1)
        retry_after_s = 1;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    snprintf(num, sizeof num, "%ld", retry_after_s);
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, num);
    snprintf(num, sizeof num, "%ld", limit);
    MHD_add_response_header(r, "X-RateLimit-Limit", num);
    MHD_add_response_header(r, "X-RateLimit-Remaining", "0");
    snprintf(num, sizeof num, "%lld", (long long)time(NULL) + retry_after_s);
    MHD_add_response_header(r, "X-RateLimit-Reset", num);
    http_req_set_resp(req, 429, r, strlen(s));
}

int http_parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    unsigned long long a = 0, b;
    char *end;

    if (h == NULL || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
        return 0;
    h += 6;
    errno = 0;
    /* strtoull() would also take blanks and a sign ("bytes=-+0", "bytes=0--5"): digits only. */
    if (*h == '-') {
        if (!isdigit((unsigned char)h[1]))
            return 0;
        b = strtoull(h + 1, &end, 10);
        if (errno || end == h + 1 || *end != '\0')
            return 0;
        if (b == 0 || size == 0)
            return -1;
        if (b > size)
            b = size;
        *off = size - b;
        *len = b;
        return 1;
    }
    if (!isdigit((unsigned char)*h))
        return 0;
    a = strtoull(h, &end, 10);
    if (errno || end == h || *end != '-')
        return 0;
    h = end + 1;
    if (*h == '\0') {
        b = size ? size - 1 : 0;
    } else {
        if (!isdigit((unsigned char)*h))
            return 0;
        b = strtoull(h, &end, 10);
        if (errno || *end != '\0' || b < a)
            return 0;
        if (b >= size)
            b = size ? size - 1 : 0;
    }
    if (a >= size)
        return -1;
    *off = a;
    *len = b - a + 1;
    return 1;
}

void http_reply_file(struct http_req *req, int fd, uint64_t size, const char *content_type,
                     const char *content_disposition)
{
    uint64_t off = 0, len = size;
    int rng = http_parse_range(http_req_header(req, "Range"), size, &off, &len);
    struct MHD_Response *r;
    char cr[96];

    if (rng < 0) {
        close(fd);
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, size);
        http_reply_header(req, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        http_reply_error_status(req, 416, "range_not_satisfiable", "Range not satisfiable", NULL);
        return;
    }
    r = MHD_create_response_from_fd_at_offset64(len, fd, off);
    if (r == NULL) {
        close(fd);
        http_reply_error(req, KILN_ERR_INTERNAL, "Cannot send the file", NULL);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type ? content_type : "application/octet-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (content_disposition != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, content_disposition);
    if (rng > 0) {
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off, off + len - 1, size);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    http_req_set_resp(req, rng > 0 ? 206 : 200, r, len);
    req->file_reply = true;
}

/* ---- common headers ---- */

/* Whether origin is listed in CORS_ORIGINS (comma-separated, "*" = any). */
static bool http_cors_allowed(const struct kiln_config *cfg, const char *origin)
{
    const char *p = cfg->cors_origins;
    size_t olen = strlen(origin);

    while (*p) {
        size_t len;

        p += strspn(p, " ,");
        len = strcspn(p, ",");
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if ((len == 1 && p[0] == '*') || (len == olen && strncmp(p, origin, len) == 0))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* Add the CORS headers for an allowed Origin; preflight adds the method/header grants. */
static void http_add_cors(struct http_req *req, struct MHD_Response *r, bool preflight)
{
    const struct kiln_config *cfg = req->srv->cfg;
    const char *origin = http_req_header(req, "Origin");
    char buf[256];

    if (!cfg->enable_cors || origin == NULL || !http_cors_allowed(cfg, origin))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
    MHD_add_response_header(r, "Access-Control-Expose-Headers",
                            "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, "
                            "X-RateLimit-Reset, Content-Disposition");
    if (!preflight)
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Methods",
                            req->allow[0] ? req->allow : "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    snprintf(buf, sizeof buf, "Content-Type, Authorization, X-Request-ID, %s", cfg->api_key_header);
    MHD_add_response_header(r, "Access-Control-Allow-Headers", buf);
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
}

/* Answer a preflight (or any OPTIONS): 204, CORS grants only for an allowed Origin. */
enum MHD_Result http_req_preflight(struct http_req *req)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);

    if (r == NULL)
        return MHD_NO;
    if (req->allow[0] == '\0')
        snprintf(req->allow, sizeof req->allow, "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, req->allow);
    http_add_cors(req, r, true);
    req->resp = r;
    req->status = 204;
    return http_req_queue(req);
}

enum MHD_Result http_req_queue(struct http_req *req)
{
    struct MHD_Response *r = req->resp;
    enum MHD_Result ret;

    if (r == NULL) {
        http_reply_error(req, KILN_ERR_INTERNAL, "The handler gave no answer", NULL);
        r = req->resp;
        if (r == NULL)
            return MHD_NO;
    }
    for (const struct http_hdr *h = req->hdrs; h != NULL; h = h->next)
        MHD_add_response_header(r, h->name, h->value);
    MHD_add_response_header(r, "X-Request-ID", req->id);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (!http_hdr_set(req, "Content-Security-Policy"))
        MHD_add_response_header(r, "Content-Security-Policy", HTTP_CSP_API);
    if (!http_hdr_set(req, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (req->srv->tls)
        MHD_add_response_header(r, MHD_HTTP_HEADER_STRICT_TRANSPORT_SECURITY,
                                "max-age=31536000; includeSubDomains");
    if (req->status != 204 || strcmp(req->method, "OPTIONS") != 0)
        http_add_cors(req, r, false);
    /* While draining, let keep-alive clients go rather than send more requests here. */
    if (atomic_load(&req->srv->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(req->conn, req->status, r);
    MHD_destroy_response(r);
    req->resp = NULL;
    req->queued = true;
    return ret;
}
