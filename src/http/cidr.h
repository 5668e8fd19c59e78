/* Sets of IPv4/IPv6 networks (AUTH_TRUSTED_NETWORKS) and membership tests of peer addresses.
 *
 * Every address is held as 16 bytes in IPv6 form; IPv4 networks and peers become IPv4-mapped
 * IPv6 (::ffff:a.b.c.d), so "10.0.0.0/8" matches a peer that reaches a dual-stack socket as
 * ::ffff:10.1.2.3 as well as one on an AF_INET socket. A set is immutable after
 * cidr_set_parse(); any thread may query it. */
#ifndef KILN_HTTP_CIDR_H
#define KILN_HTTP_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/err.h"

/* One network: the address with host bits cleared, and its prefix length in IPv6 terms
 * (an IPv4 /n is stored as /(96 + n)). */
struct cidr {
    uint8_t addr[16];
    unsigned prefix;
};

/* Parse one network: "a.b.c.d", "a.b.c.d/n" (0..32), "v6", "v6/n" (0..128). A bare address is
 * a single host. Host bits after the prefix are cleared (10.1.2.3/8 means 10.0.0.0/8).
 * Surrounding blanks are not accepted here. */
enum kiln_err cidr_parse(const char *text, struct cidr *out, struct errbuf *eb);

/* The 16-byte IPv6 form of a peer address (AF_INET becomes IPv4-mapped). False for other
 * families or NULL. */
bool cidr_addr_of(const struct sockaddr *sa, uint8_t out[16]);

/* True when addr (16-byte IPv6 form) lies in c. */
bool cidr_contains(const struct cidr *c, const uint8_t addr[16]);

struct cidr_set;

/* Parse a comma-separated list (blanks around entries ignored, empty entries skipped) into a
 * new set; an empty list gives an empty set. eb names the offending entry. Caller frees with
 * cidr_set_free(). */
enum kiln_err cidr_set_parse(struct cidr_set **out, const char *list, struct errbuf *eb);

/* Number of networks in s. */
size_t cidr_set_count(const struct cidr_set *s);

/* True when the peer sa lies in one of the networks of s (false for NULL or unknown family). */
bool cidr_set_contains(const struct cidr_set *s, const struct sockaddr *sa);

/* Free a set; NULL is a no-op. */
void cidr_set_free(struct cidr_set *s);

#endif
