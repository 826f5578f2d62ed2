/* The 'kv' module: values are stored as JSON, so numbers and tables come back as they went in. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "core/kvkey.h"
#include "lua/sandbox_int.h"
#include "lua/json.h"
#include "util/parse.h"

static int l_kv_get(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
    const char *key = luaL_checkstring(L, 1);
    char *val = NULL;
    double began = sy_lua_wait_begin(L);
    int grc = lx->host.kv_get ? lx->host.kv_get(lx->host.ctx, sy_lua_call_of(L)->run, key, &val) : SY_EIO;
    sy_lua_wait_end(L, began);
    if (grc != SY_OK) {
        return luaL_error(L, "kv.get(\"%s\") failed: the store is unavailable", key);
    }
    if (val == NULL) {
        lua_pushnil(L);
        return 1;
    }
    size_t vlen = strlen(val);
    sy_lua_push_owned(L, 1, &val, &vlen); /* frees val, even on a memory error */
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    char err[200];
    if (!sy_lua_decode_json(L, text, len, true, err, sizeof(err))) {
        lua_pushnil(L);
    }
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
    if (sy_kv_key_reserved(key)) {
        return luaL_error(L, "kv.set(\"%s\"): keys starting with \"" SY_RESERVED_KV_PREFIX
                             "\" are the server's own (paused rules)", key);
    }
    char err[160];
    if (!sy_lua_encode_json(L, 2, err, sizeof(err))) {
        return luaL_error(L, "kv.set(\"%s\"): %s", key, err);
    }
    const char *s = lua_tostring(L, -1); /* the text stays on the stack, so nothing can leak */
    double began = sy_lua_wait_begin(L);
    int rc = lx->host.kv_set ? lx->host.kv_set(lx->host.ctx, sy_lua_call_of(L)->run, key, s, ttl_ms) : SY_EIO;
    sy_lua_wait_end(L, began);
    if (rc != SY_OK) {
        return luaL_error(L, "kv.set(\"%s\") failed: the store is unavailable", key);
    }
    return 0;
}

static int l_kv_delete(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
    const char *key = luaL_checkstring(L, 1);
    if (sy_kv_key_reserved(key)) {
        return luaL_error(L, "kv.delete(\"%s\"): keys starting with \"" SY_RESERVED_KV_PREFIX
                             "\" are the server's own (paused rules)", key);
    }
    double began = sy_lua_wait_begin(L);
    int drc = lx->host.kv_delete ? lx->host.kv_delete(lx->host.ctx, sy_lua_call_of(L)->run, key) : SY_EIO;
    sy_lua_wait_end(L, began);
    if (drc != SY_OK) {
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
