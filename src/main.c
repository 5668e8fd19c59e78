/* kiln: one binary, several subcommands (DESIGN.md). This file is only the dispatch table. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

const struct cli_command cli_commands[] = {
    {"serve", "run the HTTP API server", cmd_serve},
    {"run", "run code of one language in a fresh sandbox", cmd_run},
    {"bench-pool", "benchmark: cold sandboxes against the warm pool", cmd_bench_pool},
    {"keys", "list, create, update or revoke the API keys of a running server", cmd_keys},
    {"exec", "run code on a kiln server, with files in and out", cmd_exec},
    {"config", "validate, summarise, audit, template or export the configuration", cmd_config},
    {"version", "print the version", cmd_version},
    {"help", "show help for kiln or one command", cmd_help},
    {NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        char *help[] = {"help", NULL};
        cmd_help(1, help);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        return cmd_help(1, argv + 1);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cmd_version(1, argv + 1);
    for (const struct cli_command *c = cli_commands; c->name != NULL; c++)
        if (strcmp(c->name, argv[1]) == 0)
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown command '%s' (see `kiln help`)\n", argv[1]);
    return CLI_EXIT_USAGE;
}
