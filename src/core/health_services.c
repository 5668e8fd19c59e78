/* Health checks of the store, blob and executor ports (health_services.h). */
#include "core/health_services.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "lang/lang.h"
#include "sandbox/sandbox.h"

enum health_status health_check_store(void *ctx, double timeout_s, char *msg, size_t msg_size)
{
    struct health_services *hs = ctx;
    struct store *st = hs->svc->store;
    struct errbuf eb;
    long long n = 0;

    (void)timeout_s;
    errbuf_clear(&eb);
    if (st->ops->ping(st, &eb) != KILN_OK || st->ops->session_count(st, NULL, &n, &eb) != KILN_OK) {
        snprintf(msg, msg_size, "%s: %s", st->ops->name, eb.msg);
        return HEALTH_UNHEALTHY;
    }
    snprintf(msg, msg_size, "%s ok, %lld sessions", st->ops->name, n);
    return HEALTH_HEALTHY;
}

/* Write, read back and delete a probe; KILN_OK or the failing step's error in eb. */
static enum kiln_err health_blob_probe(struct blob *b, struct errbuf *eb)
{
    unsigned char rnd[8] = {0};
    char key[64], want[32], got[32];
    struct blob_writer *w = NULL;
    size_t n = 0;
    enum kiln_err rc;

    (void)RAND_bytes(rnd, sizeof rnd);
    snprintf(key, sizeof key, "_health/probe-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(want, sizeof want, "kiln health probe");
    rc = b->ops->write_begin(b, key, &w, eb);
    if (rc)
        return rc;
    rc = b->ops->write(w, want, strlen(want), eb);
    if (rc) {
        b->ops->write_abort(w);
        return rc;
    }
    rc = b->ops->write_commit(w, eb);
    if (rc)
        return rc;
    memset(got, 0, sizeof got);
    rc = b->ops->read_at(b, key, 0, got, sizeof got - 1, &n, eb);
    if (rc == KILN_OK && (n != strlen(want) || memcmp(got, want, n) != 0))
        rc = errbuf_set(eb, KILN_ERR_IO, "probe read back differs");
    if (b->ops->remove(b, key, rc ? &(struct errbuf){{0}} : eb) != KILN_OK && rc == KILN_OK)
        rc = KILN_ERR_IO;
    return rc;
}

enum health_status health_check_blob(void *ctx, double timeout_s, char *msg, size_t msg_size)
{
    struct health_services *hs = ctx;
    struct blob *b = hs->svc->blob;
    struct errbuf eb;

    (void)timeout_s;
    errbuf_clear(&eb);
    if (b->ops->ping(b, &eb) != KILN_OK) {
        snprintf(msg, msg_size, "%s: %s", b->ops->name, eb.msg);
        return HEALTH_UNHEALTHY;
    }
    if (health_blob_probe(b, &eb) != KILN_OK) {
        snprintf(msg, msg_size, "%s answers but refuses writes: %s", b->ops->name, eb.msg);
        return HEALTH_DEGRADED;
    }
    snprintf(msg, msg_size, "%s ok: probe written, read back and deleted", b->ops->name);
    return HEALTH_HEALTHY;
}

enum health_status health_check_executor(void *ctx, double timeout_s, char *msg, size_t msg_size)
{
    struct health_services *hs = ctx;
    struct sbx_workspace *ws = NULL;
    struct errbuf eb;
    enum kiln_err rc;

    (void)timeout_s;
    if (hs->svc->sbx == NULL) {
        snprintf(msg, msg_size, "%s executor: no local sandbox to probe",
                 hs->svc->cfg->execution_mode);
        return HEALTH_HEALTHY;
    }
    errbuf_clear(&eb);
    rc = sbx_workspace_new(hs->svc->sbx, 1, &ws, &eb);
    if (rc == KILN_ERR_UNAVAILABLE) {
        snprintf(msg, msg_size, "every sandbox slot is busy: %s", eb.msg);
        return HEALTH_DEGRADED;
    }
    if (rc) {
        snprintf(msg, msg_size, "sandbox cannot create a workspace: %s", eb.msg);
        return HEALTH_UNHEALTHY;
    }
    sbx_workspace_free(ws);
    snprintf(msg, msg_size, "sandbox ok: workspace created and removed");
    return HEALTH_HEALTHY;
}

/* The pools check on fresh gauges (the pools report their statistics on demand). */
static enum health_status health_services_pools(void *ctx, double timeout_s, char *msg,
                                                size_t msg_size)
{
    struct health_services *hs = ctx;

    services_pool_metrics(hs->svc);
    return health_check_pools(&hs->pools, timeout_s, msg, msg_size);
}

enum kiln_err health_services_register(struct health *h, struct health_services *hs,
                                       struct kiln_services *svc, struct errbuf *eb)
{
    enum kiln_err rc;

    memset(hs, 0, sizeof *hs);
    hs->svc = svc;
    hs->disk.path = svc->cfg->data_dir;
    hs->disk.min_free_ratio = 0.05;
    hs->disk.min_free_bytes = 256ull << 20;
    rc = health_register(h, "store", health_check_store, hs, eb);
    if (rc == KILN_OK)
        rc = health_register(h, "blob", health_check_blob, hs, eb);
    if (rc == KILN_OK)
        rc = health_register(h, "executor", health_check_executor, hs, eb);
    if (rc == KILN_OK)
        rc = health_register(h, "disk", health_check_disk, &hs->disk, eb);
    if (rc == KILN_OK && svc->metrics != NULL) {
        size_t n = 0;
        const struct lang *all = lang_all(&n);
        if (n > sizeof hs->langs / sizeof hs->langs[0])
            n = sizeof hs->langs / sizeof hs->langs[0];
        for (size_t i = 0; i < n; i++)
            hs->langs[i] = all[i].code;
        hs->pools.metrics = svc->metrics;
        hs->pools.languages = hs->langs;
        hs->pools.nlanguages = n;
        rc = health_register(h, "pools", health_services_pools, hs, eb);
    }
    return rc;
}
