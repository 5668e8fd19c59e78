/* The Python state routes (issue 6, docs/state.md): GET/POST/DELETE /state/{session_id} and
 * GET /state/{session_id}/info. A session another user owns answers exactly like a missing one
 * (404; DELETE always 204 and deletes only what the caller may see). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "core/files.h"
#include "core/sessions.h"
#include "core/state.h"
#include "util/xmalloc.h"

#define MIB (1024LL * 1024LL)

/* Largest POST body the http layer buffers: the top of STATE_MAX_SIZE_MB's range; the
 * configured limit is checked by the handler (413 naming it). */
#define API_STATE_MAX_BODY ((size_t)4096 * 1024 * 1024)

/* True when the caller may see the session named in the path. */
static bool api_state_visible(struct http_req *req, const char **sid)
{
    struct store_session s = {0};
    enum kiln_err rc;

    *sid = http_req_param(req, "session_id");
    rc = sessions_get(api_svc(req), api_user_from_request(req), *sid, &s, NULL);
    store_session_clear(&s);
    return rc == KILN_OK;
}

/* If-None-Match holds etag (quoted or not) or "*". */
static bool api_state_not_modified(struct http_req *req, const char *hash)
{
    const char *inm = http_req_header(req, "If-None-Match");
    char quoted[SHA256_HEX_BUF + 2];

    if (inm == NULL)
        return false;
    snprintf(quoted, sizeof quoted, "\"%s\"", hash);
    return strstr(inm, quoted) != NULL || strcmp(inm, hash) == 0 || strcmp(inm, "*") == 0;
}

static void api_state_get(struct http_req *req)
{
    struct kiln_services *svc = api_svc(req);
    struct state_info info;
    const char *sid;
    void *blob = NULL;
    size_t len = 0;
    char etag[SHA256_HEX_BUF + 2];
    struct errbuf eb;
    enum kiln_err rc;

    errbuf_clear(&eb);
    if (!api_state_visible(req, &sid)) {
        http_reply_error(req, KILN_ERR_NOT_FOUND, "No state for session", NULL);
        return;
    }
    rc = state_info_get(svc, sid, &info, &eb);
    if (rc == KILN_OK && info.exists && api_state_not_modified(req, info.sha256)) {
        snprintf(etag, sizeof etag, "\"%s\"", info.sha256);
        http_reply_header(req, "ETag", etag);
        http_reply_bytes(req, 304, NULL, NULL, 0);
        return;
    }
    if (rc == KILN_OK)
        rc = state_load(svc, sid, &blob, &len, &info, NULL, &eb);
    if (rc) {
        http_reply_error(req, rc, rc == KILN_ERR_NOT_FOUND ? "No state for session" : eb.msg, NULL);
        return;
    }
    snprintf(etag, sizeof etag, "\"%s\"", info.sha256);
    http_reply_header(req, "ETag", etag);
    http_reply_header(req, "X-State-Source", info.source);
    http_reply_bytes(req, 200, "application/octet-stream", blob, len);
    free(blob);
}

static void api_state_post(struct http_req *req)
{
    struct kiln_services *svc = api_svc(req);
    struct state_info info;
    const char *sid;
    size_t len = 0;
    const void *body = http_req_body(req, &len);
    long long max = svc->cfg->state_max_size_mb * MIB;
    struct errbuf eb;
    enum kiln_err rc;

    errbuf_clear(&eb);
    if (!api_state_visible(req, &sid)) {
        http_reply_error(req, KILN_ERR_NOT_FOUND, "Session not found", NULL);
        return;
    }
    if ((long long)len > max + max / 128 + 65536) {
        char *msg = xasprintf("state of %zu bytes exceeds STATE_MAX_SIZE_MB (%lld MB)", len,
                              svc->cfg->state_max_size_mb);
        http_reply_error(req, KILN_ERR_TOO_LARGE, msg, api_details("body", msg, "state_too_large"));
        free(msg);
        return;
    }
    rc = state_save(svc, sid, body, len, &info, &eb);
    if (rc) {
        const char *code = rc == KILN_ERR_INVALID     ? "invalid_state"
                           : rc == KILN_ERR_TOO_LARGE ? "state_too_large"
                                                      : NULL;
        http_reply_error(req, rc, eb.msg, code != NULL ? api_details("body", eb.msg, code) : NULL);
        return;
    }
    http_reply_json(req, 201,
                    json_pack("{s:s, s:I, s:s}", "message", "state_uploaded", "size",
                              (json_int_t)info.size, "hash", info.sha256));
}

static void api_state_info(struct http_req *req)
{
    struct state_info info;
    const char *sid;
    char created[32], expires[32];
    struct errbuf eb;
    json_t *o;

    errbuf_clear(&eb);
    if (!api_state_visible(req, &sid)) {
        http_reply_error(req, KILN_ERR_NOT_FOUND, "Session not found", NULL);
        return;
    }
    if (state_info_get(api_svc(req), sid, &info, &eb) != KILN_OK) {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, eb.msg, NULL);
        return;
    }
    o = json_pack("{s:b, s:s}", "exists", info.exists, "session_id", sid);
    if (info.exists) {
        files_iso8601(info.updated_ms, created);
        files_iso8601(info.expires_ms, expires);
        json_object_set_new(o, "size_bytes", json_integer(info.size));
        json_object_set_new(o, "hash", json_string(info.sha256));
        json_object_set_new(o, "created_at", json_string(created));
        json_object_set_new(o, "expires_at", json_string(expires));
        json_object_set_new(o, "source", json_string(info.source));
    }
    http_reply_json(req, 200, o);
}

static void api_state_delete(struct http_req *req)
{
    const char *sid;

    if (api_state_visible(req, &sid))
        state_delete(api_svc(req), sid, NULL);
    http_reply_bytes(req, 204, NULL, NULL, 0);
}

const struct http_route api_state_routes[] = {
    {"GET", "/state/{session_id}", api_state_get, 0, HTTP_BODY_NONE, 0, NULL},
    {"POST", "/state/{session_id}", api_state_post, 0, HTTP_BODY_RAW, API_STATE_MAX_BODY, NULL},
    {"GET", "/state/{session_id}/info", api_state_info, 0, HTTP_BODY_NONE, 0, NULL},
    {"DELETE", "/state/{session_id}", api_state_delete, 0, HTTP_BODY_NONE, 0, NULL},
};
const size_t api_state_routes_count = sizeof api_state_routes / sizeof api_state_routes[0];
