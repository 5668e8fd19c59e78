/* Internals of the metrics registry shared by metrics.c (updates, text exposition) and
 * metrics_json.c (dashboard summary). Not for other modules. */
#ifndef KILN_UTIL_METRICS_INTERNAL_H
#define KILN_UTIL_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "util/metrics.h"

/* A fixed set of label values; index n is "other". */
struct metrics_label_set {
    const char *const *values;
    size_t n;
};

/* The series of one metric: a dense array indexed by label-value indices, row-major. */
struct metrics_block {
    size_t nseries;
    _Atomic uint64_t *counters;  /* counters */
    _Atomic int64_t *gauges;     /* gauges */
    _Atomic uint64_t *buckets;   /* histograms: nseries * (nbuckets + 1), not cumulative */
    _Atomic uint64_t *sum_micro; /* histograms: sum of observations in millionths */
    _Atomic bool *touched;       /* a labelled series is rendered once touched */
};

struct metrics {
    struct metrics_label_set sets[METRIC_LABEL__COUNT];
    const char *version[1];
    struct metrics_block blocks[METRIC__COUNT];
    double start_wall; /* when the registry was made, seconds since the epoch */

    /* The per-minute executions timeline: a ring of slots, each stamped with its minute
     * number (since the epoch); a slot whose stamp is stale is zeroed before reuse. */
    pthread_mutex_t tl_lock;
    unsigned tl_minutes;
    int64_t *tl_stamp;    /* [tl_minutes] */
    uint32_t *tl_counts;  /* [tl_minutes][nlang + 1][nstatus + 1] */
    uint32_t *tl_latency; /* [tl_minutes][nbuckets + 1] of the execution duration histogram */
};

/* Index of value in set (set->n = "other" when absent or NULL). */
size_t metrics_label_index(const struct metrics_label_set *set, const char *value);

/* The value string of index i of set ("other" for i == n). */
const char *metrics_label_value(const struct metrics_label_set *set, size_t i);

/* Quantile q of a histogram given its nb finite bounds and nb + 1 non-cumulative counts. */
double metrics_quantile_buckets(const double *le, unsigned nb, const uint64_t *counts, double q);

/* Wall-clock now in seconds since the epoch. */
double metrics_now(void);

#endif
