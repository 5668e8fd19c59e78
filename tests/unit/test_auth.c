/* Unit tests of request authentication: every credential form and its order, the admin rules,
 * trusted networks, AUTH_ENABLED=false, the failure limiter, JWTs minted by the test, and that
 * no error ever quotes a presented key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "http/auth.h"
#include "jwt_testutil.h"

#define KEY1   "k1-0123456789abcdef"
#define KEY2   "k2-fedcba9876543210"
#define MASTER "master-0123456789abcdef"

struct fixture {
    EVP_PKEY *ed, *rsa;
    char dir[64];
    char *ed_pem_path, *jwks_path;
};

static const char *fake_env(const char *name, void *arg)
{
    const char **kv = arg;
    for (; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

/* An authenticator from the pairs of env (NULL-terminated) on top of the defaults. */
static struct auth *make_auth(const char **env)
{
    struct kiln_config *cfg = NULL;
    struct auth *a = NULL;
    struct errbuf eb = {{0}};

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    if (auth_new(&a, cfg, &eb) != KILN_OK)
        fail_msg("auth_new: %s", eb.msg);
    /* the authenticator keeps nothing of the config */
    config_free(cfg);
    return a;
}

static int group_setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    char *pem, *j1, *j2, *jwks;

    f->ed = tu_gen_ed25519();
    f->rsa = tu_gen_rsa(2048);
    memcpy(f->dir, "/tmp/kiln-auth-XXXXXX", 22);
    if (f->ed == NULL || f->rsa == NULL || mkdtemp(f->dir) == NULL)
        return -1;
    f->ed_pem_path = xasprintf("%s/ed.pem", f->dir);
    pem = tu_pubkey_pem(f->ed);
    tu_write_file(f->ed_pem_path, pem);
    free(pem);
    f->jwks_path = xasprintf("%s/jwks.json", f->dir);
    j1 = tu_jwk(f->ed, "lc-codeapi-2026-05");
    j2 = tu_jwk(f->rsa, "rsa-1");
    jwks = xasprintf("{\"keys\":[%s,%s]}", j1, j2);
    tu_write_file(f->jwks_path, jwks);
    free(j1);
    free(j2);
    free(jwks);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->ed_pem_path);
    unlink(f->jwks_path);
    rmdir(f->dir);
    free(f->ed_pem_path);
    free(f->jwks_path);
    EVP_PKEY_free(f->ed);
    EVP_PKEY_free(f->rsa);
    free(f);
    return 0;
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 sa = {0};
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &sa.sin6_addr);
    return sa;
}

/* The result of one check; eb and res filled. */
struct outcome {
    enum kiln_err rc;
    struct auth_result res;
    long retry;
    struct errbuf eb;
};

static struct outcome check(struct auth *a, const char *hdr, const char *authz, const char *body,
                            const struct sockaddr *peer, bool admin)
{
    struct outcome o;
    struct auth_request req = {hdr, authz, body, peer, admin};
    memset(&o, 0, sizeof o);
    o.rc = auth_check(a, &req, &o.res, &o.retry, &o.eb);
    return o;
}

static const char *const base_env[] = {
    "API_KEY", KEY1, "API_KEYS", " extra-1 , " KEY2 " ,", "MASTER_API_KEY", MASTER, NULL};

static char *basic(const char *userpass)
{
    size_t cap = base64_encoded_size(strlen(userpass));
    char *b = xmalloc(cap);
    base64_encode(BASE64_STD, (const unsigned char *)userpass, strlen(userpass), b, cap);
    char *out = xasprintf("Basic %s", b);
    free(b);
    return out;
}

static void test_auth_accepts_static_key_in_every_form(void **state)
{
    (void)state;
    struct auth *a = make_auth((const char **)base_env);
    struct sockaddr_in p = v4("203.0.113.5");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    char *b_user = basic(KEY1 ":"), *b_pass = basic(":" KEY2), *b_both = basic("api:" KEY1);
    struct outcome o;

    o = check(a, KEY1, NULL, NULL, peer, false);
    assert_int_equal(o.rc, KILN_OK);
    assert_int_equal(o.res.method, AUTH_KEY);
    assert_int_equal(strlen(o.res.key_id), 16);
    assert_null(strstr(o.res.key_id, KEY1));
    assert_int_equal(check(a, NULL, "Bearer " KEY2, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, NULL, "bearer   extra-1 ", NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, NULL, b_user, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, NULL, b_pass, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, NULL, b_both, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, NULL, "ApiKey " KEY1, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, NULL, NULL, KEY1, peer, false).rc, KILN_OK);
    /* the same key gives the same key_id whatever the form */
    struct outcome o2 = check(a, NULL, NULL, KEY1, peer, false);
    assert_string_equal(o.res.key_id, o2.res.key_id);
    /* the master key is accepted on normal routes too */
    o = check(a, MASTER, NULL, NULL, peer, false);
    assert_int_equal(o.rc, KILN_OK);
    assert_int_equal(o.res.method, AUTH_MASTER);
    free(b_user);
    free(b_pass);
    free(b_both);
    auth_free(a);
}

static void test_auth_missing_and_wrong_keys(void **state)
{
    (void)state;
    struct auth *a = make_auth((const char **)base_env);
    struct sockaddr_in p = v4("203.0.113.6");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    struct outcome o;

    o = check(a, NULL, NULL, NULL, peer, false);
    assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    assert_string_equal(o.eb.msg, "Missing API key");
    o = check(a, "  ", NULL, "", peer, false);
    assert_string_equal(o.eb.msg, "Missing API key");
    o = check(a, "wrong-secret-value", NULL, NULL, peer, false);
    assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    assert_string_equal(o.eb.msg, "Invalid API key");
    assert_null(strstr(o.eb.msg, "wrong-secret-value"));
    /* a prefix or extension of a real key is wrong too */
    assert_int_equal(check(a, "k1-0123456789abcde", NULL, NULL, peer, false).rc,
                     KILN_ERR_UNAUTHORIZED);
    assert_int_equal(check(a, KEY1 "0", NULL, NULL, peer, false).rc, KILN_ERR_UNAUTHORIZED);
    o = check(a, NULL, "Digest abc", NULL, peer, false);
    assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    o = check(a, NULL, "Basic !!!", NULL, peer, false);
    assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    assert_null(strstr(o.eb.msg, "!!!"));
    auth_free(a);
}

static void test_auth_two_different_credentials_are_ambiguous(void **state)
{
    (void)state;
    struct auth *a = make_auth((const char **)base_env);
    struct sockaddr_in p = v4("203.0.113.7");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    struct outcome o;

    o = check(a, KEY1, "Bearer " KEY2, NULL, peer, false);
    assert_int_equal(o.rc, KILN_ERR_INVALID);
    assert_string_equal(o.eb.msg, "Ambiguous authentication headers");
    assert_null(strstr(o.eb.msg, KEY1));
    assert_null(strstr(o.eb.msg, KEY2));
    /* identical values are one credential */
    assert_int_equal(check(a, KEY1, "Bearer " KEY1, NULL, peer, false).rc, KILN_OK);
    /* an Authorization kiln cannot read does not compete with the API-key header... */
    assert_int_equal(check(a, KEY1, "Negotiate YIIabc", NULL, peer, false).rc, KILN_OK);
    /* ...but alone it is refused */
    assert_int_equal(check(a, NULL, "Negotiate YIIabc", NULL, peer, false).rc,
                     KILN_ERR_UNAUTHORIZED);
    /* a header key wins over a body key (the body is only a fallback), even a different one */
    assert_int_equal(check(a, KEY1, NULL, "something-else", peer, false).rc, KILN_OK);
    auth_free(a);
}

static void test_auth_admin_routes_need_master(void **state)
{
    (void)state;
    struct auth *a = make_auth((const char **)base_env);
    struct sockaddr_in p = v4("203.0.113.8");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    struct outcome o;

    o = check(a, KEY1, NULL, NULL, peer, true);
    assert_int_equal(o.rc, KILN_ERR_FORBIDDEN);
    o = check(a, NULL, "Bearer " MASTER, NULL, peer, true);
    assert_int_equal(o.rc, KILN_OK);
    assert_int_equal(o.res.method, AUTH_MASTER);
    o = check(a, "nope-nope-nope", NULL, NULL, peer, true);
    assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    o = check(a, NULL, NULL, NULL, peer, true);
    assert_string_equal(o.eb.msg, "Missing API key");
    auth_free(a);

    const char *env[] = {"API_KEY", KEY1, NULL};
    a = make_auth(env);
    o = check(a, KEY1, NULL, NULL, peer, true);
    assert_int_equal(o.rc, KILN_ERR_FORBIDDEN);
    o = check(a, "", NULL, NULL, peer, true);
    assert_int_equal(o.rc, KILN_ERR_FORBIDDEN);
    auth_free(a);
}

static void test_auth_disabled_opens_api_but_not_admin(void **state)
{
    (void)state;
    const char *env[] = {"AUTH_ENABLED", "false", "API_KEY", KEY1, "MASTER_API_KEY", MASTER, NULL};
    struct auth *a = make_auth(env);
    struct sockaddr_in p = v4("198.51.100.1");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    struct outcome o;

    o = check(a, NULL, NULL, NULL, peer, false);
    assert_int_equal(o.rc, KILN_OK);
    assert_int_equal(o.res.method, AUTH_NONE);
    assert_int_equal(check(a, NULL, NULL, NULL, peer, true).rc, KILN_ERR_UNAUTHORIZED);
    assert_int_equal(check(a, KEY1, NULL, NULL, peer, true).rc, KILN_ERR_FORBIDDEN);
    assert_int_equal(check(a, MASTER, NULL, NULL, peer, true).rc, KILN_OK);
    auth_free(a);
}

static void test_auth_trusted_networks(void **state)
{
    (void)state;
    const char *env[] = {
        "API_KEY", KEY1, "MASTER_API_KEY", MASTER, "AUTH_TRUSTED_NETWORKS", "10.0.0.0/8, fd00::/8",
        NULL};
    struct auth *a = make_auth(env);
    struct sockaddr_in in4 = v4("10.1.2.3"), out4 = v4("11.1.2.3");
    struct sockaddr_in6 in6 = v6("fd12::1"), mapped = v6("::ffff:10.9.9.9"), out6 = v6("fe80::1");
    struct outcome o;

    o = check(a, NULL, NULL, NULL, (struct sockaddr *)&in4, false);
    assert_int_equal(o.rc, KILN_OK);
    assert_int_equal(o.res.method, AUTH_TRUSTED);
    assert_int_equal(check(a, NULL, NULL, NULL, (struct sockaddr *)&in6, false).rc, KILN_OK);
    assert_int_equal(check(a, NULL, NULL, NULL, (struct sockaddr *)&mapped, false).rc, KILN_OK);
    o = check(a, NULL, NULL, NULL, (struct sockaddr *)&out4, false);
    assert_string_equal(o.eb.msg, "Missing API key");
    assert_int_equal(check(a, NULL, NULL, NULL, (struct sockaddr *)&out6, false).rc,
                     KILN_ERR_UNAUTHORIZED);
    assert_int_equal(check(a, NULL, NULL, NULL, NULL, false).rc, KILN_ERR_UNAUTHORIZED);
    /* never for admin routes */
    assert_int_equal(check(a, NULL, NULL, NULL, (struct sockaddr *)&in4, true).rc,
                     KILN_ERR_UNAUTHORIZED);
    /* a credential presented from a trusted network is still checked */
    assert_int_equal(check(a, "wrong-wrong", NULL, NULL, (struct sockaddr *)&in4, false).rc,
                     KILN_ERR_UNAUTHORIZED);
    o = check(a, KEY1, NULL, NULL, (struct sockaddr *)&in4, false);
    assert_int_equal(o.res.method, AUTH_KEY);
    auth_free(a);

    const char *bad[] = {"AUTH_TRUSTED_NETWORKS", "10.0.0.0/33", NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    assert_int_equal(config_load(&cfg, NULL, fake_env, bad, &eb), KILN_OK);
    assert_int_equal(auth_new(&a, cfg, &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "AUTH_TRUSTED_NETWORKS"));
    config_free(cfg);
}

static void test_auth_rate_limits_failures_per_ip(void **state)
{
    (void)state;
    struct auth *a = make_auth((const char **)base_env);
    struct sockaddr_in bad = v4("192.0.2.66"), good = v4("192.0.2.67");
    struct sockaddr_in6 bad6 = v6("2001:db8:1:2::99"), near6 = v6("2001:db8:1:2::1234");
    struct outcome o;

    /* missing keys are not guesses and do not count */
    for (int i = 0; i < 20; i++)
        assert_int_equal(check(a, NULL, NULL, NULL, (struct sockaddr *)&bad, false).rc,
                         KILN_ERR_UNAUTHORIZED);
    for (int i = 0; i < 10; i++) {
        o = check(a, "guess-guess-guess", NULL, NULL, (struct sockaddr *)&bad, false);
        assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    }
    o = check(a, "guess-guess-guess", NULL, NULL, (struct sockaddr *)&bad, false);
    assert_int_equal(o.rc, KILN_ERR_RATE_LIMITED);
    assert_true(o.retry > 0 && o.retry <= 3600);
    assert_null(strstr(o.eb.msg, "guess"));
    /* blocked even with the right key: the guesser must not learn it got one right */
    o = check(a, KEY1, NULL, NULL, (struct sockaddr *)&bad, false);
    assert_int_equal(o.rc, KILN_ERR_RATE_LIMITED);
    /* another address is unaffected */
    assert_int_equal(check(a, KEY1, NULL, NULL, (struct sockaddr *)&good, false).rc, KILN_OK);
    assert_int_equal(check(a, "x-wrong", NULL, NULL, (struct sockaddr *)&good, false).rc,
                     KILN_ERR_UNAUTHORIZED);
    /* IPv6 is limited per /64 */
    for (int i = 0; i < 10; i++)
        check(a, "guess6", NULL, NULL, (struct sockaddr *)&bad6, false);
    assert_int_equal(check(a, KEY1, NULL, NULL, (struct sockaddr *)&near6, false).rc,
                     KILN_ERR_RATE_LIMITED);
    /* a flood of one-failure addresses does not evict the blocked one */
    for (unsigned i = 0; i < 20000; i++) {
        struct sockaddr_in s = {0};
        s.sin_family = AF_INET;
        s.sin_addr.s_addr = htonl(0x0a000000u + i);
        check(a, "flood", NULL, NULL, (struct sockaddr *)&s, false);
    }
    assert_int_equal(check(a, KEY1, NULL, NULL, (struct sockaddr *)&bad, false).rc,
                     KILN_ERR_RATE_LIMITED);
    auth_free(a);
}

static void test_auth_limit_is_configurable(void **state)
{
    (void)state;
    const char *env[] = {"API_KEY", KEY1, "AUTH_MAX_FAILURES", "2", NULL};
    struct auth *a = make_auth(env);
    struct sockaddr_in p = v4("192.0.2.90");

    assert_int_equal(check(a, "w1", NULL, NULL, (struct sockaddr *)&p, false).rc,
                     KILN_ERR_UNAUTHORIZED);
    assert_int_equal(check(a, "w2", NULL, NULL, (struct sockaddr *)&p, false).rc,
                     KILN_ERR_UNAUTHORIZED);
    assert_int_equal(check(a, KEY1, NULL, NULL, (struct sockaddr *)&p, false).rc,
                     KILN_ERR_RATE_LIMITED);
    auth_free(a);
}

/* JWT through auth_check. */
static char *lc_token(EVP_PKEY *key, const char *hdr, long long iat, long long exp)
{
    char *p = tu_payload("librechat", "\"codeapi\"", iat, iat, exp);
    char *t = tu_sign(key, hdr, p);
    char *out = xasprintf("Bearer %s", t);
    free(t);
    free(p);
    return out;
}

static void test_auth_bearer_jwt(void **state)
{
    struct fixture *f = *state;
    const char *env[] = {"API_KEY", KEY1, "JWT_PUBLIC_KEY_FILE", f->ed_pem_path, NULL};
    struct auth *a = make_auth(env);
    struct sockaddr_in p = v4("192.0.2.100");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    long long now = (long long)time(NULL);
    char *ok = lc_token(f->ed, "{\"alg\":\"EdDSA\"}", now, now + 300);
    char *old = lc_token(f->ed, "{\"alg\":\"EdDSA\"}", now - 600, now - 300);
    char *rs = lc_token(f->rsa, "{\"alg\":\"RS256\"}", now, now + 300);
    struct outcome o;

    o = check(a, NULL, ok, NULL, peer, false);
    assert_int_equal(o.rc, KILN_OK);
    assert_int_equal(o.res.method, AUTH_JWT);
    assert_string_equal(o.res.user_id, "user-42");
    o = check(a, NULL, old, NULL, peer, false);
    assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    assert_string_equal(o.eb.msg, "Token expired");
    /* RSA key not configured in this auth */
    o = check(a, NULL, rs, NULL, peer, false);
    assert_int_equal(o.rc, KILN_ERR_UNAUTHORIZED);
    assert_null(strstr(o.eb.msg, "eyJ"));
    /* a JWT is not a master key */
    assert_int_equal(check(a, NULL, ok, NULL, peer, true).rc, KILN_ERR_FORBIDDEN);
    /* static Bearer still works alongside JWT */
    assert_int_equal(check(a, NULL, "Bearer " KEY1, NULL, peer, false).rc, KILN_OK);
    auth_free(a);

    /* JWKS with both keys and kids */
    const char *env2[] = {"API_KEY", KEY1, "JWT_JWKS_FILE", f->jwks_path, NULL};
    a = make_auth(env2);
    o = check(a, NULL, rs, NULL, peer, false);
    assert_int_equal(o.rc, KILN_OK);
    char *kid =
        lc_token(f->ed, "{\"alg\":\"EdDSA\",\"kid\":\"lc-codeapi-2026-05\"}", now, now + 60);
    assert_int_equal(check(a, NULL, kid, NULL, peer, false).rc, KILN_OK);
    free(kid);
    kid = lc_token(f->ed, "{\"alg\":\"EdDSA\",\"kid\":\"rsa-1\"}", now, now + 60);
    assert_int_equal(check(a, NULL, kid, NULL, peer, false).rc, KILN_ERR_UNAUTHORIZED);
    free(kid);
    auth_free(a);
    free(ok);
    free(old);
    free(rs);
}

static void test_auth_new_names_bad_jwt_setting(void **state)
{
    (void)state;
    const char *env[] = {"JWT_JWKS_FILE", "/nonexistent/jwks.json", NULL};
    struct kiln_config *cfg = NULL;
    struct auth *a = NULL;
    struct errbuf eb = {{0}};

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    assert_int_not_equal(auth_new(&a, cfg, &eb), KILN_OK);
    assert_null(a);
    assert_non_null(strstr(eb.msg, "JWT_JWKS_FILE"));
    config_free(cfg);
}

/* A fake managed-key store holding one key by its digest. */
struct fake_store {
    unsigned char digest[32];
    int calls;
    enum kiln_err down;
};

static enum kiln_err fake_lookup(void *arg, const unsigned char sha256[32], const char *key_id,
                                 long *retry_after_s, struct auth_result *res, struct errbuf *eb)
{
    struct fake_store *s = arg;
    (void)retry_after_s;
    (void)res;
    s->calls++;
    assert_int_equal(strlen(key_id), 16);
    if (s->down != KILN_OK)
        return errbuf_set(eb, s->down, "store down");
    return memcmp(sha256, s->digest, 32) == 0 ? KILN_OK : KILN_ERR_UNAUTHORIZED;
}

static void test_auth_managed_key_hook(void **state)
{
    (void)state;
    struct auth *a = make_auth((const char **)base_env);
    struct fake_store st = {{0}, 0, KILN_OK};
    struct sockaddr_in p = v4("192.0.2.150");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    unsigned int n = 0;
    struct outcome o;

    EVP_Digest("managed-key-1", 13, st.digest, &n, EVP_sha256(), NULL);
    auth_set_key_lookup(a, fake_lookup, &st);
    o = check(a, "managed-key-1", NULL, NULL, peer, false);
    assert_int_equal(o.rc, KILN_OK);
    assert_int_equal(o.res.method, AUTH_KEY);
    assert_int_equal(check(a, KEY1, NULL, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(st.calls, 1); /* static keys never reach the store */
    assert_int_equal(check(a, "managed-key-2", NULL, NULL, peer, false).rc, KILN_ERR_UNAUTHORIZED);
    /* never for admin routes */
    assert_int_equal(check(a, "managed-key-1", NULL, NULL, peer, true).rc, KILN_ERR_FORBIDDEN);
    st.down = KILN_ERR_UNAVAILABLE;
    for (int i = 0; i < 15; i++)
        assert_int_equal(check(a, "managed-key-1", NULL, NULL, peer, false).rc,
                         KILN_ERR_UNAVAILABLE);
    assert_int_equal(check(a, "managed-key-1", NULL, NULL, peer, true).rc, KILN_ERR_UNAVAILABLE);
    /* an outage is not counted against the client */
    st.down = KILN_OK;
    assert_int_equal(check(a, "managed-key-1", NULL, NULL, peer, false).rc, KILN_OK);
    auth_free(a);
}

/* The static-key use hook: the digest of each static key that accepts a request. */
struct used_log {
    unsigned char last[32];
    int calls;
};

static void fake_used(void *arg, const unsigned char sha256[32])
{
    struct used_log *u = arg;
    memcpy(u->last, sha256, 32);
    u->calls++;
}

static void test_auth_static_key_use_hook(void **state)
{
    (void)state;
    struct auth *a = make_auth((const char **)base_env);
    struct used_log u = {{0}, 0};
    struct fake_store st = {{0}, 0, KILN_OK};
    struct sockaddr_in p = v4("192.0.2.160");
    const struct sockaddr *peer = (const struct sockaddr *)&p;
    unsigned char d2[32];
    unsigned int n = 0;
    char *b_both = basic(KEY1 ":" KEY1);

    EVP_Digest(KEY2, strlen(KEY2), d2, &n, EVP_sha256(), NULL);
    EVP_Digest("managed-key-1", 13, st.digest, &n, EVP_sha256(), NULL);
    auth_set_key_lookup(a, fake_lookup, &st);
    auth_set_key_used(a, fake_used, &u);
    assert_int_equal(check(a, NULL, "Bearer " KEY2, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(u.calls, 1);
    assert_memory_equal(u.last, d2, 32);
    /* Basic with the key in both parts is one use */
    assert_int_equal(check(a, NULL, b_both, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(u.calls, 2);
    /* not the master key, a managed key (its lookup counts), a wrong key or an admin route */
    assert_int_equal(check(a, MASTER, NULL, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, "managed-key-1", NULL, NULL, peer, false).rc, KILN_OK);
    assert_int_equal(check(a, "wrong-key", NULL, NULL, peer, false).rc, KILN_ERR_UNAUTHORIZED);
    assert_int_equal(check(a, KEY1, NULL, NULL, peer, true).rc, KILN_ERR_FORBIDDEN);
    assert_int_equal(u.calls, 2);
    free(b_both);
    auth_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_accepts_static_key_in_every_form),
        cmocka_unit_test(test_auth_missing_and_wrong_keys),
        cmocka_unit_test(test_auth_two_different_credentials_are_ambiguous),
        cmocka_unit_test(test_auth_admin_routes_need_master),
        cmocka_unit_test(test_auth_disabled_opens_api_but_not_admin),
        cmocka_unit_test(test_auth_trusted_networks),
        cmocka_unit_test(test_auth_rate_limits_failures_per_ip),
        cmocka_unit_test(test_auth_limit_is_configurable),
        cmocka_unit_test(test_auth_bearer_jwt),
        cmocka_unit_test(test_auth_new_names_bad_jwt_setting),
        cmocka_unit_test(test_auth_managed_key_hook),
        cmocka_unit_test(test_auth_static_key_use_hook),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
