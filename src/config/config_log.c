#include "config/config_log.h"

#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

void config_log_options(const struct kiln_config *cfg, struct log_options *opt)
{
    memset(opt, 0, sizeof *opt);
    if (!log_level_parse(cfg->log_level, &opt->level))
        opt->level = LOG_INFO;
    opt->format = strcmp(cfg->log_format, "text") == 0 ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    opt->path = cfg->log_file;
    opt->max_bytes = (size_t)cfg->log_max_size_mb * 1024 * 1024;
    opt->backups = (unsigned)cfg->log_backup_count;
    opt->access_enabled = cfg->enable_access_logs;
    opt->security_enabled = cfg->enable_security_logs;
}

enum kiln_err config_logger_open(const struct kiln_config *cfg, struct logger **out,
                                 struct errbuf *eb)
{
    struct log_options opt;

    config_log_options(cfg, &opt);
    return log_open(out, &opt, eb);
}

void config_log_summary(const struct kiln_config *cfg, struct logger *lg)
{
    size_t n, nf = 0, from_env = 0, from_dotenv = 0;
    const struct cfg_setting *t = config_settings(&n);
    struct log_field *f;
    char **vals;

    if (!log_enabled(lg, LOG_INFO))
        return;
    f = xcalloc(n + 2, sizeof *f);
    vals = xcalloc(n, sizeof *vals);
    for (size_t i = 0; i < n; i++) {
        enum cfg_source src = config_origin(cfg, &t[i], NULL);
        if (src == CFG_SRC_DEFAULT)
            continue;
        from_env += src == CFG_SRC_ENV;
        from_dotenv += src == CFG_SRC_DOTENV;
        /* config_value_display masks CFG_F_SECRET values: the one rule that keeps keys out */
        vals[i] = config_value_display(cfg, &t[i]);
        f[nf++] = LOG_STR(t[i].name, vals[i]);
    }
    f[nf++] = LOG_INT("settings_from_env", from_env);
    f[nf++] = LOG_INT("settings_from_dotenv", from_dotenv);
    log_fields(lg, LOG_INFO, NULL, "configuration", f, nf);
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    free(f);
}
