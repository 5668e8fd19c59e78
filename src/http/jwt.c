/* JWT (JWS compact) verification with OpenSSL 3 EVP and jansson (see jwt.h for the policy). */
#include "http/jwt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/xmalloc.h"

/* Longest `kid` kept or compared. */
#define JWT_MAX_KID 256
/* Most `aud` array elements looked at. */
#define JWT_MAX_AUD 64
/* NumericDate values beyond this are nonsense and would overflow the arithmetic below. */
#define JWT_MAX_TIME 1e15

enum jwt_kty { JWT_KTY_ED25519, JWT_KTY_RSA };

struct jwt_key {
    EVP_PKEY *pkey;
    enum jwt_kty kty;
    char *kid; /* NULL: matches any token kid */
};

struct jwt_keyset {
    struct jwt_key keys[JWT_MAX_KEYS];
    size_t count;
};

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

struct jwt_keyset *jwt_keyset_new(void)
{
    return xcalloc(1, sizeof(struct jwt_keyset));
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->count; i++) {
        EVP_PKEY_free(ks->keys[i].pkey);
        free(ks->keys[i].kid);
    }
    free(ks);
}

size_t jwt_keyset_count(const struct jwt_keyset *ks)
{
    return ks != NULL ? ks->count : 0;
}

/* Take ownership of pkey into ks after checking its type and size. */
static enum kiln_err jwt_keyset_take(struct jwt_keyset *ks, EVP_PKEY *pkey, const char *kid,
                                     const char *what, struct errbuf *eb)
{
    enum jwt_kty kty;
    int id = EVP_PKEY_get_base_id(pkey);

    if (id == EVP_PKEY_ED25519) {
        kty = JWT_KTY_ED25519;
    } else if (id == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(pkey);
        kty = JWT_KTY_RSA;
        if (bits < JWT_RSA_MIN_BITS || bits > JWT_RSA_MAX_BITS) {
            EVP_PKEY_free(pkey);
            return errbuf_set(eb, KILN_ERR_INVALID, "%s: RSA key of %d bits (allowed %d to %d)",
                              what, bits, JWT_RSA_MIN_BITS, JWT_RSA_MAX_BITS);
        }
    } else {
        EVP_PKEY_free(pkey);
        return errbuf_set(eb, KILN_ERR_INVALID, "%s: key type is neither Ed25519 nor RSA", what);
    }
    if (ks->count >= JWT_MAX_KEYS) {
        EVP_PKEY_free(pkey);
        return errbuf_set(eb, KILN_ERR_INVALID, "%s: more than %d JWT keys", what, JWT_MAX_KEYS);
    }
    ks->keys[ks->count].pkey = pkey;
    ks->keys[ks->count].kty = kty;
    ks->keys[ks->count].kid = kid != NULL ? xstrdup(kid) : NULL;
    ks->count++;
    return KILN_OK;
}

static enum kiln_err jwt_add_pem_named(struct jwt_keyset *ks, const char *pem, size_t len,
                                       const char *kid, const char *what, struct errbuf *eb)
{
    BIO *bio;
    EVP_PKEY *pkey;

    if (len > JWT_MAX_KEY_FILE || len > INT32_MAX)
        return errbuf_set(eb, KILN_ERR_INVALID, "%s: PEM text too large", what);
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return errbuf_set(eb, KILN_ERR_NOMEM, "%s: out of memory", what);
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (pkey == NULL)
        return errbuf_set(eb, KILN_ERR_INVALID, "%s: no readable PUBLIC KEY block", what);
    return jwt_keyset_take(ks, pkey, kid, what, eb);
}

enum kiln_err jwt_keyset_add_pem(struct jwt_keyset *ks, const char *pem, size_t len,
                                 const char *kid, struct errbuf *eb)
{
    return jwt_add_pem_named(ks, pem, len, kid, "PEM key", eb);
}

/* Read a whole regular file of at most JWT_MAX_KEY_FILE bytes. Caller frees *out. */
static enum kiln_err jwt_read_file(const char *path, char **out, size_t *out_len, struct errbuf *eb)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    enum kiln_err rc = KILN_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0)
        return errbuf_set(eb, KILN_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = errbuf_set(eb, KILN_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > JWT_MAX_KEY_FILE) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "%s: larger than %d bytes", path, JWT_MAX_KEY_FILE);
        goto out;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = errbuf_set(eb, KILN_ERR_IO, "%s: read failed", path);
            goto out;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
out:
    close(fd);
    if (rc != KILN_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = n;
    return KILN_OK;
}

enum kiln_err jwt_keyset_add_pem_file(struct jwt_keyset *ks, const char *path, struct errbuf *eb)
{
    char *text = NULL;
    size_t len = 0;
    enum kiln_err rc = jwt_read_file(path, &text, &len, eb);

    if (rc != KILN_OK)
        return rc;
    rc = jwt_add_pem_named(ks, text, len, NULL, path, eb);
    free(text);
    return rc;
}

enum kiln_err jwt_keyset_add_pem_dir(struct jwt_keyset *ks, const char *dir, struct errbuf *eb)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t added = 0;
    enum kiln_err rc = KILN_OK;

    if (d == NULL)
        return errbuf_set(eb, KILN_ERR_IO, "%s: %s", dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char *path;
        if (len <= 4 || strcmp(de->d_name + len - 4, ".pem") != 0 || de->d_name[0] == '.')
            continue;
        path = xasprintf("%s/%s", dir, de->d_name);
        rc = jwt_keyset_add_pem_file(ks, path, eb);
        free(path);
        if (rc != KILN_OK)
            goto out;
        added++;
    }
    if (added == 0)
        rc = errbuf_set(eb, KILN_ERR_INVALID, "%s: no *.pem public keys", dir);
out:
    closedir(d);
    return rc;
}

/* A JWKS member decoded from base64url into a fresh buffer. */
static bool jwt_jwk_b64(json_t *jwk, const char *name, unsigned char **out, size_t *out_len)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    size_t len, cap;

    if (s == NULL)
        return false;
    len = strlen(s);
    cap = base64_decoded_max(len);
    *out = xmalloc(cap);
    if (!base64_decode(BASE64_URL, s, len, *out, cap, out_len) || *out_len == 0) {
        free(*out);
        *out = NULL;
        return false;
    }
    return true;
}

static EVP_PKEY *jwt_jwk_ed25519(json_t *jwk)
{
    unsigned char *x = NULL;
    size_t xlen = 0;
    EVP_PKEY *pkey = NULL;
    const char *crv = json_string_value(json_object_get(jwk, "crv"));

    if (crv == NULL || strcmp(crv, "Ed25519") != 0 || !jwt_jwk_b64(jwk, "x", &x, &xlen))
        goto out;
    if (xlen == 32)
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
out:
    free(x);
    return pkey;
}

static EVP_PKEY *jwt_jwk_rsa(json_t *jwk)
{
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!jwt_jwk_b64(jwk, "n", &n, &nlen) || !jwt_jwk_b64(jwk, "e", &e, &elen))
        goto out;
    if (nlen > JWT_RSA_MAX_BITS / 8 || elen > 8 || nlen > INT32_MAX)
        goto out;
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn_n == NULL || bn_e == NULL || bld == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1)
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

/* Key types a JWKS may hold, with the one algorithm each signs with here. */
static const struct jwt_jwk_type {
    const char *kty;
    const char *alg;
    EVP_PKEY *(*load)(json_t *jwk);
} jwt_jwk_types[] = {
    {"OKP", "EdDSA", jwt_jwk_ed25519},
    {"RSA", "RS256", jwt_jwk_rsa},
};

/* Members that only private keys carry: a JWKS handed to a verifier must not hold them. */
static const char *const jwt_jwk_private[] = {"d", "p", "q", "dp", "dq", "qi", "k"};

enum kiln_err jwt_keyset_add_jwks(struct jwt_keyset *ks, const char *json, size_t len,
                                  struct errbuf *eb)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *keys = json_object_get(root, "keys");
    size_t i, added = 0;
    json_t *jwk;
    enum kiln_err rc = KILN_OK;

    if (root == NULL || !json_is_array(keys)) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "JWKS is not a JSON object with a \"keys\" array");
        goto out;
    }
    json_array_foreach(keys, i, jwk)
    {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *use = json_string_value(json_object_get(jwk, "use"));
        const char *alg = json_string_value(json_object_get(jwk, "alg"));
        json_t *kid = json_object_get(jwk, "kid");
        const struct jwt_jwk_type *t = NULL;
        EVP_PKEY *pkey;

        for (size_t p = 0; p < sizeof jwt_jwk_private / sizeof jwt_jwk_private[0]; p++)
            if (json_object_get(jwk, jwt_jwk_private[p]) != NULL) {
                rc = errbuf_set(eb, KILN_ERR_INVALID,
                                "JWKS key %zu holds private key material (\"%s\")", i,
                                jwt_jwk_private[p]);
                goto out;
            }
        for (size_t k = 0; kty != NULL && k < sizeof jwt_jwk_types / sizeof jwt_jwk_types[0]; k++)
            if (strcmp(kty, jwt_jwk_types[k].kty) == 0)
                t = &jwt_jwk_types[k];
        if (t == NULL || (use != NULL && strcmp(use, "sig") != 0) ||
            (alg != NULL && strcmp(alg, t->alg) != 0))
            continue;
        if (kid != NULL && (!json_is_string(kid) || json_string_length(kid) == 0 ||
                            json_string_length(kid) > JWT_MAX_KID)) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "JWKS key %zu: bad \"kid\"", i);
            goto out;
        }
        pkey = t->load(jwk);
        if (pkey == NULL) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "JWKS key %zu: bad %s key parameters", i, t->kty);
            goto out;
        }
        rc = jwt_keyset_take(ks, pkey, json_string_value(kid), "JWKS", eb);
        if (rc != KILN_OK)
            goto out;
        added++;
    }
    if (added == 0)
        rc = errbuf_set(eb, KILN_ERR_INVALID, "JWKS holds no Ed25519 or RSA signing key");
out:
    json_decref(root);
    return rc;
}

enum kiln_err jwt_keyset_add_jwks_file(struct jwt_keyset *ks, const char *path, struct errbuf *eb)
{
    char *text = NULL;
    size_t len = 0;
    enum kiln_err rc = jwt_read_file(path, &text, &len, eb);

    if (rc != KILN_OK)
        return rc;
    rc = jwt_keyset_add_jwks(ks, text, len, eb);
    if (rc != KILN_OK) {
        char why[sizeof eb->msg];
        size_t wl = strlen(eb->msg);
        memcpy(why, eb->msg, wl + 1);
        errbuf_set(eb, rc, "%s: %s", path, why);
    }
    free(text);
    return rc;
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
