/* Sessions: the groups of files of one conversation, owned by the user that made them.
 *
 * Isolation rule: a session records the user id of the request that created it (the JWT `sub`,
 * or the `user_id` the caller named; "" when none). A caller naming user U sees and uses only
 * sessions whose owner is U or "" — a session of another user is answered exactly like a
 * session that does not exist (NOT_FOUND, an empty list), so nothing about it leaks, except
 * where the contract says 403 (a file ref into another user's session, core/exec_service.h). A
 * caller naming no user ("" — a shared API key without user context) is unscoped and sees every
 * session: with static keys the user id is self-asserted anyway; the API layer passes the JWT's
 * `sub` whenever there is one, which makes the rule binding.
 *
 * Lifetime: created with expires = now + SESSION_TTL_HOURS (0 = never), moved forward on every
 * use; the sweeper removes expired sessions, their records and then their bytes.
 *
 * Thread safety: every function may be called from any thread. */
#ifndef KILN_CORE_SESSIONS_H
#define KILN_CORE_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/services.h"

/* Longest entity_id (the contract's 40 characters of [A-Za-z0-9_-]). */
#define SESSIONS_MAX_ENTITY 40

/* KILN_OK when entity_id is NULL, "" or 1..40 characters of [A-Za-z0-9_-]; else
 * KILN_ERR_INVALID with a message for the `entity_id` field. */
enum kiln_err sessions_validate_entity(const char *entity_id, struct errbuf *eb);

/* True when a caller naming user (NULL or "" = unscoped) may see and use s. */
bool sessions_visible(const struct store_session *s, const char *user);

/* Create a session for user and entity (either may be NULL/""), enforcing
 * MAX_SESSIONS_PER_ENTITY by removing the entity's least recently active sessions (records and
 * bytes). *out receives it (caller clears with store_session_clear()). */
enum kiln_err sessions_create(struct kiln_services *svc, const char *user, const char *entity,
                              struct store_session *out, struct errbuf *eb);

/* sessions_create() in two steps, for a caller that needs the id before the row: prepare fills
 * *out (zeroed by the caller; clears with store_session_clear()) with a fresh id and the
 * fields, checking user and entity, without touching the store; insert then stores it
 * (KILN_ERR_CONFLICT if the id is taken, practically never), with MAX_SESSIONS_PER_ENTITY's
 * eviction. */
enum kiln_err sessions_prepare(struct kiln_services *svc, const char *user, const char *entity,
                               struct store_session *out, struct errbuf *eb);
enum kiln_err sessions_insert(struct kiln_services *svc, const struct store_session *s,
                              struct errbuf *eb);

/* The session sid if it exists and user may see it, else KILN_ERR_NOT_FOUND (also for a
 * malformed id). Caller clears *out. */
enum kiln_err sessions_get(struct kiln_services *svc, const char *user, const char *sid,
                           struct store_session *out, struct errbuf *eb);

/* Record a use of sid now (moves its expiry). */
enum kiln_err sessions_touch(struct kiln_services *svc, const char *sid, struct errbuf *eb);

/* The session an execution uses, by the contract's rules, first match wins: explicit_sid if it
 * exists and is visible to user → the first of ref_sids (nrefs ids from the request's file refs)
 * that exists and is visible → a new session for user and entity. *created says which; a new
 * one is stored unless !insert, when it is only prepared (sessions_prepare()) and the caller
 * stores it with sessions_insert() before anything refers to it. Caller clears *out. */
enum kiln_err sessions_choose(struct kiln_services *svc, const char *user, const char *entity,
                              const char *explicit_sid, const char *const *ref_sids, size_t nrefs,
                              bool insert, struct store_session *out, bool *created,
                              struct errbuf *eb);

/* Delete a session: its records first, then its bytes (a crash in between leaves only
 * unreferenced bytes, removed by sessions_recover()). KILN_ERR_NOT_FOUND when gone. */
enum kiln_err sessions_delete(struct kiln_services *svc, const char *sid, struct errbuf *eb);

/* Remove every session whose expiry has passed (and expired kv entries). *removed (may be
 * NULL) gets the number of sessions removed. */
enum kiln_err sessions_sweep(struct kiln_services *svc, long long *removed, struct errbuf *eb);

/* What the start-up recovery removed. */
struct sessions_recovery {
    long long temp_files;      /* blob temporaries of interrupted writes */
    long long pending_records; /* file records reserved but never completed */
    long long orphan_blobs;    /* committed bytes no record references */
};

/* Start-up recovery, before any request is served: temporaries, pending records (and their
 * bytes), then bytes no record references (an output stored just before a crash, a deletion
 * interrupted between records and bytes). */
enum kiln_err sessions_recover(struct kiln_services *svc, struct sessions_recovery *out,
                               struct errbuf *eb);

/* Start a thread that runs sessions_sweep() every SESSION_CLEANUP_INTERVAL_MINUTES (when
 * SESSION_TTL_HOURS > 0). Stop and free with sessions_sweeper_stop(). */
enum kiln_err sessions_sweeper_start(struct kiln_services *svc, struct sessions_sweeper **out,
                                     struct errbuf *eb);

/* Stop the thread and free sw. NULL is a no-op. */
void sessions_sweeper_stop(struct sessions_sweeper *sw);

#endif
