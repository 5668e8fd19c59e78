/* Fixtures shared by the unit tests that run real sandboxes (test_sandbox, test_pool,
 * test_zygote): a sandbox context over a fresh run dir, its removal, and the counts of what a
 * run may leave behind on the host (processes of our slot uids, our cgroups, our mounts).
 * Include after <cmocka.h>. Each test binary has its own uid base so that they may run at the
 * same time; the same binary may run twice at once too (two engineers' suites on one host), so
 * the counts are of this process's own sandboxes only. */
#ifndef KILN_TESTS_SBX_TESTUTIL_H
#define KILN_TESTS_SBX_TESTUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "sandbox/sbx_int.h"

/* Take the first of `ranges` uid ranges of `slots` uids from `first` that no other run of the
 * binary `name` holds, with a flock kept until exit (the fd stays open), into *base. Slot locks
 * are host-wide (sandbox/slots.c), and two runs at once (two engineers' suites on this host,
 * which is also when its load is high) once shared one fixed range: each took the other's
 * slots, a run found none (KILN_ERR_UNAVAILABLE), and the leftover checks counted the other's
 * sandboxes. Returns 0, or -1 when every range is held. */
static inline int stu_take_uid_range(const char *name, unsigned first, unsigned ranges,
                                     unsigned slots, unsigned *base)
{
    char path[128];
    int fd;

    mkdir(SBX_UID_LOCK_DIR, 0700);
    for (unsigned k = 0; k < ranges; k++) {
        snprintf(path, sizeof path, "%s/%s.range%u", SBX_UID_LOCK_DIR, name, k);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *base = first + k * slots;
            return 0;
        }
        close(fd);
    }
    fprintf(stderr, "%s: all %u uid ranges are held by other runs\n", name, ranges);
    return -1;
}

/* Make a run dir from tmpl (a mkdtemp template, rewritten in run_dir of size bytes; 0711 so that
 * the slot uids can traverse it) and a sandbox context over it in *ctx. 0, or -1 on error (said
 * on stderr): the shape of a cmocka group setup. */
static inline int stu_ctx_setup(struct sbx_ctx **ctx, char *run_dir, size_t size, const char *tmpl,
                                unsigned uid_base, unsigned slots)
{
    struct sbx_ctx_opts o = {0};
    struct errbuf eb = {{0}};

    snprintf(run_dir, size, "%s", tmpl);
    if (mkdtemp(run_dir) == NULL || chmod(run_dir, 0711) < 0)
        return -1;
    o.run_dir = run_dir;
    o.uid_base = uid_base;
    o.slots = slots;
    if (sbx_ctx_new(ctx, &o, &eb) != KILN_OK) {
        fprintf(stderr, "sbx_ctx_new: %s\n", eb.msg);
        return -1;
    }
    return 0;
}

/* Free ctx and remove its run dir. The slot lock files stay by design (see slots.c); the test
 * removes them. */
static inline void stu_ctx_teardown(struct sbx_ctx *ctx, const char *run_dir, unsigned slots)
{
    static const char *const subdirs[] = {"slots", "ws", "root"};
    char p[PATH_MAX];

    sbx_ctx_free(ctx);
    for (unsigned i = 0; i < slots; i++) {
        snprintf(p, sizeof p, "%s/slots/%u.lock", run_dir, i);
        unlink(p);
    }
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", run_dir, subdirs[i]);
        rmdir(p);
    }
    rmdir(run_dir);
}

/* The parent of pid from /proc/PID/stat (the field after the command, which may hold ')'), or
 * -1 when pid is gone. */
static inline long stu_ppid(long pid)
{
    char path[64], buf[512];
    const char *p;
    long ppid = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    if (fgets(buf, sizeof buf, f) != NULL && (p = strrchr(buf, ')')) != NULL &&
        sscanf(p + 1, " %*c %ld", &ppid) != 1)
        ppid = -1;
    fclose(f);
    return ppid;
}

/* Whether pid descends from this process. A sandbox's processes all do while they live: its
 * init is our child, and the rest die with it (its pid namespace). */
static inline bool stu_is_ours(long pid)
{
    long self = (long)getpid();

    for (int depth = 0; depth < 64 && pid > 1; depth++) {
        pid = stu_ppid(pid);
        if (pid == self)
            return true;
    }
    return false;
}

/* Processes of this process's sandboxes: with one of our slots' uids, and descending from us
 * (another process, such as a second run of the same test binary, may hold slots of the same
 * uid range at the same time). Each is said on stderr when say, for the checks that expect
 * none. */
static inline int stu_count_slot_processes(unsigned uid_base, unsigned slots, bool say)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[300], cmd[256] = "";
        struct stat st;
        FILE *f;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s", e->d_name);
        if (stat(path, &st) < 0 || st.st_uid < uid_base || st.st_uid >= uid_base + slots ||
            !stu_is_ours(strtol(e->d_name, NULL, 10)))
            continue;
        n++;
        if (!say)
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        f = fopen(path, "re");
        if (f != NULL) {
            if (fgets(cmd, sizeof cmd, f) == NULL)
                cmd[0] = '\0';
            fclose(f);
        }
        fprintf(stderr, "slot process: uid %u: %s", (unsigned)st.st_uid, cmd);
    }
    closedir(d);
    return n;
}

/* cgroups of this process (sbx-<our pid>-*) under every parent of ctx. Only ours: other kiln
 * processes of the host share the v1 pids/cpuacct and v2 parents. */
static inline int stu_count_our_cgroups(const struct sbx_ctx *ctx)
{
    const char *parents[] = {ctx->cg.v2, ctx->cg.v1_memory, ctx->cg.v1_pids, ctx->cg.v1_cpuacct,
                             ctx->cg.v1_cpu};
    char prefix[32];
    int n = 0;

    snprintf(prefix, sizeof prefix, "sbx-%d-", (int)getpid());
    for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
        DIR *d = parents[i] != NULL ? opendir(parents[i]) : NULL;
        struct dirent *e;
        if (d == NULL)
            continue;
        while ((e = readdir(d)) != NULL)
            if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
                n++;
        closedir(d);
    }
    return n;
}

/* Lines of /proc/self/mountinfo mentioning run_dir (workspaces still mounted). */
static inline int stu_count_run_dir_mounts(const char *run_dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    int n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, run_dir) != NULL)
            n++;
    fclose(f);
    return n;
}

#endif
