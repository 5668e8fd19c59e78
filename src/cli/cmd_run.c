/* `kiln run`: one execution of one language in a fresh sandbox, from the command line, before any
 * HTTP route exists (issue 3). The same path the API will take: config limits → workspace with
 * the mounted files → lang_job_new() → sbx_run() → output and the files left in /mnt/data. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_code.h"
#include "config/config.h"
#include "lang/lang.h"
#include "lang/warm.h"
#include "sandbox/sandbox.h"
#include "sandbox/zygote.h"
#include "util/xmalloc.h"

/* Exit statuses of `kiln run` besides the program's own (0-255, 128+signal), borrowed from
 * coreutils timeout(1) and docker run so that scripts already know them. */
#define RUN_EXIT_TIMEOUT 124 /* the wall-clock or CPU limit ended the program */
#define RUN_EXIT_SANDBOX 125 /* kiln could not build or supervise the sandbox, or load config */

/* Bounds of what the command line may feed in (STYLE.md rule 7). */
#define RUN_WALK_DEPTH   16          /* directory levels listed under /mnt/data */
#define RUN_WALK_ENTRIES 4096        /* entries looked at under /mnt/data */
#define RUN_UID_BASE     200000u     /* first host uid of the sandbox slots (root) */
#define RUN_SLOTS        64u         /* concurrent sandboxes of this process */
#define RUN_DIR_ROOT     "/run/kiln" /* slot roots and workspaces when root */
#define RUN_WARM_WAIT_MS 30000       /* --warm: how long the pool may take to get ready */

struct run_opts {
    const char *lang;
    struct cli_code src; /* -f FILE or CODE, --arg, --timeout (0 = MAX_EXECUTION_TIME) */
    const char **mounts;
    size_t nmounts;
    long long memory_mb; /* 0 = MAX_MEMORY_MB */
    bool json;
    bool warm;   /* --warm or KILN_RUN_WARM=1: through a warm pool of one (issue 5) */
    bool zygote; /* --zygote or KILN_RUN_ZYGOTE=1: Python through a zygote child (issue 5) */
};

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln run -l LANG [-f FILE | CODE] [--mount HOSTPATH[:NAME]]... [--arg A]...\n"
            "                [--timeout S] [--memory MB] [--json]\n\n"
            "Run CODE (or the content of FILE; '-' reads stdin) as LANG in a fresh sandbox and\n"
            "print its stdout and stderr. LANG: py js ts go java c cpp php rs r f90 d bash.\n\n"
            "options:\n"
            "  -l, --lang LANG          language code (case-insensitive)\n"
            "  -f, --file FILE          read the code from FILE\n"
            "  -m, --mount HOST[:NAME]  copy a host file into /mnt/data as NAME (default: its\n"
            "                           base name); repeatable\n"
            "  -a, --arg A              pass A to the program as an argument; repeatable\n"
            "  -t, --timeout S          wall-clock limit in seconds (default MAX_EXECUTION_TIME;\n"
            "                           compiled languages get their multiplier on top)\n"
            "  -M, --memory MB          memory limit in MiB, swap included (default "
            "MAX_MEMORY_MB)\n"
            "  -j, --json               print the whole result as one JSON object\n"
            "  -w, --warm               take the sandbox from a warm pool of one (a parked\n"
            "                           sandbox, with the pre-started interpreter for js, php,\n"
            "                           r and bash), as the API does; also KILN_RUN_WARM=1\n"
            "  -z, --zygote             py only: run in a child forked from a Python zygote\n"
            "                           (also KILN_RUN_ZYGOTE=1), as the server's warm path\n\n"
            "exit status: the program's exit code; 128+N when it died of signal N; %d when a\n"
            "time limit ended it; %d for a usage error; %d when kiln could not run the sandbox\n"
            "(or the configuration is invalid).\n",
            RUN_EXIT_TIMEOUT, CLI_EXIT_USAGE, RUN_EXIT_SANDBOX);
}

static bool run_parse_mb(const char *s, long long *mb)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 16 || v > 1048576)
        return false;
    *mb = v;
    return true;
}

/* Parse argv into o. Returns 0, or CLI_EXIT_USAGE after saying why on stderr. The arrays of o
 * point into argv; the caller frees o->mounts and clears o->src. */
static int run_parse(int argc, char **argv, struct run_opts *o)
{
    static const struct option longopts[] = {
        {"lang", required_argument, NULL, 'l'},    {"file", required_argument, NULL, 'f'},
        {"mount", required_argument, NULL, 'm'},   {"arg", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'}, {"memory", required_argument, NULL, 'M'},
        {"json", no_argument, NULL, 'j'},          {"warm", no_argument, NULL, 'w'},
        {"zygote", no_argument, NULL, 'z'},        {NULL, 0, NULL, 0},
    };
    int c, r;

    /* argc bounds the array: each element is at most one argv string */
    o->mounts = xcalloc((size_t)argc, sizeof *o->mounts);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:f:m:a:t:M:jwz", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->lang = optarg;
            break;
        case 'm':
            o->mounts[o->nmounts++] = optarg;
            break;
        case 'M':
            if (!run_parse_mb(optarg, &o->memory_mb)) {
                fprintf(stderr, "kiln run: --memory wants MiB in [16, 1048576], got '%s'\n",
                        optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'z':
            o->zygote = true;
            break;
        case 'j':
            o->json = true;
            break;
        case 'w':
            o->warm = true;
            break;
        case ':':
            fprintf(stderr, "kiln run: option '%s' needs a value\n", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            r = cli_code_option(&o->src, "kiln run", c, optarg);
            if (r < 0)
                return CLI_EXIT_USAGE;
            if (r > 0)
                break;
            fprintf(stderr, "kiln run: unknown option '%s' (see `kiln run --help`)\n",
                    argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (o->lang == NULL) {
        fprintf(stderr, "kiln run: -l LANG is required\n");
        return CLI_EXIT_USAGE;
    }
    if (cli_code_operands(&o->src, "kiln run", argc, argv) != 0)
        return CLI_EXIT_USAGE;
    return 0;
}

/* Copy the host file of one --mount HOSTPATH[:NAME] into the workspace. NAME is whatever follows
 * the last ':' when it names no directory, so host paths holding a ':' still work. */
static enum kiln_err run_mount(struct sbx_workspace *ws, const char *spec, struct errbuf *eb)
{
    enum kiln_err rc;
    const char *colon = strrchr(spec, ':');
    char *host = NULL;
    const char *name;
    struct stat st;
    int fd = -1;

    if (colon != NULL && colon[1] != '\0' && strchr(colon, '/') == NULL) {
        host = xstrndup(spec, (size_t)(colon - spec));
        name = colon + 1;
    } else {
        host = xstrdup(spec);
        const char *slash = strrchr(host, '/');
        name = slash != NULL ? slash + 1 : host;
    }
    fd = open(host, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "--mount %s: %s", host, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "--mount %s: not a regular file", host);
        goto out;
    }
    rc = sbx_workspace_put(ws, name, NULL, 0, fd, eb);
out:
    if (fd >= 0)
        close(fd);
    free(host);
    return rc;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. Rejects
 * overlong forms, surrogates and code points past U+10FFFF, as JSON text must. */
static size_t run_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned cp;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string of the program's output: bytes that are not UTF-8 become U+FFFD, because jansson
 * (and JSON) accept only valid UTF-8 and a program may print anything. */
static json_t *run_json_text(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char *buf = xreallocarray(NULL, n + 1, 3);
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        size_t k = run_utf8_seq(u + i, n - i);
        if (k == 0) {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(buf + o, s + i, k);
        o += k;
        i += k;
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    return j;
}

static enum kiln_err run_walk_file(void *arg, const char *relpath, int fd, const struct stat *st)
{
    json_t *files = arg;
    (void)fd;
    char *path = xasprintf("/mnt/data/%s", relpath);
    json_t *f = json_pack("{s:o, s:I, s:f}", "path", run_json_text(path, strlen(path)), "size",
                          (json_int_t)st->st_size, "mtime",
                          (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9);
    free(path);
    if (f == NULL || json_array_append_new(files, f) != 0)
        return KILN_ERR_NOMEM;
    return KILN_OK;
}

/* The stderr the caller sees: the program's, then why a limit ended it when the sandbox says so
 * and the program's stderr does not already. Caller frees. */
static char *run_stderr_text(const struct sbx_result *res, size_t *len)
{
    const char *err = res->err != NULL ? res->err : "";
    size_t n = res->err != NULL ? res->err_len : 0;

    if (res->note[0] == '\0' || strstr(err, res->note) != NULL) {
        *len = n;
        return xstrndup(err, n);
    }
    const char *sep = (n > 0 && err[n - 1] != '\n') ? "\n" : "";
    char *s = xasprintf("%.*s%s%s\n", (int)n, err, sep, res->note);
    *len = strlen(s);
    return s;
}

/* warm: -1 when --warm was not asked for; else whether the run took a parked sandbox. */
static int run_print_json(struct sbx_workspace *ws, const struct sbx_result *res, int warm)
{
    struct errbuf eb = {{0}};
    json_t *files = json_array();
    size_t errn = 0;
    char *errs = run_stderr_text(res, &errn);

    if (sbx_workspace_walk(ws, RUN_WALK_DEPTH, RUN_WALK_ENTRIES, run_walk_file, files, &eb)) {
        fprintf(stderr, "kiln run: listing /mnt/data: %s\n", eb.msg);
        json_decref(files);
        free(errs);
        return RUN_EXIT_SANDBOX;
    }
    json_t *o = json_pack("{s:o, s:o, s:i, s:o, s:s, s:I, s:I, s:I, s:o}", "stdout",
                          run_json_text(res->out != NULL ? res->out : "", res->out_len), "stderr",
                          run_json_text(errs, errn), "exit_code", res->exit_code, "signal",
                          res->signal != 0 ? json_integer(res->signal) : json_null(), "status",
                          sbx_status_name(res->status), "wall_time_ms", (json_int_t)res->wall_ms,
                          "cpu_time_ms", (json_int_t)res->cpu_ms, "memory_peak_kb",
                          (json_int_t)res->memory_peak_kb, "files", files);
    free(errs);
    if (o != NULL && warm >= 0)
        json_object_set_new(o, "warm", json_boolean(warm));
    if (o == NULL) {
        fprintf(stderr, "kiln run: cannot build the JSON result\n");
        return RUN_EXIT_SANDBOX;
    }
    if (json_dumpf(o, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF) {
        json_decref(o);
        return RUN_EXIT_SANDBOX;
    }
    json_decref(o);
    return 0;
}

static void run_print_plain(const struct sbx_result *res)
{
    size_t errn = 0;
    char *errs = run_stderr_text(res, &errn);

    if (res->out_len > 0)
        fwrite(res->out, 1, res->out_len, stdout);
    fflush(stdout);
    if (errn > 0)
        fwrite(errs, 1, errn, stderr);
    free(errs);
}

/* The program's outcome as our exit status (see run_usage()). */
static int run_exit_status(const struct sbx_result *res)
{
    if (res->status == SBX_TIMEOUT)
        return RUN_EXIT_TIMEOUT;
    if (res->signal > 0)
        return 128 + (res->signal & 0x7f);
    if (res->exit_code >= 0 && res->exit_code <= 255)
        return res->exit_code;
    return RUN_EXIT_SANDBOX;
}

/* Load config and turn it and the options into the execution's limits (and PY_PRELOAD, when
 * preload is not NULL: the caller frees it). */
static enum kiln_err run_limits(const struct run_opts *o, struct sbx_limits *lim, char **preload,
                                struct errbuf *eb)
{
    struct kiln_config *cfg = NULL;
    enum kiln_err rc = config_load(&cfg, ".env", NULL, NULL, eb);
    if (rc)
        return rc;
    *lim = (struct sbx_limits){0};
    lim->wall_ms = o->src.timeout_ms > 0 ? o->src.timeout_ms : cfg->max_execution_time * 1000;
    lim->memory_mb = o->memory_mb > 0 ? o->memory_mb : cfg->max_memory_mb;
    lim->pids = cfg->max_pids;
    lim->open_files = cfg->max_open_files;
    lim->cpu_quota = cfg->max_cpu_quota;
    if (preload != NULL)
        *preload = xstrdup(cfg->py_preload != NULL ? cfg->py_preload : "");
    config_free(cfg);
    return KILN_OK;
}

/* --warm: a pool of one sandbox for the language, filled, then leased (the parked one when it
 * got ready in time, a cold one otherwise, exactly as the API's pool path). */
static enum kiln_err run_warm_lease(struct sbx_ctx *ctx, const struct lang *l,
                                    struct lang_pools **pools, struct sbx_lease **lease,
                                    struct errbuf *eb)
{
    struct lang_pool_size size = {l->code, 1};
    struct sbx_pool_opts po = {.warmup = true, .batch = 1};
    enum kiln_err rc = lang_pools_new_sizes(ctx, &size, 1, &po, pools, eb);

    if (rc)
        return rc;
    sbx_pool_wait_full(lang_pools_pool(*pools), RUN_WARM_WAIT_MS);
    return sbx_pool_lease(lang_pools_pool(*pools), l->code, 0, lease, eb);
}

static int run_execute(const struct run_opts *o, const struct lang *l, const char *code,
                       size_t code_len)
{
    struct errbuf eb = {{0}};
    struct sbx_ctx *ctx = NULL;
    struct sbx_workspace *ws = NULL;
    struct lang_pools *pools = NULL;
    struct sbx_lease *lease = NULL;
    struct lang_job *lj = NULL;
    struct sbx_result res = {0};
    struct sbx_limits lim;
    int status = RUN_EXIT_SANDBOX;
    char *run_dir = NULL, *preload = NULL;
    struct zyg_set *zs = NULL;

    if (run_limits(o, &lim, &preload, &eb)) {
        fprintf(stderr, "kiln run: configuration: %s\n", eb.msg);
        return RUN_EXIT_SANDBOX;
    }
    /* root keeps slots under /run; an unprivileged user under its own directory in /tmp */
    run_dir = geteuid() == 0 ? xstrdup(RUN_DIR_ROOT) : xasprintf("/tmp/kiln-%u", geteuid());
    struct sbx_ctx_opts copts = {
        .run_dir = run_dir, .uid_base = RUN_UID_BASE, .slots = RUN_SLOTS, .defaults = lim};
    if (sbx_ctx_new(&ctx, &copts, &eb) ||
        (o->warm && run_warm_lease(ctx, l, &pools, &lease, &eb)) ||
        (!o->warm && sbx_workspace_new(ctx, 0, &ws, &eb))) {
        fprintf(stderr, "kiln run: sandbox: %s\n", eb.msg);
        goto out;
    }
    if (lease != NULL)
        ws = sbx_lease_workspace(lease);
    for (size_t i = 0; i < o->nmounts; i++) {
        if (run_mount(ws, o->mounts[i], &eb)) {
            fprintf(stderr, "kiln run: %s\n", eb.msg);
            status = CLI_EXIT_USAGE;
            goto out;
        }
    }
    /* after the mounts, so that the code wins over a mounted file of the same name */
    if (lang_job_new(l, code, code_len, o->src.args, o->src.nargs, &lim, ws, &lj, &eb)) {
        fprintf(stderr, "kiln run: %s\n", eb.msg);
        goto out;
    }
    if (o->zygote && l->warm == LANG_WARM_ZYGOTE) {
        /* One zygote, the one the server would pick for this code, with one child forked ahead
         * (the warm path exactly); its preloads cost this one command some time. */
        bool light = zyg_code_is_light(code, code_len);
        struct zyg_opts zo = {
            .preload = light ? "" : preload, .env = lj->job.env, .warm = 1, .light = light};
        struct zyg_stats st;
        if (zyg_start(ctx, &zo, &zs, &eb) || !zyg_wait_ready(zs, 120000))
            /* no zygote (unprivileged, not built): zyg_run() below runs it cold */
            fprintf(stderr, "kiln run: zygote: %s\n", eb.msg[0] ? eb.msg : "not ready");
        if (zs == NULL ? sbx_run(ctx, &lj->job, &res, &eb)
                       : zyg_run(zs, &lj->job, code, code_len, &res, &eb)) {
            fprintf(stderr, "kiln run: sandbox: %s\n", eb.msg);
            goto out;
        }
        if (zs != NULL)
            zyg_get_stats(zs, &st);
        if (zs == NULL || st.fallbacks > 0)
            fprintf(stderr, "kiln run: zygote: fell back to a cold sandbox\n");
    } else if (lease != NULL ? sbx_lease_run(lease, &lj->job, &res, &eb)
                             : sbx_run(ctx, &lj->job, &res, &eb)) {
        fprintf(stderr, "kiln run: sandbox: %s\n", eb.msg);
        goto out;
    }
    if (o->json) {
        status = run_print_json(ws, &res, lease != NULL ? sbx_lease_warm(lease) : -1);
        if (status == 0)
            status = run_exit_status(&res);
    } else {
        run_print_plain(&res);
        status = run_exit_status(&res);
    }
out:
    zyg_stop(zs);
    free(preload);
    sbx_result_clear(&res);
    lang_job_free(lj);
    if (lease != NULL)
        sbx_lease_free(lease);
    else
        sbx_workspace_free(ws);
    lang_pools_free(pools);
    sbx_ctx_free(ctx);
    free(run_dir);
    return status;
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o = {0};
    struct errbuf eb = {{0}};
    char *code = NULL;
    size_t code_len = 0;
    int status;

    if (cli_wants_help(argc, argv)) {
        run_usage(stdout);
        return CLI_EXIT_OK;
    }
    status = run_parse(argc, argv, &o);
    if (status != 0)
        goto out;
    const char *warm_env = getenv("KILN_RUN_WARM");
    if (warm_env != NULL && strcmp(warm_env, "1") == 0)
        o.warm = true;
    {
        const char *z = getenv("KILN_RUN_ZYGOTE");
        if (z != NULL && (strcmp(z, "1") == 0 || strcmp(z, "true") == 0))
            o.zygote = true;
    }
    const struct lang *l = lang_find(o.lang);
    if (l == NULL) {
        fprintf(stderr, "kiln run: unsupported language '%s'\n", o.lang);
        status = CLI_EXIT_USAGE;
        goto out;
    }
    if (cli_code_read(&o.src, &code, &code_len, &eb)) {
        fprintf(stderr, "kiln run: code: %s\n", eb.msg);
        status = CLI_EXIT_USAGE;
        goto out;
    }
    status = run_execute(&o, l, code, code_len);
out:
    free(code);
    free(o.mounts);
    cli_code_clear(&o.src);
    return status;
}
