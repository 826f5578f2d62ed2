/* One test's world for `switchyard test` (testkit.h). */
#include <dirent.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cli/cli.h"
#include "testkit/testkit.h"
#include "engine/engine.h"
#include "engine/journal.h"
#include "engine/rules.h"
#include "core/router.h"
#include "ingest/check.h"
#include "ingest/delivery.h"
#include "ingest/verify.h"
#include "lua/json.h"
#include "lua/sandbox.h"
#include "store/renorm.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

extern const unsigned char sy_testkit_lua[];
extern const unsigned long sy_testkit_lua_len;

/* One test's world. */

static int64_t now_s(struct tctx *t)
{
    return t->now ? t->now : (int64_t)time(NULL);
}

/* ---- host callbacks: kv in the memory store, unizo through the Lua transport ---- */

/* The world's clock in ms: the frozen time, or the wall's. */
static int64_t now_ms(void *ctx)
{
    struct tctx *t = ctx;
    return t->now ? t->now * 1000 : sy_wall_ms();
}

static int64_t test_now_s(void *ctx)
{
    return now_s(ctx);
}

/* The test's own kv calls: durable at once in the store the rules' jobs commit to. */
static int kv_get(void *ctx, void *run, const char *key, char **value)
{
    (void)run;
    return sy_store_kv_get(((struct tctx *)ctx)->store, NULL, key, value);
}

static int kv_set(void *ctx, void *run, const char *key, const char *value, uint64_t ttl_ms)
{
    (void)run;
    return sy_store_kv_set(((struct tctx *)ctx)->store, NULL, key, value, ttl_ms);
}

static int kv_delete(void *ctx, void *run, const char *key)
{
    (void)run;
    return sy_store_kv_delete(((struct tctx *)ctx)->store, NULL, key);
}

/* A rule's unizo call, as the job's journal sends it: to sy.transport (testkit.lua). */
static int transport(void *ctx, const struct sy_unizo_request *req, struct sy_unizo_response *resp)
{
    struct tctx *t = ctx;
    lua_State *L = t->L;
    memset(resp, 0, sizeof(*resp));
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->sy_ref);
    lua_getfield(L, -1, "transport");
    lua_createtable(L, 0, 5);
    lua_pushstring(L, req->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, req->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, req->query);
    lua_setfield(L, -2, "query");
    lua_pushstring(L, req->body);
    lua_setfield(L, -2, "body");
    lua_createtable(L, 0, 2);
    const char *id = req->integration;
    for (size_t i = 0; id && i < t->cfg->unizo.n_integrations; i++) {
        if (strcmp(t->cfg->unizo.integrations[i].name, id) == 0) {
            id = t->cfg->unizo.integrations[i].id;
        }
    }
    lua_pushstring(L, id);
    lua_setfield(L, -2, "integrationId");
    lua_pushstring(L, req->idempotency_key);
    lua_setfield(L, -2, "Idempotency-Key");
    lua_setfield(L, -2, "headers");
    int rc = lua_pcall(L, 1, 2, 0);
    if (rc != LUA_OK) {
        const char *why = lua_tostring(L, -1);
        snprintf(resp->error, sizeof(resp->error), "test transport: %s", why ? why : "an error");
        lua_pop(L, 2);
        return SY_EUNAVAIL;
    }
    resp->status = (long)lua_tointeger(L, -2);
    resp->attempts = 1;
    size_t len = 0;
    const char *body = lua_tolstring(L, -1, &len);
    resp->len = body ? len : 0;
    resp->body = malloc(resp->len + 1); /* all of it: a NUL inside is the API's bytes too */
    if (resp->body != NULL) {
        memcpy(resp->body, body ? body : "", resp->len);
        resp->body[resp->len] = '\0';
    }
    lua_pop(L, 3);
    if (resp->status == 0) {
        snprintf(resp->error, sizeof(resp->error), "no response declared in the test");
        return SY_EUNAVAIL;
    }
    return SY_OK;
}

/*
 * A log line, from the test's own state or from a rule's (another state: its
 * fields cross as JSON), into the table capture_logs() gave.
 */
static void capture_log(void *ctx, lua_State *from, int level, const char *msg, int fields_idx)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct tctx *t = ctx;
    lua_State *L = t->L;
    if (t->logs_ref == LUA_NOREF) {
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->logs_ref);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, names[level & 3]);
    lua_setfield(L, -2, "level");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    if (fields_idx > 0 && from == L) {
        lua_pushvalue(L, fields_idx);
        lua_setfield(L, -2, "fields");
    } else if (fields_idx > 0) {
        char err[160];
        size_t len = 0;
        if (sy_lua_encode_json(from, fields_idx, err, sizeof(err))) {
            const char *text = lua_tolstring(from, -1, &len);
            if (sy_lua_decode_json(L, text, len, true, err, sizeof(err))) {
                lua_setfield(L, -2, "fields");
            }
            lua_pop(from, 1);
        }
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/* ---- primitives for testkit.lua ---- */

static struct tctx *ctx_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int p_caller(lua_State *L)
{
    lua_Debug ar;
    int level = (int)luaL_optinteger(L, 1, 1);
    /* skip testkit's own frames: report the first frame in a user file */
    for (; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 &&
            strcmp(ar.short_src, "testkit") != 0) {
            lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
            return 1;
        }
    }
    lua_pushnil(L);
    return 1;
}

static int p_set_time(lua_State *L)
{
    ctx_of(L)->now = (int64_t)luaL_checkinteger(L, 1);
    return 0;
}

static int p_parse_time(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || (*end != '\0' && *end != 'Z')) {
        return luaL_error(L, "freeze_time: \"%s\" is not like 2024-01-15T10:30:00Z", s);
    }
    lua_pushinteger(L, (lua_Integer)timegm(&tm));
    return 1;
}

static int p_capture_logs(lua_State *L)
{
    struct tctx *t = ctx_of(L);
    luaL_unref(L, LUA_REGISTRYINDEX, t->logs_ref);
    t->logs_ref = LUA_NOREF;
    if (lua_istable(L, 1)) {
        lua_pushvalue(L, 1);
        t->logs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

static void push_file(lua_State *L, struct tctx *t, const char *rel, const char *what);

/* A bare event (no recorded headers) arrives as a JSON body would. */
static void push_bare_headers(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "application/json");
    lua_setfield(L, -2, "content-type");
}

/* load_fixture(path_or_table) -> { headers = {...}, body = raw string } */
static int p_load_fixture(lua_State *L)
{
    struct tctx *t = ctx_of(L);
    lua_settop(L, 1);
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "body");
        lua_getfield(L, 1, "headers");
        if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
            lua_pushvalue(L, 1); /* a recorded delivery given inline */
            return 1;
        }
        lua_pop(L, 2);
        char err[160];
        json_t *v = sy_lua_to_json(L, 1, err, sizeof(err));
        if (v == NULL) {
            return luaL_error(L, "fire: %s", err);
        }
        char *s = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        lua_createtable(L, 0, 2);
        push_bare_headers(L);
        lua_setfield(L, -2, "headers");
        lua_pushstring(L, s ? s : "{}");
        lua_setfield(L, -2, "body");
        free(s);
        return 1;
    }
    push_file(L, t, luaL_checkstring(L, 1), "fire");
    size_t len = 0;
    const char *text = lua_tolstring(L, 2, &len);
    char err[200];
    lua_createtable(L, 0, 2); /* 3: the delivery */
    /* a recorded delivery is {"headers": {...}, "body": "<raw body>"}; else the file is the body */
    if (sy_lua_decode_json(L, text, len, true, err, sizeof(err)) && lua_istable(L, -1)) {
        lua_getfield(L, -1, "headers");
        lua_getfield(L, -2, "body");
        if (lua_istable(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
            lua_setfield(L, 3, "body");
            lua_setfield(L, 3, "headers");
            lua_getfield(L, -1, "category"); /* the endpoint it came to, when it had one */
            lua_setfield(L, 3, "category");
            lua_settop(L, 3);
            return 1;
        }
    }
    lua_settop(L, 3);
    push_bare_headers(L);
    lua_setfield(L, 3, "headers");
    lua_pushvalue(L, 2);
    lua_setfield(L, 3, "body");
    return 1;
}

/* read_file(path relative to the test file) -> its text */
/* Push the text of 'rel' (relative to the test file's folder), or raise an error naming it. */
static void push_file(lua_State *L, struct tctx *t, const char *rel, const char *what)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s%s%s", rel[0] == '/' ? "" : t->test_dir,
             rel[0] == '/' ? "" : "/", rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        luaL_error(L, "%s: cannot read %s", what, path);
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        luaL_addlstring(&b, chunk, n);
    }
    fclose(f);
    luaL_pushresult(&b);
}

/* read_file(path relative to the test file) -> its text */
static int p_read_file(lua_State *L)
{
    push_file(L, ctx_of(L), luaL_checkstring(L, 1), "read_file");
    return 1;
}

/* One header of a recorded delivery's table (lowercase names), as the server would see it. */
static void header_of(lua_State *L, int headers, const char *name, struct sy_header_values *out)
{
    out->n = 0;
    if (!lua_istable(L, headers)) {
        return;
    }
    lua_getfield(L, headers, name);
    if (lua_type(L, -1) == LUA_TSTRING) {
        out->v[0] = lua_tolstring(L, -1, &out->len[0]);
        out->n = 1;
    }
    lua_pop(L, 1); /* the string stays alive in the headers table */
}

/* The headers the server keeps for replay (x-unizo-*, content-type, user-agent), as JSON. */
static void kept_headers(lua_State *L, int headers, struct sy_buf *b)
{
    sy_buf_puts(b, "{");
    bool first = true;
    for (lua_pushnil(L); lua_istable(L, headers) && lua_next(L, headers); lua_pop(L, 1)) {
        size_t klen, vlen;
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            continue;
        }
        const char *k = lua_tolstring(L, -2, &klen);
        const char *v = lua_tolstring(L, -1, &vlen);
        bool keep = (klen > 8 && strncmp(k, "x-unizo-", 8) == 0) ||
                    strcmp(k, "content-type") == 0 || strcmp(k, "user-agent") == 0;
        if (keep) {
            sy_buf_puts(b, first ? "" : ",");
            first = false;
            sy_buf_json_string(b, k, klen);
            sy_buf_puts(b, ":");
            sy_buf_json_string(b, v, vlen);
        }
    }
    sy_buf_puts(b, "}");
}

/* The memory store answers before sy_store_submit returns: nothing to wait for. */
static void stored(struct sy_append *a)
{
    (void)a;
}

/*
 * deliver(delivery, secret, tolerance, category) -> { status, code, detail, norm, result,
 * quarantined, reason }: the delivery checks of the live server (ingest/check.h), the
 * signature only when a secret is given (a test may fire unsigned fixtures); then, as the
 * server does, the event is stored (deduplicated; routed to its jobs, or quarantined).
 * 'result' is the server's answer: accepted, duplicate or quarantined.
 */
/* fire() or advance() from inside a running job (a respond function) would run jobs on the
 * engine's state mid-call: refused before anything is stored. */
static void refuse_while_running(lua_State *L, const struct tctx *t)
{
    if (t->jobs_ref != LUA_NOREF) {
        luaL_error(L, "fire() and advance() cannot be called while jobs run (from a response)");
    }
}

static int p_deliver(lua_State *L)
{
    struct tctx *t = ctx_of(L);
    refuse_while_running(L, t);
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *secret = lua_tostring(L, 2);
    lua_settop(L, 4);
    lua_getfield(L, 1, "headers"); /* 5 */
    lua_getfield(L, 1, "body");    /* 6 */
    struct sy_delivery_in in = {0};
    in.body = lua_tolstring(L, 6, &in.body_len);
    if (in.body == NULL) {
        in.body = "";
    }
    in.category = lua_tolstring(L, 4, &in.category_len);
    header_of(L, 5, "x-unizo-timestamp", &in.timestamp);
    header_of(L, 5, "x-unizo-signature", &in.signature);
    header_of(L, 5, "x-unizo-event-type", &in.event_type);
    header_of(L, 5, "x-unizo-delivery-id", &in.delivery_id);
    header_of(L, 5, "content-type", &in.content_type);
    struct sy_check_policy policy = {.form = t->cfg->webhook.signed_payload,
                                     .tolerance_s = lua_isnumber(L, 3)
                                                        ? (int64_t)lua_tointeger(L, 3)
                                                        : t->cfg->webhook.tolerance_s,
                                     .max_body = t->cfg->webhook.max_body,
                                     .reject_invalid = t->cfg->webhook.reject_invalid};
    struct sy_refusal refusal = {0};
    bool ts_checked = false, ok = true;
    if (secret != NULL) {
        const char *secrets[] = {secret};
        struct sy_verifier *v = sy_verifier_new(secrets, 1);
        if (v == NULL) {
            return luaL_error(L, "fire: cannot build a verifier for the secret");
        }
        ok = sy_delivery_authenticate(v, &policy, now_s(t), &in, &ts_checked, &refusal);
        sy_verifier_free(v);
    } else if (in.timestamp.n == 1) {
        ts_checked = sy_timestamp_check(in.timestamp.v[0], in.timestamp.len[0], now_s(t),
                                        policy.tolerance_s) == SY_TS_OK;
    }
    struct sy_event_norm *n = lua_newuserdatauv(L, sizeof(*n), 0);
    ok = ok && sy_delivery_accept(&policy, &in, ts_checked, n, &refusal);
    lua_createtable(L, 0, 6);
    if (!ok) {
        lua_pushinteger(L, refusal.status);
        lua_setfield(L, -2, "status");
        lua_pushstring(L, refusal.code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, refusal.detail);
        lua_setfield(L, -2, "detail");
        return 1;
    }
    lua_pushinteger(L, 200);
    lua_setfield(L, -2, "status");
    struct sy_buf b;
    sy_buf_init(&b, 8192);
    kept_headers(L, 5, &b);
    size_t hlen = b.len;
    sy_event_norm_json(n, &b);
    if (b.failed) {
        sy_buf_dispose(&b);
        return luaL_error(L, "fire: out of memory");
    }
    /* stored as the server stores it: the router makes its jobs in the same step */
    struct sy_append a = {.reason = n->quarantined ? n->reason : NULL,
                          .headers = b.data,
                          .headers_len = hlen,
                          .norm = b.data + hlen,
                          .norm_len = b.len - hlen,
                          .body = in.body,
                          .body_len = in.body_len,
                          .received_ms = now_ms(t),
                          .done = stored};
    sy_store_append_of(n, &a);
    int rc = sy_store_submit(t->store, &a);
    lua_pushlstring(L, b.data + hlen, b.len - hlen);
    lua_setfield(L, -2, "norm");
    sy_buf_dispose(&b);
    if (rc != SY_OK || a.status != SY_OK) {
        return luaL_error(L, "fire: the event could not be stored (%d)", rc != SY_OK ? rc : a.status);
    }
    lua_pushstring(L, !a.is_new ? "duplicate" : n->quarantined ? "quarantined" : "accepted");
    lua_setfield(L, -2, "result");
    if (n->quarantined) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "quarantined");
        lua_pushstring(L, n->code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, n->reason);
        lua_setfield(L, -2, "reason");
    }
    return 1;
}

/* An attempt the engine ran: {rule, outcome, error} appended to the table of sy.run_jobs. */
static void on_attempt(void *ctx, const struct sy_attempt *at)
{
    static const char *const outcomes[] = {
        [SY_JOB_DONE] = "done",
        [SY_JOB_SKIPPED] = "skipped",
        [SY_JOB_RETRY] = "failed",
        [SY_JOB_DEAD] = "dead",
    };
    struct tctx *t = ctx;
    lua_State *L = t->L;
    if (t->jobs_ref == LUA_NOREF) {
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->jobs_ref);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, at->handler);
    lua_setfield(L, -2, "rule");
    lua_pushstring(L, outcomes[at->outcome]);
    lua_setfield(L, -2, "outcome");
    if (at->error != NULL) {
        lua_pushstring(L, at->error);
        lua_setfield(L, -2, "error");
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->attempts_ref);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, at->event_id);
    lua_setfield(L, -2, "event");
    lua_pushinteger(L, at->attempt);
    lua_setfield(L, -2, "attempt");
    if (at->outcome == SY_JOB_RETRY) {
        lua_pushinteger(L, (lua_Integer)((at->retry_at_ms + 999) / 1000)); /* the second it is due */
        lua_setfield(L, -2, "retry_at");
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/*
 * run_jobs(jobs, attempts): every job that is runnable now, one attempt each, by the
 * engine's job runner; each attempt appended to 'jobs' ({rule, outcome, error}) and to
 * 'attempts' ({event, attempt, retry_at}). A job retried later waits for advance().
 */
static int p_run_jobs(lua_State *L)
{
    struct tctx *t = ctx_of(L);
    refuse_while_running(L, t);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    t->attempts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->jobs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* bounded: a rule cannot make jobs, so this ends; the cap guards against a store bug */
    for (int i = 0; i < 100000 && sy_engine_run_one(t->eng, 0, on_attempt, t); i++) {
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->jobs_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->attempts_ref);
    t->jobs_ref = t->attempts_ref = LUA_NOREF;
    return 0;
}

/* ---- building one test's world ---- */

void sy_testkit_world_dispose(struct tctx *t)
{
    sy_lua_free(t->lx);
    sy_engine_free(t->eng); /* no thread runs its jobs: nothing to stop */
    sy_store_close(t->store);
    memset(t, 0, sizeof(*t));
}

/*
 * The pipeline (a memory store on the world's clock, the engine with the config's rules and
 * plugins, its network the test's transport), then a fresh sandbox with testkit and the test
 * file. Returns false with 'msg' on a load error.
 */
bool sy_testkit_world_build(struct tctx *t, const struct sy_testkit_suite *s, const char *file,
                            const char *dir, char *msg, size_t msglen)
{
    memset(t, 0, sizeof(*t));
    t->cfg = s->cfg;
    t->test_dir = dir;
    t->logs_ref = LUA_NOREF;
    t->jobs_ref = LUA_NOREF;
    t->attempts_ref = LUA_NOREF;
    t->sy_ref = LUA_NOREF;
    struct sy_error err = {0};
    t->store = sy_store_memory_open(now_ms, t);
    struct sy_engine_hooks hooks = {.ctx = t, .send = transport, .log = capture_log, .now_ms = now_ms};
    t->eng = t->store ? sy_engine_new(s->cfg, t->store, &hooks, &err) : NULL;
    if (t->eng == NULL || sy_engine_start_inline(t->eng) != SY_OK) {
        if (t->store == NULL || err.msg[0] == '\0') {
            snprintf(msg, msglen, "out of memory");
        } else {
            sy_error_format(&err, msg, msglen);
        }
        return false;
    }
    struct sy_lua_limits lim = sy_rule_limits(s->cfg);
    struct sy_lua_host host = {.ctx = t,
                               .kv_get = kv_get,
                               .kv_set = kv_set,
                               .kv_delete = kv_delete,
                               .log = capture_log,
                               .now_s = test_now_s};
    t->lx = sy_lua_new(&lim, &host);
    if (t->lx == NULL) {
        snprintf(msg, msglen, "out of memory");
        return false;
    }
    lua_State *L = t->L = sy_lua_state(t->lx);
    /* the primitives, then testkit.lua */
    static const luaL_Reg prims[] = {
        {"caller", p_caller},
        {"set_time", p_set_time},
        {"parse_time", p_parse_time},
        {"capture_logs", p_capture_logs},
        {"load_fixture", p_load_fixture},
        {"deliver", p_deliver},
        {"run_jobs", p_run_jobs},
        {"read_file", p_read_file},
        {NULL, NULL},
    };
    lua_newtable(L);
    lua_pushlightuserdata(L, t);
    luaL_setfuncs(L, prims, 1);
    lua_pushvalue(L, -1);
    t->sy_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (luaL_loadbufferx(L, (const char *)sy_testkit_lua, sy_testkit_lua_len, "=testkit", "t") !=
            LUA_OK ||
        (lua_insert(L, -2), lua_pcall(L, 1, 0, 0)) != LUA_OK) {
        snprintf(msg, msglen, "testkit: %s", lua_tostring(L, -1));
        return false;
    }
    char display[1100];
    snprintf(display, sizeof(display), "%s", file);
    if (sy_lua_load_file(t->lx, file, display, &err) != SY_OK) {
        sy_error_format(&err, msg, msglen);
        return false;
    }
    return true;
}

/* Call sy.<fn>(args...) in the test state; results stay on the stack. */
int sy_testkit_call(struct tctx *t, const char *fn, int nargs, int nres)
{
    lua_State *L = t->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->sy_ref);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
    return lua_pcall(L, nargs, nres, 0);
}
