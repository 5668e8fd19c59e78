/* Unit tests of core/health: the overall status and summary, checks that fail, degrade or hang
 * past their timeout, no pile-up of stuck checks, the background refresh, single checks and name
 * validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/health.h"

/* A scripted dependency: answers `status` with `message`, counts its calls, and hangs while
 * `hang` is set until released (bounded, so a broken test cannot wedge the run). */
struct dep {
    atomic_int status; /* enum health_status; changed by tests while checks run */
    const char *message;
    atomic_int calls;
    atomic_int returned;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool hang;
};

static void dep_init(struct dep *d, enum health_status st, const char *msg)
{
    memset(d, 0, sizeof *d);
    atomic_init(&d->status, (int)st);
    d->message = msg;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
}

static void dep_release(struct dep *d)
{
    pthread_mutex_lock(&d->lock);
    d->hang = false;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void dep_destroy(struct dep *d)
{
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
}

static enum health_status dep_check(void *ctx, double timeout_s, char *msg, size_t msg_size)
{
    struct dep *d = ctx;
    (void)timeout_s;
    atomic_fetch_add(&d->calls, 1);
    pthread_mutex_lock(&d->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    while (d->hang) {
        if (pthread_cond_timedwait(&d->cond, &d->lock, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&d->lock);
    usleep(1000); /* a measurable latency */
    snprintf(msg, msg_size, "%s", d->message);
    atomic_fetch_add(&d->returned, 1);
    return (enum health_status)atomic_load(&d->status);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const struct health_result *find(const struct health_report *r, const char *name)
{
    for (size_t i = 0; i < r->nservices; i++) {
        if (strcmp(r->services[i].name, name) == 0)
            return &r->services[i];
    }
    fail_msg("no service %s in the report", name);
    return NULL;
}

static void test_health_all_healthy_and_summary(void **state)
{
    (void)state;
    struct dep a, b;
    dep_init(&a, HEALTH_HEALTHY, "ok");
    dep_init(&b, HEALTH_HEALTHY, "2 of 2 pools warm");
    struct health_options opt = {.interval_s = 3600, .timeout_s = 2};
    struct health *h = health_new(&opt);
    assert_int_equal(health_register(h, "store", dep_check, &a, NULL), KILN_OK);
    assert_int_equal(health_register(h, "executor", dep_check, &b, NULL), KILN_OK);

    struct health_report r;
    health_report(h, &r); /* before any round: unhealthy, not checked */
    assert_int_equal(r.status, HEALTH_UNHEALTHY);
    assert_string_equal(find(&r, "store")->message, "not checked yet");

    assert_int_equal(health_start(h, NULL), KILN_OK);
    health_report(h, &r);
    assert_int_equal(r.status, HEALTH_HEALTHY);
    assert_int_equal(r.total_services, 2);
    assert_int_equal(r.healthy_services, 2);
    assert_int_equal(r.degraded_services + r.unhealthy_services, 0);
    assert_string_equal(r.services[0].name, "store"); /* registration order */
    assert_string_equal(find(&r, "executor")->message, "2 of 2 pools warm");
    assert_true(find(&r, "store")->latency_ms >= 1.0);
    assert_true(r.timestamp > (double)time(NULL) - 60);
    assert_string_equal(health_status_name(r.status), "healthy");
    health_free(h);
    dep_destroy(&a);
    dep_destroy(&b);
}

static void test_health_worst_status_wins(void **state)
{
    (void)state;
    struct dep ok, slow, down;
    dep_init(&ok, HEALTH_HEALTHY, "ok");
    dep_init(&slow, HEALTH_DEGRADED, "pool py empty");
    dep_init(&down, HEALTH_UNHEALTHY, "connection refused");
    struct health_options opt = {.interval_s = 3600, .timeout_s = 2};
    struct health *h = health_new(&opt);
    assert_int_equal(health_register(h, "store", dep_check, &ok, NULL), KILN_OK);
    assert_int_equal(health_register(h, "executor", dep_check, &slow, NULL), KILN_OK);
    health_refresh(h);
    struct health_report r;
    health_report(h, &r);
    assert_int_equal(r.status, HEALTH_DEGRADED);
    assert_int_equal(r.degraded_services, 1);
    assert_string_equal(find(&r, "executor")->message, "pool py empty");

    health_free(h);
    h = health_new(&opt);
    assert_int_equal(health_register(h, "store", dep_check, &ok, NULL), KILN_OK);
    assert_int_equal(health_register(h, "executor", dep_check, &slow, NULL), KILN_OK);
    assert_int_equal(health_register(h, "blob", dep_check, &down, NULL), KILN_OK);
    health_refresh(h);
    health_report(h, &r);
    assert_int_equal(r.status, HEALTH_UNHEALTHY);
    assert_int_equal(r.healthy_services, 1);
    assert_int_equal(r.degraded_services, 1);
    assert_int_equal(r.unhealthy_services, 1);
    assert_string_equal(find(&r, "blob")->message, "connection refused");
    assert_string_equal(health_status_name(r.status), "unhealthy");
    health_free(h);
    dep_destroy(&ok);
    dep_destroy(&slow);
    dep_destroy(&down);
}

static void test_health_hanging_check_times_out_without_pileup(void **state)
{
    (void)state;
    struct dep ok, hung;
    dep_init(&ok, HEALTH_HEALTHY, "ok");
    dep_init(&hung, HEALTH_HEALTHY, "back");
    hung.hang = true;
    struct health_options opt = {.interval_s = 3600, .timeout_s = 0.2};
    struct health *h = health_new(&opt);
    assert_int_equal(health_register(h, "store", dep_check, &ok, NULL), KILN_OK);
    assert_int_equal(health_register(h, "redis", dep_check, &hung, NULL), KILN_OK);

    double t0 = mono();
    health_refresh(h);
    double took = mono() - t0;
    assert_true(took >= 0.19 && took < 2.0); /* one timeout, not forever */
    struct health_report r;
    health_report(h, &r);
    assert_int_equal(r.status, HEALTH_UNHEALTHY);
    assert_int_equal(find(&r, "store")->status, HEALTH_HEALTHY);
    const struct health_result *x = find(&r, "redis");
    assert_int_equal(x->status, HEALTH_UNHEALTHY);
    assert_non_null(strstr(x->message, "timed out"));
    assert_true(x->latency_ms >= 199);

    /* still stuck: reported at once, and not started a second time */
    t0 = mono();
    health_refresh(h);
    assert_true(mono() - t0 < 1.0);
    health_report(h, &r);
    assert_non_null(strstr(find(&r, "redis")->message, "still running"));
    assert_int_equal(atomic_load(&hung.calls), 1);

    /* it comes back: the next round runs it again and it is healthy */
    dep_release(&hung);
    for (int i = 0; i < 200 && atomic_load(&hung.returned) == 0; i++)
        usleep(10000);
    health_refresh(h);
    health_report(h, &r);
    assert_int_equal(find(&r, "redis")->status, HEALTH_HEALTHY);
    assert_string_equal(find(&r, "redis")->message, "back");
    assert_int_equal(atomic_load(&hung.calls), 2);
    assert_int_equal(r.status, HEALTH_HEALTHY);
    health_free(h);
    dep_destroy(&ok);
    dep_destroy(&hung);
}

static void test_health_free_waits_for_a_released_stuck_check(void **state)
{
    (void)state;
    struct dep hung;
    dep_init(&hung, HEALTH_HEALTHY, "late");
    hung.hang = true;
    struct health_options opt = {.interval_s = 3600, .timeout_s = 0.1};
    struct health *h = health_new(&opt);
    assert_int_equal(health_register(h, "kubernetes", dep_check, &hung, NULL), KILN_OK);
    health_refresh(h);
    dep_release(&hung);
    health_free(h); /* the stuck job finishes and is freed: no leak under ASan */
    for (int i = 0; i < 200 && atomic_load(&hung.returned) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&hung.returned), 1);
    usleep(20000); /* let the detached worker drop its reference before dep is destroyed */
    dep_destroy(&hung);
}

static void test_health_background_thread_refreshes(void **state)
{
    (void)state;
    struct dep d;
    dep_init(&d, HEALTH_HEALTHY, "ok");
    struct health_options opt = {.interval_s = 0.05, .timeout_s = 1};
    struct health *h = health_new(&opt);
    assert_int_equal(health_register(h, "store", dep_check, &d, NULL), KILN_OK);
    assert_int_equal(health_start(h, NULL), KILN_OK);
    assert_int_equal(atomic_load(&d.calls), 1); /* the first round ran before start returned */
    for (int i = 0; i < 300 && atomic_load(&d.calls) < 4; i++)
        usleep(10000);
    assert_true(atomic_load(&d.calls) >= 4);
    atomic_store(&d.status, (int)HEALTH_DEGRADED); /* the cache follows the dependency */
    int seen = atomic_load(&d.calls);
    for (int i = 0; i < 300 && atomic_load(&d.calls) < seen + 2; i++)
        usleep(10000);
    struct health_report r;
    health_report(h, &r);
    assert_int_equal(r.status, HEALTH_DEGRADED);
    assert_int_equal(health_start(h, NULL), KILN_ERR_INVALID); /* only once */
    health_free(h);
    int after = atomic_load(&d.calls);
    usleep(150000);
    assert_int_equal(atomic_load(&d.calls), after); /* stopped */
    dep_destroy(&d);
}

static void test_health_single_check_cached_and_fresh(void **state)
{
    (void)state;
    struct dep d;
    dep_init(&d, HEALTH_HEALTHY, "ok");
    struct health_options opt = {.interval_s = 3600, .timeout_s = 1};
    struct health *h = health_new(&opt);
    assert_int_equal(health_register(h, "blob", dep_check, &d, NULL), KILN_OK);
    struct health_result r;
    struct errbuf eb = {{0}};
    assert_int_equal(health_check(h, "blob", 0, &r, &eb), KILN_OK);
    assert_int_equal(r.status, HEALTH_UNHEALTHY); /* cached: never checked */
    assert_int_equal(atomic_load(&d.calls), 0);
    assert_int_equal(health_check(h, "blob", 1, &r, &eb), KILN_OK);
    assert_int_equal(r.status, HEALTH_HEALTHY);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(health_check(h, "blob", 0, &r, &eb), KILN_OK);
    assert_int_equal(r.status, HEALTH_HEALTHY);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(health_check(h, "nope", 0, &r, &eb), KILN_ERR_NOT_FOUND);
    assert_non_null(strstr(eb.msg, "nope"));
    health_free(h);
    dep_destroy(&d);
}

static void test_health_register_validates(void **state)
{
    (void)state;
    struct dep d;
    dep_init(&d, HEALTH_HEALTHY, "ok");
    struct health *h = health_new(NULL);
    struct errbuf eb = {{0}};
    assert_int_equal(health_register(h, "", dep_check, &d, &eb), KILN_ERR_INVALID);
    assert_int_equal(health_register(h, "Store", dep_check, &d, &eb), KILN_ERR_INVALID);
    assert_int_equal(health_register(h, "../x", dep_check, &d, &eb), KILN_ERR_INVALID);
    assert_int_equal(
        health_register(h, "a-very-long-name-that-does-not-fit-at-all", dep_check, &d, &eb),
        KILN_ERR_INVALID);
    assert_int_equal(health_register(h, "store", NULL, &d, &eb), KILN_ERR_INVALID);
    char name[16];
    for (int i = 0; i < HEALTH_MAX_CHECKS; i++) {
        snprintf(name, sizeof name, "dep%d", i);
        assert_int_equal(health_register(h, name, dep_check, &d, &eb), KILN_OK);
    }
    assert_int_equal(health_register(h, "dep0", dep_check, &d, &eb), KILN_ERR_INVALID);
    assert_int_equal(health_register(h, "one_more", dep_check, &d, &eb), KILN_ERR_TOO_LARGE);
    health_free(h);

    h = health_new(NULL);
    assert_int_equal(health_start(h, NULL), KILN_OK);
    assert_int_equal(health_register(h, "late", dep_check, &d, &eb), KILN_ERR_INVALID);
    struct health_report r;
    health_report(h, &r); /* no checks: healthy and empty */
    assert_int_equal(r.status, HEALTH_HEALTHY);
    assert_int_equal(r.total_services, 0);
    health_free(h);
    dep_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_all_healthy_and_summary),
        cmocka_unit_test(test_health_worst_status_wins),
        cmocka_unit_test(test_health_hanging_check_times_out_without_pileup),
        cmocka_unit_test(test_health_free_waits_for_a_released_stuck_check),
        cmocka_unit_test(test_health_background_thread_refreshes),
        cmocka_unit_test(test_health_single_check_cached_and_fresh),
        cmocka_unit_test(test_health_register_validates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
