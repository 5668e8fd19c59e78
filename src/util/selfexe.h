/* The directory of the running executable, for files installed beside it (kiln's companions,
 * the zygote's extension). Read from /proc/self/exe, so neither PATH nor argv[0] can point it
 * elsewhere. */
#ifndef KILN_UTIL_SELFEXE_H
#define KILN_UTIL_SELFEXE_H

#include <stddef.h>

/* Writes the directory (no trailing slash) into buf. Returns 0, or -1 when /proc/self/exe
 * cannot be read or the path does not fit in cap bytes. */
int selfexe_dir(char *buf, size_t cap);

#endif
