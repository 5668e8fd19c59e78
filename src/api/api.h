/* The route groups of the API, one file per group (DESIGN.md: api/ parses JSON in, calls core/,
 * writes JSON out). `kiln serve` mounts every group listed by api_route_groups(). */
#ifndef KILN_API_API_H
#define KILN_API_API_H

#include <stddef.h>

#include "http/http.h"

/* /health, /ready, /openapi.json, /docs. */
extern const struct http_route api_system_routes[];
extern const size_t api_system_routes_count;

/* /metrics, /health/detailed, /health/{dependency}, /admin-dashboard (api/ops.c). */
extern const struct http_route api_ops_routes[];
extern const size_t api_ops_routes_count;
/* /api/v1/admin/keys..., /api/v1/admin/stats (mounted HTTP_MOUNT_ADMIN; api/ops.c). */
extern const struct http_route api_admin_routes[];
extern const size_t api_admin_routes_count;

/* /__test/...: the http layer's own test routes (deferred answers, uploads, files, errors);
 * flagged HTTP_ROUTE_HIDDEN, mounted only with KILN_TEST_ROUTES=1. */
extern const struct http_route api_test_routes[];
extern const size_t api_test_routes_count;
/* The same, under the admin mount (/api/v1/admin/__test/...). */
extern const struct http_route api_test_admin_routes[];
extern const size_t api_test_admin_routes_count;

/* Every group, in mounting order: fills out[0..cap) and returns how many groups exist. */
#define API_MAX_GROUPS 16
size_t api_route_groups(struct http_route_group *out, size_t cap);

#endif
