/* Static files compiled into the binary (the admin dashboard under web/), looked up by URL path.
 * The tables are generated at build time by cmake/embed.cmake; this module only finds a file and
 * names its content type, so http/ can serve /admin-dashboard with one call.
 *
 * Thread safety: read-only data; any thread. */
#ifndef KILN_UTIL_ASSETS_H
#define KILN_UTIL_ASSETS_H

#include <stddef.h>

/* One embedded file. */
struct kiln_asset {
    const char *path;          /* URL path, e.g. "/admin-dashboard/app.js" */
    const unsigned char *data; /* its bytes, followed by a NUL not counted in len */
    size_t len;
};

/* The files of web/, generated (cmake/embed.cmake); a {NULL} row ends the table. */
extern const struct kiln_asset kiln_web_assets[];
extern const size_t kiln_web_assets_count;

/* The asset served at path: an exact match, else path + "/index.html" (so "/admin-dashboard" and
 * "/admin-dashboard/" serve the page). NULL when none. The query string must already be cut off.
 * Borrowed, static. */
const struct kiln_asset *assets_find(const char *path);

/* The Content-Type for an asset path, from its extension ("application/octet-stream" when
 * unknown). Static. */
const char *assets_content_type(const char *path);

#endif
