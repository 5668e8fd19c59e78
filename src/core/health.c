/* Dependency health checks with per-check timeouts, cached by a background thread. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/health.h"
#include "util/xmalloc.h"

/* One run of one check, shared by the worker thread that runs it and the round that waits for
 * it; whoever drops the last reference frees it. This is what lets a round give up on a check
 * that hangs without the worker writing into freed memory later. */
struct health_job {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when done */
    int refs;
    bool done;
    health_check_fn fn;
    void *ctx;
    double timeout_s;
    enum health_status status;
    char message[HEALTH_MESSAGE_MAX];
    double elapsed_ms;
};

struct health_entry {
    char name[HEALTH_NAME_MAX];
    health_check_fn fn;
    void *ctx;
    struct health_job *stuck; /* a run that outlived its timeout; one reference held here */
    struct health_result last;
};

struct health {
    pthread_mutex_t lock;       /* guards everything below but the immutable options */
    pthread_cond_t wake;        /* wakes the background thread (stop) */
    pthread_mutex_t round_lock; /* one round at a time (background, refresh, single checks) */
    double interval_s, timeout_s;
    bool started, stop;
    pthread_t thread;
    size_t n;
    struct health_entry entries[HEALTH_MAX_CHECKS];
};

static const char *const status_names[] = {
    [HEALTH_HEALTHY] = "healthy", [HEALTH_DEGRADED] = "degraded", [HEALTH_UNHEALTHY] = "unhealthy"};

const char *health_status_name(enum health_status s)
{
    return (unsigned)s <= HEALTH_UNHEALTHY ? status_names[s] : "unhealthy";
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec mono_deadline(double at)
{
    struct timespec ts;
    ts.tv_sec = (time_t)at;
    ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* A condition variable timed on CLOCK_MONOTONIC, so that setting the wall clock neither stalls
 * nor hurries the checks. */
static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

static void job_unref(struct health_job *job)
{
    pthread_mutex_lock(&job->lock);
    bool last = --job->refs == 0;
    pthread_mutex_unlock(&job->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->cond);
    free(job);
}

static void *job_main(void *arg)
{
    struct health_job *job = arg;
    char msg[HEALTH_MESSAGE_MAX] = "";
    double t0 = mono_now();
    enum health_status st = job->fn(job->ctx, job->timeout_s, msg, sizeof msg);
    double elapsed = (mono_now() - t0) * 1e3;
    msg[sizeof msg - 1] = '\0';
    pthread_mutex_lock(&job->lock);
    job->status = (unsigned)st <= HEALTH_UNHEALTHY ? st : HEALTH_UNHEALTHY;
    memcpy(job->message, msg, sizeof msg);
    job->elapsed_ms = elapsed;
    job->done = true;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->lock);
    job_unref(job);
    return NULL;
}

/* Start a worker for entry e; NULL if no thread could be made. Two references: the worker's and
 * the caller's. */
static struct health_job *job_start(const struct health *h, const struct health_entry *e)
{
    struct health_job *job = xcalloc(1, sizeof *job);
    pthread_mutex_init(&job->lock, NULL);
    cond_init_monotonic(&job->cond);
    job->refs = 2;
    job->fn = e->fn;
    job->ctx = e->ctx;
    job->timeout_s = h->timeout_s;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, job_main, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        job->refs = 1;
        job_unref(job);
        return NULL;
    }
    return job;
}

/* Wait for job until deadline (monotonic); true when it finished. */
static bool job_wait(struct health_job *job, double deadline)
{
    struct timespec ts = mono_deadline(deadline);
    pthread_mutex_lock(&job->lock);
    while (!job->done) {
        if (pthread_cond_timedwait(&job->cond, &job->lock, &ts) == ETIMEDOUT)
            break;
    }
    bool done = job->done;
    pthread_mutex_unlock(&job->lock);
    return done;
}

static void set_result(struct health_result *r, const char *name, enum health_status st,
                       const char *msg, double latency_ms)
{
    snprintf(r->name, sizeof r->name, "%s", name);
    r->status = st;
    snprintf(r->message, sizeof r->message, "%s", msg);
    r->latency_ms = latency_ms;
    r->checked_at = wall_now();
}

/* Run the checks whose index is in [first, last) in parallel and store their results. */
static void run_checks(struct health *h, size_t first, size_t last)
{
    struct health_job *jobs[HEALTH_MAX_CHECKS] = {0};
    struct health_result results[HEALTH_MAX_CHECKS];
    bool have[HEALTH_MAX_CHECKS] = {0};

    pthread_mutex_lock(&h->round_lock);
    pthread_mutex_lock(&h->lock);
    for (size_t i = first; i < last; i++) {
        struct health_entry *e = &h->entries[i];
        if (e->stuck && job_wait(e->stuck, 0)) {
            job_unref(e->stuck);
            e->stuck = NULL;
        }
        if (e->stuck) {
            char msg[HEALTH_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "previous check still running after its %gs timeout",
                     h->timeout_s);
            set_result(&results[i], e->name, HEALTH_UNHEALTHY, msg, h->timeout_s * 1e3);
            have[i] = true;
            continue;
        }
        jobs[i] = job_start(h, e);
        if (!jobs[i]) {
            set_result(&results[i], e->name, HEALTH_UNHEALTHY, "cannot start a check thread", 0);
            have[i] = true;
        }
    }
    pthread_mutex_unlock(&h->lock);

    /* Every check started together, so the round takes at most one timeout. */
    double deadline = mono_now() + h->timeout_s;
    struct health_job *stuck[HEALTH_MAX_CHECKS] = {0};
    for (size_t i = first; i < last; i++) {
        if (!jobs[i])
            continue;
        have[i] = true;
        if (job_wait(jobs[i], deadline)) {
            set_result(&results[i], h->entries[i].name, jobs[i]->status, jobs[i]->message,
                       jobs[i]->elapsed_ms);
            job_unref(jobs[i]);
        } else {
            char msg[HEALTH_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "check timed out after %gs", h->timeout_s);
            set_result(&results[i], h->entries[i].name, HEALTH_UNHEALTHY, msg, h->timeout_s * 1e3);
            stuck[i] = jobs[i]; /* our reference moves to the entry */
        }
    }

    pthread_mutex_lock(&h->lock);
    for (size_t i = first; i < last; i++) {
        if (have[i])
            h->entries[i].last = results[i];
        if (stuck[i])
            h->entries[i].stuck = stuck[i];
    }
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_unlock(&h->round_lock);
}

struct health *health_new(const struct health_options *opt)
{
    struct health *h = xcalloc(1, sizeof *h);
    h->interval_s = opt && opt->interval_s > 0 ? opt->interval_s : 30;
    h->timeout_s = opt && opt->timeout_s > 0 ? opt->timeout_s : 5;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->round_lock, NULL);
    cond_init_monotonic(&h->wake);
    return h;
}

static bool valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= HEALTH_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

enum kiln_err health_register(struct health *h, const char *name, health_check_fn fn, void *ctx,
                              struct errbuf *eb)
{
    enum kiln_err rc = KILN_OK;
    if (!h || !fn || !valid_name(name))
        return errbuf_set(eb, KILN_ERR_INVALID, "health check name must be 1-%d of [a-z0-9_-]",
                          HEALTH_NAME_MAX - 1);
    pthread_mutex_lock(&h->lock);
    if (h->started) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "health check %s registered after start", name);
        goto out;
    }
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->entries[i].name, name) == 0) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "health check %s registered twice", name);
            goto out;
        }
    }
    if (h->n == HEALTH_MAX_CHECKS) {
        rc = errbuf_set(eb, KILN_ERR_TOO_LARGE, "more than %d health checks", HEALTH_MAX_CHECKS);
        goto out;
    }
    struct health_entry *e = &h->entries[h->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->fn = fn;
    e->ctx = ctx;
    snprintf(e->last.name, sizeof e->last.name, "%s", name);
    e->last.status = HEALTH_UNHEALTHY;
    snprintf(e->last.message, sizeof e->last.message, "not checked yet");
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

static void *health_main(void *arg)
{
    struct health *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        struct timespec ts = mono_deadline(mono_now() + h->interval_s);
        while (!h->stop && pthread_cond_timedwait(&h->wake, &h->lock, &ts) != ETIMEDOUT)
            ;
        if (h->stop)
            break;
        size_t n = h->n;
        pthread_mutex_unlock(&h->lock);
        run_checks(h, 0, n);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

enum kiln_err health_start(struct health *h, struct errbuf *eb)
{
    if (!h)
        return errbuf_set(eb, KILN_ERR_INVALID, "health_start: no registry");
    pthread_mutex_lock(&h->lock);
    bool already = h->started;
    h->started = true;
    size_t n = h->n;
    pthread_mutex_unlock(&h->lock);
    if (already)
        return errbuf_set(eb, KILN_ERR_INVALID, "health checks already started");
    run_checks(h, 0, n);
    if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
        pthread_mutex_lock(&h->lock);
        h->started = false;
        pthread_mutex_unlock(&h->lock);
        return errbuf_set(eb, KILN_ERR_INTERNAL, "cannot start the health-check thread");
    }
    return KILN_OK;
}

void health_refresh(struct health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    size_t n = h->n;
    pthread_mutex_unlock(&h->lock);
    run_checks(h, 0, n);
}

void health_report(struct health *h, struct health_report *out)
{
    memset(out, 0, sizeof *out);
    out->status = HEALTH_HEALTHY;
    if (!h)
        return;
    double newest = 0;
    pthread_mutex_lock(&h->lock);
    out->nservices = h->n;
    for (size_t i = 0; i < h->n; i++) {
        const struct health_result *r = &h->entries[i].last;
        out->services[i] = *r;
        if (r->status > out->status)
            out->status = r->status;
        if (r->checked_at > newest)
            newest = r->checked_at;
        if (r->status == HEALTH_HEALTHY)
            out->healthy_services++;
        else if (r->status == HEALTH_DEGRADED)
            out->degraded_services++;
        else
            out->unhealthy_services++;
    }
    pthread_mutex_unlock(&h->lock);
    out->total_services = out->nservices;
    out->timestamp = newest > 0 ? newest : wall_now();
}

enum kiln_err health_check(struct health *h, const char *name, int fresh, struct health_result *out,
                           struct errbuf *eb)
{
    if (!h || !name)
        return errbuf_set(eb, KILN_ERR_INVALID, "health_check: no registry or name");
    size_t idx = HEALTH_MAX_CHECKS;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->entries[i].name, name) == 0)
            idx = i;
    }
    pthread_mutex_unlock(&h->lock);
    if (idx == HEALTH_MAX_CHECKS)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "no health check named %s", name);
    if (fresh)
        run_checks(h, idx, idx + 1);
    pthread_mutex_lock(&h->lock);
    *out = h->entries[idx].last;
    pthread_mutex_unlock(&h->lock);
    return KILN_OK;
}

void health_free(struct health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    bool started = h->started;
    h->stop = true;
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->lock);
    /* started may be set without a thread when pthread_create failed; it is reset then. */
    if (started)
        pthread_join(h->thread, NULL);
    double deadline = mono_now() + h->timeout_s;
    for (size_t i = 0; i < h->n; i++) {
        if (!h->entries[i].stuck)
            continue;
        job_wait(h->entries[i].stuck, deadline);
        job_unref(h->entries[i].stuck);
    }
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->round_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
