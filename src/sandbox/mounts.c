/* The new root of a sandbox, built by init inside its fresh mount namespace, then pivoted into
 * with the old root detached: a small tmpfs holding read-only binds of the runtime trees, a
 * generated /etc, a fresh /proc with sensitive paths masked, a minimal /dev, size-capped /tmp and
 * /dev/shm, and the workspace at /mnt/data. Nothing of the host is reachable that is not listed
 * here. Runs in the child: raw syscalls and stack buffers only. */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* /proc files that leak host state or poke the kernel: covered with /dev/null (Docker's masked
 * paths, bubblewrap's cover_proc_dirs). Paths that do not exist on this kernel are skipped. */
static const char *const proc_mask_files[] = {
    "kcore",       "keys",        "timer_list",    "sched_debug", "latency_stats",
    "timer_stats", "kallsyms",    "sysrq-trigger", "config.gz",   "kpagecount",
    "kpageflags",  "kpagecgroup", "kmsg"};
static const char *const proc_mask_dirs[] = {"acpi", "asound", "scsi", "firmware", "driver"};
/* Read-only self-binds: readable by runtimes (Python, the JVM read /proc/sys), never writable. */
static const char *const proc_ro_dirs[] = {"bus", "fs", "irq", "sys"};

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom"};
static const char *const dev_links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};

/* mount_setattr() on path: add set (recursively when rec). */
static int set_attr(const char *path, uint64_t set, bool rec)
{
    struct mount_attr attr = {0};

    attr.attr_set = set;
    if (mount_setattr(AT_FDCWD, path, rec ? AT_RECURSIVE : 0, &attr, sizeof attr) < 0)
        return -errno;
    return 0;
}

/* Create every missing directory of path (absolute, under the new root). */
static int mkdirs(const char *path, size_t from)
{
    char buf[SBX_PATH_MAX];

    if (sbx_strlcpy(buf, path, sizeof buf) >= sizeof buf)
        return -ENAMETOOLONG;
    for (size_t i = from + 1; buf[i] != '\0'; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        buf[i] = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static int write_file(const char *path, const char *text)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t)len)
        rc = -EIO;
    close(fd);
    return rc;
}

/* A read-only, nosuid, nodev bind of src at dst (recursive: submounts are read-only too, which a
 * MS_REMOUNT of the top mount would not give). */
static int bind_ro(const char *src, const char *dst)
{
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -errno;
    return set_attr(dst, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true);
}

/* The parent directories of one bind target, then the target (a dir, a file or a symlink). */
static int place_bind(const char *root, const struct sbx_bind *b)
{
    char dst[SBX_PATH_MAX];
    char *slash;
    int rc;

    if (!sbx_path_join(dst, sizeof dst, root, b->path))
        return -ENAMETOOLONG;
    slash = strrchr(dst, '/');
    *slash = '\0';
    rc = mkdirs(dst, strlen(root));
    *slash = '/';
    if (rc < 0)
        return rc;
    switch (b->kind) {
    case SBX_BIND_SYMLINK:
        return symlink(b->target, dst) < 0 && errno != EEXIST ? -errno : 0;
    case SBX_BIND_DIR:
        rc = mkdir(dst, 0755) < 0 && errno != EEXIST ? -errno : 0;
        break;
    case SBX_BIND_FILE:
        rc = touch(dst);
        break;
    }
    return rc < 0 ? rc : bind_ro(b->path, dst);
}

static int build_etc(const struct sbx_ctx *ctx, const char *root)
{
    static const char *const names[] = {"/etc/passwd", "/etc/group", "/etc/hosts",
                                        "/etc/nsswitch.conf"};
    const char *texts[] = {ctx->etc_passwd, ctx->etc_group, ctx->etc_hosts, ctx->etc_nsswitch};
    char path[SBX_PATH_MAX];
    int rc;

    if (!sbx_path_join(path, sizeof path, root, "/etc"))
        return -ENAMETOOLONG;
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -errno;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!sbx_path_join(path, sizeof path, root, names[i]))
            return -ENAMETOOLONG;
        rc = write_file(path, texts[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int build_proc(const char *root)
{
    static const char *const opts[] = {"hidepid=invisible", "hidepid=2", NULL};
    char proc[SBX_PATH_MAX], p[SBX_PATH_MAX];
    struct stat st;
    int rc = -EINVAL;

    if (!sbx_path_join(proc, sizeof proc, root, "/proc"))
        return -ENAMETOOLONG;
    if (mkdir(proc, 0555) < 0 && errno != EEXIST)
        return -errno;
    /* hidepid: our own PID namespace already hides the host's processes; this also hides init
     * (another uid would be needed to matter, but costs nothing). */
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts[i]) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
    }
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof proc_mask_files / sizeof proc_mask_files[0]; i++) {
        if (!sbx_path_join(p, sizeof p, proc, proc_mask_files[i]) || lstat(p, &st) < 0)
            continue;
        if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0)
            return -errno;
    }
    for (size_t i = 0; i < sizeof proc_mask_dirs / sizeof proc_mask_dirs[0]; i++) {
        if (!sbx_path_join(p, sizeof p, proc, proc_mask_dirs[i]) || lstat(p, &st) < 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=4k,nr_inodes=1,mode=0555") < 0)
            return -errno;
    }
    for (size_t i = 0; i < sizeof proc_ro_dirs / sizeof proc_ro_dirs[0]; i++) {
        if (!sbx_path_join(p, sizeof p, proc, proc_ro_dirs[i]) || lstat(p, &st) < 0)
            continue;
        rc = bind_ro(p, p);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int build_dev(const struct sbx_plan *plan, const char *root)
{
    char dev[SBX_PATH_MAX], p[SBX_PATH_MAX], src[64];
    int rc;

    if (!sbx_path_join(dev, sizeof dev, root, "/dev"))
        return -ENAMETOOLONG;
    if (mkdir(dev, 0755) < 0 && errno != EEXIST)
        return -errno;
    if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755") < 0)
        return -errno;
    /* Host device nodes bound one by one (mknod is impossible in a user namespace, and a bind
     * of the whole host /dev would expose disks and ttys). */
    for (size_t i = 0; i < sizeof dev_nodes / sizeof dev_nodes[0]; i++) {
        if (!sbx_path_join(p, sizeof p, dev, dev_nodes[i]) ||
            !sbx_path_join(src, sizeof src, "/dev", dev_nodes[i]))
            return -ENAMETOOLONG;
        rc = touch(p);
        if (rc < 0)
            return rc;
        if (mount(src, p, NULL, MS_BIND, NULL) < 0)
            return -errno;
        rc = set_attr(p, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < sizeof dev_links / sizeof dev_links[0]; i++) {
        if (!sbx_path_join(p, sizeof p, dev, dev_links[i][0]))
            return -ENAMETOOLONG;
        if (symlink(dev_links[i][1], p) < 0)
            return -errno;
    }
    /* A fresh /dev/shm per sandbox: a shared one leaked data between isolate boxes. */
    if (!sbx_path_join(p, sizeof p, dev, "/shm"))
        return -ENAMETOOLONG;
    if (mkdir(p, 01777) < 0)
        return -errno;
    if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, plan->shm_opts) < 0)
        return -errno;
    return set_attr(dev, MOUNT_ATTR_RDONLY, false);
}

static int build_data(const struct sbx_plan *plan, const char *root)
{
    char p[SBX_PATH_MAX];
    int rc;

    if (!sbx_path_join(p, sizeof p, root, "/tmp"))
        return -ENAMETOOLONG;
    if (mkdir(p, 01777) < 0)
        return -errno;
    if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, plan->tmp_opts) < 0)
        return -errno;
    if (!sbx_path_join(p, sizeof p, root, "/mnt/data"))
        return -ENAMETOOLONG;
    rc = mkdirs(p, strlen(root));
    if (rc < 0)
        return rc;
    /* A parked sandbox gets its workspace at take time (park_child.c); until then /mnt/data is
     * an empty directory of the read-only root. */
    if (plan->park != NULL)
        return 0;
    if (plan->ws_path == NULL) {
        if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, plan->data_opts) < 0)
            return -errno;
        return 0;
    }
    if (mount(plan->ws_path, p, NULL, MS_BIND, NULL) < 0)
        return -errno;
    return set_attr(p, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false);
}

int sbx_mounts_build(const struct sbx_plan *plan, int *stage)
{
    const struct sbx_ctx *ctx = plan->ctx;
    const char *root = ctx->root_dir;
    int rc;

    /* Nothing we mount may propagate back to the host, and no host mount event may reach us. */
    *stage = SBX_ST_PRIVATE;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -errno;
    *stage = SBX_ST_ROOT_TMPFS;
    if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") < 0)
        return -errno;
    *stage = SBX_ST_ETC;
    rc = build_etc(ctx, root);
    if (rc < 0)
        return rc;
    *stage = SBX_ST_BIND;
    for (size_t i = 0; i < ctx->nbinds; i++) {
        rc = place_bind(root, &ctx->binds[i]);
        if (rc < 0)
            return rc;
    }
    if (plan->extra_src != NULL) {
        char dst[SBX_PATH_MAX];
        if (!sbx_path_join(dst, sizeof dst, root, plan->extra_dst))
            return -ENAMETOOLONG;
        rc = mkdirs(dst, strlen(root));
        if (rc == 0)
            rc = bind_ro(plan->extra_src, dst);
        if (rc < 0)
            return rc;
    }
    /* /proc is mounted while the host's is still visible: the kernel refuses a new procfs in a
     * user namespace whose mount tree shows no fully visible one (mount_too_revealing). */
    *stage = SBX_ST_PROC;
    rc = build_proc(root);
    if (rc < 0)
        return rc;
    *stage = SBX_ST_DEV;
    rc = build_dev(plan, root);
    if (rc < 0)
        return rc;
    *stage = SBX_ST_DATA;
    rc = build_data(plan, root);
    if (rc < 0)
        return rc;
    /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves no path
     * back to the host tree (chroot alone would, through open directory fds or "..") . */
    *stage = SBX_ST_PIVOT;
    if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
        chdir("/") < 0)
        return -errno;
    return set_attr("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false);
}

int sbx_mounts_proc(void)
{
    return build_proc("");
}

int sbx_mounts_scratch(const struct sbx_plan *plan)
{
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, plan->tmp_opts) < 0)
        return -errno;
    if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, plan->shm_opts) < 0)
        return -errno;
    return 0;
}
