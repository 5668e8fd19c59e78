/* Unit tests of util/log: JSON lines and escaping, text lines, level filtering, access and
 * security switches, size rotation, truncation of huge lines, concurrent writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xmalloc.h"

/* A temporary directory holding the log file of one test. */
struct tmplog {
    char dir[64];
    char path[128];
};

static void tmplog_init(struct tmplog *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/kiln-test-log-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/kiln.log", t->dir);
}

static void tmplog_cleanup(struct tmplog *t)
{
    char p[160];
    for (int i = 0; i <= 9; i++) {
        if (i == 0)
            snprintf(p, sizeof p, "%s", t->path);
        else
            snprintf(p, sizeof p, "%s.%d", t->path, i);
        unlink(p);
    }
    rmdir(t->dir);
}

/* The whole file as a string (caller frees); "" when missing. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return xstrdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static struct logger *open_json(const struct tmplog *t, enum log_level level)
{
    struct log_options opt = {.level = level,
                              .format = LOG_FORMAT_JSON,
                              .path = t->path,
                              .access_enabled = true,
                              .security_enabled = true};
    struct logger *lg = NULL;
    struct errbuf eb = {{0}};

    assert_int_equal(log_open(&lg, &opt, &eb), KILN_OK);
    return lg;
}

static void test_log_json_line_has_fixed_keys_and_escapes(void **state)
{
    struct tmplog t;
    struct logger *lg;
    json_t *j;
    json_error_t err;
    char *text;
    const char *nasty = "quote\" backslash\\ newline\n tab\t ctl\x01 bad\xff utf8 \xc3\xa9";
    struct log_field f[] = {LOG_STR("path", "/a\"b"), LOG_INT("status", 404),
                            LOG_STR("nullval", NULL)};
    (void)state;

    tmplog_init(&t);
    lg = open_json(&t, LOG_DEBUG);
    log_fields(lg, LOG_WARNING, "req-1", nasty, f, 3);
    log_free(lg);
    text = slurp(t.path);
    assert_int_equal(count_lines(text), 1);
    j = json_loads(text, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "WARNING");
    assert_string_equal(json_string_value(json_object_get(j, "req_id")), "req-1");
    assert_string_equal(
        json_string_value(json_object_get(j, "msg")),
        "quote\" backslash\\ newline\n tab\t ctl\x01 bad\xef\xbf\xbd utf8 \xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/a\"b");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "nullval")), "");
    assert_non_null(strstr(json_string_value(json_object_get(j, "ts")), "T"));
    /* the fixed keys come first, in order */
    assert_true(strncmp(text, "{\"ts\":", 6) == 0);
    assert_true(strstr(text, "\"level\"") < strstr(text, "\"msg\""));
    json_decref(j);
    free(text);
    tmplog_cleanup(&t);
}

static void test_log_filters_levels(void **state)
{
    struct tmplog t;
    struct logger *lg;
    char *text;
    (void)state;

    tmplog_init(&t);
    lg = open_json(&t, LOG_WARNING);
    assert_false(log_enabled(lg, LOG_INFO));
    assert_true(log_enabled(lg, LOG_ERROR));
    log_msg(lg, LOG_DEBUG, NULL, "debug %d", 1);
    log_msg(lg, LOG_INFO, NULL, "info %d", 2);
    log_msg(lg, LOG_WARNING, NULL, "warning %d", 3);
    log_msg(lg, LOG_ERROR, NULL, "error %d", 4);
    log_free(lg);
    text = slurp(t.path);
    assert_int_equal(count_lines(text), 2);
    assert_null(strstr(text, "debug 1"));
    assert_null(strstr(text, "info 2"));
    assert_non_null(strstr(text, "warning 3"));
    assert_non_null(strstr(text, "error 4"));
    free(text);
    tmplog_cleanup(&t);
}

static void test_log_text_format_is_one_line(void **state)
{
    struct tmplog t;
    struct log_options opt = {.level = LOG_INFO, .format = LOG_FORMAT_TEXT};
    struct logger *lg = NULL;
    struct log_field f = LOG_INT("n", 7);
    char *text;
    (void)state;

    tmplog_init(&t);
    opt.path = t.path;
    assert_int_equal(log_open(&lg, &opt, NULL), KILN_OK);
    log_fields(lg, LOG_INFO, "r9", "two\nlines", &f, 1);
    log_free(lg);
    text = slurp(t.path);
    assert_int_equal(count_lines(text), 1);
    assert_non_null(strstr(text, " INFO [r9] two?lines n=7\n"));
    free(text);
    tmplog_cleanup(&t);
}

static void test_log_access_and_security_switches(void **state)
{
    struct tmplog t;
    struct log_options opt = {.level = LOG_DEBUG, .format = LOG_FORMAT_JSON};
    struct logger *lg = NULL;
    struct log_field f = LOG_STR("client_ip", "10.0.0.1");
    char *text;
    (void)state;

    tmplog_init(&t);
    opt.path = t.path;
    assert_int_equal(log_open(&lg, &opt, NULL), KILN_OK); /* both switches off */
    log_access(lg, "a", "GET", "/health", 200, 15, 0.25, "127.0.0.1");
    log_security(lg, "a", "auth_failed", &f, 1);
    log_free(lg);
    text = slurp(t.path);
    assert_string_equal(text, "");
    free(text);

    lg = open_json(&t, LOG_DEBUG);
    log_access(lg, "a", "GET", "/health", 200, 15, 0.25, "127.0.0.1");
    log_security(lg, "b", "auth_failed", &f, 1);
    log_free(lg);
    text = slurp(t.path);
    assert_int_equal(count_lines(text), 2);
    assert_non_null(strstr(text, "\"msg\":\"access\",\"req_id\":\"a\",\"method\":\"GET\""));
    assert_non_null(strstr(text, "\"status\":200"));
    assert_non_null(strstr(text, "\"level\":\"WARNING\",\"msg\":\"security\",\"req_id\":\"b\","
                                 "\"event\":\"auth_failed\",\"client_ip\":\"10.0.0.1\""));
    free(text);
    tmplog_cleanup(&t);
}

static void test_log_rotates_by_size_keeping_backups(void **state)
{
    struct tmplog t;
    struct log_options opt = {
        .level = LOG_INFO, .format = LOG_FORMAT_TEXT, .max_bytes = 200, .backups = 2};
    struct logger *lg = NULL;
    char p[160], *text;
    struct stat st;
    (void)state;

    tmplog_init(&t);
    opt.path = t.path;
    assert_int_equal(log_open(&lg, &opt, NULL), KILN_OK);
    for (int i = 0; i < 40; i++)
        log_msg(lg, LOG_INFO, NULL, "line %02d padding padding padding", i);
    log_free(lg);
    /* no file past the limit, exactly two backups, the newest line in the live file */
    assert_int_equal(stat(t.path, &st), 0);
    assert_true(st.st_size <= 200);
    snprintf(p, sizeof p, "%s.1", t.path);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size <= 200);
    snprintf(p, sizeof p, "%s.2", t.path);
    assert_int_equal(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s.3", t.path);
    assert_int_not_equal(stat(p, &st), 0);
    text = slurp(t.path);
    assert_non_null(strstr(text, "line 39"));
    free(text);
    snprintf(p, sizeof p, "%s.1", t.path);
    text = slurp(p);
    assert_null(strstr(text, "line 39")); /* older lines moved to .1 */
    assert_non_null(strstr(text, "line 3"));
    free(text);
    tmplog_cleanup(&t);
}

static void test_log_rotation_without_backups_truncates(void **state)
{
    struct tmplog t;
    struct log_options opt = {.level = LOG_INFO, .format = LOG_FORMAT_TEXT, .max_bytes = 120};
    struct logger *lg = NULL;
    char p[160];
    struct stat st;
    (void)state;

    tmplog_init(&t);
    opt.path = t.path;
    assert_int_equal(log_open(&lg, &opt, NULL), KILN_OK);
    for (int i = 0; i < 20; i++)
        log_msg(lg, LOG_INFO, NULL, "line %02d padding padding", i);
    log_free(lg);
    assert_int_equal(stat(t.path, &st), 0);
    assert_true(st.st_size <= 120);
    snprintf(p, sizeof p, "%s.1", t.path);
    assert_int_not_equal(stat(p, &st), 0);
    tmplog_cleanup(&t);
}

static void test_log_huge_message_is_cut_but_valid_json(void **state)
{
    struct tmplog t;
    struct logger *lg;
    size_t n = 100000;
    char *big = xmalloc(n + 1), *text;
    json_t *j;
    (void)state;

    memset(big, '"', n); /* worst case: every byte escaped */
    big[n] = '\0';
    tmplog_init(&t);
    lg = open_json(&t, LOG_INFO);
    log_fields(lg, LOG_INFO, NULL, big, NULL, 0);
    log_free(lg);
    text = slurp(t.path);
    assert_int_equal(count_lines(text), 1);
    j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "truncated")), 1);
    json_decref(j);
    free(text);
    free(big);
    tmplog_cleanup(&t);
}

struct writer_arg {
    struct logger *lg;
    int id;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < 200; i++)
        log_msg(a->lg, LOG_INFO, NULL, "thread %d line %d", a->id, i);
    return NULL;
}

static void test_log_is_thread_safe_across_rotation(void **state)
{
    struct tmplog t;
    /* 10 files of 16 KiB hold all 800 lines (~80 bytes each) while rotating several times */
    struct log_options opt = {
        .level = LOG_INFO, .format = LOG_FORMAT_JSON, .max_bytes = 16384, .backups = 9};
    struct logger *lg = NULL;
    pthread_t th[4];
    struct writer_arg args[4];
    size_t lines = 0;
    (void)state;

    tmplog_init(&t);
    opt.path = t.path;
    assert_int_equal(log_open(&lg, &opt, NULL), KILN_OK);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct writer_arg){lg, i};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    log_free(lg);
    /* every line of every kept file is one whole JSON object */
    for (int f = 0; f <= 9; f++) {
        char p[160], *text, *line, *save = NULL;
        if (f == 0)
            snprintf(p, sizeof p, "%s", t.path);
        else
            snprintf(p, sizeof p, "%s.%d", t.path, f);
        text = slurp(p);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            json_t *j = json_loads(line, 0, NULL);
            assert_non_null(j);
            json_decref(j);
            lines++;
        }
        free(text);
    }
    assert_int_equal(lines, 800); /* nothing lost or split by rotation */
    tmplog_cleanup(&t);
}

static void test_log_mask_secret_reveals_nothing(void **state)
{
    (void)state;
    assert_string_equal(log_mask_secret("supersecretvalue"), "***");
    assert_string_equal(log_mask_secret("x"), "***");
    assert_string_equal(log_mask_secret(""), "");
    assert_string_equal(log_mask_secret(NULL), "");
}

static void test_log_level_parse(void **state)
{
    enum log_level l;
    (void)state;
    assert_true(log_level_parse("debug", &l));
    assert_int_equal(l, LOG_DEBUG);
    assert_true(log_level_parse("WARN", &l));
    assert_int_equal(l, LOG_WARNING);
    assert_false(log_level_parse("loud", &l));
    assert_string_equal(log_level_name(LOG_ERROR), "ERROR");
}

static void test_log_open_fails_on_bad_path(void **state)
{
    struct log_options opt = {.path = "/nonexistent-dir/x.log"};
    struct logger *lg = NULL;
    struct errbuf eb = {{0}};
    (void)state;
    assert_int_equal(log_open(&lg, &opt, &eb), KILN_ERR_IO);
    assert_null(lg);
    assert_non_null(strstr(eb.msg, "/nonexistent-dir/x.log"));
    log_free(log_default()); /* the default logger is never freed */
    log_msg(log_default(), LOG_DEBUG, NULL, "below INFO: not written");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_json_line_has_fixed_keys_and_escapes),
        cmocka_unit_test(test_log_filters_levels),
        cmocka_unit_test(test_log_text_format_is_one_line),
        cmocka_unit_test(test_log_access_and_security_switches),
        cmocka_unit_test(test_log_rotates_by_size_keeping_backups),
        cmocka_unit_test(test_log_rotation_without_backups_truncates),
        cmocka_unit_test(test_log_huge_message_is_cut_but_valid_json),
        cmocka_unit_test(test_log_is_thread_safe_across_rotation),
        cmocka_unit_test(test_log_mask_secret_reveals_nothing),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_open_fails_on_bad_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
