/* The execution port (DESIGN.md "ports"): run one job in a fresh sandbox — mount the input
 * files at /mnt/data, run the code, collect the new and modified files into the blob store —
 * and report what happened. A backend is a struct exec_ops chosen once at start-up
 * (EXECUTION_MODE=local|kubernetes; STYLE.md rule 10).
 *
 * The result reuses the sandbox library's plain struct sbx_result (status, exit code, signal,
 * times, capped stdout/stderr), so every backend reports in the same terms; a Kubernetes
 * backend fills it from the pod runner's answer.
 *
 * The port never generates ids and never writes metadata: the caller hands in the blob keys the
 * outputs may take, and turns the returned outputs into file records itself.
 *
 * Thread safety: a struct exec may run many jobs at once from different threads. */
#ifndef KILN_EXEC_EXEC_H
#define KILN_EXEC_EXEC_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox/sandbox.h"
#include "util/err.h"
#include "util/sha256.h"

struct blob;

/* One file placed in /mnt/data before the run. All borrowed for the duration of run(). */
struct exec_input {
    const char *name;     /* clean relative path (names_is_clean_path()) */
    const char *blob_key; /* its bytes */
    long long size;       /* as recorded; with sha256, decides "modified" */
    const char *sha256;   /* lower-case hex as recorded */
};

/* One job. All pointers borrowed for the duration of run(). */
struct exec_job {
    const char *lang; /* a code lang_find() knows */
    const char *code;
    size_t code_len;
    const char *const *args; /* argv strings appended to the run command */
    size_t nargs;
    struct sbx_limits limits; /* resolved by the caller; wall_ms is the request's timeout */
    const struct exec_input *inputs;
    size_t ninputs;
    /* Keys the outputs may be stored under, in order: at most nkeys outputs are collected
     * (the caller's MAX_OUTPUT_FILES). */
    const char *const *out_keys;
    size_t nkeys;
    long long max_file_size; /* bytes; larger outputs are skipped */
    int cancel_fd;           /* -1, or an fd that becomes readable to kill the run */
    /* Python state (issue 6, lang py only): when state_enabled the program runs under the
     * state runner (src/lang/py/kiln_runner.py), which restores state_in (NULL = none) before
     * the run and captures the globals after it into res->state_out (at most state_max_bytes
     * of pickle; also after a failed run when state_capture_on_error). A large previous state
     * comes as an fd instead (state_in_is_fd: the bytes of state_in_fd from offset 0, already
     * checked; borrowed), copied into the workspace without passing through memory. */
    bool state_enabled;
    const void *state_in;
    size_t state_in_len;
    bool state_in_is_fd;
    int state_in_fd;
    /* The top-level modules restoring it imports ("numpy,pandas"; "" none), or NULL when not
     * known: a zygote is picked for them as for the program's own imports (NULL: the heavy
     * one, whatever the state holds). */
    const char *state_modules;
    long long state_max_bytes;
    bool state_capture_on_error;
};

/* One collected file, stored under out_keys[key_index]. */
struct exec_output {
    size_t key_index;
    char *name; /* clean relative path in /mnt/data (re-sanitised) */
    long long size;
    char sha256[SHA256_HEX_BUF];
    long input_index; /* -1: a new file; else the index of the input it modified */
};

/* What happened. Owned buffers: release with exec_result_clear(). */
struct exec_result {
    struct sbx_result run;
    struct exec_output *outputs; /* sorted by name */
    size_t noutputs;
    bool *input_unchanged; /* ninputs flags: still present and byte-identical after the run */
    size_t skipped;        /* files left out by the caps (count or size) */
    /* Python state: the blob the runner captured (untrusted: validate before storing) and its
     * notes file ({"saved","size","notes":[…],"unchanged"?}, untrusted JSON); NULL when absent.
     * The local backend hands the blob as an fd instead (state_out_is_fd: state_out_fd, read-only,
     * opened by the workspace walk — regular file, one link, no symlink, as the sandbox's uid —
     * closed by exec_result_clear()), so that a large state is never slurped. */
    void *state_out;
    size_t state_out_len;
    bool state_out_is_fd;
    int state_out_fd;
    char *state_notes; /* NUL-terminated */
};

/* Free the buffers of r and zero it. NULL is a no-op. */
void exec_result_clear(struct exec_result *r);

struct exec;

/* A backend's operations. */
struct exec_ops {
    const char *name; /* "local", "kubernetes" */

    /* Free the backend. */
    void (*close)(struct exec *ex);

    /* Cheap readiness check for /health/detailed. */
    enum kiln_err (*ping)(struct exec *ex, struct errbuf *eb);

    /* Run job and fill *res (zeroed by the caller). Returns an error only when the sandbox could
     * not be built or an input could not be mounted; whatever the program does is a result.
     * On error, outputs already stored are removed again. */
    enum kiln_err (*run)(struct exec *ex, const struct exec_job *job, struct exec_result *res,
                         struct errbuf *eb);
};

/* The handle every backend embeds first. */
struct exec {
    const struct exec_ops *ops;
};

/* The local backend on the sandbox library: sbx and blob are borrowed and must outlive it.
 * Caller frees with ex->ops->close(ex). */
/* Start-up recovery of the local backend (exec/local_reap.c): kill and remove the sandboxes
 * and cgroups left by a kiln process that died (kill -9), identified by the dead supervisor pid
 * in their cgroup names, and the workspace mounts under run_dir/ws whose uid slot nobody holds;
 * other live instances' sandboxes are untouched. Returns how many orphans were removed. Call before
 * serving. */
long exec_local_reap_orphans(const char *run_dir);

enum kiln_err exec_local_new(struct sbx_ctx *sbx, struct blob *blob, struct exec **out,
                             struct errbuf *eb);

struct zyg_set;

/* Python executions of the local backend ex then run in zygote children (sandbox/zygote.h;
 * zyg_run() falls back to a cold sandbox by itself). zs is borrowed: it must outlive ex's runs;
 * NULL turns it off. Call before the first run. */
void exec_local_set_zygote(struct exec *ex, struct zyg_set *zs);

struct sbx_pool;

/* Executions of the local backend ex not sent to a zygote lease their sandbox from pool
 * (sandbox/pool.h: a parked sandbox of the language's kind, with its pre-started interpreter,
 * or a cold one on a miss). pool is borrowed: it must outlive ex's runs; NULL turns it off.
 * Call before the first run. */
void exec_local_set_pool(struct exec *ex, struct sbx_pool *pool);

#endif
