/* Lookup of the embedded static files. */
#include <string.h>

#include "util/assets.h"

/* Extensions the dashboard uses; anything else is served as bytes. */
static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
};

const char *assets_content_type(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (dot && !strchr(dot, '/')) {
        for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++) {
            if (strcmp(dot, content_types[i].ext) == 0)
                return content_types[i].type;
        }
    }
    return "application/octet-stream";
}

const struct kiln_asset *assets_lookup(const struct kiln_asset *table, size_t count,
                                       const char *path)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(table[i].path, path) == 0)
            return &table[i];
    return NULL;
}

static const struct kiln_asset *find_exact(const char *path, size_t len, const char *suffix)
{
    size_t slen = strlen(suffix);
    for (size_t i = 0; i < kiln_web_assets_count; i++) {
        const char *p = kiln_web_assets[i].path;
        if (strlen(p) == len + slen && memcmp(p, path, len) == 0 && strcmp(p + len, suffix) == 0)
            return &kiln_web_assets[i];
    }
    return NULL;
}

const struct kiln_asset *assets_find(const char *path)
{
    if (!path || path[0] != '/')
        return NULL;
    size_t len = strlen(path);
    const struct kiln_asset *a = find_exact(path, len, "");
    if (!a && len > 0 && path[len - 1] == '/')
        a = find_exact(path, len, "index.html");
    else if (!a)
        a = find_exact(path, len, "/index.html");
    return a;
}
