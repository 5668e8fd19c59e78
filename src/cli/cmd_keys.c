/* `kiln keys list|create|update|revoke`: manage the API keys of a running kiln through its admin
 * API (/api/v1/admin/keys, docs/admin.md) with libcurl. The server is KILN_URL (default
 * http://127.0.0.1:8000) or --url; the master key is KILN_MASTER_KEY or --master-key. */
#include <stdio.h>

#include "cli/cli.h"

/* libcurl is linked when a backend that needs it is built (CMakeLists.txt). */
#if !defined(KILN_WITH_S3) && !defined(KILN_WITH_K8S)
int cmd_keys(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln keys: this build has no libcurl (KILN_WITH_S3 and KILN_WITH_K8S off)\n");
    return CLI_EXIT_FAIL;
}
#else
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/xmalloc.h"

#define KC_WINDOWS 5

static const struct {
    const char *option; /* --per-second ... */
    const char *field;  /* rate_limits member */
} kc_windows[KC_WINDOWS] = {
    {"--per-second", "per_second"}, {"--per-minute", "per_minute"}, {"--hourly", "hourly"},
    {"--daily", "daily"},           {"--monthly", "monthly"},
};

static void kc_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln keys [--url URL] [--master-key KEY] COMMAND ...\n"
            "\n"
            "Manage the API keys of a running kiln (its admin API, authorised by the master key).\n"
            "\n"
            "commands:\n"
            "  list [--json]                       every key: managed and environment (read-only)\n"
            "  create NAME [LIMITS] [--metadata JSON]\n"
            "                                      create a key; its secret is printed once\n"
            "  update HASH [--name NAME] [--enable | --disable] [LIMITS] [--metadata JSON]\n"
            "  revoke HASH                         delete a managed key (refused from then on)\n"
            "\n"
            "LIMITS: --per-second N --per-minute N --hourly N --daily N --monthly N\n"
            "        (requests per window; 'none' removes a limit)\n"
            "\n"
            "options:\n"
            "  --url URL         the server (default $KILN_URL, else http://127.0.0.1:8000)\n"
            "  --master-key KEY  the master key (default $KILN_MASTER_KEY)\n"
            "  -h, --help        show this help\n");
}

struct kc_buf {
    char *p;
    size_t len;
};

static size_t kc_write(char *data, size_t size, size_t n, void *arg)
{
    struct kc_buf *b = arg;
    size_t add = size * n;

    b->p = xreallocarray(b->p, b->len + add + 1, 1);
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* One request; *out receives the parsed JSON answer (NULL when none). Returns the HTTP status,
 * or -1 when the server could not be reached (message printed). */
static long kc_call(const char *url, const char *master, const char *method, const char *path,
                    json_t *body, json_t **out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct kc_buf b = {NULL, 0};
    char *full = NULL, *hdr = NULL, *text = NULL;
    long status = -1;
    CURLcode cc;

    *out = NULL;
    if (c == NULL)
        return -1;
    full = xasprintf("%s/api/v1/admin%s", url, path);
    hdr = xasprintf("X-API-Key: %s", master);
    h = curl_slist_append(h, hdr);
    h = curl_slist_append(h, "Accept: application/json");
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    }
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, kc_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        fprintf(stderr, "kiln keys: %s: %s\n", full, curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (b.p != NULL)
            *out = json_loads(b.p, 0, NULL);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(full);
    /* the header held the master key */
    if (hdr != NULL)
        memset(hdr, 0, strlen(hdr));
    free(hdr);
    free(text);
    free(b.p);
    return status;
}

/* Print the server's refusal; returns CLI_EXIT_FAIL. */
static int kc_refused(long status, json_t *ans)
{
    const char *msg = json_string_value(json_object_get(ans, "error"));

    if (status >= 0)
        fprintf(stderr, "kiln keys: server answered %ld: %s\n", status,
                msg != NULL ? msg : "(no message)");
    return CLI_EXIT_FAIL;
}

static void kc_print_limits(json_t *rl)
{
    int any = 0;

    for (int w = 0; w < KC_WINDOWS; w++) {
        json_t *v = json_object_get(rl, kc_windows[w].field);
        if (json_is_integer(v)) {
            printf("%s%s=%lld", any ? "," : "", kc_windows[w].field,
                   (long long)json_integer_value(v));
            any = 1;
        }
    }
    if (!any)
        printf("-");
}

static int kc_list(const char *url, const char *master, bool as_json)
{
    json_t *ans = NULL, *k;
    size_t i;
    long st = kc_call(url, master, "GET", "/keys", NULL, &ans);
    int rc = CLI_EXIT_OK;

    if (st != 200 || !json_is_array(ans)) {
        rc = kc_refused(st, ans);
        goto out;
    }
    if (as_json) {
        char *s = json_dumps(ans, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
        goto out;
    }
    printf("%-16s  %-11s  %-8s  %-24s  %-7s  %8s  %-20s  %s\n", "KEY_HASH", "SOURCE", "PREFIX",
           "NAME", "ENABLED", "USAGE", "LAST_USED", "LIMITS");
    json_array_foreach(ans, i, k)
    {
        const char *last = json_string_value(json_object_get(k, "last_used_at"));
        printf("%-16.16s  %-11s  %-8.8s  %-24.24s  %-7s  %8lld  %-20s  ",
               json_string_value(json_object_get(k, "key_hash")) ?: "",
               json_string_value(json_object_get(k, "source")) ?: "",
               json_string_value(json_object_get(k, "key_prefix")) ?: "",
               json_string_value(json_object_get(k, "name")) ?: "",
               json_is_true(json_object_get(k, "enabled")) ? "yes" : "no",
               (long long)json_integer_value(json_object_get(k, "usage_count")),
               last != NULL ? last : "never");
        kc_print_limits(json_object_get(k, "rate_limits"));
        printf("\n");
    }
out:
    json_decref(ans);
    return rc;
}

/* Parse the shared options of create/update from argv[from..argc) into body. */
static int kc_parse_opts(int argc, char **argv, int from, json_t *body, bool update)
{
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        int w;

        for (w = 0; w < KC_WINDOWS; w++)
            if (strcmp(a, kc_windows[w].option) == 0)
                break;
        if (w < KC_WINDOWS && i + 1 < argc) {
            json_t *rl = json_object_get(body, "rate_limits");
            const char *v = argv[++i];
            char *end = NULL;
            long long n;
            if (rl == NULL) {
                rl = json_object();
                json_object_set_new(body, "rate_limits", rl);
            }
            if (strcmp(v, "none") == 0) {
                json_object_set_new(rl, kc_windows[w].field, json_null());
                continue;
            }
            n = strtoll(v, &end, 10);
            if (end == v || *end != '\0' || n < 1) {
                fprintf(stderr, "kiln keys: %s wants a positive number or 'none'\n", a);
                return CLI_EXIT_USAGE;
            }
            json_object_set_new(rl, kc_windows[w].field, json_integer(n));
        } else if (strcmp(a, "--metadata") == 0 && i + 1 < argc) {
            json_t *md = json_loads(argv[++i], 0, NULL);
            if (!json_is_object(md)) {
                json_decref(md);
                fprintf(stderr, "kiln keys: --metadata wants a JSON object\n");
                return CLI_EXIT_USAGE;
            }
            json_object_set_new(body, "metadata", md);
        } else if (update && strcmp(a, "--name") == 0 && i + 1 < argc) {
            json_object_set_new(body, "name", json_string(argv[++i]));
        } else if (update && (strcmp(a, "--enable") == 0 || strcmp(a, "--disable") == 0)) {
            json_object_set_new(body, "enabled", json_boolean(strcmp(a, "--enable") == 0));
        } else {
            fprintf(stderr, "kiln keys: unexpected argument '%s'\n", a);
            return CLI_EXIT_USAGE;
        }
    }
    return CLI_EXIT_OK;
}

static int kc_create(const char *url, const char *master, int argc, char **argv)
{
    json_t *body, *ans = NULL;
    long st;
    int rc;

    if (argc < 2) {
        fprintf(stderr, "kiln keys create: NAME is required\n");
        return CLI_EXIT_USAGE;
    }
    body = json_pack("{s:s}", "name", argv[1]);
    rc = kc_parse_opts(argc, argv, 2, body, false);
    if (rc != CLI_EXIT_OK)
        goto out;
    st = kc_call(url, master, "POST", "/keys", body, &ans);
    if (st != 201) {
        rc = kc_refused(st, ans);
        goto out;
    }
    printf("api_key:  %s\n", json_string_value(json_object_get(ans, "api_key")) ?: "");
    printf("key_hash: %s\n", json_string_value(json_object_get(ans, "key_hash")) ?: "");
    fprintf(stderr, "kiln keys: the secret is shown this once; store it now\n");
out:
    json_decref(body);
    json_decref(ans);
    return rc;
}

static int kc_update(const char *url, const char *master, int argc, char **argv)
{
    json_t *body, *ans = NULL;
    char *path;
    long st;
    int rc;

    if (argc < 2) {
        fprintf(stderr, "kiln keys update: HASH is required\n");
        return CLI_EXIT_USAGE;
    }
    body = json_object();
    rc = kc_parse_opts(argc, argv, 2, body, true);
    if (rc != CLI_EXIT_OK) {
        json_decref(body);
        return rc;
    }
    path = xasprintf("/keys/%s", argv[1]);
    st = kc_call(url, master, "PATCH", path, body, &ans);
    if (st != 200) {
        rc = kc_refused(st, ans);
    } else {
        char *s = json_dumps(ans, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    }
    free(path);
    json_decref(body);
    json_decref(ans);
    return rc;
}

static int kc_revoke(const char *url, const char *master, int argc, char **argv)
{
    json_t *ans = NULL;
    char *path;
    long st;
    int rc = CLI_EXIT_OK;

    if (argc != 2) {
        fprintf(stderr, "kiln keys revoke: exactly one HASH is required\n");
        return CLI_EXIT_USAGE;
    }
    path = xasprintf("/keys/%s", argv[1]);
    st = kc_call(url, master, "DELETE", path, NULL, &ans);
    if (st != 200)
        rc = kc_refused(st, ans);
    else
        printf("revoked %s\n", argv[1]);
    free(path);
    json_decref(ans);
    return rc;
}

int cmd_keys(int argc, char **argv)
{
    const char *url = getenv("KILN_URL"), *master = getenv("KILN_MASTER_KEY");
    char *base = NULL;
    int i = 1, rc = CLI_EXIT_USAGE;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        kc_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--master-key") == 0 && i + 1 < argc) {
            master = argv[++i];
        } else {
            fprintf(stderr, "kiln keys: unexpected option '%s'\n", argv[i]);
            kc_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        kc_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (master == NULL || master[0] == '\0') {
        fprintf(stderr, "kiln keys: no master key (set KILN_MASTER_KEY or pass --master-key)\n");
        return CLI_EXIT_USAGE;
    }
    base = xstrdup(url != NULL && url[0] != '\0' ? url : "http://127.0.0.1:8000");
    for (size_t n = strlen(base); n > 0 && base[n - 1] == '/'; n--)
        base[n - 1] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(argv[i], "list") == 0) {
        bool as_json = i + 1 < argc && strcmp(argv[i + 1], "--json") == 0;
        if (argc - i > (as_json ? 2 : 1))
            fprintf(stderr, "kiln keys list: unexpected argument '%s'\n", argv[argc - 1]);
        else
            rc = kc_list(base, master, as_json);
    } else if (strcmp(argv[i], "create") == 0) {
        rc = kc_create(base, master, argc - i, argv + i);
    } else if (strcmp(argv[i], "update") == 0) {
        rc = kc_update(base, master, argc - i, argv + i);
    } else if (strcmp(argv[i], "revoke") == 0) {
        rc = kc_revoke(base, master, argc - i, argv + i);
    } else {
        fprintf(stderr, "kiln keys: unknown command '%s'\n", argv[i]);
        kc_usage(stderr);
    }
    curl_global_cleanup();
    free(base);
    return rc;
}
#endif
