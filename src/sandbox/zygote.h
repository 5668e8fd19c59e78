/* The Python zygotes (DESIGN.md "Why it is fast", issue 5 item 3): sandboxed Python processes
 * that import modules once and never run user code; every execution is a fork() of one of them
 * that enters fresh namespaces, cgroups, Landlock, seccomp and limits through the same C code as a
 * cold sandbox (pyext/kiln_sbx.c over zchild.c), and is thrown away afterwards.
 *
 * Two zygotes: a light one (bare interpreter: a fork costs ≈ 2.7 ms) and a heavy one (the
 * PY_PRELOAD modules, default numpy, pandas, matplotlib with Agg: ≈ 12 ms), picked per program by
 * a scan of its import statements. Each keeps `warm` children forked ahead of demand, already in
 * their own namespaces and cgroups, with no user data, waiting for a job; a manager thread per
 * zygote refills them and restarts a zygote that died. Anything that goes wrong before the
 * program starts (no zygote, a child that fails to set up, a job that is not a plain
 * `python3 FILE ARGS...`) falls back to sbx_run(): never an error.
 *
 * Root mode only (each child runs as its workspace's slot uid, which needs the zygote's user
 * namespace to map the whole slot range); unprivileged, zyg_start() fails with
 * KILN_ERR_UNAVAILABLE and callers use sbx_run(). Thread safety: zyg_run() and zyg_stats() may be
 * called from many threads at once. */
#ifndef KILN_SANDBOX_ZYGOTE_H
#define KILN_SANDBOX_ZYGOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox/sandbox.h"

/* Start-up options (from config: PY_PRELOAD, POD_POOL_PY, the py row of lang/). */
struct zyg_opts {
    const char *preload;     /* comma-separated modules of the heavy zygote; NULL or "" = none */
    const char *const *env;  /* the zygotes' environment (the py language's), NULL-terminated */
    unsigned warm;           /* children forked ahead per zygote; 0 = fork on demand only */
    unsigned refillers;      /* children forked ahead at once per zygote (0 = 1; at most 4) */
    bool light;              /* run the light zygote too (else every program goes to the heavy) */
    const char *ext_dir;     /* holds kiln_sbx*.so and zygote.py; NULL = $KILN_PYEXT_DIR or the
                              * build's; must be searchable by the slot uids (bound read-only) */
    const char *python;      /* NULL = /usr/bin/python3 */
    bool state;              /* executions run under the state runner: children rehearse its
                              * capture too (STATE_PERSISTENCE_ENABLED) */
    bool prefault_heavy;     /* heavy children copy the zygote's heap ahead of demand: faster
                              * pandas jobs, ~70 MB unshared per warm child (bench/README.md) */
    unsigned prepared_heavy; /* of the heavy zygote's warm children, how many also exercise the
                              * preloaded libraries before ready (PY_PREPARED_HEAVY) */
};

/* Counters for the metrics endpoint (since zyg_start). */
struct zyg_stats {
    unsigned long long forked;    /* children forked (ahead of demand or on a miss) */
    unsigned long long hits;      /* executions served by a child forked ahead */
    unsigned long long misses;    /* executions that had to wait for a fork */
    unsigned long long fallbacks; /* executions sent to the cold path */
    unsigned long long restarts;  /* zygotes restarted after dying */
    unsigned long long early;     /* answered at the program's end, before the teardown */
    unsigned ready[2];            /* children waiting now: [0] light, [1] heavy */
    unsigned prepared_ready;      /* of the heavy ones, prepared (PY_PREPARED_HEAVY) */
    long long rss_kb[2];          /* zygote RSS (VmRSS), -1 when not running */
    bool running[2];
};

struct zyg_set;

/* Start the zygotes (asynchronously: each is usable once its preloads are done; until then
 * zyg_run() falls back). ctx must outlive the set. Fails with KILN_ERR_UNAVAILABLE when not
 * root. Free with zyg_stop(). */
enum kiln_err zyg_start(struct sbx_ctx *ctx, const struct zyg_opts *opts, struct zyg_set **out,
                        struct errbuf *eb);

/* Wait until every zygote has finished its preloads and has its warm children (or timeout_ms
 * passed, or a zygote failed to start three times in a row). True when all are ready. For
 * start-up warm-up and tests. */
bool zyg_wait_ready(struct zyg_set *zs, long long timeout_ms);

/* Kill the zygotes and their children, remove their cgroups. NULL is a no-op. Only once every
 * zyg_run() on the set has returned. */
void zyg_stop(struct zyg_set *zs);

/* Run job like sbx_run() does, in a child of a zygote when the job is `python3 FILE [ARGS]`
 * (one step; FILE relative to /mnt/data or absolute). code/len are the program's source, used
 * only to pick the light or the heavy zygote (NULL: heavy). The program runs as __main__ with
 * __file__ the absolute path, sys.argv = argv[1:], cwd /mnt/data, os.environ = job->env, stdin
 * from job->stdin_data; the result follows sbx_run()'s rules (statuses, caps, marker, notes).
 * Falls back to sbx_run() whenever no zygote child can take the job. */
enum kiln_err zyg_run(struct zyg_set *zs, const struct sbx_job *job, const char *code, size_t len,
                      struct sbx_result *res, struct errbuf *eb);

/* Fill st (a snapshot). */
void zyg_get_stats(struct zyg_set *zs, struct zyg_stats *st);

/* True when code imports only modules known not to pull in the heavy ones (a cheap scan of
 * import statements; anything dynamic or unknown counts as heavy). */
bool zyg_code_is_light(const char *code, size_t len);

/* Kill the zygote of kind (0 light, 1 heavy) as if it had crashed (tests of the restart). */
void zyg_debug_kill(struct zyg_set *zs, int kind);

#endif
