/* Files embedded in the binary at build time (docs/openapi.json, the /docs page and its
 * script), so that the API describes itself with no file on disk. */
#ifndef KILN_HTTP_ASSETS_H
#define KILN_HTTP_ASSETS_H

#include <stddef.h>

/* The bytes of embedded asset name ("openapi.json", "api-docs.html", "api-docs.js") and its
 * size in *len; NULL for an unknown name. Static, never freed. */
const char *http_asset(const char *name, size_t *len);

#endif
