/* The wire between the supervisor (zygote.c), the Python zygote (pyext/kiln_sbx.c) and the
 * children it forks. All messages travel on SOCK_SEQPACKET sockets (one message = one record,
 * fds alongside with SCM_RIGHTS), all between processes of this host built from the same source,
 * so the structs go as they are.
 *
 *   supervisor ── ctl ──► zygote          ZP_INIT (seccomp BPF, once), ZP_FORK (+ the child's
 *                                         channel end); the zygote answers ZP_READY once, after
 *                                         its preloads
 *   supervisor ◄─ chan ─► child           ZP_HELLO (the kernel adds the child's host pid:
 *                                         SO_PASSCRED), ZP_GO (cgroups attached), ZP_READY
 *                                         (isolated, waiting), ZP_JOB (+ stdout, stderr,
 *                                         workspace tree, stdin), ZP_FAIL, ZP_STARTED (the
 *                                         point of no return: seccomp is on, the program
 *                                         runs next; before it a failure is retried cold;
 *                                         + the filter's notification fd when the kernel gave
 *                                         one: SBX_DONE_FD, sbx_int.h)
 *   zygote ──── chan ───► supervisor      ZP_EXIT (the child's wait status, after reaping it)
 *
 * The child closes its channel before any user code runs; the zygote keeps its own end only to
 * report the exit status. */
#ifndef KILN_SANDBOX_ZPROTO_H
#define KILN_SANDBOX_ZPROTO_H

#include <stdint.h>

enum zp_kind {
    ZP_INIT = 1,
    ZP_FORK,
    ZP_HELLO,
    ZP_GO,
    ZP_READY,
    ZP_JOB,
    ZP_FAIL,
    ZP_EXIT,
    ZP_STARTED,
};

/* Every message starts with this; short messages are only this. a/b: FAIL stage/errno, EXIT
 * wait status, FORK flags. */
struct zp_hdr {
    uint32_t kind;
    int32_t a, b;
};

/* ZP_FORK flag (in a): the child is for a request waiting now: no rehearsal before READY. */
#define ZP_FORK_NOW 1
/* ZP_FORK flag (in a): also exercise the preloaded libraries (zygote.py _warm: a DataFrame, a
 * plot) before READY, so that a pandas or matplotlib job finds their pages already copied. */
#define ZP_FORK_FULL 2

/* ZP_INIT: then len bytes of struct sock_filter. */
struct zp_init {
    struct zp_hdr h;
    int32_t landlock_abi, cap_last;
    uint32_t bpf_len; /* instructions */
};

/* ZP_JOB: then strlen bytes holding argc + envc NUL-terminated strings (argv first). fds, in
 * order: stdout, stderr, then the workspace tree if has_ws, then stdin if has_stdin. */
struct zp_job {
    struct zp_hdr h;
    uint32_t uid; /* the child's uid in the zygote's user namespace (1000 + slot) */
    int32_t has_ws, has_stdin;
    uint64_t ws_dev, ws_ino; /* what /mnt/data must be once the tree is attached */
    int64_t file_size_bytes, open_files, nproc, cpu_s, data_bytes;
    char tmp_opts[64], shm_opts[64], data_opts[64];
    uint32_t argc, envc, strlen;
};

/* Upper bound of one ZP_JOB or ZP_INIT message. */
#define ZP_MSG_MAX (256 * 1024)

/* The zygote's user namespace: inside uid/gid 0 is the zygote (host: its own slot uid), and
 * every other slot uid maps to itself. A child switches to its workspace's slot uid, then enters
 * a user namespace of its own in which that uid is 1000: its /proc/self/uid_map reads
 * "1000 <host slot uid> 1", as in a cold sandbox. */

#endif
