#include "config/config.h"
#include "config/dotenv.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"
#include "util/xmalloc.h"

static const struct cfg_setting cfg_table[] = {
#define CFG_ROW(NAME, field, TYPE, def, mn, mx, fl, sec, al, dc)                                   \
    {#NAME, CFG_##TYPE, offsetof(struct kiln_config, field), def, mn, mx, fl, sec, al, dc},
    KILN_SETTINGS(CFG_ROW)
#undef CFG_ROW
};

#define CFG_COUNT (sizeof cfg_table / sizeof cfg_table[0])

const struct cfg_setting *config_settings(size_t *count)
{
    *count = CFG_COUNT;
    return cfg_table;
}

/* Parse the alias token starting at p (already past separating spaces) into out; returns the
 * length of the token. Syntax: NAME, NAME{from=to,from=to}, NAME*num/den, NAME{..}*num/den. */
static size_t cfg_alias_parse(const char *p, struct cfg_alias *out)
{
    size_t len = strcspn(p, " "), nlen = strcspn(p, "{* ");
    const char *q = p + nlen, *end = p + len;

    if (nlen >= sizeof out->name)
        nlen = sizeof out->name - 1;
    memcpy(out->name, p, nlen);
    out->name[nlen] = '\0';
    out->map = NULL;
    out->map_len = 0;
    out->mul_num = out->mul_den = 1;
    if (q < end && *q == '{') {
        const char *close = memchr(q, '}', (size_t)(end - q));
        if (close != NULL) {
            out->map = q + 1;
            out->map_len = (size_t)(close - q - 1);
            q = close + 1;
        }
    }
    if (q < end && *q == '*') {
        char *e;
        out->mul_num = strtod(q + 1, &e);
        if (e < end && *e == '/')
            out->mul_den = strtod(e + 1, NULL);
        if (out->mul_den == 0)
            out->mul_den = 1;
    }
    return len;
}

bool config_alias_next(const struct cfg_setting *s, size_t *pos, struct cfg_alias *out)
{
    const char *p = s->aliases + *pos;

    p += strspn(p, " ");
    if (*p == '\0')
        return false;
    p += cfg_alias_parse(p, out);
    *pos = (size_t)(p - s->aliases);
    return true;
}

/* Whether s has an alias called name. */
static bool cfg_alias_has(const struct cfg_setting *s, const char *name)
{
    struct cfg_alias a;
    size_t pos = 0;

    while (config_alias_next(s, &pos, &a))
        if (strcmp(a.name, name) == 0)
            return true;
    return false;
}

const struct cfg_setting *config_find(const char *name)
{
    for (size_t i = 0; i < CFG_COUNT; i++)
        if (strcmp(cfg_table[i].name, name) == 0)
            return &cfg_table[i];
    for (size_t i = 0; i < CFG_COUNT; i++)
        if (cfg_alias_has(&cfg_table[i], name))
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

/* The choice of doc's "{a|b|c}" equal to value (case-insensitive), as spelled in the table, into
 * buf; NULL when value is not a choice. */
static const char *cfg_enum_match(const char *doc, const char *value, char *buf, size_t size)
{
    const char *p = doc + 1, *close = strchr(doc, '}');
    size_t n = strlen(value);

    if (doc[0] != '{' || close == NULL)
        return NULL;
    while (p < close) {
        size_t len = strcspn(p, "|}");
        if (len == n && strncasecmp(p, value, n) == 0 && len < size) {
            memcpy(buf, p, len);
            buf[len] = '\0';
            return buf;
        }
        p += len + 1;
    }
    return NULL;
}

/* The display form of a value in messages: secrets are never echoed. */
static const char *cfg_shown(const struct cfg_setting *s, const char *value)
{
    return (s->flags & CFG_F_SECRET) ? "<hidden>" : value;
}

const char *config_allowed(const struct cfg_setting *s, char *buf, size_t size)
{
    switch (s->type) {
    case CFG_BOOL:
        snprintf(buf, size, "true or false (also 1/0, yes/no, on/off)");
        break;
    case CFG_INT:
        if (s->flags & CFG_F_QUANTITY_MB)
            snprintf(buf, size, "%.0f to %.0f MiB, or a quantity such as 128Mi, 1Gi", s->min,
                     s->max);
        else
            snprintf(buf, size, "%.0f to %.0f", s->min, s->max);
        break;
    case CFG_DOUBLE:
        snprintf(buf, size, "%g to %g", s->min, s->max);
        break;
    case CFG_ENUM:
        snprintf(buf, size, "%.*s", (int)strcspn(s->doc + 1, "}"), s->doc + 1);
        break;
    case CFG_LIST:
        snprintf(buf, size, "comma-separated list");
        break;
    case CFG_STR:
    case CFG_SECRET:
        snprintf(buf, size, "any text");
        break;
    }
    return buf;
}

/* Parse value for setting s (given under the name `via`, shown as `shown` in messages) into cfg.
 * `prefix` is prepended to the allowed-values part of a message (for aliases with a value map). */
static enum kiln_err cfg_set(struct kiln_config *cfg, const struct cfg_setting *s, const char *via,
                             const char *shown, const char *prefix, const char *value,
                             struct errbuf *eb)
{
    char *base = (char *)cfg + s->offset;
    char allowed[160], choice[64];
    const char *what = NULL;
    long long ll;
    double d;

    switch (s->type) {
    case CFG_BOOL:
        if (cfg_parse_bool(value, (bool *)base))
            return KILN_OK;
        what = "not a boolean";
        break;
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
        if (!ok) {
            what = (s->flags & CFG_F_QUANTITY_MB) ? "not a memory size" : "not a whole number";
            break;
        }
        if ((double)ll < s->min || (double)ll > s->max) {
            what = "out of range";
            break;
        }
        *(long long *)base = ll;
        return KILN_OK;
    }
    case CFG_DOUBLE:
        if (!cfg_parse_double(value, &d)) {
            what = "not a number";
            break;
        }
        if (d < s->min || d > s->max) {
            what = "out of range";
            break;
        }
        *(double *)base = d;
        return KILN_OK;
    case CFG_ENUM:
        if (cfg_enum_match(s->doc, value, choice, sizeof choice) == NULL) {
            what = "not allowed";
            break;
        }
        value = choice;
        /* fallthrough */
    case CFG_STR:
    case CFG_LIST:
    case CFG_SECRET:
        free(*(char **)base);
        *(char **)base = xstrdup(value);
        return KILN_OK;
    }
    if (what == NULL)
        return errbuf_set(eb, KILN_ERR_INTERNAL, "%s: unknown setting type", via);
    return errbuf_set(eb, KILN_ERR_INVALID, "%s=%s is %s (allowed: %s%s)", via, cfg_shown(s, shown),
                      what, prefix, config_allowed(s, allowed, sizeof allowed));
}

/* Set s from value found under alias a: apply a's value map, then its unit conversion. */
static enum kiln_err cfg_set_alias(struct kiln_config *cfg, const struct cfg_setting *s,
                                   const struct cfg_alias *a, const char *value, struct errbuf *eb)
{
    char mapped[256], prefix[256] = "", num[64];
    const char *v = value;

    if (a->map != NULL) {
        const char *p = a->map, *end = a->map + a->map_len;
        size_t plen = 0;

        while (p < end) {
            size_t len = strcspn(p, ",}"), klen;
            const char *eq = memchr(p, '=', len);

            if (len > (size_t)(end - p))
                len = (size_t)(end - p);
            if (eq != NULL) {
                klen = (size_t)(eq - p);
                if (plen < sizeof prefix)
                    plen += (size_t)snprintf(prefix + plen, sizeof prefix - plen, "%.*s, ",
                                             (int)klen, p);
                if (klen == strlen(value) && strncasecmp(p, value, klen) == 0) {
                    snprintf(mapped, sizeof mapped, "%.*s", (int)(len - klen - 1), eq + 1);
                    v = mapped;
                }
            }
            p += len + 1;
        }
        if (plen < sizeof prefix)
            snprintf(prefix + plen, sizeof prefix - plen, "or what %s accepts: ", s->name);
    }
    if (a->mul_num != 1 || a->mul_den != 1) {
        double d;
        if (!cfg_parse_double(v, &d))
            return errbuf_set(eb, KILN_ERR_INVALID, "%s=%s is not a number (it sets %s, %s)",
                              a->name, cfg_shown(s, value), s->name, "scaled by the alias");
        d = d * a->mul_num / a->mul_den;
        if (s->type == CFG_INT) /* round up: a positive duration never becomes 0 ("never") */
            snprintf(num, sizeof num, "%.0f", ceil(d - 1e-9));
        else
            snprintf(num, sizeof num, "%.17g", d);
        v = num;
    }
    return cfg_set(cfg, s, a->name, value, prefix, v, eb);
}

static const char *cfg_getenv(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

/* Find the value of s: from `lookup` under its primary name, then under each alias. Sets *alias
 * (and returns its value) when found through an alias; *primary when under the primary name. */
static const char *cfg_find_value(const struct cfg_setting *s, config_lookup_fn lookup, void *arg,
                                  struct cfg_alias *alias, bool *primary)
{
    const char *v = lookup(s->name, arg);
    size_t pos = 0;

    *primary = v != NULL;
    if (v != NULL)
        return v;
    while (config_alias_next(s, &pos, alias)) {
        v = lookup(alias->name, arg);
        if (v != NULL)
            return v;
    }
    return NULL;
}

/* The common loader. With problems == NULL it stops at the first error (config_load); otherwise
 * it records every problem and carries on (config_load_all). */
static enum kiln_err cfg_load(struct kiln_config **out, const char *dotenv_path,
                              config_lookup_fn lookup, void *lookup_arg,
                              struct cfg_findings *problems, struct errbuf *eb)
{
    struct kiln_config *cfg = xcalloc(1, sizeof *cfg);
    struct config_dotenv dotenv = {0};
    enum kiln_err rc = KILN_OK;

    for (size_t i = 0; i < CFG_COUNT; i++) {
        const struct cfg_setting *s = &cfg_table[i];
        if (s->type == CFG_STR || s->type == CFG_LIST || s->type == CFG_SECRET ||
            s->type == CFG_ENUM)
            *(char **)((char *)cfg + s->offset) = xstrdup("");
        if (s->def[0] != '\0') {
            rc = cfg_set(cfg, s, s->name, s->def, "", s->def, eb);
            if (rc)
                goto out; /* a bad default is a bug in settings.h; the unit tests catch it */
        }
    }
    if (lookup == NULL)
        lookup = cfg_getenv;
    if (dotenv_path != NULL) {
        rc = config_dotenv_read(&dotenv, dotenv_path, problems, eb);
        if (rc)
            goto out;
    }
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const struct cfg_setting *s = &cfg_table[i];
        struct cfg_alias alias;
        enum cfg_source src = CFG_SRC_ENV;
        bool primary;
        const char *v = cfg_find_value(s, lookup, lookup_arg, &alias, &primary);

        if (v == NULL) {
            src = CFG_SRC_DOTENV;
            v = cfg_find_value(s, config_dotenv_get, &dotenv, &alias, &primary);
        }
        if (v == NULL)
            continue;
        rc =
            primary ? cfg_set(cfg, s, s->name, v, "", v, eb) : cfg_set_alias(cfg, s, &alias, v, eb);
        if (rc) {
            if (problems == NULL)
                goto out;
            config_findings_add(problems, CFG_SEV_ERROR, s->name, "%s%s", eb->msg,
                                src == CFG_SRC_DOTENV ? " (from .env)" : "");
            rc = KILN_OK;
            continue;
        }
        cfg->_origin[i].source = src;
        cfg->_origin[i].via = primary ? NULL : xstrdup(alias.name);
    }
out:
    config_dotenv_free(&dotenv);
    if (rc) {
        config_free(cfg);
        return rc;
    }
    *out = cfg;
    return KILN_OK;
}

enum kiln_err config_load(struct kiln_config **out, const char *dotenv_path,
                          config_lookup_fn lookup, void *lookup_arg, struct errbuf *eb)
{
    return cfg_load(out, dotenv_path, lookup, lookup_arg, NULL, eb);
}

void config_load_all(struct kiln_config **out, const char *dotenv_path, config_lookup_fn lookup,
                     void *lookup_arg, struct cfg_findings *problems)
{
    struct errbuf eb = {{0}};

    if (cfg_load(out, dotenv_path, lookup, lookup_arg, problems, &eb) != KILN_OK) {
        /* only a bad embedded default gets here */
        config_findings_add(problems, CFG_SEV_ERROR, "", "%s", eb.msg);
        *out = xcalloc(1, sizeof **out);
        for (size_t i = 0; i < CFG_COUNT; i++)
            if (cfg_table[i].type >= CFG_STR)
                *(char **)((char *)*out + cfg_table[i].offset) = xstrdup("");
    }
}

enum kiln_err config_open(struct kiln_config **out, const char *dotenv_path,
                          config_lookup_fn lookup, void *lookup_arg, struct cfg_findings *problems,
                          struct errbuf *eb)
{
    struct cfg_findings local = {0}, *p = problems ? problems : &local;
    size_t before = p->count;
    struct kiln_config *cfg = NULL;
    enum kiln_err rc = KILN_OK;

    config_load_all(&cfg, dotenv_path, lookup, lookup_arg, p);
    config_validate(cfg, p);
    if (p->count > before) {
        size_t n = p->count - before, len;

        len = (size_t)snprintf(eb ? eb->msg : NULL, eb ? sizeof eb->msg : 0,
                               "%zu configuration problem%s:", n, n == 1 ? "" : "s");
        for (size_t i = before; eb != NULL && i < p->count && len < sizeof eb->msg; i++)
            len += (size_t)snprintf(eb->msg + len, sizeof eb->msg - len, "%s %s",
                                    i == before ? "" : ";", p->items[i].msg);
        config_free(cfg);
        rc = KILN_ERR_INVALID;
    } else {
        *out = cfg;
    }
    config_findings_free(&local);
    return rc;
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
        free(cfg->_origin[i].via);
    }
    free(cfg);
}

enum cfg_source config_origin(const struct kiln_config *cfg, const struct cfg_setting *s,
                              const char **via)
{
    size_t i = (size_t)(s - cfg_table);

    if (via != NULL)
        *via = cfg->_origin[i].via;
    return cfg->_origin[i].source;
}

char *config_value_text(const struct kiln_config *cfg, const struct cfg_setting *s)
{
    const char *base = (const char *)cfg + s->offset;

    switch (s->type) {
    case CFG_BOOL:
        return xstrdup(*(const bool *)base ? "true" : "false");
    case CFG_INT:
        return xasprintf("%lld", *(const long long *)base);
    case CFG_DOUBLE:
        return xasprintf("%g", *(const double *)base);
    case CFG_STR:
    case CFG_LIST:
    case CFG_ENUM:
    case CFG_SECRET:
        break;
    }
    return xstrdup(*(char *const *)base);
}

char *config_value_display(const struct kiln_config *cfg, const struct cfg_setting *s)
{
    if (s->flags & CFG_F_SECRET)
        return xstrdup(log_mask_secret(*(char *const *)((const char *)cfg + s->offset)));
    return config_value_text(cfg, s);
}

void config_findings_add(struct cfg_findings *f, enum cfg_severity sev, const char *setting,
                         const char *fmt, ...)
{
    va_list ap;
    char buf[1024];

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (f->count == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->items = xreallocarray(f->items, f->cap, sizeof *f->items);
    }
    f->items[f->count].severity = sev;
    f->items[f->count].setting = setting;
    f->items[f->count].msg = xstrdup(buf);
    f->count++;
}

void config_findings_free(struct cfg_findings *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->count; i++)
        free(f->items[i].msg);
    free(f->items);
    f->items = NULL;
    f->count = f->cap = 0;
}

const char *config_severity_name(enum cfg_severity sev)
{
    static const char *const names[] = {"low", "medium", "high", "error"};
    return (unsigned)sev <= CFG_SEV_ERROR ? names[sev] : "error";
}
