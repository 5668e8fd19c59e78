/* The HTTP server: libmicrohttpd daemons (plain or TLS, plus an optional HTTP→HTTPS redirect
 * listener), the route table, the deferred-answer machinery and graceful shutdown.
 *
 * Thread safety: create, start and stop from one thread (the main thread of `kiln serve`);
 * http_server_port() and http_server_draining() from any thread. */
#ifndef KILN_HTTP_SERVER_H
#define KILN_HTTP_SERVER_H

#include <stdbool.h>

#include "config/config.h"
#include "http/auth.h"
#include "http/http.h"
#include "util/err.h"

struct http_server;
struct logger;

/* Build a server for cfg (borrowed, must outlive it) with the route groups (borrowed, static),
 * auth (borrowed) and app (borrowed, handed to handlers via http_req_app()). Routes flagged
 * HTTP_ROUTE_HIDDEN are only mounted when test_routes is true. Caller frees with
 * http_server_free(). */
enum kiln_err http_server_new(struct http_server **out, const struct kiln_config *cfg,
                              struct auth *auth, const struct http_route_group *groups,
                              size_t ngroups, void *app, bool test_routes, struct errbuf *eb);

/* Bind and start serving (API_HOST:API_PORT, or HTTPS_PORT with ENABLE_HTTPS, plus the redirect
 * listener with SSL_REDIRECT). Writes "kiln: listening on <url>" lines to stderr with the
 * actual ports. */
enum kiln_err http_server_start(struct http_server *srv, struct errbuf *eb);

/* The bound port of the API listener (after start). */
unsigned http_server_port(const struct http_server *srv);

/* Graceful stop: refuse new connections, make /ready answer 503, wait up to grace_s seconds for
 * in-flight requests (deferred ones included), then cancel what is left and stop. */
void http_server_shutdown(struct http_server *srv, long grace_s);

/* Whether shutdown has begun (/ready answers 503). */
bool http_server_draining(const struct http_server *srv);

/* Free a server (stopping it first if needed). NULL is a no-op. */
void http_server_free(struct http_server *srv);

/* Log access lines and security events of srv through lg (borrowed, must outlive srv). Without
 * it they go to the process default logger. Call before http_server_start(). */
void http_server_set_logger(struct http_server *srv, struct logger *lg);

/* Run fn(arg) during shutdown, after every pending deferred request was cancelled and before the
 * deferred machinery is freed: the place to wait for threads of the application's own that still
 * hold deferred handles (api/exec.c runs executions on such threads). Call before start. */
void http_server_set_drain_hook(struct http_server *srv, void (*fn)(void *), void *arg);
/* Record every finished request (kiln_http_requests_total{route,method,status}, durations) and
 * every authentication failure (kiln_auth_failures_total{reason}) in m (borrowed, must outlive
 * srv). Call before http_server_start(). */
struct metrics;
void http_server_set_metrics(struct http_server *srv, struct metrics *m);

#endif
