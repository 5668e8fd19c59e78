/* Parked sandboxes, the supervisor's side (research sandbox.md §5.2): build a sandbox up to the
 * end of its setup with no user data and leave its init waiting; at take time hand in the
 * workspace as an O_PATH fd over SCM_RIGHTS (a detached open_tree clone of the workspace's mount,
 * which init attaches at /mnt/data after checking st_dev/st_ino) and the execution, then supervise
 * it exactly like sbx_run() does. One parked sandbox serves one execution, then is destroyed. */
#include "sandbox/park.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* How long init may take to build the sandbox and report it parked. */
#define PARK_READY_MS 10000

static int write_proc(pid_t pid, const char *file, const char *text)
{
    char path[64];
    size_t len = strlen(text);
    int fd, rc = 0;

    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t)len)
        rc = -errno;
    close(fd);
    return rc;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void sbx_park_free(struct sbx_parked *p)
{
    siginfo_t si;

    if (p == NULL)
        return;
    if (p->pidfd >= 0) {
        if (p->cg_made)
            sbx_cg_kill(&p->cg);
        syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
        while (syscall(SYS_waitid, P_PIDFD, p->pidfd, &si, WEXITED | __WALL, NULL) < 0 &&
               errno == EINTR)
            ;
    }
    close_fd(&p->pidfd);
    close_fd(&p->rep_r);
    close_fd(&p->out_r);
    close_fd(&p->err_r);
    close_fd(&p->ctl);
    if (p->cg_made)
        sbx_cg_destroy(&p->cg);
    sbx_slot_release(&p->slot);
    free(p);
}

/* Wait for init's SBX_REC_PARKED (or its failure). */
static enum kiln_err wait_parked(struct sbx_parked *p, struct errbuf *eb)
{
    long long deadline = sbx_now_ms() + PARK_READY_MS;
    struct sbx_rec rec;

    for (;;) {
        struct pollfd pfd = {p->rep_r, POLLIN, 0};
        long long left = deadline - sbx_now_ms();
        ssize_t n;
        int rc;

        if (left <= 0)
            return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "the parked sandbox did not get ready");
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        n = read(p->rep_r, &rec, sizeof rec);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n != (ssize_t)sizeof rec)
            return errbuf_set(eb, KILN_ERR_INTERNAL, "the parked sandbox died while starting");
        if (rec.kind == SBX_REC_PARKED)
            return KILN_OK;
        if (rec.kind == SBX_REC_SETUP_FAIL)
            return errbuf_set(eb, KILN_ERR_INTERNAL, "parking a sandbox failed while %s: %s",
                              sbx_stage_name(rec.stage), strerror(rec.err));
    }
}

/* The plan's job when there is no interpreter: static, as the plan may be read in the cloner. */
static const struct sbx_job no_job;

enum kiln_err sbx_park_new(struct sbx_ctx *ctx, struct sbx_cloner *cl, const struct sbx_job *interp,
                           const char *boot_path, const char *boot_text, struct sbx_parked **out,
                           struct errbuf *eb)
{
    struct sbx_parked *p;
    struct sbx_park_plan pk;
    struct sbx_plan plan;
    struct clone_args args;
    int sync_p[2] = {-1, -1}, rep_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    int ctl_p[2] = {-1, -1}, in_p[2] = {-1, -1};
    char map[64];
    enum kiln_err err;
    long pid;
    int rc;

    *out = NULL;
    if (!ctx->root)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "parked sandboxes need root");
    p = xcalloc(1, sizeof *p);
    p->ctx = ctx;
    p->interp = interp;
    p->pidfd = p->rep_r = p->out_r = p->err_r = p->ctl = -1;
    p->slot.lock_fd = -1;
    p->cg.v2_fd = -1;
    sbx_limits_resolve(ctx, &no_job.limits, &p->lim);
    err = sbx_slot_acquire(ctx, &p->slot, eb);
    if (err)
        goto fail;
    err = sbx_cg_create(&ctx->cg, atomic_fetch_add(&ctx->run_seq, 1), &p->lim, &p->cg, eb);
    if (err)
        goto fail;
    p->cg_made = true;
    if (pipe2(sync_p, O_CLOEXEC) < 0 || pipe2(rep_p, O_CLOEXEC) < 0 ||
        pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 ||
        (interp != NULL && pipe2(in_p, O_CLOEXEC) < 0) ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl_p) < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "pipe2: %s", strerror(errno));
        goto fail;
    }
    memset(&pk, 0, sizeof pk);
    pk.enter = sbx_park_child;
    pk.ctl_fd = ctl_p[1];
    pk.interp = interp;
    pk.interp_in[0] = in_p[0];
    pk.interp_in[1] = in_p[1];
    pk.boot_path = boot_path;
    pk.boot_text = boot_text;
    memset(&plan, 0, sizeof plan);
    plan.ctx = ctx;
    plan.job = interp != NULL ? interp : &no_job;
    plan.park = &pk;
    snprintf(plan.tmp_opts, sizeof plan.tmp_opts, "size=%lldm,nr_inodes=65536,mode=1777",
             p->lim.tmp_mb);
    snprintf(plan.shm_opts, sizeof plan.shm_opts, "size=%lldm,nr_inodes=4096,mode=1777",
             p->lim.tmp_mb);
    plan.sync_r = sync_p[0];
    plan.report_w = rep_p[1];
    plan.out_w = out_p[1];
    plan.err_w = err_p[1];
    plan.stdin_fd = -1;
    /* The interpreter's rlimits until the take: init can only lower them then (raising a hard
     * limit needs CAP_SYS_RESOURCE of the host), so the ones every job lowers anyway (CPU, file
     * size) start unlimited — only the trusted bootstrap runs until then. The others are the
     * defaults; a job asking for more runs its steps instead (pool.c). */
    plan.file_size_bytes = -1;
    plan.open_files = p->lim.open_files;
    plan.nproc = p->lim.pids * 2;
    plan.cpu_s = 0;

    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                 CLONE_NEWUTS | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = (uint64_t)(uintptr_t)&p->pidfd;
    if (p->cg.v2_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)p->cg.v2_fd;
    }
    pid = cl != NULL ? sbx_cloner_clone(cl, args.flags, p->cg.v2_fd, &plan, &p->pidfd) : -1;
    if (pid <= 0) {
        pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid == 0)
            sbx_child_init(&plan);
    }
    if (pid < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot create the sandbox namespaces: %s",
                         strerror(errno));
        goto fail;
    }
    p->rep_r = rep_p[0];
    p->out_r = out_p[0];
    p->err_r = err_p[0];
    p->ctl = ctl_p[0];
    rep_p[0] = out_p[0] = err_p[0] = ctl_p[0] = -1;
    fcntl(p->rep_r, F_SETFL, O_NONBLOCK);
    fcntl(p->out_r, F_SETFL, O_NONBLOCK);
    fcntl(p->err_r, F_SETFL, O_NONBLOCK);
    snprintf(map, sizeof map, "%u %u 1\n", SBX_INNER_UID, p->slot.uid);
    rc = write_proc((pid_t)pid, "uid_map", map);
    if (rc == 0) {
        snprintf(map, sizeof map, "%u %u 1\n", SBX_INNER_GID, p->slot.gid);
        rc = write_proc((pid_t)pid, "gid_map", map);
    }
    if (rc < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "cannot write the id maps: %s", strerror(-rc));
        goto fail;
    }
    err = sbx_cg_attach(&p->cg, (pid_t)pid, eb);
    if (err)
        goto fail;
    if (write(sync_p[1], "g", 1) != 1) {
        err = errbuf_set(eb, KILN_ERR_INTERNAL, "cannot wake the sandbox: %s", strerror(errno));
        goto fail;
    }
    close_fd(&sync_p[1]);
    /* Close our copies of the child's ends before waiting, so that its death is an EOF. */
    {
        int *ends[] = {&sync_p[0], &rep_p[1], &out_p[1], &err_p[1], &ctl_p[1], &in_p[0], &in_p[1]};
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
            close_fd(ends[i]);
    }
    err = wait_parked(p, eb);
    if (err)
        goto fail;
    p->created_ms = sbx_now_ms();
    *out = p;
    return KILN_OK;
fail : {
    int *all[] = {&sync_p[0], &sync_p[1], &rep_p[0], &rep_p[1], &out_p[0], &out_p[1],
                  &err_p[0],  &err_p[1],  &ctl_p[0], &ctl_p[1], &in_p[0],  &in_p[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        close_fd(all[i]);
}
    sbx_park_free(p);
    return err;
}

bool sbx_park_alive(struct sbx_parked *p)
{
    struct pollfd pfd[2] = {{p->pidfd, POLLIN, 0}, {p->rep_r, POLLIN, 0}};

    /* Init exited (its pidfd is readable), or said something since it parked (the
     * interpreter failed to start), or the interpreter wrote to stdout or stderr. */
    if (poll(pfd, 2, 0) != 0)
        return false;
    pfd[0].fd = p->out_r;
    pfd[1].fd = p->err_r;
    return poll(pfd, 2, 0) == 0;
}

/* Append s and its NUL to the blob. */
static bool blob_add(struct sbx_take_msg *m, const char *s)
{
    size_t len = strlen(s) + 1;

    if (m->blob_len + len > sizeof m->blob)
        return false;
    memcpy(m->blob + m->blob_len, s, len);
    m->blob_len += (uint32_t)len;
    return true;
}

static enum kiln_err fill_msg(struct sbx_take_msg *m, const struct sbx_job *job,
                              const char *const *interp_args, size_t nargs, struct errbuf *eb)
{
    size_t nstrings = 0;

    if (interp_args != NULL) {
        m->mode = SBX_TAKE_INTERP;
        m->nsteps = 1;
        for (size_t i = 0; i < nargs; i++)
            if (!blob_add(m, interp_args[i]))
                return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "arguments too large to take");
        return KILN_OK;
    }
    m->mode = SBX_TAKE_STEPS;
    if (job->nsteps > SBX_TAKE_MAX_STEPS)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "too many steps to take");
    m->nsteps = (uint32_t)job->nsteps;
    for (size_t i = 0; i < job->nsteps; i++) {
        const struct sbx_step *st = &job->steps[i];
        m->step_flags[i] = (st->stop_on_failure ? SBX_TAKE_STOP : 0) |
                           (st->stdout_to_stderr ? SBX_TAKE_TO_STDERR : 0);
        for (size_t k = 0; st->argv[k] != NULL; k++, nstrings++) {
            if (!blob_add(m, st->argv[k]))
                return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "job too large to take");
            m->step_argc[i]++;
        }
    }
    for (size_t k = 0; job->env != NULL && job->env[k] != NULL; k++, nstrings++) {
        if (!blob_add(m, job->env[k]))
            return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "environment too large to take");
        m->nenv++;
    }
    if (nstrings > SBX_TAKE_MAX_STRINGS)
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "too many strings to take");
    return KILN_OK;
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

static int send_take(int sock, const struct sbx_take_msg *m, const int *fds, size_t nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 2)];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {(void *)m, offsetof(struct sbx_take_msg, blob) + m->blob_len};
    struct msghdr msg = {0};
    struct cmsghdr *c;
    ssize_t n;

    memset(&cbuf, 0, sizeof cbuf);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)iov.iov_len ? 0 : -1;
}

/* The interpreter's filter's notification fd, sent over the take channel before its execve
 * (child.c run_step); -1 when none came (no interpreter, or the kernel gave none). */
static int recv_notify(int sock)
{
    char byte;
    int fd = -1;
    size_t nfds = 0;

    if (sbx_recv_fds(sock, &byte, 1, MSG_DONTWAIT, &fd, 1, &nfds) < 0 || nfds == 0)
        return -1;
    if (!sbx_is_notify_fd(fd)) {
        close(fd);
        return -1;
    }
    return fd;
}

enum kiln_err sbx_park_take(struct sbx_parked *p, struct sbx_workspace *ws,
                            const struct sbx_job *job, const char *const *interp_args, size_t nargs,
                            struct sbx_result *res, struct sbx_parked **rest, struct errbuf *eb)
{
    struct sbx_take_msg *m = xcalloc(1, sizeof *m);
    struct sbx_limits lim;
    struct sbx_live live;
    struct mount_attr attr = {0};
    struct stat st;
    int fds[2] = {-1, -1};
    enum kiln_err err;

    memset(res, 0, sizeof *res);
    if (rest != NULL)
        *rest = NULL;
    sbx_limits_resolve(p->ctx, &job->limits, &lim);
    /* What was fixed at park time must match: /tmp and /dev/shm sizes. */
    if (lim.tmp_mb != p->lim.tmp_mb || job->ws != ws || ws == NULL) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "the parked sandbox does not fit the job");
        goto out;
    }
    err = fill_msg(m, job, interp_args, nargs, eb);
    if (err)
        goto out;
    m->magic = SBX_TAKE_MAGIC;
    m->file_size_bytes = lim.file_size_mb * 1024 * 1024;
    m->open_files = lim.open_files;
    m->nproc = lim.pids * 2;
    m->cpu_s = (lim.cpu_ms + 999) / 1000;
    m->data_bytes = 0;
    /* Rewritten only when the job's differ from those the sandbox was built with (the common
     * case is the same config defaults: nothing to write). */
    if (p->cg_made && (lim.memory_mb != p->lim.memory_mb || lim.pids != p->lim.pids ||
                       lim.cpu_quota != p->lim.cpu_quota)) {
        err = sbx_cg_take_limits(&p->ctx->cg, &p->cg, &lim, eb);
        if (err) {
            err = KILN_ERR_UNAVAILABLE;
            goto out;
        }
    }
    /* The workspace as a detached clone of its mount: an O_PATH fd init can attach in its own
     * mount namespace (a bind of a path would be refused across namespaces). nosuid/nodev are
     * set here, before the sandbox ever sees it. */
    fds[0] = (int)syscall(SYS_open_tree, ws->dirfd, "",
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    /* Private: no mount event crosses between the host's workspace mount and the sandbox's. */
    attr.propagation = MS_PRIVATE;
    if (fds[0] < 0 || mount_setattr(fds[0], "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 ||
        fstat(ws->dirfd, &st) < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot clone the workspace mount: %s",
                         strerror(errno));
        goto out;
    }
    m->ws_dev = (uint64_t)st.st_dev;
    m->ws_ino = (uint64_t)st.st_ino;
    if (interp_args == NULL && job->stdin_data != NULL) {
        fds[1] = make_stdin(job);
        if (fds[1] < 0) {
            err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot buffer stdin: %s", strerror(errno));
            goto out;
        }
    }
    memset(&live, 0, sizeof live);
    live.notify_fd = -1;
    live.t0_ms = sbx_now_ms();
    live.cpu_base_ns = p->cg_made ? sbx_cg_cpu_ns(&p->cg) : 0;
    if (live.cpu_base_ns < 0)
        live.cpu_base_ns = 0;
    if (send_take(p->ctl, m, fds, fds[1] >= 0 ? 2 : 1) < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot hand the job to the sandbox: %s",
                         strerror(errno));
        goto out;
    }
    /* Committed: from here on it is this execution's sandbox. */
    close_fd(&fds[0]);
    close_fd(&fds[1]);
    if (interp_args != NULL)
        live.notify_fd = recv_notify(p->ctl);
    close_fd(&p->ctl);
    live.pidfd = p->pidfd;
    live.rep_r = p->rep_r;
    live.out_r = p->out_r;
    live.err_r = p->err_r;
    live.cg = p->cg;
    live.cg_made = p->cg_made;
    p->pidfd = p->rep_r = p->out_r = p->err_r = -1;
    p->cg_made = false;
    err = sbx_live_supervise(p->ctx, &live, job, res, eb);
    if (live.pidfd >= 0) {
        /* answered from the frozen sandbox: what is left to kill and reap goes with p */
        p->pidfd = live.pidfd;
        p->cg = live.cg;
        p->cg_made = live.cg_made;
        if (rest != NULL) {
            *rest = p;
            p = NULL;
        }
    }
out:
    close_fd(&fds[0]);
    close_fd(&fds[1]);
    free(m);
    sbx_park_free(p);
    return err;
}
