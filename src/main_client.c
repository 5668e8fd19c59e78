/* kiln-client: the companion executable that holds kiln's HTTP clients, `kiln exec` and
 * `kiln keys` (the only users of libcurl; cli/cli.h says why they are separate). Started by
 * `kiln exec|keys` as `kiln exec|keys ARGS...`. */
#include <stddef.h>

#include "cli/cli.h"

static const struct cli_command client_commands[] = {
    {"exec", "run code on a kiln server, with files in and out", cmd_exec, NULL},
    {"keys", "list, create, update or revoke the API keys of a running server", cmd_keys, NULL},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    return cli_main(client_commands, "kiln-client", argc, argv);
}
