/* Unit tests of the failed-authentication limiter: blocking, windows, per-/64 IPv6 keys and
 * memory that stays fixed under a flood of addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "http/faillimit.h"

static void addr4(uint32_t ip, uint8_t out[16])
{
    memset(out, 0, 16);
    out[10] = out[11] = 0xff;
    out[12] = (uint8_t)(ip >> 24);
    out[13] = (uint8_t)(ip >> 16);
    out[14] = (uint8_t)(ip >> 8);
    out[15] = (uint8_t)ip;
}

static void test_faillimit_blocks_at_max_and_unblocks_after_window(void **state)
{
    struct faillimit *l = faillimit_new(10, 3600, 256);
    uint8_t a[16], b[16];
    long retry = 0;
    (void)state;

    addr4(0xc0000201, a);
    addr4(0xc0000202, b);
    for (int i = 0; i < 9; i++)
        assert_false(faillimit_fail(l, a, 1000 + i, &retry));
    assert_false(faillimit_blocked(l, a, 1009, &retry));
    assert_true(faillimit_fail(l, a, 1010, &retry));
    assert_int_equal(retry, 3600);
    assert_true(faillimit_blocked(l, a, 2000, &retry));
    assert_int_equal(retry, 4610 - 2000);
    assert_false(faillimit_blocked(l, b, 2000, &retry));
    assert_false(faillimit_blocked(l, a, 4610, &retry));
    /* a fresh window after the block */
    assert_false(faillimit_fail(l, a, 4611, &retry));
    faillimit_free(l);
}

static void test_faillimit_window_resets_slow_failures(void **state)
{
    struct faillimit *l = faillimit_new(3, 60, 64);
    uint8_t a[16];
    long retry = 0;
    (void)state;

    addr4(0x01020304, a);
    assert_false(faillimit_fail(l, a, 0, &retry));
    assert_false(faillimit_fail(l, a, 30, &retry));
    /* the window (from the first failure) is over: counting starts again */
    assert_false(faillimit_fail(l, a, 61, &retry));
    assert_false(faillimit_fail(l, a, 62, &retry));
    assert_true(faillimit_fail(l, a, 63, &retry));
    faillimit_free(l);
}

static void test_faillimit_groups_ipv6_by_64(void **state)
{
    struct faillimit *l = faillimit_new(2, 60, 64);
    uint8_t a[16], b[16], c[16];
    long retry = 0;
    (void)state;

    inet_pton(AF_INET6, "2001:db8:1:2::1", a);
    inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", b);
    inet_pton(AF_INET6, "2001:db8:1:3::1", c);
    faillimit_fail(l, a, 0, &retry);
    assert_true(faillimit_fail(l, b, 1, &retry));
    assert_true(faillimit_blocked(l, a, 2, &retry));
    assert_false(faillimit_blocked(l, c, 2, &retry));
    faillimit_free(l);
}

static void test_faillimit_memory_is_bounded_under_flood(void **state)
{
    struct faillimit *l = faillimit_new(10, 3600, 1024);
    uint8_t a[16], victim[16];
    long retry = 0;
    size_t cap = faillimit_capacity(l);
    (void)state;

    assert_true(cap >= 1024 && cap < 1100);
    addr4(0x7f000001, victim);
    for (int i = 0; i < 10; i++)
        faillimit_fail(l, victim, 5, &retry);
    for (uint32_t i = 0; i < 200000; i++) {
        addr4(0x0a000000u + i, a);
        faillimit_fail(l, a, 10, &retry);
    }
    assert_int_equal(faillimit_capacity(l), cap);
    assert_true(faillimit_used(l) <= cap);
    /* one-failure flood entries were evicted before the blocked victim */
    assert_true(faillimit_blocked(l, victim, 11, &retry));
    faillimit_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faillimit_blocks_at_max_and_unblocks_after_window),
        cmocka_unit_test(test_faillimit_window_resets_slow_failures),
        cmocka_unit_test(test_faillimit_groups_ipv6_by_64),
        cmocka_unit_test(test_faillimit_memory_is_bounded_under_flood),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
