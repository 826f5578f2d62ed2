/*
 * The Redis store, for several instances sharing dedupe, jobs and kv.
 *
 *   <p>seen:<id>          SET NX EX retention: the dedupe marker
 *   <p>ev:<id>            hash: type, integration, received_at, headers, body, state (same expiry)
 *   <p>events             sorted set of ids by arrival, for listing
 *   <p>job:<id>\n<h>      hash: event, handler, state, attempts, due, error
 *   <p>evjobs:<id>        set of an event's job refs
 *   <p>jobs               stream of runnable job refs; consumer group "workers"
 *   <p>delayed            sorted set of job refs by retry time
 *   <p>dead               set of dead job refs
 *   <p>kv:<key>           kv values (PX ttl)
 *   <p>ka:<key>           the job ref holding ordering key <key> (admitted: in the stream,
 *                         running or delayed)
 *   <p>kq:<key>           sorted set of job refs waiting for <key>, by <p>seq (store order)
 *   <p>calls:<ref>        list of a job's journal lines (JSON), expiring with its event
 *
 * An event and its jobs are written by one Lua script, so they exist
 * together or not at all. Appends are pipelined by one writer thread (group
 * commit: durability is Redis's appendfsync); every other call uses the
 * calling thread's own connection.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "ingest/delivery.h"
#include "metrics.h"
#include "store/redis_int.h"
#include "store/renorm.h"
#include "util/clock.h"
#include "util/log.h"


/*
 * ARGV: prefix, id, retention, type, integration, received_at, headers,
 * body, category, norm, reason ('' = routable), then a handler name and its
 * ordering key ('' = none) per job. A job whose key is free takes it and
 * goes to the stream; otherwise it waits in the key's queue.
 */
static const char append_lua[] =
    "local p, id = ARGV[1], ARGV[2]\n"
    "if not redis.call('SET', p..'seen:'..id, '1', 'NX', 'EX', ARGV[3]) then return 0 end\n"
    "local n = (#ARGV - 11) / 2\n"
    "local state = ARGV[11] ~= '' and 'quarantined' or n > 0 and 'routed' or 'unrouted'\n"
    "redis.call('HSET', p..'ev:'..id, 'type', ARGV[4], 'integration', ARGV[5], 'received_at',\n"
    "  ARGV[6], 'headers', ARGV[7], 'body', ARGV[8], 'state', state, 'category', ARGV[9],\n"
    "  'norm', ARGV[10], 'reason', ARGV[11])\n"
    "redis.call('EXPIRE', p..'ev:'..id, ARGV[3])\n"
    "redis.call('ZADD', p..'events', ARGV[6], id)\n"
    "for i = 12, #ARGV, 2 do\n"
    "  local h, k = ARGV[i], ARGV[i + 1]\n"
    SY_REDIS_LUA_NEW_JOB("ARGV[6]")
    "end\n"
    "return 1\n";

static const char release_lua[] =
    "local p = ARGV[1]\n"
    "local refs = redis.call('ZRANGEBYSCORE', p..'delayed', '-inf', ARGV[2], 'LIMIT', 0, 100)\n"
    "for _, ref in ipairs(refs) do\n"
    "  if redis.call('ZREM', p..'delayed', ref) == 1 then\n"
    "    redis.call('XADD', p..'jobs', '*', 'ref', ref)\n"
    "  end\n"
    "end\n"
    "return #refs\n";

/* A job that holds key ARGV[3] is done, skipped or dead: the oldest waiting job takes the key. */
static const char advance_lua[] =
    "local p, ref, k = ARGV[1], ARGV[2], ARGV[3]\n"
    "if redis.call('GET', p..'ka:'..k) ~= ref then return 0 end\n"
    "local nxt = redis.call('ZRANGE', p..'kq:'..k, 0, 0)[1]\n"
    "if nxt then\n"
    "  redis.call('ZREM', p..'kq:'..k, nxt)\n"
    "  redis.call('SET', p..'ka:'..k, nxt)\n"
    "  redis.call('XADD', p..'jobs', '*', 'ref', nxt)\n"
    "else\n"
    "  redis.call('DEL', p..'ka:'..k)\n"
    "end\n"
    "return 1\n";

static void conn_free(void *p)
{
    struct conn *cn = p;
    if (cn != NULL) {
        if (cn->c) {
            redisFree(cn->c);
        }
        free(cn);
    }
}

static redisContext *connect_to(struct redis_store *s)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    if (c == NULL || c->err) {
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){10, 0});
    if (s->db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", s->db);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* The calling thread's connection (reconnecting after an error), or NULL. */
struct conn *sy_redis_conn(struct redis_store *s)
{
    struct conn *cn = pthread_getspecific(s->conn_key);
    if (cn == NULL) {
        cn = calloc(1, sizeof(*cn));
        if (cn == NULL) {
            return NULL;
        }
        /* unique per process and thread; starts with "<instance>-" */
        snprintf(cn->consumer, sizeof(cn->consumer), "%s-%d-%d", s->instance, (int)getpid(),
                 __atomic_fetch_add(&s->next_consumer, 1, __ATOMIC_RELAXED));
        pthread_setspecific(s->conn_key, cn);
    }
    if (cn->c != NULL && cn->c->err) {
        redisFree(cn->c);
        cn->c = NULL;
    }
    if (cn->c == NULL) {
        cn->c = connect_to(s);
    }
    return cn->c ? cn : NULL;
}

redisReply *sy_redis_cmd(struct redis_store *s, const char *fmt, ...)
{
    struct conn *cn = sy_redis_conn(s);
    if (cn == NULL) {
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(cn->c, fmt, ap);
    va_end(ap);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        sy_log(SY_LOG_WARN, "redis command failed", "error", r->str, NULL);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* ---- appends: the writer thread ---- */

static void append_one(struct redis_store *s, redisContext *c, const char *sha, struct sy_append *a)
{
    size_t first = s->routes.n;
    size_t n = s->route != NULL && a->reason == NULL ? s->route(s->route_ctx, a, &s->routes) : 0;
    const char *argv[14 + 2 * SY_ROUTES_MAX];
    size_t lens[14 + 2 * SY_ROUTES_MAX];
    char retention[32], received[32];
    snprintf(retention, sizeof(retention), "%llu", (unsigned long long)s->retention_s);
    snprintf(received, sizeof(received), "%lld", (long long)a->received_ms);
    int k = 0;
    argv[k] = "EVALSHA", lens[k++] = 7;
    argv[k] = sha, lens[k++] = strlen(sha);
    argv[k] = "0", lens[k++] = 1;
    argv[k] = s->prefix, lens[k++] = strlen(s->prefix);
    argv[k] = a->id, lens[k++] = a->id_len;
    argv[k] = retention, lens[k++] = strlen(retention);
    argv[k] = a->type, lens[k++] = a->type_len;
    argv[k] = a->integration ? a->integration : "",
    lens[k++] = a->integration ? strlen(a->integration) : 0;
    argv[k] = received, lens[k++] = strlen(received);
    argv[k] = a->headers, lens[k++] = a->headers_len;
    argv[k] = a->body, lens[k++] = a->body_len;
    argv[k] = a->category ? a->category : "", lens[k++] = a->category ? strlen(a->category) : 0;
    argv[k] = a->norm ? a->norm : "", lens[k++] = a->norm ? a->norm_len : 0;
    argv[k] = a->reason ? a->reason : "", lens[k++] = a->reason ? strlen(a->reason) : 0;
    for (size_t i = 0; i < n && i < SY_ROUTES_MAX; i++) {
        const char *key = sy_routes_key(&s->routes, first + i);
        argv[k] = sy_routes_handler(&s->routes, first + i), lens[k] = strlen(argv[k]), k++;
        argv[k] = key ? key : "", lens[k++] = key ? strlen(key) : 0;
    }
    redisAppendCommandArgv(c, k, argv, lens);
}

static void *writer_main(void *arg)
{
    struct redis_store *s = arg;
    pthread_setname_np(pthread_self(), "sy-store");
    redisContext *c = NULL;
    char sha[64] = "";
    int64_t next_trim = 0;
    int64_t retry_at = 0, backoff = 100; /* reconnect attempts while Redis is down (ms) */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->queue.head == NULL && !s->closing) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
        if (s->queue.head == NULL) {
            break;
        }
        size_t n = 0;
        struct sy_append *batch = sy_append_queue_take(&s->queue, s->max_batch, &n);
        pthread_mutex_unlock(&s->mu);

        double t0 = sy_mono_s();
        if (c != NULL && c->err) {
            redisFree(c);
            c = NULL;
            sha[0] = '\0';
        }
        if (c == NULL && sy_wall_ms() >= retry_at && (c = connect_to(s)) == NULL) {
            /* down: answer 503 at once until the next attempt, doubling up to 2 s */
            retry_at = sy_wall_ms() + backoff;
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
        } else if (c != NULL && sha[0] == '\0') {
            /* the script is sent once per connection, then called by its SHA */
            redisReply *r = redisCommand(c, "SCRIPT LOAD %s", append_lua);
            if (r && r->type == REDIS_REPLY_STRING) {
                snprintf(sha, sizeof(sha), "%s", r->str);
                backoff = 100;
            } else {
                redisFree(c);
                c = NULL;
            }
            freeReplyObject(r);
        }
        int status = c ? SY_OK : SY_EUNAVAIL;
        sy_routes_reset(&s->routes);
        for (struct sy_append *a = batch; status == SY_OK && a != NULL; a = a->next) {
            append_one(s, c, sha, a);
        }
        for (struct sy_append *a = batch; a != NULL; a = a->next) {
            redisReply *r = NULL;
            a->status = status;
            a->is_new = false;
            if (status == SY_OK && redisGetReply(c, (void **)&r) == REDIS_OK && r != NULL &&
                r->type == REDIS_REPLY_INTEGER) {
                a->is_new = r->integer == 1;
            } else {
                if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
                    c != NULL) {
                    c->err = REDIS_ERR_OTHER; /* script cache flushed: reconnect and load again */
                }
                a->status = SY_EUNAVAIL;
                status = SY_EUNAVAIL; /* the connection is out of step: fail the rest */
            }
            freeReplyObject(r);
        }
        if (status != SY_OK) {
            sy_metrics_add(&sy_metrics.store_errors, 1);
        }
        sy_histogram_observe(&sy_metrics.commit_seconds, sy_mono_s() - t0);
        sy_histogram_observe(&sy_metrics.batch_size, (double)n);
        sy_health_note(&s->health, status == SY_OK, "an append failed");
        while (batch != NULL) {
            struct sy_append *next = batch->next;
            batch->next = NULL;
            batch->done(batch);
            batch = next;
        }
        if (c != NULL && sy_wall_ms() > next_trim) {
            /* the listing index forgets events past the retention (their keys expire) */
            redisReply *r =
                redisCommand(c, "ZREMRANGEBYSCORE %sevents -inf %lld", s->prefix,
                             (long long)(sy_wall_ms() - (int64_t)s->retention_s * 1000));
            freeReplyObject(r);
            next_trim = sy_wall_ms() + 60000;
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (c) {
        redisFree(c);
    }
    return NULL;
}

static int redis_submit(struct sy_store *st, struct sy_append *a)
{
    struct redis_store *s = (struct redis_store *)st;
    bool was_empty = false;
    pthread_mutex_lock(&s->mu);
    int rc = s->closing ? SY_EUNAVAIL : sy_append_queue_push(&s->queue, a, &was_empty);
    if (rc == SY_OK && was_empty) {
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void redis_health(struct sy_store *st, struct sy_store_health *h)
{
    sy_health_read(&((struct redis_store *)st)->health, sy_wall_ms(), h);
}

#define PING_EVERY_MS 500
#define PING_TIMEOUT_MS 1000

/*
 * The pinger: a PING every half second on a connection of its own with a
 * one-second timeout, so that the health probes read says within a second or
 * two that Redis stopped answering (hung, its host's disk full, a partition),
 * and when it answers again, without any probe waiting on Redis itself.
 */
static void *pinger_main(void *arg)
{
    struct redis_store *s = arg;
    pthread_setname_np(pthread_self(), "sy-redis-ping");
    redisContext *c = NULL;
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        pthread_mutex_unlock(&s->mu);
        struct timeval tv = {PING_TIMEOUT_MS / 1000, PING_TIMEOUT_MS % 1000 * 1000};
        sy_health_begin(&s->health);
        if (c == NULL) {
            c = redisConnectWithTimeout(s->host, s->port, tv);
            if (c != NULL && !c->err) {
                redisSetTimeout(c, tv);
            }
        }
        redisReply *r = c != NULL && !c->err ? redisCommand(c, "PING") : NULL;
        bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        /* a hung server accepts the connection and then says nothing: the read times out */
        const char *why = c == NULL ? "cannot connect"
                          : c->err == 0 ? "unexpected answer to PING"
                          : strstr(c->errstr, "temporarily unavailable") != NULL
                              ? "no answer to PING within 1 s"
                              : c->errstr;
        sy_health_end(&s->health, ok, ok ? NULL : why);
        freeReplyObject(r);
        if (!ok && c != NULL) {
            redisFree(c);
            c = NULL;
        }
        pthread_mutex_lock(&s->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += PING_EVERY_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        if (!s->closing) {
            pthread_cond_timedwait(&s->pinger_cv, &s->mu, &until);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (c != NULL) {
        redisFree(c);
    }
    return NULL;
}

static void reclaim_own(struct redis_store *s, struct conn *cn);

/* Only a server installs a router; that is when it takes back its previous incarnation's jobs. */
static void redis_set_router(struct sy_store *st, sy_route_fn route, void *ctx)
{
    struct redis_store *s = (struct redis_store *)st;
    pthread_mutex_lock(&s->mu);
    s->route = route;
    s->route_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
    struct conn *cn = sy_redis_conn(s);
    if (cn != NULL) {
        reclaim_own(s, cn);
    }
}

/* ---- jobs ---- */

/* A job for stream entry 'entry' carrying 'ref', read from its hash; NULL if gone. */
static int int_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? (int)strtol(r->str, NULL, 10) : 0;
}

static struct sy_job *job_from_ref(struct redis_store *s, const char *entry, const char *ref,
                                   size_t reflen)
{
    /* the job, and whether it has a journal yet (a job without one need not read it) */
    struct conn *cn = sy_redis_conn(s);
    redisReply *r = NULL, *journal = NULL;
    if (cn != NULL) {
        redisAppendCommand(cn->c, "HMGET %sjob:%b event handler attempts key runs", s->prefix,
                           ref, reflen);
        redisAppendCommand(cn->c, "EXISTS %scalls:%b", s->prefix, ref, reflen);
        if (redisGetReply(cn->c, (void **)&r) != REDIS_OK ||
            redisGetReply(cn->c, (void **)&journal) != REDIS_OK) {
            freeReplyObject(r);
            r = NULL;
        }
    }
    struct sy_job *j = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 5 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        journal && journal->type == REDIS_REPLY_INTEGER) {
        j = calloc(1, sizeof(*j));
        if (j) {
            j->event_id = strdup(r->element[0]->str);
            j->handler = strdup(r->element[1]->str);
            j->attempts = int_of(r->element[2]);
            if (r->element[3]->type == REDIS_REPLY_STRING && r->element[3]->len > 0) {
                j->key = strdup(r->element[3]->str);
            }
            j->runs = int_of(r->element[4]);
            j->fresh = j->runs == 0 && journal->integer == 0;
            j->entry = strdup(entry);
        }
    }
    freeReplyObject(r);
    freeReplyObject(journal);
    if (j == NULL && cn != NULL && !cn->c->err) {
        /* its hash is gone (the event expired): drop the entry */
        redisReply *a = sy_redis_cmd(s, "XACK %sjobs " GROUP " %s", s->prefix, entry);
        freeReplyObject(a);
    }
    return j;
}

/* Entries of [[id, [field, value, ...]], ...] into jobs appended to *list. */
static void take_entries(struct redis_store *s, redisReply *entries, struct sy_job **list)
{
    for (size_t i = 0; entries && i < entries->elements; i++) {
        redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements < 2) {
            continue;
        }
        redisReply *ref = e->element[1]->element[1];
        struct sy_job *j = job_from_ref(s, e->element[0]->str, ref->str, ref->len);
        if (j) {
            j->next = *list;
            *list = j;
        }
    }
}

/* Move due retries to the stream, and take over entries idle too long; at most a few times a
 * second. */
static void housekeeping(struct redis_store *s, struct conn *cn)
{
    int64_t now = sy_wall_ms();
    int64_t last = __atomic_load_n(&s->last_release_ms, __ATOMIC_RELAXED);
    if (now - last >= 100 && __atomic_compare_exchange_n(&s->last_release_ms, &last, now, false,
                                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        redisReply *r = sy_redis_cmd(s, "EVAL %s 0 %s %lld", release_lua, s->prefix, (long long)now);
        freeReplyObject(r);
    }
    last = __atomic_load_n(&s->last_claim_ms, __ATOMIC_RELAXED);
    if (now - last >= 1000 && __atomic_compare_exchange_n(&s->last_claim_ms, &last, now, false,
                                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        redisReply *r = sy_redis_cmd(s, "XAUTOCLAIM %sjobs " GROUP " %s %llu 0-0 COUNT 50", s->prefix,
                            cn->consumer, (unsigned long long)s->visibility_ms);
        struct sy_job *got = NULL;
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
            take_entries(s, r->element[1], &got);
        }
        freeReplyObject(r);
        pthread_mutex_lock(&s->mu);
        while (got) {
            struct sy_job *next = got->next;
            got->next = s->claimed;
            s->claimed = got;
            got = next;
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static struct sy_job *redis_next_job(struct sy_store *st, int timeout_ms)
{
    struct redis_store *s = (struct redis_store *)st;
    double deadline = sy_mono_s() + timeout_ms / 1000.0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing;
        struct sy_job *j = s->claimed;
        if (j) {
            s->claimed = j->next;
            j->next = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (closing || j) {
            return j;
        }
        struct conn *cn = sy_redis_conn(s);
        if (cn == NULL) {
            struct timespec nap = {0, 100 * 1000 * 1000};
            nanosleep(&nap, NULL); /* Redis is down: wait, do not spin */
        } else {
            housekeeping(s, cn);
            double left = deadline - sy_mono_s();
            int block = left > 0.1 ? 100 : (left > 0 ? (int)(left * 1000) + 1 : 1);
            redisReply *r =
                sy_redis_cmd(s, "XREADGROUP GROUP " GROUP " %s COUNT 1 BLOCK %d STREAMS %sjobs >",
                    cn->consumer, block, s->prefix);
            struct sy_job *got = NULL;
            if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                r->element[0]->elements == 2) {
                take_entries(s, r->element[0]->element[1], &got);
            }
            freeReplyObject(r);
            if (got) {
                return got;
            }
        }
        if (sy_mono_s() >= deadline) {
            return NULL;
        }
    }
}

static char *dup_reply(const redisReply *r, size_t *len)
{
    char *p = malloc(r->len + 1);
    if (p != NULL) {
        memcpy(p, r->str, r->len);
        p[r->len] = '\0';
        *len = r->len;
    }
    return p;
}

static int redis_load_body(struct sy_store *st, struct sy_job *job)
{
    struct redis_store *s = (struct redis_store *)st;
    struct conn *cn = sy_redis_conn(s);
    if (cn == NULL) {
        return SY_EIO;
    }
    redisReply *r = redisCommand(cn->c, "HMGET %sev:%s body norm", s->prefix, job->event_id);
    int rc = SY_EIO;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        job->body = dup_reply(r->element[0], &job->body_len);
        if (r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len > 0) {
            job->norm = dup_reply(r->element[1], &job->norm_len);
        }
        rc = job->body ? SY_OK : SY_ENOMEM;
    } else if (r && r->type == REDIS_REPLY_ARRAY) {
        rc = SY_ENOTFOUND;
    }
    freeReplyObject(r);
    return rc;
}

static void redis_finish(struct sy_store *st, struct sy_job *job, enum sy_job_outcome outcome,
                         const char *error, int64_t retry_at_ms)
{
    static const char *const states[] = {"done", "skipped", "retrying", "dead"};
    struct redis_store *s = (struct redis_store *)st;
    struct conn *cn = sy_redis_conn(s);
    char ref[1024];
    snprintf(ref, sizeof(ref), "%s\n%s", job->event_id, job->handler);
    if (cn != NULL) {
        redisContext *c = cn->c;
        redisAppendCommand(c, "MULTI");
        int replies = 6;
        /* the attempt's kv writes (only a done one has any) commit with its outcome */
        for (const struct sy_kv_write *w = job->kv; w != NULL; w = w->next, replies++) {
            if (w->value == NULL) {
                redisAppendCommand(c, "DEL %skv:%s", s->prefix, w->key);
            } else if (w->ttl_ms > 0) {
                redisAppendCommand(c, "SET %skv:%s %s PXAT %lld", s->prefix, w->key, w->value,
                                   (long long)w->expires_ms);
            } else {
                redisAppendCommand(c, "SET %skv:%s %s", s->prefix, w->key, w->value);
            }
        }
        if (outcome == SY_JOB_DEFER) {
            /* not run: pending again later, its counts and last error as they were */
            redisAppendCommand(c, "HSET %sjob:%s state pending due %lld", s->prefix, ref,
                               (long long)retry_at_ms);
        } else {
            redisAppendCommand(c, "HSET %sjob:%s state %s attempts %d runs %d due %lld error %s",
                               s->prefix, ref, states[outcome], job->attempts + 1,
                               job->runs + 1,
                               (long long)(outcome == SY_JOB_RETRY ? retry_at_ms : sy_wall_ms()),
                               error ? error : "");
        }
        if (!sy_job_outcome_again(outcome) && job->key != NULL) {
            /* done, skipped or dead: the key moves on, in the same transaction */
            redisAppendCommand(c, "EVAL %s 0 %s %s %s", advance_lua, s->prefix, ref, job->key);
            replies++;
        }
        if (sy_job_outcome_again(outcome)) {
            redisAppendCommand(c, "ZADD %sdelayed %lld %s", s->prefix, (long long)retry_at_ms, ref);
        } else if (outcome == SY_JOB_DEAD) {
            redisAppendCommand(c, "SADD %sdead %s", s->prefix, ref);
        } else {
            /* finished: kept as long as its event, for inspection */
            redisAppendCommand(c, "EXPIRE %sjob:%s %llu", s->prefix, ref,
                               (unsigned long long)s->retention_s);
        }
        redisAppendCommand(c, "XACK %sjobs " GROUP " %s", s->prefix, job->entry);
        redisAppendCommand(c, "XDEL %sjobs %s", s->prefix, job->entry);
        redisAppendCommand(c, "EXEC");
        for (int i = 0; i < replies; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                break; /* not recorded: the entry stays pending and is taken over later */
            }
            freeReplyObject(r);
        }
    }
    sy_job_free(job);
}

/* ---- kv, replay ---- */

static int redis_kv_get(struct sy_store *st, const char *key, char **value)
{
    struct redis_store *s = (struct redis_store *)st;
    *value = NULL;
    struct conn *cn = sy_redis_conn(s);
    redisReply *r = cn ? redisCommand(cn->c, "GET %skv:%s", s->prefix, key) : NULL;
    int rc = r == NULL || r->type == REDIS_REPLY_ERROR ? SY_EIO : SY_OK;
    if (r && r->type == REDIS_REPLY_STRING) {
        *value = strdup(r->str);
    }
    freeReplyObject(r);
    return rc;
}

static int redis_kv_set(struct sy_store *st, const char *key, const char *value, uint64_t ttl_ms)
{
    struct redis_store *s = (struct redis_store *)st;
    redisReply *r =
        ttl_ms ? sy_redis_cmd(s, "SET %skv:%s %s PX %llu", s->prefix, key, value, (unsigned long long)ttl_ms)
               : sy_redis_cmd(s, "SET %skv:%s %s", s->prefix, key, value);
    int rc = r ? SY_OK : SY_EIO;
    freeReplyObject(r);
    return rc;
}

static int redis_kv_delete(struct sy_store *st, const char *key)
{
    struct redis_store *s = (struct redis_store *)st;
    redisReply *r = sy_redis_cmd(s, "DEL %skv:%s", s->prefix, key);
    int rc = r ? SY_OK : SY_EIO;
    freeReplyObject(r);
    return rc;
}

/*
 * At start: entries still pending for this instance's consumers belong to
 * its previous incarnation, which is gone, so take them back now rather than
 * after the visibility timeout. Other instances' entries are left alone.
 */
static void reclaim_own(struct redis_store *s, struct conn *cn)
{
    redisReply *r = sy_redis_cmd(s, "XPENDING %sjobs " GROUP " - + 10000", s->prefix);
    size_t plen = strlen(s->instance);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) {
            continue;
        }
        const char *owner = e->element[1]->str;
        if (strncmp(owner, s->instance, plen) != 0 || owner[plen] != '-') {
            continue;
        }
        redisReply *c =
            sy_redis_cmd(s, "XCLAIM %sjobs " GROUP " %s 0 %s", s->prefix, cn->consumer, e->element[0]->str);
        struct sy_job *got = NULL;
        if (c && c->type == REDIS_REPLY_ARRAY) {
            take_entries(s, c, &got);
        }
        freeReplyObject(c);
        while (got) {
            struct sy_job *next = got->next;
            got->next = s->claimed;
            s->claimed = got;
            got = next;
        }
    }
    freeReplyObject(r);
}

/* ---- open, close ---- */

static void release(struct redis_store *s)
{
    while (s->claimed) {
        struct sy_job *next = s->claimed->next;
        sy_job_free(s->claimed);
        s->claimed = next;
    }
    conn_free(pthread_getspecific(s->conn_key));
    pthread_setspecific(s->conn_key, NULL);
    pthread_key_delete(s->conn_key);
    sy_routes_dispose(&s->routes);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->pinger_cv);
    pthread_mutex_destroy(&s->mu);
    sy_health_dispose(&s->health);
    free(s);
}

static void redis_close(struct sy_store *st)
{
    struct redis_store *s = (struct redis_store *)st;
    sy_health_closing(&s->health);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_signal(&s->cv);
    pthread_cond_signal(&s->pinger_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->pinger_started) {
        pthread_join(s->pinger, NULL);
    }
    release(s);
}


static const struct sy_store_ops redis_ops = {
    .submit = redis_submit,
    .health = redis_health,
    .close = redis_close,
    .set_router = redis_set_router,
    .next_job = redis_next_job,
    .load_body = redis_load_body,
    .finish = redis_finish,
    .kv_get = redis_kv_get,
    .kv_set = redis_kv_set,
    .kv_delete = redis_kv_delete,
    .replay = sy_redis_replay,
    .journal_add = sy_redis_journal_add,
    .journal_load = sy_redis_journal_load,
    .list = sy_redis_list,
    .show = sy_redis_show,
    .scan = sy_redis_scan,
    .rerun = sy_redis_rerun,
};

/* "redis://host:port/db" */
static bool parse_url(const char *url, struct redis_store *s)
{
    const char *p = url + 8;
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    size_t hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof(s->host)) {
        return false;
    }
    memcpy(s->host, p, hl);
    s->host[hl] = '\0';
    s->port = colon ? (int)strtol(colon + 1, NULL, 10) : 6379;
    s->db = slash ? (int)strtol(slash + 1, NULL, 10) : 0;
    return s->port > 0 && s->port < 65536 && s->db >= 0;
}

static struct sy_store *open_redis(const struct sy_config *cfg, const char *url, bool writer,
                                   struct sy_error *err);

struct sy_store *sy_store_redis_open(const struct sy_config *cfg, const char *url,
                                     struct sy_error *err)
{
    return open_redis(cfg, url, true, err);
}

static void ro_close(struct sy_store *st)
{
    release((struct redis_store *)st);
}

static const struct sy_store_ops redis_ro_ops = {
    .close = ro_close,
    .kv_get = redis_kv_get,
    .journal_load = sy_redis_journal_load,
    .scan = sy_redis_scan,
};

struct sy_store *sy_store_redis_open_readonly(const struct sy_config *cfg, const char *url,
                                              struct sy_error *err)
{
    return open_redis(cfg, url, false, err);
}

static struct sy_store *open_redis(const struct sy_config *cfg, const char *url, bool writer,
                                   struct sy_error *err)
{
    struct redis_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->base.ops = writer ? &redis_ops : &redis_ro_ops;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->pinger_cv, NULL);
    sy_health_init(&s->health, "redis");
    pthread_key_create(&s->conn_key, conn_free);
    sy_routes_init(&s->routes);
    s->queue.limit = cfg->store.queue;
    s->max_batch = cfg->store.max_batch;
    s->retention_s = cfg->dedupe_retention_ms / 1000;
    s->visibility_ms = cfg->store.visibility_ms;
    snprintf(s->prefix, sizeof(s->prefix), "%s", cfg->store.prefix);
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    snprintf(s->instance, sizeof(s->instance), "%s",
             cfg->store.instance ? cfg->store.instance : host);
    if (!parse_url(url, s)) {
        sy_error_set(err, cfg->path, 0, "store \"%s\" is not redis://HOST:PORT/DB", url);
        goto fail;
    }
    struct conn *cn = sy_redis_conn(s);
    redisReply *r = cn && writer ? redisCommand(cn->c, "XGROUP CREATE %sjobs " GROUP " 0 MKSTREAM",
                                                s->prefix)
                                 : NULL;
    if (cn == NULL) {
        sy_error_set(err, cfg->path, 0, "cannot reach Redis at %s:%d", s->host, s->port);
        freeReplyObject(r);
        goto fail;
    }
    freeReplyObject(r); /* BUSYGROUP (it exists) is fine */
    if (writer && pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        sy_error_set(err, cfg->path, 0, "cannot start the store writer thread");
        goto fail;
    }
    if (writer) {
        sy_health_note(&s->health, true, NULL); /* it answered just now */
        s->pinger_started = pthread_create(&s->pinger, NULL, pinger_main, s) == 0;
    }
    return &s->base;
fail:
    release(s);
    return NULL;
}

