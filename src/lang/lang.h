/* The single table of languages (DESIGN.md: "Every language is declared once, in lang/").
 *
 * A row says everything kiln needs to run one language: the code the API accepts, the name of the
 * source file in /mnt/data (the peers' names, so code written for them keeps working), the
 * compile and run argv inside the sandbox, the timeout multiplier, the extra environment and the
 * warm mode. lang_job_new() turns a row plus the caller's code, args and limits into the steps of
 * one struct sbx_job. Adding a language is one row in lang.c (STYLE.md rule 9).
 *
 * Thread safety: the table is static and read-only; a struct lang_job belongs to one thread. */
#ifndef KILN_LANG_LANG_H
#define KILN_LANG_LANG_H

#include <stddef.h>

#include "sandbox/sandbox.h"
#include "util/err.h"

/* How a later warm pool may keep this language ready (placeholder until the warm-pool issue;
 * today every execution starts cold). */
enum lang_warm {
    LANG_WARM_NONE,        /* a fresh sandbox per execution, nothing pre-started */
    LANG_WARM_INTERPRETER, /* the interpreter may be pre-started, waiting for code on a pipe */
    LANG_WARM_ZYGOTE,      /* a pre-imported interpreter forks per execution (Python) */
};

/* One language. All strings and arrays are static. */
struct lang {
    const char *code;   /* the API's `lang` value, lower case: "py" */
    const char *name;   /* display name: "Python" */
    const char *source; /* file the code is written to, relative to /mnt/data: "code.py" */
    /* Compile step argv, NULL-terminated, argv[0] absolute inside the sandbox; NULL when the
     * language is interpreted. Runs in /mnt/data; build outputs go under /tmp. */
    const char *const *compile;
    /* Run step argv, NULL-terminated; the execution's args are appended to it. */
    const char *const *run;
    /* The execution's wall-clock and CPU budgets are multiplied by this (1.0 when interpreted):
     * the sandbox bounds the whole execution, compile included, so the extra (m - 1) x timeout
     * is the compile step's budget. */
    double timeout_multiplier;
    /* Extra environment for this language, "NAME=value", NULL-terminated; NULL = none. Added to
     * the allow-listed base environment (see lang_base_env()). An argv element or env entry may
     * hold LANG_MEM_TOKEN (see below). */
    const char *const *env;
    enum lang_warm warm;
};

/* Replaced in a row's argv elements and env entries by the execution's memory limit in MiB.
 * Runtimes that size themselves from the machine's memory cannot see the sandbox's cgroup (it is
 * never mounted inside), so the JVM's heap and Go's GC target are told the limit this way and
 * fail with their own out-of-memory error instead of being killed. An element holding the token
 * is left out when the limit is 0 (not resolved by the caller). */
#define LANG_MEM_TOKEN "{MEM_MB}"

/* The row of a language code, compared case-insensitively ("PY" finds Python); NULL when the
 * code is unknown or NULL. Borrowed, static. */
const struct lang *lang_find(const char *code);

/* All rows in table order; *count receives their number. Borrowed, static. */
const struct lang *lang_all(size_t *count);

/* The allow-listed environment every language starts from (HOME, PATH, LANG, TMPDIR, …),
 * NULL-terminated. Borrowed, static. Nothing of the host's environment is ever passed on. */
const char *const *lang_base_env(void);

/* "none", "interpreter", "zygote". */
const char *lang_warm_name(enum lang_warm warm);

/* The most steps a language job has (compile, run). */
#define LANG_MAX_STEPS 2

/* One execution of one language, ready for sbx_run(&lj->job, ...). job points into this struct
 * and at the table; the caller keeps the struct alive until sbx_run() returns. */
struct lang_job {
    struct sbx_job job; /* hand this to sbx_run(); ws, env and limits are filled in */
    struct sbx_step steps[LANG_MAX_STEPS];
    const char **compile_argv; /* owned array: the row's compile argv, expanded; NULL if none */
    const char **run_argv;     /* owned array: the row's run argv, expanded, then the args */
    const char **env;          /* owned array: base env + the row's env, expanded */
    char **owned;              /* the expanded strings the arrays above point to */
    size_t nowned;
};

/* Build the job that runs code (code_len bytes) as language l with the nargs strings of args as
 * its argv: writes the code to /mnt/data/<l->source> in ws with sbx_workspace_put(), then fills
 * the steps (compile with stop_on_failure and its chatter on stderr, then run), the environment
 * and limits. limits are the execution's resolved limits (0 fields stay 0 = the sandbox's
 * default); wall_ms and cpu_ms are multiplied by l->timeout_multiplier. args strings are
 * borrowed and must outlive the job; ws is borrowed. stdin is /dev/null and cancel_fd -1 until the
 * caller sets them. Caller frees *out with lang_job_free(). */
enum kiln_err lang_job_new(const struct lang *l, const char *code, size_t code_len,
                           const char *const *args, size_t nargs, const struct sbx_limits *limits,
                           struct sbx_workspace *ws, struct lang_job **out, struct errbuf *eb);

/* Free a job built by lang_job_new() (not the workspace nor the args). NULL is a no-op. */
void lang_job_free(struct lang_job *lj);

#endif
