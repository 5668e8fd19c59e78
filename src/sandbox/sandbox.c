/* The supervisor: creates one sandbox per sbx_run() (cgroups, pipes, clone3 into fresh
 * namespaces), then watches it from one epoll loop (init's pidfd, the output pipes, the report
 * pipe, a wall-clock timerfd, a CPU tick, the cancel fd) and turns what happened into a result.
 * isolate's shape: supervisor (here) → init (PID 1, child.c) → the program. Killing init, or the
 * v2 cgroup, kills the whole sandbox, daemonised grandchildren included. */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/xmalloc.h"

static const char *const status_names[] = {
    [SBX_OK] = "ok",
    [SBX_ERROR] = "error",
    [SBX_TIMEOUT] = "timeout",
    [SBX_OOM] = "oom",
    [SBX_OUTPUT_LIMIT] = "output_limit",
    [SBX_KILLED] = "killed",
};

const char *sbx_status_name(enum sbx_status st)
{
    if ((unsigned)st >= sizeof status_names / sizeof status_names[0])
        return "error";
    return status_names[st];
}

static const char *const stage_names[SBX_ST__COUNT] = {
    [SBX_ST_SYNC] = "waiting for the supervisor",
    [SBX_ST_IDS] = "switching to the sandbox uid",
    [SBX_ST_CGROUPNS] = "entering a cgroup namespace",
    [SBX_ST_PRIVATE] = "making the mount tree private",
    [SBX_ST_ROOT_TMPFS] = "mounting the root tmpfs",
    [SBX_ST_BIND] = "binding the runtime directories",
    [SBX_ST_ETC] = "writing /etc",
    [SBX_ST_PROC] = "mounting /proc",
    [SBX_ST_DEV] = "building /dev",
    [SBX_ST_TMP] = "mounting /tmp",
    [SBX_ST_DATA] = "mounting /tmp and /mnt/data",
    [SBX_ST_PIVOT] = "pivoting into the new root",
    [SBX_ST_NET] = "bringing lo up",
    [SBX_ST_CAPS] = "dropping capabilities",
    [SBX_ST_NNP] = "setting no_new_privs",
    [SBX_ST_LANDLOCK] = "applying Landlock",
    [SBX_ST_FORK] = "forking the program",
    [SBX_ST_STDIO] = "setting up stdio",
    [SBX_ST_RLIMIT] = "setting rlimits",
    [SBX_ST_SECCOMP] = "loading the seccomp filter",
    [SBX_ST_TAKE] = "taking a parked sandbox",
};

const char *sbx_stage_name(int stage)
{
    if (stage < 0 || stage >= SBX_ST__COUNT || stage_names[stage] == NULL)
        return "setup";
    return stage_names[stage];
}

static void stream_append(struct sbx_stream *s, const char *data, size_t n)
{
    size_t room = s->max - s->len, take = n < room ? n : room;

    if (take < n)
        s->truncated = true;
    if (take == 0)
        return;
    if (s->len + take > s->cap) {
        size_t cap = s->cap == 0 ? 4096 : s->cap;
        while (cap < s->len + take)
            cap *= 2;
        if (cap > s->max)
            cap = s->max;
        s->buf = xreallocarray(s->buf, cap, 1);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, take);
    s->len += take;
}

bool sbx_stream_read(struct sbx_stream *s, int chunks)
{
    char tmp[16384];

    for (int i = 0; chunks < 0 || i < chunks; i++) {
        ssize_t n = read(s->fd, tmp, sizeof tmp);
        if (n > 0) {
            stream_append(s, tmp, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        close(s->fd);
        s->fd = -1;
        return false;
    }
    return true;
}

void sbx_stream_finish(struct sbx_stream *s, char **out, size_t *out_len, bool *trunc)
{
    size_t mlen = s->truncated ? strlen(SBX_TRUNCATION_MARKER) : 0;
    char *p = xmalloc(s->len + mlen + 1);

    if (s->len > 0)
        memcpy(p, s->buf, s->len);
    if (mlen > 0)
        memcpy(p + s->len, SBX_TRUNCATION_MARKER, mlen);
    p[s->len + mlen] = '\0';
    *out = p;
    *out_len = s->len + mlen;
    *trunc = s->truncated;
    free(s->buf);
    s->buf = NULL;
}

long long sbx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* uid 1000 inside → the slot's host uid (root mode) or our own uid (unprivileged). Never host
 * root: run by root, bubblewrap and nsjail leave uid 0 inside by default. */
static enum kiln_err write_maps(const struct sbx_ctx *ctx, pid_t pid, const struct sbx_slot *slot,
                                struct errbuf *eb)
{
    char map[64];
    int rc;

    snprintf(map, sizeof map, "%u %u 1\n", SBX_INNER_UID, slot->uid);
    rc = write_proc(pid, "uid_map", map);
    /* Unprivileged, the kernel takes a gid_map only after setgroups is denied (otherwise the
     * sandbox could drop a group that was denying it access: CVE-2014-8989). */
    if (rc == 0 && !ctx->root)
        rc = write_proc(pid, "setgroups", "deny");
    if (rc == 0) {
        snprintf(map, sizeof map, "%u %u 1\n", SBX_INNER_GID, slot->gid);
        rc = write_proc(pid, "gid_map", map);
    }
    if (rc < 0)
        return errbuf_set(eb, KILN_ERR_IO, "cannot write the id maps of the sandbox: %s",
                          strerror(-rc));
    return KILN_OK;
}

static int make_stdin(const struct sbx_job *job)
{
    const char *p = job->stdin_data;
    size_t left = job->stdin_len;
    int fd;

    if (job->stdin_data == NULL)
        return -1;
    /* A sealed memfd, not a pipe: the program reads it at its own pace and we never block
     * writing a large stdin to a program that does not read. */
    fd = memfd_create("kiln-stdin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -2;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -2;
        }
        p += n;
        left -= (size_t)n;
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    return fd;
}

/* The state of one run as the loop sees it. */
struct run {
    int pidfd, ep, wall_fd, tick_fd, rep_r;
    int notify_fd; /* a parked interpreter's seccomp notifications (SBX_DONE_FD), or -1 */
    bool frozen;   /* answered at the interpreter's report, the sandbox frozen, not yet dead */
    bool reported; /* the step's status is the report's: later records do not change it */
    struct sbx_stream out, err;
    struct sbx_cg_run cg;
    bool cg_made;
    bool init_exited, killed, wall_timeout, cpu_timeout, cancelled;
    struct sbx_rec last_step, fail;
    bool have_step, have_fail, any_failed, exec_failed;
    long long cpu_limit_ns;
    long long cpu_base_ns; /* cgroup CPU spent before the execution (a parked sandbox's) */
};

static void kill_all(struct run *r)
{
    if (r->killed)
        return;
    r->killed = true;
    /* cgroup.kill reaches every process of the group at once, even one that forked a moment ago;
     * SIGKILL to init ends the PID namespace, which the kernel then empties. */
    if (r->cg_made)
        sbx_cg_kill(&r->cg);
    syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
}

/* Takes every whole record waiting in the report pipe. Returns false at EOF (every writer gone),
 * true while the pipe may still deliver. */
static bool read_records(struct run *r)
{
    struct sbx_rec rec;

    for (;;) {
        ssize_t n = read(r->rep_r, &rec, sizeof rec);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof rec)
            return n != 0;
        switch (rec.kind) {
        case SBX_REC_STEP_DONE:
            if (r->reported)
                break;
            r->last_step = rec;
            r->have_step = true;
            if (!WIFEXITED(rec.status) || WEXITSTATUS(rec.status) != 0)
                r->any_failed = true;
            break;
        case SBX_REC_EXEC_FAIL:
            r->exec_failed = true;
            break;
        case SBX_REC_SETUP_FAIL:
            if (!r->have_fail)
                r->fail = rec;
            r->have_fail = true;
            break;
        default:
            break;
        }
    }
}

enum { TAG_PIDFD, TAG_OUT, TAG_ERR, TAG_REP, TAG_WALL, TAG_TICK, TAG_CANCEL, TAG_DONE };

/* The interpreter (or anything in the sandbox) called fchown(SBX_DONE_FD, status, -1): as in
 * zygote.c zrun_done(), believed only once the cgroup is frozen; answered from the frozen
 * sandbox when nothing but init and the caller is left in it (the interpreter's own threads
 * die with it), else killed and waited for as when the interpreter exits. The status is the
 * reported one either way. A report that is not taken is refused and the caller goes on. */
static void run_done(struct run *r)
{
    struct sbx_done d;

    if (!sbx_done_recv(r->ep, r->notify_fd, &d))
        return;
    if (r->killed || r->reported || !r->cg_made) {
        sbx_done_refuse(r->notify_fd, d.id);
        return;
    }
    if (sbx_cg_freeze(&r->cg, SBX_FREEZE_MS) && sbx_cg_procs(&r->cg) == 2)
        r->frozen = true;
    else
        kill_all(r);
    memset(&r->last_step, 0, sizeof r->last_step);
    r->last_step.kind = SBX_REC_STEP_DONE;
    r->last_step.status = d.status << 8; /* as W_EXITCODE(status, 0) */
    r->have_step = r->reported = true;
    r->any_failed = d.status != 0;
}

static int ep_add(int ep, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int arm_timer(int fd, long long first_ms, long long interval_ms)
{
    struct itimerspec its = {{interval_ms / 1000, (interval_ms % 1000) * 1000000},
                             {first_ms / 1000, (first_ms % 1000) * 1000000}};
    return timerfd_settime(fd, 0, &its, NULL);
}

static enum kiln_err supervise(struct run *r, const struct sbx_job *job, struct errbuf *eb)
{
    struct epoll_event evs[8];

    if (ep_add(r->ep, r->pidfd, TAG_PIDFD) < 0 || ep_add(r->ep, r->out.fd, TAG_OUT) < 0 ||
        ep_add(r->ep, r->err.fd, TAG_ERR) < 0 || ep_add(r->ep, r->rep_r, TAG_REP) < 0 ||
        ep_add(r->ep, r->wall_fd, TAG_WALL) < 0 ||
        (r->tick_fd >= 0 && ep_add(r->ep, r->tick_fd, TAG_TICK) < 0) ||
        (job->cancel_fd >= 0 && ep_add(r->ep, job->cancel_fd, TAG_CANCEL) < 0) ||
        (r->notify_fd >= 0 && ep_add(r->ep, r->notify_fd, TAG_DONE) < 0))
        return errbuf_set(eb, KILN_ERR_INTERNAL, "epoll_ctl: %s", strerror(errno));
    while (!r->init_exited && !r->frozen) {
        int n = epoll_wait(r->ep, evs, 8, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errbuf_set(eb, KILN_ERR_INTERNAL, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            uint64_t ticks;
            switch (evs[i].data.u64) {
            case TAG_PIDFD:
                r->init_exited = true;
                break;
            case TAG_OUT:
            case TAG_ERR: {
                struct sbx_stream *s = evs[i].data.u64 == TAG_OUT ? &r->out : &r->err;
                int fd = s->fd;
                if (!sbx_stream_read(s, 4))
                    epoll_ctl(r->ep, EPOLL_CTL_DEL, fd, NULL);
                break;
            }
            case TAG_REP:
                /* At EOF (init closed its end on the way out) the pipe stays readable: drop it,
                 * or the loop spins until the pidfd reports init's exit. */
                if (!read_records(r))
                    epoll_ctl(r->ep, EPOLL_CTL_DEL, r->rep_r, NULL);
                if (r->have_fail)
                    kill_all(r);
                break;
            case TAG_WALL:
                if (read(r->wall_fd, &ticks, sizeof ticks) < 0)
                    ticks = 0;
                if (!r->killed) {
                    r->wall_timeout = true;
                    kill_all(r);
                }
                epoll_ctl(r->ep, EPOLL_CTL_DEL, r->wall_fd, NULL);
                break;
            case TAG_TICK:
                if (read(r->tick_fd, &ticks, sizeof ticks) > 0 && !r->killed &&
                    sbx_cg_cpu_ns(&r->cg) - r->cpu_base_ns >= r->cpu_limit_ns) {
                    r->cpu_timeout = true;
                    kill_all(r);
                }
                break;
            case TAG_CANCEL:
                r->cancelled = true;
                kill_all(r);
                epoll_ctl(r->ep, EPOLL_CTL_DEL, job->cancel_fd, NULL);
                break;
            case TAG_DONE:
                run_done(r);
                break;
            default:
                break;
            }
        }
    }
    return KILN_OK;
}

/* Reap init (it is our clone child with no exit signal, so no waitpid(-1) elsewhere in the
 * process can steal it). Its rusage covers every process of the sandbox. */
static int reap(int pidfd, int *status, struct rusage *ru)
{
    siginfo_t si;

    memset(&si, 0, sizeof si);
    for (;;) {
        long rc = syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | __WALL, ru);
        if (rc == 0)
            break;
        if (errno != EINTR)
            return -errno;
    }
    *status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
    return 0;
}

static void classify(struct run *r, const struct sbx_limits *lim, long long oom_kills,
                     long long cpu_ms, struct sbx_result *res)
{
    int st = r->last_step.status;
    bool signaled = r->have_step && WIFSIGNALED(st);
    int sig = signaled ? WTERMSIG(st) : 0;

    res->exit_code = !r->have_step ? -1 : signaled ? -1 : WEXITSTATUS(st);
    res->signal = sig;
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
        /* Any process of the sandbox killed by the memory cgroup means the execution hit its
         * limit, even when the main program survived a child's death and exited 0. */
        res->status = SBX_OOM;
        snprintf(res->note, sizeof res->note, "Memory limit of %lld MiB exceeded", lim->memory_mb);
    } else if (sig == SIGXFSZ || (r->have_step && !signaled && WEXITSTATUS(st) == 128 + SIGXFSZ)) {
        /* The shell's way to report a child killed by SIGXFSZ is exit status 128 + 25. */
        res->status = SBX_OUTPUT_LIMIT;
        snprintf(res->note, sizeof res->note, "File size limit of %lld MiB exceeded",
                 lim->file_size_mb);
    } else if (r->have_step && !r->any_failed) {
        res->status = SBX_OK;
    } else {
        res->status = SBX_ERROR;
    }
    if (!r->have_step && res->status != SBX_ERROR)
        res->signal = SIGKILL;
}

static void run_close(struct run *r)
{
    int fds[] = {r->pidfd, r->ep,     r->wall_fd, r->tick_fd,
                 r->rep_r, r->out.fd, r->err.fd,  r->notify_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(r->out.buf);
    free(r->err.buf);
    if (r->cg_made)
        sbx_cg_destroy(&r->cg);
}

/* The epoll set, the wall-clock timer and the CPU tick of one run. */
static enum kiln_err run_timers(struct run *r, const struct sbx_limits *lim, struct errbuf *eb)
{
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    r->wall_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (r->ep < 0 || r->wall_fd < 0 || arm_timer(r->wall_fd, lim->wall_ms, 0) < 0)
        return errbuf_set(eb, KILN_ERR_IO, "epoll/timerfd: %s", strerror(errno));
    r->cpu_limit_ns = lim->cpu_ms * 1000000LL;
    if (r->cg_made && sbx_cg_cpu_ns(&r->cg) >= 0) {
        r->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (r->tick_fd < 0 || arm_timer(r->tick_fd, SBX_TICK_MS, SBX_TICK_MS) < 0)
            return errbuf_set(eb, KILN_ERR_IO, "timerfd: %s", strerror(errno));
    }
    return KILN_OK;
}

/* From the moment init runs the job: supervise, reap, collect and classify. err is the error
 * of the steps before (the sandbox is killed and reaped then). */
static enum kiln_err run_finish(struct run *r, const struct sbx_job *job,
                                const struct sbx_limits *lim, long long t0, enum kiln_err err,
                                struct sbx_result *res, struct errbuf *eb)
{
    long long peak_kb = -1, oom_kills = -1, cpu_ns;
    struct rusage ru;
    int status = 0;

    memset(&ru, 0, sizeof ru);
    if (!err)
        err = supervise(r, job, eb);
    if (err)
        kill_all(r);
    if (r->frozen && !r->killed) {
        /* answered now; the caller kills and reaps (sbx_live_supervise) */
    } else if (reap(r->pidfd, &status, &ru) < 0 && !err) {
        err = errbuf_set(eb, KILN_ERR_INTERNAL, "waitid: %s", strerror(errno));
    }
    res->wall_ms = sbx_now_ms() - t0;
    /* Every process of the sandbox is gone with init, or frozen: take what is left in the
     * pipes (non-blocking). */
    if (r->out.fd >= 0)
        sbx_stream_read(&r->out, -1);
    if (r->err.fd >= 0)
        sbx_stream_read(&r->err, -1);
    (void)read_records(r);
    if (err)
        return err;
    if (r->have_fail)
        return errbuf_set(eb, KILN_ERR_INTERNAL, "sandbox setup failed while %s: %s",
                          sbx_stage_name(r->fail.stage), strerror(r->fail.err));
    cpu_ns = r->cg_made ? sbx_cg_cpu_ns(&r->cg) : -1;
    if (cpu_ns >= 0)
        cpu_ns -= r->cpu_base_ns;
    if (cpu_ns < 0)
        cpu_ns = ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
                 ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
    res->cpu_ms = cpu_ns / 1000000;
    if (r->cg_made)
        sbx_cg_stats(&r->cg, &peak_kb, &oom_kills);
    res->memory_peak_kb = peak_kb >= 0 ? peak_kb : ru.ru_maxrss;
    if (!r->have_step && !r->killed && oom_kills <= 0)
        return errbuf_set(eb, KILN_ERR_INTERNAL, "sandbox init ended without a report (status %d)",
                          status);
    classify(r, lim, oom_kills, res->cpu_ms, res);
    sbx_stream_finish(&r->out, &res->out, &res->out_len, &res->out_truncated);
    sbx_stream_finish(&r->err, &res->err, &res->err_len, &res->err_truncated);
    return KILN_OK;
}

enum kiln_err sbx_live_supervise(const struct sbx_ctx *ctx, struct sbx_live *live,
                                 const struct sbx_job *job, struct sbx_result *res,
                                 struct errbuf *eb)
{
    static const char *const empty_env[] = {NULL};
    struct sbx_limits lim;
    struct sbx_job job_copy = *job;
    struct run r;
    enum kiln_err err;

    memset(res, 0, sizeof *res);
    memset(&r, 0, sizeof r);
    r.pidfd = live->pidfd;
    r.rep_r = live->rep_r;
    r.out.fd = live->out_r;
    r.err.fd = live->err_r;
    r.notify_fd = live->notify_fd;
    r.ep = r.wall_fd = r.tick_fd = -1;
    r.cg = live->cg;
    r.cg_made = live->cg_made;
    r.cpu_base_ns = live->cpu_base_ns;
    live->pidfd = live->rep_r = live->out_r = live->err_r = live->notify_fd = -1;
    live->cg_made = false;
    memset(&live->cg, 0, sizeof live->cg);
    live->cg.v2_fd = -1;
    if (job_copy.env == NULL)
        job_copy.env = empty_env;
    sbx_limits_resolve(ctx, &job->limits, &lim);
    r.out.max = lim.stdout_max;
    r.err.max = lim.stderr_max;
    err = run_timers(&r, &lim, eb);
    err = run_finish(&r, &job_copy, &lim, live->t0_ms, err, res, eb);
    if (r.frozen && !r.killed) {
        /* the frozen sandbox goes back to the caller, to be killed off the answer's path */
        live->pidfd = r.pidfd;
        live->cg = r.cg;
        live->cg_made = r.cg_made;
        r.pidfd = -1;
        r.cg_made = false;
    }
    run_close(&r);
    if (err)
        sbx_result_clear(res);
    return err;
}

static enum kiln_err check_job(const struct sbx_job *job, struct errbuf *eb)
{
    if (job->nsteps == 0 || job->steps == NULL)
        return errbuf_set(eb, KILN_ERR_INVALID, "a job needs at least one step");
    for (size_t i = 0; i < job->nsteps; i++) {
        const char *const *argv = job->steps[i].argv;
        if (argv == NULL || argv[0] == NULL || argv[0][0] != '/')
            return errbuf_set(eb, KILN_ERR_INVALID, "step %zu: argv[0] must be an absolute path",
                              i);
    }
    return KILN_OK;
}

enum kiln_err sbx_run(struct sbx_ctx *ctx, const struct sbx_job *job, struct sbx_result *res,
                      struct errbuf *eb)
{
    static const char *const empty_env[] = {NULL};
    struct sbx_limits lim;
    struct sbx_slot own_slot = {0, 0, 0, -1};
    const struct sbx_slot *slot;
    struct sbx_plan plan;
    struct sbx_job job_copy;
    struct run r;
    struct clone_args args;
    int sync_p[2] = {-1, -1}, rep_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    int stdin_fd = -1;
    long long t0 = sbx_now_ms();
    enum kiln_err err;
    long pid;

    memset(res, 0, sizeof *res);
    memset(&r, 0, sizeof r);
    r.pidfd = r.ep = r.wall_fd = r.tick_fd = r.rep_r = r.out.fd = r.err.fd = r.notify_fd = -1;
    r.cg.v2_fd = -1;
    err = check_job(job, eb);
    if (err)
        return err;
    if (job->ws != NULL && job->ws->ctx != ctx)
        return errbuf_set(eb, KILN_ERR_INVALID, "the workspace belongs to another context");
    sbx_limits_resolve(ctx, &job->limits, &lim);
    job_copy = *job;
    if (job_copy.env == NULL)
        job_copy.env = empty_env;

    /* The uid slot: the workspace's (its files belong to that uid), or one of our own. */
    if (job->ws != NULL) {
        slot = &job->ws->slot;
    } else {
        err = sbx_slot_acquire(ctx, &own_slot, eb);
        if (err)
            return err;
        slot = &own_slot;
    }
    if (ctx->root) {
        err = sbx_cg_create(&ctx->cg, atomic_fetch_add(&ctx->run_seq, 1), &lim, &r.cg, eb);
        if (err)
            goto out;
        r.cg_made = true;
    }
    if (pipe2(sync_p, O_CLOEXEC) < 0 || pipe2(rep_p, O_CLOEXEC) < 0 ||
        pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "pipe2: %s", strerror(errno));
        goto out;
    }
    stdin_fd = make_stdin(job);
    if (stdin_fd == -2) {
        stdin_fd = -1;
        err = errbuf_set(eb, KILN_ERR_IO, "cannot buffer stdin: %s", strerror(errno));
        goto out;
    }
    r.rep_r = rep_p[0];
    r.out.fd = out_p[0];
    r.err.fd = err_p[0];
    r.out.max = lim.stdout_max;
    r.err.max = lim.stderr_max;
    rep_p[0] = out_p[0] = err_p[0] = -1;
    fcntl(r.rep_r, F_SETFL, O_NONBLOCK);
    fcntl(r.out.fd, F_SETFL, O_NONBLOCK);
    fcntl(r.err.fd, F_SETFL, O_NONBLOCK);
    err = run_timers(&r, &lim, eb);
    if (err)
        goto out;

    memset(&plan, 0, sizeof plan);
    plan.ctx = ctx;
    plan.job = &job_copy;
    plan.ws_path = job->ws != NULL ? job->ws->path : NULL;
    snprintf(plan.tmp_opts, sizeof plan.tmp_opts, "size=%lldm,nr_inodes=65536,mode=1777",
             lim.tmp_mb);
    snprintf(plan.shm_opts, sizeof plan.shm_opts, "size=%lldm,nr_inodes=4096,mode=1777",
             lim.tmp_mb);
    snprintf(plan.data_opts, sizeof plan.data_opts, "size=%lldm,nr_inodes=65536,mode=0755",
             lim.data_mb);
    plan.sync_r = sync_p[0];
    plan.report_w = rep_p[1];
    plan.out_w = out_p[1];
    plan.err_w = err_p[1];
    plan.stdin_fd = stdin_fd;
    plan.file_size_bytes = lim.file_size_mb * 1024 * 1024;
    plan.open_files = lim.open_files;
    plan.nproc = ctx->root ? lim.pids * 2 : lim.pids + 1;
    plan.cpu_s = (lim.cpu_ms + 999) / 1000;
    plan.data_bytes = ctx->root ? 0 : lim.memory_mb * 1024 * 1024;

    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                 CLONE_NEWUTS | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = (uint64_t)(uintptr_t)&r.pidfd;
    args.exit_signal = 0;
    if (r.cg.v2_fd >= 0) {
        /* Born inside the v2 group: no window in which it could fork outside it. */
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)r.cg.v2_fd;
    }
    pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        sbx_child_init(&plan);
    if (pid < 0) {
        err = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot create the sandbox namespaces: %s",
                         strerror(errno));
        goto out;
    }
    close(sync_p[0]);
    close(rep_p[1]);
    close(out_p[1]);
    close(err_p[1]);
    sync_p[0] = rep_p[1] = out_p[1] = err_p[1] = -1;
    if (stdin_fd >= 0)
        close(stdin_fd);
    stdin_fd = -1;

    err = write_maps(ctx, (pid_t)pid, slot, eb);
    if (!err && r.cg_made)
        err = sbx_cg_attach(&r.cg, (pid_t)pid, eb);
    if (!err && write(sync_p[1], "g", 1) != 1)
        err = errbuf_set(eb, KILN_ERR_INTERNAL, "cannot wake the sandbox: %s", strerror(errno));
    close(sync_p[1]);
    sync_p[1] = -1;
    err = run_finish(&r, &job_copy, &lim, t0, err, res, eb);
out : {
    int fds[] = {sync_p[0], sync_p[1], rep_p[0], rep_p[1], out_p[0],
                 out_p[1],  err_p[0],  err_p[1], stdin_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}
    run_close(&r);
    sbx_slot_release(&own_slot);
    if (err)
        sbx_result_clear(res);
    return err;
}

void sbx_result_clear(struct sbx_result *res)
{
    if (res == NULL)
        return;
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
}
