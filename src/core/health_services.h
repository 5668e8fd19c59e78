/* The health checks of kiln's own ports for core/health: the store (a real query), the blob
 * store (a probe written, read back and deleted), the executor (the sandbox context creates and
 * removes a workspace), the data directory's disk and the warm pools (from the pool gauges).
 * `kiln serve` registers them once; /health/detailed and /health/<name> report them. */
#ifndef KILN_CORE_HEALTH_SERVICES_H
#define KILN_CORE_HEALTH_SERVICES_H

#include "core/health.h"
#include "core/health_checks.h"
#include "core/services.h"

/* What the checks need; filled by health_services_register(), must outlive the registry. */
struct health_services {
    struct kiln_services *svc; /* borrowed */
    struct health_disk_ctx disk;
    struct health_pools_ctx pools;
    const char *langs[64]; /* the language codes the pools check looks at */
};

/* Register "store", "blob", "executor", "disk" and "pools" in h, with hs as their context (hs is
 * filled here; borrowed by h). svc->metrics may be NULL (the pools check is left out then). */
enum kiln_err health_services_register(struct health *h, struct health_services *hs,
                                       struct kiln_services *svc, struct errbuf *eb);

/* The checks themselves (ctx = struct health_services *), health_check_fn each:
 * store: unhealthy when the store does not answer a query;
 * blob: unhealthy when the blob store is gone, degraded when it answers but refuses the probe
 *       (read-only, full: downloads still work, uploads and outputs fail);
 * executor: unhealthy when the sandbox cannot create a workspace, degraded when every sandbox
 *       slot is busy. */
enum health_status health_check_store(void *ctx, double timeout_s, char *msg, size_t msg_size);
enum health_status health_check_blob(void *ctx, double timeout_s, char *msg, size_t msg_size);
enum health_status health_check_executor(void *ctx, double timeout_s, char *msg, size_t msg_size);

#endif
