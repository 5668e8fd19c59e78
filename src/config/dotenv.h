/* Reading .env files for config_load (internal to config/). Syntax: KEY=VALUE lines, `#`
 * comments (also after an unquoted value, preceded by a space), an optional `export ` prefix,
 * 'single quotes' (literal) or "double quotes" (understanding \" \\ and \n). */
#ifndef KILN_CONFIG_DOTENV_H
#define KILN_CONFIG_DOTENV_H

#include <stddef.h>

#include "config/config.h"
#include "util/err.h"

/* One KEY=VALUE of a .env file; both strings owned. */
struct config_kv {
    char *key, *value;
};

/* The pairs of a .env file in file order. Zero-initialise; free with config_dotenv_free(). */
struct config_dotenv {
    struct config_kv *kv;
    size_t count, cap;
};

/* Append the pairs of the file at path to d. A missing file is not an error. With problems ==
 * NULL the first bad line (or an unreadable file) fails with eb set; otherwise every bad line is
 * appended to problems and skipped, and the result is KILN_OK. eb must not be NULL then. */
enum kiln_err config_dotenv_read(struct config_dotenv *d, const char *path,
                                 struct cfg_findings *problems, struct errbuf *eb);

/* The value of the last occurrence of name in the struct config_dotenv at arg, or NULL. Has the
 * shape of config_lookup_fn. Borrowed from the struct. */
const char *config_dotenv_get(const char *name, void *arg);

/* Free the pairs (not d itself). */
void config_dotenv_free(struct config_dotenv *d);

#endif
