/* `kiln serve`: load and validate the configuration, mount the API's route groups, serve until
 * SIGTERM/SIGINT, then drain in-flight requests for SHUTDOWN_GRACE_SECONDS and exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "config/config.h"
#include "config/config_log.h"
#include "core/exec_service.h"
#include "core/health.h"
#include "core/health_services.h"
#include "core/keys.h"
#include "core/services.h"
#include "http/auth.h"
#include "http/server.h"
#include "lang/lang.h"
#include "util/log.h"
#include "util/metrics.h"

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: kiln serve [--env-file PATH]\n"
               "\n"
               "Run the HTTP API server on API_HOST:API_PORT (HTTPS_PORT with ENABLE_HTTPS).\n"
               "Settings come from the environment and a .env file (default ./.env; the\n"
               "environment wins); an invalid configuration is refused with exit status 1.\n"
               "API_PORT=0 picks a free port; the actual address is printed on standard error\n"
               "as 'kiln: listening on <url>'. SIGTERM or SIGINT stop accepting connections,\n"
               "answer /ready with 503 and let in-flight requests finish for up to\n"
               "SHUTDOWN_GRACE_SECONDS before exiting 0.\n"
               "\n"
               "options:\n"
               "  --env-file PATH  read settings from PATH instead of ./.env\n"
               "  -h, --help       show this help\n");
}

/* Shutdown: the executions of api/exec.c run on threads of their own; once the http layer has
 * cancelled them (their sandboxes are killed), wait until each has completed its handle. */
static void serve_drain_executions(void *arg)
{
    struct kiln_services *svc = arg;

    exec_gate_wait_idle(svc->gate);
}

int cmd_serve(int argc, char **argv)
{
    const char *env_file = ".env";
    struct kiln_config *cfg = NULL;
    struct cfg_findings problems = {0};
    struct logger *lg = NULL;
    struct auth *auth = NULL;
    struct http_server *srv = NULL;
    struct kiln_services *svc = NULL;
    struct metrics *metrics = NULL;
    struct health *health = NULL;
    struct health_services hsctx;
    struct keys *keys = NULL;
    const char *langs[64];
    struct http_route_group groups[API_MAX_GROUPS];
    size_t ngroups;
    const char *tr = getenv("KILN_TEST_ROUTES");
    struct errbuf eb;
    sigset_t sigs;
    int sig = 0, status = CLI_EXIT_FAIL;

    if (cli_wants_help(argc, argv)) {
        serve_usage(stdout);
        return CLI_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc) {
            env_file = argv[++i];
        } else {
            fprintf(stderr, "kiln serve: unexpected argument '%s'\n", argv[i]);
            serve_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    errbuf_clear(&eb);
    if (config_open(&cfg, env_file, NULL, NULL, &problems, &eb) != KILN_OK) {
        fprintf(stderr, "kiln serve: invalid configuration: %s\n", eb.msg);
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "  %s\n", problems.items[i].msg);
        goto out;
    }
    if (config_logger_open(cfg, &lg, &eb) != KILN_OK) {
        fprintf(stderr, "kiln serve: %s\n", eb.msg);
        goto out;
    }
    config_log_summary(cfg, lg);
    if (auth_new(&auth, cfg, &eb) != KILN_OK) {
        fprintf(stderr, "kiln serve: invalid authentication settings: %s\n", eb.msg);
        goto out;
    }
    /* Block the stop signals before any thread starts, so that only sigwait() below sees them;
     * a peer closing its socket must not kill the server. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (services_open(cfg, &svc, &eb) != KILN_OK) {
        fprintf(stderr, "kiln serve: %s\n", eb.msg);
        goto out;
    }
    {
        size_t nl = 0;
        const struct lang *all = lang_all(&nl);
        struct metrics_options mo = {0};
        if (nl > sizeof langs / sizeof langs[0])
            nl = sizeof langs / sizeof langs[0];
        for (size_t i = 0; i < nl; i++)
            langs[i] = all[i].code;
        mo.languages = langs;
        mo.nlanguages = nl;
        metrics = metrics_new(&mo);
    }
    svc->metrics = metrics;
    keys = keys_new(cfg, svc->store);
    svc->keys = keys;
    auth_set_key_lookup(auth, keys_auth_lookup, keys);
    auth_set_key_used(auth, keys_env_used, keys);
    health = health_new(&(struct health_options){(double)cfg->health_check_interval,
                                                 (double)cfg->health_check_timeout});
    if (health_services_register(health, &hsctx, svc, &eb) != KILN_OK ||
        health_start(health, &eb) != KILN_OK) {
        fprintf(stderr, "kiln serve: health checks: %s\n", eb.msg);
        goto out;
    }
    svc->health = health;
    ngroups = api_route_groups(groups, API_MAX_GROUPS);
    if (ngroups > API_MAX_GROUPS)
        ngroups = API_MAX_GROUPS;
    if (http_server_new(&srv, cfg, auth, groups, ngroups, svc, tr != NULL && strcmp(tr, "1") == 0,
                        &eb) != KILN_OK) {
        fprintf(stderr, "kiln serve: %s\n", eb.msg);
        goto out;
    }
    http_server_set_logger(srv, lg);
    http_server_set_metrics(srv, metrics);
    http_server_set_drain_hook(srv, serve_drain_executions, svc);
    if (http_server_start(srv, &eb) != KILN_OK) {
        fprintf(stderr, "kiln serve: %s\n", eb.msg);
        goto out;
    }
    while (sigwait(&sigs, &sig) != 0) {
    }
    fprintf(stderr, "kiln: %s received, draining for up to %lld s\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->shutdown_grace_seconds);
    http_server_shutdown(srv, (long)cfg->shutdown_grace_seconds);
    fprintf(stderr, "kiln: stopped\n");
    status = CLI_EXIT_OK;
out:
    http_server_free(srv);
    /* the health checks use the services: stop them first */
    health_free(health);
    keys_free(keys);
    services_close(svc);
    metrics_free(metrics);
    auth_free(auth);
    log_free(lg);
    config_free(cfg);
    config_findings_free(&problems);
    return status;
}
