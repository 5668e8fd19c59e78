#include <stdio.h>

#include "cli/cli.h"

/* Placeholder until the HTTP front door lands. */
int cmd_serve(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: kiln serve\n\nRun the HTTP API server.\n");
        return CLI_EXIT_OK;
    }
    fprintf(stderr, "kiln serve: not implemented yet\n");
    return CLI_EXIT_FAIL;
}
