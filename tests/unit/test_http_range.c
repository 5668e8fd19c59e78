/* Unit tests of the Range header parser behind http_reply_file() (http_parse_range): the forms
 * served, the unsatisfiable ones (416), and the malformed ones that mean "the whole file",
 * among them the signed and blank-padded numbers strtoull() would take (found by
 * fuzz/range_fuzz.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/http.h"

static void test_range_served(void **state)
{
    /* an end past the file and a suffix longer than it are cut to the file */
    static const struct {
        const char *h;
        uint64_t size, off, len;
    } cases[] = {
        {"bytes=0-99", 4096, 0, 100},    {"bytes=4000-", 4096, 4000, 96},
        {"bytes=-500", 4096, 3596, 500}, {"bytes=10-99999", 100, 10, 90},
        {"bytes=-1000", 100, 0, 100},    {"bytes=0-0", 1, 0, 1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t off = 0, len = 0;
        if (http_parse_range(cases[i].h, cases[i].size, &off, &len) != 1 || off != cases[i].off ||
            len != cases[i].len)
            fail_msg("Range '%s' of %llu bytes: want %llu+%llu, got %llu+%llu", cases[i].h,
                     (unsigned long long)cases[i].size, (unsigned long long)cases[i].off,
                     (unsigned long long)cases[i].len, (unsigned long long)off,
                     (unsigned long long)len);
    }
}

static void test_range_unsatisfiable(void **state)
{
    uint64_t off = 0, len = 0;
    (void)state;

    assert_int_equal(http_parse_range("bytes=100-", 100, &off, &len), -1);
    assert_int_equal(http_parse_range("bytes=0-0", 0, &off, &len), -1);
    assert_int_equal(http_parse_range("bytes=-0", 100, &off, &len), -1);
    assert_int_equal(http_parse_range("bytes=-5", 0, &off, &len), -1);
}

static void test_range_ignored(void **state)
{
    static const char *const bad[] = {
        "bytes=-+00",
        "bytes=-+5",
        "bytes=0--5",
        "bytes=0-+5",
        "bytes=+0-5",
        "bytes= 0-5",
        "bytes=0- 5",
        "bytes=- 5",
        "bytes=-",
        "bytes=",
        "bytes=5-1",
        "bytes=0-1,5-9",
        "bytes=a-b",
        "items=0-5",
        "bytes=0-5x",
        "bytes=99999999999999999999-",
        "bytes=-99999999999999999999",
    };
    uint64_t off = 7, len = 7;
    (void)state;

    assert_int_equal(http_parse_range(NULL, 100, &off, &len), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (http_parse_range(bad[i], 100, &off, &len) != 0)
            fail_msg("Range '%s' was not ignored", bad[i]);
    }
    assert_int_equal(off, 7); /* untouched when ignored */
    assert_int_equal(len, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_served),
        cmocka_unit_test(test_range_unsatisfiable),
        cmocka_unit_test(test_range_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
