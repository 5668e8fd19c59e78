#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "util/xmalloc.h"

/* One segment of a compiled pattern: a literal, or a parameter capturing any one segment. */
struct router_seg {
    char *text; /* the literal, or the parameter name */
    bool param;
};

struct router_entry {
    const struct http_route *route;
    enum http_mount mount;
    size_t nseg;
    struct router_seg segs[ROUTER_MAX_SEGMENTS];
};

struct router {
    struct router_entry *entries;
    size_t count, cap;
};

/* The prefixes of each mount: a route is reachable under every prefix of its mount. */
static const char *const router_mount_api[] = {"", "/v1", NULL};
static const char *const router_mount_admin[] = {"/api/v1/admin", NULL};

struct router *router_new(void)
{
    return xcalloc(1, sizeof(struct router));
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        for (size_t j = 0; j < r->entries[i].nseg; j++)
            free(r->entries[i].segs[j].text);
    free(r->entries);
    free(r);
}

/* Append the '/'-separated segments of s (starting with '/', or "") to e. */
static enum kiln_err router_compile(struct router_entry *e, const char *s, struct errbuf *eb)
{
    if (*s == '\0')
        return KILN_OK;
    if (*s != '/')
        return errbuf_set(eb, KILN_ERR_INVALID, "route pattern '%s' must start with '/'", s);
    if (strcmp(s, "/") == 0)
        return KILN_OK;
    s++;
    for (;;) {
        size_t len = strcspn(s, "/");
        struct router_seg *seg;

        /* A trailing '/' ("/admin-dashboard/") is a last, empty literal segment: the path must
         * end with '/' too. Anywhere else an empty segment is a mistake. */
        if (len == 0 && (s[0] != '\0' || e->nseg == 0))
            return errbuf_set(eb, KILN_ERR_INVALID, "empty segment in route pattern");
        if (e->nseg == ROUTER_MAX_SEGMENTS)
            return errbuf_set(eb, KILN_ERR_INVALID, "route pattern has too many segments");
        seg = &e->segs[e->nseg++];
        if (s[0] == '{' && s[len - 1] == '}' && len > 2) {
            seg->param = true;
            seg->text = xstrndup(s + 1, len - 2);
        } else {
            seg->param = false;
            seg->text = xstrndup(s, len);
        }
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    return KILN_OK;
}

enum kiln_err router_add(struct router *r, enum http_mount mount, const struct http_route *route,
                         struct errbuf *eb)
{
    const char *const *prefixes = mount == HTTP_MOUNT_ADMIN ? router_mount_admin : router_mount_api;
    enum kiln_err rc = KILN_OK;

    for (size_t p = 0; prefixes[p] != NULL; p++) {
        struct router_entry *e;
        size_t nparams = 0;

        if (r->count == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 32;
            r->entries = xreallocarray(r->entries, r->cap, sizeof *r->entries);
        }
        e = &r->entries[r->count++];
        memset(e, 0, sizeof *e);
        e->route = route;
        e->mount = mount;
        rc = router_compile(e, prefixes[p], eb);
        if (rc == KILN_OK)
            rc = router_compile(e, route->pattern, eb);
        for (size_t j = 0; j < e->nseg; j++)
            nparams += e->segs[j].param;
        if (rc == KILN_OK && nparams > ROUTER_MAX_PARAMS)
            rc = errbuf_set(eb, KILN_ERR_INVALID, "route '%s' has too many parameters",
                            route->pattern);
        if (rc != KILN_OK) {
            for (size_t j = 0; j < e->nseg; j++)
                free(e->segs[j].text);
            r->count--;
            return rc;
        }
    }
    return KILN_OK;
}

static int router_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool router_pct_decode(const char *src, size_t len, char *dst, bool plus_space)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];

        if (c == '%') {
            int hi, lo;

            if (len - i < 3)
                return false;
            hi = router_hex(src[i + 1]);
            lo = router_hex(src[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == '\0')
            return false;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return true;
}

/* The method a route must have to serve method: HEAD is served by GET routes. */
static bool router_method_ok(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Add m (and HEAD after GET) to the comma-separated allow list unless present. */
static void router_allow_add(char *allow, size_t cap, const char *m)
{
    size_t used = strlen(allow);
    const char *p = allow;
    size_t n = strlen(m);

    while ((p = strstr(p, m)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return;
        p += n;
    }
    snprintf(allow + used, cap - used, "%s%s", used ? ", " : "", m);
    if (strcmp(m, "GET") == 0)
        router_allow_add(allow, cap, "HEAD");
}

enum router_status router_match(const struct router *r, const char *method, const char *raw_path,
                                struct router_match *m, char *allow, size_t allow_len)
{
    const char *segs[ROUTER_MAX_SEGMENTS];
    size_t nseg = 0, used = 0, plen = strlen(raw_path);
    const char *s = raw_path;
    bool path_seen = false;

    memset(m, 0, offsetof(struct router_match, buf));
    if (allow_len)
        allow[0] = '\0';
    if (plen > ROUTER_PATH_MAX)
        return ROUTER_TOO_LONG;
    if (*s != '/')
        return ROUTER_BAD_PATH;
    s++;
    /* "/" has no segments; otherwise every '/' separates one (possibly empty) segment. */
    while (plen > 1) {
        size_t len = strcspn(s, "/");
        char *out = m->buf + used;

        if (nseg == ROUTER_MAX_SEGMENTS)
            return ROUTER_NOT_FOUND;
        if (!router_pct_decode(s, len, out, false))
            return ROUTER_BAD_PATH;
        /* A decoded '/' or a dot segment could walk out of whatever the parameter names. */
        if (strchr(out, '/') != NULL || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
            return ROUTER_BAD_PATH;
        segs[nseg++] = out;
        used += strlen(out) + 1;
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    for (size_t i = 0; i < r->count; i++) {
        const struct router_entry *e = &r->entries[i];
        size_t j;

        if (e->nseg != nseg)
            continue;
        for (j = 0; j < nseg; j++) {
            if (e->segs[j].param ? segs[j][0] == '\0' : strcmp(e->segs[j].text, segs[j]) != 0)
                break;
        }
        if (j < nseg)
            continue;
        if (!router_method_ok(e->route->method, method)) {
            path_seen = true;
            if (allow_len)
                router_allow_add(allow, allow_len, e->route->method);
            continue;
        }
        m->route = e->route;
        m->mount = e->mount;
        for (j = 0; j < nseg; j++) {
            if (!e->segs[j].param)
                continue;
            m->names[m->nparams] = e->segs[j].text;
            m->values[m->nparams++] = segs[j];
        }
        return ROUTER_FOUND;
    }
    if (path_seen && allow_len)
        router_allow_add(allow, allow_len, "OPTIONS");
    return path_seen ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}
