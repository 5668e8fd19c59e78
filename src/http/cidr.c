/* CIDR parsing and matching over a single 16-byte address space (see cidr.h). */
#include "http/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

/* Longest text of one entry we look at: an IPv6 address with an embedded IPv4 tail and "/128". */
#define CIDR_MAX_TEXT 64

struct cidr_set {
    struct cidr *nets;
    size_t count;
};

static void cidr_map_v4(const uint8_t v4[4], uint8_t out[16])
{
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

/* Clear every bit of addr after the first prefix bits. */
static void cidr_mask(uint8_t addr[16], unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = prefix > i * 8 ? prefix - i * 8 : 0;
        if (keep >= 8)
            continue;
        addr[i] &= (uint8_t)(0xff00u >> keep);
    }
}

/* A decimal prefix length of at most max, digits only (no sign, blanks or leading "0x"). */
static bool cidr_parse_prefix(const char *s, unsigned max, unsigned *out)
{
    char *end = NULL;
    unsigned long v;

    if (*s < '0' || *s > '9' || strlen(s) > 3)
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

enum kiln_err cidr_parse(const char *text, struct cidr *out, struct errbuf *eb)
{
    char buf[CIDR_MAX_TEXT];
    char *slash;
    size_t len = strlen(text);
    uint8_t v4[4];
    unsigned prefix;

    if (len == 0 || len >= sizeof buf)
        return errbuf_set(eb, KILN_ERR_INVALID, "'%.*s' is not an IP address or CIDR",
                          CIDR_MAX_TEXT, text);
    memcpy(buf, text, len + 1);
    slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, v4) == 1) {
        cidr_map_v4(v4, out->addr);
        prefix = 32;
        if (slash != NULL && !cidr_parse_prefix(slash + 1, 32, &prefix))
            return errbuf_set(eb, KILN_ERR_INVALID, "'%s': IPv4 prefix must be 0 to 32", text);
        out->prefix = 96 + prefix;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        prefix = 128;
        if (slash != NULL && !cidr_parse_prefix(slash + 1, 128, &prefix))
            return errbuf_set(eb, KILN_ERR_INVALID, "'%s': IPv6 prefix must be 0 to 128", text);
        out->prefix = prefix;
    } else {
        return errbuf_set(eb, KILN_ERR_INVALID, "'%s' is not an IP address or CIDR", text);
    }
    cidr_mask(out->addr, out->prefix);
    return KILN_OK;
}

bool cidr_addr_of(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        cidr_map_v4((const uint8_t *)&in4->sin_addr.s_addr, out);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(out, in6->sin6_addr.s6_addr, 16);
        return true;
    }
    return false;
}

bool cidr_contains(const struct cidr *c, const uint8_t addr[16])
{
    uint8_t masked[16];

    memcpy(masked, addr, 16);
    cidr_mask(masked, c->prefix);
    return memcmp(masked, c->addr, 16) == 0;
}

static bool cidr_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum kiln_err cidr_set_parse(struct cidr_set **out, const char *list, struct errbuf *eb)
{
    struct cidr_set *s = xcalloc(1, sizeof *s);
    const char *p = list != NULL ? list : "";
    enum kiln_err rc = KILN_OK;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *b = p, *e = p + len;
        char item[CIDR_MAX_TEXT];

        while (b < e && cidr_is_blank(*b))
            b++;
        while (e > b && cidr_is_blank(e[-1]))
            e--;
        if (e > b) {
            if ((size_t)(e - b) >= sizeof item) {
                rc = errbuf_set(eb, KILN_ERR_INVALID, "'%.*s...' is not an IP address or CIDR", 32,
                                b);
                goto out;
            }
            memcpy(item, b, (size_t)(e - b));
            item[e - b] = '\0';
            s->nets = xreallocarray(s->nets, s->count + 1, sizeof *s->nets);
            rc = cidr_parse(item, &s->nets[s->count], eb);
            if (rc != KILN_OK)
                goto out;
            s->count++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
out:
    if (rc != KILN_OK) {
        cidr_set_free(s);
        return rc;
    }
    *out = s;
    return KILN_OK;
}

size_t cidr_set_count(const struct cidr_set *s)
{
    return s != NULL ? s->count : 0;
}

bool cidr_set_contains(const struct cidr_set *s, const struct sockaddr *sa)
{
    uint8_t addr[16];

    if (s == NULL || s->count == 0 || !cidr_addr_of(sa, addr))
        return false;
    for (size_t i = 0; i < s->count; i++)
        if (cidr_contains(&s->nets[i], addr))
            return true;
    return false;
}

void cidr_set_free(struct cidr_set *s)
{
    if (s == NULL)
        return;
    free(s->nets);
    free(s);
}
