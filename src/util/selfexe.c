#include "util/selfexe.h"

#include <string.h>
#include <unistd.h>

int selfexe_dir(char *buf, size_t cap)
{
    if (cap < 2)
        return -1;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL)
        return -1;
    *slash = slash == buf ? '/' : '\0';
    if (slash == buf)
        buf[1] = '\0';
    return 0;
}
