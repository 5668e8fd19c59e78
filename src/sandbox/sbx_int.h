/* Internals of the sandbox library shared by its files: the context, the per-run plan handed to
 * the cloned child, the cgroup set of one run, and the helpers each concept file exports.
 *
 * Two worlds meet here. The supervisor side (ctx.c, sandbox.c, cgroup.c, seccomp.c, slots.c,
 * workspace.c) may allocate and use stdio. The child side (child.c, mounts.c, caps.c,
 * landlock.c) runs between clone and execve in a copy of a possibly multithreaded process: it
 * may only use raw system calls and stack memory, never malloc, stdio or glibc functions that
 * take locks or broadcast to threads (setresuid and setgroups do, so they are raw syscalls). */
#ifndef KILN_SANDBOX_SBX_INT_H
#define KILN_SANDBOX_SBX_INT_H

/* Host-wide directory of the uid-slot locks (root mode), shared by every kiln process. */
#define SBX_UID_LOCK_DIR "/run/kiln-uids"

#include <limits.h>
#include <linux/filter.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

/* The sandbox user inside every sandbox (the API promises uid 1000). */
#define SBX_INNER_UID 1000u
#define SBX_INNER_GID 1000u

/* Library defaults for sbx_limits fields left at 0. */
#define SBX_DEF_WALL_MS      30000LL
#define SBX_DEF_MEMORY_MB    512LL
#define SBX_DEF_PIDS         128LL
#define SBX_DEF_OPEN_FILES   256LL
#define SBX_DEF_FILE_SIZE_MB 64LL
#define SBX_DEF_DATA_MB      256LL
#define SBX_DEF_TMP_MB       256LL
#define SBX_DEF_STREAM_MAX   (64u * 1024u)

/* Period of the CPU-time check against the cgroup counter (isolate's 100 ms). */
#define SBX_TICK_MS 100

/* A host path the child may need, precomputed so that the child only copies bytes. */
#define SBX_PATH_MAX 512

/* One entry of the new root: a read-only bind of a host dir/file, or a copy of a host symlink. */
enum sbx_bind_kind {
    SBX_BIND_DIR,
    SBX_BIND_FILE,
    SBX_BIND_SYMLINK,
};

struct sbx_bind {
    enum sbx_bind_kind kind;
    char path[SBX_PATH_MAX];   /* the same absolute path on the host and inside */
    char target[SBX_PATH_MAX]; /* SBX_BIND_SYMLINK: the link's text */
};

/* The cgroup layout of the host, found once by sbx_cg_detect(). Each controller we use lives in
 * one v1 hierarchy or in the v2 tree; a NULL path means "not available". The parents are
 * <hierarchy>/<our own cgroup>/kiln, created by us. */
struct sbx_cg_host {
    char *v1_memory, *v1_pids, *v1_cpuacct; /* parent dirs in the v1 hierarchies */
    char *v1_cpu;                           /* v1 cpu controller (CFS quota), or NULL */
    bool v2_cpu;                            /* cpu.max in our v2 children */
    bool made_v1_cpu;
    char *v2;                /* parent dir in the v2 tree */
    bool v2_memory, v2_pids; /* the controller is enabled for our v2 children */
    bool v1_memsw;           /* memory.memsw.* exists (swap accounting) */
    bool made_v1_memory, made_v1_pids, made_v1_cpuacct, made_v2; /* we created the parent */
};

/* The cgroups of one run (all paths NULL when the host has none usable). */
struct sbx_cg_run {
    char *memory, *pids, *cpuacct, *v2;
    char *cpu;        /* v1 cpu group (quota), or NULL */
    int v2_fd;        /* O_PATH|O_DIRECTORY of the v2 group for CLONE_INTO_CGROUP, or -1 */
    bool mem_from_v2; /* memory accounting is read from the v2 group */
};

struct sbx_ctx {
    char *run_dir;
    char *root_dir;  /* <run_dir>/root: the mount point of every sandbox's new root */
    char *ws_dir;    /* <run_dir>/ws: workspaces */
    char *slots_dir; /* <run_dir>/slots: one lock file per uid slot */
    unsigned uid_base, slots;
    struct sbx_limits defaults;
    bool root;                   /* euid 0: per-slot uids, cgroups, tmpfs workspaces */
    unsigned host_uid, host_gid; /* unprivileged mode: what uid 1000 maps to */
    atomic_uint next_slot;       /* where the next slot search starts (spreads lock contention) */
    atomic_ullong run_seq;       /* numbers this process's cgroups */
    struct sbx_cg_host cg;
    struct sock_filter *bpf; /* precompiled seccomp program */
    unsigned short bpf_len;
    int landlock_abi; /* 0 = unavailable */
    int cap_last;
    struct sbx_bind *binds; /* top-level runtime entries and the /etc subset, host-checked */
    size_t nbinds;
    char etc_passwd[256], etc_group[128], etc_hosts[128], etc_nsswitch[128];
};

/* A uid slot, held by a lock on <run_dir>/slots/<n>.lock for as long as lock_fd is open. */
struct sbx_slot {
    unsigned n;
    unsigned uid, gid; /* host ids the sandbox user maps to */
    int lock_fd;       /* -1 in unprivileged mode (one shared uid, nothing to lock) */
};

struct sbx_workspace {
    struct sbx_ctx *ctx;
    char *path;   /* host path */
    int dirfd;    /* O_DIRECTORY fd of the workspace root, the anchor of every openat2 */
    bool mounted; /* a tmpfs of ours is mounted at path */
    struct sbx_slot slot;
};

/* Everything the child needs, computed by the supervisor before clone. Read-only in the child. */
struct sbx_plan {
    const struct sbx_ctx *ctx;
    const struct sbx_job *job;
    const char *ws_path; /* NULL: a fresh tmpfs at /mnt/data */
    char tmp_opts[64], shm_opts[64], data_opts[64];
    int sync_r;   /* the child blocks on this until maps and cgroups are in place */
    int report_w; /* records from init to the supervisor */
    int out_w, err_w;
    int stdin_fd; /* memfd with the job's stdin, or -1 */
    long long file_size_bytes, open_files, nproc, cpu_s, data_bytes;
    const char *extra_src; /* NULL, or a host directory bound read-only at extra_dst (zygote) */
    const char *extra_dst;
    /* Parked sandboxes (park.c): non-NULL means build everything but /mnt/data's content,
     * then wait on park->ctl_fd for the take. */
    const struct sbx_park_plan *park;
    /* A step that reports its end (a parked interpreter, SBX_DONE_FD): its filter is loaded
     * with a notification fd, sent over notify_sock (SCM_RIGHTS) to the supervisor before the
     * execve, both closed then. */
    bool send_notify;
    int notify_sock;
};

/* What init of a parked sandbox needs besides the plan (park.c, park_child.c). */
struct sbx_park_plan {
    /* sbx_park_child(), called through this pointer so that child.c does not link park_child.c
     * (the zygote's Python extension builds child.c alone). */
    void (*enter)(const struct sbx_plan *plan) __attribute__((noreturn));
    int ctl_fd; /* init's end of the SOCK_SEQPACKET pair the take message arrives on */
    /* The pre-started interpreter: its job (one step, its env) run confined before the take with
     * stdin the read end of interp_in[0]; NULL when none. */
    const struct sbx_job *interp;
    int interp_in[2];
    /* A file init writes before starting the interpreter (its bootstrap, e.g. node's -r
     * preload; the interpreter removes it): absolute path under /tmp and text, or NULL. */
    const char *boot_path, *boot_text;
};

/* Records init writes on the report pipe (each write is atomic: far below PIPE_BUF). */
enum sbx_rec_kind {
    SBX_REC_SETUP_FAIL = 1, /* stage = enum sbx_stage, err = errno */
    SBX_REC_EXEC_FAIL,      /* step, err = errno of execve */
    SBX_REC_STEP_DONE,      /* step, status = wait status */
    SBX_REC_PARKED,         /* a parked sandbox is built and waits for its take */
};

struct sbx_rec {
    int32_t kind, step, stage, status, err;
};

/* Setup stages, named in error messages (sbx_stage_name()). */
enum sbx_stage {
    SBX_ST_SYNC,
    SBX_ST_IDS,
    SBX_ST_CGROUPNS,
    SBX_ST_PRIVATE,
    SBX_ST_ROOT_TMPFS,
    SBX_ST_BIND,
    SBX_ST_ETC,
    SBX_ST_PROC,
    SBX_ST_DEV,
    SBX_ST_TMP,
    SBX_ST_DATA,
    SBX_ST_PIVOT,
    SBX_ST_NET,
    SBX_ST_CAPS,
    SBX_ST_NNP,
    SBX_ST_LANDLOCK,
    SBX_ST_FORK,
    SBX_ST_STDIO,
    SBX_ST_RLIMIT,
    SBX_ST_SECCOMP,
    SBX_ST_TAKE, /* receiving or checking the take of a parked sandbox */
    SBX_ST__COUNT
};

const char *sbx_stage_name(int stage);

/* ctx.c */
enum kiln_err sbx_limits_resolve(const struct sbx_ctx *ctx, const struct sbx_limits *in,
                                 struct sbx_limits *out);

/* slots.c: take a free slot (KILN_ERR_UNAVAILABLE when all are busy); release it. */
enum kiln_err sbx_slot_acquire(struct sbx_ctx *ctx, struct sbx_slot *out, struct errbuf *eb);
void sbx_slot_release(struct sbx_slot *slot);

/* cgroup.c */
enum kiln_err sbx_cg_detect(struct sbx_cg_host *cg, struct errbuf *eb);
void sbx_cg_host_free(struct sbx_cg_host *cg);
enum kiln_err sbx_cg_create(const struct sbx_cg_host *cg, unsigned long long seq,
                            const struct sbx_limits *lim, struct sbx_cg_run *run,
                            struct errbuf *eb);
enum kiln_err sbx_cg_attach(const struct sbx_cg_run *run, pid_t pid, struct errbuf *eb);
bool sbx_cg_kill(const struct sbx_cg_run *run);
/* Freeze every task of the group (v2 cgroup.freeze) and wait up to timeout_ms for the kernel to
 * report them frozen. false when there is no v2 group, or it did not freeze in time (the group
 * may then be freezing still: kill it). A frozen group stays so until killed (cgroup.kill ends
 * frozen tasks too) or removed. */
bool sbx_cg_freeze(const struct sbx_cg_run *run, long long timeout_ms);
/* How many threads the group's v2 cgroup holds (cgroup.threads), -1 when unknown. */
long long sbx_cg_threads(const struct sbx_cg_run *run);
/* How many processes the group's v2 cgroup holds (cgroup.procs), -1 when unknown. */
long long sbx_cg_procs(const struct sbx_cg_run *run);
long long sbx_cg_cpu_ns(const struct sbx_cg_run *run); /* -1 when unknown */
void sbx_cg_stats(const struct sbx_cg_run *run, long long *peak_kb, long long *oom_kills);
void sbx_cg_destroy(struct sbx_cg_run *run);
/* The tightest CFS quota (µs per 100 ms) of the v1 cpu groups above dir, its parent first, up
 * to the hierarchy's root; -1 when none has one. A child's quota may not exceed it. */
long long sbx_cg_v1_quota_ceiling(const char *dir);
/* Rewrite the memory, pids and CPU quota limits of a live group (a parked sandbox's at take). */
enum kiln_err sbx_cg_take_limits(const struct sbx_cg_host *cg, const struct sbx_cg_run *run,
                                 const struct sbx_limits *lim, struct errbuf *eb);
/* Remove the groups of dead kiln processes (names sbx-<pid>-<seq> whose pid is gone). */
void sbx_cg_recover(const struct sbx_cg_host *cg);

/* An fd number no process has ("KLND"): fchown(SBX_DONE_FD, status, -1) is how a sandbox's
 * runner (a zygote child's zygote.py, a warm node's boot script) says the program has ended with
 * exit status status — one call any language can make, blocking. The seccomp filter hands it to
 * the supervisor (SCMP_ACT_NOTIFY; zygote.c zrun_done(), sandbox.c), which trusts it only after
 * freezing the sandbox; where no supervisor listens (cold sandboxes) it fails with ENOSYS. */
#define SBX_DONE_FD 0x4b4c4e44
/* child.c (linked into the zygote's extension too): a message of len bytes over a socket with
 * one fd alongside (fd -1: none); flags add to MSG_NOSIGNAL. 0 or -errno. Raw syscalls only. */
int sbx_send_fd(int sock, const void *buf, size_t len, int fd, int flags);
/* The same with nfds fds (at most SBX_PASS_FDS_MAX) alongside. */
#define SBX_PASS_FDS_MAX 8
int sbx_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds, int flags);
/* One message into buf (at most len bytes) and up to max of the fds that came with it (the rest
 * closed; close-on-exec); flags add to MSG_CMSG_CLOEXEC. Bytes, 0 at EOF, -errno (-EMSGSIZE:
 * truncated). */
ssize_t sbx_recv_fds(int sock, void *buf, size_t len, int flags, int *fds, size_t max,
                     size_t *nfds);

/* True when fd is a seccomp filter's notification fd (the only fd a sandbox hands us). */
bool sbx_is_notify_fd(int fd);
/* How long a reporting sandbox may take to freeze (then it is killed instead). */
#define SBX_FREEZE_MS 500
/* One pending report of SBX_DONE_FD: the blocked call's id and the status it reported. */
struct sbx_done {
    uint64_t id;
    int status; /* 0..255 */
};
/* Take one notification from a filter's notification fd, polled by epoll set ep: true = a report
 * of the program's end (*d filled; the caller answers by freezing the sandbox, or refuses with
 * sbx_done_refuse()); false = nothing to take, another call (refused here), or an fd done with
 * (removed from ep). */
bool sbx_done_recv(int ep, int notify_fd, struct sbx_done *d);
/* Let the reporting call fail with EBADF (what fchown says of an fd nobody has): the runner then
 * exits by itself. */
void sbx_done_refuse(int notify_fd, uint64_t id);

/* seccomp.c: compile the filter once into ctx->bpf. */
enum kiln_err sbx_seccomp_build(struct sbx_ctx *ctx, struct errbuf *eb);

/* landlock.c */
int sbx_landlock_abi(void);
int sbx_landlock_apply(int abi); /* child side; 0 or -errno */
/* The same with read-write on data_dir instead of /mnt/data (a pre-started interpreter is
 * confined before the workspace is mounted, so its rule sits on the parent, /mnt). */
int sbx_landlock_apply_at(int abi, const char *data_dir);

/* caps.c: child side; 0 or -errno */
int sbx_caps_drop_all(int cap_last);

/* mounts.c: child side; build the new root and pivot into it. 0, or -errno with *stage set. */
int sbx_mounts_build(const struct sbx_plan *plan, int *stage);

/* child.c: the body of init; never returns. */
void sbx_child_init(const struct sbx_plan *plan) __attribute__((noreturn));

/* child.c, for park_child.c: report a record; run the steps of plan->job; run one step (never
 * returns); drop caps + no_new_privs + Landlock (data_dir as in sbx_landlock_apply_at()). */
void sbx_child_report(const struct sbx_plan *plan, int kind, int step, int stage, int status,
                      int err);
void sbx_child_run_steps(const struct sbx_plan *plan);
void sbx_child_run_step(const struct sbx_plan *plan, size_t idx) __attribute__((noreturn));
int sbx_child_confine(const struct sbx_plan *plan, const char *data_dir, int *stage);

/* park_child.c: init of a parked sandbox after its mounts; never returns. */
void sbx_park_child(const struct sbx_plan *plan) __attribute__((noreturn));

/* sandbox.c, for park.c: supervise a sandbox whose init is already running the job. Takes over
 * live's fds and cgroups (closed and removed before it returns), fills res like sbx_run().
 * Except when the interpreter reported its end and the sandbox was answered frozen (docs/
 * zygote.md "The end of an execution"): then live->pidfd and live->cg (cg_made) are handed back
 * still holding it, for the caller to kill, reap and remove off the answer's path. */
struct sbx_live {
    int pidfd, rep_r, out_r, err_r;
    int notify_fd;        /* the interpreter's seccomp notifications (SBX_DONE_FD), or -1 */
    struct sbx_cg_run cg; /* moved in; v2_fd -1 and paths NULL when none */
    bool cg_made;
    long long cpu_base_ns; /* cgroup CPU time spent before the execution began (parked) */
    long long t0_ms;       /* CLOCK_MONOTONIC ms when the execution began */
};
enum kiln_err sbx_live_supervise(const struct sbx_ctx *ctx, struct sbx_live *live,
                                 const struct sbx_job *job, struct sbx_result *res,
                                 struct errbuf *eb);
long long sbx_now_ms(void);

/* sandbox.c, for the zygote too: one captured stream of a run. At most max bytes are kept; the
 * rest is read and dropped, so a flooding program neither blocks on a full pipe nor grows our
 * memory. It runs on until its limits end it (the wall clock at worst). Zero it, then set fd
 * (non-blocking, owned) and max. */
struct sbx_stream {
    int fd;
    char *buf; /* owned; NULL once handed over by sbx_stream_finish() */
    size_t len, cap, max;
    bool truncated;
};
/* Read what is there (at most chunks reads, to stay fair to the other fds; -1: until EAGAIN or
 * EOF). Returns false at EOF or error: the fd is then closed and set to -1. */
bool sbx_stream_read(struct sbx_stream *s, int chunks);
/* Hand the buffer to the result as a new NUL-terminated string (*out, owned by the caller), the
 * truncation marker appended when truncated; s->buf is freed. */
void sbx_stream_finish(struct sbx_stream *s, char **out, size_t *out_len, bool *trunc);

/* Async-signal-safe helpers (child.c). */
size_t sbx_strlcpy(char *dst, const char *src, size_t size);
bool sbx_path_join(char *dst, size_t size, const char *a, const char *b);

/* Pieces of the cold path exported for the zygote's children (zchild.c), child side. */
int sbx_mounts_proc(void);                           /* a fresh /proc over /proc (masked) */
int sbx_mounts_scratch(const struct sbx_plan *plan); /* fresh /tmp and /dev/shm over the old */
int sbx_net_up(void);
int sbx_rlimits_apply(const struct sbx_plan *plan);

/* cgroup.c, for the zygote: move a running process into the run's groups (v1 and v2), and
 * change the limits of existing groups. */
enum kiln_err sbx_cg_attach_all(const struct sbx_cg_run *run, pid_t pid, struct errbuf *eb);
enum kiln_err sbx_cg_set_limits(const struct sbx_cg_run *run, const struct sbx_limits *lim,
                                bool memsw, struct errbuf *eb);

/* workspace.c: switch the calling thread's fsuid/fsgid (host-side I/O as the sandbox user). */
void sbx_fsid_enter(const struct sbx_workspace *ws, unsigned *old_uid, unsigned *old_gid);
void sbx_fsid_leave(unsigned old_uid, unsigned old_gid);

#endif
