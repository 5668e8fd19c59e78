/* The Python state runner's source, embedded with the other static files (util/assets.h). */
#include "lang/py_runner.h"

#include "util/assets.h"

const char *py_runner_source(size_t *len)
{
    const struct kiln_asset *a =
        assets_lookup(kiln_runner_assets, kiln_runner_assets_count, "/kiln_runner.py");

    /* The build embeds the file; its absence is a build bug, not a run-time condition. */
    *len = a != NULL ? a->len : 0;
    return a != NULL ? (const char *)a->data : "";
}
