/* Unit tests of util/metrics: the text exposition (checked by a small parser of format 0.0.4),
 * label escaping and the "other" fallback, histogram bucket math, quantile estimates, the JSON
 * summary and its timeline, and counters updated from many threads never going backwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/metrics.h"

/* --- A strict little parser of the text format, enough to check what we render. --- */

struct sample {
    char name[96];
    char labels[512]; /* raw text between the braces, unescaped as-is */
    double value;
};

/* Parse one sample line; fails the test on anything malformed. */
static void parse_sample(const char *line, struct sample *s)
{
    memset(s, 0, sizeof *s);
    size_t i = 0;
    while (line[i] && line[i] != '{' && line[i] != ' ') {
        char c = line[i];
        assert_true((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9'));
        assert_true(i < sizeof s->name - 1);
        s->name[i] = c;
        i++;
    }
    if (line[i] == '{') {
        size_t j = 0;
        i++;
        bool in_quotes = false;
        while (line[i] && (in_quotes || line[i] != '}')) {
            if (line[i] == '\\' && in_quotes) {
                assert_true(line[i + 1] == '\\' || line[i + 1] == '"' || line[i + 1] == 'n');
                s->labels[j++] = line[i++];
            } else if (line[i] == '"') {
                in_quotes = !in_quotes;
            }
            assert_true(j < sizeof s->labels - 2);
            s->labels[j++] = line[i++];
        }
        assert_int_equal(line[i], '}');
        i++;
    }
    assert_int_equal(line[i], ' ');
    char *end = NULL;
    s->value = strtod(line + i + 1, &end);
    assert_true(end != line + i + 1);
    assert_true(*end == '\0' || *end == '\n');
}

/* Render, then check the structure of every line: each family has HELP then TYPE before its
 * samples, appears once, and every sample belongs to the family just declared. Returns the text
 * (caller frees). */
static char *render_checked(struct metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    struct errbuf eb = {{0}};
    assert_int_equal(metrics_render_text(m, &text, &len, &eb), KILN_OK);
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    char *copy = strdup(text);
    char family[96] = "", type[16] = "";
    int families = 0;
    for (char *line = copy, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        assert_non_null(next);
        *next++ = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[96];
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            assert_true(strcmp(name, family) != 0);
            snprintf(family, sizeof family, "%s", name);
            families++;
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96];
            assert_int_equal(sscanf(line + 7, "%95s %15s", name, type), 2);
            assert_string_equal(name, family);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            continue;
        }
        struct sample s;
        parse_sample(line, &s);
        assert_true(type[0] != '\0');
        if (strcmp(type, "histogram") == 0) {
            size_t fl = strlen(family);
            assert_int_equal(strncmp(s.name, family, fl), 0);
            assert_true(strcmp(s.name + fl, "_bucket") == 0 || strcmp(s.name + fl, "_sum") == 0 ||
                        strcmp(s.name + fl, "_count") == 0);
        } else {
            assert_string_equal(s.name, family);
        }
        if (strcmp(type, "counter") == 0)
            assert_true(s.value >= 0);
    }
    assert_int_equal(families, METRIC__COUNT);
    free(copy);
    return text;
}

/* The value of the sample whose line starts with prefix (name plus labels), or -1. */
static double sample_value(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
            return strtod(p + pl + 1, NULL);
    }
    return -1;
}

static void test_metrics_exposition_declares_every_family(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(NULL);
    metrics_record_execution(m, "py", "completed", 0.02, 0);
    metrics_record_execution(m, "py", "completed", 0.03, 0);
    metrics_record_execution(m, "klingon", "failed", 1, 0);
    metrics_record_execution(m, "js", "bogus-status", 1, 0);
    metrics_gauge_set(m, METRIC_SESSIONS, NULL, 7);
    metrics_add(m, METRIC_UPLOAD_BYTES_TOTAL, NULL, 1234);
    const char *const py[] = {"py"};
    metrics_gauge_set(m, METRIC_POOL_IDLE, py, 0);
    char *text = render_checked(m);

    assert_true(sample_value(text, "kiln_executions_total{language=\"py\",status=\"completed\"}") ==
                2);
    assert_true(sample_value(text, "kiln_executions_total{language=\"other\",status=\"failed\"}") ==
                1);
    assert_true(sample_value(text, "kiln_executions_total{language=\"js\",status=\"other\"}") == 1);
    assert_null(strstr(text, "klingon"));
    assert_true(sample_value(text, "kiln_sessions") == 7);
    assert_true(sample_value(text, "kiln_upload_bytes_total") == 1234);
    /* unlabelled series are always present, labelled ones once touched (a gauge set to 0 too) */
    assert_true(sample_value(text, "kiln_download_bytes_total") == 0);
    assert_true(sample_value(text, "kiln_pool_idle{language=\"py\"}") == 0);
    assert_true(sample_value(text, "kiln_pool_idle{language=\"js\"}") == -1);
    assert_true(sample_value(text, "kiln_build_info{version=\"" KILN_VERSION "\"}") == 1);
    assert_non_null(strstr(text, "# TYPE kiln_execution_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE kiln_executions_total counter\n"));
    assert_non_null(strstr(text, "# TYPE kiln_sessions gauge\n"));
    free(text);
    metrics_free(m);
}

static void test_metrics_label_values_and_help_are_escaped(void **state)
{
    (void)state;
    static const char *const routes[] = {"/a\"b\\c\nd", "/exec"};
    struct metrics_options opt = {.routes = routes, .nroutes = 2, .version = "1.0\"x\\y\nz"};
    struct metrics *m = metrics_new(&opt);
    metrics_record_http(m, "/a\"b\\c\nd", "GET", 200, 0.001);
    metrics_record_http(m, "/files/abc123", "BREW", 599, 0.001);
    metrics_record_http(m, NULL, "POST", 404, 0.001);
    char *text = render_checked(m);
    assert_true(sample_value(text, "kiln_http_requests_total{route=\"/a\\\"b\\\\c\\nd\","
                                   "method=\"GET\",status=\"200\"}") == 1);
    assert_true(sample_value(text, "kiln_http_requests_total{route=\"other\",method=\"other\","
                                   "status=\"other\"}") == 1);
    assert_true(sample_value(text, "kiln_http_requests_total{route=\"other\",method=\"POST\","
                                   "status=\"404\"}") == 1);
    assert_true(sample_value(text, "kiln_build_info{version=\"1.0\\\"x\\\\y\\nz\"}") == 1);
    assert_null(strstr(text, "abc123")); /* raw paths never become label values */
    free(text);
    metrics_free(m);
}

static void test_metrics_histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(NULL);
    /* queue-wait bounds: 0.001 0.0025 0.005 0.01 ... 30; a bound is inclusive (le) */
    const double obs[] = {0.0005, 0.001, 0.003, 0.005, 0.007, 31, 1000, -1, NAN};
    double sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        metrics_observe(m, METRIC_EXECUTION_QUEUE_WAIT, NULL, obs[i]);
        sum += (isnan(obs[i]) || obs[i] < 0) ? 0 : obs[i];
    }
    char *text = render_checked(m);
    const char *n = "kiln_execution_queue_wait_seconds";
    char key[160];
    struct {
        const char *le;
        double want;
    } rows[] = {{"0.001", 4}, {"0.0025", 4}, {"0.005", 6}, {"0.01", 7}, {"30", 7}, {"+Inf", 9}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(key, sizeof key, "%s_bucket{le=\"%s\"}", n, rows[i].le);
        assert_true(sample_value(text, key) == rows[i].want);
    }
    snprintf(key, sizeof key, "%s_count", n);
    assert_true(sample_value(text, key) == 9);
    snprintf(key, sizeof key, "%s_sum", n);
    assert_true(fabs(sample_value(text, key) - sum) < 1e-5);
    /* the labelled histogram: le comes after the other labels */
    metrics_record_execution(m, "go", "completed", 0.2, 0);
    free(text);
    text = render_checked(m);
    assert_true(sample_value(text, "kiln_execution_duration_seconds_bucket{language=\"go\","
                                   "le=\"0.1\"}") == 0);
    assert_true(sample_value(text, "kiln_execution_duration_seconds_bucket{language=\"go\","
                                   "le=\"0.25\"}") == 1);
    assert_true(sample_value(text, "kiln_execution_duration_seconds_count{language=\"go\"}") == 1);
    assert_int_equal(metrics_value(m, METRIC_EXECUTION_QUEUE_WAIT, NULL), 9);
    free(text);
    metrics_free(m);
}

static void test_metrics_quantiles_interpolate_inside_buckets(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(NULL);
    const char *const py[] = {"py"}, *const js[] = {"js"};
    assert_true(metrics_quantile(m, METRIC_EXECUTION_DURATION, py, 0.5) == 0);
    /* 100 observations in (0.1, 0.25]: the median interpolates to the middle of the bucket */
    for (int i = 0; i < 100; i++)
        metrics_observe(m, METRIC_EXECUTION_DURATION, py, 0.2);
    assert_true(fabs(metrics_quantile(m, METRIC_EXECUTION_DURATION, py, 0.5) - 0.175) < 1e-9);
    assert_true(fabs(metrics_quantile(m, METRIC_EXECUTION_DURATION, py, 0.99) - 0.2485) < 1e-9);
    /* 100 more in the first bucket (0, 0.005]: p25 sits in it, p75 in the other */
    for (int i = 0; i < 100; i++)
        metrics_observe(m, METRIC_EXECUTION_DURATION, py, 0.001);
    assert_true(fabs(metrics_quantile(m, METRIC_EXECUTION_DURATION, py, 0.25) - 0.0025) < 1e-9);
    assert_true(fabs(metrics_quantile(m, METRIC_EXECUTION_DURATION, py, 0.75) - 0.175) < 1e-9);
    /* beyond the highest bound: the highest finite bound */
    metrics_observe(m, METRIC_EXECUTION_DURATION, js, 5000);
    assert_true(metrics_quantile(m, METRIC_EXECUTION_DURATION, js, 0.99) == 300);
    /* labels NULL = every series */
    assert_true(metrics_quantile(m, METRIC_EXECUTION_DURATION, NULL, 1.0) == 300);
    metrics_free(m);
}

static void test_metrics_gauges_set_and_add(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(NULL);
    metrics_gauge_add(m, METRIC_EXECUTIONS_ACTIVE, NULL, 3);
    metrics_gauge_add(m, METRIC_EXECUTIONS_ACTIVE, NULL, -1);
    assert_int_equal(metrics_value(m, METRIC_EXECUTIONS_ACTIVE, NULL), 2);
    metrics_gauge_set(m, METRIC_EXECUTIONS_ACTIVE, NULL, -5);
    assert_int_equal(metrics_value(m, METRIC_EXECUTIONS_ACTIVE, NULL), -5);
    /* type mismatches are no-ops, not corruption */
    metrics_inc(m, METRIC_EXECUTIONS_ACTIVE, NULL);
    metrics_gauge_set(m, METRIC_EXECUTIONS_TOTAL, NULL, 99);
    metrics_observe(m, METRIC_SESSIONS, NULL, 1);
    metrics_gauge_set(m, METRIC_PROCESS_OPEN_FDS, NULL, 1);
    assert_int_equal(metrics_value(m, METRIC_EXECUTIONS_ACTIVE, NULL), -5);
    assert_int_equal(metrics_value(m, METRIC_EXECUTIONS_TOTAL, NULL), 0);
    char *text = render_checked(m);
    assert_true(sample_value(text, "kiln_executions_active") == -5);
    free(text);
    metrics_free(m);
}

static void test_metrics_process_metrics_are_plausible(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(NULL);
    char *text = render_checked(m);
    assert_true(sample_value(text, "process_resident_memory_bytes") > 1024 * 1024);
    assert_true(sample_value(text, "process_open_fds") >= 3);
    assert_true(sample_value(text, "process_cpu_seconds_total") >= 0);
    double start = sample_value(text, "process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(start > now - 3600 && start <= now + 2);
    free(text);
    metrics_free(m);
}

static void test_metrics_summary_json_and_timeline(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(NULL);
    const double now = 1800000000.0; /* a fixed minute boundary: 30000000 minutes */
    metrics_record_execution(m, "py", "completed", 0.02, now - 30); /* this minute -1 */
    metrics_record_execution(m, "py", "completed", 0.02, now + 10); /* this minute */
    metrics_record_execution(m, "py", "timeout", 30, now + 10);
    metrics_record_execution(m, "js", "failed", 0.2, now - 3 * 3600);     /* outside 1 h */
    metrics_record_execution(m, "go", "completed", 0.2, now - 25 * 3600); /* outside history */
    const char *const py[] = {"py"};
    metrics_gauge_set(m, METRIC_POOL_SIZE, py, 4);
    metrics_gauge_set(m, METRIC_POOL_IDLE, py, 3);
    metrics_inc(m, METRIC_POOL_HITS_TOTAL, py);
    metrics_inc(m, METRIC_POOL_MISSES_TOTAL, NULL);
    metrics_record_http(m, "/exec", "POST", 200, 0.01);
    metrics_record_http(m, "/exec", "POST", 503, 0.01);
    const char *const invalid[] = {"invalid"};
    metrics_inc(m, METRIC_AUTH_FAILURES_TOTAL, invalid);

    char *s = NULL;
    struct errbuf eb = {{0}};
    assert_int_equal(metrics_render_summary_json(m, 1, now + 10, &s, &eb), KILN_OK);
    json_error_t je;
    json_t *root = json_loads(s, 0, &je);
    assert_non_null(root);
    free(s);
    assert_int_equal(json_integer_value(json_object_get(root, "hours")), 1);
    json_t *ex = json_object_get(root, "executions");
    assert_int_equal(json_integer_value(json_object_get(ex, "total")), 5); /* lifetime */
    json_t *bl = json_object_get(ex, "by_language");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(bl, "py"), "completed")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(bl, "py"), "total")), 3);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(ex, "by_status"), "completed")), 3);
    json_t *lat = json_object_get(json_object_get(root, "latency"), "overall");
    assert_int_equal(json_integer_value(json_object_get(lat, "count")), 5);
    assert_true(json_real_value(json_object_get(lat, "p50_ms")) > 0);
    json_t *pool =
        json_object_get(json_object_get(json_object_get(root, "pools"), "by_language"), "py");
    assert_int_equal(json_integer_value(json_object_get(pool, "size")), 4);
    assert_int_equal(json_integer_value(json_object_get(pool, "idle")), 3);
    assert_int_equal(json_integer_value(json_object_get(pool, "hits")), 1);
    json_t *http = json_object_get(root, "http");
    assert_int_equal(json_integer_value(json_object_get(http, "requests")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(http, "by_class"), "5xx")),
                     1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(http, "auth_failures"), "invalid")), 1);

    /* 1 hour = 60 one-minute points ending with the current minute */
    json_t *tl = json_object_get(root, "timeline");
    assert_int_equal(json_integer_value(json_object_get(tl, "points")), 60);
    assert_int_equal(json_integer_value(json_object_get(tl, "step_seconds")), 60);
    assert_int_equal(json_integer_value(json_object_get(tl, "start")), (json_int_t)now - 59 * 60);
    json_t *pyc =
        json_object_get(json_object_get(json_object_get(tl, "series"), "py"), "completed");
    assert_int_equal(json_array_size(pyc), 60);
    assert_int_equal(json_integer_value(json_array_get(pyc, 58)), 1);
    assert_int_equal(json_integer_value(json_array_get(pyc, 59)), 1);
    assert_null(json_object_get(json_object_get(tl, "series"), "js"));
    json_t *totals = json_object_get(tl, "totals");
    assert_int_equal(json_integer_value(json_array_get(totals, 59)), 2);
    json_decref(root);

    /* 24 hours: steps merge minutes so at most 120 points; the 25 h-old execution is gone */
    assert_int_equal(metrics_render_summary_json(m, 1000, now + 10, &s, &eb), KILN_OK);
    root = json_loads(s, 0, &je);
    free(s);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "hours")), 24);
    tl = json_object_get(root, "timeline");
    assert_true(json_integer_value(json_object_get(tl, "points")) <= 120);
    json_int_t sum = 0;
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(tl, "totals"), i, v) sum += json_integer_value(v);
    assert_int_equal(sum, 4);
    assert_non_null(json_object_get(json_object_get(tl, "series"), "js"));
    assert_null(json_object_get(json_object_get(tl, "series"), "go"));
    json_decref(root);
    metrics_free(m);
}

/* --- Concurrency --- */

#define WORKERS 4
#define ROUNDS  50000

struct shared {
    struct metrics *m;
    atomic_bool stop;
    atomic_int failures;
    atomic_int renders;
};

static void *worker(void *arg)
{
    struct shared *sh = arg;
    const char *const labels[] = {"py", "completed"};
    for (int i = 0; i < ROUNDS; i++) {
        metrics_inc(sh->m, METRIC_EXECUTIONS_TOTAL, labels);
        metrics_observe(sh->m, METRIC_EXECUTION_DURATION, labels, 0.001 * (i % 100));
        metrics_add(sh->m, METRIC_UPLOAD_BYTES_TOTAL, NULL, 3);
        if (i % 100 == 0)
            metrics_record_execution(sh->m, "js", "failed", 0.5, 0);
    }
    return NULL;
}

/* Render continuously while workers run: every counter read is >= the previous one, and the
 * +Inf bucket equals the count within one rendering. Failures are counted, not asserted: cmocka
 * may only fail from the test's own thread. */
static void *watcher(void *arg)
{
    struct shared *sh = arg;
    double last_exec = -1, last_upload = -1, last_count = -1;
    while (!atomic_load(&sh->stop)) {
        char *text = NULL;
        size_t len;
        if (metrics_render_text(sh->m, &text, &len, NULL) != KILN_OK) {
            atomic_fetch_add(&sh->failures, 1);
            break;
        }
        double e =
            sample_value(text, "kiln_executions_total{language=\"py\",status=\"completed\"}");
        double u = sample_value(text, "kiln_upload_bytes_total");
        double c = sample_value(text, "kiln_execution_duration_seconds_count{language=\"py\"}");
        double inf = sample_value(
            text, "kiln_execution_duration_seconds_bucket{language=\"py\",le=\"+Inf\"}");
        free(text);
        if (e < last_exec || u < last_upload || c < last_count || inf != c)
            atomic_fetch_add(&sh->failures, 1);
        last_exec = e;
        last_upload = u;
        last_count = c;
        atomic_fetch_add(&sh->renders, 1);
        char *js = NULL;
        if (metrics_render_summary_json(sh->m, 24, 0, &js, NULL) != KILN_OK)
            atomic_fetch_add(&sh->failures, 1);
        free(js);
    }
    return NULL;
}

static void test_metrics_concurrent_updates_are_exact_and_monotonic(void **state)
{
    (void)state;
    struct shared sh = {.m = metrics_new(NULL)};
    atomic_init(&sh.stop, false);
    atomic_init(&sh.failures, 0);
    atomic_init(&sh.renders, 0);
    pthread_t w[WORKERS], watch;
    assert_int_equal(pthread_create(&watch, NULL, watcher, &sh), 0);
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&w[i], NULL, worker, &sh), 0);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(w[i], NULL);
    /* On a loaded machine the watcher may not have been scheduled yet: let it render at least
     * twice before stopping it, so the monotonicity checks always run. */
    while (atomic_load(&sh.renders) < 2 && atomic_load(&sh.failures) == 0)
        usleep(1000);
    atomic_store(&sh.stop, true);
    pthread_join(watch, NULL);
    assert_int_equal(atomic_load(&sh.failures), 0);
    assert_true(atomic_load(&sh.renders) > 1); /* the watcher really raced the workers */
    const char *const labels[] = {"py", "completed"}, *const jsf[] = {"js", "failed"};
    assert_int_equal(metrics_value(sh.m, METRIC_EXECUTIONS_TOTAL, labels), WORKERS * ROUNDS);
    assert_int_equal(metrics_value(sh.m, METRIC_EXECUTIONS_TOTAL, jsf), WORKERS * ROUNDS / 100);
    assert_int_equal(metrics_value(sh.m, METRIC_UPLOAD_BYTES_TOTAL, NULL), 3 * WORKERS * ROUNDS);
    assert_int_equal(metrics_value(sh.m, METRIC_EXECUTION_DURATION, labels), WORKERS * ROUNDS);
    char *js = NULL;
    assert_int_equal(metrics_render_summary_json(sh.m, 1, 0, &js, NULL), KILN_OK);
    json_t *root = json_loads(js, 0, NULL);
    free(js);
    json_int_t sum = 0;
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(root, "timeline"), "totals"), i, v) sum +=
        json_integer_value(v);
    assert_int_equal(sum, WORKERS * ROUNDS / 100);
    json_decref(root);
    metrics_free(sh.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_exposition_declares_every_family),
        cmocka_unit_test(test_metrics_label_values_and_help_are_escaped),
        cmocka_unit_test(test_metrics_histogram_buckets_are_cumulative),
        cmocka_unit_test(test_metrics_quantiles_interpolate_inside_buckets),
        cmocka_unit_test(test_metrics_gauges_set_and_add),
        cmocka_unit_test(test_metrics_process_metrics_are_plausible),
        cmocka_unit_test(test_metrics_summary_json_and_timeline),
        cmocka_unit_test(test_metrics_concurrent_updates_are_exact_and_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
