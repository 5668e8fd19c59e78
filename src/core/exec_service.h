/* The execution orchestrator behind POST /exec: validate the request, choose the session, check
 * the file refs, wait for a slot (MAX_CONCURRENT_EXECUTIONS, then a bounded queue of
 * MAX_QUEUED_EXECUTIONS, then 429), run through the exec port, store the collected outputs as
 * file records and build the response fields of the contract.
 *
 * The request and response are plain C structs: the API layer converts JSON at its boundary
 * (args of any JSON type arrive here already stringified).
 *
 * Thread safety: exec_service_run() may be called from many threads at once. */
#ifndef KILN_CORE_EXEC_SERVICE_H
#define KILN_CORE_EXEC_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/ids.h"
#include "core/services.h"
#include "util/sha256.h"

/* A file ref of either generation: gen 1 {id, name, session_id}, gen 2 {id, resource_id, name,
 * storage_session_id, kind, version}. The API passes session_id = storage_session_id when
 * present, else session_id. All borrowed. */
struct exec_file_ref {
    const char *id;
    const char *session_id;
    const char *name; /* fallback lookup by name when id is unknown in that session */
};

/* One /exec request. All borrowed for the duration of the call. */
struct exec_request {
    const char *user_id;    /* the caller's user (JWT sub or body user_id); NULL = unscoped */
    const char *entity_id;  /* NULL or ≤ 40 of [A-Za-z0-9_-] */
    const char *session_id; /* NULL or an explicit session to reuse */
    const char *lang;       /* case-insensitive */
    const char *code;
    size_t code_len;
    const char *const *args; /* argv strings */
    size_t nargs;
    long long timeout_ms; /* ≤ 0 = the default; clamped to MAX_EXECUTION_TIME */
    const struct exec_file_ref *files;
    size_t nfiles;
    /* Echo untouched inputs as `inherited: true` entries. Set it for gen-2 clients (refs with
     * storage_session_id), which know the flag; gen-1 clients (AG 3.1.x) would try to download
     * every listed file from the execution's session, where an input of another session is
     * not. */
    bool echo_inherited;
    int cancel_fd; /* -1, or readable when the client went away: the run is killed */
};

/* One entry of the response's files: a new or modified output, or an untouched input echoed
 * with inherited = true (its original id and session). */
struct exec_response_file {
    char id[IDS_BUF];
    char session_id[IDS_BUF]; /* the contract's storage_session_id */
    char *name;               /* relative path in /mnt/data */
    char *path;               /* "/mnt/data/<name>" */
    long long size;
    bool inherited;
    bool modified; /* then modified_from_* name the input it replaced */
    char modified_from_id[IDS_BUF];
    char modified_from_session[IDS_BUF];
};

/* The response fields of the contract. Owned buffers: release with exec_response_clear(). */
struct exec_response {
    char session_id[IDS_BUF];
    char *stdout_text; /* NUL-terminated; non-empty ends with '\n' */
    size_t stdout_len;
    char *stderr_text;
    size_t stderr_len;
    const char *status; /* "ok|error|timeout|oom|output_limit|killed" (static) */
    int exit_code;
    int signal; /* 0 = none (the API writes null) */
    long long wall_time_ms, cpu_time_ms, memory_peak_kb;
    struct exec_response_file *files;
    size_t nfiles;
    size_t files_skipped; /* outputs left out by MAX_OUTPUT_FILES / MAX_FILE_SIZE_MB */
    long long queue_wait_ms;
    /* Python state after the run (core/state.h): has_state false → the API writes
     * "state_size": null, "state_hash": null. state_notes (nstate_notes strings, owned) say
     * what was not saved or restored ("variable 'g' not saved: generator cannot be pickled…",
     * "state not saved: 5.0 MB exceeds STATE_MAX_SIZE_MB (1 MB)", "stored state was corrupted
     * and has been dropped"); the API writes them as the array "state_notes", omitted when
     * empty (docs/state.md). */
    bool has_state;
    long long state_size;
    char state_hash[SHA256_HEX_BUF];
    char **state_notes;
    size_t nstate_notes;
};

/* Extra facts of a refusal for the error body: the `details` entry and Retry-After. */
struct exec_error_info {
    char field[32];          /* "code", "lang", "entity_id", "files", … or "" */
    char code[40];           /* "empty_code", "unsupported_language", … or "" */
    long long retry_after_s; /* > 0 with KILN_ERR_RATE_LIMITED */
};

/* Count an execution refused before it reached exec_service_run() (validation failed, no place
 * in the queue) as kiln_executions_total{status="rejected"}; lang may be NULL or unknown
 * ("other"). A no-op without metrics. */
void exec_service_count_refusal(struct kiln_services *svc, const char *lang);

/* Check req without running anything: code non-empty after whitespace (`empty_code`), lang one
 * of the 13 (`unsupported_language`), entity_id, session id shape, file refs' ids. */
enum kiln_err exec_service_validate(const struct exec_request *req, struct exec_error_info *info,
                                    struct errbuf *eb);

/* Run req. KILN_OK whenever the code ran, whatever its exit status (the API answers 200);
 * errors: KILN_ERR_INVALID (info says which field), KILN_ERR_FORBIDDEN (a file ref into another
 * user's session), KILN_ERR_RATE_LIMITED (queue full; info->retry_after_s), KILN_ERR_UNAVAILABLE
 * or KILN_ERR_IO (the sandbox or a store failed). Caller clears *resp (zeroed first here). */
enum kiln_err exec_service_run(struct kiln_services *svc, const struct exec_request *req,
                               struct exec_response *resp, struct exec_error_info *info,
                               struct errbuf *eb);

/* Free the buffers of resp and zero it. NULL is a no-op. */
void exec_response_clear(struct exec_response *resp);

/* The admission gate: at most max_running executions at once, at most max_queued waiting. */
struct exec_gate *exec_gate_new(long long max_running, long long max_queued);

/* Reserve a place for one coming execution without waiting (the API does this on its poll
 * thread before it hands the request to a thread of its own): KILN_ERR_RATE_LIMITED with
 * *retry_after_s when MAX_CONCURRENT_EXECUTIONS + MAX_QUEUED_EXECUTIONS places are already
 * held. A holder calls exec_service_run() (which then never finds the queue full) and
 * exec_gate_release() after it returned. */
enum kiln_err exec_gate_reserve(struct exec_gate *g, long long *retry_after_s, struct errbuf *eb);
void exec_gate_release(struct exec_gate *g);

/* Run fn(arg) on a thread of the gate's: an idle one from an earlier job when there is one,
 * else a new one (detached; at most max_running idle ones are kept for the next jobs); fn starts
 * at once, never behind a busy thread. For a holder of a reserved place, whose fn ends with
 * exec_gate_release() (and exec_service_run()'s own short jobs). KILN_ERR_UNAVAILABLE when no
 * thread can be had (fn is then not called; the caller still owns arg and its place). */
enum kiln_err exec_gate_spawn(struct exec_gate *g, void (*fn)(void *arg), void *arg,
                              struct errbuf *eb);

/* Threads of exec_gate_spawn() waiting for a job right now (tests, diagnostics). */
long long exec_gate_idle_threads(struct exec_gate *g);

/* Wait until every reserved place is released (shutdown, before services_close()). */
void exec_gate_wait_idle(struct exec_gate *g);

/* NULL is a no-op. No execution may be inside the gate. Waits for the threads of
 * exec_gate_spawn() to leave (a job still handed over runs first). */
void exec_gate_free(struct exec_gate *g);

/* Executions running and waiting right now (for /metrics and health). */
void exec_gate_stats(struct exec_gate *g, long long *running, long long *queued);

#endif
