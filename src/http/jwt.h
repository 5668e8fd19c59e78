/* Verification of LibreChat-minted JWTs (RFC 7519, JWS compact form, RFC 7515): EdDSA over
 * Ed25519 and RS256 only, with public keys from PEM files, a directory of PEMs or a JWKS file,
 * and the claims kiln requires (iss, aud, exp, nbf, iat, lifetime, sub).
 *
 * What it refuses and why: alg "none" and every HS* (a verifier holding only public keys must
 * never treat one as an HMAC secret, the classic algorithm-confusion forgery), any alg whose key
 * type differs from the key's, "crit" extensions, keys offered by the token itself (jwk, jku,
 * x5u, x5c are ignored), non-canonical base64url, duplicate JSON members and tokens longer than
 * JWT_MAX_TOKEN_LEN. Claims are parsed only after the signature verifies, so unauthenticated
 * input reaches only the header parser.
 *
 * Thread safety: a keyset is built at start-up and read-only afterwards; jwt_verify() may run
 * on any number of threads at once (OpenSSL 3 EVP_PKEYs are safe for concurrent verification). */
#ifndef KILN_HTTP_JWT_H
#define KILN_HTTP_JWT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Longest accepted token (LibreChat's are well under 2 KiB; bounded so that the header parser
 * and the decoders see a bounded input). */
#define JWT_MAX_TOKEN_LEN 8192
/* Most keys one keyset holds (each verification tries at most this many). */
#define JWT_MAX_KEYS 64
/* Longest key file read (PEM or JWKS). */
#define JWT_MAX_KEY_FILE (1024 * 1024)
/* Accepted RSA modulus sizes in bits. */
#define JWT_RSA_MIN_BITS 2048
#define JWT_RSA_MAX_BITS 16384

struct jwt_keyset;

/* An empty keyset. Caller frees with jwt_keyset_free(). */
struct jwt_keyset *jwt_keyset_new(void);

/* Free ks and its keys; NULL is a no-op. */
void jwt_keyset_free(struct jwt_keyset *ks);

/* Number of keys in ks (0 for NULL). */
size_t jwt_keyset_count(const struct jwt_keyset *ks);

/* Add the first PUBLIC KEY block of a PEM text of len bytes (Ed25519, or RSA of
 * JWT_RSA_MIN_BITS..JWT_RSA_MAX_BITS). kid (may be NULL: matches any token kid) is copied. */
enum kiln_err jwt_keyset_add_pem(struct jwt_keyset *ks, const char *pem, size_t len,
                                 const char *kid, struct errbuf *eb);

/* Add the key of a PEM file (no kid). eb names the file. */
enum kiln_err jwt_keyset_add_pem_file(struct jwt_keyset *ks, const char *path, struct errbuf *eb);

/* Add every regular *.pem file of dir (no kid); a directory with none is an error. */
enum kiln_err jwt_keyset_add_pem_dir(struct jwt_keyset *ks, const char *dir, struct errbuf *eb);

/* Add the keys of a JWKS text ({"keys":[...]}): kty OKP/crv Ed25519 with `x`, and kty RSA with
 * `n`/`e`; `kid` kept when present; keys with `use` other than "sig", an `alg` other than the
 * one their type signs with, or another kty are skipped; private members (`d`...) are an
 * error; no usable key is an error. */
enum kiln_err jwt_keyset_add_jwks(struct jwt_keyset *ks, const char *json, size_t len,
                                  struct errbuf *eb);

/* jwt_keyset_add_jwks() on the contents of a file. eb names the file. */
enum kiln_err jwt_keyset_add_jwks_file(struct jwt_keyset *ks, const char *path, struct errbuf *eb);

/* What a token must satisfy. Strings are borrowed; both must be non-empty. */
struct jwt_policy {
    const char *issuer;   /* required `iss` */
    const char *audience; /* required in `aud` (a string or an array of strings) */
    long leeway_s;        /* clock skew allowed on exp, nbf and iat */
    long max_lifetime_s;  /* largest exp - iat */
};

/* The claims of a verified token that kiln uses. */
struct jwt_claims {
    char sub[128];           /* the user id; printable, never empty */
    long long iat, exp, nbf; /* nbf is 0 when absent */
};

/* True when token looks like a compact JWS (exactly two dots), i.e. should be verified as a
 * JWT rather than compared as a static key. */
bool jwt_is_candidate(const char *token);

/* Verify token against ks and p at Unix time now. KILN_OK fills *out; otherwise
 * KILN_ERR_UNAUTHORIZED with a short reason in eb ("Malformed token", "Unsupported token
 * algorithm", "Invalid token signature", "Token expired", ...) that never quotes the token. */
enum kiln_err jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *p, const char *token,
                         long long now, struct jwt_claims *out, struct errbuf *eb);

/* The claim checks of jwt_verify() alone, on a payload JSON text of len bytes (exposed for
 * tests and the fuzzer; never call it on an unverified payload to authenticate anyone). */
enum kiln_err jwt_check_claims(const struct jwt_policy *p, const char *json, size_t len,
                               long long now, struct jwt_claims *out, struct errbuf *eb);

#endif
