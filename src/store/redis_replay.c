/* The Redis store's replays of dead jobs and of quarantined events (sy_store_replay). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ingest/delivery.h"
#include "store/redis_int.h"
#include "store/renorm.h"
#include "util/buf.h"

/* A replayed job with a key queues behind the job holding it, in store order. */
static const char replay_lua[] =
    "local p, ev = ARGV[1], ARGV[2]\n"
    "local refs = ev == '' and redis.call('SMEMBERS', p..'dead') or\n"
    "  redis.call('SMEMBERS', p..'evjobs:'..ev)\n"
    "local n = 0\n"
    "for _, ref in ipairs(refs) do\n"
    "  local job = p..'job:'..ref\n"
    "  if redis.call('HGET', job, 'state') == 'dead' then\n"
    "    redis.call('HSET', job, 'state', 'pending', 'attempts', 0)\n"
    "    redis.call('SREM', p..'dead', ref)\n"
    "    local k = redis.call('HGET', job, 'key') or ''\n"
    "    if k == '' or redis.call('SET', p..'ka:'..k, ref, 'NX') then\n"
    "      redis.call('XADD', p..'jobs', '*', 'ref', ref)\n"
    "    else\n"
    "      local seq = redis.call('HGET', job, 'seq') or redis.call('INCR', p..'seq')\n"
    "      redis.call('ZADD', p..'kq:'..k, seq, ref)\n"
    "    end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/*
 * A quarantined event routed after all: ARGV prefix, id, retention, type,
 * integration, category, norm, received_at, then handler/key pairs. Only
 * while it is still quarantined (two replays at once route it once).
 */
static const char promote_lua[] =
    "local p, id = ARGV[1], ARGV[2]\n"
    "if redis.call('HGET', p..'ev:'..id, 'state') ~= 'quarantined' then return -1 end\n"
    "local n = (#ARGV - 8) / 2\n"
    "redis.call('HSET', p..'ev:'..id, 'type', ARGV[4], 'integration', ARGV[5], 'category',\n"
    "  ARGV[6], 'norm', ARGV[7], 'reason', '', 'state', n > 0 and 'routed' or 'unrouted')\n"
    "for i = 9, #ARGV, 2 do\n"
    "  local h, k = ARGV[i], ARGV[i + 1]\n"
    SY_REDIS_LUA_NEW_JOB("ARGV[8]")
    "end\n"
    "return n\n";

static const char *reply_str(const redisReply *r, size_t *len)
{
    *len = r->type == REDIS_REPLY_STRING ? r->len : 0;
    return r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

/* Normalize a quarantined event again; route it when it can be now (see sy_store_replay). */
static int replay_quarantined(struct redis_store *s, const char *id, struct sy_replay_result *res)
{
    redisReply *ev =
        sy_redis_cmd(s, "HMGET %sev:%s state body headers category received_at", s->prefix, id);
    if (ev == NULL || ev->type != REDIS_REPLY_ARRAY || ev->elements != 5) {
        freeReplyObject(ev);
        return SY_EIO;
    }
    size_t len;
    const char *state = reply_str(ev->element[0], &len);
    if (state == NULL || strcmp(state, "quarantined") != 0) {
        freeReplyObject(ev);
        return SY_OK;
    }
    res->was_quarantined = true;
    size_t body_len, cat_len;
    const char *hdrs = reply_str(ev->element[2], &len);
    const char *body = reply_str(ev->element[1], &body_len);
    const char *cat = reply_str(ev->element[3], &cat_len);
    char category[SY_EVENT_CATEGORY_MAX + 1];
    snprintf(category, sizeof(category), "%.*s", (int)cat_len, cat ? cat : "");
    struct sy_event_norm *n = malloc(sizeof(*n));
    int rc = n ? SY_OK : SY_ENOMEM;
    if (rc == SY_OK) {
        sy_store_renormalize(id, body, body_len, hdrs, category[0] ? category : NULL, n);
    }
    if (rc == SY_OK && n->quarantined) {
        snprintf(res->reason, sizeof(res->reason), "%s", n->reason);
        redisReply *u = sy_redis_cmd(s, "HSET %sev:%s reason %s", s->prefix, id, n->reason);
        freeReplyObject(u);
    } else if (rc == SY_OK) {
        struct sy_buf norm;
        sy_buf_init(&norm, 0);
        sy_event_norm_json(n, &norm);
        struct sy_routes routes;
        sy_routes_init(&routes);
        struct sy_append a = {.body = body, .body_len = body_len, .norm = norm.data, .norm_len = norm.len};
        sy_store_append_of(n, &a);
        /* the router is the writer's; this is a rare call from the admin or CLI thread */
        pthread_mutex_lock(&s->mu);
        sy_route_fn route = s->route;
        void *ctx = s->route_ctx;
        pthread_mutex_unlock(&s->mu);
        size_t hits = route ? route(ctx, &a, &routes) : 0;
        const char *argv[8 + 2 * SY_ROUTES_MAX + 1];
        size_t lens[8 + 2 * SY_ROUTES_MAX + 1];
        char retention[32], received[32];
        snprintf(retention, sizeof(retention), "%llu", (unsigned long long)s->retention_s);
        size_t rl;
        const char *rec = reply_str(ev->element[4], &rl);
        snprintf(received, sizeof(received), "%.*s", (int)rl, rec ? rec : "0");
        int k = 0;
        argv[k] = "EVAL", lens[k++] = 4;
        argv[k] = promote_lua, lens[k++] = strlen(promote_lua);
        argv[k] = "0", lens[k++] = 1;
        argv[k] = s->prefix, lens[k++] = strlen(s->prefix);
        argv[k] = n->id, lens[k++] = n->id_len;
        argv[k] = retention, lens[k++] = strlen(retention);
        argv[k] = n->type, lens[k++] = n->type_len;
        argv[k] = n->integration_type, lens[k++] = strlen(n->integration_type);
        argv[k] = n->category, lens[k++] = strlen(n->category);
        argv[k] = norm.data ? norm.data : "{}", lens[k++] = norm.data ? norm.len : 2;
        argv[k] = received, lens[k++] = strlen(received);
        for (size_t i = 0; i < hits && i < SY_ROUTES_MAX; i++) {
            const char *key = sy_routes_key(&routes, i);
            argv[k] = sy_routes_handler(&routes, i), lens[k] = strlen(argv[k]), k++;
            argv[k] = key ? key : "", lens[k++] = key ? strlen(key) : 0;
        }
        struct conn *cn = sy_redis_conn(s);
        redisReply *r = cn ? redisCommandArgv(cn->c, k, argv, lens) : NULL;
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
            res->routed = true;
            res->jobs += (long)r->integer;
        } else if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            rc = SY_EIO;
        }
        freeReplyObject(r);
        sy_routes_dispose(&routes);
        sy_buf_dispose(&norm);
    }
    free(n);
    freeReplyObject(ev);
    return rc;
}

int sy_redis_replay(struct sy_store *st, const char *event_id, struct sy_replay_result *res)
{
    struct redis_store *s = (struct redis_store *)st;
    int rc = event_id ? replay_quarantined(s, event_id, res) : SY_OK;
    if (rc != SY_OK) {
        return rc;
    }
    redisReply *r = sy_redis_cmd(s, "EVAL %s 0 %s %s", replay_lua, s->prefix, event_id ? event_id : "");
    rc = r && r->type == REDIS_REPLY_INTEGER ? SY_OK : SY_EIO;
    res->jobs += rc == SY_OK ? (long)r->integer : 0;
    freeReplyObject(r);
    return rc;
}
