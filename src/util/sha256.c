#include "util/sha256.h"

#include <openssl/evp.h>
#include <stdlib.h>

struct sha256 {
    EVP_MD_CTX *ctx;
};

struct sha256 *sha256_new(void)
{
    struct sha256 *h = malloc(sizeof *h);

    if (h == NULL || (h->ctx = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory: same policy as xmalloc */
    return h;
}

void sha256_update(struct sha256 *h, const void *buf, size_t len)
{
    if (len > 0)
        EVP_DigestUpdate(h->ctx, buf, len);
}

void sha256_final_hex(struct sha256 *h, char out[SHA256_HEX_BUF])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int n = 0;

    EVP_DigestFinal_ex(h->ctx, md, &n);
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void sha256_free(struct sha256 *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}
