/* The isolation library: run the steps of one execution in a sandbox created for it alone
 * (DESIGN.md "The sandbox"), with hard limits, and report exactly what happened.
 *
 * Shape (isolate's): the supervisor (this library, in the caller's process) → an init that is
 * PID 1 of fresh user/PID/mount/net/IPC/UTS/cgroup namespaces → the program. Killing init (or
 * the cgroup) kills everything. The workspace is the host side of /mnt/data: the caller fills it
 * before the run and walks it after, through the safe walker below.
 *
 * Thread safety: a struct sbx_ctx is created once and may be used by many threads at once
 * (sbx_run() is reentrant; each call takes its own uid slot). A workspace and a result belong to
 * one thread at a time. */
#ifndef KILN_SANDBOX_SANDBOX_H
#define KILN_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "util/err.h"

/* How an execution ended. The names are the API's `status` values. */
enum sbx_status {
    SBX_OK,           /* every step exited 0 */
    SBX_ERROR,        /* a step exited non-zero or died of a signal of its own */
    SBX_TIMEOUT,      /* wall-clock or CPU limit */
    SBX_OOM,          /* the memory cgroup killed it */
    SBX_OUTPUT_LIMIT, /* a file-size limit was hit (output caps only truncate) */
    SBX_KILLED,       /* cancelled by the caller (client gone, shutdown) */
};

/* "ok", "error", "timeout", "oom", "output_limit", "killed". */
const char *sbx_status_name(enum sbx_status st);

/* Limits of one execution; 0 in a field means "the library default". */
struct sbx_limits {
    long long wall_ms;      /* wall clock of the whole execution, compile steps included */
    long long cpu_ms;       /* CPU time of the whole execution */
    long long memory_mb;    /* memory including swap, for the whole sandbox */
    long long pids;         /* processes and threads */
    long long open_files;   /* RLIMIT_NOFILE */
    long long file_size_mb; /* RLIMIT_FSIZE */
    long long data_mb;      /* size of /mnt/data */
    long long tmp_mb;       /* size of /tmp */
    size_t stdout_max;      /* bytes kept of stdout before the truncation marker */
    size_t stderr_max;      /* bytes kept of stderr */
    long long cpu_quota;    /* CFS quota in us per 100000 us period (100000 = one CPU); 0 = none */
};

/* Process-wide options, from config at start-up. */
struct sbx_ctx_opts {
    const char *run_dir; /* host directory for slot roots and workspaces, e.g. /run/kiln */
    unsigned uid_base;   /* first host uid/gid of the slot range (root mode), e.g. 200000 */
    unsigned slots;      /* concurrent sandboxes at most (one host uid each) */
    struct sbx_limits defaults;
};

/* The process-wide sandbox context: cgroup parents, the uid slot allocator, the precompiled
 * seccomp filter, the runtime bind list, the /etc template. */
struct sbx_ctx;

/* Create the context (checks the host: namespaces, cgroups, Landlock ABI). Caller frees with
 * sbx_ctx_free(). On failure eb says what the host lacks. */
enum kiln_err sbx_ctx_new(struct sbx_ctx **out, const struct sbx_ctx_opts *opts, struct errbuf *eb);

/* Remove what crashed kiln processes left behind: cgroups named sbx-<pid>-<seq> and workspaces
 * <run_dir>/ws/<slot>-<pid>-<random> whose pid no longer exists (never a live process's, ours
 * or another kiln's). sbx_ctx_new() calls it once; callable again at any time. */
void sbx_ctx_recover(struct sbx_ctx *ctx);

/* Remove the cgroup parents and slot directories this context made. NULL is a no-op. */
void sbx_ctx_free(struct sbx_ctx *ctx);

/* The host side of /mnt/data for one execution (a size-capped tmpfs when root). */
struct sbx_workspace;

/* Create an empty workspace of at most size_mb MiB (0 = the data_mb default). It takes the uid
 * slot its runs will use (files put there must already belong to that uid), so it fails with
 * KILN_ERR_UNAVAILABLE when every slot is busy; the slot is held until sbx_workspace_free(),
 * which unmounts and removes the workspace without following anything the sandbox planted. A
 * workspace serves one run at a time. */
enum kiln_err sbx_workspace_new(struct sbx_ctx *ctx, long long size_mb, struct sbx_workspace **out,
                                struct errbuf *eb);
void sbx_workspace_free(struct sbx_workspace *ws);

/* Put a file at relpath (sub-directories created; no "..", no absolute path, no symlink
 * followed) with len bytes from buf, or the whole content of src_fd when buf is NULL. The file
 * belongs to the sandbox user, mode 0644, and its mtime is now. */
enum kiln_err sbx_workspace_put(struct sbx_workspace *ws, const char *relpath, const void *buf,
                                size_t len, int src_fd, struct errbuf *eb);

/* sbx_workspace_put() with the file's mtime set to mtime (seconds since the epoch; 0 = now). */
enum kiln_err sbx_workspace_put_at(struct sbx_workspace *ws, const char *relpath, const void *buf,
                                   size_t len, int src_fd, long long mtime, struct errbuf *eb);

/* Called once per regular file found by sbx_workspace_walk(): relpath is relative to /mnt/data,
 * fd is open read-only on the file (valid during the call only), st its fstat. Return non-zero to
 * stop the walk with that error. */
typedef enum kiln_err (*sbx_walk_fn)(void *arg, const char *relpath, int fd, const struct stat *st);

/* Walk the workspace after a run: recursively, at most max_depth levels and max_entries entries,
 * opening every entry with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|
 * RESOLVE_NO_XDEV) as the sandbox's uid. Only regular files with st_nlink == 1 reach fn;
 * symlinks, hardlinks, FIFOs, sockets and devices are skipped, never followed or opened.
 * max_depth 1 = the top level only; deeper directories and entries past max_entries are silently
 * not visited. Order is the directory's, not sorted. */
enum kiln_err sbx_workspace_walk(struct sbx_workspace *ws, unsigned max_depth, unsigned max_entries,
                                 sbx_walk_fn fn, void *arg, struct errbuf *eb);

/* One program run inside the sandbox. Steps run in order in the same sandbox; a step with
 * stop_on_failure that fails ends the execution (a compile error). */
struct sbx_step {
    const char *const *argv; /* argv[0] an absolute path inside the sandbox; NULL-terminated */
    bool stop_on_failure;
    bool stdout_to_stderr; /* a compiler's chatter belongs to stderr */
};

/* One execution. */
struct sbx_job {
    const struct sbx_step *steps;
    size_t nsteps;
    struct sbx_workspace *ws; /* bound read-write at /mnt/data, the working directory */
    const char *const *env;   /* the whole environment, NULL-terminated (allow-listed by lang/) */
    const void *stdin_data;   /* given to the last step's stdin; NULL = /dev/null */
    size_t stdin_len;
    struct sbx_limits limits; /* 0 fields take the context's defaults */
    int cancel_fd;            /* -1, or an fd that becomes readable to cancel (→ SBX_KILLED) */
};

/* What happened. Buffers are owned by the result; free with sbx_result_clear(). */
/* After an execution's answer, how long the work it leaves behind waits — killing and reaping
 * its sandbox, building the next warm one —, so that it does not compete for the CPUs with the
 * answer's last steps (the output files, the HTTP reply). Measured on this 2-CPU host: a paced
 * js console.log(1) 18-21 ms without, 10-12 ms with 30 ms (bench/README.md, stop 11). */
#define SBX_SETTLE_MS 20

struct sbx_result {
    enum sbx_status status;
    int exit_code; /* of the last step run; -1 when killed by a signal */
    int signal;    /* 0, or the signal that ended it */
    long long wall_ms, cpu_ms, memory_peak_kb;
    char *out; /* stdout, NUL-terminated, at most stdout_max bytes + the truncation marker */
    size_t out_len;
    bool out_truncated;
    char *err; /* stderr, same rules */
    size_t err_len;
    bool err_truncated;
    char note[256]; /* why a limit ended it, e.g. "Execution timed out after 30 s"; "" otherwise */
};

/* Run job in a fresh sandbox and fill res. Returns non-zero only when the sandbox could not be
 * built or supervised (a host problem); anything the program does is a result, not an error
 * (an argv[0] that cannot be executed is SBX_ERROR with exit code 127). Blocks the calling thread
 * until the sandbox is gone; init dies with that thread (PR_SET_PDEATHSIG). Unprivileged, the
 * calling process must be dumpable (it writes its child's /proc/<pid>/uid_map). */
enum kiln_err sbx_run(struct sbx_ctx *ctx, const struct sbx_job *job, struct sbx_result *res,
                      struct errbuf *eb);

/* Free the buffers of res and zero it. */
void sbx_result_clear(struct sbx_result *res);

/* The marker appended to truncated stdout/stderr. */
#define SBX_TRUNCATION_MARKER "\n[Output truncated - size limit exceeded]"

#endif
