/* Init of a parked sandbox (park.c has the supervisor's side). The sandbox was built up to its
 * new root with no user data: /mnt/data is an empty directory and init still holds every
 * capability of its own user namespace. It optionally starts the pre-started interpreter (fully
 * confined: caps dropped, no_new_privs, Landlock, rlimits, seccomp; blocked reading its stdin),
 * then waits for the take: one message on the control socket carrying the workspace as an O_PATH
 * fd (a detached clone of its mount, made by the supervisor with open_tree), its expected
 * st_dev/st_ino, and the execution. Init checks the fd, attaches the mount at /mnt/data, checks
 * the result again, closes the fd before anything of the user's runs (CVE-2024-21626), confines
 * itself, and then either hands the arguments to the interpreter or runs the steps as a cold
 * init would. Child side: raw syscalls and stack memory only (sbx_int.h). */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/park.h"

static void __attribute__((noreturn)) park_fail(const struct sbx_plan *plan, int stage, int err)
{
    sbx_child_report(plan, SBX_REC_SETUP_FAIL, -1, stage, 0, err < 0 ? -err : err);
    _exit(127);
}

/* The interpreter: a step of its own below init, confined before the take. /mnt/data is not
 * mounted yet, so its Landlock read-write rule sits on /mnt (the parent; the root tmpfs is
 * read-only anyway, so only the workspace mounted there later is writable). */
static void __attribute__((noreturn)) start_interp(const struct sbx_plan *plan)
{
    const struct sbx_park_plan *park = plan->park;
    struct sbx_plan ip = *plan;
    int stage = SBX_ST_CAPS, rc;

    ip.job = park->interp;
    ip.stdin_fd = park->interp_in[0];
    ip.park = NULL;
    /* The take channel's other end is the supervisor's: the interpreter sends it its filter's
     * notification fd there (SBX_DONE_FD) before the execve, long before any take. */
    ip.send_notify = true;
    ip.notify_sock = park->ctl_fd;
    close(park->interp_in[1]);
    rc = sbx_child_confine(&ip, "/mnt", &stage);
    if (rc < 0)
        park_fail(plan, stage, rc);
    sbx_child_run_step(&ip, 0);
}

static int wait_child(pid_t pid, int *status)
{
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == pid) {
            *status = st;
            return 0;
        }
    }
}

/* Limits of the execution on the already running interpreter (init still holds
 * CAP_SYS_RESOURCE in the namespace they share, so hard limits may also go up). */
static int interp_rlimits(pid_t pid, const struct sbx_take_msg *m)
{
    const struct {
        int res;
        long long soft, hard;
    } tab[] = {
        {RLIMIT_NOFILE, m->open_files, m->open_files},
        {RLIMIT_FSIZE, m->file_size_bytes, m->file_size_bytes},
        {RLIMIT_NPROC, m->nproc, m->nproc},
        {RLIMIT_CPU, m->cpu_s + 1, m->cpu_s + 2},
        {RLIMIT_DATA, m->data_bytes > 0 ? m->data_bytes : (long long)RLIM_INFINITY,
         m->data_bytes > 0 ? m->data_bytes : (long long)RLIM_INFINITY},
    };

    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        struct rlimit rl = {(rlim_t)tab[i].soft, (rlim_t)tab[i].hard};
        if (tab[i].res == RLIMIT_CPU && m->cpu_s <= 0)
            continue;
        if (prlimit(pid, tab[i].res, &rl, NULL) < 0)
            return -errno;
    }
    return 0;
}

static bool same_inode(const struct stat *st, const struct sbx_take_msg *m)
{
    return (uint64_t)st->st_dev == m->ws_dev && (uint64_t)st->st_ino == m->ws_ino;
}

/* Receive the take. Returns the byte count, 0 on EOF (the pool destroys us), -errno. */
static ssize_t recv_take(int sock, struct sbx_take_msg *m, int *fds, size_t *nfds)
{
    return sbx_recv_fds(sock, m, sizeof *m, 0, fds, 2, nfds);
}

/* Attach the workspace: the fd must be the inode the supervisor named, and /mnt/data must show
 * that inode afterwards (nothing else got mounted in between). */
static int bind_workspace(int treefd, const struct sbx_take_msg *m)
{
    struct stat st;

    if (fstat(treefd, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || !same_inode(&st, m))
        return -EXDEV;
    if (syscall(SYS_move_mount, treefd, "", AT_FDCWD, "/mnt/data", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return -errno;
    if (stat("/mnt/data", &st) < 0)
        return -errno;
    return same_inode(&st, m) ? 0 : -EXDEV;
}

/* Unpack the strings of a steps-mode take into argv arrays on our stack and run them. */
static void __attribute__((noreturn))
run_taken_steps(const struct sbx_plan *plan, const struct sbx_take_msg *m, int stdin_fd)
{
    const char *ptrs[SBX_TAKE_MAX_STRINGS + SBX_TAKE_MAX_STEPS + 2];
    struct sbx_step steps[SBX_TAKE_MAX_STEPS];
    struct sbx_job job;
    struct sbx_plan p2 = *plan;
    const char *s = m->blob, *end = m->blob + m->blob_len;
    size_t np = 0;

    memset(&job, 0, sizeof job);
    memset(steps, 0, sizeof steps);
    for (uint32_t i = 0; i < m->nsteps; i++) {
        steps[i].argv = &ptrs[np];
        steps[i].stop_on_failure = (m->step_flags[i] & SBX_TAKE_STOP) != 0;
        steps[i].stdout_to_stderr = (m->step_flags[i] & SBX_TAKE_TO_STDERR) != 0;
        for (uint32_t k = 0; k < m->step_argc[i]; k++) {
            ptrs[np++] = s;
            s += strlen(s) + 1;
        }
        ptrs[np++] = NULL;
    }
    job.env = &ptrs[np];
    for (uint32_t k = 0; k < m->nenv; k++) {
        ptrs[np++] = s;
        s += strlen(s) + 1;
    }
    ptrs[np++] = NULL;
    if (s > end)
        park_fail(plan, SBX_ST_TAKE, EINVAL);
    job.steps = steps;
    job.nsteps = m->nsteps;
    p2.job = &job;
    p2.park = NULL;
    p2.stdin_fd = stdin_fd;
    p2.file_size_bytes = m->file_size_bytes;
    p2.open_files = m->open_files;
    p2.nproc = m->nproc;
    p2.cpu_s = m->cpu_s;
    p2.data_bytes = m->data_bytes;
    sbx_child_run_steps(&p2);
    _exit(0);
}

void sbx_park_child(const struct sbx_plan *plan)
{
    const struct sbx_park_plan *park = plan->park;
    struct sbx_take_msg m; /* about 64 KiB: init runs on a copy of a thread stack of MiBs */
    struct pollfd pfd[2];
    int fds[2] = {-1, -1}, rc, stage = SBX_ST_TAKE, status = 0, ipidfd = -1;
    size_t nfds = 0;
    long pid = -1;
    ssize_t n;

    if (park->interp != NULL && park->boot_path != NULL) {
        int bfd = open(park->boot_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        size_t left = strlen(park->boot_text);
        const char *p = park->boot_text;
        if (bfd < 0)
            park_fail(plan, SBX_ST_TMP, errno);
        while (left > 0) {
            ssize_t w = write(bfd, p, left);
            if (w <= 0)
                park_fail(plan, SBX_ST_TMP, errno);
            p += w;
            left -= (size_t)w;
        }
        close(bfd);
    }
    if (park->interp != NULL) {
        /* CLONE_VFORK: we go on only once the interpreter has exec'd, i.e. set its own rlimits
         * and loaded seccomp; the take's prlimit() must come after its setrlimit(). */
        pid = syscall(SYS_clone, CLONE_VFORK | SIGCHLD, 0, NULL, NULL, 0);
        if (pid < 0)
            park_fail(plan, SBX_ST_FORK, errno);
        if (pid == 0)
            start_interp(plan);
        close(park->interp_in[0]);
        ipidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    }
    sbx_child_report(plan, SBX_REC_PARKED, -1, 0, 0, 0);
    /* Parked: wait for the take, or give up when the interpreter dies (the pool then sees our
     * death and recycles the sandbox). */
    pfd[0].fd = park->ctl_fd;
    pfd[0].events = POLLIN;
    pfd[1].fd = ipidfd;
    pfd[1].events = POLLIN;
    for (;;) {
        rc = poll(pfd, ipidfd >= 0 ? 2 : 1, -1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || (ipidfd >= 0 && pfd[1].revents != 0 && pfd[0].revents == 0))
            _exit(1);
        if (pfd[0].revents != 0)
            break;
    }
    n = recv_take(park->ctl_fd, &m, fds, &nfds);
    if (n == 0)
        _exit(0);
    if (n < 0)
        park_fail(plan, SBX_ST_TAKE, (int)n);
    close(park->ctl_fd);
    if ((size_t)n < offsetof(struct sbx_take_msg, blob) || m.magic != SBX_TAKE_MAGIC ||
        (size_t)n != offsetof(struct sbx_take_msg, blob) + m.blob_len || nfds < 1 ||
        m.nsteps > SBX_TAKE_MAX_STEPS || (m.blob_len > 0 && m.blob[m.blob_len - 1] != '\0'))
        park_fail(plan, SBX_ST_TAKE, EINVAL);
    rc = bind_workspace(fds[0], &m);
    close(fds[0]);
    if (rc < 0)
        park_fail(plan, SBX_ST_TAKE, rc);

    if (m.mode == SBX_TAKE_INTERP && pid > 0) {
        const char *p = m.blob;
        size_t left = m.blob_len;
        rc = interp_rlimits((pid_t)pid, &m);
        if (rc < 0)
            park_fail(plan, SBX_ST_RLIMIT, rc);
        rc = sbx_child_confine(plan, "/mnt/data", &stage);
        if (rc < 0)
            park_fail(plan, stage, rc);
        /* The go: the arguments, NUL-terminated each, then EOF. A dead reader is a result
         * (its exit status), not a setup failure. */
        signal(SIGPIPE, SIG_IGN);
        while (left > 0) {
            ssize_t w = write(park->interp_in[1], p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            p += w;
            left -= (size_t)w;
        }
        close(park->interp_in[1]);
        if (wait_child((pid_t)pid, &status) < 0)
            park_fail(plan, SBX_ST_FORK, ECHILD);
        sbx_child_report(plan, SBX_REC_STEP_DONE, 0, 0, status, 0);
        _exit(0);
    }
    /* Steps mode: the interpreter (if any) is not wanted. */
    if (pid > 0) {
        kill((pid_t)pid, SIGKILL);
        wait_child((pid_t)pid, &status);
        close(park->interp_in[1]);
    }
    rc = sbx_child_confine(plan, "/mnt/data", &stage);
    if (rc < 0)
        park_fail(plan, stage, rc);
    run_taken_steps(plan, &m, nfds > 1 ? fds[1] : -1);
}
