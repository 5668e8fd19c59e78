/* Managed API keys: records, usage, fixed-window rate limits and the auth hook (keys.h). */
#include "core/keys.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/sha256.h"
#include "util/xmalloc.h"

#define KEYS_NS       "apikey"
#define KEYS_NS_USE   "apikey_use"
#define KEYS_NS_RATE  "ratelimit"
#define KEYS_CACHE_N  256
#define KEYS_ENV_MAX  64
#define KEYS_RAND_LEN 20

const char *const keys_window_names[KEYS_WINDOW__COUNT] = {"per_second", "per_minute", "hourly",
                                                           "daily", "monthly"};
/* Window lengths (ms) and their one-letter key suffixes, by enum keys_window. */
static const long long keys_window_ms[KEYS_WINDOW__COUNT] = {1000LL, 60000LL, 3600000LL, 86400000LL,
                                                             30LL * 86400000LL};
static const char keys_window_tag[KEYS_WINDOW__COUNT] = {'s', 'm', 'h', 'd', 'M'};
static const char *const keys_window_word[KEYS_WINDOW__COUNT] = {"second", "minute", "hour", "day",
                                                                 "month"};

/* What the auth hook needs of a record, cached for API_KEY_CACHE_TTL. */
struct keys_cached {
    char hash[KEYS_HASH_BUF];
    bool enabled;
    long long limits[KEYS_WINDOW__COUNT];
    long long fetched_ms; /* 0 = free slot */
};

struct keys {
    const struct kiln_config *cfg;
    struct store *st;
    long long cache_ttl_ms;
    bool rate_limits;
    char env_hash[KEYS_ENV_MAX][KEYS_HASH_BUF]; /* API_KEY, API_KEYS */
    char env_prefix[KEYS_ENV_MAX][KEYS_PREFIX_BUF];
    atomic_llong env_uses[KEYS_ENV_MAX];    /* keys_env_used(): this process's count */
    atomic_llong env_last_ms[KEYS_ENV_MAX]; /* and its last use (0 = never) */
    size_t nenv;
    pthread_mutex_t mu; /* guards cache */
    struct keys_cached cache[KEYS_CACHE_N];
};

static long long keys_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keys_hash_hex(const char *s, size_t len, char out[KEYS_HASH_BUF])
{
    struct sha256 *h = sha256_new();

    sha256_update(h, s, len);
    sha256_final_hex(h, out);
    sha256_free(h);
}

static void keys_add_env(struct keys *k, const char *key, size_t len)
{
    while (len > 0 && (*key == ' ' || *key == '\t')) {
        key++;
        len--;
    }
    while (len > 0 && (key[len - 1] == ' ' || key[len - 1] == '\t'))
        len--;
    if (len == 0 || k->nenv == KEYS_ENV_MAX)
        return;
    keys_hash_hex(key, len, k->env_hash[k->nenv]);
    for (size_t i = 0; i < k->nenv; i++)
        if (strcmp(k->env_hash[i], k->env_hash[k->nenv]) == 0)
            return;
    /* Never show part of an environment secret: only a digest prefix. */
    snprintf(k->env_prefix[k->nenv], KEYS_PREFIX_BUF, "sha:%.8s", k->env_hash[k->nenv]);
    k->nenv++;
}

struct keys *keys_new(const struct kiln_config *cfg, struct store *st)
{
    struct keys *k = xcalloc(1, sizeof *k);
    const char *p;

    k->cfg = cfg;
    k->st = st;
    k->cache_ttl_ms = cfg->api_key_cache_ttl * 1000;
    k->rate_limits = cfg->rate_limit_enabled;
    pthread_mutex_init(&k->mu, NULL);
    if (cfg->api_key != NULL && cfg->api_key[0] != '\0')
        keys_add_env(k, cfg->api_key, strlen(cfg->api_key));
    for (p = cfg->api_keys; p != NULL && *p != '\0';) {
        size_t n = strcspn(p, ",");
        keys_add_env(k, p, n);
        p += n;
        if (*p == ',')
            p++;
    }
    return k;
}

void keys_free(struct keys *k)
{
    if (k == NULL)
        return;
    pthread_mutex_destroy(&k->mu);
    free(k);
}

void keys_record_clear(struct keys_record *r)
{
    if (r == NULL)
        return;
    free(r->name);
    if (r->metadata != NULL)
        json_decref(r->metadata);
    memset(r, 0, sizeof *r);
}

void keys_records_free(struct keys_record *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        keys_record_clear(&a[i]);
    free(a);
}

static bool keys_hash_ok(const char *h)
{
    if (h == NULL || strlen(h) != 64)
        return false;
    for (const char *c = h; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

/* The lower-case hex of a SHA-256 digest. */
static void keys_digest_hex(const unsigned char sha256[32], char hash[KEYS_HASH_BUF])
{
    for (int i = 0; i < 32; i++)
        snprintf(hash + 2 * i, 3, "%02x", sha256[i]);
}

static int keys_env_index(const struct keys *k, const char *hash)
{
    for (size_t i = 0; i < k->nenv; i++)
        if (strcmp(k->env_hash[i], hash) == 0)
            return (int)i;
    return -1;
}

/* ---- the cache ---- */

static void keys_cache_forget(struct keys *k, const char *hash)
{
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < KEYS_CACHE_N; i++)
        if (k->cache[i].fetched_ms != 0 && strcmp(k->cache[i].hash, hash) == 0)
            k->cache[i].fetched_ms = 0;
    pthread_mutex_unlock(&k->mu);
}

static bool keys_cache_get(struct keys *k, const char *hash, long long now, struct keys_cached *out)
{
    bool hit = false;

    if (k->cache_ttl_ms <= 0)
        return false;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < KEYS_CACHE_N; i++) {
        struct keys_cached *c = &k->cache[i];
        if (c->fetched_ms != 0 && strcmp(c->hash, hash) == 0) {
            if (now - c->fetched_ms < k->cache_ttl_ms) {
                *out = *c;
                hit = true;
            } else {
                c->fetched_ms = 0;
            }
            break;
        }
    }
    pthread_mutex_unlock(&k->mu);
    return hit;
}

static void keys_cache_put(struct keys *k, const struct keys_cached *in)
{
    size_t victim = 0;

    if (k->cache_ttl_ms <= 0)
        return;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < KEYS_CACHE_N; i++) {
        if (k->cache[i].fetched_ms == 0 || strcmp(k->cache[i].hash, in->hash) == 0) {
            victim = i;
            break;
        }
        if (k->cache[i].fetched_ms < k->cache[victim].fetched_ms)
            victim = i;
    }
    k->cache[victim] = *in;
    pthread_mutex_unlock(&k->mu);
}

/* ---- records ---- */

static json_t *keys_limits_json(const long long *limits)
{
    json_t *o = json_object();

    for (int w = 0; w < KEYS_WINDOW__COUNT; w++)
        json_object_set_new(o, keys_window_names[w],
                            limits[w] > 0 ? json_integer(limits[w]) : json_null());
    return o;
}

static void keys_limits_parse(json_t *o, long long *limits)
{
    for (int w = 0; w < KEYS_WINDOW__COUNT; w++) {
        json_t *v = json_object_get(o, keys_window_names[w]);
        limits[w] = json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
    }
}

/* The stored document of r (no usage: that lives in its counter). */
static char *keys_record_dump(const struct keys_record *r)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:b, s:o, s:O}", "name", r->name, "key_prefix",
                          r->key_prefix, "created_ms", (json_int_t)r->created_ms, "enabled",
                          r->enabled, "rate_limits", keys_limits_json(r->limits), "metadata",
                          r->metadata != NULL ? r->metadata : json_object());
    char *s = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    return s;
}

static enum kiln_err keys_record_load(const char *hash, const char *text, size_t len,
                                      struct keys_record *out, struct errbuf *eb)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    json_t *md;

    memset(out, 0, sizeof *out);
    if (!json_is_object(o)) {
        json_decref(o);
        return errbuf_set(eb, KILN_ERR_INTERNAL, "stored key record %.16s is corrupt", hash);
    }
    snprintf(out->key_hash, sizeof out->key_hash, "%s", hash);
    snprintf(out->key_prefix, sizeof out->key_prefix, "%s",
             json_string_value(json_object_get(o, "key_prefix")) ?: "");
    out->name = xstrdup(json_string_value(json_object_get(o, "name")) ?: "");
    out->created_ms = json_integer_value(json_object_get(o, "created_ms"));
    out->enabled = json_is_true(json_object_get(o, "enabled"));
    keys_limits_parse(json_object_get(o, "rate_limits"), out->limits);
    md = json_object_get(o, "metadata");
    out->metadata = json_is_object(md) ? json_incref(md) : json_object();
    json_decref(o);
    return KILN_OK;
}

static void keys_usage(struct keys *k, struct keys_record *r, long long now)
{
    void *val = NULL;
    size_t len = 0;
    long long upd = 0;
    struct errbuf eb;

    if (k->st->ops->kv_get(k->st, KEYS_NS_USE, r->key_hash, now, &val, &len, &upd, &eb) ==
        KILN_OK) {
        r->usage_count = strtoll(val, NULL, 10);
        r->last_used_ms = upd;
    }
    free(val);
}

void keys_env_used(void *arg, const unsigned char sha256[32])
{
    struct keys *k = arg;
    char hash[KEYS_HASH_BUF];
    int i;

    keys_digest_hex(sha256, hash);
    i = keys_env_index(k, hash);
    if (i < 0)
        return;
    atomic_fetch_add(&k->env_uses[i], 1);
    atomic_store(&k->env_last_ms[i], keys_now_ms());
}

static void keys_env_record(struct keys *k, size_t i, struct keys_record *r)
{
    memset(r, 0, sizeof *r);
    memcpy(r->key_hash, k->env_hash[i], KEYS_HASH_BUF);
    memcpy(r->key_prefix, k->env_prefix[i], KEYS_PREFIX_BUF);
    r->name = xasprintf("environment key %zu", i + 1);
    r->enabled = true;
    r->metadata = json_object();
    r->environment = true;
    r->usage_count = atomic_load(&k->env_uses[i]);
    r->last_used_ms = atomic_load(&k->env_last_ms[i]);
}

json_t *keys_record_json(const struct keys_record *r)
{
    char created[32] = "", used[32] = "";
    time_t t;
    struct tm tm;

    if (r->created_ms > 0) {
        t = (time_t)(r->created_ms / 1000);
        gmtime_r(&t, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (r->last_used_ms > 0) {
        t = (time_t)(r->last_used_ms / 1000);
        gmtime_r(&t, &tm);
        strftime(used, sizeof used, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:b, s:o, s:O, s:o, s:I, s:s}", "key_hash", r->key_hash, "key_prefix",
        r->key_prefix, "name", r->name ? r->name : "", "created_at",
        created[0] ? json_string(created) : json_null(), "enabled", r->enabled, "rate_limits",
        keys_limits_json(r->limits), "metadata", r->metadata != NULL ? r->metadata : json_object(),
        "last_used_at", used[0] ? json_string(used) : json_null(), "usage_count",
        (json_int_t)r->usage_count, "source", r->environment ? "environment" : "managed");
}

static enum kiln_err keys_name_check(const char *name, struct errbuf *eb)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n > KEYS_NAME_MAX)
        return errbuf_set(eb, KILN_ERR_INVALID, "name must be 1 to %d bytes", KEYS_NAME_MAX);
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return errbuf_set(eb, KILN_ERR_INVALID, "name must not hold control characters");
    return KILN_OK;
}

static enum kiln_err keys_store_record(struct keys *k, const struct keys_record *r,
                                       struct errbuf *eb)
{
    char *doc = keys_record_dump(r);
    enum kiln_err rc;

    rc = k->st->ops->kv_set(k->st, KEYS_NS, r->key_hash, doc, strlen(doc), keys_now_ms(), 0, eb);
    free(doc);
    return rc;
}

enum kiln_err keys_create(struct keys *k, const char *name, const long long *limits,
                          json_t *metadata, char secret[KEYS_SECRET_BUF], struct keys_record *out,
                          struct errbuf *eb)
{
    unsigned char raw[KEYS_RAND_LEN];
    struct keys_record r = {0};
    enum kiln_err rc;
    size_t off;

    rc = keys_name_check(name, eb);
    if (rc)
        return rc;
    if (metadata != NULL && !json_is_object(metadata))
        return errbuf_set(eb, KILN_ERR_INVALID, "metadata must be an object");
    if (RAND_bytes(raw, sizeof raw) != 1)
        return errbuf_set(eb, KILN_ERR_INTERNAL, "no randomness for a key");
    off = (size_t)snprintf(secret, KEYS_SECRET_BUF, "kiln_");
    for (size_t i = 0; i < sizeof raw; i++, off += 2)
        snprintf(secret + off, KEYS_SECRET_BUF - off, "%02x", raw[i]);
    memset(raw, 0, sizeof raw);
    keys_hash_hex(secret, strlen(secret), r.key_hash);
    snprintf(r.key_prefix, sizeof r.key_prefix, "%.8s", secret);
    r.name = xstrdup(name);
    r.created_ms = keys_now_ms();
    r.enabled = true;
    for (int w = 0; w < KEYS_WINDOW__COUNT; w++)
        r.limits[w] = limits != NULL && limits[w] > 0 ? limits[w] : 0;
    r.metadata = metadata != NULL ? json_deep_copy(metadata) : json_object();
    rc = keys_store_record(k, &r, eb);
    if (rc == KILN_OK && out != NULL) {
        *out = r;
        return KILN_OK;
    }
    keys_record_clear(&r);
    return rc;
}

struct keys_scan {
    struct keys *k;
    struct keys_record *a;
    size_t n, cap;
    long long now;
};

static enum kiln_err keys_scan_one(void *arg, const char *key, const void *val, size_t len,
                                   long long updated_ms, long long expires_ms)
{
    struct keys_scan *s = arg;
    struct errbuf eb;

    (void)updated_ms;
    (void)expires_ms;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->a = xreallocarray(s->a, s->cap, sizeof *s->a);
    }
    if (keys_record_load(key, val, len, &s->a[s->n], &eb) == KILN_OK)
        s->n++;
    return KILN_OK;
}

static int keys_by_created(const void *a, const void *b)
{
    const struct keys_record *x = a, *y = b;

    return x->created_ms < y->created_ms ? -1 : x->created_ms > y->created_ms;
}

enum kiln_err keys_list(struct keys *k, struct keys_record **out, size_t *n, struct errbuf *eb)
{
    struct keys_scan s = {k, NULL, 0, 0, keys_now_ms()};
    struct keys_record *all;
    enum kiln_err rc;

    rc = k->st->ops->kv_scan(k->st, KEYS_NS, "", s.now, keys_scan_one, &s, eb);
    if (rc) {
        keys_records_free(s.a, s.n);
        return rc;
    }
    if (s.n > 1)
        qsort(s.a, s.n, sizeof *s.a, keys_by_created);
    all = xcalloc(k->nenv + s.n + 1, sizeof *all);
    for (size_t i = 0; i < k->nenv; i++)
        keys_env_record(k, i, &all[i]);
    if (s.n > 0)
        memcpy(all + k->nenv, s.a, s.n * sizeof *s.a);
    free(s.a);
    for (size_t i = k->nenv; i < k->nenv + s.n; i++) /* env keys' usage is in memory */
        keys_usage(k, &all[i], s.now);
    *out = all;
    *n = k->nenv + s.n;
    return KILN_OK;
}

enum kiln_err keys_get(struct keys *k, const char *key_hash, struct keys_record *out,
                       struct errbuf *eb)
{
    void *val = NULL;
    size_t len = 0;
    long long now = keys_now_ms();
    int env;
    enum kiln_err rc;

    if (!keys_hash_ok(key_hash))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No such API key");
    env = keys_env_index(k, key_hash);
    if (env >= 0) {
        keys_env_record(k, (size_t)env, out);
        return KILN_OK;
    }
    rc = k->st->ops->kv_get(k->st, KEYS_NS, key_hash, now, &val, &len, NULL, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "No such API key");
    if (rc == KILN_OK) {
        rc = keys_record_load(key_hash, val, len, out, eb);
        if (rc == KILN_OK)
            keys_usage(k, out, now);
    }
    free(val);
    return rc;
}

enum kiln_err keys_update(struct keys *k, const char *key_hash, const struct keys_update *upd,
                          struct keys_record *out, struct errbuf *eb)
{
    struct keys_record r = {0};
    enum kiln_err rc;

    if (keys_hash_ok(key_hash) && keys_env_index(k, key_hash) >= 0)
        return errbuf_set(eb, KILN_ERR_FORBIDDEN, "Environment keys are read-only");
    if (upd->name != NULL) {
        rc = keys_name_check(upd->name, eb);
        if (rc)
            return rc;
    }
    if (upd->metadata != NULL && !json_is_object(upd->metadata))
        return errbuf_set(eb, KILN_ERR_INVALID, "metadata must be an object");
    rc = keys_get(k, key_hash, &r, eb);
    if (rc)
        return rc;
    if (upd->name != NULL) {
        free(r.name);
        r.name = xstrdup(upd->name);
    }
    if (upd->enabled >= 0)
        r.enabled = upd->enabled != 0;
    for (int w = 0; w < KEYS_WINDOW__COUNT; w++)
        if (upd->set_limit[w])
            r.limits[w] = upd->limits[w] > 0 ? upd->limits[w] : 0;
    if (upd->metadata != NULL) {
        json_decref(r.metadata);
        r.metadata = json_deep_copy(upd->metadata);
    }
    rc = keys_store_record(k, &r, eb);
    keys_cache_forget(k, key_hash);
    if (rc == KILN_OK && out != NULL) {
        *out = r;
        return KILN_OK;
    }
    keys_record_clear(&r);
    return rc;
}

static void keys_window_key(const char *hash, int w, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%c", hash, keys_window_tag[w]);
}

enum kiln_err keys_revoke(struct keys *k, const char *key_hash, struct errbuf *eb)
{
    char wk[KEYS_HASH_BUF + 4];
    struct errbuf ignore;
    enum kiln_err rc;

    if (!keys_hash_ok(key_hash))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No such API key");
    if (keys_env_index(k, key_hash) >= 0)
        return errbuf_set(eb, KILN_ERR_FORBIDDEN, "Environment keys are read-only");
    rc = k->st->ops->kv_delete(k->st, KEYS_NS, key_hash, eb);
    /* forget it before anything else can fail: a revoked key must not live on in the cache */
    keys_cache_forget(k, key_hash);
    if (rc == KILN_ERR_NOT_FOUND)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No such API key");
    if (rc)
        return rc;
    (void)k->st->ops->kv_delete(k->st, KEYS_NS_USE, key_hash, &ignore);
    for (int w = 0; w < KEYS_WINDOW__COUNT; w++) {
        keys_window_key(key_hash, w, wk, sizeof wk);
        (void)k->st->ops->kv_delete(k->st, KEYS_NS_RATE, wk, &ignore);
    }
    return KILN_OK;
}

/* The cached view of key hash, from the store on a miss. */
static enum kiln_err keys_fetch(struct keys *k, const char *hash, long long now,
                                struct keys_cached *c, struct errbuf *eb)
{
    struct keys_record r;
    void *val = NULL;
    size_t len = 0;
    enum kiln_err rc;

    if (keys_cache_get(k, hash, now, c))
        return KILN_OK;
    rc = k->st->ops->kv_get(k->st, KEYS_NS, hash, now, &val, &len, NULL, eb);
    if (rc == KILN_ERR_NOT_FOUND) {
        free(val);
        if (eb != NULL) /* empty: auth says "Invalid API key" */
            eb->msg[0] = '\0';
        return KILN_ERR_UNAUTHORIZED;
    }
    if (rc) {
        free(val);
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "API key store unavailable");
    }
    rc = keys_record_load(hash, val, len, &r, eb);
    free(val);
    if (rc)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "API key store unavailable");
    memset(c, 0, sizeof *c);
    memcpy(c->hash, hash, KEYS_HASH_BUF);
    c->enabled = r.enabled;
    memcpy(c->limits, r.limits, sizeof c->limits);
    c->fetched_ms = now > 0 ? now : 1;
    keys_record_clear(&r);
    keys_cache_put(k, c);
    return KILN_OK;
}

/* Whole seconds from now until a window of window_ms that ends at exp_ms is over: at least 1,
 * at most the window's length (a concurrent request that opened the window read the clock a
 * little later than our now: without the cap a 1 s window could say "retry in 2 s"). */
static long keys_secs_until(long long exp_ms, long long now, long long window_ms)
{
    long long s = (exp_ms - now + 999) / 1000, max = (window_ms + 999) / 1000;

    if (s > max)
        s = max;
    return s < 1 ? 1 : (long)s;
}

enum kiln_err keys_auth_lookup(void *arg, const unsigned char sha256[32], const char *key_id,
                               long *retry_after_s, struct auth_result *res, struct errbuf *eb)
{
    struct keys *k = arg;
    struct keys_cached c = {0};
    char hash[KEYS_HASH_BUF], wk[KEYS_HASH_BUF + 4];
    long long now = keys_now_ms(), v = 0, exp = 0;
    long long counted_ttl[KEYS_WINDOW__COUNT] = {0};
    int hit = -1;
    long best_left = -1;
    enum kiln_err rc;

    (void)key_id;
    keys_digest_hex(sha256, hash);
    rc = keys_fetch(k, hash, now, &c, eb);
    if (rc)
        return rc;
    if (!c.enabled)
        return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "API key disabled");
    for (int w = 0; k->rate_limits && w < KEYS_WINDOW__COUNT && hit < 0; w++) {
        if (c.limits[w] <= 0)
            continue;
        keys_window_key(hash, w, wk, sizeof wk);
        rc = k->st->ops->kv_incr(k->st, KEYS_NS_RATE, wk, 1, now, keys_window_ms[w], &v, &exp, eb);
        if (rc) {
            rc = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "API key store unavailable");
            break;
        }
        counted_ttl[w] = keys_window_ms[w];
        if (v > c.limits[w]) {
            hit = w;
        } else if (res != NULL && (best_left < 0 || c.limits[w] - v < best_left)) {
            best_left = (long)(c.limits[w] - v);
            res->rl_limit = (long)c.limits[w];
            res->rl_remaining = best_left;
            res->rl_reset_s = keys_secs_until(exp, now, keys_window_ms[w]);
        }
    }
    if (hit >= 0 || rc) {
        /* a refused request does not use up the other windows */
        struct errbuf ignore;
        for (int w = 0; w < KEYS_WINDOW__COUNT; w++) {
            long long dummy;
            if (counted_ttl[w] == 0)
                continue;
            keys_window_key(hash, w, wk, sizeof wk);
            (void)k->st->ops->kv_incr(k->st, KEYS_NS_RATE, wk, -1, now, counted_ttl[w], &dummy,
                                      NULL, &ignore);
        }
    }
    if (rc)
        return rc;
    if (hit >= 0) {
        long retry = keys_secs_until(exp, now, keys_window_ms[hit]);
        if (res != NULL) {
            res->rl_limit = (long)c.limits[hit];
            res->rl_remaining = 0;
            res->rl_reset_s = retry;
        }
        if (retry_after_s != NULL)
            *retry_after_s = retry;
        return errbuf_set(eb, KILN_ERR_RATE_LIMITED,
                          "Rate limit exceeded: %lld requests per %s; retry in %ld s",
                          c.limits[hit], keys_window_word[hit], retry);
    }
    rc = k->st->ops->kv_incr(k->st, KEYS_NS_USE, hash, 1, now, 0, &v, NULL, eb);
    if (rc)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "API key store unavailable");
    return KILN_OK;
}
