/* Strict RFC 4648 base64: one text, one decoding (see base64.h for why). */
#include "util/base64.h"

#include <stdint.h>

static const char base64_std_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char base64_url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of c in variant v, or -1 when c is not in its alphabet. A table-free mapping,
 * so that nothing global needs initialising. */
static int base64_value(enum base64_variant v, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (v == BASE64_STD) {
        if (c == '+')
            return 62;
        if (c == '/')
            return 63;
    } else {
        if (c == '-')
            return 62;
        if (c == '_')
            return 63;
    }
    return -1;
}

size_t base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

size_t base64_encoded_size(size_t len)
{
    return (len + 2) / 3 * 4 + 1;
}

bool base64_decode(enum base64_variant v, const char *in, size_t len, unsigned char *out,
                   size_t out_cap, size_t *out_len)
{
    size_t n = 0, data_len = len;
    uint32_t acc = 0;
    unsigned bits = 0;

    if (v == BASE64_STD) {
        /* Padding is required and only at the end: "xx==" or "xxx=". */
        if (len % 4 != 0)
            return false;
        if (len > 0 && in[len - 1] == '=')
            data_len--;
        if (len > 1 && in[len - 2] == '=') {
            if (data_len != len - 1)
                return false;
            data_len--;
        }
    } else if (len % 4 == 1) {
        return false; /* no valid encoding leaves a single character over */
    }
    for (size_t i = 0; i < data_len; i++) {
        int val = base64_value(v, (unsigned char)in[i]);
        if (val < 0)
            return false;
        acc = (acc << 6) | (uint32_t)val;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= out_cap)
                return false;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or two texts would decode to the same bytes. */
    if (acc != 0)
        return false;
    if (v == BASE64_STD && len - data_len != (3 - (n % 3)) % 3)
        return false;
    *out_len = n;
    return true;
}

bool base64_encode(enum base64_variant v, const unsigned char *in, size_t len, char *out,
                   size_t out_cap)
{
    const char *chars = v == BASE64_STD ? base64_std_chars : base64_url_chars;
    size_t o = 0;

    if (out_cap < base64_encoded_size(len))
        return false;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t b = (uint32_t)in[i] << 16;
        size_t rem = len - i;
        if (rem > 1)
            b |= (uint32_t)in[i + 1] << 8;
        if (rem > 2)
            b |= in[i + 2];
        out[o++] = chars[(b >> 18) & 63];
        out[o++] = chars[(b >> 12) & 63];
        if (rem > 1)
            out[o++] = chars[(b >> 6) & 63];
        else if (v == BASE64_STD)
            out[o++] = '=';
        if (rem > 2)
            out[o++] = chars[b & 63];
        else if (v == BASE64_STD)
            out[o++] = '=';
    }
    out[o] = '\0';
    return true;
}
