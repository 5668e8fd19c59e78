/* Unit tests of core/state: the blob validator (version byte, lz4 frame, pickle shape, size cap)
 * and the hot/archive life cycle on a real SQLite store and blob directory, with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/sessions.h"
#include "core/state.h"
#include "util/xmalloc.h"

#define MIB (1024 * 1024)

/* A pickle-shaped payload of n bytes (PROTO 5 ... STOP). */
static unsigned char *pickle_like(size_t n, unsigned char fill)
{
    unsigned char *p = xmalloc(n);

    memset(p, fill, n);
    p[0] = 0x80;
    p[1] = 5;
    p[n - 1] = '.';
    return p;
}

/* A pickle-shaped payload of n bytes that lz4 cannot shrink. */
static unsigned char *pickle_random(size_t n, unsigned seed)
{
    unsigned char *p = xmalloc(n);
    unsigned x = seed * 2654435761u + 1;

    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (unsigned char)(x >> 16);
    }
    p[0] = 0x80;
    p[1] = 5;
    p[n - 1] = '.';
    return p;
}

/* Version byte 2 + lz4 frame of payload; *len receives the blob's size. */
static unsigned char *lz4_blob(const unsigned char *payload, size_t n, size_t *len)
{
    size_t cap = LZ4F_compressFrameBound(n, NULL);
    unsigned char *b = xmalloc(cap + 1);
    size_t r = LZ4F_compressFrame(b + 1, cap, payload, n, NULL);

    assert_false(LZ4F_isError(r));
    b[0] = STATE_VERSION_LZ4;
    *len = r + 1;
    return b;
}

static void test_validate_versions(void **unused)
{
    unsigned char *p = pickle_like(100, 'a');
    unsigned char raw[101];
    size_t len;
    unsigned char *z = lz4_blob(p, 100, &len);

    (void)unused;
    raw[0] = STATE_VERSION_RAW;
    memcpy(raw + 1, p, 100);
    assert_int_equal(state_validate(raw, sizeof raw, MIB, NULL), KILN_OK);
    assert_int_equal(state_validate(z, len, MIB, NULL), KILN_OK);
    assert_int_equal(state_validate(raw, 1, MIB, NULL), KILN_ERR_INVALID);
    assert_int_equal(state_validate(NULL, 0, MIB, NULL), KILN_ERR_INVALID);
    raw[0] = 3;
    assert_int_equal(state_validate(raw, sizeof raw, MIB, NULL), KILN_ERR_INVALID);
    raw[0] = 0;
    assert_int_equal(state_validate(raw, sizeof raw, MIB, NULL), KILN_ERR_INVALID);
    /* raw, not a pickle */
    raw[0] = STATE_VERSION_RAW;
    raw[1] = 'x';
    assert_int_equal(state_validate(raw, sizeof raw, MIB, NULL), KILN_ERR_INVALID);
    raw[1] = 0x80;
    raw[100] = 'x';
    assert_int_equal(state_validate(raw, sizeof raw, MIB, NULL), KILN_ERR_INVALID);
    /* over the cap */
    raw[100] = '.';
    assert_int_equal(state_validate(raw, sizeof raw, 50, NULL), KILN_ERR_TOO_LARGE);
    free(p);
    free(z);
}

static void test_validate_lz4(void **unused)
{
    unsigned char *p = pickle_like(3 * MIB, 0);
    unsigned char *notpickle = xcalloc(1, 1000);
    size_t len, len2;
    unsigned char *z = lz4_blob(p, 3 * MIB, &len);
    unsigned char *z2 = lz4_blob(notpickle, 1000, &len2);
    unsigned char *longer = xmalloc(len + 4);
    struct errbuf eb;

    (void)unused;
    /* zeros compress to almost nothing: the cap is on the decompressed size */
    assert_true(len < 64 * 1024);
    assert_int_equal(state_validate(z, len, 4 * MIB, NULL), KILN_OK);
    errbuf_clear(&eb);
    assert_int_equal(state_validate(z, len, 1 * MIB, &eb), KILN_ERR_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "STATE_MAX_SIZE_MB"));
    /* truncated frames, trailing bytes, a flipped byte in the header */
    for (size_t cut = 1; cut < len; cut += len / 7 + 1)
        assert_int_equal(state_validate(z, cut, 4 * MIB, NULL), KILN_ERR_INVALID);
    memcpy(longer, z, len);
    memcpy(longer + len, "junk", 4);
    assert_int_equal(state_validate(longer, len + 4, 4 * MIB, NULL), KILN_ERR_INVALID);
    z[2] ^= 0xff; /* the frame magic */
    assert_int_equal(state_validate(z, len, 4 * MIB, NULL), KILN_ERR_INVALID);
    /* a valid frame of something that is not a pickle */
    assert_int_equal(state_validate(z2, len2, 4 * MIB, NULL), KILN_ERR_INVALID);
    free(p);
    free(notpickle);
    free(z);
    free(z2);
    free(longer);
}

/* --- life cycle --------------------------------------------------------------------------------
 */

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
    const char *env[] = {"STATE_TTL_SECONDS",
                         "100",
                         "STATE_ARCHIVE_AFTER_SECONDS",
                         "10",
                         "STATE_ARCHIVE_TTL_DAYS",
                         "1",
                         "STATE_MAX_SIZE_MB",
                         "1",
                         NULL};
    struct errbuf eb = {{0}};
    char *db;

    memcpy(fx->dir, "/tmp/kiln-state-XXXXXX", sizeof "/tmp/kiln-state-XXXXXX");
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

static void test_save_load_archive_expire(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *sid = "AAAAAAAAAAAAAAAAAAAAA";
    unsigned char *p = pickle_like(5000, 'q');
    size_t len, got_len;
    unsigned char *z = lz4_blob(p, 5000, &len);
    void *got = NULL;
    char *note = NULL;
    struct state_info info, saved;
    long long archived = 0, expired = 0;
    bool ref = true;

    assert_int_equal(state_load(svc, sid, &got, &got_len, &info, &note, NULL), KILN_ERR_NOT_FOUND);
    assert_null(note);
    assert_int_equal(state_save(svc, sid, z, len, &saved, NULL), KILN_OK);
    assert_int_equal(state_load(svc, sid, &got, &got_len, &info, &note, NULL), KILN_OK);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, z, len);
    assert_string_equal(info.source, "hot");
    assert_string_equal(info.sha256, saved.sha256);
    free(got);

    /* not idle long enough: stays hot */
    fx->now += 5000;
    assert_int_equal(state_archive_pass(svc, &archived, &expired, NULL), KILN_OK);
    assert_int_equal(archived, 0);
    /* idle: archived, the hot copy removed; loads transparently from the archive */
    fx->now += 6000;
    assert_int_equal(state_archive_pass(svc, &archived, &expired, NULL), KILN_OK);
    assert_int_equal(archived, 1);
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_true(info.exists);
    assert_string_equal(info.source, "archive");
    fx->now += 200 * 1000; /* past the hot TTL too */
    assert_int_equal(state_load(svc, sid, &got, &got_len, &info, &note, NULL), KILN_OK);
    assert_memory_equal(got, z, len);
    assert_string_equal(info.source, "archive");
    assert_string_equal(info.sha256, saved.sha256);
    free(got);
    /* the recovery's orphan rule leaves it alone */
    assert_true(state_blob_key("state/"
                               "AAAAAAAAAAAAAAAAAAAAA"));
    assert_false(state_blob_key("AAAAAAAAAAAAAAAAAAAAA/BBBBBBBBBBBBBBBBBBBBB"));

    /* past STATE_ARCHIVE_TTL_DAYS: removed, bytes too */
    fx->now += 2LL * 86400 * 1000;
    assert_int_equal(state_archive_pass(svc, &archived, &expired, NULL), KILN_OK);
    assert_int_equal(expired, 1);
    assert_int_equal(state_load(svc, sid, &got, &got_len, &info, &note, NULL), KILN_ERR_NOT_FOUND);
    assert_int_equal(svc->store->ops->blob_key_referenced(svc->store, "x", &ref, NULL), KILN_OK);
    {
        long long sz = 0;
        assert_int_equal(svc->blob->ops->size(svc->blob, "state/AAAAAAAAAAAAAAAAAAAAA", &sz, NULL),
                         KILN_ERR_NOT_FOUND);
    }
    free(p);
    free(z);
}

static void test_corrupted_hot_is_dropped(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *sid = "BBBBBBBBBBBBBBBBBBBBB";
    unsigned char *p = pickle_like(100, 'r');
    size_t len, got_len;
    unsigned char *z = lz4_blob(p, 100, &len);
    void *val = NULL, *got = NULL;
    size_t vlen = 0;
    long long upd = 0;
    char *note = NULL;
    struct state_info info;

    assert_int_equal(state_save(svc, sid, z, len, NULL, NULL), KILN_OK);
    assert_int_equal(
        svc->store->ops->kv_get(svc->store, "state", sid, fx->now, &val, &vlen, &upd, NULL),
        KILN_OK);
    ((unsigned char *)val)[vlen - 1] ^= 1; /* one flipped bit in the blob */
    assert_int_equal(
        svc->store->ops->kv_set(svc->store, "state", sid, val, vlen, fx->now, 100000, NULL),
        KILN_OK);
    free(val);
    assert_int_equal(state_load(svc, sid, &got, &got_len, &info, &note, NULL), KILN_ERR_NOT_FOUND);
    assert_non_null(note);
    assert_non_null(strstr(note, "corrupted"));
    free(note);
    note = NULL;
    /* and it is gone */
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_false(info.exists);
    /* invalid blobs are refused before they are stored */
    z[0] = 9;
    assert_int_equal(state_save(svc, sid, z, len, NULL, NULL), KILN_ERR_INVALID);
    free(p);
    free(z);
}

static void test_delete(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *sid = "CCCCCCCCCCCCCCCCCCCCC";
    unsigned char raw[8] = {STATE_VERSION_RAW, 0x80, 4, 'K', '.', 0, 0, 0};
    struct state_info info;

    raw[4] = 'N';
    raw[5] = '.';
    assert_int_equal(state_save(svc, sid, raw, 6, NULL, NULL), KILN_OK);
    fx->now += 11000;
    assert_int_equal(state_archive_pass(svc, NULL, NULL, NULL), KILN_OK);
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_string_equal(info.source, "archive");
    /* a new save replaces the archive, which must not come back */
    assert_int_equal(state_save(svc, sid, raw, 6, NULL, NULL), KILN_OK);
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_string_equal(info.source, "hot");
    assert_int_equal(state_delete(svc, sid, NULL), KILN_OK);
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_false(info.exists);
}

/* --- large states (blob store), unchanged states ------------------------------------------- */

/* A memfd holding len bytes of buf (what the workspace walk hands over). */
static int memfd_of(const void *buf, size_t len)
{
    int fd = memfd_create("state", MFD_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    return fd;
}

/* The size of DATA_DIR/blobs/<key>, or -1 when there is no such file. */
static long long blob_file_size(struct fixture *fx, const char *key)
{
    char *path = xasprintf("%s/blobs/%s", fx->dir, key);
    struct stat st;
    long long r = stat(path, &st) == 0 ? (long long)st.st_size : -1;

    free(path);
    return r;
}

/* When ns/sid was last written, or -1 when it is not there. */
static long long kv_updated(struct fixture *fx, const char *ns, const char *sid)
{
    void *val = NULL;
    size_t vlen = 0;
    long long upd = -1;

    if (fx->svc.store->ops->kv_get(fx->svc.store, ns, sid, fx->now, &val, &vlen, &upd, NULL) !=
        KILN_OK)
        upd = -1;
    free(val);
    return upd;
}

static void read_all_fd(int fd, void *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = pread(fd, (char *)buf + off, len - off, (off_t)off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    assert_int_equal(pread(fd, buf, 1, (off_t)len), 0);
}

static void test_large_state_in_blob_store(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *sid = "DDDDDDDDDDDDDDDDDDDDD";
    unsigned char *p = pickle_random(600000, 1), *small = pickle_like(100, 's');
    size_t len, slen, got_len;
    unsigned char *z = lz4_blob(p, 600000, &len), *zs = lz4_blob(small, 100, &slen);
    unsigned char *back = xmalloc(len);
    unsigned char *raw = pickle_random(1500000, 2);
    void *got = NULL;
    char *note = NULL;
    struct state_info saved, info;
    int fd = memfd_of(z, len), f = -1;

    assert_true(len > 256 * 1024); /* beyond what a store row holds */
    assert_int_equal(state_save_fd(svc, sid, fd, "numpy,pandas", false, &saved, NULL), KILN_OK);
    close(fd);
    assert_int_equal(saved.size, (long long)len);
    /* the bytes are a file of the blob store; the store has only the metadata */
    assert_int_equal(blob_file_size(fx, "statehot/DDDDDDDDDDDDDDDDDDDDD"), (long long)len);
    assert_int_equal(kv_updated(fx, "state", sid), -1);
    assert_true(state_blob_key("statehot/DDDDDDDDDDDDDDDDDDDDD"));
    /* an execution gets a checked fd on them, no copy */
    assert_int_equal(state_open(svc, sid, &got, &got_len, &f, &info, &note, NULL), KILN_OK);
    assert_null(got);
    assert_true(f >= 0);
    assert_int_equal(got_len, len);
    read_all_fd(f, back, len);
    assert_memory_equal(back, z, len);
    close(f);
    assert_string_equal(info.sha256, saved.sha256);
    assert_string_equal(info.source, "hot");
    /* the modules the runner reported come back for the zygote's choice */
    assert_true(info.modules_known);
    assert_string_equal(info.modules, "numpy,pandas");
    /* GET /state gets a copy */
    assert_int_equal(state_load(svc, sid, &got, &got_len, &info, &note, NULL), KILN_OK);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, z, len);
    free(got);
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_true(info.exists);
    assert_int_equal(info.size, (long long)len);
    assert_string_equal(info.sha256, saved.sha256);

    /* a small state replaces it in a row (the file goes), a large one again in a file */
    assert_int_equal(state_save(svc, sid, zs, slen, NULL, NULL), KILN_OK);
    assert_int_equal(blob_file_size(fx, "statehot/DDDDDDDDDDDDDDDDDDDDD"), -1);
    assert_true(kv_updated(fx, "state", sid) > 0);
    assert_int_equal(state_save(svc, sid, z, len, NULL, NULL), KILN_OK);
    assert_int_equal(kv_updated(fx, "state", sid), -1);
    assert_int_equal(blob_file_size(fx, "statehot/DDDDDDDDDDDDDDDDDDDDD"), (long long)len);

    /* streamed blobs are validated like posted ones: truncated, over the cap */
    fd = memfd_of(z, len - 10);
    assert_int_equal(state_save_fd(svc, sid, fd, NULL, false, NULL, NULL), KILN_ERR_INVALID);
    close(fd);
    raw[0] = STATE_VERSION_RAW; /* 1.5 MB raw pickle with STATE_MAX_SIZE_MB=1 */
    raw[1] = 0x80;
    raw[2] = 5;
    raw[1500000 - 1] = '.';
    fd = memfd_of(raw, 1500000);
    assert_int_equal(state_save_fd(svc, sid, fd, NULL, false, NULL, NULL), KILN_ERR_TOO_LARGE);
    close(fd);
    /* module lists: names of [A-Za-z0-9_] joined by single commas, else not recorded */
    assert_true(state_modules_ok(""));
    assert_true(state_modules_ok("numpy,_x,a1"));
    assert_false(state_modules_ok(NULL));
    assert_false(state_modules_ok("a,,b"));
    assert_false(state_modules_ok(",a"));
    assert_false(state_modules_ok("a b"));
    assert_false(state_modules_ok("a;import os"));
    /* and refused ones leave the stored state as it was */
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_string_equal(info.sha256, saved.sha256);
    free(p);
    free(small);
    free(z);
    free(zs);
    free(back);
    free(raw);
}

/* An execution's save into the session it just created (fresh): one small row and its
 * metadata, both there and loadable, the large form too; the "fresh" saves look for no earlier
 * copy, and a later non-fresh save still replaces the file with a row. */
static void test_fresh_session_save(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *sid = "FFFFFFFFFFFFFFFFFFFFF", *sid2 = "GGGGGGGGGGGGGGGGGGGGG";
    unsigned char *small = pickle_like(100, 'f'), *big = pickle_random(600000, 3);
    size_t slen, blen, got_len = 0;
    unsigned char *zs = lz4_blob(small, 100, &slen), *zb = lz4_blob(big, 600000, &blen);
    struct state_info saved, info;
    void *got = NULL;
    char *note = NULL;
    int fd = memfd_of(zs, slen);

    assert_int_equal(state_save_fd(svc, sid, fd, "", true, &saved, NULL), KILN_OK);
    close(fd);
    assert_true(kv_updated(fx, "state", sid) > 0);
    assert_int_equal(state_load(svc, sid, &got, &got_len, &info, &note, NULL), KILN_OK);
    assert_int_equal(got_len, slen);
    assert_memory_equal(got, zs, slen);
    free(got);
    assert_true(info.modules_known);
    assert_string_equal(info.sha256, saved.sha256);

    fd = memfd_of(zb, blen);
    assert_int_equal(state_save_fd(svc, sid2, fd, NULL, true, &saved, NULL), KILN_OK);
    close(fd);
    assert_int_equal(blob_file_size(fx, "statehot/GGGGGGGGGGGGGGGGGGGGG"), (long long)blen);
    assert_int_equal(state_info_get(svc, sid2, &info, NULL), KILN_OK);
    assert_true(info.exists);
    assert_int_equal(info.size, (long long)blen);
    fd = memfd_of(zs, slen);
    assert_int_equal(state_save_fd(svc, sid2, fd, NULL, false, NULL, NULL), KILN_OK);
    close(fd);
    assert_int_equal(blob_file_size(fx, "statehot/GGGGGGGGGGGGGGGGGGGGG"), -1);
    assert_true(kv_updated(fx, "state", sid2) > 0);
    free(small);
    free(big);
    free(zs);
    free(zb);
}

static void test_unchanged_state_is_not_rewritten(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *big = "EEEEEEEEEEEEEEEEEEEEE", *small = "FFFFFFFFFFFFFFFFFFFFF";
    unsigned char *p = pickle_random(600000, 3), *q = pickle_like(100, 'u');
    size_t len, qlen, got_len;
    unsigned char *z = lz4_blob(p, 600000, &len), *zq = lz4_blob(q, 100, &qlen);
    long long t0 = fx->now;
    void *got = NULL;
    int f = -1;
    struct state_info loaded, info, lb;

    assert_int_equal(state_save(svc, big, z, len, NULL, NULL), KILN_OK);
    assert_int_equal(state_save(svc, small, zq, qlen, NULL, NULL), KILN_OK);
    assert_int_equal(state_open(svc, big, &got, &got_len, &f, &loaded, NULL, NULL), KILN_OK);
    close(f);
    /* soon after the save: nothing is written */
    fx->now += 1000;
    assert_int_equal(state_keep(svc, big, &loaded, NULL, &info, NULL), KILN_OK);
    assert_int_equal(kv_updated(fx, "statemeta", big), t0);
    assert_int_equal(info.updated_ms, t0);
    assert_string_equal(info.sha256, loaded.sha256);
    /* a quarter of min(TTL 100 s, archive after 10 s) later: the clock is refreshed, the bytes
     * are not rewritten */
    fx->now += 2000;
    assert_int_equal(state_keep(svc, big, &loaded, NULL, &info, NULL), KILN_OK);
    assert_int_equal(kv_updated(fx, "statemeta", big), fx->now);
    assert_int_equal(info.updated_ms, fx->now);
    assert_int_equal(info.expires_ms, fx->now + 100000);
    /* an inline state: both rows */
    assert_int_equal(state_open(svc, small, &got, &got_len, &f, &loaded, NULL, NULL), KILN_OK);
    assert_int_equal(f, -1);
    assert_non_null(got);
    free(got);
    assert_int_equal(state_keep(svc, small, &loaded, NULL, &info, NULL), KILN_OK);
    assert_int_equal(kv_updated(fx, "state", small), fx->now);
    assert_int_equal(kv_updated(fx, "statemeta", small), fx->now);
    /* a state whose modules were not known (posted): recorded once the runner reports them,
     * not again */
    assert_int_equal(state_open(svc, big, &got, &got_len, &f, &lb, NULL, NULL), KILN_OK);
    close(f);
    assert_false(lb.modules_known);
    fx->now += 10;
    assert_int_equal(state_keep(svc, big, &lb, "collections", &info, NULL), KILN_OK);
    assert_int_equal(kv_updated(fx, "statemeta", big), fx->now);
    assert_int_equal(state_open(svc, big, &got, &got_len, &f, &lb, NULL, NULL), KILN_OK);
    close(f);
    assert_true(lb.modules_known);
    assert_string_equal(lb.modules, "collections");
    assert_string_equal(lb.sha256, info.sha256);
    fx->now += 10;
    assert_int_equal(state_keep(svc, big, &lb, "collections", &info, NULL), KILN_OK);
    assert_int_equal(kv_updated(fx, "statemeta", big), fx->now - 10);
    /* a state saved meanwhile is not touched with the old one's description */
    fx->now += 3000;
    assert_int_equal(state_save(svc, small, z, len, NULL, NULL), KILN_OK);
    fx->now += 3000;
    assert_int_equal(state_keep(svc, small, &loaded, NULL, &info, NULL), KILN_OK);
    assert_int_equal(kv_updated(fx, "statemeta", small), fx->now - 3000);
    assert_int_equal(info.size, (long long)len);
    free(p);
    free(q);
    free(z);
    free(zq);
}

static void test_large_state_archive_and_corruption(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *sid = "GGGGGGGGGGGGGGGGGGGGG";
    unsigned char *p = pickle_random(600000, 4);
    size_t len, got_len;
    unsigned char *z = lz4_blob(p, 600000, &len);
    long long archived = 0;
    void *got = NULL;
    char *note = NULL, *path;
    int f = -1;
    FILE *fp;
    struct state_info loaded, info;

    assert_int_equal(state_save(svc, sid, z, len, NULL, NULL), KILN_OK);
    fx->now += 11000;
    assert_int_equal(state_archive_pass(svc, &archived, NULL, NULL), KILN_OK);
    assert_int_equal(archived, 1);
    assert_int_equal(blob_file_size(fx, "statehot/GGGGGGGGGGGGGGGGGGGGG"), -1);
    assert_int_equal(blob_file_size(fx, "state/GGGGGGGGGGGGGGGGGGGGG"), (long long)len);
    assert_int_equal(kv_updated(fx, "statemeta", sid), -1);
    /* restored from the archive (a copy), and hot again when an execution kept it */
    assert_int_equal(state_open(svc, sid, &got, &got_len, &f, &loaded, &note, NULL), KILN_OK);
    assert_int_equal(f, -1);
    assert_memory_equal(got, z, len);
    free(got);
    assert_string_equal(loaded.source, "archive");
    assert_int_equal(state_keep(svc, sid, &loaded, NULL, &info, NULL), KILN_OK);
    assert_string_equal(info.source, "hot");
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_string_equal(info.source, "hot");
    assert_string_equal(info.sha256, loaded.sha256);
    assert_int_equal(blob_file_size(fx, "statehot/GGGGGGGGGGGGGGGGGGGGG"), (long long)len);
    assert_int_equal(blob_file_size(fx, "state/GGGGGGGGGGGGGGGGGGGGG"), -1);

    /* one flipped byte in the file: dropped with a note, never handed over */
    path = xasprintf("%s/blobs/statehot/%s", fx->dir, sid);
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)(len / 2), SEEK_SET);
    fputc(~z[len / 2] & 0xff, fp);
    fclose(fp);
    assert_int_equal(state_open(svc, sid, &got, &got_len, &f, &info, &note, NULL),
                     KILN_ERR_NOT_FOUND);
    assert_int_equal(f, -1);
    assert_non_null(note);
    assert_non_null(strstr(note, "corrupted"));
    free(note);
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_false(info.exists);
    assert_int_equal(blob_file_size(fx, "statehot/GGGGGGGGGGGGGGGGGGGGG"), -1);
    /* a missing file is the same */
    assert_int_equal(state_save(svc, sid, z, len, NULL, NULL), KILN_OK);
    assert_int_equal(unlink(path), 0);
    note = NULL;
    assert_int_equal(state_open(svc, sid, &got, &got_len, &f, &info, &note, NULL),
                     KILN_ERR_NOT_FOUND);
    assert_non_null(note);
    free(note);
    assert_int_equal(state_info_get(svc, sid, &info, NULL), KILN_OK);
    assert_false(info.exists);
    free(path);
    free(p);
    free(z);
}

/* With the process's context: a file checked (or written) before is not hashed again while it is
 * unchanged, but a write to it is still caught. */
static void test_checked_file_cache(void **state)
{
    struct fixture *fx = *state;
    struct kiln_services *svc = &fx->svc;
    const char *sid = "HHHHHHHHHHHHHHHHHHHHH";
    unsigned char *p = pickle_random(600000, 5);
    size_t len, got_len;
    unsigned char *z = lz4_blob(p, 600000, &len), *back = xmalloc(len);
    void *got = NULL;
    char *note = NULL, *path = xasprintf("%s/blobs/statehot/%s", fx->dir, sid);
    int f = -1;
    FILE *fp;
    struct state_info info;

    assert_int_equal(state_ctx_new(svc, &svc->state, NULL), KILN_OK);
    assert_int_equal(state_save(svc, sid, z, len, NULL, NULL), KILN_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(state_open(svc, sid, &got, &got_len, &f, &info, &note, NULL), KILN_OK);
        read_all_fd(f, back, len);
        assert_memory_equal(back, z, len);
        close(f);
    }
    usleep(20000); /* past a coarse timestamp tick */
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 1000, SEEK_SET);
    fputc(~z[1000] & 0xff, fp);
    fclose(fp);
    assert_int_equal(state_open(svc, sid, &got, &got_len, &f, &info, &note, NULL),
                     KILN_ERR_NOT_FOUND);
    assert_non_null(note);
    free(note);
    state_ctx_free(svc->state);
    svc->state = NULL;
    free(path);
    free(p);
    free(z);
    free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_versions),
        cmocka_unit_test(test_validate_lz4),
        cmocka_unit_test_setup_teardown(test_save_load_archive_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_hot_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_state_in_blob_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_state_is_not_rewritten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_session_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_state_archive_and_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checked_file_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
