/* Loading of JWT public keys: PEM text, PEM files, a directory of PEMs and JWKS (see jwt.h).
 * Every key is checked once here (type, RSA size and exponent) so that verification can trust
 * the set. */
#include "http/jwt_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/xmalloc.h"

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
        BIGNUM *e = NULL;
        bool e_ok;
        kty = JWT_KTY_RSA;
        if (bits < JWT_RSA_MIN_BITS || bits > JWT_RSA_MAX_BITS) {
            EVP_PKEY_free(pkey);
            return errbuf_set(eb, KILN_ERR_INVALID, "%s: RSA key of %d bits (allowed %d to %d)",
                              what, bits, JWT_RSA_MIN_BITS, JWT_RSA_MAX_BITS);
        }
        /* An exponent of 1 (or an even one) makes "verification" accept forgeries; nothing
         * parses n and e for us with that check, so do it here. */
        e_ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_is_odd(e) &&
               !BN_is_one(e);
        BN_free(e);
        if (!e_ok) {
            EVP_PKEY_free(pkey);
            return errbuf_set(eb, KILN_ERR_INVALID, "%s: unusable RSA public exponent", what);
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
    ERR_clear_error();
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
    ERR_clear_error();
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
