/* libFuzzer driver of the router over kiln's real route table (api_route_groups): whatever raw
 * path a client sends, matching stays inside struct router_match's buffer, and a path handed to
 * a handler never carries a parameter that is empty, holds a '/' or is a dot segment (the guard
 * against traversal through path parameters). Also router_pct_decode() on its own: it never
 * writes past len + 1 bytes, and a decoded string has no NUL inside. Input: one byte choosing
 * the method, then the path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The router, built once: read-only afterwards, as in the server. */
static struct router *fuzz_router(void)
{
    static struct router *r;
    struct http_route_group groups[32];
    size_t n;

    if (r != NULL)
        return r;
    r = router_new();
    n = api_route_groups(groups, 32);
    for (size_t g = 0; g < n && g < 32; g++)
        for (size_t i = 0; i < groups[g].count; i++)
            if (router_add(r, groups[g].mount, &groups[g].routes[i], NULL) != KILN_OK)
                abort();
    return r;
}

static void check_decode(const char *s, size_t len)
{
    char *dst = malloc(len + 1);

    if (dst == NULL)
        return;
    for (int plus = 0; plus < 2; plus++)
        if (router_pct_decode(s, len, dst, plus != 0) && strlen(dst) > len)
            abort();
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};
    struct router_match m;
    char allow[96];
    const char *method;
    char *path;
    enum router_status st;

    if (size < 1)
        return 0;
    method = methods[data[0] % (sizeof methods / sizeof methods[0])];
    path = malloc(size);
    if (path == NULL)
        return 0;
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    check_decode(path, size - 1);
    st = router_match(fuzz_router(), method, path, &m, allow, sizeof allow);
    if (strlen(path) > ROUTER_PATH_MAX && st != ROUTER_TOO_LONG)
        abort();
    if (st == ROUTER_FOUND) {
        if (m.route == NULL || m.nparams > ROUTER_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < m.nparams; i++) {
            const char *v = m.values[i];
            if (v < m.buf || v >= m.buf + sizeof m.buf || v[0] == '\0' || strchr(v, '/') != NULL ||
                strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
                abort();
        }
    }
    if (st == ROUTER_METHOD_NOT_ALLOWED && strstr(allow, "OPTIONS") == NULL)
        abort();
    free(path);
    return 0;
}
