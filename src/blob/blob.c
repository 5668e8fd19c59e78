#include "blob/blob.h"

#include <string.h>

static bool blob_seg_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool blob_key_valid(const char *key)
{
    size_t seg = 0, nseg = 1, total = 0;

    if (key == NULL)
        return false;
    for (const char *p = key;; p++) {
        if (*p == '/' || *p == '\0') {
            if (seg == 0 || seg > 64)
                return false;
            if (*p == '\0')
                return true;
            if (++nseg > BLOB_MAX_SEGMENTS)
                return false;
            seg = 0;
        } else if (!blob_seg_char((unsigned char)*p)) {
            return false;
        } else {
            seg++;
        }
        if (++total > BLOB_MAX_KEY)
            return false;
    }
}
