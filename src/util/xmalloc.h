/* Allocation wrappers for long-lived objects (STYLE.md rule 6): they abort on out-of-memory and
 * on size overflow instead of returning NULL, so callers need no failure path for them. Memory
 * whose size is chosen by the network or a sandbox is bounded before it gets here. */
#ifndef KILN_UTIL_XMALLOC_H
#define KILN_UTIL_XMALLOC_H

#include <stddef.h>

/* malloc(size); never NULL (a zero size gets one byte). Caller frees with free(). */
void *xmalloc(size_t size);

/* calloc(n, size) with overflow check; never NULL. Caller frees with free(). */
void *xcalloc(size_t n, size_t size);

/* realloc(p, n * size) with overflow check; never NULL. */
void *xreallocarray(void *p, size_t n, size_t size);

/* strdup(s); s must not be NULL. Caller frees with free(). */
char *xstrdup(const char *s);

/* A copy of the first n bytes of s, NUL-terminated. Caller frees with free(). */
char *xstrndup(const char *s, size_t n);

/* printf into a fresh string. Caller frees with free(). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
