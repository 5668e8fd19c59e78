#include "core/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ids.h"
#include "core/names.h"
#include "core/sessions.h"
#include "util/sha256.h"
#include "util/xmalloc.h"

#define MIB (1024LL * 1024LL)

struct files_upload {
    struct kiln_services *svc;
    struct store_file rec;
    struct blob_writer *w;
    struct sha256 *h;
    long long size;
    long long max_size;   /* MAX_FILE_SIZE_MB in bytes */
    long long room;       /* bytes the session had left at begin (MAX_TOTAL_FILE_SIZE_MB) */
    const char *raw_name; /* for messages: the sanitised name */
};

enum kiln_err files_upload_begin(struct kiln_services *svc, const char *sid, const char *raw_name,
                                 size_t raw_len, bool keep_dirs, const char *kind,
                                 struct files_upload **out, struct errbuf *eb)
{
    const struct kiln_config *cfg = svc->cfg;
    struct files_upload *up = xcalloc(1, sizeof *up);
    struct store_totals t = {0};
    char *name = NULL;
    enum kiln_err rc;

    up->svc = svc;
    rc = keep_dirs
             ? names_sanitize_path(raw_name, raw_len, (size_t)cfg->max_filename_length, &name, eb)
             : names_sanitize(raw_name, raw_len, (size_t)cfg->max_filename_length, &name, eb);
    if (rc)
        goto fail;
    memcpy(up->rec.session_id, sid, IDS_BUF);
    rc = ids_new(up->rec.id, eb);
    if (rc)
        goto fail;
    up->rec.name = name;
    name = NULL;
    up->rec.original_name = xstrndup(raw_name, strnlen(raw_name, raw_len));
    up->rec.content_type = xstrdup(names_content_type(up->rec.name));
    up->rec.blob_key = xasprintf("%s/%s", sid, up->rec.id);
    up->rec.kind = xstrdup(kind != NULL ? kind : "");
    up->rec.origin = STORE_FILE_UPLOAD;
    up->rec.created_ms = services_now_ms(svc);
    up->max_size = cfg->max_file_size_mb * MIB;
    rc = svc->store->ops->session_totals(svc->store, sid, &t, eb);
    if (rc)
        goto fail;
    up->room = cfg->max_total_file_size_mb * MIB - t.bytes;
    rc = svc->store->ops->file_reserve(svc->store, &up->rec, cfg->max_files_per_session, eb);
    if (rc) {
        store_file_clear(&up->rec);
        goto fail;
    }
    rc = svc->blob->ops->write_begin(svc->blob, up->rec.blob_key, &up->w, eb);
    if (rc) {
        svc->store->ops->file_delete(svc->store, sid, up->rec.id, NULL, NULL);
        store_file_clear(&up->rec);
        goto fail;
    }
    up->h = sha256_new();
    *out = up;
    return KILN_OK;
fail:
    store_file_clear(&up->rec);
    free(name);
    free(up);
    return rc;
}

const char *files_upload_name(const struct files_upload *up)
{
    return up->rec.name;
}

enum kiln_err files_upload_write(struct files_upload *up, const void *buf, size_t len,
                                 struct errbuf *eb)
{
    const struct kiln_config *cfg = up->svc->cfg;

    up->size += (long long)len;
    if (up->size > up->max_size)
        return errbuf_set(eb, KILN_ERR_TOO_LARGE,
                          "File %s exceeds maximum size of %lldMB (MAX_FILE_SIZE_MB)", up->rec.name,
                          cfg->max_file_size_mb);
    if (up->size > up->room)
        return errbuf_set(eb, KILN_ERR_TOO_LARGE,
                          "Session files would exceed %lldMB in total (MAX_TOTAL_FILE_SIZE_MB)",
                          cfg->max_total_file_size_mb);
    sha256_update(up->h, buf, len);
    return up->svc->blob->ops->write(up->w, buf, len, eb);
}

static void files_upload_free(struct files_upload *up)
{
    sha256_free(up->h);
    store_file_clear(&up->rec);
    free(up);
}

void files_upload_abort(struct files_upload *up)
{
    if (up == NULL)
        return;
    up->svc->blob->ops->write_abort(up->w);
    up->svc->store->ops->file_delete(up->svc->store, up->rec.session_id, up->rec.id, NULL, NULL);
    files_upload_free(up);
}

enum kiln_err files_upload_finish(struct files_upload *up, struct store_file *out,
                                  struct errbuf *eb)
{
    struct kiln_services *svc = up->svc;
    enum kiln_err rc;

    sha256_final_hex(up->h, up->rec.sha256);
    rc = svc->blob->ops->write_commit(up->w, eb);
    up->w = NULL;
    if (rc)
        goto fail;
    rc = svc->store->ops->file_commit(svc->store, up->rec.session_id, up->rec.id, up->size,
                                      up->rec.sha256, svc->cfg->max_total_file_size_mb * MIB, eb);
    if (rc) {
        svc->blob->ops->remove(svc->blob, up->rec.blob_key, NULL);
        goto fail;
    }
    sessions_touch(svc, up->rec.session_id, NULL);
    up->rec.size = up->size;
    up->rec.state = STORE_FILE_COMPLETE;
    *out = up->rec;
    memset(&up->rec, 0, sizeof up->rec);
    files_upload_free(up);
    return KILN_OK;
fail:
    svc->store->ops->file_delete(svc->store, up->rec.session_id, up->rec.id, NULL, NULL);
    files_upload_free(up);
    return rc;
}

enum kiln_err files_list(struct kiln_services *svc, const char *user, const char *sid,
                         struct store_file **out, size_t *n, struct errbuf *eb)
{
    struct store_session s = {0};
    enum kiln_err rc = sessions_get(svc, user, sid, &s, eb);

    if (rc == KILN_ERR_NOT_FOUND) {
        *out = NULL;
        *n = 0;
        return KILN_OK;
    }
    if (rc)
        return rc;
    store_session_clear(&s);
    return svc->store->ops->file_list(svc->store, sid, out, n, eb);
}

enum kiln_err files_get(struct kiln_services *svc, const char *user, const char *sid,
                        const char *fid, struct store_file *out, struct errbuf *eb)
{
    struct store_session s = {0};
    enum kiln_err rc;

    if (!ids_valid(fid))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "File not found");
    rc = sessions_get(svc, user, sid, &s, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "File not found");
    if (rc)
        return rc;
    store_session_clear(&s);
    rc = svc->store->ops->file_get(svc->store, sid, fid, out, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "File not found");
    return rc;
}

enum kiln_err files_open(struct kiln_services *svc, const char *user, const char *sid,
                         const char *fid, struct files_download *out, struct errbuf *eb)
{
    enum kiln_err rc;

    memset(out, 0, sizeof *out);
    out->fd = -1;
    rc = files_get(svc, user, sid, fid, &out->rec, eb);
    if (rc)
        return rc;
    if (svc->blob->ops->open_fd != NULL)
        rc = svc->blob->ops->open_fd(svc->blob, out->rec.blob_key, &out->fd, &out->size, eb);
    else
        rc = svc->blob->ops->size(svc->blob, out->rec.blob_key, &out->size, eb);
    if (rc) {
        store_file_clear(&out->rec);
        if (rc == KILN_ERR_NOT_FOUND)
            return errbuf_set(eb, KILN_ERR_NOT_FOUND, "File not found");
    }
    return rc;
}

enum kiln_err files_read_at(struct kiln_services *svc, const struct files_download *d,
                            long long offset, void *buf, size_t len, size_t *got, struct errbuf *eb)
{
    if (d->fd >= 0) {
        ssize_t n = pread(d->fd, buf, len, (off_t)offset);
        if (n < 0)
            return errbuf_set(eb, KILN_ERR_IO, "read file failed");
        *got = (size_t)n;
        return KILN_OK;
    }
    return svc->blob->ops->read_at(svc->blob, d->rec.blob_key, offset, buf, len, got, eb);
}

void files_download_close(struct files_download *d)
{
    if (d == NULL)
        return;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    store_file_clear(&d->rec);
}

enum kiln_err files_delete(struct kiln_services *svc, const char *user, const char *sid,
                           const char *fid, struct errbuf *eb)
{
    struct store_session s = {0};
    char *key = NULL;
    enum kiln_err rc;

    if (!ids_valid(fid))
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "File not found");
    rc = sessions_get(svc, user, sid, &s, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "File not found");
    if (rc)
        return rc;
    store_session_clear(&s);
    rc = svc->store->ops->file_delete(svc->store, sid, fid, &key, eb);
    if (rc == KILN_ERR_NOT_FOUND)
        return errbuf_set(eb, KILN_ERR_NOT_FOUND, "File not found");
    if (rc)
        return rc;
    svc->blob->ops->remove(svc->blob, key, NULL); /* a failure leaves an orphan for recovery */
    free(key);
    return KILN_OK;
}

void files_iso8601(long long ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[96];

    gmtime_r(&secs, &tm);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, buf, 31);
    out[31] = '\0';
}
