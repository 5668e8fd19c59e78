/* The program to run as `kiln run` and `kiln exec` both take it from their command line: the
 * code from -f FILE ('-' reads stdin) or a CODE operand, --arg A (repeatable) and --timeout S.
 * Each command keeps its own getopt loop (their other options differ) and hands these three
 * options over to cli_code_option(), then the operands to cli_code_operands().
 *
 * libc only (no jansson, no libcurl): `kiln` (run) and `kiln-client` (exec) both link it, and
 * --as-needed must not find a library of the other in either (DESIGN.md "One command, three
 * executables"; tests/e2e/test_cli.py checks the sets). */
#ifndef KILN_CLI_CLI_CODE_H
#define KILN_CLI_CLI_CODE_H

#include <stddef.h>

#include "util/err.h"

#define CLI_CODE_MAX      (16LL * 1024 * 1024) /* bytes of code read from FILE or stdin */
#define CLI_TIMEOUT_MAX_S 86400.0              /* --timeout's upper bound, seconds */

/* What the command line said. The strings point into argv (borrowed); args is owned: release
 * with cli_code_clear(). Zero-initialise before use. */
struct cli_code {
    const char *file;  /* -f FILE, or NULL; "-" = stdin */
    const char *code;  /* the CODE operand, or NULL */
    const char **args; /* --arg values, in order */
    size_t nargs;
    long long timeout_ms; /* --timeout S rounded up to whole ms; 0 = not given */
};

/* Take getopt's option opt with its argument arg if it is one of the shared ones: 'f' (the code
 * file), 'a' (--arg), 't' (--timeout, seconds in (0, CLI_TIMEOUT_MAX_S], decimals allowed).
 * Returns 1 when it was, 0 when opt is the caller's, -1 after saying on stderr why arg is wrong
 * (prog names the command in the message: "kiln run"). */
int cli_code_option(struct cli_code *c, const char *prog, int opt, const char *arg);

/* After the getopt loop: takes argv[optind] as CODE when there is one, then requires exactly one
 * of -f FILE and CODE and no operand left. 0, or -1 after saying why on stderr. */
int cli_code_operands(struct cli_code *c, const char *prog, int argc, char **argv);

/* The code: a copy of CODE, or the content of FILE (stdin for "-"), at most CLI_CODE_MAX bytes.
 * *code is NUL-terminated (*len excludes the NUL), caller frees. KILN_ERR_INVALID when FILE
 * cannot be opened, KILN_ERR_IO on a read error, KILN_ERR_TOO_LARGE past the cap. */
enum kiln_err cli_code_read(const struct cli_code *c, char **code, size_t *len, struct errbuf *eb);

/* Free what c owns (the args array; the strings are argv's). */
void cli_code_clear(struct cli_code *c);

#endif
