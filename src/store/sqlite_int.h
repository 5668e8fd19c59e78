/* Internals of the SQLite store backend, shared by its files: sqlite.c (schema, statements,
 * helpers, open), sqlite_files.c (sessions and file records), sqlite_kv.c (the kv space).
 * Not for use outside src/store/. */
#ifndef KILN_STORE_SQLITE_INT_H
#define KILN_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "store/store.h"

/* Every statement, prepared once (SQLITE_PREPARE_PERSISTENT) on first use; SQL in sqlite.c. */
enum sq_stmt {
    SQ_BEGIN,
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_SESSION_INSERT,
    SQ_SESSION_GET,
    SQ_SESSION_TOUCH,
    SQ_SESSION_BY_ENTITY,
    SQ_SESSION_COUNT_ENTITY,
    SQ_SESSION_COUNT_ALL,
    SQ_SESSION_OLDEST_OF_ENTITY,
    SQ_SESSION_DELETE,
    SQ_SESSION_EXPIRED,
    SQ_SESSION_KEYS,
    SQ_FILE_INSERT,
    SQ_FILE_COUNT,
    SQ_FILE_BYTES_COMPLETE,
    SQ_FILE_COMMIT,
    SQ_FILE_GET,
    SQ_FILE_LIST,
    SQ_FILE_KEY,
    SQ_FILE_DELETE,
    SQ_FILE_TOTALS,
    SQ_FILE_TOTALS_ALL,
    SQ_FILE_PENDING_KEYS,
    SQ_FILE_PENDING_DELETE,
    SQ_FILE_KEY_REFERENCED,
    SQ_KV_SET,
    SQ_KV_GET,
    SQ_KV_DELETE,
    SQ_KV_SCAN,
    SQ_KV_SWEEP,
    SQ_STMT_COUNT
};

/* The backend: one connection, its statements, and the mutex that serialises all of them. */
struct sq_store {
    struct store base; /* first: a struct store * is a struct sq_store * */
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *stmts[SQ_STMT_COUNT];
    bool durable; /* the open transaction commits with synchronous=FULL (sq_begin_durable) */
};

/* Helpers (sqlite.c). All run with s->mu held by the caller. sq_stmt() returns the statement
 * reset with its bindings cleared (NULL with eb set on failure); sq_begin()/sq_end() bracket a
 * BEGIN IMMEDIATE transaction, sq_end() committing when rc is KILN_OK and rolling back
 * otherwise; sq_fail() maps the connection's last error to a kiln error (constraint →
 * KILN_ERR_CONFLICT, busy → KILN_ERR_UNAVAILABLE); the sq_col_*() return copies the caller
 * frees. */
struct sq_store *sq_of(struct store *st);

enum kiln_err sq_fail(struct sq_store *s, struct errbuf *eb, const char *what);

sqlite3_stmt *sq_stmt(struct sq_store *s, enum sq_stmt idx, struct errbuf *eb);

/* sq_stmt() for the common case: *q is statement idx with a and b, when not NULL, bound as text
 * to ?1 and ?2 (bind the other parameters yourself). KILN_ERR_IO with eb set when it cannot be
 * prepared. */
enum kiln_err sq_prep(struct sq_store *s, enum sq_stmt idx, const char *a, const char *b,
                      sqlite3_stmt **q, struct errbuf *eb);

void sq_text(sqlite3_stmt *st, int i, const char *v);

enum kiln_err sq_exec(struct sq_store *s, sqlite3_stmt *st, struct errbuf *eb);

enum kiln_err sq_simple(struct sq_store *s, enum sq_stmt idx, struct errbuf *eb);

enum kiln_err sq_begin(struct sq_store *s, struct errbuf *eb);

enum kiln_err sq_end(struct sq_store *s, enum kiln_err rc, struct errbuf *eb);

/* sq_begin() for a transaction whose commit must be on disk when sq_end() returns (file records
 * and deletions: docs/storage.md "Crash safety"): the connection runs synchronous=NORMAL and
 * switches to FULL for this commit. A synced commit makes every earlier one durable too. */
enum kiln_err sq_begin_durable(struct sq_store *s, struct errbuf *eb);

/* Make every commit so far durable (a passive checkpoint syncs the WAL first). */
void sq_sync(struct sq_store *s);

enum kiln_err sq_int(struct sq_store *s, sqlite3_stmt *st, long long *out, struct errbuf *eb);

char *sq_col_str(sqlite3_stmt *st, int i);

void sq_col_id(sqlite3_stmt *st, int i, char out[IDS_BUF]);

void sq_row_session(sqlite3_stmt *st, struct store_session *s);

void sq_row_file(sqlite3_stmt *st, struct store_file *f);

enum kiln_err sq_collect_strings(struct sq_store *s, sqlite3_stmt *st, char ***arr, size_t *n,
                                 struct errbuf *eb);

enum kiln_err sq_delete_session_locked(struct sq_store *s, const char *id, char ***keys,
                                       size_t *nkeys, bool *existed, struct errbuf *eb);

void *sq_col_bytes(sqlite3_stmt *q, int i, size_t *len);

/* Operations of struct store_ops (sqlite_files.c, sqlite_kv.c). */
enum kiln_err sq_session_create(struct store *st, const struct store_session *ss,
                                long long max_per_entity, char ***evicted, size_t *nevicted,
                                struct errbuf *eb);

enum kiln_err sq_session_get(struct store *st, const char *id, struct store_session *out,
                             struct errbuf *eb);

enum kiln_err sq_session_touch(struct store *st, const char *id, long long now_ms,
                               long long expires_ms, struct errbuf *eb);

enum kiln_err sq_session_list_by_entity(struct store *st, const char *entity_id, size_t limit,
                                        struct store_session **out, size_t *n, struct errbuf *eb);

enum kiln_err sq_session_count(struct store *st, const char *entity_id, long long *out,
                               struct errbuf *eb);

enum kiln_err sq_session_delete(struct store *st, const char *id, char ***keys, size_t *nkeys,
                                struct errbuf *eb);

enum kiln_err sq_session_list_expired(struct store *st, long long now_ms, size_t limit, char ***ids,
                                      size_t *n, struct errbuf *eb);

void sq_bind_file(sqlite3_stmt *q, const struct store_file *f);

enum kiln_err sq_session_exists(struct sq_store *s, const char *sid, struct errbuf *eb);

enum kiln_err sq_file_reserve(struct store *st, const struct store_file *f, long long max_files,
                              struct errbuf *eb);

enum kiln_err sq_file_commit(struct store *st, const char *sid, const char *fid, long long size,
                             const char *sha256, long long max_total_bytes, struct errbuf *eb);

enum kiln_err sq_file_put_many(struct store *st, const struct store_file *f, size_t n,
                               struct errbuf *eb);

enum kiln_err sq_file_get(struct store *st, const char *sid, const char *fid,
                          struct store_file *out, struct errbuf *eb);

enum kiln_err sq_file_list(struct store *st, const char *sid, struct store_file **out, size_t *n,
                           struct errbuf *eb);

enum kiln_err sq_file_delete(struct store *st, const char *sid, const char *fid, char **key,
                             struct errbuf *eb);

enum kiln_err sq_session_totals(struct store *st, const char *sid, struct store_totals *out,
                                struct errbuf *eb);

enum kiln_err sq_file_purge_pending(struct store *st, char ***keys, size_t *nkeys,
                                    struct errbuf *eb);

enum kiln_err sq_blob_key_referenced(struct store *st, const char *key, bool *out,
                                     struct errbuf *eb);

enum kiln_err sq_kv_set(struct store *st, const char *ns, const char *key, const void *val,
                        size_t len, long long now_ms, long long ttl_ms, struct errbuf *eb);

enum kiln_err sq_kv_set_many(struct store *st, const struct store_kv *kv, size_t n,
                             long long now_ms, long long ttl_ms, struct errbuf *eb);
enum kiln_err sq_kv_get(struct store *st, const char *ns, const char *key, long long now_ms,
                        void **val, size_t *len, long long *updated_ms, struct errbuf *eb);

enum kiln_err sq_kv_delete(struct store *st, const char *ns, const char *key, struct errbuf *eb);

enum kiln_err sq_kv_incr(struct store *st, const char *ns, const char *key, long long delta,
                         long long now_ms, long long ttl_ms, long long *value,
                         long long *expires_ms, struct errbuf *eb);

enum kiln_err sq_kv_scan(struct store *st, const char *ns, const char *prefix, long long now_ms,
                         store_kv_scan_fn fn, void *arg, struct errbuf *eb);

enum kiln_err sq_kv_sweep(struct store *st, long long now_ms, long long *removed,
                          struct errbuf *eb);

#endif
