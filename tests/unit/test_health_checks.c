/* Unit tests of core/health_checks: the disk check's three outcomes and the pools check, and
 * both wired into a health registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/health_checks.h"

static void test_health_disk_healthy_degraded_unhealthy(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-test-disk-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char msg[HEALTH_MESSAGE_MAX];

    struct health_disk_ctx ok = {.path = dir, .min_free_ratio = 0, .min_free_bytes = 1};
    assert_int_equal(health_check_disk(&ok, 1, msg, sizeof msg), HEALTH_HEALTHY);
    assert_non_null(strstr(msg, "GiB free of"));

    /* demanding more free space than any disk has */
    struct health_disk_ctx tight = {.path = dir, .min_free_ratio = 1.01, .min_free_bytes = 0};
    assert_int_equal(health_check_disk(&tight, 1, msg, sizeof msg), HEALTH_DEGRADED);
    struct health_disk_ctx huge = {
        .path = dir, .min_free_ratio = 0, .min_free_bytes = UINT64_MAX / 2};
    assert_int_equal(health_check_disk(&huge, 1, msg, sizeof msg), HEALTH_DEGRADED);

    struct health_disk_ctx gone = {.path = "/nonexistent/kiln-data", .min_free_ratio = 0.1};
    assert_int_equal(health_check_disk(&gone, 1, msg, sizeof msg), HEALTH_UNHEALTHY);
    assert_non_null(strstr(msg, "/nonexistent/kiln-data"));

    if (geteuid() != 0) { /* root writes anywhere: the read-only case needs a plain user */
        assert_int_equal(chmod(dir, 0500), 0);
        assert_int_equal(health_check_disk(&ok, 1, msg, sizeof msg), HEALTH_UNHEALTHY);
        assert_non_null(strstr(msg, "not writable"));
    }
    assert_int_equal(rmdir(dir), 0);
}

static void test_health_pools_degraded_when_a_pool_is_empty(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(NULL);
    static const char *const langs[] = {"py", "js", "go"};
    struct health_pools_ctx ctx = {.metrics = m, .languages = langs, .nlanguages = 3};
    const char *const py[] = {"py"}, *const js[] = {"js"};
    char msg[HEALTH_MESSAGE_MAX];

    assert_int_equal(health_check_pools(&ctx, 1, msg, sizeof msg), HEALTH_HEALTHY);
    assert_string_equal(msg, "0 warm pools ready");
    metrics_gauge_set(m, METRIC_POOL_SIZE, py, 4);
    metrics_gauge_set(m, METRIC_POOL_IDLE, py, 2);
    metrics_gauge_set(m, METRIC_POOL_SIZE, js, 2);
    metrics_gauge_set(m, METRIC_POOL_IDLE, js, 1);
    assert_int_equal(health_check_pools(&ctx, 1, msg, sizeof msg), HEALTH_HEALTHY);
    assert_string_equal(msg, "2 warm pools ready");
    metrics_gauge_set(m, METRIC_POOL_IDLE, js, 0);
    assert_int_equal(health_check_pools(&ctx, 1, msg, sizeof msg), HEALTH_DEGRADED);
    assert_string_equal(msg, "pool js empty (0 of 2 idle)");
    metrics_gauge_set(m, METRIC_POOL_IDLE, py, 0);
    char small[20];
    assert_int_equal(health_check_pools(&ctx, 1, small, sizeof small), HEALTH_DEGRADED);
    assert_true(strlen(small) < sizeof small);

    /* through a registry: the overall status follows */
    struct health *h = health_new(&(struct health_options){.interval_s = 3600, .timeout_s = 1});
    assert_int_equal(health_register(h, "pools", health_check_pools, &ctx, NULL), KILN_OK);
    health_refresh(h);
    struct health_report r;
    health_report(h, &r);
    assert_int_equal(r.status, HEALTH_DEGRADED);
    assert_non_null(strstr(r.services[0].message, "pool py empty"));
    metrics_gauge_set(m, METRIC_POOL_IDLE, py, 1);
    metrics_gauge_set(m, METRIC_POOL_IDLE, js, 1);
    health_refresh(h);
    health_report(h, &r);
    assert_int_equal(r.status, HEALTH_HEALTHY);
    health_free(h);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_disk_healthy_degraded_unhealthy),
        cmocka_unit_test(test_health_pools_degraded_when_a_pool_is_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
