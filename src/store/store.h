#ifndef SY_STORE_H
#define SY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util/error.h"

/*
 * The durable store: events deduplicated by id. One interface, several
 * backends (sqlite: now). Appends are asynchronous and group-committed by
 * the backend's own writer thread; everything else is synchronous.
 */
struct sy_store;

/*
 * One append request. The caller allocates it and keeps it (and every
 * buffer it points to) alive until done() is called. done() is called
 * exactly once, from the store's writer thread, after the event is durable
 * (status SY_OK) or the transaction failed (status < 0).
 */
struct sy_append {
    const char *id; /* borrowed; id_len bytes */
    size_t id_len;
    const char *type; /* borrowed */
    size_t type_len;
    const char *integration; /* borrowed, NUL-terminated, may be NULL */
    const char *body;        /* borrowed: the raw request body */
    size_t body_len;
    const char *headers; /* borrowed: JSON object of the headers kept for replay */
    size_t headers_len;
    int64_t received_ms; /* Unix time in milliseconds */

    int status;  /* out: SY_OK or a negative SY_E* */
    bool is_new; /* out: false when the id was already stored */
    void (*done)(struct sy_append *a);
    struct sy_append *next; /* store-internal */
};

/*
 * Open the store named by cfg->store.url and start its writer thread.
 * 'cfg' is borrowed and must outlive the store. Returns NULL and fills 'err'.
 */
struct sy_store *sy_store_open(const struct sy_config *cfg, struct sy_error *err);

/*
 * Queue 'a' for the next group commit. Returns SY_OK (done() will follow),
 * SY_EFULL when the bounded queue is full, or SY_EUNAVAIL when the store is
 * closing or failing; in both error cases done() is not called. Any thread.
 */
int sy_store_submit(struct sy_store *st, struct sy_append *a);

/* True when the last transaction succeeded and the store accepts work. Any thread. */
bool sy_store_ready(struct sy_store *st);

/* Commit everything queued, stop the writer and close. NULL is a no-op. */
void sy_store_close(struct sy_store *st);

/* ---- jobs: one per (event, handler), created with the event ---- */

/*
 * Which handlers take an event: fills names[0..max) with borrowed handler
 * names (valid until the next call from the same thread) and returns how
 * many. Called on the store's writer thread inside the append transaction.
 */
typedef size_t (*sy_route_fn)(void *ctx, const char *type, size_t type_len, const char *integration,
                              const char **names, size_t max);

/* A job handed to a worker. Owned by the worker until sy_store_finish. */
/* A kv write made by a running job, committed with its outcome (see sy_store_bind_job). */
struct sy_kv_write {
    struct sy_kv_write *next;
    char *key;
    char *value;        /* NULL: delete */
    int64_t expires_ms; /* wall clock; 0 = never */
    uint64_t ttl_ms;
};

struct sy_job {
    int64_t id;
    char *event_id;
    char *handler;
    int attempts; /* finished attempts before this one */
    char *body;   /* the event's raw JSON; NULL until loaded */
    size_t body_len;
    int64_t due_ms;                    /* store-internal */
    char *entry;                       /* store-internal (the Redis stream entry) */
    struct sy_job *next;               /* store-internal */
    struct sy_kv_write *kv, **kv_tail; /* writes of this attempt, in order */
};

enum sy_job_outcome {
    SY_JOB_DONE,    /* the handler finished */
    SY_JOB_SKIPPED, /* its 'when' predicate said no */
    SY_JOB_RETRY,   /* failed; run again at retry_at_ms */
    SY_JOB_DEAD,    /* failed for good; waits for a replay */
};

/* Install the router (before jobs flow; 'route' is called from the writer thread). */
void sy_store_set_router(struct sy_store *st, sy_route_fn route, void *ctx);

/*
 * Wait up to timeout_ms for a runnable job. Returns a new job (free with
 * sy_job_free), or NULL on timeout or when the store is closing. Any thread.
 */
struct sy_job *sy_store_next_job(struct sy_store *st, int timeout_ms);

/* Load job->body from the store if it is NULL. Returns SY_OK or SY_ENOTFOUND / SY_EIO. */
int sy_store_load_body(struct sy_store *st, struct sy_job *job);

/*
 * Record the outcome of one attempt (asynchronous: committed with the next
 * group commit). Takes ownership of 'job'. 'error' may be NULL. With
 * SY_JOB_DONE the attempt's kv writes (job->kv) commit in the same
 * transaction as the outcome; with any other outcome they are dropped.
 */
void sy_store_finish(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                     const char *error, int64_t retry_at_ms);

void sy_job_free(struct sy_job *job);

/* ---- key/value, shared by all workers ---- */

/*
 * While a job is bound to the calling thread (a worker running it), kv sets
 * and deletes are kept on the job and commit with its outcome, so a job's
 * effects on kv and its completion are one transaction: a failed attempt
 * leaves nothing behind, and a rule costs no commit wait per kv.set. Gets
 * see the job's own writes first. Pass NULL to unbind.
 */
void sy_store_bind_job(struct sy_job *job);

/* New string in *value (NULL when absent or expired). Any thread. */
int sy_store_kv_get(struct sy_store *st, const char *key, char **value);
/*
 * ttl_ms 0 = no expiry. With a job bound: kept on the job. Otherwise durable
 * before it returns. Any thread but the writer's.
 */
int sy_store_kv_set(struct sy_store *st, const char *key, const char *value, uint64_t ttl_ms);
int sy_store_kv_delete(struct sy_store *st, const char *key);

/* ---- inspection and replay ---- */

/*
 * Requeue the dead (or, with 'failed_too', also retrying) jobs of event
 * 'event_id' (NULL = every dead job). Returns how many, or a negative SY_E*.
 * Durable before it returns; the running server picks them up at once.
 */
int sy_store_replay(struct sy_store *st, const char *event_id, long *count);

/*
 * Views for `switchyard events` and the admin API, in the shapes of
 * store/inspect.h: a list of events with job counts (status may be NULL),
 * and one event with its jobs. New JSON, or NULL with 'err'. Any thread.
 */
struct json_t;
struct json_t *sy_store_list(struct sy_store *st, const char *status, int limit,
                             struct sy_error *err);
struct json_t *sy_store_show(struct sy_store *st, const char *id, struct sy_error *err);

/* ---- backend interface ---- */

struct sy_store_ops {
    int (*submit)(struct sy_store *st, struct sy_append *a);
    bool (*ready)(struct sy_store *st);
    void (*close)(struct sy_store *st);
    void (*set_router)(struct sy_store *st, sy_route_fn route, void *ctx);
    struct sy_job *(*next_job)(struct sy_store *st, int timeout_ms);
    int (*load_body)(struct sy_store *st, struct sy_job *job);
    void (*finish)(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                   const char *error, int64_t retry_at_ms);
    int (*kv_get)(struct sy_store *st, const char *key, char **value);
    int (*kv_set)(struct sy_store *st, const char *key, const char *value, uint64_t ttl_ms);
    int (*kv_delete)(struct sy_store *st, const char *key);
    int (*replay)(struct sy_store *st, const char *event_id, long *count);
    struct json_t *(*list)(struct sy_store *st, const char *status, int limit,
                           struct sy_error *err);
    struct json_t *(*show)(struct sy_store *st, const char *id, struct sy_error *err);
};

struct sy_store {
    const struct sy_store_ops *ops;
};

struct sy_store *sy_store_sqlite_open(const struct sy_config *cfg, const char *path,
                                      struct sy_error *err);
struct sy_store *sy_store_redis_open(const struct sy_config *cfg, const char *url,
                                     struct sy_error *err);

#endif
