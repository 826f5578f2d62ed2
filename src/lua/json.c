#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json_scan.h"
#include "lua/json.h"

static const char ARRAY_MT[] = "sy.json.array";
static const char OBJECT_MT[] = "sy.json.object";
static char null_key; /* json.null is this address as a light userdata */

#define MAX_DEPTH 512

int sy_lua_is_null(lua_State *L, int idx)
{
    return lua_touserdata(L, idx) == &null_key;
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
    char *s =
        json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(v);
    if (s == NULL) {
        return luaL_error(L, "json.encode: out of memory");
    }
    lua_pushstring(L, s);
    free(s);
    return 1;
}

/* ---- direct decoder ---- */

struct dec {
    lua_State *L;
    const char *start, *p, *end;
    const char *fail_at;
    const char *what;
    int array_mt, object_mt; /* stack slots of the two metatables */
    char *buf;               /* unescape scratch */
    size_t cap;
};

static bool dfail(struct dec *d, const char *at, const char *what)
{
    if (d->what == NULL) {
        d->fail_at = at;
        d->what = what;
    }
    return false;
}

static void dskip(struct dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t')) {
        d->p++;
    }
}

static bool push_string(struct dec *d)
{
    struct sy_json_span span;
    const char *what = NULL;
    const char *after = sy_json_string_at(d->p, d->end, &span, &what);
    if (after == NULL) {
        return dfail(d, d->p, what);
    }
    d->p = after;
    if (memchr(span.p, '\\', span.len) == NULL) {
        lua_pushlstring(d->L, span.p, span.len);
        return true;
    }
    if (span.len > d->cap) {
        char *b = realloc(d->buf, span.len);
        if (b == NULL) {
            return dfail(d, span.p, "out of memory");
        }
        d->buf = b;
        d->cap = span.len;
    }
    long n = sy_json_unescape(&span, d->buf, d->cap); /* decoding never grows a string */
    lua_pushlstring(d->L, d->buf, (size_t)n);
    return true;
}

static bool push_number(struct dec *d)
{
    const char *what = NULL;
    bool real = false;
    const char *start = d->p;
    const char *after = sy_json_number_at(d->p, d->end, &real, &what);
    if (after == NULL) {
        return dfail(d, d->p, what);
    }
    d->p = after;
    size_t len = (size_t)(after - start);
    if (!real && len <= 18) {
        const char *q = start;
        bool neg = *q == '-';
        lua_Integer v = 0;
        for (q += neg; q < after; q++) {
            v = v * 10 + (*q - '0');
        }
        lua_pushinteger(d->L, neg ? -v : v);
        return true;
    }
    char tmp[512];
    char *copy = len < sizeof(tmp) ? tmp : malloc(len + 1);
    if (copy == NULL) {
        return dfail(d, start, "out of memory");
    }
    memcpy(copy, start, len);
    copy[len] = '\0';
    if (real) {
        lua_pushnumber(d->L, strtod(copy, NULL));
    } else {
        lua_pushinteger(d->L, (lua_Integer)strtoll(copy, NULL, 10));
    }
    if (copy != tmp) {
        free(copy);
    }
    return true;
}

static bool decode_value(struct dec *d, int depth)
{
    dskip(d);
    if (d->p >= d->end) {
        return dfail(d, d->p, "unexpected end of input");
    }
    char c = *d->p;
    if (c == '{' || c == '[') {
        if (depth >= SY_JSON_MAX_DEPTH) {
            return dfail(d, d->p, "maximum parsing depth reached");
        }
        if (!lua_checkstack(d->L, 4)) {
            return dfail(d, d->p, "out of memory");
        }
        bool obj = c == '{';
        char close = obj ? '}' : ']';
        lua_createtable(d->L, obj ? 0 : 4, obj ? 4 : 0);
        d->p++;
        dskip(d);
        lua_Integer i = 1;
        if (d->p < d->end && *d->p == close) {
            d->p++;
        } else {
            for (;;) {
                if (obj) {
                    dskip(d);
                    if (d->p >= d->end || *d->p != '"') {
                        return dfail(d, d->p, "string or '}' expected");
                    }
                    if (!push_string(d)) {
                        return false;
                    }
                    dskip(d);
                    if (d->p >= d->end || *d->p != ':') {
                        return dfail(d, d->p, "':' expected");
                    }
                    d->p++;
                }
                if (!decode_value(d, depth + 1)) {
                    return false;
                }
                if (obj) {
                    lua_rawset(d->L, -3);
                } else {
                    lua_rawseti(d->L, -2, i++);
                }
                dskip(d);
                if (d->p < d->end && *d->p == ',') {
                    d->p++;
                    continue;
                }
                if (d->p < d->end && *d->p == close) {
                    d->p++;
                    break;
                }
                return dfail(d, d->p, obj ? "',' or '}' expected" : "',' or ']' expected");
            }
        }
        lua_pushvalue(d->L, obj ? d->object_mt : d->array_mt);
        lua_setmetatable(d->L, -2);
        return true;
    }
    if (c == '"') {
        return push_string(d);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        return push_number(d);
    }
    static const struct {
        const char *word;
        size_t len;
    } words[] = {{"true", 4}, {"false", 5}, {"null", 4}};
    for (int k = 0; k < 3; k++) {
        if ((size_t)(d->end - d->p) >= words[k].len &&
            memcmp(d->p, words[k].word, words[k].len) == 0) {
            d->p += words[k].len;
            if (k == 2) {
                lua_pushlightuserdata(d->L, &null_key);
            } else {
                lua_pushboolean(d->L, k == 0);
            }
            return true;
        }
    }
    return dfail(d, d->p, "invalid token");
}

int sy_lua_decode_json(lua_State *L, const char *text, size_t len, bool any, char *err,
                       size_t errlen)
{
    int top = lua_gettop(L);
    luaL_checkstack(L, 8, "json");
    luaL_getmetatable(L, ARRAY_MT);
    luaL_getmetatable(L, OBJECT_MT);
    struct dec d = {.L = L,
                    .start = text,
                    .p = text,
                    .end = text + len,
                    .array_mt = top + 1,
                    .object_mt = top + 2};
    dskip(&d);
    bool ok;
    if (!any && (d.p >= d.end || (*d.p != '{' && *d.p != '['))) {
        ok = dfail(&d, d.p, "'[' or '{' expected");
    } else {
        ok = decode_value(&d, 0);
    }
    if (ok) {
        dskip(&d);
        if (d.p != d.end) {
            ok = dfail(&d, d.p, "end of file expected");
        }
    }
    free(d.buf);
    if (!ok) {
        int line = 1, col = 1;
        for (const char *q = text; q < d.fail_at; q++) {
            col = *q == '\n' ? 1 : col + 1;
            line += *q == '\n';
        }
        snprintf(err, errlen, "%s at line %d, column %d", d.what, line, col);
        lua_settop(L, top);
        return 0;
    }
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char err[200];
    if (!sy_lua_decode_json(L, s, len, true, err, sizeof(err))) {
        return luaL_error(L, "json.decode: %s", err);
    }
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
