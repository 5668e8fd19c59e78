/* Dispatch shared by `kiln` and its companion executables (cli/cli.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/selfexe.h"
#include "util/xmalloc.h"

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    }
    return 0;
}

/* The companion's path: the directory of the running executable joined with name. */
static int helper_path(const char *name, char *out, size_t cap)
{
    char dir[PATH_MAX];
    if (selfexe_dir(dir, sizeof dir) != 0)
        return -1;
    int w = snprintf(out, cap, "%s/%s", dir, name);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

int cli_run_command(const struct cli_command *c, int argc, char **argv)
{
    if (c->run != NULL)
        return c->run(argc, argv);
    char path[PATH_MAX];
    if (helper_path(c->helper, path, sizeof(path)) != 0) {
        fprintf(stderr, "kiln %s: cannot locate the running executable\n", c->name);
        return CLI_EXIT_FAIL;
    }
    /* `kiln <command> args...`: ps keeps showing the command the user typed. */
    char **nargv = xcalloc((size_t)argc + 2, sizeof(*nargv));
    nargv[0] = "kiln";
    for (int i = 0; i < argc; i++)
        nargv[i + 1] = argv[i];
    execv(path, nargv);
    int e = errno;
    free(nargv);
    fprintf(stderr,
            "kiln %s: cannot run %s: %s (the command lives in the companion executable %s, "
            "built and installed beside kiln)\n",
            c->name, path, strerror(e), c->helper);
    return CLI_EXIT_FAIL;
}

static const struct cli_command *find(const struct cli_command *table, const char *name)
{
    for (const struct cli_command *c = table; c->name != NULL; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static int usage(const struct cli_command *table, const char *prog, FILE *f, int status)
{
    fprintf(f, "usage: %s <command> [options]\n\ncommands:\n", prog);
    for (const struct cli_command *c = table; c->name != NULL; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    return status;
}

int cli_main(const struct cli_command *table, const char *prog, int argc, char **argv)
{
    const struct cli_command *help = find(table, "help");
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        int status = argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        if (help == NULL)
            return usage(table, prog, argc < 2 ? stderr : stdout, status);
        char *sub[] = {"help", NULL};
        int rc = cli_run_command(help, 1, sub);
        return argc < 2 ? CLI_EXIT_USAGE : rc;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        name = "version";
    const struct cli_command *c = find(table, name);
    if (c == NULL) {
        fprintf(stderr, "%s: unknown command '%s' (see `kiln help`)\n", prog, argv[1]);
        return CLI_EXIT_USAGE;
    }
    return cli_run_command(c, argc - 1, argv + 1);
}
