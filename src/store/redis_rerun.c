/* The Redis store's part of replays of anything: scanning events, running jobs again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_int.h"
#include "util/clock.h"

#define SCAN_PAGE 200
#define RERUN_ARGS 3

/*
 * ARGV: prefix, now, retention, then an event id, handler and key ('' = none) per job.
 * A finished job is pending again with its attempts at 0; a missing one is created; a
 * pending or retrying one is left alone. A job with a key queues behind its holder.
 */
static const char rerun_lua[] =
    "local p, now, ret = ARGV[1], ARGV[2], ARGV[3]\n"
    "local n = 0\n"
    "for i = 4, #ARGV, 3 do\n"
    "  local id, h, k = ARGV[i], ARGV[i + 1], ARGV[i + 2]\n"
    "  local ref = id .. '\\n' .. h\n"
    "  local job = p..'job:'..ref\n"
    "  local state = redis.call('HGET', job, 'state')\n"
    "  local go = false\n"
    "  if not state then\n"
    "    if redis.call('EXISTS', p..'ev:'..id) == 1 then\n"
    "      redis.call('HSET', job, 'event', id, 'handler', h, 'state', 'pending', 'attempts', 0,\n"
    "        'runs', 0, 'due', now, 'key', k, 'seq', redis.call('INCR', p..'seq'))\n"
    "      redis.call('SADD', p..'evjobs:'..id, ref)\n"
    "      redis.call('EXPIRE', p..'evjobs:'..id, ret)\n"
    "      go = true\n"
    "    end\n"
    "  elseif state ~= 'pending' and state ~= 'retrying' then\n"
    "    redis.call('HSET', job, 'state', 'pending', 'attempts', 0, 'due', now, 'key', k,\n"
    "      'error', '')\n"
    "    redis.call('PERSIST', job)\n"
    "    redis.call('SREM', p..'dead', ref)\n"
    "    go = true\n"
    "  end\n"
    "  if go then\n"
    "    if k == '' or redis.call('SET', p..'ka:'..k, ref, 'NX') then\n"
    "      redis.call('XADD', p..'jobs', '*', 'ref', ref)\n"
    "    else\n"
    "      redis.call('ZADD', p..'kq:'..k, redis.call('HGET', job, 'seq'), ref)\n"
    "    end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

int sy_redis_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued)
{
    struct redis_store *s = (struct redis_store *)st;
    struct conn *cn = sy_redis_conn(s);
    if (cn == NULL) {
        return SY_EUNAVAIL;
    }
    size_t argc = 6 + RERUN_ARGS * n; /* EVAL, the script, no keys, 3 fixed arguments */
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *lens = calloc(argc, sizeof(*lens));
    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        return SY_ENOMEM;
    }
    char now[24], ret[24];
    snprintf(now, sizeof(now), "%lld", (long long)sy_wall_ms());
    snprintf(ret, sizeof(ret), "%llu", (unsigned long long)s->retention_s);
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = rerun_lua;
    argv[a++] = "0";
    argv[a++] = s->prefix;
    argv[a++] = now;
    argv[a++] = ret;
    for (size_t i = 0; i < n; i++) {
        argv[a++] = items[i].event_id;
        argv[a++] = items[i].handler;
        argv[a++] = items[i].key ? items[i].key : "";
    }
    for (size_t i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *r = redisCommandArgv(cn->c, (int)argc, argv, lens);
    free(argv);
    free(lens);
    int rc = r != NULL && r->type == REDIS_REPLY_INTEGER ? SY_OK : SY_EIO;
    *queued = rc == SY_OK ? (long)r->integer : 0;
    freeReplyObject(r);
    return rc;
}

static const char *str_of(const redisReply *r, size_t *len)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        *len = 0;
        return NULL;
    }
    *len = r->len;
    return r->str;
}

/* Read one event and its jobs, and hand them to each(). A vanished event is skipped. */
static int visit(struct redis_store *s, const char *id,
                 int (*each)(void *, const struct sy_scan_event *), void *ctx)
{
    redisReply *ev = sy_redis_cmd(s,
                                  "HMGET %sev:%s type integration category body norm state "
                                  "received_at",
                                  s->prefix, id);
    redisReply *refs = sy_redis_cmd(s, "SMEMBERS %sevjobs:%s", s->prefix, id);
    int rc = ev != NULL && refs != NULL ? SY_OK : SY_EIO;
    size_t len;
    if (rc == SY_OK && (ev->type != REDIS_REPLY_ARRAY || ev->elements != 7 ||
                        str_of(ev->element[0], &len) == NULL)) {
        freeReplyObject(ev);
        freeReplyObject(refs);
        return SY_OK; /* expired since the index was read */
    }
    size_t nj = rc == SY_OK && refs->type == REDIS_REPLY_ARRAY ? refs->elements : 0;
    const char **h = calloc(nj + 1, sizeof(*h)), **sts = calloc(nj + 1, sizeof(*sts));
    redisReply **states = calloc(nj + 1, sizeof(*states));
    int64_t *ids = calloc(nj + 1, sizeof(*ids)); /* the journal is found by event and handler */
    if (rc == SY_OK && (h == NULL || sts == NULL || states == NULL || ids == NULL)) {
        rc = SY_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; rc == SY_OK && i < nj; i++) {
        const char *ref = refs->element[i]->str;
        const char *nl = strchr(ref, '\n');
        states[i] = sy_redis_cmd(s, "HGET %sjob:%s state", s->prefix, ref);
        size_t sl;
        const char *state = str_of(states[i], &sl);
        if (nl != NULL && state != NULL) {
            h[n] = nl + 1;
            sts[n] = state;
            n++;
        }
    }
    if (rc == SY_OK) {
        size_t blen, nlen;
        const char *received = str_of(ev->element[6], &len);
        struct sy_scan_event e = {
            .id = id,
            .type = str_of(ev->element[0], &len),
            .integration = str_of(ev->element[1], &len),
            .category = str_of(ev->element[2], &len),
            .body = str_of(ev->element[3], &blen),
            .norm = str_of(ev->element[4], &nlen),
            .state = str_of(ev->element[5], &len),
            .received_ms = received ? strtoll(received, NULL, 10) : 0,
            .n_jobs = n,
            .job_handler = h,
            .job_state = sts,
            .job_id = ids,
        };
        e.body_len = e.body ? blen : 0;
        e.norm_len = e.norm ? nlen : 0;
        if (e.body == NULL) {
            e.body = "";
        }
        if (e.integration != NULL && e.integration[0] == '\0') {
            e.integration = NULL;
        }
        if (e.category != NULL && e.category[0] == '\0') {
            e.category = NULL;
        }
        if (e.norm != NULL && e.norm_len == 0) {
            e.norm = NULL;
        }
        rc = each(ctx, &e);
    }
    for (size_t i = 0; states != NULL && i < nj; i++) {
        freeReplyObject(states[i]);
    }
    free(states);
    free(ids);
    free(h);
    free(sts);
    freeReplyObject(ev);
    freeReplyObject(refs);
    return rc;
}

int sy_redis_scan(struct sy_store *st, const struct sy_scan_query *q,
                  int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx)
{
    struct redis_store *s = (struct redis_store *)st;
    int rc = SY_OK;
    if (q->n_ids > 0) {
        for (size_t i = 0; rc == SY_OK && i < q->n_ids; i++) {
            rc = visit(s, q->ids[i], each, ctx);
        }
        return rc;
    }
    /*
     * The events index is scored by the time received. A page resumes at the last score
     * seen, skipping the members of that score already visited (several events can share
     * a millisecond), so paging costs O(log n) whatever the depth.
     */
    char min[32], max[32];
    snprintf(min, sizeof(min), "%lld", (long long)q->since_ms);
    if (q->until_ms > 0) {
        snprintf(max, sizeof(max), "(%lld", (long long)q->until_ms);
    } else {
        snprintf(max, sizeof(max), "+inf");
    }
    long skip = 0; /* members at score 'min' already visited */
    for (;;) {
        redisReply *page = sy_redis_cmd(s, "ZRANGEBYSCORE %sevents %s %s WITHSCORES LIMIT 0 %ld",
                                        s->prefix, min, max, skip + SCAN_PAGE);
        if (page == NULL || page->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(page);
            return SY_EIO;
        }
        size_t pairs = page->elements / 2;
        char last[32] = "";
        long at_last = 0;
        for (size_t i = (size_t)skip; rc == SY_OK && i < pairs; i++) {
            const char *id = page->element[2 * i]->str;
            const char *score = page->element[2 * i + 1]->str;
            rc = visit(s, id, each, ctx);
            if (strcmp(score, last) == 0) {
                at_last++;
            } else {
                snprintf(last, sizeof(last), "%s", score);
                at_last = 1;
            }
        }
        bool more = rc == SY_OK && (long)pairs == skip + SCAN_PAGE;
        if (more) {
            /* everything at the last score in this page was visited, and the ones before it */
            if (strcmp(last, min) == 0) {
                skip += at_last;
            } else {
                snprintf(min, sizeof(min), "%s", last);
                skip = at_last;
            }
        }
        freeReplyObject(page);
        if (!more) {
            return rc;
        }
    }
}
