/* Landlock, best effort by ABI, as defense in depth under the mount namespace: even a program
 * that found a way around the mount tree could only write to /tmp, /dev/shm and /mnt/data, could
 * not make or accept TCP connections (ABI >= 4), nor reach abstract unix sockets or signal
 * processes outside its own sandbox (ABI >= 6). Runs in the child (raw syscalls only). */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Constants newer than the installed kernel headers (Debian 12 ships 6.1's). */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP    (1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL               (1ULL << 1)
#endif
#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif

/* The ruleset attribute as of ABI 6 (the kernel accepts a shorter size for older ABIs). */
struct sbx_ll_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

#define LL_FS_V1                                                                                   \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |                                 \
     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | \
     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |   \
     LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)
#define LL_READ                                                                                    \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

int sbx_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

static uint64_t fs_rights(int abi)
{
    uint64_t r = LL_FS_V1;
    if (abi >= 2)
        r |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        r |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return r;
}

static int add_path(int ruleset, const char *path, uint64_t access)
{
    struct landlock_path_beneath_attr pb = {0};
    int fd = open(path, O_PATH | O_CLOEXEC);
    long rc;

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    pb.allowed_access = access;
    pb.parent_fd = fd;
    rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
    close(fd);
    return rc < 0 ? -errno : 0;
}

int sbx_landlock_apply(int abi)
{
    return sbx_landlock_apply_at(abi, "/mnt/data");
}

int sbx_landlock_apply_at(int abi, const char *data_dir)
{
    struct sbx_ll_attr attr = {0};
    size_t size = sizeof attr.handled_access_fs;
    uint64_t all = fs_rights(abi);
    uint64_t rw = all & ~(LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK);
    uint64_t dev = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                   LANDLOCK_ACCESS_FS_READ_DIR | (abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0) |
                   (abi >= 5 ? LANDLOCK_ACCESS_FS_IOCTL_DEV : 0);
    int ruleset, rc = 0;

    if (abi <= 0)
        return 0;
    attr.handled_access_fs = all;
    if (abi >= 4) {
        /* Handled with no rule = denied: no TCP bind or connect at all. */
        attr.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) {
        attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
        size = sizeof attr;
    }
    ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0)
        return -errno;
    /* Read and execute everywhere in the new root (it holds only what we bound there). */
    rc = add_path(ruleset, "/", LL_READ);
    if (rc == 0)
        rc = add_path(ruleset, "/tmp", rw);
    if (rc == 0)
        rc = add_path(ruleset, data_dir, rw);
    if (rc == 0)
        rc = add_path(ruleset, "/dev", dev);
    if (rc == 0)
        rc = add_path(ruleset, "/dev/shm", rw);
    if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
        rc = -errno;
    close(ruleset);
    return rc;
}
