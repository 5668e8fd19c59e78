#include "core/names.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xmalloc.h"

/* Extensions up to this long survive the cut of an over-long name ("report….csv"). */
#define NAMES_MAX_KEPT_EXT 16

static bool names_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Bytes of the character starting at s[0] (len > 0 bytes available): a well-formed UTF-8
 * sequence counts as one character, so "é" becomes one '_' as in the peers' sanitisers (which
 * work on characters); anything malformed is one byte. */
static size_t names_char_len(const unsigned char *s, size_t len)
{
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 1;
    if (n > len)
        return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

/* Cut buf (an ASCII name of *len bytes) to max bytes, keeping a short extension. */
static void names_cut(char *buf, size_t *len, size_t max)
{
    const char *dot;
    size_t ext;

    if (*len <= max)
        return;
    dot = memrchr(buf, '.', *len);
    ext = dot != NULL ? (size_t)(buf + *len - dot) : 0;
    if (dot != NULL && dot > buf && ext <= NAMES_MAX_KEPT_EXT && ext < max / 2) {
        memmove(buf + max - ext, dot, ext);
    }
    *len = max;
    buf[max] = '\0';
}

/* Sanitise one segment into a fresh string (no separators handled here). */
static enum kiln_err names_segment(const char *in, size_t len, size_t max_len, char **out,
                                   struct errbuf *eb)
{
    const unsigned char *s = (const unsigned char *)in;
    char *buf;
    size_t o = 0, i = 0;

    if (len == 0)
        return errbuf_set(eb, KILN_ERR_INVALID, "empty file name");
    if (max_len == 0)
        return errbuf_set(eb, KILN_ERR_INVALID, "file name length limit is 0");
    /* Output is at most one byte per input byte, plus the '_' prefix of a leading dot. */
    buf = xmalloc(len + 2);
    if (s[0] == '.')
        buf[o++] = '_';
    while (i < len) {
        size_t n = names_char_len(s + i, len - i);
        buf[o++] = (n == 1 && names_char_ok(s[i])) ? (char)s[i] : '_';
        i += n;
    }
    buf[o] = '\0';
    names_cut(buf, &o, max_len);
    *out = buf;
    return KILN_OK;
}

enum kiln_err names_sanitize(const char *in, size_t len, size_t max_len, char **out,
                             struct errbuf *eb)
{
    return names_segment(in, len, max_len, out, eb);
}

enum kiln_err names_sanitize_path(const char *in, size_t len, size_t max_len, char **out,
                                  struct errbuf *eb)
{
    char *path = NULL, *seg = NULL;
    size_t plen = 0, depth = 0, i = 0;
    enum kiln_err rc = KILN_OK;

    path = xmalloc(NAMES_MAX_PATH + 1);
    while (i < len) {
        const char *start = in + i;
        const char *slash = memchr(start, '/', len - i);
        size_t slen = slash != NULL ? (size_t)(slash - start) : len - i;

        i += slen + (slash != NULL ? 1 : 0);
        if (slen == 0 || (slen == 1 && start[0] == '.'))
            continue; /* "//", "/x", "./x": no empty segments, never absolute */
        if (slen == 2 && start[0] == '.' && start[1] == '.') {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "file path must not contain '..'");
            goto out;
        }
        if (++depth > NAMES_MAX_DEPTH) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "file path is deeper than %d levels",
                            NAMES_MAX_DEPTH);
            goto out;
        }
        rc = names_segment(start, slen, max_len, &seg, eb);
        if (rc)
            goto out;
        size_t sl = strlen(seg);
        if (plen + (plen > 0) + sl > NAMES_MAX_PATH) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "file path is longer than %d bytes",
                            NAMES_MAX_PATH);
            goto out;
        }
        if (plen > 0)
            path[plen++] = '/';
        memcpy(path + plen, seg, sl);
        plen += sl;
        free(seg);
        seg = NULL;
    }
    if (plen == 0) {
        rc = errbuf_set(eb, KILN_ERR_INVALID, "empty file name");
        goto out;
    }
    path[plen] = '\0';
    *out = path;
    path = NULL;
out:
    free(seg);
    free(path);
    return rc;
}

bool names_is_clean_path(const char *name, size_t max_len)
{
    size_t seglen = 0, depth = 1, total = 0;

    if (name == NULL || name[0] == '\0')
        return false;
    for (const char *p = name;; p++) {
        if (*p == '/' || *p == '\0') {
            if (seglen == 0 || seglen > max_len || p[-(long)seglen] == '.')
                return false;
            if (*p == '\0')
                break;
            if (++depth > NAMES_MAX_DEPTH)
                return false;
            seglen = 0;
        } else if (!names_char_ok((unsigned char)*p)) {
            return false;
        } else {
            seglen++;
        }
        if (++total > NAMES_MAX_PATH)
            return false;
    }
    return true;
}

/* Extension → MIME type; a table, so adding a type is one row (STYLE.md rule 9). */
static const struct {
    const char *ext;
    const char *type;
} names_types[] = {
    {"txt", "text/plain"},
    {"csv", "text/csv"},
    {"tsv", "text/tab-separated-values"},
    {"md", "text/markdown"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"xml", "application/xml"},
    {"json", "application/json"},
    {"jsonl", "application/jsonl"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"js", "text/javascript"},
    {"ts", "text/plain"},
    {"py", "text/x-python"},
    {"c", "text/x-c"},
    {"h", "text/x-c"},
    {"cpp", "text/x-c++"},
    {"java", "text/x-java"},
    {"go", "text/x-go"},
    {"rs", "text/x-rust"},
    {"r", "text/plain"},
    {"sh", "application/x-sh"},
    {"log", "text/plain"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"svg", "image/svg+xml"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ico", "image/vnd.microsoft.icon"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"parquet", "application/vnd.apache.parquet"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
};

const char *names_content_type(const char *name)
{
    const char *dot = name != NULL ? strrchr(name, '.') : NULL;

    if (dot == NULL || strchr(dot, '/') != NULL)
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof names_types / sizeof names_types[0]; i++)
        if (strcasecmp(dot + 1, names_types[i].ext) == 0)
            return names_types[i].type;
    return "application/octet-stream";
}

/* RFC 5987 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~". */
static bool names_attr_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("!#$&+-.^_`|~", c) != NULL;
}

char *names_content_disposition(const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char head[] = "attachment; filename=\"";
    static const char mid[] = "\"; filename*=UTF-8''";
    const char *slash = strrchr(name, '/');
    const char *base = slash != NULL ? slash + 1 : name;
    size_t n = strlen(base);
    /* head + ascii (n) + mid + pct (3n) + NUL */
    char *out = xmalloc(sizeof head + sizeof mid + 4 * n + 1);
    size_t o = 0;

    memcpy(out, head, sizeof head - 1);
    o = sizeof head - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)base[i];
        out[o++] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '_' : (char)c;
    }
    memcpy(out + o, mid, sizeof mid - 1);
    o += sizeof mid - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)base[i];
        if (names_attr_char(c) && c != 0) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}
