/* The list of route groups `kiln serve` mounts: adding a group is one row. */
#include "api/api.h"
#include "api/api_int.h"

size_t api_route_groups(struct http_route_group *out, size_t cap)
{
    const struct http_route_group groups[] = {
        {HTTP_MOUNT_API, api_system_routes, api_system_routes_count},
        {HTTP_MOUNT_API, api_exec_routes, api_exec_routes_count},
        {HTTP_MOUNT_API, api_upload_routes, api_upload_routes_count},
        {HTTP_MOUNT_API, api_files_routes, api_files_routes_count},
        {HTTP_MOUNT_API, api_state_routes, api_state_routes_count},
        {HTTP_MOUNT_API, api_ops_routes, api_ops_routes_count},
        {HTTP_MOUNT_ADMIN, api_admin_routes, api_admin_routes_count},
        {HTTP_MOUNT_API, api_test_routes, api_test_routes_count},
        {HTTP_MOUNT_ADMIN, api_test_admin_routes, api_test_admin_routes_count},
    };
    size_t n = sizeof groups / sizeof groups[0];

    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = groups[i];
    return n;
}
