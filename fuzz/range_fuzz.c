/* libFuzzer driver of the Range header parser (http_parse_range): whatever a client sends as
 * Range against whatever file size, an accepted range lies inside the file, and only the
 * strict single-range syntax ("bytes=" then digits "-" [digits], or "-" digits) is ever acted
 * on; anything else means "send the whole file". Input: 8 bytes of file size, then the header. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does h match bytes=DIGITS-[DIGITS] or bytes=-DIGITS exactly? */
static int strict_syntax(const char *h)
{
    size_t a, b;

    if (strncmp(h, "bytes=", 6) != 0)
        return 0;
    h += 6;
    a = strspn(h, "0123456789");
    if (h[a] != '-')
        return 0;
    b = strspn(h + a + 1, "0123456789");
    if (h[a + 1 + b] != '\0')
        return 0;
    return a > 0 || b > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t fsize = 0, off = 0, len = 0;
    char *h;
    int rc;

    if (size < sizeof fsize)
        return 0;
    memcpy(&fsize, data, sizeof fsize);
    /* Small sizes too, not only random 64-bit ones: the edges (0, 1) matter most. */
    if (data[0] & 1)
        fsize &= 0xffff;
    data += sizeof fsize;
    size -= sizeof fsize;
    h = malloc(size + 1);
    if (h == NULL)
        return 0;
    memcpy(h, data, size);
    h[size] = '\0';
    rc = http_parse_range(h, fsize, &off, &len);
    if (rc != 0 && !strict_syntax(h))
        abort();
    if (rc == 1 && (len == 0 || off >= fsize || len > fsize - off))
        abort();
    if (rc < -1 || rc > 1)
        abort();
    free(h);
    return 0;
}
