/* The code, --arg and --timeout of `kiln run` and `kiln exec` (cli/cli_code.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_code.h"
#include "util/xmalloc.h"

/* Seconds in (0, CLI_TIMEOUT_MAX_S] to whole milliseconds, rounded up: a tiny positive timeout
 * stays a limit of 1 ms, never 0 (which means "the default"). Rounded by hand, not with ceil():
 * kiln-client links no libm, and one more library is page faults at each start. */
static int cli_code_seconds(const char *s, long long *ms)
{
    char *end = NULL;
    double v, x;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0.0) || v > CLI_TIMEOUT_MAX_S)
        return -1;
    x = v * 1000.0; /* ≤ 8.64e7: exact in a long long */
    *ms = (long long)x;
    if ((double)*ms < x)
        (*ms)++;
    return 0;
}

int cli_code_option(struct cli_code *c, const char *prog, int opt, const char *arg)
{
    switch (opt) {
    case 'f':
        c->file = arg;
        return 1;
    case 'a':
        c->args = xreallocarray(c->args, c->nargs + 1, sizeof *c->args);
        c->args[c->nargs++] = arg;
        return 1;
    case 't':
        if (cli_code_seconds(arg, &c->timeout_ms) != 0) {
            fprintf(stderr, "%s: --timeout wants seconds in (0, %.0f], got '%s'\n", prog,
                    CLI_TIMEOUT_MAX_S, arg);
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

int cli_code_operands(struct cli_code *c, const char *prog, int argc, char **argv)
{
    if (optind < argc)
        c->code = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (pass program arguments with --arg)\n", prog,
                argv[optind]);
        return -1;
    }
    if ((c->file == NULL) == (c->code == NULL)) {
        fprintf(stderr, "%s: give the code either as CODE or with -f FILE\n", prog);
        return -1;
    }
    return 0;
}

/* Read all of fd, at most max bytes, NUL-terminated. Caller frees *buf. */
static enum kiln_err cli_code_read_fd(int fd, long long max, char **buf, size_t *len,
                                      struct errbuf *eb)
{
    size_t cap = 4096, n = 0;
    char *b = xmalloc(cap);

    for (;;) {
        if (n + 1 >= cap) {
            b = xreallocarray(b, 2, cap);
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(b);
            return errbuf_set(eb, KILN_ERR_IO, "read: %s", strerror(errno));
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if ((long long)n > max) {
            free(b);
            return errbuf_set(eb, KILN_ERR_TOO_LARGE, "more than %lld bytes", max);
        }
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return KILN_OK;
}

enum kiln_err cli_code_read(const struct cli_code *c, char **code, size_t *len, struct errbuf *eb)
{
    enum kiln_err rc;
    int fd;

    if (c->file == NULL) {
        *len = strlen(c->code);
        *code = xstrndup(c->code, *len);
        return KILN_OK;
    }
    if (strcmp(c->file, "-") == 0)
        return cli_code_read_fd(STDIN_FILENO, CLI_CODE_MAX, code, len, eb);
    fd = open(c->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errbuf_set(eb, KILN_ERR_INVALID, "%s: %s", c->file, strerror(errno));
    rc = cli_code_read_fd(fd, CLI_CODE_MAX, code, len, eb);
    close(fd);
    return rc;
}

void cli_code_clear(struct cli_code *c)
{
    free(c->args);
    c->args = NULL;
    c->nargs = 0;
}
