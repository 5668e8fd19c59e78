/* Streaming SHA-256 (OpenSSL's EVP inside), for etags and change detection of files that are
 * never held in memory whole.
 *
 * Thread safety: a struct sha256 belongs to one thread. */
#ifndef KILN_UTIL_SHA256_H
#define KILN_UTIL_SHA256_H

#include <stddef.h>

/* Lower-case hex digest plus NUL. */
#define SHA256_HEX_BUF 65

struct sha256;

/* A fresh hash. Never NULL (aborts on OOM). Caller frees with sha256_free(). */
struct sha256 *sha256_new(void);

/* Add len bytes. */
void sha256_update(struct sha256 *h, const void *buf, size_t len);

/* Finish into out (lower-case hex) and reset h for reuse. */
void sha256_final_hex(struct sha256 *h, char out[SHA256_HEX_BUF]);

/* NULL is a no-op. */
void sha256_free(struct sha256 *h);

#endif
