#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvkey.h"
#include "store/filter.h"
#include "store/store.h"
#include "util/clock.h"

struct sy_store *sy_store_open(const struct sy_config *cfg, struct sy_error *err)
{
    const char *url = cfg->store.url;
    if (strncmp(url, "sqlite:", 7) == 0) {
        return sy_store_sqlite_open(cfg, url + 7, err);
    }
    if (strncmp(url, "redis://", 8) == 0) {
        return sy_store_redis_open(cfg, url, err);
    }
    if (strcmp(url, "memory:") == 0) {
        struct sy_store *st = sy_store_memory_open(NULL, NULL);
        if (st == NULL) {
            sy_error_set(err, cfg->path, 0, "out of memory");
        }
        return st;
    }
    sy_error_set(err, cfg->path, 0, "unsupported store \"%s\" (use sqlite:PATH)", url);
    return NULL;
}

struct sy_store *sy_store_open_readonly(const struct sy_config *cfg, struct sy_error *err)
{
    const char *url = cfg->store.url;
    if (strncmp(url, "sqlite:", 7) == 0) {
        char *path = sy_config_resolve(cfg, url + 7);
        struct sy_store *st = path ? sy_store_sqlite_open_readonly(path, err) : NULL;
        free(path);
        return st;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        return sy_store_redis_open_readonly(cfg, url, err);
    }
    sy_error_set(err, cfg->path, 0, "unsupported store \"%s\"", url);
    return NULL;
}

int64_t sy_store_now_ms(struct sy_store *st)
{
    return st->ops->now_ms ? st->ops->now_ms(st) : sy_wall_ms();
}

int sy_store_submit(struct sy_store *st, struct sy_append *a)
{
    return st->ops->submit(st, a);
}

void sy_store_health(struct sy_store *st, struct sy_store_health *h)
{
    st->ops->health(st, h);
}

void sy_store_describe(struct sy_store *st, char *out, size_t len)
{
    if (len > 0) {
        out[0] = '\0';
    }
    if (st->ops->describe != NULL) {
        st->ops->describe(st, out, len);
    }
}

bool sy_store_ready(struct sy_store *st)
{
    struct sy_store_health h;
    sy_store_health(st, &h);
    return h.ready;
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

static void kv_writes_free(struct sy_kv_write *w)
{
    while (w != NULL) {
        struct sy_kv_write *next = w->next;
        free(w->key);
        free(w->value);
        free(w);
        w = next;
    }
}

void sy_store_finish(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                     const char *error, int64_t retry_at_ms)
{
    if (outcome != SY_JOB_DONE) {
        /* a failed attempt leaves nothing behind; the job may be retried with a clean slate */
        kv_writes_free(job->kv);
        job->kv = NULL;
        job->kv_tail = NULL;
    }
    st->ops->finish(st, job, outcome, error, retry_at_ms);
}

void sy_job_free(struct sy_job *job)
{
    if (job != NULL) {
        kv_writes_free(job->kv);
        free(job->event_id);
        free(job->handler);
        free(job->key);
        free(job->body);
        free(job->norm);
        free(job->entry);
        free(job);
    }
}

/* Keep a write on the running job. value NULL = delete. */
static int kv_defer(struct sy_store *st, struct sy_job *job, const char *key, const char *value,
                    uint64_t ttl_ms)
{
    struct sy_kv_write *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->key = strdup(key)) == NULL ||
        (value != NULL && (w->value = strdup(value)) == NULL)) {
        kv_writes_free(w);
        return SY_ENOMEM;
    }
    w->ttl_ms = ttl_ms;
    w->expires_ms = ttl_ms > 0 ? sy_store_now_ms(st) + (int64_t)ttl_ms : 0;
    if (job->kv_tail == NULL) {
        job->kv_tail = &job->kv;
    }
    *job->kv_tail = w;
    job->kv_tail = &w->next;
    return SY_OK;
}

int sy_store_kv_get(struct sy_store *st, const struct sy_job *job, const char *key, char **value)
{
    const struct sy_kv_write *last = NULL;
    for (const struct sy_kv_write *w = job ? job->kv : NULL; w != NULL; w = w->next) {
        if (strcmp(w->key, key) == 0) {
            last = w;
        }
    }
    if (last != NULL) {
        bool live = last->value != NULL &&
                    (last->expires_ms == 0 || last->expires_ms > sy_store_now_ms(st));
        *value = live ? strdup(last->value) : NULL;
        return live && *value == NULL ? SY_ENOMEM : SY_OK;
    }
    return st->ops->kv_get(st, key, value);
}

int sy_store_kv_set(struct sy_store *st, struct sy_job *job, const char *key, const char *value,
                    uint64_t ttl_ms)
{
    if (job != NULL && sy_kv_key_reserved(key)) {
        return SY_EINVAL; /* the server's own keys (paused rules) */
    }
    return job != NULL ? kv_defer(st, job, key, value, ttl_ms)
                       : st->ops->kv_set(st, key, value, ttl_ms);
}

int sy_store_kv_delete(struct sy_store *st, struct sy_job *job, const char *key)
{
    if (job != NULL && sy_kv_key_reserved(key)) {
        return SY_EINVAL;
    }
    return job != NULL ? kv_defer(st, job, key, NULL, 0) : st->ops->kv_delete(st, key);
}

void sy_call_record_dispose(struct sy_call_record *r)
{
    free(r->key);
    free(r->method);
    free(r->path);
    free(r->request);
    free(r->response);
    free(r->error);
    memset(r, 0, sizeof(*r));
}

void sy_call_record_free(struct sy_call_record *r)
{
    if (r != NULL) {
        sy_call_record_dispose(r);
        free(r);
    }
}

void sy_call_records_free(struct sy_call_record *r, size_t n)
{
    for (size_t i = 0; r != NULL && i < n; i++) {
        sy_call_record_dispose(&r[i]);
    }
    free(r);
}

void sy_store_journal_add(struct sy_store *st, const struct sy_job *job, struct sy_call_record *rec)
{
    st->ops->journal_add(st, job, rec);
}

int sy_store_journal_load(struct sy_store *st, const struct sy_job *job,
                          struct sy_call_record **recs, size_t *n)
{
    *recs = NULL;
    *n = 0;
    return st->ops->journal_load(st, job, recs, n);
}

/* ---- routing results ---- */

void sy_routes_init(struct sy_routes *r)
{
    memset(r, 0, sizeof(*r));
    sy_buf_init(&r->text, 0);
}

void sy_routes_dispose(struct sy_routes *r)
{
    free(r->hit);
    sy_buf_dispose(&r->text);
    memset(r, 0, sizeof(*r));
}

void sy_routes_reset(struct sy_routes *r)
{
    r->n = 0;
    sy_buf_reset(&r->text);
}

/* Copy 's' with its terminator into the text; returns its offset or UINT32_MAX. */
static uint32_t put_text(struct sy_routes *r, const char *s)
{
    size_t at = r->text.len;
    if (at >= UINT32_MAX - 1 || sy_buf_append(&r->text, s, strlen(s) + 1) != 0) {
        return UINT32_MAX;
    }
    return (uint32_t)at;
}

int sy_routes_add(struct sy_routes *r, const char *handler, const char *key)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct sy_route_hit *h = realloc(r->hit, cap * sizeof(*h));
        if (h == NULL) {
            return SY_ENOMEM;
        }
        r->hit = h;
        r->cap = cap;
    }
    uint32_t name = put_text(r, handler);
    uint32_t k = key != NULL ? put_text(r, key) : UINT32_MAX;
    if (name == UINT32_MAX || (key != NULL && k == UINT32_MAX)) {
        return SY_ENOMEM;
    }
    r->hit[r->n].handler = name;
    r->hit[r->n].key = k;
    r->n++;
    return SY_OK;
}

const char *sy_routes_handler(const struct sy_routes *r, size_t i)
{
    return r->text.data + r->hit[i].handler;
}

const char *sy_routes_key(const struct sy_routes *r, size_t i)
{
    return r->hit[i].key == UINT32_MAX ? NULL : r->text.data + r->hit[i].key;
}

int sy_store_replay(struct sy_store *st, const char *event_id, struct sy_replay_result *r)
{
    memset(r, 0, sizeof(*r));
    return st->ops->replay(st, event_id, r);
}

int sy_store_scan(struct sy_store *st, const struct sy_scan_query *q,
                  int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx)
{
    return st->ops->scan(st, q, each, ctx);
}

int sy_store_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued)
{
    *queued = 0;
    return n == 0 ? SY_OK : st->ops->rerun(st, items, n, queued);
}

struct json_t *sy_store_list(struct sy_store *st, const struct sy_event_filter *f,
                             struct sy_error *err)
{
    return sy_event_filter_check(f, err) == SY_OK ? st->ops->list(st, f, err) : NULL;
}

struct json_t *sy_store_show(struct sy_store *st, const char *id, struct sy_error *err)
{
    return st->ops->show(st, id, err);
}
