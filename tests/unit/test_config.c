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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_rejects_out_of_range_port_naming_variable),
        cmocka_unit_test(test_config_codemie_aliases),
        cmocka_unit_test(test_config_environment_wins_over_dotenv),
        cmocka_unit_test(test_config_enum_rejects_unknown_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
