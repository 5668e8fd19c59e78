/* Logging: one line per event, as a JSON object with fixed keys (ts, level, msg, then req_id and
 * extra fields when given) or as plain text; to standard error or to a file rotated by size.
 *
 * There is no global logger: the server context holds a struct logger and passes it down. The one
 * exception is log_default(), a process-wide logger on standard error meant only for start-up
 * errors that happen before the configured logger exists.
 *
 * Thread safety: every function may be called from any thread on the same logger; a line is
 * written with a single write(2) under the logger's mutex, so lines never interleave and rotation
 * never loses or splits a line.
 *
 * Secrets are never logged: callers pass secret values through log_mask_secret() first. */
#ifndef KILN_UTIL_LOG_H
#define KILN_UTIL_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Severity, least severe first. Lines below a logger's level are dropped. */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR };

/* Line formats. */
enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

/* How to open a logger. A zeroed struct means: INFO, JSON, standard error, access and security
 * logs off. */
struct log_options {
    enum log_level level;
    enum log_format format;
    const char *path;      /* log file; NULL or "" = standard error. Borrowed during log_open. */
    size_t max_bytes;      /* rotate when a line would grow the file past this; 0 = never */
    unsigned backups;      /* rotated files kept: path.1 (newest) ... path.N; 0 = truncate */
    bool access_enabled;   /* log_access() writes lines */
    bool security_enabled; /* log_security() writes lines */
};

/* One extra key/value of a line. Use LOG_STR / LOG_INT to build them. */
struct log_field {
    const char *key;
    const char *str; /* string value (NULL is written as ""), unless is_num */
    long long num;
    bool is_num;
};

#define LOG_STR(k, v) ((struct log_field){.key = (k), .str = (v), .num = 0, .is_num = false})
#define LOG_INT(k, v)                                                                              \
    ((struct log_field){.key = (k), .str = NULL, .num = (long long)(v), .is_num = true})

/* A logger. Opaque. */
struct logger;

/* Open a logger; the file (if any) is created with mode 0640 and appended to. On failure *out is
 * untouched and eb says why. Caller frees with log_free(). */
enum kiln_err log_open(struct logger **out, const struct log_options *opt, struct errbuf *eb);

/* Close the file and free the logger. NULL and log_default() are no-ops. */
void log_free(struct logger *lg);

/* The process-wide start-up logger: text, INFO, standard error, never freed. Documented exception
 * to the no-globals rule; use only before the configured logger exists. */
struct logger *log_default(void);

/* Whether a line at level would be written (to skip building expensive messages). */
bool log_enabled(const struct logger *lg, enum log_level level);

/* Write one line: printf-style message. req_id may be NULL. */
void log_msg(struct logger *lg, enum log_level level, const char *req_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write one line: fixed message plus nfields extra fields (keys should be snake_case constants;
 * the fixed keys ts, level, msg and req_id are reserved). req_id may be NULL. */
void log_fields(struct logger *lg, enum log_level level, const char *req_id, const char *msg,
                const struct log_field *fields, size_t nfields);

/* One access-log line (INFO, msg "access") when ENABLE_ACCESS_LOGS is on. path is the request
 * path without the query string (queries may carry credentials). */
void log_access(struct logger *lg, const char *req_id, const char *method, const char *path,
                int status, long long bytes, double duration_ms, const char *client_ip);

/* One security-event line (WARNING, msg "security", field event) when ENABLE_SECURITY_LOGS is
 * on. event is a snake_case constant such as "auth_failed"; fields add detail (never secrets). */
void log_security(struct logger *lg, const char *req_id, const char *event,
                  const struct log_field *fields, size_t nfields);

/* The printable stand-in of a secret: "" when unset, "***" otherwise. Never any of its
 * characters, nor its length. Static string. */
const char *log_mask_secret(const char *secret);

/* Parse "DEBUG"/"INFO"/"WARNING"/"ERROR" (case-insensitive; "WARN" too). False if unknown. */
bool log_level_parse(const char *s, enum log_level *out);

/* The upper-case name of a level. Static string. */
const char *log_level_name(enum log_level level);

#endif
