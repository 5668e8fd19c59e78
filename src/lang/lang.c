/* The table of the 13 languages and the one function that turns a row into sandbox steps.
 * Every command is an absolute path inside the sandbox (no shell, no PATH lookup), runs in
 * /mnt/data, and writes its build outputs under /tmp so that they never show up among the
 * execution's output files. Versions and the reasons behind each flag: docs/languages.md. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lang/lang.h"
#include "util/xmalloc.h"

/* Shorthand for a NULL-terminated static argv or environment. */
#define LANG_V(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The allow-list: nothing of the host's environment reaches a sandbox. MPL* keep matplotlib
 * headless and its cache in /tmp (the home directory is /tmp too, so ~/.cache is writable). */
static const char *const lang_env_base[] = {
    "HOME=/tmp",
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "LANG=C.UTF-8",
    "TMPDIR=/tmp",
    "MPLBACKEND=Agg",
    "MPLCONFIGDIR=/tmp",
    NULL,
};

/* TypeScript: Debian ships tsc 4.8 but not @types/node, so a type-checking `tsc` rejects every
 * program that touches `process`, `require` or `Buffer`. We transpile only (as ts-node
 * --transpile-only, tsx, esbuild and Deno do): syntax errors are reported tsc-style on stderr
 * and fail the step; types are not checked. It is also ~3x faster than a full tsc run (0.5 s
 * against 1.7 s here). argv: node -e SCRIPT <source> <output>. */
#define LANG_TS_TRANSPILE                                                                          \
    "const ts=require('/usr/share/nodejs/typescript'),fs=require('fs');"                           \
    "const src=process.argv[1],out=process.argv[2];"                                               \
    "const r=ts.transpileModule(fs.readFileSync(src,'utf8'),{fileName:src,reportDiagnostics:true," \
    "compilerOptions:{module:ts.ModuleKind.CommonJS,target:ts.ScriptTarget.ES2019}});"             \
    "const d=r.diagnostics||[];"                                                                   \
    "for(const x of d){const p=x.file&&x.start!==undefined?"                                       \
    "x.file.getLineAndCharacterOfPosition(x.start):null;"                                          \
    "process.stderr.write(src+(p?'('+(p.line+1)+','+(p.character+1)+')':'')+': error TS'+x.code+"  \
    "': '+ts.flattenDiagnosticMessageText(x.messageText,'\\n')+'\\n');}"                           \
    "if(d.length)process.exit(1);fs.writeFileSync(out,r.outputText);"

/* The JVM: the serial collector keeps the thread count (and so the pids budget) low; C1 only
 * for javac, which runs for a second and never reaches C2 anyway. The program's heap is half the
 * sandbox's memory (the rest: metaspace, code cache, tmpfs files), so that a big allocation is a
 * java.lang.OutOfMemoryError the program can see, not a kill. */
#define LANG_JAVA_HOME "/usr/lib/jvm/default-java"

static const struct lang lang_table[] = {
    {"py", "Python", "code.py", NULL, LANG_V("/usr/bin/python3", "code.py"), 1.0,
     /* unbuffered: what was printed before a timeout or a kill still comes back; no
      * __pycache__ litter among the output files when the code imports a module of its own;
      * Debian's matplotlib looks for /etc/matplotlibrc, which no sandbox needs to see */
     LANG_V("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
            "MATPLOTLIBRC=/usr/share/matplotlib/mpl-data/matplotlibrc"),
     LANG_WARM_ZYGOTE},
    {"js", "JavaScript", "code.js", NULL, LANG_V("/usr/bin/node", "code.js"), 1.0, NULL,
     LANG_WARM_INTERPRETER},
    {"ts", "TypeScript", "code.ts",
     LANG_V("/usr/bin/node", "-e", LANG_TS_TRANSPILE, "code.ts", "/tmp/code.js"),
     LANG_V("/usr/bin/node", "/tmp/code.js"), 1.2, NULL, LANG_WARM_NONE},
    {"go", "Go", "main.go", LANG_V("/usr/lib/go/bin/go", "build", "-o", "/tmp/main", "main.go"),
     LANG_V("/tmp/main"), 1.5,
     /* offline and GOPATH mode: no module download is ever attempted, no go.mod needed; the
      * build cache is per sandbox (the standard library comes precompiled with Go 1.19); the GC
      * works harder near the memory limit instead of running into it */
     LANG_V("GOCACHE=/tmp/go-cache", "GOPATH=/tmp/go", "GOPROXY=off", "GO111MODULE=off",
            "GOMEMLIMIT=" LANG_MEM_TOKEN "MiB"),
     LANG_WARM_NONE},
    {"java", "Java", "Code.java",
     LANG_V(LANG_JAVA_HOME "/bin/javac", "-J-XX:+UseSerialGC", "-J-XX:TieredStopAtLevel=1",
            "-J-Xshare:auto", "-encoding", "UTF-8", "-d", "/tmp/java", "Code.java"),
     LANG_V(LANG_JAVA_HOME "/bin/java", "-XX:+UseSerialGC", "-XX:MaxRAM=" LANG_MEM_TOKEN "m",
            "-XX:MaxRAMPercentage=50", "-Xshare:auto", "-cp", "/tmp/java", "Code"),
     2.0, NULL, LANG_WARM_NONE},
    {"c", "C", "code.c", LANG_V("/usr/bin/gcc", "-o", "/tmp/code", "code.c", "-lm"),
     LANG_V("/tmp/code"), 1.5, NULL, LANG_WARM_NONE},
    {"cpp", "C++", "code.cpp", LANG_V("/usr/bin/g++", "-o", "/tmp/code", "code.cpp"),
     LANG_V("/tmp/code"), 1.5, NULL, LANG_WARM_NONE},
    {"php", "PHP", "code.php", NULL, LANG_V("/usr/bin/php", "code.php"), 1.0, NULL,
     LANG_WARM_INTERPRETER},
    /* Debian's rustc 1.63 (never a rustup toolchain); the 2021 edition, as `cargo new` uses */
    {"rs", "Rust", "main.rs",
     LANG_V("/usr/bin/rustc", "--edition=2021", "-o", "/tmp/main", "main.rs"), LANG_V("/tmp/main"),
     3.0, NULL, LANG_WARM_NONE},
    {"r", "R", "code.r", NULL, LANG_V("/usr/bin/Rscript", "code.r"), 1.5, NULL,
     LANG_WARM_INTERPRETER},
    /* -J: module files (.mod) go to /tmp, not among the output files */
    {"f90", "Fortran", "code.f90",
     LANG_V("/usr/bin/gfortran", "-J", "/tmp", "-o", "/tmp/code", "code.f90"), LANG_V("/tmp/code"),
     2.0, NULL, LANG_WARM_NONE},
    /* -od: ldc2 writes its object file to the working directory otherwise */
    {"d", "D", "code.d", LANG_V("/usr/bin/ldc2", "-od=/tmp/d", "-of=/tmp/code", "code.d"),
     LANG_V("/tmp/code"), 2.0, NULL, LANG_WARM_NONE},
    {"bash", "Bash", "code.sh", NULL, LANG_V("/bin/bash", "code.sh"), 1.0, NULL,
     LANG_WARM_INTERPRETER},
};

#define LANG_COUNT (sizeof lang_table / sizeof lang_table[0])

const struct lang *lang_find(const char *code)
{
    if (code == NULL)
        return NULL;
    for (size_t i = 0; i < LANG_COUNT; i++)
        if (strcasecmp(lang_table[i].code, code) == 0)
            return &lang_table[i];
    return NULL;
}

const struct lang *lang_all(size_t *count)
{
    *count = LANG_COUNT;
    return lang_table;
}

const char *const *lang_base_env(void)
{
    return lang_env_base;
}

const char *lang_warm_name(enum lang_warm warm)
{
    static const char *const names[] = {"none", "interpreter", "zygote"};
    if ((unsigned)warm >= sizeof names / sizeof names[0])
        return "none";
    return names[warm];
}

static size_t lang_vec_len(const char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

/* ms x m, rounded, saturating: a multiplier must never wrap a limit into a tiny or negative
 * one. 0 stays 0 (the sandbox's default, which the caller did not resolve). */
static long long lang_scale_ms(long long ms, double m)
{
    if (ms <= 0)
        return ms;
    double v = round((double)ms * m);
    if (v >= (double)(LLONG_MAX / 2))
        return LLONG_MAX / 2;
    return (long long)v;
}

/* s with LANG_MEM_TOKEN replaced by mem_mb; the copy is recorded in lj->owned. NULL when s holds
 * the token but the limit is unknown: the caller leaves the element out. */
static const char *lang_expand(struct lang_job *lj, const char *s, long long mem_mb)
{
    const char *tok = strstr(s, LANG_MEM_TOKEN);
    if (tok == NULL)
        return s;
    if (mem_mb <= 0)
        return NULL;
    char *x = xasprintf("%.*s%lld%s", (int)(tok - s), s, mem_mb, tok + strlen(LANG_MEM_TOKEN));
    lj->owned[lj->nowned++] = x;
    return x;
}

/* Append the expanded elements of v to dst (which has room for them) from index *n. */
static void lang_append(struct lang_job *lj, const char **dst, size_t *n, const char *const *v,
                        long long mem_mb)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        const char *x = lang_expand(lj, v[i], mem_mb);
        if (x != NULL)
            dst[(*n)++] = x;
    }
}

enum kiln_err lang_job_new(const struct lang *l, const char *code, size_t code_len,
                           const char *const *args, size_t nargs, const struct sbx_limits *limits,
                           struct sbx_workspace *ws, struct lang_job **out, struct errbuf *eb)
{
    enum kiln_err rc;
    struct lang_job *lj = NULL;
    size_t n;

    if (l == NULL || ws == NULL || limits == NULL || (code == NULL && code_len > 0) ||
        (args == NULL && nargs > 0))
        return errbuf_set(eb, KILN_ERR_INVALID, "lang_job_new: missing argument");

    /* An empty buffer must still be a buffer: NULL asks sbx_workspace_put() to read an fd. */
    rc = sbx_workspace_put(ws, l->source, code_len > 0 ? code : "", code_len, -1, eb);
    if (rc)
        return rc;

    size_t ncompile = lang_vec_len(l->compile), nrun = lang_vec_len(l->run);
    size_t nbase = lang_vec_len(lang_env_base), nextra = lang_vec_len(l->env);
    long long mem = limits->memory_mb;

    lj = xcalloc(1, sizeof *lj);
    lj->owned = xcalloc(ncompile + nrun + nextra + 1, sizeof *lj->owned);

    if (l->compile != NULL) {
        lj->compile_argv = xcalloc(ncompile + 1, sizeof *lj->compile_argv);
        n = 0;
        lang_append(lj, lj->compile_argv, &n, l->compile, mem);
    }
    lj->run_argv = xcalloc(nrun + nargs + 1, sizeof *lj->run_argv);
    n = 0;
    lang_append(lj, lj->run_argv, &n, l->run, mem);
    for (size_t i = 0; i < nargs; i++)
        lj->run_argv[n++] = args[i];

    lj->env = xcalloc(nbase + nextra + 1, sizeof *lj->env);
    n = 0;
    lang_append(lj, lj->env, &n, lang_env_base, mem);
    lang_append(lj, lj->env, &n, l->env, mem);

    n = 0;
    if (lj->compile_argv != NULL)
        lj->steps[n++] = (struct sbx_step){
            .argv = lj->compile_argv, .stop_on_failure = true, .stdout_to_stderr = true};
    lj->steps[n++] = (struct sbx_step){.argv = lj->run_argv};

    lj->job.steps = lj->steps;
    lj->job.nsteps = n;
    lj->job.ws = ws;
    lj->job.env = lj->env;
    lj->job.limits = *limits;
    lj->job.limits.wall_ms = lang_scale_ms(limits->wall_ms, l->timeout_multiplier);
    lj->job.limits.cpu_ms = lang_scale_ms(limits->cpu_ms, l->timeout_multiplier);
    lj->job.cancel_fd = -1;

    *out = lj;
    return KILN_OK;
}

void lang_job_free(struct lang_job *lj)
{
    if (lj == NULL)
        return;
    for (size_t i = 0; i < lj->nowned; i++)
        free(lj->owned[i]);
    free(lj->owned);
    free(lj->compile_argv);
    free(lj->run_argv);
    free(lj->env);
    free(lj);
}
