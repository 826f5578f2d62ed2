/* The memory backend's replays, scans and views (the shapes of store/inspect.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/filter.h"
#include "store/journal.h"
#include "store/memory_int.h"
#include "store/renorm.h"
#include "util/buf.h"
#include "util/parse.h"

/*
 * Job 'i' runs again from its first attempt, due now (its runs and journal stay). With
 * 'set_key' its ordering key becomes 'key' (NULL: none), as the current rules give it.
 */
static void requeue(struct memory_store *s, size_t i, bool set_key, const char *key)
{
    struct mem_job *mj = &s->jobs[i];
    mj->state = MEM_PENDING;
    mj->attempts = 0;
    mj->due_ms = sy_mem_now(s);
    free(mj->error);
    mj->error = NULL;
    if (set_key) {
        char *k = key ? strdup(key) : NULL;
        if (key == NULL || k != NULL) {
            free(mj->key);
            mj->key = k;
        }
    }
    sy_mem_admit(s, i);
}

/* A quarantined event normalized again; routed when it can be now. */
static int promote(struct memory_store *s, struct mem_event *e, struct sy_replay_result *r)
{
    r->was_quarantined = true;
    struct sy_event_norm *n = malloc(sizeof(*n));
    if (n == NULL) {
        return SY_ENOMEM;
    }
    sy_store_renormalize(e->id, e->body, e->body_len, e->headers, e->category, n);
    if (n->quarantined) {
        snprintf(r->reason, sizeof(r->reason), "%s", n->reason);
        char *reason = strdup(n->reason);
        if (reason != NULL) {
            free(e->reason);
            e->reason = reason;
        }
        free(n);
        return SY_OK;
    }
    struct sy_buf norm;
    sy_buf_init(&norm, 0);
    sy_event_norm_json(n, &norm);
    char *type = strdup(n->type);
    char *integ = n->integration_type[0] ? strdup(n->integration_type) : NULL;
    char *cat = n->category[0] ? strdup(n->category) : NULL;
    char *norm_text = norm.data ? strndup(norm.data, norm.len) : NULL;
    int rc = type && norm_text && (n->integration_type[0] == '\0' || integ) &&
                     (n->category[0] == '\0' || cat)
                 ? SY_OK
                 : SY_ENOMEM;
    if (rc != SY_OK) {
        free(type);
        free(integ);
        free(cat);
        free(norm_text);
        sy_buf_dispose(&norm);
        free(n);
        return rc;
    }
    free(e->type);
    free(e->integration);
    free(e->category);
    free(e->norm);
    free(e->reason);
    e->type = type;
    e->integration = integ;
    e->category = cat; /* as the current code derives it, like SQLite and Redis */
    e->norm = norm_text;
    e->norm_len = norm.len;
    e->reason = NULL;
    e->state = "unrouted";
    struct sy_append a = {.id = e->id,
                          .id_len = strlen(e->id),
                          .type = e->type,
                          .type_len = strlen(e->type),
                          .integration = e->integration,
                          .category = e->category,
                          .body = e->body,
                          .body_len = e->body_len,
                          .norm = e->norm,
                          .norm_len = e->norm_len};
    struct sy_routes routes;
    sy_routes_init(&routes);
    size_t hits = s->route ? s->route(s->route_ctx, &a, &routes) : 0;
    size_t ev = (size_t)(e - s->ev);
    for (size_t i = 0; rc == SY_OK && i < hits && i < routes.n; i++) {
        size_t at;
        rc = sy_mem_add_job(s, ev, sy_routes_handler(&routes, i), sy_routes_key(&routes, i), &at);
        if (rc == SY_OK) {
            sy_mem_admit(s, at);
            r->jobs++;
        }
    }
    if (s->ev[ev].n_jobs > 0) {
        s->ev[ev].state = "routed";
    }
    r->routed = true;
    sy_routes_dispose(&routes);
    sy_buf_dispose(&norm);
    free(n);
    return rc;
}

int sy_mem_replay(struct sy_store *st, const char *event_id, struct sy_replay_result *r)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    int rc = SY_OK;
    struct mem_event *e = event_id ? sy_mem_find(s, event_id) : NULL;
    if (e != NULL && strcmp(e->state, "quarantined") == 0) {
        rc = promote(s, e, r);
    }
    for (size_t i = 0; rc == SY_OK && i < s->n_jobs; i++) {
        if (s->jobs[i].state == MEM_DEAD &&
            (event_id == NULL || strcmp(s->ev[s->jobs[i].event].id, event_id) == 0)) {
            requeue(s, i, false, NULL);
            r->jobs++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sy_mem_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    int rc = SY_OK;
    for (size_t k = 0; rc == SY_OK && k < n; k++) {
        struct mem_event *e = sy_mem_find(s, items[k].event_id);
        if (e == NULL) {
            continue;
        }
        size_t found = SIZE_MAX;
        for (size_t i = 0; i < e->n_jobs && found == SIZE_MAX; i++) {
            if (strcmp(s->jobs[e->jobs[i]].handler, items[k].handler) == 0) {
                found = e->jobs[i];
            }
        }
        if (found == SIZE_MAX) {
            size_t ev = (size_t)(e - s->ev);
            rc = sy_mem_add_job(s, ev, items[k].handler, items[k].key, &found);
            if (rc == SY_OK) {
                if (strcmp(s->ev[ev].state, "unrouted") == 0) {
                    s->ev[ev].state = "routed";
                }
                sy_mem_admit(s, found);
                (*queued)++;
            }
        } else if (s->jobs[found].state >= MEM_DONE) {
            requeue(s, found, true, items[k].key);
            (*queued)++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- scans ---- */

/* A copy of event 'e' with its jobs, for a callback run without the lock. */
struct scan_copy {
    struct mem_event e;
    struct sy_scan_event out;
    char **handlers;
    const char **states;
    int64_t *ids;
};

static void scan_copy_free(struct scan_copy *c)
{
    free(c->e.id);
    free(c->e.type);
    free(c->e.integration);
    free(c->e.category);
    free(c->e.body);
    free(c->e.norm);
    for (size_t i = 0; c->handlers && i < c->out.n_jobs; i++) {
        free(c->handlers[i]);
    }
    free(c->handlers);
    free(c->states);
    free(c->ids);
}

static char *dup_opt(const char *p)
{
    return p ? strdup(p) : NULL;
}

static int scan_copy(struct memory_store *s, const struct mem_event *e, struct scan_copy *c)
{
    memset(c, 0, sizeof(*c));
    c->e.id = strdup(e->id);
    c->e.type = strdup(e->type);
    c->e.integration = dup_opt(e->integration);
    c->e.category = dup_opt(e->category);
    c->e.body = malloc(e->body_len + 1);
    c->e.norm = e->norm ? strndup(e->norm, e->norm_len) : NULL;
    size_t nj = e->n_jobs;
    c->handlers = calloc(nj ? nj : 1, sizeof(*c->handlers));
    c->states = calloc(nj ? nj : 1, sizeof(*c->states));
    c->ids = calloc(nj ? nj : 1, sizeof(*c->ids));
    if (!c->e.id || !c->e.type || !c->e.body || (e->norm && !c->e.norm) || !c->handlers ||
        !c->states || !c->ids) {
        scan_copy_free(c);
        return SY_ENOMEM;
    }
    memcpy(c->e.body, e->body, e->body_len + 1);
    for (size_t i = 0; i < nj; i++) {
        const struct mem_job *mj = &s->jobs[e->jobs[i]];
        c->handlers[i] = strdup(mj->handler);
        c->states[i] = sy_mem_state_name(mj->state);
        c->ids[i] = (int64_t)e->jobs[i] + 1;
        c->out.n_jobs = i + 1;
        if (c->handlers[i] == NULL) {
            scan_copy_free(c);
            return SY_ENOMEM;
        }
    }
    c->out = (struct sy_scan_event){.id = c->e.id,
                                    .type = c->e.type,
                                    .integration = c->e.integration,
                                    .category = c->e.category,
                                    .body = c->e.body,
                                    .body_len = e->body_len,
                                    .norm = c->e.norm,
                                    .norm_len = e->norm_len,
                                    .state = e->state,
                                    .received_ms = e->received_ms,
                                    .n_jobs = nj,
                                    .job_handler = (const char *const *)c->handlers,
                                    .job_state = c->states,
                                    .job_id = c->ids};
    return SY_OK;
}

static bool selected(const struct sy_scan_query *q, const struct mem_event *e)
{
    if (q->n_ids > 0) {
        for (size_t i = 0; i < q->n_ids; i++) {
            if (strcmp(q->ids[i], e->id) == 0) {
                return true;
            }
        }
        return false;
    }
    return (q->since_ms == 0 || e->received_ms >= q->since_ms) &&
           (q->until_ms == 0 || e->received_ms < q->until_ms);
}

int sy_mem_scan(struct sy_store *st, const struct sy_scan_query *q,
                int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx)
{
    struct memory_store *s = (struct memory_store *)st;
    /* one event at a time under the lock; each() runs without it (it may rerun) */
    for (size_t i = 0;; i++) {
        struct scan_copy c;
        pthread_mutex_lock(&s->mu);
        while (i < s->n_ev && !selected(q, &s->ev[i])) {
            i++;
        }
        if (i >= s->n_ev) {
            pthread_mutex_unlock(&s->mu);
            return SY_OK;
        }
        int rc = scan_copy(s, &s->ev[i], &c);
        pthread_mutex_unlock(&s->mu);
        if (rc != SY_OK) {
            return rc;
        }
        rc = each(ctx, &c.out);
        scan_copy_free(&c);
        if (rc != 0) {
            return rc;
        }
    }
}

/* ---- views ---- */

static json_t *event_head(const struct mem_event *e)
{
    json_t *o = json_pack("{s:s, s:s, s:s?, s:I, s:s, s:s?}", "id", e->id, "type", e->type,
                          "integration", e->integration, "received_at",
                          (json_int_t)e->received_ms, "state", e->state, "category", e->category);
    if (o != NULL && e->reason != NULL) {
        json_object_set_new(o, "reason", json_string(e->reason));
    }
    return o;
}

/* The job holding 'key' ahead of job 'self', as {"event", "handler"}, or NULL. */
static json_t *waiting_for(const struct memory_store *s, const char *key, size_t self)
{
    for (size_t i = 0; i < s->n_jobs; i++) {
        const struct mem_job *mj = &s->jobs[i];
        if (i != self && mj->admitted && mj->key && strcmp(mj->key, key) == 0) {
            return json_pack("{s:s, s:s}", "event", s->ev[mj->event].id, "handler", mj->handler);
        }
    }
    return NULL;
}

/* The list row of 'e' with its jobs by state, or NULL when 'f' refuses it. Under the lock. */
static json_t *list_row(const struct memory_store *s, const struct sy_event_filter *f,
                        const struct mem_event *e)
{
    if (!sy_event_filter_head(f, e->type, e->integration, e->category, e->received_ms,
                              e->state) ||
        !sy_event_filter_text(f, e->id, e->body, e->body_len)) {
        return NULL;
    }
    json_t *jobs = json_object();
    bool has_state = !sy_event_filter_job_state(f);
    for (size_t k = 0; jobs && k < e->n_jobs; k++) {
        const char *name = sy_mem_state_name(s->jobs[e->jobs[k]].state);
        json_t *n = json_object_get(jobs, name);
        json_object_set_new(jobs, name, json_integer(n ? json_integer_value(n) + 1 : 1));
        has_state = has_state || strcmp(name, f->state) == 0;
    }
    json_t *o = has_state && jobs ? event_head(e) : NULL;
    if (o == NULL) {
        json_decref(jobs);
        return NULL;
    }
    json_object_set_new(o, "jobs", jobs);
    return o;
}

/* The events a page of the list examines at most (store/filter.h), under the store's lock. */
#define MEM_LIST_SCAN 50000

json_t *sy_mem_list(struct sy_store *st, const struct sy_event_filter *f, struct sy_error *err)
{
    struct memory_store *s = (struct memory_store *)st;
    size_t max = (size_t)sy_event_filter_limit(f);
    int64_t from = -1;
    if (f->cursor != NULL &&
        (f->cursor[0] != 'm' || !sy_parse_int64(f->cursor + 1, strlen(f->cursor + 1), &from) ||
         from < 0)) {
        sy_error_set(err, NULL, 0, "the cursor is not one this server gave");
        return NULL;
    }
    json_t *events = json_array();
    pthread_mutex_lock(&s->mu);
    size_t i = from >= 0 && (size_t)from < s->n_ev ? (size_t)from : s->n_ev;
    const struct mem_event *by_id = f->text && !f->cursor ? sy_mem_find(s, f->text) : NULL;
    json_t *row = by_id ? list_row(s, f, by_id) : NULL;
    if (row != NULL) {
        /* an event's id lists that event alone, found by its key */
        json_array_append_new(events, row);
        i = 0;
    }
    for (size_t budget = MEM_LIST_SCAN;
         events && i > 0 && budget > 0 && json_array_size(events) < max; budget--) {
        row = list_row(s, f, &s->ev[--i]);
        if (row != NULL) {
            json_array_append_new(events, row);
        }
    }
    pthread_mutex_unlock(&s->mu);
    char cursor[32];
    snprintf(cursor, sizeof(cursor), "m%zu", i);
    return json_pack("{s:o, s:s?}", "events", events, "next", i > 0 ? cursor : NULL);
}

json_t *sy_mem_show(struct sy_store *st, const char *id, struct sy_error *err)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    const struct mem_event *e = sy_mem_find(s, id);
    json_t *out = e ? event_head(e) : NULL;
    if (out != NULL) {
        json_t *headers = json_loads(e->headers, 0, NULL);
        if (headers && json_object_get(headers, "x-unizo-signature")) {
            json_object_set_new(headers, "x-unizo-signature", json_string("(redacted)"));
        }
        json_t *body = json_loadb(e->body, e->body_len, 0, NULL);
        json_object_set_new(out, "headers", headers ? headers : json_object());
        json_object_set_new(out, "event", body ? body : json_stringn(e->body, e->body_len));
        json_t *norm = e->norm ? json_loadb(e->norm, e->norm_len, 0, NULL) : NULL;
        if (norm != NULL) {
            json_object_set_new(out, "normalized", norm);
        }
        json_t *jobs = json_array();
        for (size_t k = 0; k < e->n_jobs; k++) {
            const struct mem_job *mj = &s->jobs[e->jobs[k]];
            json_t *j = json_pack("{s:s, s:s, s:i, s:I, s:s?, s:s?}", "handler", mj->handler,
                                  "state", sy_mem_state_name(mj->state), "attempts", mj->attempts,
                                  "due_at", (json_int_t)mj->due_ms, "last_error", mj->error,
                                  "key", mj->key);
            if (j == NULL) {
                continue;
            }
            json_t *w = mj->key && mj->state == MEM_PENDING && !mj->admitted
                            ? waiting_for(s, mj->key, e->jobs[k])
                            : NULL;
            if (w != NULL) {
                json_object_set_new(j, "waiting_for", w);
            }
            json_t *calls = json_array();
            for (size_t c = 0; c < mj->n_calls; c++) {
                json_array_append_new(calls, sy_call_record_json(&mj->calls[c], true));
            }
            json_object_set_new(j, "calls", calls);
            json_array_append_new(jobs, j);
        }
        json_object_set_new(out, "jobs", jobs);
    } else {
        sy_error_set(err, NULL, 0, "no event with id '%s'", id);
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}
