#include <stdlib.h>
#include <string.h>

#include "store/store.h"

struct sy_store *sy_store_open(const struct sy_config *cfg, struct sy_error *err)
{
    const char *url = cfg->store.url;
    if (strncmp(url, "sqlite:", 7) == 0) {
        return sy_store_sqlite_open(cfg, url + 7, err);
    }
    if (strncmp(url, "redis://", 8) == 0) {
        return sy_store_redis_open(cfg, url, err);
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

void sy_store_set_router(struct sy_store *st, sy_route_fn route, void *ctx)
{
    st->ops->set_router(st, route, ctx);
}

struct sy_job *sy_store_next_job(struct sy_store *st, int timeout_ms)
{
    return st->ops->next_job(st, timeout_ms);
}

int sy_store_load_body(struct sy_store *st, struct sy_job *job)
{
    return job->body != NULL ? SY_OK : st->ops->load_body(st, job);
}

void sy_store_finish(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                     const char *error, int64_t retry_at_ms)
{
    st->ops->finish(st, job, outcome, error, retry_at_ms);
}

void sy_job_free(struct sy_job *job)
{
    if (job != NULL) {
        free(job->event_id);
        free(job->handler);
        free(job->body);
        free(job->entry);
        free(job);
    }
}

int sy_store_kv_get(struct sy_store *st, const char *key, char **value)
{
    return st->ops->kv_get(st, key, value);
}

int sy_store_kv_set(struct sy_store *st, const char *key, const char *value, uint64_t ttl_ms)
{
    return st->ops->kv_set(st, key, value, ttl_ms);
}

int sy_store_kv_delete(struct sy_store *st, const char *key)
{
    return st->ops->kv_delete(st, key);
}

int sy_store_replay(struct sy_store *st, const char *event_id, long *count)
{
    return st->ops->replay(st, event_id, count);
}

struct json_t *sy_store_list(struct sy_store *st, const char *status, int limit,
                             struct sy_error *err)
{
    return st->ops->list(st, status, limit, err);
}

struct json_t *sy_store_show(struct sy_store *st, const char *id, struct sy_error *err)
{
    return st->ops->show(st, id, err);
}
