/* kiln's configuration: a struct generated from the table in settings.h, filled from the
 * embedded defaults, a .env file and the environment (environment wins), then validated.
 *
 * Thread safety: a struct kiln_config is built once at start-up and read-only afterwards; any
 * thread may read it. */
#ifndef KILN_CONFIG_CONFIG_H
#define KILN_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "config/settings.h"
#include "util/err.h"

#define CFG_CTYPE_BOOL   bool
#define CFG_CTYPE_INT    long long
#define CFG_CTYPE_DOUBLE double
#define CFG_CTYPE_STR    char *
#define CFG_CTYPE_LIST   char *
#define CFG_CTYPE_ENUM   char *
#define CFG_CTYPE_SECRET char *

/* The index of each row, in table order: CFG_IDX_API_HOST, ... and their count CFG__COUNT. */
enum cfg_index {
#define CFG_INDEX(NAME, ...) CFG_IDX_##NAME,
    KILN_SETTINGS(CFG_INDEX)
#undef CFG_INDEX
        CFG__COUNT
};

/* Where a value came from. */
enum cfg_source { CFG_SRC_DEFAULT, CFG_SRC_DOTENV, CFG_SRC_ENV };

/* The origin of one value: its source and, when it was set through an alias, the alias name
 * (owned by the config; NULL for the primary name or the default). */
struct cfg_origin {
    enum cfg_source source;
    char *via;
};

/* Every setting as a typed member named after its variable in lower case (API_PORT → api_port).
 * Strings are owned by the struct; "" (never NULL) when unset. ENUM values are stored in the
 * spelling of the table's choices (LOG_LEVEL=debug is stored as "DEBUG"). _origin is indexed by
 * enum cfg_index; read it through config_origin(). */
struct kiln_config {
#define CFG_MEMBER(NAME, field, TYPE, def, min, max, flags, section, aliases, doc)                 \
    CFG_CTYPE_##TYPE field;
    KILN_SETTINGS(CFG_MEMBER)
#undef CFG_MEMBER
    struct cfg_origin _origin[CFG__COUNT];
};

/* The value types of the table. */
enum cfg_type { CFG_BOOL, CFG_INT, CFG_DOUBLE, CFG_STR, CFG_LIST, CFG_ENUM, CFG_SECRET };

/* One row of the table, as data for the generic loops (parse, template, docs, export). */
struct cfg_setting {
    const char *name;
    enum cfg_type type;
    size_t offset; /* of the member in struct kiln_config */
    const char *def;
    double min, max;
    unsigned flags;
    const char *section;
    const char *aliases;
    const char *doc;
};

/* The table rows, in declaration order; *count receives their number. Borrowed, static. */
const struct cfg_setting *config_settings(size_t *count);

/* The row of a variable name or one of its aliases; NULL when unknown. Borrowed, static. */
const struct cfg_setting *config_find(const char *name);

/* Source of values: getenv-like lookup. Return NULL when the variable is unset. */
typedef const char *(*config_lookup_fn)(const char *name, void *arg);

/* Build a config: defaults, then the .env file at dotenv_path (NULL or missing file = skipped),
 * then lookup (NULL = the process environment). Precedence, highest first: the environment under
 * the primary name, the environment under an alias (in table order), the .env file under the
 * primary name, the .env file under an alias. Aliases may carry a value map or a unit conversion
 * (see settings.h). Only per-setting parsing happens here; cross-checks are config_validate().
 * On error *out is untouched and eb names the variable, its value and what is allowed.
 * Caller frees *out with config_free(). */
enum kiln_err config_load(struct kiln_config **out, const char *dotenv_path,
                          config_lookup_fn lookup, void *lookup_arg, struct errbuf *eb);

/* Free a config and its strings. NULL is a no-op. */
void config_free(struct kiln_config *cfg);

/* How serious a finding is. Validation problems are all CFG_SEV_ERROR. */
enum cfg_severity { CFG_SEV_LOW, CFG_SEV_MEDIUM, CFG_SEV_HIGH, CFG_SEV_ERROR };

/* One problem or weakness: the variable it is about and a sentence naming the variable(s), the
 * value(s) (never a secret's) and what is allowed or advised. */
struct cfg_finding {
    enum cfg_severity severity;
    const char *setting; /* static: the table's name of the main variable concerned */
    char *msg;           /* owned */
};

/* A growable list of findings. Zero-initialise; free with config_findings_free(). */
struct cfg_findings {
    struct cfg_finding *items;
    size_t count, cap;
};

/* Append a finding (the message is formatted and copied). */
void config_findings_add(struct cfg_findings *f, enum cfg_severity sev, const char *setting,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Free the findings' messages and array and zero the list. NULL is a no-op. */
void config_findings_free(struct cfg_findings *f);

/* Lower-case name of a severity ("low", "medium", "high", "error"). Static string. */
const char *config_severity_name(enum cfg_severity sev);

/* Like config_load, but never stops at the first bad value: every parse problem (bad .env line,
 * bad type, out of range, unknown choice) is appended to problems and the setting keeps its
 * default, so that `kiln config validate` can list them all. Always sets *out (caller frees with
 * config_free()). */
void config_load_all(struct kiln_config **out, const char *dotenv_path, config_lookup_fn lookup,
                     void *lookup_arg, struct cfg_findings *problems);

/* Cross-checks between settings and against the host (files readable, directories writable,
 * backends compiled in): appends one CFG_SEV_ERROR finding per problem. Returns how many it
 * added. Reads the filesystem; does not modify anything. */
size_t config_validate(const struct kiln_config *cfg, struct cfg_findings *problems);

/* Weak settings for `kiln config security`: default or short keys, debug/docs in production,
 * TLS off on a public bind, auth off, open trusted networks or CORS, isolation off, ...
 * Appends findings of severity LOW..HIGH; returns how many it added. */
size_t config_security(const struct kiln_config *cfg, struct cfg_findings *findings);

/* What `kiln serve` calls: config_load_all + config_validate. On any problem *out is untouched,
 * every problem is in problems (when not NULL; the caller prints them) and eb holds a summary
 * ("2 configuration problems: first; second"). Caller frees *out with config_free(). */
enum kiln_err config_open(struct kiln_config **out, const char *dotenv_path,
                          config_lookup_fn lookup, void *lookup_arg, struct cfg_findings *problems,
                          struct errbuf *eb);

/* The origin of setting s's value in cfg; *via (may be NULL) gets the alias it was set through,
 * or NULL. Borrowed from cfg. */
enum cfg_source config_origin(const struct kiln_config *cfg, const struct cfg_setting *s,
                              const char **via);

/* The value of s in cfg as text, as it would be written in a .env file ("true", "8000", the
 * string itself). Secrets are NOT masked here: use config_value_display() for anything shown.
 * Caller frees with free(). */
char *config_value_text(const struct kiln_config *cfg, const struct cfg_setting *s);

/* Like config_value_text, but a CFG_F_SECRET value becomes log_mask_secret()'s stand-in. Caller
 * frees with free(). */
char *config_value_display(const struct kiln_config *cfg, const struct cfg_setting *s);

/* Describe what s accepts, e.g. "0 to 65535", "true or false", "local|kubernetes", into buf.
 * Returns buf. */
const char *config_allowed(const struct cfg_setting *s, char *buf, size_t size);

/* One alias of a row, parsed from the table's alias string (see settings.h). */
struct cfg_alias {
    char name[96];
    const char *map; /* "from=to,from=to" (not NUL-terminated at map_len), or NULL */
    size_t map_len;
    double mul_num, mul_den; /* unit conversion value * num / den; 1/1 when none */
};

/* Iterate the aliases of s: *pos starts at 0; returns false when there are no more. */
bool config_alias_next(const struct cfg_setting *s, size_t *pos, struct cfg_alias *out);

#endif
