/* The libmicrohttpd glue: daemons, the access handler's state machine (route → limits →
 * body → auth → handler), TLS, the redirect listener and graceful shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/internal.h"
#include "util/metrics.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* Bytes of an oversized body we read and drop before closing the connection: enough to answer
 * 413 to an honest client that sent a bit too much, not an open tap for a hostile one. */
#define HTTP_DISCARD_MAX (1024 * 1024)
/* Per-connection memory MHD may use for headers and buffering; bounds header size (→ 431). */
#define HTTP_CONN_MEMORY (64 * 1024)
/* Buffer of the multipart post-processor. */
#define HTTP_PP_BUFFER (64 * 1024)

/* ---- auth ---- */

/* The kiln_auth_failures_total reason of a refusal (metrics.h METRICS_AUTH_REASONS). */
static const char *http_auth_reason(enum kiln_err rc, const char *msg)
{
    if (rc == KILN_ERR_RATE_LIMITED)
        return "rate_limited";
    if (rc == KILN_ERR_FORBIDDEN)
        return "forbidden";
    if (strcmp(msg, "Missing API key") == 0)
        return "missing";
    if (strcmp(msg, "API key disabled") == 0)
        return "disabled";
    return "invalid";
}

/* X-RateLimit-* of a managed key's tightest window on an accepted request. */
static void http_req_ratelimit_headers(struct http_req *req, long limit, long remaining,
                                       long reset_s)
{
    char num[32];

    snprintf(num, sizeof num, "%ld", limit);
    http_reply_header(req, "X-RateLimit-Limit", num);
    snprintf(num, sizeof num, "%ld", remaining);
    http_reply_header(req, "X-RateLimit-Remaining", num);
    snprintf(num, sizeof num, "%lld", (long long)time(NULL) + reset_s);
    http_reply_header(req, "X-RateLimit-Reset", num);
}

/* Authenticate req with what it presented (body_key: from a JSON body, may be NULL). Answers the
 * failure itself and returns false then. */
static bool http_req_authenticate(struct http_req *req, const char *body_key)
{
    struct auth_request ar = {
        .api_key_header = http_req_header(req, req->srv->cfg->api_key_header),
        .authorization = http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
        .body_key = body_key,
        .peer = (const struct sockaddr *)&req->peer,
        .admin_route = req->match.mount == HTTP_MOUNT_ADMIN,
    };
    struct errbuf eb;
    long retry = 0;
    enum kiln_err rc;

    errbuf_clear(&eb);
    memset(&req->auth, 0, sizeof req->auth);
    rc = auth_check(req->srv->auth, &ar, &req->auth, &retry, &eb);
    if (rc == KILN_OK) {
        req->has_auth = true;
        req->authed = true;
        if (req->auth.rl_limit > 0)
            http_req_ratelimit_headers(req, req->auth.rl_limit, req->auth.rl_remaining,
                                       req->auth.rl_reset_s);
        return true;
    }
    if (req->srv->metrics != NULL) {
        const char *reason[1] = {http_auth_reason(rc, eb.msg)};
        metrics_inc(req->srv->metrics, METRIC_AUTH_FAILURES_TOTAL, reason);
    }
    if (req->srv->cfg->enable_security_logs) {
        struct log_field f[] = {
            LOG_STR("reason", eb.msg[0] ? eb.msg : kiln_err_name(rc)),
            LOG_STR("client_ip", req->client_ip),
            LOG_STR("path", req->path),
        };
        log_security(req->srv->log ? req->srv->log : log_default(), req->id,
                     rc == KILN_ERR_RATE_LIMITED ? "auth_rate_limited" : "auth_failed", f,
                     sizeof f / sizeof f[0]);
    }
    if (rc == KILN_ERR_RATE_LIMITED)
        /* a managed key's own window, else the client's failed-attempt limit */
        http_reply_rate_limited(req, eb.msg[0] ? eb.msg : "Too many failed authentication attempts",
                                req->auth.rl_limit > 0 ? req->auth.rl_reset_s : retry,
                                req->auth.rl_limit > 0 ? req->auth.rl_limit
                                                       : (long)req->srv->cfg->auth_max_failures);
    else
        http_reply_error(req, rc, eb.msg[0] ? eb.msg : "Invalid API key", NULL);
    return false;
}

/* ---- body ---- */

/* The media type of Content-Type, compared without parameters, case-insensitively. */
static bool http_ctype_is(const char *ct, const char *type)
{
    size_t n = strlen(type);

    if (ct == NULL)
        return false;
    ct += strspn(ct, " ");
    return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void http_body_fail(struct http_req *req, enum kiln_err err, const char *msg)
{
    if (req->body_err != KILN_OK)
        return;
    req->body_err = err;
    snprintf(req->body_msg, sizeof req->body_msg, "%s", msg);
}

/* Close the open multipart part, if any. */
static void http_part_close(struct http_req *req)
{
    const struct http_multipart_ops *ops = req->match.route->multipart;
    struct errbuf eb;
    enum kiln_err rc;

    if (!req->part_open)
        return;
    req->part_open = false;
    errbuf_clear(&eb);
    rc = ops->part_end ? ops->part_end(req, &eb) : KILN_OK;
    if (rc != KILN_OK)
        http_body_fail(req, rc, eb.msg[0] ? eb.msg : "Upload refused");
}

static bool http_str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* MHD's post-processor iterator: turn its (key, filename, offset, bytes) calls into
 * part_begin/part_data/part_end. A new part is one whose first byte is at offset 0. */
static enum MHD_Result http_pp_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *filename, const char *content_type,
                                    const char *transfer_encoding, const char *data, uint64_t off,
                                    size_t size)
{
    struct http_req *req = cls;
    const struct http_multipart_ops *ops = req->match.route->multipart;
    struct errbuf eb;
    enum kiln_err rc = KILN_OK;

    (void)kind;
    (void)transfer_encoding;
    if (req->body_err != KILN_OK)
        return MHD_NO;
    errbuf_clear(&eb);
    if (!req->part_open ||
        (off == 0 && (req->part_bytes > 0 || !http_str_eq(key, req->part_field) ||
                      !http_str_eq(filename, req->part_filename)))) {
        http_part_close(req);
        if (req->body_err != KILN_OK)
            return MHD_NO;
        free(req->part_field);
        free(req->part_filename);
        req->part_field = xstrdup(key ? key : "");
        req->part_filename = filename ? xstrdup(filename) : NULL;
        req->part_bytes = 0;
        req->part_open = true;
        rc = ops->part_begin ? ops->part_begin(req, req->part_field, filename, content_type, &eb)
                             : KILN_OK;
    }
    if (rc == KILN_OK && size > 0) {
        req->part_bytes += size;
        if (req->part_filename != NULL)
            req->file_bytes_in += size;
        rc = ops->part_data ? ops->part_data(req, data, size, &eb) : KILN_OK;
    }
    if (rc != KILN_OK) {
        req->part_open = false;
        http_body_fail(req, rc, eb.msg[0] ? eb.msg : "Upload refused");
        return MHD_NO;
    }
    return MHD_YES;
}

/* Take one chunk of the body. */
static void http_body_chunk(struct http_req *req, const char *data, size_t size)
{
    if (req->body_err != KILN_OK) {
        /* Already refused: drop the rest, closing past a bound (see HTTP_DISCARD_MAX). */
        req->discarded += size;
        return;
    }
    if (req->pp != NULL) {
        if (MHD_post_process(req->pp, data, size) != MHD_YES)
            http_body_fail(req, KILN_ERR_MALFORMED, "Malformed multipart body");
        return;
    }
    if (req->match.route == NULL || req->match.route->body == HTTP_BODY_NONE)
        return;
    if (size > req->body_max - req->body_len) {
        http_body_fail(req, KILN_ERR_TOO_LARGE, "Request body too large");
        req->discarded += size;
        return;
    }
    if (req->body_len + size + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + size + 1)
            cap *= 2;
        req->body = xreallocarray(req->body, cap, 1);
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, size);
    req->body_len += size;
    req->body[req->body_len] = '\0';
}

/* The key fields of a JSON body that may carry a credential (api-contract.md, auth form 4). */
static const char *const http_body_key_fields[] = {"LIBRECHAT_CODE_API_KEY", "api_key", "apiKey"};

/* The whole body is in: finish parsing, authenticate if it waited for the body, and run the
 * handler. */
static enum MHD_Result http_req_dispatch(struct http_req *req)
{
    const struct http_route *route = req->match.route;

    if (route->body == HTTP_BODY_MULTIPART && req->body_err == KILN_OK)
        http_part_close(req);
    if (req->body_err != KILN_OK) {
        http_reply_error(req, req->body_err, req->body_msg, NULL);
        return http_req_queue(req);
    }
    if (route->body == HTTP_BODY_JSON) {
        json_error_t jerr;

        req->json =
            json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (req->json == NULL) {
            char msg[256];
            snprintf(msg, sizeof msg, "Malformed JSON body: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
            http_reply_error(req, KILN_ERR_MALFORMED, msg, NULL);
            return http_req_queue(req);
        }
    }
    if (req->need_body_auth) {
        const char *key = NULL;

        for (size_t i = 0; key == NULL && i < sizeof http_body_key_fields / sizeof(char *); i++)
            key = json_is_object(req->json)
                      ? json_string_value(json_object_get(req->json, http_body_key_fields[i]))
                      : NULL;
        if (!http_req_authenticate(req, key))
            return http_req_queue(req);
    }
    route->handler(req);
    if (req->deferred != NULL && req->resp == NULL)
        return http_defer_park(req);
    return http_req_queue(req);
}

/* First call for a request: headers are in, no body yet. Answer what needs no body. */
static enum MHD_Result http_req_first(struct http_req *req)
{
    struct http_server *srv = req->srv;
    const struct http_route *route;
    const char *ct, *cl;

    if (strcmp(req->method, "OPTIONS") == 0 && req->rstatus != ROUTER_BAD_PATH &&
        req->rstatus != ROUTER_TOO_LONG)
        return http_req_preflight(req);
    switch (req->rstatus) {
    case ROUTER_FOUND:
        break;
    case ROUTER_NOT_FOUND:
        http_reply_error(req, KILN_ERR_NOT_FOUND, "Not found", NULL);
        return http_req_queue(req);
    case ROUTER_METHOD_NOT_ALLOWED:
        http_reply_header(req, MHD_HTTP_HEADER_ALLOW, req->allow);
        http_reply_error_status(req, 405, "method_not_allowed", "Method not allowed", NULL);
        return http_req_queue(req);
    case ROUTER_TOO_LONG:
        http_reply_error_status(req, 414, "uri_too_long", "Request path too long", NULL);
        return http_req_queue(req);
    case ROUTER_BAD_PATH:
        http_reply_error(req, KILN_ERR_INVALID, "Invalid request path", NULL);
        return http_req_queue(req);
    }
    route = req->match.route;
    ct = http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    cl = http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    req->body_max = route->max_body;
    if (req->body_max == 0)
        req->body_max = route->body == HTTP_BODY_MULTIPART ? SIZE_MAX : srv->json_max;
    if (route->body != HTTP_BODY_NONE && cl != NULL) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > req->body_max) {
            http_reply_error(req, KILN_ERR_TOO_LARGE, "Request body too large", NULL);
            return http_req_queue(req);
        }
    }
    /* A JSON route takes application/json; no Content-Type at all is tolerated (it is still
     * parsed as JSON), as the Python servers LibreChat was built against do. */
    if ((route->body == HTTP_BODY_JSON && ct != NULL && !http_ctype_is(ct, "application/json")) ||
        (route->body == HTTP_BODY_MULTIPART && !http_ctype_is(ct, "multipart/form-data"))) {
        http_reply_error(req, KILN_ERR_MEDIA_TYPE,
                         route->body == HTTP_BODY_JSON ? "Content-Type must be application/json"
                                                       : "Content-Type must be multipart/form-data",
                         NULL);
        return http_req_queue(req);
    }
    if (!(route->flags & HTTP_ROUTE_NO_AUTH)) {
        bool cred = http_req_header(req, srv->cfg->api_key_header) != NULL ||
                    http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
        /* With no credential header, a JSON POST may carry its key in the body: authenticate
         * once the body is read. */
        if (!cred && route->body == HTTP_BODY_JSON) {
            req->need_body_auth = true;
        } else if (!http_req_authenticate(req, NULL)) {
            return http_req_queue(req);
        }
    }
    if (route->body == HTTP_BODY_NONE)
        return http_req_dispatch(req);
    if (route->body == HTTP_BODY_MULTIPART) {
        req->pp = MHD_create_post_processor(req->conn, HTTP_PP_BUFFER, http_pp_iter, req);
        if (req->pp == NULL) {
            http_reply_error(req, KILN_ERR_MEDIA_TYPE, "Malformed multipart Content-Type", NULL);
            return http_req_queue(req);
        }
    }
    return MHD_YES;
}

/* Whether the request announces a body (Content-Length > 0 or a transfer coding). */
static bool http_has_body(struct MHD_Connection *conn)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    return te != NULL || (cl != NULL && strspn(cl, "0 ") != strlen(cl));
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct http_req *req = *con_cls;

    (void)version;
    if (req == NULL) {
        req = http_req_begin(cls, conn, url, method);
        *con_cls = req;
        /* With a body coming, refuse what can be refused before reading it (an answer queued
         * now makes MHD drop the body and close). Without one, wait for the final call: an
         * answer queued then keeps the connection alive. */
        if (!http_has_body(conn))
            return MHD_YES;
        req->first_done = true;
        return http_req_first(req);
    }
    if (req->queued)
        return MHD_YES;
    if (req->deferred != NULL)
        return http_defer_resumed(req);
    if (*upload_data_size > 0) {
        http_body_chunk(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return req->discarded > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (!req->first_done) {
        enum MHD_Result ret;

        req->first_done = true;
        ret = http_req_first(req);
        if (ret != MHD_YES || req->queued || req->deferred != NULL)
            return ret;
    }
    return http_req_dispatch(req);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    struct http_req *req = *con_cls;

    (void)cls;
    (void)conn;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (req->status == 0)
        req->status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 200 : 499;
    if (req->deferred != NULL)
        http_defer_request_ended(req, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    http_req_end(req);
}

/* Paths reach handlers undecoded: the router decodes each segment strictly itself, so that
 * "%2e%2e" or "%00" can be refused instead of silently turned into ".." or a cut string. */
static size_t http_unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* ---- the redirect listener ---- */

/* Rebuild the query string (raw, as MHD got it with the identity unescape) for a redirect. */
struct http_qs {
    char buf[4096];
    size_t len;
    bool overflow;
};

static enum MHD_Result http_qs_add(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct http_qs *q = cls;
    int n;

    (void)kind;
    n = snprintf(q->buf + q->len, sizeof q->buf - q->len, "%s%s%s%s", q->len ? "&" : "?", key,
                 value ? "=" : "", value ? value : "");
    if (n < 0 || (size_t)n >= sizeof q->buf - q->len) {
        q->overflow = true;
        return MHD_NO;
    }
    q->len += (size_t)n;
    return MHD_YES;
}

static enum MHD_Result http_redirect_access(void *cls, struct MHD_Connection *conn, const char *url,
                                            const char *method, const char *version,
                                            const char *upload_data, size_t *upload_data_size,
                                            void **con_cls)
{
    struct http_server *srv = cls;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    char hostname[256], *loc;
    struct MHD_Response *r;
    enum MHD_Result ret;
    size_t hl;

    (void)method;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (host == NULL || *host == '\0' || strlen(host) >= sizeof hostname)
        host = "localhost";
    /* Keep the host name, drop its port (a bracketed IPv6 literal keeps its brackets). */
    hl = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    if (hl > strlen(host))
        hl = strlen(host);
    memcpy(hostname, host, hl);
    hostname[hl] = '\0';
    if (strpbrk(hostname, "/\\@ \r\n\t") != NULL)
        snprintf(hostname, sizeof hostname, "localhost");
    {
        struct http_qs qs = {.len = 0};

        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, http_qs_add, &qs);
        if (qs.overflow)
            qs.len = 0;
        qs.buf[qs.len] = '\0';
        loc = xasprintf("https://%s:%u%s%s", hostname, srv->port, url, qs.buf);
    }
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        free(loc);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
    /* 308 keeps the method and body of a POST, which a 301 would let clients turn into GET. */
    ret = MHD_queue_response(conn, 308, r);
    MHD_destroy_response(r);
    free(loc);
    return ret;
}

/* ---- lifecycle ---- */

enum kiln_err http_server_new(struct http_server **out, const struct kiln_config *cfg,
                              struct auth *auth, const struct http_route_group *groups,
                              size_t ngroups, void *app, bool test_routes, struct errbuf *eb)
{
    struct http_server *srv = xcalloc(1, sizeof *srv);
    enum kiln_err rc = KILN_OK;

    srv->cfg = cfg;
    srv->auth = auth;
    srv->app = app;
    srv->test_routes = test_routes;
    srv->json_max = (size_t)cfg->max_request_body_kb * 1024;
    srv->router = router_new();
    atomic_init(&srv->draining, false);
    atomic_init(&srv->inflight, 0);
    for (size_t g = 0; rc == KILN_OK && g < ngroups; g++)
        for (size_t i = 0; rc == KILN_OK && i < groups[g].count; i++) {
            if ((groups[g].routes[i].flags & HTTP_ROUTE_HIDDEN) && !test_routes)
                continue;
            rc = router_add(srv->router, groups[g].mount, &groups[g].routes[i], eb);
        }
    if (rc != KILN_OK) {
        http_server_free(srv);
        return rc;
    }
    *out = srv;
    return KILN_OK;
}

/* Read a whole PEM file (bounded) into a fresh string. */
static enum kiln_err http_read_pem(const char *path, char **out, struct errbuf *eb)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    enum kiln_err rc = KILN_OK;

    if (f == NULL)
        return errbuf_set(eb, KILN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            if (cap > 1024 * 1024) {
                rc = errbuf_set(eb, KILN_ERR_TOO_LARGE, "'%s' is larger than 1 MiB", path);
                goto out;
            }
            buf = xreallocarray(buf, cap, 1);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        rc = errbuf_set(eb, KILN_ERR_IO, "cannot read '%s'", path);
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* Build the bind address of API_HOST:port. */
static enum kiln_err http_bind_addr(const char *host, unsigned port, struct sockaddr_storage *ss,
                                    struct errbuf *eb)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char ports[16];
    int e;

    snprintf(ports, sizeof ports, "%u", port);
    e = getaddrinfo(*host ? host : NULL, ports, &hints, &ai);
    if (e != 0)
        return errbuf_set(eb, KILN_ERR_INVALID, "API_HOST '%s' cannot be resolved: %s", host,
                          gai_strerror(e));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return KILN_OK;
}

/* Start one daemon on host:port; *bound receives the actual port. */
static enum kiln_err http_daemon_start(struct http_server *srv, bool tls, bool redirect,
                                       unsigned port, struct MHD_Daemon **out, unsigned *bound,
                                       struct errbuf *eb)
{
    const struct kiln_config *cfg = srv->cfg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    unsigned threads = (unsigned)cfg->http_threads;
    struct sockaddr_storage ss;
    struct MHD_OptionItem opts[16];
    size_t n = 0;
    const union MHD_DaemonInfo *di;
    enum kiln_err rc;

    rc = http_bind_addr(cfg->api_host, port, &ss, eb);
    if (rc != KILN_OK)
        return rc;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    if (threads == 0) {
        long np = sysconf(_SC_NPROCESSORS_ONLN);
        threads = np > 0 ? (unsigned)np : 1;
    }
    if (redirect)
        threads = 1;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                        (intptr_t)cfg->http_max_connections, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        (intptr_t)cfg->http_connection_timeout, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL};
    if (threads > 1)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, threads, NULL};
    if (!redirect) {
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http_completed, NULL};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK,
                                            (intptr_t)http_unescape_none, NULL};
    }
    if (tls) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    *out = MHD_start_daemon(flags, 0, NULL, NULL,
                            redirect ? (MHD_AccessHandlerCallback)http_redirect_access
                                     : (MHD_AccessHandlerCallback)http_access,
                            srv, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (*out == NULL)
        return errbuf_set(eb, KILN_ERR_IO, "cannot listen on %s:%u (%s)",
                          *cfg->api_host ? cfg->api_host : "*", port,
                          errno ? strerror(errno) : "libmicrohttpd refused the options");
    di = MHD_get_daemon_info(*out, MHD_DAEMON_INFO_BIND_PORT);
    *bound = di ? di->port : port;
    return KILN_OK;
}

enum kiln_err http_server_start(struct http_server *srv, struct errbuf *eb)
{
    const struct kiln_config *cfg = srv->cfg;
    const char *host = *cfg->api_host ? cfg->api_host : "0.0.0.0";
    bool v6 = strchr(host, ':') != NULL;
    enum kiln_err rc;

    rc = http_defer_start(srv, eb);
    if (rc != KILN_OK)
        return rc;
    if (cfg->enable_https) {
        char *cert = NULL, *key = NULL;

        if (*cfg->ssl_cert_file && *cfg->ssl_key_file) {
            cert = xstrdup(cfg->ssl_cert_file);
            key = xstrdup(cfg->ssl_key_file);
        } else {
            cert = xasprintf("%s/cert.pem", cfg->ssl_certs_path);
            key = xasprintf("%s/key.pem", cfg->ssl_certs_path);
        }
        rc = http_read_pem(cert, &srv->tls_cert, eb);
        if (rc == KILN_OK)
            rc = http_read_pem(key, &srv->tls_key, eb);
        free(cert);
        free(key);
        if (rc != KILN_OK)
            return rc;
        srv->tls = true;
        rc = http_daemon_start(srv, true, false, (unsigned)cfg->https_port, &srv->daemon,
                               &srv->port, eb);
        if (rc != KILN_OK)
            return rc;
        fprintf(stderr, "kiln: listening on https://%s%s%s:%u\n", v6 ? "[" : "", host,
                v6 ? "]" : "", srv->port);
        if (cfg->ssl_redirect) {
            rc = http_daemon_start(srv, false, true, (unsigned)cfg->api_port, &srv->redirect,
                                   &srv->redirect_port, eb);
            if (rc != KILN_OK)
                return rc;
            fprintf(stderr, "kiln: redirecting http://%s%s%s:%u to https\n", v6 ? "[" : "", host,
                    v6 ? "]" : "", srv->redirect_port);
        }
        return KILN_OK;
    }
    rc =
        http_daemon_start(srv, false, false, (unsigned)cfg->api_port, &srv->daemon, &srv->port, eb);
    if (rc != KILN_OK)
        return rc;
    fprintf(stderr, "kiln: listening on http://%s%s%s:%u\n", v6 ? "[" : "", host, v6 ? "]" : "",
            srv->port);
    return KILN_OK;
}

unsigned http_server_port(const struct http_server *srv)
{
    return srv->port;
}

bool http_server_draining(const struct http_server *srv)
{
    return atomic_load(&srv->draining);
}

void http_server_shutdown(struct http_server *srv, long grace_s)
{
    struct timespec start, now;

    if (srv->daemon == NULL)
        return;
    atomic_store(&srv->draining, true);
    /* Stop accepting: new connections are refused by the kernel from here on. */
    {
        MHD_socket ls = MHD_quiesce_daemon(srv->daemon);
        if (ls != MHD_INVALID_SOCKET)
            close(ls);
    }
    if (srv->redirect != NULL) {
        MHD_stop_daemon(srv->redirect);
        srv->redirect = NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (atomic_load(&srv->inflight) == 0 || now.tv_sec - start.tv_sec >= grace_s)
            break;
        usleep(20 * 1000);
    }
    http_defer_stop(srv);
    if (srv->drain_fn != NULL)
        srv->drain_fn(srv->drain_arg);
    /* Give the poll threads a moment to close the connections just woken up. */
    for (int i = 0; i < 50 && atomic_load(&srv->inflight) > 0; i++)
        usleep(10 * 1000);
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    http_defer_free(srv);
}

void http_server_free(struct http_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->daemon != NULL)
        http_server_shutdown(srv, 0);
    if (srv->redirect != NULL)
        MHD_stop_daemon(srv->redirect);
    http_defer_free(srv);
    router_free(srv->router);
    free(srv->tls_cert);
    free(srv->tls_key);
    free(srv);
}

void http_server_set_drain_hook(struct http_server *srv, void (*fn)(void *), void *arg)
{
    srv->drain_fn = fn;
    srv->drain_arg = arg;
}

void http_server_set_metrics(struct http_server *srv, struct metrics *m)
{
    srv->metrics = m;
}

void http_server_set_logger(struct http_server *srv, struct logger *lg)
{
    srv->log = lg;
}
