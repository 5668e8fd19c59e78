/* `kiln exec`: a command-line client of a running kiln server (KILN_URL, KILN_API_KEY): upload
 * the data files, run the code through POST /exec, print its stdout and stderr, download the
 * files it generated into --out, and exit with the program's status. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_code.h"
#include "core/names.h"
#include "util/xmalloc.h"

#define EXEC_EXIT_TIMEOUT 124                  /* as `kiln run` and timeout(1) */
#define EXEC_RESP_MAX     (64LL * 1024 * 1024) /* bytes of a JSON answer */
#define EXEC_PROGRESS_MIN (1024LL * 1024)      /* files smaller than this get no progress bar */
#define EXEC_DEFAULT_URL  "http://127.0.0.1:8000"
#define EXEC_NAME_MAX     255

struct exec_opts {
    const char *lang;
    struct cli_code src; /* -f FILE or CODE, --arg, --timeout (0 = the server's default) */
    const char **data;   /* --file paths */
    size_t ndata;
    const char *session;
    const char *out_dir;
    bool json;
};

struct exec_client {
    CURL *curl;
    char *url; /* base, without a trailing '/' */
    struct curl_slist *hdrs;
    bool progress; /* draw a progress bar on stderr */
};

static void exec_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln exec -l LANG [-f FILE | CODE] [--file DATA]... [--session ID]\n"
            "                 [--out DIR] [--arg A]... [--timeout S] [--json]\n\n"
            "Run CODE (or the content of FILE; '-' reads stdin) on the kiln server at $KILN_URL\n"
            "(default " EXEC_DEFAULT_URL ") with the key $KILN_API_KEY. DATA files are uploaded\n"
            "first and appear in /mnt/data; files the program writes there are downloaded into\n"
            "DIR (names sanitised, never outside DIR). The exit status is the program's (124 on\n"
            "timeout, 128+N when killed by signal N, 1 when the server refuses, 2 usage).\n\n"
            "options:\n"
            "  -l, --lang LANG    py js ts go java c cpp php rs r f90 d bash\n"
            "  -f, --code-file F  read the code from F\n"
            "      --file DATA    upload DATA into /mnt/data (repeatable)\n"
            "  -s, --session ID   reuse a session (its files are mounted)\n"
            "  -o, --out DIR      download generated files into DIR\n"
            "  -a, --arg A        argument for the program (repeatable)\n"
            "  -t, --timeout S    time limit in seconds (decimals allowed)\n"
            "      --json         print the server's JSON answer instead of the outputs\n"
            "  -h, --help         show this help\n");
}

/* ---- buffers ---------------------------------------------------------------------------- */

struct exec_buf {
    char *data;
    size_t len, cap;
    bool overflow;
};

static size_t exec_buf_write(char *p, size_t size, size_t n, void *arg)
{
    struct exec_buf *b = arg;
    size_t len = size * n;

    if (b->len + len > (size_t)EXEC_RESP_MAX) {
        b->overflow = true;
        return 0;
    }
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->data = xreallocarray(b->data, b->cap, 1);
    }
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

static int exec_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    const char *what = arg;
    curl_off_t total = ultotal > 0 ? ultotal : dltotal, now = ultotal > 0 ? ulnow : dlnow;
    int width = 30, fill;

    if (total <= 0)
        return 0;
    fill = (int)(now * width / total);
    fprintf(stderr, "\r%s [%.*s%*s] %3d%% %lld/%lld KiB", what, fill,
            "##############################", width - fill, "", (int)(now * 100 / total),
            (long long)(now / 1024), (long long)(total / 1024));
    if (now >= total)
        fputc('\n', stderr);
    return 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* Perform the prepared request; fill *status; body in *b. -1 on a transport error (printed). */
static int exec_perform(struct exec_client *c, const char *path, struct exec_buf *b, long *status)
{
    char *url = xasprintf("%s%s", c->url, path);
    CURLcode rc;

    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, exec_buf_write);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, b);
    rc = curl_easy_perform(c->curl);
    free(url);
    if (rc != CURLE_OK) {
        fprintf(stderr, "kiln exec: %s: %s\n", path, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* Print the error of a non-2xx answer. */
static void exec_print_error(const char *what, long status, const struct exec_buf *b)
{
    json_t *j = b->data != NULL ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error"));

    fprintf(stderr, "kiln exec: %s failed: HTTP %ld: %s\n", what, status,
            msg != NULL ? msg : (b->data != NULL ? b->data : ""));
    json_decref(j);
}

/* Upload the data files in one request; *refs receives [{id, session_id, name}]. */
static int exec_upload(struct exec_client *c, const struct exec_opts *o, json_t *refs)
{
    struct exec_buf b = {0};
    curl_mime *mime = curl_mime_init(c->curl);
    long status = 0, total = 0;
    json_t *j = NULL;
    int rc = -1;

    for (size_t i = 0; i < o->ndata; i++) {
        curl_mimepart *p = curl_mime_addpart(mime);
        struct stat st;
        if (stat(o->data[i], &st) != 0 || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "kiln exec: %s: not a readable regular file\n", o->data[i]);
            goto out;
        }
        total += (long)st.st_size;
        curl_mime_name(p, "file");
        if (curl_mime_filedata(p, o->data[i]) != CURLE_OK) {
            fprintf(stderr, "kiln exec: cannot read %s\n", o->data[i]);
            goto out;
        }
    }
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, mime);
    if (c->progress && total >= EXEC_PROGRESS_MIN) {
        curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, exec_progress);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, (void *)(uintptr_t) "upload");
    }
    if (exec_perform(c, "/upload", &b, &status) != 0)
        goto out;
    if (status != 200) {
        exec_print_error("upload", status, &b);
        goto out;
    }
    j = json_loadb(b.data, b.len, 0, NULL);
    {
        const char *sid = json_string_value(json_object_get(j, "session_id"));
        json_t *files = json_object_get(j, "files");
        size_t i;
        json_t *f;
        if (sid == NULL || !json_is_array(files)) {
            fprintf(stderr, "kiln exec: upload: unexpected answer\n");
            goto out;
        }
        json_array_foreach(files, i, f)
        {
            json_array_append_new(refs, json_pack("{s:O, s:s, s:O}", "id",
                                                  json_object_get(f, "fileId"), "session_id", sid,
                                                  "name", json_object_get(f, "filename")));
        }
    }
    rc = 0;
out:
    json_decref(j);
    curl_mime_free(mime);
    free(b.data);
    return rc;
}

/* Download one generated file into dirfd under a sanitised, flattened name. */
static int exec_download(struct exec_client *c, int dirfd, const char *sid, const char *fid,
                         const char *name)
{
    char *safe = NULL, *path = NULL, *tmp = NULL;
    struct errbuf eb;
    FILE *f = NULL;
    long status = 0;
    int fd = -1, rc = -1;
    CURLcode cr;

    errbuf_clear(&eb);
    if (names_sanitize(name, strlen(name), EXEC_NAME_MAX, &safe, &eb) != KILN_OK) {
        fprintf(stderr, "kiln exec: skipping a file with an unusable name\n");
        return -1;
    }
    /* written to a temporary in DIR, renamed over the name: never through a symlink */
    tmp = xasprintf(".kiln-exec.%d.%s", (int)getpid(), fid);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 || (f = fdopen(fd, "wb")) == NULL) {
        fprintf(stderr, "kiln exec: cannot write %s: %s\n", safe, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    path = xasprintf("%s/download/%s/%s", c->url, sid, fid);
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, path);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c->curl, CURLOPT_FAILONERROR, 1L);
    cr = curl_easy_perform(c->curl);
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (fclose(f) != 0 || cr != CURLE_OK) {
        fprintf(stderr, "kiln exec: download of %s failed: %s\n", safe,
                cr != CURLE_OK ? curl_easy_strerror(cr) : strerror(errno));
        unlinkat(dirfd, tmp, 0);
        goto out;
    }
    if (renameat(dirfd, tmp, dirfd, safe) != 0) {
        fprintf(stderr, "kiln exec: cannot store %s: %s\n", safe, strerror(errno));
        unlinkat(dirfd, tmp, 0);
        goto out;
    }
    fprintf(stderr, "kiln exec: saved %s\n", safe);
    rc = 0;
out:
    free(path);
    free(tmp);
    free(safe);
    return rc;
}

/* ---- the command ------------------------------------------------------------------------- */

static int exec_parse(int argc, char **argv, struct exec_opts *o)
{
    static const struct option longopts[] = {
        {"lang", required_argument, NULL, 'l'},    {"code-file", required_argument, NULL, 'f'},
        {"file", required_argument, NULL, 'F'},    {"session", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},     {"arg", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int ch, r;

    o->data = xcalloc((size_t)argc + 1, sizeof *o->data);
    optind = 1;
    while ((ch = getopt_long(argc, argv, "l:f:s:o:a:t:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            o->lang = optarg;
            break;
        case 'F':
            o->data[o->ndata++] = optarg;
            break;
        case 's':
            o->session = optarg;
            break;
        case 'o':
            o->out_dir = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        default:
            r = cli_code_option(&o->src, "kiln exec", ch, optarg);
            if (r < 0)
                return CLI_EXIT_USAGE;
            if (r > 0)
                break;
            exec_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (o->lang == NULL || cli_code_operands(&o->src, "kiln exec", argc, argv) != 0) {
        exec_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* The exit status that mirrors the program's. */
static int exec_status(json_t *r)
{
    const char *st = json_string_value(json_object_get(r, "status"));
    json_t *sig = json_object_get(r, "signal");

    if (st != NULL && strcmp(st, "timeout") == 0)
        return EXEC_EXIT_TIMEOUT;
    if (json_is_integer(sig) && json_integer_value(sig) > 0)
        return 128 + (int)json_integer_value(sig);
    return (int)(json_integer_value(json_object_get(r, "exit_code")) & 0xff);
}

int cmd_exec(int argc, char **argv)
{
    struct exec_opts o = {0};
    struct exec_client c = {0};
    struct exec_buf b = {0};
    const char *url = getenv("KILN_URL"), *key = getenv("KILN_API_KEY");
    char *code = NULL, *hdr = NULL, *body = NULL;
    size_t code_len = 0;
    struct errbuf eb;
    json_t *req = NULL, *refs = json_array(), *resp = NULL, *files;
    long status = 0;
    int rc, dirfd = -1;

    if (cli_wants_help(argc, argv)) {
        exec_usage(stdout);
        rc = CLI_EXIT_OK;
        goto out;
    }
    rc = exec_parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK)
        goto out;
    rc = CLI_EXIT_FAIL;
    errbuf_clear(&eb);
    if (cli_code_read(&o.src, &code, &code_len, &eb) != KILN_OK) {
        fprintf(stderr, "kiln exec: code: %s\n", eb.msg);
        goto out;
    }
    if (o.out_dir != NULL) {
        mkdir(o.out_dir, 0755);
        dirfd = open(o.out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
            fprintf(stderr, "kiln exec: --out %s: %s\n", o.out_dir, strerror(errno));
            goto out;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c.curl = curl_easy_init();
    c.url = xstrdup(url != NULL && url[0] != '\0' ? url : EXEC_DEFAULT_URL);
    while (c.url[0] != '\0' && c.url[strlen(c.url) - 1] == '/')
        c.url[strlen(c.url) - 1] = '\0';
    c.progress = isatty(STDERR_FILENO);
    c.hdrs = curl_slist_append(NULL, "User-Agent: kiln-exec/1");
    if (key != NULL && key[0] != '\0') {
        hdr = xasprintf("X-API-Key: %s", key);
        c.hdrs = curl_slist_append(c.hdrs, hdr);
    }
    if (o.ndata > 0 && exec_upload(&c, &o, refs) != 0)
        goto out;

    req = json_pack("{s:s, s:s%}", "lang", o.lang, "code", code, code_len);
    if (req == NULL) {
        fprintf(stderr, "kiln exec: the code is not valid UTF-8\n");
        goto out;
    }
    if (o.src.nargs > 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < o.src.nargs; i++)
            json_array_append_new(a, json_string(o.src.args[i]));
        json_object_set_new(req, "args", a);
    }
    if (o.session != NULL)
        json_object_set_new(req, "session_id", json_string(o.session));
    if (o.src.timeout_ms > 0)
        json_object_set_new(req, "timeout", json_integer(o.src.timeout_ms));
    if (json_array_size(refs) > 0)
        json_object_set(req, "files", refs);
    body = json_dumps(req, JSON_COMPACT);
    c.hdrs = curl_slist_append(c.hdrs, "Content-Type: application/json");
    curl_easy_reset(c.curl);
    curl_easy_setopt(c.curl, CURLOPT_POSTFIELDS, body);
    if (exec_perform(&c, "/exec", &b, &status) != 0)
        goto out;
    resp = b.data != NULL ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    if (status != 200 || resp == NULL) {
        exec_print_error("exec", status, &b);
        goto out;
    }
    if (o.json) {
        json_dumpf(resp, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        json_t *so = json_object_get(resp, "stdout"), *se = json_object_get(resp, "stderr");
        fwrite(json_string_value(so) ? json_string_value(so) : "", 1, json_string_length(so),
               stdout);
        fwrite(json_string_value(se) ? json_string_value(se) : "", 1, json_string_length(se),
               stderr);
    }
    fflush(stdout);
    files = json_object_get(resp, "files");
    if (dirfd >= 0 && json_is_array(files)) {
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f)
        {
            const char *sid = json_string_value(json_object_get(f, "storage_session_id"));
            const char *fid = json_string_value(json_object_get(f, "id"));
            const char *name = json_string_value(json_object_get(f, "name"));
            if (json_is_true(json_object_get(f, "inherited")) || sid == NULL || fid == NULL ||
                name == NULL)
                continue;
            exec_download(&c, dirfd, sid, fid, name);
        }
    }
    if (!o.json)
        fprintf(stderr, "kiln exec: session %s\n",
                json_string_value(json_object_get(resp, "session_id")));
    rc = exec_status(resp);
out:
    if (dirfd >= 0)
        close(dirfd);
    json_decref(resp);
    json_decref(req);
    json_decref(refs);
    free(body);
    free(b.data);
    free(hdr);
    free(code);
    curl_slist_free_all(c.hdrs);
    if (c.curl != NULL)
        curl_easy_cleanup(c.curl);
    free(c.url);
    free(o.data);
    cli_code_clear(&o.src);
    return rc;
}
