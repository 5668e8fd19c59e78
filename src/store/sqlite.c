/* The SQLite store backend (STORE=sqlite): one database file under DATA_DIR.
 *
 * Threading: one connection shared by all threads and serialised by a mutex. SQLite itself
 * serialises writers, every operation here is a handful of indexed statements (microseconds),
 * and one connection lets the prepared statements be prepared once and reused; a connection per
 * thread would add WAL read concurrency we do not need and a statement cache per thread.
 *
 * Crash safety: WAL journal, every multi-statement operation in one BEGIN IMMEDIATE transaction,
 * foreign keys so that deleting a session deletes its records in the same transaction. The
 * connection runs synchronous=NORMAL (consistent after a power loss, but the last commits may be
 * lost: an fsync per commit cost ~0.5-7 ms of every /exec here, which creates a session, touches
 * it and saves a Python state); what must survive a power loss once acknowledged — file records,
 * and deletions, after which bytes are removed — commits with FULL (sq_begin_durable). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/xmalloc.h"

/* Schema version this code writes; older databases are migrated step by step, newer ones
 * refused (a downgrade must not silently drop columns it does not know). */
#define SQ_SCHEMA_VERSION 1

static const char sq_schema_v1[] =
    "CREATE TABLE sessions("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL,"
    " entity_id TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " active_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX sessions_by_entity ON sessions(entity_id, active_ms) WHERE entity_id <> '';"
    "CREATE INDEX sessions_by_expiry ON sessions(expires_ms) WHERE expires_ms > 0;"
    "CREATE TABLE files("
    " session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " id TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " original_name TEXT NOT NULL,"
    " content_type TEXT NOT NULL,"
    " blob_key TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " origin INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " modified_from_id TEXT NOT NULL,"
    " modified_from_session TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " PRIMARY KEY(session_id, id)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX files_by_state ON files(state) WHERE state = 0;"
    "CREATE INDEX files_by_blob ON files(blob_key);"
    "CREATE TABLE kv("
    " ns TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " value ANY,"
    " updated_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " PRIMARY KEY(ns, key)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX kv_by_expiry ON kv(expires_ms) WHERE expires_ms > 0;";

/* Migrations: index i brings a database from version i to i + 1. */
static const char *const sq_migrations[SQ_SCHEMA_VERSION] = {sq_schema_v1};

#define SQ_SESSION_COLS "id, user_id, entity_id, created_ms, active_ms, expires_ms"
#define SQ_FILE_COLS                                                                               \
    "session_id, id, name, original_name, content_type, blob_key, kind, size, sha256, origin, "    \
    "state, modified_from_id, modified_from_session, created_ms"

/* The SQL of every statement of enum sq_stmt (sqlite_int.h). */
static const char *const sq_sql[SQ_STMT_COUNT] = {
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
    [SQ_SESSION_INSERT] = "INSERT INTO sessions(" SQ_SESSION_COLS ") VALUES(?1,?2,?3,?4,?5,?6)",
    [SQ_SESSION_GET] = "SELECT " SQ_SESSION_COLS " FROM sessions WHERE id = ?1",
    [SQ_SESSION_TOUCH] = "UPDATE sessions SET active_ms = ?2, expires_ms = ?3 WHERE id = ?1",
    [SQ_SESSION_BY_ENTITY] = "SELECT " SQ_SESSION_COLS " FROM sessions WHERE entity_id = ?1 AND "
                             "entity_id <> '' ORDER BY active_ms DESC, id LIMIT ?2",
    [SQ_SESSION_COUNT_ENTITY] =
        "SELECT count(*) FROM sessions WHERE entity_id = ?1 AND entity_id <> ''",
    [SQ_SESSION_COUNT_ALL] = "SELECT count(*) FROM sessions",
    [SQ_SESSION_OLDEST_OF_ENTITY] = "SELECT id FROM sessions WHERE entity_id = ?1 AND entity_id "
                                    "<> '' ORDER BY active_ms ASC, id LIMIT ?2",
    [SQ_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [SQ_SESSION_EXPIRED] = "SELECT id FROM sessions WHERE expires_ms > 0 AND expires_ms <= ?1 "
                           "ORDER BY expires_ms LIMIT ?2",
    [SQ_SESSION_KEYS] = "SELECT blob_key FROM files WHERE session_id = ?1",
    [SQ_FILE_INSERT] = "INSERT INTO files(" SQ_FILE_COLS
                       ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)",
    [SQ_FILE_COUNT] = "SELECT count(*) FROM files WHERE session_id = ?1",
    [SQ_FILE_BYTES_COMPLETE] =
        "SELECT coalesce(sum(size), 0) FROM files WHERE session_id = ?1 AND state = 1",
    [SQ_FILE_COMMIT] = "UPDATE files SET size = ?3, sha256 = ?4, state = 1 WHERE session_id = ?1 "
                       "AND id = ?2 AND state = 0",
    [SQ_FILE_GET] =
        "SELECT " SQ_FILE_COLS " FROM files WHERE session_id = ?1 AND id = ?2 AND state = 1",
    [SQ_FILE_LIST] = "SELECT " SQ_FILE_COLS
                     " FROM files WHERE session_id = ?1 AND state = 1 ORDER BY created_ms, name",
    [SQ_FILE_KEY] = "SELECT blob_key FROM files WHERE session_id = ?1 AND id = ?2",
    [SQ_FILE_DELETE] = "DELETE FROM files WHERE session_id = ?1 AND id = ?2",
    [SQ_FILE_TOTALS] = "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE session_id = ?1",
    [SQ_FILE_TOTALS_ALL] = "SELECT count(*), coalesce(sum(size), 0) FROM files",
    [SQ_FILE_PENDING_KEYS] = "SELECT blob_key FROM files WHERE state = 0",
    [SQ_FILE_PENDING_DELETE] = "DELETE FROM files WHERE state = 0",
    [SQ_FILE_KEY_REFERENCED] = "SELECT 1 FROM files WHERE blob_key = ?1 LIMIT 1",
    [SQ_KV_SET] = "INSERT INTO kv(ns, key, value, updated_ms, expires_ms) VALUES(?1,?2,?3,?4,?5) "
                  "ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value, "
                  "updated_ms = excluded.updated_ms, expires_ms = excluded.expires_ms",
    [SQ_KV_GET] = "SELECT value, updated_ms, expires_ms FROM kv WHERE ns = ?1 AND key = ?2 AND "
                  "(expires_ms = 0 OR expires_ms > ?3)",
    [SQ_KV_DELETE] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    [SQ_KV_SCAN] = "SELECT key, value, updated_ms, expires_ms FROM kv WHERE ns = ?1 AND "
                   "substr(key, 1, length(?2)) = ?2 AND (expires_ms = 0 OR expires_ms > ?3) "
                   "ORDER BY key",
    [SQ_KV_SWEEP] = "DELETE FROM kv WHERE expires_ms > 0 AND expires_ms <= ?1",
};

struct sq_store *sq_of(struct store *st)
{
    return (struct sq_store *)st;
}

enum kiln_err sq_fail(struct sq_store *s, struct errbuf *eb, const char *what)
{
    int code = sqlite3_extended_errcode(s->db);
    enum kiln_err err = KILN_ERR_IO;

    if ((code & 0xff) == SQLITE_CONSTRAINT)
        err = KILN_ERR_CONFLICT;
    else if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
        err = KILN_ERR_UNAVAILABLE;
    return errbuf_set(eb, err, "sqlite %s: %s", what, sqlite3_errmsg(s->db));
}

/* The statement idx, reset and with its bindings cleared; NULL with eb set on failure. */
sqlite3_stmt *sq_stmt(struct sq_store *s, enum sq_stmt idx, struct errbuf *eb)
{
    sqlite3_stmt *st = s->stmts[idx];

    if (st == NULL) {
        if (sqlite3_prepare_v3(s->db, sq_sql[idx], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
            SQLITE_OK) {
            sq_fail(s, eb, "prepare");
            return NULL;
        }
        s->stmts[idx] = st;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

void sq_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v != NULL ? v : "", -1, SQLITE_TRANSIENT);
}

enum kiln_err sq_prep(struct sq_store *s, enum sq_stmt idx, const char *a, const char *b,
                      sqlite3_stmt **q, struct errbuf *eb)
{
    *q = sq_stmt(s, idx, eb);
    if (*q == NULL)
        return KILN_ERR_IO;
    if (a != NULL)
        sq_text(*q, 1, a);
    if (b != NULL)
        sq_text(*q, 2, b);
    return KILN_OK;
}

/* Run a statement that returns no rows (or whose rows are ignored). */
enum kiln_err sq_exec(struct sq_store *s, sqlite3_stmt *st, struct errbuf *eb)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, eb, "step");
    return KILN_OK;
}

enum kiln_err sq_simple(struct sq_store *s, enum sq_stmt idx, struct errbuf *eb)
{
    sqlite3_stmt *st = sq_stmt(s, idx, eb);
    return st != NULL ? sq_exec(s, st, eb) : KILN_ERR_IO;
}

/* Begin/end a transaction; sq_end() commits when rc is KILN_OK and rolls back otherwise, and
 * returns the first error. */
enum kiln_err sq_begin(struct sq_store *s, struct errbuf *eb)
{
    return sq_simple(s, SQ_BEGIN, eb);
}

enum kiln_err sq_begin_durable(struct sq_store *s, struct errbuf *eb)
{
    if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(s, eb, "synchronous");
    s->durable = true;
    if (sq_begin(s, eb) == KILN_OK)
        return KILN_OK;
    sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    s->durable = false;
    return KILN_ERR_IO;
}

enum kiln_err sq_end(struct sq_store *s, enum kiln_err rc, struct errbuf *eb)
{
    if (rc == KILN_OK)
        rc = sq_simple(s, SQ_COMMIT, eb);
    if (rc != KILN_OK && sqlite3_get_autocommit(s->db) == 0)
        sq_simple(s, SQ_ROLLBACK, NULL);
    if (s->durable) {
        sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
        s->durable = false;
    }
    return rc;
}

void sq_sync(struct sq_store *s)
{
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

/* One integer from a single-row query. */
enum kiln_err sq_int(struct sq_store *s, sqlite3_stmt *st, long long *out, struct errbuf *eb)
{
    int rc = sqlite3_step(st);

    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return KILN_OK;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "no row");
    return sq_fail(s, eb, "step");
}

char *sq_col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return xstrdup(t != NULL ? (const char *)t : "");
}

void sq_col_id(sqlite3_stmt *st, int i, char out[IDS_BUF])
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t != NULL ? strnlen((const char *)t, IDS_LEN) : 0;
    memcpy(out, t != NULL ? (const char *)t : "", n);
    out[n] = '\0';
}

void sq_row_session(sqlite3_stmt *st, struct store_session *s)
{
    sq_col_id(st, 0, s->id);
    s->user_id = sq_col_str(st, 1);
    s->entity_id = sq_col_str(st, 2);
    s->created_ms = sqlite3_column_int64(st, 3);
    s->active_ms = sqlite3_column_int64(st, 4);
    s->expires_ms = sqlite3_column_int64(st, 5);
}

void sq_row_file(sqlite3_stmt *st, struct store_file *f)
{
    const unsigned char *sha;

    sq_col_id(st, 0, f->session_id);
    sq_col_id(st, 1, f->id);
    f->name = sq_col_str(st, 2);
    f->original_name = sq_col_str(st, 3);
    f->content_type = sq_col_str(st, 4);
    f->blob_key = sq_col_str(st, 5);
    f->kind = sq_col_str(st, 6);
    f->size = sqlite3_column_int64(st, 7);
    sha = sqlite3_column_text(st, 8);
    memset(f->sha256, 0, sizeof f->sha256);
    if (sha != NULL)
        memcpy(f->sha256, sha, strnlen((const char *)sha, sizeof f->sha256 - 1));
    f->origin = (enum store_file_origin)sqlite3_column_int(st, 9);
    f->state = (enum store_file_state)sqlite3_column_int(st, 10);
    sq_col_id(st, 11, f->modified_from_id);
    sq_col_id(st, 12, f->modified_from_session);
    f->created_ms = sqlite3_column_int64(st, 13);
}

/* Collect the first text column of every row of st into a growing string array. */
enum kiln_err sq_collect_strings(struct sq_store *s, sqlite3_stmt *st, char ***arr, size_t *n,
                                 struct errbuf *eb)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *arr = xreallocarray(*arr, *n + 1, sizeof **arr);
        (*arr)[(*n)++] = sq_col_str(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? KILN_OK : sq_fail(s, eb, "step");
}

/* Delete one session (records cascade), appending its blob keys. Inside a transaction. */
enum kiln_err sq_delete_session_locked(struct sq_store *s, const char *id, char ***keys,
                                       size_t *nkeys, bool *existed, struct errbuf *eb)
{
    sqlite3_stmt *st;
    enum kiln_err rc;

    st = sq_stmt(s, SQ_SESSION_KEYS, eb);
    if (st == NULL)
        return KILN_ERR_IO;
    sq_text(st, 1, id);
    rc = sq_collect_strings(s, st, keys, nkeys, eb);
    if (rc)
        return rc;
    st = sq_stmt(s, SQ_SESSION_DELETE, eb);
    if (st == NULL)
        return KILN_ERR_IO;
    sq_text(st, 1, id);
    rc = sq_exec(s, st, eb);
    if (rc == KILN_OK && existed != NULL)
        *existed = sqlite3_changes(s->db) > 0;
    return rc;
}

void *sq_col_bytes(sqlite3_stmt *q, int i, size_t *len)
{
    const void *b = sqlite3_column_blob(q, i);
    size_t n = (size_t)sqlite3_column_bytes(q, i);
    char *copy = xmalloc(n + 1);

    if (n > 0)
        memcpy(copy, b, n);
    copy[n] = '\0';
    *len = n;
    return copy;
}

/* --- operations ------------------------------------------------------------------------------ */

static void sq_close(struct store *st)
{
    struct sq_store *s = sq_of(st);

    if (s == NULL)
        return;
    for (size_t i = 0; i < SQ_STMT_COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static enum kiln_err sq_ping(struct store *st, struct errbuf *eb)
{
    struct sq_store *s = sq_of(st);
    long long n = 0;
    enum kiln_err rc;
    sqlite3_stmt *q;

    pthread_mutex_lock(&s->mu);
    q = sq_stmt(s, SQ_SESSION_COUNT_ALL, eb);
    rc = q != NULL ? sq_int(s, q, &n, eb) : KILN_ERR_IO;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static const struct store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .ping = sq_ping,
    .session_create = sq_session_create,
    .session_get = sq_session_get,
    .session_touch = sq_session_touch,
    .session_list_by_entity = sq_session_list_by_entity,
    .session_count = sq_session_count,
    .session_delete = sq_session_delete,
    .session_list_expired = sq_session_list_expired,
    .file_reserve = sq_file_reserve,
    .file_commit = sq_file_commit,
    .file_put_many = sq_file_put_many,
    .file_get = sq_file_get,
    .file_list = sq_file_list,
    .file_delete = sq_file_delete,
    .session_totals = sq_session_totals,
    .file_purge_pending = sq_file_purge_pending,
    .blob_key_referenced = sq_blob_key_referenced,
    .kv_set = sq_kv_set,
    .kv_set_many = sq_kv_set_many,
    .kv_get = sq_kv_get,
    .kv_delete = sq_kv_delete,
    .kv_incr = sq_kv_incr,
    .kv_scan = sq_kv_scan,
    .kv_sweep = sq_kv_sweep,
};

/* --- opening and migrations ------------------------------------------------------------------ */

static enum kiln_err sq_exec_sql(struct sq_store *s, const char *sql, struct errbuf *eb)
{
    char *msg = NULL;
    enum kiln_err rc = KILN_OK;

    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK)
        rc = errbuf_set(eb, KILN_ERR_IO, "sqlite: %s", msg != NULL ? msg : "error");
    sqlite3_free(msg);
    return rc;
}

/* Bring the schema to SQ_SCHEMA_VERSION, each step in its own transaction with the version
 * row, so that a crash mid-migration leaves the previous version intact. */
static enum kiln_err sq_migrate(struct sq_store *s, struct errbuf *eb)
{
    sqlite3_stmt *q = NULL;
    long long version = 0;
    enum kiln_err rc;

    rc = sq_exec_sql(
        s, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL) STRICT", eb);
    if (rc)
        return rc;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &q,
                           NULL) != SQLITE_OK)
        return sq_fail(s, eb, "prepare");
    rc = sq_int(s, q, &version, eb);
    sqlite3_finalize(q);
    if (rc)
        return rc;
    if (version > SQ_SCHEMA_VERSION)
        return errbuf_set(eb, KILN_ERR_INVALID,
                          "database schema version %lld is newer than this kiln (%d)", version,
                          SQ_SCHEMA_VERSION);
    for (long long v = version; v < SQ_SCHEMA_VERSION; v++) {
        char *sql = xasprintf("BEGIN IMMEDIATE; %s DELETE FROM schema_version; "
                              "INSERT INTO schema_version(version) VALUES(%lld); COMMIT;",
                              sq_migrations[v], v + 1);
        rc = sq_exec_sql(s, sql, eb);
        free(sql);
        if (rc) {
            if (sqlite3_get_autocommit(s->db) == 0)
                sq_exec_sql(s, "ROLLBACK", NULL);
            return rc;
        }
    }
    return KILN_OK;
}

enum kiln_err store_sqlite_open(const char *path, struct store **out, struct errbuf *eb)
{
    struct sq_store *s = xcalloc(1, sizeof *s);
    enum kiln_err rc;

    s->base.ops = &sq_ops;
    pthread_mutex_init(&s->mu, NULL);
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                            SQLITE_OPEN_EXRESCODE,
                        NULL) != SQLITE_OK) {
        rc = errbuf_set(eb, KILN_ERR_IO, "cannot open %s: %s", path,
                        s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    rc = sq_exec_sql(s,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                     "PRAGMA trusted_schema=OFF;",
                     eb);
    if (rc)
        goto fail;
    rc = sq_migrate(s, eb);
    if (rc)
        goto fail;
    *out = &s->base;
    return KILN_OK;
fail:
    sq_close(&s->base);
    return rc;
}
