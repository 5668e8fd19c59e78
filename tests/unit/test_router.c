/* The router: pattern matching, parameters, mounts, 404/405, and hostile paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"

static void h_dummy(struct http_req *req)
{
    (void)req;
}

static const struct http_route routes[] = {
    {"GET", "/health", h_dummy, HTTP_ROUTE_NO_AUTH, HTTP_BODY_NONE, 0, NULL},
    {"POST", "/exec", h_dummy, 0, HTTP_BODY_JSON, 0, NULL},
    {"GET", "/files/{session_id}", h_dummy, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/download/{session_id}/{file_id}", h_dummy, 0, HTTP_BODY_NONE, 0, NULL},
    {"DELETE", "/files/{session_id}/{file_id}", h_dummy, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/", h_dummy, 0, HTTP_BODY_NONE, 0, NULL},
    {"GET", "/dash/", h_dummy, 0, HTTP_BODY_NONE, 0, NULL},
};
static const struct http_route admin_routes[] = {
    {"GET", "/keys", h_dummy, 0, HTTP_BODY_NONE, 0, NULL},
};

static int setup(void **state)
{
    struct router *r = router_new();
    struct errbuf eb;

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        assert_int_equal(router_add(r, HTTP_MOUNT_API, &routes[i], &eb), KILN_OK);
    assert_int_equal(router_add(r, HTTP_MOUNT_ADMIN, &admin_routes[0], &eb), KILN_OK);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    router_free(*state);
    return 0;
}

static enum router_status match(void **state, const char *method, const char *path,
                                struct router_match *m)
{
    char allow[64];
    return router_match(*state, method, path, m, allow, sizeof allow);
}

static void test_router_matches_literal_at_root_and_v1(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/health", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route, &routes[0]);
    assert_int_equal(match(state, "GET", "/v1/health", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route, &routes[0]);
    assert_int_equal(m.mount, HTTP_MOUNT_API);
    assert_int_equal(match(state, "GET", "/v2/health", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route, &routes[5]);
}

static void test_router_head_is_served_by_get(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "HEAD", "/health", &m), ROUTER_FOUND);
}

static void test_router_captures_decoded_params(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/v1/download/abc_DEF-123/f%20x", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route, &routes[3]);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.names[0], "session_id");
    assert_string_equal(m.values[0], "abc_DEF-123");
    assert_string_equal(m.names[1], "file_id");
    assert_string_equal(m.values[1], "f x");
}

static void test_router_admin_mount_only_under_api_v1_admin(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/api/v1/admin/keys", &m), ROUTER_FOUND);
    assert_int_equal(m.mount, HTTP_MOUNT_ADMIN);
    assert_int_equal(match(state, "GET", "/keys", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/v1/keys", &m), ROUTER_NOT_FOUND);
}

static void test_router_wrong_method_lists_allow(void **state)
{
    struct router_match m;
    char allow[64];

    assert_int_equal(router_match(*state, "POST", "/files/s1/f1", &m, allow, sizeof allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "DELETE, OPTIONS");
    assert_int_equal(router_match(*state, "PUT", "/health", &m, allow, sizeof allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, HEAD, OPTIONS");
}

static void test_router_unknown_and_partial_paths_are_404(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/nope", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/files", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/files/a/b/c", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/health/", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/files/", &m), ROUTER_NOT_FOUND);
}

static void test_router_refuses_dot_segments(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/download/../etc", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/s/..", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/%2e%2e/x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/%2E%2e/x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/./x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/.%2e/x", &m), ROUTER_BAD_PATH);
}

static void test_router_refuses_encoded_slash_and_nul(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/download/a%2Fb/x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/a%2f..%2f/x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/a%00b/x", &m), ROUTER_BAD_PATH);
}

static void test_router_refuses_bad_percent_encoding(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/download/%zz/x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/abc%/x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/abc%4/x", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "/download/x/abc%", &m), ROUTER_BAD_PATH);
}

static void test_router_empty_segments_do_not_match(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "//health", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/download//x", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/v1//health", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "health", &m), ROUTER_BAD_PATH);
    assert_int_equal(match(state, "GET", "", &m), ROUTER_BAD_PATH);
}

static void test_router_trailing_slash_only_where_the_pattern_has_it(void **state)
{
    struct router_match m;

    assert_int_equal(match(state, "GET", "/dash/", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route, &routes[6]);
    assert_int_equal(m.nparams, 0);
    assert_int_equal(match(state, "GET", "/v1/dash/", &m), ROUTER_FOUND);
    assert_int_equal(match(state, "GET", "/dash", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/dash//", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/health/", &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(state, "GET", "/files/", &m), ROUTER_NOT_FOUND);
}

static void test_router_very_long_paths(void **state)
{
    struct router_match m;
    char path[ROUTER_PATH_MAX + 64];

    memset(path, 'a', sizeof path);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    assert_int_equal(match(state, "GET", path, &m), ROUTER_TOO_LONG);
    /* Many segments below the length limit: more than any route has. */
    for (size_t i = 0; i + 1 < 200; i += 2) {
        path[i] = '/';
        path[i + 1] = 'a';
    }
    path[200] = '\0';
    assert_int_equal(match(state, "GET", path, &m), ROUTER_NOT_FOUND);
    /* A long single parameter is fine. */
    memset(path, 'b', sizeof path);
    memcpy(path, "/files/", 7);
    path[1500] = '\0';
    assert_int_equal(match(state, "GET", path, &m), ROUTER_FOUND);
    assert_int_equal(strlen(m.values[0]), 1500 - 7);
}

static void test_router_rejects_bad_patterns(void **state)
{
    static const struct http_route bad = {"GET", "nope", h_dummy, 0, HTTP_BODY_NONE, 0, NULL};
    static const struct http_route empty = {"GET", "/a//b", h_dummy, 0, HTTP_BODY_NONE, 0, NULL};
    static const struct http_route twice = {"GET", "/a//", h_dummy, 0, HTTP_BODY_NONE, 0, NULL};
    struct errbuf eb;

    assert_int_equal(router_add(*state, HTTP_MOUNT_API, &bad, &eb), KILN_ERR_INVALID);
    assert_int_equal(router_add(*state, HTTP_MOUNT_API, &empty, &eb), KILN_ERR_INVALID);
    assert_int_equal(router_add(*state, HTTP_MOUNT_API, &twice, &eb), KILN_ERR_INVALID);
}

static void test_router_pct_decode_query_plus(void **state)
{
    char out[32];

    (void)state;
    assert_true(router_pct_decode("a+b%2B", 6, out, true));
    assert_string_equal(out, "a b+");
    assert_true(router_pct_decode("a+b", 3, out, false));
    assert_string_equal(out, "a+b");
    assert_false(router_pct_decode("%0", 2, out, true));
    assert_false(router_pct_decode("%00", 3, out, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_router_matches_literal_at_root_and_v1, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router_head_is_served_by_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_captures_decoded_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_admin_mount_only_under_api_v1_admin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router_wrong_method_lists_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_unknown_and_partial_paths_are_404, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router_refuses_dot_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_refuses_encoded_slash_and_nul, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_refuses_bad_percent_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_empty_segments_do_not_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_trailing_slash_only_where_the_pattern_has_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_very_long_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_rejects_bad_patterns, setup, teardown),
        cmocka_unit_test(test_router_pct_decode_query_plus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
