/* The local-disk blob backend (BLOB=fs): the bytes of key "a/b" live in DATA_DIR/blobs/a/b.
 *
 * Every access is relative to one directory fd opened at start-up, one validated key segment
 * at a time with O_NOFOLLOW, so neither a key (blob_key_valid()) nor a symlink planted in the
 * tree can lead outside it. Temporaries are ".tmp.<name>.<random>" in the key's own directory
 * (same filesystem, so the final rename is atomic); keys contain no '.', so a temporary can
 * never be mistaken for a key. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/blob.h"
#include "util/xmalloc.h"

#define FS_TMP_PREFIX ".tmp."

struct fs_blob {
    struct blob base;
    int root; /* O_DIRECTORY fd of DATA_DIR/blobs */
};

struct fs_writer {
    struct blob_writer base;
    int dir;       /* the key's directory */
    int fd;        /* the temporary */
    char tmp[128]; /* its name in dir */
    char name[72]; /* the key's last segment */
};

static struct fs_blob *fs_of(struct blob *b)
{
    return (struct fs_blob *)b;
}

/* Open (creating with mkdir when create is set) the directory of key, and copy its last
 * segment to name. The caller closes *dirfd. */
static enum kiln_err fs_dir_of(struct fs_blob *fb, const char *key, bool create, int *dirfd,
                               char name[72], struct errbuf *eb)
{
    char buf[BLOB_MAX_KEY + 1];
    char *seg, *slash;
    int dir;

    if (!blob_key_valid(key))
        return errbuf_set(eb, KILN_ERR_INVALID, "invalid blob key");
    memcpy(buf, key, strlen(key) + 1);
    dir = dup(fb->root);
    if (dir < 0)
        return errbuf_set(eb, KILN_ERR_IO, "dup: %s", strerror(errno));
    seg = buf;
    while ((slash = strchr(seg, '/')) != NULL) {
        int next;
        *slash = '\0';
        if (create && mkdirat(dir, seg, 0700) == 0)
            fsync(dir); /* the new directory's entry must survive a crash too */
        next = openat(dir, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int e = errno;
            close(dir);
            return errbuf_set(eb, e == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO,
                              "blob directory: %s", strerror(e));
        }
        close(dir);
        dir = next;
        seg = slash + 1;
    }
    memcpy(name, seg, strlen(seg) + 1);
    *dirfd = dir;
    return KILN_OK;
}

static void fs_close(struct blob *b)
{
    struct fs_blob *fb = fs_of(b);
    if (fb == NULL)
        return;
    if (fb->root >= 0)
        close(fb->root);
    free(fb);
}

static enum kiln_err fs_ping(struct blob *b, struct errbuf *eb)
{
    struct stat st;
    if (fstat(fs_of(b)->root, &st) != 0 || !S_ISDIR(st.st_mode))
        return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "blob directory is gone");
    return KILN_OK;
}

static enum kiln_err fs_write_begin(struct blob *b, const char *key, struct blob_writer **out,
                                    struct errbuf *eb)
{
    struct fs_writer *w = xcalloc(1, sizeof *w);
    unsigned long long rnd = 0;
    enum kiln_err rc;
    int len;

    w->base.blob = b;
    w->dir = -1;
    w->fd = -1;
    /* fs_remove() drops a session directory once it is empty; should that happen between our
     * mkdir and our create, the create fails with ENOENT: start over. */
    for (int attempt = 0;; attempt++) {
        rc = fs_dir_of(fs_of(b), key, true, &w->dir, w->name, eb);
        if (rc == KILN_ERR_NOT_FOUND && attempt < 3)
            continue;
        if (rc)
            goto fail;
        if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            rc = errbuf_set(eb, KILN_ERR_IO, "getrandom: %s", strerror(errno));
            goto fail;
        }
        len = snprintf(w->tmp, sizeof w->tmp, FS_TMP_PREFIX "%s.%016llx", w->name, rnd);
        if (len < 0 || (size_t)len >= sizeof w->tmp) {
            rc = errbuf_set(eb, KILN_ERR_INTERNAL, "temporary name too long");
            goto fail;
        }
        w->fd = openat(w->dir, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (w->fd >= 0)
            break;
        if (errno != ENOENT || attempt >= 3) {
            rc = errbuf_set(eb, KILN_ERR_IO, "create blob: %s", strerror(errno));
            goto fail;
        }
        close(w->dir);
        w->dir = -1;
    }
    *out = &w->base;
    return KILN_OK;
fail:
    if (w->dir >= 0)
        close(w->dir);
    free(w);
    return rc;
}

static enum kiln_err fs_write(struct blob_writer *bw, const void *buf, size_t len,
                              struct errbuf *eb)
{
    struct fs_writer *w = (struct fs_writer *)bw;
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errbuf_set(eb, errno == ENOSPC ? KILN_ERR_UNAVAILABLE : KILN_ERR_IO,
                              "write blob: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return KILN_OK;
}

static void fs_write_abort(struct blob_writer *bw)
{
    struct fs_writer *w = (struct fs_writer *)bw;

    if (w == NULL)
        return;
    if (w->fd >= 0) {
        close(w->fd);
        unlinkat(w->dir, w->tmp, 0);
    }
    close(w->dir);
    free(w);
}

/* Rename the temporary over the key; with sync, the data is on disk before the name points at
 * it, and the rename before we acknowledge. */
static enum kiln_err fs_commit(struct blob_writer *bw, bool sync, struct errbuf *eb)
{
    struct fs_writer *w = (struct fs_writer *)bw;
    enum kiln_err rc = KILN_OK;

    if (sync && fsync(w->fd) != 0) {
        rc = errbuf_set(eb, KILN_ERR_IO, "fsync blob: %s", strerror(errno));
        goto out;
    }
    if (renameat(w->dir, w->tmp, w->dir, w->name) != 0) {
        rc = errbuf_set(eb, KILN_ERR_IO, "rename blob: %s", strerror(errno));
        goto out;
    }
    close(w->fd);
    w->fd = -1;
    if (sync && fsync(w->dir) != 0)
        rc = errbuf_set(eb, KILN_ERR_IO, "fsync blob directory: %s", strerror(errno));
out:
    fs_write_abort(bw);
    return rc;
}

static enum kiln_err fs_write_commit(struct blob_writer *bw, struct errbuf *eb)
{
    return fs_commit(bw, true, eb);
}

static enum kiln_err fs_write_commit_nosync(struct blob_writer *bw, struct errbuf *eb)
{
    return fs_commit(bw, false, eb);
}

static enum kiln_err fs_open_fd(struct blob *b, const char *key, int *fdp, long long *size,
                                struct errbuf *eb)
{
    char name[72];
    struct stat st;
    int dir = -1, fd;
    enum kiln_err rc;

    rc = fs_dir_of(fs_of(b), key, false, &dir, name, eb);
    if (rc)
        return rc;
    fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dir);
    if (fd < 0)
        return errbuf_set(eb, errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO, "open blob: %s",
                          strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return errbuf_set(eb, KILN_ERR_IO, "blob is not a regular file");
    }
    *fdp = fd;
    if (size != NULL)
        *size = (long long)st.st_size;
    return KILN_OK;
}

static enum kiln_err fs_read_at(struct blob *b, const char *key, long long offset, void *buf,
                                size_t len, size_t *got, struct errbuf *eb)
{
    int fd = -1;
    ssize_t n;
    enum kiln_err rc = fs_open_fd(b, key, &fd, NULL, eb);

    if (rc)
        return rc;
    do
        n = pread(fd, buf, len, (off_t)offset);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return errbuf_set(eb, KILN_ERR_IO, "read blob: %s", strerror(errno));
    *got = (size_t)n;
    return KILN_OK;
}

static enum kiln_err fs_size(struct blob *b, const char *key, long long *out, struct errbuf *eb)
{
    int fd = -1;
    enum kiln_err rc = fs_open_fd(b, key, &fd, out, eb);
    if (rc == KILN_OK)
        close(fd);
    return rc;
}

static enum kiln_err fs_remove(struct blob *b, const char *key, struct errbuf *eb)
{
    char name[72];
    int dir = -1;
    enum kiln_err rc = fs_dir_of(fs_of(b), key, false, &dir, name, eb);

    if (rc)
        return rc;
    if (unlinkat(dir, name, 0) != 0)
        rc = errbuf_set(eb, errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO, "delete blob: %s",
                        strerror(errno));
    else
        fsync(dir);
    close(dir);
    /* "<session>/<file>": drop the session directory when this was its last file, so deleted
     * sessions leave no empty directories behind (fails harmlessly with ENOTEMPTY otherwise; a
     * writer racing with it retries, see fs_write_begin()) */
    const char *slash = strchr(key, '/');
    if (rc == KILN_OK && slash != NULL && strchr(slash + 1, '/') == NULL) {
        char seg[72];
        size_t n = (size_t)(slash - key);
        memcpy(seg, key, n);
        seg[n] = '\0';
        if (unlinkat(fs_of(b)->root, seg, AT_REMOVEDIR) == 0)
            fsync(fs_of(b)->root);
    }
    return rc;
}

/* What a tree walk does with each entry. */
struct fs_walk {
    blob_list_fn fn; /* list: called for each key */
    void *arg;
    bool recover;      /* recover: unlink temporaries, rmdir empty directories */
    long long removed; /* temporaries removed */
};

/* Walk directory dir (its key prefix in prefix, "" at the root), depth levels deep at most. */
static enum kiln_err fs_walk_dir(int dir, const char *prefix, int depth, struct fs_walk *wk,
                                 struct errbuf *eb)
{
    enum kiln_err rc = KILN_OK;
    int dup_fd = dup(dir);
    DIR *d;
    struct dirent *de;

    if (dup_fd < 0)
        return errbuf_set(eb, KILN_ERR_IO, "dup: %s", strerror(errno));
    d = fdopendir(dup_fd);
    if (d == NULL) {
        close(dup_fd);
        return errbuf_set(eb, KILN_ERR_IO, "opendir: %s", strerror(errno));
    }
    /* the dup shares its offset with dir, which an earlier walk left at the end */
    rewinddir(d);
    while (rc == KILN_OK && (de = readdir(d)) != NULL) {
        struct stat st;
        char *key;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (strncmp(de->d_name, FS_TMP_PREFIX, strlen(FS_TMP_PREFIX)) == 0) {
            if (wk->recover && S_ISREG(st.st_mode) && unlinkat(dir, de->d_name, 0) == 0)
                wk->removed++;
            continue;
        }
        key = prefix[0] != '\0' ? xasprintf("%s/%s", prefix, de->d_name) : xstrdup(de->d_name);
        if (S_ISDIR(st.st_mode) && depth > 1) {
            int sub = openat(dir, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                rc = fs_walk_dir(sub, key, depth - 1, wk, eb);
                close(sub);
                if (wk->recover)
                    unlinkat(dir, de->d_name, AT_REMOVEDIR); /* fails unless empty: fine */
            }
        } else if (S_ISREG(st.st_mode) && wk->fn != NULL && blob_key_valid(key)) {
            rc = wk->fn(wk->arg, key);
        }
        free(key);
    }
    closedir(d);
    return rc;
}

static enum kiln_err fs_list(struct blob *b, blob_list_fn fn, void *arg, struct errbuf *eb)
{
    struct fs_walk wk = {.fn = fn, .arg = arg};
    return fs_walk_dir(fs_of(b)->root, "", BLOB_MAX_SEGMENTS, &wk, eb);
}

static enum kiln_err fs_recover(struct blob *b, long long *removed, struct errbuf *eb)
{
    struct fs_walk wk = {.recover = true};
    enum kiln_err rc = fs_walk_dir(fs_of(b)->root, "", BLOB_MAX_SEGMENTS, &wk, eb);
    if (removed != NULL)
        *removed = wk.removed;
    return rc;
}

static const struct blob_ops fs_ops = {
    .name = "fs",
    .close = fs_close,
    .ping = fs_ping,
    .write_begin = fs_write_begin,
    .write = fs_write,
    .write_commit = fs_write_commit,
    .write_commit_nosync = fs_write_commit_nosync,
    .write_abort = fs_write_abort,
    .open_fd = fs_open_fd,
    .read_at = fs_read_at,
    .size = fs_size,
    .remove = fs_remove,
    .list = fs_list,
    .recover = fs_recover,
};

enum kiln_err blob_fs_open(const char *data_dir, struct blob **out, struct errbuf *eb)
{
    struct fs_blob *fb = xcalloc(1, sizeof *fb);
    int top = -1;
    enum kiln_err rc = KILN_OK;

    fb->base.ops = &fs_ops;
    fb->root = -1;
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        rc = errbuf_set(eb, KILN_ERR_IO, "mkdir %s: %s", data_dir, strerror(errno));
        goto fail;
    }
    top = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (top < 0) {
        rc = errbuf_set(eb, KILN_ERR_IO, "open %s: %s", data_dir, strerror(errno));
        goto fail;
    }
    if (mkdirat(top, "blobs", 0700) == 0)
        fsync(top);
    fb->root = openat(top, "blobs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fb->root < 0) {
        rc = errbuf_set(eb, KILN_ERR_IO, "open %s/blobs: %s", data_dir, strerror(errno));
        goto fail;
    }
    close(top);
    *out = &fb->base;
    return KILN_OK;
fail:
    if (top >= 0)
        close(top);
    fs_close(&fb->base);
    return rc;
}
