/*
 * The memory backend ("memory:"): every operation of store.h on data held in
 * this process, for `switchyard test` and the store conformance suite. It
 * keeps nothing across a close (the config refuses it for `serve`). There is
 * no writer thread: an append is routed and done() is called before submit
 * returns, on the caller's thread. Its clock can be the caller's (a test's
 * frozen time), so schedules, retries and kv expiry follow it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "store/memory_int.h"
#include "util/clock.h"

static int64_t wall(void *ctx)
{
    (void)ctx;
    return sy_wall_ms();
}

int64_t sy_mem_now(struct memory_store *s)
{
    return s->now(s->now_ctx);
}

const char *sy_mem_state_name(enum mem_state st)
{
    static const char *const names[] = {"pending", "pending", "retrying",
                                        "done",    "skipped", "dead"};
    return names[st];
}

static uint64_t hash_of(const char *s)
{
    return sy_fnv1a(SY_FNV_OFFSET, s, strlen(s));
}

/* The index slot of 'id', or the empty one where it would go. */
static size_t slot_of(const struct memory_store *s, const char *id)
{
    size_t mask = s->cap_index - 1;
    size_t i = (size_t)hash_of(id) & mask;
    while (s->index[i] != SIZE_MAX && strcmp(s->ev[s->index[i]].id, id) != 0) {
        i = (i + 1) & mask;
    }
    return i;
}

struct mem_event *sy_mem_find(struct memory_store *s, const char *id)
{
    if (s->cap_index == 0) {
        return NULL;
    }
    size_t at = s->index[slot_of(s, id)];
    return at == SIZE_MAX ? NULL : &s->ev[at];
}

/* Room for one more event (array and index at most half full). */
static int reserve_event(struct memory_store *s)
{
    if (s->n_ev >= SY_MEMORY_MAX_EVENTS) {
        return SY_EFULL;
    }
    if (s->n_ev == s->cap_ev) {
        size_t cap = s->cap_ev ? s->cap_ev * 2 : 64;
        struct mem_event *ev = realloc(s->ev, cap * sizeof(*ev));
        if (ev == NULL) {
            return SY_ENOMEM;
        }
        s->ev = ev;
        s->cap_ev = cap;
    }
    if ((s->n_ev + 1) * 2 > s->cap_index) {
        size_t cap = s->cap_index ? s->cap_index * 2 : 128;
        size_t *index = malloc(cap * sizeof(*index));
        if (index == NULL) {
            return SY_ENOMEM;
        }
        free(s->index);
        s->index = index;
        s->cap_index = cap;
        for (size_t i = 0; i < cap; i++) {
            index[i] = SIZE_MAX;
        }
        for (size_t i = 0; i < s->n_ev; i++) {
            s->index[slot_of(s, s->ev[i].id)] = i;
        }
    }
    return SY_OK;
}

static char *dup_n(const char *p, size_t n)
{
    char *c = malloc(n + 1);
    if (c != NULL) {
        memcpy(c, p ? p : "", p ? n : 0);
        c[p ? n : 0] = '\0';
    }
    return c;
}

static void event_dispose(struct mem_event *e)
{
    free(e->id);
    free(e->type);
    free(e->integration);
    free(e->category);
    free(e->body);
    free(e->norm);
    free(e->headers);
    free(e->reason);
    free(e->jobs);
}

static void job_dispose(struct mem_job *j)
{
    free(j->handler);
    free(j->key);
    free(j->error);
    sy_call_records_free(j->calls, j->n_calls);
}

int sy_mem_add_job(struct memory_store *s, size_t ev, const char *handler, const char *key,
                   size_t *out)
{
    if (s->n_jobs >= SY_MEMORY_MAX_JOBS) {
        return SY_EFULL;
    }
    if (s->n_jobs == s->cap_jobs) {
        size_t cap = s->cap_jobs ? s->cap_jobs * 2 : 64;
        struct mem_job *jobs = realloc(s->jobs, cap * sizeof(*jobs));
        if (jobs == NULL) {
            return SY_ENOMEM;
        }
        s->jobs = jobs;
        s->cap_jobs = cap;
    }
    struct mem_event *e = &s->ev[ev];
    size_t *list = realloc(e->jobs, (e->n_jobs + 1) * sizeof(*list));
    if (list == NULL) {
        return SY_ENOMEM;
    }
    e->jobs = list;
    struct mem_job *j = &s->jobs[s->n_jobs];
    memset(j, 0, sizeof(*j));
    j->event = ev;
    j->handler = strdup(handler);
    j->key = key ? strdup(key) : NULL;
    j->due_ms = sy_mem_now(s);
    if (j->handler == NULL || (key != NULL && j->key == NULL)) {
        job_dispose(j);
        return SY_ENOMEM;
    }
    e->jobs[e->n_jobs++] = s->n_jobs;
    *out = s->n_jobs++;
    return SY_OK;
}

/* A new sy_job for job 'i' (what a worker gets), or NULL. */
static struct sy_job *job_object(struct memory_store *s, size_t i)
{
    const struct mem_job *mj = &s->jobs[i];
    struct sy_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->id = (int64_t)i + 1;
    j->event_id = strdup(s->ev[mj->event].id);
    j->handler = strdup(mj->handler);
    j->key = mj->key ? strdup(mj->key) : NULL;
    j->attempts = mj->attempts;
    j->runs = mj->runs;
    j->fresh = mj->n_calls == 0;
    j->due_ms = mj->due_ms;
    if (j->event_id == NULL || j->handler == NULL || (mj->key != NULL && j->key == NULL)) {
        sy_job_free(j);
        return NULL;
    }
    return j;
}

void sy_mem_admit(struct memory_store *s, size_t i)
{
    struct mem_job *mj = &s->jobs[i];
    if (mj->state != MEM_PENDING || mj->admitted ||
        sy_sched_busy(&s->sched, mj->key, (int64_t)i + 1)) {
        return;
    }
    struct sy_job *j = job_object(s, i);
    if (j == NULL) {
        return; /* it stays pending; a replay can queue it again */
    }
    if (mj->due_ms > sy_mem_now(s)) {
        sy_sched_defer(&s->sched, j);
        mj->admitted = true;
    } else if (sy_sched_admit(&s->sched, j)) {
        mj->admitted = true;
    } else {
        sy_job_free(j);
    }
    pthread_cond_broadcast(&s->cv);
}

/* The key 'key' is free again: admit the first job waiting for it, in store order. */
static void admit_next(struct memory_store *s, const char *key)
{
    for (size_t i = 0; key != NULL && i < s->n_jobs; i++) {
        const struct mem_job *mj = &s->jobs[i];
        if (mj->state == MEM_PENDING && !mj->admitted && mj->key && strcmp(mj->key, key) == 0) {
            sy_mem_admit(s, i);
            return;
        }
    }
}

/* ---- appends ---- */

static int store_event(struct memory_store *s, const struct sy_append *a)
{
    int rc = reserve_event(s);
    if (rc != SY_OK) {
        return rc;
    }
    struct mem_event *e = &s->ev[s->n_ev];
    memset(e, 0, sizeof(*e));
    e->id = dup_n(a->id, a->id_len);
    e->type = dup_n(a->type, a->type_len);
    e->integration = a->integration ? strdup(a->integration) : NULL;
    e->category = a->category ? strdup(a->category) : NULL;
    e->body = dup_n(a->body, a->body_len);
    e->body_len = a->body_len;
    e->norm = a->norm ? dup_n(a->norm, a->norm_len) : NULL;
    e->norm_len = a->norm ? a->norm_len : 0;
    e->headers = a->headers ? dup_n(a->headers, a->headers_len) : strdup("{}");
    e->reason = a->reason ? strdup(a->reason) : NULL;
    e->received_ms = a->received_ms;
    if (!e->id || !e->type || !e->body || !e->headers || (a->norm && !e->norm) ||
        (a->reason && !e->reason) || (a->integration && !e->integration) ||
        (a->category && !e->category)) {
        event_dispose(e);
        return SY_ENOMEM;
    }
    size_t ev = s->n_ev++;
    s->index[slot_of(s, e->id)] = ev;
    e->state = "unrouted";
    if (a->reason != NULL) {
        e->state = "quarantined";
        return SY_OK;
    }
    struct sy_routes routes;
    sy_routes_init(&routes);
    size_t hits = s->route ? s->route(s->route_ctx, a, &routes) : 0;
    for (size_t i = 0; rc == SY_OK && i < hits && i < routes.n; i++) {
        size_t at;
        rc = sy_mem_add_job(s, ev, sy_routes_handler(&routes, i), sy_routes_key(&routes, i), &at);
        if (rc == SY_OK) {
            sy_mem_admit(s, at);
        }
    }
    sy_routes_dispose(&routes);
    if (s->ev[ev].n_jobs > 0) {
        s->ev[ev].state = "routed";
    }
    return rc;
}

static int mem_submit(struct sy_store *st, struct sy_append *a)
{
    struct memory_store *s = (struct memory_store *)st;
    char id[1024];
    if (a->id_len >= sizeof(id)) {
        return SY_EINVAL;
    }
    memcpy(id, a->id, a->id_len);
    id[a->id_len] = '\0';
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return SY_EUNAVAIL;
    }
    a->is_new = sy_mem_find(s, id) == NULL;
    a->status = a->is_new ? store_event(s, a) : SY_OK;
    pthread_mutex_unlock(&s->mu);
    a->done(a);
    return SY_OK;
}

static void mem_health(struct sy_store *st, struct sy_store_health *h)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    h->ready = !s->closing;
    pthread_mutex_unlock(&s->mu);
    snprintf(h->detail, sizeof(h->detail), "%s", h->ready ? "" : "memory: closing");
}

static void mem_close(struct sy_store *st)
{
    struct memory_store *s = (struct memory_store *)st;
    sy_sched_dispose(&s->sched);
    for (size_t i = 0; i < s->n_ev; i++) {
        event_dispose(&s->ev[i]);
    }
    for (size_t i = 0; i < s->n_jobs; i++) {
        job_dispose(&s->jobs[i]);
    }
    for (size_t i = 0; i < s->n_kv; i++) {
        free(s->kv[i].key);
        free(s->kv[i].value);
    }
    free(s->ev);
    free(s->index);
    free(s->jobs);
    free(s->kv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static void mem_set_router(struct sy_store *st, sy_route_fn route, void *ctx)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    s->route = route;
    s->route_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}

/* ---- jobs ---- */

static struct sy_job *mem_next_job(struct sy_store *st, int timeout_ms)
{
    struct memory_store *s = (struct memory_store *)st;
    double deadline = sy_mono_s() + (double)timeout_ms / 1000.0;
    pthread_mutex_lock(&s->mu);
    struct sy_job *j = NULL;
    while (!s->closing) {
        int64_t next = sy_sched_release_due(&s->sched, sy_mem_now(s));
        if ((j = sy_sched_pop(&s->sched)) != NULL) {
            s->jobs[j->id - 1].state = MEM_RUNNING;
            break;
        }
        double left = deadline - sy_mono_s();
        if (left <= 0) {
            break;
        }
        if (next >= 0 && (double)next / 1000.0 < left) {
            left = (double)next / 1000.0;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)((left - (double)(long)left) * 1e9) + 1000000;
        ts.tv_sec += (time_t)left + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return j;
}

static int mem_load_body(struct sy_store *st, struct sy_job *job)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    const struct mem_event *e = sy_mem_find(s, job->event_id);
    int rc = e ? SY_OK : SY_ENOTFOUND;
    if (e != NULL) {
        job->body = dup_n(e->body, e->body_len);
        job->body_len = e->body_len;
        job->norm = e->norm ? dup_n(e->norm, e->norm_len) : NULL;
        job->norm_len = e->norm_len;
        rc = job->body && (e->norm == NULL || job->norm) ? SY_OK : SY_ENOMEM;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static struct mem_kv *kv_find(struct memory_store *s, const char *key)
{
    for (size_t i = 0; i < s->n_kv; i++) {
        if (strcmp(s->kv[i].key, key) == 0) {
            return &s->kv[i];
        }
    }
    return NULL;
}

/* Set (value non-NULL) or delete one entry. */
static int kv_apply(struct memory_store *s, const char *key, const char *value, int64_t expires)
{
    struct mem_kv *e = kv_find(s, key);
    if (value == NULL) {
        if (e != NULL) {
            free(e->key);
            free(e->value);
            *e = s->kv[--s->n_kv];
        }
        return SY_OK;
    }
    char *v = strdup(value);
    if (v == NULL) {
        return SY_ENOMEM;
    }
    if (e == NULL) {
        if (s->n_kv >= SY_MEMORY_MAX_KV) {
            free(v);
            return SY_EFULL;
        }
        if (s->n_kv == s->cap_kv) {
            size_t cap = s->cap_kv ? s->cap_kv * 2 : 32;
            struct mem_kv *kv = realloc(s->kv, cap * sizeof(*kv));
            if (kv == NULL) {
                free(v);
                return SY_ENOMEM;
            }
            s->kv = kv;
            s->cap_kv = cap;
        }
        e = &s->kv[s->n_kv];
        if ((e->key = strdup(key)) == NULL) {
            free(v);
            return SY_ENOMEM;
        }
        e->value = NULL;
        s->n_kv++;
    }
    free(e->value);
    e->value = v;
    e->expires_ms = expires;
    return SY_OK;
}

static void mem_finish(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                       const char *error, int64_t retry_at_ms)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    struct mem_job *mj = &s->jobs[job->id - 1];
    if (outcome == SY_JOB_DEFER) {
        /* not run: pending again at retry_at_ms, counts and last error as they were */
        mj->state = MEM_PENDING;
        mj->due_ms = retry_at_ms;
        job->due_ms = retry_at_ms;
        sy_sched_defer(&s->sched, job); /* keeps its key */
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    mj->attempts++;
    mj->runs++;
    free(mj->error);
    mj->error = error ? strdup(error) : NULL;
    if (outcome == SY_JOB_DONE) {
        for (const struct sy_kv_write *w = job->kv; w != NULL; w = w->next) {
            kv_apply(s, w->key, w->value, w->expires_ms);
        }
    }
    if (outcome == SY_JOB_RETRY) {
        mj->state = MEM_RETRYING;
        mj->due_ms = retry_at_ms;
        job->attempts = mj->attempts;
        job->runs = mj->runs;
        job->fresh = false;
        job->due_ms = retry_at_ms;
        sy_sched_defer(&s->sched, job); /* keeps its key */
        pthread_cond_broadcast(&s->cv);
    } else {
        mj->state = outcome == SY_JOB_DONE      ? MEM_DONE
                    : outcome == SY_JOB_SKIPPED ? MEM_SKIPPED
                                                : MEM_DEAD;
        mj->admitted = false;
        sy_sched_release_key(&s->sched, mj->key, job->id);
        admit_next(s, mj->key);
        sy_job_free(job);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- kv ---- */

static int mem_kv_get(struct sy_store *st, const char *key, char **value)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    const struct mem_kv *e = kv_find(s, key);
    bool live = e && (e->expires_ms == 0 || e->expires_ms > sy_mem_now(s));
    *value = live ? strdup(e->value) : NULL;
    pthread_mutex_unlock(&s->mu);
    return live && *value == NULL ? SY_ENOMEM : SY_OK;
}

static int mem_kv_set(struct sy_store *st, const char *key, const char *value, uint64_t ttl_ms)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    int rc = kv_apply(s, key, value, ttl_ms ? sy_mem_now(s) + (int64_t)ttl_ms : 0);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int mem_kv_delete(struct sy_store *st, const char *key)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    int rc = kv_apply(s, key, NULL, 0);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- the journal ---- */

static void mem_journal_add(struct sy_store *st, const struct sy_job *job,
                            struct sy_call_record *rec)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    struct mem_job *mj = job->id > 0 && (size_t)job->id <= s->n_jobs ? &s->jobs[job->id - 1] : NULL;
    if (mj != NULL && mj->n_calls == mj->cap_calls && mj->cap_calls < SY_MEMORY_MAX_CALLS) {
        size_t cap = mj->cap_calls ? mj->cap_calls * 2 : 4;
        struct sy_call_record *c = realloc(mj->calls, cap * sizeof(*c));
        if (c != NULL) {
            mj->calls = c;
            mj->cap_calls = cap;
        }
    }
    if (mj != NULL && mj->n_calls < mj->cap_calls) {
        mj->calls[mj->n_calls++] = *rec; /* the strings move over */
        free(rec);
    } else {
        sy_call_record_free(rec);
    }
    pthread_mutex_unlock(&s->mu);
}

static char *dup_opt(const char *p)
{
    return p ? strdup(p) : NULL;
}

static int mem_journal_load(struct sy_store *st, const struct sy_job *job,
                            struct sy_call_record **recs, size_t *n)
{
    struct memory_store *s = (struct memory_store *)st;
    pthread_mutex_lock(&s->mu);
    const struct mem_job *mj =
        job->id > 0 && (size_t)job->id <= s->n_jobs ? &s->jobs[job->id - 1] : NULL;
    int rc = SY_OK;
    if (mj != NULL && mj->n_calls > 0) {
        *recs = calloc(mj->n_calls, sizeof(**recs));
        rc = *recs ? SY_OK : SY_ENOMEM;
        for (size_t i = 0; rc == SY_OK && i < mj->n_calls; i++) {
            const struct sy_call_record *from = &mj->calls[i];
            struct sy_call_record *to = &(*recs)[i];
            *to = *from;
            to->key = dup_opt(from->key);
            to->method = dup_opt(from->method);
            to->path = dup_opt(from->path);
            to->request = dup_opt(from->request);
            to->response = from->response ? dup_n(from->response, from->response_len) : NULL;
            to->error = dup_opt(from->error);
            *n = i + 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int64_t mem_ops_now(struct sy_store *st)
{
    return sy_mem_now((struct memory_store *)st);
}

static const struct sy_store_ops memory_ops = {
    .submit = mem_submit,
    .health = mem_health,
    .close = mem_close,
    .set_router = mem_set_router,
    .next_job = mem_next_job,
    .load_body = mem_load_body,
    .finish = mem_finish,
    .kv_get = mem_kv_get,
    .kv_set = mem_kv_set,
    .kv_delete = mem_kv_delete,
    .replay = sy_mem_replay,
    .journal_add = mem_journal_add,
    .journal_load = mem_journal_load,
    .list = sy_mem_list,
    .show = sy_mem_show,
    .scan = sy_mem_scan,
    .rerun = sy_mem_rerun,
    .now_ms = mem_ops_now,
};

struct sy_store *sy_store_memory_open(int64_t (*now_ms)(void *ctx), void *ctx)
{
    struct memory_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->base.ops = &memory_ops;
    s->now = now_ms ? now_ms : wall;
    s->now_ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    sy_sched_init(&s->sched);
    return &s->base;
}
