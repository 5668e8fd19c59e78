/* libFuzzer driver for the JWT verifier and the parsers around it. The first input byte picks
 * what the rest feeds:
 *   0  a raw token to jwt_verify() against fixed Ed25519 + RSA keys
 *   1  "header-json\npayload-json", signed here with the fixed Ed25519 key, so that the claim
 *      checks behind the signature are reached with authentic tokens
 *   2  a JWKS text to jwt_keyset_add_jwks()
 *   3  a payload text to jwt_check_claims()
 *   4  an Authorization header value to auth_check() (Bearer/Basic/ApiKey parsing)
 *   5  base64 text to both decoders
 * Time is fixed so that runs are reproducible. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "http/auth.h"
#include "http/jwt.h"
#include "util/base64.h"
#include "util/xmalloc.h"

#define FUZZ_NOW 1700000000LL

struct fuzz_ctx {
    EVP_PKEY *ed;
    struct jwt_keyset *ks;
    struct jwt_policy pol;
    struct auth *auth;
};

static const unsigned char fuzz_ed_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};

static const char *fuzz_env(const char *name, void *arg)
{
    (void)arg;
    if (strcmp(name, "API_KEY") == 0)
        return "fuzz-key-0123456789";
    if (strcmp(name, "MASTER_API_KEY") == 0)
        return "fuzz-master-0123456789";
    if (strcmp(name, "AUTH_MAX_FAILURES") == 0)
        return "1000000";
    return NULL;
}

static struct fuzz_ctx *fuzz_init(void)
{
    static struct fuzz_ctx *ctx;
    struct kiln_config *cfg = NULL;
    struct errbuf eb;
    unsigned char pub[32];
    size_t pub_len = sizeof pub;
    EVP_PKEY *rsa, *edpub;
    BIO *bio;
    char *pem = NULL;
    long n;

    if (ctx != NULL)
        return ctx;
    ctx = xcalloc(1, sizeof *ctx);
    ctx->ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, fuzz_ed_seed, 32);
    EVP_PKEY_get_raw_public_key(ctx->ed, pub, &pub_len);
    edpub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, pub_len);
    ctx->ks = jwt_keyset_new();
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, edpub);
    n = BIO_get_mem_data(bio, &pem);
    if (jwt_keyset_add_pem(ctx->ks, pem, (size_t)n, "fuzz-ed", &eb) != KILN_OK)
        abort();
    BIO_free(bio);
    EVP_PKEY_free(edpub);
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    n = BIO_get_mem_data(bio, &pem);
    if (jwt_keyset_add_pem(ctx->ks, pem, (size_t)n, NULL, &eb) != KILN_OK)
        abort();
    BIO_free(bio);
    EVP_PKEY_free(rsa);
    ctx->pol.issuer = "librechat";
    ctx->pol.audience = "codeapi";
    ctx->pol.leeway_s = 30;
    ctx->pol.max_lifetime_s = 300;
    if (config_load(&cfg, NULL, fuzz_env, NULL, &eb) != KILN_OK ||
        auth_new(&ctx->auth, cfg, &eb) != KILN_OK)
        abort();
    config_free(cfg);
    return ctx;
}

/* Mode 1: sign "header\npayload" with the fixed key and verify the result. */
static void fuzz_signed(struct fuzz_ctx *ctx, const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    size_t hl, pl, tl, cap;
    char *tok;
    unsigned char sig[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *md;
    struct jwt_claims cl;
    struct errbuf eb;

    if (nl == NULL)
        return;
    hl = (size_t)(nl - text);
    pl = len - hl - 1;
    cap = base64_encoded_size(hl) + base64_encoded_size(pl) + base64_encoded_size(64) + 2;
    tok = xmalloc(cap);
    base64_encode(BASE64_URL, (const unsigned char *)text, hl, tok, cap);
    tl = strlen(tok);
    tok[tl++] = '.';
    base64_encode(BASE64_URL, (const unsigned char *)nl + 1, pl, tok + tl, cap - tl);
    tl += strlen(tok + tl);
    md = EVP_MD_CTX_new();
    if (EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, ctx->ed, NULL) == 1 &&
        EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)tok, tl) == 1) {
        tok[tl++] = '.';
        base64_encode(BASE64_URL, sig, sig_len, tok + tl, cap - tl);
        (void)jwt_verify(ctx->ks, &ctx->pol, tok, FUZZ_NOW, &cl, &eb);
    }
    EVP_MD_CTX_free(md);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_ctx *ctx = fuzz_init();
    struct jwt_claims cl;
    struct errbuf eb;
    char *text;
    size_t len;

    if (size < 1 || size > 4 * JWT_MAX_TOKEN_LEN)
        return 0;
    len = size - 1;
    text = xstrndup((const char *)data + 1, len); /* stops at an embedded NUL, as C callers do */
    switch (data[0] % 6) {
    case 0:
        (void)jwt_verify(ctx->ks, &ctx->pol, text, FUZZ_NOW, &cl, &eb);
        break;
    case 1:
        fuzz_signed(ctx, (const char *)data + 1, len);
        break;
    case 2: {
        struct jwt_keyset *ks = jwt_keyset_new();
        (void)jwt_keyset_add_jwks(ks, (const char *)data + 1, len, &eb);
        jwt_keyset_free(ks);
        break;
    }
    case 3:
        (void)jwt_check_claims(&ctx->pol, (const char *)data + 1, len, FUZZ_NOW, &cl, &eb);
        break;
    case 4: {
        struct auth_request req = {NULL, text, NULL, NULL, false};
        struct auth_result res;
        long retry;
        (void)auth_check(ctx->auth, &req, &res, &retry, &eb);
        break;
    }
    default: {
        size_t cap = base64_decoded_max(len), out_len;
        unsigned char *out = xmalloc(cap);
        (void)base64_decode(BASE64_STD, (const char *)data + 1, len, out, cap, &out_len);
        (void)base64_decode(BASE64_URL, (const char *)data + 1, len, out, cap, &out_len);
        free(out);
        break;
    }
    }
    free(text);
    return 0;
}
