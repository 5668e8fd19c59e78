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

/* Every setting as a typed member named after its variable in lower case (API_PORT → api_port).
 * Strings are owned by the struct; "" (never NULL) when unset. */
struct kiln_config {
#define CFG_MEMBER(NAME, field, TYPE, def, min, max, flags, section, aliases, doc)                 \
    CFG_CTYPE_##TYPE field;
    KILN_SETTINGS(CFG_MEMBER)
#undef CFG_MEMBER
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
 * then lookup (NULL = the process environment), later sources winning. A setting named by
 * several of its aliases takes the primary name first, then aliases in table order.
 * On error *out is untouched and eb names the variable, its value and what is allowed.
 * Caller frees *out with config_free(). */
enum kiln_err config_load(struct kiln_config **out, const char *dotenv_path,
                          config_lookup_fn lookup, void *lookup_arg, struct errbuf *eb);

/* Free a config and its strings. NULL is a no-op. */
void config_free(struct kiln_config *cfg);

#endif
