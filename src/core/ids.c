#include "core/ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

/* The nanoid alphabet: 64 symbols, so a random byte's low 6 bits index it uniformly. */
static const char ids_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/* Ids drawn per getrandom(2) call: 12 * 21 = 252 bytes, under the 256 that a call returns
 * whole once the pool is initialised. */
#define IDS_BATCH 12

enum kiln_err ids_new_many(char (*out)[IDS_BUF], size_t n, struct errbuf *eb)
{
    unsigned char raw[IDS_BATCH * IDS_LEN];

    for (size_t done = 0; done < n;) {
        size_t k = n - done < IDS_BATCH ? n - done : IDS_BATCH, want = k * IDS_LEN, got = 0;

        while (got < want) {
            ssize_t r = getrandom(raw + got, want - got, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                return errbuf_set(eb, KILN_ERR_IO, "getrandom: %s", strerror(errno));
            }
            got += (size_t)r;
        }
        for (size_t i = 0; i < k; i++, done++) {
            for (size_t c = 0; c < IDS_LEN; c++)
                out[done][c] = ids_alphabet[raw[i * IDS_LEN + c] & 63u];
            out[done][IDS_LEN] = '\0';
        }
    }
    return KILN_OK;
}

enum kiln_err ids_new(char out[IDS_BUF], struct errbuf *eb)
{
    return ids_new_many((char(*)[IDS_BUF])out, 1, eb);
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
