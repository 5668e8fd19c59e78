#include <stdio.h>

#include "cli/cli.h"

int cmd_version(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: kiln version\n\nPrint kiln's version.\n");
        return CLI_EXIT_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "kiln version: unexpected argument '%s'\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    printf("kiln %s\n", KILN_VERSION);
    return CLI_EXIT_OK;
}
