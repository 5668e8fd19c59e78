/* Health, readiness and the API's self-description. None needs a credential. */
#include <string.h>

#include "api/api.h"
#include "http/assets.h"

static void api_health(struct http_req *req)
{
    http_reply_json(req, 200,
                    json_pack("{s:s, s:s}", "status", "healthy", "version", KILN_VERSION));
}

static void api_ready(struct http_req *req)
{
    if (http_req_draining(req)) {
        http_reply_error(req, KILN_ERR_UNAVAILABLE, "Server is shutting down", NULL);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

/* Send an embedded asset, or 404 when ENABLE_DOCS is off. csp is the page's own policy. */
static void api_asset(struct http_req *req, const char *name, const char *ctype, const char *csp)
{
    size_t len = 0;
    const char *data = http_asset(name, &len);

    if (!http_req_config(req)->enable_docs || data == NULL) {
        http_reply_error(req, KILN_ERR_NOT_FOUND, "Not found", NULL);
        return;
    }
    if (csp != NULL)
        http_reply_header(req, "Content-Security-Policy", csp);
    http_reply_header(req, "Cache-Control", "no-cache");
    http_reply_bytes(req, 200, ctype, data, len);
}

static void api_openapi(struct http_req *req)
{
    api_asset(req, "openapi.json", "application/json", NULL);
}

/* The docs page runs its own script (same origin) and fetches openapi.json; nothing else. */
#define API_DOCS_CSP                                                                               \
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src "        \
    "'self'; "                                                                                     \
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

static void api_docs(struct http_req *req)
{
    api_asset(req, "api-docs.html", "text/html; charset=utf-8", API_DOCS_CSP);
}

static void api_docs_js(struct http_req *req)
{
    api_asset(req, "api-docs.js", "text/javascript; charset=utf-8", API_DOCS_CSP);
}

const struct http_route api_system_routes[] = {
    {"GET", "/health", api_health, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/ready", api_ready, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/openapi.json", api_openapi, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/docs", api_docs, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/docs/api-docs.js", api_docs_js, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
};
const size_t api_system_routes_count = sizeof api_system_routes / sizeof api_system_routes[0];
