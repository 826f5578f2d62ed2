#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "metrics.h"
#include "store/store.h"
#include "util/log.h"

#define SCHEMA_VERSION 1

struct sqlite_store {
    struct sy_store base;
    sqlite3 *db; /* the writer's connection: used only by the writer thread after open */
    sqlite3_stmt *insert;
    sqlite3_stmt *purge;

    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    struct sy_append *head, *tail;
    size_t depth;
    size_t limit;
    size_t max_batch;
    bool closing;
    bool healthy;

    uint64_t retention_ms;
    uint64_t purge_every_ms;

    /*
     * Checkpoints copy the WAL into the database and fsync it: tens of
     * milliseconds that must not stall the writer. A second thread with its
     * own connection runs them; the writer only steps in when the WAL
     * outgrows WAL_HARD_FRAMES (a sustained load can starve passive ones).
     */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    bool ckpt_started;
    bool ckpt_wanted; /* guarded by mu */
    pthread_cond_t ckpt_cv;
    int wal_frames; /* writer thread only */
};

#define WAL_SOFT_FRAMES 1000
#define WAL_HARD_FRAMES 16384

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL,"
    "  integration TEXT,"
    "  received_at INTEGER NOT NULL,"
    "  headers TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'new'"
    ");";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

static int exec_sql(struct sqlite_store *s, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sy_log(SY_LOG_ERROR, "sqlite statement failed", "sql", sql, "error", msg, NULL);
        sqlite3_free(msg);
        return SY_EIO;
    }
    return SY_OK;
}

/* Insert one batch in one transaction. Sets each a->status and a->is_new. */
static void commit_batch(struct sqlite_store *s, struct sy_append *batch, size_t n)
{
    double t0 = mono_s();
    int status = exec_sql(s, "BEGIN IMMEDIATE");
    for (struct sy_append *a = batch; status == SY_OK && a != NULL; a = a->next) {
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
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            a->is_new = sqlite3_changes(s->db) == 1;
        } else {
            sy_log(SY_LOG_ERROR, "sqlite insert failed", "error", sqlite3_errmsg(s->db), NULL);
            status = SY_EIO;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (status == SY_OK) {
        status = exec_sql(s, "COMMIT");
    }
    if (status != SY_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sy_metrics_add(&sy_metrics.store_errors, 1);
    }
    for (struct sy_append *a = batch; a != NULL; a = a->next) {
        a->status = status;
        if (status != SY_OK) {
            a->is_new = false;
        }
    }
    pthread_mutex_lock(&s->mu);
    s->healthy = status == SY_OK;
    pthread_mutex_unlock(&s->mu);
    sy_histogram_observe(&sy_metrics.commit_seconds, mono_s() - t0);
    sy_histogram_observe(&sy_metrics.batch_size, (double)n);
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

/* Returns the frames left in the WAL after the checkpoint (or -1). */
static int checkpoint(sqlite3 *db, int mode)
{
    int log = -1, done = -1;
    int rc = sqlite3_wal_checkpoint_v2(db, "main", mode, &log, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
        sy_log(SY_LOG_WARN, "WAL checkpoint failed", "error", sqlite3_errmsg(db), NULL);
    }
    return log;
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
        checkpoint(s->ckpt_db, SQLITE_CHECKPOINT_PASSIVE);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Delete events older than the retention, a bounded chunk at a time. */
static void purge_expired(struct sqlite_store *s)
{
    int64_t cutoff = now_ms() - (int64_t)s->retention_ms;
    int deleted = 0;
    do {
        sqlite3_bind_int64(s->purge, 1, cutoff);
        int rc = sqlite3_step(s->purge);
        deleted = rc == SQLITE_DONE ? sqlite3_changes(s->db) : 0;
        if (rc != SQLITE_DONE) {
            sy_log(SY_LOG_WARN, "purge of expired events failed", "error", sqlite3_errmsg(s->db),
                   NULL);
        }
        sqlite3_reset(s->purge);
    } while (deleted > 0 && !s->closing);
}

static void *writer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_setname_np(pthread_self(), "sy-store");
    double next_purge = mono_s();
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->head == NULL && !s->closing) {
            if (mono_s() >= next_purge) {
                pthread_mutex_unlock(&s->mu);
                purge_expired(s);
                next_purge = mono_s() + (double)s->purge_every_ms / 1000.0;
                pthread_mutex_lock(&s->mu);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
        if (s->head == NULL) {
            break; /* closing and drained */
        }
        struct sy_append *batch = s->head, *last = s->head;
        size_t n = 1;
        while (last->next != NULL && n < s->max_batch) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (s->head == NULL) {
            s->tail = NULL;
        }
        last->next = NULL;
        s->depth -= n;
        sy_metrics_set(&sy_metrics.queue_depth, s->depth);
        pthread_mutex_unlock(&s->mu);

        commit_batch(s, batch, n);
        while (batch != NULL) {
            struct sy_append *next = batch->next;
            batch->next = NULL;
            batch->done(batch);
            batch = next;
        }
        if (s->wal_frames >= WAL_HARD_FRAMES) {
            /* the checkpointer is not keeping up: bound the WAL's size here */
            checkpoint(s->db, SQLITE_CHECKPOINT_PASSIVE);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int sqlite_submit(struct sy_store *st, struct sy_append *a)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    int rc = SY_OK;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        rc = SY_EUNAVAIL;
    } else if (s->depth >= s->limit) {
        rc = SY_EFULL;
    } else {
        a->next = NULL;
        if (s->tail) {
            s->tail->next = a;
        } else {
            s->head = a;
        }
        s->tail = a;
        s->depth++;
        sy_metrics_set(&sy_metrics.queue_depth, s->depth);
        if (s->depth == 1) {
            pthread_cond_signal(&s->cv);
        }
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
    pthread_cond_destroy(&s->ckpt_cv);
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->purge);
    if (s->db) {
        sqlite3_close(s->db);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void sqlite_close(struct sy_store *st)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_signal(&s->cv);
    pthread_cond_signal(&s->ckpt_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    release(s);
}

static const struct sy_store_ops sqlite_ops = {
    .submit = sqlite_submit,
    .ready = sqlite_ready,
    .close = sqlite_close,
};

struct sy_store *sy_store_sqlite_open(const struct sy_config *cfg, const char *path,
                                      struct sy_error *err)
{
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    s->limit = cfg->store.queue;
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
    if (exec_sql(s, "PRAGMA journal_mode=WAL") != SY_OK ||
        exec_sql(s, sync_pragma[cfg->store.synchronous]) != SY_OK ||
        exec_sql(s, "PRAGMA foreign_keys=ON") != SY_OK || exec_sql(s, schema) != SY_OK) {
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
        exec_sql(s, "PRAGMA user_version=1");
    } else if (version != SCHEMA_VERSION) {
        sy_error_set(err, path, 0,
                     "the store has schema version %d; this switchyard understands version %d",
                     version, SCHEMA_VERSION);
        goto fail;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO events(id, type, integration, received_at, "
                           "headers, body) VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &s->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           /* rows arrive in time order: look at the oldest only, no index */
                           "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq "
                           "LIMIT 5000) AND received_at < ?",
                           -1, &s->purge, NULL) != SQLITE_OK) {
        sy_error_set(err, path, 0, "cannot prepare statements: %s", sqlite3_errmsg(s->db));
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
