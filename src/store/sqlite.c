/*
 * The SQLite store: WAL, one writer thread doing group commits
 * (sqlite_writer.c), checkpoints on a thread of their own (sqlite_ckpt.c),
 * pooled readers (sqlite_read.c), the schema and its migrations
 * (sqlite_schema.c). This file is the store.h interface.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/inspect.h"
#include "store/sqlite_int.h"
#include "util/clock.h"
#include "util/log.h"

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

/* The database's page size (4096 unless it was created otherwise). */
static int page_size(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int size = 4096;
    if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) >= 512) {
        size = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return size;
}

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

static void sqlite_health(struct sy_store *st, struct sy_store_health *h)
{
    sy_health_read(&((struct sqlite_store *)st)->health, sy_wall_ms(), h);
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
    while (s->sched.ready == NULL && !s->closing) {
        if (pthread_cond_timedwait(&s->ready_cv, &s->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    struct sy_job *j = s->closing ? NULL : sy_sched_pop(&s->sched);
    if (j != NULL) {
        s->running++;
        if (s->spilled && s->sched.n_ready < READY_CAP / 2) {
            pthread_cond_signal(&s->cv); /* time for a refill */
        }
    }
    pthread_mutex_unlock(&s->mu);
    return j;
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
    sy_sqlite_push_op(s, o);
}

static void sqlite_journal_add(struct sy_store *st, const struct sy_job *job,
                               struct sy_call_record *rec)
{
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        sy_call_record_free(rec);
        return;
    }
    o->kind = OP_CALL;
    o->job_id = job->id;
    o->call = rec;
    sy_sqlite_push_op((struct sqlite_store *)st, o);
}

static int run_sync_op(struct sqlite_store *s, struct op *o)
{
    o->sync = true;
    int rc = sy_sqlite_push_op(s, o);
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

static int sqlite_replay(struct sy_store *st, const char *event_id, struct sy_replay_result *r)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return SY_ENOMEM;
    }
    o->kind = OP_REPLAY;
    o->text = event_id ? strdup(event_id) : NULL;
    o->sync = true;
    int rc = sy_sqlite_push_op(s, o);
    r->jobs = o->count;
    r->was_quarantined = o->promoted || o->reason[0] != '\0';
    r->routed = o->promoted;
    snprintf(r->reason, sizeof(r->reason), "%s", o->reason);
    free(o->text);
    free(o);
    return rc;
}

static void test_read_delay(const struct sqlite_store *s)
{
    if (s->test_read_delay_ms > 0) {
        struct timespec d = {s->test_read_delay_ms / 1000, s->test_read_delay_ms % 1000 * 1000000L};
        nanosleep(&d, NULL);
    }
}

static struct json_t *sqlite_list(struct sy_store *st, const struct sy_event_filter *f,
                                  struct sy_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    test_read_delay(s);
    return sy_inspect_list(s->path, &s->ids, f, err);
}

static struct json_t *sqlite_show(struct sy_store *st, const char *id, struct sy_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    test_read_delay(s);
    return sy_inspect_show(s->path, &s->ids, id, err);
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
    sy_sqlite_readers_close(s);
    sy_sched_dispose(&s->sched);
    sy_routes_dispose(&s->routes);
    sqlite3_stmt *stmts[] = {s->insert, s->insert_job,  s->finish_job,  s->defer_job, s->kv_set,
                             s->kv_del, s->next_of_key, s->insert_call, s->id_at};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_finalize(stmts[i]);
    }
    if (s->db) {
        sqlite3_close(s->db);
    }
    pthread_cond_destroy(&s->ckpt_cv);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_cond_destroy(&s->ready_cv);
    pthread_mutex_destroy(&s->mu);
    sy_health_dispose(&s->health);
    pthread_rwlock_destroy(&s->ids.lock);
    sy_idmap_free(s->ids.map);
    free(s->added);
    free(s->path);
    free(s);
}

static void sqlite_close(struct sy_store *st)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    sy_health_closing(&s->health);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_signal(&s->cv);
    pthread_cond_broadcast(&s->ready_cv);
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    release(s);
}

static void sqlite_describe(struct sy_store *st, char *out, size_t len)
{
    snprintf(out, len, "%s", ((struct sqlite_store *)st)->settings);
}

/*
 * The journal mode and synchronous level the writer's connection really has, read back
 * after setting them: what the start-up log says and the tests check.
 */
static void read_settings(struct sqlite_store *s)
{
    static const char *const levels[] = {"off", "normal", "full", "extra"};
    char mode[16] = "?";
    int level = -1;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0) != NULL) {
        snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        level = sqlite3_column_int(q, 0);
    }
    sqlite3_finalize(q);
    snprintf(s->settings, sizeof(s->settings), "journal_mode=%s synchronous=%s", mode,
             level >= 0 && level <= 3 ? levels[level] : "?");
}

static const struct sy_store_ops sqlite_ops = {
    .submit = sqlite_submit,
    .health = sqlite_health,
    .close = sqlite_close,
    .set_router = sqlite_set_router,
    .next_job = sqlite_next_job,
    .load_body = sy_sqlite_load_body,
    .finish = sqlite_finish,
    .kv_get = sy_sqlite_kv_get,
    .kv_set = sqlite_kv_set,
    .kv_delete = sqlite_kv_delete,
    .replay = sqlite_replay,
    .journal_add = sqlite_journal_add,
    .journal_load = sy_sqlite_journal_load,
    .list = sqlite_list,
    .show = sqlite_show,
    .scan = sy_sqlite_scan,
    .rerun = sy_sqlite_rerun,
    .describe = sqlite_describe,
};

/* A store for 'path' with its locks and lists ready and nothing opened (release() undoes it). */
static struct sqlite_store *store_new(const char *path, const struct sy_store_ops *ops)
{
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        return NULL;
    }
    s->base.ops = ops;
    if ((s->ids.map = sy_idmap_new()) == NULL) {
        free(s->path);
        free(s);
        return NULL;
    }
    pthread_rwlock_init(&s->ids.lock, NULL);
    sy_sched_init(&s->sched);
    sy_routes_init(&s->routes);
    pthread_mutex_init(&s->mu, NULL);
    sy_health_init(&s->health, "sqlite");
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    pthread_cond_init(&s->ready_cv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    return s;
}

struct sy_store *sy_store_sqlite_open(const struct sy_config *cfg, const char *path,
                                      struct sy_error *err)
{
    struct sqlite_store *s = store_new(path, &sqlite_ops);
    if (s == NULL) {
        return NULL;
    }
    s->queue.limit = cfg->store.queue;
    s->max_batch = cfg->store.max_batch;
    s->healthy = true;
#ifdef SY_TEST_HOOKS
    /* a stalled reader for tests/integration/test_store_hang.py; not in a package build */
    const char *delay = getenv("SY_TEST_SQLITE_READ_DELAY_MS");
    s->test_read_delay_ms = delay != NULL ? strtoll(delay, NULL, 10) : 0;
#endif
    s->retention_ms = cfg->dedupe_retention_ms;
    s->purge_every_ms = cfg->dedupe_retention_ms / 10;
    if (s->purge_every_ms < 1000) {
        s->purge_every_ms = 1000;
    }
    if (s->purge_every_ms > 60000) {
        s->purge_every_ms = 60000;
    }
    if (make_parent_dirs(path) != 0) {
        sy_error_set(err, path, 0, "cannot create the store's folder: %s", strerror(errno));
        goto fail;
    }
    /* at FULL every commit syncs its WAL: writes can be gathered until then (sqlite_vfs.c) */
    const char *vfs = cfg->store.synchronous == SY_SYNC_FULL && sy_sqlite_gather_vfs() == SY_OK
                          ? SY_SQLITE_GATHER_VFS
                          : NULL;
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
        sy_error_set(err, path, 0, "cannot open the SQLite store: %s",
                     s->db ? sqlite3_errmsg(s->db) : "cannot allocate");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    static const char *const sync_pragma[] = {
        [SY_SYNC_FULL] = "PRAGMA synchronous=FULL",
        [SY_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
        [SY_SYNC_OFF] = "PRAGMA synchronous=OFF",
    };
    if (sy_sqlite_exec(s->db, "PRAGMA journal_mode=WAL") != SY_OK ||
        sy_sqlite_exec(s->db, sync_pragma[cfg->store.synchronous]) != SY_OK) {
        sy_error_set(err, path, 0, "cannot initialise the SQLite store: %s", sqlite3_errmsg(s->db));
        goto fail;
    }
    if (sy_sqlite_schema(s, err) != SY_OK) {
        goto fail;
    }
    /* an upgrade runs with a rollback journal and without foreign keys */
    if (sy_sqlite_exec(s->db, "PRAGMA journal_mode=WAL") != SY_OK ||
        sy_sqlite_exec(s->db, "PRAGMA foreign_keys=ON") != SY_OK) {
        sy_error_set(err, path, 0, "cannot initialise the SQLite store: %s", sqlite3_errmsg(s->db));
        goto fail;
    }
    read_settings(s);
    if (sy_sqlite_ids_load(s, err) != SY_OK) {
        goto fail;
    }
    int page = page_size(s->db);
    uint64_t soft = cfg->store.checkpoint_at / (uint64_t)page;
    s->ckpt_soft_frames = soft < 64 ? 64 : (int)soft;
    s->ckpt_hard_frames = s->ckpt_soft_frames * WAL_HARD_FACTOR;
    if (sy_sqlite_load_jobs(s) != SY_OK) {
        sy_error_set(err, path, 0, "cannot read the jobs: %s", sqlite3_errmsg(s->db));
        goto fail;
    }
    /* the hook replaces SQLite's own autocheckpoint on this connection */
    sqlite3_wal_hook(s->db, sy_sqlite_wal_hook, s);
    if (sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs) !=
        SQLITE_OK) {
        sy_error_set(err, path, 0, "cannot open the SQLite store: %s",
                     s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : "cannot allocate");
        goto fail;
    }
    sqlite3_exec(s->ckpt_db, sync_pragma[cfg->store.synchronous], NULL, NULL, NULL);
    if (pthread_create(&s->ckpt_thread, NULL, sy_sqlite_checkpointer_main, s) != 0) {
        sy_error_set(err, path, 0, "cannot start the checkpoint thread");
        goto fail;
    }
    s->ckpt_started = true;
    if (pthread_create(&s->thread, NULL, sy_sqlite_writer_main, s) != 0) {
        sy_error_set(err, path, 0, "cannot start the store writer thread");
        goto fail;
    }
    return &s->base;
fail:
    release(s);
    return NULL;
}

/* ---- read-only, for backtests: the reader pool and nothing else ---- */

static void ro_close(struct sy_store *st)
{
    release((struct sqlite_store *)st);
}

static const struct sy_store_ops sqlite_ro_ops = {
    .close = ro_close,
    .kv_get = sy_sqlite_kv_get,
    .journal_load = sy_sqlite_journal_load,
    .scan = sy_sqlite_scan,
};

struct sy_store *sy_store_sqlite_open_readonly(const char *path, struct sy_error *err)
{
    struct sqlite_store *s = store_new(path, &sqlite_ro_ops);
    if (s == NULL) {
        return NULL;
    }
    struct reader *r = sy_sqlite_reader_acquire(s);
    if (r == NULL) {
        sy_error_set(err, path, 0, "cannot read the store (is it a switchyard database?)");
        release(s);
        return NULL;
    }
    sy_sqlite_reader_release(s, r);
    return &s->base;
}
