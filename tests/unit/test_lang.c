/* Unit tests of the language table and of lang_job_new(). The sandbox is faked: the one call
 * lang/ makes into it, sbx_workspace_put(), records what it was given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lang/lang.c"

/* What the fake workspace received last. */
struct fake_ws {
    char relpath[64];
    char content[256];
    size_t len;
    int src_fd;
    int calls;
};

enum kiln_err sbx_workspace_put(struct sbx_workspace *ws, const char *relpath, const void *buf,
                                size_t len, int src_fd, struct errbuf *eb)
{
    struct fake_ws *f = (struct fake_ws *)ws;
    (void)eb;
    f->calls++;
    snprintf(f->relpath, sizeof f->relpath, "%s", relpath);
    f->len = len;
    f->src_fd = src_fd;
    assert_non_null(buf);
    assert_true(len < sizeof f->content);
    memcpy(f->content, buf, len);
    f->content[len] = '\0';
    return KILN_OK;
}

static void test_table_has_the_13_languages_of_the_api(void **state)
{
    static const char *const codes[] = {"py",  "js", "ts", "go",  "java", "c",   "cpp",
                                        "php", "rs", "r",  "f90", "d",    "bash"};
    size_t n = 0;
    (void)state;
    lang_all(&n);
    assert_int_equal(n, 13);
    for (size_t i = 0; i < 13; i++) {
        const struct lang *l = lang_find(codes[i]);
        assert_non_null(l);
        assert_string_equal(l->code, codes[i]);
    }
}

static void test_find_is_case_insensitive_and_rejects_unknown(void **state)
{
    (void)state;
    assert_ptr_equal(lang_find("PY"), lang_find("py"));
    assert_ptr_equal(lang_find("Java"), lang_find("java"));
    assert_null(lang_find("python"));
    assert_null(lang_find(""));
    assert_null(lang_find(NULL));
    assert_null(lang_find("py "));
}

static void test_source_names_are_the_peers(void **state)
{
    (void)state;
    assert_string_equal(lang_find("py")->source, "code.py");
    assert_string_equal(lang_find("java")->source, "Code.java");
    assert_string_equal(lang_find("go")->source, "main.go");
    assert_string_equal(lang_find("rs")->source, "main.rs");
    assert_string_equal(lang_find("bash")->source, "code.sh");
}

/* Every command starts with an absolute path (no PATH lookup inside the sandbox), compiled
 * languages have a multiplier above 1, interpreted ones exactly 1 except R (slow start). */
static void test_rows_are_well_formed(void **state)
{
    size_t n = 0;
    const struct lang *t = lang_all(&n);
    (void)state;
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t[i].run);
        assert_true(t[i].run[0][0] == '/');
        assert_non_null(t[i].name);
        assert_null(strchr(t[i].source, '/'));
        if (t[i].compile != NULL) {
            assert_true(t[i].compile[0][0] == '/');
            assert_true(t[i].timeout_multiplier > 1.0);
        } else {
            assert_true(t[i].timeout_multiplier >= 1.0);
        }
        assert_string_not_equal(lang_warm_name(t[i].warm), "");
    }
}

/* Nothing from the host: the base environment is a fixed list. */
static void test_base_env_is_the_allow_list(void **state)
{
    const char *const *env = lang_base_env();
    size_t n = 0;
    (void)state;
    for (; env[n] != NULL; n++)
        assert_non_null(strchr(env[n], '='));
    assert_string_equal(env[0], "HOME=/tmp");
    assert_int_equal(n, 6);
}

static void test_job_of_an_interpreted_language_is_one_step_with_args(void **state)
{
    struct fake_ws ws = {0};
    struct lang_job *lj = NULL;
    struct errbuf eb = {{0}};
    const char *args[] = {"a b", "--c"};
    struct sbx_limits lim = {.wall_ms = 1000, .cpu_ms = 2000, .memory_mb = 64};
    (void)state;

    assert_int_equal(lang_job_new(lang_find("py"), "print(1)", 8, args, 2, &lim,
                                  (struct sbx_workspace *)&ws, &lj, &eb),
                     KILN_OK);
    assert_int_equal(ws.calls, 1);
    assert_string_equal(ws.relpath, "code.py");
    assert_string_equal(ws.content, "print(1)");
    assert_int_equal(ws.src_fd, -1);
    assert_int_equal(lj->job.nsteps, 1);
    const char *const *argv = lj->job.steps[0].argv;
    assert_string_equal(argv[0], "/usr/bin/python3");
    assert_string_equal(argv[1], "code.py");
    assert_string_equal(argv[2], "a b");
    assert_string_equal(argv[3], "--c");
    assert_null(argv[4]);
    assert_int_equal(lj->job.limits.wall_ms, 1000);
    assert_int_equal(lj->job.limits.memory_mb, 64);
    assert_ptr_equal(lj->job.ws, (struct sbx_workspace *)&ws);
    assert_int_equal(lj->job.cancel_fd, -1);
    assert_null(lj->job.stdin_data);
    /* base env then the row's own */
    size_t n = 0;
    while (lj->job.env[n] != NULL)
        n++;
    assert_int_equal(n, 6 + 3);
    assert_string_equal(lj->job.env[6], "PYTHONUNBUFFERED=1");
    lang_job_free(lj);
}

static void test_job_of_a_compiled_language_stops_on_compile_failure(void **state)
{
    struct fake_ws ws = {0};
    struct lang_job *lj = NULL;
    struct errbuf eb = {{0}};
    struct sbx_limits lim = {.wall_ms = 10000, .cpu_ms = 0};
    (void)state;

    assert_int_equal(lang_job_new(lang_find("RS"), "fn main(){}", 11, NULL, 0, &lim,
                                  (struct sbx_workspace *)&ws, &lj, &eb),
                     KILN_OK);
    assert_string_equal(ws.relpath, "main.rs");
    assert_int_equal(lj->job.nsteps, 2);
    assert_true(lj->job.steps[0].stop_on_failure);
    assert_true(lj->job.steps[0].stdout_to_stderr);
    assert_false(lj->job.steps[1].stdout_to_stderr);
    assert_string_equal(lj->job.steps[1].argv[0], "/tmp/main");
    assert_null(lj->job.steps[1].argv[1]);
    /* x3 for Rust; an unresolved 0 stays the sandbox default */
    assert_int_equal(lj->job.limits.wall_ms, 30000);
    assert_int_equal(lj->job.limits.cpu_ms, 0);
    lang_job_free(lj);
}

static void test_empty_code_is_written_as_an_empty_file(void **state)
{
    struct fake_ws ws = {.len = 99};
    struct lang_job *lj = NULL;
    struct errbuf eb = {{0}};
    struct sbx_limits lim = {0};
    (void)state;

    assert_int_equal(lang_job_new(lang_find("bash"), NULL, 0, NULL, 0, &lim,
                                  (struct sbx_workspace *)&ws, &lj, &eb),
                     KILN_OK);
    assert_int_equal(ws.len, 0);
    lang_job_free(lj);
    lang_job_free(NULL);
}

static void test_scaling_saturates_instead_of_wrapping(void **state)
{
    (void)state;
    assert_int_equal(lang_scale_ms(LLONG_MAX / 2, 3.0), LLONG_MAX / 2);
    assert_int_equal(lang_scale_ms(1000, 1.2), 1200);
    assert_int_equal(lang_scale_ms(0, 3.0), 0);
}

static bool argv_has(const char *const *v, const char *s)
{
    for (size_t i = 0; v[i] != NULL; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static bool argv_has_prefix(const char *const *v, const char *p)
{
    for (size_t i = 0; v[i] != NULL; i++)
        if (strncmp(v[i], p, strlen(p)) == 0)
            return true;
    return false;
}

/* The JVM and Go cannot see the sandbox's cgroup: the memory limit reaches them through the
 * table's token, and an unresolved limit leaves the element out rather than passing "{MEM_MB}". */
static void test_memory_token_is_expanded_or_left_out(void **state)
{
    struct fake_ws ws = {0};
    struct lang_job *lj = NULL;
    struct errbuf eb = {{0}};
    struct sbx_limits lim = {.memory_mb = 300};
    (void)state;

    assert_int_equal(lang_job_new(lang_find("java"), "x", 1, NULL, 0, &lim,
                                  (struct sbx_workspace *)&ws, &lj, &eb),
                     KILN_OK);
    assert_true(argv_has(lj->job.steps[1].argv, "-XX:MaxRAM=300m"));
    assert_string_equal(lj->job.steps[1].argv[0], "/usr/lib/jvm/default-java/bin/java");
    lang_job_free(lj);

    assert_int_equal(
        lang_job_new(lang_find("go"), "x", 1, NULL, 0, &lim, (struct sbx_workspace *)&ws, &lj, &eb),
        KILN_OK);
    assert_true(argv_has(lj->job.env, "GOMEMLIMIT=300MiB"));
    lang_job_free(lj);

    lim.memory_mb = 0;
    assert_int_equal(lang_job_new(lang_find("java"), "x", 1, NULL, 0, &lim,
                                  (struct sbx_workspace *)&ws, &lj, &eb),
                     KILN_OK);
    assert_false(argv_has_prefix(lj->job.steps[1].argv, "-XX:MaxRAM="));
    assert_string_equal(lj->job.steps[1].argv[lang_vec_len(lj->job.steps[1].argv) - 1], "Code");
    lang_job_free(lj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_has_the_13_languages_of_the_api),
        cmocka_unit_test(test_find_is_case_insensitive_and_rejects_unknown),
        cmocka_unit_test(test_source_names_are_the_peers),
        cmocka_unit_test(test_rows_are_well_formed),
        cmocka_unit_test(test_base_env_is_the_allow_list),
        cmocka_unit_test(test_job_of_an_interpreted_language_is_one_step_with_args),
        cmocka_unit_test(test_job_of_a_compiled_language_stops_on_compile_failure),
        cmocka_unit_test(test_empty_code_is_written_as_an_empty_file),
        cmocka_unit_test(test_scaling_saturates_instead_of_wrapping),
        cmocka_unit_test(test_memory_token_is_expanded_or_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
