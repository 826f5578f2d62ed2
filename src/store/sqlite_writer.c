/*
 * The SQLite store's writer thread: every write goes through it, in group
 * commits. Each transaction holds a batch of appends (events with their
 * jobs) and of ops (job outcomes with their kv writes, journal lines, kv
 * writes from outside a job, replays). After the commit it hands the new
 * runnable jobs to the scheduler.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ingest/delivery.h"
#include "metrics.h"
#include "store/sqlite_int.h"
#include "store/renorm.h"
#include "util/clock.h"
#include "util/log.h"

static const char *const job_states[] = {
    [SY_JOB_DONE] = "done",
    [SY_JOB_SKIPPED] = "skipped",
    [SY_JOB_RETRY] = "retrying",
    [SY_JOB_DEAD] = "dead",
    [SY_JOB_DEFER] = "pending",
};

/* Where one append's routing sits in s->routes, and the id of its first job. */
struct routed {
    size_t first_hit, n_hits;
    int64_t first_job;
};

/* A growing array of jobs found inside a transaction, handed out after the commit. */
void sy_sqlite_list_add(struct sy_job_list *l, struct sy_job *j)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct sy_job **g = realloc(l->j, cap * sizeof(*g));
        if (g == NULL) {
            sy_job_free(j); /* it stays pending in the database: the next start runs it */
            return;
        }
        l->j = g;
        l->cap = cap;
    }
    l->j[l->n++] = j;
}

static void list_free(struct sy_job_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        sy_job_free(l->j[i]);
    }
    free(l->j);
    memset(l, 0, sizeof(*l));
}

static int by_id(const void *a, const void *b)
{
    int64_t x = (*(struct sy_job *const *)a)->id, y = (*(struct sy_job *const *)b)->id;
    return x < y ? -1 : x > y;
}

/*
 * A job that never finished an attempt has a journal only if a previous
 * process ran it and died: then its id is at most the highest journaled one
 * at open. Every other such job need not read its journal.
 */
static void mark_fresh(struct sqlite_store *s, struct sy_job *j)
{
    j->fresh = j->runs == 0 && j->id > s->journaled_at_open;
}

void sy_sqlite_bind_text_or_null(sqlite3_stmt *st, int col, const char *text, int len)
{
    if (text != NULL) {
        sqlite3_bind_text(st, col, text, len, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, col);
    }
}

int sy_sqlite_step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        sy_log(SY_LOG_ERROR, what, "error", sqlite3_errmsg(s->db), NULL);
        return SY_EIO;
    }
    return SY_OK;
}

/* Route and insert one event and its jobs, unless its id is stored. Returns SY_OK or SY_EIO. */
static int insert_event(struct sqlite_store *s, struct sy_append *a, struct routed *r)
{
    r->first_hit = s->routes.n;
    r->n_hits = 0;
    uint64_t h = sy_id_hash(a->id, a->id_len);
    bool dup;
    int rc = sy_sqlite_ids_find(s, h, a->id, a->id_len, &dup);
    if (rc != SY_OK) {
        sy_log(SY_LOG_ERROR, "sqlite id lookup failed", "error", sqlite3_errmsg(s->db), NULL);
        return rc;
    }
    a->is_new = !dup;
    if (dup) {
        return SY_OK;
    }
    /* a quarantined delivery is kept, not routed: a replay routes it once it can be */
    r->n_hits = s->route != NULL && a->reason == NULL ? s->route(s->route_ctx, a, &s->routes) : 0;
    sqlite3_stmt *st = s->insert;
    sqlite3_bind_text(st, 1, a->id, (int)a->id_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->type, (int)a->type_len, SQLITE_STATIC);
    sy_sqlite_bind_text_or_null(st, 3, a->integration, -1);
    sqlite3_bind_int64(st, 4, a->received_ms);
    sqlite3_bind_text(st, 5, a->headers, (int)a->headers_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->body, (int)a->body_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, a->reason ? "quarantined" : r->n_hits > 0 ? "routed" : "unrouted", -1,
                      SQLITE_STATIC);
    sy_sqlite_bind_text_or_null(st, 8, a->category, -1);
    sy_sqlite_bind_text_or_null(st, 9, a->norm, (int)a->norm_len);
    sy_sqlite_bind_text_or_null(st, 10, a->reason, -1);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)h);
    if (sy_sqlite_step_done(s, st, "sqlite insert failed") != SY_OK) {
        return SY_EIO;
    }
    int64_t seq = sqlite3_last_insert_rowid(s->db);
    if (sy_sqlite_ids_add(s, h, seq) != SY_OK) {
        /* a duplicate of it would not be known: the batch fails, the sender retries */
        sy_log(SY_LOG_ERROR, "no memory for one more stored id", NULL);
        return SY_ENOMEM;
    }
    for (size_t i = 0; i < r->n_hits; i++) {
        st = s->insert_job;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_text(st, 2, a->id, (int)a->id_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, sy_routes_handler(&s->routes, r->first_hit + i), -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, a->received_ms);
        sy_sqlite_bind_text_or_null(st, 5, sy_routes_key(&s->routes, r->first_hit + i), -1);
        if (sy_sqlite_step_done(s, st, "sqlite job insert failed") != SY_OK) {
            return SY_EIO;
        }
        if (i == 0) {
            r->first_job = sqlite3_last_insert_rowid(s->db);
        }
    }
    return SY_OK;
}

/* Set (value non-NULL; expires_ms 0 = never) or delete one kv entry inside the transaction. */
static int apply_kv(struct sqlite_store *s, const char *key, const char *value, int64_t expires_ms)
{
    sqlite3_stmt *st = value != NULL ? s->kv_set : s->kv_del;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (value != NULL) {
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        if (expires_ms > 0) {
            sqlite3_bind_int64(st, 3, expires_ms);
        } else {
            sqlite3_bind_null(st, 3);
        }
    }
    return sy_sqlite_step_done(s, st, "sqlite kv write failed");
}

/* The oldest pending job that waits for 'key', if any, into 'next'. */
static int next_of_key(struct sqlite_store *s, const char *key, struct sy_job_list *next)
{
    sqlite3_stmt *st = s->next_of_key;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        struct sy_job *j = sy_sqlite_job_new(
            sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2), key, sqlite3_column_int(st, 3),
            sqlite3_column_int(st, 4));
        if (j != NULL) {
            mark_fresh(s, j);
            sy_sqlite_list_add(next, j);
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SY_OK : SY_EIO;
}

static int apply_finish(struct sqlite_store *s, struct op *o, struct sy_job_list *next)
{
    int rc;
    for (const struct sy_kv_write *w = o->job->kv; w != NULL; w = w->next) {
        if ((rc = apply_kv(s, w->key, w->value, w->expires_ms)) != SY_OK) {
            return rc;
        }
    }
    int64_t now = sy_wall_ms();
    if (o->outcome == SY_JOB_DEFER) {
        sqlite3_stmt *d = s->defer_job;
        sqlite3_bind_int64(d, 1, o->when_ms);
        sqlite3_bind_int64(d, 2, now);
        sqlite3_bind_int64(d, 3, o->job->id);
        return sy_sqlite_step_done(s, d, "sqlite update failed");
    }
    sqlite3_stmt *st = s->finish_job;
    sqlite3_bind_text(st, 1, job_states[o->outcome], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, o->job->attempts + 1);
    sqlite3_bind_int64(st, 3, o->outcome == SY_JOB_RETRY ? o->when_ms : now);
    sy_sqlite_bind_text_or_null(st, 4, o->text, -1);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, o->job->id);
    if ((rc = sy_sqlite_step_done(s, st, "sqlite update failed")) != SY_OK) {
        return rc;
    }
    /* done, skipped or dead: the key moves on to the next job that waits for it */
    if (o->outcome != SY_JOB_RETRY && o->job->key != NULL) {
        rc = next_of_key(s, o->job->key, next);
    }
    return rc;
}

static int apply_call(struct sqlite_store *s, struct op *o)
{
    const struct sy_call_record *c = o->call;
    sqlite3_stmt *st = s->insert_call;
    sqlite3_bind_int64(st, 1, o->job_id);
    sqlite3_bind_int(st, 2, c->attempt);
    sqlite3_bind_int(st, 3, c->n);
    sy_sqlite_bind_text_or_null(st, 4, c->key, -1);
    sqlite3_bind_text(st, 5, c->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, c->path, -1, SQLITE_STATIC);
    sy_sqlite_bind_text_or_null(st, 7, c->request, -1);
    sqlite3_bind_int64(st, 8, c->status);
    sy_sqlite_bind_text_or_null(st, 9, c->response, (int)c->response_len);
    sqlite3_bind_int(st, 10, c->truncated);
    sqlite3_bind_int(st, 11, c->replayed);
    sqlite3_bind_int(st, 12, c->dry_run);
    sy_sqlite_bind_text_or_null(st, 13, c->error, -1);
    sqlite3_bind_int64(st, 14, c->at_ms);
    sqlite3_bind_double(st, 15, c->ms);
    return sy_sqlite_step_done(s, st, "sqlite journal insert failed");
}

static int apply_op(struct sqlite_store *s, struct op *o, struct sy_job_list *next,
                    struct sy_job_list *requeued, struct sy_job_list *promoted)
{
    switch (o->kind) {
    case OP_FINISH:
        return apply_finish(s, o, next);
    case OP_CALL:
        return apply_call(s, o);
    case OP_KV_SET:
        return apply_kv(s, o->text, o->value, o->when_ms);
    case OP_KV_DEL:
        return apply_kv(s, o->text, NULL, 0);
    case OP_RERUN:
        return sy_sqlite_apply_rerun(s, o, requeued, promoted);
    default:
        return sy_sqlite_apply_replay(s, o, requeued, promoted);
    }
}

/* Hand a job found after a commit to the scheduler (mu held). */
static void place(struct sqlite_store *s, struct sy_job *j)
{
    if (s->spilled && j->id >= s->spill_from) {
        sy_job_free(j); /* the refill will read it */
    } else if (sy_sched_admit(&s->sched, j)) {
        pthread_cond_signal(&s->ready_cv);
    } else {
        sy_job_free(j); /* its key is held: it waits in the database for its turn */
    }
}

/* New jobs of one committed append, handed to the scheduler (or left to the refill). */
static void enqueue_new_jobs(struct sqlite_store *s, struct sy_append *a, const struct routed *r)
{
    for (size_t i = 0; i < r->n_hits; i++) {
        int64_t id = r->first_job + (int64_t)i;
        if (s->spilled || s->sched.n_ready >= READY_CAP) {
            if (!s->spilled) {
                s->spilled = true;
                s->spill_from = id;
            }
            return;
        }
        const char *key = sy_routes_key(&s->routes, r->first_hit + i);
        struct sy_job *j = sy_sqlite_job_new(id, "", sy_routes_handler(&s->routes, r->first_hit + i),
                                             key, 0, 0);
        if (j != NULL) {
            free(j->event_id);
            j->event_id = sy_sqlite_dupn(a->id, a->id_len);
            j->body = sy_sqlite_dupn(a->body, a->body_len);
            j->body_len = a->body_len;
            j->norm = a->norm ? sy_sqlite_dupn(a->norm, a->norm_len) : NULL;
            j->norm_len = a->norm ? a->norm_len : 0;
            j->fresh = true;
        }
        if (j == NULL || j->event_id == NULL || j->body == NULL || (a->norm && j->norm == NULL)) {
            sy_job_free(j);
            s->spilled = true;
            s->spill_from = id;
            return;
        }
        place(s, j);
    }
}

/*
 * One transaction for a batch of appends and ops, then the scheduling of
 * what it made runnable, in an order that keeps each key's jobs in store
 * order: keys released by finished jobs first, then the jobs that waited
 * for them, then replayed jobs, then new ones.
 */
static void commit_batch(struct sqlite_store *s, struct sy_append *batch, size_t n, struct op *ops)
{
    double t0 = sy_mono_s();
    struct routed *routes = n > 0 ? calloc(n, sizeof(*routes)) : NULL;
    struct sy_job_list next = {0}, requeued = {0}, promoted = {0};
    sy_routes_reset(&s->routes);
    sy_health_begin(&s->health);
    int status = n > 0 && routes == NULL ? SY_ENOMEM : sy_sqlite_exec(s->db, "BEGIN IMMEDIATE");
    size_t i = 0;
    for (struct sy_append *a = batch; status == SY_OK && a != NULL; a = a->next, i++) {
        status = insert_event(s, a, &routes[i]);
    }
    for (struct op *o = ops; status == SY_OK && o != NULL; o = o->next) {
        status = apply_op(s, o, &next, &requeued, &promoted);
    }
    if (status == SY_OK) {
        status = sy_sqlite_exec(s->db, "COMMIT");
    }
    sy_sqlite_ids_end_batch(s, status == SY_OK);
    sy_health_end(&s->health, status == SY_OK, sqlite3_errmsg(s->db));
    if (status != SY_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sy_metrics_add(&sy_metrics.store_errors, 1);
        list_free(&next);
        list_free(&requeued);
        list_free(&promoted);
    }

    pthread_mutex_lock(&s->mu);
    s->healthy = status == SY_OK;
    for (struct op *o = ops; status == SY_OK && o != NULL; o = o->next) {
        if (o->kind == OP_FINISH && !sy_job_outcome_again(o->outcome)) {
            sy_sched_release_key(&s->sched, o->job->key, o->job->id);
        }
    }
    if (next.n > 1) {
        qsort(next.j, next.n, sizeof(*next.j), by_id);
    }
    for (size_t k = 0; k < next.n; k++) {
        place(s, next.j[k]);
    }
    if (requeued.n > 1) {
        qsort(requeued.j, requeued.n, sizeof(*requeued.j), by_id);
    }
    for (size_t k = 0; k < requeued.n; k++) {
        s->dead--;
        place(s, requeued.j[k]);
    }
    for (size_t k = 0; k < promoted.n; k++) {
        place(s, promoted.j[k]); /* jobs of a quarantined event that routes now */
    }
    free(next.j);
    free(requeued.j);
    free(promoted.j);
    i = 0;
    for (struct sy_append *a = batch; a != NULL; a = a->next, i++) {
        a->status = status;
        if (status != SY_OK) {
            a->is_new = false;
        } else if (routes[i].n_hits > 0) {
            enqueue_new_jobs(s, a, &routes[i]);
        }
    }
    sy_metrics_set(&sy_metrics.jobs_queued, s->sched.n_ready + s->running + s->sched.n_heap);
    sy_metrics_set(&sy_metrics.jobs_dead, (uint64_t)(s->dead > 0 ? s->dead : 0));
    pthread_mutex_unlock(&s->mu);
    free(routes);
    if (n > 0) {
        sy_histogram_observe(&sy_metrics.commit_seconds, sy_mono_s() - t0);
        sy_histogram_observe(&sy_metrics.batch_size, (double)n);
    }
}

/* After the commit: finish ops release their jobs or schedule retries; sync ops wake callers. */
static void complete_ops(struct sqlite_store *s, struct op *ops, int status)
{
    pthread_mutex_lock(&s->mu);
    while (ops != NULL) {
        struct op *next = ops->next;
        if (ops->kind == OP_FINISH) {
            s->running--;
            if (status == SY_OK && ops->outcome == SY_JOB_DEAD) {
                s->dead++;
            }
            if (status == SY_OK && sy_job_outcome_again(ops->outcome)) {
                struct sy_job *j = ops->job;
                if (ops->outcome == SY_JOB_RETRY) {
                    j->attempts++;
                    j->runs++;
                    j->fresh = false;
                }
                j->due_ms = ops->when_ms;
                free(j->body); /* a retry may be hours away: reload it then */
                j->body = NULL;
                free(j->norm);
                j->norm = NULL;
                sy_sched_defer(&s->sched, j);
            } else {
                /* on failure the job stays as it was in the database and runs again after a
                 * restart */
                sy_job_free(ops->job);
            }
            free(ops->text);
            free(ops);
        } else if (ops->kind == OP_CALL) {
            sy_call_record_free(ops->call);
            free(ops);
        } else if (ops->sync) {
            ops->status = status;
            ops->done = true;
        }
        ops = next;
    }
    sy_metrics_set(&sy_metrics.jobs_queued, s->sched.n_ready + s->running + s->sched.n_heap);
    sy_metrics_set(&sy_metrics.jobs_dead, (uint64_t)(s->dead > 0 ? s->dead : 0));
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
}

/*
 * Read pending jobs that did not fit in memory, oldest first; a job whose
 * key is held waits on in the database. Writer thread.
 */
static void refill(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->mu);
    bool want = s->spilled && s->sched.n_ready < READY_CAP / 2 && !s->closing;
    int64_t from = s->spill_from;
    pthread_mutex_unlock(&s->mu);
    if (!want) {
        return;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, event_id, handler, attempts, key, runs FROM jobs WHERE "
                           "state='pending' AND id >= ? ORDER BY id LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return;
    }
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int(st, 2, READY_CAP / 2);
    struct sy_job_list got = {0};
    int rows = 0;
    int64_t last = from - 1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct sy_job *j = sy_sqlite_job_new(
            sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 4),
            sqlite3_column_int(st, 3), sqlite3_column_int(st, 5));
        rows++;
        last = sqlite3_column_int64(st, 0);
        if (j != NULL) {
            mark_fresh(s, j);
            sy_sqlite_list_add(&got, j);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k < got.n; k++) {
        if (sy_sched_admit(&s->sched, got.j[k])) {
            pthread_cond_signal(&s->ready_cv);
        } else {
            sy_job_free(got.j[k]); /* its key is held: the job that holds it hands it on */
        }
    }
    free(got.j);
    if (s->spill_from == from) {
        s->spill_from = last + 1;
        if (rows < READY_CAP / 2) {
            s->spilled = false; /* caught up; appends queue directly again */
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* Replays asked for by `switchyard replay` (another process) come through a table. */
static void take_replay_requests(struct sqlite_store *s)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT id, event_id FROM replay_requests ORDER BY id LIMIT 100",
                           -1, &st, NULL) != SQLITE_OK) {
        return;
    }
    struct op *ops = NULL;
    int64_t max_id = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct op *o = calloc(1, sizeof(*o));
        if (o == NULL) {
            break;
        }
        o->kind = OP_REPLAY;
        const unsigned char *ev = sqlite3_column_text(st, 1);
        o->text = ev ? strdup((const char *)ev) : NULL;
        o->next = ops;
        ops = o;
        max_id = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (ops == NULL) {
        return;
    }
    commit_batch(s, NULL, 0, ops);
    char sql[96];
    snprintf(sql, sizeof(sql), "DELETE FROM replay_requests WHERE id <= %lld", (long long)max_id);
    sy_sqlite_exec(s->db, sql);
    while (ops != NULL) {
        struct op *next = ops->next;
        if (ops->count > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%ld", ops->count);
            sy_log(SY_LOG_INFO, "replay", "event", ops->text ? ops->text : "(all dead jobs)",
                   "jobs", n, NULL);
        }
        free(ops->text);
        free(ops);
        ops = next;
    }
}

#define PURGE_CHUNK 1000 /* events a purge statement looks at */
#define PURGE_CHUNK_SQL "1000"

/*
 * Delete events older than the retention whose jobs are all finished (dead
 * jobs keep their event for a replay), walking from the oldest in chunks;
 * their jobs and journals go with them. Expired kv entries too.
 */
static void purge_expired(struct sqlite_store *s)
{
    int64_t cutoff = sy_wall_ms() - (int64_t)s->retention_ms;
    sqlite3_stmt *chunk = NULL, *del = NULL;
    struct sy_sqlite_added *gone = malloc(PURGE_CHUNK * sizeof(*gone));
    size_t n_gone = 0;
    if (gone == NULL) {
        return;
    }
    if (sqlite3_prepare_v2(s->db,
                           "SELECT max(seq), min(received_at) < ?2 FROM (SELECT seq, received_at "
                           "FROM events WHERE seq > ?1 ORDER BY seq LIMIT " PURGE_CHUNK_SQL ")",
                           -1, &chunk, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND received_at < ?3 "
                           "AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.event_seq = events.seq "
                           "AND jobs.state NOT IN ('done', 'skipped')) RETURNING seq, idh",
                           -1, &del, NULL) != SQLITE_OK) {
        goto done;
    }
    int64_t cursor = 0;
    while (!s->closing) {
        sqlite3_bind_int64(chunk, 1, cursor);
        sqlite3_bind_int64(chunk, 2, cutoff);
        bool more = sqlite3_step(chunk) == SQLITE_ROW &&
                    sqlite3_column_type(chunk, 0) != SQLITE_NULL && sqlite3_column_int(chunk, 1);
        int64_t upto = more ? sqlite3_column_int64(chunk, 0) : 0;
        sqlite3_reset(chunk);
        if (!more) {
            break;
        }
        sqlite3_bind_int64(del, 1, cursor);
        sqlite3_bind_int64(del, 2, upto);
        sqlite3_bind_int64(del, 3, cutoff);
        /* the deleted events leave the id map once their deletion has committed */
        n_gone = 0;
        int rc;
        while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
            if (n_gone < PURGE_CHUNK) { /* the chunk's bounds hold no more */
                gone[n_gone++] = (struct sy_sqlite_added){(uint64_t)sqlite3_column_int64(del, 1),
                                                          sqlite3_column_int64(del, 0)};
            }
        }
        if (rc != SQLITE_DONE) {
            sy_log(SY_LOG_WARN, "purge of expired events failed", "error", sqlite3_errmsg(s->db),
                   NULL);
            sqlite3_reset(del);
            break;
        }
        sqlite3_reset(del);
        for (size_t k = 0; k < n_gone; k++) {
            sy_sqlite_ids_remove(s, gone[k].h, gone[k].seq);
        }
        cursor = upto;
    }
    char sql[96];
    snprintf(sql, sizeof(sql), "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at < %lld",
             (long long)sy_wall_ms());
    sy_sqlite_exec(s->db, sql);
done:
    sqlite3_finalize(chunk);
    sqlite3_finalize(del);
    free(gone);
}

/* Queue the retries that are due (mu held); returns ms until the next one, or -1. */
static int64_t release_due(struct sqlite_store *s)
{
    size_t before = s->sched.n_ready;
    int64_t next = sy_sched_release_due(&s->sched, sy_wall_ms());
    if (s->sched.n_ready > before) {
        pthread_cond_broadcast(&s->ready_cv);
    }
    return next;
}

/* Detach up to OPS_PER_BATCH ops (mu held). */
static struct op *take_ops(struct sqlite_store *s)
{
    struct op *ops = s->ops, *last = s->ops;
    if (ops == NULL) {
        return NULL;
    }
    size_t n = 1;
    while (last->next != NULL && n < OPS_PER_BATCH) {
        last = last->next;
        n++;
    }
    s->ops = last->next;
    if (s->ops == NULL) {
        s->ops_tail = NULL;
    }
    last->next = NULL;
    s->n_ops -= n;
    pthread_cond_broadcast(&s->done_cv); /* room for journal writes that wait */
    return ops;
}

/*
 * An idle writer takes the write lock once a second and lets it go, so that
 * probes learn of a database nobody can write (a lock held elsewhere, a hung
 * disk) even when no delivery comes: the health then says how long it waited.
 */
static void probe(struct sqlite_store *s)
{
    sy_health_begin(&s->health);
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sy_health_end(&s->health, rc == SQLITE_OK, sqlite3_errmsg(s->db));
    if (rc == SQLITE_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

/* The purge and the poll for replay requests, when their time has come (mu not held). */
static void periodic(struct sqlite_store *s, double now, double *next_purge, double *next_poll)
{
    if (now >= *next_purge) {
        purge_expired(s);
        *next_purge = sy_mono_s() + (double)s->purge_every_ms / 1000.0;
    }
    if (now >= *next_poll) {
        take_replay_requests(s);
        *next_poll = sy_mono_s() + 1.0;
    }
}

#define PROBE_IDLE_S 1.0 /* an idle writer checks the database this often */

void *sy_sqlite_writer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_setname_np(pthread_self(), "sy-store");
    double next_purge = sy_mono_s(), next_poll = sy_mono_s();
    double next_probe = sy_mono_s() + PROBE_IDLE_S;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->queue.head == NULL && s->ops == NULL && !s->closing) {
            int64_t until_retry = release_due(s);
            double now = sy_mono_s();
            if (now >= next_purge || now >= next_poll || now >= next_probe ||
                (s->spilled && s->sched.n_ready < READY_CAP / 2)) {
                pthread_mutex_unlock(&s->mu);
                periodic(s, now, &next_purge, &next_poll);
                if (now >= next_probe) {
                    probe(s);
                    next_probe = sy_mono_s() + PROBE_IDLE_S;
                }
                refill(s);
                pthread_mutex_lock(&s->mu);
                continue;
            }
            int64_t wait_ms = 250;
            if (until_retry >= 0 && until_retry < wait_ms) {
                wait_ms = until_retry;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += (long)(wait_ms % 1000) * 1000000L + 1000000L;
            until.tv_sec += wait_ms / 1000 + until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
        if (s->queue.head == NULL && s->ops == NULL) {
            break; /* closing and drained */
        }
        size_t n = 0;
        struct sy_append *batch = sy_append_queue_take(&s->queue, s->max_batch, &n);
        struct op *ops = take_ops(s);
        release_due(s);
        pthread_mutex_unlock(&s->mu);

        commit_batch(s, batch, n, ops);
        next_probe = sy_mono_s() + PROBE_IDLE_S; /* a transaction just told */
        int status = batch ? batch->status : SY_OK;
        if (batch == NULL) {
            pthread_mutex_lock(&s->mu);
            status = s->healthy ? SY_OK : SY_EIO;
            pthread_mutex_unlock(&s->mu);
        }
        while (batch != NULL) {
            struct sy_append *next = batch->next;
            batch->next = NULL;
            batch->done(batch);
            batch = next;
        }
        complete_ops(s, ops, status);
        bool finish_ckpt = __atomic_exchange_n(&s->ckpt_finish, false, __ATOMIC_ACQ_REL);
        if (finish_ckpt || s->wal_frames >= s->ckpt_hard_frames) {
            /* copy the last few frames (or, when the checkpointer is not keeping up, bound
             * the WAL's size here); the next commit then starts the WAL over */
            sy_sqlite_checkpoint(s->db);
        }
        refill(s);
        /* a busy writer never idles: the periodic work also runs between batches */
        periodic(s, sy_mono_s(), &next_purge, &next_poll);
        pthread_mutex_lock(&s->mu);
    }
    pthread_cond_broadcast(&s->ready_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sy_sqlite_push_op(struct sqlite_store *s, struct op *o)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing && o->sync) {
        pthread_mutex_unlock(&s->mu);
        return SY_EUNAVAIL;
    }
    /* journal lines are the only ops that can pile up faster than commits: they wait for room */
    while (o->kind == OP_CALL && s->n_ops >= OPS_CAP && !s->closing) {
        pthread_cond_wait(&s->done_cv, &s->mu);
    }
    o->next = NULL;
    if (s->ops_tail) {
        s->ops_tail->next = o;
    } else {
        s->ops = o;
    }
    s->ops_tail = o;
    s->n_ops++;
    pthread_cond_signal(&s->cv);
    int rc = SY_OK;
    if (o->sync) {
        while (!o->done) {
            pthread_cond_wait(&s->done_cv, &s->mu);
        }
        rc = o->status;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sy_sqlite_load_jobs(struct sqlite_store *s)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, event_id, handler, attempts, due_at, key, runs FROM jobs "
                           "WHERE state = 'retrying'",
                           -1, &q, NULL) != SQLITE_OK) {
        return SY_EIO;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        struct sy_job *j = sy_sqlite_job_new(
            sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1),
            (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 5),
            sqlite3_column_int(q, 3), sqlite3_column_int(q, 6));
        if (j != NULL) {
            j->due_ms = sqlite3_column_int64(q, 4);
            sy_sched_defer(&s->sched, j); /* it holds its key while it waits */
        }
    }
    sqlite3_finalize(q);
    if (sqlite3_prepare_v2(s->db,
                           "SELECT count(*), (SELECT coalesce(max(job_id), 0) FROM calls) FROM "
                           "jobs WHERE state = 'dead'",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        s->dead = sqlite3_column_int64(q, 0);
        s->journaled_at_open = sqlite3_column_int64(q, 1);
        sy_metrics_set(&sy_metrics.jobs_dead, (uint64_t)s->dead);
    }
    sqlite3_finalize(q);
    s->spilled = true; /* pending jobs from before the restart: read them in id order */
    s->spill_from = 0;
    return SY_OK;
}
