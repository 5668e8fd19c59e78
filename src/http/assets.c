/* The API's self-description, embedded with the other static files (util/assets.h). */
#include "http/assets.h"

#include <stdio.h>

#include "util/assets.h"

const char *http_asset(const char *name, size_t *len)
{
    const struct kiln_asset *a;
    char path[128];

    if ((size_t)snprintf(path, sizeof path, "/%s", name) >= sizeof path)
        return NULL;
    a = assets_lookup(kiln_doc_assets, kiln_doc_assets_count, path);
    if (a == NULL)
        return NULL;
    *len = a->len;
    return (const char *)a->data;
}
