/* Helpers shared by the route groups of api/ (not part of the http layer's handler API). */
#ifndef KILN_API_API_INT_H
#define KILN_API_API_INT_H

#include <jansson.h>
#include <stddef.h>

#include "core/exec_service.h"
#include "core/services.h"
#include "http/http.h"

/* The process's services, given to the server as its app pointer (cmd_serve). Borrowed. */
struct kiln_services *api_svc(const struct http_req *req);

/* The user a request acts for (docs/api-contract.md "Users and isolation" in docs/api.md): the
 * JWT `sub` when a JWT authenticated it, else explicit (a body or form field, a header) when
 * non-empty, else NULL (unscoped). Borrowed from req or explicit. */
const char *api_user(const struct http_req *req, const char *explicit_user);

/* The user named by a read or delete request without a body: JWT sub, else the `User-Id` header,
 * else `?id=` with `?kind=user` (LibreChat's download query), else NULL. Borrowed. */
const char *api_user_from_request(struct http_req *req);

/* A JSON string of len bytes that may hold invalid UTF-8 (program output, client names): each
 * invalid byte becomes U+FFFD. New reference, never NULL. */
json_t *api_json_text(const char *s, size_t len);

/* The contract's error body for answers sent through a deferred handle (which takes no
 * headers): {"error","error_type","details":null,"request_id","timestamp"}. New reference. */
json_t *api_error_body(enum kiln_err err, const char *message, const char *request_id);

/* One `details` array [{field, message, code}] (new reference). */
json_t *api_details(const char *field, const char *message, const char *code);

/* One POST /exec, from the parsed body to the deferred answer (src/api/exec.c). Owns everything
 * but svc and d; er's strings point into body, refs[] and args[]. */
struct api_exec_job {
    struct kiln_services *svc; /* borrowed */
    json_t *body;              /* a reference to the parsed body: er's strings point into it */
    char *user;                /* copy of the user (the JWT sub lives in the request) */
    struct exec_request er;
    struct exec_file_ref *refs; /* er.files: nfiles + 1 entries */
    char **args;                /* er.args: owned strings */
    size_t nargs;
    struct http_deferred *d;
};

/* Fill j->er (and j->refs, j->args) from the POST /exec body, which must outlive j's use of it
 * (keep it in j->body). KILN_ERR_INVALID with *details (a new reference, for the 400 answer) for
 * shapes the core does not check: body not an object, types of code, lang, entity_id,
 * session_id, files. Whatever it allocated is freed by api_exec_job_free(), success or not. Pure:
 * no services used, so the fuzzer (fuzz/exec_fuzz.c) drives it alone. */
enum kiln_err api_exec_parse(struct api_exec_job *j, json_t *body, json_t **details,
                             struct errbuf *eb);

/* Free j and all it owns (args, refs, user, its reference to body). NULL is a no-op. */
void api_exec_job_free(struct api_exec_job *j);

/* Route groups of this issue. */
extern const struct http_route api_exec_routes[];
extern const size_t api_exec_routes_count;
extern const struct http_route api_files_routes[];
extern const size_t api_files_routes_count;
extern const struct http_route api_upload_routes[];
extern const size_t api_upload_routes_count;
/* /state/{session_id} (src/api/state.c, issue 6). */
extern const struct http_route api_state_routes[];
extern const size_t api_state_routes_count;

#endif
