#include "core/exec_service.h"

#include <ctype.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/names.h"
#include "core/sessions.h"
#include "core/state.h"
#include "lang/lang.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

#define MIB (1024LL * 1024LL)

/* How often a queued request checks whether its client went away. */
#define GATE_POLL_MS 100

/* --- the admission gate ---------------------------------------------------------------------- */

/* Waiters block on one condition variable; glibc wakes them roughly in arrival order, and
 * nobody waits behind a waiter that gave up (a client that went away just leaves).
 *
 * The gate also keeps the threads admitted requests run on (exec_gate_spawn()): a thread per
 * request cost ~0.1-0.4 ms of every /exec here (clone, then a first-touch fault on each stack
 * page and an madvise of the stack at exit, on a guest where each fault costs 10-25 us), so a
 * thread that finished a job waits for the next one. Every API job holds a reserved place and
 * may start one short job of its own (es_insert_start()), so there are never more than twice
 * as many threads as places; at most max_running of them stay idle. */
struct gate_job {
    void (*fn)(void *arg);
    void *arg;
    struct gate_job *next;
};

struct exec_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long long max_running, max_queued;
    long long running, queued;
    long long reserved; /* exec_gate_reserve() places held (API requests admitted) */
    long long avg_ms;   /* moving average of run time, for Retry-After */
    /* exec_gate_spawn()'s threads, guarded by mu */
    pthread_cond_t job_cv;        /* idle threads wait here for a job */
    struct gate_job *head, *tail; /* jobs handed over, not yet taken */
    long long pending;            /* jobs in the list */
    long long threads, idle;      /* threads alive; of them, waiting for a job */
    bool closing;                 /* exec_gate_free(): threads leave */
};

struct exec_gate *exec_gate_new(long long max_running, long long max_queued)
{
    struct exec_gate *g = xcalloc(1, sizeof *g);

    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    pthread_cond_init(&g->job_cv, NULL);
    g->max_running = max_running > 0 ? max_running : 1;
    g->max_queued = max_queued >= 0 ? max_queued : 0;
    g->avg_ms = 1000;
    return g;
}

enum kiln_err exec_gate_reserve(struct exec_gate *g, long long *retry_after_s, struct errbuf *eb)
{
    enum kiln_err rc = KILN_OK;

    pthread_mutex_lock(&g->mu);
    if (g->reserved >= g->max_running + g->max_queued) {
        long long ahead = g->reserved - g->max_running + 1;
        *retry_after_s = g->avg_ms * (ahead > 0 ? ahead : 1) / g->max_running / 1000 + 1;
        rc = errbuf_set(eb, KILN_ERR_RATE_LIMITED,
                        "Too many executions: %lld running and %lld queued "
                        "(MAX_CONCURRENT_EXECUTIONS, MAX_QUEUED_EXECUTIONS)",
                        g->max_running, g->max_queued);
    } else {
        g->reserved++;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void exec_gate_release(struct exec_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->reserved--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void exec_gate_wait_idle(struct exec_gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->reserved > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* A thread of exec_gate_spawn(): runs jobs until none is left and enough threads are idle
 * already, or the gate closes. Touches nothing of g after its last unlock (exec_gate_free()
 * frees g once threads reaches 0). */
static void *gate_thread(void *arg)
{
    struct exec_gate *g = arg;

    pthread_mutex_lock(&g->mu);
    for (;;) {
        struct gate_job *j;

        if (g->head == NULL && !g->closing) {
            if (g->idle >= g->max_running)
                break; /* enough idle threads kept: this one leaves */
            g->idle++;
            while (g->head == NULL && !g->closing)
                pthread_cond_wait(&g->job_cv, &g->mu);
            g->idle--;
        }
        if (g->head == NULL)
            break; /* closing */
        j = g->head;
        g->head = j->next;
        if (g->head == NULL)
            g->tail = NULL;
        g->pending--;
        pthread_mutex_unlock(&g->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&g->mu);
    }
    g->threads--;
    pthread_cond_broadcast(&g->cv); /* exec_gate_free() waits for the last one */
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

enum kiln_err exec_gate_spawn(struct exec_gate *g, void (*fn)(void *arg), void *arg,
                              struct errbuf *eb)
{
    struct gate_job *j = xcalloc(1, sizeof *j);
    enum kiln_err rc = KILN_OK;

    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&g->mu);
    if (g->tail != NULL)
        g->tail->next = j;
    else
        g->head = j;
    g->tail = j;
    g->pending++;
    if (g->idle >= g->pending) {
        pthread_cond_signal(&g->job_cv);
    } else {
        pthread_attr_t attr;
        pthread_t t;
        int err;

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        err = pthread_create(&t, &attr, gate_thread, g);
        pthread_attr_destroy(&attr);
        if (err == 0) {
            g->threads++;
        } else {
            /* take it back (the tail; not waiting for a busy thread: its job may be the one
             * waiting for this) */
            struct gate_job *prev = NULL;
            for (struct gate_job *k = g->head; k != j; k = k->next)
                prev = k;
            if (prev != NULL)
                prev->next = NULL;
            else
                g->head = NULL;
            g->tail = prev;
            g->pending--;
            free(j);
            rc = errbuf_set(eb, KILN_ERR_UNAVAILABLE, "cannot start an execution thread: %s",
                            strerror(err));
        }
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

long long exec_gate_idle_threads(struct exec_gate *g)
{
    long long n;

    pthread_mutex_lock(&g->mu);
    n = g->idle;
    pthread_mutex_unlock(&g->mu);
    return n;
}

void exec_gate_free(struct exec_gate *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    g->closing = true;
    pthread_cond_broadcast(&g->job_cv);
    while (g->threads > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&g->job_cv);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void exec_gate_stats(struct exec_gate *g, long long *running, long long *queued)
{
    pthread_mutex_lock(&g->mu);
    *running = g->running;
    *queued = g->queued;
    pthread_mutex_unlock(&g->mu);
}

static long long gate_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool gate_cancelled(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return fd >= 0 && poll(&p, 1, 0) > 0;
}

static enum kiln_err gate_enter(struct exec_gate *g, int cancel_fd, long long *waited_ms,
                                long long *retry_after_s, struct errbuf *eb)
{
    long long start = gate_now_ms();

    pthread_mutex_lock(&g->mu);
    if (g->queued == 0 && g->running < g->max_running) {
        g->running++;
        pthread_mutex_unlock(&g->mu);
        *waited_ms = 0;
        return KILN_OK;
    }
    if (g->queued >= g->max_queued) {
        /* the queue ahead drains at max_running runs per average run time */
        long long est = g->avg_ms * (g->queued + 1) / g->max_running;
        *retry_after_s = est / 1000 + 1;
        pthread_mutex_unlock(&g->mu);
        return errbuf_set(eb, KILN_ERR_RATE_LIMITED,
                          "Too many executions: %lld running and %lld queued "
                          "(MAX_CONCURRENT_EXECUTIONS, MAX_QUEUED_EXECUTIONS)",
                          g->max_running, g->max_queued);
    }
    g->queued++;
    while (g->running >= g->max_running) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += GATE_POLL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &until);
        if (gate_cancelled(cancel_fd)) {
            g->queued--;
            pthread_mutex_unlock(&g->mu);
            return errbuf_set(eb, KILN_ERR_UNAVAILABLE, "client went away while queued");
        }
    }
    g->queued--;
    g->running++;
    pthread_mutex_unlock(&g->mu);
    *waited_ms = gate_now_ms() - start;
    return KILN_OK;
}

static void gate_leave(struct exec_gate *g, long long ran_ms)
{
    pthread_mutex_lock(&g->mu);
    g->running--;
    g->avg_ms = (g->avg_ms * 7 + ran_ms) / 8;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* --- validation ------------------------------------------------------------------------------ */

static enum kiln_err es_refuse(struct exec_error_info *info, struct errbuf *eb, enum kiln_err err,
                               const char *field, const char *code, const char *msg)
{
    if (info != NULL) {
        snprintf(info->field, sizeof info->field, "%s", field);
        snprintf(info->code, sizeof info->code, "%s", code);
    }
    return errbuf_set(eb, err, "%s", msg);
}

enum kiln_err exec_service_validate(const struct exec_request *req, struct exec_error_info *info,
                                    struct errbuf *eb)
{
    bool blank = true;

    for (size_t i = 0; req->code != NULL && i < req->code_len; i++)
        if (!isspace((unsigned char)req->code[i]))
            blank = false;
    if (blank)
        return es_refuse(info, eb, KILN_ERR_INVALID, "code", "empty_code", "Code cannot be empty");
    if (lang_find(req->lang) == NULL) {
        errbuf_set(eb, KILN_ERR_INVALID, "Unsupported programming language: %.64s",
                   req->lang != NULL ? req->lang : "");
        if (info != NULL) {
            snprintf(info->field, sizeof info->field, "lang");
            snprintf(info->code, sizeof info->code, "unsupported_language");
        }
        return KILN_ERR_INVALID;
    }
    if (sessions_validate_entity(req->entity_id, NULL) != KILN_OK)
        return es_refuse(info, eb, KILN_ERR_INVALID, "entity_id", "invalid_entity_id",
                         "entity_id must be at most 40 characters of [A-Za-z0-9_-]");
    if (req->user_id != NULL && strlen(req->user_id) > STORE_MAX_USER)
        return es_refuse(info, eb, KILN_ERR_INVALID, "user_id", "invalid_user_id",
                         "user_id is too long");
    for (size_t i = 0; i < req->nfiles; i++)
        if (!ids_valid(req->files[i].id) || !ids_valid(req->files[i].session_id))
            return es_refuse(info, eb, KILN_ERR_INVALID, "files", "invalid_file_ref",
                             "Each file needs a 21-character id and session_id "
                             "(or storage_session_id)");
    return KILN_OK;
}

/* --- the run --------------------------------------------------------------------------------- */

/* The request's inputs, resolved to records. */
struct es_inputs {
    struct store_file *recs;
    struct exec_input *in;
    size_t n;
};

static void es_inputs_free(struct es_inputs *x)
{
    store_files_free(x->recs, x->n);
    free(x->in);
}

/* Find the record a ref points at: by id, else by name in that session (a client that kept
 * only the name). NOT_FOUND when neither. */
static enum kiln_err es_find_ref(struct kiln_services *svc, const struct exec_file_ref *ref,
                                 struct store_file *out, struct errbuf *eb)
{
    struct store_file *list = NULL;
    size_t n = 0;
    enum kiln_err rc = svc->store->ops->file_get(svc->store, ref->session_id, ref->id, out, eb);

    if (rc != KILN_ERR_NOT_FOUND || ref->name == NULL)
        return rc;
    rc = svc->store->ops->file_list(svc->store, ref->session_id, &list, &n, eb);
    if (rc)
        return rc;
    rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "file not found");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, ref->name) == 0 || strcmp(list[i].original_name, ref->name) == 0) {
            *out = list[i];
            memset(&list[i], 0, sizeof list[i]);
            rc = KILN_OK;
            break;
        }
    }
    store_files_free(list, n);
    return rc;
}

/* Resolve every ref: a ref into another user's session is refused (403); a ref to a file or
 * session that no longer exists is skipped (the program then sees the file missing, like a
 * peer that skips it); two refs with the same name mount the first. */
static enum kiln_err es_resolve(struct kiln_services *svc, const struct exec_request *req,
                                struct es_inputs *x, struct exec_error_info *info,
                                struct errbuf *eb)
{
    x->recs = xcalloc(req->nfiles + 1, sizeof *x->recs);
    x->in = xcalloc(req->nfiles + 1, sizeof *x->in);
    for (size_t i = 0; i < req->nfiles; i++) {
        const struct exec_file_ref *ref = &req->files[i];
        struct store_session s = {0};
        struct store_file f = {0};
        bool dup = false;
        enum kiln_err rc = svc->store->ops->session_get(svc->store, ref->session_id, &s, eb);

        if (rc == KILN_ERR_NOT_FOUND)
            continue;
        if (rc)
            return rc;
        if (!sessions_visible(&s, req->user_id)) {
            store_session_clear(&s);
            return es_refuse(info, eb, KILN_ERR_FORBIDDEN, "files", "forbidden_file",
                             "A referenced file belongs to another user's session");
        }
        store_session_clear(&s);
        rc = es_find_ref(svc, ref, &f, eb);
        if (rc == KILN_ERR_NOT_FOUND)
            continue;
        if (rc)
            return rc;
        for (size_t j = 0; j < x->n; j++)
            dup = dup || strcmp(x->recs[j].name, f.name) == 0;
        if (dup) {
            store_file_clear(&f);
            continue;
        }
        x->recs[x->n] = f;
        x->in[x->n] = (struct exec_input){.name = x->recs[x->n].name,
                                          .blob_key = x->recs[x->n].blob_key,
                                          .size = x->recs[x->n].size,
                                          .sha256 = x->recs[x->n].sha256};
        x->n++;
    }
    return KILN_OK;
}

/* A reused session (explicit session_id): its own files are mounted too, after the refs (a ref
 * of the same name wins). */
static enum kiln_err es_add_session_files(struct kiln_services *svc, const char *sid,
                                          struct es_inputs *x, struct errbuf *eb)
{
    struct store_file *list = NULL;
    size_t n = 0;
    enum kiln_err rc = files_list(svc, NULL, sid, &list, &n, eb);

    if (rc)
        return rc;
    x->recs = xreallocarray(x->recs, x->n + n + 1, sizeof *x->recs);
    x->in = xreallocarray(x->in, x->n + n + 1, sizeof *x->in);
    /* the inputs point into the records (sha256 is an array member): re-point after the move */
    for (size_t j = 0; j < x->n; j++)
        x->in[j].sha256 = x->recs[j].sha256;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t j = 0; j < x->n; j++)
            dup = dup || strcmp(x->recs[j].name, list[i].name) == 0;
        if (dup) {
            store_file_clear(&list[i]);
            continue;
        }
        x->recs[x->n] = list[i];
        memset(&list[i], 0, sizeof list[i]);
        x->in[x->n] = (struct exec_input){.name = x->recs[x->n].name,
                                          .blob_key = x->recs[x->n].blob_key,
                                          .size = x->recs[x->n].size,
                                          .sha256 = x->recs[x->n].sha256};
        x->n++;
    }
    free(list);
    return KILN_OK;
}

static long long es_timeout_ms(const struct kiln_config *cfg, long long requested)
{
    long long max = cfg->max_execution_time * 1000;
    long long def = cfg->default_execution_time > 0 ? cfg->default_execution_time * 1000 : max;

    if (requested <= 0)
        return def < max ? def : max;
    return requested < max ? requested : max;
}

static struct sbx_limits es_limits(const struct kiln_config *cfg, long long timeout_ms)
{
    struct sbx_limits l = {0};

    l.wall_ms = timeout_ms;
    l.cpu_ms = cfg->max_cpu_time > 0 ? cfg->max_cpu_time * 1000 : timeout_ms;
    l.memory_mb = cfg->max_memory_mb;
    l.pids = cfg->max_pids;
    l.open_files = cfg->max_open_files;
    l.file_size_mb = cfg->max_write_file_mb;
    l.data_mb = cfg->sandbox_data_mb;
    l.tmp_mb = cfg->sandbox_tmp_mb;
    l.stdout_max = (size_t)cfg->max_stdout_bytes;
    l.stderr_max = (size_t)cfg->max_stderr_bytes;
    return l;
}

/* Output keys: "<sid>/<fresh id>", one per possible output. */
struct es_keys {
    char (*ids)[IDS_BUF];
    char **keys;
    size_t n;
};

static enum kiln_err es_keys_make(struct es_keys *k, const char *sid, size_t n, struct errbuf *eb)
{
    enum kiln_err rc;

    k->ids = xcalloc(n + 1, sizeof *k->ids);
    k->keys = xcalloc(n + 1, sizeof *k->keys);
    rc = ids_new_many(k->ids, n, eb);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        k->keys[i] = xasprintf("%s/%s", sid, k->ids[i]);
    k->n = n;
    return KILN_OK;
}

static void es_keys_free(struct es_keys *k)
{
    store_strings_free(k->keys, k->n);
    free(k->ids);
}

/* Turn the collected outputs into records (names re-sanitised: they come from the sandbox) and
 * insert them at once; bytes of refused names are removed. */
static enum kiln_err es_store_outputs(struct kiln_services *svc, const char *sid,
                                      const struct es_inputs *x, const struct es_keys *k,
                                      struct exec_result *res, struct store_file **recs_out,
                                      size_t *nrecs_out, struct errbuf *eb)
{
    struct store_file *recs = xcalloc(res->noutputs + 1, sizeof *recs);
    size_t n = 0;
    long long now = services_now_ms(svc);
    enum kiln_err rc;

    for (size_t i = 0; i < res->noutputs; i++) {
        const struct exec_output *o = &res->outputs[i];
        struct store_file *f = &recs[n];
        char *name = NULL;

        if (names_sanitize_path(o->name, strlen(o->name), (size_t)svc->cfg->max_filename_length,
                                &name, NULL) != KILN_OK) {
            svc->blob->ops->remove(svc->blob, k->keys[o->key_index], NULL);
            res->skipped++;
            continue;
        }
        memcpy(f->session_id, sid, IDS_BUF);
        memcpy(f->id, k->ids[o->key_index], IDS_BUF);
        f->name = name;
        f->original_name = xstrdup(o->name);
        f->content_type = xstrdup(names_content_type(name));
        f->blob_key = xstrdup(k->keys[o->key_index]);
        f->kind = xstrdup("");
        f->size = o->size;
        memcpy(f->sha256, o->sha256, sizeof f->sha256);
        f->origin = STORE_FILE_OUTPUT;
        f->state = STORE_FILE_COMPLETE;
        if (o->input_index >= 0 && (size_t)o->input_index < x->n) {
            memcpy(f->modified_from_id, x->recs[o->input_index].id, IDS_BUF);
            memcpy(f->modified_from_session, x->recs[o->input_index].session_id, IDS_BUF);
        }
        f->created_ms = now;
        n++;
    }
    rc = n > 0 ? svc->store->ops->file_put_many(svc->store, recs, n, eb) : KILN_OK;
    if (rc) {
        for (size_t i = 0; i < n; i++)
            svc->blob->ops->remove(svc->blob, recs[i].blob_key, NULL);
        store_files_free(recs, n);
        return rc;
    }
    *recs_out = recs;
    *nrecs_out = n;
    return KILN_OK;
}

/* stdout/stderr as the contract wants them: a copy, non-empty stdout ending with '\n', and a
 * limit's reason in stderr when the program said nothing about it. */
static void es_texts(const struct sbx_result *run, struct exec_response *resp)
{
    size_t n = run->out != NULL ? run->out_len : 0;
    bool nl = n > 0 && run->out[n - 1] != '\n';
    size_t en = run->err != NULL ? run->err_len : 0;
    size_t notelen = strlen(run->note);
    bool add_note = notelen > 0 && run->status != SBX_OK && run->status != SBX_ERROR &&
                    (en == 0 || memmem(run->err, en, run->note, notelen) == NULL);

    resp->stdout_text = xmalloc(n + 2);
    if (n > 0)
        memcpy(resp->stdout_text, run->out, n);
    if (nl)
        resp->stdout_text[n++] = '\n';
    resp->stdout_text[n] = '\0';
    resp->stdout_len = n;

    resp->stderr_text = xmalloc(en + notelen + 2);
    if (en > 0)
        memcpy(resp->stderr_text, run->err, en);
    if (add_note) {
        if (en > 0 && run->err[en - 1] != '\n')
            resp->stderr_text[en++] = '\n';
        memcpy(resp->stderr_text + en, run->note, notelen);
        en += notelen;
    }
    resp->stderr_text[en] = '\0';
    resp->stderr_len = en;
}

/* --- Python state (core/state.h) ------------------------------------------------------------- */

static void es_note(struct exec_response *resp, const char *text)
{
    if (resp->nstate_notes >= 64)
        return;
    resp->state_notes =
        xreallocarray(resp->state_notes, resp->nstate_notes + 1, sizeof *resp->state_notes);
    resp->state_notes[resp->nstate_notes++] = xstrdup(text);
}

/* The runner's notes file (untrusted JSON from the sandbox): its "notes" strings; true when
 * it says the state came out unchanged (then it wrote no blob). *modules (caller frees; NULL
 * when absent or malformed) gets its "modules", comma-separated as core/state records them. */
static bool es_runner_notes(const char *json, struct exec_response *resp, char **modules)
{
    json_t *root = json != NULL ? json_loads(json, 0, NULL) : NULL;
    json_t *notes = json_object_get(root, "notes"), *mods = json_object_get(root, "modules"), *v;
    bool unchanged = json_is_true(json_object_get(root, "unchanged"));
    char buf[STATE_MODULES_BUF];
    size_t i, n = 0;
    bool ok = json_is_array(mods);

    json_array_foreach(notes, i, v)
    {
        const char *s = json_string_value(v);
        if (s != NULL)
            es_note(resp, s);
    }
    buf[0] = '\0';
    json_array_foreach(mods, i, v)
    {
        const char *s = json_string_value(v);
        int w = s != NULL ? snprintf(buf + n, sizeof buf - n, "%s%s", n > 0 ? "," : "", s) : -1;
        if (w < 0 || (size_t)w >= sizeof buf - n) {
            ok = false;
            break;
        }
        n += (size_t)w;
    }
    *modules = ok && state_modules_ok(buf) ? xstrdup(buf) : NULL;
    json_decref(root);
    return unchanged;
}

/* After the run: store what the runner captured (validated: it comes from the sandbox) and
 * report the session's state as it now is. A state that cannot be stored is a note, never a
 * failed execution. An unchanged state (the runner's word; a false claim can only cost the
 * session its own update) is kept without writing: loaded is what was restored. created: this
 * request made sid, so the save has no earlier copy to replace (state_save_fd()'s fresh). */
static void es_state_after(struct kiln_services *svc, const char *sid, bool created,
                           struct exec_result *res, const struct state_info *loaded,
                           struct exec_response *resp)
{
    struct state_info info = {0};
    struct errbuf seb;
    char *modules = NULL;
    bool unchanged = es_runner_notes(res->state_notes, resp, &modules);
    enum kiln_err rc = KILN_OK;

    errbuf_clear(&seb);
    if (res->state_out_is_fd)
        rc = state_save_fd(svc, sid, res->state_out_fd, modules, created, &info, &seb);
    else if (res->state_out != NULL)
        rc = state_save(svc, sid, res->state_out, res->state_out_len, &info, &seb);
    else if (unchanged && loaded->exists)
        state_keep(svc, sid, loaded, modules, &info, NULL);
    if (rc) {
        char *msg = xasprintf("state not saved: %s", seb.msg);
        es_note(resp, msg);
        free(msg);
        memset(&info, 0, sizeof info);
    }
    free(modules);
    if (!info.exists)
        state_info_get(svc, sid, &info, NULL);
    resp->has_state = info.exists;
    if (info.exists) {
        resp->state_size = info.size;
        memcpy(resp->state_hash, info.sha256, sizeof resp->state_hash);
    }
}

static char *es_path(const char *name)
{
    return xasprintf("/mnt/data/%s", name);
}

static void es_response_files(const struct es_inputs *x, const struct exec_result *res,
                              const struct store_file *recs, size_t nrecs, bool echo_inherited,
                              struct exec_response *resp)
{
    size_t cap = nrecs + x->n + 1;

    resp->files = xcalloc(cap, sizeof *resp->files);
    for (size_t i = 0; i < nrecs; i++) {
        struct exec_response_file *rf = &resp->files[resp->nfiles++];
        memcpy(rf->id, recs[i].id, IDS_BUF);
        memcpy(rf->session_id, recs[i].session_id, IDS_BUF);
        rf->name = xstrdup(recs[i].name);
        rf->path = es_path(recs[i].name);
        rf->size = recs[i].size;
        rf->modified = recs[i].modified_from_id[0] != '\0';
        memcpy(rf->modified_from_id, recs[i].modified_from_id, IDS_BUF);
        memcpy(rf->modified_from_session, recs[i].modified_from_session, IDS_BUF);
    }
    for (size_t i = 0; i < x->n; i++) {
        struct exec_response_file *rf;
        if (!echo_inherited || res->input_unchanged == NULL || !res->input_unchanged[i])
            continue;
        rf = &resp->files[resp->nfiles++];
        memcpy(rf->id, x->recs[i].id, IDS_BUF);
        memcpy(rf->session_id, x->recs[i].session_id, IDS_BUF);
        rf->name = xstrdup(x->recs[i].name);
        rf->path = es_path(x->recs[i].name);
        rf->size = x->recs[i].size;
        rf->inherited = true;
    }
}

/* The metrics status of an execution (metrics.h METRICS_EXEC_STATUSES): rc and, when it ran,
 * the sandbox's status and exit code. */
static const char *es_metrics_status(enum kiln_err rc, const struct exec_response *resp)
{
    static const struct {
        const char *sbx, *metric;
    } map[] = {{"timeout", "timeout"},
               {"oom", "memory_limit"},
               {"output_limit", "failed"},
               {"killed", "error"},
               {"error", "failed"}};

    if (rc == KILN_ERR_INVALID || rc == KILN_ERR_RATE_LIMITED || rc == KILN_ERR_FORBIDDEN ||
        rc == KILN_ERR_NOT_FOUND)
        return "rejected";
    if (rc != KILN_OK || resp->status == NULL)
        return "error";
    if (strcmp(resp->status, "ok") == 0)
        return resp->exit_code == 0 && resp->signal == 0 ? "completed" : "failed";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(resp->status, map[i].sbx) == 0)
            return map[i].metric;
    return "other";
}

/* Active and queued gauges from the gate, after it changed. */
static void es_metrics_gate(struct kiln_services *svc)
{
    long long running = 0, queued = 0;

    if (svc->metrics == NULL || svc->gate == NULL)
        return;
    exec_gate_stats(svc->gate, &running, &queued);
    metrics_gauge_set(svc->metrics, METRIC_EXECUTIONS_ACTIVE, NULL, running);
    metrics_gauge_set(svc->metrics, METRIC_EXECUTIONS_QUEUED, NULL, queued);
}

static enum kiln_err es_run(struct kiln_services *svc, const struct exec_request *req,
                            struct exec_response *resp, struct exec_error_info *info,
                            struct errbuf *eb, long long *ran_ms);

/* The row of a session made for an execution, stored by a thread of the gate's while the
 * program runs (it took ~0.15 ms of every such /exec before the run): nothing refers to it
 * before the run is over, and es_run() waits for it before storing outputs or answering. */
struct es_insert {
    struct kiln_services *svc;
    const struct store_session *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, done;
    enum kiln_err rc;
    struct errbuf eb;
};

static void es_insert_job(void *arg)
{
    struct es_insert *ins = arg;
    struct errbuf eb;
    enum kiln_err rc;

    errbuf_clear(&eb);
    rc = sessions_insert(ins->svc, ins->s, &eb);
    pthread_mutex_lock(&ins->mu);
    ins->rc = rc;
    ins->eb = eb;
    ins->done = true;
    pthread_cond_signal(&ins->cv);
    pthread_mutex_unlock(&ins->mu); /* ins may be gone from here on */
}

/* Start storing s; inline when no thread can be had. */
static void es_insert_start(struct es_insert *ins, struct kiln_services *svc,
                            const struct store_session *s)
{
    ins->svc = svc;
    ins->s = s;
    pthread_mutex_init(&ins->mu, NULL);
    pthread_cond_init(&ins->cv, NULL);
    ins->started = true;
    if (exec_gate_spawn(svc->gate, es_insert_job, ins, NULL) != KILN_OK)
        es_insert_job(ins);
}

/* Wait for the insert (once; a no-op when none was started): its result, its message in eb. */
static enum kiln_err es_insert_wait(struct es_insert *ins, struct errbuf *eb)
{
    enum kiln_err rc;

    if (!ins->started)
        return KILN_OK;
    pthread_mutex_lock(&ins->mu);
    while (!ins->done)
        pthread_cond_wait(&ins->cv, &ins->mu);
    pthread_mutex_unlock(&ins->mu);
    pthread_cond_destroy(&ins->cv);
    pthread_mutex_destroy(&ins->mu);
    ins->started = false;
    rc = ins->rc;
    if (rc && eb != NULL)
        *eb = ins->eb;
    return rc;
}

void exec_service_count_refusal(struct kiln_services *svc, const char *lang)
{
    const struct lang *l = lang != NULL ? lang_find(lang) : NULL;
    const char *labels[2] = {l != NULL ? l->code : "other", "rejected"};

    if (svc->metrics != NULL)
        metrics_inc(svc->metrics, METRIC_EXECUTIONS_TOTAL, labels);
}

enum kiln_err exec_service_run(struct kiln_services *svc, const struct exec_request *req,
                               struct exec_response *resp, struct exec_error_info *info,
                               struct errbuf *eb)
{
    long long ran_ms = -1;
    enum kiln_err rc = es_run(svc, req, resp, info, eb, &ran_ms);

    if (svc->metrics != NULL) {
        const struct lang *l = req->lang != NULL ? lang_find(req->lang) : NULL;
        const char *status = es_metrics_status(rc, resp);
        const char *labels[2] = {l != NULL ? l->code : "other", status};
        /* only a run has a duration: refusals are counted without skewing the latencies */
        if (ran_ms >= 0)
            metrics_record_execution(svc->metrics, labels[0], status, (double)ran_ms / 1e3, 0);
        else
            metrics_inc(svc->metrics, METRIC_EXECUTIONS_TOTAL, labels);
        if (rc == KILN_OK)
            metrics_observe(svc->metrics, METRIC_EXECUTION_QUEUE_WAIT, NULL,
                            (double)resp->queue_wait_ms / 1e3);
        es_metrics_gate(svc);
    }
    return rc;
}

static enum kiln_err es_run(struct kiln_services *svc, const struct exec_request *req,
                            struct exec_response *resp, struct exec_error_info *info,
                            struct errbuf *eb, long long *ran_ms)
{
    const struct kiln_config *cfg = svc->cfg;
    struct es_inputs x = {0};
    struct es_keys keys = {0};
    struct store_session session = {0};
    struct exec_result res = {0};
    struct store_file *recs = NULL;
    size_t nrecs = 0;
    const char **ref_sids = NULL;
    long long timeout_ms, waited = 0, started;
    bool created = false, entered = false, inserted = false, with_state;
    struct es_insert ins = {0};
    void *state_in = NULL;
    size_t state_in_len = 0;
    int state_in_fd = -1;
    struct state_info state_loaded = {0};
    char *state_note = NULL;
    char lang[16];
    enum kiln_err rc;

    memset(resp, 0, sizeof *resp);
    if (info != NULL)
        memset(info, 0, sizeof *info);
    rc = exec_service_validate(req, info, eb);
    if (rc)
        return rc;
    /* the table's own lower-case code, whatever case the client used */
    snprintf(lang, sizeof lang, "%s", lang_find(req->lang)->code);

    rc = es_resolve(svc, req, &x, info, eb);
    if (rc)
        goto out;
    ref_sids = xcalloc(req->nfiles + 1, sizeof *ref_sids);
    for (size_t i = 0; i < req->nfiles; i++)
        ref_sids[i] = req->files[i].session_id;
    rc = sessions_choose(svc, req->user_id, req->entity_id, req->session_id, ref_sids, req->nfiles,
                         false, &session, &created, eb);
    if (rc)
        goto out;
    if (created)
        es_insert_start(&ins, svc, &session);
    if (!created && req->session_id != NULL && strcmp(session.id, req->session_id) == 0) {
        rc = es_add_session_files(svc, session.id, &x, eb);
        if (rc)
            goto out;
    }
    rc = es_keys_make(&keys, session.id, (size_t)cfg->max_output_files, eb);
    if (rc)
        goto out;

    with_state = cfg->state_persistence_enabled && strcmp(lang, "py") == 0;
    if (with_state && !created) {
        /* none, or a corrupted copy (dropped, noted): the program starts without state */
        if (state_open(svc, session.id, &state_in, &state_in_len, &state_in_fd, &state_loaded,
                       &state_note, NULL) != KILN_OK) {
            free(state_in);
            state_in = NULL;
            state_in_len = 0;
            memset(&state_loaded, 0, sizeof state_loaded);
        }
    }

    rc = gate_enter(svc->gate, req->cancel_fd, &waited,
                    info != NULL ? &info->retry_after_s : &(long long){0}, eb);
    if (rc)
        goto out;
    entered = true;
    started = gate_now_ms();
    es_metrics_gate(svc);
    timeout_ms = es_timeout_ms(cfg, req->timeout_ms);
    struct exec_job job = {
        .lang = lang,
        .code = req->code,
        .code_len = req->code_len,
        .args = req->args,
        .nargs = req->nargs,
        .limits = es_limits(cfg, timeout_ms),
        .inputs = x.in,
        .ninputs = x.n,
        .out_keys = (const char *const *)keys.keys,
        .nkeys = keys.n,
        .max_file_size = cfg->max_file_size_mb * MIB,
        .cancel_fd = req->cancel_fd,
        .state_enabled = with_state,
        .state_in = state_in,
        .state_in_len = state_in_len,
        .state_in_is_fd = state_in_fd >= 0,
        .state_in_fd = state_in_fd,
        .state_modules = state_loaded.modules_known ? state_loaded.modules : NULL,
        .state_max_bytes = cfg->state_max_size_mb * MIB,
        .state_capture_on_error = cfg->state_capture_on_error,
    };
    rc = svc->exec->ops->run(svc->exec, &job, &res, eb);
    *ran_ms = gate_now_ms() - started;
    gate_leave(svc->gate, *ran_ms);
    entered = false;
    if (rc)
        goto out;
    if (created) {
        rc = es_insert_wait(&ins, eb);
        inserted = rc == KILN_OK;
        if (rc) {
            /* no row for the outputs' records: their bytes go */
            for (size_t i = 0; i < res.noutputs; i++)
                svc->blob->ops->remove(svc->blob, keys.keys[res.outputs[i].key_index], NULL);
            goto out;
        }
    }

    rc = es_store_outputs(svc, session.id, &x, &keys, &res, &recs, &nrecs, eb);
    if (rc)
        goto out;
    if (!created) /* a session made for this request is as fresh as a touch would make it */
        sessions_touch(svc, session.id, NULL);

    memcpy(resp->session_id, session.id, IDS_BUF);
    es_texts(&res.run, resp);
    resp->status = sbx_status_name(res.run.status);
    resp->exit_code = res.run.exit_code;
    resp->signal = res.run.signal;
    resp->wall_time_ms = res.run.wall_ms;
    resp->cpu_time_ms = res.run.cpu_ms;
    resp->memory_peak_kb = res.run.memory_peak_kb;
    resp->queue_wait_ms = waited;
    es_response_files(&x, &res, recs, nrecs, req->echo_inherited, resp);
    resp->files_skipped = res.skipped;
    if (state_note != NULL)
        es_note(resp, state_note);
    if (with_state)
        es_state_after(svc, session.id, created, &res, &state_loaded, resp);
out:
    if (entered)
        gate_leave(svc->gate, gate_now_ms() - started);
    if (ins.started)
        inserted = es_insert_wait(&ins, NULL) == KILN_OK;
    /* a session made for a request that then failed before running holds nothing: drop it */
    if (rc && created && inserted && res.noutputs == 0)
        sessions_delete(svc, session.id, NULL);
    store_files_free(recs, nrecs);
    exec_result_clear(&res);
    es_keys_free(&keys);
    store_session_clear(&session);
    free(ref_sids);
    free(state_in);
    if (state_in_fd >= 0)
        close(state_in_fd);
    free(state_note);
    es_inputs_free(&x);
    if (rc)
        exec_response_clear(resp);
    return rc;
}

void exec_response_clear(struct exec_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->stdout_text);
    free(resp->stderr_text);
    for (size_t i = 0; i < resp->nfiles; i++) {
        free(resp->files[i].name);
        free(resp->files[i].path);
    }
    free(resp->files);
    store_strings_free(resp->state_notes, resp->nstate_notes);
    memset(resp, 0, sizeof *resp);
}
