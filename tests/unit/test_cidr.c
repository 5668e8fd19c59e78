/* Unit tests of CIDR parsing and matching, including IPv4-mapped IPv6 peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "http/cidr.h"

static bool in_set(const struct cidr_set *s, const char *ip)
{
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};

    if (inet_pton(AF_INET, ip, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        return cidr_set_contains(s, (struct sockaddr *)&a4);
    }
    assert_int_equal(inet_pton(AF_INET6, ip, &a6.sin6_addr), 1);
    a6.sin6_family = AF_INET6;
    return cidr_set_contains(s, (struct sockaddr *)&a6);
}

static void test_cidr_ipv4_ranges_match_plain_and_mapped_peers(void **state)
{
    struct cidr_set *s = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(cidr_set_parse(&s, " 10.0.0.0/8 ,192.168.1.7,, 172.16.0.0/12 ", &eb), KILN_OK);
    assert_int_equal(cidr_set_count(s), 3);
    assert_true(in_set(s, "10.255.1.2"));
    assert_true(in_set(s, "::ffff:10.0.0.1"));
    assert_true(in_set(s, "192.168.1.7"));
    assert_false(in_set(s, "192.168.1.8"));
    assert_true(in_set(s, "172.31.255.255"));
    assert_false(in_set(s, "172.32.0.0"));
    assert_false(in_set(s, "11.0.0.1"));
    /* an IPv4 range must not match an IPv6 address that merely shares the low bits */
    assert_false(in_set(s, "::10.0.0.1"));
    assert_false(cidr_set_contains(s, NULL));
    cidr_set_free(s);
}

static void test_cidr_ipv6_ranges(void **state)
{
    struct cidr_set *s = NULL;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(cidr_set_parse(&s, "2001:db8::/32,::1", &eb), KILN_OK);
    assert_true(in_set(s, "2001:db8:ffff::1"));
    assert_false(in_set(s, "2001:db9::1"));
    assert_true(in_set(s, "::1"));
    assert_false(in_set(s, "127.0.0.1"));
    cidr_set_free(s);
    assert_int_equal(cidr_set_parse(&s, "::ffff:0:0/96", &eb), KILN_OK);
    assert_true(in_set(s, "8.8.8.8"));
    cidr_set_free(s);
    assert_int_equal(cidr_set_parse(&s, "0.0.0.0/0", &eb), KILN_OK);
    assert_true(in_set(s, "1.2.3.4"));
    assert_false(in_set(s, "2001:db8::1"));
    cidr_set_free(s);
}

static void test_cidr_host_bits_are_cleared(void **state)
{
    struct cidr c;
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(cidr_parse("10.1.2.3/8", &c, &eb), KILN_OK);
    assert_int_equal(c.prefix, 104);
    assert_int_equal(c.addr[12], 10);
    assert_int_equal(c.addr[13], 0);
    assert_int_equal(cidr_parse("2001:db8::ff/120", &c, &eb), KILN_OK);
    assert_int_equal(c.addr[15], 0);
}

static void test_cidr_rejects_malformed_entries(void **state)
{
    static const char *const bad[] = {"10.0.0.0/33",  "::/129",      "10.0.0/8",    "10.0.0.0/",
                                      "10.0.0.0/-1",  "10.0.0.0/+8", "10.0.0.0/8x", "010.0.0.1",
                                      "host.example", "1.2.3.4/ 8",  "fe80::1%eth0"};
    struct cidr c;
    struct cidr_set *s = (struct cidr_set *)1;
    struct errbuf eb = {{0}};
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cidr_parse(bad[i], &c, &eb), KILN_ERR_INVALID);
    assert_int_equal(cidr_set_parse(&s, "10.0.0.0/8, nonsense", &eb), KILN_ERR_INVALID);
    assert_ptr_equal(s, (struct cidr_set *)1);
    assert_non_null(strstr(eb.msg, "nonsense"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_ipv4_ranges_match_plain_and_mapped_peers),
        cmocka_unit_test(test_cidr_ipv6_ranges),
        cmocka_unit_test(test_cidr_host_bits_are_cleared),
        cmocka_unit_test(test_cidr_rejects_malformed_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
