/* `kiln bench-pool`: the sandbox-level benchmark of issue 5 (bench/pool runs it). For each
 * language, N executions of a one-line program, cold (a fresh sandbox built per execution by
 * sbx_run) and warm (leased from a pool: a parked sandbox with the pre-started interpreter),
 * interleaved so that a noisy neighbour hits both alike. Each timing is the whole execution as
 * the API would do it: workspace, code file, run, output collected, everything freed. The pool
 * refills in the background; before each warm run the bench waits until it is full and the
 * interpreter has had --settle ms to boot (not timed), which is the steady state of a pool that
 * is not overrun. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lang/lang.h"
#include "lang/warm.h"
#include "sandbox/pool.h"
#include "sandbox/sandbox.h"
#include "util/xmalloc.h"

#define BENCH_RUNS_MAX  100000
#define BENCH_SLOTS     16u
#define BENCH_UID_BASE  264000u
#define BENCH_DIR_ROOT  "/run/kiln-bench"
#define BENCH_WAIT_MS   60000
#define BENCH_SETTLE_MS 300

/* The one-line program of each language. */
static const struct {
    const char *lang, *code;
} bench_programs[] = {
    {"bash", "echo 1\n"},
    {"js", "console.log(1)\n"},
    {"php", "<?php echo 1, \"\\n\";\n"},
    {"r", "cat(1, '\\n', sep = '')\n"},
    {"py", "print(1)\n"},
};

static double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of n sorted values. */
static double bench_q(const double *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1];
}

static enum kiln_err bench_walk(void *arg, const char *relpath, int fd, const struct stat *st)
{
    (void)arg;
    (void)relpath;
    (void)fd;
    (void)st;
    return KILN_OK;
}

/* One execution; *ms its duration, *warm whether it took a parked sandbox. */
/* Per-phase sums of the runs (lease or workspace, code file, run, walk, free), printed with -v. */
struct bench_phases {
    double t[5];
    size_t n;
};

static int bench_one(struct sbx_ctx *ctx, struct sbx_pool *pool, const struct lang *l,
                     const char *code, double *ms, bool *warm, struct bench_phases *ph)
{
    double tp[6];
    struct errbuf eb = {{0}};
    struct sbx_limits lim = {0};
    struct sbx_lease *lease = NULL;
    struct sbx_workspace *ws = NULL;
    struct lang_job *lj = NULL;
    struct sbx_result res = {0};
    double t0 = bench_now_ms();
    int rc = -1;

    tp[0] = t0;
    if (pool != NULL ? sbx_pool_lease(pool, l->code, 0, &lease, &eb)
                     : sbx_workspace_new(ctx, 0, &ws, &eb))
        goto out;
    if (lease != NULL)
        ws = sbx_lease_workspace(lease);
    tp[1] = bench_now_ms();
    if (lang_job_new(l, code, strlen(code), NULL, 0, &lim, ws, &lj, &eb))
        goto out;
    tp[2] = bench_now_ms();
    if (lease != NULL ? sbx_lease_run(lease, &lj->job, &res, &eb)
                      : sbx_run(ctx, &lj->job, &res, &eb))
        goto out;
    if (res.status != SBX_OK || strcmp(res.out, "1\n") != 0) {
        fprintf(stderr, "bench-pool: %s: unexpected result %s [%s] [%s]\n", l->code,
                sbx_status_name(res.status), res.out, res.err);
        goto out;
    }
    tp[3] = bench_now_ms();
    if (sbx_workspace_walk(ws, 16, 4096, bench_walk, NULL, &eb))
        goto out;
    *warm = lease != NULL && sbx_lease_warm(lease);
    tp[4] = bench_now_ms();
    rc = 0;
out:
    if (rc != 0 && eb.msg[0] != '\0')
        fprintf(stderr, "bench-pool: %s: %s\n", l->code, eb.msg);
    sbx_result_clear(&res);
    lang_job_free(lj);
    if (lease != NULL)
        sbx_lease_free(lease);
    else
        sbx_workspace_free(ws);
    *ms = bench_now_ms() - t0;
    if (rc == 0) {
        tp[5] = t0 + *ms;
        for (int i = 0; i < 5; i++)
            ph->t[i] += tp[i + 1] - tp[i];
        ph->n++;
    }
    return rc;
}

static void bench_print(const char *lang, const char *mode, double *v, size_t n, size_t warm)
{
    double sum = 0;

    qsort(v, n, sizeof *v, bench_cmp);
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("%-5s %-5s n=%-4zu p50=%7.2f ms  p99=%7.2f ms  mean=%7.2f ms  min=%7.2f ms", lang, mode,
           n, bench_q(v, n, 0.5), bench_q(v, n, 0.99), sum / (double)n, v[0]);
    if (strcmp(mode, "warm") == 0)
        printf("  (served warm: %zu)", warm);
    printf("\n");
}

static int bench_lang(struct sbx_ctx *ctx, const char *code_lang, long runs, long settle_ms,
                      bool verbose)
{
    const struct lang *l = lang_find(code_lang);
    const char *code = NULL;
    struct lang_pool_size size = {code_lang, 1};
    struct sbx_pool_opts po = {.warmup = true, .batch = 1, .exhaustion_trigger = true};
    struct lang_pools *pools = NULL;
    struct errbuf eb = {{0}};
    struct sbx_pool_stats st;
    double *cold = xcalloc((size_t)runs, sizeof *cold), *warm = xcalloc((size_t)runs, sizeof *warm);
    struct bench_phases pc = {{0}, 0}, pw = {{0}, 0};
    size_t nwarm = 0;
    int rc = 1;

    for (size_t i = 0; i < sizeof bench_programs / sizeof bench_programs[0]; i++)
        if (strcmp(bench_programs[i].lang, code_lang) == 0)
            code = bench_programs[i].code;
    if (l == NULL || code == NULL) {
        fprintf(stderr, "bench-pool: no benchmark program for '%s'\n", code_lang);
        goto out;
    }
    if (lang_pools_new_sizes(ctx, &size, 1, &po, &pools, &eb)) {
        fprintf(stderr, "bench-pool: %s\n", eb.msg);
        goto out;
    }
    for (long i = 0; i < runs; i++) {
        bool w = false;
        if (bench_one(ctx, NULL, l, code, &cold[i], &w, &pc) != 0)
            goto out;
        sbx_pool_wait_full(lang_pools_pool(pools), BENCH_WAIT_MS);
        usleep((useconds_t)settle_ms * 1000);
        if (bench_one(ctx, lang_pools_pool(pools), l, code, &warm[i], &w, &pw) != 0)
            goto out;
        nwarm += w;
    }
    bench_print(code_lang, "cold", cold, (size_t)runs, 0);
    bench_print(code_lang, "warm", warm, (size_t)runs, nwarm);
    if (verbose) {
        const struct bench_phases *ps[] = {&pc, &pw};
        for (int k = 0; k < 2; k++)
            printf("%-5s %-5s phases (mean ms): workspace %.2f  code %.2f  run %.2f  walk %.2f  "
                   "free %.2f\n",
                   code_lang, k == 0 ? "cold" : "warm", ps[k]->t[0] / (double)ps[k]->n,
                   ps[k]->t[1] / (double)ps[k]->n, ps[k]->t[2] / (double)ps[k]->n,
                   ps[k]->t[3] / (double)ps[k]->n, ps[k]->t[4] / (double)ps[k]->n);
    }
    sbx_pool_stats(lang_pools_pool(pools), 0, &st);
    printf("%-5s pool: parked sandboxes built %llu, mean build %.2f ms (off the request path)\n",
           code_lang, st.created, st.create_ms_mean);
    rc = 0;
out:
    lang_pools_free(pools);
    free(cold);
    free(warm);
    return rc;
}

int cmd_bench_pool(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"runs", required_argument, NULL, 'n'},
        {"settle", required_argument, NULL, 's'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    static const char *const def_langs[] = {"bash", "js"};
    struct sbx_ctx_opts copts = {0};
    struct sbx_ctx *ctx = NULL;
    struct errbuf eb = {{0}};
    long runs = 50, settle = BENCH_SETTLE_MS;
    char *end;
    int c, rc = 0;
    bool verbose = false;

    if (cli_wants_help(argc, argv)) {
        printf("usage: kiln bench-pool [-n RUNS] [--settle MS] [-v] [LANG...]\n\n"
               "Time RUNS executions of a one-line program per language (default: bash js),\n"
               "cold and from a warm pool, interleaved; print p50/p99. Root only.\n");
        return CLI_EXIT_OK;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:s:v", longopts, NULL)) != -1) {
        if (c == 'v') {
            verbose = true;
            continue;
        }
        long *dst = c == 'n' ? &runs : c == 's' ? &settle : NULL;
        if (dst == NULL)
            return CLI_EXIT_USAGE;
        *dst = strtol(optarg, &end, 10);
        if (*end != '\0' || *dst < (c == 'n' ? 1 : 0) || *dst > BENCH_RUNS_MAX)
            return CLI_EXIT_USAGE;
    }
    copts.run_dir = BENCH_DIR_ROOT;
    copts.uid_base = BENCH_UID_BASE;
    copts.slots = BENCH_SLOTS;
    if (sbx_ctx_new(&ctx, &copts, &eb)) {
        fprintf(stderr, "bench-pool: %s\n", eb.msg);
        return 1;
    }
    if (optind >= argc) {
        for (size_t i = 0; i < sizeof def_langs / sizeof def_langs[0] && rc == 0; i++)
            rc = bench_lang(ctx, def_langs[i], runs, settle, verbose);
    }
    for (int i = optind; i < argc && rc == 0; i++)
        rc = bench_lang(ctx, argv[i], runs, settle, verbose);
    sbx_ctx_free(ctx);
    return rc;
}
