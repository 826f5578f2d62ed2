#include <string.h>

#include "store/store.h"

struct sy_store *sy_store_open(const struct sy_config *cfg, struct sy_error *err)
{
    const char *url = cfg->store.url;
    if (strncmp(url, "sqlite:", 7) == 0) {
        return sy_store_sqlite_open(cfg, url + 7, err);
    }
    sy_error_set(err, cfg->path, 0, "unsupported store \"%s\" (use sqlite:PATH)", url);
    return NULL;
}

int sy_store_submit(struct sy_store *st, struct sy_append *a)
{
    return st->ops->submit(st, a);
}

bool sy_store_ready(struct sy_store *st)
{
    return st->ops->ready(st);
}

void sy_store_close(struct sy_store *st)
{
    if (st != NULL) {
        st->ops->close(st);
    }
}
