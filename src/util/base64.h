/* Strict base64 decoding of untrusted text (RFC 4648): the standard alphabet for HTTP Basic
 * credentials and the URL-safe, unpadded alphabet of JWTs.
 *
 * "Strict" means one input has one decoding: characters outside the alphabet, misplaced or
 * missing padding and non-zero trailing bits are all rejected, so a token cannot be altered in
 * its unused bits and still verify. Pure functions; any thread. */
#ifndef KILN_UTIL_BASE64_H
#define KILN_UTIL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* The two alphabets. */
enum base64_variant {
    BASE64_STD, /* A-Z a-z 0-9 + /, '=' padding required when the length is not a multiple of 4 */
    BASE64_URL, /* A-Z a-z 0-9 - _, no padding (JWT, RFC 7515 section 2) */
};

/* The most bytes decoding len characters can produce. */
size_t base64_decoded_max(size_t len);

/* Decode len characters of in into out (capacity out_cap, at least base64_decoded_max(len) is
 * always enough). Returns false on any malformed input or when out is too small; *out_len is
 * set on success. out is not NUL-terminated. */
bool base64_decode(enum base64_variant v, const char *in, size_t len, unsigned char *out,
                   size_t out_cap, size_t *out_len);

/* Encode len bytes into out as NUL-terminated text (with padding for BASE64_STD, without for
 * BASE64_URL). out_cap must be at least base64_encoded_size(len). Returns false when too small. */
bool base64_encode(enum base64_variant v, const unsigned char *in, size_t len, char *out,
                   size_t out_cap);

/* Bytes base64_encode() needs for len input bytes, including the NUL. */
size_t base64_encoded_size(size_t len);

#endif
