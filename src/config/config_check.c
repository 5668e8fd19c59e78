/* Cross-checks of a loaded configuration (config_validate) and its security audit
 * (config_security). Both append findings naming the variable(s), the value(s) — never a secret's
 * — and what is allowed, so that `kiln config validate` can print every problem at once. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* Secrets shorter than this are weak (the peer's documentation asks for 16). */
#define CFG_MIN_KEY_LEN 16

/* The embedded default API key, documented publicly, so never acceptable in production. */
#define CFG_DEFAULT_API_KEY "test-api-key"

#define ERR(f, name, ...) config_findings_add((f), CFG_SEV_ERROR, (name), __VA_ARGS__)

/* Call fn(item, len, index, arg) for every comma-separated item of list (spaces trimmed; empty
 * items included so callers can reject them). */
static void cfg_each_item(const char *list, void (*fn)(const char *, size_t, size_t, void *),
                          void *arg)
{
    const char *p = list;
    size_t idx = 0;

    if (*list == '\0')
        return;
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *s = p, *e = p + len;

        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        fn(s, (size_t)(e - s), idx++, arg);
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
}

/* Whether a file can be opened for reading by this process. */
static bool cfg_readable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* Whether `dir` exists and is writable, or does not exist but its parent does and is. */
static bool cfg_dir_writable(const char *dir)
{
    struct stat st;
    char *parent;
    bool ok;

    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) && access(dir, W_OK | X_OK) == 0;
    if (errno != ENOENT)
        return false;
    parent = xstrdup(dir);
    {
        char *slash = strrchr(parent, '/');
        if (slash == NULL) {
            free(parent);
            parent = xstrdup(".");
        } else if (slash == parent) {
            slash[1] = '\0';
        } else {
            *slash = '\0';
        }
    }
    ok = stat(parent, &st) == 0 && S_ISDIR(st.st_mode) && access(parent, W_OK | X_OK) == 0;
    free(parent);
    return ok;
}

/* Parse "addr" or "addr/prefix" (IPv4 or IPv6) of len bytes. *prefix gets the prefix length
 * (full length when absent). */
static bool cfg_parse_cidr(const char *s, size_t len, int *prefix)
{
    char buf[64], *slash;
    unsigned char addr[16];
    int maxlen, family;

    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    family = strchr(buf, ':') ? AF_INET6 : AF_INET;
    maxlen = family == AF_INET6 ? 128 : 32;
    if (inet_pton(family, buf, addr) != 1)
        return false;
    *prefix = maxlen;
    if (slash != NULL) {
        char *end;
        long v;
        errno = 0;
        v = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end != '\0' || v < 0 || v > maxlen)
            return false;
        *prefix = (int)v;
    }
    return true;
}

struct cfg_list_ctx {
    struct cfg_findings *f;
    const char *name;
    int bad_open; /* for security: count of 0.0.0.0/0-like entries */
};

static void cfg_check_cidr(const char *s, size_t len, size_t idx, void *arg)
{
    struct cfg_list_ctx *c = arg;
    int prefix;

    (void)idx;
    if (!cfg_parse_cidr(s, len, &prefix))
        ERR(c->f, c->name,
            "%s: '%.*s' is not a network (allowed: IPv4 or IPv6 CIDRs such as 10.0.0.0/8, "
            "192.168.1.5, fd00::/8, comma-separated)",
            c->name, (int)len, s);
}

static void cfg_check_origin(const char *s, size_t len, size_t idx, void *arg)
{
    struct cfg_list_ctx *c = arg;
    const char *host;
    size_t hlen;

    (void)idx;
    if (len == 1 && s[0] == '*')
        return;
    if (len > 7 && strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else if (len > 8 && strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else
        goto bad;
    hlen = len - (size_t)(host - s);
    /* an origin is scheme://host[:port]: no path, query, fragment, user info or spaces */
    for (size_t i = 0; i < hlen; i++)
        if (strchr("/?#@ \t\"'", host[i]) != NULL)
            goto bad;
    return;
bad:
    ERR(c->f, c->name,
        "%s: '%.*s' is not an origin (allowed: \"*\" or scheme://host[:port] with scheme http or "
        "https and no path, e.g. https://chat.example.com)",
        c->name, (int)len, s);
}

static void cfg_check_nonempty_secret(const char *s, size_t len, size_t idx, void *arg)
{
    struct cfg_list_ctx *c = arg;

    (void)s;
    if (len == 0)
        ERR(c->f, c->name,
            "%s: entry %zu is empty (allowed: non-empty keys separated by single commas)", c->name,
            idx + 1);
}

/* Parse a Kubernetes quantity into a plain number (cores for CPU, bytes for memory). */
static bool cfg_parse_k8s_quantity(const char *s, double *out)
{
    static const struct {
        const char *suffix;
        double mul;
    } units[] = {
        {"m", 1e-3},       {"k", 1e3},           {"M", 1e6},
        {"G", 1e9},        {"T", 1e12},          {"Ki", 1024.0},
        {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
    };
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0 || *s == '+' || *s == ' ')
        return false;
    if (*end == '\0') {
        *out = v;
        return true;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            *out = v * units[i].mul;
            return true;
        }
    }
    return false;
}

/* Whether s is a DNS-1123 label (Kubernetes namespace): [a-z0-9-], 1..63, alnum at both ends. */
static bool cfg_dns_label(const char *s, size_t maxlen)
{
    size_t n = strlen(s);

    if (n == 0 || n > maxlen || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* Parse redis://[[user]:password@]host[:port][/db] (or rediss://). Checks the shape only. */
static bool cfg_redis_url_ok(const char *url, const char **why)
{
    const char *p, *at, *host, *slash;
    size_t hlen;

    if (strncmp(url, "redis://", 8) == 0)
        p = url + 8;
    else if (strncmp(url, "rediss://", 9) == 0)
        p = url + 9;
    else if (strncmp(url, "unix://", 7) == 0)
        return url[7] == '/' || (*why = "a unix:// URL needs an absolute path", false);
    else
        return *why = "the scheme must be redis://, rediss:// or unix://", false;
    slash = p + strcspn(p, "/");
    at = memrchr(p, '@', (size_t)(slash - p));
    host = at ? at + 1 : p;
    hlen = (size_t)(slash - host);
    if (hlen == 0 || host[0] == ':')
        return *why = "the host is missing", false;
    {
        const char *colon = host[0] == '[' ? memchr(host, ']', hlen) : host;
        colon = colon ? memchr(colon, ':', (size_t)(slash - colon)) : NULL;
        if (colon != NULL) {
            char *end;
            long port;
            errno = 0;
            port = strtol(colon + 1, &end, 10);
            if (errno || end != slash || port < 1 || port > 65535)
                return *why = "the port must be 1 to 65535", false;
        }
    }
    if (*slash == '/' && slash[1] != '\0') {
        char *end;
        long db;
        errno = 0;
        db = strtol(slash + 1, &end, 10);
        if (errno || *end != '\0' || db < 0 || db > 1024)
            return *why = "the database must be a number 0 to 1024", false;
    }
    return true;
}

static void cfg_check_tls(const struct kiln_config *cfg, struct cfg_findings *f)
{
    if (!cfg->enable_https)
        return;
    /* The server uses SSL_CERT_FILE/SSL_KEY_FILE only when both are set, else SSL_CERTS_PATH.
     * A lone SSL_CERT_FILE is common (OpenSSL reads it as its CA bundle), so it is not an error
     * by itself: only when the fallback directory does not hold the pair either. */
    if (cfg->ssl_cert_file[0] && cfg->ssl_key_file[0]) {
        if (!cfg_readable(cfg->ssl_cert_file))
            ERR(f, "SSL_CERT_FILE",
                "SSL_CERT_FILE=%s is not a readable file (ENABLE_HTTPS=true needs a PEM "
                "certificate chain)",
                cfg->ssl_cert_file);
        if (!cfg_readable(cfg->ssl_key_file))
            ERR(f, "SSL_KEY_FILE",
                "SSL_KEY_FILE=%s is not a readable file (ENABLE_HTTPS=true needs a PEM private "
                "key)",
                cfg->ssl_key_file);
    } else {
        char *cert = xasprintf("%s/cert.pem", cfg->ssl_certs_path);
        char *key = xasprintf("%s/key.pem", cfg->ssl_certs_path);
        if (!cfg_readable(cert) || !cfg_readable(key))
            ERR(f, "SSL_CERTS_PATH",
                "ENABLE_HTTPS=true but SSL_CERTS_PATH=%s does not hold readable cert.pem and "
                "key.pem, and SSL_CERT_FILE=%s and SSL_KEY_FILE=%s are not both set (allowed: "
                "both files, or a directory holding cert.pem and key.pem)",
                cfg->ssl_certs_path, cfg->ssl_cert_file[0] ? cfg->ssl_cert_file : "(unset)",
                cfg->ssl_key_file[0] ? cfg->ssl_key_file : "(unset)");
        free(cert);
        free(key);
    }
    if (cfg->ssl_ca_certs[0] && !cfg_readable(cfg->ssl_ca_certs))
        ERR(f, "SSL_CA_CERTS", "SSL_CA_CERTS=%s is not a readable file", cfg->ssl_ca_certs);
    if (cfg->ssl_redirect && cfg->https_port == cfg->api_port && cfg->api_port != 0)
        ERR(f, "HTTPS_PORT",
            "HTTPS_PORT=%lld equals API_PORT=%lld while SSL_REDIRECT=true serves both (allowed: "
            "two different ports)",
            cfg->https_port, cfg->api_port);
}

static void cfg_check_backends(const struct kiln_config *cfg, struct cfg_findings *f)
{
    const char *why = NULL;

    if (strcmp(cfg->store, "redis") == 0) {
#ifndef KILN_WITH_REDIS
        ERR(f, "STORE", "STORE=redis but this kiln was built without Redis (KILN_WITH_REDIS=OFF)");
#endif
        if (cfg->redis_url[0] == '\0' && cfg->redis_host[0] == '\0')
            ERR(f, "REDIS_URL", "STORE=redis needs REDIS_URL or REDIS_HOST (both are empty)");
    }
    if (cfg->redis_url[0] && !cfg_redis_url_ok(cfg->redis_url, &why))
        ERR(f, "REDIS_URL",
            "REDIS_URL=<hidden> cannot be parsed: %s (allowed: redis://[:password@]host[:port]"
            "[/db], rediss://..., unix:///path)",
            why);
    if (strcmp(cfg->blob, "s3") == 0) {
#ifndef KILN_WITH_S3
        ERR(f, "BLOB", "BLOB=s3 but this kiln was built without S3 (KILN_WITH_S3=OFF)");
#endif
        if (!cfg->minio_use_iam && (!cfg->minio_access_key[0] || !cfg->minio_secret_key[0]))
            ERR(f, "MINIO_ACCESS_KEY",
                "BLOB=s3 with MINIO_USE_IAM=false needs MINIO_ACCESS_KEY and MINIO_SECRET_KEY "
                "(%s is empty)",
                !cfg->minio_access_key[0] ? "MINIO_ACCESS_KEY" : "MINIO_SECRET_KEY");
        if (!cfg->minio_endpoint[0] || strstr(cfg->minio_endpoint, "://") != NULL)
            ERR(f, "MINIO_ENDPOINT",
                "MINIO_ENDPOINT=%s is not allowed with BLOB=s3 (allowed: host[:port] without "
                "scheme; use MINIO_SECURE for https)",
                cfg->minio_endpoint);
        if (!cfg->minio_bucket[0])
            ERR(f, "MINIO_BUCKET", "BLOB=s3 needs MINIO_BUCKET (empty)");
    }
    if (strcmp(cfg->execution_mode, "kubernetes") == 0) {
#ifndef KILN_WITH_K8S
        ERR(f, "EXECUTION_MODE",
            "EXECUTION_MODE=kubernetes but this kiln was built without Kubernetes "
            "(KILN_WITH_K8S=OFF)");
#endif
        if (cfg->kubeconfig_path[0] && !cfg_readable(cfg->kubeconfig_path))
            ERR(f, "KUBECONFIG_PATH", "KUBECONFIG_PATH=%s is not a readable file",
                cfg->kubeconfig_path);
        if (cfg->k8s_api_url[0] && strncmp(cfg->k8s_api_url, "https://", 8) != 0 &&
            strncmp(cfg->k8s_api_url, "http://", 7) != 0)
            ERR(f, "K8S_API_URL",
                "K8S_API_URL=%s is not allowed (allowed: http:// or https:// URL)",
                cfg->k8s_api_url);
        if (!cfg->k8s_api_url[0] && !cfg->kubeconfig_path[0] &&
            !cfg_readable("/var/run/secrets/kubernetes.io/serviceaccount/token"))
            ERR(f, "EXECUTION_MODE",
                "EXECUTION_MODE=kubernetes needs K8S_API_URL, KUBECONFIG_PATH or an in-cluster "
                "service account (/var/run/secrets/kubernetes.io/serviceaccount/token is not "
                "readable)");
        if (cfg->k8s_namespace[0] && !cfg_dns_label(cfg->k8s_namespace, 63))
            ERR(f, "K8S_NAMESPACE",
                "K8S_NAMESPACE=%s is not allowed (allowed: a DNS label: a-z, 0-9 and '-', at most "
                "63 characters)",
                cfg->k8s_namespace);
    }
}

/* CPU and memory quantities of pods, and request <= limit. */
static void cfg_check_k8s_quantities(const struct kiln_config *cfg, struct cfg_findings *f)
{
    static const struct {
        const char *limit_name, *request_name;
        size_t limit_off, request_off;
    } pairs[] = {
        {"K8S_CPU_LIMIT", "K8S_CPU_REQUEST", offsetof(struct kiln_config, k8s_cpu_limit),
         offsetof(struct kiln_config, k8s_cpu_request)},
        {"K8S_MEMORY_LIMIT", "K8S_MEMORY_REQUEST", offsetof(struct kiln_config, k8s_memory_limit),
         offsetof(struct kiln_config, k8s_memory_request)},
    };

    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *lim = *(char *const *)((const char *)cfg + pairs[i].limit_off);
        const char *req = *(char *const *)((const char *)cfg + pairs[i].request_off);
        double l = 0, r = 0;
        bool lok = cfg_parse_k8s_quantity(lim, &l), rok = cfg_parse_k8s_quantity(req, &r);

        if (!lok)
            ERR(f, pairs[i].limit_name,
                "%s=%s is not a quantity (allowed: e.g. 1, 500m, 512Mi, 1Gi)", pairs[i].limit_name,
                lim);
        if (!rok)
            ERR(f, pairs[i].request_name,
                "%s=%s is not a quantity (allowed: e.g. 1, 100m, 128Mi, 1Gi)",
                pairs[i].request_name, req);
        if (lok && rok && r > l)
            ERR(f, pairs[i].request_name, "%s=%s exceeds %s=%s (allowed: request <= limit)",
                pairs[i].request_name, req, pairs[i].limit_name, lim);
    }
}

size_t config_validate(const struct kiln_config *cfg, struct cfg_findings *f)
{
    size_t before = f->count;
    struct cfg_list_ctx c = {.f = f};

    cfg_check_tls(cfg, f);
    cfg_check_backends(cfg, f);
    cfg_check_k8s_quantities(cfg, f);

    if (cfg->default_execution_time > cfg->max_execution_time)
        ERR(f, "DEFAULT_EXECUTION_TIME",
            "DEFAULT_EXECUTION_TIME=%lld exceeds MAX_EXECUTION_TIME=%lld (allowed: 0 to "
            "MAX_EXECUTION_TIME)",
            cfg->default_execution_time, cfg->max_execution_time);
    if (cfg->max_file_size_mb > cfg->max_total_file_size_mb)
        ERR(f, "MAX_FILE_SIZE_MB",
            "MAX_FILE_SIZE_MB=%lld exceeds MAX_TOTAL_FILE_SIZE_MB=%lld (allowed: at most the "
            "session total)",
            cfg->max_file_size_mb, cfg->max_total_file_size_mb);
    if (cfg->state_archive_enabled && cfg->state_persistence_enabled &&
        cfg->state_archive_after_seconds > cfg->state_ttl_seconds)
        ERR(f, "STATE_ARCHIVE_AFTER_SECONDS",
            "STATE_ARCHIVE_AFTER_SECONDS=%lld exceeds STATE_TTL_SECONDS=%lld: state would expire "
            "before it is archived (allowed: at most STATE_TTL_SECONDS)",
            cfg->state_archive_after_seconds, cfg->state_ttl_seconds);

    c.name = "AUTH_TRUSTED_NETWORKS";
    cfg_each_item(cfg->auth_trusted_networks, cfg_check_cidr, &c);
    c.name = "CORS_ORIGINS";
    cfg_each_item(cfg->cors_origins, cfg_check_origin, &c);
    c.name = "API_KEYS";
    cfg_each_item(cfg->api_keys, cfg_check_nonempty_secret, &c);
    if (cfg->auth_enabled && !cfg->api_key[0] && !cfg->api_keys[0] &&
        !cfg->jwt_public_key_file[0] && !cfg->jwt_public_keys_dir[0] && !cfg->jwt_jwks_file[0] &&
        !cfg->auth_trusted_networks[0])
        ERR(f, "API_KEY",
            "AUTH_ENABLED=true but API_KEY, API_KEYS, JWT keys and AUTH_TRUSTED_NETWORKS are all "
            "empty: no request could authenticate (set API_KEY, or AUTH_ENABLED=false)");
    if (strchr(cfg->api_key, ',') != NULL)
        ERR(f, "API_KEY", "API_KEY=<hidden> contains a comma (use API_KEYS for several keys)");
    if (strchr(cfg->api_key_header, ':') || strchr(cfg->api_key_header, ' ') ||
        !cfg->api_key_header[0])
        ERR(f, "API_KEY_HEADER",
            "API_KEY_HEADER=%s is not a header name (allowed: letters, digits and '-')",
            cfg->api_key_header);

    if (cfg->jwt_public_key_file[0] && !cfg_readable(cfg->jwt_public_key_file))
        ERR(f, "JWT_PUBLIC_KEY_FILE", "JWT_PUBLIC_KEY_FILE=%s is not a readable file",
            cfg->jwt_public_key_file);
    if (cfg->jwt_jwks_file[0] && !cfg_readable(cfg->jwt_jwks_file))
        ERR(f, "JWT_JWKS_FILE", "JWT_JWKS_FILE=%s is not a readable file", cfg->jwt_jwks_file);
    if (cfg->jwt_public_keys_dir[0]) {
        struct stat st;
        if (stat(cfg->jwt_public_keys_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
            access(cfg->jwt_public_keys_dir, R_OK | X_OK) != 0)
            ERR(f, "JWT_PUBLIC_KEYS_DIR", "JWT_PUBLIC_KEYS_DIR=%s is not a readable directory",
                cfg->jwt_public_keys_dir);
    }

    if (cfg->log_file[0]) {
        char *dir = xstrdup(cfg->log_file), *slash = strrchr(dir, '/');
        struct stat st;
        if (slash == NULL) {
            free(dir);
            dir = xstrdup(".");
        } else if (slash == dir) {
            slash[1] = '\0';
        } else {
            *slash = '\0';
        }
        if (stat(cfg->log_file, &st) == 0) {
            if (!S_ISREG(st.st_mode) || access(cfg->log_file, W_OK) != 0)
                ERR(f, "LOG_FILE", "LOG_FILE=%s is not a writable regular file", cfg->log_file);
        } else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
            ERR(f, "LOG_FILE",
                "LOG_FILE=%s: directory %s does not exist or is not writable (needed to create "
                "and rotate the file)",
                cfg->log_file, dir);
        }
        free(dir);
    }
    if ((strcmp(cfg->store, "sqlite") == 0 || strcmp(cfg->blob, "fs") == 0) &&
        !cfg_dir_writable(cfg->data_dir))
        ERR(f, "DATA_DIR",
            "DATA_DIR=%s is not a writable directory and cannot be created (needed by "
            "STORE=sqlite or BLOB=fs)",
            cfg->data_dir);
    return f->count - before;
}

/* ---- security audit ---- */

#define SEC(f, sev, name, ...) config_findings_add((f), (sev), (name), __VA_ARGS__)

/* Whether the bind address only accepts local connections. */
static bool cfg_is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

static void cfg_sec_short_key(const char *s, size_t len, size_t idx, void *arg)
{
    struct cfg_list_ctx *c = arg;

    (void)s;
    if (len > 0 && len < CFG_MIN_KEY_LEN)
        SEC(c->f, CFG_SEV_MEDIUM, c->name,
            "%s: entry %zu is shorter than %d characters (use long random keys, e.g. `openssl "
            "rand -hex 32`)",
            c->name, idx + 1, CFG_MIN_KEY_LEN);
    if (len == sizeof CFG_DEFAULT_API_KEY - 1 && memcmp(s, CFG_DEFAULT_API_KEY, len) == 0)
        SEC(c->f, CFG_SEV_HIGH, c->name, "%s: entry %zu is the public default key %s", c->name,
            idx + 1, CFG_DEFAULT_API_KEY);
}

static void cfg_sec_open_network(const char *s, size_t len, size_t idx, void *arg)
{
    struct cfg_list_ctx *c = arg;
    int prefix;

    (void)idx;
    if (cfg_parse_cidr(s, len, &prefix) && prefix == 0)
        SEC(c->f, CFG_SEV_HIGH, c->name,
            "AUTH_TRUSTED_NETWORKS contains %.*s: every client is trusted without a key (list "
            "only your private networks)",
            (int)len, s);
    else if (cfg_parse_cidr(s, len, &prefix) && prefix < 8)
        SEC(c->f, CFG_SEV_MEDIUM, c->name,
            "AUTH_TRUSTED_NETWORKS contains the very wide network %.*s", (int)len, s);
}

static void cfg_sec_cors(const char *s, size_t len, size_t idx, void *arg)
{
    struct cfg_list_ctx *c = arg;

    (void)idx;
    if (len == 1 && s[0] == '*')
        c->bad_open++;
}

size_t config_security(const struct kiln_config *cfg, struct cfg_findings *f)
{
    size_t before = f->count;
    bool prod = strcmp(cfg->environment, "production") == 0;
    struct cfg_list_ctx c = {.f = f};

    if (!cfg->auth_enabled)
        SEC(f, CFG_SEV_HIGH, "AUTH_ENABLED",
            "AUTH_ENABLED=false: anyone who reaches the API can run code (enable it)");
    if (cfg->auth_enabled) {
        if (strcmp(cfg->api_key, CFG_DEFAULT_API_KEY) == 0)
            SEC(f, CFG_SEV_HIGH, "API_KEY",
                "API_KEY is the public default %s (set a long random key)", CFG_DEFAULT_API_KEY);
        else if (cfg->api_key[0] && strlen(cfg->api_key) < CFG_MIN_KEY_LEN)
            SEC(f, CFG_SEV_MEDIUM, "API_KEY",
                "API_KEY is shorter than %d characters (use a long random key, e.g. `openssl rand "
                "-hex 32`)",
                CFG_MIN_KEY_LEN);
        c.name = "API_KEYS";
        cfg_each_item(cfg->api_keys, cfg_sec_short_key, &c);
    }
    if (!cfg->master_api_key[0])
        SEC(f, CFG_SEV_LOW, "MASTER_API_KEY",
            "MASTER_API_KEY is unset: the admin API and `kiln keys` are disabled");
    else if (strlen(cfg->master_api_key) < CFG_MIN_KEY_LEN)
        SEC(f, CFG_SEV_HIGH, "MASTER_API_KEY",
            "MASTER_API_KEY is shorter than %d characters (it guards the admin API)",
            CFG_MIN_KEY_LEN);
    else if (strcmp(cfg->master_api_key, cfg->api_key) == 0)
        SEC(f, CFG_SEV_HIGH, "MASTER_API_KEY",
            "MASTER_API_KEY equals API_KEY: every client would be an administrator");

    if (cfg->api_debug)
        SEC(f, prod ? CFG_SEV_HIGH : CFG_SEV_LOW, "API_DEBUG",
            "API_DEBUG=true%s: error bodies and logs carry internal detail",
            prod ? " with ENVIRONMENT=production" : "");
    if (cfg->enable_docs && prod)
        SEC(f, CFG_SEV_MEDIUM, "ENABLE_DOCS",
            "ENABLE_DOCS=true with ENVIRONMENT=production: /docs and /openapi.json are public");
    if (strcmp(cfg->log_level, "DEBUG") == 0 && prod)
        SEC(f, CFG_SEV_LOW, "LOG_LEVEL", "LOG_LEVEL=DEBUG with ENVIRONMENT=production");
    if (!cfg->enable_https && !cfg_is_loopback(cfg->api_host))
        SEC(f, prod ? CFG_SEV_HIGH : CFG_SEV_MEDIUM, "ENABLE_HTTPS",
            "ENABLE_HTTPS=false while API_HOST=%s accepts remote connections: keys travel in "
            "clear (enable TLS, bind to 127.0.0.1, or terminate TLS in front)",
            cfg->api_host);
    if (cfg->enable_https && !cfg->ssl_redirect && prod)
        SEC(f, CFG_SEV_LOW, "SSL_REDIRECT", "SSL_REDIRECT=false: plain HTTP is not redirected");

    c.name = "AUTH_TRUSTED_NETWORKS";
    cfg_each_item(cfg->auth_trusted_networks, cfg_sec_open_network, &c);
    c.name = "CORS_ORIGINS";
    c.bad_open = 0;
    cfg_each_item(cfg->cors_origins, cfg_sec_cors, &c);
    if (cfg->enable_cors && c.bad_open)
        SEC(f, prod ? CFG_SEV_HIGH : CFG_SEV_MEDIUM, "CORS_ORIGINS",
            "ENABLE_CORS=true with CORS_ORIGINS=*: any web page may call the API from a browser");

    if (!cfg->enable_network_isolation)
        SEC(f, CFG_SEV_HIGH, "ENABLE_NETWORK_ISOLATION",
            "ENABLE_NETWORK_ISOLATION=false: sandboxed code can reach the network");
    if (!cfg->enable_filesystem_isolation)
        SEC(f, CFG_SEV_HIGH, "ENABLE_FILESYSTEM_ISOLATION",
            "ENABLE_FILESYSTEM_ISOLATION=false: sandboxed code sees the host filesystem");
    if (!cfg->enable_security_logs)
        SEC(f, CFG_SEV_LOW, "ENABLE_SECURITY_LOGS",
            "ENABLE_SECURITY_LOGS=false: authentication failures are not recorded");
    if (!cfg->rate_limit_enabled && prod)
        SEC(f, CFG_SEV_LOW, "RATE_LIMIT_ENABLED", "RATE_LIMIT_ENABLED=false");
    if (strcmp(cfg->store, "redis") == 0 && !cfg->redis_password[0] &&
        strchr(cfg->redis_url, '@') == NULL)
        SEC(f, CFG_SEV_MEDIUM, "REDIS_PASSWORD", "STORE=redis without a Redis password");
    if (strcmp(cfg->blob, "s3") == 0 && !cfg->minio_secure)
        SEC(f, prod ? CFG_SEV_MEDIUM : CFG_SEV_LOW, "MINIO_SECURE",
            "BLOB=s3 with MINIO_SECURE=false: file bytes and keys travel in clear");
    return f->count - before;
}
