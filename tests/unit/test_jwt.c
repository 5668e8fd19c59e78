/* Unit tests of JWT verification: tokens the test mints itself with OpenSSL, keys from PEM
 * files, a PEM directory and JWKS, and every refusal jwt.h promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "http/jwt.h"
#include "jwt_testutil.h"

struct fixture {
    EVP_PKEY *ed, *ed2, *rsa;
    char dir[64];
    struct jwt_keyset *ks; /* ed + rsa from PEM files, no kid */
    struct jwt_policy pol;
    long long now;
};

static int group_setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    struct errbuf eb = {{0}};
    char *pem, *path;

    f->ed = tu_gen_ed25519();
    f->ed2 = tu_gen_ed25519();
    f->rsa = tu_gen_rsa(2048);
    memcpy(f->dir, "/tmp/kiln-jwt-XXXXXX", 21);
    if (f->ed == NULL || f->ed2 == NULL || f->rsa == NULL || mkdtemp(f->dir) == NULL)
        return -1;
    f->ks = jwt_keyset_new();
    pem = tu_pubkey_pem(f->ed);
    path = xasprintf("%s/ed.pem", f->dir);
    tu_write_file(path, pem);
    if (jwt_keyset_add_pem_file(f->ks, path, &eb) != KILN_OK)
        return -1;
    free(pem);
    free(path);
    pem = tu_pubkey_pem(f->rsa);
    path = xasprintf("%s/rsa.pem", f->dir);
    tu_write_file(path, pem);
    if (jwt_keyset_add_pem_file(f->ks, path, &eb) != KILN_OK)
        return -1;
    free(pem);
    free(path);
    f->pol.issuer = "librechat";
    f->pol.audience = "codeapi";
    f->pol.leeway_s = 30;
    f->pol.max_lifetime_s = 300;
    f->now = (long long)time(NULL);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    char *cmd = xasprintf("%s/ed.pem", f->dir);
    unlink(cmd);
    free(cmd);
    cmd = xasprintf("%s/rsa.pem", f->dir);
    unlink(cmd);
    free(cmd);
    rmdir(f->dir);
    jwt_keyset_free(f->ks);
    EVP_PKEY_free(f->ed);
    EVP_PKEY_free(f->ed2);
    EVP_PKEY_free(f->rsa);
    free(f);
    return 0;
}

static const char *const hdr_ed =
    "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"lc-codeapi-2026-05\"}";
static const char *const hdr_rs = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";

/* Verify a token minted from key/header/payload; returns the result, eb gets the reason. */
static enum kiln_err verify(struct fixture *f, const struct jwt_keyset *ks, EVP_PKEY *key,
                            const char *hdr, const char *payload, struct jwt_claims *cl,
                            struct errbuf *eb)
{
    char *tok = tu_sign(key, hdr, payload);
    enum kiln_err rc = jwt_verify(ks, &f->pol, tok, f->now, cl, eb);
    free(tok);
    return rc;
}

static void expect_reason(struct fixture *f, EVP_PKEY *key, const char *hdr, const char *payload,
                          const char *reason)
{
    struct jwt_claims cl;
    struct errbuf eb = {{0}};
    assert_int_equal(verify(f, f->ks, key, hdr, payload, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, reason);
}

static void test_jwt_accepts_valid_eddsa(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 300);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};

    assert_int_equal(verify(f, f->ks, f->ed, hdr_ed, p, &cl, &eb), KILN_OK);
    assert_string_equal(cl.sub, "user-42");
    assert_int_equal(cl.exp, f->now + 300);
    free(p);
}

static void test_jwt_accepts_valid_rs256(void **state)
{
    struct fixture *f = *state;
    char *p =
        tu_payload("librechat", "[\"other\",\"codeapi\"]", f->now - 10, f->now - 10, f->now + 200);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};

    assert_int_equal(verify(f, f->ks, f->rsa, hdr_rs, p, &cl, &eb), KILN_OK);
    assert_string_equal(cl.sub, "user-42");
    free(p);
}

static void test_jwt_rejects_expired(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now - 400, f->now - 400, f->now - 100);
    expect_reason(f, f->ed, hdr_ed, p, "Token expired");
    free(p);
    /* inside the leeway it still passes */
    p = tu_payload("librechat", "\"codeapi\"", f->now - 200, f->now - 200, f->now - 20);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};
    assert_int_equal(verify(f, f->ks, f->ed, hdr_ed, p, &cl, &eb), KILN_OK);
    free(p);
}

static void test_jwt_rejects_not_yet_valid(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now + 120, f->now + 250);
    expect_reason(f, f->ed, hdr_ed, p, "Token not yet valid");
    free(p);
}

static void test_jwt_rejects_iat_in_future_beyond_leeway(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now + 60, f->now, f->now + 200);
    expect_reason(f, f->ed, hdr_ed, p, "Token issued in the future");
    free(p);
}

static void test_jwt_rejects_lifetime_too_long(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 301);
    expect_reason(f, f->ed, hdr_ed, p, "Token lifetime too long");
    free(p);
}

static void test_jwt_rejects_wrong_audience_string_and_array(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"otherapi\"", f->now, f->now, f->now + 100);
    expect_reason(f, f->ed, hdr_ed, p, "Token audience mismatch");
    free(p);
    p = tu_payload("librechat", "[\"a\",\"b\",\"codeapix\"]", f->now, f->now, f->now + 100);
    expect_reason(f, f->ed, hdr_ed, p, "Token audience mismatch");
    free(p);
    /* jansson refuses \u0000 outright, so NUL tricks never reach a comparison */
    p = tu_payload("librechat", "\"codeapi\\u0000\"", f->now, f->now, f->now + 100);
    expect_reason(f, f->ed, hdr_ed, p, "Malformed token");
    free(p);
}

static void test_jwt_rejects_wrong_issuer(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("evilchat", "\"codeapi\"", f->now, f->now, f->now + 100);
    expect_reason(f, f->ed, hdr_ed, p, "Token issuer mismatch");
    free(p);
    p = tu_payload("librechat\\u0000evil", "\"codeapi\"", f->now, f->now, f->now + 100);
    expect_reason(f, f->ed, hdr_ed, p, "Malformed token");
    free(p);
}

static void test_jwt_rejects_wrong_key(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    expect_reason(f, f->ed2, hdr_ed, p, "Invalid token signature");
    free(p);
}

static void test_jwt_rejects_alg_none(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    char *tbs = tu_signing_input("{\"alg\":\"none\",\"typ\":\"JWT\"}", p);
    char *tok = xasprintf("%s.", tbs), *tok2 = xasprintf("%s.AAAA", tbs);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};

    assert_int_equal(jwt_verify(f->ks, &f->pol, tok, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_int_equal(jwt_verify(f->ks, &f->pol, tok2, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Unsupported token algorithm");
    free(tok);
    free(tok2);
    free(tbs);
    free(p);
}

static void test_jwt_rejects_hs256_with_public_key_as_secret(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    char *pem = tu_pubkey_pem(f->rsa);
    char *tok = tu_sign_hs256(pem, p);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};

    assert_int_equal(jwt_verify(f->ks, &f->pol, tok, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Unsupported token algorithm");
    free(tok);
    free(pem);
    free(p);
}

static void test_jwt_rejects_alg_of_other_key_type(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    /* An Ed25519 signature under an RS256 header must not be tried against the Ed25519 key. */
    char *tok = tu_sign(f->ed, hdr_rs, p);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};

    assert_int_equal(jwt_verify(f->ks, &f->pol, tok, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Invalid token signature");
    free(tok);
    free(p);
}

static void test_jwt_rejects_tampered_payload_and_signature(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    char *tok = tu_sign(f->ed, hdr_ed, p);
    char *evil = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');

    /* payload swapped for one claiming another subject */
    char *sub = strstr(evil, "user-42");
    memcpy(sub, "admin-1", 7);
    char *eb64 = tu_b64url_str(evil);
    char *forged = xasprintf("%.*s.%s%s", (int)(d1 - tok), tok, eb64, d2);
    assert_int_equal(jwt_verify(f->ks, &f->pol, forged, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Invalid token signature");
    /* one signature character changed (kept canonical: flip a middle character) */
    size_t mid = (size_t)(d2 - tok) + 10;
    tok[mid] = tok[mid] == 'A' ? 'B' : 'A';
    assert_int_equal(jwt_verify(f->ks, &f->pol, tok, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Invalid token signature");
    free(forged);
    free(eb64);
    free(evil);
    free(tok);
    free(p);
}

static void test_jwt_rejects_malformed_base64(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    char *tok = tu_sign(f->ed, hdr_ed, p);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};
    size_t len = strlen(tok);
    char *bad;

    /* padding, a standard-alphabet character, an empty segment, three dots */
    bad = xasprintf("%s==", tok);
    assert_int_equal(jwt_verify(f->ks, &f->pol, bad, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Malformed token");
    free(bad);
    bad = xstrdup(tok);
    bad[3] = '+';
    assert_int_equal(jwt_verify(f->ks, &f->pol, bad, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Malformed token");
    free(bad);
    bad = xasprintf("%s.", tok);
    assert_int_equal(jwt_verify(f->ks, &f->pol, bad, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    free(bad);
    bad = xstrndup(tok, (size_t)(strrchr(tok, '.') - tok) + 1);
    assert_int_equal(jwt_verify(f->ks, &f->pol, bad, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    free(bad);
    /* non-canonical trailing bits: an Ed25519 signature is 86 chars, last one holds 2 spare
     * bits; setting them must not verify as the same signature */
    bad = xstrdup(tok);
    assert_int_equal(strlen(strrchr(bad, '.') + 1), 86);
    char last = bad[len - 1];
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alpha, last) - alpha);
    bad[len - 1] = alpha[v ^ 1];
    assert_int_equal(jwt_verify(f->ks, &f->pol, bad, f->now, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Malformed token");
    free(bad);
    free(tok);
    free(p);
}

static void test_jwt_rejects_too_long_token(void **state)
{
    struct fixture *f = *state;
    size_t pad = JWT_MAX_TOKEN_LEN;
    char *junk = xmalloc(pad + 1);
    memset(junk, 'a', pad);
    junk[pad] = '\0';
    char *body = xasprintf("{\"iss\":\"librechat\",\"aud\":\"codeapi\",\"sub\":\"u\",\"iat\":%lld,"
                           "\"exp\":%lld,\"pad\":\"%s\"}",
                           f->now, f->now + 100, junk);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};

    /* correctly signed, but too long: refused before any parsing */
    assert_int_equal(verify(f, f->ks, f->ed, hdr_ed, body, &cl, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "Token too long");
    free(body);
    free(junk);
}

static void test_jwt_rejects_crit_and_duplicate_members(void **state)
{
    struct fixture *f = *state;
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    expect_reason(f, f->ed, "{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"exp\":1}", p,
                  "Unsupported token extension");
    expect_reason(f, f->ed, "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\"}", p, "Malformed token");
    free(p);
    p = xasprintf("{\"iss\":\"librechat\",\"iss\":\"x\",\"aud\":\"codeapi\",\"sub\":\"u\","
                  "\"iat\":%lld,\"exp\":%lld}",
                  f->now, f->now + 100);
    expect_reason(f, f->ed, hdr_ed, p, "Malformed token");
    free(p);
}

static void test_jwt_requires_exp_iat_and_sub(void **state)
{
    struct fixture *f = *state;
    char *p =
        xasprintf("{\"iss\":\"librechat\",\"aud\":\"codeapi\",\"sub\":\"u\",\"iat\":%lld}", f->now);
    expect_reason(f, f->ed, hdr_ed, p, "Token lacks valid exp/iat/nbf claims");
    free(p);
    p = xasprintf("{\"iss\":\"librechat\",\"aud\":\"codeapi\",\"iat\":%lld,\"exp\":%lld}", f->now,
                  f->now + 10);
    expect_reason(f, f->ed, hdr_ed, p, "Token lacks a valid sub claim");
    free(p);
    p = xasprintf("{\"iss\":\"librechat\",\"aud\":\"codeapi\",\"sub\":\"a\\nb\",\"iat\":%lld,"
                  "\"exp\":%lld}",
                  f->now, f->now + 10);
    expect_reason(f, f->ed, hdr_ed, p, "Token lacks a valid sub claim");
    free(p);
}

static void test_jwt_selects_key_by_kid_from_jwks(void **state)
{
    struct fixture *f = *state;
    char *j1 = tu_jwk(f->ed, "k1"), *j2 = tu_jwk(f->ed2, "k2"), *j3 = tu_jwk(f->rsa, "r1");
    char *jwks = xasprintf("{\"keys\":[%s,%s,%s,{\"kty\":\"EC\",\"crv\":\"P-256\"}]}", j1, j2, j3);
    char *path = xasprintf("%s/jwks.json", f->dir);
    struct jwt_keyset *ks = jwt_keyset_new();
    char *p = tu_payload("librechat", "\"codeapi\"", f->now, f->now, f->now + 100);
    struct jwt_claims cl;
    struct errbuf eb = {{0}};

    tu_write_file(path, jwks);
    assert_int_equal(jwt_keyset_add_jwks_file(ks, path, &eb), KILN_OK);
    assert_int_equal(jwt_keyset_count(ks), 3);
    assert_int_equal(verify(f, ks, f->ed2, "{\"alg\":\"EdDSA\",\"kid\":\"k2\"}", p, &cl, &eb),
                     KILN_OK);
    assert_int_equal(verify(f, ks, f->ed, "{\"alg\":\"EdDSA\",\"kid\":\"k1\"}", p, &cl, &eb),
                     KILN_OK);
    assert_int_equal(verify(f, ks, f->rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", p, &cl, &eb),
                     KILN_OK);
    /* signed by k2 but naming k1: only k1 is tried */
    assert_int_equal(verify(f, ks, f->ed2, "{\"alg\":\"EdDSA\",\"kid\":\"k1\"}", p, &cl, &eb),
                     KILN_ERR_UNAUTHORIZED);
    assert_int_equal(verify(f, ks, f->ed2, "{\"alg\":\"EdDSA\",\"kid\":\"nope\"}", p, &cl, &eb),
                     KILN_ERR_UNAUTHORIZED);
    /* no kid: every key of the type is tried */
    assert_int_equal(verify(f, ks, f->ed2, "{\"alg\":\"EdDSA\"}", p, &cl, &eb), KILN_OK);
    unlink(path);
    jwt_keyset_free(ks);
    free(p);
    free(path);
    free(jwks);
    free(j1);
    free(j2);
    free(j3);
}

static void test_jwt_jwks_refuses_private_keys_and_empty_sets(void **state)
{
    (void)state;
    struct jwt_keyset *ks = jwt_keyset_new();
    struct errbuf eb = {{0}};
    const char *priv =
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\",\"d\":\"B\"}]}";
    const char *none = "{\"keys\":[{\"kty\":\"EC\"}]}";

    assert_int_equal(jwt_keyset_add_jwks(ks, priv, strlen(priv), &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "private"));
    assert_int_equal(jwt_keyset_add_jwks(ks, none, strlen(none), &eb), KILN_ERR_INVALID);
    assert_int_equal(jwt_keyset_add_jwks(ks, "[]", 2, &eb), KILN_ERR_INVALID);
    assert_int_equal(jwt_keyset_count(ks), 0);
    jwt_keyset_free(ks);
}

static void test_jwt_jwks_refuses_rsa_exponent_one(void **state)
{
    struct fixture *f = *state;
    struct jwt_keyset *ks = jwt_keyset_new();
    struct errbuf eb = {{0}};
    char *jwk = tu_jwk(f->rsa, "r");
    /* replace e with 1: s^1 mod n would "verify" any padded message an attacker writes */
    char *e = strstr(jwk, "\"e\":\"");
    char *jwks;

    assert_non_null(e);
    e[5] = '\0';
    jwks = xasprintf("{\"keys\":[%sAQ\"}]}", jwk);
    assert_int_equal(jwt_keyset_add_jwks(ks, jwks, strlen(jwks), &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "exponent"));
    assert_int_equal(jwt_keyset_count(ks), 0);
    free(jwks);
    free(jwk);
    jwt_keyset_free(ks);
}

static void test_jwt_pem_dir_and_weak_rsa(void **state)
{
    struct fixture *f = *state;
    struct jwt_keyset *ks = jwt_keyset_new();
    struct errbuf eb = {{0}};
    EVP_PKEY *weak = tu_gen_rsa(1024);
    char *pem = tu_pubkey_pem(weak);

    assert_int_equal(jwt_keyset_add_pem_dir(ks, f->dir, &eb), KILN_OK);
    assert_int_equal(jwt_keyset_count(ks), 2);
    assert_int_equal(jwt_keyset_add_pem(ks, pem, strlen(pem), NULL, &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "1024"));
    assert_int_equal(jwt_keyset_add_pem(ks, "junk", 4, NULL, &eb), KILN_ERR_INVALID);
    free(pem);
    EVP_PKEY_free(weak);
    jwt_keyset_free(ks);
}

static void test_jwt_candidate_is_two_dots(void **state)
{
    (void)state;
    assert_true(jwt_is_candidate("a.b.c"));
    assert_false(jwt_is_candidate("a.b"));
    assert_false(jwt_is_candidate("a.b.c.d"));
    assert_false(jwt_is_candidate("plain-key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_accepts_valid_eddsa),
        cmocka_unit_test(test_jwt_accepts_valid_rs256),
        cmocka_unit_test(test_jwt_rejects_expired),
        cmocka_unit_test(test_jwt_rejects_not_yet_valid),
        cmocka_unit_test(test_jwt_rejects_iat_in_future_beyond_leeway),
        cmocka_unit_test(test_jwt_rejects_lifetime_too_long),
        cmocka_unit_test(test_jwt_rejects_wrong_audience_string_and_array),
        cmocka_unit_test(test_jwt_rejects_wrong_issuer),
        cmocka_unit_test(test_jwt_rejects_wrong_key),
        cmocka_unit_test(test_jwt_rejects_alg_none),
        cmocka_unit_test(test_jwt_rejects_hs256_with_public_key_as_secret),
        cmocka_unit_test(test_jwt_rejects_alg_of_other_key_type),
        cmocka_unit_test(test_jwt_rejects_tampered_payload_and_signature),
        cmocka_unit_test(test_jwt_rejects_malformed_base64),
        cmocka_unit_test(test_jwt_rejects_too_long_token),
        cmocka_unit_test(test_jwt_rejects_crit_and_duplicate_members),
        cmocka_unit_test(test_jwt_requires_exp_iat_and_sub),
        cmocka_unit_test(test_jwt_selects_key_by_kid_from_jwks),
        cmocka_unit_test(test_jwt_jwks_refuses_private_keys_and_empty_sets),
        cmocka_unit_test(test_jwt_jwks_refuses_rsa_exponent_one),
        cmocka_unit_test(test_jwt_pem_dir_and_weak_rsa),
        cmocka_unit_test(test_jwt_candidate_is_two_dots),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
