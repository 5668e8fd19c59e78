/* Request authentication (see auth.h for the contract and api-contract.md "Authentication").
 *
 * Secrets are held only as SHA-256 digests and compared with CRYPTO_memcmp over the digests, so
 * neither the content nor the length of a stored key leaks through timing, and a core dump holds
 * no key. */
#include "http/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/cidr.h"
#include "http/faillimit.h"
#include "http/jwt.h"
#include "util/base64.h"
#include "util/xmalloc.h"

/* Longest credential looked at, whatever its form (a JWT is the longest legitimate one). */
#define AUTH_MAX_CRED_LEN JWT_MAX_TOKEN_LEN
/* Clients the failure limiter remembers; fixed so that many attacker addresses cannot grow it
 * (about 40 bytes each). */
#define AUTH_LIMIT_CAPACITY 4096
/* Hex digits of the SHA-256 prefix that names a key. */
#define AUTH_KEY_ID_HEX 16

#define AUTH_DIGEST_LEN 32

struct auth {
    bool enabled;
    unsigned char (*keys)[AUTH_DIGEST_LEN]; /* API_KEY and API_KEYS */
    size_t nkeys;
    bool have_master;
    unsigned char master[AUTH_DIGEST_LEN];
    struct jwt_keyset *jwt;   /* NULL when no JWT key is configured */
    struct jwt_policy policy; /* issuer and audience owned (copies of the config's) */
    struct cidr_set *trusted;
    struct faillimit *limit;
    auth_key_lookup_fn lookup;
    void *lookup_arg;
    auth_key_used_fn used;
    void *used_arg;
};

/* A presented secret: a borrowed span of a header, the body key or the Basic buffer. */
struct auth_span {
    const char *p;
    size_t len;
};

/* What one request presented, after parsing the headers. */
struct auth_creds {
    struct auth_span cand[2]; /* candidate keys: one, or Basic's user then password */
    size_t ncand;
    char *basic; /* decoded Basic credentials (owned, basic_cap bytes) */
    size_t basic_cap;
};

static void auth_sha256(const char *p, size_t len, unsigned char out[AUTH_DIGEST_LEN])
{
    unsigned int n = 0;

    if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1 || n != AUTH_DIGEST_LEN)
        abort(); /* SHA-256 cannot fail short of a broken libcrypto; never compare garbage */
}

static void auth_key_id(const unsigned char d[AUTH_DIGEST_LEN], char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < AUTH_KEY_ID_HEX / 2 && 2 * i + 2 < cap; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * i] = '\0';
}

static bool auth_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* s without surrounding blanks; len 0 for NULL. */
static struct auth_span auth_trim(const char *s)
{
    struct auth_span sp = {s, 0};

    if (s == NULL)
        return sp;
    while (auth_blank(*sp.p))
        sp.p++;
    sp.len = strnlen(sp.p, AUTH_MAX_CRED_LEN + 1);
    while (sp.len > 0 && auth_blank(sp.p[sp.len - 1]))
        sp.len--;
    return sp;
}

/* Add the digests of a comma-separated key list (blanks trimmed, empties skipped). */
static void auth_add_keys(struct auth *a, const char *list)
{
    const char *p = list;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && auth_blank(*p)) {
            p++;
            len--;
        }
        size_t l = len;
        while (l > 0 && auth_blank(p[l - 1]))
            l--;
        if (l > 0) {
            a->keys = xreallocarray(a->keys, a->nkeys + 1, sizeof *a->keys);
            auth_sha256(p, l, a->keys[a->nkeys++]);
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

/* Load the JWT keys the config names; a->jwt stays NULL when it names none. */
static enum kiln_err auth_load_jwt(struct auth *a, const struct kiln_config *cfg, struct errbuf *eb)
{
    enum kiln_err rc = KILN_OK;
    char why[sizeof eb->msg];
    const char *setting = NULL;

    if (cfg->jwt_public_key_file[0] == '\0' && cfg->jwt_public_keys_dir[0] == '\0' &&
        cfg->jwt_jwks_file[0] == '\0')
        return KILN_OK;
    if (cfg->jwt_issuer[0] == '\0' || cfg->jwt_audience[0] == '\0')
        return errbuf_set(eb, KILN_ERR_INVALID,
                          "JWT_ISSUER and JWT_AUDIENCE must be set when JWT keys are configured");
    a->jwt = jwt_keyset_new();
    if (cfg->jwt_public_key_file[0] != '\0') {
        setting = "JWT_PUBLIC_KEY_FILE";
        rc = jwt_keyset_add_pem_file(a->jwt, cfg->jwt_public_key_file, eb);
    }
    if (rc == KILN_OK && cfg->jwt_public_keys_dir[0] != '\0') {
        setting = "JWT_PUBLIC_KEYS_DIR";
        rc = jwt_keyset_add_pem_dir(a->jwt, cfg->jwt_public_keys_dir, eb);
    }
    if (rc == KILN_OK && cfg->jwt_jwks_file[0] != '\0') {
        setting = "JWT_JWKS_FILE";
        rc = jwt_keyset_add_jwks_file(a->jwt, cfg->jwt_jwks_file, eb);
    }
    if (rc != KILN_OK) {
        memcpy(why, eb->msg, sizeof why);
        why[sizeof why - 1] = '\0';
        return errbuf_set(eb, rc, "%s: %s", setting, why);
    }
    a->policy.issuer = xstrdup(cfg->jwt_issuer);
    a->policy.audience = xstrdup(cfg->jwt_audience);
    a->policy.leeway_s = (long)cfg->jwt_leeway_seconds;
    a->policy.max_lifetime_s = (long)cfg->jwt_max_lifetime_seconds;
    return KILN_OK;
}

enum kiln_err auth_new(struct auth **out, const struct kiln_config *cfg, struct errbuf *eb)
{
    struct auth *a = xcalloc(1, sizeof *a);
    enum kiln_err rc;
    char why[sizeof eb->msg];

    a->enabled = cfg->auth_enabled;
    auth_add_keys(a, cfg->api_key);
    auth_add_keys(a, cfg->api_keys);
    if (cfg->master_api_key[0] != '\0') {
        struct auth_span m = auth_trim(cfg->master_api_key);
        a->have_master = m.len > 0;
        auth_sha256(m.p, m.len, a->master);
    }
    rc = cidr_set_parse(&a->trusted, cfg->auth_trusted_networks, eb);
    if (rc != KILN_OK) {
        memcpy(why, eb->msg, sizeof why);
        why[sizeof why - 1] = '\0';
        errbuf_set(eb, rc, "AUTH_TRUSTED_NETWORKS: %s", why);
        goto out;
    }
    rc = auth_load_jwt(a, cfg, eb);
    if (rc != KILN_OK)
        goto out;
    a->limit = faillimit_new((unsigned)cfg->auth_max_failures,
                             (long)cfg->auth_failure_window_seconds, AUTH_LIMIT_CAPACITY);
out:
    if (rc != KILN_OK) {
        auth_free(a);
        return rc;
    }
    *out = a;
    return KILN_OK;
}

void auth_free(struct auth *a)
{
    if (a == NULL)
        return;
    OPENSSL_cleanse(a->master, sizeof a->master);
    free(a->keys);
    jwt_keyset_free(a->jwt);
    free((char *)a->policy.issuer);
    free((char *)a->policy.audience);
    cidr_set_free(a->trusted);
    faillimit_free(a->limit);
    free(a);
}

void auth_set_key_lookup(struct auth *a, auth_key_lookup_fn fn, void *arg)
{
    a->lookup = fn;
    a->lookup_arg = arg;
}

void auth_set_key_used(struct auth *a, auth_key_used_fn fn, void *arg)
{
    a->used = fn;
    a->used_arg = arg;
}

static long auth_mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec;
}

/* Parse the Authorization header into creds. Schemes: Bearer <key or JWT>, Basic
 * base64(user:pass) (user, then password, are candidates), and ApiKey <key> (what
 * KubeCodeRun's clients send). Returns KILN_ERR_UNAUTHORIZED for anything else. */
static enum kiln_err auth_parse_authorization(struct auth_span az, struct auth_creds *c,
                                              struct errbuf *eb)
{
    size_t sl = 0;
    struct auth_span v;
    size_t cap, n = 0;
    char *colon;

    while (sl < az.len && !auth_blank(az.p[sl]))
        sl++;
    v.p = az.p + sl;
    v.len = az.len - sl;
    while (v.len > 0 && auth_blank(*v.p)) {
        v.p++;
        v.len--;
    }
    if (v.len == 0)
        return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Malformed Authorization header");
    if ((sl == 6 && strncasecmp(az.p, "Bearer", 6) == 0) ||
        (sl == 6 && strncasecmp(az.p, "ApiKey", 6) == 0)) {
        c->cand[c->ncand++] = v;
        return KILN_OK;
    }
    if (!(sl == 5 && strncasecmp(az.p, "Basic", 5) == 0))
        return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Unsupported Authorization scheme");
    cap = base64_decoded_max(v.len) + 1;
    c->basic = xcalloc(1, cap);
    c->basic_cap = cap;
    if (!base64_decode(BASE64_STD, v.p, v.len, (unsigned char *)c->basic, cap - 1, &n) ||
        memchr(c->basic, '\0', n) != NULL)
        return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Malformed Authorization header");
    c->basic[n] = '\0';
    colon = strchr(c->basic, ':');
    if (colon == NULL)
        return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Malformed Authorization header");
    if (colon > c->basic)
        c->cand[c->ncand++] = (struct auth_span){c->basic, (size_t)(colon - c->basic)};
    if (colon[1] != '\0')
        c->cand[c->ncand++] = (struct auth_span){colon + 1, strlen(colon + 1)};
    if (c->ncand == 0)
        return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Malformed Authorization header");
    return KILN_OK;
}

static bool auth_span_eq(struct auth_span x, struct auth_span y)
{
    return x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
}

/* Gather the credentials of req into c in the contract's order: the API-key header, the
 * Authorization header, and only when neither is present the body key. Two headers are
 * accepted together only when they carry the same key (clients in transition send both). */
static enum kiln_err auth_gather(const struct auth_request *req, struct auth_creds *c,
                                 struct errbuf *eb)
{
    struct auth_span hk = auth_trim(req->api_key_header);
    struct auth_span az = auth_trim(req->authorization);
    struct auth_span bk = auth_trim(req->body_key);
    struct errbuf why;
    enum kiln_err rc;

    if (az.len > 0) {
        rc = auth_parse_authorization(az, c, &why);
        /* An Authorization header kiln cannot read (another scheme, say a proxy's Negotiate)
         * is no competing credential when the API-key header, which comes first, is present. */
        if (rc != KILN_OK && hk.len == 0)
            return errbuf_set(eb, rc, "%s", why.msg);
        if (rc != KILN_OK)
            c->ncand = 0;
    }
    if (hk.len > 0) {
        if (c->ncand > 0) {
            bool same = false;
            for (size_t i = 0; i < c->ncand; i++)
                same = same || auth_span_eq(hk, c->cand[i]);
            if (!same)
                return errbuf_set(eb, KILN_ERR_INVALID, "Ambiguous authentication headers");
        }
        c->cand[0] = hk;
        c->ncand = 1;
    }
    if (c->ncand == 0 && bk.len > 0)
        c->cand[c->ncand++] = bk;
    return KILN_OK;
}

static bool auth_is_static(const struct auth *a, const unsigned char d[AUTH_DIGEST_LEN])
{
    int found = 0;

    /* No early exit: the time taken does not say which key (or whether any) matched. */
    for (size_t i = 0; i < a->nkeys; i++)
        found |= CRYPTO_memcmp(d, a->keys[i], AUTH_DIGEST_LEN) == 0;
    return found != 0;
}

static bool auth_is_master(const struct auth *a, const unsigned char d[AUTH_DIGEST_LEN])
{
    return a->have_master && CRYPTO_memcmp(d, a->master, AUTH_DIGEST_LEN) == 0;
}

/* Verify one candidate against everything but the master key. KILN_OK fills res; any other
 * result carries its reason in eb (KILN_ERR_UNAUTHORIZED is a wrong credential). use: the
 * request goes on with it (a static key's use is reported), not only told 403 from 401. */
static enum kiln_err auth_verify_normal(struct auth *a, struct auth_span cand, bool use,
                                        struct auth_result *res, long *retry_after_s,
                                        struct errbuf *eb)
{
    unsigned char d[AUTH_DIGEST_LEN];
    char key_id[AUTH_KEY_ID_HEX + 1];
    enum kiln_err rc = KILN_ERR_UNAUTHORIZED;

    if (cand.len > AUTH_MAX_CRED_LEN)
        return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Invalid API key");
    auth_sha256(cand.p, cand.len, d);
    auth_key_id(d, key_id, sizeof key_id);
    if (auth_is_static(a, d)) {
        res->method = AUTH_KEY;
        memcpy(res->key_id, key_id, sizeof key_id);
        if (use && a->used != NULL)
            a->used(a->used_arg, d);
        rc = KILN_OK;
        goto out;
    }
    char *tok = xstrndup(cand.p, cand.len);
    bool jwt_cand = jwt_keyset_count(a->jwt) > 0 && jwt_is_candidate(tok);
    if (jwt_cand) {
        struct jwt_claims cl;
        rc = jwt_verify(a->jwt, &a->policy, tok, (long long)time(NULL), &cl, eb);
        if (rc == KILN_OK) {
            res->method = AUTH_JWT;
            memcpy(res->user_id, cl.sub, sizeof res->user_id);
        }
    }
    OPENSSL_clear_free(tok, cand.len + 1);
    if (jwt_cand)
        goto out;
    if (a->lookup != NULL) {
        if (eb != NULL)
            eb->msg[0] = '\0';
        rc = a->lookup(a->lookup_arg, d, key_id, retry_after_s, res, eb);
        if (rc == KILN_OK) {
            res->method = AUTH_KEY;
            memcpy(res->key_id, key_id, sizeof key_id);
            goto out;
        }
        if (rc != KILN_ERR_UNAUTHORIZED || (eb != NULL && eb->msg[0] != '\0'))
            goto out;
    }
    rc = errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Invalid API key");
out:
    OPENSSL_cleanse(d, sizeof d);
    return rc;
}

/* Admin routes: only MASTER_API_KEY. A credential that is valid but not the master is
 * forbidden rather than wrong (and not counted as a guess). */
static enum kiln_err auth_verify_admin(struct auth *a, const struct auth_creds *c,
                                       struct auth_result *res, long *retry_after_s,
                                       struct errbuf *eb)
{
    unsigned char d[AUTH_DIGEST_LEN];
    struct auth_result other;

    for (size_t i = 0; i < c->ncand; i++) {
        if (c->cand[i].len > AUTH_MAX_CRED_LEN)
            continue;
        auth_sha256(c->cand[i].p, c->cand[i].len, d);
        if (auth_is_master(a, d)) {
            res->method = AUTH_MASTER;
            auth_key_id(d, res->key_id, sizeof res->key_id);
            return KILN_OK;
        }
    }
    for (size_t i = 0; i < c->ncand; i++) {
        enum kiln_err rc;
        memset(&other, 0, sizeof other);
        rc = auth_verify_normal(a, c->cand[i], false, &other, retry_after_s, eb);
        if (rc == KILN_OK)
            return errbuf_set(eb, KILN_ERR_FORBIDDEN, "Admin routes require the master key");
        if (rc != KILN_ERR_UNAUTHORIZED)
            return rc; /* the managed-key store is down or rate-limits the key */
    }
    return errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Invalid API key");
}

enum kiln_err auth_check(struct auth *a, const struct auth_request *req, struct auth_result *res,
                         long *retry_after_s, struct errbuf *eb)
{
    struct auth_creds c = {0};
    struct auth_result r = {0};
    uint8_t addr[16] = {0};
    long retry = 0;
    enum kiln_err rc;

    if (!req->admin_route && !a->enabled) {
        r.method = AUTH_NONE;
        rc = KILN_OK;
        goto out;
    }
    if (req->admin_route && !a->have_master) {
        rc = errbuf_set(eb, KILN_ERR_FORBIDDEN, "Admin API is disabled (MASTER_API_KEY unset)");
        goto out;
    }
    /* Peers of another family (or none) share the all-zero key: they still get limited. */
    (void)cidr_addr_of(req->peer, addr);
    if (faillimit_blocked(a->limit, addr, auth_mono_now(), &retry)) {
        rc = errbuf_set(eb, KILN_ERR_RATE_LIMITED,
                        "Too many failed authentication attempts; retry in %ld s", retry);
        goto out;
    }
    rc = auth_gather(req, &c, eb);
    if (rc != KILN_OK)
        goto out;
    if (c.ncand == 0) {
        if (!req->admin_route && cidr_set_contains(a->trusted, req->peer)) {
            r.method = AUTH_TRUSTED;
            rc = KILN_OK;
        } else {
            rc = errbuf_set(eb, KILN_ERR_UNAUTHORIZED, "Missing API key");
        }
        goto out;
    }
    if (req->admin_route) {
        rc = auth_verify_admin(a, &c, &r, &retry, eb);
    } else {
        unsigned char d[AUTH_DIGEST_LEN];
        rc = KILN_ERR_UNAUTHORIZED;
        for (size_t i = 0; i < c.ncand && rc == KILN_ERR_UNAUTHORIZED; i++) {
            if (c.cand[i].len <= AUTH_MAX_CRED_LEN) {
                auth_sha256(c.cand[i].p, c.cand[i].len, d);
                if (auth_is_master(a, d)) {
                    r.method = AUTH_MASTER;
                    auth_key_id(d, r.key_id, sizeof r.key_id);
                    rc = KILN_OK;
                    break;
                }
            }
            memset(&r, 0, sizeof r);
            rc = auth_verify_normal(a, c.cand[i], true, &r, &retry, eb);
        }
        OPENSSL_cleanse(d, sizeof d);
    }
    if (rc == KILN_ERR_UNAUTHORIZED)
        (void)faillimit_fail(a->limit, addr, auth_mono_now(), NULL);
out:
    if (c.basic != NULL)
        OPENSSL_clear_free(c.basic, c.basic_cap);
    if (rc == KILN_OK || rc == KILN_ERR_RATE_LIMITED)
        *res = r;
    if (rc == KILN_ERR_RATE_LIMITED && retry_after_s != NULL)
        *retry_after_s = retry > 0 ? retry : 1;
    return rc;
}
