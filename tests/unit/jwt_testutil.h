/* Helpers shared by the JWT and auth unit tests: key generation, PEM/JWKS files and token
 * signing with OpenSSL, so that the tests mint their own tokens exactly as LibreChat would. */
#ifndef KILN_TESTS_JWT_TESTUTIL_H
#define KILN_TESTS_JWT_TESTUTIL_H

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/base64.h"
#include "util/xmalloc.h"

static inline EVP_PKEY *tu_gen_ed25519(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static inline EVP_PKEY *tu_gen_rsa(size_t bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
}

/* The SubjectPublicKeyInfo PEM of key, NUL-terminated. Caller frees. */
static inline char *tu_pubkey_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;
    char *out;

    PEM_write_bio_PUBKEY(bio, key);
    n = BIO_get_mem_data(bio, &data);
    out = xstrndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static inline void tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

/* base64url of len bytes. Caller frees. */
static inline char *tu_b64url(const unsigned char *p, size_t len)
{
    size_t cap = base64_encoded_size(len);
    char *out = xmalloc(cap);
    if (!base64_encode(BASE64_URL, p, len, out, cap))
        abort();
    return out;
}

static inline char *tu_b64url_str(const char *s)
{
    return tu_b64url((const unsigned char *)s, strlen(s));
}

/* One JWKS key object for a public key: {"kty":...,"kid":kid,...}. Caller frees. */
static inline char *tu_jwk(EVP_PKEY *key, const char *kid)
{
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
        unsigned char raw[32];
        size_t len = sizeof raw;
        EVP_PKEY_get_raw_public_key(key, raw, &len);
        char *x = tu_b64url(raw, len);
        char *out = xasprintf("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"use\":\"sig\",\"kid\":\"%s\","
                              "\"x\":\"%s\"}",
                              kid, x);
        free(x);
        return out;
    } else {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e);
        unsigned char nb[2048], eb[16];
        int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
        char *ns = tu_b64url(nb, (size_t)nl), *es = tu_b64url(eb, (size_t)el);
        char *out = xasprintf("{\"kty\":\"RSA\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\","
                              "\"e\":\"%s\"}",
                              kid, ns, es);
        free(ns);
        free(es);
        BN_free(n);
        BN_free(e);
        return out;
    }
}

/* header.payload (base64url of the two JSON texts). Caller frees. */
static inline char *tu_signing_input(const char *header, const char *payload)
{
    char *h = tu_b64url_str(header), *p = tu_b64url_str(payload);
    char *out = xasprintf("%s.%s", h, p);
    free(h);
    free(p);
    return out;
}

/* A compact JWS of header/payload signed with key (EdDSA for Ed25519, RS256 for RSA). Caller
 * frees. */
static inline char *tu_sign(EVP_PKEY *key, const char *header, const char *payload)
{
    char *tbs = tu_signing_input(header, payload);
    const char *md = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : "SHA256";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t sig_len = sizeof sig;
    char *s, *out;

    if (EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, key, NULL) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)tbs, strlen(tbs)) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    s = tu_b64url(sig, sig_len);
    out = xasprintf("%s.%s", tbs, s);
    free(s);
    free(tbs);
    return out;
}

/* An HS256 token using secret as the HMAC key (the algorithm-confusion attack). Caller frees. */
static inline char *tu_sign_hs256(const char *secret, const char *payload)
{
    char *tbs = tu_signing_input("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *s, *out;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)tbs, strlen(tbs), mac,
         &mac_len);
    s = tu_b64url(mac, mac_len);
    out = xasprintf("%s.%s", tbs, s);
    free(s);
    free(tbs);
    return out;
}

/* A LibreChat-like payload with times relative to now. Caller frees. */
static inline char *tu_payload(const char *iss, const char *aud_json, long long iat, long long nbf,
                               long long exp)
{
    return xasprintf("{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"user-42\",\"iat\":%lld,\"nbf\":%lld,"
                     "\"exp\":%lld,\"jti\":\"j1\",\"tenant_id\":\"legacy\"}",
                     iss, aud_json, iat, nbf, exp);
}

#endif
