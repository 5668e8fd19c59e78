/* The Python state runner (src/lang/py/kiln_runner.py, issue 6), compiled into the binary so
 * that the exec backend can place it in a sandbox's workspace: no file outside the binary has
 * to be installed or trusted.
 *
 * Thread safety: read-only data; any thread. */
#ifndef KILN_LANG_PY_RUNNER_H
#define KILN_LANG_PY_RUNNER_H

#include <stddef.h>

/* Where the runner and the state files live inside the sandbox, relative to /mnt/data. The
 * leading dot keeps them out of the collected outputs (exec/local.c skips hidden paths). */
#define PY_RUNNER_DIR       ".kiln"
#define PY_RUNNER_FILE      ".kiln/kiln_runner.py"
#define PY_RUNNER_STATE_IN  ".kiln/state.in"
#define PY_RUNNER_STATE_OUT ".kiln/state.out"
#define PY_RUNNER_NOTES     ".kiln/state.json"

/* The runner's source; *len receives its size. Borrowed, static. */
const char *py_runner_source(size_t *len);

#endif
