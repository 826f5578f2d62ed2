#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "lua/json.h"

static const char ARRAY_MT[] = "sy.json.array";
static const char OBJECT_MT[] = "sy.json.object";
static char null_key; /* json.null is this address as a light userdata */

#define MAX_DEPTH 512

int sy_lua_is_null(lua_State *L, int idx)
{
    return lua_touserdata(L, idx) == &null_key;
}

void sy_lua_push_json(lua_State *L, const json_t *v)
{
    luaL_checkstack(L, 4, "JSON nested too deeply");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(v));
        const char *k;
        json_t *item;
        json_object_foreach((json_t *)v, k, item)
        {
            lua_pushstring(L, k);
            sy_lua_push_json(L, item);
            lua_rawset(L, -3);
        }
        luaL_setmetatable(L, OBJECT_MT);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            sy_lua_push_json(L, json_array_get(v, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        luaL_setmetatable(L, ARRAY_MT);
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushlightuserdata(L, &null_key);
    }
}

static bool has_mt(lua_State *L, int idx, const char *name)
{
    if (!lua_getmetatable(L, idx)) {
        return false;
    }
    luaL_getmetatable(L, name);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static json_t *convert(lua_State *L, int idx, int depth, char *err, size_t errlen);

static json_t *convert_table(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "nested deeper than %d levels (a cycle?)", MAX_DEPTH);
        return NULL;
    }
    luaL_checkstack(L, 6, "table nested too deeply");
    bool is_array = has_mt(L, idx, ARRAY_MT);
    bool is_object = has_mt(L, idx, OBJECT_MT);
    size_t n = lua_rawlen(L, idx);
    if (!is_array && !is_object) {
        /* unmarked: a list when its keys are exactly 1..n (n > 0), else an object */
        size_t count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            count++;
            lua_pop(L, 1);
        }
        is_array = n > 0 && count == n;
    }
    if (is_array) {
        json_t *arr = json_array();
        for (size_t i = 1; arr && i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            json_t *item = convert(L, lua_gettop(L), depth + 1, err, errlen);
            lua_pop(L, 1);
            if (item == NULL || json_array_append_new(arr, item) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    json_t *obj = json_object();
    lua_pushnil(L);
    while (obj && lua_next(L, idx) != 0) {
        char keybuf[64];
        const char *key;
        if (lua_type(L, -2) == LUA_TSTRING) {
            key = lua_tostring(L, -2);
        } else if (lua_isinteger(L, -2)) {
            snprintf(keybuf, sizeof(keybuf), "%lld", (long long)lua_tointeger(L, -2));
            key = keybuf;
        } else {
            snprintf(err, errlen, "an object key must be a string, got %s", luaL_typename(L, -2));
            lua_pop(L, 2);
            json_decref(obj);
            return NULL;
        }
        json_t *item = convert(L, lua_gettop(L), depth + 1, err, errlen);
        if (item == NULL || json_object_set_new(obj, key, item) != 0) {
            lua_pop(L, 2);
            json_decref(obj);
            return NULL;
        }
        lua_pop(L, 1);
    }
    return obj;
}

static json_t *convert(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            return json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d)) {
                snprintf(err, errlen, "NaN and infinity have no JSON form");
                return NULL;
            }
            return json_real(d);
        }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        json_t *v = json_stringn(s, len);
        if (v == NULL) {
            snprintf(err, errlen, "a string is not valid UTF-8");
        }
        return v;
    }
    case LUA_TTABLE:
        return convert_table(L, idx, depth, err, errlen);
    case LUA_TLIGHTUSERDATA:
        if (sy_lua_is_null(L, idx)) {
            return json_null();
        }
        /* fall through */
    default:
        snprintf(err, errlen, "a %s has no JSON form", luaL_typename(L, idx));
        return NULL;
    }
}

json_t *sy_lua_to_json(lua_State *L, int idx, char *err, size_t errlen)
{
    return convert(L, lua_absindex(L, idx), 0, err, errlen);
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    char err[160];
    json_t *v = sy_lua_to_json(L, 1, err, sizeof(err));
    if (v == NULL) {
        return luaL_error(L, "json.encode: %s", err);
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS |
                                JSON_REAL_PRECISION(17));
    json_decref(v);
    if (s == NULL) {
        return luaL_error(L, "json.encode: out of memory");
    }
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    json_error_t jerr;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        return luaL_error(L, "json.decode: %s at line %d, column %d", jerr.text, jerr.line,
                          jerr.column);
    }
    sy_lua_push_json(L, v);
    json_decref(v);
    return 1;
}

/* json.array(t) / json.object(t): mark a table (a new empty one without argument). */
static int mark(lua_State *L, const char *mt)
{
    if (lua_isnoneornil(L, 1)) {
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    luaL_setmetatable(L, mt);
    return 1;
}

static int l_array(lua_State *L)
{
    return mark(L, ARRAY_MT);
}

static int l_object(lua_State *L)
{
    return mark(L, OBJECT_MT);
}

void sy_lua_open_json(lua_State *L)
{
    luaL_newmetatable(L, ARRAY_MT);
    lua_pushliteral(L, "json array");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "json array");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    luaL_newmetatable(L, OBJECT_MT);
    lua_pushliteral(L, "json object");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "json object");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"encode", l_encode}, {"decode", l_decode}, {"array", l_array},
        {"object", l_object}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, &null_key);
    lua_setfield(L, -2, "null");
}
