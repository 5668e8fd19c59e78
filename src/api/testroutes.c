/* Test routes of the http layer itself, mounted only with KILN_TEST_ROUTES=1: they prove the
 * mechanisms later route groups rely on (deferred answers with keep-alive and cancel, streamed
 * multipart, file answers with Range, error bodies) through the real server. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "util/xmalloc.h"

/* Parse a non-negative decimal query value; def when absent, -1 when malformed. */
static long long api_test_num(struct http_req *req, const char *name, long long def)
{
    const char *s = http_req_query(req, name);
    char *end;
    long long v;

    if (s == NULL)
        return def;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    return v;
}

struct api_sleep {
    long long ms;
    char req_id[160];
};

/* The job: wait ms, or less if the client goes away (the cancel eventfd turns readable). */
static void api_test_sleep_job(struct http_deferred *d, void *arg)
{
    struct api_sleep *s = arg;
    struct pollfd pfd = {.fd = http_deferred_cancel_fd(d), .events = POLLIN};
    struct timespec t0, t1;
    int n;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        n = poll(&pfd, 1, (int)s->ms);
    } while (n < 0 && errno == EINTR);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (http_deferred_cancelled(d))
        fprintf(stderr, "kiln: test job %s cancelled\n", s->req_id);
    http_deferred_reply_json(
        d, 200,
        json_pack(
            "{s:I, s:I, s:b}", "slept_ms", (json_int_t)s->ms, "elapsed_ms",
            (json_int_t)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000),
            "cancelled", http_deferred_cancelled(d)));
    free(s);
}

static void api_test_sleep(struct http_req *req)
{
    long long ms = api_test_num(req, "ms", 0);
    struct api_sleep *s;

    if (ms < 0 || ms > 600000) {
        http_reply_error(req, KILN_ERR_INVALID, "ms must be 0..600000",
                         json_pack("[{s:s, s:s, s:s}]", "field", "ms", "message", "out of range",
                                   "code", "range"));
        return;
    }
    s = xcalloc(1, sizeof *s);
    s->ms = ms;
    snprintf(s->req_id, sizeof s->req_id, "%s", http_req_id(req));
    http_req_defer_run(req, api_test_sleep_job, s, NULL);
}

/* Per-request state of the upload counter. */
struct api_upload {
    json_t *parts;
    json_t *cur;
    json_int_t bytes;
};

static void api_upload_free(void *p)
{
    struct api_upload *u = p;

    json_decref(u->parts);
    json_decref(u->cur);
    free(u);
}

static enum kiln_err api_upload_begin(struct http_req *req, const char *field, const char *filename,
                                      const char *ctype, struct errbuf *eb)
{
    struct api_upload *u = http_req_state(req);

    (void)eb;
    if (u == NULL) {
        u = xcalloc(1, sizeof *u);
        u->parts = json_array();
        http_req_set_state(req, u, api_upload_free);
    }
    u->cur =
        json_pack("{s:s, s:s?, s:s?}", "field", field, "filename", filename, "content_type", ctype);
    u->bytes = 0;
    return KILN_OK;
}

static enum kiln_err api_upload_data(struct http_req *req, const char *data, size_t len,
                                     struct errbuf *eb)
{
    struct api_upload *u = http_req_state(req);

    (void)data;
    u->bytes += (json_int_t)len;
    /* A part named "fail" exercises the error path of a streaming route. */
    if (strcmp(json_string_value(json_object_get(u->cur, "field")), "fail") == 0)
        return errbuf_set(eb, KILN_ERR_TOO_LARGE, "part 'fail' refused");
    return KILN_OK;
}

static enum kiln_err api_upload_end(struct http_req *req, struct errbuf *eb)
{
    struct api_upload *u = http_req_state(req);

    (void)eb;
    json_object_set_new(u->cur, "bytes", json_integer(u->bytes));
    json_array_append_new(u->parts, u->cur);
    u->cur = NULL;
    return KILN_OK;
}

static const struct http_multipart_ops api_upload_ops = {api_upload_begin, api_upload_data,
                                                         api_upload_end};

static void api_test_upload(struct http_req *req)
{
    struct api_upload *u = http_req_state(req);

    http_reply_json(req, 200, json_pack("{s:O}", "parts", u ? u->parts : json_array()));
}

static void api_test_echo(struct http_req *req)
{
    const struct auth_result *a = http_req_auth(req);

    http_reply_json(req, 200,
                    json_pack("{s:O, s:i, s:s}", "json", http_req_json(req), "auth_method",
                              a ? (int)a->method : -1, "request_id", http_req_id(req)));
}

static void api_test_params(struct http_req *req)
{
    const char *q = http_req_query(req, "q");

    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:s?}", "a", http_req_param(req, "a"), "b",
                              http_req_param(req, "b"), "q", q));
}

/* A file of `size` bytes (byte i = i % 251) served through http_reply_file(). */
static void api_test_file(struct http_req *req)
{
    long long size = api_test_num(req, "size", 1000);
    char buf[4096];
    int fd;

    if (size < 0 || size > 64 * 1024 * 1024) {
        http_reply_error(req, KILN_ERR_INVALID, "size out of range", NULL);
        return;
    }
    fd = memfd_create("kiln-test", MFD_CLOEXEC);
    if (fd < 0) {
        http_reply_error(req, KILN_ERR_IO, "memfd_create failed", NULL);
        return;
    }
    for (long long off = 0; off < size;) {
        size_t n =
            (size_t)(size - off < (long long)sizeof buf ? size - off : (long long)sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)((off + (long long)i) % 251);
        if (write(fd, buf, n) != (ssize_t)n) {
            close(fd);
            http_reply_error(req, KILN_ERR_IO, "write failed", NULL);
            return;
        }
        off += (long long)n;
    }
    http_reply_file(req, fd, (uint64_t)size, "application/octet-stream",
                    "attachment; filename=\"test.bin\"");
}

/* Answer the error kind named by ?kind= (its snake_case name), or 429 for kind=rate. */
static void api_test_error(struct http_req *req)
{
    const char *kind = http_req_query(req, "kind");

    if (kind != NULL && strcmp(kind, "rate") == 0) {
        http_reply_rate_limited(req, "Rate limit exceeded", 42, 10);
        return;
    }
    for (int e = 1; e < KILN_ERR__COUNT; e++)
        if (kind != NULL && strcmp(kind, kiln_err_name((enum kiln_err)e)) == 0) {
            http_reply_error(
                req, (enum kiln_err)e, "test error",
                json_pack("[{s:s, s:s, s:s}]", "field", "kind", "message", "test", "code", kind));
            return;
        }
    http_reply_error(req, KILN_ERR_INVALID, "unknown kind", NULL);
}

static const char *const api_auth_methods[] = {"none", "trusted", "key", "jwt", "master"};

/* Who the caller is, as the http layer authenticated it. */
static void api_test_whoami(struct http_req *req)
{
    const struct auth_result *a = http_req_auth(req);

    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:s}", "method",
                              a && a->method <= AUTH_MASTER ? api_auth_methods[a->method] : "?",
                              "user_id", a ? a->user_id : "", "key_id", a ? a->key_id : ""));
}

#define T (HTTP_ROUTE_HIDDEN)
const struct http_route api_test_routes[] = {
    {"GET", "/__test/sleep", api_test_sleep, T, HTTP_BODY_NONE, 0, NULL},
    {"POST", "/__test/upload", api_test_upload, T, HTTP_BODY_MULTIPART, 0, &api_upload_ops},
    {"POST", "/__test/echo", api_test_echo, T, HTTP_BODY_JSON, 0, NULL},
    {"GET", "/__test/params/{a}/x/{b}", api_test_params, T, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/__test/file", api_test_file, T, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/__test/error", api_test_error, T | HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"DELETE", "/__test/params/{a}/x/{b}", api_test_params, T, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/__test/whoami", api_test_whoami, T, HTTP_BODY_NONE, 0, NULL},
    {"POST", "/__test/whoami", api_test_whoami, T, HTTP_BODY_JSON, 0, NULL},
};
const size_t api_test_routes_count = sizeof api_test_routes / sizeof api_test_routes[0];

const struct http_route api_test_admin_routes[] = {
    {"GET", "/__test/whoami", api_test_whoami, T, HTTP_BODY_NONE, 0, NULL},
};
const size_t api_test_admin_routes_count =
    sizeof api_test_admin_routes / sizeof api_test_admin_routes[0];
#undef T
