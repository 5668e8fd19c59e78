/* The dashboard summary of the metrics registry as JSON (GET /api/v1/admin/stats). The shape is
 * documented in docs/admin.md; keep the two in step. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/metrics_internal.h"
#include "util/xmalloc.h"

/* At most this many points in the timeline: minutes are merged into steps to stay under it. */
#define SUMMARY_MAX_POINTS 120

static double ms(double seconds)
{
    return round(seconds * 1e6) / 1e3;
}

/* {p50, p95, p99, count, mean_ms} of a histogram given its non-cumulative bucket counts. */
static json_t *percentiles(const struct metric_def *d, const uint64_t *counts, double sum_s)
{
    uint64_t total = 0;
    for (unsigned b = 0; b <= d->nbuckets; b++)
        total += counts[b];
    return json_pack("{s:f,s:f,s:f,s:I,s:f}", "p50_ms",
                     ms(metrics_quantile_buckets(d->buckets, d->nbuckets, counts, 0.50)), "p95_ms",
                     ms(metrics_quantile_buckets(d->buckets, d->nbuckets, counts, 0.95)), "p99_ms",
                     ms(metrics_quantile_buckets(d->buckets, d->nbuckets, counts, 0.99)), "count",
                     (json_int_t)total, "mean_ms", total ? ms(sum_s / (double)total) : 0.0);
}

/* Percentiles of series i of a histogram metric (all series when i == SIZE_MAX). */
static json_t *hist_percentiles(struct metrics *m, enum metric_id id, size_t i)
{
    const struct metric_def *d = &metrics_defs[id];
    const struct metrics_block *b = &m->blocks[id];
    uint64_t acc[METRIC_MAX_BUCKETS + 1] = {0};
    uint64_t micro = 0;
    for (size_t s = 0; s < b->nseries; s++) {
        if (i != SIZE_MAX && s != i)
            continue;
        for (unsigned k = 0; k <= d->nbuckets; k++)
            acc[k] +=
                atomic_load_explicit(&b->buckets[s * (d->nbuckets + 1) + k], memory_order_relaxed);
        micro += atomic_load_explicit(&b->sum_micro[s], memory_order_relaxed);
    }
    return percentiles(d, acc, (double)micro / 1e6);
}

static json_int_t counter_at(struct metrics *m, enum metric_id id, size_t i)
{
    return (json_int_t)atomic_load_explicit(&m->blocks[id].counters[i], memory_order_relaxed);
}

static json_int_t gauge_at(struct metrics *m, enum metric_id id, size_t i)
{
    return (json_int_t)atomic_load_explicit(&m->blocks[id].gauges[i], memory_order_relaxed);
}

/* executions: {total, by_status:{s:n}, by_language:{lang:{total, s:n...}}}, and latency
 * percentiles per language that ran. */
static void add_executions(struct metrics *m, json_t *root)
{
    const struct metrics_label_set *langs = &m->sets[METRIC_LABEL_LANGUAGE];
    const struct metrics_label_set *sts = &m->sets[METRIC_LABEL_EXEC_STATUS];
    json_t *by_lang = json_object(), *by_status = json_object(), *lat_lang = json_object();
    json_int_t total = 0;
    for (size_t l = 0; l <= langs->n; l++) {
        json_t *one = json_object();
        json_int_t lt = 0;
        for (size_t s = 0; s <= sts->n; s++) {
            json_int_t n = counter_at(m, METRIC_EXECUTIONS_TOTAL, l * (sts->n + 1) + s);
            if (!n)
                continue;
            const char *sname = metrics_label_value(sts, s);
            json_object_set_new(one, sname, json_integer(n));
            json_t *prev = json_object_get(by_status, sname);
            json_object_set_new(by_status, sname,
                                json_integer(n + (prev ? json_integer_value(prev) : 0)));
            lt += n;
        }
        if (lt) {
            json_object_set_new(one, "total", json_integer(lt));
            json_object_set_new(by_lang, metrics_label_value(langs, l), one);
            json_object_set_new(lat_lang, metrics_label_value(langs, l),
                                hist_percentiles(m, METRIC_EXECUTION_DURATION, l));
        } else {
            json_decref(one);
        }
        total += lt;
    }
    json_object_set_new(
        root, "executions",
        json_pack("{s:I,s:o,s:o,s:I,s:I}", "total", total, "by_status", by_status, "by_language",
                  by_lang, "active", (json_int_t)metrics_value(m, METRIC_EXECUTIONS_ACTIVE, NULL),
                  "queued", (json_int_t)metrics_value(m, METRIC_EXECUTIONS_QUEUED, NULL)));
    json_object_set_new(root, "latency",
                        json_pack("{s:o,s:o,s:o}", "overall",
                                  hist_percentiles(m, METRIC_EXECUTION_DURATION, SIZE_MAX),
                                  "by_language", lat_lang, "queue_wait",
                                  hist_percentiles(m, METRIC_EXECUTION_QUEUE_WAIT, SIZE_MAX)));
}

/* pools: {misses, by_language:{lang:{size, idle, hits}}} for languages with a pool or hits. */
static void add_pools(struct metrics *m, json_t *root)
{
    const struct metrics_label_set *langs = &m->sets[METRIC_LABEL_LANGUAGE];
    json_t *by_lang = json_object();
    for (size_t l = 0; l <= langs->n; l++) {
        const struct metrics_block *bs = &m->blocks[METRIC_POOL_SIZE];
        const struct metrics_block *bi = &m->blocks[METRIC_POOL_IDLE];
        json_int_t hits = counter_at(m, METRIC_POOL_HITS_TOTAL, l);
        if (!hits && !atomic_load(&bs->touched[l]) && !atomic_load(&bi->touched[l]))
            continue;
        json_object_set_new(by_lang, metrics_label_value(langs, l),
                            json_pack("{s:I,s:I,s:I}", "size", gauge_at(m, METRIC_POOL_SIZE, l),
                                      "idle", gauge_at(m, METRIC_POOL_IDLE, l), "hits", hits));
    }
    json_object_set_new(root, "pools",
                        json_pack("{s:I,s:o}", "misses",
                                  (json_int_t)metrics_value(m, METRIC_POOL_MISSES_TOTAL, NULL),
                                  "by_language", by_lang));
}

/* http: {requests, by_class:{"2xx":n,...}, auth_failures:{reason:n}}. */
static void add_http(struct metrics *m, json_t *root)
{
    const struct metrics_label_set *codes = &m->sets[METRIC_LABEL_HTTP_STATUS];
    const struct metrics_block *b = &m->blocks[METRIC_HTTP_REQUESTS_TOTAL];
    json_int_t by_class[6] = {0}; /* 1xx..5xx, and [0] = other */
    json_int_t total = 0;
    for (size_t i = 0; i < b->nseries; i++) {
        json_int_t n = counter_at(m, METRIC_HTTP_REQUESTS_TOTAL, i);
        if (!n)
            continue;
        const char *code = metrics_label_value(codes, i % (codes->n + 1));
        int cls = (code[0] >= '1' && code[0] <= '5') ? code[0] - '0' : 0;
        by_class[cls] += n;
        total += n;
    }
    json_t *auth = json_object();
    const struct metrics_label_set *reasons = &m->sets[METRIC_LABEL_AUTH_REASON];
    for (size_t r = 0; r <= reasons->n; r++) {
        json_int_t n = counter_at(m, METRIC_AUTH_FAILURES_TOTAL, r);
        if (n)
            json_object_set_new(auth, metrics_label_value(reasons, r), json_integer(n));
    }
    json_object_set_new(root, "http",
                        json_pack("{s:I,s:{s:I,s:I,s:I,s:I,s:I},s:o}", "requests", total,
                                  "by_class", "2xx", by_class[2], "3xx", by_class[3], "4xx",
                                  by_class[4], "5xx", by_class[5], "other",
                                  by_class[0] + by_class[1], "auth_failures", auth));
}

/* timeline: per step, executions by language and status over the window, plus the latency
 * percentiles of the window. Only series with an execution in the window are listed. */
static void add_timeline(struct metrics *m, json_t *root, unsigned hours, double now)
{
    const struct metrics_label_set *langs = &m->sets[METRIC_LABEL_LANGUAGE];
    const struct metrics_label_set *sts = &m->sets[METRIC_LABEL_EXEC_STATUS];
    const struct metric_def *d = &metrics_defs[METRIC_EXECUTION_DURATION];
    size_t nst = sts->n + 1, cells = (langs->n + 1) * nst;
    uint64_t window = (uint64_t)hours * 60;
    if (window == 0)
        window = 60;
    if (window > m->tl_minutes)
        window = m->tl_minutes;
    uint64_t step = (window + SUMMARY_MAX_POINTS - 1) / SUMMARY_MAX_POINTS;
    size_t npoints = (size_t)((window + step - 1) / step);
    int64_t end = (int64_t)floor(now / 60.0);
    int64_t start = end - (int64_t)(npoints * step) + 1;
    uint64_t *agg = xcalloc(npoints * cells, sizeof *agg);
    uint64_t lat[METRIC_MAX_BUCKETS + 1] = {0};

    pthread_mutex_lock(&m->tl_lock);
    for (int64_t t = start < 0 ? 0 : start; t <= end; t++) {
        size_t slot = (size_t)((uint64_t)t % m->tl_minutes);
        if (m->tl_stamp[slot] != t)
            continue;
        size_t p = (size_t)((uint64_t)(t - start) / step);
        for (size_t c = 0; c < cells; c++)
            agg[p * cells + c] += m->tl_counts[slot * cells + c];
        for (unsigned b = 0; b <= d->nbuckets; b++)
            lat[b] += m->tl_latency[slot * (d->nbuckets + 1) + b];
    }
    pthread_mutex_unlock(&m->tl_lock);

    json_t *series = json_object(), *totals = json_array();
    for (size_t p = 0; p < npoints; p++) {
        uint64_t sum = 0;
        for (size_t c = 0; c < cells; c++)
            sum += agg[p * cells + c];
        json_array_append_new(totals, json_integer((json_int_t)sum));
    }
    for (size_t l = 0; l <= langs->n; l++) {
        json_t *by_status = NULL;
        for (size_t s = 0; s < nst; s++) {
            uint64_t any = 0;
            for (size_t p = 0; p < npoints; p++)
                any += agg[p * cells + l * nst + s];
            if (!any)
                continue;
            json_t *arr = json_array();
            for (size_t p = 0; p < npoints; p++)
                json_array_append_new(arr, json_integer((json_int_t)agg[p * cells + l * nst + s]));
            if (!by_status)
                by_status = json_object();
            json_object_set_new(by_status, metrics_label_value(sts, s), arr);
        }
        if (by_status)
            json_object_set_new(series, metrics_label_value(langs, l), by_status);
    }
    free(agg);
    json_object_set_new(root, "timeline",
                        json_pack("{s:I,s:I,s:I,s:o,s:o,s:o}", "start", (json_int_t)(start * 60),
                                  "step_seconds", (json_int_t)(step * 60), "points",
                                  (json_int_t)npoints, "totals", totals, "series", series,
                                  "latency", percentiles(d, lat, 0)));
    /* The window's mean is unknown (the ring keeps buckets only). */
    json_object_del(json_object_get(json_object_get(root, "timeline"), "latency"), "mean_ms");
}

enum kiln_err metrics_render_summary_json(struct metrics *m, unsigned hours, double now, char **out,
                                          struct errbuf *eb)
{
    if (!m || !out)
        return errbuf_set(eb, KILN_ERR_INVALID, "metrics summary: no registry or output");
    if (now <= 0)
        now = metrics_now();
    unsigned max_hours = (m->tl_minutes + 59) / 60;
    if (hours < 1)
        hours = 1;
    if (hours > max_hours)
        hours = max_hours;
    json_t *root = json_pack("{s:s,s:f,s:f,s:I}", "version", m->version[0], "generated_at",
                             floor(now * 1e3) / 1e3, "uptime_seconds",
                             now > m->start_wall ? floor((now - m->start_wall) * 1e3) / 1e3 : 0.0,
                             "hours", (json_int_t)hours);
    if (!root)
        return errbuf_set(eb, KILN_ERR_NOMEM, "metrics summary: out of memory");
    add_executions(m, root);
    add_pools(m, root);
    json_object_set_new(
        root, "storage",
        json_pack("{s:I,s:I,s:I,s:I,s:I}", "sessions",
                  (json_int_t)metrics_value(m, METRIC_SESSIONS, NULL), "files",
                  (json_int_t)metrics_value(m, METRIC_FILES_STORED, NULL), "file_bytes",
                  (json_int_t)metrics_value(m, METRIC_FILE_BYTES_STORED, NULL), "upload_bytes",
                  (json_int_t)metrics_value(m, METRIC_UPLOAD_BYTES_TOTAL, NULL), "download_bytes",
                  (json_int_t)metrics_value(m, METRIC_DOWNLOAD_BYTES_TOTAL, NULL)));
    add_http(m, root);
    add_timeline(m, root, hours, now);
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (!s)
        return errbuf_set(eb, KILN_ERR_NOMEM, "metrics summary: out of memory");
    *out = s;
    return KILN_OK;
}
