/* Unit tests of the warm pools (sandbox/pool.h, lang/warm.h): real parked sandboxes with
 * pre-started interpreters, compared with cold runs of the same programs; plus the sandbox fixes
 * of issue 5 (CPU quota, recovery of a crashed process's leftovers). Runs as root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lang/lang.h"
#include "lang/warm.h"
#include "sandbox/park.h"
#include "sandbox/pool.h"
#include "sandbox/sandbox.h"
#include "sandbox/sbx_int.h"
#include "sbx_testutil.h"

#define SLOTS 12u

/* The uid ranges this binary may use: UID_RANGES ranges of SLOTS uids from UID_FIRST (up to
 * 262095; test_zygote's start at 282000). */
#define UID_FIRST  262000u
#define UID_RANGES 8u

/* How long a test waits for the pool's filler thread: generous, since a passing test waits only
 * as long as the builds take, and on a loaded machine they take many times longer than alone
 * (four interpreters, R's among them, in 30 s was tight at a load average of ~30). */
#define POOL_WAIT_MS 120000

static char run_dir[64];
static struct sbx_ctx *ctx;
static unsigned uid_base; /* this process's range (stu_take_uid_range) */

static int group_setup(void **state)
{
    (void)state;
    if (stu_take_uid_range("test_pool", UID_FIRST, UID_RANGES, SLOTS, &uid_base) != 0)
        return -1;
    return stu_ctx_setup(&ctx, run_dir, sizeof run_dir, "/tmp/kiln-pool-test-XXXXXX", uid_base,
                         SLOTS);
}

static int group_teardown(void **state)
{
    (void)state;
    stu_ctx_teardown(ctx, run_dir, SLOTS);
    return 0;
}

static struct lang_pools *pools_new(const struct lang_pool_size *sizes, size_t n)
{
    struct sbx_pool_opts o = {0};
    struct lang_pools *lp = NULL;
    struct errbuf eb = {{0}};

    o.warmup = true;
    o.batch = 2;
    o.replenish_ms = 200;
    o.exhaustion_trigger = true;
    if (lang_pools_new_sizes(ctx, sizes, n, &o, &lp, &eb) != KILN_OK)
        fprintf(stderr, "lang_pools_new_sizes: %s\n", eb.msg);
    assert_non_null(lp);
    return lp;
}

/* Run code as lang through pool (NULL = a cold sbx_run) with a wall clock of wall_ms; *warm
 * says whether it was served warm. */
static void run_lang_wall(struct sbx_pool *pool, const char *code_lang, const char *code,
                          const char *const *args, size_t nargs, long long wall_ms,
                          struct sbx_result *res, bool *warm)
{
    const struct lang *l = lang_find(code_lang);
    struct sbx_limits lim = {0};
    struct errbuf eb = {{0}};
    struct lang_job *lj = NULL;
    struct sbx_lease *lease = NULL;
    struct sbx_workspace *ws = NULL;
    enum kiln_err err;

    assert_non_null(l);
    lim.wall_ms = wall_ms;
    if (pool != NULL) {
        assert_int_equal(sbx_pool_lease(pool, l->code, 0, &lease, &eb), KILN_OK);
        ws = sbx_lease_workspace(lease);
    } else {
        assert_int_equal(sbx_workspace_new(ctx, 0, &ws, &eb), KILN_OK);
    }
    assert_int_equal(lang_job_new(l, code, strlen(code), args, nargs, &lim, ws, &lj, &eb), KILN_OK);
    err =
        pool != NULL ? sbx_lease_run(lease, &lj->job, res, &eb) : sbx_run(ctx, &lj->job, res, &eb);
    if (err != KILN_OK)
        fprintf(stderr, "run: %s\n", eb.msg);
    assert_int_equal(err, KILN_OK);
    if (warm != NULL)
        *warm = pool != NULL && sbx_lease_warm(lease);
    lang_job_free(lj);
    if (pool != NULL)
        sbx_lease_free(lease);
    else
        sbx_workspace_free(ws);
}

static void run_lang(struct sbx_pool *pool, const char *code_lang, const char *code,
                     const char *const *args, size_t nargs, struct sbx_result *res, bool *warm)
{
    run_lang_wall(pool, code_lang, code, args, nargs, 20000, res, warm);
}

static void assert_same(const struct sbx_result *a, const struct sbx_result *b)
{
    if (strcmp(a->out, b->out) != 0 || strcmp(a->err, b->err) != 0)
        fprintf(stderr, "warm out [%s] err [%s]\ncold out [%s] err [%s]\n", a->out, a->err, b->out,
                b->err);
    assert_string_equal(a->out, b->out);
    assert_string_equal(a->err, b->err);
    assert_int_equal(a->exit_code, b->exit_code);
    assert_int_equal(a->signal, b->signal);
    assert_int_equal(a->status, b->status);
}

/* The same program, warm (from a pre-started interpreter) and cold, gives the same result. It
 * first waits for the pool to be full: the refill after the previous take of the same kind races
 * that take's cold run, and on a loaded machine the cold run can win (the lease is then cold). */
static void check_parity(struct sbx_pool *pool, const char *code_lang, const char *code,
                         const char *const *args, size_t nargs)
{
    struct sbx_result w = {0}, c = {0};
    bool warm = false;

    assert_true(sbx_pool_wait_full(pool, POOL_WAIT_MS));
    run_lang(pool, code_lang, code, args, nargs, &w, &warm);
    assert_true(warm);
    run_lang(NULL, code_lang, code, args, nargs, &c, NULL);
    assert_same(&w, &c);
    sbx_result_clear(&w);
    sbx_result_clear(&c);
}

static const char *const args2[] = {"one", "two words", ""};

static void test_pool_interpreters_match_cold_runs(void **state)
{
    static const struct lang_pool_size sizes[] = {{"js", 1}, {"php", 1}, {"r", 1}, {"bash", 1}};
    struct lang_pools *lp = pools_new(sizes, 4);
    struct sbx_pool *pool = lang_pools_pool(lp);
    (void)state;

    check_parity(pool, "js",
                 "console.log(process.argv.slice(1), process.cwd(), require.main === module,"
                 " process.execArgv, __filename, require('fs').fstatSync(0).isCharacterDevice());\n"
                 "console.error('to stderr');\n"
                 "require('fs').writeFileSync('out.txt', 'x');\nprocess.exitCode = 3;\n",
                 args2, 3);
    check_parity(pool, "js", "throw new Error('boom');\n", NULL, 0);
    check_parity(pool, "php",
                 "<?php echo json_encode([$argv, $argc, getcwd(), __FILE__, $_SERVER['argv'],"
                 " $_SERVER['SCRIPT_NAME'], array_keys(get_defined_vars())]), \"\\n\";\n"
                 "fwrite(STDERR, \"err\\n\"); exit(4);\n",
                 args2, 3);
    check_parity(pool, "r",
                 "x <- 1:3\nx\nprint(commandArgs(trailingOnly = TRUE))\ncat(getwd(), '\\n')\n"
                 "ls()\nmessage('to stderr')\nquit(status = 5)\n",
                 args2, 3);
    check_parity(pool, "bash",
                 "echo \"$0\" \"$#\" \"$@\" \"$PWD\"; ls /proc/self/fd; echo err >&2; exit 6\n",
                 args2, 3);
    check_parity(pool, "bash", "cat; echo read-ok\n", NULL, 0);
    /* The execution's rlimits reach the pre-started interpreter exactly as a cold program's. */
    check_parity(pool, "bash",
                 "grep -E 'cpu time|file size|open files|processes' /proc/self/limits\n", NULL, 0);
    check_parity(pool, "js",
                 "console.log(require('fs').readFileSync('/proc/self/limits', 'utf8').split('\\n')"
                 ".filter(l => /cpu time|file size|open files|processes/.test(l)).join('\\n'))\n",
                 NULL, 0);
    lang_pools_free(lp);
}

/* Limits above the context defaults the sandbox was parked with (CPU time from a 90 s wall
 * clock) reach the interpreter too, as for a cold program. */
static void test_pool_interpreter_takes_higher_limits(void **state)
{
    static const struct lang_pool_size sizes[] = {{"js", 1}};
    static const char *code =
        "console.log(require('fs').readFileSync('/proc/self/limits', 'utf8').split('\\n')"
        ".filter(l => /cpu time|file size/.test(l)).join('\\n'))\n";
    struct lang_pools *lp = pools_new(sizes, 1);
    struct sbx_result w = {0}, c = {0};
    bool warm = false;
    (void)state;

    assert_true(sbx_pool_wait_full(lang_pools_pool(lp), POOL_WAIT_MS));
    run_lang_wall(lang_pools_pool(lp), "js", code, NULL, 0, 90000, &w, &warm);
    assert_true(warm);
    run_lang_wall(NULL, "js", code, NULL, 0, 90000, &c, NULL);
    assert_same(&w, &c);
    assert_non_null(strstr(w.out, "91"));
    sbx_result_clear(&w);
    sbx_result_clear(&c);
    lang_pools_free(lp);
}

/* The interpreter waiting in a parked sandbox is confined like a cold program. */
static void test_pool_interpreter_is_confined(void **state)
{
    static const struct lang_pool_size sizes[] = {{"js", 1}};
    struct lang_pools *lp = pools_new(sizes, 1);
    struct sbx_result w = {0};
    bool warm = false;
    (void)state;

    assert_true(sbx_pool_wait_full(lang_pools_pool(lp), POOL_WAIT_MS));
    run_lang(
        lang_pools_pool(lp), "js",
        "const s = require('fs').readFileSync('/proc/self/status', 'utf8');\n"
        "for (const k of ['Uid', 'CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs', 'Seccomp:'])\n"
        "  console.log(s.split('\\n').find(l => l.startsWith(k)).replace(/\\s+/g, ' '));\n"
        "try { require('fs').writeFileSync('/etc/x', '1'); } catch (e) { console.log(e.code); }\n",
        NULL, 0, &w, &warm);
    assert_true(warm);
    assert_non_null(strstr(w.out, "Uid: 1000 1000 1000 1000"));
    assert_non_null(strstr(w.out, "CapEff: 0000000000000000"));
    assert_non_null(strstr(w.out, "CapPrm: 0000000000000000"));
    assert_non_null(strstr(w.out, "CapBnd: 0000000000000000"));
    assert_non_null(strstr(w.out, "NoNewPrivs: 1"));
    assert_non_null(strstr(w.out, "Seccomp: 2"));
    assert_non_null(strstr(w.out, "EROFS"));
    sbx_result_clear(&w);
    lang_pools_free(lp);
}

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* Park one sandbox (through cl, or by this thread when NULL) and return the page faults a rewrite
 * of buf then costs us; the sandbox is checked (init our child, alive) and freed. */
static long faults_after_park(struct sbx_cloner *cl, char *buf, size_t len)
{
    struct sbx_parked *p = NULL;
    struct errbuf eb = {{0}};
    char path[64], line[256];
    int pid = -1, ppid = -1;
    long f0;
    FILE *f;

    memset(buf, 1, len);
    assert_int_equal(sbx_park_new(ctx, cl, NULL, NULL, NULL, &p, &eb), KILN_OK);
    f0 = minflt();
    memset(buf, 2, len);
    f0 = minflt() - f0;
    assert_true(sbx_park_alive(p));
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", p->pidfd);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Pid: %d", &pid) == 1)
            break;
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "PPid: %d", &ppid) == 1)
            break;
    fclose(f);
    assert_int_equal(ppid, getpid()); /* CLONE_PARENT: ours to wait for, as before */
    sbx_park_free(p);
    return f0;
}

/* The cloner: a parked sandbox made through it leaves our pages alone (a clone of this process
 * write-protects every page it has, and each first write afterwards is a fault: 512 for this
 * buffer), and its init is still our child. */
static void test_pool_cloner_leaves_our_pages_writable(void **state)
{
    const size_t len = 2u << 20;
    char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sbx_cloner *cl = NULL;
    struct errbuf eb = {{0}};
    long own, through;
    (void)state;

    assert_true(buf != MAP_FAILED);
    memset(buf, 0, len);
    own = faults_after_park(NULL, buf, len);
    assert_true(own >= (long)(len / 4096));
    assert_int_equal(sbx_cloner_start(&cl, &eb), KILN_OK);
    memset(buf, 3, len); /* the cloner's own fork: once */
    through = faults_after_park(cl, buf, len);
    assert_true(through < 64);
    through = faults_after_park(cl, buf, len);
    assert_true(through < 64);
    sbx_cloner_stop(cl);
    munmap(buf, len);
}

/* A parked sandbox holds no user data: /mnt/data is empty inside until the take, and the
 * workspace (with the file put before the take) appears only then. */
static void test_pool_parked_sandbox_holds_no_user_data(void **state)
{
    static const char *const ls_argv[] = {"/bin/ls", "-A", "/mnt/data", NULL};
    static const char *const env[] = {"PATH=/usr/bin:/bin", NULL};
    struct sbx_step step = {ls_argv, false, false};
    struct sbx_job job = {0};
    struct sbx_parked *p = NULL;
    struct sbx_workspace *ws = NULL;
    struct sbx_result res = {0};
    struct errbuf eb = {{0}};
    char path[128], line[256];
    int pid = -1;
    FILE *f;
    DIR *d;
    struct dirent *e;
    int n = 0;
    (void)state;

    assert_int_equal(sbx_park_new(ctx, NULL, NULL, NULL, NULL, &p, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_new_on(ctx, 0, &p->slot, &ws, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_put(ws, "secret.txt", "s", 1, -1, &eb), KILN_OK);
    /* Look into the parked sandbox from the host, through its init's root. */
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", p->pidfd);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Pid: %d", &pid) == 1)
            break;
    fclose(f);
    assert_true(pid > 0);
    snprintf(path, sizeof path, "/proc/%d/root/mnt/data", pid);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    assert_int_equal(n, 0);
    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.ws = ws;
    job.cancel_fd = -1;
    /* The slot moves to the workspace's holder (here: the test) before the take. */
    struct sbx_slot slot = p->slot;
    p->slot.lock_fd = -1;
    assert_int_equal(sbx_park_take(p, ws, &job, NULL, 0, &res, NULL, &eb), KILN_OK);
    assert_string_equal(res.out, "secret.txt\n");
    assert_int_equal(res.status, SBX_OK);
    sbx_result_clear(&res);
    sbx_workspace_free(ws);
    sbx_slot_release(&slot);
}

/* Init refuses a workspace fd that is not the inode the take names (st_dev/st_ino), before
 * mounting anything: the sandbox reports a setup failure and runs nothing. */
static void test_pool_take_checks_the_workspace_inode(void **state)
{
    struct sbx_parked *p = NULL;
    struct sbx_workspace *ws = NULL;
    struct sbx_take_msg *m = calloc(1, sizeof *m);
    struct errbuf eb = {{0}};
    struct stat st;
    struct sbx_rec rec = {0};
    struct pollfd pfd;
    int treefd;
    (void)state;

    assert_non_null(m);
    assert_int_equal(sbx_park_new(ctx, NULL, NULL, NULL, NULL, &p, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_new_on(ctx, 0, &p->slot, &ws, &eb), KILN_OK);
    treefd = (int)syscall(SYS_open_tree, ws->dirfd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH);
    assert_true(treefd >= 0);
    assert_int_equal(fstat(ws->dirfd, &st), 0);
    m->magic = SBX_TAKE_MAGIC;
    m->mode = SBX_TAKE_STEPS;
    m->ws_dev = (uint64_t)st.st_dev;
    m->ws_ino = (uint64_t)st.st_ino + 1; /* not this inode */
    m->nsteps = 1;
    m->step_argc[0] = 1;
    memcpy(m->blob, "/bin/true", 10);
    m->blob_len = 10;
    m->file_size_bytes = 1 << 20;
    m->open_files = 64;
    m->nproc = 64;
    assert_int_equal(
        sbx_send_fd(p->ctl, m, offsetof(struct sbx_take_msg, blob) + m->blob_len, treefd, 0), 0);
    close(treefd);
    pfd.fd = p->rep_r;
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    assert_int_equal(read(p->rep_r, &rec, sizeof rec), (ssize_t)sizeof rec);
    assert_int_equal(rec.kind, SBX_REC_SETUP_FAIL);
    assert_int_equal(rec.stage, SBX_ST_TAKE);
    assert_int_equal(rec.err, EXDEV);
    /* and nothing ran: no step record follows before init's end */
    pfd.fd = p->pidfd;
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    assert_true(read(p->rep_r, &rec, sizeof rec) <= 0);
    sbx_park_free(p);
    sbx_workspace_free(ws);
    free(m);
}

/* Each parked sandbox serves one execution: a second run of the same lease is cold, and what
 * one execution left in /tmp is not seen by the next from the same pool. */
static void test_pool_one_sandbox_one_execution(void **state)
{
    static const struct lang_pool_size sizes[] = {{"bash", 2}};
    struct lang_pools *lp = pools_new(sizes, 1);
    struct sbx_pool *pool = lang_pools_pool(lp);
    struct sbx_result r1 = {0}, r2 = {0};
    struct sbx_pool_stats st;
    bool warm = false;
    (void)state;

    assert_true(sbx_pool_wait_full(pool, POOL_WAIT_MS));
    run_lang(pool, "bash", "ls -A /tmp; echo left > /tmp/marker; echo $$", NULL, 0, &r1, &warm);
    assert_true(warm);
    run_lang(pool, "bash", "ls -A /tmp; echo $$", NULL, 0, &r2, &warm);
    assert_true(warm);
    assert_null(strstr(r2.out, "marker"));
    assert_null(strstr(r1.out, "kiln"));
    sbx_result_clear(&r1);
    sbx_result_clear(&r2);

    /* the same lease twice: the second run is a cold one */
    {
        const struct lang *l = lang_find("bash");
        struct sbx_lease *lease = NULL;
        struct lang_job *lj = NULL;
        struct errbuf eb = {{0}};
        struct sbx_limits lim = {0};
        assert_true(sbx_pool_wait_full(pool, POOL_WAIT_MS));
        assert_int_equal(sbx_pool_lease(pool, "bash", 0, &lease, &eb), KILN_OK);
        assert_true(sbx_lease_warm(lease));
        assert_int_equal(
            lang_job_new(l, "echo hi", 7, NULL, 0, &lim, sbx_lease_workspace(lease), &lj, &eb),
            KILN_OK);
        assert_int_equal(sbx_lease_run(lease, &lj->job, &r1, &eb), KILN_OK);
        assert_true(sbx_lease_warm(lease));
        assert_int_equal(sbx_lease_run(lease, &lj->job, &r2, &eb), KILN_OK);
        assert_string_equal(r1.out, "hi\n");
        assert_string_equal(r2.out, "hi\n");
        lang_job_free(lj);
        sbx_lease_free(lease);
        sbx_result_clear(&r1);
        sbx_result_clear(&r2);
    }
    sbx_pool_stats(pool, 0, &st);
    assert_string_equal(st.key, "bash");
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 1);
    assert_true(st.created >= 3);
    assert_true(st.create_ms_mean > 0);
    lang_pools_free(lp);
}

/* A miss (no pool for the language, an empty pool, a job that does not fit) is a cold run,
 * never an error; the pool refills after takes. */
static void test_pool_miss_falls_back_and_refills(void **state)
{
    static const struct lang_pool_size sizes[] = {{"js", 1}, {"c", 0}};
    struct sbx_pool_opts o = {0};
    struct lang_pools *lp = NULL;
    struct errbuf eb = {{0}};
    struct sbx_result r = {0};
    struct sbx_pool_stats st;
    bool warm = true;
    (void)state;

    o.warmup = false; /* nothing until first use */
    o.batch = 1;
    o.replenish_ms = 100;
    assert_int_equal(lang_pools_new_sizes(ctx, sizes, 2, &o, &lp, &eb), KILN_OK);
    usleep(300000);
    sbx_pool_stats(lang_pools_pool(lp), 0, &st);
    assert_int_equal(st.idle, 0);
    run_lang(lang_pools_pool(lp), "js", "console.log(1)", NULL, 0, &r, &warm);
    assert_false(warm);
    assert_string_equal(r.out, "1\n");
    sbx_result_clear(&r);
    run_lang(lang_pools_pool(lp), "c", "int main(void){return 0;}", NULL, 0, &r, &warm);
    assert_false(warm);
    assert_int_equal(r.status, SBX_OK);
    sbx_result_clear(&r);
    /* the first use started the filling */
    assert_true(sbx_pool_wait_full(lang_pools_pool(lp), POOL_WAIT_MS));
    sbx_pool_stats(lang_pools_pool(lp), 0, &st);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.misses, 1);
    run_lang(lang_pools_pool(lp), "js", "console.log(2)", NULL, 0, &r, &warm);
    assert_true(warm);
    assert_string_equal(r.out, "2\n");
    sbx_result_clear(&r);
    assert_true(sbx_pool_wait_full(lang_pools_pool(lp), POOL_WAIT_MS));
    sbx_pool_stats(lang_pools_pool(lp), 0, &st);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.created, 2);
    lang_pools_free(lp);
}

/* Limits still hold in a taken sandbox: the wall clock kills an interpreter that loops. */
static void test_pool_warm_timeout(void **state)
{
    static const struct lang_pool_size sizes[] = {{"js", 1}};
    struct lang_pools *lp = pools_new(sizes, 1);
    const struct lang *l = lang_find("js");
    struct sbx_lease *lease = NULL;
    struct lang_job *lj = NULL;
    struct errbuf eb = {{0}};
    struct sbx_limits lim = {0};
    struct sbx_result r = {0};
    (void)state;

    assert_true(sbx_pool_wait_full(lang_pools_pool(lp), POOL_WAIT_MS));
    lim.wall_ms = 1000;
    assert_int_equal(sbx_pool_lease(lang_pools_pool(lp), "js", 0, &lease, &eb), KILN_OK);
    assert_int_equal(
        lang_job_new(l, "for(;;){}", 9, NULL, 0, &lim, sbx_lease_workspace(lease), &lj, &eb),
        KILN_OK);
    assert_int_equal(sbx_lease_run(lease, &lj->job, &r, &eb), KILN_OK);
    assert_true(sbx_lease_warm(lease));
    if (r.status != SBX_TIMEOUT)
        fprintf(stderr, "status %s exit %d sig %d wall %lld cpu %lld out [%s] err [%s]\n",
                sbx_status_name(r.status), r.exit_code, r.signal, r.wall_ms, r.cpu_ms, r.out,
                r.err);
    assert_int_equal(r.status, SBX_TIMEOUT);
    assert_true(r.wall_ms >= 1000 && r.wall_ms < 5000);
    sbx_result_clear(&r);
    lang_job_free(lj);
    sbx_lease_free(lease);
    lang_pools_free(lp);
}

/* A kind whose interpreter dies while parked is recycled, pauses after a few failures instead
 * of rebuilding every round, and its leases still run (cold). */
static void test_pool_broken_interpreter_pauses_and_falls_back(void **state)
{
    static const char *const argv[] = {"/bin/false", NULL};
    static const char *const prefix[] = {"/bin/sh", NULL};
    static const char *const env[] = {"PATH=/usr/bin:/bin", NULL};
    static const char *const sh[] = {"/bin/sh", "-c", "echo cold", NULL};
    struct sbx_pool_kind kind = {"x", 1, argv, env, prefix, NULL, NULL};
    struct sbx_pool_opts o = {0};
    struct sbx_pool *pool = NULL;
    struct sbx_pool_stats st;
    struct sbx_lease *lease = NULL;
    struct sbx_step step = {sh, false, false};
    struct sbx_job job = {0};
    struct sbx_result r = {0};
    struct errbuf eb = {{0}};
    unsigned long long created;
    long long deadline;
    (void)state;

    o.kinds = &kind;
    o.nkinds = 1;
    o.warmup = true;
    o.batch = 1;
    o.replenish_ms = 50;
    assert_int_equal(sbx_pool_new(ctx, &o, &pool, &eb), KILN_OK);
    /* Three builds and deaths: waited for, not slept for. They take ~0.2 s on a quiet machine,
     * but a fixed 3 s assumed that a load average of ~30 slows them down less than 15 times. */
    deadline = sbx_now_ms() + POOL_WAIT_MS;
    do {
        usleep(20000);
        sbx_pool_stats(pool, 0, &st);
    } while (st.recycled < 3 && sbx_now_ms() < deadline);
    assert_true(st.recycled >= 3);
    /* Paused: 1 s is 20 rounds of 50 ms, and a kind that had not paused would rebuild in them.
     * A build that failed (not only died parked) also counts to the pause, which then may have
     * come one or two deaths earlier and ended: at most the two builds of a new streak. */
    created = st.created;
    usleep(1000000);
    sbx_pool_stats(pool, 0, &st);
    if (st.failed == 0)
        assert_int_equal(st.created, created);
    else
        assert_true(st.created <= created + 2);
    assert_int_equal(sbx_pool_lease(pool, "x", 0, &lease, &eb), KILN_OK);
    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.ws = sbx_lease_workspace(lease);
    job.cancel_fd = -1;
    assert_int_equal(sbx_lease_run(lease, &job, &r, &eb), KILN_OK);
    assert_string_equal(r.out, "cold\n");
    sbx_result_clear(&r);
    sbx_lease_free(lease);
    sbx_pool_free(pool);
}

static void test_pool_free_leaves_nothing(void **state)
{
    static const struct lang_pool_size sizes[] = {{"js", 2}, {"bash", 2}, {"py", 1}};
    struct lang_pools *lp = pools_new(sizes, 3);
    (void)state;

    assert_true(sbx_pool_wait_full(lang_pools_pool(lp), POOL_WAIT_MS));
    assert_true(stu_count_slot_processes(uid_base, SLOTS, false) >= 5);
    assert_true(stu_count_our_cgroups(ctx) >= 5);
    lang_pools_free(lp);
    assert_int_equal(stu_count_slot_processes(uid_base, SLOTS, true), 0);
    assert_int_equal(stu_count_our_cgroups(ctx), 0);
    assert_int_equal(stu_count_run_dir_mounts(run_dir), 0);
}

/* The pools never take every slot: cold runs always find one. */
static void test_pool_leaves_slots_for_cold_runs(void **state)
{
    static const struct lang_pool_size sizes[] = {{"bash", 50}};
    struct lang_pools *lp = pools_new(sizes, 1);
    struct sbx_pool_stats st;
    struct sbx_result r = {0};
    (void)state;

    sbx_pool_wait_full(lang_pools_pool(lp), 60000);
    sbx_pool_stats(lang_pools_pool(lp), 0, &st);
    /* At most the cap (fewer when another process holds some of these host uids). */
    assert_true(st.idle >= 1 && st.idle <= SLOTS - SLOTS / 4 - 1);
    run_lang(NULL, "bash", "echo cold", NULL, 0, &r, NULL);
    assert_string_equal(r.out, "cold\n");
    sbx_result_clear(&r);
    lang_pools_free(lp);
}

/* MAX_CPU_QUOTA: a busy loop under a 0.2 CPU quota gets about a fifth of the wall clock. */
static void test_cpu_quota_is_applied(void **state)
{
    static const char *const argv[] = {"/bin/sh", "-c", "timeout 1 sh -c 'while :; do :; done'",
                                       NULL};
    static const char *const env[] = {"PATH=/usr/bin:/bin", NULL};
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    struct sbx_result r = {0};
    struct errbuf eb = {{0}};
    (void)state;

    if (ctx->cg.v1_cpu == NULL && !ctx->cg.v2_cpu)
        skip();
    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.cancel_fd = -1;
    job.limits.cpu_quota = 20000;
    assert_int_equal(sbx_run(ctx, &job, &r, &eb), KILN_OK);
    assert_true(r.wall_ms >= 900);
    assert_true(r.cpu_ms < 450);
    sbx_result_clear(&r);
}

/* sbx_ctx_recover() removes the cgroups and workspaces of a dead kiln pid, and never those of a
 * live one. */
static void test_recover_removes_leftovers_of_dead_pids(void **state)
{
    char dead_cg[512], live_cg[512], dead_ws[256];
    pid_t dead = fork();
    (void)state;

    if (dead == 0)
        _exit(0);
    assert_true(dead > 0);
    waitpid(dead, NULL, 0);
    assert_non_null(ctx->cg.v1_memory);
    snprintf(dead_cg, sizeof dead_cg, "%s/sbx-%d-7", ctx->cg.v1_memory, (int)dead);
    snprintf(live_cg, sizeof live_cg, "%s/sbx-%d-999999", ctx->cg.v1_memory, (int)getpid());
    snprintf(dead_ws, sizeof dead_ws, "%s/ws/0-%d-deadbeef", run_dir, (int)dead);
    assert_int_equal(mkdir(dead_cg, 0755), 0);
    assert_int_equal(mkdir(live_cg, 0755), 0);
    assert_int_equal(mkdir(dead_ws, 0700), 0);
    assert_int_equal(mount("tmpfs", dead_ws, "tmpfs", 0, "size=1m"), 0);
    sbx_ctx_recover(ctx);
    assert_int_equal(access(dead_cg, F_OK), -1);
    assert_int_equal(access(dead_ws, F_OK), -1);
    assert_int_equal(access(live_cg, F_OK), 0);
    assert_int_equal(stu_count_run_dir_mounts(run_dir), 0);
    rmdir(live_cg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_interpreters_match_cold_runs),
        cmocka_unit_test(test_pool_interpreter_is_confined),
        cmocka_unit_test(test_pool_interpreter_takes_higher_limits),
        cmocka_unit_test(test_pool_cloner_leaves_our_pages_writable),
        cmocka_unit_test(test_pool_parked_sandbox_holds_no_user_data),
        cmocka_unit_test(test_pool_take_checks_the_workspace_inode),
        cmocka_unit_test(test_pool_one_sandbox_one_execution),
        cmocka_unit_test(test_pool_miss_falls_back_and_refills),
        cmocka_unit_test(test_pool_warm_timeout),
        cmocka_unit_test(test_pool_broken_interpreter_pauses_and_falls_back),
        cmocka_unit_test(test_pool_leaves_slots_for_cold_runs),
        cmocka_unit_test(test_cpu_quota_is_applied),
        cmocka_unit_test(test_recover_removes_leftovers_of_dead_pids),
        cmocka_unit_test(test_pool_free_leaves_nothing),
    };
    if (geteuid() != 0) {
        fprintf(stderr, "test_pool needs root (parked sandboxes)\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
