/* The local execution backend (EXECUTION_MODE=local): a fresh sandbox of the isolation library
 * per job. Inputs are copied into the workspace, the language table builds the steps, and after
 * the run the workspace is walked twice through sbx_workspace_walk() — which opens entries with
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS as the sandbox's uid and hands out only regular files with
 * one link — so no symlink, hardlink, FIFO or device the program planted is ever read:
 *   1. list candidates (new files, and inputs whose size or sha256 changed), sort by path, keep
 *      the first nkeys (MAX_OUTPUT_FILES) — deterministic whatever readdir's order;
 *   2. keep an fd on each kept file; after the walk, stream each into the blob store, hashing
 *      as it goes, with the size cap enforced on the bytes actually read. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blob/blob.h"
#include "exec/exec.h"
#include "lang/lang.h"
#include "lang/py_runner.h"
#include "sandbox/pool.h"
#include "sandbox/zygote.h"
#include "util/xmalloc.h"

/* How deep and how many entries the output walk visits at most. */
#define LOCAL_WALK_DEPTH   32
#define LOCAL_WALK_ENTRIES 20000

/* Largest notes file of the state runner read back. */
#define LOCAL_NOTES_MAX 65536

/* Copy buffer of mounts and collection. */
#define LOCAL_CHUNK 65536

/* Directories whose content is a cache or a tool's state, never a deliverable. Hidden names
 * (".git", ".cache", ".venv", …) are skipped by the leading-dot rule. */
static const char *const local_skip_dirs[] = {
    "__pycache__", "node_modules", "venv", "site-packages", "__MACOSX",
};

/* A finished run's sandbox, freed by the freer thread. */
struct local_done {
    struct sbx_workspace *ws; /* or */
    struct sbx_lease *lease;
    struct timespec due; /* not freed before (CLOCK_REALTIME; SBX_SETTLE_MS after the run) */
    struct local_done *next;
};

struct local_exec {
    struct exec base;
    struct sbx_ctx *sbx;
    struct blob *blob;
    struct zyg_set *zyg;   /* Python zygotes, or NULL: every run cold */
    struct sbx_pool *pool; /* warm pools of the other languages, or NULL: every run cold */
    /* Freeing a workspace detaches its tmpfs, which waits for an RCU grace period (0.5-11 ms
     * here): done after the answer, by one thread started on first use. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct local_done *done, *done_tail; /* oldest first */
    bool freer_started, closing;
    pthread_t freer;
};

/* A file found by the first walk. */
struct local_cand {
    char *rel;
    long long size;
    long input_index;
    int fd; /* picked by the second walk, or -1 */
};

struct local_walk {
    const struct exec_job *job;
    struct blob *blob;
    const char *source; /* the program's own file, never an output */
    struct exec_result *res;
    struct local_cand *cands;
    size_t ncands;
    size_t nselected;
    struct sha256 *h;
    char *buf;
    bool state; /* the program ran under the state runner: pick up its files */
};

void exec_result_clear(struct exec_result *r)
{
    if (r == NULL)
        return;
    sbx_result_clear(&r->run);
    for (size_t i = 0; i < r->noutputs; i++)
        free(r->outputs[i].name);
    free(r->outputs);
    free(r->input_unchanged);
    free(r->state_out);
    if (r->state_out_is_fd)
        close(r->state_out_fd);
    free(r->state_notes);
    memset(r, 0, sizeof *r);
}

/* True when some segment of rel is hidden or a cache directory. */
static bool local_skipped_path(const char *rel)
{
    const char *seg = rel;

    while (seg != NULL && *seg != '\0') {
        const char *slash = strchr(seg, '/');
        size_t len = slash != NULL ? (size_t)(slash - seg) : strlen(seg);

        if (seg[0] == '.')
            return true;
        if (slash != NULL) /* the cache rule applies to directories only */
            for (size_t i = 0; i < sizeof local_skip_dirs / sizeof local_skip_dirs[0]; i++)
                if (strlen(local_skip_dirs[i]) == len && memcmp(seg, local_skip_dirs[i], len) == 0)
                    return true;
        seg = slash != NULL ? slash + 1 : NULL;
    }
    return false;
}

static long local_input_index(const struct exec_job *job, const char *rel)
{
    for (size_t i = 0; i < job->ninputs; i++)
        if (strcmp(job->inputs[i].name, rel) == 0)
            return (long)i;
    return -1;
}

/* sha256 of the whole of fd from offset 0. */
static enum kiln_err local_hash_fd(struct local_walk *w, int fd, char out[SHA256_HEX_BUF],
                                   struct errbuf *eb)
{
    off_t off = 0;

    for (;;) {
        ssize_t n = pread(fd, w->buf, LOCAL_CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errbuf_set(eb, KILN_ERR_IO, "read output: %s", strerror(errno));
        if (n == 0)
            break;
        sha256_update(w->h, w->buf, (size_t)n);
        off += n;
    }
    sha256_final_hex(w->h, out);
    return KILN_OK;
}

/* Read the whole of fd (at most max bytes, else nothing) into a NUL-terminated buffer. */
static void local_slurp(int fd, const struct stat *st, long long max, void **out, size_t *len)
{
    char *buf;
    size_t off = 0, want;

    if ((long long)st->st_size > max || *out != NULL)
        return;
    want = (size_t)st->st_size;
    buf = xmalloc(want + 1);
    while (off < want) {
        ssize_t n = pread(fd, buf + off, want - off, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (off != want) {
        free(buf);
        return;
    }
    buf[off] = '\0';
    *out = buf;
    *len = off;
}

/* The state runner's results: picked up by the same walk (so the walker's rules — regular
 * file, one link, no symlink anywhere — apply), never offered as outputs (hidden path). */
static bool local_walk_state(struct local_walk *w, const char *rel, int fd, const struct stat *st)
{
    if (!w->state)
        return false;
    if (strcmp(rel, PY_RUNNER_STATE_OUT) == 0) {
        /* kept open, not read: core/state streams it into the store, capped there */
        if (!w->res->state_out_is_fd) {
            w->res->state_out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            w->res->state_out_is_fd = w->res->state_out_fd >= 0;
        }
        return true;
    }
    if (strcmp(rel, PY_RUNNER_NOTES) == 0) {
        size_t n = 0;
        local_slurp(fd, st, LOCAL_NOTES_MAX, (void **)&w->res->state_notes, &n);
        return true;
    }
    return false;
}

static enum kiln_err local_walk_list(void *arg, const char *rel, int fd, const struct stat *st)
{
    struct local_walk *w = arg;
    long idx;

    if (local_walk_state(w, rel, fd, st))
        return KILN_OK;
    if (local_skipped_path(rel) || strcmp(rel, w->source) == 0)
        return KILN_OK;
    idx = local_input_index(w->job, rel);
    if (idx >= 0 && (long long)st->st_size == w->job->inputs[idx].size) {
        char sum[SHA256_HEX_BUF];
        enum kiln_err rc = local_hash_fd(w, fd, sum, NULL);
        if (rc)
            return rc;
        if (strcmp(sum, w->job->inputs[idx].sha256) == 0) {
            w->res->input_unchanged[idx] = true;
            return KILN_OK;
        }
    }
    if ((long long)st->st_size > w->job->max_file_size) {
        w->res->skipped++;
        return KILN_OK;
    }
    w->cands = xreallocarray(w->cands, w->ncands + 1, sizeof *w->cands);
    w->cands[w->ncands++] = (struct local_cand){
        .rel = xstrdup(rel), .size = (long long)st->st_size, .input_index = idx, .fd = -1};
    return KILN_OK;
}

static int local_cand_cmp(const void *a, const void *b)
{
    return strcmp(((const struct local_cand *)a)->rel, ((const struct local_cand *)b)->rel);
}

static int local_cand_cmp_output(const void *a, const void *b)
{
    return strcmp(((const struct exec_output *)a)->name, ((const struct exec_output *)b)->name);
}

/* Stream fd into the blob under out_keys[key_index]; *size and sum describe what was stored.
 * KILN_ERR_TOO_LARGE when the bytes pass the cap (nothing is stored then). */
static enum kiln_err local_store(struct local_walk *w, int fd, size_t key_index, long long *size,
                                 char sum[SHA256_HEX_BUF], struct errbuf *eb)
{
    struct blob_writer *bw = NULL;
    long long total = 0;
    enum kiln_err rc;

    rc = w->blob->ops->write_begin(w->blob, w->job->out_keys[key_index], &bw, eb);
    if (rc)
        return rc;
    for (;;) {
        ssize_t n = pread(fd, w->buf, LOCAL_CHUNK, (off_t)total);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errbuf_set(eb, KILN_ERR_IO, "read output: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        total += n;
        if (total > w->job->max_file_size) {
            rc = errbuf_set(eb, KILN_ERR_TOO_LARGE, "output over MAX_FILE_SIZE_MB");
            goto fail;
        }
        sha256_update(w->h, w->buf, (size_t)n);
        rc = w->blob->ops->write(bw, w->buf, (size_t)n, eb);
        if (rc)
            goto fail;
    }
    sha256_final_hex(w->h, sum);
    *size = total;
    return w->blob->ops->write_commit(bw, eb);
fail:
    w->blob->ops->write_abort(bw);
    sha256_final_hex(w->h, sum); /* reset the hash for the next file */
    return rc;
}

/* Second walk: keep an fd on each selected file. The walk runs with the sandbox's fsuid (so
 * that no sandbox-planted permission trick opens anything as root), under which the blob
 * directory is not writable; the fds stay readable after the walk, so the bytes are streamed
 * into the blob store afterwards, as ourselves. */
static enum kiln_err local_walk_pick(void *arg, const char *rel, int fd, const struct stat *st)
{
    struct local_walk *w = arg;
    struct local_cand key = {.rel = (char *)rel};
    struct local_cand *c;

    (void)st;
    c = bsearch(&key, w->cands, w->nselected, sizeof *w->cands, local_cand_cmp);
    if (c == NULL || c->fd >= 0)
        return KILN_OK;
    c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return KILN_OK;
}

/* Stream every picked file into the blob store. */
static enum kiln_err local_store_picked(struct local_walk *w, struct errbuf *eb)
{
    for (size_t k = 0; k < w->nselected; k++) {
        struct local_cand *c = &w->cands[k];
        struct exec_output *o;
        enum kiln_err rc;

        if (c->fd < 0)
            continue; /* vanished or replaced by a non-regular file between the walks */
        w->res->outputs = xreallocarray(w->res->outputs, w->res->noutputs + 1, sizeof *o);
        o = &w->res->outputs[w->res->noutputs];
        memset(o, 0, sizeof *o);
        rc = local_store(w, c->fd, k, &o->size, o->sha256, eb);
        if (rc == KILN_ERR_TOO_LARGE) {
            w->res->skipped++;
            continue;
        }
        if (rc)
            return rc;
        o->key_index = k;
        o->name = xstrdup(c->rel);
        o->input_index = c->input_index;
        w->res->noutputs++;
    }
    return KILN_OK;
}

/* Copy every input into the workspace. */
static enum kiln_err local_mount(struct local_exec *le, struct sbx_workspace *ws,
                                 const struct exec_job *job, struct errbuf *eb)
{
    for (size_t i = 0; i < job->ninputs; i++) {
        const struct exec_input *in = &job->inputs[i];
        enum kiln_err rc;

        if (le->blob->ops->open_fd != NULL) {
            int fd = -1;
            rc = le->blob->ops->open_fd(le->blob, in->blob_key, &fd, NULL, eb);
            if (rc == KILN_OK) {
                rc = sbx_workspace_put(ws, in->name, NULL, 0, fd, eb);
                close(fd);
            }
        } else {
            /* backends without fds: the input is bounded by MAX_FILE_SIZE_MB at upload */
            char *buf = xmalloc((size_t)in->size + 1);
            size_t got = 0, off = 0;
            rc = KILN_OK;
            while (rc == KILN_OK && off < (size_t)in->size) {
                rc = le->blob->ops->read_at(le->blob, in->blob_key, (long long)off, buf + off,
                                            (size_t)in->size - off, &got, eb);
                if (rc == KILN_OK && got == 0)
                    rc = errbuf_set(eb, KILN_ERR_IO, "input %s is shorter than recorded", in->name);
                off += got;
            }
            if (rc == KILN_OK)
                rc = sbx_workspace_put(ws, in->name, buf, (size_t)in->size, -1, eb);
            free(buf);
        }
        if (rc)
            return rc;
    }
    return KILN_OK;
}

/* Run the program under the state runner: the runner and the previous state go into the
 * workspace (after the inputs, so that no input can take their names) and the run step becomes
 *   python3 /mnt/data/.kiln/kiln_runner.py [--state-in …] --state-out … --notes …
 *           --max-bytes N [--capture-on-error] -- code.py args…
 * (argv[0] and everything after it are the language row's own). *argv is owned by the caller;
 * its strings point into lj, *maxbuf and static data. */
static enum kiln_err local_state_prepare(struct sbx_workspace *ws, const struct exec_job *job,
                                         struct lang_job *lj, const char ***argv_out, char *maxbuf,
                                         size_t maxbuf_len, struct errbuf *eb)
{
    struct sbx_step *step = &lj->steps[lj->job.nsteps - 1];
    const char **argv;
    size_t n = 0, i = 0, len;
    const char *src = py_runner_source(&len);
    bool with_in = job->state_in != NULL || job->state_in_is_fd;
    enum kiln_err rc;

    rc = sbx_workspace_put(ws, PY_RUNNER_FILE, src, len, -1, eb);
    if (rc == KILN_OK && job->state_in_is_fd) {
        /* the workspace copies from the fd's offset: from the start */
        if (lseek(job->state_in_fd, 0, SEEK_SET) != 0)
            rc = errbuf_set(eb, KILN_ERR_IO, "state: %s", strerror(errno));
        else
            rc = sbx_workspace_put(ws, PY_RUNNER_STATE_IN, NULL, 0, job->state_in_fd, eb);
    } else if (rc == KILN_OK && job->state_in != NULL) {
        rc = sbx_workspace_put(ws, PY_RUNNER_STATE_IN, job->state_in, job->state_in_len, -1, eb);
    }
    if (rc)
        return rc;
    while (step->argv[n] != NULL)
        n++;
    argv = xcalloc(n + 16, sizeof *argv);
    snprintf(maxbuf, maxbuf_len, "%lld", job->state_max_bytes);
    argv[i++] = step->argv[0];
    argv[i++] = "/mnt/data/" PY_RUNNER_FILE;
    if (with_in) {
        argv[i++] = "--state-in";
        argv[i++] = "/mnt/data/" PY_RUNNER_STATE_IN;
    }
    argv[i++] = "--state-out";
    argv[i++] = "/mnt/data/" PY_RUNNER_STATE_OUT;
    argv[i++] = "--notes";
    argv[i++] = "/mnt/data/" PY_RUNNER_NOTES;
    argv[i++] = "--max-bytes";
    argv[i++] = maxbuf;
    if (job->state_capture_on_error)
        argv[i++] = "--capture-on-error";
    argv[i++] = "--";
    for (size_t k = 1; k < n; k++)
        argv[i++] = step->argv[k];
    argv[i] = NULL;
    step->argv = argv;
    *argv_out = argv;
    return KILN_OK;
}

static void *local_freer(void *arg)
{
    struct local_exec *le = arg;

    pthread_mutex_lock(&le->mu);
    for (;;) {
        struct local_done *d = le->done;
        struct timespec now;
        if (d == NULL) {
            if (le->closing)
                break;
            pthread_cond_wait(&le->cv, &le->mu);
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &now);
        if (!le->closing && (now.tv_sec < d->due.tv_sec ||
                             (now.tv_sec == d->due.tv_sec && now.tv_nsec < d->due.tv_nsec))) {
            pthread_cond_timedwait(&le->cv, &le->mu, &d->due);
            continue;
        }
        le->done = d->next;
        if (le->done == NULL)
            le->done_tail = NULL;
        pthread_mutex_unlock(&le->mu);
        if (d->lease != NULL)
            sbx_lease_free(d->lease); /* the workspace with it */
        else
            sbx_workspace_free(d->ws);
        free(d);
        pthread_mutex_lock(&le->mu);
    }
    pthread_mutex_unlock(&le->mu);
    return NULL;
}

/* Free a finished run's sandbox off the request's path (inline when no thread can be had). The
 * sandbox's processes are gone; its slot stays held until the free. */
static void local_dispose(struct local_exec *le, struct sbx_workspace *ws, struct sbx_lease *lease)
{
    struct local_done *d;

    if (ws == NULL && lease == NULL)
        return;
    pthread_mutex_lock(&le->mu);
    if (!le->freer_started && !le->closing)
        le->freer_started = pthread_create(&le->freer, NULL, local_freer, le) == 0;
    if (le->freer_started) {
        d = xcalloc(1, sizeof *d);
        d->ws = ws;
        d->lease = lease;
        clock_gettime(CLOCK_REALTIME, &d->due);
        d->due.tv_nsec += SBX_SETTLE_MS * 1000000L;
        d->due.tv_sec += d->due.tv_nsec / 1000000000L;
        d->due.tv_nsec %= 1000000000L;
        if (le->done_tail != NULL)
            le->done_tail->next = d;
        else
            le->done = d;
        le->done_tail = d;
        pthread_cond_signal(&le->cv);
        ws = NULL;
        lease = NULL;
    }
    pthread_mutex_unlock(&le->mu);
    if (lease != NULL)
        sbx_lease_free(lease);
    else
        sbx_workspace_free(ws);
}

static enum kiln_err local_run(struct exec *ex, const struct exec_job *job, struct exec_result *res,
                               struct errbuf *eb)
{
    struct local_exec *le = (struct local_exec *)ex;
    const struct lang *l = lang_find(job->lang);
    struct sbx_workspace *ws = NULL;
    struct sbx_lease *lease = NULL;
    struct lang_job *lj = NULL;
    struct local_walk w = {0};
    const char **state_argv = NULL;
    char maxbuf[32];
    bool zygote;
    char *scan = NULL; /* what zyg_run() scans, when not the code itself */
    size_t scan_len = 0;
    enum kiln_err rc;

    if (l == NULL)
        return errbuf_set(eb, KILN_ERR_INVALID, "Unsupported programming language: %s",
                          job->lang != NULL ? job->lang : "");
    res->input_unchanged = xcalloc(job->ninputs + 1, sizeof *res->input_unchanged);
    zygote = le->zyg != NULL && l->warm == LANG_WARM_ZYGOTE;
    if (!zygote && le->pool != NULL) {
        /* a parked sandbox of the language's pool when there is one, else a cold one */
        rc = sbx_pool_lease(le->pool, l->code, job->limits.data_mb, &lease, eb);
        if (rc == KILN_OK)
            ws = sbx_lease_workspace(lease);
    } else {
        rc = sbx_workspace_new(le->sbx, job->limits.data_mb, &ws, eb);
    }
    if (rc)
        goto out;
    rc = local_mount(le, ws, job, eb);
    if (rc)
        goto out;
    rc =
        lang_job_new(l, job->code, job->code_len, job->args, job->nargs, &job->limits, ws, &lj, eb);
    if (rc)
        goto out;
    lj->job.cancel_fd = job->cancel_fd;
    if (job->state_enabled && strcmp(l->code, "py") == 0) {
        rc = local_state_prepare(ws, job, lj, &state_argv, maxbuf, sizeof maxbuf, eb);
        if (rc)
            goto out;
    }
    if (zygote) {
        /* The runner is `python3 FILE ARGS...` like the program itself, so a zygote child runs
         * it as __main__ and it restores, runs code.py and captures exactly as it does cold
         * (cloudpickle and lz4 are preloaded there). A restored state may hold anything (a
         * DataFrame, an imported pandas): the heavy zygote then, whatever the code imports —
         * zyg_run() picks by its scan of the source, so the scan is shown a heavy import ahead
         * of the code (which it still scans for everything else, e.g. self-signalling). */
        if ((job->state_in != NULL || job->state_in_is_fd) && job->code != NULL) {
            /* the state's own modules when known ("import numpy,pandas" scans as two
             * imports), else a heavy one */
            char *hint = job->state_modules == NULL ? xstrdup("import pandas\n")
                         : job->state_modules[0] != '\0'
                             ? xasprintf("import %s\n", job->state_modules)
                             : xstrdup("");
            size_t hl = strlen(hint);
            scan_len = hl + job->code_len;
            scan = xmalloc(scan_len + 1);
            memcpy(scan, hint, hl);
            memcpy(scan + hl, job->code, job->code_len);
            free(hint);
        }
        rc = zyg_run(le->zyg, &lj->job, scan != NULL ? scan : job->code,
                     scan != NULL ? scan_len : job->code_len, &res->run, eb);
    } else if (lease != NULL) {
        rc = sbx_lease_run(lease, &lj->job, &res->run, eb);
    } else {
        rc = sbx_run(le->sbx, &lj->job, &res->run, eb);
    }
    if (rc)
        goto out;

    w = (struct local_walk){.job = job, .blob = le->blob, .source = l->source, .res = res};
    w.state = state_argv != NULL;
    w.h = sha256_new();
    w.buf = xmalloc(LOCAL_CHUNK);
    rc = sbx_workspace_walk(ws, LOCAL_WALK_DEPTH, LOCAL_WALK_ENTRIES, local_walk_list, &w, eb);
    if (rc)
        goto out;
    if (w.ncands > 1)
        qsort(w.cands, w.ncands, sizeof *w.cands, local_cand_cmp);
    w.nselected = w.ncands < job->nkeys ? w.ncands : job->nkeys;
    res->skipped += w.ncands - w.nselected;
    if (w.nselected > 0)
        rc = sbx_workspace_walk(ws, LOCAL_WALK_DEPTH, LOCAL_WALK_ENTRIES, local_walk_pick, &w, eb);
    if (rc == KILN_OK)
        rc = local_store_picked(&w, eb);
    if (rc) {
        for (size_t i = 0; i < res->noutputs; i++)
            le->blob->ops->remove(le->blob, job->out_keys[res->outputs[i].key_index], NULL);
        goto out;
    }
    /* sorted by name for the response, like the candidates */
    if (res->noutputs > 1)
        qsort(res->outputs, res->noutputs, sizeof *res->outputs, local_cand_cmp_output);
out:
    for (size_t i = 0; i < w.ncands; i++) {
        if (w.cands[i].fd >= 0)
            close(w.cands[i].fd);
        free(w.cands[i].rel);
    }
    free(w.cands);
    free(w.buf);
    free(state_argv);
    free(scan);
    sha256_free(w.h);
    lang_job_free(lj);
    local_dispose(le, lease != NULL ? NULL : ws, lease);
    return rc;
}

static void local_close(struct exec *ex)
{
    struct local_exec *le = (struct local_exec *)ex;
    bool started;

    pthread_mutex_lock(&le->mu);
    le->closing = true;
    started = le->freer_started;
    pthread_cond_signal(&le->cv);
    pthread_mutex_unlock(&le->mu);
    if (started)
        pthread_join(le->freer, NULL); /* it drains the queue first */
    pthread_cond_destroy(&le->cv);
    pthread_mutex_destroy(&le->mu);
    free(ex);
}

static enum kiln_err local_ping(struct exec *ex, struct errbuf *eb)
{
    (void)ex;
    (void)eb;
    return KILN_OK;
}

static const struct exec_ops local_ops = {
    .name = "local",
    .close = local_close,
    .ping = local_ping,
    .run = local_run,
};

void exec_local_set_zygote(struct exec *ex, struct zyg_set *zs)
{
    ((struct local_exec *)ex)->zyg = zs;
}

void exec_local_set_pool(struct exec *ex, struct sbx_pool *pool)
{
    ((struct local_exec *)ex)->pool = pool;
}

enum kiln_err exec_local_new(struct sbx_ctx *sbx, struct blob *blob, struct exec **out,
                             struct errbuf *eb)
{
    struct local_exec *le;

    if (sbx == NULL || blob == NULL)
        return errbuf_set(eb, KILN_ERR_INTERNAL, "exec_local_new: missing sandbox or blob");
    le = xcalloc(1, sizeof *le);
    le->base.ops = &local_ops;
    le->sbx = sbx;
    le->blob = blob;
    pthread_mutex_init(&le->mu, NULL);
    pthread_cond_init(&le->cv, NULL);
    *out = &le->base;
    return KILN_OK;
}
