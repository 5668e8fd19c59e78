/* libFuzzer driver of core/names: whatever bytes a client sends as a file name, the sanitised
 * name (flat or batch path) is clean, bounded and never traverses; the Content-Disposition
 * value never carries CR, LF or NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    char *cd;

    if (names_sanitize((const char *)data, size, 255, &out, NULL) == KILN_OK) {
        if (strlen(out) > 255 || !names_is_clean_path(out, 255) || strchr(out, '/') != NULL)
            abort();
        cd = names_content_disposition(out);
        if (strpbrk(cd, "\r\n") != NULL)
            abort();
        free(cd);
        free(out);
        out = NULL;
    }
    if (names_sanitize_path((const char *)data, size, 255, &out, NULL) == KILN_OK) {
        if (strlen(out) > NAMES_MAX_PATH || !names_is_clean_path(out, 255) ||
            strstr(out, "..") == out || strstr(out, "/..") != NULL)
            abort();
        free(out);
    }
    return 0;
}
