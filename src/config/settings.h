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
 *   aliases  other accepted names, space-separated ("" = none); e.g. the CodeMie CODE_EXECUTOR_*.
 *            An alias may translate its value before the setting parses it:
 *              NAME{from=to,from=to}  value map, case-insensitive; unmapped values pass through
 *              NAME*num/den           unit conversion: value * num / den (INT: rounded up, so a
 *                                     positive duration never becomes 0)
 *            e.g. "CODE_EXECUTOR_EXECUTION_MODE{sandbox=kubernetes}",
 *                 "CODE_EXECUTOR_SESSION_TIMEOUT*1/3600" (seconds into hours)
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
    X(API_HOST, api_host, STR, "0.0.0.0", 0, 0, CFG_F_NONE, "API", "",                             \
      "Address to bind the API server")                                                            \
    X(API_PORT, api_port, INT, "8000", 0, 65535, CFG_F_NONE, "API", "",                            \
      "Port of the API server (0 = pick a free port and log it)")                                  \
    X(API_DEBUG, api_debug, BOOL, "false", 0, 0, CFG_F_NONE, "API", "",                            \
      "Debug mode: more detail in error bodies and logs (disable in production)")                  \
    X(API_RELOAD, api_reload, BOOL, "false", 0, 0, CFG_F_NONE, "API", "",                          \
      "Accepted for compatibility; kiln has no auto-reload and ignores it")                        \
    X(ENVIRONMENT, environment, ENUM, "development", 0, 0, CFG_F_NONE, "API", "",                  \
      "{development|production} Deployment kind; production tightens `kiln config security`")      \
    X(HTTP_THREADS, http_threads, INT, "0", 0, 256, CFG_F_NONE, "API", "",                         \
      "Threads polling HTTP connections (0 = one per core)")                                       \
    X(HTTP_MAX_CONNECTIONS, http_max_connections, INT, "1024", 1, 65536, CFG_F_NONE, "API", "",    \
      "Open client connections at most")                                                           \
    X(HTTP_CONNECTION_TIMEOUT, http_connection_timeout, INT, "60", 1, 3600, CFG_F_NONE, "API", "", \
      "Idle client connection timeout (seconds)")                                                  \
    X(MAX_REQUEST_BODY_KB, max_request_body_kb, INT, "1024", 1, 1048576, CFG_F_NONE, "API", "",    \
      "Largest JSON request body (KiB); uploads are limited by the file limits")                   \
    X(SHUTDOWN_GRACE_SECONDS, shutdown_grace_seconds, INT, "30", 0, 3600, CFG_F_NONE, "API", "",   \
      "On SIGTERM/SIGINT, wait this long for in-flight requests to finish")                        \
    X(ENABLE_HTTPS, enable_https, BOOL, "false", 0, 0, CFG_F_NONE, "TLS", "",                      \
      "Serve HTTPS (GnuTLS inside libmicrohttpd)")                                                 \
    X(HTTPS_PORT, https_port, INT, "443", 0, 65535, CFG_F_NONE, "TLS", "",                         \
      "Port of the HTTPS server")                                                                  \
    X(SSL_CERTS_PATH, ssl_certs_path, STR, "./ssl", 0, 0, CFG_F_NONE, "TLS", "",                   \
      "Directory holding cert.pem and key.pem, used when SSL_CERT_FILE/SSL_KEY_FILE are unset")    \
    X(SSL_CERT_FILE, ssl_cert_file, STR, "", 0, 0, CFG_F_NONE, "TLS", "",                          \
      "Certificate chain file (PEM)")                                                              \
    X(SSL_KEY_FILE, ssl_key_file, STR, "", 0, 0, CFG_F_NONE, "TLS", "", "Private key file (PEM)")  \
    X(SSL_CA_CERTS, ssl_ca_certs, STR, "", 0, 0, CFG_F_NONE, "TLS", "",                            \
      "CA certificates file (PEM) for client certificates (optional)")                             \
    X(SSL_REDIRECT, ssl_redirect, BOOL, "false", 0, 0, CFG_F_NONE, "TLS", "",                      \
      "Answer plain HTTP on API_PORT with a redirect to HTTPS")                                    \
    X(AUTH_ENABLED, auth_enabled, BOOL, "true", 0, 0, CFG_F_NONE, "Authentication", "",            \
      "Require a credential on API routes (admin routes always need MASTER_API_KEY)")              \
    X(API_KEY, api_key, SECRET, "test-api-key", 0, 0, CFG_F_SECRET, "Authentication", "",          \
      "Primary API key (CHANGE IN PRODUCTION)")                                                    \
    X(API_KEYS, api_keys, SECRET, "", 0, 0, CFG_F_SECRET, "Authentication", "",                    \
      "Additional API keys, comma-separated")                                                      \
    X(API_KEY_HEADER, api_key_header, STR, "x-api-key", 0, 0, CFG_F_NONE, "Authentication", "",    \
      "Header carrying the API key")                                                               \
    X(API_KEY_CACHE_TTL, api_key_cache_ttl, INT, "300", 0, 86400, CFG_F_NONE, "Authentication",    \
      "", "How long a validated managed key is cached (seconds)")                                  \
    X(MASTER_API_KEY, master_api_key, SECRET, "", 0, 0, CFG_F_SECRET, "Authentication", "",        \
      "Key for the admin API, dashboard and `kiln keys` (unset = admin disabled)")                 \
    X(RATE_LIMIT_ENABLED, rate_limit_enabled, BOOL, "true", 0, 0, CFG_F_NONE, "Authentication",    \
      "", "Enforce per-key rate limits of managed keys")                                           \
    X(AUTH_TRUSTED_NETWORKS, auth_trusted_networks, LIST, "", 0, 0, CFG_F_NONE, "Authentication",  \
      "", "CIDRs whose requests need no key, comma-separated (never for admin routes)")            \
    X(AUTH_MAX_FAILURES, auth_max_failures, INT, "10", 1, 1000000, CFG_F_NONE, "Authentication",   \
      "", "Failed authentications per client IP per window before 429")                            \
    X(AUTH_FAILURE_WINDOW_SECONDS, auth_failure_window_seconds, INT, "3600", 1, 604800,            \
      CFG_F_NONE, "Authentication", "", "Window of AUTH_MAX_FAILURES (seconds)")                   \
    X(JWT_PUBLIC_KEY_FILE, jwt_public_key_file, STR, "", 0, 0, CFG_F_NONE, "Authentication", "",   \
      "PEM public key (Ed25519 or RSA) verifying LibreChat-minted JWTs")                           \
    X(JWT_PUBLIC_KEYS_DIR, jwt_public_keys_dir, STR, "", 0, 0, CFG_F_NONE, "Authentication", "",   \
      "Directory of *.pem public keys verifying JWTs")                                             \
    X(JWT_JWKS_FILE, jwt_jwks_file, STR, "", 0, 0, CFG_F_NONE, "Authentication", "",               \
      "JWKS JSON file of public keys verifying JWTs")                                              \
    X(JWT_ISSUER, jwt_issuer, STR, "librechat", 0, 0, CFG_F_NONE, "Authentication", "",            \
      "Required `iss` of JWTs")                                                                    \
    X(JWT_AUDIENCE, jwt_audience, STR, "codeapi", 0, 0, CFG_F_NONE, "Authentication", "",          \
      "Required `aud` of JWTs")                                                                    \
    X(JWT_LEEWAY_SECONDS, jwt_leeway_seconds, INT, "30", 0, 600, CFG_F_NONE, "Authentication", "", \
      "Clock skew allowed on exp/nbf/iat (seconds)")                                               \
    X(JWT_MAX_LIFETIME_SECONDS, jwt_max_lifetime_seconds, INT, "300", 1, 86400, CFG_F_NONE,        \
      "Authentication", "", "Longest accepted JWT lifetime, exp - iat (seconds)")                  \
    X(REDIS_HOST, redis_host, STR, "localhost", 0, 0, CFG_F_NONE, "Redis", "",                     \
      "Redis server host (STORE=redis)")                                                           \
    X(REDIS_PORT, redis_port, INT, "6379", 1, 65535, CFG_F_NONE, "Redis", "", "Redis server port") \
    X(REDIS_PASSWORD, redis_password, SECRET, "", 0, 0, CFG_F_SECRET, "Redis", "",                 \
      "Redis password")                                                                            \
    X(REDIS_DB, redis_db, INT, "0", 0, 1024, CFG_F_NONE, "Redis", "", "Redis database number")     \
    X(REDIS_URL, redis_url, SECRET, "", 0, 0, CFG_F_SECRET, "Redis", "",                           \
      "redis://[:password@]host:port/db; overrides the settings above")                            \
    X(REDIS_MAX_CONNECTIONS, redis_max_connections, INT, "20", 1, 10000, CFG_F_NONE, "Redis", "",  \
      "Connections in the pool at most")                                                           \
    X(REDIS_SOCKET_TIMEOUT, redis_socket_timeout, INT, "5", 1, 3600, CFG_F_NONE, "Redis", "",      \
      "Socket timeout (seconds)")                                                                  \
    X(REDIS_SOCKET_CONNECT_TIMEOUT, redis_socket_connect_timeout, INT, "5", 1, 3600, CFG_F_NONE,   \
      "Redis", "", "Connect timeout (seconds)")                                                    \
    X(MINIO_ENDPOINT, minio_endpoint, STR, "localhost:9000", 0, 0, CFG_F_NONE, "S3 / MinIO", "",   \
      "S3 endpoint host:port, no scheme (BLOB=s3)")                                                \
    X(MINIO_ACCESS_KEY, minio_access_key, SECRET, "", 0, 0, CFG_F_SECRET, "S3 / MinIO", "",        \
      "Access key (required with BLOB=s3 unless MINIO_USE_IAM)")                                   \
    X(MINIO_SECRET_KEY, minio_secret_key, SECRET, "", 0, 0, CFG_F_SECRET, "S3 / MinIO", "",        \
      "Secret key (required with BLOB=s3 unless MINIO_USE_IAM)")                                   \
    X(MINIO_SECURE, minio_secure, BOOL, "false", 0, 0, CFG_F_NONE, "S3 / MinIO", "",               \
      "Use HTTPS to reach the endpoint")                                                           \
    X(MINIO_BUCKET, minio_bucket, STR, "kiln-files", 0, 0, CFG_F_NONE, "S3 / MinIO", "",           \
      "Bucket for file bytes and archived state")                                                  \
    X(MINIO_REGION, minio_region, STR, "us-east-1", 0, 0, CFG_F_NONE, "S3 / MinIO", "",            \
      "Region used in SigV4 signatures")                                                           \
    X(MINIO_USE_IAM, minio_use_iam, BOOL, "false", 0, 0, CFG_F_NONE, "S3 / MinIO", "",             \
      "Take credentials from the environment's IAM role instead of keys")                          \
    X(K8S_NAMESPACE, k8s_namespace, STR, "", 0, 0, CFG_F_NONE, "Kubernetes",                       \
      "CODE_EXECUTOR_NAMESPACE", "Namespace of execution pods (\"\" = the API's own namespace)")   \
    X(K8S_API_URL, k8s_api_url, STR, "", 0, 0, CFG_F_NONE, "Kubernetes", "",                       \
      "Kubernetes API base URL (\"\" = in-cluster service account or KUBECONFIG_PATH)")            \
    X(KUBECONFIG_PATH, kubeconfig_path, STR, "", 0, 0, CFG_F_NONE, "Kubernetes",                   \
      "CODE_EXECUTOR_KUBECONFIG_PATH", "kubeconfig for a dedicated cluster")                       \
    X(K8S_IMAGE_REGISTRY, k8s_image_registry, STR, "kiln", 0, 0, CFG_F_NONE, "Kubernetes", "",     \
      "Registry prefix of the runtime images")                                                     \
    X(K8S_IMAGE_TAG, k8s_image_tag, STR, "latest", 0, 0, CFG_F_NONE, "Kubernetes", "",             \
      "Tag of the runtime images")                                                                 \
    X(K8S_IMAGE_PULL_SECRETS, k8s_image_pull_secrets, LIST, "", 0, 0, CFG_F_NONE, "Kubernetes",    \
      "", "Image pull secret names, comma-separated")                                              \
    X(K8S_CPU_LIMIT, k8s_cpu_limit, STR, "1", 0, 0, CFG_F_NONE, "Kubernetes",                      \
      "CODE_EXECUTOR_CPU_LIMIT", "CPU limit of an execution pod (quantity)")                       \
    X(K8S_MEMORY_LIMIT, k8s_memory_limit, STR, "512Mi", 0, 0, CFG_F_NONE, "Kubernetes",            \
      "CODE_EXECUTOR_MEMORY_LIMIT", "Memory limit of an execution pod (quantity)")                 \
    X(K8S_CPU_REQUEST, k8s_cpu_request, STR, "100m", 0, 0, CFG_F_NONE, "Kubernetes",               \
      "CODE_EXECUTOR_CPU_REQUEST", "CPU request of an execution pod (quantity)")                   \
    X(K8S_MEMORY_REQUEST, k8s_memory_request, STR, "128Mi", 0, 0, CFG_F_NONE, "Kubernetes",        \
      "CODE_EXECUTOR_MEMORY_REQUEST", "Memory request of an execution pod (quantity)")             \
    X(K8S_POD_NAME_PREFIX, k8s_pod_name_prefix, STR, "kiln-runner-", 0, 0, CFG_F_NONE,             \
      "Kubernetes", "CODE_EXECUTOR_POD_NAME_PREFIX", "Prefix of execution pod names")              \
    X(K8S_RUN_AS_USER, k8s_run_as_user, INT, "65532", 1, 2147483647, CFG_F_NONE, "Kubernetes",     \
      "CODE_EXECUTOR_RUN_AS_USER", "runAsUser of execution pods")                                  \
    X(K8S_RUN_AS_GROUP, k8s_run_as_group, INT, "65532", 1, 2147483647, CFG_F_NONE, "Kubernetes",   \
      "CODE_EXECUTOR_RUN_AS_GROUP", "runAsGroup of execution pods")                                \
    X(K8S_FS_GROUP, k8s_fs_group, INT, "65532", 1, 2147483647, CFG_F_NONE, "Kubernetes",           \
      "CODE_EXECUTOR_FS_GROUP", "fsGroup of execution pods")                                       \
    X(K8S_RUNNER_PORT, k8s_runner_port, INT, "8080", 1, 65535, CFG_F_NONE, "Kubernetes", "",       \
      "Port of `kiln runner` in execution pods")                                                   \
    X(RUNNER_WORKDIR, runner_workdir, STR, "/mnt/data", 0, 0, CFG_F_NONE, "Kubernetes",            \
      "CODE_EXECUTOR_WORKDIR_BASE", "Working directory of `kiln runner` in a pod")                 \
    X(MAX_EXECUTION_TIME, max_execution_time, INT, "30", 1, 86400, CFG_F_SECONDS,                  \
      "Resource limits", "CODE_EXECUTOR_EXECUTION_TIMEOUT",                                        \
      "Wall-clock limit of one execution (seconds; also 30.0)")                                    \
    X(DEFAULT_EXECUTION_TIME, default_execution_time, INT, "0", 0, 86400, CFG_F_SECONDS,           \
      "Resource limits", "CODE_EXECUTOR_DEFAULT_TIMEOUT",                                          \
      "Limit when a request names none (seconds; 0 = MAX_EXECUTION_TIME)")                         \
    X(MAX_CPU_TIME, max_cpu_time, INT, "0", 0, 86400, CFG_F_NONE, "Resource limits", "",           \
      "CPU-time limit of one execution (seconds; 0 = MAX_EXECUTION_TIME)")                         \
    X(MAX_MEMORY_MB, max_memory_mb, INT, "512", 16, 1048576, CFG_F_QUANTITY_MB, "Resource limits", \
      "CODE_EXECUTOR_MEMORY_LIMIT",                                                                \
      "Memory of one execution, swap included (MiB; also quantities such as 128Mi, 1Gi)")          \
    X(MAX_CPU_QUOTA, max_cpu_quota, INT, "50000", 1000, 6400000, CFG_F_NONE, "Resource limits",    \
      "", "CPU quota per 100000 us period (100000 = one CPU)")                                     \
    X(MAX_PIDS, max_pids, INT, "512", 8, 65536, CFG_F_NONE, "Resource limits", "",                 \
      "Processes and threads of one execution (fork-bomb bound)")                                  \
    X(MAX_OPEN_FILES, max_open_files, INT, "1024", 16, 1048576, CFG_F_NONE, "Resource limits", "", \
      "Open files of one process (RLIMIT_NOFILE)")                                                 \
    X(MAX_WRITE_FILE_MB, max_write_file_mb, INT, "100", 1, 1048576, CFG_F_NONE, "Resource limits", \
      "", "Largest file a program may write (RLIMIT_FSIZE, MiB)")                                  \
    X(SANDBOX_DATA_MB, sandbox_data_mb, INT, "256", 1, 1048576, CFG_F_NONE, "Resource limits", "", \
      "Size of /mnt/data inside a sandbox (MiB)")                                                  \
    X(SANDBOX_TMP_MB, sandbox_tmp_mb, INT, "256", 1, 1048576, CFG_F_NONE, "Resource limits", "",   \
      "Size of /tmp inside a sandbox (MiB)")                                                       \
    X(MAX_STDOUT_BYTES, max_stdout_bytes, INT, "65536", 1024, 67108864, CFG_F_NONE,                \
      "Resource limits", "", "Bytes of stdout kept before the truncation marker")                  \
    X(MAX_STDERR_BYTES, max_stderr_bytes, INT, "65536", 1024, 67108864, CFG_F_NONE,                \
      "Resource limits", "", "Bytes of stderr kept before the truncation marker")                  \
    X(MAX_FILE_SIZE_MB, max_file_size_mb, INT, "10", 1, 1048576, CFG_F_NONE, "File limits", "",    \
      "Largest uploaded or generated file (MiB)")                                                  \
    X(MAX_TOTAL_FILE_SIZE_MB, max_total_file_size_mb, INT, "50", 1, 1048576, CFG_F_NONE,           \
      "File limits", "", "Total bytes of one session's files (MiB)")                               \
    X(MAX_FILES_PER_SESSION, max_files_per_session, INT, "50", 1, 100000, CFG_F_NONE,              \
      "File limits", "", "Files of one session at most")                                           \
    X(MAX_OUTPUT_FILES, max_output_files, INT, "10", 0, 10000, CFG_F_NONE, "File limits", "",      \
      "Generated files returned by one execution at most")                                         \
    X(MAX_FILENAME_LENGTH, max_filename_length, INT, "255", 1, 255, CFG_F_NONE, "File limits", "", \
      "Longest file name (bytes)")                                                                 \
    X(MAX_CONCURRENT_EXECUTIONS, max_concurrent_executions, INT, "10", 1, 10000, CFG_F_NONE,       \
      "Concurrency", "", "Executions running at once")                                             \
    X(MAX_QUEUED_EXECUTIONS, max_queued_executions, INT, "100", 0, 100000, CFG_F_NONE,             \
      "Concurrency", "", "Executions waiting for a slot before 429")                               \
    X(MAX_SESSIONS_PER_ENTITY, max_sessions_per_entity, INT, "100", 1, 1000000, CFG_F_NONE,        \
      "Concurrency", "", "Sessions one entity_id may hold")                                        \
    X(SESSION_TTL_HOURS, session_ttl_hours, INT, "24", 0, 87600, CFG_F_NONE, "Sessions",           \
      "CODE_EXECUTOR_SESSION_TIMEOUT*1/3600", "Session lifetime (hours; 0 = never expire)")        \
    X(SESSION_TTL_SECONDS, session_ttl_seconds, INT, "0", 0, 315360000, CFG_F_NONE, "Sessions",    \
      "", "Session lifetime in seconds; > 0 overrides SESSION_TTL_HOURS (tests, short TTLs)")      \
    X(SESSION_CLEANUP_INTERVAL_MINUTES, session_cleanup_interval_minutes, INT, "10", 1, 10080,     \
      CFG_F_NONE, "Sessions", "", "Interval of the expired-session sweeper (minutes)")             \
    X(SESSION_ID_LENGTH, session_id_length, INT, "21", 21, 21, CFG_F_NONE, "Sessions", "",         \
      "Length of session and file ids; fixed at 21 because LibreChat rejects any other")           \
    X(POD_POOL_ENABLED, pod_pool_enabled, BOOL, "true", 0, 0, CFG_F_NONE, "Pools", "",             \
      "Keep warm sandboxes (local) or pods (kubernetes) ready per language")                       \
    X(POD_POOL_WARMUP_ON_STARTUP, pod_pool_warmup_on_startup, BOOL, "true", 0, 0, CFG_F_NONE,      \
      "Pools", "CODE_EXECUTOR_SKIP_ENVIRONMENT_SETUP{true=false,false=true,1=false,0=true}",       \
      "Fill the pools at start-up")                                                                \
    X(POD_POOL_PY, pod_pool_py, INT, "5", 0, 1000, CFG_F_NONE, "Pools",                            \
      "CODE_EXECUTOR_MAX_POD_POOL_SIZE",                                                           \
      "Warm Python sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")              \
    X(POD_POOL_JS, pod_pool_js, INT, "2", 0, 1000, CFG_F_NONE, "Pools", "",                        \
      "Warm JavaScript sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")          \
    X(POD_POOL_TS, pod_pool_ts, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                        \
      "Warm TypeScript sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")          \
    X(POD_POOL_GO, pod_pool_go, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                        \
      "Warm Go sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                  \
    X(POD_POOL_JAVA, pod_pool_java, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                    \
      "Warm Java sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                \
    X(POD_POOL_RS, pod_pool_rs, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                        \
      "Warm Rust sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                \
    X(POD_POOL_C, pod_pool_c, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                          \
      "Warm C sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                   \
    X(POD_POOL_CPP, pod_pool_cpp, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                      \
      "Warm C++ sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                 \
    X(POD_POOL_PHP, pod_pool_php, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                      \
      "Warm PHP sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                 \
    X(POD_POOL_R, pod_pool_r, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                          \
      "Warm R sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                   \
    X(POD_POOL_F90, pod_pool_f90, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                      \
      "Warm Fortran sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")             \
    X(POD_POOL_D, pod_pool_d, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                          \
      "Warm D sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                   \
    X(POD_POOL_BASH, pod_pool_bash, INT, "0", 0, 1000, CFG_F_NONE, "Pools", "",                    \
      "Warm Bash sandboxes/pods (0 = start one per execution; Jobs on Kubernetes)")                \
    X(POD_POOL_PARALLEL_BATCH, pod_pool_parallel_batch, INT, "5", 1, 100, CFG_F_NONE, "Pools", "", \
      "Sandboxes/pods started in parallel while filling")                                          \
    X(POD_POOL_REPLENISH_INTERVAL, pod_pool_replenish_interval, INT, "2", 1, 3600, CFG_F_NONE,     \
      "Pools", "", "Seconds between pool refill checks")                                           \
    X(POD_POOL_EXHAUSTION_TRIGGER, pod_pool_exhaustion_trigger, BOOL, "true", 0, 0, CFG_F_NONE,    \
      "Pools", "", "Refill at once when a pool runs empty")                                        \
    X(PY_PRELOAD, py_preload, LIST, "numpy,pandas,matplotlib", 0, 0, CFG_F_NONE, "Pools", "",      \
      "Modules the Python zygote imports once, comma-separated")                                   \
    X(PY_PREPARED_HEAVY, py_prepared_heavy, INT, "1", 0, 1000, CFG_F_NONE, "Pools", "",            \
      "Warm heavy Python sandboxes that run a pandas + matplotlib warm-up ahead (~20 MB each)")    \
    X(STATE_PERSISTENCE_ENABLED, state_persistence_enabled, BOOL, "true", 0, 0, CFG_F_NONE,        \
      "State persistence", "", "Keep Python globals between executions of a session")              \
    X(STATE_TTL_SECONDS, state_ttl_seconds, INT, "7200", 1, 31536000, CFG_F_NONE,                  \
      "State persistence", "", "Lifetime of hot state in the store (seconds)")                     \
    X(STATE_MAX_SIZE_MB, state_max_size_mb, INT, "50", 1, 4096, CFG_F_NONE, "State persistence",   \
      "", "Largest serialized state (MiB)")                                                        \
    X(STATE_CAPTURE_ON_ERROR, state_capture_on_error, BOOL, "false", 0, 0, CFG_F_NONE,             \
      "State persistence", "", "Save state even when the execution failed")                        \
    X(STATE_ARCHIVE_ENABLED, state_archive_enabled, BOOL, "true", 0, 0, CFG_F_NONE,                \
      "State persistence", "", "Archive idle state to the blob store")                             \
    X(STATE_ARCHIVE_AFTER_SECONDS, state_archive_after_seconds, INT, "3600", 1, 31536000,          \
      CFG_F_NONE, "State persistence", "", "Archive state idle this long (seconds)")               \
    X(STATE_ARCHIVE_TTL_DAYS, state_archive_ttl_days, INT, "7", 1, 3650, CFG_F_NONE,               \
      "State persistence", "", "Keep archived state this long (days)")                             \
    X(STATE_ARCHIVE_CHECK_INTERVAL_SECONDS, state_archive_check_interval_seconds, INT, "300", 1,   \
      86400, CFG_F_NONE, "State persistence", "", "Interval of the archiver (seconds)")            \
    X(ENABLE_NETWORK_ISOLATION, enable_network_isolation, BOOL, "true", 0, 0, CFG_F_NONE,          \
      "Isolation", "", "Sandboxes get an empty network namespace (only lo)")                       \
    X(ENABLE_FILESYSTEM_ISOLATION, enable_filesystem_isolation, BOOL, "true", 0, 0, CFG_F_NONE,    \
      "Isolation", "", "Sandboxes see only read-only runtime trees, /tmp and /mnt/data")           \
    X(SANDBOX_RUN_DIR, sandbox_run_dir, STR, "/run/kiln", 0, 0, CFG_F_NONE, "Isolation", "",       \
      "Host directory for sandbox roots and workspaces")                                           \
    X(SANDBOX_UID_BASE, sandbox_uid_base, INT, "200000", 1000, 2147000000, CFG_F_NONE,             \
      "Isolation", "", "First host uid/gid of the sandbox range (root mode; one per slot)")        \
    X(EXECUTION_MODE, execution_mode, ENUM, "local", 0, 0, CFG_F_NONE, "Storage",                  \
      "CODE_EXECUTOR_EXECUTION_MODE{sandbox=kubernetes}",                                          \
      "{local|kubernetes} Where sandboxes run (CodeMie's `sandbox` means kubernetes)")             \
    X(STORE, store, ENUM, "sqlite", 0, 0, CFG_F_NONE, "Storage", "",                               \
      "{sqlite|redis} Metadata store")                                                             \
    X(BLOB, blob, ENUM, "fs", 0, 0, CFG_F_NONE, "Storage", "", "{fs|s3} File-bytes store")         \
    X(DATA_DIR, data_dir, STR, "./data", 0, 0, CFG_F_NONE, "Storage", "",                          \
      "Directory of the SQLite database and file bytes (STORE=sqlite, BLOB=fs)")                   \
    X(LOG_LEVEL, log_level, ENUM, "INFO", 0, 0, CFG_F_NONE, "Logging",                             \
      "CODE_EXECUTOR_VERBOSE{true=DEBUG,false=INFO,1=DEBUG,0=INFO,yes=DEBUG,no=INFO}",             \
      "{DEBUG|INFO|WARNING|ERROR} Least severe level logged")                                      \
    X(LOG_FORMAT, log_format, ENUM, "json", 0, 0, CFG_F_NONE, "Logging", "",                       \
      "{json|text} One JSON object per line, or plain text")                                       \
    X(LOG_FILE, log_file, STR, "", 0, 0, CFG_F_NONE, "Logging", "",                                \
      "Log file (\"\" = standard error)")                                                          \
    X(LOG_MAX_SIZE_MB, log_max_size_mb, INT, "100", 1, 102400, CFG_F_NONE, "Logging", "",          \
      "Rotate LOG_FILE at this size (MiB)")                                                        \
    X(LOG_BACKUP_COUNT, log_backup_count, INT, "5", 0, 1000, CFG_F_NONE, "Logging", "",            \
      "Rotated log files kept")                                                                    \
    X(ENABLE_ACCESS_LOGS, enable_access_logs, BOOL, "true", 0, 0, CFG_F_NONE, "Logging", "",       \
      "Log one line per HTTP request")                                                             \
    X(ENABLE_SECURITY_LOGS, enable_security_logs, BOOL, "true", 0, 0, CFG_F_NONE, "Logging", "",   \
      "Log security events (auth failures, refused paths, limits)")                                \
    X(HEALTH_CHECK_INTERVAL, health_check_interval, INT, "30", 1, 3600, CFG_F_NONE, "Health", "",  \
      "Interval of background dependency checks (seconds)")                                        \
    X(HEALTH_CHECK_TIMEOUT, health_check_timeout, INT, "5", 1, 600, CFG_F_NONE, "Health", "",      \
      "Timeout of one dependency check (seconds)")                                                 \
    X(ENABLE_CORS, enable_cors, BOOL, "false", 0, 0, CFG_F_NONE, "CORS and docs", "",              \
      "Answer CORS preflights and add CORS headers")                                               \
    X(CORS_ORIGINS, cors_origins, LIST, "", 0, 0, CFG_F_NONE, "CORS and docs", "",                 \
      "Allowed origins, comma-separated (\"*\" = any)")                                            \
    X(ENABLE_DOCS, enable_docs, BOOL, "true", 0, 0, CFG_F_NONE, "CORS and docs", "",               \
      "Serve /docs and /openapi.json")                                                             \
    X(LANG_IMAGE_PY, lang_image_py, STR, "", 0, 0, CFG_F_NONE, "Language images",                  \
      "CODE_EXECUTOR_DOCKER_IMAGE",                                                                \
      "Runtime image for py pods (\"\" = K8S_IMAGE_REGISTRY/py:K8S_IMAGE_TAG)")                    \
    X(LANG_IMAGE_JS, lang_image_js, STR, "", 0, 0, CFG_F_NONE, "Language images", "",              \
      "Runtime image for js pods (\"\" = K8S_IMAGE_REGISTRY/js:K8S_IMAGE_TAG)")                    \
    X(LANG_IMAGE_TS, lang_image_ts, STR, "", 0, 0, CFG_F_NONE, "Language images", "",              \
      "Runtime image for ts pods (\"\" = K8S_IMAGE_REGISTRY/ts:K8S_IMAGE_TAG)")                    \
    X(LANG_IMAGE_GO, lang_image_go, STR, "", 0, 0, CFG_F_NONE, "Language images", "",              \
      "Runtime image for go pods (\"\" = K8S_IMAGE_REGISTRY/go:K8S_IMAGE_TAG)")                    \
    X(LANG_IMAGE_JAVA, lang_image_java, STR, "", 0, 0, CFG_F_NONE, "Language images", "",          \
      "Runtime image for java pods (\"\" = K8S_IMAGE_REGISTRY/java:K8S_IMAGE_TAG)")                \
    X(LANG_IMAGE_C, lang_image_c, STR, "", 0, 0, CFG_F_NONE, "Language images", "",                \
      "Runtime image for c pods (\"\" = K8S_IMAGE_REGISTRY/c:K8S_IMAGE_TAG)")                      \
    X(LANG_IMAGE_CPP, lang_image_cpp, STR, "", 0, 0, CFG_F_NONE, "Language images", "",            \
      "Runtime image for cpp pods (\"\" = K8S_IMAGE_REGISTRY/cpp:K8S_IMAGE_TAG)")                  \
    X(LANG_IMAGE_PHP, lang_image_php, STR, "", 0, 0, CFG_F_NONE, "Language images", "",            \
      "Runtime image for php pods (\"\" = K8S_IMAGE_REGISTRY/php:K8S_IMAGE_TAG)")                  \
    X(LANG_IMAGE_RS, lang_image_rs, STR, "", 0, 0, CFG_F_NONE, "Language images", "",              \
      "Runtime image for rs pods (\"\" = K8S_IMAGE_REGISTRY/rs:K8S_IMAGE_TAG)")                    \
    X(LANG_IMAGE_R, lang_image_r, STR, "", 0, 0, CFG_F_NONE, "Language images", "",                \
      "Runtime image for r pods (\"\" = K8S_IMAGE_REGISTRY/r:K8S_IMAGE_TAG)")                      \
    X(LANG_IMAGE_F90, lang_image_f90, STR, "", 0, 0, CFG_F_NONE, "Language images", "",            \
      "Runtime image for f90 pods (\"\" = K8S_IMAGE_REGISTRY/f90:K8S_IMAGE_TAG)")                  \
    X(LANG_IMAGE_D, lang_image_d, STR, "", 0, 0, CFG_F_NONE, "Language images", "",                \
      "Runtime image for d pods (\"\" = K8S_IMAGE_REGISTRY/d:K8S_IMAGE_TAG)")                      \
    X(LANG_IMAGE_BASH, lang_image_bash, STR, "", 0, 0, CFG_F_NONE, "Language images", "",          \
      "Runtime image for bash pods (\"\" = K8S_IMAGE_REGISTRY/bash:K8S_IMAGE_TAG)")

#endif
