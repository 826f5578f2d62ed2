#ifndef SY_STORE_REDIS_INT_H
#define SY_STORE_REDIS_INT_H

/* The Redis backend's private parts, shared by redis.c and redis_inspect.c. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "store/health.h"
#include "store/queue.h"
#include "store/store.h"

#define GROUP "workers"

/*
 * A fragment of the Lua scripts that store an event's jobs (append, and a quarantined
 * event's promotion): with p (prefix), id, h (handler) and k (ordering key, '' = none)
 * in scope and ARGV[3] the retention, create job id/h due at DUE (a Lua expression).
 * A job whose key is free takes it and goes to the stream; otherwise it waits in the
 * key's queue.
 */
#define SY_REDIS_LUA_NEW_JOB(DUE)                                                           \
    "  local ref = id .. '\\n' .. h\n"                                                       \
    "  local seq = redis.call('INCR', p..'seq')\n"                                           \
    "  redis.call('HSET', p..'job:'..ref, 'event', id, 'handler', h, 'state', 'pending',\n"  \
    "    'attempts', 0, 'runs', 0, 'due', " DUE ", 'key', k, 'seq', seq)\n"                   \
    "  redis.call('SADD', p..'evjobs:'..id, ref)\n"                                          \
    "  redis.call('EXPIRE', p..'evjobs:'..id, ARGV[3])\n"                                    \
    "  if k == '' or redis.call('SET', p..'ka:'..k, ref, 'NX') then\n"                       \
    "    redis.call('XADD', p..'jobs', '*', 'ref', ref)\n"                                   \
    "  else\n"                                                                               \
    "    redis.call('ZADD', p..'kq:'..k, seq, ref)\n"                                        \
    "  end\n"

struct redis_store {
    struct sy_store base;
    char host[256];
    int port;
    int db;
    char prefix[128];
    char instance[128]; /* consumer names start with it: "<host>-<pid>" */
    uint64_t retention_s;
    uint64_t visibility_ms; /* a job not finished for this long is taken over */

    pthread_key_t conn_key; /* each thread's own connection */
    int next_consumer;      /* atomic */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sy_append_queue queue;
    size_t max_batch;
    bool closing;
    /* a thread of its own pings Redis, so that probes know without waiting on it */
    struct sy_health health;
    pthread_t pinger;
    bool pinger_started;
    pthread_cond_t pinger_cv; /* wakes the pinger to stop */
    sy_route_fn route;
    void *route_ctx;
    struct sy_routes routes; /* writer thread only */

    /* jobs taken over from dead consumers, handed out before new ones */
    struct sy_job *claimed;
    int64_t last_release_ms; /* atomic: last move of due retries */
    int64_t last_claim_ms;   /* atomic: last XAUTOCLAIM */
};

struct conn {
    redisContext *c;
    char consumer[200];
};

/* The calling thread's connection (reconnecting after an error), or NULL. */
struct conn *sy_redis_conn(struct redis_store *s);
/* A command on the calling thread's connection; NULL on any error (logged). */
redisReply *sy_redis_cmd(struct redis_store *s, const char *fmt, ...);

/* redis_inspect.c */
struct sy_event_filter;
struct json_t *sy_redis_list(struct sy_store *st, const struct sy_event_filter *f,
                             struct sy_error *err);
struct json_t *sy_redis_show(struct sy_store *st, const char *id, struct sy_error *err);
void sy_redis_journal_add(struct sy_store *st, const struct sy_job *job,
                          struct sy_call_record *rec);
int sy_redis_journal_load(struct sy_store *st, const struct sy_job *job,
                          struct sy_call_record **recs, size_t *n);

/* redis_replay.c */
int sy_redis_replay(struct sy_store *st, const char *event_id, struct sy_replay_result *r);

/* redis_rerun.c */
int sy_redis_scan(struct sy_store *st, const struct sy_scan_query *q,
                  int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx);
int sy_redis_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued);

#endif
