/* Fixed-memory failed-authentication limiter (see faillimit.h for the policy and why). */
#include "http/faillimit.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

/* Entries per set: large enough that collisions rarely evict, small enough to scan. */
#define FAILLIMIT_WAYS 8

struct faillimit_entry {
    uint8_t key[16];
    bool used;
    unsigned count;     /* failures in the current window */
    long window_start;  /* time of the first failure of the window */
    long blocked_until; /* 0 when not blocked */
};

struct faillimit {
    pthread_mutex_t mu;
    unsigned max_failures;
    long window_s;
    size_t nsets;
    uint64_t hash_key[2];            /* SipHash key, random per process */
    struct faillimit_entry *entries; /* nsets * FAILLIMIT_WAYS */
};

static uint64_t faillimit_rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define FAILLIMIT_SIPROUND                                                                         \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = faillimit_rotl(v1, 13);                                                               \
        v1 ^= v0;                                                                                  \
        v0 = faillimit_rotl(v0, 32);                                                               \
        v2 += v3;                                                                                  \
        v3 = faillimit_rotl(v3, 16);                                                               \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = faillimit_rotl(v3, 21);                                                               \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = faillimit_rotl(v1, 17);                                                               \
        v1 ^= v2;                                                                                  \
        v2 = faillimit_rotl(v2, 32);                                                               \
    } while (0)

/* SipHash-2-4 of a 16-byte message: a keyed hash, so that set placement cannot be predicted
 * by someone choosing addresses to pile into one set. */
static uint64_t faillimit_hash(const uint64_t k[2], const uint8_t msg[16])
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
    uint64_t m;

    for (int i = 0; i < 2; i++) {
        memcpy(&m, msg + 8 * i, 8);
        v3 ^= m;
        FAILLIMIT_SIPROUND;
        FAILLIMIT_SIPROUND;
        v0 ^= m;
    }
    m = (uint64_t)16 << 56;
    v3 ^= m;
    FAILLIMIT_SIPROUND;
    FAILLIMIT_SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        FAILLIMIT_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

struct faillimit *faillimit_new(unsigned max_failures, long window_s, size_t capacity)
{
    struct faillimit *l = xcalloc(1, sizeof *l);

    pthread_mutex_init(&l->mu, NULL);
    l->max_failures = max_failures > 0 ? max_failures : 1;
    l->window_s = window_s > 0 ? window_s : 1;
    l->nsets = (capacity + FAILLIMIT_WAYS - 1) / FAILLIMIT_WAYS;
    if (l->nsets == 0)
        l->nsets = 1;
    l->entries = xcalloc(l->nsets * FAILLIMIT_WAYS, sizeof *l->entries);
    if (RAND_bytes((unsigned char *)l->hash_key, sizeof l->hash_key) != 1) {
        /* Without randomness placement is predictable but still bounded; keep going. */
        l->hash_key[0] = (uint64_t)(uintptr_t)l;
        l->hash_key[1] = (uint64_t)(uintptr_t)l->entries;
    }
    return l;
}

void faillimit_free(struct faillimit *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l->entries);
    free(l);
}

size_t faillimit_capacity(const struct faillimit *l)
{
    return l->nsets * FAILLIMIT_WAYS;
}

size_t faillimit_used(struct faillimit *l)
{
    size_t n = 0;

    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nsets * FAILLIMIT_WAYS; i++)
        n += l->entries[i].used;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* The client key of an address: IPv4(-mapped) as is, IPv6 cut to its /64. */
static void faillimit_key(const uint8_t addr[16], uint8_t key[16])
{
    static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    memcpy(key, addr, 16);
    if (memcmp(addr, v4_prefix, sizeof v4_prefix) != 0)
        memset(key + 8, 0, 8);
}

/* An entry whose window is over and that is not blocked holds no information. */
static bool faillimit_stale(const struct faillimit *l, const struct faillimit_entry *e, long now)
{
    if (!e->used)
        return true;
    if (e->blocked_until > now)
        return false;
    return now - e->window_start >= l->window_s;
}

static struct faillimit_entry *faillimit_set(struct faillimit *l, const uint8_t key[16])
{
    return &l->entries[(faillimit_hash(l->hash_key, key) % l->nsets) * FAILLIMIT_WAYS];
}

static struct faillimit_entry *faillimit_find(struct faillimit_entry *set, const uint8_t key[16])
{
    for (int i = 0; i < FAILLIMIT_WAYS; i++)
        if (set[i].used && memcmp(set[i].key, key, 16) == 0)
            return &set[i];
    return NULL;
}

/* The entry to reuse in a full set: a stale one, else the unblocked one with the fewest
 * failures (oldest first), else the blocked one that unblocks soonest. */
static struct faillimit_entry *faillimit_victim(const struct faillimit *l,
                                                struct faillimit_entry *set, long now)
{
    struct faillimit_entry *best = NULL;

    for (int i = 0; i < FAILLIMIT_WAYS; i++) {
        struct faillimit_entry *e = &set[i];
        if (faillimit_stale(l, e, now))
            return e;
        if (best == NULL) {
            best = e;
            continue;
        }
        bool e_blocked = e->blocked_until > now, best_blocked = best->blocked_until > now;
        if (e_blocked != best_blocked) {
            if (!e_blocked)
                best = e;
        } else if (e_blocked) {
            if (e->blocked_until < best->blocked_until)
                best = e;
        } else if (e->count < best->count ||
                   (e->count == best->count && e->window_start < best->window_start)) {
            best = e;
        }
    }
    return best;
}

static long faillimit_retry(const struct faillimit_entry *e, long now)
{
    long r = e->blocked_until - now;
    return r > 0 ? r : 1;
}

bool faillimit_blocked(struct faillimit *l, const uint8_t addr[16], long now, long *retry_after_s)
{
    uint8_t key[16];
    struct faillimit_entry *e;
    bool blocked = false;

    faillimit_key(addr, key);
    pthread_mutex_lock(&l->mu);
    e = faillimit_find(faillimit_set(l, key), key);
    if (e != NULL && e->blocked_until > now) {
        blocked = true;
        if (retry_after_s != NULL)
            *retry_after_s = faillimit_retry(e, now);
    }
    pthread_mutex_unlock(&l->mu);
    return blocked;
}

bool faillimit_fail(struct faillimit *l, const uint8_t addr[16], long now, long *retry_after_s)
{
    uint8_t key[16];
    struct faillimit_entry *set, *e;
    bool blocked = false;

    faillimit_key(addr, key);
    pthread_mutex_lock(&l->mu);
    set = faillimit_set(l, key);
    e = faillimit_find(set, key);
    if (e == NULL) {
        e = faillimit_victim(l, set, now);
        memset(e, 0, sizeof *e);
        memcpy(e->key, key, 16);
        e->used = true;
    }
    if (e->blocked_until <= now && (e->count == 0 || now - e->window_start >= l->window_s)) {
        e->count = 0;
        e->blocked_until = 0;
        e->window_start = now;
    }
    if (e->count < l->max_failures)
        e->count++;
    if (e->count >= l->max_failures) {
        if (e->blocked_until <= now)
            e->blocked_until = now + l->window_s;
        blocked = true;
        if (retry_after_s != NULL)
            *retry_after_s = faillimit_retry(e, now);
    }
    pthread_mutex_unlock(&l->mu);
    return blocked;
}
