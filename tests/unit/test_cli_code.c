/* Unit tests of cli/cli_code: the code, --arg and --timeout options shared by `kiln run` and
 * `kiln exec`, driven through getopt_long as the two commands drive them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_code.h"

/* A command's loop: 'l' is its own option, the rest goes to the helper. Returns 0, or -1 for a
 * usage error (as either command would answer 2). */
static int parse(int argc, char **argv, struct cli_code *c)
{
    static const struct option longopts[] = {
        {"lang", required_argument, NULL, 'l'},
        {"file", required_argument, NULL, 'f'},
        {"arg", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int ch, r;

    memset(c, 0, sizeof *c);
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":l:f:a:t:", longopts, NULL)) != -1) {
        if (ch == 'l')
            continue;
        r = cli_code_option(c, "kiln test", ch, optarg);
        if (r <= 0)
            return -1;
    }
    return cli_code_operands(c, "kiln test", argc, argv);
}

static void test_code_operand_args_and_timeout(void **state)
{
    char *argv[] = {"run", "-l",        "py",  "--arg",    "a", "-a",
                    "b c", "--timeout", "1.5", "print(1)", NULL};
    struct cli_code c;
    struct errbuf eb = {{0}};
    char *code = NULL;
    size_t len = 0;
    (void)state;

    assert_int_equal(parse(10, argv, &c), 0);
    assert_null(c.file);
    assert_string_equal(c.code, "print(1)");
    assert_int_equal(c.nargs, 2);
    assert_string_equal(c.args[0], "a");
    assert_string_equal(c.args[1], "b c");
    assert_int_equal(c.timeout_ms, 1500);
    assert_int_equal(cli_code_read(&c, &code, &len, &eb), KILN_OK);
    assert_int_equal(len, 8);
    assert_string_equal(code, "print(1)");
    free(code);
    cli_code_clear(&c);
    assert_null(c.args);
}

static void test_timeout_rounds_up_and_is_bounded(void **state)
{
    static const struct {
        const char *arg;
        long long ms; /* -1: refused */
    } cases[] = {
        {"0.0001", 1},   {"0.001", 1}, {"2", 2000}, {"0.0015", 2}, {"86400", 86400000},
        {"86400.1", -1}, {"0", -1},    {"-1", -1},  {"abc", -1},   {"1s", -1},
        {"", -1},        {"nan", -1},  {"inf", -1}, {"1e300", -1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"run", "-t", (char *)cases[i].arg, "x", NULL};
        struct cli_code c;
        int rc = parse(4, argv, &c);
        if (cases[i].ms < 0) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(c.timeout_ms, cases[i].ms);
        }
        cli_code_clear(&c);
    }
}

static void test_exactly_one_of_file_and_code(void **state)
{
    char *neither[] = {"run", "-l", "py", NULL};
    char *both[] = {"run", "-f", "/dev/null", "print(1)", NULL};
    char *extra[] = {"run", "print(1)", "surplus", NULL};
    char *missing_value[] = {"run", "--arg", NULL};
    struct cli_code c;
    (void)state;

    assert_int_equal(parse(3, neither, &c), -1);
    cli_code_clear(&c);
    assert_int_equal(parse(4, both, &c), -1);
    cli_code_clear(&c);
    assert_int_equal(parse(3, extra, &c), -1);
    cli_code_clear(&c);
    assert_int_equal(parse(2, missing_value, &c), -1);
    cli_code_clear(&c);
}

static void test_read_file_whole_and_capped(void **state)
{
    char path[] = "/tmp/kiln-test-cli-code-XXXXXX";
    char *argv[] = {"run", "-f", path, NULL};
    struct cli_code c;
    struct errbuf eb = {{0}};
    char *code = NULL, *big;
    size_t len = 0, n = 100000; /* more than one read buffer */
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(write(fd, big, n), (ssize_t)n);
    assert_int_equal(parse(3, argv, &c), 0);
    assert_int_equal(cli_code_read(&c, &code, &len, &eb), KILN_OK);
    assert_int_equal(len, n);
    assert_memory_equal(code, big, n);
    assert_int_equal(code[n], '\0');
    free(code);
    code = NULL;
    /* past the cap: refused, nothing returned */
    assert_int_equal(ftruncate(fd, CLI_CODE_MAX + 1), 0);
    assert_int_equal(cli_code_read(&c, &code, &len, &eb), KILN_ERR_TOO_LARGE);
    assert_null(code);
    close(fd);
    unlink(path);
    /* a file that is not there */
    assert_int_equal(cli_code_read(&c, &code, &len, &eb), KILN_ERR_INVALID);
    assert_non_null(strstr(eb.msg, path));
    cli_code_clear(&c);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_operand_args_and_timeout),
        cmocka_unit_test(test_timeout_rounds_up_and_is_bounded),
        cmocka_unit_test(test_exactly_one_of_file_and_code),
        cmocka_unit_test(test_read_file_whole_and_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
