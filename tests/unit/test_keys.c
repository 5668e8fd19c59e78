/* Unit tests of core/keys on a real SQLite store: records, the secret never stored, environment
 * keys read-only, the auth hook (usage, disabled, revoked despite the cache, rate windows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/keys.h"
#include "util/xmalloc.h"

struct fixture {
    char dir[64];
    struct store *st;
    struct kiln_config *cfg;
    struct keys *k;
};

static const char *fake_env(const char *name, void *arg)
{
    const char **kv = arg;
    for (; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static const char *env[] = {"API_KEY",           "env-key-1", "API_KEYS", "env-key-2, env-key-1",
                            "API_KEY_CACHE_TTL", "300",       NULL,       NULL};

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    struct errbuf eb = {{0}};
    char *path;

    memcpy(fx->dir, "/tmp/kiln-keys-XXXXXX", sizeof "/tmp/kiln-keys-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    path = xasprintf("%s/kiln.db", fx->dir);
    if (store_sqlite_open(path, &fx->st, &eb) != KILN_OK ||
        config_load(&fx->cfg, NULL, fake_env, env, &eb) != KILN_OK) {
        fprintf(stderr, "%s\n", eb.msg);
        free(path);
        return -1;
    }
    free(path);
    fx->k = keys_new(fx->cfg, fx->st);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    const char *files[] = {"kiln.db", "kiln.db-wal", "kiln.db-shm"};

    keys_free(fx->k);
    fx->st->ops->close(fx->st);
    config_free(fx->cfg);
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", fx->dir, files[i]);
        unlink(p);
        free(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static enum kiln_err lookup(struct keys *k, const char *secret, struct auth_result *res,
                            long *retry, struct errbuf *eb)
{
    unsigned char d[32];

    SHA256((const unsigned char *)secret, strlen(secret), d);
    memset(res, 0, sizeof *res);
    errbuf_clear(eb);
    return keys_auth_lookup(k, d, "0123456789abcdef", retry, res, eb);
}

/* Scan ns for a value holding needle (the secret must appear nowhere in the store). */
struct find {
    const char *needle;
    int hits;
};

static enum kiln_err find_fn(void *arg, const char *key, const void *val, size_t len,
                             long long updated_ms, long long expires_ms)
{
    struct find *f = arg;
    (void)updated_ms;
    (void)expires_ms;
    if (strstr(key, f->needle) != NULL || memmem(val, len, f->needle, strlen(f->needle)) != NULL)
        f->hits++;
    return KILN_OK;
}

static void test_keys_lifecycle(void **state)
{
    struct fixture *fx = *state;
    char secret[KEYS_SECRET_BUF];
    struct keys_record rec, got;
    struct keys_record *all = NULL;
    struct auth_result res;
    struct errbuf eb = {{0}};
    long retry = 0;
    size_t n = 0;
    struct find f;

    assert_int_equal(keys_create(fx->k, "", NULL, NULL, secret, &rec, &eb), KILN_ERR_INVALID);
    assert_int_equal(keys_create(fx->k, "bot", NULL, NULL, secret, &rec, &eb), KILN_OK);
    assert_int_equal(strlen(secret), 45);
    assert_memory_equal(secret, "kiln_", 5);
    assert_memory_equal(rec.key_prefix, secret, 8);
    /* only the hash is stored */
    f = (struct find){secret + 5, 0};
    for (const char *const *ns = (const char *const[]){"apikey", "apikey_use", NULL}; *ns; ns++)
        assert_int_equal(fx->st->ops->kv_scan(fx->st, *ns, "", 1, find_fn, &f, &eb), KILN_OK);
    assert_int_equal(f.hits, 0);

    /* two environment keys (a duplicate in API_KEYS is listed once) and the managed one */
    assert_int_equal(keys_list(fx->k, &all, &n, &eb), KILN_OK);
    assert_int_equal(n, 3);
    assert_true(all[0].environment && all[1].environment && !all[2].environment);
    assert_string_equal(all[2].key_hash, rec.key_hash);
    assert_int_equal(keys_revoke(fx->k, all[0].key_hash, &eb), KILN_ERR_FORBIDDEN);
    assert_int_equal(
        keys_update(fx->k, all[1].key_hash, &(struct keys_update){.enabled = 0}, NULL, &eb),
        KILN_ERR_FORBIDDEN);
    keys_records_free(all, n);

    /* use counts */
    for (int i = 0; i < 4; i++)
        assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_OK);
    assert_int_equal(res.rl_limit, 0);
    assert_int_equal(lookup(fx->k, "kiln_nope", &res, &retry, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "");
    assert_int_equal(keys_get(fx->k, rec.key_hash, &got, &eb), KILN_OK);
    assert_int_equal(got.usage_count, 4);
    assert_true(got.last_used_ms > 0);
    keys_record_clear(&got);

    /* disabled at once despite the cache (the key was cached by the lookups above) */
    assert_int_equal(
        keys_update(fx->k, rec.key_hash, &(struct keys_update){.enabled = 0}, NULL, &eb), KILN_OK);
    assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_ERR_UNAUTHORIZED);
    assert_string_equal(eb.msg, "API key disabled");
    assert_int_equal(
        keys_update(fx->k, rec.key_hash, &(struct keys_update){.enabled = 1}, NULL, &eb), KILN_OK);
    assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_OK);

    /* revoked at once */
    assert_int_equal(keys_revoke(fx->k, rec.key_hash, &eb), KILN_OK);
    assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_ERR_UNAUTHORIZED);
    assert_int_equal(keys_revoke(fx->k, rec.key_hash, &eb), KILN_ERR_NOT_FOUND);
    keys_record_clear(&rec);
}

/* Environment keys' use: counted in memory by keys_env_used (auth's static-key hook), shown in
 * their records; unknown digests and managed keys' digests are ignored. */
static void test_keys_env_usage(void **state)
{
    struct fixture *fx = *state;
    struct keys_record *all = NULL, rec = {0};
    struct errbuf eb = {{0}};
    unsigned char d1[32], d2[32], other[32];
    size_t n = 0;

    SHA256((const unsigned char *)"env-key-1", 9, d1);
    SHA256((const unsigned char *)"env-key-2", 9, d2);
    SHA256((const unsigned char *)"not-a-key", 9, other);
    assert_int_equal(keys_list(fx->k, &all, &n, &eb), KILN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(all[0].usage_count, 0);
    assert_int_equal(all[0].last_used_ms, 0);
    keys_records_free(all, n);
    for (int i = 0; i < 3; i++)
        keys_env_used(fx->k, d1);
    keys_env_used(fx->k, d2);
    keys_env_used(fx->k, other);
    assert_int_equal(keys_list(fx->k, &all, &n, &eb), KILN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(all[0].usage_count, 3); /* API_KEY env-key-1 */
    assert_true(all[0].last_used_ms > 0);
    assert_int_equal(all[1].usage_count, 1);
    assert_int_equal(keys_get(fx->k, all[0].key_hash, &rec, &eb), KILN_OK);
    assert_int_equal(rec.usage_count, 3);
    assert_true(rec.environment && rec.last_used_ms == all[0].last_used_ms);
    keys_record_clear(&rec);
    keys_records_free(all, n);
}

/* Two requests of one key read the clock a few ms apart; the later one can open the per-second
 * window (expiry = its now + 1 s) before the earlier one counts itself in it: the earlier one
 * must still say "retry in 1 s", never 2 (a window is never longer than itself). */
static void test_keys_retry_never_beyond_the_window(void **state)
{
    struct fixture *fx = *state;
    char secret[KEYS_SECRET_BUF], wk[KEYS_HASH_BUF + 4];
    long long limits[KEYS_WINDOW__COUNT] = {0};
    struct keys_record rec;
    struct auth_result res;
    struct errbuf eb = {{0}};
    struct timespec ts;
    long long now, v, exp;
    long retry = 0;

    limits[KEYS_PER_SECOND] = 1;
    assert_int_equal(keys_create(fx->k, "per-second", limits, NULL, secret, &rec, &eb), KILN_OK);
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    /* the other request: its clock 900 ms ahead of ours, so its window ends ~1.9 s from now */
    snprintf(wk, sizeof wk, "%s:s", rec.key_hash);
    assert_int_equal(
        fx->st->ops->kv_incr(fx->st, "ratelimit", wk, 1, now + 900, 1000, &v, &exp, &eb), KILN_OK);
    assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_ERR_RATE_LIMITED);
    assert_int_equal(retry, 1);
    assert_int_equal(res.rl_reset_s, 1);
    keys_record_clear(&rec);
}

static void test_keys_rate_windows(void **state)
{
    struct fixture *fx = *state;
    char secret[KEYS_SECRET_BUF];
    long long limits[KEYS_WINDOW__COUNT] = {0, 0, 5, 3, 0};
    struct keys_record rec, got;
    struct auth_result res;
    struct errbuf eb = {{0}};
    long retry = 0;

    assert_int_equal(keys_create(fx->k, "limited", limits, NULL, secret, &rec, &eb), KILN_OK);
    for (long i = 0; i < 3; i++) {
        assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_OK);
        /* the daily window (3) is tighter than the hourly one (5) */
        assert_int_equal(res.rl_limit, 3);
        assert_int_equal(res.rl_remaining, 2 - i);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_ERR_RATE_LIMITED);
        assert_int_equal(res.rl_limit, 3);
        assert_int_equal(res.rl_remaining, 0);
        assert_true(retry > 86000 && retry <= 86400);
        assert_int_equal(res.rl_reset_s, retry);
        assert_non_null(strstr(eb.msg, "per day"));
    }
    /* refused requests are neither uses nor counted in the hourly window */
    assert_int_equal(keys_get(fx->k, rec.key_hash, &got, &eb), KILN_OK);
    assert_int_equal(got.usage_count, 3);
    keys_record_clear(&got);
    {
        struct keys_update upd = {.enabled = -1};
        upd.set_limit[KEYS_DAILY] = true; /* limit removed: the hourly window has 2 left */
        assert_int_equal(keys_update(fx->k, rec.key_hash, &upd, NULL, &eb), KILN_OK);
    }
    assert_int_equal(lookup(fx->k, secret, &res, &retry, &eb), KILN_OK);
    assert_int_equal(res.rl_limit, 5);
    assert_int_equal(res.rl_remaining, 1);
    keys_record_clear(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_rate_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_retry_never_beyond_the_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_env_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
