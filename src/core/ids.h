/* Identifiers of sessions and files: exactly 21 characters of the nanoid alphabet
 * [A-Za-z0-9_-], drawn from the kernel CSPRNG (api-contract.md "Identifiers": LibreChat rejects
 * anything else). Ids are also the only components of blob keys and on-disk paths, so a valid id
 * can never name a parent directory or a hidden file.
 *
 * Thread safety: every function is reentrant. */
#ifndef KILN_CORE_IDS_H
#define KILN_CORE_IDS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Length of an id, without the NUL. */
#define IDS_LEN 21

/* A buffer that holds one id and its NUL. */
#define IDS_BUF (IDS_LEN + 1)

/* Fill out with a fresh NUL-terminated id from getrandom(2). 64 symbols are exactly 6 bits, so
 * each byte's low 6 bits pick a symbol with no modulo bias and no rejection loop (126 bits of
 * entropy per id). Fails only when the kernel CSPRNG does (KILN_ERR_IO). */
enum kiln_err ids_new(char out[IDS_BUF], struct errbuf *eb);

/* n ids as ids_new() makes them, into out[0..n-1], with one getrandom(2) call per 12 (an
 * execution draws MAX_OUTPUT_FILES output ids up front). */
enum kiln_err ids_new_many(char (*out)[IDS_BUF], size_t n, struct errbuf *eb);

/* True when s is exactly IDS_LEN characters of the alphabet (s may be NULL → false). */
bool ids_valid(const char *s);

/* True when the first len bytes of s are a valid id (for ids inside a longer string). */
bool ids_valid_n(const char *s, size_t len);

#endif
