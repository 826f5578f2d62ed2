#ifndef SY_STORE_H
#define SY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util/buf.h"
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
    const char *category;    /* borrowed, NUL-terminated, may be NULL */
    const char *body;        /* borrowed: the raw request body */
    size_t body_len;
    const char *norm; /* borrowed: the normalized envelope as JSON (ingest/delivery.h) */
    size_t norm_len;
    const char *reason;  /* borrowed, NUL-terminated: why it is quarantined; NULL = routable */
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

/*
 * Whether the store accepts work, as its own threads last saw it (its writer's
 * transactions, its pings): read without a call to the backend, so it answers
 * at once however the backend behaves. 'detail' says why when not ready
 * ("redis: no answer for 3.2 s"). Any thread.
 */
struct sy_store_health {
    bool ready;
    char detail[200];
};
void sy_store_health(struct sy_store *st, struct sy_store_health *h);
/* sy_store_health's 'ready' alone. Any thread. */
bool sy_store_ready(struct sy_store *st);

/*
 * How the backend really runs, as read back from it when the store opened
 * ("journal_mode=wal synchronous=full" for SQLite), for the start-up log and
 * the tests that check a setting took effect; "" when the backend says
 * nothing. Any thread.
 */
void sy_store_describe(struct sy_store *st, char *out, size_t len);

/* Commit everything queued, stop the writer and close. NULL is a no-op. */
void sy_store_close(struct sy_store *st);

/* ---- jobs: one per (event, handler), created with the event ---- */

/*
 * Routing results: which handlers take each event of a batch, with each
 * job's ordering key. Handler names and keys are copied in, so nothing is
 * borrowed from the rule set that produced them. Owned by one thread.
 */
#define SY_ROUTES_MAX 64 /* handlers per event */
struct sy_route_hit {
    uint32_t handler; /* offset of the name in text */
    uint32_t key;     /* offset of the ordering key in text; UINT32_MAX = none */
};
struct sy_routes {
    struct sy_route_hit *hit;
    size_t n, cap;
    struct sy_buf text;
};
void sy_routes_init(struct sy_routes *r);
void sy_routes_dispose(struct sy_routes *r);
void sy_routes_reset(struct sy_routes *r);
/* Add a hit; 'key' may be NULL (no ordering key). Returns SY_OK or SY_ENOMEM. */
int sy_routes_add(struct sy_routes *r, const char *handler, const char *key);
const char *sy_routes_handler(const struct sy_routes *r, size_t i);
const char *sy_routes_key(const struct sy_routes *r, size_t i); /* NULL = none */

/*
 * Which handlers take event 'a': adds at most SY_ROUTES_MAX hits to 'out'
 * and returns how many it added. Called on the store's writer thread inside
 * the append transaction, and by a replay of a quarantined event on the
 * thread asking for it: any thread.
 */
typedef size_t (*sy_route_fn)(void *ctx, const struct sy_append *a, struct sy_routes *out);

/* A kv write made by a running job, committed with its outcome. */
struct sy_kv_write {
    struct sy_kv_write *next;
    char *key;
    char *value;        /* NULL: delete */
    int64_t expires_ms; /* wall clock; 0 = never */
    uint64_t ttl_ms;
};

/* A job handed to a worker. Owned by the worker until sy_store_finish. */
struct sy_job {
    int64_t id;
    char *event_id;
    char *handler;
    char *key;    /* ordering key, or NULL */
    int attempts; /* finished attempts before this one (a replay starts it over) */
    int runs;     /* finished attempts ever (a replay does not reset it) */
    bool fresh;   /* known to have no journal yet: nothing to read before it runs */
    char *body;   /* the event's raw JSON; NULL until loaded */
    size_t body_len;
    char *norm; /* its normalized envelope (JSON), loaded with the body; NULL = none */
    size_t norm_len;
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
    SY_JOB_DEFER,   /* not run (its rule is paused): pending again at retry_at_ms; its
                       attempts, runs and last error unchanged; it keeps its ordering key */
};

/* True for the outcomes after which the job runs again (it keeps its ordering key). */
static inline bool sy_job_outcome_again(enum sy_job_outcome o)
{
    return o == SY_JOB_RETRY || o == SY_JOB_DEFER;
}

/* Install the router (before jobs flow; 'route' is called from the writer thread). */
void sy_store_set_router(struct sy_store *st, sy_route_fn route, void *ctx);

/*
 * Wait up to timeout_ms for a runnable job. Jobs with an ordering key run
 * one at a time per key, in the order they were stored: a job is not handed
 * out while an earlier job with the same key is pending, running or
 * retrying; once that one is done, skipped or dead, the next becomes
 * runnable. This holds across workers and, on Redis, across instances. Returns a new job (free with
 * sy_job_free), or NULL on timeout or when the store is closing. Any thread.
 */
struct sy_job *sy_store_next_job(struct sy_store *st, int timeout_ms);

/*
 * Load job->body (and job->norm) from the store if the body is NULL. Returns
 * SY_OK or SY_ENOTFOUND / SY_EIO.
 */
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
 * With a running 'job', sets and deletes are kept on the job and commit with
 * its outcome, so a job's effects on kv and its completion are one
 * transaction: a failed attempt leaves nothing behind, and a rule costs no
 * commit wait per kv.set. Gets see the job's own writes first. With 'job'
 * NULL, a set or delete is durable before it returns.
 */

/* New string in *value (NULL when absent or expired). Any thread. */
int sy_store_kv_get(struct sy_store *st, const struct sy_job *job, const char *key, char **value);
/*
 * ttl_ms 0 = no expiry. Any thread but the writer's. With a job, a key under
 * "switchyard:" (core/kvkey.h: the server's own) is refused with SY_EINVAL.
 */
int sy_store_kv_set(struct sy_store *st, struct sy_job *job, const char *key, const char *value,
                    uint64_t ttl_ms);
int sy_store_kv_delete(struct sy_store *st, struct sy_job *job, const char *key);

/* ---- the effect journal: every Unizo call a job made, attempt by attempt ---- */

/* One call. Strings are owned by the record. */
struct sy_call_record {
    int attempt; /* the job's run it was made in: 1, 2, ... (a replay does not reset it) */
    int n;       /* its index in that attempt: the <n> of the Idempotency-Key */
    char *key;   /* the Idempotency-Key */
    char *method;
    char *path;
    char *request;  /* the JSON body sent (at most SY_JOURNAL_MAX_BODY bytes), or NULL */
    long status;    /* HTTP status; 0 = no answer */
    char *response; /* the answer's body, at most SY_JOURNAL_MAX_BODY bytes; may be NULL */
    size_t response_len;
    bool truncated; /* the answer was longer than kept: it is never replayed */
    bool replayed;  /* answered from an earlier attempt: nothing was sent */
    bool dry_run;   /* no api_key: nothing was sent */
    char *error;    /* why there was no answer, or NULL */
    int64_t at_ms;  /* when the call started, wall clock */
    double ms;      /* how long it took */
};
#define SY_JOURNAL_MAX_BODY (64u << 10)

void sy_call_record_dispose(struct sy_call_record *r); /* its strings; the struct stays */
void sy_call_record_free(struct sy_call_record *r);
void sy_call_records_free(struct sy_call_record *r, size_t n); /* an array of n */

/*
 * Record one call of a running job. Asynchronous on SQLite (committed with
 * the next group commit, always before the job's outcome); on Redis written
 * before it returns. Takes ownership of 'rec'. A journal is kept whatever
 * the attempt's outcome. Any thread but the writer's.
 */
void sy_store_journal_add(struct sy_store *st, const struct sy_job *job,
                          struct sy_call_record *rec);

/*
 * Every recorded call of 'job' (all attempts, in order) as a new array in
 * *recs (free with sy_call_records_free). Any thread but the writer's.
 */
int sy_store_journal_load(struct sy_store *st, const struct sy_job *job,
                          struct sy_call_record **recs, size_t *n);

/* ---- inspection and replay ---- */

/* What a replay did. */
struct sy_replay_result {
    long jobs;            /* jobs queued: dead ones again, and a quarantined event's new ones */
    bool was_quarantined; /* the event was quarantined and was normalized again */
    bool routed;          /* ...and can be routed now (it has its jobs, or is unrouted) */
    char reason[256];     /* ...or why it still cannot */
};

/*
 * Requeue the dead jobs of event 'event_id' (NULL = every dead job); a
 * quarantined event is normalized again and, when it can be routed now,
 * gets its jobs. Fills 'r'; returns SY_OK or a negative SY_E*. Durable
 * before it returns; the running server picks the jobs up at once.
 */
int sy_store_replay(struct sy_store *st, const char *event_id, struct sy_replay_result *r);

/* ---- replays of anything: scan the stored events, run jobs again ---- */

/* An event as a scan reads it, with its jobs' states. Everything is borrowed for the callback. */
struct sy_scan_event {
    const char *id;
    const char *type;
    const char *integration; /* NULL = none */
    const char *category;    /* NULL = none */
    const char *body;
    size_t body_len;
    const char *norm; /* NULL = none */
    size_t norm_len;
    const char *state; /* routed, unrouted or quarantined */
    int64_t received_ms;
    size_t n_jobs;
    const char *const *job_handler; /* n_jobs each */
    const char *const *job_state;   /* pending, retrying, done, skipped, dead */
    const int64_t *job_id;          /* for sy_store_journal_load (0 where the backend needs none) */
};

/* Which events a scan reads: those received in [since_ms, until_ms) (0 = open), or the ids. */
struct sy_scan_query {
    int64_t since_ms, until_ms;
    const char *const *ids;
    size_t n_ids;
};

/*
 * Call each() for every stored event the query selects, in store order,
 * reading a page at a time: memory does not grow with the store. each()
 * returning non-zero stops the scan and is returned; otherwise SY_OK or a
 * negative SY_E*. Any thread; each() may call sy_store_rerun.
 */
int sy_store_scan(struct sy_store *st, const struct sy_scan_query *q,
                  int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx);

/* One job a replay runs again, or creates. */
struct sy_rerun {
    const char *event_id;
    const char *handler;
    const char *key; /* the ordering key the current rules give it; NULL = none */
};

/*
 * Run each item's job again as new attempts (attempts back to 0, due now;
 * its runs and journal stay, so completed calls are answered from the
 * journal), or create it when the event has no job for that handler. A job
 * still pending or retrying is left alone. One transaction for all items,
 * durable before it returns; *queued counts the jobs queued.
 */
int sy_store_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued);

/*
 * Views for `switchyard events`, the admin API and the console, in the
 * shapes of store/inspect.h: a page of the event list (store/filter.h),
 * {"events": [...with job counts per state], "next": cursor or null}, and
 * one event with its jobs. New JSON, or NULL with 'err'. Any thread.
 */
struct json_t;
struct sy_event_filter;
struct json_t *sy_store_list(struct sy_store *st, const struct sy_event_filter *f,
                             struct sy_error *err);
struct json_t *sy_store_show(struct sy_store *st, const char *id, struct sy_error *err);

/* ---- backend interface ---- */

struct sy_store_ops {
    int (*submit)(struct sy_store *st, struct sy_append *a);
    void (*health)(struct sy_store *st, struct sy_store_health *h); /* no backend call */
    void (*close)(struct sy_store *st);
    void (*set_router)(struct sy_store *st, sy_route_fn route, void *ctx);
    struct sy_job *(*next_job)(struct sy_store *st, int timeout_ms);
    int (*load_body)(struct sy_store *st, struct sy_job *job);
    void (*finish)(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                   const char *error, int64_t retry_at_ms);
    int (*kv_get)(struct sy_store *st, const char *key, char **value);
    int (*kv_set)(struct sy_store *st, const char *key, const char *value, uint64_t ttl_ms);
    int (*kv_delete)(struct sy_store *st, const char *key);
    int (*replay)(struct sy_store *st, const char *event_id, struct sy_replay_result *r);
    void (*journal_add)(struct sy_store *st, const struct sy_job *job, struct sy_call_record *rec);
    int (*journal_load)(struct sy_store *st, const struct sy_job *job, struct sy_call_record **recs,
                        size_t *n);
    /* a page the filter selects (already checked); an event's id as the text lists it alone */
    struct json_t *(*list)(struct sy_store *st, const struct sy_event_filter *f,
                           struct sy_error *err);
    struct json_t *(*show)(struct sy_store *st, const char *id, struct sy_error *err);
    int (*scan)(struct sy_store *st, const struct sy_scan_query *q,
                int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx);
    int (*rerun)(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued);
    int64_t (*now_ms)(struct sy_store *st); /* optional: the store's clock; NULL = the wall's */
    void (*describe)(struct sy_store *st, char *out, size_t len); /* optional */
};

struct sy_store {
    const struct sy_store_ops *ops;
};

struct sy_store *sy_store_sqlite_open(const struct sy_config *cfg, const char *path,
                                      struct sy_error *err);
struct sy_store *sy_store_redis_open(const struct sy_config *cfg, const char *url,
                                     struct sy_error *err);
/*
 * A store held in this process ("memory:" in sy_store_open), for `switchyard
 * test` and the conformance suite: nothing survives sy_store_close, and the
 * config refuses it for `serve`. done() is called before sy_store_submit
 * returns, on the caller's thread. 'now_ms' (NULL = the wall clock) is its
 * clock: retries fall due and kv entries expire by it (sy_store_now_ms).
 */
struct sy_store *sy_store_memory_open(int64_t (*now_ms)(void *ctx), void *ctx);

/* The store's clock in Unix milliseconds: the wall's, or a memory store's own. Any thread. */
int64_t sy_store_now_ms(struct sy_store *st);

/* The read-only handles behind sy_store_open_readonly. */
struct sy_store *sy_store_sqlite_open_readonly(const char *path, struct sy_error *err);
struct sy_store *sy_store_redis_open_readonly(const struct sy_config *cfg, const char *url,
                                              struct sy_error *err);

/*
 * The store of cfg opened for reading only (`switchyard backtest`): scan,
 * journal_load and kv_get work; nothing is written, migrated or purged (a
 * SQLite file is opened read-only; a Redis store starts no writer). NULL
 * with 'err' when it cannot be read.
 */
struct sy_store *sy_store_open_readonly(const struct sy_config *cfg, struct sy_error *err);

#endif
