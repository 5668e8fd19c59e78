/* The .env file reader of the configuration loader (see dotenv.h). */
#include "config/dotenv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

/* Longest line of a .env file we accept; longer lines are an error, not silently cut. */
#define CFG_DOTENV_LINE_MAX 8192

void config_dotenv_free(struct config_dotenv *d)
{
    for (size_t i = 0; i < d->count; i++) {
        free(d->kv[i].key);
        free(d->kv[i].value);
    }
    free(d->kv);
}

const char *config_dotenv_get(const char *name, void *arg)
{
    const struct config_dotenv *d = arg;

    for (size_t i = d->count; i-- > 0;)
        if (strcmp(d->kv[i].key, name) == 0)
            return d->kv[i].value;
    return NULL;
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

/* Unquote a .env value in place. "double quotes" understand \" \\ \n; 'single quotes' are
 * literal; after the closing quote only a # comment may follow. An unquoted value ends at " #".
 * Returns false on an unterminated quote or text after the closing quote. */
static bool cfg_dotenv_value(char *v, char **out)
{
    char q = v[0], *r, *w;

    if (q != '"' && q != '\'') {
        char *hash = strstr(v, " #");
        if (hash == NULL)
            hash = strstr(v, "\t#");
        if (hash != NULL)
            *hash = '\0';
        *out = cfg_trim(v);
        return true;
    }
    for (r = w = v + 1; *r && *r != q; r++) {
        if (q == '"' && *r == '\\' && (r[1] == '"' || r[1] == '\\' || r[1] == 'n')) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r;
        } else {
            *w++ = *r;
        }
    }
    if (*r != q)
        return false;
    r = cfg_trim(r + 1);
    if (*r != '\0' && *r != '#')
        return false;
    *w = '\0';
    *out = v + 1;
    return true;
}

/* Read a .env file into d: KEY=VALUE lines, `#` comments, optional `export `, quotes as above. A
 * missing file is not an error. With problems == NULL the first bad line fails; otherwise every
 * bad line is recorded and skipped. */
enum kiln_err config_dotenv_read(struct config_dotenv *d, const char *path,
                                 struct cfg_findings *problems, struct errbuf *eb)
{
    char line[CFG_DOTENV_LINE_MAX];
    enum kiln_err rc = KILN_OK;
    unsigned lineno = 0;
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        if (errno == ENOENT)
            return KILN_OK;
        rc = errbuf_set(eb, KILN_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *key, *value, *eq;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            int c;
            rc = errbuf_set(eb, KILN_ERR_INVALID, "%s:%u: line longer than %d bytes", path, lineno,
                            CFG_DOTENV_LINE_MAX);
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            goto bad;
        }
        key = cfg_trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        if (strncmp(key, "export ", 7) == 0)
            key = cfg_trim(key + 7);
        eq = strchr(key, '=');
        if (eq == NULL) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "%s:%u: expected KEY=VALUE", path, lineno);
            goto bad;
        }
        *eq = '\0';
        key = cfg_trim(key);
        if (!cfg_dotenv_value(cfg_trim(eq + 1), &value)) {
            rc = errbuf_set(eb, KILN_ERR_INVALID, "%s:%u: %s: unterminated quote or text after it",
                            path, lineno, key);
            goto bad;
        }
        if (d->count == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 32;
            d->kv = xreallocarray(d->kv, d->cap, sizeof *d->kv);
        }
        d->kv[d->count].key = xstrdup(key);
        d->kv[d->count].value = xstrdup(value);
        d->count++;
        continue;
    bad:
        if (problems == NULL)
            break;
        config_findings_add(problems, CFG_SEV_ERROR, "", "%s", eb->msg);
        rc = KILN_OK;
    }
    fclose(f);
    return rc;
fail:
    if (problems != NULL) {
        config_findings_add(problems, CFG_SEV_ERROR, "", "%s", eb->msg);
        rc = KILN_OK;
    }
    return rc;
}
