/* Unit tests of the SQLite store backend on real database files in temporary directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "util/xmalloc.h"

struct fixture {
    char dir[64];
    char *path;
    struct store *st;
};

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    struct errbuf eb = {{0}};

    memcpy(fx->dir, "/tmp/kiln-store-XXXXXX", sizeof "/tmp/kiln-store-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    fx->path = xasprintf("%s/kiln.db", fx->dir);
    if (store_sqlite_open(fx->path, &fx->st, &eb) != KILN_OK) {
        fprintf(stderr, "%s\n", eb.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char *cmd[] = {"kiln.db", "kiln.db-wal", "kiln.db-shm"};

    if (fx->st != NULL)
        fx->st->ops->close(fx->st);
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", fx->dir, cmd[i]);
        unlink(p);
        free(p);
    }
    rmdir(fx->dir);
    free(fx->path);
    free(fx);
    return 0;
}

static void make_session(struct store *st, const char *id, const char *user, const char *entity,
                         long long active, long long max_per_entity, char ***evicted,
                         size_t *nevicted)
{
    struct store_session s = {0};
    struct errbuf eb = {{0}};

    memcpy(s.id, id, IDS_BUF);
    s.user_id = (char *)user;
    s.entity_id = (char *)entity;
    s.created_ms = active;
    s.active_ms = active;
    s.expires_ms = active + 1000;
    assert_int_equal(st->ops->session_create(st, &s, max_per_entity, evicted, nevicted, &eb),
                     KILN_OK);
}

static struct store_file file_of(const char *sid, const char *fid, const char *name)
{
    struct store_file f = {0};
    memcpy(f.session_id, sid, IDS_BUF);
    memcpy(f.id, fid, IDS_BUF);
    f.name = (char *)name;
    f.original_name = (char *)name;
    f.content_type = (char *)"text/plain";
    f.blob_key = xasprintf("%s/%s", sid, fid);
    f.kind = (char *)"";
    f.origin = STORE_FILE_UPLOAD;
    f.created_ms = 1;
    return f;
}

#define SID_A "AAAAAAAAAAAAAAAAAAAAA"
#define SID_B "BBBBBBBBBBBBBBBBBBBBB"
#define SID_C "CCCCCCCCCCCCCCCCCCCCC"
#define FID_1 "111111111111111111111"
#define FID_2 "222222222222222222222"
#define FID_3 "333333333333333333333"

static void test_store_wal_strict_and_schema_version(void **state)
{
    struct fixture *fx = *state;
    sqlite3 *db;
    sqlite3_stmt *q;

    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 1);
    sqlite3_finalize(q);
    /* STRICT: a text in an INTEGER column is refused */
    assert_int_not_equal(sqlite3_exec(db,
                                      "INSERT INTO sessions VALUES('x','u','e','not a number',1,1)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    sqlite3_close(db);
}

static void test_store_refuses_newer_schema(void **state)
{
    struct fixture *fx = *state;
    struct store *st2 = NULL;
    struct errbuf eb = {{0}};
    sqlite3 *db;

    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", 0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_sqlite_open(fx->path, &st2, &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "newer"));
}

static void test_store_session_roundtrip_and_reopen(void **state)
{
    struct fixture *fx = *state;
    struct store_session s = {0};
    struct errbuf eb = {{0}};

    make_session(fx->st, SID_A, "alice", "agent_1", 100, 0, NULL, NULL);
    assert_int_equal(fx->st->ops->session_get(fx->st, SID_A, &s, &eb), KILN_OK);
    assert_string_equal(s.user_id, "alice");
    assert_string_equal(s.entity_id, "agent_1");
    assert_int_equal(s.expires_ms, 1100);
    store_session_clear(&s);
    assert_int_equal(fx->st->ops->session_touch(fx->st, SID_A, 500, 0, &eb), KILN_OK);
    /* durable across a close and reopen */
    fx->st->ops->close(fx->st);
    assert_int_equal(store_sqlite_open(fx->path, &fx->st, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->session_get(fx->st, SID_A, &s, &eb), KILN_OK);
    assert_int_equal(s.active_ms, 500);
    assert_int_equal(s.expires_ms, 0);
    store_session_clear(&s);
    assert_int_equal(fx->st->ops->session_get(fx->st, SID_B, &s, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(fx->st->ops->session_touch(fx->st, SID_B, 1, 1, &eb), KILN_ERR_NOT_FOUND);
}

static void test_store_duplicate_session_is_conflict(void **state)
{
    struct fixture *fx = *state;
    struct store_session s = {0};
    char **evicted = NULL;
    size_t nev = 0;
    long long count = 0;
    struct errbuf eb = {{0}};

    make_session(fx->st, SID_A, "", "ent", 1, 0, NULL, NULL);
    make_session(fx->st, SID_B, "", "ent", 2, 0, NULL, NULL);
    memcpy(s.id, SID_B, IDS_BUF);
    s.entity_id = (char *)"ent";
    /* B exists: A would be evicted first, but the refused insert rolls that back too */
    assert_int_equal(fx->st->ops->session_create(fx->st, &s, 2, &evicted, &nev, &eb),
                     KILN_ERR_CONFLICT);
    assert_null(evicted);
    assert_int_equal(nev, 0);
    assert_int_equal(fx->st->ops->session_count(fx->st, "ent", &count, &eb), KILN_OK);
    assert_int_equal(count, 2);
}

static void test_store_entity_cap_evicts_least_recently_active(void **state)
{
    struct fixture *fx = *state;
    struct store_session *list = NULL;
    struct store_file f = file_of(SID_A, FID_1, "a.txt");
    char **evicted = NULL;
    size_t n = 0, nev = 0;
    long long count = 0;
    struct errbuf eb = {{0}};

    make_session(fx->st, SID_A, "u", "ent", 10, 2, &evicted, &nev);
    make_session(fx->st, SID_B, "u", "ent", 20, 2, &evicted, &nev);
    assert_int_equal(fx->st->ops->file_reserve(fx->st, &f, 0, &eb), KILN_OK);
    assert_int_equal(nev, 0);
    make_session(fx->st, SID_C, "u", "ent", 30, 2, &evicted, &nev);
    /* A was the oldest: gone with its record, whose key is handed back for the bytes */
    assert_int_equal(nev, 1);
    assert_string_equal(evicted[0], SID_A "/" FID_1);
    store_strings_free(evicted, nev);
    assert_int_equal(fx->st->ops->session_count(fx->st, "ent", &count, &eb), KILN_OK);
    assert_int_equal(count, 2);
    assert_int_equal(fx->st->ops->session_list_by_entity(fx->st, "ent", 0, &list, &n, &eb),
                     KILN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, SID_C);
    assert_string_equal(list[1].id, SID_B);
    store_sessions_free(list, n);
    free(f.blob_key);
}

static void test_store_file_reserve_commit_limits(void **state)
{
    struct fixture *fx = *state;
    struct store_file f1 = file_of(SID_A, FID_1, "a.txt");
    struct store_file f2 = file_of(SID_A, FID_2, "b.txt");
    struct store_file f3 = file_of(SID_A, FID_3, "c.txt");
    struct store_file got = {0};
    struct store_totals t = {0};
    struct errbuf eb = {{0}};

    assert_int_equal(fx->st->ops->file_reserve(fx->st, &f1, 2, &eb), KILN_ERR_NOT_FOUND);
    make_session(fx->st, SID_A, "u", "", 1, 0, NULL, NULL);
    assert_int_equal(fx->st->ops->file_reserve(fx->st, &f1, 2, &eb), KILN_OK);
    /* pending records are invisible to readers */
    assert_int_equal(fx->st->ops->file_get(fx->st, SID_A, FID_1, &got, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(fx->st->ops->file_reserve(fx->st, &f2, 2, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->file_reserve(fx->st, &f3, 2, &eb), KILN_ERR_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "MAX_FILES_PER_SESSION"));
    assert_int_equal(fx->st->ops->file_commit(fx->st, SID_A, FID_1, 700, "ab", 1000, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->file_commit(fx->st, SID_A, FID_2, 301, "cd", 1000, &eb),
                     KILN_ERR_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "MAX_TOTAL_FILE_SIZE_MB"));
    assert_int_equal(fx->st->ops->file_get(fx->st, SID_A, FID_1, &got, &eb), KILN_OK);
    assert_int_equal(got.size, 700);
    assert_string_equal(got.sha256, "ab");
    assert_int_equal(got.state, STORE_FILE_COMPLETE);
    store_file_clear(&got);
    assert_int_equal(fx->st->ops->session_totals(fx->st, SID_A, &t, &eb), KILN_OK);
    assert_int_equal(t.files, 2);
    assert_int_equal(t.bytes, 700);
    free(f1.blob_key);
    free(f2.blob_key);
    free(f3.blob_key);
}

static void test_store_purge_pending_returns_keys(void **state)
{
    struct fixture *fx = *state;
    struct store_file f1 = file_of(SID_A, FID_1, "a.txt");
    struct store_file f2 = file_of(SID_A, FID_2, "b.txt");
    char **keys = NULL;
    size_t n = 0;
    bool ref = false;
    struct errbuf eb = {{0}};

    make_session(fx->st, SID_A, "u", "", 1, 0, NULL, NULL);
    assert_int_equal(fx->st->ops->file_reserve(fx->st, &f1, 0, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->file_reserve(fx->st, &f2, 0, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->file_commit(fx->st, SID_A, FID_1, 1, "x", 0, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->file_purge_pending(fx->st, &keys, &n, &eb), KILN_OK);
    assert_int_equal(n, 1);
    assert_string_equal(keys[0], SID_A "/" FID_2);
    store_strings_free(keys, n);
    assert_int_equal(fx->st->ops->blob_key_referenced(fx->st, f1.blob_key, &ref, &eb), KILN_OK);
    assert_true(ref);
    assert_int_equal(fx->st->ops->blob_key_referenced(fx->st, f2.blob_key, &ref, &eb), KILN_OK);
    assert_false(ref);
    free(f1.blob_key);
    free(f2.blob_key);
}

static void test_store_outputs_list_delete_and_session_cascade(void **state)
{
    struct fixture *fx = *state;
    struct store_file outs[2] = {file_of(SID_A, FID_1, "out/a.png"),
                                 file_of(SID_A, FID_2, "b.csv")};
    struct store_file *list = NULL;
    char **keys = NULL, *key = NULL;
    size_t n = 0;
    struct errbuf eb = {{0}};

    make_session(fx->st, SID_A, "u", "", 1, 0, NULL, NULL);
    outs[0].origin = STORE_FILE_OUTPUT;
    memcpy(outs[0].modified_from_id, FID_3, IDS_BUF);
    memcpy(outs[0].modified_from_session, SID_B, IDS_BUF);
    outs[1].created_ms = 2;
    assert_int_equal(fx->st->ops->file_put_many(fx->st, outs, 2, &eb), KILN_OK);
    /* all or none: a duplicate in the batch inserts nothing */
    assert_int_equal(fx->st->ops->file_put_many(fx->st, outs, 1, &eb), KILN_ERR_CONFLICT);
    assert_int_equal(fx->st->ops->file_list(fx->st, SID_A, &list, &n, &eb), KILN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "out/a.png");
    assert_int_equal(list[0].origin, STORE_FILE_OUTPUT);
    assert_string_equal(list[0].modified_from_id, FID_3);
    assert_string_equal(list[0].modified_from_session, SID_B);
    store_files_free(list, n);
    assert_int_equal(fx->st->ops->file_delete(fx->st, SID_A, FID_1, &key, &eb), KILN_OK);
    assert_string_equal(key, SID_A "/" FID_1);
    free(key);
    assert_int_equal(fx->st->ops->file_delete(fx->st, SID_A, FID_1, NULL, &eb), KILN_ERR_NOT_FOUND);
    assert_int_equal(fx->st->ops->session_delete(fx->st, SID_A, &keys, &n, &eb), KILN_OK);
    assert_int_equal(n, 1);
    assert_string_equal(keys[0], SID_A "/" FID_2);
    store_strings_free(keys, n);
    assert_int_equal(fx->st->ops->file_list(fx->st, SID_A, &list, &n, &eb), KILN_OK);
    assert_int_equal(n, 0);
    free(list);
    assert_int_equal(fx->st->ops->session_delete(fx->st, SID_A, &keys, &n, &eb),
                     KILN_ERR_NOT_FOUND);
    free(outs[0].blob_key);
    free(outs[1].blob_key);
}

static void test_store_list_expired(void **state)
{
    struct fixture *fx = *state;
    char **ids = NULL;
    size_t n = 0;
    struct errbuf eb = {{0}};

    make_session(fx->st, SID_A, "", "", 0, 0, NULL, NULL);    /* expires 1000 */
    make_session(fx->st, SID_B, "", "", 5000, 0, NULL, NULL); /* expires 6000 */
    make_session(fx->st, SID_C, "", "", 0, 0, NULL, NULL);
    assert_int_equal(fx->st->ops->session_touch(fx->st, SID_C, 0, 0, &eb), KILN_OK); /* never */
    assert_int_equal(fx->st->ops->session_list_expired(fx->st, 2000, 0, &ids, &n, &eb), KILN_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], SID_A);
    store_strings_free(ids, n);
    assert_int_equal(fx->st->ops->session_list_expired(fx->st, 1LL << 60, 0, &ids, &n, &eb),
                     KILN_OK);
    assert_int_equal(n, 2);
    store_strings_free(ids, n);
}

static enum kiln_err count_scan(void *arg, const char *key, const void *val, size_t len,
                                long long updated_ms, long long expires_ms)
{
    (void)key;
    (void)val;
    (void)updated_ms;
    (void)expires_ms;
    *(size_t *)arg += len;
    return KILN_OK;
}

/* kv_set_many: every entry written (new or replaced) with the same clock and TTL. */
static void test_store_kv_set_many(void **state)
{
    struct fixture *fx = *state;
    struct store_kv kv[2] = {{.ns = "state", .key = "s1", .val = "new", .len = 3},
                             {.ns = "state_meta", .key = "s1", .val = "meta", .len = 4}};
    void *val = NULL;
    size_t len = 0;
    long long updated = 0;
    struct errbuf eb = {{0}};

    assert_int_equal(fx->st->ops->kv_set(fx->st, "state", "s1", "old!", 4, 10, 0, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->kv_set_many(fx->st, kv, 2, 100, 50, &eb), KILN_OK);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(
            fx->st->ops->kv_get(fx->st, kv[i].ns, "s1", 120, &val, &len, &updated, &eb), KILN_OK);
        assert_int_equal(len, kv[i].len);
        assert_memory_equal(val, kv[i].val, len);
        assert_int_equal(updated, 100);
        free(val);
        /* both expire at 150 */
        assert_int_equal(fx->st->ops->kv_get(fx->st, kv[i].ns, "s1", 150, &val, &len, NULL, &eb),
                         KILN_ERR_NOT_FOUND);
    }
    assert_int_equal(fx->st->ops->kv_set_many(fx->st, kv, 0, 100, 0, &eb), KILN_OK);
}

static void test_store_kv_ttl_incr_scan_sweep(void **state)
{
    struct fixture *fx = *state;
    void *val = NULL;
    size_t len = 0, total = 0;
    long long v = 0, exp = 0, removed = 0;
    struct errbuf eb = {{0}};

    assert_int_equal(fx->st->ops->kv_set(fx->st, "state", "s1", "\x02\x00xyz", 5, 100, 50, &eb),
                     KILN_OK);
    assert_int_equal(fx->st->ops->kv_get(fx->st, "state", "s1", 120, &val, &len, NULL, &eb),
                     KILN_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(val, "\x02\x00xyz", 5);
    free(val);
    /* expired at 150: invisible at once, even before the sweep */
    assert_int_equal(fx->st->ops->kv_get(fx->st, "state", "s1", 150, &val, &len, NULL, &eb),
                     KILN_ERR_NOT_FOUND);
    /* counters: fixed window */
    assert_int_equal(fx->st->ops->kv_incr(fx->st, "rate", "k:m", 1, 1000, 60, &v, &exp, &eb),
                     KILN_OK);
    assert_int_equal(v, 1);
    assert_int_equal(exp, 1060);
    assert_int_equal(fx->st->ops->kv_incr(fx->st, "rate", "k:m", 2, 1030, 60, &v, &exp, &eb),
                     KILN_OK);
    assert_int_equal(v, 3);
    assert_int_equal(exp, 1060);
    assert_int_equal(fx->st->ops->kv_incr(fx->st, "rate", "k:m", 1, 1061, 60, &v, &exp, &eb),
                     KILN_OK);
    assert_int_equal(v, 1);
    assert_int_equal(exp, 1121);
    assert_int_equal(fx->st->ops->kv_set(fx->st, "apikey", "ab1", "x", 1, 0, 0, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->kv_set(fx->st, "apikey", "ab2", "yy", 2, 0, 0, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->kv_set(fx->st, "apikey", "c", "zzz", 3, 0, 0, &eb), KILN_OK);
    assert_int_equal(fx->st->ops->kv_scan(fx->st, "apikey", "ab", 5000, count_scan, &total, &eb),
                     KILN_OK);
    assert_int_equal(total, 3);
    assert_int_equal(fx->st->ops->kv_sweep(fx->st, 5000, &removed, &eb), KILN_OK);
    assert_int_equal(removed, 2); /* state/s1 and rate/k:m */
    assert_int_equal(fx->st->ops->kv_delete(fx->st, "apikey", "c", &eb), KILN_OK);
    assert_int_equal(fx->st->ops->kv_delete(fx->st, "apikey", "c", &eb), KILN_ERR_NOT_FOUND);
}

/* Many threads reserving in one session never overshoot the cap. */
struct race {
    struct store *st;
    int idx;
    int ok;
};

static void *race_thread(void *arg)
{
    struct race *r = arg;
    struct errbuf eb = {{0}};
    char fid[IDS_BUF];

    for (int i = 0; i < 10; i++) {
        snprintf(fid, sizeof fid, "t%02dx%02d______________", r->idx, i);
        struct store_file f = file_of(SID_A, fid, "f");
        if (r->st->ops->file_reserve(r->st, &f, 25, &eb) == KILN_OK)
            r->ok++;
        free(f.blob_key);
    }
    return NULL;
}

static void test_store_concurrent_reserve_respects_cap(void **state)
{
    struct fixture *fx = *state;
    pthread_t th[8];
    struct race r[8];
    int total = 0;

    make_session(fx->st, SID_A, "u", "", 1, 0, NULL, NULL);
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){.st = fx->st, .idx = i};
        pthread_create(&th[i], NULL, race_thread, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += r[i].ok;
    }
    assert_int_equal(total, 25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_wal_strict_and_schema_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_refuses_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_session_roundtrip_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_duplicate_session_is_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_entity_cap_evicts_least_recently_active, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_file_reserve_commit_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_purge_pending_returns_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_outputs_list_delete_and_session_cascade, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_list_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_kv_ttl_incr_scan_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_kv_set_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_concurrent_reserve_respects_cap, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
