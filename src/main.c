/* kiln: one command, three executables (DESIGN.md "One command, three executables"). This file
 * is only the dispatch table of `kiln` itself: the commands that need few shared libraries run
 * here; the server and the HTTP clients live in the companions kiln-server and kiln-client,
 * exec'd from the same directory (cli/cli.h says why). */
#include <stddef.h>

#include "cli/cli.h"

const struct cli_command cli_commands[] = {
    {"serve", "run the HTTP API server", NULL, "kiln-server"},
    {"run", "run code of one language in a fresh sandbox", cmd_run, NULL},
    {"keys", "list, create, update or revoke the API keys of a running server", NULL,
     "kiln-client"},
    {"exec", "run code on a kiln server, with files in and out", NULL, "kiln-client"},
    {"bench-pool", "benchmark: cold sandboxes against the warm pool", cmd_bench_pool, NULL},
    {"config", "validate, summarise, audit, template or export the configuration", cmd_config,
     NULL},
    {"version", "print the version", cmd_version, NULL},
    {"help", "show help for kiln or one command", cmd_help, NULL},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    return cli_main(cli_commands, "kiln", argc, argv);
}
