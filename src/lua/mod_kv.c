/* The 'kv' module: values are stored as JSON, so numbers and tables come back as they went in. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "lua/sandbox_int.h"
#include "lua/json.h"
#include "util/parse.h"

static int l_kv_get(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
    const char *key = luaL_checkstring(L, 1);
    char *val = NULL;
    if (lx->host.kv_get == NULL || lx->host.kv_get(lx->host.ctx, lx->run, key, &val) != SY_OK) {
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
    struct sy_lua *lx = sy_lua_self(L);
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
    int rc = s && lx->host.kv_set ? lx->host.kv_set(lx->host.ctx, lx->run, key, s, ttl_ms) : SY_EIO;
    free(s);
    if (rc != SY_OK) {
        return luaL_error(L, "kv.set(\"%s\") failed: the store is unavailable", key);
    }
    return 0;
}

static int l_kv_delete(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
    const char *key = luaL_checkstring(L, 1);
    if (lx->host.kv_delete == NULL || lx->host.kv_delete(lx->host.ctx, lx->run, key) != SY_OK) {
        return luaL_error(L, "kv.delete(\"%s\") failed: the store is unavailable", key);
    }
    return 0;
}

void sy_lua_open_kv(lua_State *L)
{
    static const luaL_Reg kvf[] = {
        {"get", l_kv_get}, {"set", l_kv_set}, {"delete", l_kv_delete}, {NULL, NULL}};
    luaL_newlib(L, kvf);
}
