#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "metrics.h"
#include "store/inspect.h"
#include "store/queue.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

#define SCHEMA_VERSION 1
#define WAL_SOFT_FRAMES 1000
#define WAL_HARD_FRAMES 16384
#define WAL_TAIL_FRAMES 256 /* what the writer copies itself to close a checkpoint */
#define READY_CAP 8192      /* jobs held in memory; the rest wait in the database */
#define MAX_ROUTES 64       /* handlers per event */
#define OPS_PER_BATCH 4096

/* A write other than an event append, applied in the writer's next transaction. */
struct op {
    enum { OP_FINISH, OP_KV_SET, OP_KV_DEL, OP_REPLAY } kind;
    struct op *next;
    struct sy_job *job; /* OP_FINISH: owned */
    enum sy_job_outcome outcome;
    char *text; /* OP_FINISH: error; OP_KV_*: key; OP_REPLAY: event id or NULL */
    char *value;
    int64_t when_ms; /* retry time or kv expiry (0 = none) */
    /* synchronous ops: the caller waits on done_cv */
    bool sync;
    bool done;
    int status;
    long count;
};

struct sqlite_store {
    struct sy_store base;
    char *path;
    sqlite3 *db; /* the writer's connection: used only by the writer thread after open */
    sqlite3_stmt *insert, *insert_job, *finish_job, *kv_set, *kv_del;

    pthread_t thread;
    pthread_mutex_t mu;      /* guards everything below except what is marked otherwise */
    pthread_cond_t cv;       /* wakes the writer */
    pthread_cond_t done_cv;  /* synchronous ops finished */
    pthread_cond_t ready_cv; /* a job became runnable */
    struct sy_append_queue queue;
    size_t max_batch;
    struct op *ops, *ops_tail;
    bool closing;
    bool healthy;

    sy_route_fn route;
    void *route_ctx;

    /* runnable jobs, FIFO */
    struct sy_job *ready, *ready_tail;
    size_t n_ready;
    /*
     * When the ready queue is full, new jobs stay only in the database and
     * are read back in id order from 'spill_from' (pending jobs only).
     */
    bool spilled;
    int64_t spill_from;
    /* jobs waiting for their retry time: a binary min-heap on due_ms */
    struct sy_job **heap;
    size_t n_heap, cap_heap;
    size_t running; /* handed to workers, not finished */
    long dead;      /* jobs in state 'dead' */

    uint64_t retention_ms;
    uint64_t purge_every_ms;

    /* read connections for workers and the admin thread, with their statements */
    struct reader **readers;
    size_t n_readers, cap_readers;

    /*
     * Checkpoints copy the WAL into the database and fsync it: tens of
     * milliseconds that must not stall the writer. A second thread with its
     * own connection runs them, pass after pass until only a few frames
     * written meanwhile are left; then it asks the writer to copy those
     * between two batches (well under a millisecond), so that the WAL is
     * wholly copied and the next commit starts it over from the beginning.
     * Without that last step a WAL under constant writes is never wholly
     * copied and only grows. The writer also steps in when the WAL outgrows
     * WAL_HARD_FRAMES anyway.
     */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    bool ckpt_started;
    bool ckpt_wanted;
    bool ckpt_finish; /* the writer should copy the last frames */
    pthread_cond_t ckpt_cv;
    int wal_frames; /* writer thread only */
};

struct reader {
    sqlite3 *db;
    sqlite3_stmt *body; /* SELECT body FROM events WHERE id = ? */
    sqlite3_stmt *kv;   /* SELECT value FROM kv WHERE key = ? AND not expired */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL,"
    "  integration TEXT,"
    "  received_at INTEGER NOT NULL,"
    "  headers TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'routed'" /* routed | unrouted */
    ");"
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,"
    "  handler TEXT NOT NULL,"
    "  state TEXT NOT NULL," /* pending | retrying | done | skipped | dead */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  due_at INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  UNIQUE(event_id, handler)"
    ");"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);"
    "CREATE TABLE IF NOT EXISTS kv ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  expires_at INTEGER"
    ");"
    "CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires_at) WHERE expires_at IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS replay_requests ("
    "  id INTEGER PRIMARY KEY,"
    "  event_id TEXT," /* NULL: every dead job */
    "  requested_at INTEGER NOT NULL"
    ");";

static const char *const job_states[] = {
    [SY_JOB_DONE] = "done",
    [SY_JOB_SKIPPED] = "skipped",
    [SY_JOB_RETRY] = "retrying",
    [SY_JOB_DEAD] = "dead",
};

/* mkdir -p of the folder that holds 'path'. */
static int make_parent_dirs(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL) {
        return -1;
    }
    char *slash = strrchr(copy, '/');
    if (slash == NULL || slash == copy) {
        free(copy);
        return 0;
    }
    *slash = '\0';
    for (char *p = copy + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(copy, 0750) != 0 && errno != EEXIST) {
                free(copy);
                return -1;
            }
            *p = '/';
        }
    }
    int rc = mkdir(copy, 0750) != 0 && errno != EEXIST ? -1 : 0;
    free(copy);
    return rc;
}

static const char *fail_reason(sqlite3 *db)
{
    return db ? sqlite3_errmsg(db) : "cannot allocate";
}

static int exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sy_log(SY_LOG_ERROR, "sqlite statement failed", "sql", sql, "error", msg, NULL);
        sqlite3_free(msg);
        return SY_EIO;
    }
    return SY_OK;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static struct sy_job *job_new(int64_t id, const char *event_id, const char *handler, int attempts)
{
    struct sy_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->id = id;
    j->event_id = strdup(event_id);
    j->handler = strdup(handler);
    j->attempts = attempts;
    if (j->event_id == NULL || j->handler == NULL) {
        sy_job_free(j);
        return NULL;
    }
    return j;
}

/* ---- queues (called with mu held) ---- */

static void ready_push(struct sqlite_store *s, struct sy_job *j)
{
    j->next = NULL;
    if (s->ready_tail) {
        s->ready_tail->next = j;
    } else {
        s->ready = j;
    }
    s->ready_tail = j;
    s->n_ready++;
    pthread_cond_signal(&s->ready_cv);
}

static void heap_swap(struct sy_job **h, size_t a, size_t b)
{
    struct sy_job *t = h[a];
    h[a] = h[b];
    h[b] = t;
}

static void heap_push(struct sqlite_store *s, struct sy_job *j)
{
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 64;
        struct sy_job **h = realloc(s->heap, cap * sizeof(*h));
        if (h == NULL) {
            /* it stays 'retrying' in the database and comes back at the next start */
            sy_job_free(j);
            return;
        }
        s->heap = h;
        s->cap_heap = cap;
    }
    size_t i = s->n_heap++;
    s->heap[i] = j;
    while (i > 0 && s->heap[(i - 1) / 2]->due_ms > s->heap[i]->due_ms) {
        heap_swap(s->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct sy_job *heap_pop(struct sqlite_store *s)
{
    struct sy_job *top = s->heap[0];
    s->heap[0] = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n_heap && s->heap[l]->due_ms < s->heap[m]->due_ms) {
            m = l;
        }
        if (r < s->n_heap && s->heap[r]->due_ms < s->heap[m]->due_ms) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(s->heap, i, m);
        i = m;
    }
    return top;
}

/* Move retries whose time has come to the ready queue; returns ms until the next one (or -1). */
static int64_t release_due(struct sqlite_store *s)
{
    int64_t now = sy_wall_ms();
    while (s->n_heap > 0 && s->heap[0]->due_ms <= now) {
        ready_push(s, heap_pop(s));
    }
    return s->n_heap > 0 ? s->heap[0]->due_ms - now : -1;
}

/* ---- the writer's transaction ---- */

/* Route and insert one event and its jobs. Returns SY_OK or SY_EIO. */
static int insert_event(struct sqlite_store *s, struct sy_append *a, const char **names,
                        size_t *n_names, int64_t *first_job)
{
    *n_names = 0;
    if (s->route != NULL) {
        *n_names = s->route(s->route_ctx, a->type, a->type_len, a->integration, names, MAX_ROUTES);
    }
    sqlite3_stmt *st = s->insert;
    sqlite3_bind_text(st, 1, a->id, (int)a->id_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->type, (int)a->type_len, SQLITE_STATIC);
    if (a->integration) {
        sqlite3_bind_text(st, 3, a->integration, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 3);
    }
    sqlite3_bind_int64(st, 4, a->received_ms);
    sqlite3_bind_text(st, 5, a->headers, (int)a->headers_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->body, (int)a->body_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, *n_names > 0 ? "routed" : "unrouted", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        sy_log(SY_LOG_ERROR, "sqlite insert failed", "error", sqlite3_errmsg(s->db), NULL);
        return SY_EIO;
    }
    a->is_new = sqlite3_changes(s->db) == 1;
    if (!a->is_new) {
        *n_names = 0;
        return SY_OK;
    }
    for (size_t i = 0; i < *n_names; i++) {
        st = s->insert_job;
        sqlite3_bind_text(st, 1, a->id, (int)a->id_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, a->received_ms);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            sy_log(SY_LOG_ERROR, "sqlite job insert failed", "error", sqlite3_errmsg(s->db), NULL);
            return SY_EIO;
        }
        if (i == 0) {
            *first_job = sqlite3_last_insert_rowid(s->db);
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
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        sy_log(SY_LOG_ERROR, "sqlite kv write failed", "error", sqlite3_errmsg(s->db), NULL);
        return SY_EIO;
    }
    return SY_OK;
}

/* Apply one op inside the transaction. Replays collect their jobs into *requeued. */
static int apply_op(struct sqlite_store *s, struct op *o, struct sy_job **requeued)
{
    int64_t now = sy_wall_ms();
    sqlite3_stmt *st;
    int rc;
    switch (o->kind) {
    case OP_FINISH:
        for (const struct sy_kv_write *w = o->job->kv; w != NULL; w = w->next) {
            if ((rc = apply_kv(s, w->key, w->value, w->expires_ms)) != SY_OK) {
                return rc;
            }
        }
        st = s->finish_job;
        sqlite3_bind_text(st, 1, job_states[o->outcome], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, o->job->attempts + 1);
        sqlite3_bind_int64(st, 3, o->outcome == SY_JOB_RETRY ? o->when_ms : now);
        if (o->text) {
            sqlite3_bind_text(st, 4, o->text, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_null(st, 4);
        }
        sqlite3_bind_int64(st, 5, now);
        sqlite3_bind_int64(st, 6, o->job->id);
        break;
    case OP_KV_SET:
        return apply_kv(s, o->text, o->value, o->when_ms);
    case OP_KV_DEL:
        return apply_kv(s, o->text, NULL, 0);
    default: {
        /* requeue dead jobs; attempts start over */
        const char *sql = o->text ? "UPDATE jobs SET state='pending', attempts=0, due_at=?1, "
                                    "updated_at=?1 WHERE state='dead' AND event_id=?2 "
                                    "RETURNING id, event_id, handler"
                                  : "UPDATE jobs SET state='pending', attempts=0, due_at=?1, "
                                    "updated_at=?1 WHERE state='dead' "
                                    "RETURNING id, event_id, handler";
        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
            return SY_EIO;
        }
        sqlite3_bind_int64(st, 1, now);
        if (o->text) {
            sqlite3_bind_text(st, 2, o->text, -1, SQLITE_STATIC);
        }
        o->count = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct sy_job *j =
                job_new(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                        (const char *)sqlite3_column_text(st, 2), 0);
            if (j != NULL) {
                j->next = *requeued;
                *requeued = j;
            }
            o->count++;
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? SY_OK : SY_EIO;
    }
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        sy_log(SY_LOG_ERROR, "sqlite update failed", "error", sqlite3_errmsg(s->db), NULL);
        return SY_EIO;
    }
    return SY_OK;
}

/* New jobs of one committed append, handed to the queue (or left to the refill). */
static void enqueue_new_jobs(struct sqlite_store *s, struct sy_append *a, const char **names,
                             size_t n, int64_t first_job)
{
    for (size_t i = 0; i < n; i++) {
        if (s->spilled || s->n_ready >= READY_CAP) {
            if (!s->spilled) {
                s->spilled = true;
                s->spill_from = first_job + (int64_t)i;
            }
            return;
        }
        struct sy_job *j = job_new(first_job + (int64_t)i, a->id, names[i], 0);
        if (j == NULL) {
            s->spilled = true;
            s->spill_from = first_job + (int64_t)i;
            return;
        }
        free(j->event_id);
        j->event_id = dupn(a->id, a->id_len);
        j->body = dupn(a->body, a->body_len);
        j->body_len = a->body_len;
        ready_push(s, j);
    }
}

/*
 * One transaction for a batch of appends and ops. The names each append was
 * routed to are kept in 'routes' so the jobs can be queued after the commit.
 */
struct routed {
    const char *names[MAX_ROUTES];
    size_t n;
    int64_t first_job;
};

static void commit_batch(struct sqlite_store *s, struct sy_append *batch, size_t n, struct op *ops)
{
    double t0 = sy_mono_s();
    struct routed *routes = n > 0 ? calloc(n, sizeof(*routes)) : NULL;
    struct sy_job *requeued = NULL;
    int status = n > 0 && routes == NULL ? SY_ENOMEM : exec_sql(s->db, "BEGIN IMMEDIATE");
    size_t i = 0;
    for (struct sy_append *a = batch; status == SY_OK && a != NULL; a = a->next, i++) {
        status = insert_event(s, a, routes[i].names, &routes[i].n, &routes[i].first_job);
    }
    for (struct op *o = ops; status == SY_OK && o != NULL; o = o->next) {
        status = apply_op(s, o, &requeued);
    }
    if (status == SY_OK) {
        status = exec_sql(s->db, "COMMIT");
    }
    if (status != SY_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sy_metrics_add(&sy_metrics.store_errors, 1);
        while (requeued != NULL) {
            struct sy_job *next = requeued->next;
            sy_job_free(requeued);
            requeued = next;
        }
    }

    pthread_mutex_lock(&s->mu);
    s->healthy = status == SY_OK;
    i = 0;
    for (struct sy_append *a = batch; a != NULL; a = a->next, i++) {
        a->status = status;
        if (status != SY_OK) {
            a->is_new = false;
        } else if (routes[i].n > 0) {
            enqueue_new_jobs(s, a, routes[i].names, routes[i].n, routes[i].first_job);
        }
    }
    while (requeued != NULL) {
        struct sy_job *next = requeued->next;
        s->dead--;
        if (s->spilled && requeued->id >= s->spill_from) {
            sy_job_free(requeued); /* the refill will read it */
        } else {
            ready_push(s, requeued);
        }
        requeued = next;
    }
    sy_metrics_set(&sy_metrics.jobs_queued, s->n_ready + s->running + s->n_heap);
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
            if (status == SY_OK && ops->outcome == SY_JOB_RETRY) {
                struct sy_job *j = ops->job;
                j->attempts++;
                j->due_ms = ops->when_ms;
                free(j->body); /* a retry may be hours away: reload it then */
                j->body = NULL;
                heap_push(s, j);
            } else {
                /* on failure the job stays as it was in the database and runs again after a restart
                 */
                sy_job_free(ops->job);
            }
            free(ops->text);
            free(ops);
        } else if (ops->sync) {
            ops->status = status;
            ops->done = true;
        }
        ops = next;
    }
    sy_metrics_set(&sy_metrics.jobs_queued, s->n_ready + s->running + s->n_heap);
    sy_metrics_set(&sy_metrics.jobs_dead, (uint64_t)(s->dead > 0 ? s->dead : 0));
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
}

/* Read pending jobs that did not fit in memory, oldest first. Writer thread. */
static void refill(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->mu);
    bool want = s->spilled && s->n_ready < READY_CAP / 2 && !s->closing;
    int64_t from = s->spill_from;
    pthread_mutex_unlock(&s->mu);
    if (!want) {
        return;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, event_id, handler, attempts FROM jobs WHERE state='pending' "
                           "AND id >= ? ORDER BY id LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return;
    }
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int(st, 2, READY_CAP / 2);
    struct sy_job *got = NULL, **tail = &got;
    int rows = 0;
    int64_t last = from - 1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct sy_job *j =
            job_new(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                    (const char *)sqlite3_column_text(st, 2), sqlite3_column_int(st, 3));
        rows++;
        last = sqlite3_column_int64(st, 0);
        if (j != NULL) {
            *tail = j;
            tail = &j->next;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_lock(&s->mu);
    while (got != NULL) {
        struct sy_job *next = got->next;
        ready_push(s, got);
        got = next;
    }
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
    exec_sql(s->db, sql);
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

/* Called by SQLite in the writer thread after each commit. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct sqlite_store *s = arg;
    s->wal_frames = frames;
    if (frames >= WAL_SOFT_FRAMES) {
        pthread_mutex_lock(&s->mu);
        s->ckpt_wanted = true;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->mu);
    }
    return SQLITE_OK;
}

/* One passive checkpoint; returns the frames it left uncopied (-1 on an error or when busy). */
static int checkpoint(sqlite3 *db)
{
    int log = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
        sy_log(SY_LOG_WARN, "WAL checkpoint failed", "error", sqlite3_errmsg(db), NULL);
    }
    return rc == SQLITE_OK && log >= copied ? log - copied : -1;
}

static void *checkpointer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_setname_np(pthread_self(), "sy-checkpoint");
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        if (!s->ckpt_wanted) {
            pthread_cond_wait(&s->ckpt_cv, &s->mu);
            continue;
        }
        s->ckpt_wanted = false;
        pthread_mutex_unlock(&s->mu);
        /* each pass copies what the previous one left; they shorten while writes go on */
        int left = checkpoint(s->ckpt_db);
        for (int pass = 1; left > WAL_TAIL_FRAMES && pass < 8; pass++) {
            left = checkpoint(s->ckpt_db);
        }
        pthread_mutex_lock(&s->mu);
        if (left >= 0 && left <= WAL_TAIL_FRAMES) {
            __atomic_store_n(&s->ckpt_finish, true, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/*
 * Delete events older than the retention whose jobs are all finished (dead
 * jobs keep their event for a replay), walking from the oldest in chunks;
 * their jobs go with them. Expired kv entries too.
 */
static void purge_expired(struct sqlite_store *s)
{
    int64_t cutoff = sy_wall_ms() - (int64_t)s->retention_ms;
    sqlite3_stmt *chunk = NULL, *del = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT max(seq), min(received_at) < ?2 FROM (SELECT seq, received_at "
                           "FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1000)",
                           -1, &chunk, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND received_at < ?3 "
                           "AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.event_id = events.id "
                           "AND jobs.state NOT IN ('done', 'skipped'))",
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
        if (sqlite3_step(del) != SQLITE_DONE) {
            sy_log(SY_LOG_WARN, "purge of expired events failed", "error", sqlite3_errmsg(s->db),
                   NULL);
            break;
        }
        sqlite3_reset(del);
        cursor = upto;
    }
    char sql[96];
    snprintf(sql, sizeof(sql), "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at < %lld",
             (long long)sy_wall_ms());
    exec_sql(s->db, sql);
done:
    sqlite3_finalize(chunk);
    sqlite3_finalize(del);
}

static void *writer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_setname_np(pthread_self(), "sy-store");
    double next_purge = sy_mono_s(), next_poll = sy_mono_s();
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->queue.head == NULL && s->ops == NULL && !s->closing) {
            int64_t until_retry = release_due(s);
            double now = sy_mono_s();
            if (now >= next_purge || now >= next_poll ||
                (s->spilled && s->n_ready < READY_CAP / 2)) {
                pthread_mutex_unlock(&s->mu);
                if (now >= next_purge) {
                    purge_expired(s);
                    next_purge = sy_mono_s() + (double)s->purge_every_ms / 1000.0;
                }
                if (now >= next_poll) {
                    take_replay_requests(s);
                    next_poll = sy_mono_s() + 1.0;
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
        struct op *ops = s->ops, *op_last = s->ops;
        size_t n_ops = 0;
        if (ops != NULL) {
            n_ops = 1;
            while (op_last->next != NULL && n_ops < OPS_PER_BATCH) {
                op_last = op_last->next;
                n_ops++;
            }
            s->ops = op_last->next;
            if (s->ops == NULL) {
                s->ops_tail = NULL;
            }
            op_last->next = NULL;
        }
        release_due(s);
        pthread_mutex_unlock(&s->mu);

        commit_batch(s, batch, n, ops);
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
        if (finish_ckpt || s->wal_frames >= WAL_HARD_FRAMES) {
            /* copy the last few frames (or, when the checkpointer is not keeping up, bound
             * the WAL's size here); the next commit then starts the WAL over */
            checkpoint(s->db);
        }
        refill(s);
        /* a busy writer never idles: the periodic work also runs between batches */
        double now = sy_mono_s();
        if (now >= next_purge) {
            purge_expired(s);
            next_purge = sy_mono_s() + (double)s->purge_every_ms / 1000.0;
        }
        if (now >= next_poll) {
            take_replay_requests(s);
            next_poll = sy_mono_s() + 1.0;
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_cond_broadcast(&s->ready_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the interface ---- */

static int sqlite_submit(struct sy_store *st, struct sy_append *a)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    bool was_empty = false;
    pthread_mutex_lock(&s->mu);
    int rc = s->closing ? SY_EUNAVAIL : sy_append_queue_push(&s->queue, a, &was_empty);
    if (rc == SY_OK && was_empty) {
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Queue an op; with o->sync, wait until it is committed and return its status. */
static int push_op(struct sqlite_store *s, struct op *o)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing && o->sync) {
        pthread_mutex_unlock(&s->mu);
        return SY_EUNAVAIL;
    }
    o->next = NULL;
    if (s->ops_tail) {
        s->ops_tail->next = o;
    } else {
        s->ops = o;
    }
    s->ops_tail = o;
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

static bool sqlite_ready(struct sy_store *st)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    pthread_mutex_lock(&s->mu);
    bool ok = s->healthy && !s->closing;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void sqlite_set_router(struct sy_store *st, sy_route_fn route, void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    pthread_mutex_lock(&s->mu);
    s->route = route;
    s->route_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}

static struct sy_job *sqlite_next_job(struct sy_store *st, int timeout_ms)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (s->ready == NULL && !s->closing) {
        if (pthread_cond_timedwait(&s->ready_cv, &s->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    struct sy_job *j = NULL;
    if (s->ready != NULL && !s->closing) {
        j = s->ready;
        s->ready = j->next;
        if (s->ready == NULL) {
            s->ready_tail = NULL;
        }
        s->n_ready--;
        s->running++;
        j->next = NULL;
        if (s->spilled && s->n_ready < READY_CAP / 2) {
            pthread_cond_signal(&s->cv); /* time for a refill */
        }
    }
    pthread_mutex_unlock(&s->mu);
    return j;
}

static void reader_close(struct reader *r)
{
    if (r != NULL) {
        sqlite3_finalize(r->body);
        sqlite3_finalize(r->kv);
        sqlite3_close(r->db);
        free(r);
    }
}

static struct reader *reader_acquire(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->mu);
    struct reader *r = s->n_readers > 0 ? s->readers[--s->n_readers] : NULL;
    pthread_mutex_unlock(&s->mu);
    if (r != NULL) {
        return r;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                     NULL) != SQLITE_OK) {
        reader_close(r);
        return NULL;
    }
    sqlite3_busy_timeout(r->db, 5000);
    if (sqlite3_prepare_v3(r->db, "SELECT body FROM events WHERE id = ?", -1,
                           SQLITE_PREPARE_PERSISTENT, &r->body, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(r->db,
                           "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR "
                           "expires_at > ?)",
                           -1, SQLITE_PREPARE_PERSISTENT, &r->kv, NULL) != SQLITE_OK) {
        reader_close(r);
        return NULL;
    }
    return r;
}

static void reader_release(struct sqlite_store *s, struct reader *r)
{
    sqlite3_reset(r->body);
    sqlite3_reset(r->kv);
    pthread_mutex_lock(&s->mu);
    if (s->n_readers == s->cap_readers) {
        size_t cap = s->cap_readers ? s->cap_readers * 2 : 8;
        struct reader **rs = realloc(s->readers, cap * sizeof(*rs));
        if (rs != NULL) {
            s->readers = rs;
            s->cap_readers = cap;
        }
    }
    if (s->n_readers < s->cap_readers) {
        s->readers[s->n_readers++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    reader_close(r);
}

static int sqlite_load_body(struct sy_store *st, struct sy_job *job)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct reader *r = reader_acquire(s);
    if (r == NULL) {
        return SY_EIO;
    }
    int rc;
    sqlite3_bind_text(r->body, 1, job->event_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(r->body);
    if (step == SQLITE_ROW) {
        job->body_len = (size_t)sqlite3_column_bytes(r->body, 0);
        job->body = dupn((const char *)sqlite3_column_text(r->body, 0), job->body_len);
        rc = job->body ? SY_OK : SY_ENOMEM;
    } else {
        rc = step == SQLITE_DONE ? SY_ENOTFOUND : SY_EIO;
    }
    reader_release(s, r);
    return rc;
}

static void sqlite_finish(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                          const char *error, int64_t retry_at_ms)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        /* not recorded: the job stays pending and runs again after a restart */
        pthread_mutex_lock(&s->mu);
        s->running--;
        pthread_mutex_unlock(&s->mu);
        sy_job_free(job);
        return;
    }
    o->kind = OP_FINISH;
    o->job = job;
    o->outcome = outcome;
    o->text = error ? strdup(error) : NULL;
    o->when_ms = retry_at_ms;
    push_op(s, o);
}

static int sqlite_kv_get(struct sy_store *st, const char *key, char **value)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    *value = NULL;
    struct reader *r = reader_acquire(s);
    if (r == NULL) {
        return SY_EIO;
    }
    int rc;
    sqlite3_bind_text(r->kv, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(r->kv, 2, sy_wall_ms());
    int step = sqlite3_step(r->kv);
    if (step == SQLITE_ROW) {
        *value = strdup((const char *)sqlite3_column_text(r->kv, 0));
        rc = *value ? SY_OK : SY_ENOMEM;
    } else {
        rc = step == SQLITE_DONE ? SY_OK : SY_EIO;
    }
    reader_release(s, r);
    return rc;
}

static int run_sync_op(struct sqlite_store *s, struct op *o)
{
    o->sync = true;
    int rc = push_op(s, o);
    long count = o->count;
    free(o->text);
    free(o->value);
    free(o);
    return rc < 0 ? rc : (int)(count > 0);
}

static int sqlite_kv_set(struct sy_store *st, const char *key, const char *value, uint64_t ttl_ms)
{
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return SY_ENOMEM;
    }
    o->kind = OP_KV_SET;
    o->text = strdup(key);
    o->value = strdup(value);
    o->when_ms = ttl_ms > 0 ? sy_wall_ms() + (int64_t)ttl_ms : 0;
    int rc = run_sync_op((struct sqlite_store *)st, o);
    return rc < 0 ? rc : SY_OK;
}

static int sqlite_kv_delete(struct sy_store *st, const char *key)
{
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return SY_ENOMEM;
    }
    o->kind = OP_KV_DEL;
    o->text = strdup(key);
    int rc = run_sync_op((struct sqlite_store *)st, o);
    return rc < 0 ? rc : SY_OK;
}

static int sqlite_replay(struct sy_store *st, const char *event_id, long *count)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return SY_ENOMEM;
    }
    o->kind = OP_REPLAY;
    o->text = event_id ? strdup(event_id) : NULL;
    o->sync = true;
    int rc = push_op(s, o);
    *count = o->count;
    free(o->text);
    free(o);
    return rc;
}

static struct json_t *sqlite_list(struct sy_store *st, const char *status, int limit,
                                  struct sy_error *err)
{
    return sy_inspect_list(((struct sqlite_store *)st)->path, status, limit, err);
}

static struct json_t *sqlite_show(struct sy_store *st, const char *id, struct sy_error *err)
{
    return sy_inspect_show(((struct sqlite_store *)st)->path, id, err);
}

static void release(struct sqlite_store *s)
{
    if (s->ckpt_started) {
        pthread_mutex_lock(&s->mu);
        s->closing = true;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->ckpt_thread, NULL);
    }
    if (s->ckpt_db) {
        sqlite3_close(s->ckpt_db);
    }
    for (size_t i = 0; i < s->n_readers; i++) {
        reader_close(s->readers[i]);
    }
    free(s->readers);
    while (s->ready != NULL) {
        struct sy_job *next = s->ready->next;
        sy_job_free(s->ready);
        s->ready = next;
    }
    for (size_t i = 0; i < s->n_heap; i++) {
        sy_job_free(s->heap[i]);
    }
    free(s->heap);
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->insert_job);
    sqlite3_finalize(s->finish_job);
    sqlite3_finalize(s->kv_set);
    sqlite3_finalize(s->kv_del);
    if (s->db) {
        sqlite3_close(s->db);
    }
    pthread_cond_destroy(&s->ckpt_cv);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_cond_destroy(&s->ready_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

static void sqlite_close(struct sy_store *st)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_signal(&s->cv);
    pthread_cond_broadcast(&s->ready_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    release(s);
}

static const struct sy_store_ops sqlite_ops = {
    .submit = sqlite_submit,
    .ready = sqlite_ready,
    .close = sqlite_close,
    .set_router = sqlite_set_router,
    .next_job = sqlite_next_job,
    .load_body = sqlite_load_body,
    .finish = sqlite_finish,
    .kv_get = sqlite_kv_get,
    .kv_set = sqlite_kv_set,
    .kv_delete = sqlite_kv_delete,
    .replay = sqlite_replay,
    .list = sqlite_list,
    .show = sqlite_show,
};

/* Jobs waiting for a retry go back on the heap; pending ones are read by the refill. */
static int load_jobs(struct sqlite_store *s)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, event_id, handler, attempts, due_at FROM jobs WHERE "
                           "state = 'retrying'",
                           -1, &q, NULL) != SQLITE_OK) {
        return SY_EIO;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        struct sy_job *j =
            job_new(sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1),
                    (const char *)sqlite3_column_text(q, 2), sqlite3_column_int(q, 3));
        if (j != NULL) {
            j->due_ms = sqlite3_column_int64(q, 4);
            heap_push(s, j);
        }
    }
    sqlite3_finalize(q);
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM jobs WHERE state = 'dead'", -1, &q, NULL) ==
            SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        s->dead = sqlite3_column_int64(q, 0);
        sy_metrics_set(&sy_metrics.jobs_dead, (uint64_t)s->dead);
    }
    sqlite3_finalize(q);
    s->spilled = true; /* pending jobs from before the restart: read them in id order */
    s->spill_from = 0;
    return SY_OK;
}

static bool prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK;
}

struct sy_store *sy_store_sqlite_open(const struct sy_config *cfg, const char *path,
                                      struct sy_error *err)
{
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    s->queue.limit = cfg->store.queue;
    s->max_batch = cfg->store.max_batch;
    s->healthy = true;
    s->retention_ms = cfg->dedupe_retention_ms;
    s->purge_every_ms = cfg->dedupe_retention_ms / 10;
    if (s->purge_every_ms < 1000) {
        s->purge_every_ms = 1000;
    }
    if (s->purge_every_ms > 60000) {
        s->purge_every_ms = 60000;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    pthread_cond_init(&s->ready_cv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);

    if (make_parent_dirs(path) != 0) {
        sy_error_set(err, path, 0, "cannot create the store's folder: %s", strerror(errno));
        goto fail;
    }
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sy_error_set(err, path, 0, "cannot open the SQLite store: %s", fail_reason(s->db));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    static const char *const sync_pragma[] = {
        [SY_SYNC_FULL] = "PRAGMA synchronous=FULL",
        [SY_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
        [SY_SYNC_OFF] = "PRAGMA synchronous=OFF",
    };
    if (exec_sql(s->db, "PRAGMA journal_mode=WAL") != SY_OK ||
        exec_sql(s->db, sync_pragma[cfg->store.synchronous]) != SY_OK ||
        exec_sql(s->db, "PRAGMA foreign_keys=ON") != SY_OK || exec_sql(s->db, schema) != SY_OK) {
        sy_error_set(err, path, 0, "cannot initialise the SQLite store: %s", sqlite3_errmsg(s->db));
        goto fail;
    }
    sqlite3_stmt *ver = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &ver, NULL) == SQLITE_OK &&
        sqlite3_step(ver) == SQLITE_ROW) {
        version = sqlite3_column_int(ver, 0);
    }
    sqlite3_finalize(ver);
    if (version == 0) {
        exec_sql(s->db, "PRAGMA user_version=1");
    } else if (version != SCHEMA_VERSION) {
        sy_error_set(err, path, 0,
                     "the store has schema version %d; this switchyard understands version %d",
                     version, SCHEMA_VERSION);
        goto fail;
    }
    if (!prepare(s,
                 "INSERT OR IGNORE INTO events(id, type, integration, received_at, headers, "
                 "body, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 &s->insert) ||
        !prepare(s,
                 "INSERT INTO jobs(event_id, handler, state, attempts, due_at, created_at, "
                 "updated_at) VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?3)",
                 &s->insert_job) ||
        !prepare(s,
                 "UPDATE jobs SET state = ?1, attempts = ?2, due_at = ?3, last_error = ?4, "
                 "updated_at = ?5 WHERE id = ?6",
                 &s->finish_job) ||
        !prepare(s, "INSERT OR REPLACE INTO kv(key, value, expires_at) VALUES (?, ?, ?)",
                 &s->kv_set) ||
        !prepare(s, "DELETE FROM kv WHERE key = ?", &s->kv_del)) {
        sy_error_set(err, path, 0, "cannot prepare statements: %s", sqlite3_errmsg(s->db));
        goto fail;
    }
    if (load_jobs(s) != SY_OK) {
        sy_error_set(err, path, 0, "cannot read the jobs: %s", sqlite3_errmsg(s->db));
        goto fail;
    }
    /* the hook replaces SQLite's own autocheckpoint on this connection */
    sqlite3_wal_hook(s->db, on_wal_commit, s);
    if (sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sy_error_set(err, path, 0, "cannot open the SQLite store: %s", fail_reason(s->ckpt_db));
        goto fail;
    }
    sqlite3_exec(s->ckpt_db, sync_pragma[cfg->store.synchronous], NULL, NULL, NULL);
    if (pthread_create(&s->ckpt_thread, NULL, checkpointer_main, s) != 0) {
        sy_error_set(err, path, 0, "cannot start the checkpoint thread");
        goto fail;
    }
    s->ckpt_started = true;
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        sy_error_set(err, path, 0, "cannot start the store writer thread");
        goto fail;
    }
    return &s->base;
fail:
    release(s);
    return NULL;
}
