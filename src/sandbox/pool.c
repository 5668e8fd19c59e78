/* Warm pools of parked sandboxes (pool.h): one list per kind, a filler thread that builds,
 * checks and recycles them, and leases that take one or fall back to a cold sandbox. */
#include "sandbox/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox/park.h"
#include "util/xmalloc.h"

#define POOL_DEF_MAX_IDLE_MS (10LL * 60 * 1000)
#define POOL_DEF_REPLENISH   2000u
/* How long the filler lets running executions have the CPU before it builds anyway: on a small
 * machine a refill racing the execution it was triggered by costs that execution more than the
 * build it hides (measured: bash `echo 1` 16 ms warm alone, 32 ms with the refill beside it). */
#define POOL_DEFER_MS 250
/* A kind whose sandboxes keep failing (the build fails, or its interpreter dies while parked)
 * pauses this long after POOL_FAIL_STREAK failures in a row, instead of rebuilding every round. */
#define POOL_FAIL_STREAK   3
#define POOL_FAIL_PAUSE_MS 30000LL

struct pool_kind {
    struct sbx_pool_kind k;
    struct sbx_step interp_step;
    struct sbx_job interp_job; /* the pre-started interpreter's job, when k.interp_argv */
    struct sbx_parked **idle;  /* oldest first; capacity k.size */
    unsigned nidle, building;
    bool demanded; /* leased at least once (fills without warm-up start then) */
    unsigned fail_streak;
    long long paused_until_ms;
    unsigned long long hits, misses, created, failed, recycled, early;
    long long create_ms_total;
};

struct sbx_pool {
    struct sbx_ctx *ctx;
    struct pool_kind *kinds;
    size_t nkinds;
    bool warmup, exhaustion_trigger, enabled;
    unsigned batch, replenish_ms, max_total, total; /* total: parked + being built */
    unsigned inflight;                              /* sbx_lease_run() calls running */
    long long last_end_ms;                          /* when the last one ended (sbx_now_ms()) */
    unsigned long long starts;                      /* executions begun (takes and cold runs) */
    long long max_idle_ms;
    pthread_mutex_t mu;
    pthread_cond_t wake, changed;
    pthread_t thread;
    bool thread_started, stop, kick;
    struct sbx_cloner *cloner; /* the filler's (park.h); NULL: it clones by itself */
};

struct sbx_lease {
    struct sbx_pool *pool;
    struct pool_kind *kind; /* NULL: no such pool */
    struct sbx_parked *parked;
    struct sbx_slot slot; /* the parked sandbox's slot, held until free; lock_fd -1 if cold */
    struct sbx_workspace *ws;
    bool warm, used;
    bool counted; /* in pool->inflight since the take (until its run ends, or it is freed) */
};

static struct pool_kind *find_kind(struct sbx_pool *pool, const char *key)
{
    if (pool == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < pool->nkinds; i++)
        if (strcmp(pool->kinds[i].k.key, key) == 0)
            return &pool->kinds[i];
    return NULL;
}

static bool kind_wants(const struct sbx_pool *pool, const struct pool_kind *pk)
{
    return pk->k.size > 0 && (pool->warmup || pk->demanded) &&
           (pk->paused_until_ms == 0 || sbx_now_ms() >= pk->paused_until_ms) &&
           pk->nidle + pk->building < pk->k.size && pool->total < pool->max_total;
}

static bool pool_full(const struct sbx_pool *pool)
{
    if (!pool->enabled)
        return true;
    for (size_t i = 0; i < pool->nkinds; i++) {
        const struct pool_kind *pk = &pool->kinds[i];
        if (pk->nidle < pk->k.size && pool->total < pool->max_total)
            return false;
        if (pk->building > 0)
            return false;
    }
    return true;
}

static void kind_failed(struct pool_kind *pk)
{
    if (++pk->fail_streak >= POOL_FAIL_STREAK) {
        pk->paused_until_ms = sbx_now_ms() + POOL_FAIL_PAUSE_MS;
        pk->fail_streak = 0;
    }
}

/* Drop the idle sandboxes that died or grew old. Called locked; frees unlocked. */
static void pool_check(struct sbx_pool *pool)
{
    long long now = sbx_now_ms();

    for (size_t i = 0; i < pool->nkinds; i++) {
        struct pool_kind *pk = &pool->kinds[i];
        for (unsigned j = 0; j < pk->nidle;) {
            struct sbx_parked *p = pk->idle[j];
            bool alive = sbx_park_alive(p);
            if (alive && now - p->created_ms < pool->max_idle_ms) {
                j++;
                continue;
            }
            if (!alive)
                kind_failed(pk);
            memmove(&pk->idle[j], &pk->idle[j + 1], (pk->nidle - j - 1) * sizeof *pk->idle);
            pk->nidle--;
            pool->total--;
            pk->recycled++;
            pthread_mutex_unlock(&pool->mu);
            sbx_park_free(p);
            pthread_mutex_lock(&pool->mu);
        }
    }
}

/* Wait until no execution runs, then — when pk still has a sandbox ready: an empty pool is
 * refilled at once — until the last one's answer is out (SBX_SETTLE_MS after it ended, or as
 * soon as another execution begins: back to back, the client has that answer by then and the
 * refill must not wait for a quiet moment that never comes); at most POOL_DEFER_MS in all.
 * Called locked. */
static void pool_defer(struct sbx_pool *pool, const struct pool_kind *pk)
{
    long long start = sbx_now_ms();
    unsigned long long starts = pool->starts;

    while (!pool->stop) {
        long long until = pool->inflight > 0 ? start + POOL_DEFER_MS
                          : pk->nidle > 0 && pool->starts == starts
                              ? pool->last_end_ms + SBX_SETTLE_MS
                              : 0;
        long long left;
        struct timespec ts;
        if (until > start + POOL_DEFER_MS)
            until = start + POOL_DEFER_MS;
        left = until - sbx_now_ms();
        if (left <= 0)
            return;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += left * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&pool->wake, &pool->mu, &ts);
    }
}

/* One refill round: up to batch new sandboxes per kind that is short. Called locked. */
static bool pool_fill(struct sbx_pool *pool)
{
    bool any = false;

    for (size_t i = 0; i < pool->nkinds && !pool->stop; i++) {
        struct pool_kind *pk = &pool->kinds[i];
        for (unsigned b = 0; b < pool->batch && !pool->stop && kind_wants(pool, pk); b++) {
            struct sbx_parked *p = NULL;
            struct errbuf eb = {{0}};
            long long t0 = sbx_now_ms();
            enum kiln_err err;

            pool_defer(pool, pk);
            if (pool->stop || !kind_wants(pool, pk))
                break;
            pk->building++;
            pool->total++;
            pthread_mutex_unlock(&pool->mu);
            err = sbx_park_new(pool->ctx, pool->cloner,
                               pk->k.interp_argv != NULL ? &pk->interp_job : NULL, pk->k.boot_path,
                               pk->k.boot_text, &p, &eb);
            pthread_mutex_lock(&pool->mu);
            pk->building--;
            any = true;
            if (err) {
                pool->total--;
                pk->failed++;
                kind_failed(pk);
                break; /* a host problem or no slot: try again next round */
            }
            pk->created++;
            pk->create_ms_total += sbx_now_ms() - t0;
            pk->idle[pk->nidle++] = p;
            pthread_cond_broadcast(&pool->changed);
        }
    }
    return any;
}

static void *pool_thread(void *arg)
{
    struct sbx_pool *pool = arg;
    struct errbuf eb = {{0}};

    /* Parked sandboxes are cloned by a helper forked now, from this thread (their parent), once
     * the kinds their plans point to exist (park.h, cloner.c); without it, by this thread. */
    if (sbx_cloner_start(&pool->cloner, &eb) != KILN_OK)
        fprintf(stderr, "kiln: pool: %s; parked sandboxes are cloned from the server\n", eb.msg);
    pthread_mutex_lock(&pool->mu);
    while (!pool->stop) {
        struct timespec until;
        pool_check(pool);
        pool_fill(pool);
        pthread_cond_broadcast(&pool->changed);
        if (pool->stop || pool->kick) {
            pool->kick = false;
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += pool->replenish_ms / 1000;
        until.tv_nsec += (long)(pool->replenish_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!pool->stop && !pool->kick &&
               pthread_cond_timedwait(&pool->wake, &pool->mu, &until) != ETIMEDOUT)
            ;
        pool->kick = false;
    }
    pthread_mutex_unlock(&pool->mu);
    sbx_cloner_stop(pool->cloner);
    pool->cloner = NULL;
    return NULL;
}

enum kiln_err sbx_pool_new(struct sbx_ctx *ctx, const struct sbx_pool_opts *opts,
                           struct sbx_pool **out, struct errbuf *eb)
{
    struct sbx_pool *pool = xcalloc(1, sizeof *pool);
    unsigned cap;

    *out = NULL;
    pool->ctx = ctx;
    pool->nkinds = opts->nkinds;
    pool->kinds = xcalloc(opts->nkinds > 0 ? opts->nkinds : 1, sizeof *pool->kinds);
    pool->warmup = opts->warmup;
    pool->exhaustion_trigger = opts->exhaustion_trigger;
    pool->batch = opts->batch > 0 ? opts->batch : 1;
    pool->replenish_ms = opts->replenish_ms > 0 ? opts->replenish_ms : POOL_DEF_REPLENISH;
    pool->max_idle_ms = opts->max_idle_ms > 0 ? opts->max_idle_ms : POOL_DEF_MAX_IDLE_MS;
    /* Never let the pools hold every slot: a quarter (at least one) stays for cold runs. */
    cap = ctx->slots > 1 ? ctx->slots - ctx->slots / 4 - 1 : 0;
    pool->max_total = opts->max_total > 0 && opts->max_total < cap ? opts->max_total : cap;
    for (size_t i = 0; i < opts->nkinds; i++) {
        struct pool_kind *pk = &pool->kinds[i];
        pk->k = opts->kinds[i];
        pk->idle = xcalloc(pk->k.size > 0 ? pk->k.size : 1, sizeof *pk->idle);
        pk->interp_step.argv = pk->k.interp_argv;
        pk->interp_job.steps = &pk->interp_step;
        pk->interp_job.nsteps = 1;
        pk->interp_job.env = pk->k.env;
        pk->interp_job.cancel_fd = -1;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->changed, NULL);
    /* Parked sandboxes are attached with open_tree/move_mount, which needs root. */
    pool->enabled = ctx->root && pool->max_total > 0;
    if (pool->enabled) {
        int rc = pthread_create(&pool->thread, NULL, pool_thread, pool);
        if (rc != 0) {
            sbx_pool_free(pool);
            return errbuf_set(eb, KILN_ERR_INTERNAL, "cannot start the pool thread: %s",
                              strerror(rc));
        }
        pool->thread_started = true;
    }
    *out = pool;
    return KILN_OK;
}

void sbx_pool_free(struct sbx_pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->thread_started) {
        pthread_mutex_lock(&pool->mu);
        pool->stop = true;
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mu);
        pthread_join(pool->thread, NULL);
    }
    for (size_t i = 0; i < pool->nkinds; i++) {
        for (unsigned j = 0; j < pool->kinds[i].nidle; j++)
            sbx_park_free(pool->kinds[i].idle[j]);
        free(pool->kinds[i].idle);
    }
    pthread_cond_destroy(&pool->changed);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mu);
    free(pool->kinds);
    free(pool);
}

bool sbx_pool_wait_full(struct sbx_pool *pool, long long timeout_ms)
{
    struct timespec until;
    bool full;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&pool->mu);
    for (size_t i = 0; i < pool->nkinds; i++)
        pool->kinds[i].demanded = true;
    pool->kick = true;
    pthread_cond_broadcast(&pool->wake);
    while (!(full = pool_full(pool)))
        if (pthread_cond_timedwait(&pool->changed, &pool->mu, &until) == ETIMEDOUT) {
            full = pool_full(pool);
            break;
        }
    pthread_mutex_unlock(&pool->mu);
    return full;
}

size_t sbx_pool_nkinds(const struct sbx_pool *pool)
{
    return pool != NULL ? pool->nkinds : 0;
}

void sbx_pool_stats(struct sbx_pool *pool, size_t i, struct sbx_pool_stats *out)
{
    const struct pool_kind *pk = &pool->kinds[i];

    pthread_mutex_lock(&pool->mu);
    out->key = pk->k.key;
    out->size = pk->k.size;
    out->idle = pk->nidle;
    out->hits = pk->hits;
    out->misses = pk->misses;
    out->early = pk->early;
    out->created = pk->created;
    out->failed = pk->failed;
    out->recycled = pk->recycled;
    out->create_ms_mean = pk->created > 0 ? (double)pk->create_ms_total / (double)pk->created : 0;
    pthread_mutex_unlock(&pool->mu);
}

/* The oldest live parked sandbox of pk, or NULL. Dead ones found on the way are recycled. */
static struct sbx_parked *pool_pop(struct sbx_pool *pool, struct pool_kind *pk, bool *counted)
{
    struct sbx_parked *p = NULL;

    pthread_mutex_lock(&pool->mu);
    /* The execution counts as running from the take, not from sbx_lease_run(): the kick below
     * would otherwise start a refill beside the workspace handover and the program's own start
     * (measured: js console.log(1) lost ~35 ms to a node booting beside it). */
    pool->inflight++;
    pool->starts++;
    *counted = true;
    pk->demanded = true;
    while (pk->nidle > 0) {
        p = pk->idle[0];
        memmove(&pk->idle[0], &pk->idle[1], (pk->nidle - 1) * sizeof *pk->idle);
        pk->nidle--;
        pool->total--;
        if (sbx_park_alive(p))
            break;
        pk->recycled++;
        pthread_mutex_unlock(&pool->mu);
        sbx_park_free(p);
        pthread_mutex_lock(&pool->mu);
        p = NULL;
    }
    /* Taking one leaves room: refill now rather than at the next round when asked to (and
     * always when this was the first use of a pool without warm-up). */
    if (pool->exhaustion_trigger || pk->nidle == 0) {
        pool->kick = true;
        pthread_cond_broadcast(&pool->wake);
    }
    pthread_mutex_unlock(&pool->mu);
    return p;
}

enum kiln_err sbx_pool_lease(struct sbx_pool *pool, const char *key, long long data_mb,
                             struct sbx_lease **out, struct errbuf *eb)
{
    struct sbx_lease *l = xcalloc(1, sizeof *l);
    struct sbx_ctx *ctx = pool != NULL ? pool->ctx : NULL;
    enum kiln_err err;

    *out = NULL;
    if (pool == NULL) {
        free(l);
        return errbuf_set(eb, KILN_ERR_INVALID, "sbx_pool_lease: no pool");
    }
    l->pool = pool;
    l->slot.lock_fd = -1;
    l->kind = find_kind(pool, key);
    if (l->kind != NULL && pool->enabled && l->kind->k.size > 0)
        l->parked = pool_pop(pool, l->kind, &l->counted);
    if (l->parked != NULL) {
        /* The workspace's files must belong to the uid the parked sandbox maps to. */
        l->slot = l->parked->slot;
        l->parked->slot.lock_fd = -1;
        err = sbx_workspace_new_on(ctx, data_mb, &l->slot, &l->ws, eb);
    } else {
        err = sbx_workspace_new(ctx, data_mb, &l->ws, eb);
    }
    if (err) {
        sbx_lease_free(l);
        return err;
    }
    *out = l;
    return KILN_OK;
}

struct sbx_workspace *sbx_lease_workspace(struct sbx_lease *lease)
{
    return lease->ws;
}

bool sbx_lease_warm(const struct sbx_lease *lease)
{
    return lease->used ? lease->warm : lease->parked != NULL;
}

static bool vec_eq(const char *const *a, const char *const *b)
{
    size_t i = 0;

    if (a == NULL || b == NULL)
        return a == b;
    for (; a[i] != NULL && b[i] != NULL; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return a[i] == NULL && b[i] == NULL;
}

/* The job's arguments for the pre-started interpreter (past run_prefix), or NULL when the job
 * does not fit it. */
static const char *const *interp_args(const struct pool_kind *pk, const struct sbx_parked *p,
                                      const struct sbx_job *job, size_t *nargs)
{
    const char *const *argv;
    struct sbx_limits lim;
    size_t n = 0, k = 0;

    if (pk == NULL || pk->k.interp_argv == NULL || pk->k.run_prefix == NULL || job->nsteps != 1 ||
        job->stdin_data != NULL || !vec_eq(job->env, pk->k.env))
        return NULL;
    /* The interpreter's rlimits can only be lowered at take (park.c). */
    sbx_limits_resolve(p->ctx, &job->limits, &lim);
    if (lim.open_files > p->lim.open_files || lim.pids > p->lim.pids)
        return NULL;
    argv = job->steps[0].argv;
    for (; pk->k.run_prefix[k] != NULL; k++)
        if (argv[k] == NULL || strcmp(argv[k], pk->k.run_prefix[k]) != 0)
            return NULL;
    while (argv[k + n] != NULL)
        n++;
    *nargs = n;
    return argv + k;
}

static enum kiln_err lease_run(struct sbx_lease *lease, const struct sbx_job *job,
                               struct sbx_result *res, struct errbuf *eb);

enum kiln_err sbx_lease_run(struct sbx_lease *lease, const struct sbx_job *job,
                            struct sbx_result *res, struct errbuf *eb)
{
    struct sbx_pool *pool = lease->pool;
    enum kiln_err err;

    if (job->ws != lease->ws)
        return errbuf_set(eb, KILN_ERR_INVALID, "the job must run on the lease's workspace");
    pthread_mutex_lock(&pool->mu);
    if (!lease->counted) {
        pool->inflight++;
        pool->starts++;
    }
    lease->counted = false;
    pthread_mutex_unlock(&pool->mu);
    err = lease_run(lease, job, res, eb);
    pthread_mutex_lock(&pool->mu);
    pool->inflight--;
    pool->last_end_ms = sbx_now_ms();
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    return err;
}

static enum kiln_err lease_run(struct sbx_lease *lease, const struct sbx_job *job,
                               struct sbx_result *res, struct errbuf *eb)
{
    struct sbx_pool *pool = lease->pool;
    struct pool_kind *pk = lease->kind;
    enum kiln_err err;

    if (lease->parked != NULL && !lease->used) {
        struct sbx_parked *p = lease->parked;
        size_t nargs = 0;
        const char *const *args = interp_args(pk, p, job, &nargs);

        lease->parked = NULL;
        lease->used = true;
        /* a sandbox answered before its teardown comes back: freed with the lease, which the
         * caller frees off the answer's path */
        err = sbx_park_take(p, lease->ws, job, args, nargs, res, &lease->parked, eb);
        if (err != KILN_ERR_UNAVAILABLE) {
            if (!err) {
                pthread_mutex_lock(&pool->mu);
                pk->hits++;
                pk->early += lease->parked != NULL ? 1 : 0;
                pk->fail_streak = 0;
                pthread_mutex_unlock(&pool->mu);
                lease->warm = true;
            }
            return err;
        }
        errbuf_clear(eb);
    }
    lease->used = true;
    if (pk != NULL) {
        pthread_mutex_lock(&pool->mu);
        pk->misses++;
        pthread_mutex_unlock(&pool->mu);
    }
    return sbx_run(pool->ctx, job, res, eb);
}

void sbx_lease_free(struct sbx_lease *lease)
{
    if (lease == NULL)
        return;
    if (lease->counted) { /* taken but never run */
        pthread_mutex_lock(&lease->pool->mu);
        lease->pool->inflight--;
        pthread_cond_broadcast(&lease->pool->wake);
        pthread_mutex_unlock(&lease->pool->mu);
    }
    sbx_park_free(lease->parked);
    sbx_workspace_free(lease->ws);
    sbx_slot_release(&lease->slot);
    free(lease);
}
