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
#include "util/buf.h"
#include "util/log.h"

extern const unsigned char sy_testkit_lua[];
extern const unsigned long sy_testkit_lua_len;

/* One test's world. */

static int64_t now_s(struct tctx *t)
{
    return t->now ? t->now : (int64_t)time(NULL);
}

/* ---- host callbacks: kv in memory, unizo through the Lua transport ---- */

static struct kv_entry *kv_find(struct tctx *t, const char *key)
{
    for (size_t i = 0; i < t->n_kv; i++) {
        if (strcmp(t->kv[i].key, key) == 0) {
            return &t->kv[i];
        }
    }
    return NULL;
}

static int kv_get(void *ctx, void *run, const char *key, char **value)
{
    (void)run;
    struct tctx *t = ctx;
    struct kv_entry *e = kv_find(t, key);
    *value = e && (e->expires == 0 || e->expires > now_s(t)) ? strdup(e->value) : NULL;
    return SY_OK;
}

static int kv_set(void *ctx, void *run, const char *key, const char *value, uint64_t ttl_ms)
{
    (void)run;
    struct tctx *t = ctx;
    struct kv_entry *e = kv_find(t, key);
    if (e == NULL) {
        struct kv_entry *list = realloc(t->kv, (t->n_kv + 1) * sizeof(*list));
        if (list == NULL) {
            return SY_ENOMEM;
        }
        t->kv = list;
        e = &t->kv[t->n_kv++];
        e->key = strdup(key);
        e->value = NULL;
    }
    free(e->value);
    e->value = strdup(value);
    e->expires = ttl_ms ? now_s(t) + (int64_t)(ttl_ms / 1000) : 0;
    return SY_OK;
}

static int kv_delete(void *ctx, void *run, const char *key)
{
    (void)run;
    struct tctx *t = ctx;
    struct kv_entry *e = kv_find(t, key);
    if (e != NULL) {
        free(e->key);
        free(e->value);
        *e = t->kv[--t->n_kv];
    }
    return SY_OK;
}

static void kv_free(struct kv_entry *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

/* A copy of the kv store, or NULL when out of memory (n 0: an empty copy is NULL too). */
static struct kv_entry *kv_copy(const struct tctx *t)
{
    struct kv_entry *c = t->n_kv ? calloc(t->n_kv, sizeof(*c)) : NULL;
    for (size_t i = 0; c != NULL && i < t->n_kv; i++) {
        c[i].key = strdup(t->kv[i].key);
        c[i].value = strdup(t->kv[i].value);
        c[i].expires = t->kv[i].expires;
        if (c[i].key == NULL || c[i].value == NULL) {
            kv_free(c, i + 1);
            return NULL;
        }
    }
    return c;
}

static void defaults(void *ctx, const char *integration, const char **org, const char **col)
{
    struct tctx *t = ctx;
    *org = *col = NULL;
    for (size_t i = 0; integration && i < t->cfg->unizo.n_integrations; i++) {
        if (strcmp(t->cfg->unizo.integrations[i].name, integration) == 0) {
            *org = t->cfg->unizo.integrations[i].organization;
            *col = t->cfg->unizo.integrations[i].collection;
        }
    }
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
        snprintf(resp->error, sizeof(resp->error), "test transport: %s", lua_tostring(L, -1));
        lua_pop(L, 2);
        return SY_EUNAVAIL;
    }
    resp->status = (long)lua_tointeger(L, -2);
    resp->attempts = 1;
    size_t len = 0;
    const char *body = lua_tolstring(L, -1, &len);
    resp->body = strdup(body ? body : "");
    resp->len = body ? len : 0;
    lua_pop(L, 3);
    if (resp->status == 0) {
        snprintf(resp->error, sizeof(resp->error), "no response declared in the test");
        return SY_EUNAVAIL;
    }
    return SY_OK;
}

/* The live call path (Idempotency-Key, journal), with the test's responses as the network. */
static int journal_call(void *ctx, void *run, struct sy_unizo_request *req,
                        struct sy_unizo_response *resp)
{
    (void)ctx;
    return sy_journal_call(run, req, resp);
}

static void capture_log(void *ctx, lua_State *L, int level, const char *msg, int fields_idx)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct tctx *t = ctx;
    if (t->logs_ref == LUA_NOREF) {
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->logs_ref);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, names[level & 3]);
    lua_setfield(L, -2, "level");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    if (fields_idx > 0) {
        lua_pushvalue(L, fields_idx);
        lua_setfield(L, -2, "fields");
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

/*
 * deliver(delivery, secret, tolerance, category) -> { status, code, detail, norm, quarantined,
 * reason }: the delivery checks of the live server (ingest/check.h), the signature only when
 * a secret is given (a test may fire unsigned fixtures).
 */
static int p_deliver(lua_State *L)
{
    struct tctx *t = ctx_of(L);
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
    sy_event_norm_json(n, &b);
    lua_pushlstring(L, b.data ? b.data : "{}", b.len);
    sy_buf_dispose(&b);
    lua_setfield(L, -2, "norm");
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

static int p_route(lua_State *L)
{
    struct tctx *t = ctx_of(L);
    size_t len;
    const char *type = luaL_checklstring(L, 1, &len);
    const char *integration = lua_tostring(L, 2);
    const char *category = lua_tostring(L, 3);
    const struct sy_lua_rule *rules;
    size_t n = sy_lua_rules(t->lx, &rules);
    lua_newtable(L);
    lua_Integer k = 1;
    for (size_t i = 0; i < n; i++) {
        struct sy_route r = {.name = rules[i].name,
                             .on = rules[i].on,
                             .n_on = rules[i].n_on,
                             .integration = rules[i].integration,
                             .category = rules[i].category};
        if (sy_route_matches(&r, type, len, integration, category)) {
            lua_pushstring(L, rules[i].name);
            lua_rawseti(L, -2, k++);
        }
    }
    return 1;
}

static int p_run_rule(lua_State *L)
{
    struct tctx *t = ctx_of(L);
    const char *name = luaL_checkstring(L, 1);
    const char *id = luaL_checkstring(L, 2);
    size_t len, norm_len = 0;
    const char *body = luaL_checklstring(L, 3, &len);
    const char *norm = lua_tolstring(L, 4, &norm_len);
    char err[4096] = "";
    static const char *const outcomes[] = {
        [SY_LUA_OK] = "done",        [SY_LUA_SKIPPED] = "skipped", [SY_LUA_ERROR] = "failed",
        [SY_LUA_PERMANENT] = "dead", [SY_LUA_LIMIT] = "failed",
    };
    /* as in the server, a run's kv writes count only when it is done */
    size_t n_before = t->n_kv;
    struct kv_entry *before = kv_copy(t);
    if (n_before > 0 && before == NULL) {
        return luaL_error(L, "out of memory");
    }
    struct sy_journal journal;
    sy_journal_init(&journal, id, name, transport, t);
    enum sy_lua_result r =
        sy_lua_run(t->lx, name, id, body, len, norm, norm_len, &journal, err, sizeof(err));
    sy_journal_dispose(&journal);
    if (r != SY_LUA_OK) {
        kv_free(t->kv, t->n_kv);
        t->kv = before;
        t->n_kv = n_before;
    } else {
        kv_free(before, n_before);
    }
    lua_pushstring(L, outcomes[r]);
    if (err[0]) {
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* ---- building one test's world ---- */

void sy_testkit_world_dispose(struct tctx *t)
{
    sy_lua_free(t->lx);
    kv_free(t->kv, t->n_kv);
    memset(t, 0, sizeof(*t));
}

/* os.time() that answers the frozen clock when there is one. */
static int frozen_time(lua_State *L)
{
    struct tctx *t = ctx_of(L);
    if (lua_isnoneornil(L, 1) && t->now) {
        lua_pushinteger(L, (lua_Integer)t->now);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Fresh sandbox + rules + testkit + the test file. Returns false with 'msg' on a load error. */
bool sy_testkit_world_build(struct tctx *t, const struct sy_testkit_suite *s, const char *file,
                            const char *dir, char *msg, size_t msglen)
{
    memset(t, 0, sizeof(*t));
    t->cfg = s->cfg;
    t->test_dir = dir;
    t->logs_ref = LUA_NOREF;
    struct sy_lua_limits lim = sy_rule_limits(s->cfg);
    struct sy_lua_host host = {.ctx = t,
                               .kv_get = kv_get,
                               .kv_set = kv_set,
                               .kv_delete = kv_delete,
                               .unizo_call = journal_call,
                               .unizo_defaults = defaults,
                               .log = capture_log};
    t->lx = sy_lua_new(&lim, &host);
    if (t->lx == NULL) {
        snprintf(msg, msglen, "out of memory");
        return false;
    }
    lua_State *L = t->L = sy_lua_state(t->lx);
    struct sy_error err;
    for (size_t i = 0; i < s->n_rules; i++) {
        if (sy_lua_load_file(t->lx, s->rule_files[i], s->rule_display[i], &err) != SY_OK) {
            sy_error_format(&err, msg, msglen);
            return false;
        }
    }
    /* os.time follows freeze_time() */
    lua_getglobal(L, "os");
    lua_newtable(L);
    static const char *const os_names[] = {"date", "clock", "difftime", "time", NULL};
    for (const char *const *n = os_names; *n; n++) {
        lua_getfield(L, -2, *n);
        if (strcmp(*n, "time") == 0) {
            lua_pushlightuserdata(L, t);
            lua_insert(L, -2);
            lua_pushcclosure(L, frozen_time, 2);
        }
        lua_setfield(L, -2, *n);
    }
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    /* the primitives, then testkit.lua */
    static const luaL_Reg prims[] = {
        {"caller", p_caller},
        {"set_time", p_set_time},
        {"parse_time", p_parse_time},
        {"capture_logs", p_capture_logs},
        {"load_fixture", p_load_fixture},
        {"deliver", p_deliver},
        {"route", p_route},
        {"run_rule", p_run_rule},
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
