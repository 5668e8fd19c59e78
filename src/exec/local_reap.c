/* Start-up recovery of the local backend: sandboxes whose supervisor died (kill -9 of the
 * server) outlive it, because the parent-death signal a sandbox's init sets is cleared when it
 * changes its credentials. Their cgroups stay behind too, named sbx-<supervisor pid>-<seq> under
 * the `kiln` group of our own cgroup in each hierarchy (sandbox/cgroup.c). Here every such group
 * whose supervisor pid is no longer alive is killed (cgroup.kill where v2 has it, else SIGKILL to
 * each member) and removed. Groups of live kiln processes (other instances) are left alone.
 * Then the workspace tmpfs mounts under <run_dir>/ws whose uid slot nobody holds any more (the
 * slot lock, an flock in the host-wide lock directory, died with its holder) are detached. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "exec/exec.h"

/* Whether name is sbx-<pid>-<seq> of a supervisor that is gone. */
static int reap_is_orphan(const char *name)
{
    char *end;
    long pid;

    if (strncmp(name, "sbx-", 4) != 0)
        return 0;
    errno = 0;
    pid = strtol(name + 4, &end, 10);
    if (errno != 0 || end == name + 4 || *end != '-' || pid <= 0)
        return 0;
    if (pid == (long)getpid())
        return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Kill every member of group dir: cgroup.kill, then each pid of cgroup.procs. */
static void reap_kill_group(const char *dir)
{
    char path[4096];
    FILE *f;
    long pid;

    snprintf(path, sizeof path, "%s/cgroup.kill", dir);
    f = fopen(path, "we");
    if (f != NULL) {
        fputs("1", f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    f = fopen(path, "re");
    if (f == NULL)
        return;
    while (fscanf(f, "%ld", &pid) == 1)
        if (pid > 1)
            kill((pid_t)pid, SIGKILL);
    fclose(f);
}

/* Remove the group once the kernel has torn its members down (up to ~2 s). */
static void reap_rmdir(const char *dir)
{
    struct timespec ts = {0, 20 * 1000 * 1000};

    for (int i = 0; i < 100; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        if (errno != EBUSY)
            return;
        reap_kill_group(dir);
        nanosleep(&ts, NULL);
    }
}

/* Scan one `kiln` parent group; pass 0 kills, pass 1 removes. Returns the orphans seen. */
static long reap_scan(const char *parent, int pass)
{
    DIR *d = opendir(parent);
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char dir[4096];
        if (e->d_type != DT_DIR || !reap_is_orphan(e->d_name))
            continue;
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", parent, e->d_name) >= sizeof dir)
            continue;
        if (pass == 0)
            reap_kill_group(dir);
        else
            reap_rmdir(dir);
        n++;
    }
    closedir(d);
    return n;
}

/* The `kiln` parent groups of our cgroup in every hierarchy mounted under /sys/fs/cgroup. */
static size_t reap_parents(char out[][4096], size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[4096];
    size_t n = 0;

    if (f == NULL)
        return 0;
    while (n < cap && fgets(line, sizeof line, f) != NULL) {
        char *c1 = strchr(line, ':'), *c2, *nl;
        const char *mounts[2];
        size_t nm = 0;
        char v1[512];

        if (c1 == NULL || (c2 = strchr(c1 + 1, ':')) == NULL)
            continue;
        *c2 = '\0';
        if ((nl = strchr(c2 + 1, '\n')) != NULL)
            *nl = '\0';
        if (strcmp(c1 + 1, "") == 0) { /* the v2 line "0::/path" */
            mounts[nm++] = "/sys/fs/cgroup/unified";
            mounts[nm++] = "/sys/fs/cgroup";
        } else {
            const char *ctrl = c1 + 1;
            if (strncmp(ctrl, "name=", 5) == 0)
                continue;
            snprintf(v1, sizeof v1, "/sys/fs/cgroup/%s", ctrl);
            mounts[nm++] = v1;
        }
        for (size_t i = 0; i < nm && n < cap; i++) {
            char probe[4096];
            snprintf(probe, sizeof probe, "%s%s/kiln", mounts[i],
                     strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
            if (access(probe, F_OK) == 0) {
                memcpy(out[n++], probe, sizeof probe);
                break;
            }
        }
    }
    fclose(f);
    return n;
}

/* Must match sandbox/sbx_int.h SBX_UID_LOCK_DIR (the slot locks are host-wide). */
#define REAP_UID_LOCK_DIR "/run/kiln-uids"

/* Whether the slot of host uid is free (its lock can be taken): then a workspace of that uid
 * belongs to nobody alive. The lock is taken and released at once. */
static int reap_slot_free(unsigned long uid)
{
    char path[256];
    int fd, fr;

    snprintf(path, sizeof path, "%s/%lu.lock", REAP_UID_LOCK_DIR, uid);
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT;
    fr = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd); /* releases the lock */
    return fr;
}

/* Detach the workspace mounts under <run_dir>/ws/ whose slot is free. Returns how many. */
static long reap_workspaces(const char *run_dir)
{
    char prefix[4096], line[8192];
    FILE *f;
    long n = 0;
    size_t plen;

    if (run_dir == NULL || run_dir[0] != '/')
        return 0;
    plen = (size_t)snprintf(prefix, sizeof prefix, "%s/ws/", run_dir);
    if (plen >= sizeof prefix)
        return 0;
    f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL) {
        /* id parent maj:min root mountpoint opts ... - fstype source superopts */
        char mnt[4096], *sep, *uidp;
        unsigned long uid;
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 || strncmp(mnt, prefix, plen) != 0 ||
            strchr(mnt + plen, '/') != NULL || strchr(mnt, '\\') != NULL)
            continue;
        sep = strstr(line, " - tmpfs ");
        uidp = sep != NULL ? strstr(sep, ",uid=") : NULL;
        if (uidp == NULL)
            continue;
        uid = strtoul(uidp + 5, NULL, 10);
        if (!reap_slot_free(uid))
            continue;
        if (umount2(mnt, MNT_DETACH) == 0) {
            rmdir(mnt);
            n++;
        }
    }
    fclose(f);
    return n;
}

long exec_local_reap_orphans(const char *run_dir)
{
    static const size_t cap = 8;
    char(*parents)[4096] = calloc(cap, sizeof *parents);
    size_t np;
    long n = 0;

    if (parents == NULL)
        return 0;
    np = reap_parents(parents, cap);
    for (size_t i = 0; i < np; i++)
        n += reap_scan(parents[i], 0);
    for (size_t i = 0; i < np; i++)
        reap_scan(parents[i], 1);
    free(parents);
    n += reap_workspaces(run_dir);
    return n;
}
