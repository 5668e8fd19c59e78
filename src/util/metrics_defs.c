/* The one table of metric names (STYLE.md rule 14). Names follow the Prometheus conventions:
 * snake_case, the kiln_ namespace, base units (seconds, bytes), _total on counters; the
 * process_* names are the standard ones every client library exports. */
#include "util/metrics.h"

const char *const metrics_label_names[METRIC_LABEL__COUNT] = {
    [METRIC_LABEL_LANGUAGE] = "language",  [METRIC_LABEL_EXEC_STATUS] = "status",
    [METRIC_LABEL_ROUTE] = "route",        [METRIC_LABEL_METHOD] = "method",
    [METRIC_LABEL_HTTP_STATUS] = "status", [METRIC_LABEL_AUTH_REASON] = "reason",
    [METRIC_LABEL_VERSION] = "version",
};

const char *const metrics_default_languages[] = {"py",  "js", "ts", "go",  "java", "c",   "cpp",
                                                 "php", "rs", "r",  "f90", "d",    "bash"};
const size_t metrics_default_nlanguages =
    sizeof metrics_default_languages / sizeof metrics_default_languages[0];

/* Execution latencies: a warm sandbox answers in milliseconds, a compile takes seconds, the
 * longest allowed run is minutes. */
#define EXEC_BUCKETS                                                                               \
    .nbuckets = 14,                                                                                \
    .buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
/* Queue waits and HTTP handling: mostly sub-millisecond to a few seconds. */
#define SHORT_BUCKETS                                                                              \
    .nbuckets = 12, .buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30}

const struct metric_def metrics_defs[METRIC__COUNT] = {
    [METRIC_EXECUTIONS_TOTAL] = {"kiln_executions_total",
                                 "Finished executions by language and outcome",
                                 METRIC_COUNTER,
                                 2,
                                 {METRIC_LABEL_LANGUAGE, METRIC_LABEL_EXEC_STATUS}},
    [METRIC_EXECUTION_DURATION] = {"kiln_execution_duration_seconds",
                                   "Wall-clock time of executions, queue wait excluded",
                                   METRIC_HISTOGRAM,
                                   1,
                                   {METRIC_LABEL_LANGUAGE},
                                   EXEC_BUCKETS},
    [METRIC_EXECUTION_QUEUE_WAIT] = {"kiln_execution_queue_wait_seconds",
                                     "Time executions waited for a free slot",
                                     METRIC_HISTOGRAM,
                                     0,
                                     {0},
                                     SHORT_BUCKETS},
    [METRIC_EXECUTIONS_ACTIVE] =
        {"kiln_executions_active", "Executions running now", METRIC_GAUGE, 0, {0}},
    [METRIC_EXECUTIONS_QUEUED] =
        {"kiln_executions_queued", "Executions waiting for a slot", METRIC_GAUGE, 0, {0}},
    [METRIC_POOL_SIZE] = {"kiln_pool_size",
                          "Configured warm sandboxes per language",
                          METRIC_GAUGE,
                          1,
                          {METRIC_LABEL_LANGUAGE}},
    [METRIC_POOL_IDLE] = {"kiln_pool_idle",
                          "Warm sandboxes ready now per language",
                          METRIC_GAUGE,
                          1,
                          {METRIC_LABEL_LANGUAGE}},
    [METRIC_POOL_HITS_TOTAL] = {"kiln_pool_hits_total",
                                "Executions served by a warm sandbox",
                                METRIC_COUNTER,
                                1,
                                {METRIC_LABEL_LANGUAGE}},
    [METRIC_POOL_MISSES_TOTAL] =
        {"kiln_pool_misses_total", "Executions that found no warm sandbox", METRIC_COUNTER, 0, {0}},
    [METRIC_ZYGOTE_RESTARTS_TOTAL] = {"kiln_zygote_restarts_total",
                                      "Python zygotes restarted after dying",
                                      METRIC_COUNTER,
                                      0,
                                      {0}},
    [METRIC_ZYGOTE_PREPARED_READY] = {"kiln_zygote_prepared_ready",
                                      "Prepared heavy Python sandboxes ready (PY_PREPARED_HEAVY)",
                                      METRIC_GAUGE,
                                      0,
                                      {0}},
    [METRIC_EARLY_ANSWERS_TOTAL] = {"kiln_early_answers_total",
                                    "Executions answered when the program ended, from the frozen "
                                    "sandbox, before its teardown",
                                    METRIC_COUNTER,
                                    1,
                                    {METRIC_LABEL_LANGUAGE}},
    [METRIC_SESSIONS] = {"kiln_sessions", "Live sessions", METRIC_GAUGE, 0, {0}},
    [METRIC_FILES_STORED] = {"kiln_files_stored", "Files stored", METRIC_GAUGE, 0, {0}},
    [METRIC_FILE_BYTES_STORED] =
        {"kiln_file_bytes_stored", "Bytes of stored files", METRIC_GAUGE, 0, {0}},
    [METRIC_UPLOAD_BYTES_TOTAL] =
        {"kiln_upload_bytes_total", "Bytes received by uploads", METRIC_COUNTER, 0, {0}},
    [METRIC_DOWNLOAD_BYTES_TOTAL] =
        {"kiln_download_bytes_total", "Bytes sent by downloads", METRIC_COUNTER, 0, {0}},
    [METRIC_HTTP_REQUESTS_TOTAL] = {"kiln_http_requests_total",
                                    "HTTP requests by route pattern, method and status",
                                    METRIC_COUNTER,
                                    3,
                                    {METRIC_LABEL_ROUTE, METRIC_LABEL_METHOD,
                                     METRIC_LABEL_HTTP_STATUS}},
    [METRIC_HTTP_REQUEST_DURATION] = {"kiln_http_request_duration_seconds",
                                      "Time to answer HTTP requests by route pattern",
                                      METRIC_HISTOGRAM,
                                      1,
                                      {METRIC_LABEL_ROUTE},
                                      SHORT_BUCKETS},
    [METRIC_AUTH_FAILURES_TOTAL] = {"kiln_auth_failures_total",
                                    "Refused credentials by reason",
                                    METRIC_COUNTER,
                                    1,
                                    {METRIC_LABEL_AUTH_REASON}},
    [METRIC_BUILD_INFO] = {"kiln_build_info",
                           "Always 1; the version as a label",
                           METRIC_GAUGE,
                           1,
                           {METRIC_LABEL_VERSION}},
    [METRIC_PROCESS_RESIDENT_MEMORY] = {"process_resident_memory_bytes",
                                        "Resident memory size in bytes",
                                        METRIC_GAUGE,
                                        0,
                                        {0},
                                        .process = 1},
    [METRIC_PROCESS_START_TIME] = {"process_start_time_seconds",
                                   "Start time of the process since the epoch in seconds",
                                   METRIC_GAUGE,
                                   0,
                                   {0},
                                   .process = 1},
    [METRIC_PROCESS_OPEN_FDS] =
        {"process_open_fds", "Number of open file descriptors", METRIC_GAUGE, 0, {0}, .process = 1},
    [METRIC_PROCESS_CPU_SECONDS] = {"process_cpu_seconds_total",
                                    "Total user and system CPU time spent in seconds",
                                    METRIC_COUNTER,
                                    0,
                                    {0},
                                    .process = 1},
};
