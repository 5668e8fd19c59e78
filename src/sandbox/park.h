/* Parked sandboxes (internal to the sandbox library; the public face is pool.h): a sandbox
 * created up to the end of its setup with no user data, its init waiting for the take, and the
 * message that hands it one execution. Each parked sandbox serves exactly one execution and is
 * then destroyed; nothing is reused. */
#ifndef KILN_SANDBOX_PARK_H
#define KILN_SANDBOX_PARK_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox/sbx_int.h"

#define SBX_TAKE_MAGIC       0x6b696c6eu /* "kiln" */
#define SBX_TAKE_MAX_STEPS   4
#define SBX_TAKE_MAX_STRINGS 2048
#define SBX_TAKE_BLOB_MAX    (60 * 1024)

enum sbx_take_mode {
    SBX_TAKE_STEPS = 1,  /* run the steps as a cold init would (the interpreter is killed) */
    SBX_TAKE_INTERP = 2, /* blob = the arguments for the pre-started interpreter */
};

enum {
    SBX_TAKE_STOP = 1,      /* the step's stop_on_failure */
    SBX_TAKE_TO_STDERR = 2, /* the step's stdout_to_stderr */
};

/* The take, sent as one SOCK_SEQPACKET message with SCM_RIGHTS [workspace tree, stdin memfd?]. */
struct sbx_take_msg {
    uint32_t magic, mode;
    uint64_t ws_dev, ws_ino; /* what the workspace fd must be (fstat of the supervisor's dirfd) */
    int64_t file_size_bytes, open_files, nproc, cpu_s, data_bytes;
    uint32_t nsteps, nenv;
    uint32_t step_argc[SBX_TAKE_MAX_STEPS];
    uint32_t step_flags[SBX_TAKE_MAX_STEPS];
    uint32_t blob_len;
    /* STEPS: every step's argv strings, then the env strings; INTERP: the arguments. Each
     * NUL-terminated. */
    char blob[SBX_TAKE_BLOB_MAX];
};

/* A parked sandbox, owned by the pool until taken. */
struct sbx_parked {
    struct sbx_ctx *ctx;
    struct sbx_slot slot;         /* moved to the lease at take */
    struct sbx_limits lim;        /* the limits it was built with (tmp sizes are fixed from then) */
    const struct sbx_job *interp; /* borrowed from the pool kind; NULL = no interpreter */
    struct sbx_cg_run cg;
    bool cg_made;
    int pidfd, rep_r, out_r, err_r, ctl;
    long long created_ms; /* CLOCK_MONOTONIC */
};

/* The cloner (cloner.c): a helper process that clones parked sandboxes' inits in the caller's
 * stead, so that the caller's pages are not write-protected by every clone. Start it from the
 * thread that will own the sandboxes (their inits are that thread's children, CLONE_PARENT),
 * after everything a plan points to exists; those objects must outlive it. */
struct sbx_cloner;

/* Fork the cloner now. */
enum kiln_err sbx_cloner_start(struct sbx_cloner **out, struct errbuf *eb);

/* clone3(flags | CLONE_PARENT | CLONE_PIDFD [| CLONE_INTO_CGROUP of cgroup_fd ≥ 0]) of init with
 * plan (a park plan: plan->park non-NULL; its fds travel with the request) in the cloner: init's
 * pid, its pidfd in *pidfd; or -errno (the cloner's clone3() failed, or the cloner is gone: then
 * every later call fails at once with -ENOTCONN). Thread-safe. */
long sbx_cloner_clone(struct sbx_cloner *cl, uint64_t flags, int cgroup_fd,
                      const struct sbx_plan *plan, int *pidfd);

/* Stop and reap it. NULL is a no-op. */
void sbx_cloner_stop(struct sbx_cloner *cl);

/* Build a parked sandbox with the context's default limits; interp (borrowed, must outlive it)
 * is the pre-started interpreter's one-step job, or NULL; boot_path/boot_text a bootstrap file
 * written to /tmp for it first (NULL = none; borrowed); cl the cloner that makes its init (NULL,
 * or a cloner that failed: this thread clones it). Root only (KILN_ERR_UNAVAILABLE otherwise).
 * Blocks until init reports it is parked. */
enum kiln_err sbx_park_new(struct sbx_ctx *ctx, struct sbx_cloner *cl, const struct sbx_job *interp,
                           const char *boot_path, const char *boot_text, struct sbx_parked **out,
                           struct errbuf *eb);

/* Still usable: init alive and silent since it parked. */
bool sbx_park_alive(struct sbx_parked *p);

/* Kill, reap and remove it (cgroups; its slot if it still owns it). NULL is a no-op. */
void sbx_park_free(struct sbx_parked *p);

/* Hand the execution in: ws (with the sandbox's slot uid) bound at /mnt/data, then job run and
 * supervised like sbx_run(). interp_args/nargs non-NULL selects the interpreter mode. Consumes p:
 * freed before return, except when the interpreter reported its end and the answer was made from
 * the frozen sandbox (sbx_live_supervise()): then *rest gets it, for the caller to free with
 * sbx_park_free() off the answer's path (rest NULL: freed here). KILN_ERR_UNAVAILABLE before
 * anything was sent means the caller may still run the job cold. */
enum kiln_err sbx_park_take(struct sbx_parked *p, struct sbx_workspace *ws,
                            const struct sbx_job *job, const char *const *interp_args, size_t nargs,
                            struct sbx_result *res, struct sbx_parked **rest, struct errbuf *eb);

/* workspace.c: a workspace on a slot the caller holds (borrowed: not released by free). */
enum kiln_err sbx_workspace_new_on(struct sbx_ctx *ctx, long long size_mb,
                                   const struct sbx_slot *slot, struct sbx_workspace **out,
                                   struct errbuf *eb);

#endif
