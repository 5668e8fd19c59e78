#include "util/xmalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void xmalloc_die(const char *what, size_t size)
{
    fprintf(stderr, "kiln: fatal: %s of %zu bytes failed\n", what, size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        xmalloc_die("malloc", size);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p;

    if (size != 0 && n > SIZE_MAX / size)
        xmalloc_die("calloc (overflow)", SIZE_MAX);
    p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        xmalloc_die("calloc", n * size);
    return p;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
    void *np;

    if (size != 0 && n > SIZE_MAX / size)
        xmalloc_die("realloc (overflow)", SIZE_MAX);
    np = realloc(p, (n * size) != 0 ? n * size : 1);
    if (np == NULL)
        xmalloc_die("realloc", n * size);
    return np;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p;

    if (n == SIZE_MAX)
        xmalloc_die("strndup (overflow)", n);
    n = strnlen(s, n);
    p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        xmalloc_die("asprintf", 0);
    return s;
}
