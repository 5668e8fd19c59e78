#include "core/state.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4frame.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ids.h"
#include "util/xmalloc.h"

#define MIB (1024LL * 1024LL)

#define STATE_NS      "state"
#define STATE_NS_META "statemeta"
#define STATE_NS_ARC  "statearc"

/* The hot value: the blob's sha256 in hex, then the blob. */
#define STATE_HDR (SHA256_HEX_BUF - 1)

/* Scratch buffer the validator decompresses into (output discarded). */
#define STATE_SCRATCH 65536

/* Read chunk of an archived blob. */
#define STATE_CHUNK (1024 * 1024)

struct state_ctx {
    struct kiln_services *svc;
    pthread_mutex_t mu; /* saves, deletions and archive moves */
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    pthread_t thread;
    bool running, stop;
};

/* --- validation ------------------------------------------------------------------------------ */

/* A pickle of protocol 2..5 starts with PROTO (0x80) and its number and ends with STOP ('.'). */
static bool state_pickle_head_ok(const unsigned char *p, size_t n)
{
    return n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5;
}

enum kiln_err state_validate(const void *blob, size_t len, size_t max_raw, struct errbuf *eb)
{
    const unsigned char *b = blob;
    LZ4F_dctx *dctx = NULL;
    unsigned char *scratch = NULL;
    unsigned char head[2] = {0, 0}, last = 0;
    size_t in_off = 1, total = 0, hint = 1;
    enum kiln_err rc = KILN_OK;

    if (b == NULL || len < 2)
        return errbuf_set(eb, KILN_ERR_INVALID, "invalid state: shorter than 2 bytes");
    if (b[0] == STATE_VERSION_RAW) {
        if (len - 1 > max_raw)
            return errbuf_set(eb, KILN_ERR_TOO_LARGE,
                              "state of %zu bytes exceeds STATE_MAX_SIZE_MB (%zu MB)", len - 1,
                              max_raw / (size_t)MIB);
        if (!state_pickle_head_ok(b + 1, len - 1) || b[len - 1] != '.')
            return errbuf_set(eb, KILN_ERR_INVALID, "invalid state: not a pickle");
        return KILN_OK;
    }
    if (b[0] != STATE_VERSION_LZ4)
        return errbuf_set(eb, KILN_ERR_INVALID, "invalid state: unknown version byte %u",
                          (unsigned)b[0]);
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return errbuf_set(eb, KILN_ERR_NOMEM, "lz4: cannot create a decompression context");
    scratch = xmalloc(STATE_SCRATCH);
    while (in_off < len) {
        size_t src_n = len - in_off, dst_n = STATE_SCRATCH;
        hint = LZ4F_decompress(dctx, scratch, &dst_n, b + in_off, &src_n, NULL);
        if (LZ4F_isError(hint)) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: lz4 frame: %s",
                            LZ4F_getErrorName(hint));
            goto out;
        }
        in_off += src_n;
        if (dst_n > 0) {
            if (total < 2) {
                size_t k = dst_n < 2 - total ? dst_n : 2 - total;
                memcpy(head + total, scratch, k);
            }
            total += dst_n;
            last = scratch[dst_n - 1];
            if (total > max_raw) {
                rc = errbuf_set(eb, KILN_ERR_TOO_LARGE,
                                "state decompresses to more than STATE_MAX_SIZE_MB (%zu MB)",
                                max_raw / (size_t)MIB);
                goto out;
            }
        }
        if (hint == 0)
            break; /* the frame is complete */
        if (src_n == 0 && dst_n == 0) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: lz4 frame makes no progress");
            goto out;
        }
    }
    /* one frame, complete, nothing after it; output may still be pending in the context */
    while (hint != 0 && in_off == len) {
        size_t src_n = 0, dst_n = STATE_SCRATCH;
        hint = LZ4F_decompress(dctx, scratch, &dst_n, b + in_off, &src_n, NULL);
        if (LZ4F_isError(hint) || dst_n == 0)
            break;
        total += dst_n;
        last = scratch[dst_n - 1];
        if (total > max_raw) {
            rc = errbuf_set(eb, KILN_ERR_TOO_LARGE,
                            "state decompresses to more than STATE_MAX_SIZE_MB (%zu MB)",
                            max_raw / (size_t)MIB);
            goto out;
        }
    }
    if (LZ4F_isError(hint) || hint != 0) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: truncated lz4 frame");
        goto out;
    }
    if (in_off != len) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: bytes after the lz4 frame");
        goto out;
    }
    if (!state_pickle_head_ok(head, total) || last != '.')
        rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: not a pickle");
out:
    free(scratch);
    LZ4F_freeDecompressionContext(dctx);
    return rc;
}

/* --- helpers --------------------------------------------------------------------------------- */

static void state_lock(struct kiln_services *svc)
{
    if (svc->state != NULL)
        pthread_mutex_lock(&svc->state->mu);
}

static void state_unlock(struct kiln_services *svc)
{
    if (svc->state != NULL)
        pthread_mutex_unlock(&svc->state->mu);
}

static size_t state_max_raw(const struct kiln_services *svc)
{
    return (size_t)(svc->cfg->state_max_size_mb * MIB);
}

static void state_hash(const void *blob, size_t len, char out[SHA256_HEX_BUF])
{
    struct sha256 *h = sha256_new();

    sha256_update(h, blob, len);
    sha256_final_hex(h, out);
    sha256_free(h);
}

static bool state_hex_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static char *state_blob_key_of(const char *sid)
{
    return xasprintf("%s%s", STATE_BLOB_PREFIX, sid);
}

bool state_blob_key(const char *key)
{
    return key != NULL && strncmp(key, STATE_BLOB_PREFIX, strlen(STATE_BLOB_PREFIX)) == 0;
}

/* "<size> <sha> <archived_ms> <expires_ms>" of an archive marker. */
struct state_arc {
    long long size, archived_ms, expires_ms;
    char sha256[SHA256_HEX_BUF];
};

static bool state_arc_parse(const char *v, size_t len, struct state_arc *a)
{
    char sha[SHA256_HEX_BUF + 1];

    if (len > 200)
        return false;
    if (sscanf(v, "%lld %65s %lld %lld", &a->size, sha, &a->archived_ms, &a->expires_ms) != 4 ||
        strlen(sha) != STATE_HDR || !state_hex_ok(sha, STATE_HDR) || a->size < 2)
        return false;
    memcpy(a->sha256, sha, SHA256_HEX_BUF);
    return true;
}

/* Remove the archived copy of sid (marker first: a crash leaves only unreferenced bytes). */
static void state_drop_archive(struct kiln_services *svc, const char *sid)
{
    char *key = state_blob_key_of(sid);

    svc->store->ops->kv_delete(svc->store, STATE_NS_ARC, sid, NULL);
    svc->blob->ops->remove(svc->blob, key, NULL);
    free(key);
}

static void state_drop_hot(struct kiln_services *svc, const char *sid)
{
    svc->store->ops->kv_delete(svc->store, STATE_NS, sid, NULL);
    svc->store->ops->kv_delete(svc->store, STATE_NS_META, sid, NULL);
}

/* Read the whole archived blob of sid (at most max bytes). */
static enum kiln_err state_read_archive(struct kiln_services *svc, const char *sid, long long size,
                                        void **out, struct errbuf *eb)
{
    char *key = state_blob_key_of(sid);
    unsigned char *buf = xmalloc((size_t)size + 1);
    size_t off = 0, got = 0;
    enum kiln_err rc = KILN_OK;

    while (off < (size_t)size) {
        size_t want = (size_t)size - off < STATE_CHUNK ? (size_t)size - off : STATE_CHUNK;
        rc = svc->blob->ops->read_at(svc->blob, key, (long long)off, buf + off, want, &got, eb);
        if (rc)
            break;
        if (got == 0) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "archived state is shorter than recorded");
            break;
        }
        off += got;
    }
    free(key);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return KILN_OK;
}

/* --- load / save / info / delete ------------------------------------------------------------- */

static enum kiln_err state_load_hot(struct kiln_services *svc, const char *sid, void **blob,
                                    size_t *len, struct state_info *info, char **note,
                                    struct errbuf *eb)
{
    void *val = NULL;
    size_t vlen = 0;
    long long updated = 0, now = services_now_ms(svc);
    char sum[SHA256_HEX_BUF];
    enum kiln_err rc;

    rc = svc->store->ops->kv_get(svc->store, STATE_NS, sid, now, &val, &vlen, &updated, eb);
    if (rc)
        return rc;
    if (vlen < STATE_HDR + 2 || !state_hex_ok(val, STATE_HDR))
        goto corrupt;
    state_hash((char *)val + STATE_HDR, vlen - STATE_HDR, sum);
    if (memcmp(sum, val, STATE_HDR) != 0)
        goto corrupt;
    *len = vlen - STATE_HDR;
    *blob = xmalloc(*len + 1);
    memcpy(*blob, (char *)val + STATE_HDR, *len);
    free(val);
    info->exists = true;
    info->size = (long long)*len;
    memcpy(info->sha256, sum, SHA256_HEX_BUF);
    info->updated_ms = updated;
    info->expires_ms = updated + svc->cfg->state_ttl_seconds * 1000;
    info->source = "hot";
    return KILN_OK;
corrupt:
    free(val);
    state_lock(svc);
    state_drop_hot(svc, sid);
    state_unlock(svc);
    if (note != NULL && *note == NULL)
        *note = xstrdup("stored state was corrupted and has been dropped");
    return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
}

static enum kiln_err state_load_archive(struct kiln_services *svc, const char *sid, void **blob,
                                        size_t *len, struct state_info *info, char **note,
                                        struct errbuf *eb)
{
    void *val = NULL, *buf = NULL;
    size_t vlen = 0;
    long long updated = 0, now = services_now_ms(svc);
    struct state_arc a;
    char sum[SHA256_HEX_BUF];
    enum kiln_err rc;

    rc = svc->store->ops->kv_get(svc->store, STATE_NS_ARC, sid, now, &val, &vlen, &updated, eb);
    if (rc)
        return rc;
    if (!state_arc_parse(val, vlen, &a) || a.size > (long long)state_max_raw(svc) + 64 * 1024) {
        free(val);
        goto corrupt;
    }
    free(val);
    if (a.expires_ms > 0 && a.expires_ms <= now)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
    rc = state_read_archive(svc, sid, a.size, &buf, eb);
    if (rc == KILN_ERR_NOT_FOUND || rc == KILN_ERR_INVALID)
        goto corrupt;
    if (rc)
        return rc;
    state_hash(buf, (size_t)a.size, sum);
    if (strcmp(sum, a.sha256) != 0) {
        free(buf);
        goto corrupt;
    }
    *blob = buf;
    *len = (size_t)a.size;
    info->exists = true;
    info->size = a.size;
    memcpy(info->sha256, sum, SHA256_HEX_BUF);
    info->updated_ms = a.archived_ms;
    info->expires_ms = a.expires_ms;
    info->source = "archive";
    return KILN_OK;
corrupt:
    state_lock(svc);
    state_drop_archive(svc, sid);
    state_unlock(svc);
    if (note != NULL && *note == NULL)
        *note = xstrdup("archived state was corrupted and has been dropped");
    return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
}

enum kiln_err state_load(struct kiln_services *svc, const char *sid, void **blob, size_t *len,
                         struct state_info *info, char **note, struct errbuf *eb)
{
    enum kiln_err rc;

    memset(info, 0, sizeof *info);
    *blob = NULL;
    *len = 0;
    if (!ids_valid(sid))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
    rc = state_load_hot(svc, sid, blob, len, info, note, eb);
    if (rc != KILN_ERR_NOT_FOUND)
        return rc;
    if (!svc->cfg->state_archive_enabled)
        return rc;
    return state_load_archive(svc, sid, blob, len, info, note, eb);
}

enum kiln_err state_save(struct kiln_services *svc, const char *sid, const void *blob, size_t len,
                         struct state_info *info, struct errbuf *eb)
{
    long long now = services_now_ms(svc), ttl = svc->cfg->state_ttl_seconds * 1000;
    char sum[SHA256_HEX_BUF];
    char meta[96];
    char *val;
    enum kiln_err rc;

    if (!ids_valid(sid))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No such session");
    rc = state_validate(blob, len, state_max_raw(svc), eb);
    if (rc)
        return rc;
    state_hash(blob, len, sum);
    val = xmalloc(STATE_HDR + len);
    memcpy(val, sum, STATE_HDR);
    memcpy(val + STATE_HDR, blob, len);
    snprintf(meta, sizeof meta, "%zu %s", len, sum);
    state_lock(svc);
    rc = svc->store->ops->kv_set(svc->store, STATE_NS, sid, val, STATE_HDR + len, now, ttl, eb);
    if (rc == KILN_OK)
        rc = svc->store->ops->kv_set(svc->store, STATE_NS_META, sid, meta, strlen(meta), now, ttl,
                                     eb);
    if (rc == KILN_OK)
        state_drop_archive(svc, sid); /* stale now: must never come back after the hot expires */
    else
        state_drop_hot(svc, sid);
    state_unlock(svc);
    free(val);
    if (rc == KILN_OK && info != NULL) {
        memset(info, 0, sizeof *info);
        info->exists = true;
        info->size = (long long)len;
        memcpy(info->sha256, sum, SHA256_HEX_BUF);
        info->updated_ms = now;
        info->expires_ms = now + ttl;
        info->source = "hot";
    }
    return rc;
}

enum kiln_err state_info_get(struct kiln_services *svc, const char *sid, struct state_info *info,
                             struct errbuf *eb)
{
    void *val = NULL;
    size_t vlen = 0;
    long long updated = 0, now = services_now_ms(svc);
    long long size = 0;
    char sha[SHA256_HEX_BUF + 1];
    struct state_arc a;
    enum kiln_err rc;

    memset(info, 0, sizeof *info);
    if (!ids_valid(sid))
        return KILN_OK;
    rc = svc->store->ops->kv_get(svc->store, STATE_NS_META, sid, now, &val, &vlen, &updated, eb);
    if (rc == KILN_OK) {
        bool ok = vlen < 100 && sscanf(val, "%lld %65s", &size, sha) == 2 &&
                  strlen(sha) == STATE_HDR && state_hex_ok(sha, STATE_HDR);
        free(val);
        if (ok) {
            info->exists = true;
            info->size = size;
            memcpy(info->sha256, sha, SHA256_HEX_BUF);
            info->updated_ms = updated;
            info->expires_ms = updated + svc->cfg->state_ttl_seconds * 1000;
            info->source = "hot";
            return KILN_OK;
        }
    } else if (rc != KILN_ERR_NOT_FOUND) {
        return rc;
    }
    if (!svc->cfg->state_archive_enabled)
        return KILN_OK;
    rc = svc->store->ops->kv_get(svc->store, STATE_NS_ARC, sid, now, &val, &vlen, &updated, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        return KILN_OK;
    if (rc)
        return rc;
    if (state_arc_parse(val, vlen, &a) && (a.expires_ms == 0 || a.expires_ms > now)) {
        info->exists = true;
        info->size = a.size;
        memcpy(info->sha256, a.sha256, SHA256_HEX_BUF);
        info->updated_ms = a.archived_ms;
        info->expires_ms = a.expires_ms;
        info->source = "archive";
    }
    free(val);
    return KILN_OK;
}

enum kiln_err state_delete(struct kiln_services *svc, const char *sid, struct errbuf *eb)
{
    (void)eb;
    if (!ids_valid(sid))
        return KILN_OK;
    state_lock(svc);
    state_drop_hot(svc, sid);
    state_drop_archive(svc, sid);
    state_unlock(svc);
    return KILN_OK;
}

/* --- the archiver ---------------------------------------------------------------------------- */

struct state_scan {
    char **ids;
    size_t n;
    long long before_ms; /* entries last written at or before this */
    long long now_ms;
    bool arc; /* scanning markers: select expired ones */
};

static enum kiln_err state_scan_cb(void *arg, const char *key, const void *val, size_t len,
                                   long long updated_ms, long long expires_ms)
{
    struct state_scan *s = arg;
    bool pick;

    (void)expires_ms;
    if (s->arc) {
        struct state_arc a;
        pick = !state_arc_parse(val, len, &a) || (a.expires_ms > 0 && a.expires_ms <= s->now_ms);
    } else {
        pick = updated_ms <= s->before_ms;
    }
    if (pick) {
        s->ids = xreallocarray(s->ids, s->n + 1, sizeof *s->ids);
        s->ids[s->n++] = xstrdup(key);
    }
    return KILN_OK;
}

/* Move sid's hot state to the blob store, unless it was saved again since the scan. */
static enum kiln_err state_archive_one(struct kiln_services *svc, const char *sid,
                                       long long before_ms, struct errbuf *eb)
{
    long long now = services_now_ms(svc);
    long long arc_ttl = svc->cfg->state_archive_ttl_days * 86400LL * 1000;
    void *val = NULL;
    size_t vlen = 0;
    long long updated = 0;
    char sum[SHA256_HEX_BUF], marker[200];
    char *key = state_blob_key_of(sid);
    struct blob_writer *bw = NULL;
    enum kiln_err rc;

    state_lock(svc);
    rc = svc->store->ops->kv_get(svc->store, STATE_NS, sid, now, &val, &vlen, &updated, eb);
    if (rc == KILN_ERR_NOT_FOUND) { /* expired meanwhile: drop the metadata too */
        state_drop_hot(svc, sid);
        rc = KILN_OK;
        goto out;
    }
    if (rc || updated > before_ms)
        goto out;
    if (vlen < STATE_HDR + 2 || !state_hex_ok(val, STATE_HDR)) {
        state_drop_hot(svc, sid);
        goto out;
    }
    state_hash((char *)val + STATE_HDR, vlen - STATE_HDR, sum);
    if (memcmp(sum, val, STATE_HDR) != 0) {
        state_drop_hot(svc, sid); /* corrupted: nothing worth archiving */
        goto out;
    }
    rc = svc->blob->ops->write_begin(svc->blob, key, &bw, eb);
    if (rc)
        goto out;
    rc = svc->blob->ops->write(bw, (char *)val + STATE_HDR, vlen - STATE_HDR, eb);
    if (rc) {
        svc->blob->ops->write_abort(bw);
        goto out;
    }
    rc = svc->blob->ops->write_commit(bw, eb);
    if (rc)
        goto out;
    snprintf(marker, sizeof marker, "%zu %s %lld %lld", vlen - STATE_HDR, sum, now, now + arc_ttl);
    /* no store TTL on the marker: the pass removes marker and bytes together once expires_ms
     * (in the value) has passed, however long the server was down; readers check it too */
    rc = svc->store->ops->kv_set(svc->store, STATE_NS_ARC, sid, marker, strlen(marker), now, 0, eb);
    if (rc) {
        svc->blob->ops->remove(svc->blob, key, NULL);
        goto out;
    }
    state_drop_hot(svc, sid);
out:
    state_unlock(svc);
    free(val);
    free(key);
    return rc;
}

enum kiln_err state_archive_pass(struct kiln_services *svc, long long *archived, long long *expired,
                                 struct errbuf *eb)
{
    long long now = services_now_ms(svc);
    struct state_scan hot = {.before_ms = now - svc->cfg->state_archive_after_seconds * 1000,
                             .now_ms = now};
    struct state_scan arc = {.now_ms = now, .arc = true};
    long long na = 0;
    enum kiln_err rc;

    rc = svc->store->ops->kv_scan(svc->store, STATE_NS_META, "", now, state_scan_cb, &hot, eb);
    if (rc)
        goto out;
    for (size_t i = 0; i < hot.n; i++)
        if (state_archive_one(svc, hot.ids[i], hot.before_ms, NULL) == KILN_OK)
            na++;
    rc = svc->store->ops->kv_scan(svc->store, STATE_NS_ARC, "", now, state_scan_cb, &arc, eb);
    if (rc)
        goto out;
    state_lock(svc);
    for (size_t i = 0; i < arc.n; i++)
        state_drop_archive(svc, arc.ids[i]);
    state_unlock(svc);
out:
    if (archived != NULL)
        *archived = na;
    if (expired != NULL)
        *expired = (long long)arc.n;
    store_strings_free(hot.ids, hot.n);
    store_strings_free(arc.ids, arc.n);
    return rc;
}

static void *state_archiver_main(void *arg)
{
    struct state_ctx *sc = arg;
    long long interval_s = sc->svc->cfg->state_archive_check_interval_seconds;

    pthread_mutex_lock(&sc->tmu);
    while (!sc->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += interval_s > 0 ? interval_s : 1;
        pthread_cond_timedwait(&sc->tcv, &sc->tmu, &until);
        if (sc->stop)
            break;
        pthread_mutex_unlock(&sc->tmu);
        state_archive_pass(sc->svc, NULL, NULL, NULL); /* an error is retried next round */
        pthread_mutex_lock(&sc->tmu);
    }
    pthread_mutex_unlock(&sc->tmu);
    return NULL;
}

enum kiln_err state_ctx_new(struct kiln_services *svc, struct state_ctx **out, struct errbuf *eb)
{
    struct state_ctx *sc = xcalloc(1, sizeof *sc);

    sc->svc = svc;
    pthread_mutex_init(&sc->mu, NULL);
    pthread_mutex_init(&sc->tmu, NULL);
    pthread_cond_init(&sc->tcv, NULL);
    if (svc->cfg->state_persistence_enabled && svc->cfg->state_archive_enabled) {
        if (pthread_create(&sc->thread, NULL, state_archiver_main, sc) != 0) {
            state_ctx_free(sc);
            return errbuf_set(eb, KILN_ERR_INTERNAL, "cannot start the state archiver");
        }
        sc->running = true;
    }
    *out = sc;
    return KILN_OK;
}

void state_ctx_free(struct state_ctx *sc)
{
    if (sc == NULL)
        return;
    if (sc->running) {
        pthread_mutex_lock(&sc->tmu);
        sc->stop = true;
        pthread_cond_signal(&sc->tcv);
        pthread_mutex_unlock(&sc->tmu);
        pthread_join(sc->thread, NULL);
    }
    pthread_cond_destroy(&sc->tcv);
    pthread_mutex_destroy(&sc->tmu);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}
