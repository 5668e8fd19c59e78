/* `kiln config validate|summary|security|template|export|docs`: the settings table seen from the
 * command line. Every subcommand accepts --env-file PATH (default ./.env) and --help. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "config/config_doc.h"

/* Options shared by the subcommands. */
struct cfgcli_opts {
    const char *env_file;
    bool env_file_given; /* named with --env-file: then it must exist */
    bool markdown;
};

typedef int (*cfgcli_fn)(const struct cfgcli_opts *opts);

static int cfgcli_validate(const struct cfgcli_opts *opts);
static int cfgcli_summary(const struct cfgcli_opts *opts);
static int cfgcli_security(const struct cfgcli_opts *opts);
static int cfgcli_template(const struct cfgcli_opts *opts);
static int cfgcli_export(const struct cfgcli_opts *opts);
static int cfgcli_docs(const struct cfgcli_opts *opts);

static const struct {
    const char *name, *summary, *help;
    cfgcli_fn run;
} cfgcli_table[] = {
    {"validate", "check types, ranges and cross-checks; list every problem",
     "Load the configuration (defaults, the .env file, the environment) and check every value\n"
     "and every cross-check (TLS files readable, backends configured, limits consistent...).\n"
     "Prints each problem naming the variable, its value and what is allowed.\n"
     "Exit status: 0 valid, 1 invalid.\n",
     cfgcli_validate},
    {"summary", "the effective settings by section, with where each value came from",
     "Print every setting's effective value grouped by section, and its source: default, .env,\n"
     "env, or the alias it was read from. Secrets are masked. Exit status: 0, or 1 when the\n"
     "configuration cannot be loaded.\n",
     cfgcli_summary},
    {"security", "list weak settings with their severity",
     "Audit the configuration for weak settings (default or short keys, debug or docs in\n"
     "production, TLS off on a public bind, authentication off, open trusted networks or CORS,\n"
     "isolation off...). Exit status: 0 when nothing is of high severity, 1 otherwise.\n",
     cfgcli_security},
    {"template", "print the complete .env template (.env.example)",
     "Print the .env template generated from the settings table: every setting by section with\n"
     "its description, accepted values, aliases and embedded default. With --markdown, print\n"
     "docs/configuration.md instead (same as `kiln config docs`).\n",
     cfgcli_template},
    {"export", "the effective settings as JSON, secrets masked",
     "Print the effective settings as one JSON object {\"NAME\": value}; secrets appear as\n"
     "\"***\" (or \"\" when unset), never in clear. Exit status: 0, or 1 when the\n"
     "configuration cannot be loaded.\n",
     cfgcli_export},
    {"docs", "print docs/configuration.md (markdown reference)",
     "Print the markdown reference of every setting (docs/configuration.md): a table per\n"
     "section with variable, aliases, type, default, allowed values and description.\n",
     cfgcli_docs},
};

#define CFGCLI_COUNT (sizeof cfgcli_table / sizeof cfgcli_table[0])

static void cfgcli_usage(FILE *out)
{
    fputs("usage: kiln config <subcommand> [--env-file PATH]\n\n"
          "Inspect kiln's configuration: defaults, then the .env file, then the environment\n"
          "(highest precedence).\n\nsubcommands:\n",
          out);
    for (size_t i = 0; i < CFGCLI_COUNT; i++)
        fprintf(out, "  %-10s %s\n", cfgcli_table[i].name, cfgcli_table[i].summary);
    fputs("\noptions:\n"
          "  --env-file PATH  the .env file to read (must exist; without this option, .env in\n"
          "                   the current directory is read when present)\n"
          "  -h, --help       show help (also `kiln config <subcommand> --help`)\n",
          out);
}

/* Load everything, reporting problems; returns the config or NULL (problems printed). */
static struct kiln_config *cfgcli_load(const struct cfgcli_opts *opts, const char *what)
{
    struct cfg_findings problems = {0};
    struct kiln_config *cfg = NULL;

    config_load_all(&cfg, opts->env_file, NULL, NULL, &problems);
    if (problems.count > 0) {
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "kiln config %s: %s\n", what, problems.items[i].msg);
        fprintf(stderr, "kiln config %s: run `kiln config validate` to check the rest\n", what);
        config_free(cfg);
        cfg = NULL;
    }
    config_findings_free(&problems);
    return cfg;
}

static int cfgcli_validate(const struct cfgcli_opts *opts)
{
    struct cfg_findings problems = {0};
    struct kiln_config *cfg = NULL;
    int rc = CLI_EXIT_OK;

    config_load_all(&cfg, opts->env_file, NULL, NULL, &problems);
    config_validate(cfg, &problems);
    if (problems.count == 0) {
        printf("configuration is valid (.env file: %s%s)\n", opts->env_file,
               access(opts->env_file, F_OK) == 0 ? "" : ", not present");
    } else {
        printf("configuration is invalid: %zu problem%s\n", problems.count,
               problems.count == 1 ? "" : "s");
        for (size_t i = 0; i < problems.count; i++)
            printf("  - %s\n", problems.items[i].msg);
        rc = CLI_EXIT_FAIL;
    }
    config_findings_free(&problems);
    config_free(cfg);
    return rc;
}

static int cfgcli_summary(const struct cfgcli_opts *opts)
{
    struct kiln_config *cfg = cfgcli_load(opts, "summary");

    if (cfg == NULL)
        return CLI_EXIT_FAIL;
    printf("kiln configuration (.env file: %s%s; secrets masked)\n\n", opts->env_file,
           access(opts->env_file, F_OK) == 0 ? "" : ", not present");
    config_doc_summary(cfg, stdout);
    config_free(cfg);
    return CLI_EXIT_OK;
}

static int cfgcli_security(const struct cfgcli_opts *opts)
{
    struct cfg_findings f = {0};
    struct kiln_config *cfg = cfgcli_load(opts, "security");
    size_t high = 0;

    if (cfg == NULL)
        return CLI_EXIT_FAIL;
    config_security(cfg, &f);
    /* most severe first */
    for (int sev = CFG_SEV_HIGH; sev >= CFG_SEV_LOW; sev--)
        for (size_t i = 0; i < f.count; i++)
            if ((int)f.items[i].severity == sev)
                printf("%-6s  %-28s %s\n",
                       sev == CFG_SEV_HIGH     ? "HIGH"
                       : sev == CFG_SEV_MEDIUM ? "MEDIUM"
                                               : "LOW",
                       f.items[i].setting, f.items[i].msg);
    for (size_t i = 0; i < f.count; i++)
        high += f.items[i].severity >= CFG_SEV_HIGH;
    printf("%s%zu finding%s, %zu of high severity\n", f.count ? "\n" : "", f.count,
           f.count == 1 ? "" : "s", high);
    config_findings_free(&f);
    config_free(cfg);
    return high ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int cfgcli_template(const struct cfgcli_opts *opts)
{
    if (opts->markdown)
        config_doc_markdown(stdout);
    else
        config_doc_template(stdout);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int cfgcli_docs(const struct cfgcli_opts *opts)
{
    (void)opts;
    config_doc_markdown(stdout);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int cfgcli_export(const struct cfgcli_opts *opts)
{
    struct errbuf eb = {{0}};
    struct kiln_config *cfg = cfgcli_load(opts, "export");
    int rc = CLI_EXIT_OK;

    if (cfg == NULL)
        return CLI_EXIT_FAIL;
    if (config_doc_export(cfg, stdout, &eb) != KILN_OK) {
        fprintf(stderr, "kiln config export: %s\n", eb.msg);
        rc = CLI_EXIT_FAIL;
    }
    config_free(cfg);
    return rc;
}

int cmd_config(int argc, char **argv)
{
    struct cfgcli_opts opts = {.env_file = ".env"};
    const char *sub = NULL;
    bool help = false;
    size_t i;

    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            help = true;
        } else if (strcmp(arg, "--env-file") == 0) {
            if (a + 1 >= argc) {
                fprintf(stderr, "kiln config: --env-file needs a PATH\n");
                return CLI_EXIT_USAGE;
            }
            opts.env_file = argv[++a];
            opts.env_file_given = true;
        } else if (strncmp(arg, "--env-file=", 11) == 0) {
            opts.env_file = arg + 11;
            opts.env_file_given = true;
        } else if (strcmp(arg, "--markdown") == 0) {
            opts.markdown = true;
        } else if (arg[0] == '-') {
            fprintf(stderr, "kiln config: unknown option '%s' (see `kiln config --help`)\n", arg);
            return CLI_EXIT_USAGE;
        } else if (sub == NULL) {
            sub = arg;
        } else {
            fprintf(stderr, "kiln config: unexpected argument '%s'\n", arg);
            return CLI_EXIT_USAGE;
        }
    }
    if (sub == NULL) {
        cfgcli_usage(help ? stdout : stderr);
        return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    for (i = 0; i < CFGCLI_COUNT; i++)
        if (strcmp(cfgcli_table[i].name, sub) == 0)
            break;
    if (i == CFGCLI_COUNT) {
        fprintf(stderr, "kiln config: unknown subcommand '%s' (see `kiln config --help`)\n", sub);
        return CLI_EXIT_USAGE;
    }
    if (help) {
        printf("usage: kiln config %s [--env-file PATH]%s\n\n%s", sub,
               cfgcli_table[i].run == cfgcli_template ? " [--markdown]" : "", cfgcli_table[i].help);
        return CLI_EXIT_OK;
    }
    /* a file named on the command line must exist; the implicit ./.env is optional */
    if (opts.env_file_given && access(opts.env_file, R_OK) != 0 &&
        cfgcli_table[i].run != cfgcli_template && cfgcli_table[i].run != cfgcli_docs) {
        fprintf(stderr, "kiln config %s: --env-file %s: %s\n", sub, opts.env_file, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (opts.markdown && cfgcli_table[i].run != cfgcli_template) {
        fprintf(stderr, "kiln config: --markdown applies to `template` only\n");
        return CLI_EXIT_USAGE;
    }
    return cfgcli_table[i].run(&opts);
}
