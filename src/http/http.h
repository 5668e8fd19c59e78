/* The handler API of kiln's HTTP front door: what api/ route groups code against.
 *
 * A route group is a table of struct http_route rows mounted at the API mount points (root and
 * /v1) or under /api/v1/admin. For each request the http layer matches the route, assigns the
 * request id, answers CORS preflights, checks Content-Type and body size, reads the body
 * (a bounded JSON document, a bounded raw body, or a streamed multipart form), authenticates,
 * and only then calls the handler. A handler answers exactly once, with one http_reply_*() call,
 * or defers the answer to another thread with http_req_defer().
 *
 * Threads: handlers and multipart callbacks run on an HTTP poll thread and must never block
 * (no sandbox runs, no sleeps, no slow disk or network I/O): anything long is deferred. The
 * deferred-completion and cancel functions are the only ones here that other threads may call.
 * See DESIGN.md "HTTP threading model". */
#ifndef KILN_HTTP_HTTP_H
#define KILN_HTTP_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "http/auth.h"
#include "util/err.h"

struct http_req;
struct http_deferred;

/* A handler: answer req with one http_reply_*() call or defer it with http_req_defer(). The
 * request, its body and its parameters are valid until the answer is sent. */
typedef void (*http_handler_fn)(struct http_req *req);

/* How the http layer reads a route's request body before calling its handler. */
enum http_body {
    HTTP_BODY_NONE, /* no body expected; any body sent is discarded */
    HTTP_BODY_JSON, /* application/json, ≤ max_body, parsed with jansson → http_req_json() */
    HTTP_BODY_RAW,  /* any content type, ≤ max_body, kept whole → http_req_body() */
    HTTP_BODY_MULTIPART, /* multipart/form-data streamed part by part to route->multipart */
};

/* Route flags. */
#define HTTP_ROUTE_NO_AUTH 1u /* served without a credential (health, docs) */
#define HTTP_ROUTE_HIDDEN  2u /* only registered when test routes are enabled */

/* Callbacks of a multipart route, called on the poll thread as the body arrives; nothing is
 * buffered whole. A callback returning an error stops the parsing: the rest of the body is
 * discarded and the client gets that error (eb's message) instead of the handler's answer.
 * Per-request state goes into http_req_set_state(). */
struct http_multipart_ops {
    /* A part starts. field is its form name, filename NULL for a plain field, content_type NULL
     * when absent. All borrowed for the call. */
    enum kiln_err (*part_begin)(struct http_req *req, const char *field, const char *filename,
                                const char *content_type, struct errbuf *eb);
    /* The next len bytes of the current part (borrowed for the call). */
    enum kiln_err (*part_data)(struct http_req *req, const char *data, size_t len,
                               struct errbuf *eb);
    /* The current part is complete. */
    enum kiln_err (*part_end)(struct http_req *req, struct errbuf *eb);
};

/* One route. Patterns are relative to the mount point: literal segments and `{name}` segments
 * matching exactly one non-empty path segment (percent-decoded; never "." or ".."; never holding
 * '/' or NUL). */
struct http_route {
    const char *method;  /* "GET", "POST", "PUT", "DELETE", "PATCH"; GET also answers HEAD */
    const char *pattern; /* e.g. "/files/{session_id}/{file_id}" */
    http_handler_fn handler;
    unsigned flags; /* HTTP_ROUTE_* */
    enum http_body body;
    size_t max_body; /* bytes; 0 = MAX_REQUEST_BODY_KB for JSON and RAW, unlimited multipart */
    const struct http_multipart_ops *multipart; /* required for HTTP_BODY_MULTIPART */
};

/* Where a group is mounted. */
enum http_mount {
    HTTP_MOUNT_API,   /* at "" and at "/v1" */
    HTTP_MOUNT_ADMIN, /* at "/api/v1/admin"; auth_check() gets admin_route = true */
};

/* A table of routes and its mount point. Rows are borrowed for the server's life. */
struct http_route_group {
    enum http_mount mount;
    const struct http_route *routes;
    size_t count;
};

/* ---- the request (poll thread only, valid until the answer is sent) ---- */

/* "GET", "POST", ... (HEAD is reported as HEAD). */
const char *http_req_method(const struct http_req *req);
/* The raw (undecoded) path, without the query string. */
const char *http_req_path(const struct http_req *req);
/* The percent-decoded value of path parameter `name`; NULL when the route has none. */
const char *http_req_param(const struct http_req *req, const char *name);
/* The percent-decoded value of query parameter `name` ('+' is a space); NULL when absent or
 * badly encoded. Borrowed until the answer is sent. */
const char *http_req_query(struct http_req *req, const char *name);
/* A request header, case-insensitive name; NULL when absent. */
const char *http_req_header(struct http_req *req, const char *name);
/* The client's address as text ("127.0.0.1", "::1") and as a sockaddr. */
const char *http_req_client_ip(const struct http_req *req);
const struct sockaddr *http_req_peer(const struct http_req *req);
/* The request id (the client's X-Request-ID when acceptable, else generated). */
const char *http_req_id(const struct http_req *req);
/* Who the caller is; NULL on routes with HTTP_ROUTE_NO_AUTH. */
const struct auth_result *http_req_auth(const struct http_req *req);
/* The parsed JSON body of an HTTP_BODY_JSON route (never NULL there). Borrowed. */
json_t *http_req_json(const struct http_req *req);
/* The raw body of an HTTP_BODY_RAW route; *len receives its size. Borrowed. */
const void *http_req_body(const struct http_req *req, size_t *len);
/* The application context given to http_server_new() (the later `struct kiln *`). */
void *http_req_app(const struct http_req *req);
/* The server's configuration (borrowed, read-only, valid for the server's life). */
const struct kiln_config *http_req_config(const struct http_req *req);
/* Whether the server is shutting down (/ready answers 503 then). */
bool http_req_draining(const struct http_req *req);
/* Per-request state of the handler (e.g. an upload in progress): freed with free_fn (may be
 * NULL) when the request ends, whichever way it ends. Replaces and frees a previous state. */
void http_req_set_state(struct http_req *req, void *state, void (*free_fn)(void *));
void *http_req_state(const struct http_req *req);

/* ---- answering (poll thread, once per request) ---- */

/* Add a header to the coming answer (copied). Call before the http_reply_*() call. */
void http_reply_header(struct http_req *req, const char *name, const char *value);
/* Answer status with a JSON body; takes ownership of body (NULL = empty body). */
void http_reply_json(struct http_req *req, int status, json_t *body);
/* Answer status with len bytes of body (copied) of the given content type. */
void http_reply_bytes(struct http_req *req, int status, const char *content_type, const void *body,
                      size_t len);
/* Answer with the contract's error body {"error","error_type","details","request_id",
 * "timestamp"} and err's status. details (a JSON array of {field,message,code}, or NULL) is
 * taken over. */
void http_reply_error(struct http_req *req, enum kiln_err err, const char *message,
                      json_t *details);
/* Answer 429 with Retry-After, X-RateLimit-Limit/Remaining/Reset and retry_after_seconds. */
void http_reply_rate_limited(struct http_req *req, const char *message, long retry_after_s,
                             long limit);
/* Answer with the bytes of an open regular file (takes ownership of fd, closed when sent) of
 * size bytes. Honours a single "Range: bytes=a-b" (206, or 416). content_type and
 * content_disposition (NULL = none) are copied. Sent with sendfile where possible. */
void http_reply_file(struct http_req *req, int fd, uint64_t size, const char *content_type,
                     const char *content_disposition);
/* http_reply_file()'s parser of a Range header h (NULL = none) against a file of size bytes,
 * exposed for the unit tests and fuzz/range_fuzz.c. Returns 1 when a satisfiable single
 * "bytes=a-b", "bytes=a-" or "bytes=-n" was given (*off and *len set, within the file), 0 when
 * there is none or a form we do not serve (several ranges, bad syntax: the whole file is sent,
 * as RFC 9110 permits), -1 when unsatisfiable (416). */
int http_parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len);

/* ---- deferred answers ---- */

/* Called once, on an internal thread, when the client went away or the server is stopping
 * while a deferred request is pending. Must not block and must not call http_deferred_*()
 * (an internal lock is held): it is a cue, e.g. to kill the sandbox; the job still completes
 * the handle afterwards. */
typedef void (*http_cancel_fn)(void *arg);
/* A job run on the http worker pool (see http_req_defer_run()). It must end by completing d. */
typedef void (*http_work_fn)(struct http_deferred *d, void *arg);

/* Defer the answer: the connection is parked (costing no thread) until another thread
 * completes the returned handle with http_deferred_reply_*(). If the answer takes longer than
 * ~3 s the http layer commits to status 200, sends the headers and then one space every 3 s
 * (api-contract.md "whitespace keep-alive"); the JSON given later follows the spaces, whatever
 * status it was given. on_cancel (may be NULL) fires when the client disconnects.
 * The handle stays valid until it is completed; exactly one completion call is required, even
 * after cancellation. The request accessors must not be used after this call returns: copy
 * what the job needs first. Never NULL. */
struct http_deferred *http_req_defer(struct http_req *req, http_cancel_fn on_cancel,
                                     void *cancel_arg);
/* Defer and run work(d, arg) on the http worker pool (HTTP_THREADS-independent, sized by
 * MAX_CONCURRENT_EXECUTIONS, queue bounded by MAX_QUEUED_EXECUTIONS → 503 answered here). */
void http_req_defer_run(struct http_req *req, http_work_fn work, void *arg,
                        http_cancel_fn on_cancel);

/* Complete d with status and a JSON body (taken over). Any thread; ends d. */
void http_deferred_reply_json(struct http_deferred *d, int status, json_t *body);
/* Complete d with the contract's error body. Any thread; ends d. */
void http_deferred_reply_error(struct http_deferred *d, enum kiln_err err, const char *message);
/* Whether the client has gone away (the answer will be dropped). Any thread. */
bool http_deferred_cancelled(struct http_deferred *d);
/* An eventfd that becomes readable when the client has gone away (poll it alongside a sandbox).
 * Borrowed; valid until d is completed. Any thread. */
int http_deferred_cancel_fd(struct http_deferred *d);
/* The request id of the deferred request (for logs). Borrowed until d is completed. */
const char *http_deferred_request_id(struct http_deferred *d);

#endif
