/* The pre-started interpreters and the pools of the languages. Each bootstrap blocks reading its
 * stdin until the take (all of it: the execution's arguments, each NUL-terminated, then EOF),
 * then changes to /mnt/data — mounted by now — and runs the code file exactly as the cold run
 * command would: same argv, same working directory, same file name, nothing printed of its own.
 * Cold-path parity is tested by tests/unit/test_pool.c. */
#include "lang/warm.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lang/lang.h"
#include "util/xmalloc.h"

#define WARM_V(...) ((const char *const[]){__VA_ARGS__, NULL})

/* node: a -r preload runs after argv[1] is resolved and before the main module is read, so the
 * main module is loaded by node's own run_main (stack traces, require.main, process.argv
 * identical to `node code.js`). It removes itself, drops -r from execArgv (child_process.fork
 * must not inherit it) and from the module cache, and puts /dev/null on fd 0 as a cold run has
 * (the lowest free fd after closing 0 is 0). At the natural end (the last 'exit' listener, no
 * uncaught error: node prints that after the listeners) it reports the status to the
 * supervisor — fchown of SBX_DONE_FD (sandbox/sbx_int.h), blocking while the supervisor answers
 * from the frozen sandbox — and exits by itself only if that returns. */
#define WARM_NODE_BOOT                                                                             \
    "'use strict';{const fs=require('fs');try{fs.unlinkSync(__filename)}catch(e){}"                \
    "delete require.cache[__filename];process.stdout;process.stderr;"                              \
    "const s=fs.readFileSync(0).toString('utf8');"                                                 \
    "fs.closeSync(0);fs.openSync('/dev/null','r');"                                                \
    "process.chdir('/mnt/data');process.argv.push(...(s.length?s.slice(0,-1).split('\\0'):[]));"   \
    "process.execArgv.length=0;const re=process.reallyExit,fc=fs.fchownSync;let fatal=false;"      \
    "process.on('uncaughtExceptionMonitor',()=>{fatal=true});"                                     \
    "const x=()=>{const l=process.listeners('exit');if(!fatal&&l[l.length-1]===x){"                \
    "const c=process.exitCode||0;try{fc(0x4b4c4e44,c&255,-1)}catch(e){}re(c)}};"                   \
    "process.on('exit',x);"                                                                        \
    "process.on('beforeExit',()=>{process.removeListener('exit',x);process.on('exit',x)});}\n"

/* php -r: $argv, $argc and the $_SERVER script names as `php code.php ARGS` sets them, then the
 * file included in the global scope (its own variables are unset first). */
#define WARM_PHP_BOOT                                                                              \
    "$__k=stream_get_contents(STDIN);"                                                             \
    "$argv=array_merge(['code.php'],$__k===''?[]:explode(\"\\0\",substr($__k,0,-1)));"             \
    "$argc=count($argv);$_SERVER['argv']=$argv;$_SERVER['argc']=$argc;"                            \
    "foreach(['PHP_SELF','SCRIPT_NAME','SCRIPT_FILENAME','PATH_TRANSLATED'] as $__n)"              \
    "$_SERVER[$__n]='code.php';unset($__k,$__n);chdir('/mnt/data');include '/mnt/data/code.php';"

/* Rscript -e: commandArgs() answers as under `Rscript code.r ARGS` (replaced in base, nothing
 * added to the global environment), then the file is sourced into the global environment with
 * top-level values auto-printed, as Rscript's REPL does. */
#define WARM_R_BOOT                                                                                \
    "local({con<-file('stdin','rb');b<-raw(0);repeat{r<-readBin(con,'raw',65536L);"                \
    "if(!length(r))break;b<-c(b,r)};close(con);a<-character(0);s<-1L;"                             \
    "for(z in which(b==as.raw(0L))){a<-c(a,rawToChar(b[seq_len(z-s)+s-1L]));s<-z+1L};"             \
    "full<-c('/usr/lib/R/bin/exec/R','--no-echo','--no-restore','--file=code.r',"                  \
    "if(length(a))c('--args',a));fn<-function(trailingOnly=FALSE)if(trailingOnly)a else full;"     \
    "environment(fn)<-list2env(list(a=a,full=full),parent=baseenv());"                             \
    "unlockBinding('commandArgs',baseenv());assign('commandArgs',fn,envir=baseenv());"             \
    "lockBinding('commandArgs',baseenv());setwd('/mnt/data')});"                                   \
    "source('/mnt/data/code.r',local=globalenv(),echo=FALSE,print.eval=TRUE,keep.source=FALSE)"

/* bash: waits, then execs a fresh `bash code.sh ARGS` (bash starts in ~1 ms; what the pool saves
 * is the sandbox), so the program is byte-for-byte the cold one. */
#define WARM_BASH_BOOT                                                                             \
    "a=();while IFS= read -r -d '' x;do a+=(\"$x\");done;cd /mnt/data||exit 126;"                  \
    "exec /bin/bash code.sh \"${a[@]}\" </dev/null"

struct warm_row {
    const char *code;
    const char *const *argv;
    const char *boot_path, *boot_text;
};

static const struct warm_row warm_table[] = {
    {"js", WARM_V("/usr/bin/node", "-r", "/tmp/.kiln-boot.js", "/mnt/data/code.js"),
     "/tmp/.kiln-boot.js", WARM_NODE_BOOT},
    {"php", WARM_V("/usr/bin/php", "-r", WARM_PHP_BOOT), NULL, NULL},
    {"r", WARM_V("/usr/bin/Rscript", "-e", WARM_R_BOOT), NULL, NULL},
    {"bash", WARM_V("/bin/bash", "-c", WARM_BASH_BOOT, "bash"), NULL, NULL},
};

struct lang_pools {
    struct sbx_pool *pool;
    struct sbx_pool_kind *kinds;
    const char ***envs; /* owned arrays (the strings are the table's) */
    size_t nkinds;
};

static const struct warm_row *warm_find(const char *code)
{
    for (size_t i = 0; i < sizeof warm_table / sizeof warm_table[0]; i++)
        if (strcmp(warm_table[i].code, code) == 0)
            return &warm_table[i];
    return NULL;
}

/* The environment lang_job_new() gives this language (none of the warm ones has a memory
 * token), so that a job's env compares equal to the interpreter's. */
static const char **warm_env(const struct lang *l)
{
    const char *const *base = lang_base_env();
    size_t nb = 0, ne = 0, n = 0;
    const char **env;

    while (base[nb] != NULL)
        nb++;
    while (l->env != NULL && l->env[ne] != NULL)
        ne++;
    env = xcalloc(nb + ne + 1, sizeof *env);
    for (size_t i = 0; i < nb; i++)
        env[n++] = base[i];
    for (size_t i = 0; i < ne; i++)
        if (strstr(l->env[i], LANG_MEM_TOKEN) == NULL)
            env[n++] = l->env[i];
    return env;
}

enum kiln_err lang_pools_new_sizes(struct sbx_ctx *ctx, const struct lang_pool_size *sizes,
                                   size_t n, const struct sbx_pool_opts *opts,
                                   struct lang_pools **out, struct errbuf *eb)
{
    struct lang_pools *lp = xcalloc(1, sizeof *lp);
    struct sbx_pool_opts o = *opts;
    enum kiln_err err;

    *out = NULL;
    lp->kinds = xcalloc(n > 0 ? n : 1, sizeof *lp->kinds);
    lp->envs = xcalloc(n > 0 ? n : 1, sizeof *lp->envs);
    for (size_t i = 0; i < n; i++) {
        const struct lang *l = lang_find(sizes[i].code);
        const struct warm_row *w = l != NULL ? warm_find(l->code) : NULL;
        struct sbx_pool_kind *k = &lp->kinds[lp->nkinds];
        if (l == NULL) {
            err = errbuf_set(eb, KILN_ERR_INVALID, "no language '%s' for a pool", sizes[i].code);
            goto fail;
        }
        lp->envs[lp->nkinds] = warm_env(l);
        k->key = l->code;
        k->size = sizes[i].size;
        k->env = lp->envs[lp->nkinds];
        if (w != NULL && l->warm == LANG_WARM_INTERPRETER && l->compile == NULL) {
            k->interp_argv = w->argv;
            k->run_prefix = l->run;
            k->boot_path = w->boot_path;
            k->boot_text = w->boot_text;
        }
        lp->nkinds++;
    }
    o.kinds = lp->kinds;
    o.nkinds = lp->nkinds;
    err = sbx_pool_new(ctx, &o, &lp->pool, eb);
    if (err)
        goto fail;
    *out = lp;
    return KILN_OK;
fail:
    lang_pools_free(lp);
    return err;
}

/* POD_POOL_<LANG> of each language code, from the settings table. */
static const struct {
    const char *code;
    size_t off;
} warm_sizes[] = {
    {"py", offsetof(struct kiln_config, pod_pool_py)},
    {"js", offsetof(struct kiln_config, pod_pool_js)},
    {"ts", offsetof(struct kiln_config, pod_pool_ts)},
    {"go", offsetof(struct kiln_config, pod_pool_go)},
    {"java", offsetof(struct kiln_config, pod_pool_java)},
    {"c", offsetof(struct kiln_config, pod_pool_c)},
    {"cpp", offsetof(struct kiln_config, pod_pool_cpp)},
    {"php", offsetof(struct kiln_config, pod_pool_php)},
    {"rs", offsetof(struct kiln_config, pod_pool_rs)},
    {"r", offsetof(struct kiln_config, pod_pool_r)},
    {"f90", offsetof(struct kiln_config, pod_pool_f90)},
    {"d", offsetof(struct kiln_config, pod_pool_d)},
    {"bash", offsetof(struct kiln_config, pod_pool_bash)},
};

enum kiln_err lang_pools_new(struct sbx_ctx *ctx, const struct kiln_config *cfg,
                             struct lang_pools **out, struct errbuf *eb)
{
    struct lang_pool_size sizes[sizeof warm_sizes / sizeof warm_sizes[0]];
    struct sbx_pool_opts o = {0};
    size_t n = 0;

    for (size_t i = 0; i < sizeof warm_sizes / sizeof warm_sizes[0]; i++) {
        long long v = *(const long long *)((const char *)cfg + warm_sizes[i].off);
        sizes[n].code = warm_sizes[i].code;
        sizes[n].size = cfg->pod_pool_enabled && v > 0 ? (unsigned)v : 0;
        n++;
    }
    o.warmup = cfg->pod_pool_warmup_on_startup;
    o.batch = (unsigned)cfg->pod_pool_parallel_batch;
    o.replenish_ms = (unsigned)cfg->pod_pool_replenish_interval * 1000u;
    o.exhaustion_trigger = cfg->pod_pool_exhaustion_trigger;
    return lang_pools_new_sizes(ctx, sizes, n, &o, out, eb);
}

struct sbx_pool *lang_pools_pool(const struct lang_pools *lp)
{
    return lp->pool;
}

void lang_pools_free(struct lang_pools *lp)
{
    if (lp == NULL)
        return;
    sbx_pool_free(lp->pool);
    for (size_t i = 0; i < lp->nkinds; i++)
        free(lp->envs[i]);
    free(lp->envs);
    free(lp->kinds);
    free(lp);
}
