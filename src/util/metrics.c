/* Metrics registry: atomic series slots and the Prometheus text exposition (format 0.0.4).
 * The definitions live in metrics_defs.c, the JSON summary in metrics_json.c. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/metrics_internal.h"
#include "util/xmalloc.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

/* The label sets that are not configurable. Route patterns default to the contract's routes;
 * the router passes its own table. */
static const char *const exec_statuses[] = {METRICS_EXEC_STATUSES};
static const char *const auth_reasons[] = {METRICS_AUTH_REASONS};
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
static const char *const http_statuses[] = {"200", "201", "202", "204", "206", "301", "302", "304",
                                            "400", "401", "403", "404", "405", "406", "408", "409",
                                            "411", "413", "414", "415", "416", "422", "429", "431",
                                            "500", "501", "502", "503", "504"};
static const char *const default_routes[] = {"/exec",
                                             "/upload",
                                             "/files/{session_id}",
                                             "/files/{session_id}/{file_id}",
                                             "/download/{session_id}/{file_id}",
                                             "/state/{session_id}",
                                             "/state/{session_id}/info",
                                             "/health",
                                             "/ready",
                                             "/health/detailed",
                                             "/health/{dependency}",
                                             "/metrics",
                                             "/api/v1/admin/keys",
                                             "/api/v1/admin/keys/{key_hash}",
                                             "/api/v1/admin/stats",
                                             "/admin-dashboard"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

double metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t metrics_label_index(const struct metrics_label_set *set, const char *value)
{
    if (!value)
        return set->n;
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->values[i], value) == 0)
            return i;
    }
    return set->n;
}

const char *metrics_label_value(const struct metrics_label_set *set, size_t i)
{
    return i < set->n ? set->values[i] : "other";
}

static size_t set_size(const struct metrics *m, enum metric_label l)
{
    return m->sets[l].n + 1;
}

struct metrics *metrics_new(const struct metrics_options *opt)
{
    struct metrics_options defaults = {0};
    if (!opt)
        opt = &defaults;
    struct metrics *m = xcalloc(1, sizeof *m);
    m->sets[METRIC_LABEL_LANGUAGE] =
        (struct metrics_label_set){opt->languages ? opt->languages : metrics_default_languages,
                                   opt->languages ? opt->nlanguages : metrics_default_nlanguages};
    m->sets[METRIC_LABEL_EXEC_STATUS] =
        (struct metrics_label_set){exec_statuses, NELEM(exec_statuses)};
    m->sets[METRIC_LABEL_ROUTE] =
        (struct metrics_label_set){opt->routes ? opt->routes : default_routes,
                                   opt->routes ? opt->nroutes : NELEM(default_routes)};
    m->sets[METRIC_LABEL_METHOD] = (struct metrics_label_set){methods, NELEM(methods)};
    m->sets[METRIC_LABEL_HTTP_STATUS] =
        (struct metrics_label_set){http_statuses, NELEM(http_statuses)};
    m->sets[METRIC_LABEL_AUTH_REASON] =
        (struct metrics_label_set){auth_reasons, NELEM(auth_reasons)};
    m->version[0] = opt->version ? opt->version : KILN_VERSION;
    m->sets[METRIC_LABEL_VERSION] = (struct metrics_label_set){m->version, 1};

    for (size_t id = 0; id < METRIC__COUNT; id++) {
        const struct metric_def *d = &metrics_defs[id];
        struct metrics_block *b = &m->blocks[id];
        b->nseries = 1;
        for (unsigned i = 0; i < d->nlabels; i++)
            b->nseries *= set_size(m, d->labels[i]);
        b->touched = xcalloc(b->nseries, sizeof *b->touched);
        if (d->type == METRIC_COUNTER) {
            b->counters = xcalloc(b->nseries, sizeof *b->counters);
        } else if (d->type == METRIC_GAUGE) {
            b->gauges = xcalloc(b->nseries, sizeof *b->gauges);
        } else {
            b->buckets = xcalloc(b->nseries * (d->nbuckets + 1), sizeof *b->buckets);
            b->sum_micro = xcalloc(b->nseries, sizeof *b->sum_micro);
        }
    }
    metrics_gauge_set(m, METRIC_BUILD_INFO, m->version, 1);

    pthread_mutex_init(&m->tl_lock, NULL);
    m->tl_minutes = opt->timeline_minutes ? opt->timeline_minutes : METRICS_TIMELINE_MINUTES;
    size_t cells = set_size(m, METRIC_LABEL_LANGUAGE) * set_size(m, METRIC_LABEL_EXEC_STATUS);
    m->tl_stamp = xcalloc(m->tl_minutes, sizeof *m->tl_stamp);
    for (unsigned i = 0; i < m->tl_minutes; i++)
        m->tl_stamp[i] = -1;
    m->tl_counts = xcalloc((size_t)m->tl_minutes * cells, sizeof *m->tl_counts);
    m->tl_latency =
        xcalloc((size_t)m->tl_minutes * (metrics_defs[METRIC_EXECUTION_DURATION].nbuckets + 1),
                sizeof *m->tl_latency);
    m->start_wall = metrics_now();
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (size_t id = 0; id < METRIC__COUNT; id++) {
        struct metrics_block *b = &m->blocks[id];
        free(b->counters);
        free(b->gauges);
        free(b->buckets);
        free(b->sum_micro);
        free(b->touched);
    }
    pthread_mutex_destroy(&m->tl_lock);
    free(m->tl_stamp);
    free(m->tl_counts);
    free(m->tl_latency);
    free(m);
}

/* The slot of the series named by labels (one value per label of the metric). */
static size_t series_index(const struct metrics *m, enum metric_id id, const char *const *labels)
{
    const struct metric_def *d = &metrics_defs[id];
    size_t idx = 0;
    for (unsigned i = 0; i < d->nlabels; i++) {
        const struct metrics_label_set *set = &m->sets[d->labels[i]];
        idx = idx * (set->n + 1) + metrics_label_index(set, labels ? labels[i] : NULL);
    }
    return idx;
}

static bool valid(const struct metrics *m, enum metric_id id, enum metric_type type)
{
    return m && (unsigned)id < METRIC__COUNT && metrics_defs[id].type == type &&
           !metrics_defs[id].process;
}

void metrics_add(struct metrics *m, enum metric_id id, const char *const *labels, uint64_t n)
{
    if (!valid(m, id, METRIC_COUNTER))
        return;
    size_t i = series_index(m, id, labels);
    atomic_fetch_add_explicit(&m->blocks[id].counters[i], n, memory_order_relaxed);
    atomic_store_explicit(&m->blocks[id].touched[i], true, memory_order_relaxed);
}

void metrics_inc(struct metrics *m, enum metric_id id, const char *const *labels)
{
    metrics_add(m, id, labels, 1);
}

void metrics_gauge_set(struct metrics *m, enum metric_id id, const char *const *labels,
                       int64_t value)
{
    if (!valid(m, id, METRIC_GAUGE))
        return;
    size_t i = series_index(m, id, labels);
    atomic_store_explicit(&m->blocks[id].gauges[i], value, memory_order_relaxed);
    atomic_store_explicit(&m->blocks[id].touched[i], true, memory_order_relaxed);
}

void metrics_gauge_add(struct metrics *m, enum metric_id id, const char *const *labels,
                       int64_t delta)
{
    if (!valid(m, id, METRIC_GAUGE))
        return;
    size_t i = series_index(m, id, labels);
    atomic_fetch_add_explicit(&m->blocks[id].gauges[i], delta, memory_order_relaxed);
    atomic_store_explicit(&m->blocks[id].touched[i], true, memory_order_relaxed);
}

/* The bucket of value: the first finite bound >= value, or nb for +Inf. */
static unsigned bucket_of(const struct metric_def *d, double value)
{
    unsigned b = 0;
    while (b < d->nbuckets && value > d->buckets[b])
        b++;
    return b;
}

static double clean_observation(double value)
{
    return (isnan(value) || value < 0) ? 0 : value;
}

void metrics_observe(struct metrics *m, enum metric_id id, const char *const *labels, double value)
{
    if (!valid(m, id, METRIC_HISTOGRAM))
        return;
    const struct metric_def *d = &metrics_defs[id];
    struct metrics_block *blk = &m->blocks[id];
    value = clean_observation(value);
    size_t i = series_index(m, id, labels);
    unsigned b = bucket_of(d, value);
    /* Sums are kept in millionths so that one atomic add suffices; 2^64 millionths of a second
     * are half a million years. */
    double micro = value * 1e6;
    uint64_t add = micro >= 1.8e19 ? UINT64_MAX / 2 : (uint64_t)llround(micro);
    atomic_fetch_add_explicit(&blk->buckets[i * (d->nbuckets + 1) + b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&blk->sum_micro[i], add, memory_order_relaxed);
    atomic_store_explicit(&blk->touched[i], true, memory_order_relaxed);
}

static void timeline_record(struct metrics *m, const char *language, const char *status,
                            double duration_s, double now)
{
    size_t nst = set_size(m, METRIC_LABEL_EXEC_STATUS);
    size_t cell = metrics_label_index(&m->sets[METRIC_LABEL_LANGUAGE], language) * nst +
                  metrics_label_index(&m->sets[METRIC_LABEL_EXEC_STATUS], status);
    size_t cells = set_size(m, METRIC_LABEL_LANGUAGE) * nst;
    const struct metric_def *d = &metrics_defs[METRIC_EXECUTION_DURATION];
    unsigned b = bucket_of(d, clean_observation(duration_s));
    int64_t minute = (int64_t)floor(now / 60.0);
    if (minute < 0)
        return;
    size_t slot = (size_t)((uint64_t)minute % m->tl_minutes);

    pthread_mutex_lock(&m->tl_lock);
    if (m->tl_stamp[slot] != minute) {
        memset(&m->tl_counts[slot * cells], 0, cells * sizeof *m->tl_counts);
        memset(&m->tl_latency[slot * (d->nbuckets + 1)], 0,
               (d->nbuckets + 1) * sizeof *m->tl_latency);
        m->tl_stamp[slot] = minute;
    }
    m->tl_counts[slot * cells + cell]++;
    m->tl_latency[slot * (d->nbuckets + 1) + b]++;
    pthread_mutex_unlock(&m->tl_lock);
}

void metrics_record_execution(struct metrics *m, const char *language, const char *status,
                              double duration_s, double now)
{
    if (!m)
        return;
    const char *const labels[] = {language, status};
    metrics_inc(m, METRIC_EXECUTIONS_TOTAL, labels);
    metrics_observe(m, METRIC_EXECUTION_DURATION, labels, duration_s);
    timeline_record(m, language, status, duration_s, now > 0 ? now : metrics_now());
}

void metrics_record_http(struct metrics *m, const char *route, const char *method, int status,
                         double duration_s)
{
    if (!m)
        return;
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    const char *const labels[] = {route, method, code};
    metrics_inc(m, METRIC_HTTP_REQUESTS_TOTAL, labels);
    metrics_observe(m, METRIC_HTTP_REQUEST_DURATION, labels, duration_s);
}

/* Count of histogram series i: the sum of its buckets (so that _count always equals the +Inf
 * bucket in one rendering, whatever other threads do meanwhile). Fills counts[nb + 1]. */
static uint64_t hist_counts(const struct metrics *m, enum metric_id id, size_t i, uint64_t *counts)
{
    const struct metric_def *d = &metrics_defs[id];
    uint64_t total = 0;
    for (unsigned b = 0; b <= d->nbuckets; b++) {
        counts[b] = atomic_load_explicit(&m->blocks[id].buckets[i * (d->nbuckets + 1) + b],
                                         memory_order_relaxed);
        total += counts[b];
    }
    return total;
}

int64_t metrics_value(struct metrics *m, enum metric_id id, const char *const *labels)
{
    if (!m || (unsigned)id >= METRIC__COUNT || metrics_defs[id].process)
        return 0;
    const struct metric_def *d = &metrics_defs[id];
    const struct metrics_block *b = &m->blocks[id];
    size_t first = 0, last = b->nseries;
    if (labels || d->nlabels == 0) {
        first = series_index(m, id, labels);
        last = first + 1;
    }
    int64_t sum = 0;
    for (size_t i = first; i < last; i++) {
        if (d->type == METRIC_COUNTER) {
            sum += (int64_t)atomic_load_explicit(&b->counters[i], memory_order_relaxed);
        } else if (d->type == METRIC_GAUGE) {
            sum += atomic_load_explicit(&b->gauges[i], memory_order_relaxed);
        } else {
            uint64_t counts[METRIC_MAX_BUCKETS + 1];
            sum += (int64_t)hist_counts(m, id, i, counts);
        }
    }
    return sum;
}

double metrics_quantile_buckets(const double *le, unsigned nb, const uint64_t *counts, double q)
{
    uint64_t total = 0;
    for (unsigned b = 0; b <= nb; b++)
        total += counts[b];
    if (total == 0 || nb == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (unsigned b = 0; b < nb; b++) {
        if (counts[b] > 0 && (double)(cum + counts[b]) >= rank) {
            double lower = b == 0 ? 0 : le[b - 1];
            double frac = (rank - (double)cum) / (double)counts[b];
            if (frac < 0)
                frac = 0;
            return lower + (le[b] - lower) * frac;
        }
        cum += counts[b];
    }
    /* The rank is in the +Inf bucket: nothing is known above the highest bound. */
    return le[nb - 1];
}

double metrics_quantile(struct metrics *m, enum metric_id id, const char *const *labels, double q)
{
    if (!valid(m, id, METRIC_HISTOGRAM))
        return 0;
    const struct metric_def *d = &metrics_defs[id];
    uint64_t acc[METRIC_MAX_BUCKETS + 1] = {0};
    uint64_t counts[METRIC_MAX_BUCKETS + 1];
    size_t first = 0, last = m->blocks[id].nseries;
    if (labels || d->nlabels == 0) {
        first = series_index(m, id, labels);
        last = first + 1;
    }
    for (size_t i = first; i < last; i++) {
        hist_counts(m, id, i, counts);
        for (unsigned b = 0; b <= d->nbuckets; b++)
            acc[b] += counts[b];
    }
    return metrics_quantile_buckets(d->buckets, d->nbuckets, acc, q);
}

/* --- Text exposition --- */

/* A growable output buffer; a failed growth is impossible (xreallocarray aborts). */
struct outbuf {
    char *p;
    size_t len, cap;
};

static void out_reserve(struct outbuf *o, size_t more)
{
    if (o->len + more + 1 <= o->cap)
        return;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + more + 1)
        cap *= 2;
    o->p = xreallocarray(o->p, cap, 1);
    o->cap = cap;
}

static void out_mem(struct outbuf *o, const char *s, size_t n)
{
    out_reserve(o, n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(struct outbuf *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

static void out_printf(struct outbuf *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_printf(struct outbuf *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[128];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        out_mem(o, tmp, (size_t)n);
        return;
    }
    out_reserve(o, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(o->p + o->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
}

/* Write s escaped for a label value (in_help = false: \ " and newline) or a HELP text
 * (in_help = true: \ and newline), as the exposition format requires. */
static void out_escaped(struct outbuf *o, const char *s, bool in_help)
{
    for (; *s; s++) {
        if (*s == '\\')
            out_str(o, "\\\\");
        else if (*s == '\n')
            out_str(o, "\\n");
        else if (*s == '"' && !in_help)
            out_str(o, "\\\"");
        else
            out_mem(o, s, 1);
    }
}

/* The shortest decimal that reads back as v ("0.1", not "0.10000000000000001"; "30", not
 * "3e+01"); +Inf, -Inf and NaN as the format spells them. */
static void out_double(struct outbuf *o, double v)
{
    if (isnan(v)) {
        out_str(o, "NaN");
        return;
    }
    if (isinf(v)) {
        out_str(o, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    if (v == floor(v) && fabs(v) < 1e15) {
        out_printf(o, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    out_str(o, tmp);
}

/* Write {name="value",...} of series i, plus an extra le label when le_label is not NULL. */
static void out_labels(struct outbuf *o, const struct metrics *m, enum metric_id id, size_t i,
                       const char *le_label)
{
    const struct metric_def *d = &metrics_defs[id];
    if (d->nlabels == 0 && !le_label)
        return;
    size_t idx[METRIC_MAX_LABELS];
    for (unsigned k = d->nlabels; k-- > 0;) {
        size_t n = set_size(m, d->labels[k]);
        idx[k] = i % n;
        i /= n;
    }
    out_str(o, "{");
    for (unsigned k = 0; k < d->nlabels; k++) {
        if (k)
            out_str(o, ",");
        out_str(o, metrics_label_names[d->labels[k]]);
        out_str(o, "=\"");
        out_escaped(o, metrics_label_value(&m->sets[d->labels[k]], idx[k]), false);
        out_str(o, "\"");
    }
    if (le_label) {
        out_str(o, d->nlabels ? ",le=\"" : "le=\"");
        out_str(o, le_label);
        out_str(o, "\"");
    }
    out_str(o, "}");
}

static void out_histogram_series(struct outbuf *o, const struct metrics *m, enum metric_id id,
                                 size_t i)
{
    const struct metric_def *d = &metrics_defs[id];
    uint64_t counts[METRIC_MAX_BUCKETS + 1];
    uint64_t total = hist_counts(m, id, i, counts);
    uint64_t cum = 0;
    for (unsigned b = 0; b <= d->nbuckets; b++) {
        cum += counts[b];
        struct outbuf le = {0};
        if (b < d->nbuckets)
            out_double(&le, d->buckets[b]);
        else
            out_str(&le, "+Inf");
        out_str(o, d->name);
        out_str(o, "_bucket");
        out_labels(o, m, id, i, le.p);
        out_printf(o, " %" PRIu64 "\n", cum);
        free(le.p);
    }
    uint64_t micro = atomic_load_explicit(&m->blocks[id].sum_micro[i], memory_order_relaxed);
    out_str(o, d->name);
    out_str(o, "_sum");
    out_labels(o, m, id, i, NULL);
    out_str(o, " ");
    out_double(o, (double)micro / 1e6);
    out_str(o, "\n");
    out_str(o, d->name);
    out_str(o, "_count");
    out_labels(o, m, id, i, NULL);
    out_printf(o, " %" PRIu64 "\n", total);
}

/* Read one value of the process (Linux /proc, getrusage). Returns false when unavailable. */
static bool process_value(enum metric_id id, double *out)
{
    bool ok = false;
    FILE *f = NULL;
    if (id == METRIC_PROCESS_CPU_SECONDS) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) {
            *out = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
            ok = true;
        }
    } else if (id == METRIC_PROCESS_RESIDENT_MEMORY) {
        unsigned long long size = 0, resident = 0;
        f = fopen("/proc/self/statm", "re");
        if (f && fscanf(f, "%llu %llu", &size, &resident) == 2) {
            *out = (double)resident * (double)sysconf(_SC_PAGESIZE);
            ok = true;
        }
    } else if (id == METRIC_PROCESS_OPEN_FDS) {
        DIR *dir = opendir("/proc/self/fd");
        if (dir) {
            long n = 0;
            struct dirent *de;
            while ((de = readdir(dir)) != NULL) {
                if (de->d_name[0] != '.')
                    n++;
            }
            closedir(dir);
            *out = (double)(n - 1); /* the directory's own descriptor */
            ok = true;
        }
    } else if (id == METRIC_PROCESS_START_TIME) {
        /* starttime (field 22 of /proc/self/stat, clock ticks after boot) + btime of /proc/stat.
         * The command name (field 2) may hold spaces and parentheses: parse after the last ')'. */
        char buf[1024];
        unsigned long long start_ticks = 0, btime = 0;
        bool have_start = false;
        f = fopen("/proc/self/stat", "re");
        if (f && fgets(buf, sizeof buf, f)) {
            char *p = strrchr(buf, ')');
            if (p && sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu",
                            &start_ticks) == 1)
                have_start = true;
        }
        if (f)
            fclose(f);
        f = fopen("/proc/stat", "re");
        while (have_start && f && fgets(buf, sizeof buf, f)) {
            if (sscanf(buf, "btime %llu", &btime) == 1) {
                long hz = sysconf(_SC_CLK_TCK);
                *out = (double)btime + (double)start_ticks / (double)(hz > 0 ? hz : 100);
                ok = true;
                break;
            }
        }
    }
    if (f)
        fclose(f);
    return ok;
}

enum kiln_err metrics_render_text(struct metrics *m, char **out, size_t *len, struct errbuf *eb)
{
    if (!m || !out)
        return errbuf_set(eb, KILN_ERR_INVALID, "metrics_render_text: no registry or output");
    struct outbuf o = {0};
    out_reserve(&o, 16384);
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    for (size_t id = 0; id < METRIC__COUNT; id++) {
        const struct metric_def *d = &metrics_defs[id];
        const struct metrics_block *b = &m->blocks[id];
        out_str(&o, "# HELP ");
        out_str(&o, d->name);
        out_str(&o, " ");
        out_escaped(&o, d->help, true);
        out_printf(&o, "\n# TYPE %s %s\n", d->name, type_names[d->type]);
        if (d->process) {
            double v;
            if (process_value((enum metric_id)id, &v)) {
                out_str(&o, d->name);
                out_str(&o, " ");
                out_double(&o, v);
                out_str(&o, "\n");
            }
            continue;
        }
        for (size_t i = 0; i < b->nseries; i++) {
            if (d->nlabels && !atomic_load_explicit(&b->touched[i], memory_order_relaxed))
                continue;
            if (d->type == METRIC_HISTOGRAM) {
                out_histogram_series(&o, m, (enum metric_id)id, i);
                continue;
            }
            out_str(&o, d->name);
            out_labels(&o, m, (enum metric_id)id, i, NULL);
            if (d->type == METRIC_COUNTER)
                out_printf(&o, " %" PRIu64 "\n",
                           atomic_load_explicit(&b->counters[i], memory_order_relaxed));
            else
                out_printf(&o, " %" PRId64 "\n",
                           atomic_load_explicit(&b->gauges[i], memory_order_relaxed));
        }
    }
    *out = o.p;
    if (len)
        *len = o.len;
    return KILN_OK;
}
