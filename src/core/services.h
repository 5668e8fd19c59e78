/* The context every core/ function takes: the configuration and the three ports, chosen once at
 * start-up from STORE, BLOB and EXECUTION_MODE (DESIGN.md "ports"). A route handler holds one
 * struct kiln_services * and calls core/sessions.h, core/files.h and core/exec_service.h with
 * plain request structs; nothing in core/ knows HTTP or which backends it got.
 *
 * Thread safety: built once, then read-only; every port may be used from any thread. */
#ifndef KILN_CORE_SERVICES_H
#define KILN_CORE_SERVICES_H

#include "blob/blob.h"
#include "config/config.h"
#include "exec/exec.h"
#include "store/store.h"
#include "util/err.h"

struct exec_gate;
struct sessions_sweeper;
struct state_ctx;
struct metrics;
struct health;
struct keys;
struct lang_pools;
struct services_pool_seen;

/* Milliseconds since the epoch; tests substitute a fake clock. */
typedef long long (*services_clock_fn)(void *arg);

struct kiln_services {
    const struct kiln_config *cfg; /* borrowed; outlives the services */
    struct store *store;
    struct blob *blob;
    struct exec *exec;
    struct exec_gate *gate;           /* MAX_CONCURRENT_EXECUTIONS + MAX_QUEUED_EXECUTIONS */
    struct sbx_ctx *sbx;              /* the local backend's sandbox context, or NULL */
    struct zyg_set *zyg;              /* the Python zygotes (POD_POOL_ENABLED, root), or NULL */
    struct lang_pools *pools;         /* warm pools of the other languages, or NULL */
    struct services_pool_seen *seen;  /* pool counters already added to metrics */
    struct sessions_sweeper *sweeper; /* the background TTL sweeper, or NULL */
    struct state_ctx *state;          /* Python state: write lock + archiver (core/state.h) */
    services_clock_fn clock;          /* NULL = the real clock */
    void *clock_arg;
    /* Operations (issue 7), set by `kiln serve` after services_open(); borrowed, may be NULL. */
    struct metrics *metrics; /* exec_service_run() records every execution there */
    struct health *health;   /* /health/detailed */
    struct keys *keys;       /* managed API keys (admin API) */
};

/* Open the backends cfg names (creating DATA_DIR), run the start-up recovery
 * (sessions_recover()) and start the TTL sweeper. Backends not built yet (redis, s3,
 * kubernetes) are refused with KILN_ERR_UNAVAILABLE naming the setting. Caller frees with
 * services_close(). */
enum kiln_err services_open(const struct kiln_config *cfg, struct kiln_services **out,
                            struct errbuf *eb);

/* Stop the sweeper, wait for reserved executions (exec_gate_wait_idle()), close every backend.
 * NULL is a no-op. */
void services_close(struct kiln_services *svc);

/* Copy the warm pools' and the zygotes' statistics into svc->metrics (kiln_pool_size, _idle,
 * _hits_total, _misses_total, kiln_zygote_restarts_total; py = the zygotes). Cheap; called before
 * /metrics, the dashboard summary and the pools health check render. Any thread. */
void services_pool_metrics(struct kiln_services *svc);

/* The current time in ms (svc->clock when set). */
long long services_now_ms(const struct kiln_services *svc);

#endif
