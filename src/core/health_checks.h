/* Ready-made health checks for core/health that depend on nothing but the host and the metrics
 * registry: free space of the data directory, and the warm pools as the executor reports them
 * through the pool gauges. The store, blob and executor checks belong to their ports. */
#ifndef KILN_CORE_HEALTH_CHECKS_H
#define KILN_CORE_HEALTH_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "core/health.h"
#include "util/metrics.h"

/* What health_check_disk() looks at. Borrowed by the registry; must outlive it. */
struct health_disk_ctx {
    const char *path;        /* the directory (DATA_DIR); must exist and be writable */
    double min_free_ratio;   /* degraded below this share of free space (0.10 = 10%) */
    uint64_t min_free_bytes; /* degraded below this many free bytes */
};

/* Unhealthy when ctx->path is missing or not writable, degraded when free space is below either
 * minimum, healthy otherwise; the message gives free and total space. A health_check_fn. */
enum health_status health_check_disk(void *ctx, double timeout_s, char *msg, size_t msg_size);

/* What health_check_pools() looks at. Borrowed; must outlive the registry. */
struct health_pools_ctx {
    struct metrics *metrics;
    const char *const *languages; /* the languages with a warm pool */
    size_t nlanguages;
};

/* Degraded when a language with kiln_pool_size > 0 has kiln_pool_idle == 0 (every request
 * pays a cold start until the pool refills), naming the empty pools; healthy otherwise. A
 * health_check_fn. */
enum health_status health_check_pools(void *ctx, double timeout_s, char *msg, size_t msg_size);

#endif
