/* Managed API keys (issue 7) on the store port: created by the admin API with a secret shown once
 * (only its SHA-256 is stored), listed beside the environment keys (API_KEY, API_KEYS; listed
 * read-only), updated (name, enabled, rate limits, metadata) and revoked. Each use is counted
 * (usage_count, last_used_at) and checked against the key's fixed-window rate limits per second,
 * minute, hour, day and month, kept as store counters (kv_incr) so that they hold across threads
 * (and, with a shared store, across instances). keys_auth_lookup() is the auth_key_lookup_fn that
 * plugs this into http/auth; validated records are cached in memory for API_KEY_CACHE_TTL s.
 *
 * Environment keys' use is counted in memory (keys_env_used), not in the store.
 *
 * Store layout: ns "apikey" key <key_hash> = JSON record; ns "apikey_use" key <key_hash> =
 * usage counter (its updated_ms is last_used_at); ns "ratelimit" key <key_hash>:<window> =
 * fixed-window counter expiring at the window's end.
 *
 * Thread safety: every function may be called from any thread once keys_new() has returned. */
#ifndef KILN_CORE_KEYS_H
#define KILN_CORE_KEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "http/auth.h"
#include "store/store.h"
#include "util/err.h"

/* The rate-limit windows, in the order of the JSON object rate_limits. */
enum keys_window {
    KEYS_PER_SECOND, /* "per_second" */
    KEYS_PER_MINUTE, /* "per_minute" */
    KEYS_HOURLY,     /* "hourly" */
    KEYS_DAILY,      /* "daily" */
    KEYS_MONTHLY,    /* "monthly" (30 days) */
    KEYS_WINDOW__COUNT
};

/* "per_second", "per_minute", "hourly", "daily", "monthly". */
extern const char *const keys_window_names[KEYS_WINDOW__COUNT];

/* A secret: "kiln_" + 40 hex digits (160 bits from the OpenSSL CSPRNG), NUL-terminated. */
#define KEYS_SECRET_BUF 48
/* Lower-case hex SHA-256 and the shown prefix of a secret (its first 8 characters). */
#define KEYS_HASH_BUF   65
#define KEYS_PREFIX_BUF 16
/* Longest key name accepted (bytes). */
#define KEYS_NAME_MAX 128

/* One key as the admin API shows it. Owned strings: release with keys_record_clear(). */
struct keys_record {
    char key_hash[KEYS_HASH_BUF];
    char key_prefix[KEYS_PREFIX_BUF];
    char *name;
    long long created_ms; /* 0 = unknown (environment keys) */
    bool enabled;
    long long limits[KEYS_WINDOW__COUNT]; /* requests per window; 0 = no limit */
    json_t *metadata;                     /* an object (owned reference) */
    long long last_used_ms;               /* 0 = never */
    long long usage_count;
    bool environment; /* from API_KEY / API_KEYS: read-only */
};

/* A partial update: NULL / -1 / false leave a field as it is. */
struct keys_update {
    const char *name;
    int enabled; /* -1 keep, 0 disable, 1 enable */
    bool set_limit[KEYS_WINDOW__COUNT];
    long long limits[KEYS_WINDOW__COUNT]; /* where set_limit: new value, 0 = no limit */
    json_t *metadata;                     /* borrowed; NULL = keep */
};

struct keys;

/* A manager on st (borrowed; outlives it) for cfg (borrowed: API_KEY, API_KEYS,
 * API_KEY_CACHE_TTL, RATE_LIMIT_ENABLED). Never NULL. Free with keys_free(). */
struct keys *keys_new(const struct kiln_config *cfg, struct store *st);
void keys_free(struct keys *k);

/* Create a key named name (1..KEYS_NAME_MAX bytes) with limits (KEYS_WINDOW__COUNT values, 0 = no
 * limit; NULL = none) and metadata (an object or NULL; borrowed). The secret goes to secret (shown
 * once, never stored) and the record to *out (caller clears). KILN_ERR_INVALID for a bad name. */
enum kiln_err keys_create(struct keys *k, const char *name, const long long *limits,
                          json_t *metadata, char secret[KEYS_SECRET_BUF], struct keys_record *out,
                          struct errbuf *eb);

/* Every key, environment keys first, then managed ones by creation time. Caller frees *out with
 * keys_records_free(). */
enum kiln_err keys_list(struct keys *k, struct keys_record **out, size_t *n, struct errbuf *eb);

/* One key by its hash. KILN_ERR_NOT_FOUND when unknown. Caller clears *out. */
enum kiln_err keys_get(struct keys *k, const char *key_hash, struct keys_record *out,
                       struct errbuf *eb);

/* Apply upd to a managed key and return the new record in *out (may be NULL). KILN_ERR_FORBIDDEN
 * for an environment key, KILN_ERR_NOT_FOUND for an unknown one, KILN_ERR_INVALID for a bad
 * name. The in-memory cache forgets the key at once. */
enum kiln_err keys_update(struct keys *k, const char *key_hash, const struct keys_update *upd,
                          struct keys_record *out, struct errbuf *eb);

/* Revoke (delete) a managed key with its usage and rate-limit counters; it is refused from the
 * next request on. KILN_ERR_FORBIDDEN for an environment key, KILN_ERR_NOT_FOUND when unknown. */
enum kiln_err keys_revoke(struct keys *k, const char *key_hash, struct errbuf *eb);

/* The auth_key_lookup_fn (arg = struct keys *): valid and enabled → count the use, check and
 * count every rate-limit window of the key (when RATE_LIMIT_ENABLED), fill res->rl_* with the
 * tightest window. A window over its limit → KILN_ERR_RATE_LIMITED with *retry_after_s and
 * res->rl_* of that window (nothing is counted then); a disabled key → KILN_ERR_UNAUTHORIZED
 * "API key disabled"; unknown → KILN_ERR_UNAUTHORIZED; store down → KILN_ERR_UNAVAILABLE. */
enum kiln_err keys_auth_lookup(void *arg, const unsigned char sha256[32], const char *key_id,
                               long *retry_after_s, struct auth_result *res, struct errbuf *eb);

/* The auth_key_used_fn (arg = struct keys *): counts a use of the environment key with that
 * SHA-256 (usage_count, last_used_at of its record), in memory: per process, from 0 at start,
 * never in the store (env keys are checked by auth itself; a store write per request would put
 * the store on the hot path of every LibreChat call). Unknown digests are ignored. */
void keys_env_used(void *arg, const unsigned char sha256[32]);

/* The record as the admin API's JSON object (new reference). */
json_t *keys_record_json(const struct keys_record *r);

void keys_record_clear(struct keys_record *r);
void keys_records_free(struct keys_record *a, size_t n);

#endif
