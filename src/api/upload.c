/* POST /upload and POST /upload/batch: the multipart body streams part by part into
 * core/files (reserve → stream to a blob temporary while hashing → commit), nothing is buffered
 * whole. Text fields (entity_id, kind, id, version, read_only) must come before the file parts
 * they apply to, as LibreChat sends them. One session is created per request, at the first file
 * part. /upload fails as a whole (its session is removed); /upload/batch reports each file. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "core/files.h"
#include "core/sessions.h"
#include "util/xmalloc.h"

/* Longest text field kept (entity_id is ≤ 40; ids and versions are short). */
#define API_FIELD_MAX 256

struct api_up {
    struct kiln_services *svc;
    bool batch;
    char *user_hdr; /* the User-Id header, copied */
    char *jwt_user; /* the JWT sub, copied ("" when none) */
    char entity[API_FIELD_MAX + 1];
    char kind[API_FIELD_MAX + 1];
    char form_id[API_FIELD_MAX + 1];
    /* the text field being read */
    char field_name[32];
    char field_buf[API_FIELD_MAX + 1];
    size_t field_len;
    bool in_field;
    /* the file part being read */
    struct files_upload *cur;
    char *cur_name; /* the client's name, for error entries */
    bool cur_skip;  /* a failed batch part: drop its remaining bytes */
    struct store_session sess;
    bool have_sess;
    json_t *files;
    long long ok, failed;
    bool answered; /* the handler answered with success: keep the session */
};

static void api_up_free(void *p)
{
    struct api_up *u = p;

    files_upload_abort(u->cur);
    if (!u->answered && u->have_sess)
        sessions_delete(u->svc, u->sess.id, NULL);
    store_session_clear(&u->sess);
    free(u->cur_name);
    free(u->user_hdr);
    free(u->jwt_user);
    json_decref(u->files);
    free(u);
}

static struct api_up *api_up_get(struct http_req *req)
{
    struct api_up *u = http_req_state(req);
    const struct auth_result *a;
    const char *h;

    if (u != NULL)
        return u;
    u = xcalloc(1, sizeof *u);
    u->svc = api_svc(req);
    u->batch = strstr(http_req_path(req), "/upload/batch") != NULL;
    h = http_req_header(req, "User-Id");
    u->user_hdr = h != NULL ? xstrdup(h) : NULL;
    a = http_req_auth(req);
    u->jwt_user = xstrdup(a != NULL && a->method == AUTH_JWT ? a->user_id : "");
    u->files = json_array();
    http_req_set_state(req, u, api_up_free);
    return u;
}

static const char *api_up_user(const struct api_up *u)
{
    if (u->jwt_user[0] != '\0')
        return u->jwt_user;
    if (u->user_hdr != NULL && u->user_hdr[0] != '\0')
        return u->user_hdr;
    if (strcmp(u->kind, "user") == 0 && u->form_id[0] != '\0')
        return u->form_id;
    return NULL;
}

/* A batch records the failure of one part and goes on; /upload fails as a whole. */
static enum kiln_err api_up_fail(struct api_up *u, enum kiln_err rc, struct errbuf *eb)
{
    files_upload_abort(u->cur);
    u->cur = NULL;
    if (!u->batch)
        return rc;
    json_array_append_new(u->files, json_pack("{s:s, s:o, s:s}", "status", "error", "filename",
                                              api_json_text(u->cur_name ? u->cur_name : "",
                                                            u->cur_name ? strlen(u->cur_name) : 0),
                                              "error", eb->msg));
    u->failed++;
    u->cur_skip = true;
    errbuf_clear(eb);
    return KILN_OK;
}

static enum kiln_err api_up_begin(struct http_req *req, const char *field, const char *filename,
                                  const char *ctype, struct errbuf *eb)
{
    struct api_up *u = api_up_get(req);
    enum kiln_err rc;

    (void)ctype;
    u->in_field = false;
    u->cur_skip = false;
    free(u->cur_name);
    u->cur_name = NULL;
    if (filename == NULL) {
        u->in_field = true;
        u->field_len = 0;
        snprintf(u->field_name, sizeof u->field_name, "%s", field);
        return KILN_OK;
    }
    if (strcmp(field, "file") != 0 && strcmp(field, "files") != 0) {
        u->cur_skip = true; /* a file under another field name: ignored */
        return KILN_OK;
    }
    u->cur_name = xstrdup(filename);
    if (!u->have_sess) {
        rc = sessions_validate_entity(u->entity, eb);
        if (rc)
            return rc; /* a bad entity_id fails the whole request, batch or not */
        rc = sessions_create(u->svc, api_up_user(u), u->entity, &u->sess, eb);
        if (rc)
            return rc;
        u->have_sess = true;
    }
    rc = files_upload_begin(u->svc, u->sess.id, filename, strlen(filename), u->batch,
                            u->kind[0] != '\0' ? u->kind : NULL, &u->cur, eb);
    if (rc)
        return api_up_fail(u, rc, eb);
    return KILN_OK;
}

static enum kiln_err api_up_data(struct http_req *req, const char *data, size_t len,
                                 struct errbuf *eb)
{
    struct api_up *u = api_up_get(req);
    enum kiln_err rc;

    if (u->in_field) {
        if (u->field_len + len > API_FIELD_MAX)
            return errbuf_set(eb, KILN_ERR_INVALID, "form field '%s' longer than %d bytes",
                              u->field_name, API_FIELD_MAX);
        memcpy(u->field_buf + u->field_len, data, len);
        u->field_len += len;
        return KILN_OK;
    }
    if (u->cur_skip || u->cur == NULL)
        return KILN_OK;
    rc = files_upload_write(u->cur, data, len, eb);
    if (rc)
        return api_up_fail(u, rc, eb);
    return KILN_OK;
}

/* Text fields kept: where each goes. */
struct api_up_field {
    const char *name;
    size_t off;
};
static const struct api_up_field api_up_fields[] = {
    {"entity_id", offsetof(struct api_up, entity)},
    {"kind", offsetof(struct api_up, kind)},
    {"id", offsetof(struct api_up, form_id)},
};

static enum kiln_err api_up_end(struct http_req *req, struct errbuf *eb)
{
    struct api_up *u = api_up_get(req);
    struct store_file rec = {0};
    enum kiln_err rc;

    if (u->in_field) {
        u->field_buf[u->field_len] = '\0';
        u->in_field = false;
        for (size_t i = 0; i < sizeof api_up_fields / sizeof api_up_fields[0]; i++)
            if (strcmp(u->field_name, api_up_fields[i].name) == 0)
                memcpy((char *)u + api_up_fields[i].off, u->field_buf, u->field_len + 1);
        if (strcmp(u->field_name, "kind") == 0 && u->kind[0] != '\0' &&
            strcmp(u->kind, "user") != 0 && strcmp(u->kind, "agent") != 0 &&
            strcmp(u->kind, "skill") != 0)
            return errbuf_set(eb, KILN_ERR_INVALID, "kind must be user, agent or skill");
        return KILN_OK;
    }
    if (u->cur == NULL)
        return KILN_OK;
    rc = files_upload_finish(u->cur, &rec, eb);
    u->cur = NULL;
    if (rc) {
        if (!u->batch)
            return rc;
        return api_up_fail(u, rc, eb);
    }
    if (u->batch)
        json_array_append_new(u->files,
                              json_pack("{s:s, s:s, s:o}", "status", "success", "fileId", rec.id,
                                        "filename", api_json_text(rec.name, strlen(rec.name))));
    else
        json_array_append_new(u->files, json_pack("{s:s, s:o}", "fileId", rec.id, "filename",
                                                  api_json_text(rec.name, strlen(rec.name))));
    u->ok++;
    store_file_clear(&rec);
    return KILN_OK;
}

static const struct http_multipart_ops api_up_ops = {api_up_begin, api_up_data, api_up_end};

static void api_upload(struct http_req *req)
{
    struct api_up *u = api_up_get(req);
    json_t *o;

    if (u->ok + u->failed == 0) {
        http_reply_error(req, KILN_ERR_INVALID, "No files provided: send file parts under 'file'",
                         api_details("file", "field required", "missing"));
        return;
    }
    if (u->batch && u->ok == 0) {
        /* every file failed: the error body, with the per-file report */
        http_reply_error(req, KILN_ERR_INVALID, "No file could be stored",
                         api_details("file", "every file failed", "upload_failed"));
        return;
    }
    o = json_pack("{s:s, s:s, s:s, s:O}", "message",
                  u->batch && u->failed > 0 ? "partial" : "success", "session_id", u->sess.id,
                  "storage_session_id", u->sess.id, "files", u->files);
    if (u->batch) {
        json_object_set_new(o, "succeeded", json_integer(u->ok));
        json_object_set_new(o, "failed", json_integer(u->failed));
    }
    u->answered = true;
    http_reply_json(req, 200, o);
}

const struct http_route api_upload_routes[] = {
    {"POST", "/upload", api_upload, 0, HTTP_BODY_MULTIPART, 0, &api_up_ops},
    {"POST", "/upload/batch", api_upload, 0, HTTP_BODY_MULTIPART, 0, &api_up_ops},
};
const size_t api_upload_routes_count = sizeof api_upload_routes / sizeof api_upload_routes[0];
