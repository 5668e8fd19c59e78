/* File names that come from clients or from a sandbox: sanitisation exactly as the contract says
 * (api-contract.md "POST /upload"), content types by extension, and the Content-Disposition
 * value of downloads.
 *
 * A sanitised name is only ever used as data (a record's name, a path inside a sandbox
 * workspace, a header value); bytes on the host live under kiln-generated ids (core/ids.h), so
 * a name can never reach the host filesystem.
 *
 * Thread safety: every function is reentrant; the tables are static and read-only. */
#ifndef KILN_CORE_NAMES_H
#define KILN_CORE_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Longest sub-directory path a batch upload may keep (bytes, all segments and slashes). */
#define NAMES_MAX_PATH 1024

/* Deepest sub-directory path a batch upload may keep (segments, the file name included). */
#define NAMES_MAX_DEPTH 16

/* Sanitise one file name of len bytes (embedded NULs allowed: they are replaced too): every
 * character outside [A-Za-z0-9._-] becomes one '_' (a whole UTF-8 sequence counts as one
 * character; a stray byte of invalid UTF-8 counts as one), a leading '.' gets a '_' prefix so
 * that no name is hidden or a "."/".." entry, and the result is cut to max_len bytes keeping a
 * short extension. Any directory part is flattened ('/' and '\' become '_'). An empty input is
 * KILN_ERR_INVALID. Caller frees *out with free(). */
enum kiln_err names_sanitize(const char *in, size_t len, size_t max_len, char **out,
                             struct errbuf *eb);

/* Sanitise a relative path of a batch upload: split on '/', drop empty and "." segments (so an
 * absolute path becomes relative), refuse ".." anywhere (KILN_ERR_INVALID), sanitise each
 * segment as names_sanitize() with max_len per segment; at most NAMES_MAX_DEPTH segments and
 * NAMES_MAX_PATH bytes. '\' is not a separator: it becomes '_'. Caller frees *out. */
enum kiln_err names_sanitize_path(const char *in, size_t len, size_t max_len, char **out,
                                  struct errbuf *eb);

/* True when name is already in the form names_sanitize_path() produces (used to re-check names
 * that come back out of a sandbox before they are stored). */
bool names_is_clean_path(const char *name, size_t max_len);

/* The MIME type of a file name by its extension (case-insensitive), or
 * "application/octet-stream". Borrowed, static. */
const char *names_content_type(const char *name);

/* The Content-Disposition value for downloading name (only its last path segment is used):
 * `attachment; filename="<ascii>"; filename*=UTF-8''<pct-encoded>` where <ascii> replaces every
 * non-ASCII, control, '"' and '\' byte by '_' and the RFC 5987 part percent-encodes every byte
 * outside attr-char. Caller frees with free(). */
char *names_content_disposition(const char *name);

#endif
