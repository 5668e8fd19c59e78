#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>

/* Indexed by enum kiln_err: name for logs and error_type, HTTP status for the API boundary. */
static const struct {
    const char *name;
    int status;
} err_table[KILN_ERR__COUNT] = {
    [KILN_OK] = {"ok", 200},
    [KILN_ERR_INVALID] = {"validation_error", 400},
    [KILN_ERR_UNAUTHORIZED] = {"authentication_error", 401},
    [KILN_ERR_FORBIDDEN] = {"authorization_error", 403},
    [KILN_ERR_NOT_FOUND] = {"not_found", 404},
    [KILN_ERR_CONFLICT] = {"conflict", 409},
    [KILN_ERR_TOO_LARGE] = {"payload_too_large", 413},
    [KILN_ERR_MEDIA_TYPE] = {"unsupported_media_type", 415},
    [KILN_ERR_MALFORMED] = {"malformed_request", 422},
    [KILN_ERR_RATE_LIMITED] = {"rate_limit_exceeded", 429},
    [KILN_ERR_UNAVAILABLE] = {"service_unavailable", 503},
    [KILN_ERR_IO] = {"io_error", 500},
    [KILN_ERR_NOMEM] = {"out_of_memory", 500},
    [KILN_ERR_INTERNAL] = {"internal_error", 500},
};

enum kiln_err errbuf_set(struct errbuf *eb, enum kiln_err err, const char *fmt, ...)
{
    va_list ap;

    if (eb == NULL)
        return err;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
    va_end(ap);
    return err;
}

void errbuf_clear(struct errbuf *eb)
{
    if (eb != NULL)
        eb->msg[0] = '\0';
}

const char *kiln_err_name(enum kiln_err err)
{
    if ((unsigned)err >= KILN_ERR__COUNT)
        return "internal_error";
    return err_table[err].name;
}

int kiln_err_http_status(enum kiln_err err)
{
    if ((unsigned)err >= KILN_ERR__COUNT)
        return 500;
    return err_table[err].status;
}
