#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include "engine/router.h"
#include "lua/json.h"
#include "lua/sandbox.h"
#include "unizo/ticketing.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/parse.h"

#define HOOK_EVERY 1000

struct sy_lua {
    lua_State *L;
    struct sy_lua_limits limits;
    struct sy_lua_host host;
    size_t used;      /* bytes allocated by the state */
    bool enforce_mem; /* off while the state is being built */
    uint64_t counted; /* instructions in the current call, in HOOK_EVERY steps */
    bool limit_hit;
    const char *rule;     /* context for log lines and idempotency keys */
    const char *event_id; /* context for log lines and idempotency keys */
    int calls;            /* Unizo calls made by the current run */
    /* rules registered by rule{}: parallel to the registry list, strings owned */
    struct sy_lua_rule *rules;
    size_t n_rules, cap_rules;
    const char *loading; /* display name of the file being loaded */
};

static struct sy_lua *self_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct sy_lua *lx = ud;
    if (ptr == NULL) {
        osize = 0;
    }
    if (nsize == 0) {
        free(ptr);
        lx->used -= osize;
        return NULL;
    }
    if (lx->enforce_mem && lx->limits.memory > 0 && nsize > osize &&
        lx->used + (nsize - osize) > lx->limits.memory) {
        lx->limit_hit = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p != NULL) {
        lx->used = lx->used - osize + nsize;
    }
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct sy_lua *lx = self_of(L);
    lx->counted += HOOK_EVERY;
    if (lx->limits.instructions > 0 && lx->counted > lx->limits.instructions) {
        lx->limit_hit = true;
        /* from now on every instruction fails, so a pcall loop cannot swallow it */
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "instruction limit exceeded (%I instructions)",
                   (lua_Integer)lx->limits.instructions);
    }
}

/* ---- log ---- */

static void field_string(lua_State *L, int idx, struct sy_buf *b)
{
    if (lua_type(L, idx) == LUA_TTABLE) {
        char err[64];
        json_t *v = sy_lua_to_json(L, idx, err, sizeof(err));
        char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        sy_buf_puts(b, s ? s : "?");
        free(s);
        json_decref(v);
    } else {
        size_t len;
        const char *s = luaL_tolstring(L, idx, &len);
        sy_buf_append(b, s, len);
        lua_pop(L, 1);
    }
}

static int log_at(lua_State *L, enum sy_log_level level)
{
    struct sy_lua *lx = self_of(L);
    const char *msg = luaL_checkstring(L, 1);
    if (lx->host.log != NULL) {
        lx->host.log(lx->host.ctx, L, (int)level, msg, lua_type(L, 2) == LUA_TTABLE ? 2 : 0);
        return 0;
    }
    if (!sy_log_enabled(level)) {
        return 0;
    }
    /* up to 16 fields, as strings; tables are logged as JSON */
    const char *kv[2 * 16 + 8];
    struct sy_buf vals[16];
    size_t n = 0, nf = 0;
    kv[n++] = "rule";
    kv[n++] = lx->rule ? lx->rule : "";
    kv[n++] = "event";
    kv[n++] = lx->event_id ? lx->event_id : "";
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushnil(L);
        while (nf < 16 && lua_next(L, 2) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                sy_buf_init(&vals[nf], 8192);
                field_string(L, lua_gettop(L), &vals[nf]);
                kv[n++] = lua_tostring(L, -2);
                kv[n++] = vals[nf].data ? vals[nf].data : "";
                nf++;
            }
            lua_pop(L, 1);
        }
    }
    kv[n] = NULL;
    /* sy_log takes a NULL-ended list of pairs: spell the call out for the common sizes */
    switch (n / 2) {
#define A(i) kv[i], kv[i + 1]
    case 2:
        sy_log(level, msg, A(0), A(2), NULL);
        break;
    case 3:
        sy_log(level, msg, A(0), A(2), A(4), NULL);
        break;
    case 4:
        sy_log(level, msg, A(0), A(2), A(4), A(6), NULL);
        break;
    case 5:
        sy_log(level, msg, A(0), A(2), A(4), A(6), A(8), NULL);
        break;
    case 6:
        sy_log(level, msg, A(0), A(2), A(4), A(6), A(8), A(10), NULL);
        break;
    default:
        sy_log(level, msg, A(0), A(2), A(4), A(6), A(8), A(10), A(12), NULL);
#undef A
    }
    for (size_t i = 0; i < nf; i++) {
        sy_buf_dispose(&vals[i]);
    }
    return 0;
}

static int l_log_info(lua_State *L)
{
    return log_at(L, SY_LOG_INFO);
}

static int l_log_warn(lua_State *L)
{
    return log_at(L, SY_LOG_WARN);
}

static int l_log_error(lua_State *L)
{
    return log_at(L, SY_LOG_ERROR);
}

/* print(...) goes to the log at info level. */
static int l_print(lua_State *L)
{
    struct sy_buf b;
    sy_buf_init(&b, 8192);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (i > 1) {
            sy_buf_puts(&b, "\t");
        }
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        sy_buf_append(&b, s, len);
        lua_pop(L, 1);
    }
    lua_settop(L, 0);
    lua_pushstring(L, b.data ? b.data : "");
    sy_buf_dispose(&b);
    return log_at(L, SY_LOG_INFO);
}

/* ---- kv: values are stored as JSON so numbers and tables come back as they went in ---- */

static int l_kv_get(lua_State *L)
{
    struct sy_lua *lx = self_of(L);
    const char *key = luaL_checkstring(L, 1);
    char *val = NULL;
    if (lx->host.kv_get == NULL || lx->host.kv_get(lx->host.ctx, key, &val) != SY_OK) {
        return luaL_error(L, "kv.get(\"%s\") failed: the store is unavailable", key);
    }
    if (val == NULL) {
        lua_pushnil(L);
        return 1;
    }
    char err[200];
    if (!sy_lua_decode_json(L, val, strlen(val), true, err, sizeof(err))) {
        lua_pushnil(L);
    }
    free(val);
    return 1;
}

static int l_kv_set(lua_State *L)
{
    struct sy_lua *lx = self_of(L);
    const char *key = luaL_checkstring(L, 1);
    luaL_checkany(L, 2);
    uint64_t ttl_ms = 0;
    if (lua_type(L, 3) == LUA_TNUMBER) {
        ttl_ms = (uint64_t)(lua_tonumber(L, 3) * 1000);
    } else if (lua_type(L, 3) == LUA_TSTRING) {
        if (!sy_parse_duration_ms(lua_tostring(L, 3), &ttl_ms)) {
            return luaL_error(L, "kv.set: ttl \"%s\" is not a duration like \"30d\"",
                              lua_tostring(L, 3));
        }
    } else if (!lua_isnoneornil(L, 3)) {
        return luaL_error(L, "kv.set: ttl must be seconds or a duration string");
    }
    char err[160];
    json_t *v = sy_lua_to_json(L, 2, err, sizeof(err));
    if (v == NULL) {
        return luaL_error(L, "kv.set(\"%s\"): %s", key, err);
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(v);
    int rc = s && lx->host.kv_set ? lx->host.kv_set(lx->host.ctx, key, s, ttl_ms) : SY_EIO;
    free(s);
    if (rc != SY_OK) {
        return luaL_error(L, "kv.set(\"%s\") failed: the store is unavailable", key);
    }
    return 0;
}

static int l_kv_delete(lua_State *L)
{
    struct sy_lua *lx = self_of(L);
    const char *key = luaL_checkstring(L, 1);
    if (lx->host.kv_delete == NULL || lx->host.kv_delete(lx->host.ctx, key) != SY_OK) {
        return luaL_error(L, "kv.delete(\"%s\") failed: the store is unavailable", key);
    }
    return 0;
}

/* ---- unizo ---- */

/* Push the decoded JSON body (or an empty table). */
static void push_response_body(lua_State *L, const struct sy_unizo_response *resp)
{
    char err[64];
    if (resp->len == 0 || !sy_lua_decode_json(L, resp->body, resp->len, true, err, sizeof(err))) {
        lua_newtable(L);
    }
}

/* Raise {status, errorCode, errorMessage, message} for a failed call. */
static int raise_unizo_error(lua_State *L, const struct sy_unizo_request *req,
                             const struct sy_unizo_response *resp)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, resp->status);
    lua_setfield(L, -2, "status");
    const char *code = NULL, *text = NULL;
    if (resp->status != 0) {
        push_response_body(L, resp);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "errorCode");
            lua_setfield(L, -3, "errorCode");
            lua_getfield(L, -1, "errorMessage");
            lua_setfield(L, -3, "errorMessage");
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "errorCode");
        code = lua_tostring(L, -1);
        lua_getfield(L, -2, "errorMessage");
        text = lua_tostring(L, -1);
    }
    if (resp->status == 0) {
        lua_pushfstring(L, "unizo %s %s: no answer after %d attempt(s): %s", req->method, req->path,
                        resp->attempts, resp->error);
    } else {
        lua_pushfstring(L, "unizo %s %s: HTTP %d%s%s%s%s", req->method, req->path,
                        (int)resp->status, code ? " " : "", code ? code : "", text ? ": " : "",
                        text ? text : "");
    }
    if (resp->status != 0) {
        lua_remove(L, -2);
        lua_remove(L, -2);
    }
    lua_setfield(L, -2, "message");
    return lua_error(L);
}

/* Make the call and push the decoded answer, or raise the error table. */
static int finish_call(lua_State *L, struct sy_lua *lx, struct sy_unizo_request *req)
{
    char key[600];
    snprintf(key, sizeof(key), "%s/%s/%d", lx->event_id ? lx->event_id : "-",
             lx->rule ? lx->rule : "-", ++lx->calls);
    req->idempotency_key = key;
    req->event_id = lx->event_id;
    struct sy_unizo_response resp;
    int rc = lx->host.unizo_call(lx->host.ctx, req, &resp);
    req->query = NULL;
    req->body = NULL;
    if (rc != SY_OK || resp.status < 200 || resp.status > 299) {
        /* keep the body in a Lua string, so nothing leaks when the error unwinds */
        lua_pushlstring(L, resp.body ? resp.body : "", resp.len);
        free(resp.body);
        resp.body = (char *)lua_tostring(L, -1);
        return raise_unizo_error(L, req, &resp);
    }
    push_response_body(L, &resp);
    free(resp.body);
    if (resp.dry_run) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "dry_run");
        lua_pushfstring(L, "dry-run:%s", key);
        lua_setfield(L, -2, "id");
    }
    return 1;
}

/* The JSON text of the value at idx, or a Lua error naming 'what'. New string. */
static char *json_text(lua_State *L, int idx, const char *what)
{
    char err[160];
    json_t *v = sy_lua_to_json(L, idx, err, sizeof(err));
    if (v == NULL) {
        luaL_error(L, "%s: %s", what, err);
        return NULL;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(v);
    return s;
}

/* unizo.request{method, path, query, body, integration}: the decoded answer, or an error. */
static int l_unizo_request(lua_State *L)
{
    struct sy_lua *lx = self_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "method");
    lua_getfield(L, 1, "path");
    lua_getfield(L, 1, "integration");
    const char *path = lua_tostring(L, 3);
    if (path == NULL || path[0] != '/') {
        return luaL_error(L, "unizo.request: 'path' must be a string starting with '/'");
    }
    struct sy_unizo_request req = {
        .method = luaL_optstring(L, 2, "GET"),
        .path = path,
        .integration = lua_tostring(L, 4),
        .endpoint = "request",
    };
    /* the query, escaped, and the body, as JSON: kept on the Lua stack while the call runs */
    struct sy_buf q;
    sy_buf_init(&q, 16384);
    lua_getfield(L, 1, "query");
    int qidx = lua_gettop(L);
    if (lua_type(L, qidx) == LUA_TSTRING) {
        sy_buf_puts(&q, lua_tostring(L, qidx));
    } else if (lua_type(L, qidx) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, qidx) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                const char *parts[2] = {lua_tostring(L, -2), luaL_tolstring(L, -1, NULL)};
                if (q.len > 0) {
                    sy_buf_puts(&q, "&");
                }
                for (int i = 0; i < 2; i++) {
                    for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++) {
                        if (isalnum(*c) || strchr("-._~", *c)) {
                            sy_buf_append(&q, c, 1);
                        } else {
                            sy_buf_printf(&q, "%%%02X", *c);
                        }
                    }
                    if (i == 0) {
                        sy_buf_puts(&q, "=");
                    }
                }
                lua_pop(L, 1); /* the tolstring copy */
            }
            lua_pop(L, 1);
        }
    }
    lua_pushlstring(L, q.data ? q.data : "", q.len);
    sy_buf_dispose(&q);
    size_t qlen = 0;
    const char *query = lua_tolstring(L, -1, &qlen);
    req.query = qlen > 0 ? query : NULL;
    lua_getfield(L, 1, "body");
    if (!lua_isnil(L, -1)) {
        char *body = json_text(L, -1, "unizo.request: body");
        lua_pushstring(L, body);
        free(body);
        req.body = lua_tostring(L, -1);
    }
    return finish_call(L, lx, &req);
}

/* unizo.ticketing.<helper>{integration = ..., ...}: see unizo/ticketing.h. */
static int l_ticketing(lua_State *L)
{
    struct sy_lua *lx = self_of(L);
    enum sy_ticketing_op op = (enum sy_ticketing_op)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = sy_ticketing_name(op);
    if (!lua_istable(L, 1)) {
        return luaL_error(L, "%s: pass a table of fields", name);
    }
    lua_settop(L, 1);
    lua_getfield(L, 1, "integration");
    const char *integration = lua_tostring(L, 2);
    if (integration == NULL) {
        return luaL_error(L, "%s: 'integration' is required", name);
    }
    const char *org = NULL, *col = NULL;
    if (lx->host.unizo_defaults != NULL) {
        lx->host.unizo_defaults(lx->host.ctx, integration, &org, &col);
    }
    char err[300];
    json_t *fields = sy_lua_to_json(L, 1, err, sizeof(err));
    if (fields == NULL) {
        return luaL_error(L, "%s: %s", name, err);
    }
    const char *method = NULL;
    char *path = NULL, *body = NULL;
    int rc = sy_ticketing_request(op, fields, org, col, &method, &path, &body, err, sizeof(err));
    json_decref(fields);
    if (rc != 0) {
        return luaL_error(L, "%s [integration '%s']", err, integration);
    }
    /* Lua owns the strings from here, so an error raised by the call frees them */
    lua_pushstring(L, path);
    free(path);
    lua_pushstring(L, body);
    free(body);
    struct sy_unizo_request req = {.method = method,
                                   .path = lua_tostring(L, 3),
                                   .body = lua_tostring(L, 4),
                                   .integration = integration,
                                   .endpoint = name};
    return finish_call(L, lx, &req);
}

static void make_readonly(lua_State *L, const char *name);

/* Push the 'unizo' module: request, and the ticketing helpers. */
static bool open_unizo(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_unizo_request);
    lua_setfield(L, -2, "request");
    lua_createtable(L, 0, 4);
    for (int op = SY_TICKET_CREATE; op <= SY_TICKET_GET; op++) {
        lua_pushinteger(L, op);
        lua_pushcclosure(L, l_ticketing, 1);
        lua_setfield(L, -2, sy_ticketing_name((enum sy_ticketing_op)op));
    }
    make_readonly(L, "unizo.ticketing");
    lua_setfield(L, -2, "ticketing");
    make_readonly(L, "unizo");
    return true;
}

/* ---- rule{} ---- */

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        abort(); /* rule loading happens at start and reload only */
    }
    return p;
}

static int l_rule(lua_State *L)
{
    struct sy_lua *lx = self_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Debug ar;
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) {
        line = ar.currentline;
    }
    static const char *const known[] = {"name", "on", "integration", "when", "run", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        lua_pop(L, 1);
        bool ok = false;
        for (const char *const *k = known; *k && lua_type(L, -1) == LUA_TSTRING; k++) {
            ok = ok || strcmp(*k, lua_tostring(L, -1)) == 0;
        }
        if (!ok) {
            return luaL_error(L,
                              "rule: unknown field '%s' (known: name, on, integration, "
                              "when, run)",
                              luaL_tolstring(L, -1, NULL));
        }
    }
    lua_getfield(L, 1, "name");
    if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
        return luaL_error(L, "rule: 'name' must be a non-empty string");
    }
    const char *name = lua_tostring(L, -1);
    for (size_t i = 0; i < lx->n_rules; i++) {
        if (strcmp(lx->rules[i].name, name) == 0) {
            return luaL_error(L, "rule '%s' is defined twice (first at %s:%d)", name,
                              lx->rules[i].file, lx->rules[i].line);
        }
    }
    lua_getfield(L, 1, "run");
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        return luaL_error(L, "rule '%s': 'run' must be a function", name);
    }
    lua_getfield(L, 1, "when");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TFUNCTION) {
        return luaL_error(L, "rule '%s': 'when' must be a function", name);
    }
    bool has_when = !lua_isnil(L, -1);
    lua_getfield(L, 1, "integration");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
        return luaL_error(L, "rule '%s': 'integration' must be a string", name);
    }
    const char *integration = lua_tostring(L, -1);
    lua_getfield(L, 1, "on");
    size_t n_on = 0;
    char **on = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        n_on = 1;
        on = calloc(1, sizeof(char *));
        on[0] = xstrdup(lua_tostring(L, -1));
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        n_on = lua_rawlen(L, -1);
        on = calloc(n_on ? n_on : 1, sizeof(char *));
        for (size_t i = 0; i < n_on; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            on[i] = lua_type(L, -1) == LUA_TSTRING ? xstrdup(lua_tostring(L, -1)) : NULL;
            lua_pop(L, 1);
        }
    }
    for (size_t i = 0; i <= n_on; i++) {
        const char *bad = i == n_on ? (n_on == 0 ? "" : NULL) : (on[i] == NULL ? "?" : NULL);
        if (bad == NULL && i < n_on && !sy_pattern_valid(on[i])) {
            bad = on[i];
        }
        if (bad != NULL) {
            char msg[300];
            snprintf(msg, sizeof(msg),
                     n_on == 0 ? "rule '%s': 'on' must be an event type or a list of them "
                                 "(like \"scm.pull_request.created\", \"scm.*\" or \"*\")%s"
                               : "rule '%s': 'on' has an invalid pattern \"%s\" (use a type, "
                                 "\"prefix.*\" or \"*\")",
                     name, bad);
            for (size_t k = 0; k < n_on; k++) {
                free(on[k]);
            }
            free(on);
            return luaL_error(L, "%s", msg);
        }
    }
    if (lx->n_rules == lx->cap_rules) {
        lx->cap_rules = lx->cap_rules ? lx->cap_rules * 2 : 16;
        lx->rules = realloc(lx->rules, lx->cap_rules * sizeof(*lx->rules));
        if (lx->rules == NULL) {
            abort();
        }
    }
    struct sy_lua_rule *r = &lx->rules[lx->n_rules++];
    r->name = xstrdup(name);
    r->on = (const char *const *)on;
    r->n_on = n_on;
    r->integration = integration ? xstrdup(integration) : NULL;
    r->has_when = has_when;
    r->file = xstrdup(lx->loading ? lx->loading : "?");
    r->line = line;
    /* registry["sy.rules"][name] = { run = ..., when = ... } */
    lua_getfield(L, LUA_REGISTRYINDEX, "sy.rules");
    lua_createtable(L, 0, 2);
    lua_getfield(L, 1, "run");
    lua_setfield(L, -2, "run");
    lua_getfield(L, 1, "when");
    lua_setfield(L, -2, "when");
    lua_setfield(L, -2, name);
    return 0;
}

/* ---- building the sandbox ---- */

/* A read-only view of the table on top of the stack; replaces it. */
static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only table '%s'",
                      lua_tostring(L, lua_upvalueindex(1)));
}

static void make_readonly(lua_State *L, const char *name)
{
    lua_newtable(L);          /* proxy */
    lua_createtable(L, 0, 3); /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, readonly_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* load(text [, name]): text chunks only, always in the sandbox's globals. */
static int l_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

static void copy_fields(lua_State *L, int from, const char *const *names)
{
    for (const char *const *n = names; *n; n++) {
        lua_getfield(L, from, *n);
        lua_setfield(L, -2, *n);
    }
}

static void build_globals(lua_State *L)
{
    /* the full libraries, from which the sandbox takes what it offers */
    luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
    int base = lua_gettop(L);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    int str = lua_gettop(L);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    int os = lua_gettop(L);

    /* globals: a fresh table that becomes _G */
    lua_newtable(L);
    int g = lua_gettop(L);
    static const char *const base_names[] = {
        "assert",       "error",    "ipairs",   "next",     "pairs",  "pcall",
        "select",       "tonumber", "tostring", "type",     "xpcall", "setmetatable",
        "getmetatable", "rawequal", "rawlen",   "_VERSION", NULL,
    };
    copy_fields(L, base, base_names);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, g, "load");
    lua_pushcfunction(L, l_print);
    lua_setfield(L, g, "print");
    lua_pushvalue(L, g);
    lua_setfield(L, g, "_G");

    /* string without dump; its metatable hidden so it cannot be changed */
    lua_pushnil(L);
    lua_setfield(L, str, "dump");
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, str);
    make_readonly(L, "string");
    lua_setfield(L, g, "string");
    lua_pushvalue(L, str + 1);
    make_readonly(L, "table");
    lua_setfield(L, g, "table");
    lua_pushvalue(L, str + 2);
    make_readonly(L, "math");
    lua_setfield(L, g, "math");
    lua_pushvalue(L, str + 3);
    make_readonly(L, "utf8");
    lua_setfield(L, g, "utf8");
    lua_newtable(L);
    static const char *const os_names[] = {"time", "date", "clock", "difftime", NULL};
    copy_fields(L, os, os_names);
    make_readonly(L, "os");
    lua_setfield(L, g, "os");

    sy_lua_open_json(L);
    make_readonly(L, "json");
    lua_setfield(L, g, "json");
    static const luaL_Reg logf[] = {
        {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error}, {NULL, NULL}};
    luaL_newlib(L, logf);
    make_readonly(L, "log");
    lua_setfield(L, g, "log");
    static const luaL_Reg kvf[] = {
        {"get", l_kv_get}, {"set", l_kv_set}, {"delete", l_kv_delete}, {NULL, NULL}};
    luaL_newlib(L, kvf);
    make_readonly(L, "kv");
    lua_setfield(L, g, "kv");
    lua_pushcfunction(L, l_rule);
    lua_setfield(L, g, "rule");
    if (self_of(L)->host.unizo_call != NULL && open_unizo(L)) {
        lua_setfield(L, g, "unizo");
    }

    /* make it the globals table; the originals stay reachable only from C */
    lua_pushvalue(L, g);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "sy.rules");
    /* package.loaded keeps the real libraries alive for C; clear it so nothing can reach them */
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_settop(L, 0);
}

struct sy_lua *sy_lua_new(const struct sy_lua_limits *limits, const struct sy_lua_host *host)
{
    struct sy_lua *lx = calloc(1, sizeof(*lx));
    if (lx == NULL) {
        return NULL;
    }
    lx->limits = *limits;
    if (host != NULL) {
        lx->host = *host;
    }
    lx->L = lua_newstate(alloc, lx);
    if (lx->L == NULL) {
        free(lx);
        return NULL;
    }
    build_globals(lx->L);
    lx->enforce_mem = true;
    return lx;
}

void sy_lua_free(struct sy_lua *lx)
{
    if (lx == NULL) {
        return;
    }
    lua_close(lx->L);
    for (size_t i = 0; i < lx->n_rules; i++) {
        struct sy_lua_rule *r = &lx->rules[i];
        free((char *)r->name);
        for (size_t k = 0; k < r->n_on; k++) {
            free((char *)r->on[k]);
        }
        free((char **)r->on);
        free((char *)r->integration);
        free((char *)r->file);
    }
    free(lx->rules);
    free(lx);
}

lua_State *sy_lua_state(struct sy_lua *lx)
{
    return lx->L;
}

size_t sy_lua_rules(struct sy_lua *lx, const struct sy_lua_rule **rules)
{
    *rules = lx->rules;
    return lx->n_rules;
}

/* Message handler: keep {permanent = true} tables, add a traceback to everything else. */
static int on_error(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "permanent");
        bool permanent = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (permanent) {
            return 1;
        }
        lua_getfield(L, 1, "message");
        const char *m = lua_tostring(L, -1);
        luaL_traceback(L, L, m ? m : "error (a table)", 1);
        return 1;
    }
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        msg = lua_pushfstring(L, "error (a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

enum sy_lua_result sy_lua_pcall(struct sy_lua *lx, int nargs, int nresults, char *err,
                                size_t errlen)
{
    lua_State *L = lx->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, on_error);
    lua_insert(L, base);
    lx->counted = 0;
    lx->limit_hit = false;
    if (lx->limits.instructions > 0) {
        lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    }
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_sethook(L, NULL, 0, 0);
    enum sy_lua_result res = SY_LUA_OK;
    if (rc != LUA_OK) {
        res = lx->limit_hit ? SY_LUA_LIMIT : SY_LUA_ERROR;
        if (lua_type(L, -1) == LUA_TTABLE) {
            res = SY_LUA_PERMANENT;
            lua_getfield(L, -1, "message");
            snprintf(err, errlen, "%s",
                     lua_tostring(L, -1) ? lua_tostring(L, -1) : "permanent failure");
            lua_pop(L, 1);
        } else {
            const char *m = lua_tostring(L, -1);
            if (lx->limit_hit && rc == LUA_ERRMEM) {
                m = "memory limit exceeded";
            }
            snprintf(err, errlen, "%s", m ? m : "error");
        }
        lua_pop(L, 1);
    }
    lua_remove(L, base);
    return res;
}

int sy_lua_load_file(struct sy_lua *lx, const char *path, const char *display, struct sy_error *err)
{
    lua_State *L = lx->L;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return sy_error_set(err, display, 0, "cannot read the rule file");
    }
    struct sy_buf src;
    sy_buf_init(&src, 16u << 20);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        sy_buf_append(&src, chunk, n);
    }
    fclose(f);
    char name[1100];
    snprintf(name, sizeof(name), "@%s", display);
    int rc = SY_OK;
    if (src.failed) {
        rc = sy_error_set(err, display, 0, "the rule file is larger than 16 MiB");
    } else if (luaL_loadbufferx(L, src.data ? src.data : "", src.len, name, "t") != LUA_OK) {
        rc = sy_error_set(err, "", 0, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    } else {
        lx->loading = display;
        char msg[2048];
        /* loading is bounded like a job, so a file with an endless loop fails to load */
        if (sy_lua_pcall(lx, 0, 0, msg, sizeof(msg)) != SY_LUA_OK) {
            rc = sy_error_set(err, "", 0, "%s", msg);
        }
        lx->loading = NULL;
    }
    sy_buf_dispose(&src);
    return rc;
}

enum sy_lua_result sy_lua_run(struct sy_lua *lx, const char *name, const char *event_id,
                              const char *json, size_t len, char *err, size_t errlen)
{
    lua_State *L = lx->L;
    int base = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "sy.rules");
    lua_getfield(L, -1, name);
    if (!lua_istable(L, -1)) {
        lua_settop(L, base);
        snprintf(err, errlen, "rule '%s' is not loaded", name);
        return SY_LUA_PERMANENT;
    }
    int entry = lua_gettop(L);
    char jerr[200];
    if (!sy_lua_decode_json(L, json, len, false, jerr, sizeof(jerr))) {
        lua_settop(L, base);
        snprintf(err, errlen, "the stored event is not valid JSON: %s", jerr);
        return SY_LUA_PERMANENT;
    }
    int ev = lua_gettop(L);
    lx->rule = name;
    lx->event_id = event_id;
    lx->calls = 0;
    enum sy_lua_result res = SY_LUA_OK;
    lua_getfield(L, entry, "when");
    if (!lua_isnil(L, -1)) {
        lua_pushvalue(L, ev);
        res = sy_lua_pcall(lx, 1, 1, err, errlen);
        if (res == SY_LUA_OK && !lua_toboolean(L, -1)) {
            res = SY_LUA_SKIPPED;
        }
    }
    lua_settop(L, ev);
    if (res == SY_LUA_OK) {
        lua_getfield(L, entry, "run");
        lua_pushvalue(L, ev);
        res = sy_lua_pcall(lx, 1, 0, err, errlen);
    }
    lx->rule = NULL;
    lx->event_id = NULL;
    lua_settop(L, base);
    return res;
}
