/* SQLite store backend: the small key/value space with TTLs (state, api keys, counters). */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/xmalloc.h"

/* Upsert one entry; the caller holds s->mu. */
static enum kiln_err sq_kv_put(struct sq_store *s, const struct store_kv *kv, long long now_ms,
                               long long ttl_ms, struct errbuf *eb)
{
    sqlite3_stmt *q;
    enum kiln_err rc = sq_prep(s, SQ_KV_SET, kv->ns, kv->key, &q, eb);

    if (rc)
        return rc;
    sqlite3_bind_blob64(q, 3, kv->val != NULL ? kv->val : "", kv->len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, now_ms);
    sqlite3_bind_int64(q, 5, ttl_ms > 0 ? now_ms + ttl_ms : 0);
    return sq_exec(s, q, eb);
}

enum kiln_err sq_kv_set(struct store *st, const char *ns, const char *key, const void *val,
                        size_t len, long long now_ms, long long ttl_ms, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    struct store_kv kv = {.ns = ns, .key = key, .val = val, .len = len};
    enum kiln_err rc;

    pthread_mutex_lock(&s->mu);
    rc = sq_kv_put(s, &kv, now_ms, ttl_ms, eb);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_kv_set_many(struct store *st, const struct store_kv *kv, size_t n,
                             long long now_ms, long long ttl_ms, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin(s, eb);
    if (rc == KILN_OK) {
        for (size_t i = 0; rc == KILN_OK && i < n; i++)
            rc = sq_kv_put(s, &kv[i], now_ms, ttl_ms, eb);
        rc = sq_end(s, rc, eb);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A copy of column i of the current row as bytes, NUL-terminated past *len. */
enum kiln_err sq_kv_get(struct store *st, const char *ns, const char *key, long long now_ms,
                        void **val, size_t *len, long long *updated_ms, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_KV_GET, ns, key, &q, eb);
    if (rc)
        goto out;
    sqlite3_bind_int64(q, 3, now_ms);
    r = sqlite3_step(q);
    if (r == SQLITE_ROW) {
        *val = sq_col_bytes(q, 0, len);
        if (updated_ms != NULL)
            *updated_ms = sqlite3_column_int64(q, 1);
    } else if (r == SQLITE_DONE) {
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "key not found");
    } else {
        rc = sq_fail(s, eb, "step");
    }
    sqlite3_reset(q);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_kv_delete(struct store *st, const char *ns, const char *key, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_KV_DELETE, ns, key, &q, eb);
    if (rc == KILN_OK) {
        rc = sq_exec(s, q, eb);
        if (rc == KILN_OK && sqlite3_changes(s->db) == 0)
            rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "key not found");
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_kv_incr(struct store *st, const char *ns, const char *key, long long delta,
                         long long now_ms, long long ttl_ms, long long *value,
                         long long *expires_ms, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    long long v = 0, exp = 0;
    enum kiln_err rc;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin(s, eb);
    if (rc)
        goto out_notx;
    rc = sq_prep(s, SQ_KV_GET, ns, key, &q, eb);
    if (rc)
        goto out;
    sqlite3_bind_int64(q, 3, now_ms);
    r = sqlite3_step(q);
    if (r == SQLITE_ROW) {
        v = sqlite3_column_int64(q, 0) + delta;
        exp = sqlite3_column_int64(q, 2);
    } else if (r == SQLITE_DONE) {
        v = delta;
        exp = ttl_ms > 0 ? now_ms + ttl_ms : 0;
    } else {
        rc = sq_fail(s, eb, "step");
    }
    sqlite3_reset(q);
    if (rc)
        goto out;
    rc = sq_prep(s, SQ_KV_SET, ns, key, &q, eb);
    if (rc)
        goto out;
    sqlite3_bind_int64(q, 3, v);
    sqlite3_bind_int64(q, 4, now_ms);
    sqlite3_bind_int64(q, 5, exp);
    rc = sq_exec(s, q, eb);
out:
    rc = sq_end(s, rc, eb);
out_notx:
    pthread_mutex_unlock(&s->mu);
    if (rc == KILN_OK) {
        *value = v;
        if (expires_ms != NULL)
            *expires_ms = exp;
    }
    return rc;
}

/* One row copied out of a kv scan, so the callback runs without the lock (it may use the
 * store). */
struct sq_kv_row {
    char *key;
    void *val;
    size_t len;
    long long updated_ms, expires_ms;
};

enum kiln_err sq_kv_scan(struct store *st, const char *ns, const char *prefix, long long now_ms,
                         store_kv_scan_fn fn, void *arg, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    struct sq_kv_row *rows = NULL;
    size_t n = 0;
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_KV_SCAN, ns, prefix, &q, eb);
    if (rc)
        goto unlock;
    sqlite3_bind_int64(q, 3, now_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        rows = xreallocarray(rows, n + 1, sizeof *rows);
        rows[n].key = sq_col_str(q, 0);
        rows[n].val = sq_col_bytes(q, 1, &rows[n].len);
        rows[n].updated_ms = sqlite3_column_int64(q, 2);
        rows[n].expires_ms = sqlite3_column_int64(q, 3);
        n++;
    }
    sqlite3_reset(q);
    if (r != SQLITE_DONE)
        rc = sq_fail(s, eb, "step");
unlock:
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; rc == KILN_OK && i < n; i++)
        rc = fn(arg, rows[i].key, rows[i].val, rows[i].len, rows[i].updated_ms, rows[i].expires_ms);
    for (size_t i = 0; i < n; i++) {
        free(rows[i].key);
        free(rows[i].val);
    }
    free(rows);
    return rc;
}

enum kiln_err sq_kv_sweep(struct store *st, long long now_ms, long long *removed, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_KV_SWEEP, NULL, NULL, &q, eb);
    if (rc == KILN_OK) {
        sqlite3_bind_int64(q, 1, now_ms);
        rc = sq_exec(s, q, eb);
        if (rc == KILN_OK && removed != NULL)
            *removed = sqlite3_changes(s->db);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}
