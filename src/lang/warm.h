/* Warm pools of the languages (issue 5, DESIGN.md "Why it is fast"): one pool kind per language
 * code, sized by POD_POOL_<LANG>, and for js, php, r and bash a pre-started interpreter in each
 * parked sandbox, waiting for its arguments on stdin (the bootstraps are in warm.c). The
 * execution path is the sandbox library's lease API (sandbox/pool.h): lease by language code,
 * put the code with lang_job_new() into sbx_lease_workspace(), run with sbx_lease_run(). A
 * language without a pool, or a job that does not fit its interpreter, runs cold.
 *
 * Thread safety: as sandbox/pool.h. */
#ifndef KILN_LANG_WARM_H
#define KILN_LANG_WARM_H

#include <stddef.h>

#include "config/config.h"
#include "sandbox/pool.h"
#include "util/err.h"

/* The pools of every language. */
struct lang_pools;

/* A language code and the number of sandboxes its pool keeps parked. */
struct lang_pool_size {
    const char *code;
    unsigned size;
};

/* Pools from config: POD_POOL_ENABLED (false: no pool at all, every lease cold),
 * POD_POOL_<LANG>, POD_POOL_WARMUP_ON_STARTUP, POD_POOL_PARALLEL_BATCH,
 * POD_POOL_REPLENISH_INTERVAL, POD_POOL_EXHAUSTION_TRIGGER. ctx is borrowed and must outlive the
 * pools; cfg is only read during the call. Caller frees with lang_pools_free(). */
enum kiln_err lang_pools_new(struct sbx_ctx *ctx, const struct kiln_config *cfg,
                             struct lang_pools **out, struct errbuf *eb);

/* Pools of explicit sizes (tests, benchmarks, `kiln run --warm`); opts gives everything but the
 * kinds (opts->kinds and nkinds are ignored). Unknown codes are an error. */
enum kiln_err lang_pools_new_sizes(struct sbx_ctx *ctx, const struct lang_pool_size *sizes,
                                   size_t n, const struct sbx_pool_opts *opts,
                                   struct lang_pools **out, struct errbuf *eb);

/* The pool to lease from (never NULL once created). */
struct sbx_pool *lang_pools_pool(const struct lang_pools *lp);

/* Stop and destroy the pools (every lease must be freed first). NULL is a no-op. */
void lang_pools_free(struct lang_pools *lp);

#endif
