/* The bridge between the configuration and the logger: open the logger the LOG_* settings
 * describe, and log the effective configuration at start-up with every secret masked. */
#ifndef KILN_CONFIG_CONFIG_LOG_H
#define KILN_CONFIG_CONFIG_LOG_H

#include "config/config.h"
#include "util/err.h"
#include "util/log.h"

/* Fill opt from LOG_LEVEL, LOG_FORMAT, LOG_FILE, LOG_MAX_SIZE_MB, LOG_BACKUP_COUNT,
 * ENABLE_ACCESS_LOGS and ENABLE_SECURITY_LOGS. opt->path borrows cfg's string. */
void config_log_options(const struct kiln_config *cfg, struct log_options *opt);

/* Open the logger of cfg. Caller frees *out with log_free(). */
enum kiln_err config_logger_open(const struct kiln_config *cfg, struct logger **out,
                                 struct errbuf *eb);

/* Log one INFO line "configuration" whose fields are every setting that is not at its default
 * (name → value, secrets as "***") plus the count of settings from env and .env. */
void config_log_summary(const struct kiln_config *cfg, struct logger *lg);

#endif
