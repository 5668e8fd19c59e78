/* Child side of a zygote-forked sandbox (zchild.c), shared by the supervisor's library and the
 * zygote's extension module. */
#ifndef KILN_SANDBOX_ZCHILD_H
#define KILN_SANDBOX_ZCHILD_H

#include "sandbox/sbx_int.h"
#include "sandbox/zproto.h"

/* Where the zygote's extension and zygote.py are bound read-only inside the zygote. */
#define SBX_ZYGOTE_EXT_DIR "/etc/kiln-zygote"

/* The fds a job brings (-1 when absent). */
struct sbx_zfds {
    int out, err, tree, in;
    int chan; /* kept open (the only fd above 2) for the caller to report ZP_STARTED */
};

/* Right after the fork, once the supervisor has attached the cgroups: fresh cgroup, mount,
 * network, IPC and UTS namespaces, a fresh masked /proc, lo up. 0 or -errno with *stage set. */
int sbx_zchild_isolate(int *stage);

/* When the job arrives: everything between "isolated" and the user's code (see zchild.c).
 * Consumes fds but chan. 0 or -errno with *stage set; on success seccomp is loaded and only
 * 0-2, chan and *notify are open: the caller hands *notify (the filter's notification fd, or -1
 * where the kernel gave none) to the supervisor, then closes both before any user code. */
int sbx_zchild_enter(const struct zp_job *j, const struct sbx_zfds *fds,
                     const struct sock_fprog *prog, int landlock_abi, int cap_last, int *stage,
                     int *notify);

#endif
