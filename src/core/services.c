#include "core/services.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/exec_service.h"
#include "core/sessions.h"
#include "core/state.h"
#include "lang/lang.h"
#include "lang/warm.h"
#include "sandbox/sandbox.h"
#include "sandbox/zygote.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

/* Most pool kinds services_pool_metrics() follows (the language table is smaller). */
#define SERVICES_MAX_KINDS 64

/* What services_pool_metrics() already added to the counters (which only ever increase, while
 * the pools report totals). */
struct services_pool_seen {
    pthread_mutex_t mu;
    unsigned long long hits[SERVICES_MAX_KINDS], misses[SERVICES_MAX_KINDS];
    unsigned long long early[SERVICES_MAX_KINDS];
    unsigned long long zyg_hits, zyg_misses, zyg_restarts, zyg_early;
};

/* Add now - *seen to counter id (labels as metrics_add()), remember now. */
static void services_counter_sync(struct metrics *m, enum metric_id id, const char *const *labels,
                                  unsigned long long now, unsigned long long *seen)
{
    if (now > *seen)
        metrics_add(m, id, labels, now - *seen);
    *seen = now;
}

void services_pool_metrics(struct kiln_services *svc)
{
    struct services_pool_seen *seen;
    struct metrics *m;

    if (svc == NULL || svc->metrics == NULL || svc->seen == NULL)
        return;
    m = svc->metrics;
    seen = svc->seen;
    pthread_mutex_lock(&seen->mu);
    if (svc->pools != NULL) {
        struct sbx_pool *pool = lang_pools_pool(svc->pools);
        size_t n = sbx_pool_nkinds(pool);
        for (size_t i = 0; i < n && i < SERVICES_MAX_KINDS; i++) {
            struct sbx_pool_stats st;
            sbx_pool_stats(pool, i, &st);
            if (svc->zyg != NULL && strcmp(st.key, "py") == 0)
                continue; /* the zygotes are Python's warm path */
            const char *lab[1] = {st.key};
            metrics_gauge_set(m, METRIC_POOL_SIZE, lab, st.size);
            metrics_gauge_set(m, METRIC_POOL_IDLE, lab, st.idle);
            services_counter_sync(m, METRIC_POOL_HITS_TOTAL, lab, st.hits, &seen->hits[i]);
            services_counter_sync(m, METRIC_POOL_MISSES_TOTAL, NULL, st.misses, &seen->misses[i]);
            services_counter_sync(m, METRIC_EARLY_ANSWERS_TOTAL, lab, st.early, &seen->early[i]);
        }
    }
    if (svc->zyg != NULL) {
        /* Python: the children forked ahead of demand are its warm sandboxes */
        const char *lab[1] = {"py"};
        struct zyg_stats zs;
        unsigned nz = svc->cfg->pod_pool_py > 0 ? (unsigned)svc->cfg->pod_pool_py : 0;
        zyg_get_stats(svc->zyg, &zs);
        metrics_gauge_set(m, METRIC_POOL_SIZE, lab, (int64_t)nz * (zs.running[0] ? 2 : 1));
        metrics_gauge_set(m, METRIC_POOL_IDLE, lab, zs.ready[0] + zs.ready[1]);
        services_counter_sync(m, METRIC_POOL_HITS_TOTAL, lab, zs.hits, &seen->zyg_hits);
        services_counter_sync(m, METRIC_POOL_MISSES_TOTAL, NULL, zs.misses + zs.fallbacks,
                              &seen->zyg_misses);
        services_counter_sync(m, METRIC_ZYGOTE_RESTARTS_TOTAL, NULL, zs.restarts,
                              &seen->zyg_restarts);
        services_counter_sync(m, METRIC_EARLY_ANSWERS_TOTAL, lab, zs.early, &seen->zyg_early);
        metrics_gauge_set(m, METRIC_ZYGOTE_PREPARED_READY, NULL, zs.prepared_ready);
    }
    pthread_mutex_unlock(&seen->mu);
}

long long services_now_ms(const struct kiln_services *svc)
{
    struct timespec ts;

    if (svc != NULL && svc->clock != NULL)
        return svc->clock(svc->clock_arg);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum kiln_err services_open_store(const struct kiln_config *cfg, struct store **out,
                                         struct errbuf *eb)
{
    char *path;
    enum kiln_err rc;

    if (strcmp(cfg->store, "sqlite") != 0)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "STORE=%s is not available in this build",
                          cfg->store);
    path = xasprintf("%s/kiln.db", cfg->data_dir);
    rc = store_sqlite_open(path, out, eb);
    free(path);
    return rc;
}

/* The Python zygotes (issue 5): with the pools on, as root; they start in the background and
 * every execution falls back to a cold sandbox until they are ready, so a failure here is only
 * logged. Their environment is the py row's, as a cold run's. */
static void services_start_zygotes(struct kiln_services *svc)
{
    const struct kiln_config *cfg = svc->cfg;
    const struct lang *py = lang_find("py");
    const char *const *base = lang_base_env();
    const char *env[64];
    struct zyg_opts zo = {0};
    struct errbuf eb = {{0}};
    size_t n = 0;
    long ncpu;

    if (!cfg->pod_pool_enabled || cfg->pod_pool_py <= 0 || geteuid() != 0 || py == NULL ||
        py->warm != LANG_WARM_ZYGOTE)
        return;
    for (size_t i = 0; base[i] != NULL && n < 48; i++)
        env[n++] = base[i];
    for (size_t i = 0; py->env != NULL && py->env[i] != NULL && n < 63; i++)
        env[n++] = py->env[i];
    env[n] = NULL;
    zo.preload = cfg->py_preload;
    zo.env = env;
    zo.warm = (unsigned)cfg->pod_pool_py;
    zo.prepared_heavy = (unsigned)cfg->py_prepared_heavy;
    /* children forked ahead at once: the batch setting, but no more than there are CPUs */
    zo.refillers = (unsigned)cfg->pod_pool_parallel_batch;
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 0 && (long)zo.refillers > ncpu)
        zo.refillers = (unsigned)ncpu;
    zo.state = cfg->state_persistence_enabled;
    zo.light = true;
    if (zyg_start(svc->sbx, &zo, &svc->zyg, &eb) != KILN_OK) {
        fprintf(stderr, "kiln: Python zygote not started (executions run cold): %s\n", eb.msg);
        return;
    }
    exec_local_set_zygote(svc->exec, svc->zyg);
}

/* The warm pools of the other languages (POD_POOL_<LANG>; py only when its zygotes are not
 * running, as they are its warm path). Unprivileged the pools stay empty and every lease is
 * cold; a failure is only logged. */
static void services_start_pools(struct kiln_services *svc)
{
    struct kiln_config c = *svc->cfg; /* read during lang_pools_new() only */
    struct errbuf eb = {{0}};

    if (!c.pod_pool_enabled)
        return;
    if (svc->zyg != NULL)
        c.pod_pool_py = 0;
    if (lang_pools_new(svc->sbx, &c, &svc->pools, &eb) != KILN_OK) {
        fprintf(stderr, "kiln: warm pools not started (executions run cold): %s\n", eb.msg);
        svc->pools = NULL;
        return;
    }
    exec_local_set_pool(svc->exec, lang_pools_pool(svc->pools));
}

static enum kiln_err services_open_exec(struct kiln_services *svc, struct errbuf *eb)
{
    const struct kiln_config *cfg = svc->cfg;
    struct sbx_ctx_opts opts = {0};
    enum kiln_err rc;

    if (strcmp(cfg->execution_mode, "local") != 0)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE,
                          "EXECUTION_MODE=%s is not available in this build", cfg->execution_mode);
    opts.run_dir = cfg->sandbox_run_dir;
    opts.uid_base = (unsigned)cfg->sandbox_uid_base;
    /* The gate bounds concurrency; the slot range only has to be free. Slot locks are
     * host-wide (other kiln instances, `kiln run`, leftovers of a crash being reaped share
     * them), so scan a range wider than our own concurrency instead of failing with "all
     * slots busy" while our gate still admits. */
    opts.slots =
        (unsigned)(cfg->max_concurrent_executions * 4 > 64 ? cfg->max_concurrent_executions * 4
                                                           : 64);
    opts.defaults.wall_ms = cfg->max_execution_time * 1000;
    opts.defaults.memory_mb = cfg->max_memory_mb;
    opts.defaults.pids = cfg->max_pids;
    opts.defaults.open_files = cfg->max_open_files;
    /* sandboxes a crashed predecessor left running die before we start our own */
    exec_local_reap_orphans(cfg->sandbox_run_dir);
    rc = sbx_ctx_new(&svc->sbx, &opts, eb);
    if (rc)
        return rc;
    rc = exec_local_new(svc->sbx, svc->blob, &svc->exec, eb);
    if (rc == KILN_OK) {
        services_start_zygotes(svc);
        services_start_pools(svc);
    }
    return rc;
}

enum kiln_err services_open(const struct kiln_config *cfg, struct kiln_services **out,
                            struct errbuf *eb)
{
    struct kiln_services *svc = xcalloc(1, sizeof *svc);
    struct sessions_recovery rec;
    enum kiln_err rc;

    svc->cfg = cfg;
    svc->seen = xcalloc(1, sizeof *svc->seen);
    pthread_mutex_init(&svc->seen->mu, NULL);
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        rc = errbuf_set(eb, KILN_ERR_IO, "cannot create DATA_DIR %s: %s", cfg->data_dir,
                        strerror(errno));
        goto fail;
    }
    rc = services_open_store(cfg, &svc->store, eb);
    if (rc)
        goto fail;
    if (strcmp(cfg->blob, "fs") != 0) {
        rc = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "BLOB=%s is not available in this build",
                        cfg->blob);
        goto fail;
    }
    rc = blob_fs_open(cfg->data_dir, &svc->blob, eb);
    if (rc)
        goto fail;
    rc = services_open_exec(svc, eb);
    if (rc)
        goto fail;
    svc->gate = exec_gate_new(cfg->max_concurrent_executions, cfg->max_queued_executions);
    /* before any request: nothing may observe a half-written file */
    rc = sessions_recover(svc, &rec, eb);
    if (rc)
        goto fail;
    rc = state_ctx_new(svc, &svc->state, eb);
    if (rc)
        goto fail;
    if (cfg->session_ttl_hours > 0 || cfg->session_ttl_seconds > 0) {
        rc = sessions_sweeper_start(svc, &svc->sweeper, eb);
        if (rc)
            goto fail;
    }
    *out = svc;
    return KILN_OK;
fail:
    services_close(svc);
    return rc;
}

void services_close(struct kiln_services *svc)
{
    if (svc == NULL)
        return;
    sessions_sweeper_stop(svc->sweeper);
    if (svc->gate != NULL)
        exec_gate_wait_idle(svc->gate); /* API threads still finishing their executions */
    state_ctx_free(svc->state);
    exec_gate_free(svc->gate);
    if (svc->exec != NULL)
        svc->exec->ops->close(svc->exec);
    lang_pools_free(svc->pools); /* every lease was freed: the gate is idle */
    zyg_stop(svc->zyg);
    sbx_ctx_free(svc->sbx);
    if (svc->blob != NULL)
        svc->blob->ops->close(svc->blob);
    if (svc->store != NULL)
        svc->store->ops->close(svc->store);
    if (svc->seen != NULL)
        pthread_mutex_destroy(&svc->seen->mu);
    free(svc->seen);
    free(svc);
}
