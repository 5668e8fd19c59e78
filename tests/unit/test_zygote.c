/* Unit tests of the Python zygote (sandbox/zygote.h): real zygotes and real children, as root.
 * Parity with a cold sbx_run() of python3, isolation of each child, no state crossing between
 * executions (a monkeypatched module, a global, an environment variable, a file, a thread),
 * concurrent children that cannot see each other, limits, restart after the zygote is killed,
 * and nothing left behind once the set is stopped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "sandbox/sbx_int.h"
#include "sbx_testutil.h"
#include "sandbox/zygote.h"

/* Not kiln's 200000 nor test_sandbox's 260000: they may run at the same time on this host. */
/* UID_RANGES ranges of SLOTS uids from UID_FIRST, one per concurrent run (stu_take_uid_range) */
#define UID_FIRST  282000u
#define UID_RANGES 8u
#define SLOTS      8u

static char run_dir[64];
static unsigned uid_base; /* this process's range (stu_take_uid_range) */
static struct sbx_ctx *ctx;
static struct zyg_set *zs;
static const char *const env[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                  "HOME=/tmp",
                                  "LANG=C.UTF-8",
                                  "TMPDIR=/tmp",
                                  "MPLBACKEND=Agg",
                                  "MPLCONFIGDIR=/tmp",
                                  "PYTHONUNBUFFERED=1",
                                  "PYTHONDONTWRITEBYTECODE=1",
                                  NULL};

static void start_set(void)
{
    struct zyg_opts zo = {0};
    struct errbuf eb = {{0}};

    zo.preload = "numpy";
    zo.env = env;
    zo.warm = 2;
    zo.light = true;
    if (zyg_start(ctx, &zo, &zs, &eb) != KILN_OK)
        fail_msg("zyg_start: %s", eb.msg);
    assert_true(zyg_wait_ready(zs, 240000));
}

static int group_setup(void **state)
{
    (void)state;
    if (stu_take_uid_range("test_zygote", UID_FIRST, UID_RANGES, SLOTS, &uid_base) != 0)
        return -1;
    if (stu_ctx_setup(&ctx, run_dir, sizeof run_dir, "/tmp/kiln-zyg-test-XXXXXX", uid_base, SLOTS) <
        0)
        return -1;
    start_set();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    zyg_stop(zs);
    stu_ctx_teardown(ctx, run_dir, SLOTS);
    return 0;
}

/* One execution of code (with args) through the zygote (zygote=true) or cold; ws_out, when
 * given, receives the workspace (the caller frees it). */
static void run_py(const char *code, const char *const *args, const struct sbx_limits *lim,
                   bool zygote, struct sbx_result *res, struct sbx_workspace **ws_out)
{
    const char *argv[16] = {"/usr/bin/python3", "code.py"};
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    struct sbx_workspace *ws = NULL;
    struct errbuf eb = {{0}};
    size_t n = 2;

    for (size_t i = 0; args != NULL && args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    assert_int_equal(sbx_workspace_new(ctx, 0, &ws, &eb), KILN_OK);
    assert_int_equal(sbx_workspace_put(ws, "code.py", code, strlen(code), -1, &eb), KILN_OK);
    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.ws = ws;
    job.cancel_fd = -1;
    if (lim != NULL)
        job.limits = *lim;
    if (zygote) {
        if (zyg_run(zs, &job, code, strlen(code), res, &eb) != KILN_OK)
            fail_msg("zyg_run: %s", eb.msg);
    } else if (sbx_run(ctx, &job, res, &eb) != KILN_OK) {
        fail_msg("sbx_run: %s", eb.msg);
    }
    if (ws_out != NULL)
        *ws_out = ws;
    else
        sbx_workspace_free(ws);
}

static unsigned long long fallbacks(void)
{
    struct zyg_stats st;
    zyg_get_stats(zs, &st);
    return st.fallbacks;
}

static void test_zygote_print(void **state)
{
    struct sbx_result r;
    struct zyg_stats a, b;
    (void)state;

    zyg_get_stats(zs, &a);
    run_py("print(1)\n", NULL, NULL, true, &r, NULL);
    zyg_get_stats(zs, &b);
    assert_int_equal(r.status, SBX_OK);
    assert_string_equal(r.out, "1\n");
    assert_string_equal(r.err, "");
    assert_int_equal(r.exit_code, 0);
    assert_true(r.memory_peak_kb > 0);
    /* Served by a zygote child, not by the cold path. */
    assert_int_equal(b.fallbacks, a.fallbacks);
    assert_int_equal(b.hits + b.misses, a.hits + a.misses + 1);
    assert_true(b.running[0] && b.running[1]);
    assert_true(b.rss_kb[0] > 1000 && b.rss_kb[1] > b.rss_kb[0]);
    sbx_result_clear(&r);
}

/* The same programs, cold and through the zygote: same stdout, stderr, exit code, status. */
static void test_zygote_parity_with_cold(void **state)
{
    static const char *const progs[] = {
        ("import sys, os\nprint(__name__, __file__, sys.argv, os.getcwd(), sys.path[0])\n"
         "print(os.getuid(), os.getgid(), sorted(k for k in os.environ if k != 'LC_CTYPE'))\n"),
        "def f():\n    return 1/0\nprint('before')\nf()\n",
        "import sys\nprint('x')\nsys.exit(3)\n",
        "raise SystemExit('bye')\n",
        "import sys\nsys.stdout.write(sys.stdin.read().upper())\n",
        "import json, collections\nprint(json.dumps(collections.Counter('abca')))\n",
        "import atexit\natexit.register(lambda: print('at exit'))\nprint('main')\n",
        /* the rehearsal runs this path too, with threading's shutdown and atexit stubbed out:
         * neither may be used up before the program's own turn */
        ("import threading, time\n"
         "print(threading.main_thread().is_alive(), threading.active_count())\n"
         "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\n"
         "print('main done')\n"),
        "def g(:\n",
    };
    static const char *const args[] = {"a b", "--flag", NULL};
    (void)state;

    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        struct sbx_result c, z;
        run_py(progs[i], args, NULL, false, &c, NULL);
        run_py(progs[i], args, NULL, true, &z, NULL);
        if (strcmp(c.out, z.out) != 0 || strcmp(c.err, z.err) != 0)
            fail_msg("program %zu differs:\ncold out %s\nzyg  out %s\ncold err %s\nzyg  err %s", i,
                     c.out, z.out, c.err, z.err);
        assert_int_equal(c.status, z.status);
        assert_int_equal(c.exit_code, z.exit_code);
        sbx_result_clear(&c);
        sbx_result_clear(&z);
    }
}

static const char isolation_probe[] =
    "import os, socket\n"
    "st = open('/proc/self/status').read()\n"
    "f = {l.split(':')[0]: l.split(':')[1].strip() for l in st.splitlines() if ':' in l}\n"
    "print('uid', os.getuid(), os.geteuid(), os.getgid())\n"
    "print('caps', f['CapInh'], f['CapPrm'], f['CapEff'], f['CapBnd'], f['CapAmb'])\n"
    "print('seccomp', f['Seccomp'], 'nnp', f['NoNewPrivs'])\n"
    "print('ifaces', sorted(n for i, n in socket.if_nameindex()))\n"
    "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
    "print('host', [p for p in ('/etc/shadow', '/work', '/root', '/home', '/var', '/run/kiln',\n"
    "    '/opt', '/etc/kiln-zygote/zygote.py') if os.path.exists(p)])\n"
    "print('uid_map', open('/proc/self/uid_map').read().split())\n"
    "print('cgroup', open('/proc/self/cgroup').read().split())\n"
    "print('hostname', socket.gethostname())\n"
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"
    "open('/mnt/data/mine', 'w').write('x')\n"
    "for p in ('/', '/usr/x', '/etc/kiln-zygote/x'):\n"
    "    try:\n        open(p + 'w', 'w'); print('wrote', p)\n"
    "    except OSError as e:\n        print('ro', p, e.errno)\n";

static void test_zygote_isolation(void **state)
{
    struct sbx_result r;
    struct sbx_workspace *ws;
    struct stat st;
    char want[128];
    (void)state;

    run_py(isolation_probe, NULL, NULL, true, &r, &ws);
    assert_int_equal(r.status, SBX_OK);
    assert_non_null(strstr(r.out, "uid 1000 1000 1000\n"));
    assert_non_null(
        strstr(r.out, "caps 0000000000000000 0000000000000000 0000000000000000 0000000000000000 "
                      "0000000000000000\n"));
    assert_non_null(strstr(r.out, "seccomp 2 nnp 1\n"));
    assert_non_null(strstr(r.out, "ifaces ['lo']\n"));
    /* PID 1 of its own PID namespace, alone in it. */
    assert_non_null(strstr(r.out, "pids [1]\n"));
    assert_non_null(strstr(r.out, "host []\n"));
    assert_non_null(strstr(r.out, "cgroup"));
    assert_null(strstr(r.out, "kiln/sbx"));
    assert_non_null(strstr(r.out, "hostname sandbox\n"));
    assert_non_null(strstr(r.out, "unshare -1 1\n"));
    assert_null(strstr(r.out, "wrote"));
    /* On the host the file belongs to the workspace's slot uid, as in a cold sandbox. */
    assert_int_equal(fstatat(ws->dirfd, "mine", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, ws->slot.uid);
    /* ... and the child's own uid_map names that host uid, as a cold sandbox's does. */
    snprintf(want, sizeof want, "uid_map ['1000', '%u', '1']\n", ws->slot.uid);
    assert_non_null(strstr(r.out, want));
    assert_true(st.st_uid >= uid_base && st.st_uid < uid_base + SLOTS);
    sbx_workspace_free(ws);
    sbx_result_clear(&r);
}

/* What one execution leaves must be gone in the next, in both zygotes. */
static void test_zygote_no_state_crossing(void **state)
{
    static const char *const heavy = "import numpy\n";
    static const char leave[] =
        "import json, os, sys, threading, time, builtins, random\n"
        "json.dumps = lambda *a, **k: 'PATCHED'\n"
        "builtins.LEAKED = 1\n"
        "sys.modules['leaky_mod'] = sys\n"
        "os.environ['LEAK_ENV'] = '1'\n"
        "open('/tmp/leak', 'w').write('x')\n"
        "open('/dev/shm/leak', 'w').write('x')\n"
        "threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n"
        "print(random.random())\n";
    static const char check[] =
        "import json, os, sys, threading, builtins, random\n"
        "print(json.dumps(1), hasattr(builtins, 'LEAKED'), 'leaky_mod' in sys.modules,\n"
        "      'LEAK_ENV' in os.environ, os.path.exists('/tmp/leak'),\n"
        "      os.path.exists('/dev/shm/leak'), threading.active_count(), "
        "len(os.listdir('/proc/self/task')))\n"
        "print(random.random())\n";
    (void)state;

    for (int k = 0; k < 2; k++) {
        struct sbx_result a, b;
        char code[2048];
        snprintf(code, sizeof code, "%s%s", k ? heavy : "", leave);
        run_py(code, NULL, NULL, true, &a, NULL);
        assert_int_equal(a.status, SBX_OK);
        snprintf(code, sizeof code, "%s%s", k ? heavy : "", check);
        run_py(code, NULL, NULL, true, &b, NULL);
        assert_int_equal(b.status, SBX_OK);
        assert_true(strncmp(b.out, "1 False False False False False 1 1\n", 36) == 0);
        /* Every child reseeds: two executions never draw the same "random" number. */
        assert_string_not_equal(strchr(b.out, '\n') + 1, a.out);
        sbx_result_clear(&a);
        sbx_result_clear(&b);
    }
}

struct conc {
    const char *code;
    struct sbx_result res;
    unsigned uid;
};

static void *conc_run(void *arg)
{
    struct conc *c = arg;
    struct sbx_workspace *ws;
    struct stat st;

    run_py(c->code, NULL, NULL, true, &c->res, &ws);
    if (fstatat(ws->dirfd, "me", &st, AT_SYMLINK_NOFOLLOW) == 0)
        c->uid = st.st_uid;
    sbx_workspace_free(ws);
    return NULL;
}

/* Two children at once: each sees only its own files and processes, and runs as its own uid. */
static void test_zygote_concurrent_children_isolated(void **state)
{
    static const char a[] = "import os, time\nopen('/tmp/from_a', 'w').write('a')\n"
                            "open('/mnt/data/me', 'w').write('a')\n"
                            "time.sleep(1.5)\n"
                            "print(os.path.exists('/tmp/from_b'), sorted(os.listdir('/mnt/data')),"
                            " len([p for p in os.listdir('/proc') if p.isdigit()]))\n";
    static const char b[] = "import os, time\nopen('/tmp/from_b', 'w').write('b')\n"
                            "open('/mnt/data/me', 'w').write('b')\n"
                            "time.sleep(1.5)\n"
                            "print(os.path.exists('/tmp/from_a'), sorted(os.listdir('/mnt/data')),"
                            " len([p for p in os.listdir('/proc') if p.isdigit()]))\n";
    struct conc ca = {a, {0}, 0}, cb = {b, {0}, 0};
    pthread_t ta, tb;
    (void)state;

    pthread_create(&ta, NULL, conc_run, &ca);
    pthread_create(&tb, NULL, conc_run, &cb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(ca.res.status, SBX_OK);
    assert_int_equal(cb.res.status, SBX_OK);
    assert_string_equal(ca.res.out, "False ['code.py', 'me'] 1\n");
    assert_string_equal(cb.res.out, "False ['code.py', 'me'] 1\n");
    assert_true(ca.uid != 0 && cb.uid != 0 && ca.uid != cb.uid);
    sbx_result_clear(&ca.res);
    sbx_result_clear(&cb.res);
}

static void test_zygote_limits(void **state)
{
    struct sbx_limits lim = {0};
    struct sbx_result r;
    long long t0;
    (void)state;

    lim.wall_ms = 1500;
    t0 = time(NULL);
    run_py("while True:\n    pass\n", NULL, &lim, true, &r, NULL);
    assert_int_equal(r.status, SBX_TIMEOUT);
    assert_true(time(NULL) - t0 < 10);
    sbx_result_clear(&r);

    memset(&lim, 0, sizeof lim);
    lim.memory_mb = 64;
    run_py("b = []\nwhile True:\n    b.append(bytearray(1 << 20))\n", NULL, &lim, true, &r, NULL);
    assert_int_equal(r.status, SBX_OOM);
    sbx_result_clear(&r);

    /* A fork bomb stops at the pids limit, inside the child's own cgroup. */
    memset(&lim, 0, sizeof lim);
    lim.pids = 16;
    run_py("import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
           "            import time; time.sleep(30)\n        n += 1\n"
           "except OSError as e:\n    print('stopped', n < 20, e.errno)\n",
           NULL, &lim, true, &r, NULL);
    assert_int_equal(r.status, SBX_OK);
    assert_string_equal(r.out, "stopped True 11\n");
    sbx_result_clear(&r);

    memset(&lim, 0, sizeof lim);
    lim.stdout_max = 1000;
    run_py("print('x' * 100000)\n", NULL, &lim, true, &r, NULL);
    assert_int_equal(r.status, SBX_OK);
    assert_true(r.out_truncated);
    assert_int_equal(r.out_len, 1000 + strlen(SBX_TRUNCATION_MARKER));
    sbx_result_clear(&r);

    memset(&lim, 0, sizeof lim);
    lim.file_size_mb = 1;
    run_py("try:\n    open('/mnt/data/big', 'wb').write(b'x' * (2 << 20))\n"
           "except OSError as e:\n    print(e.errno)\n",
           NULL, &lim, true, &r, NULL);
    assert_string_equal(r.out, "27\n");
    sbx_result_clear(&r);
    assert_int_equal(fallbacks(), 0);
}

static void test_zygote_restart_after_kill(void **state)
{
    struct zyg_stats st;
    struct sbx_result r;
    unsigned long long f0 = fallbacks();
    (void)state;

    zyg_debug_kill(zs, 0);
    zyg_debug_kill(zs, 1);
    /* The managers notice, restart both zygotes and fork their children again. */
    for (int i = 0; i < 2400; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        zyg_get_stats(zs, &st);
        if (st.restarts >= 2)
            break;
        nanosleep(&ts, NULL);
    }
    assert_true(zyg_wait_ready(zs, 240000));
    zyg_get_stats(zs, &st);
    assert_true(st.restarts >= 2);
    /* Served by the new zygotes, not by the cold path. */
    run_py("print(2)\n", NULL, NULL, true, &r, NULL);
    assert_int_equal(r.status, SBX_OK);
    assert_string_equal(r.out, "2\n");
    sbx_result_clear(&r);
    assert_int_equal(fallbacks(), f0);
    assert_true(st.running[0] && st.running[1]);
    run_py("import numpy\nprint(3)\n", NULL, NULL, true, &r, NULL);
    assert_string_equal(r.out, "3\n");
    sbx_result_clear(&r);
}

static void test_zygote_falls_back_for_other_jobs(void **state)
{
    const char *argv[] = {"/usr/bin/python3", "-c", "print(4)", NULL};
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    struct sbx_workspace *ws = NULL;
    struct errbuf eb = {{0}};
    struct sbx_result r;
    unsigned long long f0 = fallbacks();
    (void)state;

    assert_int_equal(sbx_workspace_new(ctx, 0, &ws, &eb), KILN_OK);
    job.steps = &step;
    job.nsteps = 1;
    job.env = env;
    job.ws = ws;
    job.cancel_fd = -1;
    assert_int_equal(zyg_run(zs, &job, NULL, 0, &r, &eb), KILN_OK);
    assert_string_equal(r.out, "4\n");
    assert_int_equal(fallbacks(), f0 + 1);
    sbx_result_clear(&r);
    sbx_workspace_free(ws);
}

static void test_zygote_code_scan(void **state)
{
    (void)state;
    assert_true(zyg_code_is_light("print(1)\n", 9));
    assert_true(zyg_code_is_light("import os, sys\nfrom collections import Counter\n", 47));
    assert_true(zyg_code_is_light("x = 'import pandas'\n", 20) == false ||
                zyg_code_is_light("x = 1\n", 6));
    assert_false(zyg_code_is_light("import pandas as pd\n", 20));
    assert_false(zyg_code_is_light("import os; import numpy\n", 24));
    assert_false(zyg_code_is_light("from matplotlib import pyplot\n", 30));
    assert_false(zyg_code_is_light("import mylib\n", 13));
    assert_false(zyg_code_is_light("m = __import__('pandas')\n", 25));
    assert_false(zyg_code_is_light("  import scipy.stats\n", 21));
}

static void test_zygote_stop_leaves_nothing(void **state)
{
    (void)state;

    assert_true(stu_count_slot_processes(uid_base, SLOTS, false) >
                0); /* the zygotes and their warm children */
    zyg_stop(zs);
    zs = NULL;
    assert_int_equal(stu_count_slot_processes(uid_base, SLOTS, true), 0);
    assert_int_equal(stu_count_our_cgroups(ctx), 0);
    start_set();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zygote_code_scan),
        cmocka_unit_test(test_zygote_print),
        cmocka_unit_test(test_zygote_parity_with_cold),
        cmocka_unit_test(test_zygote_isolation),
        cmocka_unit_test(test_zygote_no_state_crossing),
        cmocka_unit_test(test_zygote_concurrent_children_isolated),
        cmocka_unit_test(test_zygote_limits),
        cmocka_unit_test(test_zygote_falls_back_for_other_jobs),
        cmocka_unit_test(test_zygote_restart_after_kill),
        cmocka_unit_test(test_zygote_stop_leaves_nothing),
    };
    if (geteuid() != 0) {
        fprintf(stderr, "test_zygote: needs root (skipped)\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
