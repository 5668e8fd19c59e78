/* The metadata port (DESIGN.md "ports"): sessions, file records and a small key/value space with
 * TTLs for later state (issue 6: hot state, archive markers) and counters (issue 7: rate-limit
 * windows, managed keys, usage). A backend is a struct store_ops chosen once at start-up
 * (STORE=sqlite|redis; STYLE.md rule 10); nothing above this port knows which one it got.
 *
 * Every operation that enforces a limit does the check and the write atomically in the backend
 * (a transaction in SQLite, a script/MULTI in Redis), so that concurrent requests cannot
 * overshoot MAX_SESSIONS_PER_ENTITY or MAX_FILES_PER_SESSION.
 *
 * Times are milliseconds since the Unix epoch, passed in by the caller (the store never reads
 * the clock), so tests control time.
 *
 * Thread safety: a struct store may be used by any number of threads at once. */
#ifndef KILN_STORE_STORE_H
#define KILN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/ids.h"
#include "util/err.h"

/* Longest user id, entity id and KV namespace/key accepted (bytes). */
#define STORE_MAX_USER   256
#define STORE_MAX_ENTITY 40
#define STORE_MAX_KEY    256

/* One session. Strings are owned by the struct: release with store_session_clear(). */
struct store_session {
    char id[IDS_BUF];
    char *user_id;        /* owner; "" = created without a user (usable by any caller) */
    char *entity_id;      /* "" = none */
    long long created_ms; /* creation time */
    long long active_ms;  /* last use (creation, upload, execution) */
    long long expires_ms; /* 0 = never; else the sweeper removes it at this time */
};

/* Where a file record came from. */
enum store_file_origin {
    STORE_FILE_UPLOAD, /* uploaded by a client */
    STORE_FILE_OUTPUT, /* collected from an execution */
};

/* A record's life: reserved while its bytes are being written, then complete. A pending record
 * counts against the session's limits (so concurrent uploads cannot overshoot) and is removed,
 * with its bytes, by the start-up recovery when a crash left it behind. */
enum store_file_state {
    STORE_FILE_PENDING = 0,
    STORE_FILE_COMPLETE = 1,
};

/* One file record. Strings are owned: release with store_file_clear(). */
struct store_file {
    char session_id[IDS_BUF];
    char id[IDS_BUF];
    char *name;          /* sanitised relative path, e.g. "data.csv" or "charts/a.png" */
    char *original_name; /* as the client sent it (for metadata.original-filename) */
    char *content_type;
    char *blob_key;  /* key in the blob store, kiln-generated ("<sid>/<fid>") */
    char *kind;      /* gen-2 `kind` (user|agent|skill) or "" */
    long long size;  /* bytes (0 while pending) */
    char sha256[65]; /* lower-case hex (empty while pending) */
    enum store_file_origin origin;
    enum store_file_state state;
    char modified_from_id[IDS_BUF];      /* "" unless an output that replaced an input */
    char modified_from_session[IDS_BUF]; /* session of that input */
    long long created_ms;
};

/* Totals of one session's records, pending ones included. */
struct store_totals {
    long long files;
    long long bytes;
};

/* One entry of kv_set_many(): its namespace, key and value (all borrowed). */
struct store_kv {
    const char *ns, *key;
    const void *val;
    size_t len;
};

/* Called once per entry of a kv scan: key, value (borrowed during the call), its length, last
 * write and expiry (0 = never). Return non-zero to stop the scan with that error. */
typedef enum kiln_err (*store_kv_scan_fn)(void *arg, const char *key, const void *val, size_t len,
                                          long long updated_ms, long long expires_ms);

struct store;

/* A backend's operations. All return KILN_OK or an error with eb filled; "not found" is
 * KILN_ERR_NOT_FOUND. Output arrays are allocated by the backend and freed by the caller with
 * the matching *_free_array() below. */
struct store_ops {
    const char *name; /* "sqlite", "redis" */

    /* Close the backend and free st. */
    void (*close)(struct store *st);

    /* Cheap liveness check for /health/detailed. */
    enum kiln_err (*ping)(struct store *st, struct errbuf *eb);

    /* Create s (id given by the caller). When s->entity_id is non-empty and the entity already
     * holds max_per_entity sessions or more (0 = no limit), the least recently active ones are
     * removed first, in the same transaction; their file records go with them and, on success
     * only, their blob keys are returned in *evicted_keys and *nevicted (may be NULL; caller
     * frees with store_strings_free() and deletes the bytes). KILN_ERR_CONFLICT when the id
     * exists (nothing is evicted then). */
    enum kiln_err (*session_create)(struct store *st, const struct store_session *s,
                                    long long max_per_entity, char ***evicted_keys,
                                    size_t *nevicted, struct errbuf *eb);

    /* Fill *out with the session id (caller clears it). */
    enum kiln_err (*session_get)(struct store *st, const char *id, struct store_session *out,
                                 struct errbuf *eb);

    /* Record a use: active_ms = now_ms, expires_ms as given (0 = never). */
    enum kiln_err (*session_touch)(struct store *st, const char *id, long long now_ms,
                                   long long expires_ms, struct errbuf *eb);

    /* The sessions of entity_id, most recently active first, at most limit (0 = all). */
    enum kiln_err (*session_list_by_entity)(struct store *st, const char *entity_id, size_t limit,
                                            struct store_session **out, size_t *n,
                                            struct errbuf *eb);

    /* Number of sessions: of entity_id, or all when entity_id is NULL. */
    enum kiln_err (*session_count)(struct store *st, const char *entity_id, long long *out,
                                   struct errbuf *eb);

    /* Delete a session and all its file records in one step; the blob keys of those records are
     * returned (caller frees with store_strings_free() and deletes the bytes afterwards, so a
     * crash in between leaves only unreferenced bytes, which recovery removes). */
    enum kiln_err (*session_delete)(struct store *st, const char *id, char ***keys, size_t *nkeys,
                                    struct errbuf *eb);

    /* Ids of sessions with 0 < expires_ms <= now_ms, at most limit. Caller frees *ids with
     * store_strings_free(). */
    enum kiln_err (*session_list_expired)(struct store *st, long long now_ms, size_t limit,
                                          char ***ids, size_t *n, struct errbuf *eb);

    /* Reserve a record (state PENDING, size 0) in f->session_id, refused with
     * KILN_ERR_TOO_LARGE naming MAX_FILES_PER_SESSION when the session already holds max_files
     * records (0 = no limit), KILN_ERR_NOT_FOUND when the session is gone. */
    enum kiln_err (*file_reserve)(struct store *st, const struct store_file *f, long long max_files,
                                  struct errbuf *eb);

    /* Complete a reserved record with its size and sha256, refused with KILN_ERR_TOO_LARGE
     * naming MAX_TOTAL_FILE_SIZE_MB when the session's bytes would pass max_total_bytes
     * (0 = no limit); the record stays pending then and the caller aborts it. */
    enum kiln_err (*file_commit)(struct store *st, const char *sid, const char *fid, long long size,
                                 const char *sha256, long long max_total_bytes, struct errbuf *eb);

    /* Insert n complete records at once (execution outputs), all or none. */
    enum kiln_err (*file_put_many)(struct store *st, const struct store_file *f, size_t n,
                                   struct errbuf *eb);

    /* Fill *out with a complete record (pending ones are not found). Caller clears it. */
    enum kiln_err (*file_get)(struct store *st, const char *sid, const char *fid,
                              struct store_file *out, struct errbuf *eb);

    /* The complete records of a session, oldest first. */
    enum kiln_err (*file_list)(struct store *st, const char *sid, struct store_file **out,
                               size_t *n, struct errbuf *eb);

    /* Delete one record (pending or complete); *key receives its blob key (caller frees).
     * KILN_ERR_NOT_FOUND when already gone. */
    enum kiln_err (*file_delete)(struct store *st, const char *sid, const char *fid, char **key,
                                 struct errbuf *eb);

    /* Counts and bytes of a session's records; sid NULL = of every session (the /metrics
     * gauges kiln_files_stored and kiln_file_bytes_stored). */
    enum kiln_err (*session_totals)(struct store *st, const char *sid, struct store_totals *out,
                                    struct errbuf *eb);

    /* Delete every pending record (start-up recovery, before any request is served); their blob
     * keys are returned for the caller to delete. */
    enum kiln_err (*file_purge_pending)(struct store *st, char ***keys, size_t *nkeys,
                                        struct errbuf *eb);

    /* True in *out when some record (any state) references blob key. */
    enum kiln_err (*blob_key_referenced)(struct store *st, const char *key, bool *out,
                                         struct errbuf *eb);

    /* Small values with a TTL in a namespace ("state", "apikey", "rate", …). ttl_ms 0 = never
     * expires. An expired entry is invisible at once and removed by kv_sweep(). */
    enum kiln_err (*kv_set)(struct store *st, const char *ns, const char *key, const void *val,
                            size_t len, long long now_ms, long long ttl_ms, struct errbuf *eb);

    /* kv_set() of n entries in one transaction: all of them or none, and one commit instead of
     * n (a state and its metadata on every Python /exec). */
    enum kiln_err (*kv_set_many)(struct store *st, const struct store_kv *kv, size_t n,
                                 long long now_ms, long long ttl_ms, struct errbuf *eb);

    /* *val receives a copy (caller frees; NUL-terminated beyond *len for convenience). */
    enum kiln_err (*kv_get)(struct store *st, const char *ns, const char *key, long long now_ms,
                            void **val, size_t *len, long long *updated_ms, struct errbuf *eb);

    /* KILN_ERR_NOT_FOUND when absent. */
    enum kiln_err (*kv_delete)(struct store *st, const char *ns, const char *key,
                               struct errbuf *eb);

    /* Add delta to an integer counter and return its new value; a missing or expired counter
     * starts at 0 with expiry now_ms + ttl_ms (fixed window: the expiry is not moved by later
     * increments). For rate-limit windows and usage counts. */
    enum kiln_err (*kv_incr)(struct store *st, const char *ns, const char *key, long long delta,
                             long long now_ms, long long ttl_ms, long long *value,
                             long long *expires_ms, struct errbuf *eb);

    /* Call fn for each live entry of ns whose key starts with prefix ("" = all). */
    enum kiln_err (*kv_scan)(struct store *st, const char *ns, const char *prefix, long long now_ms,
                             store_kv_scan_fn fn, void *arg, struct errbuf *eb);

    /* Remove expired entries of every namespace; *removed (may be NULL) gets their number. */
    enum kiln_err (*kv_sweep)(struct store *st, long long now_ms, long long *removed,
                              struct errbuf *eb);
};

/* The handle every backend embeds first. */
struct store {
    const struct store_ops *ops;
};

/* Free the strings of s and zero it. NULL is a no-op. */
void store_session_clear(struct store_session *s);

/* Free the strings of f and zero it. NULL is a no-op. */
void store_file_clear(struct store_file *f);

/* Free an array of n sessions (and their strings). */
void store_sessions_free(struct store_session *a, size_t n);

/* Free an array of n file records (and their strings). */
void store_files_free(struct store_file *a, size_t n);

/* Free an array of n strings. */
void store_strings_free(char **a, size_t n);

/* Open the SQLite backend on the database file path (created with its schema if missing;
 * migrated when older). Caller closes with st->ops->close(st). */
enum kiln_err store_sqlite_open(const char *path, struct store **out, struct errbuf *eb);

#endif
