#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* Longest line written; longer messages are cut (a log line is not the place for megabytes, and
 * a bounded buffer keeps a hostile request from making the logger allocate without limit). */
#define LOG_LINE_MAX 16384

struct logger {
    pthread_mutex_t mu;
    enum log_level level;
    enum log_format format;
    bool access_enabled, security_enabled;
    int fd;     /* 2 for standard error */
    char *path; /* NULL for standard error */
    size_t size, max_bytes;
    unsigned backups;
    bool is_default;
};

/* The start-up logger (see log.h): the one mutable global, limited to early errors. */
static struct logger log_default_logger = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .level = LOG_INFO,
    .format = LOG_FORMAT_TEXT,
    .fd = STDERR_FILENO,
    .is_default = true,
};

static const char *const log_level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

/* A bounded line being built; bytes past LOG_LINE_MAX - 1 are dropped and `cut` is set. */
struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool cut;
};

static void line_putn(struct log_line *l, const char *s, size_t n)
{
    size_t room = sizeof l->buf - 1 - l->len; /* keep one byte for the final newline */

    if (n > room) {
        n = room;
        l->cut = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_puts(struct log_line *l, const char *s)
{
    line_putn(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* reject overlong forms, surrogates and values past U+10FFFF */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

/* Append s as a JSON string (with quotes). Control characters are escaped and invalid UTF-8
 * becomes U+FFFD, so any input (a request path, a sandbox's stderr) yields one valid JSON line. */
static void line_put_json_str(struct log_line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    line_putn(l, "\"", 1);
    while (n > 0) {
        size_t run = 0;
        char esc[8];

        /* copy the longest run needing no escape in one go */
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        line_putn(l, (const char *)p, run);
        p += run;
        n -= run;
        if (n == 0)
            break;
        if (*p >= 0x80) {
            size_t u = log_utf8_len(p, n);
            if (u == 0) {
                line_puts(l, "\\ufffd");
                u = 1;
            } else {
                line_putn(l, (const char *)p, u);
            }
            p += u;
            n -= u;
            continue;
        }
        switch (*p) {
        case '"':
            line_puts(l, "\\\"");
            break;
        case '\\':
            line_puts(l, "\\\\");
            break;
        case '\n':
            line_puts(l, "\\n");
            break;
        case '\r':
            line_puts(l, "\\r");
            break;
        case '\t':
            line_puts(l, "\\t");
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            line_puts(l, esc);
        }
        p++;
        n--;
    }
    line_putn(l, "\"", 1);
}

/* Append s for a text line: control characters become '?' so one event stays one line. */
static void line_put_text(struct log_line *l, const char *s)
{
    size_t start = l->len;

    line_puts(l, s);
    for (size_t i = start; i < l->len; i++)
        if ((unsigned char)l->buf[i] < 0x20 || l->buf[i] == 0x7f)
            l->buf[i] = '?';
}

static void line_put_ts(struct log_line *l)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03ldZ", ts.tv_nsec / 1000000);
    line_puts(l, buf);
}

/* Build one complete line (without the newline) into l. */
static void log_format_line(const struct logger *lg, struct log_line *l, enum log_level level,
                            const char *req_id, const char *msg, const struct log_field *fields,
                            size_t nfields)
{
    char num[32];

    l->len = 0;
    l->cut = false;
    if (lg->format == LOG_FORMAT_JSON) {
        line_puts(l, "{\"ts\":\"");
        line_put_ts(l);
        line_puts(l, "\",\"level\":\"");
        line_puts(l, log_level_names[level]);
        line_puts(l, "\",\"msg\":");
        line_put_json_str(l, msg);
        if (req_id != NULL && *req_id) {
            line_puts(l, ",\"req_id\":");
            line_put_json_str(l, req_id);
        }
        for (size_t i = 0; i < nfields; i++) {
            line_puts(l, ",");
            line_put_json_str(l, fields[i].key);
            line_puts(l, ":");
            if (!fields[i].is_num) {
                line_put_json_str(l, fields[i].str ? fields[i].str : "");
            } else {
                snprintf(num, sizeof num, "%lld", fields[i].num);
                line_puts(l, num);
            }
        }
        line_puts(l, "}");
    } else {
        line_put_ts(l);
        line_puts(l, " ");
        line_puts(l, log_level_names[level]);
        if (req_id != NULL && *req_id) {
            line_puts(l, " [");
            line_put_text(l, req_id);
            line_puts(l, "]");
        }
        line_puts(l, " ");
        line_put_text(l, msg);
        for (size_t i = 0; i < nfields; i++) {
            line_puts(l, " ");
            line_put_text(l, fields[i].key);
            line_puts(l, "=");
            if (!fields[i].is_num) {
                line_put_text(l, fields[i].str ? fields[i].str : "");
            } else {
                snprintf(num, sizeof num, "%lld", fields[i].num);
                line_puts(l, num);
            }
        }
    }
    l->buf[l->len++] = '\n';
}

/* Open (or reopen after rotation) the log file for appending; sets fd and size. */
static enum kiln_err log_open_file(struct logger *lg, struct errbuf *eb)
{
    struct stat st;
    int fd = open(lg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0)
        return errbuf_set(eb, KILN_ERR_IO, "LOG_FILE=%s: %s", lg->path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return errbuf_set(eb, KILN_ERR_IO, "LOG_FILE=%s: not a regular file", lg->path);
    }
    lg->fd = fd;
    lg->size = (size_t)st.st_size;
    return KILN_OK;
}

/* Rotate: path.(N-1) → path.N, …, path → path.1, then a fresh path. With no backups the file is
 * truncated instead. Called with the mutex held. Failures leave the current file in use (losing
 * rotation is better than losing log lines). */
static void log_rotate(struct logger *lg)
{
    size_t n = strlen(lg->path) + 16;
    char *from = xmalloc(n), *to = xmalloc(n);

    if (lg->backups == 0) {
        if (ftruncate(lg->fd, 0) == 0)
            lg->size = 0;
        goto out;
    }
    for (unsigned i = lg->backups; i > 1; i--) {
        snprintf(from, n, "%s.%u", lg->path, i - 1);
        snprintf(to, n, "%s.%u", lg->path, i);
        if (rename(from, to) != 0 && errno != ENOENT)
            goto out;
    }
    snprintf(to, n, "%s.1", lg->path);
    if (rename(lg->path, to) != 0)
        goto out;
    close(lg->fd);
    lg->fd = -1;
    if (log_open_file(lg, NULL) != KILN_OK)
        lg->fd = STDERR_FILENO; /* nowhere else to go; keep logging */
out:
    free(from);
    free(to);
}

static void log_write(struct logger *lg, const char *buf, size_t len)
{
    pthread_mutex_lock(&lg->mu);
    if (lg->path != NULL && lg->fd != STDERR_FILENO && lg->max_bytes > 0 && lg->size > 0 &&
        lg->size + len > lg->max_bytes)
        log_rotate(lg);
    while (len > 0) {
        ssize_t w = write(lg->fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break; /* a logger has nobody to report its own failure to */
        }
        buf += w;
        len -= (size_t)w;
        lg->size += (size_t)w;
    }
    pthread_mutex_unlock(&lg->mu);
}

enum kiln_err log_open(struct logger **out, const struct log_options *opt, struct errbuf *eb)
{
    struct logger *lg = xcalloc(1, sizeof *lg);
    enum kiln_err rc;

    pthread_mutex_init(&lg->mu, NULL);
    lg->level = opt->level;
    lg->format = opt->format;
    lg->access_enabled = opt->access_enabled;
    lg->security_enabled = opt->security_enabled;
    lg->max_bytes = opt->max_bytes;
    lg->backups = opt->backups;
    lg->fd = STDERR_FILENO;
    if (opt->path != NULL && opt->path[0] != '\0') {
        lg->path = xstrdup(opt->path);
        rc = log_open_file(lg, eb);
        if (rc) {
            log_free(lg);
            return rc;
        }
    }
    *out = lg;
    return KILN_OK;
}

void log_free(struct logger *lg)
{
    if (lg == NULL || lg->is_default)
        return;
    if (lg->path != NULL && lg->fd >= 0 && lg->fd != STDERR_FILENO)
        close(lg->fd);
    pthread_mutex_destroy(&lg->mu);
    free(lg->path);
    free(lg);
}

struct logger *log_default(void)
{
    return &log_default_logger;
}

bool log_enabled(const struct logger *lg, enum log_level level)
{
    return lg != NULL && level >= lg->level && level <= LOG_ERROR;
}

void log_fields(struct logger *lg, enum log_level level, const char *req_id, const char *msg,
                const struct log_field *fields, size_t nfields)
{
    struct log_line *l;

    if (!log_enabled(lg, level))
        return;
    l = xmalloc(sizeof *l); /* 16 KiB: too much for the stacks of small worker threads */
    log_format_line(lg, l, level, req_id, msg, fields, nfields);
    if (l->cut) {
        /* Too long: keep a prefix of the message, drop the fields, say so. Escaping grows a byte
         * to at most 6, so these prefixes always fit and the line stays valid JSON. */
        char short_msg[LOG_LINE_MAX / 8], short_id[128];
        struct log_field t = LOG_INT("truncated", 1);

        snprintf(short_msg, sizeof short_msg, "%s", msg);
        snprintf(short_id, sizeof short_id, "%s", req_id ? req_id : "");
        log_format_line(lg, l, level, short_id, short_msg, &t, 1);
    }
    log_write(lg, l->buf, l->len);
    free(l);
}

void log_msg(struct logger *lg, enum log_level level, const char *req_id, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX / 2];
    va_list ap;

    if (!log_enabled(lg, level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fields(lg, level, req_id, msg, NULL, 0);
}

void log_access(struct logger *lg, const char *req_id, const char *method, const char *path,
                int status, long long bytes, double duration_ms, const char *client_ip)
{
    char dur[32];
    struct log_field f[6];

    if (lg == NULL || !lg->access_enabled)
        return;
    snprintf(dur, sizeof dur, "%.3f", duration_ms);
    f[0] = LOG_STR("method", method);
    f[1] = LOG_STR("path", path);
    f[2] = LOG_INT("status", status);
    f[3] = LOG_INT("bytes", bytes);
    f[4] = LOG_STR("duration_ms", dur);
    f[5] = LOG_STR("client_ip", client_ip);
    log_fields(lg, LOG_INFO, req_id, "access", f, 6);
}

void log_security(struct logger *lg, const char *req_id, const char *event,
                  const struct log_field *fields, size_t nfields)
{
    struct log_field f[17];

    if (lg == NULL || !lg->security_enabled)
        return;
    if (nfields > 16)
        nfields = 16;
    f[0] = LOG_STR("event", event);
    for (size_t i = 0; i < nfields; i++)
        f[i + 1] = fields[i];
    log_fields(lg, LOG_WARNING, req_id, "security", f, nfields + 1);
}

const char *log_mask_secret(const char *secret)
{
    return secret == NULL || secret[0] == '\0' ? "" : "***";
}

bool log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof log_level_names / sizeof log_level_names[0]; i++) {
        if (strcasecmp(s, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcasecmp(s, "WARN") == 0) {
        *out = LOG_WARNING;
        return true;
    }
    return false;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level <= LOG_ERROR ? log_level_names[level] : "INFO";
}
