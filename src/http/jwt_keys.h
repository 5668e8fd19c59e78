/* The inside of a JWT keyset, shared by jwt.c (verification) and jwt_keys.c (loading) only;
 * nothing else includes this file. */
#ifndef KILN_HTTP_JWT_KEYS_H
#define KILN_HTTP_JWT_KEYS_H

#include <openssl/evp.h>

#include "http/jwt.h"

/* Longest `kid` kept or compared. */
#define JWT_MAX_KID 256

/* The key types kiln verifies with; each JWS alg row names the one it needs. */
enum jwt_kty { JWT_KTY_ED25519, JWT_KTY_RSA };

struct jwt_key {
    EVP_PKEY *pkey;
    enum jwt_kty kty;
    char *kid; /* NULL: matches any token kid */
};

struct jwt_keyset {
    struct jwt_key keys[JWT_MAX_KEYS];
    size_t count;
};

#endif
