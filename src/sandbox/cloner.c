/* The parked sandboxes' cloner (park.h): a helper process that makes the clone3() of every parked
 * sandbox in the server's stead.
 *
 * Why: a parked sandbox's init was a copy-on-write clone of the whole server, and a clone
 * write-protects every private page of the process it copies. After each pool refill the server's
 * threads took a page fault on the first write to each page they touched again — ~120 per warm js
 * request, ~35 µs each on a paravirtualised host, ~4 ms of the request's ~12 (bench/README.md).
 * The cloner is itself a copy of the server, made once by the pool's filler thread before it
 * builds anything; what it clones shares the cloner's pages, which nobody writes.
 *
 * How: the filler sends the plan (sbx_int.h struct sbx_plan and struct sbx_park_plan, by value)
 * and the fds it names over a SOCK_SEQPACKET pair; the cloner puts the fds it received into the
 * plan and calls clone3() with CLONE_PARENT, so that init is the filler thread's child exactly as
 * before (waitid on its pidfd, its parent-death signal), and sends back init's pid and pidfd. The
 * plan's pointers (the context, the kind's interpreter job and bootstrap) are valid in the cloner
 * because they were made before it was and outlive it (the pool frees them after stopping it); a
 * per-call object of the server is never pointed to (park.c).
 *
 * The cloner is a fork of a multithreaded process: raw system calls and stack memory only, as in
 * child.c. It exits when its socket is closed, and dies with the filler thread. */
#include "sandbox/park.h"

#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/xmalloc.h"

#define CLONER_MAGIC 0x6b636c6eu /* "kcln" */

/* The fds a plan names, in message order. */
enum { CL_SYNC, CL_REPORT, CL_OUT, CL_ERR, CL_CTL, CL_IN0, CL_IN1, CL_CGROUP, CL__N };

struct cl_req {
    uint32_t magic;
    uint32_t present; /* bit i: fd i (CL_*) travels with the message, in order */
    uint64_t flags;   /* clone3's (the cloner adds CLONE_PARENT and CLONE_PIDFD) */
    struct sbx_plan plan;
    struct sbx_park_plan park;
};

struct cl_resp {
    int32_t pid; /* or -errno */
};

struct sbx_cloner {
    pthread_mutex_t mu; /* one request at a time on sock */
    int sock, pidfd;
};

static void __attribute__((noreturn)) cloner_main(int sock)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (sock > 0)
        close_range(0, (unsigned)sock - 1, 0);
    close_range((unsigned)sock + 1, ~0U, 0);
    for (;;) {
        struct cl_req rq;
        struct cl_resp rs = {-EPROTO};
        int fds[CL__N], f[CL__N], pidfd = -1;
        size_t nfds = 0, k = 0;
        ssize_t n = sbx_recv_fds(sock, &rq, sizeof rq, 0, fds, CL__N, &nfds);

        if (n == 0)
            _exit(0);
        if (n < 0)
            _exit(1);
        if ((size_t)n == sizeof rq && rq.magic == CLONER_MAGIC &&
            (size_t)__builtin_popcount(rq.present) == nfds && rq.present < (1u << CL__N)) {
            struct clone_args args;
            long pid;
            for (int i = 0; i < CL__N; i++)
                f[i] = rq.present & (1u << i) ? fds[k++] : -1;
            rq.plan.sync_r = f[CL_SYNC];
            rq.plan.report_w = f[CL_REPORT];
            rq.plan.out_w = f[CL_OUT];
            rq.plan.err_w = f[CL_ERR];
            rq.plan.stdin_fd = -1;
            rq.park.ctl_fd = f[CL_CTL];
            rq.park.interp_in[0] = f[CL_IN0];
            rq.park.interp_in[1] = f[CL_IN1];
            rq.plan.park = &rq.park;
            memset(&args, 0, sizeof args);
            args.flags = (rq.flags & ~(uint64_t)CLONE_INTO_CGROUP) | CLONE_PARENT | CLONE_PIDFD;
            args.pidfd = (uint64_t)(uintptr_t)&pidfd;
            if (f[CL_CGROUP] >= 0) {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t)f[CL_CGROUP];
            }
            pid = syscall(SYS_clone3, &args, sizeof args);
            if (pid == 0)
                sbx_child_init(&rq.plan);
            rs.pid = pid < 0 ? -errno : (int32_t)pid;
        }
        sbx_send_fd(sock, &rs, sizeof rs, rs.pid > 0 ? pidfd : -1, 0);
        if (pidfd >= 0)
            close(pidfd);
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
    }
}

enum kiln_err sbx_cloner_start(struct sbx_cloner **out, struct errbuf *eb)
{
    struct sbx_cloner *cl;
    struct clone_args args;
    int sv[2], pidfd = -1;
    long pid;

    *out = NULL;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return errbuf_set(eb, KILN_ERR_IO, "socketpair: %s", strerror(errno));
    /* No exit signal, like the sandboxes: nothing else in the server waits for it. */
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        cloner_main(sv[1]);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot start the cloner: %s", strerror(errno));
    }
    cl = xcalloc(1, sizeof *cl);
    pthread_mutex_init(&cl->mu, NULL);
    cl->sock = sv[0];
    cl->pidfd = pidfd;
    *out = cl;
    return KILN_OK;
}

long sbx_cloner_clone(struct sbx_cloner *cl, uint64_t flags, int cgroup_fd,
                      const struct sbx_plan *plan, int *pidfd)
{
    struct cl_req rq;
    struct cl_resp rs;
    const struct sbx_park_plan *pk = plan->park;
    int in[CL__N] = {plan->sync_r, plan->report_w,   plan->out_w,      plan->err_w,
                     pk->ctl_fd,   pk->interp_in[0], pk->interp_in[1], cgroup_fd};
    int fds[CL__N], got[1];
    size_t nfds = 0, ngot = 0;
    ssize_t n;
    long rc;

    *pidfd = -1;
    memset(&rq, 0, sizeof rq);
    rq.magic = CLONER_MAGIC;
    rq.flags = flags;
    rq.plan = *plan;
    rq.park = *pk;
    for (int i = 0; i < CL__N; i++)
        if (in[i] >= 0) {
            rq.present |= 1u << i;
            fds[nfds++] = in[i];
        }
    pthread_mutex_lock(&cl->mu);
    if (cl->sock < 0) {
        rc = -ENOTCONN;
        goto out;
    }
    rc = sbx_send_fds(cl->sock, &rq, sizeof rq, fds, nfds, 0);
    if (rc < 0)
        goto gone;
    n = sbx_recv_fds(cl->sock, &rs, sizeof rs, 0, got, 1, &ngot);
    if (n != (ssize_t)sizeof rs || (rs.pid > 0) != (ngot == 1)) {
        for (size_t i = 0; i < ngot; i++)
            close(got[i]);
        rc = n < 0 ? n : -EPROTO;
        goto gone;
    }
    rc = rs.pid;
    if (ngot == 1)
        *pidfd = got[0];
    goto out;
gone:
    /* A cloner that cannot answer is of no more use: the caller clones by itself from now. */
    close(cl->sock);
    cl->sock = -1;
out:
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

void sbx_cloner_stop(struct sbx_cloner *cl)
{
    siginfo_t si;

    if (cl == NULL)
        return;
    if (cl->sock >= 0)
        close(cl->sock);
    if (cl->pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, cl->pidfd, SIGKILL, NULL, 0);
        while (syscall(SYS_waitid, P_PIDFD, cl->pidfd, &si, WEXITED | __WALL, NULL) < 0 &&
               errno == EINTR)
            ;
        close(cl->pidfd);
    }
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}
