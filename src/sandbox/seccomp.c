/* The seccomp-bpf filter of every sandboxed program, compiled once per context with libseccomp
 * and exported as raw BPF, so that the child only calls prctl() (libseccomp allocates, which the
 * child must not do). Default allow with a deny-list, isolate-style (an allow-list would have to
 * follow every runtime of 13 languages); the list is the union of isolate's classes, Docker's
 * default profile exclusions and the kernel attack surfaces of research §4. */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* Syscalls denied outright with EPERM, and the attack each stops. */
static const char *const deny_eperm[] = {
    /* reading or steering another process (same uid inside: init, siblings) */
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    /* rebuilding the mount tree; escapes through new mounts; cgroupfs release_agent */
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    /* nested namespaces: full caps in a new user ns reach netfilter and other LPE surface */
    "unshare", "setns",
    /* kernel keyrings are not namespaced: cross-sandbox leaks and a long CVE history */
    "keyctl", "add_key", "request_key",
    /* high-risk kernel surfaces (kCTF: io_uring ~60% of submissions; uffd makes races reliable) */
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register",
    /* system control */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "settimeofday",
    "clock_settime", "adjtimex", "clock_adjtime", "vhangup", "lookup_dcookie", "nfsservctl",
    "uselib",
    /* file handles bypass path checks (the "shocker" container escape) */
    "open_by_handle_at", "name_to_handle_at",
    /* raw port I/O */
    "iopl", "ioperm"};

/* Namespace-creating clone() flags (Docker's mask 0x7E020000), one rule per bit. */
static const unsigned long long clone_ns_flags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                                    CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                                    CLONE_NEWNET};

/* Socket families with no use in a sandbox and a record of kernel bugs. Raw and packet sockets
 * also need CAP_NET_RAW, which nobody holds; this is the second lock. */
static const int deny_families[] = {AF_PACKET, AF_VSOCK, AF_KEY,       AF_ALG,
                                    AF_RDS,    AF_TIPC,  AF_BLUETOOTH, AF_LLC};

/* TIOCSTI injects input into a terminal (CVE-2017-5226); TIOCLINUX is its console sibling. */
static const unsigned long deny_ioctls[] = {TIOCSTI, TIOCLINUX};

static int add_rule(scmp_filter_ctx f, uint32_t action, const char *name, unsigned n,
                    const struct scmp_arg_cmp *cmp)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR)
        return 0; /* not on this architecture: nothing to deny */
    return seccomp_rule_add_array(f, action, nr, n, cmp);
}

static int add_personality_rules(scmp_filter_ctx f)
{
    /* Allow only PER_LINUX (0), PER_LINUX32 (8), UNAME26 (0x20000), their union and the query
     * 0xffffffff (Docker's list): the other bits turn off ASLR (ADDR_NO_RANDOMIZE), map page 0
     * (MMAP_PAGE_ZERO) or make data executable (READ_IMPLIES_EXEC). The argument is an unsigned
     * int, so compare the low 32 bits only. */
    for (unsigned bit = 0; bit < 32; bit++) {
        uint64_t b = 1ull << bit;
        struct scmp_arg_cmp cmp[2] = {
            SCMP_A0(SCMP_CMP_MASKED_EQ, b, b),
            {.arg = 0, .op = SCMP_CMP_NE, .datum_a = 0xffffffffull, .datum_b = 0}};
        int rc;
        if (b == 0x8 || b == 0x20000)
            continue;
        rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "personality", 2, cmp);
        if (rc < 0) /* an older libseccomp refuses two tests of one argument: deny the query */
            rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "personality", 1, cmp);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int add_rules(scmp_filter_ctx f)
{
    int rc;

    for (size_t i = 0; i < sizeof deny_eperm / sizeof deny_eperm[0]; i++) {
        rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), deny_eperm[i], 0, NULL);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < sizeof clone_ns_flags / sizeof clone_ns_flags[0]; i++) {
        struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]);
        rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "clone", 1, &cmp);
        if (rc < 0)
            return rc;
    }
    /* clone3 passes its flags in memory, out of BPF's reach: ENOSYS makes glibc fall back to
     * clone(), whose flags we can inspect (Docker does the same). */
    rc = add_rule(f, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof deny_families / sizeof deny_families[0]; i++) {
        struct scmp_arg_cmp cmp = {
            .arg = 0, .op = SCMP_CMP_EQ, .datum_a = (uint64_t)deny_families[i], .datum_b = 0};
        rc = add_rule(f, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", 1, &cmp);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < sizeof deny_ioctls / sizeof deny_ioctls[0]; i++) {
        /* Masked to 32 bits: the kernel truncates cmd to an int, so a rule on the full 64-bit
         * value would miss TIOCSTI with high bits set (CVE-2019-10063). */
        struct scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffull, deny_ioctls[i]);
        rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &cmp);
        if (rc < 0)
            return rc;
    }
    /* A runner's report of its program's end, for the supervisor (sbx_int.h SBX_DONE_FD); the
     * fd is an int: compared on the low 32 bits. */
    {
        struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffull, SBX_DONE_FD);
        rc = add_rule(f, SCMP_ACT_NOTIFY, "fchown", 1, &cmp);
        if (rc < 0)
            return rc;
    }
    return add_personality_rules(f);
}

bool sbx_is_notify_fd(int fd)
{
    char path[32], link[64];
    ssize_t n;

    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return false;
    link[n] = '\0';
    return strcmp(link, "anon_inode:seccomp notify") == 0;
}

bool sbx_done_recv(int ep, int notify_fd, struct sbx_done *d)
{
    struct seccomp_notif req;

    memset(&req, 0, sizeof req);
    if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
        /* ENOENT: the caller went away meanwhile; anything else: no task left to report */
        if (errno != EAGAIN && errno != EINTR && errno != ENOENT)
            epoll_ctl(ep, EPOLL_CTL_DEL, notify_fd, NULL);
        return false;
    }
    if (req.data.nr != __NR_fchown || (uint32_t)req.data.args[0] != SBX_DONE_FD ||
        req.data.args[1] > 255) {
        sbx_done_refuse(notify_fd, req.id);
        return false;
    }
    d->id = req.id;
    d->status = (int)req.data.args[1];
    return true;
}

void sbx_done_refuse(int notify_fd, uint64_t id)
{
    struct seccomp_notif_resp resp;

    memset(&resp, 0, sizeof resp);
    resp.id = id;
    resp.error = -EBADF;
    ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

enum kiln_err sbx_seccomp_build(struct sbx_ctx *ctx, struct errbuf *eb)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
    enum kiln_err err = KILN_ERR_INTERNAL;
    int mfd = -1, rc;
    off_t size;

    if (f == NULL)
        return errbuf_set(eb, KILN_ERR_NOMEM, "seccomp_init failed");
    /* Only the native architecture: an i386 (int 0x80) or x32 call would be checked against
     * x86_64 numbers and slip through, so any other arch kills the process. */
    rc = seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    /* We set NO_NEW_PRIVS ourselves, earlier, in init. */
    if (rc == 0)
        rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 0);
    if (rc == 0)
        rc = add_rules(f);
    if (rc < 0) {
        errbuf_set(eb, err, "building the seccomp filter: %s", strerror(-rc));
        goto out;
    }
    mfd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
    if (mfd < 0 || seccomp_export_bpf(f, mfd) < 0) {
        errbuf_set(eb, err, "exporting the seccomp filter failed");
        goto out;
    }
    size = lseek(mfd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        errbuf_set(eb, err, "seccomp filter has a bad size (%lld bytes)", (long long)size);
        goto out;
    }
    ctx->bpf = xmalloc((size_t)size);
    if (pread(mfd, ctx->bpf, (size_t)size, 0) != (ssize_t)size) {
        errbuf_set(eb, KILN_ERR_IO, "reading the seccomp filter back failed");
        goto out;
    }
    ctx->bpf_len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
    err = KILN_OK;
out:
    if (mfd >= 0)
        close(mfd);
    seccomp_release(f);
    return err;
}
