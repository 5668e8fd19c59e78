/* Unit tests of core/sessions and core/files on a real SQLite store and a real blob directory
 * in a temporary DATA_DIR, with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exec_service.h"
#include "core/files.h"
#include "core/sessions.h"
#include "util/xmalloc.h"

struct fixture {
    char dir[64];
    struct kiln_config *cfg;
    struct kiln_services svc;
    long long now;
};

static const char *fake_env(const char *name, void *arg)
{
    const char **kv = arg;
    for (; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static long long fake_clock(void *arg)
{
    return *(long long *)arg;
}

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    const char *env[] = {"SESSION_TTL_HOURS",
                         "1",
                         "MAX_SESSIONS_PER_ENTITY",
                         "2",
                         "MAX_FILE_SIZE_MB",
                         "1",
                         "MAX_TOTAL_FILE_SIZE_MB",
                         "2",
                         "MAX_FILES_PER_SESSION",
                         "3",
                         NULL};
    struct errbuf eb = {{0}};
    char *db;

    memcpy(fx->dir, "/tmp/kiln-sess-XXXXXX", sizeof "/tmp/kiln-sess-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    if (config_load(&fx->cfg, NULL, fake_env, env, &eb) != KILN_OK)
        return -1;
    fx->now = 1700000000000LL;
    fx->svc.cfg = fx->cfg;
    fx->svc.clock = fake_clock;
    fx->svc.clock_arg = &fx->now;
    db = xasprintf("%s/kiln.db", fx->dir);
    if (store_sqlite_open(db, &fx->svc.store, &eb) != KILN_OK ||
        blob_fs_open(fx->dir, &fx->svc.blob, &eb) != KILN_OK) {
        fprintf(stderr, "%s\n", eb.msg);
        return -1;
    }
    free(db);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    int st;
    pid_t pid;

    fx->svc.store->ops->close(fx->svc.store);
    fx->svc.blob->ops->close(fx->svc.blob);
    config_free(fx->cfg);
    pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", "--", fx->dir, (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    free(fx);
    return 0;
}

/* Upload data as name into sid; returns the error and fills *out on success. */
static enum kiln_err upload(struct kiln_services *svc, const char *sid, const char *name,
                            const char *data, size_t len, struct store_file *out, struct errbuf *eb)
{
    struct files_upload *up = NULL;
    enum kiln_err rc = files_upload_begin(svc, sid, name, strlen(name), false, NULL, &up, eb);

    if (rc)
        return rc;
    for (size_t off = 0; off < len; off += 4096) {
        size_t n = len - off < 4096 ? len - off : 4096;
        rc = files_upload_write(up, data + off, n, eb);
        if (rc) {
            files_upload_abort(up);
            return rc;
        }
    }
    return files_upload_finish(up, out, eb);
}

static void test_sessions_user_isolation(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session a = {0}, got = {0};
    struct store_file f = {0}, got_f = {0}, *list = NULL;
    struct files_download d;
    size_t n = 99;
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(svc, "alice", NULL, &a, &eb), KILN_OK);
    assert_int_equal(upload(svc, a.id, "secret.txt", "s3cr3t", 6, &f, &eb), KILN_OK);
    /* bob: the session does not exist for him, in every operation */
    assert_int_equal(sessions_get(svc, "bob", a.id, &got, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(files_list(svc, "bob", a.id, &list, &n, &eb), KILN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(files_get(svc, "bob", a.id, f.id, &got_f, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(files_open(svc, "bob", a.id, f.id, &d, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(files_delete(svc, "bob", a.id, f.id, &eb), KILN_ERR_NOT_FOUND);
    /* the same message as for a session that never existed: nothing leaks */
    assert_string_equal(eb.msg, "File not found");
    /* alice and an unscoped caller see it */
    assert_int_equal(files_list(svc, "alice", a.id, &list, &n, &eb), KILN_OK);
    assert_int_equal(n, 1);
    store_files_free(list, n);
    assert_int_equal(files_open(svc, "", a.id, f.id, &d, &eb), KILN_OK);
    files_download_close(&d);
    store_file_clear(&f);
    store_session_clear(&a);
}

static void test_sessions_choose_rules(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session a1 = {0}, a2 = {0}, b1 = {0}, got = {0}, a2x = {0};
    bool created = false;
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(svc, "alice", NULL, &a1, &eb), KILN_OK);
    assert_int_equal(sessions_create(svc, "alice", NULL, &a2, &eb), KILN_OK);
    assert_int_equal(sessions_create(svc, "bob", NULL, &b1, &eb), KILN_OK);
    /* explicit wins */
    const char *refs[] = {a1.id};
    assert_int_equal(sessions_choose(svc, "alice", NULL, a2.id, refs, 1, true, &got, &created, &eb),
                     KILN_OK);
    assert_string_equal(got.id, a2.id);
    assert_false(created);
    store_session_clear(&got);
    /* explicit unknown → first ref */
    assert_int_equal(sessions_choose(svc, "alice", NULL, "zzzzzzzzzzzzzzzzzzzzz", refs, 1, true,
                                     &got, &created, &eb),
                     KILN_OK);
    assert_string_equal(got.id, a1.id);
    store_session_clear(&got);
    /* another user's explicit session and refs are skipped: a new session */
    const char *brefs[] = {b1.id};
    assert_int_equal(
        sessions_choose(svc, "alice", NULL, b1.id, brefs, 1, true, &got, &created, &eb), KILN_OK);
    assert_true(created);
    assert_string_not_equal(got.id, b1.id);
    assert_string_equal(got.user_id, "alice");
    store_session_clear(&got);
    /* !insert: the new session is only prepared, stored by sessions_insert() (once) */
    assert_int_equal(
        sessions_choose(svc, "alice", "ent-1", NULL, NULL, 0, false, &got, &created, &eb), KILN_OK);
    assert_true(created);
    assert_true(ids_valid(got.id));
    assert_string_equal(got.entity_id, "ent-1");
    assert_int_equal(sessions_get(svc, "alice", got.id, &a2x, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(sessions_insert(svc, &got, &eb), KILN_OK);
    assert_int_equal(sessions_get(svc, "alice", got.id, &a2x, &eb), KILN_OK);
    assert_string_equal(a2x.entity_id, "ent-1");
    assert_int_equal(sessions_insert(svc, &got, &eb), KILN_ERR_CONFLICT);
    store_session_clear(&a2x);
    store_session_clear(&got);
    assert_int_equal(sessions_prepare(svc, NULL, "bad entity!", &got, &eb), KILN_ERR_INVALID);
    store_session_clear(&a1);
    store_session_clear(&a2);
    store_session_clear(&b1);
}

static void test_sessions_entity_cap_evicts_oldest_with_bytes(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session s[3];
    memset(s, 0, sizeof s);
    struct store_file f = {0};
    long long size;
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(svc, "u", "agent_x", &s[0], &eb), KILN_OK);
    assert_int_equal(upload(svc, s[0].id, "a.txt", "abc", 3, &f, &eb), KILN_OK);
    fx->now += 1000;
    assert_int_equal(sessions_create(svc, "u", "agent_x", &s[1], &eb), KILN_OK);
    fx->now += 1000;
    assert_int_equal(sessions_create(svc, "u", "agent_x", &s[2], &eb), KILN_OK);
    struct store_session got = {0};
    assert_int_equal(sessions_get(svc, "u", s[0].id, &got, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(svc->blob->ops->size(svc->blob, f.blob_key, &size, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(sessions_get(svc, "u", s[1].id, &got, &eb), KILN_OK);
    store_session_clear(&got);
    for (int i = 0; i < 3; i++)
        store_session_clear(&s[i]);
    store_file_clear(&f);
}

static void test_sessions_validate_entity(void **state)
{
    char long_id[42];
    (void)state;
    memset(long_id, 'a', 41);
    long_id[41] = '\0';
    assert_int_equal(sessions_validate_entity(NULL, NULL), KILN_OK);
    assert_int_equal(sessions_validate_entity("agent_abc-123", NULL), KILN_OK);
    assert_int_equal(sessions_validate_entity(long_id, NULL), KILN_ERR_INVALID);
    long_id[40] = '\0';
    assert_int_equal(sessions_validate_entity(long_id, NULL), KILN_OK);
    assert_int_equal(sessions_validate_entity("a b", NULL), KILN_ERR_INVALID);
    assert_int_equal(sessions_validate_entity("../x", NULL), KILN_ERR_INVALID);
}

static void test_sessions_ttl_sweep_removes_records_and_bytes(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session s = {0}, keep = {0}, got = {0};
    struct store_file f = {0};
    long long removed = 0, size;
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(svc, "u", NULL, &s, &eb), KILN_OK);
    assert_int_equal(upload(svc, s.id, "a.txt", "abc", 3, &f, &eb), KILN_OK);
    fx->now += 30 * 60 * 1000; /* 30 min later, keep is created/used */
    assert_int_equal(sessions_create(svc, "u", NULL, &keep, &eb), KILN_OK);
    fx->now += 31 * 60 * 1000; /* s is 61 min old: expired; keep is 31 min old */
    /* invisible at once, even before the sweeper runs */
    assert_int_equal(sessions_get(svc, "u", s.id, &got, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(sessions_sweep(svc, &removed, &eb), KILN_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(svc->blob->ops->size(svc->blob, f.blob_key, &size, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(sessions_get(svc, "u", keep.id, &got, &eb), KILN_OK);
    store_session_clear(&got);
    /* a use moves the expiry */
    fx->now += 50 * 60 * 1000;
    assert_int_equal(sessions_touch(svc, keep.id, &eb), KILN_OK);
    fx->now += 50 * 60 * 1000;
    assert_int_equal(sessions_sweep(svc, &removed, &eb), KILN_OK);
    assert_int_equal(removed, 0);
    store_session_clear(&s);
    store_session_clear(&keep);
    store_file_clear(&f);
}

static void test_files_upload_sanitises_hashes_and_reads_back(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session s = {0};
    struct store_file f = {0};
    struct files_download d;
    char buf[32] = {0};
    size_t got = 0;
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(svc, NULL, NULL, &s, &eb), KILN_OK);
    assert_int_equal(upload(svc, s.id, "../../my data.csv", "hello", 5, &f, &eb), KILN_OK);
    assert_string_equal(f.name, "_.._.._my_data.csv");
    assert_string_equal(f.original_name, "../../my data.csv");
    assert_string_equal(f.content_type, "text/csv");
    assert_int_equal(f.size, 5);
    /* sha256("hello") */
    assert_string_equal(f.sha256,
                        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    assert_true(ids_valid(f.id));
    assert_int_equal(files_open(svc, NULL, s.id, f.id, &d, &eb), KILN_OK);
    assert_int_equal(d.size, 5);
    assert_int_equal(files_read_at(svc, &d, 1, buf, sizeof buf, &got, &eb), KILN_OK);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "ello", 4);
    files_download_close(&d);
    assert_int_equal(files_delete(svc, NULL, s.id, f.id, &eb), KILN_OK);
    assert_int_equal(files_delete(svc, NULL, s.id, f.id, &eb), KILN_ERR_NOT_FOUND);
    store_file_clear(&f);
    store_session_clear(&s);
}

static void test_files_limits_name_the_setting(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session s = {0};
    struct store_file f = {0};
    struct store_totals t = {0};
    char *big = xcalloc(1, 1200 * 1024);
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(svc, NULL, NULL, &s, &eb), KILN_OK);
    /* > MAX_FILE_SIZE_MB (1) */
    assert_int_equal(upload(svc, s.id, "big.bin", big, 1200 * 1024, &f, &eb), KILN_ERR_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "MAX_FILE_SIZE_MB"));
    /* 900 KiB + 900 KiB fit MAX_TOTAL_FILE_SIZE_MB (2); a third does not */
    assert_int_equal(upload(svc, s.id, "a.bin", big, 900 * 1024, &f, &eb), KILN_OK);
    store_file_clear(&f);
    assert_int_equal(upload(svc, s.id, "b.bin", big, 900 * 1024, &f, &eb), KILN_OK);
    store_file_clear(&f);
    assert_int_equal(upload(svc, s.id, "c.bin", big, 900 * 1024, &f, &eb), KILN_ERR_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "MAX_TOTAL_FILE_SIZE_MB"));
    /* MAX_FILES_PER_SESSION (3) */
    assert_int_equal(upload(svc, s.id, "d.txt", "x", 1, &f, &eb), KILN_OK);
    store_file_clear(&f);
    assert_int_equal(upload(svc, s.id, "e.txt", "x", 1, &f, &eb), KILN_ERR_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "MAX_FILES_PER_SESSION"));
    /* refused uploads left no record behind */
    assert_int_equal(svc->store->ops->session_totals(svc->store, s.id, &t, &eb), KILN_OK);
    assert_int_equal(t.files, 3);
    free(big);
    store_session_clear(&s);
}

static enum kiln_err count_key(void *arg, const char *key)
{
    (void)key;
    (*(int *)arg)++;
    return KILN_OK;
}

static void test_sessions_recover_cleans_crash_leftovers(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session s = {0};
    struct store_file f = {0}, *list = NULL;
    struct files_upload *up = NULL;
    struct blob_writer *w = NULL;
    struct sessions_recovery r;
    size_t n = 0;
    int keys = 0;
    struct errbuf eb = {{0}};

    assert_int_equal(sessions_create(svc, NULL, NULL, &s, &eb), KILN_OK);
    assert_int_equal(upload(svc, s.id, "kept.txt", "keep", 4, &f, &eb), KILN_OK);
    /* an upload interrupted by the "crash": pending record + temporary */
    assert_int_equal(files_upload_begin(svc, s.id, "half.txt", 8, false, NULL, &up, &eb), KILN_OK);
    assert_int_equal(files_upload_write(up, "half", 4, &eb), KILN_OK);
    /* bytes committed but whose record never made it (an output stored just before a crash) */
    assert_int_equal(svc->blob->ops->write_begin(svc->blob, "orphanorphanorphan123/x", &w, &eb),
                     KILN_OK);
    assert_int_equal(svc->blob->ops->write(w, "o", 1, &eb), KILN_OK);
    assert_int_equal(svc->blob->ops->write_commit(w, &eb), KILN_OK);

    assert_int_equal(sessions_recover(svc, &r, &eb), KILN_OK);
    assert_int_equal(r.temp_files, 1);
    assert_int_equal(r.pending_records, 1);
    assert_int_equal(r.orphan_blobs, 1);
    files_upload_abort(up); /* the dead process's state; everything it refers to is gone */
    assert_int_equal(svc->blob->ops->list(svc->blob, count_key, &keys, &eb), KILN_OK);
    assert_int_equal(keys, 1);
    assert_int_equal(files_list(svc, NULL, s.id, &list, &n, &eb), KILN_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "kept.txt");
    store_files_free(list, n);
    store_file_clear(&f);
    store_session_clear(&s);
}

/* Deterministic content of upload number i. */
static size_t crash_content(unsigned i, char *buf, size_t cap)
{
    size_t n = ((size_t)i * 7919u) % cap;
    for (size_t j = 0; j < n; j++)
        buf[j] = (char)((i + j * 31u) & 0xff);
    return n;
}

/* The child: upload forever on its own connection (SQLite connections must not cross a
 * fork), reporting each acknowledged file on fd. */
static void crash_child(struct kiln_services *parent, const char *dir, const char *sid, int fd)
{
    struct kiln_services child = *parent;
    struct kiln_services *svc = &child;
    char *buf = xmalloc(300000);
    char *db = xasprintf("%s/kiln.db", dir);
    struct errbuf eb = {{0}};

    if (store_sqlite_open(db, &child.store, &eb) != KILN_OK)
        _exit(2);

    for (unsigned i = 0;; i++) {
        struct store_file f = {0};
        char name[32], line[64];
        size_t n = crash_content(i, buf, 300000);
        int len;

        snprintf(name, sizeof name, "f%u.bin", i);
        if (upload(svc, sid, name, buf, n, &f, &eb) != KILN_OK)
            _exit(3);
        len = snprintf(line, sizeof line, "%s %u\n", f.id, i);
        if (write(fd, line, (size_t)len) != len)
            _exit(4);
        store_file_clear(&f);
    }
}

static void test_crash_during_uploads_keeps_every_acknowledged_file(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    struct store_session s = {0};
    struct sessions_recovery r;
    struct store_totals t = {0};
    char *buf = xmalloc(300000), *got = xmalloc(300000);
    char acks[65536];
    size_t alen = 0, nacked = 0;
    int p[2], status, keys = 0;
    struct errbuf eb = {{0}};
    pid_t pid;

    fx->cfg->max_file_size_mb = 10;
    fx->cfg->max_total_file_size_mb = 100000;
    fx->cfg->max_files_per_session = 100000;
    assert_int_equal(sessions_create(svc, NULL, NULL, &s, &eb), KILN_OK);
    assert_int_equal(pipe(p), 0);
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        crash_child(svc, fx->dir, s.id, p[1]);
    }
    close(p[1]);
    usleep(400000);
    kill(pid, SIGKILL); /* mid-upload, most likely */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    for (ssize_t n; (n = read(p[0], acks + alen, sizeof acks - 1 - alen)) > 0;)
        alen += (size_t)n;
    acks[alen] = '\0';
    close(p[0]);

    /* "restart": a fresh connection on the same files, then the start-up recovery (the old
     * connection never saw the child's writes, so it is only closed) */
    svc->store->ops->close(svc->store);
    char *db = xasprintf("%s/kiln.db", fx->dir);
    assert_int_equal(store_sqlite_open(db, &svc->store, &eb), KILN_OK);
    free(db);
    assert_int_equal(sessions_recover(svc, &r, &eb), KILN_OK);

    for (char *line = acks, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        char fid[IDS_BUF];
        unsigned idx;
        struct files_download d;
        size_t want, have = 0, n = 0;

        *nl = '\0';
        assert_int_equal(sscanf(line, "%21s %u", fid, &idx), 2);
        want = crash_content(idx, buf, 300000);
        assert_int_equal(files_open(svc, NULL, s.id, fid, &d, &eb), KILN_OK);
        assert_int_equal(d.size, (long long)want);
        while (have < want &&
               files_read_at(svc, &d, (long long)have, got + have, want - have, &n, &eb) ==
                   KILN_OK &&
               n > 0)
            have += n;
        assert_int_equal(have, want);
        assert_memory_equal(got, buf, want);
        files_download_close(&d);
        nacked++;
    }
    assert_true(nacked > 0);
    /* nothing orphaned: every stored byte belongs to a complete record, no temporaries */
    assert_int_equal(svc->store->ops->session_totals(svc->store, s.id, &t, &eb), KILN_OK);
    assert_int_equal(svc->blob->ops->list(svc->blob, count_key, &keys, &eb), KILN_OK);
    assert_int_equal(keys, t.files);
    assert_true(t.files >= (long long)nacked);
    assert_true(t.files <= (long long)nacked + 1); /* one finished but not yet reported */
    fprintf(stderr,
            "crash test: %zu acknowledged, recovery removed %lld temporaries, %lld "
            "pending records, %lld orphans\n",
            nacked, r.temp_files, r.pending_records, r.orphan_blobs);
    free(buf);
    free(got);
    store_session_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions_user_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_choose_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_entity_cap_evicts_oldest_with_bytes, setup,
                                        teardown),
        cmocka_unit_test(test_sessions_validate_entity),
        cmocka_unit_test_setup_teardown(test_sessions_ttl_sweep_removes_records_and_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_files_upload_sanitises_hashes_and_reads_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_files_limits_name_the_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_recover_cleans_crash_leftovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_during_uploads_keeps_every_acknowledged_file,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
