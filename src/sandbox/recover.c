/* Start-up recovery: a kiln process killed with SIGKILL (or a crash) leaves its sandboxes'
 * cgroups and its workspaces' tmpfs mounts behind (the sandboxes themselves die with it through
 * PR_SET_PDEATHSIG). Their names carry the owner's pid; only those of dead pids are removed, so
 * a live kiln sharing the run directory or the cgroup parents is never touched. */
#include "sandbox/sbx_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* <slot>-<pid>-<random>: the pid, or -1 when the name is not a workspace's. */
static long ws_owner(const char *name)
{
    char *end;
    long pid;

    errno = 0;
    strtoul(name, &end, 10);
    if (errno != 0 || end == name || *end != '-')
        return -1;
    name = end + 1;
    pid = strtol(name, &end, 10);
    if (errno != 0 || end == name || *end != '-' || pid <= 0 || pid > INT_MAX)
        return -1;
    return pid;
}

static void recover_workspaces(const struct sbx_ctx *ctx)
{
    DIR *d = opendir(ctx->ws_dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        long pid = ws_owner(e->d_name);
        struct stat st;
        if (pid < 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        /* As root the workspace is its own tmpfs: detach it (no walk of what the sandbox left),
         * then remove the empty mount point. Unprivileged leftovers are plain directories that
         * the next sbx_workspace_free() of that name would never see: left for the operator
         * rather than walked here. */
        char *path = xasprintf("%s/%s", ctx->ws_dir, e->d_name);
        if (ctx->root)
            umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
        unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        free(path);
    }
    closedir(d);
}

void sbx_ctx_recover(struct sbx_ctx *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->root)
        sbx_cg_recover(&ctx->cg);
    recover_workspaces(ctx);
}
