/* kiln-server: the companion executable that holds `kiln serve` (cli/cli.h says why it is
 * separate). Started by `kiln serve` as `kiln serve ARGS...`. */
#include <stddef.h>

#include "cli/cli.h"

static const struct cli_command server_commands[] = {
    {"serve", "run the HTTP API server", cmd_serve, NULL},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    return cli_main(server_commands, "kiln-server", argc, argv);
}
