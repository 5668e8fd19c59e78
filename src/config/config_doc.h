/* Documents generated from the settings table and a loaded configuration: the .env template,
 * the markdown reference, the human summary and the JSON export. All of them mask CFG_F_SECRET
 * values except the template, which only ever shows embedded defaults.
 *
 * Thread safety: none needed; these run from the command line. */
#ifndef KILN_CONFIG_CONFIG_DOC_H
#define KILN_CONFIG_CONFIG_DOC_H

#include <stdio.h>

#include "config/config.h"
#include "util/err.h"

/* Write the complete .env template (every setting, grouped by section, with its doc line, what
 * it accepts, its aliases and its embedded default) to out. .env.example is this output. */
void config_doc_template(FILE *out);

/* Write docs/configuration.md: a markdown table per section (variable, aliases, type, default,
 * allowed values, description) to out. */
void config_doc_markdown(FILE *out);

/* Write a human table of cfg's effective settings grouped by section, with the source of each
 * value (default, .env, env, or the alias it came through); secrets masked. */
void config_doc_summary(const struct kiln_config *cfg, FILE *out);

/* Write cfg as one JSON object {"NAME": value, ...} in table order (booleans, integers and
 * numbers typed; LIST as arrays of strings; secrets as "***", or "" when unset). */
enum kiln_err config_doc_export(const struct kiln_config *cfg, FILE *out, struct errbuf *eb);

#endif
