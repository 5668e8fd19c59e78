/* Unit tests of the settings table: defaults, types, ranges, aliases and .env precedence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_doc.h"
#include "config/config_log.h"

/* A fake environment: NULL-terminated pairs. */
static const char *fake_env(const char *name, void *arg)
{
    const char **kv = arg;
    for (; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static void test_config_defaults(void **state)
{
    const char *env[] = {NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    assert_int_equal(cfg->api_port, 8000);
    assert_int_equal(cfg->max_execution_time, 30);
    assert_string_equal(cfg->api_host, "0.0.0.0");
    assert_false(cfg->api_debug);
    config_free(cfg);
}

static void test_config_rejects_out_of_range_port_naming_variable(void **state)
{
    const char *env[] = {"API_PORT", "70000", NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_ERR_INVALID);
    assert_null(cfg);
    assert_non_null(strstr(eb.msg, "API_PORT=70000"));
    assert_non_null(strstr(eb.msg, "0 to 65535"));
}

static void test_config_codemie_aliases(void **state)
{
    const char *env[] = {"CODE_EXECUTOR_EXECUTION_TIMEOUT", "45.0", "CODE_EXECUTOR_MEMORY_LIMIT",
                         "1Gi", NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    assert_int_equal(cfg->max_execution_time, 45);
    assert_int_equal(cfg->max_memory_mb, 1024);
    config_free(cfg);
}

static void test_config_environment_wins_over_dotenv(void **state)
{
    char path[] = "/tmp/kiln-test-env-XXXXXX";
    int fd = mkstemp(path);
    const char *env[] = {"API_PORT", "9001", NULL};
    const char *text = "# comment\nAPI_PORT=9000\nexport API_HOST=\"127.0.0.1\"\nLOG_LEVEL=DEBUG\n";
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(config_load(&cfg, path, fake_env, env, &eb), KILN_OK);
    assert_int_equal(cfg->api_port, 9001);
    assert_string_equal(cfg->api_host, "127.0.0.1");
    assert_string_equal(cfg->log_level, "DEBUG");
    config_free(cfg);
    unlink(path);
}

static void test_config_enum_rejects_unknown_value(void **state)
{
    const char *env[] = {"LOG_FORMAT", "xml", NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "json|text"));
}

/* Write text to a fresh temporary file; returns its path in buf. */
static void write_tmp(char *buf, const char *text)
{
    int fd = mkstemp(buf);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_config_alias_value_maps(void **state)
{
    const char *env[] = {"CODE_EXECUTOR_EXECUTION_MODE",
                         "Sandbox",
                         "CODE_EXECUTOR_VERBOSE",
                         "TRUE",
                         "CODE_EXECUTOR_SKIP_ENVIRONMENT_SETUP",
                         "true",
                         NULL};
    const char *env2[] = {"CODE_EXECUTOR_EXECUTION_MODE", "local", "CODE_EXECUTOR_VERBOSE", "0",
                          NULL};
    const char *bad[] = {"CODE_EXECUTOR_VERBOSE", "loud", NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    const char *via = NULL;
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    assert_string_equal(cfg->execution_mode, "kubernetes");
    assert_string_equal(cfg->log_level, "DEBUG");
    assert_false(cfg->pod_pool_warmup_on_startup);
    assert_int_equal(config_origin(cfg, config_find("LOG_LEVEL"), &via), CFG_SRC_ENV);
    assert_string_equal(via, "CODE_EXECUTOR_VERBOSE");
    config_free(cfg);

    assert_int_equal(config_load(&cfg, NULL, fake_env, env2, &eb), KILN_OK);
    assert_string_equal(cfg->execution_mode, "local"); /* unmapped values pass through */
    assert_string_equal(cfg->log_level, "INFO");
    config_free(cfg);

    cfg = NULL;
    assert_int_equal(config_load(&cfg, NULL, fake_env, bad, &eb), KILN_ERR_INVALID);
    assert_null(cfg);
    assert_non_null(strstr(eb.msg, "CODE_EXECUTOR_VERBOSE=loud"));
    assert_non_null(strstr(eb.msg, "true, false"));
    assert_non_null(strstr(eb.msg, "DEBUG|INFO|WARNING|ERROR"));
}

static void test_config_alias_unit_conversion_rounds_up(void **state)
{
    const char *env[] = {"CODE_EXECUTOR_SESSION_TIMEOUT", "300.0", NULL};
    const char *env2[] = {"CODE_EXECUTOR_SESSION_TIMEOUT", "7200", NULL};
    const char *env3[] = {"CODE_EXECUTOR_SESSION_TIMEOUT", "0", NULL};
    const char *bad[] = {"CODE_EXECUTOR_SESSION_TIMEOUT", "soon", NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    assert_int_equal(cfg->session_ttl_hours, 1);
    config_free(cfg);
    assert_int_equal(config_load(&cfg, NULL, fake_env, env2, &eb), KILN_OK);
    assert_int_equal(cfg->session_ttl_hours, 2);
    config_free(cfg);
    assert_int_equal(config_load(&cfg, NULL, fake_env, env3, &eb), KILN_OK);
    assert_int_equal(cfg->session_ttl_hours, 0);
    config_free(cfg);
    assert_int_equal(config_load(&cfg, NULL, fake_env, bad, &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "CODE_EXECUTOR_SESSION_TIMEOUT=soon"));
}

static void test_config_alias_syntax_parses(void **state)
{
    const struct cfg_setting *s = config_find("EXECUTION_MODE");
    struct cfg_alias a;
    size_t pos = 0;
    (void)state;

    assert_non_null(s);
    assert_true(config_alias_next(s, &pos, &a));
    assert_string_equal(a.name, "CODE_EXECUTOR_EXECUTION_MODE");
    assert_non_null(a.map);
    assert_int_equal(a.map_len, strlen("sandbox=kubernetes"));
    assert_false(config_alias_next(s, &pos, &a));
    assert_ptr_equal(config_find("CODE_EXECUTOR_EXECUTION_MODE"), s);
    assert_ptr_equal(config_find("CODE_EXECUTOR_SESSION_TIMEOUT"),
                     config_find("SESSION_TTL_HOURS"));
    assert_null(config_find("CODE_EXECUTOR_EXECUTION_MODE{sandbox=kubernetes}"));
}

static void test_config_ranges_and_quantities(void **state)
{
    static const struct {
        const char *name, *value;
        bool ok;
        long long mb;
    } cases[] = {
        {"MAX_MEMORY_MB", "128Mi", true, 128},
        {"MAX_MEMORY_MB", "1Gi", true, 1024},
        {"MAX_MEMORY_MB", "1.5Gi", true, 1536},
        {"MAX_MEMORY_MB", "512", true, 512},
        {"MAX_MEMORY_MB", "1G", true, 953},
        {"MAX_MEMORY_MB", "8Mi", false, 0},
        {"MAX_MEMORY_MB", "12Zi", false, 0},
        {"MAX_MEMORY_MB", "-5Mi", false, 0},
        {"MAX_EXECUTION_TIME", "30.0", true, 0},
        {"MAX_EXECUTION_TIME", "30.5", false, 0},
        {"MAX_EXECUTION_TIME", "0", false, 0},
        {"API_PORT", "65535", true, 0},
        {"API_PORT", "-1", false, 0},
        {"API_PORT", "80x", false, 0},
        {"API_PORT", "", false, 0},
        {"AUTH_ENABLED", "maybe", false, 0},
        {"AUTH_ENABLED", "OFF", true, 0},
        {"SESSION_ID_LENGTH", "32", false, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {cases[i].name, cases[i].value, NULL};
        struct kiln_config *cfg = NULL;
        struct errbuf eb = {{0}};
        enum kiln_err rc = config_load(&cfg, NULL, fake_env, env, &eb);

        if (cases[i].ok != (rc == KILN_OK))
            fail_msg("%s=%s: expected %s, got %s", cases[i].name, cases[i].value,
                     cases[i].ok ? "ok" : "error", eb.msg);
        if (rc == KILN_OK && cases[i].mb)
            assert_int_equal(cfg->max_memory_mb, cases[i].mb);
        if (rc != KILN_OK) {
            char want[128];
            snprintf(want, sizeof want, "%s=%s ", cases[i].name, cases[i].value);
            assert_non_null(strstr(eb.msg, want));
            assert_non_null(strstr(eb.msg, "allowed: "));
        }
        config_free(cfg);
    }
}

static void test_config_dotenv_quoting_comments_export(void **state)
{
    char path[] = "/tmp/kiln-test-env-XXXXXX";
    const char *env[] = {NULL};
    const char *text = "  # full-line comment\n"
                       "\n"
                       "export API_HOST = 127.0.0.2\n"
                       "JWT_ISSUER=\"has # hash and \\\"quotes\\\"\" # trailing comment\n"
                       "JWT_AUDIENCE='single $quoted \\n literal'\n"
                       "API_KEY_HEADER=x-key # inline comment\n"
                       "K8S_IMAGE_TAG=v1#not-a-comment\n"
                       "UNRELATED_VARIABLE=whatever\n"
                       "API_PORT=1\n"
                       "API_PORT=2\n";
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    write_tmp(path, text);
    assert_int_equal(config_load(&cfg, path, fake_env, env, &eb), KILN_OK);
    assert_string_equal(cfg->api_host, "127.0.0.2");
    assert_string_equal(cfg->jwt_issuer, "has # hash and \"quotes\"");
    assert_string_equal(cfg->jwt_audience, "single $quoted \\n literal");
    assert_string_equal(cfg->api_key_header, "x-key");
    assert_string_equal(cfg->k8s_image_tag, "v1#not-a-comment");
    assert_int_equal(cfg->api_port, 2); /* the last occurrence wins */
    assert_int_equal(config_origin(cfg, config_find("API_PORT"), NULL), CFG_SRC_DOTENV);
    assert_int_equal(config_origin(cfg, config_find("MAX_PIDS"), NULL), CFG_SRC_DEFAULT);
    config_free(cfg);
    unlink(path);
}

static void test_config_dotenv_bad_lines_are_reported_all(void **state)
{
    char path[] = "/tmp/kiln-test-env-XXXXXX";
    const char *env[] = {NULL};
    const char *text = "NOEQUALS\nAPI_HOST=\"unterminated\nAPI_PORT=abc\nMAX_PIDS=9\n";
    struct kiln_config *cfg = NULL;
    struct cfg_findings p = {0};
    struct errbuf eb = {{0}};
    (void)state;

    write_tmp(path, text);
    assert_int_equal(config_load(&cfg, path, fake_env, env, &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, ":1: expected KEY=VALUE"));
    config_load_all(&cfg, path, fake_env, env, &p);
    assert_non_null(cfg);
    assert_int_equal(p.count, 3);
    assert_non_null(strstr(p.items[0].msg, ":1: expected KEY=VALUE"));
    assert_non_null(strstr(p.items[1].msg, ":2: API_HOST: unterminated quote"));
    assert_non_null(strstr(p.items[2].msg, "API_PORT=abc"));
    assert_non_null(strstr(p.items[2].msg, "(from .env)"));
    assert_int_equal(cfg->api_port, 8000); /* bad values keep the default */
    assert_int_equal(cfg->max_pids, 9);    /* good lines still apply */
    config_findings_free(&p);
    config_free(cfg);
    unlink(path);
}

static void test_config_precedence_env_alias_over_dotenv_primary(void **state)
{
    char path[] = "/tmp/kiln-test-env-XXXXXX";
    const char *env[] = {"CODE_EXECUTOR_EXECUTION_TIMEOUT", "40", NULL};
    const char *env2[] = {"MAX_EXECUTION_TIME", "50", "CODE_EXECUTOR_EXECUTION_TIMEOUT", "40",
                          NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    const char *via;
    (void)state;

    write_tmp(path, "MAX_EXECUTION_TIME=20\nCODE_EXECUTOR_MEMORY_LIMIT=256Mi\n");
    assert_int_equal(config_load(&cfg, path, fake_env, env, &eb), KILN_OK);
    assert_int_equal(cfg->max_execution_time, 40);
    assert_int_equal(config_origin(cfg, config_find("MAX_EXECUTION_TIME"), &via), CFG_SRC_ENV);
    assert_string_equal(via, "CODE_EXECUTOR_EXECUTION_TIMEOUT");
    /* one alias feeds every row that lists it, from .env too */
    assert_int_equal(cfg->max_memory_mb, 256);
    assert_string_equal(cfg->k8s_memory_limit, "256Mi");
    assert_int_equal(config_origin(cfg, config_find("K8S_MEMORY_LIMIT"), &via), CFG_SRC_DOTENV);
    config_free(cfg);
    assert_int_equal(config_load(&cfg, path, fake_env, env2, &eb), KILN_OK);
    assert_int_equal(cfg->max_execution_time, 50); /* the primary name beats its aliases */
    config_free(cfg);
    unlink(path);
}

/* Load env, validate, and return the findings joined by newlines (caller frees). */
static char *validate_env(const char **env, size_t *count)
{
    struct kiln_config *cfg = NULL;
    struct cfg_findings p = {0};
    size_t len = 1;
    char *out;

    config_load_all(&cfg, NULL, fake_env, (void *)env, &p);
    config_validate(cfg, &p);
    for (size_t i = 0; i < p.count; i++)
        len += strlen(p.items[i].msg) + 1;
    out = calloc(1, len);
    for (size_t i = 0; i < p.count; i++) {
        strncat(out, p.items[i].msg, len - strlen(out) - 1); /* test code only */
        strncat(out, "\n", len - strlen(out) - 1);
    }
    *count = p.count;
    config_findings_free(&p);
    config_free(cfg);
    return out;
}

static void test_config_defaults_validate_clean(void **state)
{
    const char *env[] = {"DATA_DIR", "/tmp/kiln-test-data", NULL};
    size_t n;
    char *out = validate_env(env, &n);
    (void)state;

    if (n != 0)
        fail_msg("defaults have problems:\n%s", out);
    free(out);
}

static void test_config_cross_checks(void **state)
{
    const char *env[] = {"DATA_DIR",
                         "/tmp",
                         "ENABLE_HTTPS",
                         "true",
                         "SSL_CERT_FILE",
                         "/nonexistent/cert.pem",
                         "SSL_KEY_FILE",
                         "/nonexistent/key.pem",
                         "SSL_REDIRECT",
                         "true",
                         "HTTPS_PORT",
                         "8000",
                         "STORE",
                         "redis",
                         "REDIS_URL",
                         "redis://:pw@host:99999/0",
                         "BLOB",
                         "s3",
                         "MINIO_ACCESS_KEY",
                         "ak",
                         "MINIO_ENDPOINT",
                         "https://minio:9000",
                         "EXECUTION_MODE",
                         "kubernetes",
                         "KUBECONFIG_PATH",
                         "/nonexistent/kubeconfig",
                         "K8S_NAMESPACE",
                         "Bad_NS",
                         "K8S_CPU_REQUEST",
                         "lots",
                         "AUTH_TRUSTED_NETWORKS",
                         "10.0.0.0/33,::1/128, 192.168.0.0/16",
                         "CORS_ORIGINS",
                         "*,https://ok.example:8443,example.com",
                         "API_KEYS",
                         "a,",
                         "DEFAULT_EXECUTION_TIME",
                         "31",
                         "MAX_FILE_SIZE_MB",
                         "51",
                         "LOG_FILE",
                         "/proc/nonexistent/kiln.log",
                         NULL};
    static const char *const want[] = {
        "SSL_CERT_FILE=/nonexistent/cert.pem is not a readable file",
        "SSL_KEY_FILE=/nonexistent/key.pem is not a readable file",
        "HTTPS_PORT=8000 equals API_PORT=8000",
        "REDIS_URL=<hidden> cannot be parsed: the port must be 1 to 65535",
        "MINIO_SECRET_KEY is empty",
        "MINIO_ENDPOINT=https://minio:9000",
        "KUBECONFIG_PATH=/nonexistent/kubeconfig is not a readable file",
        "K8S_NAMESPACE=Bad_NS",
        "K8S_CPU_REQUEST=lots is not a quantity",
        "'10.0.0.0/33' is not a network",
        "'example.com' is not an origin",
        "API_KEYS: entry 2 is empty",
        "DEFAULT_EXECUTION_TIME=31 exceeds MAX_EXECUTION_TIME=30",
        "MAX_FILE_SIZE_MB=51 exceeds MAX_TOTAL_FILE_SIZE_MB=50",
        "LOG_FILE=/proc/nonexistent/kiln.log",
    };
    size_t n;
    char *out = validate_env(env, &n);
    (void)state;

    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(out, want[i]) == NULL)
            fail_msg("missing \"%s\" in:\n%s", want[i], out);
    assert_int_equal(n, sizeof want / sizeof want[0]); /* and nothing about the good entries */
    assert_null(strstr(out, ":pw@"));
    free(out);
}

static void test_config_open_refuses_invalid(void **state)
{
    const char *env[] = {"DEFAULT_EXECUTION_TIME", "60", "API_PORT", "x", NULL};
    const char *good[] = {"DATA_DIR", "/tmp", NULL};
    struct kiln_config *cfg = NULL;
    struct cfg_findings p = {0};
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(config_open(&cfg, NULL, fake_env, env, &p, &eb), KILN_ERR_INVALID);
    assert_null(cfg);
    assert_int_equal(p.count, 2);
    assert_non_null(strstr(eb.msg, "2 configuration problems: API_PORT=x"));
    assert_non_null(strstr(eb.msg, "; DEFAULT_EXECUTION_TIME=60 exceeds"));
    config_findings_free(&p);
    assert_int_equal(config_open(&cfg, NULL, fake_env, good, NULL, &eb), KILN_OK);
    assert_non_null(cfg);
    config_free(cfg);
}

static void test_config_security_findings(void **state)
{
    const char *weak[] = {
        "ENVIRONMENT",           "production", "API_DEBUG", "true", "AUTH_ENABLED", "false",
        "AUTH_TRUSTED_NETWORKS", "::/0",       NULL};
    const char *strong[] = {"API_KEY",
                            "0123456789abcdef0123",
                            "MASTER_API_KEY",
                            "fedcba9876543210fedcba",
                            "API_HOST",
                            "127.0.0.1",
                            NULL};
    struct kiln_config *cfg = NULL;
    struct cfg_findings f = {0};
    struct errbuf eb = {{0}};
    size_t high = 0;
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, weak, &eb), KILN_OK);
    config_security(cfg, &f);
    for (size_t i = 0; i < f.count; i++)
        high += f.items[i].severity == CFG_SEV_HIGH;
    assert_true(high >= 4); /* auth off, debug in production, ::/0, TLS off in production */
    config_findings_free(&f);
    config_free(cfg);

    assert_int_equal(config_load(&cfg, NULL, fake_env, strong, &eb), KILN_OK);
    config_security(cfg, &f);
    for (size_t i = 0; i < f.count; i++)
        if (f.items[i].severity >= CFG_SEV_MEDIUM)
            fail_msg("unexpected finding: %s", f.items[i].msg);
    config_findings_free(&f);
    config_free(cfg);
}

static void test_config_export_and_summary_mask_secrets(void **state)
{
    const char *env[] = {
        "API_KEY",          "topsecret-key-1234", "REDIS_URL", "redis://:topsecret-pw@h:1/0",
        "MINIO_SECRET_KEY", "topsecret-s3",       NULL};
    struct kiln_config *cfg = NULL;
    struct errbuf eb = {{0}};
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    (void)state;

    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    f = open_memstream(&buf, &len);
    assert_int_equal(config_doc_export(cfg, f, &eb), KILN_OK);
    config_doc_summary(cfg, f);
    fclose(f);
    assert_null(strstr(buf, "topsecret"));
    assert_non_null(strstr(buf, "\"API_KEY\": \"***\""));
    assert_non_null(strstr(buf, "\"MASTER_API_KEY\": \"\""));
    free(buf);
    config_free(cfg);
}

static void test_config_log_summary_masks_secrets(void **state)
{
    char path[] = "/tmp/kiln-test-log-XXXXXX";
    const char *env[] = {"API_KEY", "topsecret-key-1234", "API_PORT", "9100", NULL};
    struct kiln_config *cfg = NULL;
    struct logger *lg = NULL;
    struct log_options opt;
    struct errbuf eb = {{0}};
    char text[8192] = "";
    FILE *f;
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(config_load(&cfg, NULL, fake_env, env, &eb), KILN_OK);
    config_log_options(cfg, &opt);
    assert_int_equal(opt.level, LOG_INFO);
    assert_int_equal(opt.format, LOG_FORMAT_JSON);
    assert_int_equal(opt.max_bytes, 100u * 1024 * 1024);
    opt.path = path;
    assert_int_equal(log_open(&lg, &opt, &eb), KILN_OK);
    config_log_summary(cfg, lg);
    log_free(lg);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_true(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    assert_null(strstr(text, "topsecret"));
    assert_non_null(strstr(text, "\"API_KEY\":\"***\""));
    assert_non_null(strstr(text, "\"API_PORT\":\"9100\""));
    assert_null(strstr(text, "MAX_PIDS")); /* defaults are not repeated */
    config_free(cfg);
    unlink(path);
}

static void test_config_template_lists_every_setting_once(void **state)
{
    size_t n;
    const struct cfg_setting *t = config_settings(&n);
    char *buf = NULL, *md = NULL;
    size_t len = 0, mdlen = 0;
    FILE *f = open_memstream(&buf, &len), *g = open_memstream(&md, &mdlen);
    (void)state;

    config_doc_template(f);
    config_doc_markdown(g);
    fclose(f);
    fclose(g);
    for (size_t i = 0; i < n; i++) {
        char line[128];
        snprintf(line, sizeof line, "\n%s=", t[i].name);
        assert_non_null(strstr(buf, line));
        assert_null(strstr(strstr(buf, line) + 1, line));
        snprintf(line, sizeof line, "| `%s` |", t[i].name);
        assert_non_null(strstr(md, line));
    }
    free(buf);
    free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_rejects_out_of_range_port_naming_variable),
        cmocka_unit_test(test_config_codemie_aliases),
        cmocka_unit_test(test_config_environment_wins_over_dotenv),
        cmocka_unit_test(test_config_enum_rejects_unknown_value),
        cmocka_unit_test(test_config_alias_value_maps),
        cmocka_unit_test(test_config_alias_unit_conversion_rounds_up),
        cmocka_unit_test(test_config_alias_syntax_parses),
        cmocka_unit_test(test_config_ranges_and_quantities),
        cmocka_unit_test(test_config_dotenv_quoting_comments_export),
        cmocka_unit_test(test_config_dotenv_bad_lines_are_reported_all),
        cmocka_unit_test(test_config_precedence_env_alias_over_dotenv_primary),
        cmocka_unit_test(test_config_defaults_validate_clean),
        cmocka_unit_test(test_config_cross_checks),
        cmocka_unit_test(test_config_open_refuses_invalid),
        cmocka_unit_test(test_config_security_findings),
        cmocka_unit_test(test_config_export_and_summary_mask_secrets),
        cmocka_unit_test(test_config_log_summary_masks_secrets),
        cmocka_unit_test(test_config_template_lists_every_setting_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
