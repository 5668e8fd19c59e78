/* Health checks of the host (disk) and of the warm pools (from the metrics gauges). */
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/health_checks.h"

enum health_status health_check_disk(void *ctx, double timeout_s, char *msg, size_t msg_size)
{
    const struct health_disk_ctx *d = ctx;
    struct statvfs st;
    (void)timeout_s;
    if (!d || !d->path || statvfs(d->path, &st) != 0) {
        snprintf(msg, msg_size, "cannot stat %s", d && d->path ? d->path : "(no path)");
        return HEALTH_UNHEALTHY;
    }
    if (access(d->path, W_OK) != 0) {
        snprintf(msg, msg_size, "%s is not writable", d->path);
        return HEALTH_UNHEALTHY;
    }
    double total = (double)st.f_blocks * (double)st.f_frsize;
    double avail = (double)st.f_bavail * (double)st.f_frsize;
    double ratio = total > 0 ? avail / total : 0;
    snprintf(msg, msg_size, "%.1f GiB free of %.1f GiB (%.0f%%)", avail / 1073741824.0,
             total / 1073741824.0, ratio * 100);
    if (ratio < d->min_free_ratio || avail < (double)d->min_free_bytes)
        return HEALTH_DEGRADED;
    return HEALTH_HEALTHY;
}

enum health_status health_check_pools(void *ctx, double timeout_s, char *msg, size_t msg_size)
{
    const struct health_pools_ctx *p = ctx;
    enum health_status status = HEALTH_HEALTHY;
    size_t used = 0, pools = 0;
    (void)timeout_s;
    msg[0] = '\0';
    for (size_t i = 0; p && i < p->nlanguages; i++) {
        const char *const lang[] = {p->languages[i]};
        int64_t size = metrics_value(p->metrics, METRIC_POOL_SIZE, lang);
        int64_t idle = metrics_value(p->metrics, METRIC_POOL_IDLE, lang);
        if (size <= 0)
            continue;
        pools++;
        if (idle > 0)
            continue;
        status = HEALTH_DEGRADED;
        int n = snprintf(msg + used, msg_size - used, "%spool %s empty (0 of %lld idle)",
                         used ? "; " : "", lang[0], (long long)size);
        if (n < 0 || (size_t)n >= msg_size - used)
            break;
        used += (size_t)n;
    }
    if (status == HEALTH_HEALTHY)
        snprintf(msg, msg_size, "%zu warm pools ready", pools);
    return status;
}
