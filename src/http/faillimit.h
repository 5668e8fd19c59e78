/* A limiter of failed authentications per client address (AUTH_MAX_FAILURES per
 * AUTH_FAILURE_WINDOW_SECONDS), with memory fixed at creation.
 *
 * Clients are keyed by IPv4 address, or by /64 prefix for IPv6 (one host usually owns a whole
 * /64, so counting single v6 addresses would give it 2^64 fresh budgets). The table is
 * set-associative with a per-process secret hash, so an attacker cannot aim addresses at one
 * set; when a set is full the least valuable entry is evicted (expired, then fewest failures,
 * then oldest), so flooding with fresh addresses cannot grow memory and tends to evict the
 * flooder's own one-failure entries before a blocked one.
 *
 * Semantics: failures within one window are counted from the first; reaching max_failures
 * blocks the client for window seconds from that failure. Success does not reset the count
 * (that would let a holder of one valid key interleave guesses of others).
 *
 * Thread safety: every call may come from any thread (one internal mutex). Times are seconds on
 * a clock that does not jump (the caller passes CLOCK_MONOTONIC seconds). */
#ifndef KILN_HTTP_FAILLIMIT_H
#define KILN_HTTP_FAILLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct faillimit;

/* A limiter of max_failures per window_s seconds holding at most capacity clients (rounded up
 * to a whole number of sets). Caller frees with faillimit_free(). */
struct faillimit *faillimit_new(unsigned max_failures, long window_s, size_t capacity);

/* Free l; NULL is a no-op. */
void faillimit_free(struct faillimit *l);

/* True when the client addr (16-byte IPv6 form, see cidr_addr_of()) is blocked at time now;
 * then *retry_after_s (may be NULL) is the whole seconds until it may try again, at least 1. */
bool faillimit_blocked(struct faillimit *l, const uint8_t addr[16], long now, long *retry_after_s);

/* Count one failure of addr at time now. Returns true when this failure blocks the client (and
 * sets *retry_after_s like faillimit_blocked()). */
bool faillimit_fail(struct faillimit *l, const uint8_t addr[16], long now, long *retry_after_s);

/* The fixed number of client entries l can hold. */
size_t faillimit_capacity(const struct faillimit *l);

/* The number of entries in use (for tests and metrics). */
size_t faillimit_used(struct faillimit *l);

#endif
