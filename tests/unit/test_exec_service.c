/* Unit tests of core/exec_service: validation, file refs of both generations, isolation, the
 * admission gate, outputs with modified_from/inherited — against a scripted exec backend (the
 * port's contract), and one round trip through the real local backend and sandbox when the host
 * allows sandboxes. Real SQLite and a real blob directory in a temporary DATA_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exec_service.h"
#include "core/files.h"
#include "core/sessions.h"
#include "util/xmalloc.h"

/* --- a scripted exec backend ----------------------------------------------------------------- */

struct fake_exec {
    struct exec base;
    struct blob *blob;
    struct exec_job seen; /* copy of the last job (pointers dangling after run) */
    long long seen_wall_ms;
    size_t seen_ninputs;
    char seen_lang[16];
    const char *write_name; /* when set: store one output with this name */
    long modify_input;      /* when >= 0: that output modifies this input */
    bool keep_inputs;       /* report every input unchanged */
    const char *stdout_text;
    pthread_mutex_t mu; /* held by the test to block runs */
};

static enum kiln_err fake_run(struct exec *ex, const struct exec_job *job, struct exec_result *res,
                              struct errbuf *eb)
{
    struct fake_exec *fe = (struct fake_exec *)ex;
    struct blob_writer *w = NULL;
    enum kiln_err rc;

    pthread_mutex_lock(&fe->mu);
    pthread_mutex_unlock(&fe->mu);
    fe->seen_wall_ms = job->limits.wall_ms;
    fe->seen_ninputs = job->ninputs;
    snprintf(fe->seen_lang, sizeof fe->seen_lang, "%s", job->lang);
    res->input_unchanged = xcalloc(job->ninputs + 1, sizeof *res->input_unchanged);
    for (size_t i = 0; i < job->ninputs; i++)
        res->input_unchanged[i] = fe->keep_inputs;
    res->run.status = SBX_OK;
    res->run.out = xstrdup(fe->stdout_text != NULL ? fe->stdout_text : "");
    res->run.out_len = strlen(res->run.out);
    res->run.err = xstrdup("");
    if (fe->write_name != NULL && job->nkeys > 0) {
        rc = fe->blob->ops->write_begin(fe->blob, job->out_keys[0], &w, eb);
        if (rc)
            return rc;
        fe->blob->ops->write(w, "out", 3, eb);
        rc = fe->blob->ops->write_commit(w, eb);
        if (rc)
            return rc;
        res->outputs = xcalloc(1, sizeof *res->outputs);
        res->outputs[0] = (struct exec_output){.key_index = 0,
                                               .name = xstrdup(fe->write_name),
                                               .size = 3,
                                               .input_index = fe->modify_input};
        res->noutputs = 1;
    }
    return KILN_OK;
}

static void fake_close(struct exec *ex)
{
    (void)ex;
}

static const struct exec_ops fake_ops = {.name = "fake", .close = fake_close, .run = fake_run};

/* --- fixture -----------------------------------------------------------------------------------
 */

struct fixture {
    char dir[64];
    struct kiln_config *cfg;
    struct kiln_services svc;
    struct fake_exec fe;
};

static const char *fake_env(const char *name, void *arg)
{
    const char **kv = arg;
    for (; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static int setup_with(void **state, const char **env)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    struct errbuf eb = {{0}};
    char *db;

    memcpy(fx->dir, "/tmp/kiln-exec-XXXXXX", sizeof "/tmp/kiln-exec-XXXXXX");
    if (mkdtemp(fx->dir) == NULL || config_load(&fx->cfg, NULL, fake_env, env, &eb) != KILN_OK)
        return -1;
    fx->svc.cfg = fx->cfg;
    db = xasprintf("%s/kiln.db", fx->dir);
    if (store_sqlite_open(db, &fx->svc.store, &eb) != KILN_OK ||
        blob_fs_open(fx->dir, &fx->svc.blob, &eb) != KILN_OK)
        return -1;
    free(db);
    fx->fe.base.ops = &fake_ops;
    fx->fe.blob = fx->svc.blob;
    fx->fe.modify_input = -1;
    pthread_mutex_init(&fx->fe.mu, NULL);
    fx->svc.exec = &fx->fe.base;
    fx->svc.gate =
        exec_gate_new(fx->cfg->max_concurrent_executions, fx->cfg->max_queued_executions);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    static const char *env[] = {"MAX_EXECUTION_TIME",
                                "10",
                                "MAX_CONCURRENT_EXECUTIONS",
                                "1",
                                "MAX_QUEUED_EXECUTIONS",
                                "0",
                                NULL};
    return setup_with(state, env);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    int st;
    pid_t pid;

    exec_gate_free(fx->svc.gate);
    if (fx->svc.exec != &fx->fe.base)
        fx->svc.exec->ops->close(fx->svc.exec);
    sbx_ctx_free(fx->svc.sbx);
    fx->svc.store->ops->close(fx->svc.store);
    fx->svc.blob->ops->close(fx->svc.blob);
    config_free(fx->cfg);
    pthread_mutex_destroy(&fx->fe.mu);
    pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", "--", fx->dir, (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    free(fx);
    return 0;
}

static struct exec_request req_of(const char *lang, const char *code)
{
    return (struct exec_request){
        .lang = lang, .code = code, .code_len = strlen(code), .cancel_fd = -1};
}

static void upload(struct kiln_services *svc, const char *sid, const char *name, const char *data,
                   struct store_file *out)
{
    struct files_upload *up = NULL;
    struct errbuf eb = {{0}};

    assert_int_equal(files_upload_begin(svc, sid, name, strlen(name), false, NULL, &up, &eb),
                     KILN_OK);
    assert_int_equal(files_upload_write(up, data, strlen(data), &eb), KILN_OK);
    assert_int_equal(files_upload_finish(up, out, &eb), KILN_OK);
}

/* --- tests ----------------------------------------------------------------------------------- */

static void test_exec_rejects_empty_code_and_unknown_lang(void **state)
{
    struct fixture *fx = *state;
    struct exec_response resp;
    struct exec_error_info info;
    struct exec_request r = req_of("py", "  \n\t ");
    struct errbuf eb = {{0}};

    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_ERR_INVALID);
    assert_string_equal(info.field, "code");
    assert_string_equal(info.code, "empty_code");
    r = req_of("cobol", "x");
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_ERR_INVALID);
    assert_string_equal(info.code, "unsupported_language");
    r = req_of("py", "x");
    r.entity_id = "bad entity!";
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_ERR_INVALID);
    assert_string_equal(info.field, "entity_id");
}

static void test_exec_lang_case_insensitive_timeout_clamped_stdout_newline(void **state)
{
    struct fixture *fx = *state;
    struct exec_response resp;
    struct exec_error_info info;
    struct exec_request r = req_of("PY", "print(1)");
    struct store_session made = {0};
    struct errbuf eb = {{0}};

    fx->fe.stdout_text = "1";
    r.timeout_ms = 999999;
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_OK);
    assert_string_equal(fx->fe.seen_lang, "py");
    assert_int_equal(fx->fe.seen_wall_ms, 10000);
    assert_string_equal(resp.stdout_text, "1\n");
    assert_string_equal(resp.status, "ok");
    assert_true(ids_valid(resp.session_id));
    /* the new session's row (stored while the program ran) is there when the answer is */
    assert_int_equal(sessions_get(&fx->svc, NULL, resp.session_id, &made, &eb), KILN_OK);
    store_session_clear(&made);
    exec_response_clear(&resp);
    r.timeout_ms = 2500;
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_OK);
    assert_int_equal(fx->fe.seen_wall_ms, 2500);
    exec_response_clear(&resp);
}

static void test_exec_refuses_file_ref_of_another_user(void **state)
{
    struct fixture *fx = *state;
    struct store_session s = {0};
    struct store_file f = {0};
    struct exec_response resp;
    struct exec_error_info info;
    struct exec_request r = req_of("py", "print(1)");
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(&fx->svc, "alice", NULL, &s, &eb), KILN_OK);
    upload(&fx->svc, s.id, "secret.csv", "a,b", &f);
    struct exec_file_ref ref = {.id = f.id, .session_id = s.id, .name = "secret.csv"};
    r.user_id = "bob";
    r.files = &ref;
    r.nfiles = 1;
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_ERR_FORBIDDEN);
    assert_null(strstr(eb.msg, "secret"));
    store_file_clear(&f);
    store_session_clear(&s);
}

static void test_exec_uses_ref_session_and_reports_modified_and_inherited(void **state)
{
    struct fixture *fx = *state;
    struct store_session s = {0};
    struct store_file in1 = {0}, in2 = {0}, got = {0};
    struct exec_response resp;
    struct exec_error_info info;
    struct exec_request r = req_of("py", "x");
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(&fx->svc, "alice", NULL, &s, &eb), KILN_OK);
    upload(&fx->svc, s.id, "data.csv", "1,2", &in1);
    upload(&fx->svc, s.id, "other.txt", "x", &in2);
    /* gen 1 ref by id; gen 2 ref known only by name (the API maps storage_session_id) */
    struct exec_file_ref refs[2] = {
        {.id = in1.id, .session_id = s.id, .name = "data.csv"},
        {.id = "nonexistentnonexisten", .session_id = s.id, .name = "other.txt"}};
    r.user_id = "alice";
    r.files = refs;
    r.nfiles = 2;
    fx->fe.write_name = "data.csv";
    fx->fe.modify_input = 0;
    fx->fe.keep_inputs = false;
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_OK);
    assert_int_equal(fx->fe.seen_ninputs, 2);
    assert_string_equal(resp.session_id, s.id);
    assert_int_equal(resp.nfiles, 1);
    assert_true(resp.files[0].modified);
    assert_string_equal(resp.files[0].modified_from_id, in1.id);
    assert_string_equal(resp.files[0].modified_from_session, s.id);
    assert_string_not_equal(resp.files[0].id, in1.id);
    assert_string_equal(resp.files[0].path, "/mnt/data/data.csv");
    /* the new file is a record of the session, downloadable */
    assert_int_equal(files_get(&fx->svc, "alice", s.id, resp.files[0].id, &got, &eb), KILN_OK);
    assert_int_equal(got.origin, STORE_FILE_OUTPUT);
    assert_int_equal(got.size, 3);
    store_file_clear(&got);
    exec_response_clear(&resp);

    fx->fe.write_name = NULL;
    fx->fe.keep_inputs = true;
    /* gen 1: untouched inputs are not listed */
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_OK);
    assert_int_equal(resp.nfiles, 0);
    exec_response_clear(&resp);
    /* gen 2: echoed as inherited, with their own id and session */
    r.echo_inherited = true;
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_OK);
    assert_int_equal(resp.nfiles, 2);
    assert_true(resp.files[0].inherited);
    assert_string_equal(resp.files[0].id, in1.id);
    assert_true(resp.files[1].inherited);
    assert_string_equal(resp.files[1].id, in2.id);
    exec_response_clear(&resp);
    store_file_clear(&in1);
    store_file_clear(&in2);
    store_session_clear(&s);
}

static void test_exec_output_names_are_resanitised(void **state)
{
    struct fixture *fx = *state;
    struct exec_response resp;
    struct exec_error_info info;
    struct exec_request r = req_of("py", "x");
    struct errbuf eb = {{0}};

    fx->fe.write_name = "sub dir/r\xc3\xa9sult (1).png";
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_OK);
    assert_int_equal(resp.nfiles, 1);
    assert_string_equal(resp.files[0].name, "sub_dir/r_sult__1_.png");
    exec_response_clear(&resp);
}

struct bg {
    struct fixture *fx;
    enum kiln_err rc;
};

static void *bg_run(void *arg)
{
    struct bg *b = arg;
    struct exec_response resp;
    struct exec_error_info info;
    struct exec_request r = req_of("py", "x");
    struct errbuf eb = {{0}};

    b->rc = exec_service_run(&b->fx->svc, &r, &resp, &info, &eb);
    exec_response_clear(&resp);
    return NULL;
}

static void test_exec_gate_full_is_rate_limited_with_retry_after(void **state)
{
    struct fixture *fx = *state;
    struct exec_response resp;
    struct exec_error_info info;
    struct exec_request r = req_of("py", "x");
    struct bg b = {.fx = fx};
    long long running = 0, queued = 0;
    pthread_t th;
    struct errbuf eb = {{0}};

    pthread_mutex_lock(&fx->fe.mu); /* the next run blocks inside the backend */
    pthread_create(&th, NULL, bg_run, &b);
    for (int i = 0; i < 200 && running == 0; i++) {
        usleep(10000);
        exec_gate_stats(fx->svc.gate, &running, &queued);
    }
    assert_int_equal(running, 1);
    /* one slot, no queue: refused at once */
    assert_int_equal(exec_service_run(&fx->svc, &r, &resp, &info, &eb), KILN_ERR_RATE_LIMITED);
    assert_true(info.retry_after_s >= 1);
    assert_non_null(strstr(eb.msg, "MAX_CONCURRENT_EXECUTIONS"));
    pthread_mutex_unlock(&fx->fe.mu);
    pthread_join(th, NULL);
    assert_int_equal(b.rc, KILN_OK);
    exec_gate_stats(fx->svc.gate, &running, &queued);
    assert_int_equal(running, 0);
}

static void *bg_release(void *arg)
{
    usleep(50000);
    exec_gate_release(arg);
    return NULL;
}

/* The API's admission: places up to MAX_CONCURRENT + MAX_QUEUED, then 429 with Retry-After;
 * wait_idle returns once every place is released. */
static void test_exec_gate_reserve_release_wait_idle(void **state)
{
    struct fixture *fx = *state;
    struct errbuf eb = {{0}};
    long long retry = 0;
    pthread_t th;

    /* setup_queue: 1 running + 4 queued */
    for (int i = 0; i < 5; i++)
        assert_int_equal(exec_gate_reserve(fx->svc.gate, &retry, &eb), KILN_OK);
    assert_int_equal(exec_gate_reserve(fx->svc.gate, &retry, &eb), KILN_ERR_RATE_LIMITED);
    assert_true(retry >= 1);
    assert_non_null(strstr(eb.msg, "MAX_QUEUED_EXECUTIONS"));
    exec_gate_release(fx->svc.gate);
    assert_int_equal(exec_gate_reserve(fx->svc.gate, &retry, &eb), KILN_OK);
    for (int i = 0; i < 4; i++)
        exec_gate_release(fx->svc.gate);
    pthread_create(&th, NULL, bg_release, fx->svc.gate);
    exec_gate_wait_idle(fx->svc.gate); /* returns only after the last release */
    pthread_join(th, NULL);
    assert_int_equal(exec_gate_reserve(fx->svc.gate, &retry, &eb), KILN_OK);
    exec_gate_release(fx->svc.gate);
}

/* Jobs of exec_gate_spawn(): each records its thread's kernel id and waits until `want` jobs
 * are inside at once (or 5 s pass), then releases its place. */
struct spawn_probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct exec_gate *gate;
    int inside, want, done, max_inside;
    pid_t tids[8];
};

static void spawn_job(void *arg)
{
    struct spawn_probe *p = arg;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&p->mu);
    p->inside++;
    if (p->inside > p->max_inside)
        p->max_inside = p->inside;
    pthread_cond_broadcast(&p->cv);
    while (p->inside < p->want && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0)
        ;
    p->tids[p->done++] = gettid();
    pthread_mutex_unlock(&p->mu);
    exec_gate_release(p->gate);
}

static void spawn_batch(struct spawn_probe *p, int n)
{
    struct errbuf eb = {{0}};
    long long retry = 0;

    p->inside = p->done = 0;
    p->want = n;
    for (int i = 0; i < n; i++) {
        assert_int_equal(exec_gate_reserve(p->gate, &retry, &eb), KILN_OK);
        assert_int_equal(exec_gate_spawn(p->gate, spawn_job, p, &eb), KILN_OK);
    }
    exec_gate_wait_idle(p->gate);
    assert_int_equal(p->done, n);
    /* the place is released just before the thread turns idle: wait for that */
    for (int i = 0; i < 500 && exec_gate_idle_threads(p->gate) == 0; i++)
        usleep(10000);
    assert_int_equal(exec_gate_idle_threads(p->gate), 1); /* at most MAX_CONCURRENT kept */
}

/* The API's threads: every admitted job runs at once on a thread of its own (the queueing is
 * the gate's, inside the job), and a later job runs on a thread an earlier one left idle. */
static void test_exec_gate_spawn_runs_at_once_and_reuses_threads(void **state)
{
    struct fixture *fx = *state;
    struct spawn_probe p = {.gate = fx->svc.gate};
    pid_t first, burst[4];
    bool kept = false;

    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    spawn_batch(&p, 1);
    first = p.tids[0];
    assert_int_not_equal(first, gettid());
    spawn_batch(&p, 1); /* the same thread, idle since the first job */
    assert_int_equal(p.tids[0], first);
    /* setup_queue: 1 running + 4 queued places; 4 jobs are inside together (on 4 threads) */
    p.max_inside = 0;
    spawn_batch(&p, 4);
    assert_int_equal(p.max_inside, 4);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < i; k++)
            assert_int_not_equal(p.tids[i], p.tids[k]);
    memcpy(burst, p.tids, sizeof burst);
    /* one of them stayed idle (MAX_CONCURRENT_EXECUTIONS = 1) and takes the next job */
    spawn_batch(&p, 1);
    for (int i = 0; i < 4; i++)
        kept = kept || p.tids[0] == burst[i];
    assert_true(kept);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    /* teardown's exec_gate_free() waits for the idle thread to leave */
}

static int setup_queue(void **state)
{
    static const char *env[] = {"MAX_CONCURRENT_EXECUTIONS", "1", "MAX_QUEUED_EXECUTIONS", "4",
                                NULL};
    return setup_with(state, env);
}

static void test_exec_gate_queues_then_runs(void **state)
{
    struct fixture *fx = *state;
    struct bg b[4];
    pthread_t th[4];
    long long running = 0, queued = 0;

    pthread_mutex_lock(&fx->fe.mu);
    for (int i = 0; i < 4; i++) {
        b[i] = (struct bg){.fx = fx};
        pthread_create(&th[i], NULL, bg_run, &b[i]);
    }
    for (int i = 0; i < 300 && queued < 3; i++) {
        usleep(10000);
        exec_gate_stats(fx->svc.gate, &running, &queued);
    }
    assert_int_equal(running, 1);
    assert_int_equal(queued, 3);
    pthread_mutex_unlock(&fx->fe.mu);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(b[i].rc, KILN_OK);
    }
}

/* --- the real local backend ------------------------------------------------------------------- */

static int setup_real(void **state)
{
    static const char *env[] = {"MAX_EXECUTION_TIME", "20", "SANDBOX_RUN_DIR", "/run/kiln-test",
                                NULL};
    struct fixture *fx;
    struct sbx_ctx_opts opts = {0};
    struct errbuf eb = {{0}};

    if (setup_with(state, env) != 0)
        return -1;
    fx = *state;
    opts.run_dir = geteuid() == 0 ? "/run/kiln-test" : "/tmp/kiln-test-run";
    opts.uid_base = 210000;
    opts.slots = 2;
    if (sbx_ctx_new(&fx->svc.sbx, &opts, &eb) != KILN_OK) {
        fprintf(stderr, "no sandbox on this host (%s): the real round trip is skipped\n", eb.msg);
        return 0;
    }
    if (exec_local_new(fx->svc.sbx, fx->svc.blob, &fx->svc.exec, &eb) != KILN_OK)
        return -1;
    return 0;
}

/* Run on the real sandbox, printing the reason of a failure. */
static enum kiln_err run_real(struct fixture *fx, const struct exec_request *r,
                              struct exec_response *resp)
{
    struct exec_error_info info;
    struct errbuf eb = {{0}};
    enum kiln_err rc = exec_service_run(&fx->svc, r, resp, &info, &eb);

    if (rc)
        fprintf(stderr, "exec: %s\n", eb.msg);
    return rc;
}

static void test_exec_real_sandbox_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct store_session s = {0};
    struct store_file in = {0}, keep = {0}, got = {0};
    struct files_download d;
    struct exec_response resp;
    char buf[64] = {0};
    size_t n = 0;
    struct errbuf eb = {{0}};
    const char *code = "import os, sys\n"
                       "print(open('data.csv').read().strip(), sys.argv[1])\n"
                       "open('data.csv', 'a').write('3,4\\n')\n"
                       "os.makedirs('charts', exist_ok=True)\n"
                       "open('charts/out.txt', 'w').write('made')\n"
                       "open('.hidden', 'w').write('no')\n"
                       "os.makedirs('__pycache__', exist_ok=True)\n"
                       "open('__pycache__/x.pyc', 'w').write('no')\n"
                       "os.symlink('/etc/passwd', 'link.txt')\n"
                       "os.mkfifo('pipe')\n"
                       "open('h1.txt', 'w').write('h')\n"
                       "os.link('h1.txt', 'h2.txt')\n";
    const char *args[] = {"hello"};

    if (fx->svc.sbx == NULL)
        skip();
    assert_int_equal(sessions_create(&fx->svc, "alice", NULL, &s, &eb), KILN_OK);
    upload(&fx->svc, s.id, "data.csv", "1,2\n", &in);
    upload(&fx->svc, s.id, "keep.txt", "same", &keep);
    struct exec_file_ref refs[2] = {{.id = in.id, .session_id = s.id},
                                    {.id = keep.id, .session_id = s.id}};
    struct exec_request r = req_of("py", code);
    r.user_id = "alice";
    r.files = refs;
    r.nfiles = 2;
    r.args = args;
    r.nargs = 1;
    r.echo_inherited = true;
    assert_int_equal(run_real(fx, &r, &resp), KILN_OK);
    assert_string_equal(resp.status, "ok");
    assert_string_equal(resp.stdout_text, "1,2 hello\n");
    assert_string_equal(resp.session_id, s.id);
    /* charts/out.txt (new), data.csv (modified), keep.txt (inherited); never code.py, .hidden,
     * __pycache__, the symlink, the FIFO or the hard-linked pair */
    assert_int_equal(resp.nfiles, 3);
    assert_string_equal(resp.files[0].name, "charts/out.txt");
    assert_false(resp.files[0].modified);
    assert_string_equal(resp.files[1].name, "data.csv");
    assert_true(resp.files[1].modified);
    assert_string_equal(resp.files[1].modified_from_id, in.id);
    assert_string_equal(resp.files[2].name, "keep.txt");
    assert_true(resp.files[2].inherited);
    assert_int_equal(files_open(&fx->svc, "alice", s.id, resp.files[1].id, &d, &eb), KILN_OK);
    assert_int_equal(files_read_at(&fx->svc, &d, 0, buf, sizeof buf, &n, &eb), KILN_OK);
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "1,2\n3,4\n", 8);
    files_download_close(&d);
    assert_int_equal(files_get(&fx->svc, "alice", s.id, resp.files[1].id, &got, &eb), KILN_OK);
    assert_int_equal(got.size, 8);
    store_file_clear(&got);
    exec_response_clear(&resp);

    /* a timeout is a result, with the reason in stderr */
    struct exec_request t = req_of("py", "import time\ntime.sleep(30)\n");
    t.timeout_ms = 1000;
    assert_int_equal(run_real(fx, &t, &resp), KILN_OK);
    assert_string_equal(resp.status, "timeout");
    assert_true(resp.stderr_len > 0);
    exec_response_clear(&resp);
    store_file_clear(&in);
    store_file_clear(&keep);
    store_session_clear(&s);
}

static void *cancel_later(void *arg)
{
    usleep(500000);
    if (write(*(int *)arg, "x", 1) != 1)
        abort();
    return NULL;
}

static void test_exec_real_client_gone_kills_the_run(void **state)
{
    struct fixture *fx = *state;
    struct exec_response resp;
    struct exec_request r = req_of("py", "import time\ntime.sleep(15)\nprint('late')\n");
    pthread_t th;
    int p[2];
    long long t0;
    struct timespec ts;

    if (fx->svc.sbx == NULL)
        skip();
    assert_int_equal(pipe(p), 0);
    r.cancel_fd = p[0];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = ts.tv_sec;
    pthread_create(&th, NULL, cancel_later, &p[1]);
    assert_int_equal(run_real(fx, &r, &resp), KILN_OK);
    pthread_join(th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    assert_string_equal(resp.status, "killed");
    assert_true(ts.tv_sec - t0 < 10);
    assert_null(strstr(resp.stdout_text, "late"));
    exec_response_clear(&resp);
    close(p[0]);
    close(p[1]);
}

static void test_services_open_refuses_backends_not_built(void **state)
{
    char dir[] = "/tmp/kiln-svc-XXXXXX";
    const char *env[] = {"STORE", "redis", "DATA_DIR", dir, NULL};
    struct kiln_config *cfg = NULL;
    struct kiln_services *svc = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    assert_int_equal(services_open(cfg, &svc, &eb), KILN_ERR_UNAVAILABLE);
    assert_non_null(strstr(eb.msg, "STORE=redis"));
    assert_null(svc);
    config_free(cfg);
    rmdir(dir);
}

static void test_services_open_recovers_and_runs(void **state)
{
    char dir[] = "/tmp/kiln-svc-XXXXXX";
    char *blobs, *tmp;
    const char *env[] = {"DATA_DIR",
                         dir,
                         "SANDBOX_RUN_DIR",
                         "/run/kiln-test-svc",
                         "SANDBOX_UID_BASE",
                         "220000",
                         "MAX_CONCURRENT_EXECUTIONS",
                         "2",
                         NULL};
    struct kiln_config *cfg = NULL;
    struct kiln_services *svc = NULL;
    struct errbuf eb = {{0}};
    struct stat st;
    int status;
    pid_t pid;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    /* a temporary left by a "crash" of a previous server */
    blobs = xasprintf("%s/blobs/AAAAAAAAAAAAAAAAAAAAA", dir);
    tmp = xasprintf("%s/.tmp.x.0", blobs);
    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    char *top = xasprintf("%s/blobs", dir);
    assert_int_equal(mkdir(top, 0700), 0);
    assert_int_equal(mkdir(blobs, 0700), 0);
    free(top);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fclose(f);
    if (services_open(cfg, &svc, &eb) != KILN_OK) {
        fprintf(stderr, "services_open: %s (skipped: no sandbox here)\n", eb.msg);
        config_free(cfg);
        free(tmp);
        free(blobs);
        skip();
    }
    assert_int_equal(stat(tmp, &st), -1); /* recovery removed it */
    assert_non_null(svc->sweeper);        /* SESSION_TTL_HOURS defaults to 24 */
    assert_string_equal(svc->store->ops->name, "sqlite");
    assert_string_equal(svc->blob->ops->name, "fs");
    assert_string_equal(svc->exec->ops->name, "local");
    services_close(svc);
    config_free(cfg);
    free(tmp);
    free(blobs);
    pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exec_rejects_empty_code_and_unknown_lang, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_lang_case_insensitive_timeout_clamped_stdout_newline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_refuses_file_ref_of_another_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_uses_ref_session_and_reports_modified_and_inherited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_output_names_are_resanitised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_gate_full_is_rate_limited_with_retry_after, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_exec_gate_queues_then_runs, setup_queue, teardown),
        cmocka_unit_test_setup_teardown(test_exec_gate_reserve_release_wait_idle, setup_queue,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_exec_gate_spawn_runs_at_once_and_reuses_threads,
                                        setup_queue, teardown),
        cmocka_unit_test_setup_teardown(test_exec_real_sandbox_round_trip, setup_real, teardown),
        cmocka_unit_test_setup_teardown(test_exec_real_client_gone_kills_the_run, setup_real,
                                        teardown),
        cmocka_unit_test(test_services_open_refuses_backends_not_built),
        cmocka_unit_test(test_services_open_recovers_and_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
