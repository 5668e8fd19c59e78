#include "core/state.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4frame.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blob/blob.h"
#include "core/ids.h"
#include "util/xmalloc.h"

#define MIB (1024LL * 1024LL)

#define STATE_NS      "state"
#define STATE_NS_META "statemeta"
#define STATE_NS_ARC  "statearc"

/* The hot value: the blob's sha256 in hex, then the blob. */
#define STATE_HDR (SHA256_HEX_BUF - 1)

/* Scratch buffer the validator decompresses into (output discarded). */
#define STATE_SCRATCH 65536

/* Read chunk of a blob-store copy (a save streams through one buffer of this size too). */
#define STATE_CHUNK (256 * 1024)

/* Blobs up to this size are kept in the store row (one read, one write); larger ones are
 * kept in the blob store under "statehot/<sid>", the store holding only their metadata, so
 * that no large value goes through SQLite (copies, WAL, fsync) at every execution. */
#define STATE_INLINE_MAX (256 * 1024)

/* Blob-store key prefix of hot states too large for a store row. */
#define STATE_HOT_PREFIX "statehot/"

/* Where a hot state's bytes are, in its "statemeta" value. */
#define STATE_META_BLOB "blob"
#define STATE_META_ROW  "row"

/* The note a load returns when it dropped a corrupted hot state (the response's state_notes). */
#define STATE_NOTE_HOT_DROPPED "stored state was corrupted and has been dropped"

/* How many files of blob-stored hot states the process remembers as checked. */
#define STATE_VERIFIED_SLOTS 64

/* A file of a blob-stored hot state whose bytes this process wrote or hashed, by identity: a
 * load finding the same file unchanged — same inode, size, mtime and ctime (any write changes
 * ctime, which no process can set back) — and the metadata naming the same hash skips hashing
 * it again. In memory only: after a restart every file is hashed once more, which is what
 * catches a write torn by a crash of the machine (docs/state.md "Durability"). */
struct state_verified {
    char sid[IDS_BUF];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char sha256[SHA256_HEX_BUF];
};

struct state_ctx {
    struct kiln_services *svc;
    pthread_mutex_t mu; /* saves, deletions and archive moves */
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    pthread_t thread;
    bool running, stop;
    pthread_mutex_t vmu; /* verified, vnext */
    struct state_verified verified[STATE_VERIFIED_SLOTS];
    size_t vnext;
};

/* --- validation ------------------------------------------------------------------------------ */

/* A pickle of protocol 2..5 starts with PROTO (0x80) and its number and ends with STOP ('.'). */
static bool state_pickle_head_ok(const unsigned char *p, size_t n)
{
    return n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5;
}

/* An incremental validator: the blob is fed in pieces (a save streams it from a file without
 * holding it whole), with the same verdicts as state_validate(). */
struct state_check {
    size_t max_raw;
    size_t seen;      /* blob bytes fed */
    unsigned version; /* the version byte, once seen */
    LZ4F_dctx *dctx;
    unsigned char *scratch;
    size_t hint;  /* LZ4F_decompress()'s last answer: 0 = frame complete */
    size_t total; /* payload bytes (decompressed for version 2) */
    unsigned char head[2], last;
    enum kiln_err rc; /* first error, sticky */
};

static void state_check_begin(struct state_check *c, size_t max_raw)
{
    memset(c, 0, sizeof *c);
    c->max_raw = max_raw;
    c->hint = 1;
}

static void state_check_free(struct state_check *c)
{
    free(c->scratch);
    LZ4F_freeDecompressionContext(c->dctx);
    c->scratch = NULL;
    c->dctx = NULL;
}

/* Account n payload bytes at p. */
static enum kiln_err state_check_payload(struct state_check *c, const unsigned char *p, size_t n,
                                         struct errbuf *eb)
{
    if (n == 0)
        return KILN_OK;
    if (c->total < 2) {
        size_t k = n < 2 - c->total ? n : 2 - c->total;
        memcpy(c->head + c->total, p, k);
    }
    c->total += n;
    c->last = p[n - 1];
    if (c->total > c->max_raw) {
        if (c->version == STATE_VERSION_RAW)
            return errbuf_set(eb, KILN_ERR_TOO_LARGE,
                              "state of more than %zu bytes exceeds STATE_MAX_SIZE_MB (%zu MB)",
                              c->max_raw, c->max_raw / (size_t)MIB);
        return errbuf_set(eb, KILN_ERR_TOO_LARGE,
                          "state decompresses to more than STATE_MAX_SIZE_MB (%zu MB)",
                          c->max_raw / (size_t)MIB);
    }
    return KILN_OK;
}

/* Decompress what the context still holds, without new input. */
static enum kiln_err state_check_drain(struct state_check *c, struct errbuf *eb)
{
    enum kiln_err rc = KILN_OK;

    while (rc == KILN_OK && c->hint != 0) {
        size_t src_n = 0, dst_n = STATE_SCRATCH;
        c->hint = LZ4F_decompress(c->dctx, c->scratch, &dst_n, "", &src_n, NULL);
        if (LZ4F_isError(c->hint) || dst_n == 0)
            break;
        rc = state_check_payload(c, c->scratch, dst_n, eb);
    }
    return rc;
}

static enum kiln_err state_check_feed(struct state_check *c, const void *buf, size_t n,
                                      struct errbuf *eb)
{
    const unsigned char *p = buf;

    if (c->rc != KILN_OK || n == 0)
        return c->rc;
    if (c->seen == 0) {
        c->version = p[0];
        if (c->version != STATE_VERSION_RAW && c->version != STATE_VERSION_LZ4)
            return c->rc = errbuf_set(eb, KILN_ERR_INVALID,
                                      "invalid state: unknown version byte %u", c->version);
        if (c->version == STATE_VERSION_LZ4) {
            if (LZ4F_isError(LZ4F_createDecompressionContext(&c->dctx, LZ4F_VERSION)))
                return c->rc = errbuf_set(eb, KILN_ERR_NOMEM,
                                          "lz4: cannot create a decompression context");
            c->scratch = xmalloc(STATE_SCRATCH);
        }
        p++;
        n--;
        c->seen++;
    }
    c->seen += n;
    if (c->version == STATE_VERSION_RAW)
        return c->rc = state_check_payload(c, p, n, eb);
    while (n > 0) {
        size_t src_n = n, dst_n = STATE_SCRATCH;
        if (c->hint == 0)
            return c->rc =
                       errbuf_set(eb, KILN_ERR_INVALID, "invalid state: bytes after the lz4 frame");
        c->hint = LZ4F_decompress(c->dctx, c->scratch, &dst_n, p, &src_n, NULL);
        if (LZ4F_isError(c->hint))
            return c->rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: lz4 frame: %s",
                                      LZ4F_getErrorName(c->hint));
        p += src_n;
        n -= src_n;
        c->rc = state_check_payload(c, c->scratch, dst_n, eb);
        if (c->rc)
            return c->rc;
        if (src_n == 0 && dst_n == 0)
            return c->rc = errbuf_set(eb, KILN_ERR_INVALID,
                                      "invalid state: lz4 frame makes no progress");
    }
    return KILN_OK;
}

/* The verdict once every byte was fed. */
static enum kiln_err state_check_end(struct state_check *c, struct errbuf *eb)
{
    if (c->rc != KILN_OK)
        return c->rc;
    if (c->seen < 2)
        return c->rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: shorter than 2 bytes");
    if (c->version == STATE_VERSION_LZ4) {
        /* one frame, complete; output may still be pending in the context */
        c->rc = state_check_drain(c, eb);
        if (c->rc)
            return c->rc;
        if (LZ4F_isError(c->hint) || c->hint != 0)
            return c->rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: truncated lz4 frame");
    }
    if (!state_pickle_head_ok(c->head, c->total) || c->last != '.')
        return c->rc = errbuf_set(eb, KILN_ERR_INVALID, "invalid state: not a pickle");
    return KILN_OK;
}

enum kiln_err state_validate(const void *blob, size_t len, size_t max_raw, struct errbuf *eb)
{
    const unsigned char *b = blob;
    struct state_check c;
    enum kiln_err rc;

    if (b == NULL || len < 2)
        return errbuf_set(eb, KILN_ERR_INVALID, "invalid state: shorter than 2 bytes");
    if (b[0] == STATE_VERSION_RAW && len - 1 > max_raw)
        return errbuf_set(eb, KILN_ERR_TOO_LARGE,
                          "state of %zu bytes exceeds STATE_MAX_SIZE_MB (%zu MB)", len - 1,
                          max_raw / (size_t)MIB);
    state_check_begin(&c, max_raw);
    rc = state_check_feed(&c, b, len, eb);
    if (rc == KILN_OK)
        rc = state_check_end(&c, eb);
    state_check_free(&c);
    return rc;
}

/* --- helpers --------------------------------------------------------------------------------- */

static void state_lock(struct kiln_services *svc)
{
    if (svc->state != NULL)
        pthread_mutex_lock(&svc->state->mu);
}

static void state_unlock(struct kiln_services *svc)
{
    if (svc->state != NULL)
        pthread_mutex_unlock(&svc->state->mu);
}

/* sid's row of namespace ns as the store has it now (expired rows are not found): *val is owned
 * by the caller; updated and eb may be NULL. */
static enum kiln_err state_row_get(struct kiln_services *svc, const char *ns, const char *sid,
                                   void **val, size_t *vlen, long long *updated, struct errbuf *eb)
{
    return svc->store->ops->kv_get(svc->store, ns, sid, services_now_ms(svc), val, vlen, updated,
                                   eb);
}

static size_t state_max_raw(const struct kiln_services *svc)
{
    return (size_t)(svc->cfg->state_max_size_mb * MIB);
}

static void state_hash(const void *blob, size_t len, char out[SHA256_HEX_BUF])
{
    struct sha256 *h = sha256_new();

    sha256_update(h, blob, len);
    sha256_final_hex(h, out);
    sha256_free(h);
}

static bool state_hex_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static char *state_blob_key_of(const char *sid)
{
    return xasprintf("%s%s", STATE_BLOB_PREFIX, sid);
}

static char *state_hot_key_of(const char *sid)
{
    return xasprintf("%s%s", STATE_HOT_PREFIX, sid);
}

bool state_blob_key(const char *key)
{
    return key != NULL && (strncmp(key, STATE_BLOB_PREFIX, strlen(STATE_BLOB_PREFIX)) == 0 ||
                           strncmp(key, STATE_HOT_PREFIX, strlen(STATE_HOT_PREFIX)) == 0);
}

/* "<size> <sha> <archived_ms> <expires_ms>" of an archive marker. */
struct state_arc {
    long long size, archived_ms, expires_ms;
    char sha256[SHA256_HEX_BUF];
};

static bool state_arc_parse(const char *v, size_t len, struct state_arc *a)
{
    char sha[SHA256_HEX_BUF + 1];

    if (len > 200)
        return false;
    if (sscanf(v, "%lld %65s %lld %lld", &a->size, sha, &a->archived_ms, &a->expires_ms) != 4 ||
        strlen(sha) != STATE_HDR || !state_hex_ok(sha, STATE_HDR) || a->size < 2)
        return false;
    memcpy(a->sha256, sha, SHA256_HEX_BUF);
    return true;
}

/* A hot state's metadata: "<size> <sha>" (in a row, modules unknown), or
 * "<size> <sha> <where> [<modules>]" with where "row" or "blob" (bytes in the blob store) and
 * modules as state_modules_ok() describes them, "-" for none. */
struct state_meta {
    long long size;
    char sha256[SHA256_HEX_BUF];
    bool blob;
    bool modules_known;
    char modules[STATE_MODULES_BUF];
};

bool state_modules_ok(const char *modules)
{
    size_t n = modules != NULL ? strlen(modules) : STATE_MODULES_BUF;

    if (n >= STATE_MODULES_BUF || (n > 0 && (modules[0] == ',' || modules[n - 1] == ',')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = modules[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (c == ',' && modules[i + 1] != ',')))
            return false;
    }
    return true;
}

static bool state_meta_parse(const char *v, size_t len, struct state_meta *m)
{
    char sha[SHA256_HEX_BUF + 1], where[8] = "", mods[STATE_MODULES_BUF + 1] = "";
    int n;

    memset(m, 0, sizeof *m);
    if (len >= 100 + STATE_MODULES_BUF)
        return false;
    n = sscanf(v, "%lld %65s %7s %200s", &m->size, sha, where, mods);
    if (n < 2 || strlen(sha) != STATE_HDR || !state_hex_ok(sha, STATE_HDR) || m->size < 2 ||
        (n >= 3 && strcmp(where, STATE_META_BLOB) != 0 && strcmp(where, STATE_META_ROW) != 0))
        return false;
    memcpy(m->sha256, sha, SHA256_HEX_BUF);
    m->blob = n >= 3 && strcmp(where, STATE_META_BLOB) == 0;
    if (n == 4 && strcmp(mods, "-") == 0) {
        m->modules_known = true;
    } else if (n == 4 && state_modules_ok(mods)) {
        m->modules_known = true;
        memcpy(m->modules, mods, strlen(mods) + 1);
    }
    return true;
}

/* The metadata value of a state of len bytes with hash sum (modules may be NULL). */
static void state_meta_format(char *out, size_t cap, size_t len, const char *sum, bool blob,
                              const char *modules)
{
    const char *where = blob ? STATE_META_BLOB : STATE_META_ROW;

    if (modules != NULL && state_modules_ok(modules))
        snprintf(out, cap, "%zu %s %s %s", len, sum, where, modules[0] != '\0' ? modules : "-");
    else
        snprintf(out, cap, "%zu %s %s", len, sum, where);
}

static void state_info_modules(struct state_info *info, const struct state_meta *m)
{
    info->modules_known = m->modules_known;
    memcpy(info->modules, m->modules, sizeof info->modules);
}

/* Remove the archived copy of sid (marker first: a crash leaves only unreferenced bytes). */
static void state_drop_archive(struct kiln_services *svc, const char *sid)
{
    char *key = state_blob_key_of(sid);

    svc->store->ops->kv_delete(svc->store, STATE_NS_ARC, sid, NULL);
    svc->blob->ops->remove(svc->blob, key, NULL);
    free(key);
}

/* Remove the blob-store bytes of sid's hot state, if it has any. */
static void state_drop_hot_bytes(struct kiln_services *svc, const char *sid)
{
    char *key = state_hot_key_of(sid);

    svc->blob->ops->remove(svc->blob, key, NULL);
    free(key);
}

static void state_drop_hot(struct kiln_services *svc, const char *sid)
{
    svc->store->ops->kv_delete(svc->store, STATE_NS, sid, NULL);
    svc->store->ops->kv_delete(svc->store, STATE_NS_META, sid, NULL);
    state_drop_hot_bytes(svc, sid);
}

/* Drop sid's hot copy found corrupted, unless a save replaced it meanwhile (its metadata no
 * longer names the hash that was checked). */
static void state_drop_hot_if(struct kiln_services *svc, const char *sid, const char *sha)
{
    void *val = NULL;
    size_t vlen = 0;
    struct state_meta m;

    state_lock(svc);
    if (state_row_get(svc, STATE_NS_META, sid, &val, &vlen, NULL, NULL) == KILN_OK &&
        (!state_meta_parse(val, vlen, &m) || strcmp(m.sha256, sha) == 0))
        state_drop_hot(svc, sid);
    state_unlock(svc);
    free(val);
}

/* Read exactly size bytes of key into a new buffer and check their sha256 against sha:
 * KILN_ERR_INVALID when they are shorter, longer or different. */
static enum kiln_err state_read_blob(struct kiln_services *svc, const char *key, long long size,
                                     const char *sha, void **out, struct errbuf *eb)
{
    unsigned char *buf = xmalloc((size_t)size + 1);
    size_t off = 0, got = 0;
    char sum[SHA256_HEX_BUF];
    enum kiln_err rc = KILN_OK;

    while (off < (size_t)size) {
        size_t want = (size_t)size - off < STATE_CHUNK ? (size_t)size - off : STATE_CHUNK;
        rc = svc->blob->ops->read_at(svc->blob, key, (long long)off, buf + off, want, &got, eb);
        if (rc)
            break;
        if (got == 0) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "stored state is shorter than recorded");
            break;
        }
        off += got;
    }
    if (rc == KILN_OK) {
        state_hash(buf, (size_t)size, sum);
        if (strcmp(sum, sha) != 0)
            rc = errbuf_set(eb, KILN_ERR_INVALID, "stored state does not match its hash");
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return KILN_OK;
}

/* Check that fd holds exactly size bytes hashing to sha (pread: its offset stays 0). With out,
 * the bytes are copied into a new buffer too. KILN_ERR_INVALID when they differ. */
static enum kiln_err state_check_fd(int fd, long long size, const char *sha, void **out,
                                    struct errbuf *eb)
{
    struct sha256 *h = sha256_new();
    unsigned char *chunk = out != NULL ? xmalloc((size_t)size + 1) : xmalloc(STATE_CHUNK);
    char sum[SHA256_HEX_BUF];
    long long off = 0;
    enum kiln_err rc = KILN_OK;

    for (;;) {
        unsigned char *dst = out != NULL ? chunk + off : chunk;
        size_t want = out != NULL ? (size_t)(size - off) : STATE_CHUNK;
        ssize_t n;
        if (out != NULL && off == size)
            want = 1; /* one more byte: a longer file is a mismatch */
        n = pread(fd, dst, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errbuf_set(eb, KILN_ERR_IO, "read stored state: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        off += n;
        if (off > size)
            break;
        sha256_update(h, dst, (size_t)n);
    }
    sha256_final_hex(h, sum);
    sha256_free(h);
    if (rc == KILN_OK && (off != size || strcmp(sum, sha) != 0))
        rc = errbuf_set(eb, KILN_ERR_INVALID, "stored state does not match its hash");
    if (rc == KILN_OK && out != NULL) {
        *out = chunk;
        return KILN_OK;
    }
    free(chunk);
    return rc;
}

static bool state_same_file(const struct state_verified *v, const struct stat *st)
{
    return v->dev == st->st_dev && v->ino == st->st_ino && v->size == st->st_size &&
           v->mtime.tv_sec == st->st_mtim.tv_sec && v->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           v->ctime.tv_sec == st->st_ctim.tv_sec && v->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* True when fd is sid's file as this process last checked it, with the hash sha. */
static bool state_verified_has(struct kiln_services *svc, const char *sid, int fd, const char *sha)
{
    struct state_ctx *sc = svc->state;
    struct stat st;
    bool hit = false;

    if (sc == NULL || fstat(fd, &st) != 0)
        return false;
    pthread_mutex_lock(&sc->vmu);
    for (size_t i = 0; i < STATE_VERIFIED_SLOTS && !hit; i++)
        hit = strcmp(sc->verified[i].sid, sid) == 0 && strcmp(sc->verified[i].sha256, sha) == 0 &&
              state_same_file(&sc->verified[i], &st);
    pthread_mutex_unlock(&sc->vmu);
    return hit;
}

/* Remember fd as sid's file holding bytes with the hash sha (replacing sid's older entry). */
static void state_verified_put(struct kiln_services *svc, const char *sid, int fd, const char *sha)
{
    struct state_ctx *sc = svc->state;
    struct state_verified *v = NULL;
    struct stat st;

    if (sc == NULL || fstat(fd, &st) != 0)
        return;
    pthread_mutex_lock(&sc->vmu);
    for (size_t i = 0; i < STATE_VERIFIED_SLOTS && v == NULL; i++)
        if (strcmp(sc->verified[i].sid, sid) == 0)
            v = &sc->verified[i];
    if (v == NULL)
        v = &sc->verified[sc->vnext++ % STATE_VERIFIED_SLOTS];
    snprintf(v->sid, sizeof v->sid, "%s", sid);
    v->dev = st.st_dev;
    v->ino = st.st_ino;
    v->size = st.st_size;
    v->mtime = st.st_mtim;
    v->ctime = st.st_ctim;
    memcpy(v->sha256, sha, SHA256_HEX_BUF);
    pthread_mutex_unlock(&sc->vmu);
}

/* --- load / save / info / delete ------------------------------------------------------------- */

/* Where a load puts what it found: the arguments of state_load() and state_open(), handed down
 * as one. */
struct state_found {
    void **blob; /* a checked copy of the bytes (unless fd takes them) */
    size_t *len;
    int *fd; /* NULL: bytes in *blob; else a checked fd on them when the store has one */
    struct state_info *info;
    char **note; /* NULL, or gets a note when a corrupted state was dropped */
};

static void state_info_hot(struct kiln_services *svc, struct state_info *info, long long size,
                           const char *sha, long long updated)
{
    info->exists = true;
    info->size = size;
    memcpy(info->sha256, sha, SHA256_HEX_BUF);
    info->updated_ms = updated;
    info->expires_ms = updated + svc->cfg->state_ttl_seconds * 1000;
    info->source = "hot";
}

/* An inline row "<sha256 hex><blob>" whose blob matches the hash; sum gets the hash. */
static bool state_row_ok(const void *val, size_t vlen, char sum[SHA256_HEX_BUF])
{
    if (vlen < STATE_HDR + 2 || !state_hex_ok(val, STATE_HDR))
        return false;
    state_hash((const char *)val + STATE_HDR, vlen - STATE_HDR, sum);
    return memcmp(sum, val, STATE_HDR) == 0;
}

static enum kiln_err state_corrupt(char **note, const char *text, struct errbuf *eb)
{
    if (note != NULL && *note == NULL)
        *note = xstrdup(text);
    return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
}

/* The hot state of sid kept in the blob store: with dst->fd, a checked fd on its bytes; else a
 * checked copy in *dst->blob. */
static enum kiln_err state_load_hot_blob(struct kiln_services *svc, const char *sid,
                                         const struct state_found *dst, struct errbuf *eb)
{
    void *val = NULL;
    size_t vlen = 0;
    long long updated = 0;
    struct state_meta m = {0};
    char *key = state_hot_key_of(sid);
    int f = -1;
    bool ok;
    enum kiln_err rc;

    /* metadata and bytes are taken together: a save renames a new file over the key, which
     * leaves an fd opened here on the bytes this metadata describes */
    state_lock(svc);
    rc = state_row_get(svc, STATE_NS_META, sid, &val, &vlen, &updated, eb);
    ok = rc == KILN_OK && state_meta_parse(val, vlen, &m);
    if (ok && m.blob && svc->blob->ops->open_fd != NULL)
        rc = svc->blob->ops->open_fd(svc->blob, key, &f, NULL, eb);
    state_unlock(svc);
    free(val);
    if (rc == KILN_OK && !ok) {
        state_drop_hot_if(svc, sid, "");
        rc = state_corrupt(dst->note, STATE_NOTE_HOT_DROPPED, eb);
        goto out;
    }
    if (rc == KILN_OK && !m.blob) /* an inline state whose row went away meanwhile */
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
    if (rc)
        goto corrupt_if_missing;
    if (f >= 0 && dst->fd != NULL && state_verified_has(svc, sid, f, m.sha256)) {
        *dst->fd = f; /* checked before, not written since: no second hash */
        f = -1;
    } else if (f >= 0) {
        rc = state_check_fd(f, m.size, m.sha256, dst->fd != NULL ? NULL : dst->blob, eb);
        if (rc == KILN_OK)
            state_verified_put(svc, sid, f, m.sha256);
        if (rc == KILN_OK && dst->fd != NULL) {
            *dst->fd = f;
            f = -1;
        }
    } else {
        rc = state_read_blob(svc, key, m.size, m.sha256, dst->blob, eb);
    }
    if (rc == KILN_ERR_INVALID) {
        state_drop_hot_if(svc, sid, m.sha256);
        rc = state_corrupt(dst->note, STATE_NOTE_HOT_DROPPED, eb);
        goto out;
    }
    if (rc)
        goto out;
    *dst->len = (size_t)m.size;
    state_info_hot(svc, dst->info, m.size, m.sha256, updated);
    state_info_modules(dst->info, &m);
    goto out;
corrupt_if_missing:
    /* the metadata names bytes that are not there */
    if (rc == KILN_ERR_NOT_FOUND && m.blob) {
        state_drop_hot_if(svc, sid, m.sha256);
        rc = state_corrupt(dst->note, STATE_NOTE_HOT_DROPPED, eb);
    }
out:
    if (f >= 0)
        close(f);
    free(key);
    return rc;
}

/* The hot state of sid: an inline row (a checked copy in *dst->blob), else in the blob store. */
static enum kiln_err state_load_hot(struct kiln_services *svc, const char *sid,
                                    const struct state_found *dst, struct errbuf *eb)
{
    void *val = NULL;
    size_t vlen = 0, len;
    long long updated = 0;
    char sum[SHA256_HEX_BUF];
    enum kiln_err rc;

    rc = state_row_get(svc, STATE_NS, sid, &val, &vlen, &updated, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        return state_load_hot_blob(svc, sid, dst, eb);
    if (rc)
        return rc;
    if (!state_row_ok(val, vlen, sum))
        goto corrupt;
    len = vlen - STATE_HDR;
    *dst->len = len;
    *dst->blob = xmalloc(len + 1);
    memcpy(*dst->blob, (char *)val + STATE_HDR, len);
    free(val);
    state_info_hot(svc, dst->info, (long long)len, sum, updated);
    if (state_row_get(svc, STATE_NS_META, sid, &val, &vlen, NULL, NULL) == KILN_OK) {
        struct state_meta m;
        if (state_meta_parse(val, vlen, &m) && strcmp(m.sha256, sum) == 0)
            state_info_modules(dst->info, &m);
        free(val);
    }
    return KILN_OK;
corrupt:
    free(val);
    state_lock(svc);
    state_drop_hot(svc, sid);
    state_unlock(svc);
    return state_corrupt(dst->note, STATE_NOTE_HOT_DROPPED, eb);
}

static enum kiln_err state_load_archive(struct kiln_services *svc, const char *sid,
                                        const struct state_found *dst, struct errbuf *eb)
{
    void *val = NULL, *buf = NULL;
    size_t vlen = 0;
    long long updated = 0, now = services_now_ms(svc);
    struct state_arc a;
    char *key;
    enum kiln_err rc;

    rc = svc->store->ops->kv_get(svc->store, STATE_NS_ARC, sid, now, &val, &vlen, &updated, eb);
    if (rc)
        return rc;
    if (!state_arc_parse(val, vlen, &a) || a.size > (long long)state_max_raw(svc) + 64 * 1024) {
        free(val);
        goto corrupt;
    }
    free(val);
    if (a.expires_ms > 0 && a.expires_ms <= now)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
    key = state_blob_key_of(sid);
    rc = state_read_blob(svc, key, a.size, a.sha256, &buf, eb);
    free(key);
    if (rc == KILN_ERR_NOT_FOUND || rc == KILN_ERR_INVALID)
        goto corrupt;
    if (rc)
        return rc;
    *dst->blob = buf;
    *dst->len = (size_t)a.size;
    dst->info->exists = true;
    dst->info->size = a.size;
    memcpy(dst->info->sha256, a.sha256, SHA256_HEX_BUF);
    dst->info->updated_ms = a.archived_ms;
    dst->info->expires_ms = a.expires_ms;
    dst->info->source = "archive";
    return KILN_OK;
corrupt:
    state_lock(svc);
    state_drop_archive(svc, sid);
    state_unlock(svc);
    return state_corrupt(dst->note, "archived state was corrupted and has been dropped", eb);
}

static enum kiln_err state_get(struct kiln_services *svc, const char *sid,
                               const struct state_found *dst, struct errbuf *eb)
{
    enum kiln_err rc;

    memset(dst->info, 0, sizeof *dst->info);
    *dst->blob = NULL;
    *dst->len = 0;
    if (dst->fd != NULL)
        *dst->fd = -1;
    if (!ids_valid(sid))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No state for session");
    rc = state_load_hot(svc, sid, dst, eb);
    if (rc != KILN_ERR_NOT_FOUND)
        return rc;
    if (!svc->cfg->state_archive_enabled)
        return rc;
    return state_load_archive(svc, sid, dst, eb);
}

enum kiln_err state_load(struct kiln_services *svc, const char *sid, void **blob, size_t *len,
                         struct state_info *info, char **note, struct errbuf *eb)
{
    const struct state_found dst = {blob, len, NULL, info, note};

    return state_get(svc, sid, &dst, eb);
}

enum kiln_err state_open(struct kiln_services *svc, const char *sid, void **blob, size_t *len,
                         int *fd, struct state_info *info, char **note, struct errbuf *eb)
{
    const struct state_found dst = {blob, len, fd, info, note};

    return state_get(svc, sid, &dst, eb);
}

/* Largest blob a save reads: lz4 may expand an incompressible pickle a little. */
static size_t state_max_blob(const struct kiln_services *svc)
{
    size_t max = state_max_raw(svc);
    return max + max / 128 + 65536;
}

static void state_info_saved(struct kiln_services *svc, struct state_info *info, size_t len,
                             const char *sum, long long now)
{
    if (info == NULL)
        return;
    memset(info, 0, sizeof *info);
    state_info_hot(svc, info, (long long)len, sum, now);
}

/* A blob of at most STATE_INLINE_MAX bytes: one store row (sha256 hex + blob) and its meta,
 * written in one transaction. fresh: sid has no other copy to remove (see state_save_fd()). */
static enum kiln_err state_save_inline(struct kiln_services *svc, const char *sid, const void *blob,
                                       size_t len, const char *modules, bool fresh,
                                       struct state_info *info, struct errbuf *eb)
{
    long long now = services_now_ms(svc), ttl = svc->cfg->state_ttl_seconds * 1000;
    char sum[SHA256_HEX_BUF];
    char meta[128 + STATE_MODULES_BUF];
    char *val;
    enum kiln_err rc;

    rc = state_validate(blob, len, state_max_raw(svc), eb);
    if (rc)
        return rc;
    state_hash(blob, len, sum);
    val = xmalloc(STATE_HDR + len);
    memcpy(val, sum, STATE_HDR);
    memcpy(val + STATE_HDR, blob, len);
    state_meta_format(meta, sizeof meta, len, sum, false, modules);
    struct store_kv kv[2] = {{.ns = STATE_NS, .key = sid, .val = val, .len = STATE_HDR + len},
                             {.ns = STATE_NS_META, .key = sid, .val = meta, .len = strlen(meta)}};
    state_lock(svc);
    rc = svc->store->ops->kv_set_many(svc->store, kv, 2, now, ttl, eb);
    if (rc == KILN_OK) {
        if (!fresh) {
            state_drop_hot_bytes(svc, sid); /* a previous state too large for a row */
            /* stale now: must never come back after the hot expires */
            state_drop_archive(svc, sid);
        }
    } else {
        state_drop_hot(svc, sid);
    }
    state_unlock(svc);
    free(val);
    if (rc == KILN_OK)
        state_info_saved(svc, info, len, sum, now);
    return rc;
}

/* pread of up to len bytes at off, again after EINTR; on an error *rc is set and -1 returned. */
static ssize_t state_pread(int fd, void *buf, size_t len, size_t off, enum kiln_err *rc,
                           struct errbuf *eb)
{
    for (;;) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n >= 0)
            return n;
        if (errno != EINTR) {
            *rc = errbuf_set(eb, KILN_ERR_IO, "read state: %s", strerror(errno));
            return -1;
        }
    }
}

/* A larger blob: its first prelen bytes at pre, then (fd >= 0) the rest of fd from offset
 * prelen to its end, streamed through the validator and the hash into the blob store under
 * "statehot/<sid>" (committed without fsync: docs/state.md "Durability"), then the metadata. */
static enum kiln_err state_save_blob(struct kiln_services *svc, const char *sid,
                                     const unsigned char *pre, size_t prelen, int fd,
                                     const char *modules, bool fresh, struct state_info *info,
                                     struct errbuf *eb)
{
    long long now = services_now_ms(svc), ttl = svc->cfg->state_ttl_seconds * 1000;
    size_t total = prelen, max = state_max_blob(svc);
    struct state_check c;
    struct sha256 *h = sha256_new();
    struct blob_writer *bw = NULL;
    unsigned char *chunk = fd >= 0 ? xmalloc(STATE_CHUNK) : NULL;
    char *key = state_hot_key_of(sid);
    char sum[SHA256_HEX_BUF], meta[128 + STATE_MODULES_BUF];
    enum kiln_err rc;

    state_check_begin(&c, state_max_raw(svc));
    rc = svc->blob->ops->write_begin(svc->blob, key, &bw, eb);
    for (size_t off = 0; rc == KILN_OK && off < prelen; off += STATE_CHUNK) {
        size_t n = prelen - off < STATE_CHUNK ? prelen - off : STATE_CHUNK;
        rc = state_check_feed(&c, pre + off, n, eb);
        sha256_update(h, pre + off, n);
        if (rc == KILN_OK)
            rc = svc->blob->ops->write(bw, pre + off, n, eb);
    }
    while (rc == KILN_OK && fd >= 0) {
        ssize_t n = state_pread(fd, chunk, STATE_CHUNK, total, &rc, eb);
        if (n <= 0)
            break;
        total += (size_t)n;
        if (total > max) {
            rc = errbuf_set(eb, KILN_ERR_TOO_LARGE, "state exceeds STATE_MAX_SIZE_MB (%zu MB)",
                            state_max_raw(svc) / (size_t)MIB);
            break;
        }
        rc = state_check_feed(&c, chunk, (size_t)n, eb);
        sha256_update(h, chunk, (size_t)n);
        if (rc == KILN_OK)
            rc = svc->blob->ops->write(bw, chunk, (size_t)n, eb);
    }
    if (rc == KILN_OK)
        rc = state_check_end(&c, eb);
    sha256_final_hex(h, sum);
    if (rc) {
        if (bw != NULL)
            svc->blob->ops->write_abort(bw);
        goto out;
    }
    state_meta_format(meta, sizeof meta, total, sum, true, modules);
    state_lock(svc);
    rc = svc->blob->ops->write_commit_nosync != NULL ? svc->blob->ops->write_commit_nosync(bw, eb)
                                                     : svc->blob->ops->write_commit(bw, eb);
    if (rc == KILN_OK)
        rc = svc->store->ops->kv_set(svc->store, STATE_NS_META, sid, meta, strlen(meta), now, ttl,
                                     eb);
    if (rc == KILN_OK) {
        int f = -1;
        if (!fresh) {
            svc->store->ops->kv_delete(svc->store, STATE_NS, sid, NULL); /* a previous inline one */
            state_drop_archive(svc, sid);
        }
        /* hashed on the way in: the next load need not hash it again */
        if (svc->blob->ops->open_fd != NULL &&
            svc->blob->ops->open_fd(svc->blob, key, &f, NULL, NULL) == KILN_OK) {
            state_verified_put(svc, sid, f, sum);
            close(f);
        }
    } else {
        state_drop_hot(svc, sid);
    }
    state_unlock(svc);
    if (rc == KILN_OK)
        state_info_saved(svc, info, total, sum, now);
out:
    state_check_free(&c);
    sha256_free(h);
    free(chunk);
    free(key);
    return rc;
}

/* state_save() recording modules (may be NULL). */
static enum kiln_err state_save_mods(struct kiln_services *svc, const char *sid, const void *blob,
                                     size_t len, const char *modules, struct state_info *info,
                                     struct errbuf *eb)
{
    if (!ids_valid(sid))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No such session");
    if (len <= STATE_INLINE_MAX)
        return state_save_inline(svc, sid, blob, len, modules, false, info, eb);
    if (len > state_max_blob(svc))
        return errbuf_set(eb, KILN_ERR_TOO_LARGE, "state exceeds STATE_MAX_SIZE_MB (%zu MB)",
                          state_max_raw(svc) / (size_t)MIB);
    return state_save_blob(svc, sid, blob, len, -1, modules, false, info, eb);
}

enum kiln_err state_save(struct kiln_services *svc, const char *sid, const void *blob, size_t len,
                         struct state_info *info, struct errbuf *eb)
{
    return state_save_mods(svc, sid, blob, len, NULL, info, eb);
}

enum kiln_err state_save_fd(struct kiln_services *svc, const char *sid, int fd, const char *modules,
                            bool fresh, struct state_info *info, struct errbuf *eb)
{
    unsigned char *head = xmalloc(STATE_INLINE_MAX + 1);
    size_t got = 0;
    enum kiln_err rc = KILN_OK;

    if (!ids_valid(sid)) {
        free(head);
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "No such session");
    }
    /* the first STATE_INLINE_MAX + 1 bytes tell which kind of copy it becomes */
    while (got < STATE_INLINE_MAX + 1) {
        ssize_t n = state_pread(fd, head + got, STATE_INLINE_MAX + 1 - got, got, &rc, eb);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (rc == KILN_OK)
        rc = got <= STATE_INLINE_MAX
                 ? state_save_inline(svc, sid, head, got, modules, fresh, info, eb)
                 : state_save_blob(svc, sid, head, got, fd, modules, fresh, info, eb);
    free(head);
    return rc;
}

/* A quarter of the shorter of the hot TTL and the idle time before archiving: an unchanged
 * state's clock is refreshed at most this often. */
static long long state_touch_interval_ms(const struct kiln_services *svc)
{
    long long s = svc->cfg->state_ttl_seconds;

    if (svc->cfg->state_archive_enabled && svc->cfg->state_archive_after_seconds < s)
        s = svc->cfg->state_archive_after_seconds;
    return s * 1000 / 4;
}

/* Rewrite sid's hot metadata (and an inline row) with the same bytes and a fresh clock. */
static enum kiln_err state_touch(struct kiln_services *svc, const char *sid, const char *sha,
                                 const char *modules, struct state_info *info, struct errbuf *eb)
{
    long long now = services_now_ms(svc), ttl = svc->cfg->state_ttl_seconds * 1000;
    void *val = NULL, *row = NULL;
    size_t vlen = 0, rlen = 0;
    struct state_meta m;
    char meta[128 + STATE_MODULES_BUF];
    enum kiln_err rc;

    state_lock(svc);
    rc = svc->store->ops->kv_get(svc->store, STATE_NS_META, sid, now, &val, &vlen, NULL, eb);
    if (rc == KILN_OK && (!state_meta_parse(val, vlen, &m) || strcmp(m.sha256, sha) != 0))
        rc = errbuf_set(eb, KILN_ERR_NOT_FOUND, "the state changed meanwhile");
    if (rc == KILN_OK && !m.blob)
        rc = svc->store->ops->kv_get(svc->store, STATE_NS, sid, now, &row, &rlen, NULL, eb);
    if (rc == KILN_OK && row != NULL)
        rc = svc->store->ops->kv_set(svc->store, STATE_NS, sid, row, rlen, now, ttl, eb);
    if (rc == KILN_OK && modules != NULL) { /* learnt now: recorded with the same bytes */
        state_meta_format(meta, sizeof meta, (size_t)m.size, m.sha256, m.blob, modules);
        rc = svc->store->ops->kv_set(svc->store, STATE_NS_META, sid, meta, strlen(meta), now, ttl,
                                     eb);
    } else if (rc == KILN_OK) {
        rc = svc->store->ops->kv_set(svc->store, STATE_NS_META, sid, val, vlen, now, ttl, eb);
    }
    state_unlock(svc);
    if (rc == KILN_OK)
        state_info_saved(svc, info, (size_t)m.size, m.sha256, now);
    free(val);
    free(row);
    return rc;
}

enum kiln_err state_keep(struct kiln_services *svc, const char *sid,
                         const struct state_info *loaded, const char *modules,
                         struct state_info *info, struct errbuf *eb)
{
    bool learnt = modules != NULL && !loaded->modules_known && state_modules_ok(modules);

    void *blob = NULL;
    size_t len = 0;
    struct state_info now_info;
    enum kiln_err rc;

    *info = *loaded;
    if (!loaded->exists || !ids_valid(sid))
        return KILN_OK;
    if (strcmp(loaded->source, "hot") == 0) {
        if (!learnt && services_now_ms(svc) - loaded->updated_ms < state_touch_interval_ms(svc))
            return KILN_OK; /* nothing to write: the common case */
        rc = state_touch(svc, sid, loaded->sha256, learnt ? modules : NULL, info, eb);
        return rc == KILN_ERR_NOT_FOUND ? state_info_get(svc, sid, info, eb) : rc;
    }
    /* restored from the archive and in use again: hot again, as a save would have made it */
    rc = state_load(svc, sid, &blob, &len, &now_info, NULL, eb);
    if (rc == KILN_OK && strcmp(now_info.sha256, loaded->sha256) == 0 &&
        strcmp(now_info.source, "archive") == 0)
        rc = state_save_mods(svc, sid, blob, len, state_modules_ok(modules) ? modules : NULL, info,
                             eb);
    else if (rc == KILN_OK)
        *info = now_info;
    free(blob);
    return rc;
}

enum kiln_err state_info_get(struct kiln_services *svc, const char *sid, struct state_info *info,
                             struct errbuf *eb)
{
    void *val = NULL;
    size_t vlen = 0;
    long long updated = 0, now = services_now_ms(svc);
    struct state_meta m;
    struct state_arc a;
    enum kiln_err rc;

    memset(info, 0, sizeof *info);
    if (!ids_valid(sid))
        return KILN_OK;
    rc = svc->store->ops->kv_get(svc->store, STATE_NS_META, sid, now, &val, &vlen, &updated, eb);
    if (rc == KILN_OK) {
        bool ok = state_meta_parse(val, vlen, &m);
        free(val);
        if (ok) {
            state_info_hot(svc, info, m.size, m.sha256, updated);
            state_info_modules(info, &m);
            return KILN_OK;
        }
    } else if (rc != KILN_ERR_NOT_FOUND) {
        return rc;
    }
    if (!svc->cfg->state_archive_enabled)
        return KILN_OK;
    rc = svc->store->ops->kv_get(svc->store, STATE_NS_ARC, sid, now, &val, &vlen, &updated, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        return KILN_OK;
    if (rc)
        return rc;
    if (state_arc_parse(val, vlen, &a) && (a.expires_ms == 0 || a.expires_ms > now)) {
        info->exists = true;
        info->size = a.size;
        memcpy(info->sha256, a.sha256, SHA256_HEX_BUF);
        info->updated_ms = a.archived_ms;
        info->expires_ms = a.expires_ms;
        info->source = "archive";
    }
    free(val);
    return KILN_OK;
}

enum kiln_err state_delete(struct kiln_services *svc, const char *sid, struct errbuf *eb)
{
    (void)eb;
    if (!ids_valid(sid))
        return KILN_OK;
    state_lock(svc);
    state_drop_hot(svc, sid);
    state_drop_archive(svc, sid);
    state_unlock(svc);
    return KILN_OK;
}

/* --- the archiver ---------------------------------------------------------------------------- */

struct state_scan {
    char **ids;
    size_t n;
    long long before_ms; /* entries last written at or before this */
    long long now_ms;
    bool arc; /* scanning markers: select expired ones */
};

static enum kiln_err state_scan_cb(void *arg, const char *key, const void *val, size_t len,
                                   long long updated_ms, long long expires_ms)
{
    struct state_scan *s = arg;
    bool pick;

    (void)expires_ms;
    if (s->arc) {
        struct state_arc a;
        pick = !state_arc_parse(val, len, &a) || (a.expires_ms > 0 && a.expires_ms <= s->now_ms);
    } else {
        pick = updated_ms <= s->before_ms;
    }
    if (pick) {
        s->ids = xreallocarray(s->ids, s->n + 1, sizeof *s->ids);
        s->ids[s->n++] = xstrdup(key);
    }
    return KILN_OK;
}

/* The hot bytes of sid: an inline row's copy in *val (hash checked), or a blob-stored state's
 * checked copy. KILN_ERR_INVALID when corrupted. Under the state lock. */
static enum kiln_err state_hot_bytes(struct kiln_services *svc, const char *sid,
                                     const struct state_meta *m, void **out, size_t *len,
                                     struct errbuf *eb)
{
    void *val = NULL;
    size_t vlen = 0;
    char sum[SHA256_HEX_BUF];
    char *key;
    enum kiln_err rc;

    if (m->blob) {
        key = state_hot_key_of(sid);
        rc = state_read_blob(svc, key, m->size, m->sha256, out, eb);
        free(key);
        *len = (size_t)m->size;
        return rc == KILN_ERR_NOT_FOUND ? KILN_ERR_INVALID : rc;
    }
    rc = svc->store->ops->kv_get(svc->store, STATE_NS, sid, services_now_ms(svc), &val, &vlen, NULL,
                                 eb);
    if (rc)
        return rc;
    if (!state_row_ok(val, vlen, sum)) {
        free(val);
        return errbuf_set(eb, KILN_ERR_INVALID, "corrupted");
    }
    memmove(val, (char *)val + STATE_HDR, vlen - STATE_HDR);
    *out = val;
    *len = vlen - STATE_HDR;
    return KILN_OK;
}

/* Move sid's hot state to the archive (a durable copy in the blob store under "state/<sid>"),
 * unless it was saved again since the scan. */
static enum kiln_err state_archive_one(struct kiln_services *svc, const char *sid,
                                       long long before_ms, struct errbuf *eb)
{
    long long now = services_now_ms(svc);
    long long arc_ttl = svc->cfg->state_archive_ttl_days * 86400LL * 1000;
    void *val = NULL, *bytes = NULL;
    size_t vlen = 0, len = 0;
    long long updated = 0;
    struct state_meta m;
    char marker[200];
    char *key = state_blob_key_of(sid);
    struct blob_writer *bw = NULL;
    enum kiln_err rc;

    state_lock(svc);
    rc = svc->store->ops->kv_get(svc->store, STATE_NS_META, sid, now, &val, &vlen, &updated, eb);
    if (rc == KILN_ERR_NOT_FOUND) {
        rc = KILN_OK;
        goto out;
    }
    if (rc || updated > before_ms)
        goto out;
    if (!state_meta_parse(val, vlen, &m)) {
        state_drop_hot(svc, sid);
        goto out;
    }
    rc = state_hot_bytes(svc, sid, &m, &bytes, &len, eb);
    if (rc == KILN_ERR_NOT_FOUND || rc == KILN_ERR_INVALID) {
        state_drop_hot(svc, sid); /* expired meanwhile, or corrupted: nothing worth archiving */
        rc = KILN_OK;
        goto out;
    }
    if (rc)
        goto out;
    rc = svc->blob->ops->write_begin(svc->blob, key, &bw, eb);
    if (rc)
        goto out;
    rc = svc->blob->ops->write(bw, bytes, len, eb);
    if (rc) {
        svc->blob->ops->write_abort(bw);
        goto out;
    }
    rc = svc->blob->ops->write_commit(bw, eb);
    if (rc)
        goto out;
    snprintf(marker, sizeof marker, "%zu %s %lld %lld", len, m.sha256, now, now + arc_ttl);
    /* no store TTL on the marker: the pass removes marker and bytes together once expires_ms
     * (in the value) has passed, however long the server was down; readers check it too */
    rc = svc->store->ops->kv_set(svc->store, STATE_NS_ARC, sid, marker, strlen(marker), now, 0, eb);
    if (rc) {
        svc->blob->ops->remove(svc->blob, key, NULL);
        goto out;
    }
    state_drop_hot(svc, sid);
out:
    state_unlock(svc);
    free(val);
    free(bytes);
    free(key);
    return rc;
}

enum kiln_err state_archive_pass(struct kiln_services *svc, long long *archived, long long *expired,
                                 struct errbuf *eb)
{
    long long now = services_now_ms(svc);
    struct state_scan hot = {.before_ms = now - svc->cfg->state_archive_after_seconds * 1000,
                             .now_ms = now};
    struct state_scan arc = {.now_ms = now, .arc = true};
    long long na = 0;
    enum kiln_err rc;

    rc = svc->store->ops->kv_scan(svc->store, STATE_NS_META, "", now, state_scan_cb, &hot, eb);
    if (rc)
        goto out;
    for (size_t i = 0; i < hot.n; i++)
        if (state_archive_one(svc, hot.ids[i], hot.before_ms, NULL) == KILN_OK)
            na++;
    rc = svc->store->ops->kv_scan(svc->store, STATE_NS_ARC, "", now, state_scan_cb, &arc, eb);
    if (rc)
        goto out;
    state_lock(svc);
    for (size_t i = 0; i < arc.n; i++)
        state_drop_archive(svc, arc.ids[i]);
    state_unlock(svc);
out:
    if (archived != NULL)
        *archived = na;
    if (expired != NULL)
        *expired = (long long)arc.n;
    store_strings_free(hot.ids, hot.n);
    store_strings_free(arc.ids, arc.n);
    return rc;
}

static void *state_archiver_main(void *arg)
{
    struct state_ctx *sc = arg;
    long long interval_s = sc->svc->cfg->state_archive_check_interval_seconds;

    pthread_mutex_lock(&sc->tmu);
    while (!sc->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += interval_s > 0 ? interval_s : 1;
        pthread_cond_timedwait(&sc->tcv, &sc->tmu, &until);
        if (sc->stop)
            break;
        pthread_mutex_unlock(&sc->tmu);
        state_archive_pass(sc->svc, NULL, NULL, NULL); /* an error is retried next round */
        pthread_mutex_lock(&sc->tmu);
    }
    pthread_mutex_unlock(&sc->tmu);
    return NULL;
}

enum kiln_err state_ctx_new(struct kiln_services *svc, struct state_ctx **out, struct errbuf *eb)
{
    struct state_ctx *sc = xcalloc(1, sizeof *sc);

    sc->svc = svc;
    pthread_mutex_init(&sc->mu, NULL);
    pthread_mutex_init(&sc->tmu, NULL);
    pthread_mutex_init(&sc->vmu, NULL);
    pthread_cond_init(&sc->tcv, NULL);
    if (svc->cfg->state_persistence_enabled && svc->cfg->state_archive_enabled) {
        if (pthread_create(&sc->thread, NULL, state_archiver_main, sc) != 0) {
            state_ctx_free(sc);
            return errbuf_set(eb, KILN_ERR_INTERNAL, "cannot start the state archiver");
        }
        sc->running = true;
    }
    *out = sc;
    return KILN_OK;
}

void state_ctx_free(struct state_ctx *sc)
{
    if (sc == NULL)
        return;
    if (sc->running) {
        pthread_mutex_lock(&sc->tmu);
        sc->stop = true;
        pthread_cond_signal(&sc->tcv);
        pthread_mutex_unlock(&sc->tmu);
        pthread_join(sc->thread, NULL);
    }
    pthread_cond_destroy(&sc->tcv);
    pthread_mutex_destroy(&sc->tmu);
    pthread_mutex_destroy(&sc->vmu);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}
