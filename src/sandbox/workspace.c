/* Workspaces: the host side of /mnt/data. The riskiest code of a code runner is here, not in the
 * kernel sandbox: Judge0 was escaped twice through symlinks that sandboxed code planted and root
 * then followed (CVE-2024-28185 writing run.sh, CVE-2024-28189 through chown). So every access
 * goes through a directory fd and openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 * RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) with O_NOFOLLOW, only regular files with one link are
 * ever opened for content, the I/O runs under the sandbox's uid (setfsuid, per thread) rather
 * than as root, and nothing is removed by path recursion: as root the workspace is its own tmpfs,
 * detached in one call. The slot (and so the host uid) is taken here, at creation, because files
 * put before the run must already belong to the uid the sandbox user maps to. */
#include "sandbox/sbx_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/park.h"
#include "util/xmalloc.h"

#define WS_RESOLVE  (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
#define WS_NAME_MAX 255
#define WS_PATH_MAX 4096

static int ws_openat2(int dfd, const char *name, int flags, mode_t mode)
{
    struct open_how how = {0};
    long fd;

    how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = WS_RESOLVE;
    do {
        fd = syscall(SYS_openat2, dfd, name, &how, sizeof how);
    } while (fd < 0 && errno == EAGAIN);
    return (int)fd;
}

void sbx_fsid_enter(const struct sbx_workspace *ws, unsigned *old_uid, unsigned *old_gid)
{
    *old_uid = *old_gid = (unsigned)-1;
    if (!ws->ctx->root)
        return;
    /* setfsgid before setfsuid: once fsuid is not 0 we could no longer change fsgid freely. Both
     * affect the calling thread only. */
    *old_gid = (unsigned)setfsgid(ws->slot.gid);
    *old_uid = (unsigned)setfsuid(ws->slot.uid);
}

void sbx_fsid_leave(unsigned old_uid, unsigned old_gid)
{
    if (old_uid == (unsigned)-1)
        return;
    setfsuid(old_uid);
    setfsgid(old_gid);
}

/* slot: NULL takes a slot of its own; else the caller's, borrowed (a parked sandbox's). */
static enum kiln_err ws_create(struct sbx_ctx *ctx, long long size_mb, const struct sbx_slot *slot,
                               struct sbx_workspace **out, struct errbuf *eb)
{
    struct sbx_workspace *ws = xcalloc(1, sizeof *ws);
    unsigned char rnd[8];
    char hex[17];
    enum kiln_err err;

    *out = NULL;
    ws->ctx = ctx;
    ws->dirfd = -1;
    ws->slot.lock_fd = -1;
    if (size_mb <= 0)
        size_mb = ctx->defaults.data_mb > 0 ? ctx->defaults.data_mb : SBX_DEF_DATA_MB;
    if (slot != NULL) {
        ws->slot = *slot;
        ws->slot.lock_fd = -1; /* borrowed: the holder releases it */
    } else {
        err = sbx_slot_acquire(ctx, &ws->slot, eb);
        if (err)
            goto fail;
    }
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        err = errbuf_set(eb, KILN_ERR_IO, "getrandom: %s", strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    /* <slot>-<pid>-<random>: the pid lets sbx_ctx_recover() find the leftovers of a crashed
     * kiln process. */
    ws->path = xasprintf("%s/%u-%d-%s", ctx->ws_dir, ws->slot.n, (int)getpid(), hex);
    if (mkdir(ws->path, 0700) < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "cannot create %s: %s", ws->path, strerror(errno));
        free(ws->path);
        ws->path = NULL;
        goto fail;
    }
    if (ctx->root) {
        /* Its own tmpfs: the size cap holds whatever the sandbox writes, it is owned by the slot
         * uid and 0700 (no other slot can enter), and freeing it is one detach, no path walk. */
        char opts[128];
        snprintf(opts, sizeof opts, "size=%lldm,nr_inodes=65536,mode=0700,uid=%u,gid=%u", size_mb,
                 ws->slot.uid, ws->slot.gid);
        if (mount("tmpfs", ws->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
            err = errbuf_set(eb, KILN_ERR_IO, "cannot mount the workspace tmpfs: %s",
                             strerror(errno));
            goto fail;
        }
        ws->mounted = true;
    }
    ws->dirfd = open(ws->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ws->dirfd < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "cannot open %s: %s", ws->path, strerror(errno));
        goto fail;
    }
    *out = ws;
    return KILN_OK;
fail:
    sbx_workspace_free(ws);
    return err;
}

enum kiln_err sbx_workspace_new(struct sbx_ctx *ctx, long long size_mb, struct sbx_workspace **out,
                                struct errbuf *eb)
{
    return ws_create(ctx, size_mb, NULL, out, eb);
}

enum kiln_err sbx_workspace_new_on(struct sbx_ctx *ctx, long long size_mb,
                                   const struct sbx_slot *slot, struct sbx_workspace **out,
                                   struct errbuf *eb)
{
    return ws_create(ctx, size_mb, slot, out, eb);
}

/* Empty the directory open at dfd without following anything (unprivileged mode, where there is
 * no tmpfs to detach). The sandbox is over, so nothing changes under us; the entries are still
 * untrusted: no symlink is followed, no other filesystem entered. */
static void rm_contents(int dfd, unsigned depth)
{
    char buf[8192];

    if (depth > 256)
        return;
    /* Passes until one removes nothing (removing entries while reading the directory may make
     * getdents skip some); an empty directory still lists "." and "..". */
    for (int pass = 0; pass < 64; pass++) {
        unsigned removed = 0;
        long n;
        lseek(dfd, 0, SEEK_SET);
        while ((n = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(buf + off);
                int sub;
                off += d->d_reclen;
                if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                    continue;
                if (unlinkat(dfd, d->d_name, 0) == 0) {
                    removed++;
                    continue;
                }
                if (errno != EISDIR && errno != EPERM)
                    continue;
                sub = ws_openat2(dfd, d->d_name, O_RDONLY | O_DIRECTORY, 0);
                if (sub < 0 && errno == EACCES && fchmodat(dfd, d->d_name, 0700, 0) == 0)
                    sub = ws_openat2(dfd, d->d_name, O_RDONLY | O_DIRECTORY, 0);
                if (sub >= 0) {
                    fchmod(sub, 0700);
                    rm_contents(sub, depth + 1);
                    close(sub);
                }
                if (unlinkat(dfd, d->d_name, AT_REMOVEDIR) == 0)
                    removed++;
            }
        }
        if (removed == 0)
            return;
    }
}

void sbx_workspace_free(struct sbx_workspace *ws)
{
    if (ws == NULL)
        return;
    if (ws->dirfd >= 0 && !ws->mounted && ws->path != NULL)
        rm_contents(ws->dirfd, 0);
    if (ws->dirfd >= 0)
        close(ws->dirfd);
    if (ws->mounted)
        umount2(ws->path, MNT_DETACH);
    if (ws->path != NULL)
        rmdir(ws->path);
    sbx_slot_release(&ws->slot);
    free(ws->path);
    free(ws);
}

/* A relative path of plain components: no "", ".", "..", no leading "/", no control bytes. */
static bool relpath_ok(const char *p)
{
    size_t comp = 0, len = strlen(p);

    if (len == 0 || len >= WS_PATH_MAX || p[0] == '/')
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            const char *c = p + i - comp;
            if (comp == 0 || comp > WS_NAME_MAX || (comp == 1 && c[0] == '.') ||
                (comp == 2 && c[0] == '.' && c[1] == '.'))
                return false;
            comp = 0;
        } else if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
            return false;
        } else {
            comp++;
        }
    }
    return true;
}

static enum kiln_err copy_in(int fd, const void *buf, size_t len, int src_fd, struct errbuf *eb)
{
    char tmp[65536];
    const char *p = buf;

    if (buf == NULL && src_fd < 0)
        return errbuf_set(eb, KILN_ERR_INVALID, "no content given");
    for (;;) {
        ssize_t n;
        if (buf == NULL) {
            n = read(src_fd, tmp, sizeof tmp);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return errbuf_set(eb, KILN_ERR_IO, "read: %s", strerror(errno));
            if (n == 0)
                return KILN_OK;
            p = tmp;
            len = (size_t)n;
        } else if (len == 0) {
            return KILN_OK;
        }
        while (len > 0) {
            ssize_t w = write(fd, p, len);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return errbuf_set(
                    eb, errno == ENOSPC || errno == EFBIG ? KILN_ERR_TOO_LARGE : KILN_ERR_IO,
                    "write: %s", strerror(errno));
            p += w;
            len -= (size_t)w;
        }
        if (buf != NULL)
            return KILN_OK;
    }
}

enum kiln_err sbx_workspace_put_at(struct sbx_workspace *ws, const char *relpath, const void *buf,
                                   size_t len, int src_fd, long long mtime, struct errbuf *eb)
{
    char path[WS_PATH_MAX];
    char *name, *slash;
    unsigned ou, og;
    int dfd = -1, fd = -1;
    struct stat st;
    enum kiln_err err = KILN_OK;

    if (!relpath_ok(relpath))
        return errbuf_set(eb, KILN_ERR_INVALID, "bad file name in the workspace");
    snprintf(path, sizeof path, "%s", relpath);
    sbx_fsid_enter(ws, &ou, &og);
    dfd = fcntl(ws->dirfd, F_DUPFD_CLOEXEC, 0);
    name = path;
    /* Walk (and create) the parents one component at a time, never following a symlink. */
    while (dfd >= 0 && (slash = strchr(name, '/')) != NULL) {
        int sub;
        *slash = '\0';
        if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST) {
            err = errbuf_set(eb, KILN_ERR_IO, "mkdir %s: %s", relpath, strerror(errno));
            goto out;
        }
        sub = ws_openat2(dfd, name, O_RDONLY | O_DIRECTORY, 0);
        if (sub < 0) {
            err =
                errbuf_set(eb, KILN_ERR_INVALID, "%s: a parent is not a plain directory", relpath);
            goto out;
        }
        close(dfd);
        dfd = sub;
        name = slash + 1;
    }
    if (dfd < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "dup: %s", strerror(errno));
        goto out;
    }
    fd = ws_openat2(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK, 0644);
    if (fd < 0) {
        err = errbuf_set(eb, errno == ELOOP ? KILN_ERR_INVALID : KILN_ERR_IO,
                         "cannot create %s: %s", relpath, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        err = errbuf_set(eb, KILN_ERR_INVALID, "%s is not a plain file", relpath);
        goto out;
    }
    fchmod(fd, 0644);
    err = copy_in(fd, buf, len, src_fd, eb);
    if (!err) {
        struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
        if (mtime > 0) {
            ts[0].tv_sec = ts[1].tv_sec = (time_t)mtime;
            ts[0].tv_nsec = ts[1].tv_nsec = 0;
        }
        futimens(fd, ts);
    }
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    sbx_fsid_leave(ou, og);
    return err;
}

enum kiln_err sbx_workspace_put(struct sbx_workspace *ws, const char *relpath, const void *buf,
                                size_t len, int src_fd, struct errbuf *eb)
{
    return sbx_workspace_put_at(ws, relpath, buf, len, src_fd, 0, eb);
}

struct walk {
    sbx_walk_fn fn;
    void *arg;
    unsigned max_depth, max_entries, entries;
    char rel[WS_PATH_MAX];
};

static enum kiln_err walk_dir(struct walk *w, int dfd, size_t rellen, unsigned depth,
                              struct errbuf *eb)
{
    char buf[8192];
    long n;

    while ((n = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            size_t nl = strlen(d->d_name);
            struct stat lst, st;
            enum kiln_err err;
            int fd;

            off += d->d_reclen;
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            if (w->entries >= w->max_entries)
                return KILN_OK;
            w->entries++;
            if (rellen + nl + 2 > sizeof w->rel)
                continue;
            /* Classify without following: symlinks, FIFOs (a blocking open would hang us),
             * sockets and devices are skipped here and never opened. */
            if (fstatat(dfd, d->d_name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            if (S_ISDIR(lst.st_mode)) {
                if (depth + 1 >= w->max_depth)
                    continue;
                fd = ws_openat2(dfd, d->d_name, O_RDONLY | O_DIRECTORY, 0);
                if (fd < 0)
                    continue;
                if (fstat(fd, &st) == 0 && st.st_ino == lst.st_ino && st.st_dev == lst.st_dev) {
                    size_t save = rellen;
                    memcpy(w->rel + rellen, d->d_name, nl);
                    w->rel[rellen + nl] = '/';
                    w->rel[rellen + nl + 1] = '\0';
                    err = walk_dir(w, fd, rellen + nl + 1, depth + 1, eb);
                    w->rel[save] = '\0';
                    if (err) {
                        close(fd);
                        return err;
                    }
                }
                close(fd);
                continue;
            }
            /* A hard link (nlink > 1) may be another name of a file we must not hand out. */
            if (!S_ISREG(lst.st_mode) || lst.st_nlink != 1)
                continue;
            fd = ws_openat2(dfd, d->d_name, O_RDONLY | O_NONBLOCK, 0);
            if (fd < 0)
                continue;
            /* Re-check on the fd: the entry may have been swapped since fstatat. */
            if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
                st.st_ino != lst.st_ino || st.st_dev != lst.st_dev) {
                close(fd);
                continue;
            }
            memcpy(w->rel + rellen, d->d_name, nl + 1);
            err = w->fn(w->arg, w->rel, fd, &st);
            w->rel[rellen] = '\0';
            close(fd);
            if (err)
                return errbuf_set(eb, err, "walk callback failed on a workspace file");
        }
    }
    return KILN_OK;
}

enum kiln_err sbx_workspace_walk(struct sbx_workspace *ws, unsigned max_depth, unsigned max_entries,
                                 sbx_walk_fn fn, void *arg, struct errbuf *eb)
{
    struct walk *w = xcalloc(1, sizeof *w);
    unsigned ou, og;
    enum kiln_err err = KILN_OK;
    int dfd;

    w->fn = fn;
    w->arg = arg;
    w->max_depth = max_depth;
    w->max_entries = max_entries;
    sbx_fsid_enter(ws, &ou, &og);
    /* A fresh open of the root, so that the directory offset starts at 0 on every walk. */
    dfd = ws_openat2(ws->dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
    if (dfd < 0) {
        err = errbuf_set(eb, KILN_ERR_IO, "cannot open the workspace: %s", strerror(errno));
    } else {
        err = walk_dir(w, dfd, 0, 0, eb);
        close(dfd);
    }
    sbx_fsid_leave(ou, og);
    free(w);
    return err;
}
