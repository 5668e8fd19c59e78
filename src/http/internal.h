/* Private to src/http/: the server and request structs shared by server.c, request.c and
 * deferred.c. libmicrohttpd types appear here and nowhere outside src/http/ (STYLE rule 10). */
#ifndef KILN_HTTP_INTERNAL_H
#define KILN_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "config/config.h"
#include "http/http.h"
#include "http/router.h"
#include "http/server.h"

#define HTTP_REQ_ID_MAX 128

struct http_defer_ctl;

struct http_server {
    const struct kiln_config *cfg; /* borrowed */
    struct auth *auth;             /* borrowed */
    void *app;                     /* borrowed */
    void (*drain_fn)(void *);      /* http_server_set_drain_hook(), or NULL */
    void *drain_arg;
    struct logger *log;      /* borrowed; NULL = the process default logger */
    struct metrics *metrics; /* borrowed; NULL = no request metrics */
    struct router *router;
    struct MHD_Daemon *daemon;   /* the API: plain, or TLS when ENABLE_HTTPS */
    struct MHD_Daemon *redirect; /* plain listener answering redirects to HTTPS */
    unsigned port, redirect_port;
    bool tls;
    bool test_routes;
    char *tls_cert, *tls_key; /* PEM text, kept alive for MHD */
    atomic_bool draining;
    atomic_long inflight; /* requests begun and not yet completed */
    size_t json_max;      /* MAX_REQUEST_BODY_KB in bytes */
    struct http_defer_ctl *defer;
};

/* One extra response header, in a singly linked list. */
struct http_hdr {
    struct http_hdr *next;
    char *name, *value;
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* borrowed from MHD, valid for the request */
    const char *path;   /* raw path, borrowed from MHD */
    enum router_status rstatus;
    struct router_match match;
    char allow[96];
    char id[HTTP_REQ_ID_MAX + 1];
    char client_ip[INET6_ADDRSTRLEN];
    struct sockaddr_storage peer;
    struct timespec start;

    bool first_done; /* http_req_first() ran */
    bool authed, need_body_auth, has_auth;
    struct auth_result auth;

    /* body */
    size_t body_max;
    char *body;
    size_t body_len, body_cap;
    size_t discarded;
    enum kiln_err body_err; /* first error while reading the body; answered at the end */
    char body_msg[sizeof(struct errbuf)];
    json_t *json;
    struct MHD_PostProcessor *pp;
    bool part_open;
    uint64_t part_bytes;
    uint64_t file_bytes_in; /* bytes of multipart parts with a filename (upload metrics) */
    char *part_field, *part_filename;

    void *state;
    void (*state_free)(void *);
    char **scratch; /* decoded query values, freed at the end */
    size_t nscratch;

    /* the answer */
    struct MHD_Response *resp;
    unsigned status;
    struct http_hdr *hdrs;
    bool queued;
    uint64_t bytes_out;
    bool file_reply; /* answered with http_reply_file() (download metrics) */
    struct http_deferred *deferred;
};

/* request.c */
struct http_req *http_req_begin(struct http_server *srv, struct MHD_Connection *conn,
                                const char *url, const char *method);
void http_req_end(struct http_req *req);
void http_req_free_hdrs(struct http_req *req);
/* Queue req->resp with the common headers; returns MHD's answer. */
enum MHD_Result http_req_queue(struct http_req *req);
/* Answer an OPTIONS request: 204 with Allow, plus CORS grants for an allowed Origin. */
enum MHD_Result http_req_preflight(struct http_req *req);
/* An error answer with an explicit status and error_type (405, 414, …). */
void http_reply_error_status(struct http_req *req, unsigned status, const char *error_type,
                             const char *message, json_t *details);
/* The contract's error body as a compact JSON string; caller frees. */
char *http_error_body(const char *message, const char *error_type, json_t *details,
                      const char *req_id, long retry_after_s);

/* deferred.c */
enum kiln_err http_defer_start(struct http_server *srv, struct errbuf *eb);
/* Cancel every pending deferred request and stop the ticker and worker pool (idempotent). */
void http_defer_stop(struct http_server *srv);
/* Stop (if needed) and free the machinery; after the daemons have stopped. */
void http_defer_free(struct http_server *srv);
/* The access handler was called again for a deferred request (after a resume). */
enum MHD_Result http_defer_resumed(struct http_req *req);
/* After the handler deferred: park the connection (or answer at once if already complete). */
enum MHD_Result http_defer_park(struct http_req *req);
/* The request ended (any reason): drop the http side of its deferred handle. */
void http_defer_request_ended(struct http_req *req, bool client_gone);
long http_defer_pending(struct http_server *srv);

#endif
