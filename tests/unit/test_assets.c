/* Unit tests of util/assets: the dashboard files are embedded byte for byte, found by URL path
 * (with the index fallback), and served with the right content type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/assets.h"

/* Read a file of the source tree. Caller frees. */
static char *read_source(const char *rel, size_t *len)
{
    const char *root = getenv("KILN_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root ? root : KILN_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void test_assets_embed_dashboard_byte_for_byte(void **state)
{
    (void)state;
    const char *files[] = {"index.html", "app.js", "style.css", "favicon.svg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char url[128], rel[128];
        snprintf(url, sizeof url, "/admin-dashboard/%s", files[i]);
        snprintf(rel, sizeof rel, "web/admin-dashboard/%s", files[i]);
        const struct kiln_asset *a = assets_find(url);
        assert_non_null(a);
        size_t len;
        char *want = read_source(rel, &len);
        assert_int_equal(a->len, len);
        assert_memory_equal(a->data, want, len);
        assert_int_equal(a->data[a->len], '\0');
        free(want);
    }
    assert_true(kiln_web_assets_count >= 4);
    assert_null(kiln_web_assets[kiln_web_assets_count].path);
}

static void test_assets_index_fallback_and_misses(void **state)
{
    (void)state;
    const struct kiln_asset *idx = assets_find("/admin-dashboard/index.html");
    assert_non_null(idx);
    assert_ptr_equal(assets_find("/admin-dashboard"), idx);
    assert_ptr_equal(assets_find("/admin-dashboard/"), idx);
    assert_null(assets_find("/admin-dashboard/nope.js"));
    assert_null(assets_find("/admin-dashboard/../admin-dashboard/app.js"));
    assert_null(assets_find("admin-dashboard/app.js"));
    assert_null(assets_find("/"));
    assert_null(assets_find(""));
    assert_null(assets_find(NULL));
    assert_null(assets_find("/admin"));
}

static void test_assets_content_types(void **state)
{
    (void)state;
    assert_string_equal(assets_content_type("/a/index.html"), "text/html; charset=utf-8");
    assert_string_equal(assets_content_type("/a/app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(assets_content_type("/a/style.css"), "text/css; charset=utf-8");
    assert_string_equal(assets_content_type("/a.b/file"), "application/octet-stream");
    assert_string_equal(assets_content_type("/a/x.exe"), "application/octet-stream");
    assert_string_equal(assets_content_type(NULL), "application/octet-stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assets_embed_dashboard_byte_for_byte),
        cmocka_unit_test(test_assets_index_fallback_and_misses),
        cmocka_unit_test(test_assets_content_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
