/* cgroups of the sandboxes: limits and accounting from v1 controllers (this host) or v2 ones
 * where delegated, and the controller-less v2 tree for atomic placement (CLONE_INTO_CGROUP) and
 * the whole-tree kill (cgroup.kill). Groups live under our own cgroup (read from
 * /proc/self/cgroup), never at a hierarchy root, so the limits of our parent (e.g.
 * memory:/process_api/<id>) still bind the sandboxes. No cgroupfs is ever visible inside a
 * sandbox (CVE-2022-0492: release_agent). */
#include "sandbox/sbx_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/xmalloc.h"

#define CG_PARENT "kiln"

static int cg_write(const char *dir, const char *file, const char *val)
{
    char path[PATH_MAX];
    int fd, rc = 0;
    size_t len = strlen(val);

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return -ENAMETOOLONG;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, val, len) != (ssize_t)len)
        rc = -errno;
    close(fd);
    return rc;
}

/* Read a small control file into buf (NUL-terminated); -errno on failure. */
static int cg_read(const char *dir, const char *file, char *buf, size_t size)
{
    char path[PATH_MAX];
    int fd;
    ssize_t n;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return -ENAMETOOLONG;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static long long cg_read_ll(const char *dir, const char *file)
{
    char buf[64];
    char *end;
    long long v;

    if (cg_read(dir, file, buf, sizeof buf) < 0)
        return -1;
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf)
        return -1;
    return v;
}

/* The value of "key N" in a flat keyed file (memory.events, cpu.stat, memory.oom_control). */
static long long cg_read_key(const char *dir, const char *file, const char *key)
{
    char buf[2048];
    size_t klen = strlen(key);
    char *p;

    if (cg_read(dir, file, buf, sizeof buf) < 0)
        return -1;
    for (p = buf; p != NULL && *p != '\0';) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
            char *end;
            long long v;
            errno = 0;
            v = strtoll(p + klen + 1, &end, 10);
            return errno == 0 && end != p + klen + 1 ? v : -1;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* Is name in the comma-separated list? */
static bool list_has(const char *list, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = list, *end = list + len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t l = comma != NULL ? (size_t)(comma - p) : (size_t)(end - p);
        if (l == nlen && memcmp(p, name, nlen) == 0)
            return true;
        p += l + 1;
    }
    return false;
}

/* Our cgroup path in the hierarchy holding ctrl ("" for the v2 line), from /proc/self/cgroup. */
static char *own_cgroup(const char *ctrl)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[1024];
    char *res = NULL;

    if (f == NULL)
        return NULL;
    while (res == NULL && fgets(line, sizeof line, f) != NULL) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        line[strcspn(line, "\n")] = '\0';
        if (ctrl[0] == '\0' ? (c2 == c1 + 1 && strncmp(line, "0:", 2) == 0)
                            : list_has(c1 + 1, (size_t)(c2 - c1 - 1), ctrl))
            res = xstrdup(c2 + 1);
    }
    fclose(f);
    return res;
}

/* The mount point and mount root of the hierarchy holding ctrl ("" = cgroup2). */
static bool cg_mount(const char *ctrl, char *mnt, size_t msize, char *root, size_t rsize)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[2048];
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char *f4, *f5, *sep, *fstype, *src, *opts;
        char *save = NULL;
        char *tok = strtok_r(line, " ", &save);
        int i;
        for (i = 0; tok != NULL && i < 3; i++)
            tok = strtok_r(NULL, " ", &save);
        f4 = tok;
        f5 = strtok_r(NULL, " ", &save);
        sep = strstr(f5 != NULL ? f5 + strlen(f5) + 1 : "", " - ");
        if (f4 == NULL || f5 == NULL || sep == NULL)
            continue;
        fstype = strtok_r(sep + 3, " ", &save);
        src = strtok_r(NULL, " ", &save);
        opts = strtok_r(NULL, " \n", &save);
        if (fstype == NULL || src == NULL || opts == NULL)
            continue;
        if (ctrl[0] == '\0' ? strcmp(fstype, "cgroup2") == 0
                            : strcmp(fstype, "cgroup") == 0 && list_has(opts, strlen(opts), ctrl)) {
            found = snprintf(mnt, msize, "%s", f5) < (int)msize &&
                    snprintf(root, rsize, "%s", f4) < (int)rsize;
        }
    }
    fclose(f);
    return found;
}

/* <mount>/<own path relative to the mount root>/kiln, created if missing. */
static char *cg_parent(const char *ctrl, bool *made)
{
    char mnt[PATH_MAX], root[PATH_MAX];
    char *own = own_cgroup(ctrl);
    const char *rel;
    char *dir = NULL;

    *made = false;
    if (own == NULL || !cg_mount(ctrl, mnt, sizeof mnt, root, sizeof root))
        goto out;
    rel = own;
    if (strcmp(root, "/") != 0) {
        size_t rl = strlen(root);
        if (strncmp(own, root, rl) != 0)
            goto out; /* we live outside the visible part of the hierarchy */
        rel = own + rl;
    }
    while (*rel == '/')
        rel++;
    dir = xasprintf("%s%s%s/" CG_PARENT, mnt, rel[0] != '\0' ? "/" : "", rel);
    if (mkdir(dir, 0755) == 0) {
        *made = true;
    } else if (errno != EEXIST) {
        free(dir);
        dir = NULL;
    }
out:
    free(own);
    return dir;
}

enum kiln_err sbx_cg_detect(struct sbx_cg_host *cg, struct errbuf *eb)
{
    char ctrls[256];
    (void)eb;

    memset(cg, 0, sizeof *cg);
    cg->v1_memory = cg_parent("memory", &cg->made_v1_memory);
    cg->v1_pids = cg_parent("pids", &cg->made_v1_pids);
    cg->v1_cpuacct = cg_parent("cpuacct", &cg->made_v1_cpuacct);
    cg->v2 = cg_parent("", &cg->made_v2);
    /* The v1 cpu controller (CFS quota). Where it shares a hierarchy with cpuacct, the groups
     * made for cpuacct carry the quota too. */
    cg->v1_cpu = cg_parent("cpu", &cg->made_v1_cpu);
    if (cg->v1_memory != NULL) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/memory.memsw.limit_in_bytes", cg->v1_memory);
        cg->v1_memsw = access(path, F_OK) == 0;
    }
    /* v2 with controllers: usable when our own cgroup delegates them to our "kiln" child (a
     * systemd Delegate=yes unit, or the root cgroup). "kiln" holds no process, so enabling them
     * for its children does not break the no-internal-process rule. */
    if (cg->v2 != NULL && cg_read(cg->v2, "cgroup.controllers", ctrls, sizeof ctrls) == 0) {
        size_t n = strcspn(ctrls, "\n");
        for (char *p = ctrls; p < ctrls + n; p++)
            if (*p == ' ')
                *p = ',';
        if (cg->v1_memory == NULL && list_has(ctrls, n, "memory"))
            cg->v2_memory = cg_write(cg->v2, "cgroup.subtree_control", "+memory") == 0;
        if (cg->v1_pids == NULL && list_has(ctrls, n, "pids"))
            cg->v2_pids = cg_write(cg->v2, "cgroup.subtree_control", "+pids") == 0;
        if (cg->v1_cpu == NULL && list_has(ctrls, n, "cpu"))
            cg->v2_cpu = cg_write(cg->v2, "cgroup.subtree_control", "+cpu") == 0;
    }
    return KILN_OK;
}

void sbx_cg_host_free(struct sbx_cg_host *cg)
{
    /* rmdir fails with EBUSY while another process's sandboxes still use a shared parent: then it
     * stays, and the last one out removes it — whoever made it (a process that is still using it
     * re-creates it in cg_mkgroup() if it went away under it). */
    if (cg->v1_memory != NULL)
        rmdir(cg->v1_memory);
    if (cg->v1_pids != NULL)
        rmdir(cg->v1_pids);
    if (cg->v1_cpuacct != NULL)
        rmdir(cg->v1_cpuacct);
    if (cg->v2 != NULL)
        rmdir(cg->v2);
    if (cg->v1_cpu != NULL && cg->made_v1_cpu)
        rmdir(cg->v1_cpu);
    free(cg->v1_cpu);
    free(cg->v1_memory);
    free(cg->v1_pids);
    free(cg->v1_cpuacct);
    free(cg->v2);
    memset(cg, 0, sizeof *cg);
}

/* rmdir a group, waiting (up to ~1 s) for the kernel to finish tearing down dead members. */
static void cg_rmdir(const char *dir)
{
    struct timespec ts = {0, 1000000};

    for (int i = 0; i < 1000; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        if (errno != EBUSY)
            return;
        if (i == 0)
            cg_write(dir, "cgroup.kill", "1");
        nanosleep(&ts, NULL);
    }
}

/* mkdir <parent>/sbx-<pid>-<seq>. The name is unique to this process and run, never derived from
 * the slot alone: the v1 pids/cpuacct and the v2 hierarchies are shared by every kiln process of
 * the host, possibly with other state directories, and reusing (or "cleaning") a name could
 * touch another process's live sandbox. The parent is re-created if another process's
 * sbx_ctx_free() removed it meanwhile. */
static char *cg_mkgroup(const char *parent, const char *name, struct errbuf *eb)
{
    char *dir = xasprintf("%s/%s", parent, name);

    if (mkdir(dir, 0755) == 0)
        return dir;
    if (errno == ENOENT && (mkdir(parent, 0755) == 0 || errno == EEXIST) && mkdir(dir, 0755) == 0)
        return dir;
    errbuf_set(eb, KILN_ERR_IO, "cannot create cgroup %s: %s", dir, strerror(errno));
    free(dir);
    return NULL;
}

/* The cpu and cpuacct controllers are mounted together (cpu,cpuacct): one group holds both. */
static bool cpu_shared(const struct sbx_cg_host *cg)
{
    return cg->v1_cpu != NULL && cg->v1_cpuacct != NULL && strcmp(cg->v1_cpu, cg->v1_cpuacct) == 0;
}

long long sbx_cg_v1_quota_ceiling(const char *dir)
{
    char *d = xstrdup(dir);
    long long best = -1;

    for (int depth = 0; depth < 64; depth++) {
        char *slash = strrchr(d, '/');
        long long q, p;
        if (slash == NULL || slash == d)
            break;
        *slash = '\0';
        q = cg_read_ll(d, "cpu.cfs_quota_us");
        p = cg_read_ll(d, "cpu.cfs_period_us");
        if (p <= 0)
            break; /* above the hierarchy's root */
        if (q > 0 && (best < 0 || q * 100000 / p < best))
            best = q * 100000 / p;
    }
    free(d);
    return best;
}

/* The CFS quota in microseconds per 100 ms period (MAX_CPU_QUOTA: 100000 = one CPU); <= 0
 * lifts it. */
static int set_quota(const struct sbx_cg_host *cg, const struct sbx_cg_run *run, long long quota)
{
    const char *dir = run->cpu != NULL ? run->cpu : cpu_shared(cg) ? run->cpuacct : NULL;
    char val[64];
    int rc;

    if (cg->v2_cpu && run->v2 != NULL) {
        if (quota > 0)
            snprintf(val, sizeof val, "%lld 100000", quota);
        else
            snprintf(val, sizeof val, "max 100000");
        return cg_write(run->v2, "cpu.max", val);
    }
    if (dir == NULL)
        return 0;
    rc = cg_write(dir, "cpu.cfs_period_us", "100000");
    snprintf(val, sizeof val, "%lld", quota > 0 ? quota : -1);
    if (rc == 0)
        rc = cg_write(dir, "cpu.cfs_quota_us", val);
    if (rc == -EINVAL && quota > 0) {
        /* v1 refuses a quota above an ancestor's: kiln in a container with a CPU limit gets the
         * container's, which binds the sandbox anyway (looked up only then: no reads per run) */
        long long ceiling = sbx_cg_v1_quota_ceiling(dir);
        if (ceiling > 0 && quota > ceiling) {
            snprintf(val, sizeof val, "%lld", ceiling < 1000 ? 1000 : ceiling);
            rc = cg_write(dir, "cpu.cfs_quota_us", val);
        }
    }
    return rc;
}

enum kiln_err sbx_cg_create(const struct sbx_cg_host *cg, unsigned long long seq,
                            const struct sbx_limits *lim, struct sbx_cg_run *run, struct errbuf *eb)
{
    char val[32], name[64];
    long long mem = lim->memory_mb * 1024 * 1024;
    int rc;

    memset(run, 0, sizeof *run);
    run->v2_fd = -1;
    snprintf(name, sizeof name, "sbx-%d-%llu", (int)getpid(), seq);
    snprintf(val, sizeof val, "%lld", mem);
    if (cg->v1_memory != NULL) {
        run->memory = cg_mkgroup(cg->v1_memory, name, eb);
        if (run->memory == NULL)
            goto fail;
        /* isolate 1.x order: memsw must never be below limit, so set limit first. */
        rc = cg_write(run->memory, "memory.limit_in_bytes", val);
        if (rc == 0 && cg->v1_memsw)
            rc = cg_write(run->memory, "memory.memsw.limit_in_bytes", val);
        if (rc < 0) {
            errbuf_set(eb, KILN_ERR_IO, "cannot set memory limit: %s", strerror(-rc));
            goto fail;
        }
    }
    if (cg->v1_pids != NULL) {
        char pids[32];
        run->pids = cg_mkgroup(cg->v1_pids, name, eb);
        if (run->pids == NULL)
            goto fail;
        /* +1: init, our PID 1, is not the program's. */
        snprintf(pids, sizeof pids, "%lld", lim->pids + 1);
        rc = cg_write(run->pids, "pids.max", pids);
        if (rc < 0) {
            errbuf_set(eb, KILN_ERR_IO, "cannot set pids.max: %s", strerror(-rc));
            goto fail;
        }
    }
    if (cg->v1_cpuacct != NULL) {
        run->cpuacct = cg_mkgroup(cg->v1_cpuacct, name, eb);
        if (run->cpuacct == NULL)
            goto fail;
    }
    if (cg->v1_cpu != NULL && !cpu_shared(cg)) {
        run->cpu = cg_mkgroup(cg->v1_cpu, name, eb);
        if (run->cpu == NULL)
            goto fail;
    }
    if (cg->v2 != NULL) {
        run->v2 = cg_mkgroup(cg->v2, name, eb);
        if (run->v2 == NULL)
            goto fail;
        rc = 0;
        if (cg->v2_memory) {
            run->mem_from_v2 = true;
            rc = cg_write(run->v2, "memory.max", val);
            if (rc == 0)
                cg_write(run->v2, "memory.swap.max", "0");
            if (rc == 0)
                rc = cg_write(run->v2, "memory.oom.group", "1");
        }
        if (rc == 0 && cg->v2_pids) {
            char pids[32];
            snprintf(pids, sizeof pids, "%lld", lim->pids + 1);
            rc = cg_write(run->v2, "pids.max", pids);
        }
        if (rc < 0) {
            errbuf_set(eb, KILN_ERR_IO, "cannot set v2 limits: %s", strerror(-rc));
            goto fail;
        }
        if (rc == 0 && cg->v2_cpu && lim->cpu_quota > 0)
            rc = set_quota(cg, run, lim->cpu_quota);
        if (rc < 0) {
            errbuf_set(eb, KILN_ERR_IO, "cannot set v2 limits: %s", strerror(-rc));
            goto fail;
        }
        run->v2_fd = open(run->v2, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (run->v2_fd < 0) {
            errbuf_set(eb, KILN_ERR_IO, "cannot open %s: %s", run->v2, strerror(errno));
            goto fail;
        }
    }
    if (lim->cpu_quota > 0 && !cg->v2_cpu) {
        rc = set_quota(cg, run, lim->cpu_quota);
        if (rc < 0) {
            errbuf_set(eb, KILN_ERR_IO, "cannot set the CPU quota: %s", strerror(-rc));
            goto fail;
        }
    }
    return KILN_OK;
fail:
    sbx_cg_destroy(run);
    return KILN_ERR_IO;
}

enum kiln_err sbx_cg_attach(const struct sbx_cg_run *run, pid_t pid, struct errbuf *eb)
{
    const char *v1[] = {run->memory, run->pids, run->cpuacct, run->cpu};
    char val[32];

    /* The child is blocked on the sync pipe and not reaped, so pid cannot have been recycled
     * (the TOCTOU isolate 1.x and nsjail also avoid this way). */
    snprintf(val, sizeof val, "%d", (int)pid);
    for (size_t i = 0; i < sizeof v1 / sizeof v1[0]; i++) {
        int rc;
        if (v1[i] == NULL)
            continue;
        rc = cg_write(v1[i], "cgroup.procs", val);
        if (rc < 0)
            return errbuf_set(eb, KILN_ERR_IO, "cannot attach to %s: %s", v1[i], strerror(-rc));
    }
    return KILN_OK;
}

bool sbx_cg_kill(const struct sbx_cg_run *run)
{
    return run->v2 != NULL && cg_write(run->v2, "cgroup.kill", "1") == 0;
}

bool sbx_cg_freeze(const struct sbx_cg_run *run, long long timeout_ms)
{
    char path[PATH_MAX], buf[256];
    long long deadline = sbx_now_ms() + timeout_ms;
    bool frozen = false;
    int fd;

    if (run->v2 == NULL || cg_write(run->v2, "cgroup.freeze", "1") < 0)
        return false;
    if ((size_t)snprintf(path, sizeof path, "%s/cgroup.events", run->v2) >= sizeof path)
        return false;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    /* The kernel freezes the tasks asynchronously (each at its next return to user space) and
     * says so in cgroup.events, which it notifies with POLLPRI; the short poll covers a missed
     * notification. */
    for (;;) {
        struct pollfd pf = {fd, POLLPRI, 0};
        long long left;
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n < 0)
            break;
        buf[n] = '\0';
        if (strstr(buf, "frozen 1") != NULL) {
            frozen = true;
            break;
        }
        left = deadline - sbx_now_ms();
        if (left <= 0)
            break;
        poll(&pf, 1, left < 2 ? (int)left : 2);
    }
    close(fd);
    return frozen;
}

/* Lines of a v2 file (what 4 KiB holds, ~500: enough to tell one from a few); -1 when none. */
static long long cg_count_lines(const struct sbx_cg_run *run, const char *file)
{
    char buf[4096];
    long long n = 0;

    if (run->v2 == NULL || cg_read(run->v2, file, buf, sizeof buf) < 0)
        return -1;
    for (const char *p = buf; *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

long long sbx_cg_threads(const struct sbx_cg_run *run)
{
    return cg_count_lines(run, "cgroup.threads");
}

long long sbx_cg_procs(const struct sbx_cg_run *run)
{
    return cg_count_lines(run, "cgroup.procs");
}

long long sbx_cg_cpu_ns(const struct sbx_cg_run *run)
{
    long long us;

    if (run->cpuacct != NULL)
        return cg_read_ll(run->cpuacct, "cpuacct.usage");
    if (run->v2 != NULL) {
        us = cg_read_key(run->v2, "cpu.stat", "usage_usec");
        return us < 0 ? -1 : us * 1000;
    }
    return -1;
}

void sbx_cg_stats(const struct sbx_cg_run *run, long long *peak_kb, long long *oom_kills)
{
    long long peak = -1, ooms = -1;

    if (run->memory != NULL) {
        peak = cg_read_ll(run->memory, "memory.max_usage_in_bytes");
        ooms = cg_read_key(run->memory, "memory.oom_control", "oom_kill");
    } else if (run->mem_from_v2) {
        peak = cg_read_ll(run->v2, "memory.peak");
        ooms = cg_read_key(run->v2, "memory.events", "oom_kill");
    }
    *peak_kb = peak < 0 ? -1 : peak / 1024;
    *oom_kills = ooms;
}

void sbx_cg_destroy(struct sbx_cg_run *run)
{
    char *dirs[] = {run->v2, run->memory, run->pids, run->cpuacct, run->cpu};

    if (run->v2_fd >= 0)
        close(run->v2_fd);
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (dirs[i] != NULL)
            cg_rmdir(dirs[i]);
        free(dirs[i]);
    }
    memset(run, 0, sizeof *run);
    run->v2_fd = -1;
}

enum kiln_err sbx_cg_attach_all(const struct sbx_cg_run *run, pid_t pid, struct errbuf *eb)
{
    char val[32];
    int rc;
    enum kiln_err err = sbx_cg_attach(run, pid, eb);

    if (err || run->v2 == NULL)
        return err;
    snprintf(val, sizeof val, "%d", (int)pid);
    rc = cg_write(run->v2, "cgroup.procs", val);
    if (rc < 0)
        return errbuf_set(eb, KILN_ERR_IO, "cannot attach to %s: %s", run->v2, strerror(-rc));
    return KILN_OK;
}

enum kiln_err sbx_cg_set_limits(const struct sbx_cg_run *run, const struct sbx_limits *lim,
                                bool memsw, struct errbuf *eb)
{
    char val[32], pids[32];
    int rc = 0;

    snprintf(val, sizeof val, "%lld", lim->memory_mb * 1024 * 1024);
    snprintf(pids, sizeof pids, "%lld", lim->pids + 1);
    if (run->memory != NULL) {
        /* memsw may never be below limit: lowering goes limit first, raising memsw first;
         * trying limit, memsw, limit covers both. */
        int r1 = cg_write(run->memory, "memory.limit_in_bytes", val);
        if (memsw)
            rc = cg_write(run->memory, "memory.memsw.limit_in_bytes", val);
        if (r1 < 0)
            rc = cg_write(run->memory, "memory.limit_in_bytes", val);
    } else if (run->mem_from_v2) {
        rc = cg_write(run->v2, "memory.max", val);
    }
    if (rc == 0 && run->pids != NULL)
        rc = cg_write(run->pids, "pids.max", pids);
    if (rc < 0)
        return errbuf_set(eb, KILN_ERR_IO, "cannot set the cgroup limits: %s", strerror(-rc));
    return KILN_OK;
}

enum kiln_err sbx_cg_take_limits(const struct sbx_cg_host *cg, const struct sbx_cg_run *run,
                                 const struct sbx_limits *lim, struct errbuf *eb)
{
    enum kiln_err err = sbx_cg_set_limits(run, lim, cg->v1_memsw, eb);
    char pids[32];
    int rc = 0;

    if (err)
        return err;
    snprintf(pids, sizeof pids, "%lld", lim->pids + 1);
    if (run->pids == NULL && cg->v2_pids && run->v2 != NULL)
        rc = cg_write(run->v2, "pids.max", pids);
    if (rc == 0)
        rc = set_quota(cg, run, lim->cpu_quota);
    if (rc < 0)
        return errbuf_set(eb, KILN_ERR_IO, "cannot set the limits of a parked sandbox: %s",
                          strerror(-rc));
    return KILN_OK;
}

/* sbx-<pid>-<seq> of a process that no longer exists. */
static bool stale_name(const char *name)
{
    char *end;
    long pid;

    if (strncmp(name, "sbx-", 4) != 0)
        return false;
    errno = 0;
    pid = strtol(name + 4, &end, 10);
    if (errno != 0 || end == name + 4 || *end != '-' || pid <= 0 || pid > INT_MAX)
        return false;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

void sbx_cg_recover(const struct sbx_cg_host *cg)
{
    const char *parents[] = {cg->v2, cg->v1_memory, cg->v1_pids, cg->v1_cpuacct, cg->v1_cpu};

    for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
        DIR *d = parents[i] != NULL ? opendir(parents[i]) : NULL;
        struct dirent *e;

        if (d == NULL)
            continue;
        while ((e = readdir(d)) != NULL) {
            char *dir;
            if (e->d_type != DT_DIR || !stale_name(e->d_name))
                continue;
            dir = xasprintf("%s/%s", parents[i], e->d_name);
            cg_rmdir(dir);
            free(dir);
        }
        closedir(d);
    }
}
