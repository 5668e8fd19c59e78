/* Reading and deleting files: GET /files/{sid}?detail=, GET /sessions/{sid}/objects/{fid},
 * GET /download/{sid}/{fid}, DELETE /files/{sid}/{fid}, DELETE /sessions/{sid}/objects/{fid}.
 * Another user's session answers exactly like a missing one (core/sessions.h). */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "core/files.h"
#include "core/names.h"
#include "util/xmalloc.h"

/* Downloads without a file descriptor (a blob backend without fds) are read whole up to this. */
#define API_DOWNLOAD_MEM_MAX (256LL * 1024 * 1024)

static json_t *api_file_full(const struct store_file *f)
{
    char iso[32], name[2 * IDS_BUF + 2];

    files_iso8601(f->created_ms, iso);
    snprintf(name, sizeof name, "%s/%s", f->session_id, f->id);
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:{s:s, s:o}}", "name", name, "id",
                     f->id, "session_id", f->session_id, "storage_session_id", f->session_id,
                     "size", (json_int_t)f->size, "lastModified", iso, "etag", f->sha256,
                     "contentType", f->content_type, "metadata", "content-type", f->content_type,
                     "original-filename", api_json_text(f->name, strlen(f->name)));
}

static void api_files_list(struct http_req *req)
{
    struct kiln_services *svc = api_svc(req);
    const char *sid = http_req_param(req, "session_id");
    const char *detail = http_req_query(req, "detail");
    struct store_file *recs = NULL;
    size_t n = 0;
    struct errbuf eb;
    char now[32];
    json_t *a;

    errbuf_clear(&eb);
    /* LibreChat's 5 s axios timeout on this call must not leak onto a kept-alive socket that
     * /exec reuses (research/api.md §1.4). */
    http_reply_header(req, "Connection", "close");
    if (files_list(svc, api_user_from_request(req), sid, &recs, &n, &eb) != KILN_OK) {
        http_reply_error(req, KILN_ERR_IO, eb.msg, NULL);
        return;
    }
    files_iso8601(services_now_ms(svc), now);
    a = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct store_file *f = &recs[i];
        char name[2 * IDS_BUF + 2];
        json_t *o;

        snprintf(name, sizeof name, "%s/%s", f->session_id, f->id);
        if (detail != NULL && strcmp(detail, "summary") == 0)
            o = json_pack("{s:s, s:s}", "name", name, "lastModified", now);
        else if (detail != NULL && strcmp(detail, "simple") == 0)
            o = json_pack("{s:s, s:o, s:o}", "id", f->id, "name",
                          api_json_text(f->name, strlen(f->name)), "path",
                          json_sprintf("/mnt/data/%s", f->name));
        else
            o = api_file_full(f);
        if (o != NULL)
            json_array_append_new(a, o);
    }
    store_files_free(recs, n);
    http_reply_json(req, 200, a);
}

static void api_file_meta(struct http_req *req)
{
    struct kiln_services *svc = api_svc(req);
    struct store_file rec = {0};
    struct errbuf eb;
    enum kiln_err rc;
    char now[32];

    errbuf_clear(&eb);
    rc = files_get(svc, api_user_from_request(req), http_req_param(req, "session_id"),
                   http_req_param(req, "file_id"), &rec, &eb);
    if (rc) {
        http_reply_error(req, rc, rc == KILN_ERR_NOT_FOUND ? "File not found" : eb.msg, NULL);
        return;
    }
    /* lastModified is "now" while the session lives, as in the summary listing: LibreChat
     * re-uploads what it believes older than 23 h. */
    files_iso8601(services_now_ms(svc), now);
    http_reply_json(req, 200,
                    json_pack("{s:s, s:I, s:s}", "lastModified", now, "size", (json_int_t)rec.size,
                              "etag", rec.sha256));
    store_file_clear(&rec);
}

static void api_download(struct http_req *req)
{
    struct kiln_services *svc = api_svc(req);
    struct files_download d = {.fd = -1};
    struct errbuf eb;
    enum kiln_err rc;
    char *disp;

    errbuf_clear(&eb);
    rc = files_open(svc, api_user_from_request(req), http_req_param(req, "session_id"),
                    http_req_param(req, "file_id"), &d, &eb);
    if (rc) {
        http_reply_error(req, rc, rc == KILN_ERR_NOT_FOUND ? "File not found" : eb.msg, NULL);
        return;
    }
    disp = names_content_disposition(d.rec.name);
    http_reply_header(req, "Cache-Control", "private, max-age=3600");
    http_reply_header(req, "ETag", d.rec.sha256);
    if (d.fd >= 0) {
        http_reply_file(req, d.fd, (uint64_t)d.size, d.rec.content_type, disp);
        d.fd = -1; /* taken over */
    } else if (d.size <= API_DOWNLOAD_MEM_MAX) {
        char *buf = xmalloc((size_t)d.size + 1);
        size_t got = 0;
        if (files_read_at(svc, &d, 0, buf, (size_t)d.size, &got, &eb) != KILN_OK) {
            http_reply_error(req, KILN_ERR_IO, eb.msg, NULL);
        } else {
            http_reply_header(req, "Content-Disposition", disp);
            http_reply_bytes(req, 200, d.rec.content_type, buf, got);
        }
        free(buf);
    } else {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, "file too large for this blob backend", NULL);
    }
    free(disp);
    files_download_close(&d);
}

static void api_file_delete(struct http_req *req)
{
    struct errbuf eb;
    enum kiln_err rc;

    errbuf_clear(&eb);
    rc = files_delete(api_svc(req), api_user_from_request(req), http_req_param(req, "session_id"),
                      http_req_param(req, "file_id"), &eb);
    if (rc) {
        http_reply_error(req, rc, rc == KILN_ERR_NOT_FOUND ? "File not found" : eb.msg, NULL);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:s}", "message", "File deleted successfully"));
}

const struct http_route api_files_routes[] = {
    {"GET", "/files/{session_id}", api_files_list, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/sessions/{session_id}/objects/{file_id}", api_file_meta, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/download/{session_id}/{file_id}", api_download, 0, HTTP_BODY_NONE, 0, NULL},
    {"DELETE", "/files/{session_id}/{file_id}", api_file_delete, 0, HTTP_BODY_NONE, 0, NULL},
    {"DELETE", "/sessions/{session_id}/objects/{file_id}", api_file_delete, 0, HTTP_BODY_NONE, 0,
     NULL},
};
const size_t api_files_routes_count = sizeof api_files_routes / sizeof api_files_routes[0];
