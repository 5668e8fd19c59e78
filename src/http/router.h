/* Route matching (no HTTP library types): a table of (mount prefix, struct http_route) entries
 * matched against a raw request path. Paths are split on '/', each segment percent-decoded
 * strictly: bad escapes, NUL, "." and ".." segments and decoded '/' in a segment are refused
 * before any handler sees them, which is what stops traversal through path parameters.
 *
 * Thread safety: built at start-up, then read-only; router_match() may run on any thread. */
#ifndef KILN_HTTP_ROUTER_H
#define KILN_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"
#include "util/err.h"

#define ROUTER_MAX_PARAMS   8
#define ROUTER_MAX_SEGMENTS 16
#define ROUTER_PATH_MAX     2048 /* longer paths are answered 414 */

/* What router_match() found. */
enum router_status {
    ROUTER_FOUND,
    ROUTER_NOT_FOUND,          /* no pattern matches the path */
    ROUTER_METHOD_NOT_ALLOWED, /* a pattern matches, not with this method; see allow */
    ROUTER_BAD_PATH,           /* refused: bad percent-encoding, NUL, ".", "..", "%2F" */
    ROUTER_TOO_LONG,           /* longer than ROUTER_PATH_MAX */
};

/* A match: the route, its mount, and the decoded parameters (pointing into buf). */
struct router_match {
    const struct http_route *route;
    enum http_mount mount;
    size_t nparams;
    const char *names[ROUTER_MAX_PARAMS];  /* borrowed from the pattern (static) */
    const char *values[ROUTER_MAX_PARAMS]; /* point into buf */
    char buf[ROUTER_PATH_MAX + ROUTER_MAX_SEGMENTS];
};

struct router;

/* An empty router. Caller frees with router_free(). */
struct router *router_new(void);
void router_free(struct router *r);

/* Add route under mount (at "" and "/v1" for HTTP_MOUNT_API, "/api/v1/admin" for admin). The
 * route is borrowed for the router's life. A pattern ending in '/' matches only paths ending in
 * '/' (there is no implicit trailing-slash match). KILN_ERR_INVALID for a malformed pattern. */
enum kiln_err router_add(struct router *r, enum http_mount mount, const struct http_route *route,
                         struct errbuf *eb);

/* Match method and raw_path (no query string). On ROUTER_METHOD_NOT_ALLOWED, allow receives
 * the allowed methods ("GET, HEAD, POST"). HEAD matches GET routes. */
enum router_status router_match(const struct router *r, const char *method, const char *raw_path,
                                struct router_match *m, char *allow, size_t allow_len);

/* Percent-decode src[0..len) into dst (capacity ≥ len + 1, NUL-terminated); plus_space turns
 * '+' into ' ' (query strings). False on a bad escape or a decoded NUL. */
bool router_pct_decode(const char *src, size_t len, char *dst, bool plus_space);

#endif
