/* Unit tests of core/ids: shape, alphabet, uniqueness and the validator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/ids.h"

static void test_ids_new_is_21_chars_of_the_nanoid_alphabet(void **state)
{
    char id[IDS_BUF];
    struct errbuf eb = {{0}};
    (void)state;

    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ids_new(id, &eb), KILN_OK);
        assert_int_equal(strlen(id), 21);
        assert_int_equal(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789_-"),
                         21);
        assert_true(ids_valid(id));
    }
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_ids_new_are_unique_and_use_every_symbol(void **state)
{
    enum { N = 4096 };
    char(*ids)[IDS_BUF] = calloc(N, IDS_BUF);
    bool seen[256] = {false};
    int distinct = 0;
    struct errbuf eb = {{0}};
    (void)state;

    /* half one by one, half by ids_new_many() in batches of 1 to 30 (across its 12 per call) */
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(ids_new(ids[i], &eb), KILN_OK);
    for (int i = N / 2, k = 1; i < N; i += k, k = k % 30 + 1) {
        if (k > N - i)
            k = N - i;
        assert_int_equal(ids_new_many(ids + i, (size_t)k, &eb), KILN_OK);
    }
    assert_int_equal(ids_new_many(ids, 0, &eb), KILN_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(strlen(ids[i]), IDS_LEN);
        assert_true(ids_valid(ids[i]));
        for (int j = 0; j < IDS_LEN; j++)
            seen[(unsigned char)ids[i][j]] = true;
    }
    qsort(ids, N, IDS_BUF, cmp_ids);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    for (int c = 0; c < 256; c++)
        distinct += seen[c];
    /* 4096 * 21 draws over 64 symbols: every symbol shows up unless the mapping is broken. */
    assert_int_equal(distinct, 64);
    free(ids);
}

static void test_ids_valid_rejects_wrong_length_and_characters(void **state)
{
    (void)state;
    assert_true(ids_valid("abcdefghijklmnopqrs_-"));
    assert_false(ids_valid(NULL));
    assert_false(ids_valid(""));
    assert_false(ids_valid("abcdefghijklmnopqrst"));   /* 20 */
    assert_false(ids_valid("abcdefghijklmnopqrstuv")); /* 22 */
    assert_false(ids_valid("abcdefghijklmnopqrs/."));
    assert_false(ids_valid("../../../../etc/passw"));
    assert_false(ids_valid("abcdefghijklmnopqrs\xc3\xa9"));
    assert_true(ids_valid_n("abcdefghijklmnopqrs_-/rest", 21));
    assert_false(ids_valid_n("abc", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_new_is_21_chars_of_the_nanoid_alphabet),
        cmocka_unit_test(test_ids_new_are_unique_and_use_every_symbol),
        cmocka_unit_test(test_ids_valid_rejects_wrong_length_and_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
