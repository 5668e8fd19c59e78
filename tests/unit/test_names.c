/* Unit tests of core/names: sanitisation of hostile names, batch paths, content types and the
 * Content-Disposition builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/names.h"

/* Sanitise a C string (or len bytes when len != 0) and compare. */
static void check_name(const char *in, size_t len, const char *want)
{
    char *out = NULL;
    struct errbuf eb = {{0}};

    assert_int_equal(names_sanitize(in, len ? len : strlen(in), 255, &out, &eb), KILN_OK);
    assert_string_equal(out, want);
    assert_true(names_is_clean_path(out, 255));
    free(out);
}

static void check_path(const char *in, const char *want)
{
    char *out = NULL;
    struct errbuf eb = {{0}};

    assert_int_equal(names_sanitize_path(in, strlen(in), 255, &out, &eb), KILN_OK);
    assert_string_equal(out, want);
    assert_true(names_is_clean_path(out, 255));
    free(out);
}

static void check_path_refused(const char *in)
{
    char *out = NULL;
    struct errbuf eb = {{0}};

    assert_int_equal(names_sanitize_path(in, strlen(in), 255, &out, &eb), KILN_ERR_INVALID);
    assert_null(out);
}

static void test_names_keeps_safe_names(void **state)
{
    (void)state;
    check_name("data.csv", 0, "data.csv");
    check_name("My-File_2.tar.gz", 0, "My-File_2.tar.gz");
}

static void test_names_replaces_unsafe_characters(void **state)
{
    (void)state;
    check_name("my file (1).txt", 0, "my_file__1_.txt");
    check_name("a;rm -rf $HOME.sh", 0, "a_rm_-rf__HOME.sh");
    check_name("tab\there\nnl\x01\x7f.txt", 0, "tab_here_nl__.txt");
}

static void test_names_flattens_traversal(void **state)
{
    (void)state;
    check_name("../../etc/passwd", 0, "_.._.._etc_passwd");
    check_name("..\\..\\windows\\system32", 0, "_.._.._windows_system32");
    check_name("/etc/shadow", 0, "_etc_shadow");
}

static void test_names_prefixes_leading_dot(void **state)
{
    (void)state;
    check_name(".bashrc", 0, "_.bashrc");
    check_name(".", 0, "_.");
    check_name("..", 0, "_..");
}

static void test_names_replaces_embedded_nul(void **state)
{
    (void)state;
    check_name("evil.png\0.exe", 13, "evil.png_.exe");
}

static void test_names_unicode_is_one_underscore_per_character(void **state)
{
    (void)state;
    check_name("r\xc3\xa9sum\xc3\xa9.pdf", 0, "r_sum_.pdf"); /* résumé */
    check_name("\xe6\x97\xa5\xe6\x9c\xac.txt", 0, "__.txt"); /* 日本 */
    check_name("\xf0\x9f\x98\x80.png", 0, "_.png");          /* emoji */
    check_name("bad\xff\xfe.bin", 0, "bad__.bin");           /* invalid UTF-8 */
    check_name("\xc3", 0, "_");                              /* truncated sequence */
}

static void test_names_caps_length_keeping_extension(void **state)
{
    char in[1000], *out = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    memset(in, 'a', sizeof in);
    memcpy(in + sizeof in - 4, ".csv", 4);
    assert_int_equal(names_sanitize(in, sizeof in, 255, &out, &eb), KILN_OK);
    assert_int_equal(strlen(out), 255);
    assert_string_equal(out + 251, ".csv");
    free(out);
    /* the limit counts bytes of the result: 300 two-byte characters become 255 '_' */
    char uni[600];
    for (int i = 0; i < 300; i++)
        memcpy(uni + 2 * i, "\xc3\xa9", 2);
    assert_int_equal(names_sanitize(uni, sizeof uni, 255, &out, &eb), KILN_OK);
    assert_int_equal(strlen(out), 255);
    free(out);
}

static void test_names_rejects_empty(void **state)
{
    char *out = NULL;
    struct errbuf eb = {{0}};
    (void)state;
    assert_int_equal(names_sanitize("", 0, 255, &out, &eb), KILN_ERR_INVALID);
    assert_null(out);
}

static void test_names_batch_keeps_subdirectories(void **state)
{
    (void)state;
    check_path("charts/plot 1.png", "charts/plot_1.png");
    check_path("a/b/c.txt", "a/b/c.txt");
    check_path("/abs/path.txt", "abs/path.txt");
    check_path("a//b/./c.txt", "a/b/c.txt");
    check_path(".git/config", "_.git/config");
    check_path("dir\\..\\x", "dir_.._x");
}

static void test_names_batch_refuses_dotdot_and_empty(void **state)
{
    (void)state;
    check_path_refused("../secret");
    check_path_refused("a/../../b");
    check_path_refused("a/..");
    check_path_refused("");
    check_path_refused("///");
    check_path_refused("./.");
    check_path_refused("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r.txt"); /* 18 levels */
}

static void test_names_is_clean_path_rejects_unclean(void **state)
{
    (void)state;
    assert_false(names_is_clean_path("", 255));
    assert_false(names_is_clean_path("../x", 255));
    assert_false(names_is_clean_path(".hidden", 255));
    assert_false(names_is_clean_path("a//b", 255));
    assert_false(names_is_clean_path("/a", 255));
    assert_false(names_is_clean_path("a/", 255));
    assert_false(names_is_clean_path("sp ace", 255));
    assert_true(names_is_clean_path("a/b.c", 255));
}

static void test_names_content_type_by_extension(void **state)
{
    (void)state;
    assert_string_equal(names_content_type("plot.PNG"), "image/png");
    assert_string_equal(names_content_type("data.csv"), "text/csv");
    assert_string_equal(names_content_type("x.tar.gz"), "application/gzip");
    assert_string_equal(names_content_type("noext"), "application/octet-stream");
    assert_string_equal(names_content_type("dir.d/noext"), "application/octet-stream");
    assert_string_equal(names_content_type("weird.zzz"), "application/octet-stream");
}

static void test_names_content_disposition_utf8(void **state)
{
    char *cd;
    (void)state;

    cd = names_content_disposition("plot.png");
    assert_string_equal(cd, "attachment; filename=\"plot.png\"; filename*=UTF-8''plot.png");
    free(cd);
    cd = names_content_disposition("charts/r\xc3\xa9sum\xc3\xa9 \"1\".pdf");
    assert_string_equal(cd, "attachment; filename=\"r__sum__ _1_.pdf\"; "
                            "filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf");
    free(cd);
    cd = names_content_disposition("a\r\nSet-Cookie: x");
    assert_null(strchr(cd, '\r'));
    assert_null(strchr(cd, '\n'));
    free(cd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_keeps_safe_names),
        cmocka_unit_test(test_names_replaces_unsafe_characters),
        cmocka_unit_test(test_names_flattens_traversal),
        cmocka_unit_test(test_names_prefixes_leading_dot),
        cmocka_unit_test(test_names_replaces_embedded_nul),
        cmocka_unit_test(test_names_unicode_is_one_underscore_per_character),
        cmocka_unit_test(test_names_caps_length_keeping_extension),
        cmocka_unit_test(test_names_rejects_empty),
        cmocka_unit_test(test_names_batch_keeps_subdirectories),
        cmocka_unit_test(test_names_batch_refuses_dotdot_and_empty),
        cmocka_unit_test(test_names_is_clean_path_rejects_unclean),
        cmocka_unit_test(test_names_content_type_by_extension),
        cmocka_unit_test(test_names_content_disposition_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
