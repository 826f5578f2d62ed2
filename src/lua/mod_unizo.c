/* The 'unizo' module: unizo.request and unizo.ticketing.*, through the host's call path. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "lua/sandbox_int.h"
#include "lua/json.h"
#include "unizo/ticketing.h"
#include "util/buf.h"

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
    if (resp->status == 0 && resp->attempts == 0) {
        lua_pushfstring(L, "unizo %s %s: not sent: %s", req->method, req->path, resp->error);
    } else if (resp->status == 0) {
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

/* Push the decoded answer of a call that ended with 'rc' and 'resp', or raise its error. */
static int answer(lua_State *L, const struct sy_unizo_request *req, int rc,
                  struct sy_unizo_response *resp)
{
    /* the body becomes a Lua string first, so no error from here on can leak it */
    if (resp->body == NULL) {
        lua_pushliteral(L, "");
    } else {
        sy_lua_push_owned(L, 1, &resp->body, &resp->len);
    }
    resp->body = (char *)lua_tolstring(L, -1, &resp->len);
    if (rc != SY_OK || resp->status < 200 || resp->status > 299) {
        return raise_unizo_error(L, req, resp);
    }
    push_response_body(L, resp);
    return 1;
}

/* A coroutine's call answered: the method and path it pushed before it yielded are on top. */
static int resume_call(lua_State *L, int status, lua_KContext kctx)
{
    (void)status, (void)kctx;
    struct sy_lua *lx = sy_lua_self(L);
    struct sy_unizo_response resp;
    int rc = lx->host.unizo_result(lx->host.ctx, sy_lua_call_of(L)->run, &resp);
    struct sy_unizo_request req = {.method = lua_tostring(L, -2), .path = lua_tostring(L, -1)};
    return answer(L, &req, rc, &resp);
}

/*
 * Make the call and push the decoded answer, or raise the error table. The
 * host gives the call its Idempotency-Key and may answer it from the
 * journal of an earlier attempt. When the host sends it in the background
 * (SY_EAGAIN), the rule's coroutine yields here and goes on in resume_call
 * once the answer is in: the rule reads as straight-line code.
 */
static int finish_call(lua_State *L, struct sy_lua *lx, struct sy_unizo_request *req)
{
    struct sy_lua_call *call = sy_lua_call_of(L);
    if (call->run == NULL) {
        return luaL_error(L, "%s %s: Unizo calls are only allowed while a rule runs", req->method,
                          req->path);
    }
    struct sy_unizo_response resp;
    /* pushed before anything is sent: a memory error here leaves no call in flight */
    luaL_checkstack(L, 4, "unizo call");
    lua_pushstring(L, req->method); /* what the message of a failure names after a yield */
    lua_pushstring(L, req->path);
    double began = sy_lua_wait_begin(L);
    /* only where the coroutine can yield may the call wait in the background */
    bool background = lx->host.unizo_start != NULL && lua_isyieldable(L);
    int rc = background ? lx->host.unizo_start(lx->host.ctx, call->run, req, &resp)
                        : lx->host.unizo_call(lx->host.ctx, call->run, req, &resp);
    if (rc == SY_EAGAIN && background) {
        call->wait_began = began;
        return lua_yieldk(L, 0, 0, resume_call);
    }
    sy_lua_wait_end(L, began);
    return answer(L, req, rc, &resp);
}

/* Push the JSON text of the value at idx, or raise a Lua error naming 'what'. */
static const char *push_json_text(lua_State *L, int idx, const char *what)
{
    char err[160];
    if (!sy_lua_encode_json(L, idx, err, sizeof(err))) {
        luaL_error(L, "%s: %s", what, err);
        return NULL;
    }
    return lua_tostring(L, -1);
}

/* Add 's' percent-encoded (all but unreserved characters) to the buffer. */
static void add_escaped(luaL_Buffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || strchr("-._~", c) != NULL) {
            luaL_addchar(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            luaL_addlstring(b, e, 3);
        }
    }
}

/*
 * Push "k1=v1&k2=v2" from the table at idx, each part escaped. Everything lives on the
 * Lua stack, so a value whose __tostring raises leaves nothing behind.
 */
static void push_query(lua_State *L, int idx)
{
    lua_newtable(L); /* the escaped parts */
    int parts = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 1);
            continue;
        }
        size_t kl, vl;
        const char *v = luaL_tolstring(L, -1, &vl); /* may raise: nothing to free */
        const char *k = lua_tolstring(L, -3, &kl);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        add_escaped(&b, k, kl);
        luaL_addchar(&b, '=');
        add_escaped(&b, v, vl);
        luaL_pushresult(&b);
        lua_rawseti(L, parts, ++n);
        lua_pop(L, 2); /* the value and its string form; the key stays for lua_next */
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) {
            luaL_addchar(&b, '&');
        }
        lua_rawgeti(L, parts, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_remove(L, parts);
}

/* unizo.request{method, path, query, body, integration}: the decoded answer, or an error. */
static int l_unizo_request(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
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
    lua_getfield(L, 1, "query");
    if (lua_type(L, -1) == LUA_TTABLE) {
        push_query(L, lua_gettop(L));
        lua_remove(L, -2);
    } else if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER &&
               !lua_isnil(L, -1)) {
        return luaL_error(L, "unizo.request: 'query' must be a table or a string");
    }
    size_t qlen = 0;
    const char *query = lua_tolstring(L, -1, &qlen);
    req.query = query != NULL && qlen > 0 ? query : NULL;
    lua_getfield(L, 1, "body");
    if (!lua_isnil(L, -1)) {
        req.body = push_json_text(L, -1, "unizo.request: body");
    }
    return finish_call(L, lx, &req);
}

/* unizo.ticketing.<helper>{integration = ..., ...}: see unizo/ticketing.h. */
static int l_ticketing(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
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
    char *owned[2] = {path, body};
    size_t lens[2] = {strlen(path), body ? strlen(body) : 0};
    sy_lua_push_owned(L, 2, owned, lens); /* path at 3, body (or nil) at 4 */
    struct sy_unizo_request req = {.method = method,
                                   .path = lua_tostring(L, 3),
                                   .body = lua_tostring(L, 4),
                                   .integration = integration,
                                   .endpoint = name};
    return finish_call(L, lx, &req);
}

/* Push the 'unizo' module: request, and the ticketing helpers. */
void sy_lua_open_unizo(lua_State *L)
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
    sy_lua_make_readonly(L, "unizo.ticketing");
    lua_setfield(L, -2, "ticketing");
}
