#include <stdio.h>

#include "cli/cli.h"
#include "config/config.h"

/* Placeholder until the config CLI lands: validate only. */
int cmd_config(int argc, char **argv)
{
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};

    if (cli_wants_help(argc, argv)) {
        printf("usage: kiln config validate\n");
        return CLI_EXIT_OK;
    }
    if (config_load(&cfg, ".env", NULL, NULL, &eb)) {
        fprintf(stderr, "kiln config: %s\n", eb.msg);
        return CLI_EXIT_FAIL;
    }
    config_free(cfg);
    printf("configuration is valid\n");
    return CLI_EXIT_OK;
}
