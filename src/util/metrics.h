/* Metrics: counters, gauges and histograms with labels, declared in ONE table (metrics_defs.c,
 * STYLE.md rule 14), rendered as Prometheus text exposition format 0.0.4 and as a JSON summary
 * for the admin dashboard.
 *
 * Label values come from fixed sets (languages, execution statuses, route patterns, HTTP
 * methods, HTTP statuses, auth-failure reasons); a value outside its set is counted as "other",
 * so the number of series is bounded no matter what the network sends. Every series is a slot in
 * a preallocated array indexed by its label values, and updates are relaxed atomic operations: no
 * lock and no allocation on the hot path. The per-minute timeline for "executions over time" is
 * the one structure behind a mutex (one short critical section per finished execution).
 *
 * Thread safety: every function may be called from any thread on the same registry once
 * metrics_new() has returned. Counters only ever increase while the process lives. */
#ifndef KILN_UTIL_METRICS_H
#define KILN_UTIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Every metric kiln exports. The names, help texts, types, labels and buckets are in the table
 * in metrics_defs.c, in this order. */
enum metric_id {
    METRIC_EXECUTIONS_TOTAL,        /* counter {language,status} */
    METRIC_EXECUTION_DURATION,      /* histogram seconds {language} */
    METRIC_EXECUTION_QUEUE_WAIT,    /* histogram seconds */
    METRIC_EXECUTIONS_ACTIVE,       /* gauge */
    METRIC_EXECUTIONS_QUEUED,       /* gauge */
    METRIC_POOL_SIZE,               /* gauge {language} */
    METRIC_POOL_IDLE,               /* gauge {language} */
    METRIC_POOL_HITS_TOTAL,         /* counter {language} */
    METRIC_POOL_MISSES_TOTAL,       /* counter */
    METRIC_ZYGOTE_RESTARTS_TOTAL,   /* counter */
    METRIC_ZYGOTE_PREPARED_READY,   /* gauge */
    METRIC_EARLY_ANSWERS_TOTAL,     /* counter */
    METRIC_SESSIONS,                /* gauge */
    METRIC_FILES_STORED,            /* gauge */
    METRIC_FILE_BYTES_STORED,       /* gauge */
    METRIC_UPLOAD_BYTES_TOTAL,      /* counter */
    METRIC_DOWNLOAD_BYTES_TOTAL,    /* counter */
    METRIC_HTTP_REQUESTS_TOTAL,     /* counter {route,method,status} */
    METRIC_HTTP_REQUEST_DURATION,   /* histogram seconds {route} */
    METRIC_AUTH_FAILURES_TOTAL,     /* counter {reason} */
    METRIC_BUILD_INFO,              /* gauge {version}, always 1 */
    METRIC_PROCESS_RESIDENT_MEMORY, /* gauge, read from /proc at render time */
    METRIC_PROCESS_START_TIME,      /* gauge, read from /proc at render time */
    METRIC_PROCESS_OPEN_FDS,        /* gauge, read from /proc at render time */
    METRIC_PROCESS_CPU_SECONDS,     /* counter, read from getrusage at render time */
    METRIC__COUNT
};

/* The label dimensions. Each has a fixed set of values ending in "other". */
enum metric_label {
    METRIC_LABEL_LANGUAGE,
    METRIC_LABEL_EXEC_STATUS,
    METRIC_LABEL_ROUTE,
    METRIC_LABEL_METHOD,
    METRIC_LABEL_HTTP_STATUS,
    METRIC_LABEL_AUTH_REASON,
    METRIC_LABEL_VERSION,
    METRIC_LABEL__COUNT
};

/* Execution outcomes, the values of the status label of kiln_executions_total (what the
 * dashboard shows). "completed" = ran and exited 0; "failed" = ran and exited non-zero or was
 * killed by a signal; "timeout" = wall or CPU limit; "memory_limit" = killed by the memory cap;
 * "error" = kiln could not run it (sandbox, pool, store failure); "rejected" = refused before
 * running (queue full, validation). */
#define METRICS_EXEC_STATUSES "completed", "failed", "timeout", "memory_limit", "error", "rejected"

/* Reasons of kiln_auth_failures_total. */
#define METRICS_AUTH_REASONS "missing", "invalid", "disabled", "rate_limited", "forbidden"

/* How to build a registry. A zeroed struct gives the default value sets below. The string
 * arrays are borrowed and must outlive the registry (use static tables: the languages table of
 * lang/, the route table of http/). "other" is appended to every set by the registry. */
struct metrics_options {
    const char *const *languages; /* language codes; NULL = METRICS_DEFAULT_LANGUAGES */
    size_t nlanguages;
    const char *const *routes; /* route patterns ("/files/{session_id}"); NULL = defaults */
    size_t nroutes;
    const char *version;       /* kiln_build_info{version}; NULL = KILN_VERSION */
    unsigned timeline_minutes; /* per-minute history kept; 0 = METRICS_TIMELINE_MINUTES */
};

/* Default history of the per-minute execution timeline: 24 hours. */
#define METRICS_TIMELINE_MINUTES (24u * 60u)

/* A registry. Opaque; one per server context. */
struct metrics;

/* Create a registry with every series at zero. Caller frees with metrics_free(). */
struct metrics *metrics_new(const struct metrics_options *opt);

/* Free a registry. NULL is a no-op. No other thread may use it any more. */
void metrics_free(struct metrics *m);

/* Add n to a counter. labels holds one value per label of the metric, in the order of its
 * definition (NULL when it has none); values outside their set count as "other". Adding to a
 * metric that is not a counter is a no-op. */
void metrics_add(struct metrics *m, enum metric_id id, const char *const *labels, uint64_t n);

/* Add 1 to a counter. */
void metrics_inc(struct metrics *m, enum metric_id id, const char *const *labels);

/* Set a gauge. */
void metrics_gauge_set(struct metrics *m, enum metric_id id, const char *const *labels,
                       int64_t value);

/* Add delta (may be negative) to a gauge. */
void metrics_gauge_add(struct metrics *m, enum metric_id id, const char *const *labels,
                       int64_t delta);

/* Record one observation (in the metric's unit, seconds for every histogram here). Negative
 * and NaN values count as 0. */
void metrics_observe(struct metrics *m, enum metric_id id, const char *const *labels, double value);

/* Record a finished execution: kiln_executions_total{language,status}, the duration histogram
 * and the per-minute timeline, at wall-clock time now (seconds since the epoch; 0 = now). The
 * one call the executor makes per execution. */
void metrics_record_execution(struct metrics *m, const char *language, const char *status,
                              double duration_s, double now);

/* Record a finished HTTP request: kiln_http_requests_total{route,method,status} and
 * kiln_http_request_duration_seconds{route}. route is the matched route pattern, never the raw
 * path (NULL = "other"). */
void metrics_record_http(struct metrics *m, const char *route, const char *method, int status,
                         double duration_s);

/* The current value of a counter or gauge series (tests, the health checks, the CLI); labels
 * NULL with a labelled metric = the sum over all its series. For a histogram: its count. */
int64_t metrics_value(struct metrics *m, enum metric_id id, const char *const *labels);

/* Estimate quantile q (0..1) of a histogram series from its buckets, the way Prometheus's
 * histogram_quantile() does: linear interpolation inside the bucket holding the rank; the
 * highest finite bound when the rank falls in +Inf; 0 with no observations. labels NULL with a
 * labelled histogram = across all series. */
double metrics_quantile(struct metrics *m, enum metric_id id, const char *const *labels, double q);

/* Render every metric in the text exposition format 0.0.4 (Content-Type
 * METRICS_TEXT_CONTENT_TYPE). Labelled series are written once touched; unlabelled ones always.
 * *out is NUL-terminated, caller frees with free(); *len is its length. */
enum kiln_err metrics_render_text(struct metrics *m, char **out, size_t *len, struct errbuf *eb);

/* The Content-Type of the text exposition. */
#define METRICS_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Render the dashboard summary as JSON (the body of GET /api/v1/admin/stats; shape in
 * docs/admin.md): executions by language and status, latency and queue-wait percentiles, pools,
 * storage and HTTP totals, and the executions timeline of the last `hours` hours (1..history,
 * clamped) at wall-clock time now (0 = now). *out is NUL-terminated; caller frees with free(). */
enum kiln_err metrics_render_summary_json(struct metrics *m, unsigned hours, double now, char **out,
                                          struct errbuf *eb);

/* --- The definition table (metrics_defs.c), read by the registry and by tests. --- */

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Up to this many labels per metric and buckets per histogram. */
#define METRIC_MAX_LABELS  3
#define METRIC_MAX_BUCKETS 16

/* One row of the table. */
struct metric_def {
    const char *name; /* Prometheus name, with its _total/_seconds/_bytes suffix */
    const char *help;
    enum metric_type type;
    unsigned nlabels;
    enum metric_label labels[METRIC_MAX_LABELS];
    unsigned nbuckets; /* histograms: finite upper bounds, ascending */
    double buckets[METRIC_MAX_BUCKETS];
    int process; /* non-zero: computed from the process at render time, never updated */
};

/* The table, METRIC__COUNT rows in enum order. */
extern const struct metric_def metrics_defs[METRIC__COUNT];

/* The label names ("language", "status", ...), by enum metric_label. */
extern const char *const metrics_label_names[METRIC_LABEL__COUNT];

/* Default language codes (the client's enum; lang/ passes its own table). */
extern const char *const metrics_default_languages[];
extern const size_t metrics_default_nlanguages;

#endif
