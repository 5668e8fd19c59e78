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
    char key_id[64];   /* stable non-secret id of the key used: the first 16 hex digits of
                          its SHA-256 ("" for JWT, trusted and disabled auth) */
    char user_id[128]; /* JWT `sub`, "" otherwise */
    /* Managed keys with rate limits: the window closest to its limit (on success) or the window
     * that was exceeded (KILN_ERR_RATE_LIMITED), for the X-RateLimit-* headers. rl_limit 0 =
     * no such window. */
    long rl_limit;     /* requests allowed in the window */
    long rl_remaining; /* requests left in it */
    long rl_reset_s;   /* seconds until it resets (>= 1) */
};

struct auth;

/* Build the authenticator from config: static keys, the master key, JWT public keys (PEM file,
 * PEM directory or JWKS), trusted CIDRs. cfg is only read during the call (nothing of it is
 * kept). Caller frees with auth_free(). eb names the setting at fault. */
enum kiln_err auth_new(struct auth **out, const struct kiln_config *cfg, struct errbuf *eb);
void auth_free(struct auth *a);

/* Check one request. Returns KILN_OK and fills *res, or:
 *   KILN_ERR_UNAUTHORIZED  no credential ("Missing API key") or a wrong one ("Invalid API key",
 *                          or a JWT reason such as "Token expired")
 *   KILN_ERR_INVALID       more than one *different* credential header
 *                          ("Ambiguous authentication headers")
 *   KILN_ERR_FORBIDDEN     admin route with a valid non-master credential, or any admin request
 *                          while MASTER_API_KEY is unset (admin closed)
 *   KILN_ERR_RATE_LIMITED  too many failures from this client IP, or a managed key's own rate
 *                          limit; *retry_after_s is set (>= 1) and res->rl_* names the managed
 *                          key's window (rl_limit 0 for the client-IP limit)
 *   KILN_ERR_UNAVAILABLE   the managed-key lookup (auth_set_key_lookup) is down
 * Only wrong credentials count toward the client IP's limit (a missing key, ambiguous or
 * malformed headers do not, so a keyless LibreChat is not locked out by its own retries); a
 * blocked IP gets 429 even with a right key. eb never contains a key. retry_after_s may be
 * NULL. */
enum kiln_err auth_check(struct auth *a, const struct auth_request *req, struct auth_result *res,
                         long *retry_after_s, struct errbuf *eb);

/* The hook for managed API keys kept in a store (a later issue): consulted after the static
 * keys (API_KEY, API_KEYS, MASTER_API_KEY) did not accept a credential that is not a JWT (or
 * that is, when no JWT key is configured). It never grants an admin route: there it only tells a
 * valid non-master key (403) from a wrong one (401). It receives only the SHA-256 of the presented
 * key (stores index keys by hash and never see or keep the secret) and its key_id, and returns:
 *   KILN_OK                the key is valid (auth_check answers AUTH_KEY with that key_id)
 *   KILN_ERR_UNAUTHORIZED  unknown or revoked key (counts as a failure)
 *   KILN_ERR_RATE_LIMITED  the key's own rate limit is exhausted; set *retry_after_s
 *   KILN_ERR_UNAVAILABLE   the store cannot answer (not counted as a failure)
 * and may fill eb for the last two (and for KILN_ERR_UNAUTHORIZED, e.g. "API key disabled",
 * which auth_check then reports instead of "Invalid API key"). It may fill res->rl_* (the rate
 * window of the key), on success and with KILN_ERR_RATE_LIMITED. It runs on the request's
 * thread, concurrently. */
typedef enum kiln_err (*auth_key_lookup_fn)(void *arg, const unsigned char sha256[32],
                                            const char *key_id, long *retry_after_s,
                                            struct auth_result *res, struct errbuf *eb);

/* Install the managed-key hook (NULL fn removes it); arg is passed back, borrowed. Call at
 * start-up before the first auth_check(): it is not synchronised with running checks. */
void auth_set_key_lookup(struct auth *a, auth_key_lookup_fn fn, void *arg);

/* Called each time a static key (API_KEY, API_KEYS; not MASTER_API_KEY, and not managed keys,
 * whose lookup counts its own) accepts a request, with the key's SHA-256: the usage count of
 * environment keys. Runs on the request's thread, concurrently: cheap, non-blocking. */
typedef void (*auth_key_used_fn)(void *arg, const unsigned char sha256[32]);

/* Install the static-key use hook (NULL fn removes it); arg is passed back, borrowed. Call at
 * start-up before the first auth_check(), like auth_set_key_lookup(). */
void auth_set_key_used(struct auth *a, auth_key_used_fn fn, void *arg);

#endif
