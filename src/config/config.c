#include "config/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xmalloc.h"

static const struct cfg_setting cfg_table[] = {
#define CFG_ROW(NAME, field, TYPE, def, mn, mx, fl, sec, al, dc)                                   \
    {#NAME, CFG_##TYPE, offsetof(struct kiln_config, field), def, mn, mx, fl, sec, al, dc},
    KILN_SETTINGS(CFG_ROW)
#undef CFG_ROW
};

#define CFG_COUNT (sizeof cfg_table / sizeof cfg_table[0])

/* Longest line of a .env file we accept; longer lines are an error, not silently cut. */
#define CFG_DOTENV_LINE_MAX 8192

const struct cfg_setting *config_settings(size_t *count)
{
    *count = CFG_COUNT;
    return cfg_table;
}

/* Whether the space-separated list `aliases` contains `name`. */
static bool cfg_alias_has(const char *aliases, const char *name)
{
    size_t n = strlen(name);
    const char *p = aliases;

    while (*p) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

const struct cfg_setting *config_find(const char *name)
{
    for (size_t i = 0; i < CFG_COUNT; i++)
        if (strcmp(cfg_table[i].name, name) == 0)
            return &cfg_table[i];
    for (size_t i = 0; i < CFG_COUNT; i++)
        if (cfg_alias_has(cfg_table[i].aliases, name))
            return &cfg_table[i];
    return NULL;
}

/* Parse a decimal integer that must span the whole string. */
static bool cfg_parse_ll(const char *s, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
}

static bool cfg_parse_double(const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && end != s && *end == '\0' && isfinite(*out);
}

/* A Kubernetes-style quantity in MiB: "512" (MiB), "128Mi", "1Gi", "512M", "1G", "1Ti", or a
 * plain byte count with suffix "b"/"B"? No: a bare number is MiB, as MAX_MEMORY_MB has always
 * been. Fractions are allowed ("1.5Gi") and rounded down to whole MiB. */
static bool cfg_parse_quantity_mb(const char *s, long long *out)
{
    static const struct {
        const char *suffix;
        double mib;
    } units[] = {
        {"Ki", 1.0 / 1024},
        {"Mi", 1},
        {"Gi", 1024},
        {"Ti", 1024.0 * 1024},
        {"k", 1000.0 / 1048576},
        {"K", 1000.0 / 1048576},
        {"M", 1e6 / 1048576},
        {"G", 1e9 / 1048576},
        {"T", 1e12 / 1048576},
    };
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(v) || v < 0)
        return false;
    if (*end != '\0') {
        size_t i;
        for (i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(end, units[i].suffix) == 0)
                break;
        if (i == sizeof units / sizeof units[0])
            return false;
        v *= units[i].mib;
    }
    if (v > 9e15)
        return false;
    *out = (long long)v;
    return true;
}

static bool cfg_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Whether value is one of the choices "{a|b|c}" at the start of doc (case-insensitive). */
static bool cfg_enum_has(const char *doc, const char *value)
{
    const char *p = doc + 1, *close = strchr(doc, '}');
    size_t n = strlen(value);

    if (doc[0] != '{' || close == NULL)
        return false;
    while (p < close) {
        size_t len = strcspn(p, "|}");
        if (len == n && strncasecmp(p, value, n) == 0)
            return true;
        p += len + 1;
    }
    return false;
}

/* The display form of a value in messages: secrets are never echoed. */
static const char *cfg_shown(const struct cfg_setting *s, const char *value)
{
    return (s->flags & CFG_F_SECRET) ? "<hidden>" : value;
}

/* Parse value for setting s (found under the name `via`) into cfg. */
static enum kiln_err cfg_set(struct kiln_config *cfg, const struct cfg_setting *s, const char *via,
                             const char *value, struct errbuf *eb)
{
    char *base = (char *)cfg + s->offset;
    long long ll;
    double d;

    switch (s->type) {
    case CFG_BOOL:
        if (!cfg_parse_bool(value, (bool *)base))
            return errbuf_set(
                eb, KILN_ERR_INVALID,
                "%s=%s is not a boolean (allowed: true, false, 1, 0, yes, no, on, off)", via,
                cfg_shown(s, value));
        return KILN_OK;
    case CFG_INT: {
        bool ok;
        if (s->flags & CFG_F_QUANTITY_MB) {
            ok = cfg_parse_quantity_mb(value, &ll);
        } else if ((s->flags & CFG_F_SECONDS) && cfg_parse_double(value, &d)) {
            ok = d >= -9e15 && d <= 9e15 && d == floor(d);
            ll = (long long)d;
        } else {
            ok = cfg_parse_ll(value, &ll);
        }
        if (!ok)
            return errbuf_set(eb, KILN_ERR_INVALID, "%s=%s is not %s", via, cfg_shown(s, value),
                              (s->flags & CFG_F_QUANTITY_MB)
                                  ? "a memory size (MiB, or a quantity such as 128Mi, 1Gi)"
                                  : "a whole number");
        if ((double)ll < s->min || (double)ll > s->max)
            return errbuf_set(eb, KILN_ERR_INVALID, "%s=%s is out of range (allowed: %.0f to %.0f)",
                              via, cfg_shown(s, value), s->min, s->max);
        *(long long *)base = ll;
        return KILN_OK;
    }
    case CFG_DOUBLE:
        if (!cfg_parse_double(value, &d))
            return errbuf_set(eb, KILN_ERR_INVALID, "%s=%s is not a number", via,
                              cfg_shown(s, value));
        if (d < s->min || d > s->max)
            return errbuf_set(eb, KILN_ERR_INVALID, "%s=%s is out of range (allowed: %g to %g)",
                              via, cfg_shown(s, value), s->min, s->max);
        *(double *)base = d;
        return KILN_OK;
    case CFG_ENUM:
        if (!cfg_enum_has(s->doc, value)) {
            size_t n = strcspn(s->doc + 1, "}");
            return errbuf_set(eb, KILN_ERR_INVALID, "%s=%s is not allowed (allowed: %.*s)", via,
                              value, (int)n, s->doc + 1);
        }
        /* fallthrough */
    case CFG_STR:
    case CFG_LIST:
    case CFG_SECRET:
        free(*(char **)base);
        *(char **)base = xstrdup(value);
        return KILN_OK;
    }
    return errbuf_set(eb, KILN_ERR_INTERNAL, "%s: unknown setting type", via);
}

/* Strip spaces at both ends of s in place; returns the start. */
static char *cfg_trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* Apply one `KEY=VALUE` source value, resolving aliases. Unknown keys are ignored (a .env may
 * hold variables of other programs). */
static enum kiln_err cfg_apply(struct kiln_config *cfg, const char *key, const char *value,
                               struct errbuf *eb)
{
    const struct cfg_setting *s = config_find(key);

    if (s == NULL)
        return KILN_OK;
    return cfg_set(cfg, s, key, value, eb);
}

/* Read a .env file: KEY=VALUE lines, `#` comments, optional `export `, optional single or double
 * quotes around the value. A missing file is not an error. */
static enum kiln_err cfg_load_dotenv(struct kiln_config *cfg, const char *path,
                                     config_lookup_fn lookup, void *arg, struct errbuf *eb)
{
    char line[CFG_DOTENV_LINE_MAX];
    enum kiln_err rc = KILN_OK;
    unsigned lineno = 0;
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return errno == ENOENT ? KILN_OK
                               : errbuf_set(eb, KILN_ERR_IO, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f) != NULL) {
        char *key, *value, *eq;
        size_t vlen;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "%s:%u: line longer than %d bytes", path, lineno,
                            CFG_DOTENV_LINE_MAX);
            goto out;
        }
        key = cfg_trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        if (strncmp(key, "export ", 7) == 0)
            key = cfg_trim(key + 7);
        eq = strchr(key, '=');
        if (eq == NULL) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "%s:%u: expected KEY=VALUE", path, lineno);
            goto out;
        }
        *eq = '\0';
        key = cfg_trim(key);
        value = cfg_trim(eq + 1);
        vlen = strlen(value);
        if (vlen >= 2 && (value[0] == '"' || value[0] == '\'') && value[vlen - 1] == value[0]) {
            value[vlen - 1] = '\0';
            value++;
        } else {
            /* an unquoted value ends at an inline comment */
            char *hash = strstr(value, " #");
            if (hash != NULL) {
                *hash = '\0';
                value = cfg_trim(value);
            }
        }
        /* the environment wins: a key it also sets is not even parsed here */
        rc = lookup(key, arg) != NULL ? KILN_OK : cfg_apply(cfg, key, value, eb);
        if (rc)
            goto out;
    }
out:
    fclose(f);
    return rc;
}

static const char *cfg_getenv(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

/* Apply every variable the lookup knows: the primary name wins over its aliases. */
static enum kiln_err cfg_load_lookup(struct kiln_config *cfg, config_lookup_fn lookup, void *arg,
                                     struct errbuf *eb)
{
    enum kiln_err rc;

    for (size_t i = 0; i < CFG_COUNT; i++) {
        const struct cfg_setting *s = &cfg_table[i];
        const char *v = lookup(s->name, arg);

        if (v != NULL) {
            rc = cfg_set(cfg, s, s->name, v, eb);
            if (rc)
                return rc;
            continue;
        }
        for (const char *p = s->aliases; *p;) {
            size_t len = strcspn(p, " ");
            char alias[128];

            if (len > 0 && len < sizeof alias) {
                memcpy(alias, p, len);
                alias[len] = '\0';
                v = lookup(alias, arg);
                if (v != NULL) {
                    rc = cfg_set(cfg, s, alias, v, eb);
                    if (rc)
                        return rc;
                    break;
                }
            }
            p += len;
            p += strspn(p, " ");
        }
    }
    return KILN_OK;
}

enum kiln_err config_load(struct kiln_config **out, const char *dotenv_path,
                          config_lookup_fn lookup, void *lookup_arg, struct errbuf *eb)
{
    struct kiln_config *cfg = xcalloc(1, sizeof *cfg);
    enum kiln_err rc = KILN_OK;

    for (size_t i = 0; i < CFG_COUNT; i++) {
        const struct cfg_setting *s = &cfg_table[i];
        if (s->type == CFG_STR || s->type == CFG_LIST || s->type == CFG_SECRET ||
            s->type == CFG_ENUM)
            *(char **)((char *)cfg + s->offset) = xstrdup("");
        if (s->def[0] != '\0') {
            rc = cfg_set(cfg, s, s->name, s->def, eb);
            if (rc)
                goto out;
        }
    }
    if (lookup == NULL)
        lookup = cfg_getenv;
    if (dotenv_path != NULL) {
        rc = cfg_load_dotenv(cfg, dotenv_path, lookup, lookup_arg, eb);
        if (rc)
            goto out;
    }
    rc = cfg_load_lookup(cfg, lookup, lookup_arg, eb);
out:
    if (rc) {
        config_free(cfg);
        return rc;
    }
    *out = cfg;
    return KILN_OK;
}

void config_free(struct kiln_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const struct cfg_setting *s = &cfg_table[i];
        if (s->type == CFG_STR || s->type == CFG_LIST || s->type == CFG_SECRET ||
            s->type == CFG_ENUM)
            free(*(char **)((char *)cfg + s->offset));
    }
    free(cfg);
}
