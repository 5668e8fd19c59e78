/* The file-bytes port (DESIGN.md "ports"): uploaded files, execution outputs and archived state,
 * each under a key kiln generated. A backend is a struct blob_ops chosen once at start-up
 * (BLOB=fs|s3; STYLE.md rule 10).
 *
 * Keys are 1 to BLOB_MAX_SEGMENTS segments joined by '/', each 1 to 64 characters of
 * [A-Za-z0-9_-] (in practice "<session id>/<file id>"), checked by blob_key_valid() at every
 * entry point: no '.', so no ".." and no hidden names — a key can only ever name a file below
 * the backend's root, whatever a client sends. User-chosen file names never become keys.
 *
 * Writes are atomic: bytes stream to a temporary object that becomes visible under its key only
 * at commit (fs: write to a temp name in the same directory, fsync the file, rename, fsync the
 * directory). A crash before commit leaves nothing under the key; recover() removes the
 * temporaries.
 *
 * Thread safety: a struct blob may be used by any number of threads; a writer by one. */
#ifndef KILN_BLOB_BLOB_H
#define KILN_BLOB_BLOB_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Most segments in a key. */
#define BLOB_MAX_SEGMENTS 3

/* Longest key (bytes). */
#define BLOB_MAX_KEY (BLOB_MAX_SEGMENTS * 65)

struct blob;

/* A write in progress; the backend's own struct starts with this. */
struct blob_writer {
    struct blob *blob;
};

/* Called once per stored key by list(). Return non-zero to stop with that error. */
typedef enum kiln_err (*blob_list_fn)(void *arg, const char *key);

/* A backend's operations. "Not found" is KILN_ERR_NOT_FOUND; an invalid key KILN_ERR_INVALID. */
struct blob_ops {
    const char *name; /* "fs", "s3" */

    /* Close the backend and free b. */
    void (*close)(struct blob *b);

    /* Cheap liveness check for /health/detailed. */
    enum kiln_err (*ping)(struct blob *b, struct errbuf *eb);

    /* Start writing key (replacing it at commit if it exists). *w is freed by commit or abort. */
    enum kiln_err (*write_begin)(struct blob *b, const char *key, struct blob_writer **w,
                                 struct errbuf *eb);

    /* Append len bytes. On error the caller still calls write_abort(). */
    enum kiln_err (*write)(struct blob_writer *w, const void *buf, size_t len, struct errbuf *eb);

    /* Make the bytes durable and visible under the key; frees w whatever the result (on error
     * nothing is visible). */
    enum kiln_err (*write_commit)(struct blob_writer *w, struct errbuf *eb);

    /* Like write_commit(), without waiting for the disk (fs: no fsync): the bytes are visible
     * under the key at once and survive a crash of kiln, but after a crash of the machine the
     * key may hold older, partial or no bytes; callers that use it check a hash on read (Python
     * state). NULL in backends where every commit is durable: use write_commit() then. */
    enum kiln_err (*write_commit_nosync)(struct blob_writer *w, struct errbuf *eb);

    /* Drop the bytes written so far; frees w. NULL is a no-op. */
    void (*write_abort)(struct blob_writer *w);

    /* A read-only fd on the bytes of key (for sendfile and Range), with its size; caller closes
     * it. NULL in backends that cannot hand out fds (s3): use read_at() then. */
    enum kiln_err (*open_fd)(struct blob *b, const char *key, int *fd, long long *size,
                             struct errbuf *eb);

    /* Read up to len bytes at offset; *got = 0 at the end. */
    enum kiln_err (*read_at)(struct blob *b, const char *key, long long offset, void *buf,
                             size_t len, size_t *got, struct errbuf *eb);

    /* Size of key in bytes. */
    enum kiln_err (*size)(struct blob *b, const char *key, long long *out, struct errbuf *eb);

    /* Delete key. KILN_ERR_NOT_FOUND when already gone. */
    enum kiln_err (*remove)(struct blob *b, const char *key, struct errbuf *eb);

    /* Call fn for every committed key (start-up recovery: find bytes no record references). */
    enum kiln_err (*list)(struct blob *b, blob_list_fn fn, void *arg, struct errbuf *eb);

    /* Start-up recovery, before any request: remove every temporary a crash left behind.
     * *removed (may be NULL) gets their number. */
    enum kiln_err (*recover)(struct blob *b, long long *removed, struct errbuf *eb);
};

/* The handle every backend embeds first. */
struct blob {
    const struct blob_ops *ops;
};

/* True when key has the shape described at the top of this file. */
bool blob_key_valid(const char *key);

/* Open the local-disk backend under data_dir/blobs (created 0700 if missing). Caller closes
 * with b->ops->close(b). */
enum kiln_err blob_fs_open(const char *data_dir, struct blob **out, struct errbuf *eb);

#endif
