#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void help_usage(FILE *f)
{
    fprintf(f, "usage: kiln <command> [options]\n\n"
               "kiln runs untrusted code in fresh sandboxes behind the Code Interpreter API.\n\n"
               "commands:\n");
    for (const struct cli_command *c = cli_commands; c->name != NULL; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\nRun `kiln <command> --help` for the options of a command.\n");
}

int cmd_help(int argc, char **argv)
{
    if (argc > 1 && !cli_wants_help(argc, argv)) {
        for (const struct cli_command *c = cli_commands; c->name != NULL; c++) {
            if (strcmp(c->name, argv[1]) == 0) {
                char *sub[] = {argv[1], "--help", NULL};
                return cli_run_command(c, 2, sub);
            }
        }
        fprintf(stderr, "kiln help: unknown command '%s'\n", argv[1]);
        help_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    help_usage(stdout);
    return CLI_EXIT_OK;
}
