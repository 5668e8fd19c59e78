/* JWT (JWS compact) verification with OpenSSL 3 EVP and jansson (see jwt.h for the policy). */
#include "http/jwt.h"

#include <jansson.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "http/jwt_keys.h"
#include "util/base64.h"
#include "util/xmalloc.h"

/* Most `aud` array elements looked at. */
#define JWT_MAX_AUD 64
/* NumericDate values beyond this are nonsense and would overflow the arithmetic below. */
#define JWT_MAX_TIME 1e15

/* The algorithms kiln verifies: one row each. Everything else (none, HS*, ES*, PS*...) is
 * refused before any key is touched. */
static const struct jwt_alg {
    const char *name;
    enum jwt_kty kty;
    const char *digest; /* NULL: the algorithm hashes internally (Ed25519) */
} jwt_algs[] = {
    {"EdDSA", JWT_KTY_ED25519, NULL},
    {"RS256", JWT_KTY_RSA, "SHA256"},
};

static const struct jwt_alg *jwt_alg_find(const char *name)
{
    for (size_t i = 0; i < sizeof jwt_algs / sizeof jwt_algs[0]; i++)
        if (strcmp(jwt_algs[i].name, name) == 0)
            return &jwt_algs[i];
    return NULL;
}

bool jwt_is_candidate(const char *token)
{
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;

    return d2 != NULL && strchr(d2 + 1, '.') == NULL;
}

/* Decode one base64url segment into a fresh buffer (NUL-terminated for convenience). */
static bool jwt_segment(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
    size_t cap = base64_decoded_max(len) + 1;

    *out = xmalloc(cap);
    if (len == 0 || !base64_decode(BASE64_URL, s, len, *out, cap - 1, out_len)) {
        free(*out);
        *out = NULL;
        return false;
    }
    (*out)[*out_len] = '\0';
    return true;
}

/* A NumericDate claim as whole seconds. false when absent (*present = false) or not a number
 * in range. */
static bool jwt_time_claim(json_t *payload, const char *name, bool *present, long long *out)
{
    json_t *v = json_object_get(payload, name);
    double d;

    *present = v != NULL;
    if (v == NULL)
        return false;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v))
        d = json_real_value(v);
    else
        return false;
    if (!isfinite(d) || d < -JWT_MAX_TIME || d > JWT_MAX_TIME)
        return false;
    *out = (long long)floor(d);
    return true;
}

/* v is exactly the string want. Length-aware, because JSON strings may hold "\u0000" and
 * "librechat\u0000x" must not pass for "librechat". */
static bool jwt_str_eq(json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           memcmp(json_string_value(v), want, json_string_length(v)) == 0;
}

static bool jwt_audience_ok(json_t *aud, const char *want)
{
    size_t i;
    json_t *v;

    if (json_is_string(aud))
        return jwt_str_eq(aud, want);
    if (!json_is_array(aud) || json_array_size(aud) > JWT_MAX_AUD)
        return false;
    json_array_foreach(aud, i, v)
    {
        if (jwt_str_eq(v, want))
            return true;
    }
    return false;
}

/* A subject safe to carry into logs and storage keys: no control characters. */
static bool jwt_subject_ok(const char *s, size_t len, size_t cap)
{
    if (len == 0 || len >= cap)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

enum kiln_err jwt_check_claims(const struct jwt_policy *p, const char *json, size_t len,
                               long long now, struct jwt_claims *out, struct errbuf *eb)
{
    json_error_t jerr;
    json_t *payload = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *sub;
    bool have_exp, have_iat, have_nbf;
    long long exp = 0, iat = 0, nbf = 0;
    enum kiln_err rc = KILN_ERR_UNAUTHORIZED;

    if (!json_is_object(payload)) {
        errbuf_set(eb, rc, "Malformed token");
        goto out;
    }
    if (!jwt_str_eq(json_object_get(payload, "iss"), p->issuer)) {
        errbuf_set(eb, rc, "Token issuer mismatch");
        goto out;
    }
    if (!jwt_audience_ok(json_object_get(payload, "aud"), p->audience)) {
        errbuf_set(eb, rc, "Token audience mismatch");
        goto out;
    }
    if (!jwt_time_claim(payload, "exp", &have_exp, &exp) ||
        !jwt_time_claim(payload, "iat", &have_iat, &iat) ||
        (!jwt_time_claim(payload, "nbf", &have_nbf, &nbf) && have_nbf)) {
        errbuf_set(eb, rc, "Token lacks valid exp/iat/nbf claims");
        goto out;
    }
    if (now >= exp + p->leeway_s) {
        errbuf_set(eb, rc, "Token expired");
        goto out;
    }
    if (have_nbf && now + p->leeway_s < nbf) {
        errbuf_set(eb, rc, "Token not yet valid");
        goto out;
    }
    if (iat > now + p->leeway_s) {
        errbuf_set(eb, rc, "Token issued in the future");
        goto out;
    }
    if (exp <= iat || exp - iat > p->max_lifetime_s) {
        errbuf_set(eb, rc, "Token lifetime too long");
        goto out;
    }
    sub = json_object_get(payload, "sub");
    if (!json_is_string(sub) ||
        !jwt_subject_ok(json_string_value(sub), json_string_length(sub), sizeof out->sub)) {
        errbuf_set(eb, rc, "Token lacks a valid sub claim");
        goto out;
    }
    memcpy(out->sub, json_string_value(sub), json_string_length(sub) + 1);
    out->exp = exp;
    out->iat = iat;
    out->nbf = have_nbf ? nbf : 0;
    rc = KILN_OK;
out:
    json_decref(payload);
    return rc;
}

/* Verify sig over the signing input with one key. */
static bool jwt_verify_with(const struct jwt_key *k, const struct jwt_alg *alg,
                            const unsigned char *tbs, size_t tbs_len, const unsigned char *sig,
                            size_t sig_len)
{
    EVP_MD_CTX *ctx;
    bool ok = false;

    /* Exact signature sizes: 64 bytes for Ed25519, the modulus size for RSA. */
    if (sig_len != (size_t)EVP_PKEY_get_size(k->pkey))
        return false;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return false;
    if (EVP_DigestVerifyInit_ex(ctx, NULL, alg->digest, NULL, NULL, k->pkey, NULL) == 1 &&
        EVP_DigestVerify(ctx, sig, sig_len, tbs, tbs_len) == 1)
        ok = true;
    EVP_MD_CTX_free(ctx);
    /* A failed verification leaves entries on this thread's OpenSSL error queue; drop them so
     * that later, unrelated OpenSSL users on the thread (libcurl) do not report them. */
    ERR_clear_error();
    return ok;
}

/* Parse the protected header: the algorithm row and the optional kid. */
static enum kiln_err jwt_parse_header(const unsigned char *hdr, size_t len,
                                      const struct jwt_alg **alg, char *kid, size_t kid_cap,
                                      struct errbuf *eb)
{
    json_error_t jerr;
    json_t *h = json_loadb((const char *)hdr, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *jkid;
    const char *name;
    enum kiln_err rc = KILN_ERR_UNAUTHORIZED;

    if (!json_is_object(h)) {
        errbuf_set(eb, rc, "Malformed token");
        goto out;
    }
    name = json_string_value(json_object_get(h, "alg"));
    *alg = name != NULL && strlen(name) == json_string_length(json_object_get(h, "alg"))
               ? jwt_alg_find(name)
               : NULL;
    if (*alg == NULL) {
        errbuf_set(eb, rc, "Unsupported token algorithm");
        goto out;
    }
    /* RFC 7515 4.1.11: a verifier must reject extensions it does not understand; we know none. */
    if (json_object_get(h, "crit") != NULL) {
        errbuf_set(eb, rc, "Unsupported token extension");
        goto out;
    }
    jkid = json_object_get(h, "kid");
    kid[0] = '\0';
    if (jkid != NULL) {
        if (!json_is_string(jkid) || json_string_length(jkid) >= kid_cap ||
            json_string_length(jkid) == 0 ||
            strlen(json_string_value(jkid)) != json_string_length(jkid)) {
            errbuf_set(eb, rc, "Malformed token");
            goto out;
        }
        memcpy(kid, json_string_value(jkid), json_string_length(jkid) + 1);
    }
    rc = KILN_OK;
out:
    json_decref(h);
    return rc;
}

enum kiln_err jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *p, const char *token,
                         long long now, struct jwt_claims *out, struct errbuf *eb)
{
    size_t len = strnlen(token, JWT_MAX_TOKEN_LEN + 1);
    const char *d1, *d2;
    unsigned char *hdr = NULL, *body = NULL, *sig = NULL;
    size_t hdr_len = 0, body_len = 0, sig_len = 0;
    const struct jwt_alg *alg = NULL;
    char kid[JWT_MAX_KID + 1];
    bool verified = false;
    enum kiln_err rc = KILN_ERR_UNAUTHORIZED;

    if (len > JWT_MAX_TOKEN_LEN) {
        errbuf_set(eb, rc, "Token too long");
        goto out;
    }
    if (!jwt_is_candidate(token)) {
        errbuf_set(eb, rc, "Malformed token");
        goto out;
    }
    d1 = strchr(token, '.');
    d2 = strchr(d1 + 1, '.');
    if (!jwt_segment(token, (size_t)(d1 - token), &hdr, &hdr_len) ||
        !jwt_segment(d1 + 1, (size_t)(d2 - d1 - 1), &body, &body_len) ||
        !jwt_segment(d2 + 1, (size_t)(token + len - d2 - 1), &sig, &sig_len)) {
        errbuf_set(eb, rc, "Malformed token");
        goto out;
    }
    rc = jwt_parse_header(hdr, hdr_len, &alg, kid, sizeof kid, eb);
    if (rc != KILN_OK)
        goto out;
    rc = KILN_ERR_UNAUTHORIZED;
    /* Only keys of the algorithm's own type are tried, so an RS256 header can never make an
     * Ed25519 key (or the reverse) do something it was not meant for; a kid narrows further. */
    for (size_t i = 0; ks != NULL && i < ks->count && !verified; i++) {
        const struct jwt_key *k = &ks->keys[i];
        if (k->kty != alg->kty)
            continue;
        if (kid[0] != '\0' && k->kid != NULL && strcmp(kid, k->kid) != 0)
            continue;
        verified = jwt_verify_with(k, alg, (const unsigned char *)token, (size_t)(d2 - token), sig,
                                   sig_len);
    }
    if (!verified) {
        errbuf_set(eb, rc, "Invalid token signature");
        goto out;
    }
    rc = jwt_check_claims(p, (const char *)body, body_len, now, out, eb);
out:
    free(hdr);
    free(body);
    free(sig);
    return rc;
}
