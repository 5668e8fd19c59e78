/* Unit tests of the sandbox library: real sandboxes through sbx_run(), as the test runs (root
 * here), plus one unprivileged run from a forked child that drops to nobody. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "sandbox/sbx_int.h"
#include "sbx_testutil.h"

/* Not the 200000 of kiln's default config: other kiln processes may run on this host. */
/* UID_RANGES ranges of SLOTS uids from UID_FIRST, one per concurrent run (stu_take_uid_range) */
#define UID_FIRST  260000u
#define UID_RANGES 8u
#define SLOTS      4u

static char run_dir[64];
static unsigned uid_base; /* this process's range (stu_take_uid_range) */
static struct sbx_ctx *ctx;
static const char *const env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8",
                                  NULL};

static int group_setup(void **state)
{
    (void)state;
    if (stu_take_uid_range("test_sandbox", UID_FIRST, UID_RANGES, SLOTS, &uid_base) != 0)
        return -1;
    return stu_ctx_setup(&ctx, run_dir, sizeof run_dir, "/tmp/kiln-sbx-test-XXXXXX", uid_base,
                         SLOTS);
}

static int group_teardown(void **state)
{
    (void)state;
    stu_ctx_teardown(ctx, run_dir, SLOTS);
    return 0;
}

/* Run argv as a single step with limits; asserts the sandbox itself worked. */
static void run_argv(const char *const *argv, const struct sbx_limits *lim,
                     struct sbx_workspace *ws, struct sbx_result *res)
{
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    struct errbuf eb = {{0}};
    enum kiln_err err;

    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.ws = ws;
    job.cancel_fd = -1;
    if (lim != NULL)
        job.limits = *lim;
    err = sbx_run(ctx, &job, res, &eb);
    if (err != KILN_OK)
        fprintf(stderr, "sbx_run: %s\n", eb.msg);
    assert_int_equal(err, KILN_OK);
}

static void run_sh(const char *script, const struct sbx_limits *lim, struct sbx_result *res)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    run_argv(argv, lim, NULL, res);
}

static void assert_nothing_left(void)
{
    assert_int_equal(stu_count_slot_processes(uid_base, SLOTS, true), 0);
    assert_int_equal(stu_count_run_dir_mounts(run_dir), 0);
    assert_int_equal(stu_count_our_cgroups(ctx), 0);
}

static void test_sandbox_exit_code_stdout_stderr(void **state)
{
    struct sbx_result r;
    (void)state;

    run_sh("echo out; echo err >&2; exit 3", NULL, &r);
    assert_int_equal(r.status, SBX_ERROR);
    assert_string_equal(sbx_status_name(r.status), "error");
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.signal, 0);
    assert_string_equal(r.out, "out\n");
    assert_string_equal(r.err, "err\n");
    assert_false(r.out_truncated);
    sbx_result_clear(&r);
    assert_nothing_left();
}

static void test_sandbox_python_prints(void **state)
{
    const char *argv[] = {"/usr/bin/python3", "-c", "print(1)", NULL};
    struct sbx_result r;
    struct timespec a, b;
    (void)state;

    clock_gettime(CLOCK_MONOTONIC, &a);
    run_argv(argv, NULL, NULL, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(r.status, SBX_OK);
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.out, "1\n");
    assert_true(r.memory_peak_kb > 0);
    fprintf(stderr, "python3 print(1): %.1f ms (wall %lld ms, cpu %lld ms, peak %lld KiB)\n",
            (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6, r.wall_ms,
            r.cpu_ms, r.memory_peak_kb);
    sbx_result_clear(&r);
}

static void test_sandbox_runs_as_uid_1000_mapped_to_slot(void **state)
{
    struct sbx_result r;
    unsigned inner, outer, count;
    (void)state;

    run_sh("id -u; id -g; cat /proc/self/uid_map; id -G", NULL, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_int_equal(sscanf(r.out, "1000\n1000\n %u %u %u\n1000\n", &inner, &outer, &count), 3);
    assert_int_equal(inner, 1000);
    assert_true(outer >= uid_base && outer < uid_base + SLOTS);
    assert_int_equal(count, 1);
    sbx_result_clear(&r);
}

static void test_sandbox_drops_caps_and_loads_seccomp(void **state)
{
    struct sbx_result r;
    (void)state;

    run_sh("grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status", NULL, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_non_null(strstr(r.out, "CapInh:\t0000000000000000\n"));
    assert_non_null(strstr(r.out, "CapPrm:\t0000000000000000\n"));
    assert_non_null(strstr(r.out, "CapEff:\t0000000000000000\n"));
    assert_non_null(strstr(r.out, "CapBnd:\t0000000000000000\n"));
    assert_non_null(strstr(r.out, "CapAmb:\t0000000000000000\n"));
    assert_non_null(strstr(r.out, "NoNewPrivs:\t1\n"));
    assert_non_null(strstr(r.out, "Seccomp:\t2\n"));
    sbx_result_clear(&r);
}

static void test_sandbox_denies_namespaces_and_mount(void **state)
{
    struct sbx_result r;
    (void)state;

    run_sh("unshare -U true 2>/dev/null; echo u=$?; mount -t tmpfs t /tmp 2>/dev/null; echo m=$?;"
           "touch /usr/x 2>/dev/null; echo w=$?; cat /etc/shadow 2>/dev/null; echo s=$?",
           NULL, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_non_null(strstr(r.out, "u=1\n"));
    assert_null(strstr(r.out, "m=0\n"));
    assert_null(strstr(r.out, "w=0\n"));
    assert_null(strstr(r.out, "s=0\n"));
    sbx_result_clear(&r);
}

static void test_sandbox_network_has_only_lo(void **state)
{
    struct sbx_result r;
    (void)state;

    /* /proc/net/dev: two header lines, then one line per interface. */
    run_sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", NULL, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_string_equal(r.out, "lo\n");
    sbx_result_clear(&r);
}

static void test_sandbox_truncates_stdout_at_cap(void **state)
{
    struct sbx_limits lim = {0};
    struct sbx_result r;
    (void)state;

    lim.stdout_max = 100;
    run_sh("head -c 1000000 /dev/zero | tr '\\0' a; echo done >&2", &lim, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_true(r.out_truncated);
    assert_int_equal(r.out_len, 100 + strlen(SBX_TRUNCATION_MARKER));
    assert_string_equal(r.out + 100, SBX_TRUNCATION_MARKER);
    assert_int_equal(r.out[99], 'a');
    assert_string_equal(r.err, "done\n");
    assert_false(r.err_truncated);
    sbx_result_clear(&r);
}

static void test_sandbox_endless_flood_times_out_with_bounded_output(void **state)
{
    struct sbx_limits lim = {0};
    struct sbx_result r;
    (void)state;

    lim.wall_ms = 700;
    lim.stdout_max = 4096;
    run_sh("yes", &lim, &r);
    assert_int_equal(r.status, SBX_TIMEOUT);
    assert_true(r.out_truncated);
    assert_int_equal(r.out_len, 4096 + strlen(SBX_TRUNCATION_MARKER));
    assert_true(r.wall_ms < 3000);
    assert_non_null(strstr(r.note, "timed out"));
    sbx_result_clear(&r);
    assert_nothing_left();
}

static void test_sandbox_timeout_kills_daemonised_grandchild(void **state)
{
    struct sbx_limits lim = {0};
    struct sbx_result r;
    (void)state;

    lim.wall_ms = 500;
    run_sh("setsid sh -c 'sleep 1000' & (sleep 999 &); sleep 1000", &lim, &r);
    assert_int_equal(r.status, SBX_TIMEOUT);
    assert_string_equal(sbx_status_name(r.status), "timeout");
    assert_true(r.wall_ms >= 500 && r.wall_ms < 3000);
    sbx_result_clear(&r);
    assert_nothing_left();
}

static void test_sandbox_background_process_dies_with_the_run(void **state)
{
    struct sbx_result r;
    (void)state;

    run_sh("setsid sleep 1000 & echo started", NULL, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_string_equal(r.out, "started\n");
    assert_true(r.wall_ms < 3000);
    sbx_result_clear(&r);
    assert_nothing_left();
}

static void test_sandbox_cpu_limit(void **state)
{
    struct sbx_limits lim = {0};
    struct sbx_result r;
    (void)state;

    lim.cpu_ms = 300;
    lim.wall_ms = 10000;
    run_sh("while :; do :; done", &lim, &r);
    assert_int_equal(r.status, SBX_TIMEOUT);
    assert_true(r.cpu_ms >= 300);
    assert_true(r.wall_ms < 5000);
    sbx_result_clear(&r);
}

static void test_sandbox_memory_limit_is_oom(void **state)
{
    const char *argv[] = {"/usr/bin/python3", "-c", "b = bytearray(300 * 1024 * 1024); print(1)",
                          NULL};
    struct sbx_limits lim = {0};
    struct sbx_result r;
    (void)state;

    lim.memory_mb = 64;
    run_argv(argv, &lim, NULL, &r);
    assert_int_equal(r.status, SBX_OOM);
    assert_string_equal(sbx_status_name(r.status), "oom");
    assert_int_equal(r.signal, SIGKILL);
    assert_string_equal(r.out, "");
    assert_true(r.memory_peak_kb > 32 * 1024 && r.memory_peak_kb <= 64 * 1024 + 64);
    assert_non_null(strstr(r.note, "64 MiB"));
    sbx_result_clear(&r);
    assert_nothing_left();
}

static void test_sandbox_pids_limit_stops_fork_bomb(void **state)
{
    const char *argv[] = {"/usr/bin/python3", "-c",
                          "import os, time\n"
                          "n = 0\n"
                          "try:\n"
                          "    for i in range(200):\n"
                          "        if os.fork() == 0:\n"
                          "            time.sleep(5); os._exit(0)\n"
                          "        n += 1\n"
                          "except OSError as e:\n"
                          "    print('blocked', n, e.errno)\n",
                          NULL};
    struct sbx_limits lim = {0};
    struct sbx_result r;
    int n = -1, e = -1;
    (void)state;

    lim.pids = 10;
    run_argv(argv, &lim, NULL, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_int_equal(sscanf(r.out, "blocked %d %d", &n, &e), 2);
    assert_true(n < 10);
    assert_int_equal(e, EAGAIN);
    sbx_result_clear(&r);
    assert_nothing_left();
}

static void test_sandbox_file_size_limit_is_output_limit(void **state)
{
    struct sbx_limits lim = {0};
    struct sbx_result r;
    (void)state;

    lim.file_size_mb = 1;
    run_sh("exec head -c 3000000 /dev/zero > /tmp/big", &lim, &r);
    assert_int_equal(r.status, SBX_OUTPUT_LIMIT);
    assert_string_equal(sbx_status_name(r.status), "output_limit");
    assert_int_equal(r.signal, SIGXFSZ);
    sbx_result_clear(&r);
}

static void *cancel_later(void *arg)
{
    int fd = *(int *)arg;
    struct timespec ts = {0, 200 * 1000 * 1000};
    ssize_t n;

    nanosleep(&ts, NULL);
    n = write(fd, "x", 1);
    (void)n;
    return NULL;
}

static void test_sandbox_cancel_fd_kills(void **state)
{
    const char *argv[] = {"/bin/sh", "-c", "sleep 30", NULL};
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    struct sbx_result r;
    struct errbuf eb = {{0}};
    pthread_t th;
    int p[2];
    (void)state;

    assert_int_equal(pipe(p), 0);
    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.cancel_fd = p[0];
    assert_int_equal(pthread_create(&th, NULL, cancel_later, &p[1]), 0);
    assert_int_equal(sbx_run(ctx, &job, &r, &eb), KILN_OK);
    pthread_join(th, NULL);
    assert_int_equal(r.status, SBX_KILLED);
    assert_string_equal(sbx_status_name(r.status), "killed");
    assert_true(r.wall_ms < 5000);
    sbx_result_clear(&r);
    close(p[0]);
    close(p[1]);
    assert_nothing_left();
}

static void test_sandbox_stdin_and_steps(void **state)
{
    const char *a1[] = {"/bin/sh", "-c", "echo compiling; echo warn >&2", NULL};
    const char *a2[] = {"/bin/cat", NULL};
    const char *bad[] = {"/bin/sh", "-c", "echo broken >&2; exit 2", NULL};
    struct sbx_step steps[2] = {{a1, true, true}, {a2, false, false}};
    struct sbx_job job = {0};
    struct sbx_result r;
    struct errbuf eb = {{0}};
    (void)state;

    job.steps = steps;
    job.nsteps = 2;
    job.env = env;
    job.cancel_fd = -1;
    job.stdin_data = "hello stdin";
    job.stdin_len = 11;
    assert_int_equal(sbx_run(ctx, &job, &r, &eb), KILN_OK);
    assert_int_equal(r.status, SBX_OK);
    assert_string_equal(r.out, "hello stdin");
    assert_string_equal(r.err, "compiling\nwarn\n");
    sbx_result_clear(&r);

    /* A failing compile step ends the execution: the run step never starts. */
    steps[0].argv = bad;
    assert_int_equal(sbx_run(ctx, &job, &r, &eb), KILN_OK);
    assert_int_equal(r.status, SBX_ERROR);
    assert_int_equal(r.exit_code, 2);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "broken\n");
    sbx_result_clear(&r);
}

static void test_sandbox_missing_program_is_error_127(void **state)
{
    const char *argv[] = {"/usr/bin/no-such-program", NULL};
    struct sbx_result r;
    (void)state;

    run_argv(argv, NULL, NULL, &r);
    assert_int_equal(r.status, SBX_ERROR);
    assert_int_equal(r.exit_code, 127);
    assert_non_null(strstr(r.err, "no-such-program"));
    sbx_result_clear(&r);
}

static void test_sandbox_only_stdio_fds_inherited(void **state)
{
    struct sbx_result r;
    int leak = open("/etc/hostname", O_RDONLY); /* not CLOEXEC: must still not reach it */
    (void)state;

    run_sh("ls /proc/self/fd | sort -n | tr '\\n' ' '", NULL, &r);
    close(leak);
    assert_int_equal(r.status, SBX_OK);
    /* 0 1 2, and 3 = the fd ls opened to read the directory. */
    assert_string_equal(r.out, "0 1 2 3 ");
    sbx_result_clear(&r);
}

/* Walker callback: append relpath + "\n" to a buffer. */
static enum kiln_err collect(void *arg, const char *relpath, int fd, const struct stat *st)
{
    char *buf = arg;
    char c;

    assert_true(S_ISREG(st->st_mode));
    assert_int_equal(st->st_nlink, 1);
    assert_true(read(fd, &c, 1) >= 0);
    strncat(buf, relpath, 1000 - strlen(buf));
    strncat(buf, "\n", 1000 - strlen(buf));
    return KILN_OK;
}

static void test_workspace_put_visible_inside_as_sandbox_user(void **state)
{
    const char *argv[] = {"/bin/sh", "-c",
                          "cat /mnt/data/src/in.txt; stat -c '%u %a' /mnt/data/src/in.txt; pwd; "
                          "echo new > out.txt",
                          NULL};
    struct sbx_workspace *ws = NULL;
    struct sbx_result r;
    struct errbuf eb = {{0}};
    char found[1024] = "";
    (void)state;

    assert_int_equal(sbx_workspace_new(ctx, 16, &ws, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_put(ws, "src/in.txt", "data\n", 5, -1, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_put(ws, "../x", "a", 1, -1, &eb), KILN_ERR_INVALID);
    assert_int_equal(sbx_workspace_put(ws, "/abs", "a", 1, -1, &eb), KILN_ERR_INVALID);
    assert_int_equal(sbx_workspace_put(ws, "a/./b", "a", 1, -1, &eb), KILN_ERR_INVALID);
    run_argv(argv, NULL, ws, &r);
    assert_int_equal(r.status, SBX_OK);
    assert_string_equal(r.out, "data\n1000 644\n/mnt/data\n");
    sbx_result_clear(&r);
    assert_int_equal(sbx_workspace_walk(ws, 8, 100, collect, found, &eb), KILN_OK);
    assert_true(strcmp(found, "out.txt\nsrc/in.txt\n") == 0 ||
                strcmp(found, "src/in.txt\nout.txt\n") == 0);
    sbx_workspace_free(ws);
    assert_nothing_left();
}

static void test_workspace_walker_skips_planted_links(void **state)
{
    const char *argv[] = {"/bin/sh", "-c",
                          "cd /mnt/data && ln -s /etc/passwd link && echo hi > real && "
                          "ln real hard && mkfifo fifo && mkdir d && echo x > d/f && "
                          "ln -s / d/root && echo p > plain && ln -s /proc/self/root d/magic",
                          NULL};
    struct sbx_workspace *ws = NULL;
    struct sbx_result r;
    struct errbuf eb = {{0}};
    char found[1024] = "";
    (void)state;

    assert_int_equal(sbx_workspace_new(ctx, 16, &ws, &eb), KILN_OK);
    run_argv(argv, NULL, ws, &r);
    assert_int_equal(r.status, SBX_OK);
    sbx_result_clear(&r);
    assert_int_equal(sbx_workspace_walk(ws, 8, 100, collect, found, &eb), KILN_OK);
    /* Only the plain files: not the symlinks, the hard-linked pair, nor the FIFO. */
    assert_true(strcmp(found, "plain\nd/f\n") == 0 || strcmp(found, "d/f\nplain\n") == 0);
    /* Writing through a planted symlink is refused, at the end or in the middle of a path. */
    assert_int_not_equal(sbx_workspace_put(ws, "link", "pwned", 5, -1, &eb), KILN_OK);
    assert_int_not_equal(sbx_workspace_put(ws, "d/root/tmp/pwned", "x", 1, -1, &eb), KILN_OK);
    assert_int_not_equal(access("/tmp/pwned", F_OK), 0);
    sbx_workspace_free(ws);
    assert_nothing_left();
}

static void test_workspace_walk_depth_and_entry_caps(void **state)
{
    struct sbx_workspace *ws = NULL;
    struct errbuf eb = {{0}};
    char found[1024] = "";
    (void)state;

    assert_int_equal(sbx_workspace_new(ctx, 4, &ws, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_put(ws, "top", "1", 1, -1, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_put(ws, "a/b/deep", "1", 1, -1, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_walk(ws, 1, 100, collect, found, &eb), KILN_OK);
    assert_string_equal(found, "top\n");
    sbx_workspace_free(ws);
}

struct par {
    unsigned host_uid;
    int status;
};

static void *par_run(void *arg)
{
    struct par *p = arg;
    const char *argv[] = {"/bin/sh", "-c", "cat /proc/self/uid_map; sleep 0.3", NULL};
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    struct sbx_result r;
    struct errbuf eb = {{0}};
    unsigned inner = 0, count = 0;

    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.cancel_fd = -1;
    p->status = -1;
    if (sbx_run(ctx, &job, &r, &eb) != KILN_OK)
        return NULL;
    p->status = (int)r.status;
    if (sscanf(r.out, " %u %u %u", &inner, &p->host_uid, &count) != 3)
        p->status = -2;
    sbx_result_clear(&r);
    return NULL;
}

/* sbx_run is reentrant: concurrent runs get distinct slots, hence distinct host uids. */
static void test_sandbox_concurrent_runs_get_distinct_uids(void **state)
{
    pthread_t th[3];
    struct par p[3];
    (void)state;

    memset(p, 0, sizeof p);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, par_run, &p[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p[i].status, SBX_OK);
        assert_true(p[i].host_uid >= uid_base && p[i].host_uid < uid_base + SLOTS);
    }
    assert_int_not_equal(p[0].host_uid, p[1].host_uid);
    assert_int_not_equal(p[0].host_uid, p[2].host_uid);
    assert_int_not_equal(p[1].host_uid, p[2].host_uid);
    assert_nothing_left();
}

/* Unprivileged mode: a forked child becomes nobody, makes its own context and runs a sandbox.
 * It reports through its exit status (cmocka asserts do not cross fork). */
static int unprivileged_child(const char *dir)
{
    struct sbx_ctx_opts o = {0};
    struct sbx_ctx *uctx = NULL;
    struct sbx_workspace *ws = NULL;
    struct errbuf eb = {{0}};
    struct sbx_result r;
    const char *argv[] = {
        "/bin/sh", "-c",
        "id -u; cat /proc/self/uid_map | tr -s ' '; grep CapEff /proc/self/status;"
        "echo x > /mnt/data/f && echo wrote",
        NULL};
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    char want[128];

    if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
        setresuid(65534, 65534, 65534) < 0)
        return 10;
    /* The uid change made us non-dumpable, which hides /proc/<pid>/uid_map of our children from
     * us; a process started as nobody (setpriv, a service) is dumpable. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        return 15;
    o.run_dir = dir;
    o.slots = 2;
    if (sbx_ctx_new(&uctx, &o, &eb) != KILN_OK) {
        fprintf(stderr, "unprivileged ctx: %s\n", eb.msg);
        return 11;
    }
    if (sbx_workspace_new(uctx, 8, &ws, &eb) != KILN_OK) {
        fprintf(stderr, "unprivileged ws: %s\n", eb.msg);
        return 12;
    }
    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.ws = ws;
    job.cancel_fd = -1;
    if (sbx_run(uctx, &job, &r, &eb) != KILN_OK) {
        fprintf(stderr, "unprivileged run: %s\n", eb.msg);
        return 13;
    }
    snprintf(want, sizeof want, "1000\n 1000 65534 1\nCapEff:\t0000000000000000\nwrote\n");
    if (r.status != SBX_OK || strcmp(r.out, want) != 0) {
        fprintf(stderr, "unprivileged result %s: [%s] [%s]\n", sbx_status_name(r.status), r.out,
                r.err);
        return 14;
    }
    sbx_result_clear(&r);
    sbx_workspace_free(ws);
    sbx_ctx_free(uctx);
    return 0;
}

static void test_sandbox_works_unprivileged(void **state)
{
    char dir[64];
    pid_t pid;
    int st = 0;
    (void)state;

    snprintf(dir, sizeof dir, "/tmp/kiln-sbx-unpriv-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chown(dir, 65534, 65534), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(unprivileged_child(dir));
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* The unprivileged context left only its directories (workspace removed by the fd walker). */
    {
        char p[128];
        snprintf(p, sizeof p, "%s/ws", dir);
        assert_int_equal(rmdir(p), 0);
        snprintf(p, sizeof p, "%s/root", dir);
        assert_int_equal(rmdir(p), 0);
        assert_int_equal(rmdir(dir), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sandbox_exit_code_stdout_stderr),
        cmocka_unit_test(test_sandbox_python_prints),
        cmocka_unit_test(test_sandbox_runs_as_uid_1000_mapped_to_slot),
        cmocka_unit_test(test_sandbox_drops_caps_and_loads_seccomp),
        cmocka_unit_test(test_sandbox_denies_namespaces_and_mount),
        cmocka_unit_test(test_sandbox_network_has_only_lo),
        cmocka_unit_test(test_sandbox_truncates_stdout_at_cap),
        cmocka_unit_test(test_sandbox_endless_flood_times_out_with_bounded_output),
        cmocka_unit_test(test_sandbox_timeout_kills_daemonised_grandchild),
        cmocka_unit_test(test_sandbox_background_process_dies_with_the_run),
        cmocka_unit_test(test_sandbox_cpu_limit),
        cmocka_unit_test(test_sandbox_memory_limit_is_oom),
        cmocka_unit_test(test_sandbox_pids_limit_stops_fork_bomb),
        cmocka_unit_test(test_sandbox_file_size_limit_is_output_limit),
        cmocka_unit_test(test_sandbox_cancel_fd_kills),
        cmocka_unit_test(test_sandbox_stdin_and_steps),
        cmocka_unit_test(test_sandbox_concurrent_runs_get_distinct_uids),
        cmocka_unit_test(test_sandbox_missing_program_is_error_127),
        cmocka_unit_test(test_sandbox_only_stdio_fds_inherited),
        cmocka_unit_test(test_workspace_put_visible_inside_as_sandbox_user),
        cmocka_unit_test(test_workspace_walker_skips_planted_links),
        cmocka_unit_test(test_workspace_walk_depth_and_entry_caps),
        cmocka_unit_test(test_sandbox_works_unprivileged),
    };
    if (geteuid() != 0) {
        fprintf(stderr, "test_sandbox: needs root for the root-mode cases; skipped\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
