#include "store/store.h"

#include <stdlib.h>
#include <string.h>

void store_session_clear(struct store_session *s)
{
    if (s == NULL)
        return;
    free(s->user_id);
    free(s->entity_id);
    memset(s, 0, sizeof *s);
}

void store_file_clear(struct store_file *f)
{
    if (f == NULL)
        return;
    free(f->name);
    free(f->original_name);
    free(f->content_type);
    free(f->blob_key);
    free(f->kind);
    memset(f, 0, sizeof *f);
}

void store_sessions_free(struct store_session *a, size_t n)
{
    for (size_t i = 0; a != NULL && i < n; i++)
        store_session_clear(&a[i]);
    free(a);
}

void store_files_free(struct store_file *a, size_t n)
{
    for (size_t i = 0; a != NULL && i < n; i++)
        store_file_clear(&a[i]);
    free(a);
}

void store_strings_free(char **a, size_t n)
{
    for (size_t i = 0; a != NULL && i < n; i++)
        free(a[i]);
    free(a);
}
