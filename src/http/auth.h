/* Authentication of API requests (api-contract.md "Authentication"): X-API-Key (configurable
 * header), Bearer static key or LibreChat-minted JWT (EdDSA/Ed25519, RS256), Basic, the JSON body
 * fields, trusted networks and AUTH_ENABLED=false; constant-time key comparison; a per-client-IP
 * limit on failed attempts.
 *
 * The module knows nothing of HTTP libraries: the transport extracts the header values and the
 * body key and passes them in. Thread safety: struct auth is created once at start-up;
 * auth_check() may be called from any thread concurrently. */
#ifndef KILN_HTTP_AUTH_H
#define KILN_HTTP_AUTH_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config/config.h"
#include "util/err.h"

/* What a request presented. Every pointer is borrowed for the duration of auth_check() and may
 * be NULL when absent. */
struct auth_request {
    const char *api_key_header;  /* value of the API_KEY_HEADER header */
    const char *authorization;   /* value of the Authorization header */
    const char *body_key;        /* LIBRECHAT_CODE_API_KEY / api_key / apiKey from a JSON body */
    const struct sockaddr *peer; /* the client's address (AF_INET or AF_INET6) */
    bool admin_route;            /* admin routes accept MASTER_API_KEY only */
};

/* How the caller was authenticated. */
enum auth_method {
    AUTH_NONE,    /* AUTH_ENABLED=false */
    AUTH_TRUSTED, /* from AUTH_TRUSTED_NETWORKS */
    AUTH_KEY,     /* a static or managed API key (header, Bearer, Basic or body) */
    AUTH_JWT,     /* a verified LibreChat JWT */
    AUTH_MASTER,  /* MASTER_API_KEY */
};

/* Who the caller is, after a successful check. */
struct auth_result {
    enum auth_method method;
    char key_id[64];   /* stable non-secret id of the key used (a hash prefix), "" otherwise */
    char user_id[128]; /* JWT `sub`, "" otherwise */
};

struct auth;

/* Build the authenticator from config: static keys, the master key, JWT public keys (PEM file,
 * PEM directory or JWKS), trusted CIDRs. Caller frees with auth_free(). eb names the setting at
 * fault. */
enum kiln_err auth_new(struct auth **out, const struct kiln_config *cfg, struct errbuf *eb);
void auth_free(struct auth *a);

/* Check one request. Returns KILN_OK and fills *res, or:
 *   KILN_ERR_UNAUTHORIZED  no credential ("Missing API key") or a wrong one (eb says which)
 *   KILN_ERR_INVALID       more than one *different* credential header
 *   KILN_ERR_RATE_LIMITED  too many failures from this client IP; *retry_after_s is set
 * Failures count toward the client IP's limit; eb never contains a key. */
enum kiln_err auth_check(struct auth *a, const struct auth_request *req, struct auth_result *res,
                         long *retry_after_s, struct errbuf *eb);

#endif
