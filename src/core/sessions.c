#include "core/sessions.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ids.h"
#include "core/state.h"
#include "util/xmalloc.h"

/* Sessions swept per store round trip. */
#define SESSIONS_SWEEP_BATCH 256

enum kiln_err sessions_validate_entity(const char *entity_id, struct errbuf *eb)
{
    size_t n;

    if (entity_id == NULL || entity_id[0] == '\0')
        return KILN_OK;
    n = strnlen(entity_id, SESSIONS_MAX_ENTITY + 1);
    if (n > SESSIONS_MAX_ENTITY)
        return errbuf_set(eb, KILN_ERR_INVALID, "entity_id must be at most %d characters",
                          SESSIONS_MAX_ENTITY);
    if (strspn(entity_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != n)
        return errbuf_set(eb, KILN_ERR_INVALID, "entity_id must match ^[A-Za-z0-9_-]+$");
    return KILN_OK;
}

bool sessions_visible(const struct store_session *s, const char *user)
{
    if (user == NULL || user[0] == '\0')
        return true;
    return s->user_id == NULL || s->user_id[0] == '\0' || strcmp(s->user_id, user) == 0;
}

static long long sessions_expiry(const struct kiln_services *svc, long long now)
{
    long long ttl_s = svc->cfg->session_ttl_seconds > 0 ? svc->cfg->session_ttl_seconds
                                                        : svc->cfg->session_ttl_hours * 3600LL;
    return ttl_s > 0 ? now + ttl_s * 1000LL : 0;
}

/* Delete the bytes of keys; failures leave orphans for the next recovery, never an error. */
static void sessions_drop_bytes(struct kiln_services *svc, char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        svc->blob->ops->remove(svc->blob, keys[i], NULL);
}

enum kiln_err sessions_prepare(struct kiln_services *svc, const char *user, const char *entity,
                               struct store_session *out, struct errbuf *eb)
{
    long long now = services_now_ms(svc);
    enum kiln_err rc;

    rc = sessions_validate_entity(entity, eb);
    if (rc)
        return rc;
    if (user != NULL && strlen(user) > STORE_MAX_USER)
        return errbuf_set(eb, KILN_ERR_INVALID, "user_id must be at most %d bytes", STORE_MAX_USER);
    rc = ids_new(out->id, eb);
    if (rc)
        return rc;
    out->user_id = xstrdup(user != NULL ? user : "");
    out->entity_id = xstrdup(entity != NULL ? entity : "");
    out->created_ms = now;
    out->active_ms = now;
    out->expires_ms = sessions_expiry(svc, now);
    return KILN_OK;
}

enum kiln_err sessions_insert(struct kiln_services *svc, const struct store_session *s,
                              struct errbuf *eb)
{
    char **evicted = NULL;
    size_t nevicted = 0;
    enum kiln_err rc = svc->store->ops->session_create(
        svc->store, s, svc->cfg->max_sessions_per_entity, &evicted, &nevicted, eb);

    sessions_drop_bytes(svc, evicted, nevicted);
    store_strings_free(evicted, nevicted);
    return rc;
}

enum kiln_err sessions_create(struct kiln_services *svc, const char *user, const char *entity,
                              struct store_session *out, struct errbuf *eb)
{
    struct store_session s = {0};
    enum kiln_err rc = KILN_OK;

    /* a collision of two 126-bit ids is practically impossible; retry once anyway */
    for (int attempt = 0; attempt < 2; attempt++) {
        store_session_clear(&s);
        rc = sessions_prepare(svc, user, entity, &s, eb);
        if (rc == KILN_OK)
            rc = sessions_insert(svc, &s, eb);
        if (rc != KILN_ERR_CONFLICT)
            break;
    }
    if (rc) {
        store_session_clear(&s);
        return rc;
    }
    *out = s;
    return KILN_OK;
}

enum kiln_err sessions_get(struct kiln_services *svc, const char *user, const char *sid,
                           struct store_session *out, struct errbuf *eb)
{
    struct store_session s = {0};
    enum kiln_err rc;

    if (!ids_valid(sid))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "Session not found");
    rc = svc->store->ops->session_get(svc->store, sid, &s, eb);
    if (rc)
        return rc;
    /* an expired session the sweeper has not reached yet is already gone for callers */
    if ((s.expires_ms > 0 && s.expires_ms <= services_now_ms(svc)) || !sessions_visible(&s, user)) {
        store_session_clear(&s);
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "Session not found");
    }
    *out = s;
    return KILN_OK;
}

enum kiln_err sessions_touch(struct kiln_services *svc, const char *sid, struct errbuf *eb)
{
    long long now = services_now_ms(svc);
    return svc->store->ops->session_touch(svc->store, sid, now, sessions_expiry(svc, now), eb);
}

enum kiln_err sessions_choose(struct kiln_services *svc, const char *user, const char *entity,
                              const char *explicit_sid, const char *const *ref_sids, size_t nrefs,
                              bool insert, struct store_session *out, bool *created,
                              struct errbuf *eb)
{
    enum kiln_err rc;

    *created = false;
    if (explicit_sid != NULL && explicit_sid[0] != '\0') {
        rc = sessions_get(svc, user, explicit_sid, out, eb);
        if (rc != KILN_ERR_NOT_FOUND)
            return rc;
    }
    for (size_t i = 0; i < nrefs; i++) {
        if (ref_sids[i] == NULL)
            continue;
        rc = sessions_get(svc, user, ref_sids[i], out, eb);
        if (rc != KILN_ERR_NOT_FOUND)
            return rc;
    }
    *created = true;
    return insert ? sessions_create(svc, user, entity, out, eb)
                  : sessions_prepare(svc, user, entity, out, eb);
}

enum kiln_err sessions_delete(struct kiln_services *svc, const char *sid, struct errbuf *eb)
{
    char **keys = NULL;
    size_t n = 0;
    enum kiln_err rc = svc->store->ops->session_delete(svc->store, sid, &keys, &n, eb);

    if (rc)
        return rc;
    sessions_drop_bytes(svc, keys, n);
    store_strings_free(keys, n);
    state_delete(svc, sid, NULL);
    return KILN_OK;
}

enum kiln_err sessions_sweep(struct kiln_services *svc, long long *removed, struct errbuf *eb)
{
    long long now = services_now_ms(svc), total = 0;
    enum kiln_err rc = KILN_OK;

    for (;;) {
        char **ids = NULL;
        size_t n = 0;

        rc = svc->store->ops->session_list_expired(svc->store, now, SESSIONS_SWEEP_BATCH, &ids, &n,
                                                   eb);
        if (rc)
            break;
        for (size_t i = 0; i < n; i++) {
            /* gone meanwhile (a concurrent delete) is fine */
            enum kiln_err r = sessions_delete(svc, ids[i], NULL);
            if (r == KILN_OK)
                total++;
        }
        store_strings_free(ids, n);
        if (n < SESSIONS_SWEEP_BATCH)
            break;
    }
    if (rc == KILN_OK)
        rc = svc->store->ops->kv_sweep(svc->store, now, NULL, eb);
    if (removed != NULL)
        *removed = total;
    return rc;
}

struct sessions_orphans {
    struct kiln_services *svc;
    char **keys;
    size_t n;
};

static enum kiln_err sessions_orphan_cb(void *arg, const char *key)
{
    struct sessions_orphans *o = arg;
    bool ref = true;
    enum kiln_err rc;

    if (state_blob_key(key)) /* archived Python state: core/state.c owns and expires it */
        return KILN_OK;
    rc = o->svc->store->ops->blob_key_referenced(o->svc->store, key, &ref, NULL);
    if (rc)
        return rc;
    if (!ref) {
        o->keys = xreallocarray(o->keys, o->n + 1, sizeof *o->keys);
        o->keys[o->n++] = xstrdup(key);
    }
    return KILN_OK;
}

enum kiln_err sessions_recover(struct kiln_services *svc, struct sessions_recovery *out,
                               struct errbuf *eb)
{
    struct sessions_recovery r = {0};
    struct sessions_orphans o = {.svc = svc};
    char **keys = NULL;
    size_t n = 0;
    enum kiln_err rc;

    rc = svc->blob->ops->recover(svc->blob, &r.temp_files, eb);
    if (rc)
        goto out;
    rc = svc->store->ops->file_purge_pending(svc->store, &keys, &n, eb);
    if (rc)
        goto out;
    sessions_drop_bytes(svc, keys, n);
    r.pending_records = (long long)n;
    /* collect first, delete after: never modify the tree while the backend walks it */
    rc = svc->blob->ops->list(svc->blob, sessions_orphan_cb, &o, eb);
    if (rc)
        goto out;
    sessions_drop_bytes(svc, o.keys, o.n);
    r.orphan_blobs = (long long)o.n;
out:
    store_strings_free(keys, n);
    store_strings_free(o.keys, o.n);
    if (out != NULL)
        *out = r;
    return rc;
}

struct sessions_sweeper {
    struct kiln_services *svc;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void *sessions_sweeper_main(void *arg)
{
    struct sessions_sweeper *sw = arg;
    long long interval_s = sw->svc->cfg->session_cleanup_interval_minutes * 60;
    long long ttl_s = sw->svc->cfg->session_ttl_seconds;

    /* a seconds-scale TTL is swept at that scale */
    if (ttl_s > 0 && ttl_s < interval_s)
        interval_s = ttl_s;

    pthread_mutex_lock(&sw->mu);
    while (!sw->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += interval_s;
        pthread_cond_timedwait(&sw->cv, &sw->mu, &until);
        if (sw->stop)
            break;
        pthread_mutex_unlock(&sw->mu);
        sessions_sweep(sw->svc, NULL, NULL); /* an error is retried next round */
        pthread_mutex_lock(&sw->mu);
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

enum kiln_err sessions_sweeper_start(struct kiln_services *svc, struct sessions_sweeper **out,
                                     struct errbuf *eb)
{
    struct sessions_sweeper *sw = xcalloc(1, sizeof *sw);

    sw->svc = svc;
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cv, NULL);
    if (pthread_create(&sw->thread, NULL, sessions_sweeper_main, sw) != 0) {
        pthread_cond_destroy(&sw->cv);
        pthread_mutex_destroy(&sw->mu);
        free(sw);
        return errbuf_set(eb, KILN_ERR_INTERNAL, "cannot start the session sweeper");
    }
    *out = sw;
    return KILN_OK;
}

void sessions_sweeper_stop(struct sessions_sweeper *sw)
{
    if (sw == NULL)
        return;
    pthread_mutex_lock(&sw->mu);
    sw->stop = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
    pthread_join(sw->thread, NULL);
    pthread_cond_destroy(&sw->cv);
    pthread_mutex_destroy(&sw->mu);
    free(sw);
}
