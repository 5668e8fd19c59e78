/* The process-wide sandbox context: checks the host once (cgroups, Landlock ABI, capabilities),
 * prepares the state directory, compiles the seccomp filter and lists the runtime paths every
 * sandbox binds, so that a run only copies what was prepared here. */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* Top-level entries of the new root. On a merged-/usr host the /lib* and /bin dirs are symlinks
 * into /usr and are copied as symlinks; elsewhere they are bound read-only. */
static const char *const root_entries[] = {"/usr",   "/bin",   "/sbin",  "/lib",
                                           "/lib32", "/lib64", "/libx32"};

/* The /etc subset runtimes need, bound read-only when present; never the whole host /etc
 * (secrets in /etc leaked from Judge0 and Piston boxes). One row per need. */
static const char *const etc_entries[] = {
    "/etc/alternatives", /* java, javac, c++, … are symlinks through it */
    "/etc/ld.so.cache",  /* the dynamic loader's index of /usr/lib */
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl", /* CA certificates (openssl, python ssl) */
    "/etc/ca-certificates",
    "/etc/fonts",           /* fontconfig: matplotlib, R graphics */
    "/etc/R",               /* R's Renviron and site profile */
    "/etc/php",             /* php.ini */
    "/etc/java-17-openjdk", /* the JVM's security and logging config */
    "/etc/java-21-openjdk",
    "/etc/matplotlibrc", /* Debian's matplotlib default config */
    "/etc/ldc2.conf",    /* ldc2 (D): druntime and phobos import paths */
    "/etc/python3",
    "/etc/python3.11",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/protocols",
    "/etc/services",
};

static void add_bind(struct sbx_ctx *ctx, size_t *cap, const char *path)
{
    struct stat st;
    struct sbx_bind *b;

    if (lstat(path, &st) < 0 || strlen(path) >= SBX_PATH_MAX)
        return;
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return;
    if (ctx->nbinds == *cap) {
        *cap = *cap == 0 ? 32 : *cap * 2;
        ctx->binds = xreallocarray(ctx->binds, *cap, sizeof *ctx->binds);
    }
    b = &ctx->binds[ctx->nbinds];
    memset(b, 0, sizeof *b);
    snprintf(b->path, sizeof b->path, "%s", path);
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(path, b->target, sizeof b->target - 1);
        if (n <= 0)
            return;
        b->target[n] = '\0';
        b->kind = SBX_BIND_SYMLINK;
    } else {
        b->kind = S_ISDIR(st.st_mode) ? SBX_BIND_DIR : SBX_BIND_FILE;
    }
    ctx->nbinds++;
}

/* mkdir -m mode, or fix the mode of an existing directory that is ours. */
static enum kiln_err ensure_dir(const char *path, mode_t mode, struct errbuf *eb)
{
    struct stat st;

    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return errbuf_set(eb, KILN_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return errbuf_set(eb, KILN_ERR_IO, "%s is not a directory", path);
    if (st.st_uid != geteuid())
        return errbuf_set(eb, KILN_ERR_IO, "%s belongs to uid %u, not to us", path,
                          (unsigned)st.st_uid);
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
        return errbuf_set(eb, KILN_ERR_IO, "cannot chmod %s: %s", path, strerror(errno));
    return KILN_OK;
}

/* As root, the sandbox's setup runs as the slot uid and must reach <run_dir>/root and the
 * workspaces: every ancestor must be searchable by others (research A2: a 0700 ancestor makes
 * every lookup fail with EACCES once init has switched uid). */
static enum kiln_err check_ancestors(const char *dir, struct errbuf *eb)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof path, "%s", dir);
    for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
        *slash = '\0';
        if (stat(path[0] != '\0' ? path : "/", &st) < 0)
            return errbuf_set(eb, KILN_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        if (!(st.st_mode & S_IXOTH))
            return errbuf_set(eb, KILN_ERR_INVALID,
                              "%s is not searchable by others (mode %o): the sandbox uids "
                              "cannot reach %s",
                              path[0] != '\0' ? path : "/", (unsigned)(st.st_mode & 07777), dir);
        if (path[0] == '\0')
            break;
    }
    return KILN_OK;
}

static long long pick(long long v, long long ctx_v, long long def)
{
    return v > 0 ? v : ctx_v > 0 ? ctx_v : def;
}

enum kiln_err sbx_limits_resolve(const struct sbx_ctx *ctx, const struct sbx_limits *in,
                                 struct sbx_limits *out)
{
    const struct sbx_limits *d = &ctx->defaults;

    out->wall_ms = pick(in->wall_ms, d->wall_ms, SBX_DEF_WALL_MS);
    /* Without its own setting, CPU time is bounded like the wall clock. */
    out->cpu_ms = pick(in->cpu_ms, d->cpu_ms, out->wall_ms);
    out->memory_mb = pick(in->memory_mb, d->memory_mb, SBX_DEF_MEMORY_MB);
    out->pids = pick(in->pids, d->pids, SBX_DEF_PIDS);
    out->open_files = pick(in->open_files, d->open_files, SBX_DEF_OPEN_FILES);
    out->file_size_mb = pick(in->file_size_mb, d->file_size_mb, SBX_DEF_FILE_SIZE_MB);
    out->data_mb = pick(in->data_mb, d->data_mb, SBX_DEF_DATA_MB);
    out->tmp_mb = pick(in->tmp_mb, d->tmp_mb, SBX_DEF_TMP_MB);
    out->stdout_max = in->stdout_max > 0  ? in->stdout_max
                      : d->stdout_max > 0 ? d->stdout_max
                                          : SBX_DEF_STREAM_MAX;
    out->cpu_quota = pick(in->cpu_quota, d->cpu_quota, 0);
    out->stderr_max = in->stderr_max > 0  ? in->stderr_max
                      : d->stderr_max > 0 ? d->stderr_max
                                          : SBX_DEF_STREAM_MAX;
    return KILN_OK;
}

static int read_cap_last(void)
{
    char buf[16] = {0};
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    long v = 63;

    if (fd >= 0) {
        if (read(fd, buf, sizeof buf - 1) > 0) {
            char *end;
            errno = 0;
            v = strtol(buf, &end, 10);
            if (errno != 0 || end == buf)
                v = 63;
        }
        close(fd);
    }
    return (int)v;
}

enum kiln_err sbx_ctx_new(struct sbx_ctx **out, const struct sbx_ctx_opts *opts, struct errbuf *eb)
{
    struct sbx_ctx *ctx;
    enum kiln_err err;
    size_t cap = 0;

    *out = NULL;
    if (opts->run_dir == NULL || opts->run_dir[0] != '/' || strlen(opts->run_dir) > 256)
        return errbuf_set(eb, KILN_ERR_INVALID, "run_dir must be an absolute path");
    ctx = xcalloc(1, sizeof *ctx);
    ctx->root = geteuid() == 0;
    ctx->host_uid = (unsigned)geteuid();
    ctx->host_gid = (unsigned)getegid();
    ctx->uid_base = opts->uid_base;
    ctx->slots = opts->slots > 0 ? opts->slots : 1;
    ctx->defaults = opts->defaults;
    if (ctx->root && (opts->uid_base < 1000 || opts->uid_base > 0xfffffff0u - ctx->slots)) {
        err = errbuf_set(eb, KILN_ERR_INVALID, "uid_base %u is not a valid unprivileged range",
                         opts->uid_base);
        goto fail;
    }
    ctx->run_dir = xstrdup(opts->run_dir);
    ctx->root_dir = xasprintf("%s/root", ctx->run_dir);
    ctx->ws_dir = xasprintf("%s/ws", ctx->run_dir);
    /* Unprivileged, there is one uid and no slot lock: the directory is never used. */
    ctx->slots_dir = xstrdup(SBX_UID_LOCK_DIR);
    if (ctx->root) {
        err = check_ancestors(ctx->run_dir, eb);
        if (err)
            goto fail;
    }
    err = ensure_dir(ctx->run_dir, ctx->root ? 0711 : 0700, eb);
    if (!err)
        err = ensure_dir(ctx->root_dir, 0755, eb);
    if (!err)
        err = ensure_dir(ctx->ws_dir, ctx->root ? 0711 : 0700, eb);
    if (!err && ctx->root)
        err = ensure_dir(ctx->slots_dir, 0700, eb);
    if (err)
        goto fail;
    if (ctx->root) {
        err = sbx_cg_detect(&ctx->cg, eb);
        if (err)
            goto fail;
    }
    sbx_ctx_recover(ctx);
    err = sbx_seccomp_build(ctx, eb);
    if (err)
        goto fail;
    ctx->landlock_abi = sbx_landlock_abi();
    ctx->cap_last = read_cap_last();
    for (size_t i = 0; i < sizeof root_entries / sizeof root_entries[0]; i++)
        add_bind(ctx, &cap, root_entries[i]);
    for (size_t i = 0; i < sizeof etc_entries / sizeof etc_entries[0]; i++)
        add_bind(ctx, &cap, etc_entries[i]);
    snprintf(ctx->etc_passwd, sizeof ctx->etc_passwd,
             "sandbox:x:%u:%u:sandbox:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:"
             "/usr/sbin/nologin\n",
             SBX_INNER_UID, SBX_INNER_GID);
    snprintf(ctx->etc_group, sizeof ctx->etc_group, "sandbox:x:%u:\nnogroup:x:65534:\n",
             SBX_INNER_GID);
    snprintf(ctx->etc_hosts, sizeof ctx->etc_hosts,
             "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    snprintf(ctx->etc_nsswitch, sizeof ctx->etc_nsswitch,
             "passwd: files\ngroup: files\nhosts: files\nservices: files\nprotocols: files\n");
    *out = ctx;
    return KILN_OK;
fail:
    sbx_ctx_free(ctx);
    return err;
}

void sbx_ctx_free(struct sbx_ctx *ctx)
{
    if (ctx == NULL)
        return;
    sbx_cg_host_free(&ctx->cg);
    free(ctx->bpf);
    free(ctx->binds);
    free(ctx->run_dir);
    free(ctx->root_dir);
    free(ctx->ws_dir);
    free(ctx->slots_dir);
    free(ctx);
}
