/* Files of a session: streaming uploads with the contract's limits and a sha256 etag, listing,
 * metadata, opening for download, deletion — all under the isolation rule of core/sessions.h
 * (another user's session behaves as if it did not exist).
 *
 * An upload is reserve → stream → commit: the record is reserved first (so MAX_FILES_PER_SESSION
 * holds under concurrency and a crash leaves a pending record that recovery removes), the bytes
 * stream to a blob temporary while size and hash are computed, then the blob is committed and
 * the record completed (MAX_TOTAL_FILE_SIZE_MB checked atomically there).
 *
 * Thread safety: every function may be called from any thread; one upload belongs to one
 * thread. */
#ifndef KILN_CORE_FILES_H
#define KILN_CORE_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/services.h"

struct files_upload;

/* Start uploading one file into session sid (already chosen and visible to the caller).
 * raw_name is the client's file name (raw_len bytes, NULs allowed), sanitised here: flattened
 * to one name, or with keep_dirs (/upload/batch) kept as a sanitised relative path. kind is the
 * gen-2 `kind` field or NULL. KILN_ERR_INVALID for a name that sanitises to nothing or holds
 * "..", KILN_ERR_TOO_LARGE naming MAX_FILES_PER_SESSION. Finish with files_upload_finish() or
 * files_upload_abort(). */
enum kiln_err files_upload_begin(struct kiln_services *svc, const char *sid, const char *raw_name,
                                 size_t raw_len, bool keep_dirs, const char *kind,
                                 struct files_upload **out, struct errbuf *eb);

/* Append len bytes. KILN_ERR_TOO_LARGE naming MAX_FILE_SIZE_MB or MAX_TOTAL_FILE_SIZE_MB as soon
 * as the bytes so far pass either (the caller then aborts and may drain the rest of the part). */
enum kiln_err files_upload_write(struct files_upload *up, const void *buf, size_t len,
                                 struct errbuf *eb);

/* The sanitised name the upload will be stored under (borrowed, valid until finish/abort). */
const char *files_upload_name(const struct files_upload *up);

/* Commit: fsync and publish the bytes, complete the record, touch the session. *out receives
 * the record (caller clears with store_file_clear()). Frees up whatever the result. */
enum kiln_err files_upload_finish(struct files_upload *up, struct store_file *out,
                                  struct errbuf *eb);

/* Drop the upload: the temporary and the reserved record. Frees up. NULL is a no-op. */
void files_upload_abort(struct files_upload *up);

/* The complete files of sid, oldest first; an unknown or invisible session gives an empty list
 * (the contract's `[]`). Caller frees with store_files_free(). */
enum kiln_err files_list(struct kiln_services *svc, const char *user, const char *sid,
                         struct store_file **out, size_t *n, struct errbuf *eb);

/* The record of one file; KILN_ERR_NOT_FOUND when it, or its session, is missing or invisible.
 * Caller clears *out. */
enum kiln_err files_get(struct kiln_services *svc, const char *user, const char *sid,
                        const char *fid, struct store_file *out, struct errbuf *eb);

/* An open file for download. */
struct files_download {
    struct store_file rec; /* its record: name, content_type, size, sha256 … */
    int fd;                /* read-only, for sendfile and Range; -1 when the blob backend has no
                              fds: read with files_read_at() then */
    long long size;        /* bytes of the blob */
};

/* Open a file for download (checks as files_get()). Release with files_download_close(). */
enum kiln_err files_open(struct kiln_services *svc, const char *user, const char *sid,
                         const char *fid, struct files_download *out, struct errbuf *eb);

/* Read up to len bytes at offset of an open download (any backend). */
enum kiln_err files_read_at(struct kiln_services *svc, const struct files_download *d,
                            long long offset, void *buf, size_t len, size_t *got,
                            struct errbuf *eb);

/* Close the fd and clear the record. */
void files_download_close(struct files_download *d);

/* Delete one file (record, then bytes). KILN_ERR_NOT_FOUND when already gone or invisible. */
enum kiln_err files_delete(struct kiln_services *svc, const char *user, const char *sid,
                           const char *fid, struct errbuf *eb);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of ms since the epoch (the contract's lastModified). */
void files_iso8601(long long ms, char out[32]);

#endif
