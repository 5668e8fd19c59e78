/* SQLite store backend: sessions and file records (see sqlite.c for threading and crash
 * safety). */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/xmalloc.h"

enum kiln_err sq_session_create(struct store *st, const struct store_session *ss,
                                long long max_per_entity, char ***evicted, size_t *nevicted,
                                struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    sqlite3_stmt *q;
    char **victims = NULL, **keys = NULL;
    size_t nvictims = 0, nkeys = 0;
    long long count = 0;
    enum kiln_err rc;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin(s, eb);
    if (rc)
        goto out_unlocked_tx;
    if (ss->entity_id != NULL && ss->entity_id[0] != '\0' && max_per_entity > 0) {
        rc = sq_prep(s, SQ_SESSION_COUNT_ENTITY, ss->entity_id, NULL, &q, eb);
        if (rc)
            goto out;
        rc = sq_int(s, q, &count, eb);
        if (rc)
            goto out;
        if (count >= max_per_entity) {
            rc = sq_prep(s, SQ_SESSION_OLDEST_OF_ENTITY, ss->entity_id, NULL, &q, eb);
            if (rc)
                goto out;
            sqlite3_bind_int64(q, 2, count - max_per_entity + 1);
            rc = sq_collect_strings(s, q, &victims, &nvictims, eb);
            for (size_t i = 0; rc == KILN_OK && i < nvictims; i++)
                rc = sq_delete_session_locked(s, victims[i], &keys, &nkeys, NULL, eb);
            if (rc)
                goto out;
        }
    }
    q = sq_stmt(s, SQ_SESSION_INSERT, eb);
    if (q == NULL) {
        rc = KILN_ERR_IO;
        goto out;
    }
    sq_text(q, 1, ss->id);
    sq_text(q, 2, ss->user_id);
    sq_text(q, 3, ss->entity_id);
    sqlite3_bind_int64(q, 4, ss->created_ms);
    sqlite3_bind_int64(q, 5, ss->active_ms);
    sqlite3_bind_int64(q, 6, ss->expires_ms);
    rc = sq_exec(s, q, eb);
out:
    rc = sq_end(s, rc, eb);
    /* the caller removes the evicted sessions' bytes next: their deletion must be on disk */
    if (rc == KILN_OK && nkeys > 0)
        sq_sync(s);
out_unlocked_tx:
    pthread_mutex_unlock(&s->mu);
    store_strings_free(victims, nvictims);
    /* the evicted keys are the caller's to delete only if the eviction committed */
    if (rc == KILN_OK && evicted != NULL && nevicted != NULL) {
        *evicted = keys;
        *nevicted = nkeys;
    } else {
        store_strings_free(keys, nkeys);
    }
    return rc;
}

enum kiln_err sq_session_get(struct store *st, const char *id, struct store_session *out,
                             struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_SESSION_GET, id, NULL, &q, eb);
    if (rc)
        goto out;
    r = sqlite3_step(q);
    if (r == SQLITE_ROW)
        sq_row_session(q, out);
    else if (r == SQLITE_DONE)
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "session not found");
    else
        rc = sq_fail(s, eb, "step");
    sqlite3_reset(q);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_session_touch(struct store *st, const char *id, long long now_ms,
                               long long expires_ms, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_SESSION_TOUCH, id, NULL, &q, eb);
    if (rc)
        goto out;
    sqlite3_bind_int64(q, 2, now_ms);
    sqlite3_bind_int64(q, 3, expires_ms);
    rc = sq_exec(s, q, eb);
    if (rc == KILN_OK && sqlite3_changes(s->db) == 0)
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "session not found");
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_session_list_by_entity(struct store *st, const char *entity_id, size_t limit,
                                        struct store_session **out, size_t *n, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    struct store_session *arr = NULL;
    size_t cnt = 0;
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_SESSION_BY_ENTITY, entity_id, NULL, &q, eb);
    if (rc)
        goto out;
    sqlite3_bind_int64(q, 2, limit > 0 ? (long long)limit : -1);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        arr = xreallocarray(arr, cnt + 1, sizeof *arr);
        memset(&arr[cnt], 0, sizeof arr[cnt]);
        sq_row_session(q, &arr[cnt++]);
    }
    sqlite3_reset(q);
    if (r != SQLITE_DONE)
        rc = sq_fail(s, eb, "step");
out:
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        store_sessions_free(arr, cnt);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return KILN_OK;
}

enum kiln_err sq_session_count(struct store *st, const char *entity_id, long long *out,
                               struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, entity_id != NULL ? SQ_SESSION_COUNT_ENTITY : SQ_SESSION_COUNT_ALL, entity_id,
                 NULL, &q, eb);
    if (rc == KILN_OK)
        rc = sq_int(s, q, out, eb);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_session_delete(struct store *st, const char *id, char ***keys, size_t *nkeys,
                                struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    char **arr = NULL;
    size_t n = 0;
    bool existed = false;
    enum kiln_err rc;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin_durable(s, eb);
    if (rc == KILN_OK) {
        rc = sq_delete_session_locked(s, id, &arr, &n, &existed, eb);
        if (rc == KILN_OK && !existed)
            rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "session not found");
        rc = sq_end(s, rc, eb);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        store_strings_free(arr, n);
        return rc;
    }
    *keys = arr;
    *nkeys = n;
    return KILN_OK;
}

enum kiln_err sq_session_list_expired(struct store *st, long long now_ms, size_t limit, char ***ids,
                                      size_t *n, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    char **arr = NULL;
    size_t cnt = 0;
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_SESSION_EXPIRED, NULL, NULL, &q, eb);
    if (rc == KILN_OK) {
        sqlite3_bind_int64(q, 1, now_ms);
        sqlite3_bind_int64(q, 2, limit > 0 ? (long long)limit : -1);
        rc = sq_collect_strings(s, q, &arr, &cnt, eb);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        store_strings_free(arr, cnt);
        return rc;
    }
    *ids = arr;
    *n = cnt;
    return KILN_OK;
}

void sq_bind_file(sqlite3_stmt *q, const struct store_file *f)
{
    sq_text(q, 1, f->session_id);
    sq_text(q, 2, f->id);
    sq_text(q, 3, f->name);
    sq_text(q, 4, f->original_name);
    sq_text(q, 5, f->content_type);
    sq_text(q, 6, f->blob_key);
    sq_text(q, 7, f->kind);
    sqlite3_bind_int64(q, 8, f->size);
    sq_text(q, 9, f->sha256);
    sqlite3_bind_int(q, 10, (int)f->origin);
    sqlite3_bind_int(q, 11, (int)f->state);
    sq_text(q, 12, f->modified_from_id);
    sq_text(q, 13, f->modified_from_session);
    sqlite3_bind_int64(q, 14, f->created_ms);
}

/* Does session sid exist? Inside the lock. */
enum kiln_err sq_session_exists(struct sq_store *s, const char *sid, struct errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, SQ_SESSION_GET, eb);
    int r;

    if (q == NULL)
        return KILN_ERR_IO;
    sq_text(q, 1, sid);
    r = sqlite3_step(q);
    sqlite3_reset(q);
    if (r == SQLITE_ROW)
        return KILN_OK;
    if (r == SQLITE_DONE)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "session not found");
    return sq_fail(s, eb, "step");
}

enum kiln_err sq_file_reserve(struct store *st, const struct store_file *f, long long max_files,
                              struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    struct store_file pending = *f;
    long long count = 0;
    enum kiln_err rc;
    sqlite3_stmt *q;

    pending.state = STORE_FILE_PENDING;
    pending.size = 0;
    pending.sha256[0] = '\0';
    pthread_mutex_lock(&s->mu);
    rc = sq_begin_durable(s, eb);
    if (rc)
        goto out_notx;
    rc = sq_session_exists(s, f->session_id, eb);
    if (rc)
        goto out;
    if (max_files > 0) {
        rc = sq_prep(s, SQ_FILE_COUNT, f->session_id, NULL, &q, eb);
        if (rc)
            goto out;
        rc = sq_int(s, q, &count, eb);
        if (rc)
            goto out;
        if (count >= max_files) {
            rc = errbuf_set(eb, KILN_ERR_TOO_LARGE,
                            "Session already holds %lld files (MAX_FILES_PER_SESSION=%lld)", count,
                            max_files);
            goto out;
        }
    }
    rc = sq_prep(s, SQ_FILE_INSERT, NULL, NULL, &q, eb);
    if (rc)
        goto out;
    sq_bind_file(q, &pending);
    rc = sq_exec(s, q, eb);
out:
    rc = sq_end(s, rc, eb);
out_notx:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_file_commit(struct store *st, const char *sid, const char *fid, long long size,
                             const char *sha256, long long max_total_bytes, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    long long bytes = 0;
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin_durable(s, eb);
    if (rc)
        goto out_notx;
    if (max_total_bytes > 0) {
        rc = sq_prep(s, SQ_FILE_BYTES_COMPLETE, sid, NULL, &q, eb);
        if (rc)
            goto out;
        rc = sq_int(s, q, &bytes, eb);
        if (rc)
            goto out;
        if (bytes + size > max_total_bytes) {
            rc = errbuf_set(eb, KILN_ERR_TOO_LARGE,
                            "Session files would total %lld bytes, over MAX_TOTAL_FILE_SIZE_MB "
                            "(%lld MB)",
                            bytes + size, max_total_bytes / (1024 * 1024));
            goto out;
        }
    }
    rc = sq_prep(s, SQ_FILE_COMMIT, sid, fid, &q, eb);
    if (rc)
        goto out;
    sqlite3_bind_int64(q, 3, size);
    sq_text(q, 4, sha256);
    rc = sq_exec(s, q, eb);
    if (rc == KILN_OK && sqlite3_changes(s->db) == 0)
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "file reservation is gone");
out:
    rc = sq_end(s, rc, eb);
out_notx:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_file_put_many(struct store *st, const struct store_file *f, size_t n,
                               struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin_durable(s, eb);
    if (rc)
        goto out_notx;
    for (size_t i = 0; rc == KILN_OK && i < n; i++) {
        struct store_file done = f[i];
        done.state = STORE_FILE_COMPLETE;
        rc = sq_prep(s, SQ_FILE_INSERT, NULL, NULL, &q, eb);
        if (rc)
            break;
        sq_bind_file(q, &done);
        rc = sq_exec(s, q, eb);
    }
    rc = sq_end(s, rc, eb);
out_notx:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_file_get(struct store *st, const char *sid, const char *fid,
                          struct store_file *out, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_FILE_GET, sid, fid, &q, eb);
    if (rc)
        goto out;
    r = sqlite3_step(q);
    if (r == SQLITE_ROW)
        sq_row_file(q, out);
    else if (r == SQLITE_DONE)
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "file not found");
    else
        rc = sq_fail(s, eb, "step");
    sqlite3_reset(q);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_file_list(struct store *st, const char *sid, struct store_file **out, size_t *n,
                           struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    struct store_file *arr = NULL;
    size_t cnt = 0;
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_FILE_LIST, sid, NULL, &q, eb);
    if (rc)
        goto out;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        arr = xreallocarray(arr, cnt + 1, sizeof *arr);
        memset(&arr[cnt], 0, sizeof arr[cnt]);
        sq_row_file(q, &arr[cnt++]);
    }
    sqlite3_reset(q);
    if (r != SQLITE_DONE)
        rc = sq_fail(s, eb, "step");
out:
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        store_files_free(arr, cnt);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return KILN_OK;
}

enum kiln_err sq_file_delete(struct store *st, const char *sid, const char *fid, char **key,
                             struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    char **keys = NULL;
    size_t nkeys = 0;
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin_durable(s, eb);
    if (rc)
        goto out_notx;
    rc = sq_prep(s, SQ_FILE_KEY, sid, fid, &q, eb);
    if (rc)
        goto out;
    rc = sq_collect_strings(s, q, &keys, &nkeys, eb);
    if (rc)
        goto out;
    if (nkeys == 0) {
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "file not found");
        goto out;
    }
    rc = sq_prep(s, SQ_FILE_DELETE, sid, fid, &q, eb);
    if (rc)
        goto out;
    rc = sq_exec(s, q, eb);
out:
    rc = sq_end(s, rc, eb);
out_notx:
    pthread_mutex_unlock(&s->mu);
    if (rc == KILN_OK && key != NULL) {
        *key = keys[0];
        keys[0] = NULL;
    }
    store_strings_free(keys, nkeys);
    return rc;
}

enum kiln_err sq_session_totals(struct store *st, const char *sid, struct store_totals *out,
                                struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, sid != NULL ? SQ_FILE_TOTALS : SQ_FILE_TOTALS_ALL, sid, NULL, &q, eb);
    if (rc)
        goto out;
    if (sqlite3_step(q) == SQLITE_ROW) {
        out->files = sqlite3_column_int64(q, 0);
        out->bytes = sqlite3_column_int64(q, 1);
    } else {
        rc = sq_fail(s, eb, "step");
    }
    sqlite3_reset(q);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

enum kiln_err sq_file_purge_pending(struct store *st, char ***keys, size_t *nkeys,
                                    struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    char **arr = NULL;
    size_t n = 0;
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    rc = sq_begin_durable(s, eb);
    if (rc)
        goto out_notx;
    q = sq_stmt(s, SQ_FILE_PENDING_KEYS, eb);
    rc = q != NULL ? sq_collect_strings(s, q, &arr, &n, eb) : KILN_ERR_IO;
    if (rc == KILN_OK)
        rc = sq_simple(s, SQ_FILE_PENDING_DELETE, eb);
    rc = sq_end(s, rc, eb);
out_notx:
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        store_strings_free(arr, n);
        return rc;
    }
    *keys = arr;
    *nkeys = n;
    return KILN_OK;
}

enum kiln_err sq_blob_key_referenced(struct store *st, const char *key, bool *out,
                                     struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    enum kiln_err rc = KILN_OK;
    sqlite3_stmt *q;
    int r;

    pthread_mutex_lock(&s->mu);
    rc = sq_prep(s, SQ_FILE_KEY_REFERENCED, key, NULL, &q, eb);
    if (rc)
        goto out;
    r = sqlite3_step(q);
    sqlite3_reset(q);
    if (r == SQLITE_ROW || r == SQLITE_DONE)
        *out = r == SQLITE_ROW;
    else
        rc = sq_fail(s, eb, "step");
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
