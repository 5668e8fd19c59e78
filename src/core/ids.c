#include "core/ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

/* The nanoid alphabet: 64 symbols, so a random byte's low 6 bits index it uniformly. */
static const char ids_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

enum kiln_err ids_new(char out[IDS_BUF], struct errbuf *eb)
{
    unsigned char raw[IDS_LEN];
    size_t got = 0;

    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errbuf_set(eb, KILN_ERR_IO, "getrandom: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < IDS_LEN; i++)
        out[i] = ids_alphabet[raw[i] & 63u];
    out[IDS_LEN] = '\0';
    return KILN_OK;
}

static bool ids_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool ids_valid_n(const char *s, size_t len)
{
    if (s == NULL || len != IDS_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!ids_char_ok((unsigned char)s[i]))
            return false;
    return true;
}

bool ids_valid(const char *s)
{
    return s != NULL && ids_valid_n(s, strnlen(s, IDS_LEN + 1));
}
