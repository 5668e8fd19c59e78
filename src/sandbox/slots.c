/* uid slots: as root, each live sandbox runs as its own host uid (uid_base + slot), so that
 * RLIMIT_NPROC, inotify counts, file ownership and signals never cross sandboxes (isolate's
 * box_uid). A slot is held by an flock on SBX_UID_LOCK_DIR/<host uid>.lock: flock conflicts
 * between open file descriptions, so it serialises threads of one process and separate kiln
 * processes alike, and the kernel releases it when a crashed holder dies. The lock is named by
 * the host uid in one host-wide directory, not by slot number under the run directory, so that
 * two kiln instances with different run directories or overlapping uid ranges never run two
 * sandboxes as the same host uid. Lock files are never unlinked: a new
 * inode under the same name would let two holders in. */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

enum kiln_err sbx_slot_acquire(struct sbx_ctx *ctx, struct sbx_slot *out, struct errbuf *eb)
{
    unsigned start = atomic_fetch_add(&ctx->next_slot, 1);

    out->lock_fd = -1;
    if (!ctx->root) {
        /* One uid for everything: nothing to hand out (the weaker unprivileged mode). */
        out->n = start % ctx->slots;
        out->uid = ctx->host_uid;
        out->gid = ctx->host_gid;
        return KILN_OK;
    }
    for (unsigned i = 0; i < ctx->slots; i++) {
        unsigned n = (start + i) % ctx->slots;
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof path, "%s/%u.lock", ctx->slots_dir, ctx->uid_base + n);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return errbuf_set(eb, KILN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            out->n = n;
            out->uid = ctx->uid_base + n;
            out->gid = ctx->uid_base + n;
            out->lock_fd = fd;
            return KILN_OK;
        }
        close(fd);
    }
    return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "all %u sandbox slots are busy", ctx->slots);
}

void sbx_slot_release(struct sbx_slot *slot)
{
    if (slot->lock_fd >= 0)
        close(slot->lock_fd);
    slot->lock_fd = -1;
}
