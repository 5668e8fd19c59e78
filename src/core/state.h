/* Python state of a session (issue 6): the blob the in-sandbox runner (src/lang/py/
 * kiln_runner.py) captures after a run and restores before the next one.
 *
 * A blob is one version byte (1 = raw cloudpickle, 2 = lz4 frame of it) and the payload; it is
 * opaque to kiln apart from validation (state_validate()). Where it lives:
 *   - hot, up to 256 KiB: store KV ns "state", key = session id, value = 64 hex chars of sha256
 *     + the blob, TTL STATE_TTL_SECONDS; ns "statemeta" (same key and TTL) holds
 *     "<size> <sha256>" so that /info and the archiver never copy the blob;
 *   - hot, larger: the bytes in the blob store under "statehot/<sid>" (committed without fsync:
 *     docs/state.md "Durability"), ns "statemeta" = "<size> <sha256> blob" — no large value
 *     ever goes through the store;
 *   - archive (STATE_ARCHIVE_ENABLED): after STATE_ARCHIVE_AFTER_SECONDS without a save, the
 *     archiver thread copies the blob durably to the blob store under "state/<sid>", records
 *     ns "statearc" = "<size> <sha256> <archived_ms> <expires_ms>" and drops the hot copy;
 *     removed after STATE_ARCHIVE_TTL_DAYS. Loading falls back to the archive transparently.
 * A save replaces every other copy; a stored blob whose sha256 no longer matches (checked at
 * every load) is dropped with a note, never handed to a sandbox.
 *
 * Ownership is the session's: callers check sessions_get() first (the routes) or hold the
 * session already (exec_service). sessions_delete() deletes the state with the session.
 *
 * Thread safety: every function may be called from any thread; saves, deletions and archive
 * moves of the process are serialised by one mutex in struct state_ctx. */
#ifndef KILN_CORE_STATE_H
#define KILN_CORE_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/services.h"
#include "util/sha256.h"

#define STATE_VERSION_RAW 1 /* version byte: raw cloudpickle */
#define STATE_VERSION_LZ4 2 /* version byte: lz4 frame of the cloudpickle */

/* Blob-store key prefix of archived states ("state/<sid>"); recovery leaves these keys alone. */
#define STATE_BLOB_PREFIX "state/"

/* Check a blob before it is stored or handed to a sandbox: len >= 2, version byte 1 or 2, a
 * payload that looks like a pickle (0x80 protocol 2..5 opcode first, STOP '.' last), for
 * version 2 one complete lz4 frame (liblz4's frame API) with nothing after it, decompressing to
 * at most max_raw bytes. KILN_ERR_INVALID (message says why) or KILN_ERR_TOO_LARGE (names
 * STATE_MAX_SIZE_MB). Never allocates more than a fixed scratch buffer. */
enum kiln_err state_validate(const void *blob, size_t len, size_t max_raw, struct errbuf *eb);

/* What /state/{sid}/info and /exec report. */
/* Room for the modules a state needs ("a,b,c"). */
#define STATE_MODULES_BUF 200

struct state_info {
    bool exists;
    long long size;              /* bytes of the blob */
    char sha256[SHA256_HEX_BUF]; /* lower-case hex of the blob */
    long long updated_ms;        /* last save */
    long long expires_ms;        /* when this copy goes away (0 = never) */
    const char *source;          /* "hot" or "archive" (static) */
    /* The top-level modules restoring it imports, as the runner reported them at capture
     * ("numpy,pandas"; "" none), when known (hot copies saved by an execution): lets the
     * zygote of a restore be picked like that of the program's own imports. */
    bool modules_known;
    char modules[STATE_MODULES_BUF];
};

/* The process's state context: the write mutex and the archiver thread. */
struct state_ctx;

/* Make the context and, when STATE_PERSISTENCE_ENABLED and STATE_ARCHIVE_ENABLED, start the
 * archiver thread (every STATE_ARCHIVE_CHECK_INTERVAL_SECONDS). svc must outlive it. Caller
 * frees with state_ctx_free(). */
enum kiln_err state_ctx_new(struct kiln_services *svc, struct state_ctx **out, struct errbuf *eb);

/* Stop the thread and free. NULL is a no-op. */
void state_ctx_free(struct state_ctx *sc);

/* The state of sid: *blob (caller frees) and *len, *info filled. KILN_ERR_NOT_FOUND when there
 * is none; when a stored copy was corrupted it is deleted, NOT_FOUND is returned and *note
 * (may be NULL; caller frees) says so. */
enum kiln_err state_load(struct kiln_services *svc, const char *sid, void **blob, size_t *len,
                         struct state_info *info, char **note, struct errbuf *eb);

/* Like state_load(), for an execution: a state kept in the blob store comes as a read-only fd
 * on its bytes (*fd >= 0, already checked against its sha256, offset 0; caller closes; *blob
 * NULL) instead of a copy in memory; otherwise *fd = -1 and *blob as with state_load(). */
enum kiln_err state_open(struct kiln_services *svc, const char *sid, void **blob, size_t *len,
                         int *fd, struct state_info *info, char **note, struct errbuf *eb);

/* Validate (STATE_MAX_SIZE_MB) and store blob as sid's hot state, replacing any other copy;
 * *info (may be NULL) describes what was stored. */
enum kiln_err state_save(struct kiln_services *svc, const char *sid, const void *blob, size_t len,
                         struct state_info *info, struct errbuf *eb);

/* state_save() of the bytes of fd (borrowed; read with pread from offset 0 to its end, at most
 * STATE_MAX_SIZE_MB plus the lz4 overhead): a large state streams through one buffer into the
 * blob store, validated and hashed on the way, never held whole in memory. modules (may be
 * NULL: unknown; else state_modules_ok()) is recorded for struct state_info. fresh: sid was
 * created by the caller's own request, so no other copy of its state (inline, blob, archive)
 * can exist and none is looked for or removed; false whenever that is not certain. */
enum kiln_err state_save_fd(struct kiln_services *svc, const char *sid, int fd, const char *modules,
                            bool fresh, struct state_info *info, struct errbuf *eb);

/* True when modules is a list state_save_fd() records: at most STATE_MODULES_BUF - 1 chars of
 * comma-separated names of [A-Za-z0-9_] ("" = none). */
bool state_modules_ok(const char *modules);

/* An execution restored sid's state (*loaded, as state_open() described it) and left it
 * unchanged: keep it without rewriting it. A hot copy's clock (TTL, idle time before archiving)
 * is refreshed only when a quarter of the shorter of STATE_TTL_SECONDS and
 * STATE_ARCHIVE_AFTER_SECONDS has passed since its last write — most calls write nothing —
 * or when modules (the runner's report, may be NULL) tells what *loaded did not know; an
 * archived copy becomes hot again (as a save would have made it). *info gets the state as it
 * now is. */
enum kiln_err state_keep(struct kiln_services *svc, const char *sid,
                         const struct state_info *loaded, const char *modules,
                         struct state_info *info, struct errbuf *eb);

/* Describe sid's state without reading the blob (exists = false when none). */
enum kiln_err state_info_get(struct kiln_services *svc, const char *sid, struct state_info *info,
                             struct errbuf *eb);

/* Delete every copy of sid's state. KILN_OK also when there was none. */
enum kiln_err state_delete(struct kiln_services *svc, const char *sid, struct errbuf *eb);

/* One archiver pass: move hot states idle for STATE_ARCHIVE_AFTER_SECONDS to the blob store,
 * remove archives older than STATE_ARCHIVE_TTL_DAYS. *archived and *expired may be NULL. */
enum kiln_err state_archive_pass(struct kiln_services *svc, long long *archived, long long *expired,
                                 struct errbuf *eb);

/* True for blob keys owned by this module (large hot states and archived states). */
bool state_blob_key(const char *key);

#endif
