/* libFuzzer driver of the POST /exec body parser (api_exec_parse), then of the poll-thread
 * validation after it (exec_service_validate): whatever JSON a client posts, the parser either
 * fills the request completely (code and lang set, every file ref with an id and a session, every
 * arg a string, a timeout that is never negative) or refuses it with KILN_ERR_INVALID and a
 * details array; the validator answers OK or INVALID; nothing leaks (ASan's leak check). Input:
 * the raw body, loaded as the server loads it (json_loadb with JSON_REJECT_DUPLICATES). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "core/exec_service.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything a parsed request promises the core. */
static void check_parsed(const struct api_exec_job *j, json_t *body)
{
    json_t *files = json_object_get(body, "files");
    json_t *args = json_object_get(body, "args");

    if (j->er.code == NULL || j->er.lang == NULL ||
        j->er.code_len != json_string_length(json_object_get(body, "code")))
        abort();
    if (j->er.timeout_ms < 0)
        abort();
    if ((j->er.entity_id != NULL && j->er.entity_id[0] == '\0') ||
        (j->er.session_id != NULL && j->er.session_id[0] == '\0'))
        abort();
    if (j->er.nfiles != (json_is_array(files) ? json_array_size(files) : 0) ||
        (j->er.nfiles > 0 && j->er.files != j->refs))
        abort();
    for (size_t i = 0; i < j->er.nfiles; i++)
        if (j->refs[i].id == NULL || j->refs[i].session_id == NULL)
            abort();
    if (args == NULL || json_is_null(args)) {
        if (j->er.nargs != 0)
            abort();
    } else if (j->er.nargs != (json_is_array(args) ? json_array_size(args) : 1)) {
        abort();
    }
    for (size_t i = 0; i < j->er.nargs; i++)
        if (j->er.args[i] == NULL)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_exec_job *j;
    struct exec_error_info info;
    struct errbuf eb;
    json_error_t jerr;
    json_t *body, *details = NULL;
    enum kiln_err rc;

    body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL)
        return 0; /* the server answers 400 before the handler */
    j = xcalloc(1, sizeof *j);
    j->body = body; /* the job's reference: api_exec_job_free() drops it */
    j->er.cancel_fd = -1;
    errbuf_clear(&eb);
    rc = api_exec_parse(j, body, &details, &eb);
    if (rc == KILN_OK) {
        if (details != NULL)
            abort();
        check_parsed(j, body);
        /* the user a request without a JWT acts for: the body's user_id */
        j->er.user_id = json_string_value(json_object_get(body, "user_id"));
        memset(&info, 0, sizeof info);
        rc = exec_service_validate(&j->er, &info, &eb);
        if (rc != KILN_OK && rc != KILN_ERR_INVALID)
            abort();
        if (rc == KILN_ERR_INVALID && (eb.msg[0] == '\0' || info.field[0] == '\0'))
            abort();
    } else {
        if (rc != KILN_ERR_INVALID || details == NULL || !json_is_array(details) ||
            eb.msg[0] == '\0')
            abort();
        json_decref(details);
    }
    api_exec_job_free(j);
    return 0;
}
