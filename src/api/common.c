/* Helpers shared by the route groups: who the caller is, JSON text from untrusted bytes, error
 * bodies for deferred answers. */
#include <stdbool.h>
#include <string.h>
#include <sys/time.h>

#include "api/api_int.h"
#include "util/xmalloc.h"

struct kiln_services *api_svc(const struct http_req *req)
{
    return http_req_app(req);
}

const char *api_user(const struct http_req *req, const char *explicit_user)
{
    const struct auth_result *a = http_req_auth(req);

    if (a != NULL && a->method == AUTH_JWT && a->user_id[0] != '\0')
        return a->user_id;
    if (explicit_user != NULL && explicit_user[0] != '\0')
        return explicit_user;
    return NULL;
}

const char *api_user_from_request(struct http_req *req)
{
    const char *u = http_req_header(req, "User-Id");
    const char *kind = http_req_query(req, "kind");

    if ((u == NULL || u[0] == '\0') && kind != NULL && strcmp(kind, "user") == 0)
        u = http_req_query(req, "id");
    return api_user(req, u);
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static size_t api_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

json_t *api_json_text(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    char *buf;
    size_t o = 0;
    json_t *j;

    if (len == 0)
        return json_string("");
    j = json_stringn(s, len);
    if (j != NULL)
        return j;
    buf = xmalloc(len * 3 + 1);
    for (size_t i = 0; i < len;) {
        size_t k = api_utf8_seq(u + i, len - i);
        if (k == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j != NULL ? j : json_string("");
}

json_t *api_error_body(enum kiln_err err, const char *message, const char *request_id)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return json_pack("{s:s, s:s, s:n, s:s, s:f}", "error", message, "error_type",
                     kiln_err_name(err), "details", "request_id", request_id, "timestamp",
                     (double)tv.tv_sec + (double)tv.tv_usec / 1e6);
}

json_t *api_details(const char *field, const char *message, const char *code)
{
    return json_pack("[{s:s, s:s, s:s}]", "field", field, "message", message, "code", code);
}
