#ifndef SY_STORE_SQLITE_INT_H
#define SY_STORE_SQLITE_INT_H

/* The SQLite backend's private parts, shared by its files (sqlite_*.c). */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/health.h"
#include "store/queue.h"
#include "store/sched.h"
#include "store/sqlite_ids.h"
#include "store/store.h"

#define SCHEMA_VERSION SY_STORE_SCHEMA
#define WAL_HARD_FACTOR 16 /* the writer checkpoints itself at this many times checkpoint_at */
#define WAL_TAIL_FRAMES 256 /* what the writer copies itself to close a checkpoint */
#define READY_CAP 8192      /* jobs held in memory; the rest wait in the database */
#define OPS_PER_BATCH 4096
#define OPS_CAP 65536 /* queued ops at most; a journal write waits beyond it */

/* A write other than an event append, applied in the writer's next transaction. */
struct op {
    enum { OP_FINISH, OP_KV_SET, OP_KV_DEL, OP_REPLAY, OP_CALL, OP_RERUN } kind;
    struct op *next;
    struct sy_job *job; /* OP_FINISH: owned */
    enum sy_job_outcome outcome;
    char *text; /* OP_FINISH: error; OP_KV_*: key; OP_REPLAY: event id or NULL */
    char *value;
    int64_t when_ms;             /* retry time or kv expiry (0 = none) */
    int64_t job_id;              /* OP_CALL */
    struct sy_call_record *call; /* OP_CALL: owned */
    /* synchronous ops: the caller waits on done_cv */
    bool sync;
    bool done;
    int status;
    long count;
    struct sy_rerun *items; /* OP_RERUN: borrowed from the caller, who waits */
    size_t n_items;
    bool promoted;   /* OP_REPLAY: a quarantined event was routed */
    char reason[256]; /* OP_REPLAY: why a quarantined event still cannot be routed */
};

/* A read connection with its statements; pooled. */
struct reader {
    sqlite3 *db;
    sqlite3_stmt *body;  /* a job's event's body and norm, by the job's id */
    sqlite3_stmt *kv;    /* SELECT value FROM kv WHERE key = ? AND not expired */
    sqlite3_stmt *calls; /* a job's journal */
};

struct sqlite_store {
    struct sy_store base;
    char *path;
    sqlite3 *db; /* the writer's connection: used only by the writer thread after open */
    char settings[64]; /* its journal mode and synchronous level, read back at open */
    sqlite3_stmt *insert, *insert_job, *finish_job, *defer_job, *kv_set, *kv_del, *next_of_key,
        *insert_call, *id_at;

    /*
     * The stored events' ids (sqlite_ids.c). 'added' lists what the writer's
     * open transaction put in the map, taken back if it does not commit
     * (writer thread only).
     */
    struct sy_sqlite_ids ids;
    bool ids_live; /* loaded by a writable open; a read-only store finds ids by a scan */
    struct sy_sqlite_added {
        uint64_t h;
        int64_t seq;
    } *added;
    size_t n_added, cap_added;

    pthread_t thread;
    pthread_mutex_t mu;      /* guards everything below except what is marked otherwise */
    pthread_cond_t cv;       /* wakes the writer */
    pthread_cond_t done_cv;  /* synchronous ops finished, or the op queue has room */
    pthread_cond_t ready_cv; /* a job became runnable */
    struct sy_append_queue queue;
    size_t max_batch;
    struct op *ops, *ops_tail;
    size_t n_ops;
    bool closing;
    bool healthy;
    struct sy_health health; /* the writer's transactions, for probes (store/health.h) */
    /* a test hook: the list and show reads wait this long first (a reader stalled by a slow
     * disk), from SY_TEST_SQLITE_READ_DELAY_MS; 0 otherwise */
    int64_t test_read_delay_ms;

    sy_route_fn route;
    void *route_ctx;
    struct sy_routes routes; /* writer thread only: the current batch's routing */

    struct sy_sched sched; /* runnable jobs, retries, held ordering keys */
    /*
     * When the ready queue is full, new jobs stay only in the database and
     * are read back in id order from 'spill_from' (pending jobs only).
     */
    bool spilled;
    int64_t spill_from;
    int64_t journaled_at_open; /* the highest job id with a journal when the store opened */
    size_t running;           /* handed to workers, not finished */
    long dead;                /* jobs in state 'dead' */

    uint64_t retention_ms;
    uint64_t purge_every_ms;

    /* read connections for workers and the admin thread */
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
     * ckpt_hard_frames anyway. The later a checkpoint starts, the more
     * of the index pages that random ids scatter it finds written twice
     * or more, and copies once (store.checkpoint_at, docs/PERFORMANCE.md).
     */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    bool ckpt_started;
    bool ckpt_wanted;
    bool ckpt_finish; /* atomic: the writer should copy the last frames */
    pthread_cond_t ckpt_cv;
    int wal_frames; /* writer thread only */
    int ckpt_soft_frames; /* a background checkpoint starts at this many WAL frames */
    int ckpt_hard_frames; /* the writer copies the WAL itself at this many */
};

/* Jobs a transaction made runnable, handed to the scheduler after the commit. */
struct sy_job_list {
    struct sy_job **j;
    size_t n, cap;
};

/* Add j to the list (on no memory it is freed: it stays pending in the database). */
void sy_sqlite_list_add(struct sy_job_list *l, struct sy_job *j);

/* sqlite_writer.c: one statement stepped to its end (logged on error); text or NULL bound */
int sy_sqlite_step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *what);
void sy_sqlite_bind_text_or_null(sqlite3_stmt *st, int col, const char *text, int len);

/* sqlite_replay.c: the writer's part of sy_store_replay (in its transaction) */
int sy_sqlite_apply_replay(struct sqlite_store *s, struct op *o, struct sy_job_list *requeued,
                           struct sy_job_list *promoted);

/* sqlite_rerun.c: the writer's part of sy_store_rerun (in its transaction); the scan. */
int sy_sqlite_apply_rerun(struct sqlite_store *s, struct op *o, struct sy_job_list *dead_again,
                          struct sy_job_list *again);
int sy_sqlite_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued);
int sy_sqlite_scan(struct sy_store *st, const struct sy_scan_query *q,
                   int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx);
/* A read connection from the pool, and back. */
struct reader *sy_sqlite_reader_acquire(struct sqlite_store *s);
void sy_sqlite_reader_release(struct sqlite_store *s, struct reader *r);

/* sqlite_schema.c: create or migrate the schema, prepare the writer's statements. */
int sy_sqlite_schema(struct sqlite_store *s, struct sy_error *err);
int sy_sqlite_exec(sqlite3 *db, const char *sql);
char *sy_sqlite_dupn(const char *s, size_t n);
struct sy_job *sy_sqlite_job_new(int64_t id, const char *event_id, const char *handler,
                                 const char *key, int attempts, int runs);

/*
 * sqlite_ids.c, the writer's side: load the map at open (hashing rows that
 * lack it); tell whether an id is stored (reads the candidates' ids in the
 * writer's transaction); add an inserted event (remembered until the batch
 * ends: a batch that does not commit takes its adds back); remove a purged one.
 */
int sy_sqlite_ids_load(struct sqlite_store *s, struct sy_error *err);
/* The map for sy_sqlite_event_seq: the loaded one, or NULL (scan) in a read-only store. */
static inline struct sy_sqlite_ids *sy_sqlite_live_ids(struct sqlite_store *s)
{
    return s->ids_live ? &s->ids : NULL;
}
int sy_sqlite_ids_find(struct sqlite_store *s, uint64_t h, const char *id, size_t len, bool *dup);
int sy_sqlite_ids_add(struct sqlite_store *s, uint64_t h, int64_t seq);
void sy_sqlite_ids_end_batch(struct sqlite_store *s, bool committed);
void sy_sqlite_ids_remove(struct sqlite_store *s, uint64_t h, int64_t seq);

/* sqlite_writer.c: the writer thread. */
void *sy_sqlite_writer_main(void *arg);
/* Queue an op; with o->sync, wait until it is committed and return its status. */
int sy_sqlite_push_op(struct sqlite_store *s, struct op *o);
/* Jobs left from before a start: retries to the scheduler, pending ones to the refill. */
int sy_sqlite_load_jobs(struct sqlite_store *s);

/*
 * sqlite_vfs.c: the VFS the writer and the checkpointer open the store
 * through at synchronous=FULL: it gathers a commit's WAL writes (and a
 * checkpoint's runs of pages) into one write(2). Registered once, on the
 * first call; returns SY_OK or SY_EIO (then open without it). Any thread.
 */
#define SY_SQLITE_GATHER_VFS "sy-gather"
int sy_sqlite_gather_vfs(void);

/* sqlite_ckpt.c: checkpoints. */
int sy_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int frames);
/* One passive checkpoint; returns the frames it left uncopied (-1 on an error or when busy). */
int sy_sqlite_checkpoint(sqlite3 *db);
void *sy_sqlite_checkpointer_main(void *arg);

/* sqlite_read.c: pooled read connections. */
int sy_sqlite_load_body(struct sy_store *st, struct sy_job *job);
int sy_sqlite_kv_get(struct sy_store *st, const char *key, char **value);
int sy_sqlite_journal_load(struct sy_store *st, const struct sy_job *job,
                           struct sy_call_record **recs, size_t *n);
void sy_sqlite_readers_close(struct sqlite_store *s);

#endif
