/* bench/zygote: print(1) through the Python zygote vs a cold sbx_run() of python3, latency at
 * concurrency 1 and throughput at concurrency 8, and a pandas+matplotlib job vs its in-process
 * run time. Build and run: bench/zygote/run (see bench/README.md). Root only. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include "sandbox/sandbox.h"
#include "sandbox/sbx_int.h"
#include "sandbox/zygote.h"

static const char *const py_env[] = {"HOME=/tmp",
                                     "PATH=/usr/local/bin:/usr/bin:/bin",
                                     "LANG=C.UTF-8",
                                     "TMPDIR=/tmp",
                                     "MPLBACKEND=Agg",
                                     "MPLCONFIGDIR=/tmp",
                                     "PYTHONUNBUFFERED=1",
                                     "PYTHONDONTWRITEBYTECODE=1",
                                     "MATPLOTLIBRC=/usr/share/matplotlib/mpl-data/matplotlibrc",
                                     NULL};

static const char pandas_job[] =
    "import pandas as pd, numpy as np, matplotlib.pyplot as plt\n"
    "df = pd.DataFrame({'g': np.arange(1000) % 7, 'v': np.arange(1000) * 1.5})\n"
    "s = df.groupby('g')['v'].sum()\n"
    "fig, ax = plt.subplots()\n"
    "s.plot(ax=ax, kind='bar')\n"
    "fig.savefig('/mnt/data/plot.png')\n"
    "print(len(s))\n";

/* The same job timed inside one interpreter that already imported the modules. */
static const char pandas_inproc[] =
    "import time, pandas as pd, numpy as np, matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "src = open('/mnt/data/job.py').read().replace('/mnt/data/plot.png', '/tmp/p.png')\n"
    "c = compile(src, 'job', 'exec')\n"
    "ts = []\n"
    "import io, contextlib\n"
    "for i in range(12):\n"
    "    t = time.perf_counter()\n"
    "    with contextlib.redirect_stdout(io.StringIO()):\n"
    "        exec(c, {'__name__': '__main__'})\n"
    "    plt.close('all')\n"
    "    ts.append((time.perf_counter() - t) * 1000)\n"
    "first = ts[0]\n"
    "ts.sort()\n"
    "print('median %.1f ms, first run %.1f' % (ts[len(ts) // 2], first))\n";

struct bench {
    struct sbx_ctx *ctx;
    struct zyg_set *zs;
    bool zygote;
    const char *code;
    int n;
    double *lat;
    int next;
    pthread_mutex_t mu;
    int errors;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int one(struct bench *b, const char *code, struct sbx_result *res)
{
    const char *argv[] = {"/usr/bin/python3", "code.py", NULL};
    struct sbx_step step = {argv, false, false};
    struct sbx_job job = {0};
    struct sbx_workspace *ws = NULL;
    struct errbuf eb = {{0}};
    enum kiln_err err;

    err = sbx_workspace_new(b->ctx, 0, &ws, &eb);
    if (!err)
        err = sbx_workspace_put(ws, "code.py", code, strlen(code), -1, &eb);
    if (!err) {
        job.steps = &step;
        job.nsteps = 1;
        job.env = py_env;
        job.ws = ws;
        job.cancel_fd = -1;
        err = b->zygote ? zyg_run(b->zs, &job, code, strlen(code), res, &eb)
                        : sbx_run(b->ctx, &job, res, &eb);
    }
    sbx_workspace_free(ws);
    if (err)
        fprintf(stderr, "run: %s\n", eb.msg);
    return err ? -1 : 0;
}

static void *worker(void *arg)
{
    struct bench *b = arg;

    for (;;) {
        struct sbx_result res;
        double t;
        int i;
        pthread_mutex_lock(&b->mu);
        i = b->next++;
        pthread_mutex_unlock(&b->mu);
        if (i >= b->n)
            return NULL;
        t = now_ms();
        if (one(b, b->code, &res) < 0 || res.status != SBX_OK || strcmp(res.out, "1\n") != 0) {
            if (b->errors++ < 3)
                fprintf(stderr, "bad result: %s out=%s err=%s\n", sbx_status_name(res.status),
                        res.out ? res.out : "", res.err ? res.err : "");
        }
        b->lat[i] = now_ms() - t;
        sbx_result_clear(&res);
    }
}

/* Memory of the zygotes (our children) and of their warm children, from smaps_rollup. */
static void memory_report(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s", "");
    for (int pid = 1; pid < 4194304; pid++) {
        char path[64], line[256];
        long long rss = 0, pc = 0, pd = 0, pss = 0;
        int ppid = 0;
        FILE *f;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fgets(line, sizeof line, f) != NULL) {
            char *rp = strrchr(line, ')');
            if (rp != NULL)
                sscanf(rp + 2, "%*c %d", &ppid);
        }
        fclose(f);
        snprintf(path, sizeof path, "/proc/%d/status", pid);
        f = fopen(path, "re");
        unsigned uid = 0;
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f) != NULL)
            if (strncmp(line, "Uid:", 4) == 0)
                uid = (unsigned)strtoul(line + 4, NULL, 10);
        fclose(f);
        if (uid < 270000 || uid >= 270016)
            continue;
        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "Rss:", 4) == 0)
                rss = strtoll(line + 4, NULL, 10);
            else if (strncmp(line, "Pss:", 4) == 0)
                pss = strtoll(line + 4, NULL, 10);
            else if (strncmp(line, "Private_Clean:", 14) == 0)
                pc = strtoll(line + 14, NULL, 10);
            else if (strncmp(line, "Private_Dirty:", 14) == 0)
                pd = strtoll(line + 14, NULL, 10);
        }
        fclose(f);
        printf("  %s pid %d: Rss %lld kB, Pss %lld kB, Private %lld kB (clean %lld + dirty %lld)\n",
               ppid == getpid() ? "zygote     " : "warm child ", pid, rss, pss, pc + pd, pc, pd);
    }
    (void)cmd;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU used so far by every sandbox and zygote of ours (the cpuacct parent) and by this
 * process (the supervisor side), in ms. */
static double cpu_ms(const struct bench *b)
{
    char path[512], buf[64] = "";
    struct rusage ru;
    double v = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/cpuacct.usage", b->ctx->cg.v1_cpuacct);
    f = fopen(path, "re");
    if (f != NULL) {
        if (fgets(buf, sizeof buf, f) != NULL)
            v = strtod(buf, NULL) / 1e6;
        fclose(f);
    }
    getrusage(RUSAGE_SELF, &ru);
    return v + ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
           ru.ru_stime.tv_usec / 1e3;
}

static void series(struct bench *b, const char *label, int n, int conc)
{
    pthread_t th[16];
    double t0, el, c0 = cpu_ms(b);

    b->n = n;
    b->next = 0;
    b->errors = 0;
    b->lat = calloc((size_t)n, sizeof *b->lat);
    t0 = now_ms();
    for (int i = 0; i < conc; i++)
        pthread_create(&th[i], NULL, worker, b);
    for (int i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    el = now_ms() - t0;
    qsort(b->lat, (size_t)n, sizeof *b->lat, cmp);
    printf("%-24s c=%d n=%d  p50 %7.2f ms  p99 %7.2f ms  %6.1f exec/s  CPU/exec %5.1f ms  "
           "errors %d\n",
           label, conc, n, b->lat[n / 2], b->lat[(n * 99) / 100], n * 1000.0 / el,
           (cpu_ms(b) - c0) / n, b->errors);
    fflush(stdout);
    free(b->lat);
}

int main(int argc, char **argv)
{
    struct sbx_ctx_opts o = {0};
    struct zyg_opts zo = {0};
    struct errbuf eb = {{0}};
    struct bench b;
    struct zyg_stats st;
    int n1 = argc > 1 ? atoi(argv[1]) : 200;
    const char *mode = argc > 2 ? argv[2] : "all";

    memset(&b, 0, sizeof b);
    pthread_mutex_init(&b.mu, NULL);
    o.run_dir = "/run/kiln-zbench";
    o.uid_base = 270000;
    o.slots = 16;
    if (sbx_ctx_new(&b.ctx, &o, &eb) != KILN_OK) {
        fprintf(stderr, "ctx: %s\n", eb.msg);
        return 1;
    }
    zo.preload = getenv("PY_PRELOAD") != NULL ? getenv("PY_PRELOAD") : "numpy,pandas,matplotlib";
    zo.env = py_env;
    zo.warm = getenv("ZWARM") != NULL ? (unsigned)atoi(getenv("ZWARM")) : 4;
    zo.light = true;
    zo.prefault_heavy = getenv("ZPREFAULT") != NULL;
    if (zyg_start(b.ctx, &zo, &b.zs, &eb) != KILN_OK) {
        fprintf(stderr, "zyg_start: %s\n", eb.msg);
        return 1;
    }
    if (!zyg_wait_ready(b.zs, 180000))
        fprintf(stderr, "zygotes not ready\n");
    zyg_get_stats(b.zs, &st);
    printf("zygote RSS at rest: light %lld kB, heavy %lld kB; ready children %u + %u\n",
           st.rss_kb[0], st.rss_kb[1], st.ready[0], st.ready[1]);
    b.code = "print(1)\n";
    if (strcmp(mode, "mem") == 0) {
        sleep(2);
        memory_report();
    } else if (strcmp(mode, "lat") == 0) {
        b.zygote = true;
        series(&b, "print(1) zygote", n1, 1);
    } else if (strcmp(mode, "smoke") == 0) {
        struct sbx_result res;
        b.zygote = true;
        one(&b, argc > 3 ? argv[3] : b.code, &res);
        printf("status %s exit %d sig %d wall %lld cpu %lld peak %lld\nout: %s\nerr: %s\n",
               sbx_status_name(res.status), res.exit_code, res.signal, res.wall_ms, res.cpu_ms,
               res.memory_peak_kb, res.out, res.err);
        sbx_result_clear(&res);
    } else {
        if (strcmp(mode, "pandas") != 0) {
            b.zygote = true;
            series(&b, "print(1) zygote", n1, 1);
            series(&b, "print(1) zygote", n1 * 2, 8);
            b.zygote = false;
            series(&b, "print(1) cold sbx_run", n1 / 4, 1);
            series(&b, "print(1) cold sbx_run", n1 / 2, 8);
        }
        {
            /* pandas job through the heavy zygote */
            double lat[12];
            struct sbx_result res;
            b.zygote = true;
            for (int i = 0; i < 12; i++) {
                double t = now_ms();
                one(&b, pandas_job, &res);
                lat[i] = now_ms() - t;
                if (res.status != SBX_OK)
                    fprintf(stderr, "pandas: %s %s\n", sbx_status_name(res.status), res.err);
                sbx_result_clear(&res);
            }
            qsort(lat, 12, sizeof lat[0], cmp);
            printf("pandas+matplotlib zygote      p50 %7.2f ms\n", lat[6]);
            {
                /* in-process: one sandboxed interpreter imports, then times the job itself */
                char *code = malloc(sizeof pandas_inproc + sizeof pandas_job + 64);
                const char *argv2[] = {"/usr/bin/python3", "inproc.py", NULL};
                struct sbx_step step = {argv2, false, false};
                struct sbx_job job = {0};
                struct sbx_workspace *ws = NULL;
                snprintf(code, sizeof pandas_inproc + 1, "%s", pandas_inproc);
                sbx_workspace_new(b.ctx, 0, &ws, &eb);
                sbx_workspace_put(ws, "inproc.py", code, strlen(code), -1, &eb);
                sbx_workspace_put(ws, "job.py", pandas_job, strlen(pandas_job), -1, &eb);
                job.steps = &step;
                job.nsteps = 1;
                job.env = py_env;
                job.ws = ws;
                job.cancel_fd = -1;
                if (sbx_run(b.ctx, &job, &res, &eb) == KILN_OK)
                    printf("pandas+matplotlib in-process  %s ms %s\n", res.out, res.err);
                sbx_result_clear(&res);
                sbx_workspace_free(ws);
                free(code);
            }
        }
    }
    zyg_get_stats(b.zs, &st);
    printf("stats: forked %llu hits %llu misses %llu fallbacks %llu restarts %llu\n", st.forked,
           st.hits, st.misses, st.fallbacks, st.restarts);
    zyg_stop(b.zs);
    sbx_ctx_free(b.ctx);
    return 0;
}
