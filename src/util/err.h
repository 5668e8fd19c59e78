/* One error convention for all of kiln (STYLE.md rule 3).
 *
 * Fallible functions return enum kiln_err (0 = OK) and hand results out through pointer
 * parameters; the human-readable reason goes into a caller-supplied struct errbuf. Leaves never
 * log: the request boundary logs once and turns the error into the contract's JSON body. */
#ifndef KILN_UTIL_ERR_H
#define KILN_UTIL_ERR_H

#include <stddef.h>

/* The error kinds. Each maps to one HTTP status and error_type at the API boundary
 * (see kiln_err_http_status()). Keep KILN_OK zero. */
enum kiln_err {
    KILN_OK = 0,
    KILN_ERR_INVALID,      /* bad input from a caller: 400 */
    KILN_ERR_UNAUTHORIZED, /* missing or wrong credentials: 401 */
    KILN_ERR_FORBIDDEN,    /* authenticated but not allowed: 403 */
    KILN_ERR_NOT_FOUND,    /* 404 */
    KILN_ERR_CONFLICT,     /* 409 */
    KILN_ERR_TOO_LARGE,    /* a size or count limit: 413 */
    KILN_ERR_MEDIA_TYPE,   /* wrong content type: 415 */
    KILN_ERR_MALFORMED,    /* body cannot be parsed: 422 */
    KILN_ERR_RATE_LIMITED, /* 429 */
    KILN_ERR_UNAVAILABLE,  /* dependency down, draining, queue full: 503 */
    KILN_ERR_IO,           /* local I/O failure: 500 */
    KILN_ERR_NOMEM,        /* 500 */
    KILN_ERR_INTERNAL,     /* a bug or unexpected state: 500 */
    KILN_ERR__COUNT
};

/* A caller-owned buffer for the reason of a failure. Fill it with errbuf_set(); a function that
 * returns KILN_OK leaves it untouched. */
struct errbuf {
    char msg[512];
};

/* Format a reason into eb (truncated to fit; eb may be NULL). Returns err, so that leaves can
 * write `return errbuf_set(eb, KILN_ERR_INVALID, "...", ...);`. */
enum kiln_err errbuf_set(struct errbuf *eb, enum kiln_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear eb to the empty string (eb may be NULL). */
void errbuf_clear(struct errbuf *eb);

/* Stable snake_case name of an error kind, e.g. "not_found". Never NULL. */
const char *kiln_err_name(enum kiln_err err);

/* The HTTP status the API answers for err (200 for KILN_OK). */
int kiln_err_http_status(enum kiln_err err);

#endif
