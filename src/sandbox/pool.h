/* Warm pools (DESIGN.md "Why it is fast", issue 5): sandboxes built ahead of demand, per kind
 * (a language code), parked with no user data until an execution takes one. Each sandbox serves
 * exactly one execution and is then destroyed; a background thread refills the pools, checks the
 * idle ones (init alive, interpreter still waiting, younger than max_idle_ms) and recycles the
 * others. A kind may pre-start an interpreter inside its parked sandboxes, confined like any
 * program (caps dropped, no_new_privs, Landlock, rlimits, seccomp) and waiting for its arguments
 * on stdin; the workspace is mounted at /mnt/data before it is told to go.
 *
 * Use, per execution (same steps warm or cold; a miss is a cold sandbox, never an error):
 *
 *     sbx_pool_lease(pool, "js", data_mb, &lease, eb);     // unknown kind or empty pool: cold
 *     ws = sbx_lease_workspace(lease);                     // put the inputs and the code here
 *     job.ws = ws; sbx_lease_run(lease, &job, &res, eb);   // run (warm when possible)
 *     sbx_workspace_walk(ws, ...);                         // collect outputs
 *     sbx_lease_free(lease);                               // workspace, slot, everything
 *
 * Uid slots: a parked sandbox holds a slot (its uid is mapped at creation), so the pools together
 * never hold more than max_total of them, which sbx_pool_new() caps below the context's slot
 * count: cold runs always find slots. Root only: unprivileged, every lease is cold.
 *
 * Thread safety: a pool may be used by many threads at once; a lease belongs to one thread. All
 * leases must be freed before sbx_pool_free() (parked inits die with the pool's thread). */
#ifndef KILN_SANDBOX_POOL_H
#define KILN_SANDBOX_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox/sandbox.h"
#include "util/err.h"

/* One pool. The strings and arrays are borrowed and must outlive the pool. */
struct sbx_pool_kind {
    const char *key; /* what sbx_pool_lease() asks for, e.g. "js" (case-sensitive) */
    unsigned size;   /* target number of parked sandboxes; 0 = never warm */
    /* The pre-started interpreter (NULL = none): its argv (argv[0] absolute) and env. It is
     * used for a job of one step whose argv starts with run_prefix, whose env equals env and
     * that has no stdin; the rest of that argv is written to the interpreter's stdin, each
     * argument NUL-terminated, then EOF. Any other job runs its steps in the parked sandbox. */
    const char *const *interp_argv;
    const char *const *env;
    const char *const *run_prefix;
    /* A bootstrap file written to boot_path (under /tmp) before the interpreter starts, which
     * should remove it; NULL = none. */
    const char *boot_path, *boot_text;
};

struct sbx_pool_opts {
    const struct sbx_pool_kind *kinds;
    size_t nkinds;
    bool warmup;             /* fill at once (POD_POOL_WARMUP_ON_STARTUP); else on first use */
    unsigned batch;          /* sandboxes built per kind per round (POD_POOL_PARALLEL_BATCH) */
    unsigned replenish_ms;   /* between refill rounds (POD_POOL_REPLENISH_INTERVAL) */
    bool exhaustion_trigger; /* a take that empties a pool wakes the filler at once */
    long long max_idle_ms;   /* recycle older parked sandboxes; 0 = 10 minutes */
    unsigned max_total;      /* parked sandboxes over all kinds; 0 = slots - slots/4 - 1 */
};

/* Statistics of one kind, for the metrics endpoint. */
struct sbx_pool_stats {
    const char *key;
    unsigned size;             /* target */
    unsigned idle;             /* parked now */
    unsigned long long hits;   /* leases served warm */
    unsigned long long misses; /* leases that went cold (empty pool, or job did not fit) */
    unsigned long long early;  /* answered when the interpreter reported its end, frozen */
    unsigned long long created, failed, recycled;
    double create_ms_mean; /* mean time to build one parked sandbox */
};

struct sbx_pool;

/* Create the pools and start the filler thread. ctx is borrowed and must outlive the pool.
 * Unprivileged (no open_tree), the pool is created empty and every lease is cold. Caller frees
 * with sbx_pool_free(). */
enum kiln_err sbx_pool_new(struct sbx_ctx *ctx, const struct sbx_pool_opts *opts,
                           struct sbx_pool **out, struct errbuf *eb);

/* Stop the filler and destroy every parked sandbox (no process, mount or cgroup is left). NULL
 * is a no-op. */
void sbx_pool_free(struct sbx_pool *pool);

/* Block until every pool holds its target (or timeout_ms passes); true when full. For tests,
 * benchmarks and `kiln run --warm`. */
bool sbx_pool_wait_full(struct sbx_pool *pool, long long timeout_ms);

/* Number of kinds, and the statistics of kind i (i < count). */
size_t sbx_pool_nkinds(const struct sbx_pool *pool);
void sbx_pool_stats(struct sbx_pool *pool, size_t i, struct sbx_pool_stats *out);

/* One execution's sandbox: taken from the pool, or cold. */
struct sbx_lease;

/* A lease for kind key (unknown key, empty or disabled pool: cold) with a fresh workspace of
 * data_mb MiB (0 = the default). Fails only when the cold path would (every slot busy, host
 * problem). Caller frees with sbx_lease_free(). */
enum kiln_err sbx_pool_lease(struct sbx_pool *pool, const char *key, long long data_mb,
                             struct sbx_lease **out, struct errbuf *eb);

/* The lease's workspace (owned by the lease; valid until sbx_lease_free()). */
struct sbx_workspace *sbx_lease_workspace(struct sbx_lease *lease);

/* Whether the lease holds a parked sandbox (before sbx_lease_run()), or was served warm (after). */
bool sbx_lease_warm(const struct sbx_lease *lease);

/* Run job (job->ws must be the lease's workspace) like sbx_run(): in the parked sandbox when
 * there is one and the job fits, in a cold one otherwise. A lease's parked sandbox serves one
 * run; a second run on the same lease is cold. */
enum kiln_err sbx_lease_run(struct sbx_lease *lease, const struct sbx_job *job,
                            struct sbx_result *res, struct errbuf *eb);

/* Free the workspace and the sandbox (unused parked one included) and release the slot. NULL
 * is a no-op. */
void sbx_lease_free(struct sbx_lease *lease);

#endif
