/* The supervisor side of the Python zygotes (zygote.h): starting a zygote in a sandbox of its
 * own, forking children ahead of demand through it, handing a job to a child, supervising it
 * like sbx_run() supervises a cold sandbox, and restarting a zygote that died.
 *
 * A zygote is a cold-style sandbox (clone3 into fresh user/PID/mount/net/IPC/UTS/cgroup
 * namespaces, the same new root from sbx_mounts_build(), its own cgroups and uid slot) whose
 * init stays uid 0 of its user namespace with its capabilities there (host: the zygote's slot
 * uid, never root) and execs `python3 zygote.py MODULES...`. Its user namespace maps inside uid
 * 1000 + n to host slot n for every other slot, so a child can become any workspace's slot uid.
 * It never gets seccomp or Landlock itself (it must create namespaces and mount for its
 * children); it never runs user code. */
#include "sandbox/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/securebits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/zchild.h"
#include "util/selfexe.h"
#include "util/xmalloc.h"

/* zyg_wait_ready() stops waiting for a zygote that failed to start this many times in a row (a
 * broken install, a missing module): the manager keeps retrying with backoff, callers go cold. */
#define ZYG_WAIT_FAILURES 3

#ifndef KILN_PYEXT_DIR
#define KILN_PYEXT_DIR "/usr/lib/kiln/pyext"
#endif

/* Where the extension and zygote.py are when neither the options nor $KILN_PYEXT_DIR say: beside
 * the running executable (the build tree: build/kiln-server and build/pyext/), then where
 * `cmake --install` puts them (PREFIX/bin/ and PREFIX/lib/kiln/pyext/), then the build directory
 * this binary was compiled in. Returns buf or the compiled-in path. */
static const char *find_ext_dir(char *buf, size_t cap)
{
    static const char *const rel[] = {"pyext", "../lib/kiln/pyext"};
    char dir[PATH_MAX], probe[PATH_MAX + 32];

    if (selfexe_dir(dir, sizeof dir) != 0)
        return KILN_PYEXT_DIR;
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(probe, sizeof probe, "%s/%s/zygote.py", dir, rel[i]);
        if (access(probe, R_OK) == 0 && (size_t)snprintf(buf, cap, "%s/%s", dir, rel[i]) < cap)
            return buf;
    }
    return KILN_PYEXT_DIR;
}
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif

/* Where the zygote sees its code; its children detach it (they never see it). */
#define ZYG_EXT_INSIDE  SBX_ZYGOTE_EXT_DIR
#define ZYG_MAX_MODULES 64
#define ZYG_CMDLINE_PAD                                                                            \
    "--pad="                                                                                       \
    "............................................................................................" \
    "...."                                                                                         \
    "............................................................................................" \
    "...."                                                                                         \
    "............................................................................................" \
    "...."                                                                                         \
    "............................................................................................" \
    "...."                                                                                         \
    "............................................................................................" \
    "...."                                                                                         \
    "............................................................................................" \
    "...."                                                                                         \
    "............................................................................................" \
    "...."                                                                                         \
    "............................................................................................" \
    "...."
#define ZYG_READY_MS       120000 /* preloads on a loaded 2-core host: pandas+matplotlib ≈ 1-3 s */
#define ZYG_READY_SLICE_MS 100    /* how often a launch looks at zyg_stop() */
#define ZYG_FORK_MS        10000  /* a child answering HELLO and READY */
#define ZYG_EXIT_GRACE_MS  3000   /* the zygote's ZP_EXIT after the child died */
#define ZYG_MEMORY_MB      2048   /* the zygote's own cgroup (its children have their own) */
#define ZYG_PIDS           4096
/* A prepared (full) heavy child costs ~300 ms of CPU: one is forked only when the zygote served
 * no execution for this long, so that back-to-back executions never compete with it. */
#define ZYG_FULL_QUIET_MS 150
#define ZYG_REFILLERS     4 /* at most this many children forked ahead at once per zygote */

enum { ZK_LIGHT, ZK_HEAVY, ZK__COUNT };

/* A child forked ahead of demand: isolated, in its own cgroups, waiting for a job. */
struct zchild {
    pid_t pid; /* host pid */
    int pidfd, chan;
    struct sbx_cg_run cg;
    struct sbx_limits cg_lim; /* what its cgroups were created with */
    bool full;                /* forked with ZP_FORK_FULL (the libraries exercised too) */
    long long buried_ms;      /* when it went to the graveyard */
    struct zchild *next;      /* in the graveyard */
};

struct zygote {
    struct zyg_set *set;
    int kind;
    char *argv_buf;                        /* the module names, NUL-separated */
    const char *argv[ZYG_MAX_MODULES + 5]; /* python3 -s zygote.py --pad=... MODULES... */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool alive;
    unsigned generation;
    unsigned launch_failures; /* in a row; zyg_wait_ready() gives up after ZYG_WAIT_FAILURES */
    pid_t pid;
    int pidfd, ctl;
    struct sbx_cg_run cg;
    bool cg_made;
    struct sbx_slot slot;
    struct zchild **ready;
    unsigned nready;
    unsigned inflight;     /* children being forked ahead (counted against warm) */
    unsigned running;      /* children taken from ready and still executing */
    unsigned nfull;        /* full children ready or being forked (heavy zygote) */
    long long last_use_ms; /* when an execution last took a child of this zygote or ended */
    pthread_t helpers[ZYG_REFILLERS];
    unsigned nhelpers;
    struct zchild *graveyard; /* finished children whose cgroups the manager removes */
    pthread_mutex_t ctl_mu;   /* one ZP_FORK at a time on ctl */
};

struct zyg_set {
    struct sbx_ctx *ctx;
    unsigned warm;
    unsigned prepared;  /* of the heavy zygote's warm children, how many are full */
    unsigned refillers; /* children forked ahead at once per zygote (1..ZYG_REFILLERS) */
    char *ext_dir, *python;
    char **env, **env_heavy; /* env_heavy: env plus malloc tuning and the prefault switch */
    atomic_bool stopping;
    atomic_ullong forked, hits, misses, fallbacks, restarts, early;
    struct zygote z[ZK__COUNT];
    bool have[ZK__COUNT];
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- messages */

static int send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh = {0};
    ssize_t n;

    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfds > 0) {
        struct cmsghdr *c;
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

/* Receive one header-sized message within timeout_ms; *pid gets the sender's pid when the
 * kernel attached credentials (SO_PASSCRED). 0 ok, -ETIMEDOUT, -EPIPE at EOF, -errno. With fd,
 * *fd gets the first fd that came along (-1: none) for the caller to check; every other fd is
 * closed: nothing from a child is trusted as an fd unasked. */
static int recv_hdr(int sock, struct zp_hdr *h, pid_t *pid, int *fd, long long timeout_ms)
{
    char cbuf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {h, sizeof *h};
    struct msghdr mh = {0};
    struct pollfd pf = {sock, POLLIN, 0};
    ssize_t n;
    int prc;

    if (fd != NULL)
        *fd = -1;
    do {
        prc = poll(&pf, 1, (int)timeout_ms);
    } while (prc < 0 && errno == EINTR);
    if (prc == 0)
        return -ETIMEDOUT;
    if (prc < 0)
        return -errno;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return -EPIPE;
    if (n < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SCM_CREDENTIALS && pid != NULL) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof uc);
            *pid = uc.pid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k; i++) {
                int f;
                memcpy(&f, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof f);
                if (fd != NULL && *fd < 0)
                    *fd = f;
                else
                    close(f);
            }
        }
    }
    return n == (ssize_t)sizeof *h ? 0 : -EPROTO;
}

/* ---------------------------------------------------------------- the zygote's init */

/* What the zygote's init needs, prepared before clone (the child only copies). */
struct zinit {
    struct sbx_plan plan;
    int sync_r, ctl;
    const char *python;
    const char *const *argv;
    char *const *env;
};

static void __attribute__((noreturn)) zinit_main(const struct zinit *zi)
{
    int keep[3] = {2, zi->sync_r, zi->ctl};
    sigset_t none;
    char c;
    ssize_t n;
    int stage, fd;

    /* Close everything else (sorted: 2 < the two pipes, which are > 2). */
    if (keep[1] > keep[2]) {
        int t = keep[1];
        keep[1] = keep[2];
        keep[2] = t;
    }
    close_range(0, 1, 0);
    if (keep[1] > 3)
        close_range(3, (unsigned)keep[1] - 1, 0);
    if (keep[2] > keep[1] + 1)
        close_range((unsigned)keep[1] + 1, (unsigned)keep[2] - 1, 0);
    close_range((unsigned)keep[2] + 1, ~0U, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    do {
        n = read(zi->sync_r, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(127);
    close(zi->sync_r);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* uid 0 of our user namespace (host: the zygote's slot uid), keeping the capabilities we
     * hold in it: the zygote creates namespaces and mounts for its children. */
    if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP, 0, 0, 0) < 0 ||
        syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, 0, 0, 0) < 0 ||
        syscall(SYS_setresuid, 0, 0, 0) < 0 || prctl(PR_SET_SECUREBITS, 0, 0, 0, 0) < 0)
        _exit(120);
    if (unshare(CLONE_NEWCGROUP) < 0)
        _exit(121);
    if (sbx_mounts_build(&zi->plan, &stage) < 0)
        _exit(122);
    if (sbx_net_up() < 0)
        _exit(123);
    sethostname("sandbox", 7);
    /* 0 and 1 are closed: this open gets 0 (no O_CLOEXEC, it must survive the exec). */
    fd = open("/dev/null", O_RDWR);
    if (fd < 0 || (fd != 0 && dup2(fd, 0) < 0) || dup2(fd, 1) < 0)
        _exit(124);
    if (zi->ctl == 3) {
        fcntl(3, F_SETFD, 0);
    } else if (dup2(zi->ctl, 3) < 0) {
        _exit(125);
    }
    if (chdir("/") < 0)
        _exit(126);
    execve(zi->python, (char *const *)zi->argv, zi->env);
    _exit(127);
}

static enum kiln_err write_map(pid_t pid, const char *file, const char *text, struct errbuf *eb)
{
    char path[64];
    size_t len = strlen(text);
    int fd;
    bool ok;

    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errbuf_set(eb, KILN_ERR_IO, "open %s: %s", path, strerror(errno));
    ok = write(fd, text, len) == (ssize_t)len;
    if (!ok)
        errbuf_set(eb, KILN_ERR_IO, "write %s: %s", path, strerror(errno));
    close(fd);
    return ok ? KILN_OK : KILN_ERR_IO;
}

/* 0 → the zygote's slot; every other slot uid to itself (the kernel wants disjoint extents, so
 * the zygote's own slot is cut out of the range). */
static void build_map(const struct sbx_ctx *ctx, const struct sbx_slot *zs, char *buf, size_t size)
{
    size_t o = 0;
    unsigned z = zs->n;

    o += (size_t)snprintf(buf + o, size - o, "0 %u 1\n", zs->uid);
    if (z > 0)
        o += (size_t)snprintf(buf + o, size - o, "%u %u %u\n", ctx->uid_base, ctx->uid_base, z);
    if (z + 1 < ctx->slots)
        snprintf(buf + o, size - o, "%u %u %u\n", ctx->uid_base + z + 1, ctx->uid_base + z + 1,
                 ctx->slots - z - 1);
}

static void zygote_kill_locked(struct zygote *z)
{
    if (z->cg_made)
        sbx_cg_kill(&z->cg);
    if (z->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, z->pidfd, SIGKILL, NULL, 0);
}

/* Reap and clean up a dead (or killed) zygote. Called by the manager thread only. */
static void zygote_cleanup(struct zygote *z)
{
    siginfo_t si;

    pthread_mutex_lock(&z->mu);
    z->alive = false;
    zygote_kill_locked(z);
    pthread_mutex_unlock(&z->mu);
    if (z->pidfd >= 0) {
        while (syscall(SYS_waitid, P_PIDFD, z->pidfd, &si, WEXITED | __WALL, NULL) < 0 &&
               errno == EINTR)
            ;
        close(z->pidfd);
    }
    /* a refiller or a miss may be about to send ZP_FORK on ctl: never under a closed number */
    pthread_mutex_lock(&z->ctl_mu);
    pthread_mutex_lock(&z->mu);
    if (z->ctl >= 0)
        close(z->ctl);
    z->ctl = -1;
    pthread_mutex_unlock(&z->mu);
    pthread_mutex_unlock(&z->ctl_mu);
    if (z->cg_made)
        sbx_cg_destroy(&z->cg);
    sbx_slot_release(&z->slot);
    z->pidfd = z->ctl = -1;
    z->cg_made = false;
    z->pid = 0;
}

static enum kiln_err zygote_launch(struct zygote *z, struct errbuf *eb)
{
    struct zyg_set *zs = z->set;
    struct sbx_ctx *ctx = zs->ctx;
    struct sbx_limits zl = {0}, lim;
    struct zinit zi;
    struct clone_args args;
    int sync_p[2] = {-1, -1}, sv[2] = {-1, -1};
    char map[256];
    enum kiln_err err;
    struct zp_hdr h;
    long pid;
    int rc;

    z->pidfd = z->ctl = -1;
    z->slot.lock_fd = -1;
    err = sbx_slot_acquire(ctx, &z->slot, eb);
    if (err)
        return err;
    zl.memory_mb = ZYG_MEMORY_MB;
    zl.pids = ZYG_PIDS;
    sbx_limits_resolve(ctx, &zl, &lim);
    err = sbx_cg_create(&ctx->cg, atomic_fetch_add(&ctx->run_seq, 1), &lim, &z->cg, eb);
    if (err)
        goto fail;
    z->cg_made = true;
    if (pipe2(sync_p, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "pipe/socketpair: %s", strerror(errno));
        goto fail;
    }
    memset(&zi, 0, sizeof zi);
    zi.plan.ctx = ctx;
    snprintf(zi.plan.tmp_opts, sizeof zi.plan.tmp_opts, "size=%lldm,nr_inodes=65536,mode=1777",
             lim.tmp_mb);
    snprintf(zi.plan.shm_opts, sizeof zi.plan.shm_opts, "size=1m,nr_inodes=64,mode=1777");
    snprintf(zi.plan.data_opts, sizeof zi.plan.data_opts, "size=1m,nr_inodes=64,mode=0755");
    zi.plan.extra_src = zs->ext_dir;
    zi.plan.extra_dst = ZYG_EXT_INSIDE;
    zi.sync_r = sync_p[0];
    zi.ctl = sv[1];
    zi.python = zs->python;
    zi.argv = z->argv;
    zi.env = z->kind == ZK_HEAVY ? zs->env_heavy : zs->env;

    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                 CLONE_NEWUTS | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = (uint64_t)(uintptr_t)&z->pidfd;
    if (z->cg.v2_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)z->cg.v2_fd;
    }
    pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        zinit_main(&zi);
    if (pid < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "clone3 (zygote): %s", strerror(errno));
        goto fail;
    }
    z->pid = (pid_t)pid;
    close(sync_p[0]);
    close(sv[1]);
    sync_p[0] = sv[1] = -1;
    z->ctl = sv[0];
    sv[0] = -1;
    build_map(ctx, &z->slot, map, sizeof map);
    err = write_map(z->pid, "uid_map", map, eb);
    if (!err)
        err = write_map(z->pid, "gid_map", map, eb);
    if (!err)
        err = sbx_cg_attach(&z->cg, z->pid, eb);
    if (!err && write(sync_p[1], "g", 1) != 1)
        err = errbuf_set(eb, KILN_ERR_INTERNAL, "cannot wake the zygote");
    if (err)
        goto fail;
    {
        /* The seccomp filter every child loads last, compiled once by the context. */
        size_t blen = (size_t)ctx->bpf_len * sizeof *ctx->bpf;
        char *msg = xmalloc(sizeof(struct zp_init) + blen);
        struct zp_init in = {{ZP_INIT, 0, 0}, ctx->landlock_abi, ctx->cap_last, ctx->bpf_len};
        memcpy(msg, &in, sizeof in);
        memcpy(msg + sizeof in, ctx->bpf, blen);
        rc = send_fds(z->ctl, msg, sizeof in + blen, NULL, 0);
        free(msg);
        if (rc < 0) {
            err = errbuf_set(eb, KILN_ERR_IO, "cannot initialise the zygote");
            goto fail;
        }
    }
    /* Wait for READY in slices, so that zyg_stop() during a slow preload (seconds on a loaded
     * host) is not held up until the imports finish. */
    for (long long waited = 0;; waited += ZYG_READY_SLICE_MS) {
        rc = recv_hdr(z->ctl, &h, NULL, NULL, ZYG_READY_SLICE_MS);
        if (rc != -ETIMEDOUT || waited >= ZYG_READY_MS || atomic_load(&z->set->stopping))
            break;
    }
    if (rc < 0 || h.kind != ZP_READY) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "the zygote did not start (%s)",
                         rc < 0 ? strerror(-rc) : "protocol");
        goto fail;
    }
    close(sync_p[1]);
    pthread_mutex_lock(&z->mu);
    z->alive = true;
    z->generation++;
    pthread_cond_broadcast(&z->cv); /* the refillers */
    pthread_mutex_unlock(&z->mu);
    return KILN_OK;
fail:
    if (sync_p[0] >= 0)
        close(sync_p[0]);
    if (sync_p[1] >= 0)
        close(sync_p[1]);
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    zygote_cleanup(z);
    return err ? err : KILN_ERR_INTERNAL;
}

/* ---------------------------------------------------------------- children */

static void child_discard(struct zchild *c)
{
    struct pollfd pf;

    if (c == NULL)
        return;
    sbx_cg_kill(&c->cg);
    if (c->pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        pf.fd = c->pidfd;
        pf.events = POLLIN;
        poll(&pf, 1, 2000);
        close(c->pidfd);
    }
    if (c->chan >= 0)
        close(c->chan);
    sbx_cg_destroy(&c->cg);
    free(c);
}

/* After a run: hand the child to the manager, which kills what is left SBX_SETTLE_MS later
 * (a frozen child costs nothing meanwhile; its teardown would compete with the answer's last
 * steps) and removes its cgroups (rmdir of a v1 memory group waits for the kernel to finish
 * with the dead tasks): the caller has its result at once. */
static void child_bury(struct zygote *z, struct zchild *c)
{
    c->buried_ms = now_ms();
    pthread_mutex_lock(&z->mu);
    c->next = z->graveyard;
    z->graveyard = c;
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
}

/* Under z->mu: ms until the graveyard's next child is due (0: now), -1 when it is empty. */
static long long graveyard_due_ms(const struct zygote *z)
{
    long long due = -1, now = now_ms();

    for (const struct zchild *c = z->graveyard; c != NULL; c = c->next) {
        long long left = c->buried_ms + SBX_SETTLE_MS - now;
        left = left < 0 ? 0 : left;
        if (due < 0 || left < due)
            due = left;
    }
    return due;
}

/* Discard the children buried SBX_SETTLE_MS ago or earlier (all: every one). */
static void empty_graveyard(struct zygote *z, bool all)
{
    struct zchild *c, *keep = NULL, *due = NULL;
    long long now = now_ms();

    pthread_mutex_lock(&z->mu);
    c = z->graveyard;
    while (c != NULL) {
        struct zchild *next = c->next;
        struct zchild **to = all || now - c->buried_ms >= SBX_SETTLE_MS ? &due : &keep;
        c->next = *to;
        *to = c;
        c = next;
    }
    z->graveyard = keep;
    pthread_mutex_unlock(&z->mu);
    while (due != NULL) {
        struct zchild *next = due->next;
        child_discard(due);
        due = next;
    }
}

/* Fork one child through z and bring it to "isolated, waiting". ahead: forked ahead of demand,
 * so it rehearses an execution before it reports ready (zygote.py _prepare); a child forked for
 * a waiting request skips that (the rehearsal only pays off ahead of the request). */
static enum kiln_err child_fork(struct zygote *z, bool ahead, bool full, struct zchild **out,
                                struct errbuf *eb)
{
    struct zyg_set *zs = z->set;
    struct sbx_limits lim, none = {0};
    struct zchild *c = xcalloc(1, sizeof *c);
    struct zp_hdr h = {ZP_FORK, (ahead ? 0 : ZP_FORK_NOW) | (full ? ZP_FORK_FULL : 0), 0};
    int sv[2] = {-1, -1}, one = 1, rc, ctl;
    pid_t pid = 0;
    enum kiln_err err;

    *out = NULL;
    c->full = full;
    c->pidfd = c->chan = -1;
    c->cg.v2_fd = -1;
    sbx_limits_resolve(zs->ctx, &none, &lim);
    c->cg_lim = lim;
    err = sbx_cg_create(&zs->ctx->cg, atomic_fetch_add(&zs->ctx->run_seq, 1), &lim, &c->cg, eb);
    if (err)
        goto fail;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
        setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "socketpair: %s", strerror(errno));
        goto fail;
    }
    c->chan = sv[0];
    pthread_mutex_lock(&z->ctl_mu);
    pthread_mutex_lock(&z->mu);
    ctl = z->alive ? z->ctl : -1;
    pthread_mutex_unlock(&z->mu);
    rc = ctl >= 0 ? send_fds(ctl, &h, sizeof h, &sv[1], 1) : -1;
    pthread_mutex_unlock(&z->ctl_mu);
    close(sv[1]);
    if (rc < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "the zygote is not running");
        goto fail;
    }
    /* HELLO carries the child's pid as we see it (the kernel translates it into our PID
     * namespace); the child is blocked and unreaped, so the pid cannot be recycled before we
     * hold a pidfd. */
    rc = recv_hdr(c->chan, &h, &pid, NULL, ZYG_FORK_MS);
    if (rc < 0 || h.kind != ZP_HELLO || pid <= 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "zygote fork failed (%s, stage %s: %s)",
                         rc < 0 ? strerror(-rc) : "no hello", sbx_stage_name(h.a), strerror(h.b));
        goto fail;
    }
    c->pid = pid;
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (c->pidfd < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "pidfd_open: %s", strerror(errno));
        goto fail;
    }
    err = sbx_cg_attach_all(&c->cg, pid, eb);
    if (err)
        goto fail;
    h.kind = ZP_GO;
    if (send_fds(c->chan, &h, sizeof h, NULL, 0) < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "cannot wake the zygote child");
        goto fail;
    }
    rc = recv_hdr(c->chan, &h, NULL, NULL, ZYG_FORK_MS);
    if (rc < 0 || h.kind != ZP_READY) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "zygote child setup failed while %s: %s",
                         rc < 0 ? "starting" : sbx_stage_name(h.a),
                         rc < 0 ? strerror(-rc) : strerror(h.b));
        goto fail;
    }
    atomic_fetch_add(&zs->forked, 1);
    *out = c;
    return KILN_OK;
fail:
    child_discard(c);
    return err ? err : KILN_ERR_INTERNAL;
}

static bool zygote_dead(struct zygote *z)
{
    struct pollfd pf = {z->pidfd, POLLIN, 0};
    return z->pidfd < 0 || poll(&pf, 1, 0) > 0;
}

static struct zchild *take_ready(struct zygote *z)
{
    struct zchild *c = NULL;

    pthread_mutex_lock(&z->mu);
    z->last_use_ms = now_ms();
    if (z->alive && z->nready > 0 && !zygote_dead(z)) {
        /* a full child first: whatever goes to the heavy zygote likely uses its libraries */
        for (unsigned i = 0; i + 1 < z->nready; i++)
            if (z->ready[i]->full) {
                c = z->ready[i];
                z->ready[i] = z->ready[z->nready - 1];
                z->ready[z->nready - 1] = c;
                break;
            }
        c = z->ready[--z->nready];
        z->nfull -= c->full ? 1 : 0;
        z->running++;
    }
    pthread_cond_broadcast(&z->cv); /* the manager refills */
    pthread_mutex_unlock(&z->mu);
    return c;
}

/* ---------------------------------------------------------------- the manager thread */

static void drop_ready(struct zygote *z)
{
    struct zchild **list;
    unsigned n;

    pthread_mutex_lock(&z->mu);
    list = z->ready;
    n = z->nready;
    for (unsigned i = 0; i < n; i++)
        z->nfull -= list[i]->full ? 1 : 0;
    z->nready = 0;
    z->ready = xcalloc(z->set->warm + 1, sizeof *z->ready);
    pthread_mutex_unlock(&z->mu);
    for (unsigned i = 0; i < n; i++)
        child_discard(list[i]);
    free(list);
}

/* Under z->mu: whether to fork a child ahead now. Short of warm ones, but while a child taken
 * from this pool is still executing only when none is ready or coming: a refill (the zygote's
 * fork, the child's isolation and rehearsal: ~20 ms of CPU) would compete with that execution
 * for the CPUs and the zygote (which reports its exit status), and the ready ones serve the
 * next request meanwhile. */
static bool refill_wanted(const struct zygote *z)
{
    unsigned n = z->nready + z->inflight;

    return n < z->set->warm &&
           (n == 0 || (z->running == 0 && now_ms() - z->last_use_ms >= SBX_SETTLE_MS));
}

/* Under z->mu: whether the next child forked ahead is to be a full one (PY_PREPARED_HEAVY). */
static bool full_wanted(const struct zygote *z)
{
    return z->kind == ZK_HEAVY && z->nfull < z->set->prepared &&
           now_ms() - z->last_use_ms >= ZYG_FULL_QUIET_MS;
}

/* Under z->mu: when the pool is full of plain children but a full one is wanted and the zygote
 * is quiet, take a plain one out (returned, for the caller to discard outside the lock): the
 * refill that follows forks a full one. NULL when there is nothing to swap. */
static struct zchild *swap_for_full(struct zygote *z)
{
    struct zchild *c;

    if (!full_wanted(z) || z->inflight > 0 || z->running > 0 || z->nready < z->set->warm)
        return NULL;
    for (unsigned i = 0; i < z->nready; i++) {
        if (z->ready[i]->full)
            continue;
        c = z->ready[i];
        z->ready[i] = z->ready[--z->nready];
        return c;
    }
    return NULL;
}

/* Fork one child ahead of demand (the caller counted it in z->inflight) and park it ready. */
static void refill_one(struct zygote *z)
{
    struct zyg_set *zs = z->set;
    struct errbuf eb = {{0}};
    struct zchild *c = NULL;
    enum kiln_err fe;
    bool full;

    pthread_mutex_lock(&z->mu);
    full = full_wanted(z);
    z->nfull += full ? 1 : 0;
    pthread_mutex_unlock(&z->mu);
    fe = child_fork(z, true, full, &c, &eb);
    pthread_mutex_lock(&z->mu);
    z->inflight--;
    if (fe == KILN_OK && z->nready < zs->warm && z->alive && !atomic_load(&zs->stopping)) {
        z->ready[z->nready++] = c;
        c = NULL;
    } else {
        z->nfull -= full ? 1 : 0;
    }
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
    child_discard(c);
    if (fe != KILN_OK) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* A refiller besides the manager: forks children ahead while the zygote is alive and short of
 * warm ones (a child's fork, isolation and rehearsal are mostly waiting on one core: several
 * at once refill a drained pool faster). */
static void *refiller(void *arg)
{
    struct zygote *z = arg;
    struct zyg_set *zs = z->set;

    pthread_mutex_lock(&z->mu);
    while (!atomic_load(&zs->stopping)) {
        if (!z->alive || !refill_wanted(z)) {
            pthread_cond_wait(&z->cv, &z->mu);
            continue;
        }
        z->inflight++;
        pthread_mutex_unlock(&z->mu);
        refill_one(z);
        pthread_mutex_lock(&z->mu);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

static void *manager(void *arg)
{
    struct zygote *z = arg;
    struct zyg_set *zs = z->set;
    long long backoff = 0;
    bool started_once = false;

    while (!atomic_load(&zs->stopping)) {
        struct errbuf eb = {{0}};
        long long due;
        bool want;

        empty_graveyard(z, false);
        if (!z->alive) {
            if (backoff > 0) {
                struct timespec ts = {backoff / 1000, (backoff % 1000) * 1000000};
                nanosleep(&ts, NULL);
            }
            if (zygote_launch(z, &eb) != KILN_OK) {
                if (!atomic_load(&zs->stopping))
                    fprintf(stderr, "kiln: zygote %d: %s\n", z->kind, eb.msg);
                pthread_mutex_lock(&z->mu);
                z->launch_failures++;
                pthread_mutex_unlock(&z->mu);
                backoff = backoff == 0 ? 200 : backoff * 2 > 10000 ? 10000 : backoff * 2;
                continue;
            }
            if (started_once)
                atomic_fetch_add(&zs->restarts, 1);
            started_once = true;
            pthread_mutex_lock(&z->mu);
            z->launch_failures = 0;
            pthread_mutex_unlock(&z->mu);
            backoff = 0;
            continue;
        }
        if (zygote_dead(z)) {
            drop_ready(z);
            zygote_cleanup(z);
            continue;
        }
        pthread_mutex_lock(&z->mu);
        {
            struct zchild *plain = swap_for_full(z);
            if (plain != NULL) {
                pthread_mutex_unlock(&z->mu);
                child_discard(plain);
                continue;
            }
        }
        want = refill_wanted(z);
        due = graveyard_due_ms(z);
        if (!want && due != 0) {
            /* wake for the next due burial, or when a refill's settling time is over */
            long long wait = 200, settle = z->last_use_ms + SBX_SETTLE_MS - now_ms();
            struct timespec ts;
            if (due > 0 && due < wait)
                wait = due;
            if (settle > 0 && settle < wait)
                wait = settle;
            pthread_cond_broadcast(&z->cv);
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += wait * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            if (!atomic_load(&zs->stopping))
                pthread_cond_timedwait(&z->cv, &z->mu, &ts);
            pthread_mutex_unlock(&z->mu);
            continue;
        }
        if (!want) { /* nothing to fork now: bury the dead first (top of the loop) */
            pthread_mutex_unlock(&z->mu);
            continue;
        }
        z->inflight++;
        pthread_mutex_unlock(&z->mu);
        refill_one(z);
    }
    drop_ready(z);
    empty_graveyard(z, true);
    if (z->pidfd >= 0 || z->cg_made)
        zygote_cleanup(z);
    return NULL;
}

/* ---------------------------------------------------------------- one execution */

/* The job as a ZP_JOB message: argv[1:] then the environment. NULL when too big. */
static char *job_message(const struct sbx_job *job, const struct zp_job *head, size_t *len)
{
    const char *const *argv = job->steps[0].argv + 1;
    size_t total = sizeof *head, o;
    struct zp_job j = *head;
    char *msg;

    j.argc = j.envc = 0;
    for (size_t i = 0; argv[i] != NULL; i++, j.argc++)
        total += strlen(argv[i]) + 1;
    for (size_t i = 0; job->env != NULL && job->env[i] != NULL; i++, j.envc++)
        total += strlen(job->env[i]) + 1;
    if (total > ZP_MSG_MAX)
        return NULL;
    j.strlen = (uint32_t)(total - sizeof j);
    msg = xmalloc(total);
    o = sizeof j;
    for (size_t i = 0; argv[i] != NULL; i++) {
        size_t l = strlen(argv[i]) + 1;
        memcpy(msg + o, argv[i], l);
        o += l;
    }
    for (size_t i = 0; job->env != NULL && job->env[i] != NULL; i++) {
        size_t l = strlen(job->env[i]) + 1;
        memcpy(msg + o, job->env[i], l);
        o += l;
    }
    memcpy(msg, &j, sizeof j);
    *len = total;
    return msg;
}

static int make_stdin(const struct sbx_job *job)
{
    const char *p = job->stdin_data;
    size_t left = job->stdin_len;
    int fd = memfd_create("kiln-stdin", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0)
        return -1;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    return fd;
}

enum { T_PIDFD, T_OUT, T_ERR, T_CHAN, T_WALL, T_TICK, T_CANCEL, T_DONE };

struct zrun {
    struct sbx_stream out, err;
    int ep, wall_fd, tick_fd;
    int notify_fd; /* the child's seccomp notifications (SBX_DONE_FD), or -1 */
    bool dead, have_status, setup_failed, chan_eof, killed, started;
    bool wall_timeout, cpu_timeout, cancelled;
    bool frozen; /* answered at SBX_DONE_FD: the child's cgroup is frozen, not yet dead */
    int status, fail_stage, fail_err;
};

static void zrun_kill(struct zrun *r, struct zchild *c)
{
    if (r->killed)
        return;
    r->killed = true;
    sbx_cg_kill(&c->cg);
    syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
}

static void zrun_chan(struct zrun *r, struct zchild *c)
{
    struct zp_hdr h;
    int fd = -1, rc = recv_hdr(c->chan, &h, NULL, &fd, 0);

    if (rc == -EPIPE || (rc < 0 && rc != -EAGAIN && rc != -ETIMEDOUT)) {
        r->chan_eof = true;
        return;
    }
    if (rc < 0)
        return;
    if (h.kind == ZP_STARTED) {
        r->started = true;
        if (fd >= 0 && r->notify_fd < 0 && sbx_is_notify_fd(fd)) {
            /* the only fd a child may send: its filter's, with ZP_STARTED (our code still) */
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = T_DONE};
            r->notify_fd = fd;
            fd = -1;
            fcntl(r->notify_fd, F_SETFL, O_NONBLOCK);
            if (epoll_ctl(r->ep, EPOLL_CTL_ADD, r->notify_fd, &ev) < 0) {
                close(r->notify_fd);
                r->notify_fd = -1;
            }
        }
    } else if (h.kind == ZP_EXIT) {
        r->status = h.a;
        r->have_status = true;
    } else if (h.kind == ZP_FAIL && !r->have_status) {
        r->setup_failed = true;
        r->fail_stage = h.a;
        r->fail_err = h.b;
    }
    if (fd >= 0)
        close(fd);
}

/* A process of the sandbox called fchown(SBX_DONE_FD, code, -1): the runner after the program,
 * or the program itself — anything in the sandbox can, so it is only believed once the cgroup
 * is frozen: from then on nothing of the sandbox runs, its output and workspace are final, and
 * the answer need not wait for the child's teardown (child_bury hands it to the manager, which
 * kills the frozen group SBX_SETTLE_MS later and reaps it). Only a sandbox down to one thread, the
 * caller, is answered so: one with processes or threads left is killed and waited for, as when the
 * program exits. The status is code either way: a program that reports itself only ends earlier. A
 * report that is not taken is refused and the child exits by itself. */
static void zrun_done(struct zrun *r, struct zchild *c)
{
    struct sbx_done d;

    if (!sbx_done_recv(r->ep, r->notify_fd, &d))
        return;
    if (r->killed || r->have_status) {
        sbx_done_refuse(r->notify_fd, d.id);
        return;
    }
    if (sbx_cg_freeze(&c->cg, SBX_FREEZE_MS) && sbx_cg_threads(&c->cg) == 1)
        r->frozen = true;
    else
        zrun_kill(r, c);
    r->status = d.status << 8; /* as W_EXITCODE(status, 0) */
    r->have_status = true;
}

static int ep_add(int ep, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return fd < 0 ? 0 : epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int arm(int fd, long long first_ms, long long every_ms)
{
    struct itimerspec its = {{every_ms / 1000, (every_ms % 1000) * 1000000},
                             {first_ms / 1000, (first_ms % 1000) * 1000000}};
    return timerfd_settime(fd, 0, &its, NULL);
}

/* The statuses of sandbox.c's classify(), for a single step. */
static void zclassify(const struct zrun *r, const struct sbx_limits *lim, long long oom_kills,
                      long long cpu_ms, struct sbx_result *res)
{
    int st = r->status;
    bool signaled = r->have_status && WIFSIGNALED(st);
    int sig = signaled ? WTERMSIG(st) : 0;
    bool failed = !r->have_status || !WIFEXITED(st) || WEXITSTATUS(st) != 0;

    res->exit_code = !r->have_status || signaled ? -1 : WEXITSTATUS(st);
    res->signal = !r->have_status ? SIGKILL : sig;
    if (r->cancelled) {
        res->status = SBX_KILLED;
        snprintf(res->note, sizeof res->note, "Execution cancelled");
    } else if (r->wall_timeout) {
        res->status = SBX_TIMEOUT;
        snprintf(res->note, sizeof res->note, "Execution timed out after %g s",
                 (double)lim->wall_ms / 1000.0);
    } else if (r->cpu_timeout || sig == SIGXCPU ||
               (sig == SIGKILL && lim->cpu_ms > 0 && cpu_ms >= lim->cpu_ms + 1000)) {
        res->status = SBX_TIMEOUT;
        snprintf(res->note, sizeof res->note, "CPU time limit of %g s exceeded",
                 (double)lim->cpu_ms / 1000.0);
    } else if (oom_kills > 0) {
        /* As sandbox.c: any process killed by the memory cgroup means the limit was hit. */
        res->status = SBX_OOM;
        snprintf(res->note, sizeof res->note, "Memory limit of %lld MiB exceeded", lim->memory_mb);
    } else if (sig == SIGXFSZ ||
               (r->have_status && !signaled && WEXITSTATUS(st) == 128 + SIGXFSZ)) {
        res->status = SBX_OUTPUT_LIMIT;
        snprintf(res->note, sizeof res->note, "File size limit of %lld MiB exceeded",
                 lim->file_size_mb);
    } else {
        res->status = failed ? SBX_ERROR : SBX_OK;
    }
}

/* Hand job to c and supervise it. KILN_ERR_UNAVAILABLE when the child failed before the
 * program started (the caller falls back to a cold sandbox). Consumes c. */
static enum kiln_err child_run(struct zygote *z, struct zchild *c, const struct sbx_job *job,
                               struct sbx_result *res, struct errbuf *eb)
{
    struct zyg_set *zs = z->set;
    struct sbx_ctx *ctx = zs->ctx;
    struct sbx_limits lim;
    struct zp_job head;
    struct zrun r;
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, tree = -1, in = -1, fds[4], nfds = 0;
    long long t0 = now_ms(), cpu0, cpu_ns, peak_kb = -1, ooms = -1, dead_at = -1;
    char *msg = NULL;
    size_t mlen = 0;
    enum kiln_err err = KILN_OK;
    struct epoll_event evs[8];

    memset(&r, 0, sizeof r);
    r.ep = r.wall_fd = r.tick_fd = r.notify_fd = r.out.fd = r.err.fd = -1;
    sbx_limits_resolve(ctx, &job->limits, &lim);
    memset(&head, 0, sizeof head);
    head.h.kind = ZP_JOB;
    head.uid = job->ws != NULL ? job->ws->slot.uid : 0;
    if (job->ws == NULL) {
        /* Without a workspace the child still needs a uid of its own: reuse a free slot. */
        err = KILN_ERR_UNAVAILABLE;
        errbuf_set(eb, err, "zygote runs need a workspace");
        goto out;
    }
    snprintf(head.tmp_opts, sizeof head.tmp_opts, "size=%lldm,nr_inodes=65536,mode=1777",
             lim.tmp_mb);
    snprintf(head.shm_opts, sizeof head.shm_opts, "size=%lldm,nr_inodes=4096,mode=1777",
             lim.tmp_mb);
    snprintf(head.data_opts, sizeof head.data_opts, "size=%lldm,nr_inodes=65536,mode=0755",
             lim.data_mb);
    head.file_size_bytes = lim.file_size_mb * 1024 * 1024;
    head.open_files = lim.open_files;
    head.nproc = lim.pids * 2;
    head.cpu_s = (lim.cpu_ms + 999) / 1000;
    head.data_bytes = 0;
    {
        struct stat st;
        if (fstat(job->ws->dirfd, &st) < 0) {
            err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "fstat workspace: %s", strerror(errno));
            goto out;
        }
        head.ws_dev = (uint64_t)st.st_dev;
        head.ws_ino = (uint64_t)st.st_ino;
        head.has_ws = 1;
    }
    tree =
        (int)syscall(SYS_open_tree, AT_FDCWD, job->ws->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "open_tree: %s", strerror(errno));
        goto out;
    }
    if (job->stdin_data != NULL) {
        in = make_stdin(job);
        if (in < 0) {
            err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "stdin: %s", strerror(errno));
            goto out;
        }
        head.has_stdin = 1;
    }
    msg = job_message(job, &head, &mlen);
    if (msg == NULL) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "job too large for the zygote");
        goto out;
    }
    if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "pipe2: %s", strerror(errno));
        goto out;
    }
    if (lim.memory_mb != c->cg_lim.memory_mb || lim.pids != c->cg_lim.pids) {
        err = sbx_cg_set_limits(&c->cg, &lim, ctx->cg.v1_memsw, eb);
        if (err) {
            err = KILN_ERR_UNAVAILABLE;
            goto out;
        }
    }
    cpu0 = sbx_cg_cpu_ns(&c->cg);
    r.out.fd = out_p[0];
    r.err.fd = err_p[0];
    out_p[0] = err_p[0] = -1;
    r.out.max = lim.stdout_max;
    r.err.max = lim.stderr_max;
    fcntl(r.out.fd, F_SETFL, O_NONBLOCK);
    fcntl(r.err.fd, F_SETFL, O_NONBLOCK);
    fcntl(c->chan, F_SETFL, O_NONBLOCK);
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    r.wall_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (r.ep < 0 || r.wall_fd < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "epoll/timerfd: %s", strerror(errno));
        goto out;
    }
    if (cpu0 >= 0) {
        r.tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (r.tick_fd < 0 || arm(r.tick_fd, SBX_TICK_MS, SBX_TICK_MS) < 0) {
            err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "timerfd: %s", strerror(errno));
            goto out;
        }
    }
    fds[nfds++] = out_p[1];
    fds[nfds++] = err_p[1];
    fds[nfds++] = tree;
    if (in >= 0)
        fds[nfds++] = in;
    t0 = now_ms();
    if (arm(r.wall_fd, lim.wall_ms, 0) < 0 || send_fds(c->chan, msg, mlen, fds, nfds) < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot hand the job to the zygote child");
        goto out;
    }
    close(out_p[1]);
    close(err_p[1]);
    close(tree);
    out_p[1] = err_p[1] = tree = -1;
    if (in >= 0)
        close(in);
    in = -1;
    if (ep_add(r.ep, c->pidfd, T_PIDFD) < 0 || ep_add(r.ep, r.out.fd, T_OUT) < 0 ||
        ep_add(r.ep, r.err.fd, T_ERR) < 0 || ep_add(r.ep, c->chan, T_CHAN) < 0 ||
        ep_add(r.ep, r.wall_fd, T_WALL) < 0 || ep_add(r.ep, r.tick_fd, T_TICK) < 0 ||
        ep_add(r.ep, job->cancel_fd, T_CANCEL) < 0) {
        zrun_kill(&r, c);
        err = errbuf_set(eb, KILN_ERR_INTERNAL, "epoll_ctl: %s", strerror(errno));
        goto out;
    }
    /* Until the zygote has told us how the child ended (it reaps it), or the child is dead and
     * the zygote went away (then the status is lost: killed). */
    while (!r.have_status && !(r.dead && (r.chan_eof || r.setup_failed))) {
        int timeout = -1, n;
        if (r.dead) {
            long long left = dead_at + ZYG_EXIT_GRACE_MS - now_ms();
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        n = epoll_wait(r.ep, evs, 8, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            zrun_kill(&r, c);
            err = errbuf_set(eb, KILN_ERR_INTERNAL, "epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n; i++) {
            uint64_t ticks;
            switch (evs[i].data.u64) {
            case T_PIDFD:
                r.dead = true;
                dead_at = now_ms();
                epoll_ctl(r.ep, EPOLL_CTL_DEL, c->pidfd, NULL);
                break;
            case T_OUT:
            case T_ERR: {
                struct sbx_stream *s = evs[i].data.u64 == T_OUT ? &r.out : &r.err;
                int fd = s->fd;
                if (!sbx_stream_read(s, 4))
                    epoll_ctl(r.ep, EPOLL_CTL_DEL, fd, NULL);
                break;
            }
            case T_CHAN:
                zrun_chan(&r, c);
                if (r.chan_eof)
                    epoll_ctl(r.ep, EPOLL_CTL_DEL, c->chan, NULL);
                if (r.setup_failed)
                    zrun_kill(&r, c);
                break;
            case T_WALL:
                if (read(r.wall_fd, &ticks, sizeof ticks) < 0)
                    ticks = 0;
                if (!r.killed) {
                    r.wall_timeout = true;
                    zrun_kill(&r, c);
                }
                epoll_ctl(r.ep, EPOLL_CTL_DEL, r.wall_fd, NULL);
                break;
            case T_TICK:
                if (read(r.tick_fd, &ticks, sizeof ticks) > 0 && !r.killed &&
                    sbx_cg_cpu_ns(&c->cg) - cpu0 >= lim.cpu_ms * 1000000LL) {
                    r.cpu_timeout = true;
                    zrun_kill(&r, c);
                }
                break;
            case T_CANCEL:
                r.cancelled = true;
                zrun_kill(&r, c);
                epoll_ctl(r.ep, EPOLL_CTL_DEL, job->cancel_fd, NULL);
                break;
            case T_DONE:
                zrun_done(&r, c);
                break;
            default:
                break;
            }
        }
    }
    if (!r.dead && !r.frozen) {
        /* The status came first; the child may still be tearing down its namespace. */
        struct pollfd pf = {c->pidfd, POLLIN, 0};
        poll(&pf, 1, ZYG_EXIT_GRACE_MS);
    }
    /* Every process of the child's PID namespace is gone with it, or frozen: take what is
     * left (the pipes are non-blocking). */
    if (r.out.fd >= 0)
        sbx_stream_read(&r.out, -1);
    if (r.err.fd >= 0)
        sbx_stream_read(&r.err, -1);
    res->wall_ms = now_ms() - t0;
    if (r.frozen)
        atomic_fetch_add(&zs->early, 1);
    if (!r.started && !r.cancelled) {
        /* No user code ran (a setup failure, or the zygote died under a child that had not
         * started): the cold path is safe and gives the real answer. */
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "zygote child setup failed while %s: %s",
                         r.setup_failed ? sbx_stage_name(r.fail_stage) : "waiting",
                         r.setup_failed ? strerror(r.fail_err) : "the child died");
        goto out;
    }
    cpu_ns = sbx_cg_cpu_ns(&c->cg);
    res->cpu_ms = cpu_ns >= 0 && cpu0 >= 0 ? (cpu_ns - cpu0) / 1000000 : 0;
    sbx_cg_stats(&c->cg, &peak_kb, &ooms);
    res->memory_peak_kb = peak_kb;
    zclassify(&r, &lim, ooms, res->cpu_ms, res);
    if (!r.have_status && !r.killed && res->note[0] == '\0')
        snprintf(res->note, sizeof res->note, "The Python zygote died during the execution");
    sbx_stream_finish(&r.out, &res->out, &res->out_len, &res->out_truncated);
    sbx_stream_finish(&r.err, &res->err, &res->err_len, &res->err_truncated);
out : {
    int cl[] = {out_p[0], out_p[1],  err_p[0],  err_p[1], tree,     in,
                r.ep,     r.wall_fd, r.tick_fd, r.out.fd, r.err.fd, r.notify_fd};
    for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++)
        if (cl[i] >= 0)
            close(cl[i]);
}
    free(r.out.buf);
    free(r.err.buf);
    free(msg);
    child_bury(z, c);
    return err;
}

/* A zygote child is PID 1 of its PID namespace, and the kernel does not deliver to a namespace's
 * init the signals it has no handler for when they come from inside (SIGKILL included): a
 * program that signals itself (`os.kill(os.getpid(), 9)`, `os.abort()` aside) would survive
 * where `python3 code.py` dies. Such programs run cold, where the program is PID 2. */
static bool code_signals_itself(const char *code, size_t len)
{
    static const char *const needles[] = {"kill", "getpid", "signal", "raise_signal", "killpg"};

    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (memmem(code, len, needles[i], strlen(needles[i])) != NULL)
            return true;
    return false;
}

/* Is job `python3 FILE [ARGS...]`? */
static bool job_is_python(const struct sbx_job *job)
{
    const char *const *argv;
    const char *base;

    if (job->nsteps != 1 || job->steps == NULL || job->ws == NULL)
        return false;
    argv = job->steps[0].argv;
    if (argv == NULL || argv[0] == NULL || argv[1] == NULL || argv[1][0] == '-' ||
        argv[1][0] == '\0' || job->steps[0].stdout_to_stderr)
        return false;
    base = strrchr(argv[0], '/');
    base = base != NULL ? base + 1 : argv[0];
    return strcmp(base, "python3") == 0 || strcmp(base, "python") == 0;
}

enum kiln_err zyg_run(struct zyg_set *zs, const struct sbx_job *job, const char *code, size_t len,
                      struct sbx_result *res, struct errbuf *eb)
{
    int order[2];
    struct errbuf why = {{0}};

    memset(res, 0, sizeof *res);
    if (zs == NULL)
        return errbuf_set(eb, KILN_ERR_INVALID, "no zygote set");
    if (!job_is_python(job) || (job->ws != NULL && job->ws->ctx != zs->ctx) ||
        (code != NULL && code_signals_itself(code, len)))
        goto cold;
    order[0] =
        zs->have[ZK_LIGHT] && code != NULL && zyg_code_is_light(code, len) ? ZK_LIGHT : ZK_HEAVY;
    order[1] = order[0] == ZK_LIGHT ? ZK_HEAVY : ZK_LIGHT;
    for (int i = 0; i < 2; i++) {
        struct zygote *z = &zs->z[order[i]];
        struct zchild *c;
        enum kiln_err err;
        bool hit;

        if (!zs->have[order[i]])
            continue;
        c = take_ready(z);
        hit = c != NULL;
        if (hit) {
            atomic_fetch_add(&zs->hits, 1);
        } else {
            bool alive;
            pthread_mutex_lock(&z->mu);
            alive = z->alive;
            pthread_mutex_unlock(&z->mu);
            if (!alive || child_fork(z, false, false, &c, &why) != KILN_OK)
                continue;
            atomic_fetch_add(&zs->misses, 1);
        }
        err = child_run(z, c, job, res, &why);
        if (hit) {
            pthread_mutex_lock(&z->mu);
            z->running--;
            z->last_use_ms = now_ms();
            pthread_cond_broadcast(&z->cv);
            pthread_mutex_unlock(&z->mu);
        }
        if (err == KILN_OK)
            return KILN_OK;
        sbx_result_clear(res);
        if (err != KILN_ERR_UNAVAILABLE)
            return errbuf_set(eb, err, "%s", why.msg);
        break; /* the program never started: the cold path is safe */
    }
cold:
    atomic_fetch_add(&zs->fallbacks, 1);
    return sbx_run(zs->ctx, job, res, eb);
}

/* ---------------------------------------------------------------- the import scan */

/* Top-level modules that never import numpy, pandas or matplotlib (the standard library's
 * usual suspects). Anything else sends the program to the heavy zygote. */
static const char *const light_modules[] = {
    "__future__",  "abc",         "argparse",
    "array",       "ast",         "base64",
    "binascii",    "bisect",      "builtins",
    "calendar",    "cmath",       "codecs",
    "collections", "colorsys",    "contextlib",
    "copy",        "csv",         "dataclasses",
    "datetime",    "decimal",     "difflib",
    "enum",        "errno",       "fnmatch",
    "fractions",   "functools",   "gc",
    "getopt",      "glob",        "gzip",
    "hashlib",     "heapq",       "hmac",
    "html",        "io",          "ipaddress",
    "itertools",   "json",        "keyword",
    "locale",      "logging",     "math",
    "numbers",     "operator",    "os",
    "pathlib",     "pickle",      "platform",
    "pprint",      "queue",       "random",
    "re",          "secrets",     "select",
    "shlex",       "shutil",      "signal",
    "socket",      "sqlite3",     "stat",
    "statistics",  "string",      "struct",
    "subprocess",  "sys",         "tempfile",
    "textwrap",    "threading",   "time",
    "timeit",      "traceback",   "types",
    "typing",      "unicodedata", "unittest",
    "urllib",      "uuid",        "warnings",
    "weakref",     "xml",         "zipfile",
    "zlib",        "bz2",         "lzma",
    "tarfile",     "concurrent",  "multiprocessing",
    "asyncio",     "email",       "http",
    "inspect",     "mmap",        "resource",
    "string",      "tokenize",    "dis",
};

static bool is_ident(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

static bool module_light(const char *p, size_t n)
{
    for (size_t i = 0; i < sizeof light_modules / sizeof light_modules[0]; i++)
        if (strlen(light_modules[i]) == n && memcmp(light_modules[i], p, n) == 0)
            return true;
    return false;
}

static bool contains(const char *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

/* One logical statement (a line piece between ';'): false when it imports a heavy or unknown
 * module. */
static bool statement_light(const char *p, size_t n)
{
    size_t i = 0;
    bool from;

    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (n - i >= 5 && memcmp(p + i, "from", 4) == 0 && !is_ident(p[i + 4]))
        from = true;
    else if (n - i >= 7 && memcmp(p + i, "import", 6) == 0 && !is_ident(p[i + 6]))
        from = false;
    else
        return true;
    i += from ? 4 : 6;
    /* Each module name of the statement: "import a.b as c, d" or "from a.b import c". */
    for (;;) {
        size_t s;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '(' || p[i] == '\\'))
            i++;
        if (i < n && p[i] == '.')
            return true; /* a relative import of the program's own files */
        s = i;
        while (i < n && is_ident(p[i]))
            i++;
        if (i == s || !module_light(p + s, i - s))
            return false;
        if (from)
            return true;
        while (i < n && p[i] != ',')
            i++;
        if (i >= n)
            return true;
        i++;
    }
}

bool zyg_code_is_light(const char *code, size_t len)
{
    const char *p = code, *end = code + len;

    /* Dynamic imports cannot be scanned: heavy. */
    if (contains(code, len, "__import__") || contains(code, len, "importlib") ||
        contains(code, len, "exec(") || contains(code, len, "runpy"))
        return false;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol != NULL ? eol : end;
        const char *q = p;
        while (q < stop) {
            const char *semi = memchr(q, ';', (size_t)(stop - q));
            const char *e = semi != NULL ? semi : stop;
            if (!statement_light(q, (size_t)(e - q)))
                return false;
            q = e + 1;
        }
        p = stop + 1;
    }
    return true;
}

/* ---------------------------------------------------------------- start, stop, stats */

static void zygote_init(struct zyg_set *zs, int kind, const char *modules)
{
    struct zygote *z = &zs->z[kind];
    size_t n = 0;

    z->set = zs;
    z->kind = kind;
    z->pidfd = z->ctl = -1;
    z->slot.lock_fd = -1;
    z->cg.v2_fd = -1;
    pthread_mutex_init(&z->mu, NULL);
    pthread_mutex_init(&z->ctl_mu, NULL);
    pthread_cond_init(&z->cv, NULL);
    z->ready = xcalloc(zs->warm + 1, sizeof *z->ready);
    z->argv[n++] = "python3";
    z->argv[n++] = "-s";
    z->argv[n++] = ZYG_EXT_INSIDE "/zygote.py";
    /* Room in the argv area for each child's own command line (kiln_sbx.c set_cmdline()). */
    z->argv[n++] = ZYG_CMDLINE_PAD;
    z->argv_buf = xstrdup(modules != NULL ? modules : "");
    for (char *s = z->argv_buf; *s != '\0' && n < ZYG_MAX_MODULES + 4;) {
        char *comma = strchr(s, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*s == ' ')
            s++;
        if (*s != '\0')
            z->argv[n++] = s;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    z->argv[n] = NULL;
}

enum kiln_err zyg_start(struct sbx_ctx *ctx, const struct zyg_opts *opts, struct zyg_set **out,
                        struct errbuf *eb)
{
    struct zyg_set *zs;
    const char *ext = opts->ext_dir;
    char path[PATH_MAX + 16], found[PATH_MAX];
    size_t nenv = 0;

    *out = NULL;
    if (!ctx->root)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "the Python zygote needs root (slot uids)");
    if (ext == NULL)
        ext = getenv("KILN_PYEXT_DIR");
    if (ext == NULL)
        ext = find_ext_dir(found, sizeof found);
    snprintf(path, sizeof path, "%s/zygote.py", ext);
    if (access(path, R_OK) < 0)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "no zygote in %s: %s", ext, strerror(errno));
    zs = xcalloc(1, sizeof *zs);
    zs->ctx = ctx;
    zs->warm = opts->warm;
    zs->prepared = opts->prepared_heavy < opts->warm ? opts->prepared_heavy : opts->warm;
    zs->refillers = opts->refillers < 1               ? 1
                    : opts->refillers > ZYG_REFILLERS ? ZYG_REFILLERS
                                                      : opts->refillers;
    zs->ext_dir = xstrdup(ext);
    zs->python = xstrdup(opts->python != NULL ? opts->python : "/usr/bin/python3");
    while (opts->env != NULL && opts->env[nenv] != NULL)
        nenv++;
    zs->env = xcalloc(nenv + 4, sizeof *zs->env);
    for (size_t i = 0; i < nenv; i++)
        zs->env[i] = xstrdup(opts->env[i]);
    /* One BLAS thread: a fork copies only the forking thread, and a pool of BLAS threads
     * forked half-way would be a hazard; PYTHONPATH-free, the extension comes from its dir. */
    zs->env[nenv++] = xstrdup("OPENBLAS_NUM_THREADS=1");
    if (opts->state) /* zygote.py's rehearsal covers the state runner's capture then */
        zs->env[nenv++] = xstrdup("KILN_ZYGOTE_STATE=1");
    zs->env[nenv] = NULL;
    /* The heavy zygote's malloc keeps what it frees and serves blocks up to 4 MiB from its
     * heap (glibc's defaults: trim above 128 KiB free at the top, mmap from 128 KiB): the pages
     * a child's warm-up or rehearsal touched and freed are then reused by the program instead
     * of new ones faulted in (a pandas job in a prepared child: ~760 -> ~110 faults). Read by
     * glibc at the zygote's start; a program's own os.environ is the job's. */
    zs->env_heavy = xcalloc(nenv + 3, sizeof *zs->env_heavy);
    memcpy(zs->env_heavy, zs->env, nenv * sizeof *zs->env);
    zs->env_heavy[nenv] = "GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:"
                          "glibc.malloc.mmap_threshold=4194304";
    if (opts->prefault_heavy)
        zs->env_heavy[nenv + 1] = "KILN_ZYGOTE_PREFAULT=1";
    zs->have[ZK_LIGHT] = opts->light;
    zs->have[ZK_HEAVY] = opts->preload != NULL && opts->preload[0] != '\0';
    if (!zs->have[ZK_HEAVY])
        zs->have[ZK_LIGHT] = true;
    zygote_init(zs, ZK_LIGHT, "");
    zygote_init(zs, ZK_HEAVY, opts->preload);
    for (int k = 0; k < ZK__COUNT; k++) {
        if (!zs->have[k])
            continue;
        if (pthread_create(&zs->z[k].thread, NULL, manager, &zs->z[k]) != 0) {
            zyg_stop(zs);
            return errbuf_set(eb, KILN_ERR_INTERNAL, "pthread_create failed");
        }
        zs->z[k].thread_started = true;
        for (unsigned i = 1; i < zs->refillers; i++)
            if (pthread_create(&zs->z[k].helpers[zs->z[k].nhelpers], NULL, refiller, &zs->z[k]) ==
                0)
                zs->z[k].nhelpers++;
    }
    *out = zs;
    return KILN_OK;
}

bool zyg_wait_ready(struct zyg_set *zs, long long timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    for (int k = 0; k < ZK__COUNT; k++) {
        struct zygote *z = &zs->z[k];
        if (!zs->have[k])
            continue;
        for (;;) {
            bool ok, broken;
            pthread_mutex_lock(&z->mu);
            ok = z->alive && z->nready >= zs->warm;
            broken = z->launch_failures >= ZYG_WAIT_FAILURES;
            pthread_mutex_unlock(&z->mu);
            if (ok)
                break;
            if (broken || now_ms() >= deadline)
                return false;
            {
                struct timespec ts = {0, 20 * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
    }
    return true;
}

void zyg_stop(struct zyg_set *zs)
{
    if (zs == NULL)
        return;
    atomic_store(&zs->stopping, true);
    for (int k = 0; k < ZK__COUNT; k++) {
        struct zygote *z = &zs->z[k];
        if (z->set == NULL)
            continue;
        pthread_mutex_lock(&z->mu);
        pthread_cond_broadcast(&z->cv);
        pthread_mutex_unlock(&z->mu);
        for (unsigned i = 0; i < z->nhelpers; i++)
            pthread_join(z->helpers[i], NULL);
        if (z->thread_started)
            pthread_join(z->thread, NULL);
        if (z->thread_started)
            drop_ready(z); /* a refiller may have parked one after the manager's last drop */
        empty_graveyard(z, true);
        free(z->ready);
        free(z->argv_buf);
        pthread_mutex_destroy(&z->mu);
        pthread_mutex_destroy(&z->ctl_mu);
        pthread_cond_destroy(&z->cv);
    }
    if (zs->env_heavy != zs->env)
        free(zs->env_heavy);
    for (size_t i = 0; zs->env != NULL && zs->env[i] != NULL; i++)
        free(zs->env[i]);
    free(zs->env);
    free(zs->ext_dir);
    free(zs->python);
    free(zs);
}

static long long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long long v = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

void zyg_get_stats(struct zyg_set *zs, struct zyg_stats *st)
{
    memset(st, 0, sizeof *st);
    st->forked = atomic_load(&zs->forked);
    st->hits = atomic_load(&zs->hits);
    st->misses = atomic_load(&zs->misses);
    st->fallbacks = atomic_load(&zs->fallbacks);
    st->early = atomic_load(&zs->early);
    st->restarts = atomic_load(&zs->restarts);
    for (int k = 0; k < ZK__COUNT; k++) {
        struct zygote *z = &zs->z[k];
        pid_t pid = 0;
        st->rss_kb[k] = -1;
        if (!zs->have[k])
            continue;
        pthread_mutex_lock(&z->mu);
        st->ready[k] = z->nready;
        for (unsigned i = 0; i < z->nready; i++)
            st->prepared_ready += z->ready[i]->full ? 1 : 0;
        st->running[k] = z->alive;
        if (z->alive)
            pid = z->pid;
        pthread_mutex_unlock(&z->mu);
        if (pid > 0)
            st->rss_kb[k] = rss_kb(pid);
    }
}

void zyg_debug_kill(struct zyg_set *zs, int kind)
{
    struct zygote *z;

    if (kind < 0 || kind >= ZK__COUNT)
        return;
    z = &zs->z[kind];
    pthread_mutex_lock(&z->mu);
    if (z->alive && z->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, z->pidfd, SIGKILL, NULL, 0);
    pthread_mutex_unlock(&z->mu);
}
