/* Health of kiln's dependencies (store, blob store, executor and pools; later Redis, S3,
 * Kubernetes): a registry of named checks, run in parallel with a timeout each, by a background
 * thread every HEALTH_CHECK_INTERVAL seconds, whose last results are cached for
 * GET /health/detailed and GET /health/<name>. The JSON rendering lives in api/.
 *
 * A check is a plain function; it may block (a network round trip). Each run happens on its own
 * thread so that a check that hangs costs one thread, never the caller: after
 * HEALTH_CHECK_TIMEOUT the check is reported unhealthy ("timed out") and, while it stays stuck,
 * it is not started again (reported "still running") rather than piling up threads.
 *
 * Thread safety: health_register() before health_start(); every other function from any thread.
 */
#ifndef KILN_CORE_HEALTH_H
#define KILN_CORE_HEALTH_H

#include <stddef.h>

#include "util/err.h"

/* Worst last: the overall status is the maximum of the services' statuses. */
enum health_status { HEALTH_HEALTHY, HEALTH_DEGRADED, HEALTH_UNHEALTHY };

/* "healthy", "degraded" or "unhealthy". */
const char *health_status_name(enum health_status s);

/* Limits of the fixed-size report. */
#define HEALTH_MAX_CHECKS  16
#define HEALTH_NAME_MAX    32
#define HEALTH_MESSAGE_MAX 256

/* A check: probe the dependency behind ctx, write a short human-readable message (NUL-terminated,
 * at most msg_size bytes; may be left empty) and return its status. timeout_s is the time it has:
 * a check that can bound its own I/O (connect timeout, request deadline) should use it. Runs on a
 * worker thread; must be safe to run concurrently with the rest of kiln. ctx is borrowed. */
typedef enum health_status (*health_check_fn)(void *ctx, double timeout_s, char *msg,
                                              size_t msg_size);

/* The result of one check. */
struct health_result {
    char name[HEALTH_NAME_MAX];
    enum health_status status;
    char message[HEALTH_MESSAGE_MAX];
    double latency_ms; /* how long the check took (the timeout when it timed out) */
    double checked_at; /* wall clock, seconds since the epoch */
};

/* The /health/detailed document as a plain struct:
 * {status, timestamp, services:{name:{status,message,latency_ms}},
 *  summary:{total_services, healthy_services, degraded_services, unhealthy_services}}. */
struct health_report {
    enum health_status status; /* unhealthy if any is, else degraded if any is, else healthy */
    double timestamp;          /* when the round finished, seconds since the epoch */
    size_t nservices;
    struct health_result services[HEALTH_MAX_CHECKS]; /* in registration order */
    size_t total_services, healthy_services, degraded_services, unhealthy_services;
};

/* How to run the checks (from HEALTH_CHECK_INTERVAL and HEALTH_CHECK_TIMEOUT). */
struct health_options {
    double interval_s; /* between background rounds; <= 0 = 30 */
    double timeout_s;  /* per check; <= 0 = 5 */
};

/* A registry. Opaque. */
struct health;

/* Create an empty registry. Caller frees with health_free(). */
struct health *health_new(const struct health_options *opt);

/* Stop the background thread and free the registry. A check still stuck in its function keeps
 * running on its detached thread and frees its own state when (if) it returns; its ctx must stay
 * valid until then. Waits up to the check timeout for stuck checks first. NULL is a no-op. */
void health_free(struct health *h);

/* Add a check named name ([a-z0-9_-], 1..HEALTH_NAME_MAX-1 chars, unique; it is the path segment
 * of /health/<name>). ctx is borrowed for the registry's life. Only before health_start().
 * KILN_ERR_INVALID for a bad or duplicate name, KILN_ERR_TOO_LARGE past HEALTH_MAX_CHECKS. */
enum kiln_err health_register(struct health *h, const char *name, health_check_fn fn, void *ctx,
                              struct errbuf *eb);

/* Run one round now (so the first report exists when the server opens), then start the
 * background thread. KILN_ERR_INTERNAL if the thread cannot start. */
enum kiln_err health_start(struct health *h, struct errbuf *eb);

/* Run every check now, in parallel, waiting at most the timeout, and update the cache
 * (/health/detailed?use_cache=false). */
void health_refresh(struct health *h);

/* Copy the cached report into *out. Before any round: every service unhealthy, "not checked
 * yet". */
void health_report(struct health *h, struct health_report *out);

/* The cached result of one check (fresh = false) or a fresh run of it (fresh = true, which also
 * updates the cache). KILN_ERR_NOT_FOUND for an unknown name. */
enum kiln_err health_check(struct health *h, const char *name, int fresh, struct health_result *out,
                           struct errbuf *eb);

#endif
