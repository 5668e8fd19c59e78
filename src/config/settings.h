/* The one table of kiln's settings (DESIGN.md: "Every setting is declared once").
 *
 * Each row: X(NAME, field, TYPE, default, min, max, flags, section, aliases, doc)
 *   NAME     the environment variable (and .env key)
 *   field    the member of struct kiln_config (always the lower-case NAME)
 *   TYPE     BOOL (bool) | INT (long long) | DOUBLE (double) | STR | LIST | ENUM | SECRET (char *)
 *            ENUM: the allowed values are the `aliases`-free `choices` given in the doc's braces
 *   default  the embedded default as a string ("" = unset)
 *   min,max  inclusive range for INT and DOUBLE (ignored otherwise)
 *   flags    CFG_F_* bits
 *   section  the heading in docs/configuration.md and .env.example
 *   aliases  other accepted names, space-separated ("" = none); e.g. the CodeMie CODE_EXECUTOR_*
 *   doc      one line for the docs; for ENUM it starts with the choices, "{a|b|c} ..."
 *
 * The struct, the parser, `kiln config template|summary|validate|security|export`, .env.example
 * and docs/configuration.md are all generated from these rows. Adding a setting is one row. */
#ifndef KILN_CONFIG_SETTINGS_H
#define KILN_CONFIG_SETTINGS_H

/* Flags of a setting. */
#define CFG_F_NONE   0u
#define CFG_F_SECRET 1u /* never printed or logged in clear; masked in export */
#define CFG_F_QUANTITY_MB                                                                          \
    2u                   /* INT in MiB that also accepts Kubernetes quantities: 128Mi, 1Gi, 512M */
#define CFG_F_SECONDS 4u /* INT in seconds that also accepts a decimal such as "30.0" */

#define KILN_SETTINGS(X)                                                                           \
    /* --- API server --- */                                                                       \
    X(API_HOST, api_host, STR, "0.0.0.0", 0, 0, CFG_F_NONE, "API", "",                             \
      "Address to bind the API server")                                                            \
    X(API_PORT, api_port, INT, "8000", 0, 65535, CFG_F_NONE, "API", "",                            \
      "Port for the API server (0 = pick a free port)")                                            \
    X(API_DEBUG, api_debug, BOOL, "false", 0, 0, CFG_F_NONE, "API", "",                            \
      "Debug mode: more detail in errors and logs (disable in production)")                        \
    /* --- Resource limits --- */                                                                  \
    X(MAX_EXECUTION_TIME, max_execution_time, INT, "30", 1, 86400, CFG_F_SECONDS,                  \
      "Resource limits", "CODE_EXECUTOR_EXECUTION_TIMEOUT",                                        \
      "Maximum wall-clock time of one execution (seconds)")                                        \
    X(MAX_MEMORY_MB, max_memory_mb, INT, "512", 16, 1048576, CFG_F_QUANTITY_MB, "Resource limits", \
      "CODE_EXECUTOR_MEMORY_LIMIT",                                                                \
      "Maximum memory of one execution, swap included (MiB; also 128Mi, 1Gi)")                     \
    X(MAX_PIDS, max_pids, INT, "512", 1, 1048576, CFG_F_NONE, "Resource limits", "",               \
      "Maximum processes and threads of one execution (cgroup pids limit; stops fork bombs)")      \
    X(MAX_OPEN_FILES, max_open_files, INT, "1024", 16, 1048576, CFG_F_NONE, "Resource limits", "", \
      "Maximum open files of one execution (RLIMIT_NOFILE)")                                       \
    /* --- Storage --- */                                                                          \
    X(DATA_DIR, data_dir, STR, "./data", 0, 0, CFG_F_NONE, "Storage", "",                          \
      "Directory for the SQLite database and file bytes of the embedded store")                    \
    /* --- Logging --- */                                                                          \
    X(LOG_LEVEL, log_level, ENUM, "INFO", 0, 0, CFG_F_NONE, "Logging", "",                         \
      "{DEBUG|INFO|WARNING|ERROR} Logging level")                                                  \
    X(LOG_FORMAT, log_format, ENUM, "json", 0, 0, CFG_F_NONE, "Logging", "",                       \
      "{json|text} Log line format")

#endif
