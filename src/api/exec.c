/* POST /exec: parse the body, validate on the poll thread (400 with details), reserve a place in
 * the execution gate (429 with Retry-After when MAX_CONCURRENT_EXECUTIONS +
 * MAX_QUEUED_EXECUTIONS are held), then defer the answer and run on a thread of the gate's
 * (exec_gate_spawn(): reused from an earlier request when one is idle) that waits in the gate,
 * runs through core/exec_service and completes the deferred handle. The
 * request's cancel fd goes to the executor: a client that disconnects kills its sandbox. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "core/exec_service.h"
#include "util/xmalloc.h"

void api_exec_job_free(struct api_exec_job *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->nargs; i++)
        free(j->args[i]);
    free(j->args);
    free(j->refs);
    free(j->user);
    json_decref(j->body);
    free(j);
}

static const char *api_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* args: an array (strings kept, other values stringified), a lone string, or any other JSON
 * value stringified; null or absent = none. */
static void api_exec_args(struct api_exec_job *j, json_t *args)
{
    size_t n;

    if (args == NULL || json_is_null(args))
        return;
    n = json_is_array(args) ? json_array_size(args) : 1;
    j->args = xcalloc(n + 1, sizeof *j->args);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_is_array(args) ? json_array_get(args, i) : args;
        if (json_is_string(a))
            j->args[i] = xstrndup(json_string_value(a), json_string_length(a));
        else {
            char *s = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
            j->args[i] = s != NULL ? s : xstrdup("");
        }
    }
    j->nargs = n;
}

enum kiln_err api_exec_parse(struct api_exec_job *j, json_t *body, json_t **details,
                             struct errbuf *eb)
{
    json_t *code = json_object_get(body, "code");
    json_t *lang = json_object_get(body, "lang");
    json_t *files = json_object_get(body, "files");
    json_t *timeout = json_object_get(body, "timeout");
    json_t *eid = json_object_get(body, "entity_id");
    json_t *sid = json_object_get(body, "session_id");
    size_t nf = 0;

    if (!json_is_object(body)) {
        *details = api_details("body", "must be a JSON object", "type_error");
        return errbuf_set(eb, KILN_ERR_INVALID, "Request body must be a JSON object");
    }
    if (code == NULL || !json_is_string(code)) {
        *details = api_details("code", code ? "must be a string" : "field required",
                               code ? "type_error" : "missing");
        return errbuf_set(eb, KILN_ERR_INVALID, "code: %s",
                          code ? "must be a string" : "field required");
    }
    if (lang == NULL || !json_is_string(lang)) {
        *details = api_details("lang", lang ? "must be a string" : "field required",
                               lang ? "type_error" : "missing");
        return errbuf_set(eb, KILN_ERR_INVALID, "lang: %s",
                          lang ? "must be a string" : "field required");
    }
    if ((eid != NULL && !json_is_null(eid) && !json_is_string(eid)) ||
        (sid != NULL && !json_is_null(sid) && !json_is_string(sid))) {
        const char *f = (eid != NULL && !json_is_null(eid) && !json_is_string(eid)) ? "entity_id"
                                                                                    : "session_id";
        *details = api_details(f, "must be a string", "type_error");
        return errbuf_set(eb, KILN_ERR_INVALID, "%s: must be a string", f);
    }
    if (files != NULL && !json_is_null(files) && !json_is_array(files)) {
        *details = api_details("files", "must be an array", "type_error");
        return errbuf_set(eb, KILN_ERR_INVALID, "files: must be an array");
    }
    j->er.code = json_string_value(code);
    j->er.code_len = json_string_length(code);
    j->er.lang = json_string_value(lang);
    j->er.entity_id = api_str(body, "entity_id");
    j->er.session_id = api_str(body, "session_id");
    if (j->er.session_id != NULL && j->er.session_id[0] == '\0')
        j->er.session_id = NULL;
    if (j->er.entity_id != NULL && j->er.entity_id[0] == '\0')
        j->er.entity_id = NULL;
    if (json_is_number(timeout)) {
        /* Clamped as a double first: casting one beyond long long's range is undefined (a
         * "timeout": 1e300 read as LLONG_MIN ran with the default instead of the maximum). The
         * core clamps to MAX_EXECUTION_TIME; <= 0 means the default. */
        double t = json_number_value(timeout);
        j->er.timeout_ms = t >= 9e18 ? LLONG_MAX : t > 0 ? (long long)t : 0;
    }
    api_exec_args(j, json_object_get(body, "args"));
    j->er.args = (const char *const *)j->args;
    j->er.nargs = j->nargs;
    if (json_is_array(files))
        nf = json_array_size(files);
    j->refs = xcalloc(nf + 1, sizeof *j->refs);
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_array_get(files, i);
        const char *ssid = api_str(f, "storage_session_id");
        if (!json_is_object(f)) {
            *details = api_details("files", "each file must be an object", "type_error");
            return errbuf_set(eb, KILN_ERR_INVALID, "files[%zu]: must be an object", i);
        }
        if (ssid != NULL && ssid[0] != '\0')
            j->er.echo_inherited = true;
        else
            ssid = api_str(f, "session_id");
        j->refs[i].id = api_str(f, "id");
        j->refs[i].session_id = ssid;
        j->refs[i].name = api_str(f, "name");
        if (j->refs[i].id == NULL || j->refs[i].session_id == NULL) {
            *details = api_details("files",
                                   "each file needs id and session_id or "
                                   "storage_session_id",
                                   "missing");
            return errbuf_set(eb, KILN_ERR_INVALID,
                              "files[%zu]: id and session_id (or storage_session_id) required", i);
        }
    }
    j->er.files = j->refs;
    j->er.nfiles = nf;
    return KILN_OK;
}

static json_t *api_exec_files(const struct exec_response *r)
{
    json_t *a = json_array();

    for (size_t i = 0; i < r->nfiles; i++) {
        const struct exec_response_file *f = &r->files[i];
        json_t *o = json_pack("{s:s, s:o, s:s, s:o}", "id", f->id, "name",
                              api_json_text(f->name, strlen(f->name)), "storage_session_id",
                              f->session_id, "path", api_json_text(f->path, strlen(f->path)));
        json_object_set_new(o, "session_id", json_string(f->session_id));
        if (f->modified)
            json_object_set_new(o, "modified_from",
                                json_pack("{s:s, s:s}", "id", f->modified_from_id,
                                          "storage_session_id", f->modified_from_session));
        if (f->inherited)
            json_object_set_new(o, "inherited", json_true());
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *api_exec_result(const struct exec_response *r)
{
    json_t *o = json_object();

    json_object_set_new(o, "session_id", json_string(r->session_id));
    json_object_set_new(o, "stdout", api_json_text(r->stdout_text, r->stdout_len));
    json_object_set_new(o, "stderr", api_json_text(r->stderr_text, r->stderr_len));
    json_object_set_new(o, "files", api_exec_files(r));
    json_object_set_new(o, "exit_code", json_integer(r->exit_code));
    json_object_set_new(o, "signal", r->signal != 0 ? json_integer(r->signal) : json_null());
    json_object_set_new(o, "status", json_string(r->status ? r->status : "error"));
    json_object_set_new(o, "wall_time_ms", json_integer(r->wall_time_ms));
    json_object_set_new(o, "cpu_time_ms", json_integer(r->cpu_time_ms));
    json_object_set_new(o, "memory_peak_kb", json_integer(r->memory_peak_kb));
    json_object_set_new(o, "has_state", json_boolean(r->has_state));
    json_object_set_new(o, "state_size", r->has_state ? json_integer(r->state_size) : json_null());
    json_object_set_new(o, "state_hash", r->has_state ? json_string(r->state_hash) : json_null());
    if (r->nstate_notes > 0) {
        json_t *notes = json_array();
        for (size_t i = 0; i < r->nstate_notes; i++)
            json_array_append_new(notes,
                                  api_json_text(r->state_notes[i], strlen(r->state_notes[i])));
        json_object_set_new(o, "state_notes", notes);
    }
    if (r->files_skipped > 0)
        json_object_set_new(o, "files_skipped", json_integer((json_int_t)r->files_skipped));
    return o;
}

static void api_exec_thread(void *arg)
{
    struct api_exec_job *j = arg;
    struct exec_gate *gate;
    struct exec_response resp;
    struct exec_error_info info;
    struct errbuf eb;
    enum kiln_err rc;

    errbuf_clear(&eb);
    j->er.cancel_fd = http_deferred_cancel_fd(j->d);
    rc = exec_service_run(j->svc, &j->er, &resp, &info, &eb);
    if (rc == KILN_OK) {
        http_deferred_reply_json(j->d, 200, api_exec_result(&resp));
    } else {
        json_t *e = api_error_body(rc, eb.msg, http_deferred_request_id(j->d));
        if (info.field[0] != '\0')
            json_object_set_new(e, "details", api_details(info.field, eb.msg, info.code));
        if (rc == KILN_ERR_RATE_LIMITED)
            json_object_set_new(e, "retry_after_seconds",
                                json_integer(info.retry_after_s > 0 ? info.retry_after_s : 1));
        http_deferred_reply_json(j->d, kiln_err_http_status(rc), e);
    }
    exec_response_clear(&resp);
    gate = j->svc->gate;
    api_exec_job_free(j);
    /* last: after this the services may be closed (shutdown waits for the release) */
    exec_gate_release(gate);
}

static void api_exec(struct http_req *req)
{
    struct kiln_services *svc = api_svc(req);
    json_t *body = http_req_json(req);
    struct api_exec_job *j = xcalloc(1, sizeof *j);
    struct exec_error_info info = {0};
    json_t *details = NULL;
    struct errbuf eb;
    const char *user;
    long long retry = 1;
    enum kiln_err rc;

    errbuf_clear(&eb);
    j->svc = svc;
    j->body = json_incref(body);
    j->er.cancel_fd = -1;
    rc = api_exec_parse(j, body, &details, &eb);
    if (rc) {
        http_reply_error(req, rc, eb.msg, details);
        goto fail;
    }
    user = api_user(req, api_str(body, "user_id"));
    j->user = user != NULL ? xstrdup(user) : NULL;
    j->er.user_id = j->user;
    rc = exec_service_validate(&j->er, &info, &eb);
    if (rc) {
        exec_service_count_refusal(svc, j->er.lang);
        http_reply_error(req, rc, eb.msg,
                         info.field[0] != '\0' ? api_details(info.field, eb.msg, info.code) : NULL);
        goto fail;
    }
    if (exec_gate_reserve(svc->gate, &retry, &eb) != KILN_OK) {
        exec_service_count_refusal(svc, j->er.lang);
        http_reply_rate_limited(req, eb.msg, (long)retry,
                                (long)svc->cfg->max_concurrent_executions);
        goto fail;
    }
    j->d = http_req_defer(req, NULL, NULL);
    if (exec_gate_spawn(svc->gate, api_exec_thread, j, &eb) != KILN_OK) {
        http_deferred_reply_error(j->d, KILN_ERR_UNAVAILABLE, eb.msg);
        exec_gate_release(svc->gate);
        api_exec_job_free(j);
    }
    return;
fail:
    api_exec_job_free(j);
}

const struct http_route api_exec_routes[] = {
    {"POST", "/exec", api_exec, 0, HTTP_BODY_JSON, 0, NULL},
};
const size_t api_exec_routes_count = sizeof api_exec_routes / sizeof api_exec_routes[0];
