/* The 'log' module and print(): log lines with the rule and event id. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "lua/sandbox_int.h"
#include "lua/json.h"
#include "util/log.h"

#define MAX_FIELDS 16
#define MAX_VALUE 8192 /* bytes of one field's value written to the log */

/* Push the log text of the value at idx: tables as JSON, the rest as tostring gives it. */
static void push_field_text(lua_State *L, int idx)
{
    char err[120];
    if (lua_type(L, idx) != LUA_TTABLE || !sy_lua_encode_json(L, idx, err, sizeof(err))) {
        if (lua_type(L, idx) == LUA_TTABLE) {
            lua_pushfstring(L, "(not JSON: %s)", err);
        } else {
            luaL_tolstring(L, idx, NULL);
        }
    }
}

/*
 * log.info(msg [, fields]): up to MAX_FIELDS fields, each value cut at MAX_VALUE bytes.
 * Every string is built on the Lua stack, so a __tostring that raises (or the memory
 * limit) leaves nothing behind.
 */
static int log_at(lua_State *L, enum sy_log_level level)
{
    struct sy_lua *lx = sy_lua_self(L);
    const char *msg = luaL_checkstring(L, 1);
    if (lx->host.log != NULL) {
        lx->host.log(lx->host.ctx, L, (int)level, msg, lua_type(L, 2) == LUA_TTABLE ? 2 : 0);
        return 0;
    }
    if (!sy_log_enabled(level)) {
        return 0;
    }
    const char *keys[MAX_FIELDS + 2], *vals[MAX_FIELDS + 2];
    size_t lens[MAX_FIELDS + 2], n = 0;
    keys[n] = "rule";
    const struct sy_lua_call *call = sy_lua_call_of(L);
    vals[n] = call->rule ? call->rule : "";
    lens[n] = strlen(vals[n]);
    n++;
    keys[n] = "event";
    vals[n] = call->event_id ? call->event_id : "";
    lens[n] = strlen(vals[n]);
    n++;
    if (lua_type(L, 2) == LUA_TTABLE) {
        /* first the texts, kept alive in a table on the stack; then their addresses */
        lua_settop(L, 2);
        lua_createtable(L, 2 * MAX_FIELDS, 0);
        int acc = lua_gettop(L);
        lua_Integer count = 0;
        lua_pushnil(L);
        while (count < MAX_FIELDS && lua_next(L, 2) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                lua_pushvalue(L, -2);
                lua_rawseti(L, acc, 2 * count + 1);
                push_field_text(L, lua_gettop(L));
                lua_rawseti(L, acc, 2 * count + 2);
                count++;
            }
            lua_pop(L, 1);
        }
        if (count == MAX_FIELDS) {
            lua_pop(L, 1); /* lua_next's key, left when the loop stopped early */
        }
        for (lua_Integer i = 0; i < count; i++) {
            lua_rawgeti(L, acc, 2 * i + 1);
            keys[n] = lua_tostring(L, -1);
            lua_rawgeti(L, acc, 2 * i + 2);
            vals[n] = lua_tolstring(L, -1, &lens[n]);
            lens[n] = lens[n] > MAX_VALUE ? MAX_VALUE : lens[n];
            n++;
            lua_pop(L, 2); /* still referenced from acc */
        }
    }
    sy_log_fields(level, msg, keys, vals, lens, n);
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
int sy_lua_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) {
            luaL_addchar(&b, '\t');
        }
        luaL_tolstring(L, i, NULL); /* may raise: the buffer is the collector's */
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    lua_pushlstring(L, text, len > MAX_VALUE ? MAX_VALUE : len);
    lua_replace(L, 1);
    lua_settop(L, 1);
    return log_at(L, SY_LOG_INFO);
}

void sy_lua_open_log(lua_State *L)
{
    static const luaL_Reg logf[] = {
        {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error}, {NULL, NULL}};
    luaL_newlib(L, logf);
}
