#ifndef SY_STORE_MEMORY_INT_H
#define SY_STORE_MEMORY_INT_H

/* The memory backend's private parts, shared by memory.c and memory_view.c. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/sched.h"
#include "store/store.h"

/* Caps: a memory store is for tests and offline runs; past them an append is SY_EFULL. */
#define SY_MEMORY_MAX_EVENTS 1000000u
#define SY_MEMORY_MAX_JOBS 4000000u
#define SY_MEMORY_MAX_KV 1000000u
#define SY_MEMORY_MAX_CALLS 10000u /* journal lines per job; later ones are not kept */

struct mem_event {
    char *id, *type, *integration, *category; /* integration, category: NULL = none */
    char *body, *norm, *headers, *reason;     /* norm NULL = none; reason NULL = routable */
    size_t body_len, norm_len;
    const char *state; /* routed, unrouted or quarantined (static strings) */
    int64_t received_ms;
    size_t *jobs; /* indexes into memory_store.jobs, in creation order */
    size_t n_jobs;
};

enum mem_state { MEM_PENDING, MEM_RUNNING, MEM_RETRYING, MEM_DONE, MEM_SKIPPED, MEM_DEAD };

struct mem_job {
    size_t event;
    char *handler;
    char *key; /* NULL = none */
    enum mem_state state;
    bool admitted; /* handed to the scheduler (it holds the key, if any) */
    int attempts, runs;
    int64_t due_ms;
    char *error;
    struct sy_call_record *calls;
    size_t n_calls, cap_calls;
};

struct mem_kv {
    char *key, *value;
    int64_t expires_ms; /* 0 = never */
};

struct memory_store {
    struct sy_store base;
    int64_t (*now)(void *ctx); /* the clock: schedules, expiry, receipts */
    void *now_ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool closing;
    sy_route_fn route;
    void *route_ctx;
    struct mem_event *ev;
    size_t n_ev, cap_ev;
    size_t *index; /* open addressing over ev by id; SIZE_MAX = empty */
    size_t cap_index;
    struct mem_job *jobs; /* job id = index + 1 */
    size_t n_jobs, cap_jobs;
    struct mem_kv *kv;
    size_t n_kv, cap_kv;
    struct sy_sched sched;
};

/* memory.c, with s->mu held */
int64_t sy_mem_now(struct memory_store *s);
struct mem_event *sy_mem_find(struct memory_store *s, const char *id);
/* Add the jobs 'routes' names to event 'ev' (new ones only) and admit what can run. */
int sy_mem_add_job(struct memory_store *s, size_t ev, const char *handler, const char *key,
                   size_t *out);
/* Hand job 'i' to the scheduler when its key is free (it is pending and not admitted). */
void sy_mem_admit(struct memory_store *s, size_t i);
const char *sy_mem_state_name(enum mem_state st);

/* memory_view.c: inspection, replays, scans (the shapes of store/inspect.h) */
int sy_mem_replay(struct sy_store *st, const char *event_id, struct sy_replay_result *r);
struct sy_event_filter;
struct json_t *sy_mem_list(struct sy_store *st, const struct sy_event_filter *f,
                           struct sy_error *err);
struct json_t *sy_mem_show(struct sy_store *st, const char *id, struct sy_error *err);
int sy_mem_scan(struct sy_store *st, const struct sy_scan_query *q,
                int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx);
int sy_mem_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued);

#endif
