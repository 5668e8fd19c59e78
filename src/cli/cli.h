/* The subcommands of the one kiln binary. Each lives in its own cli/cmd_<name>.c and is listed
 * once in the table in main.c. A command returns the process exit status: 0 success, 1 failure
 * at run time, 2 usage error (conventional for command-line tools). */
#ifndef KILN_CLI_CLI_H
#define KILN_CLI_CLI_H

#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

/* One subcommand: name, one-line summary for `kiln help`, and either its entry point (argv[0]
 * is the subcommand name) or, when run is NULL, the companion executable that holds it.
 *
 * Why companions: every shared library an executable links costs page faults at each start and
 * VMAs copied at each fork, and on these VMs a page fault costs ~25 us. `kiln run` (the cold
 * sandbox path) needs only jansson and libseccomp; the server also needs libmicrohttpd (and with
 * it GnuTLS), OpenSSL and SQLite; the HTTP clients need libcurl. So `kiln` itself holds the
 * commands that need little, and execs `kiln-server` or `kiln-client`, built beside it, for the
 * rest (DESIGN.md "One command, three executables"). */
struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    const char *helper; /* companion executable's file name, used when run is NULL */
};

/* The table of subcommands, terminated by a row with name NULL. Defined in main.c. */
extern const struct cli_command cli_commands[];

/* Whether argv holds -h or --help (before any `--`). */
int cli_wants_help(int argc, char **argv);

/* Runs command c with argv[0] the command's name: calls c->run, or execs c->helper from the
 * directory of the running executable with the command line `argv0 name args...` (argv0 is kept
 * so that `ps` still shows `kiln serve`). Returns the command's exit status, or
 * CLI_EXIT_FAIL with a message on stderr when the companion cannot be executed. */
int cli_run_command(const struct cli_command *c, int argc, char **argv);

/* The entry point shared by kiln and its companions: dispatches argv[1] through table (rows up to
 * one with name NULL). prog names the executable in messages. */
int cli_main(const struct cli_command *table, const char *prog, int argc, char **argv);

int cmd_version(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_config(int argc, char **argv);
/* `kiln run -l LANG [-f FILE | CODE] ...`: one execution in a fresh sandbox (cli/cmd_run.c). */
int cmd_run(int argc, char **argv);
/* `kiln bench-pool [-n RUNS] [LANG...]`: cold vs warm-pool latency (cli/cmd_bench_pool.c). */
int cmd_bench_pool(int argc, char **argv);
/* `kiln keys list|create|update|revoke`: API keys of a running server (cli/cmd_keys.c). */
int cmd_keys(int argc, char **argv);
/* `kiln exec -l LANG [-f FILE | CODE] ...`: run code on a kiln server (cli/cmd_exec.c). */
int cmd_exec(int argc, char **argv);

#endif
