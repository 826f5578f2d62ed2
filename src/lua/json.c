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

int sy_lua_is_null(lua_State *L, int idx)
{
    return lua_touserdata(L, idx) == &null_key;
}

json_t *sy_lua_to_json(lua_State *L, int idx, char *err, size_t errlen)
{
    if (!sy_lua_encode_json(L, idx, err, errlen)) {
        return NULL;
    }
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    if (len > SY_LUA_TO_JSON_MAX) {
        /* the text was counted against the memory limit; a jansson tree of it would not be */
        lua_pop(L, 1);
        snprintf(err, errlen, "too large (over 4 MiB as JSON)");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    lua_pop(L, 1);
    if (v == NULL) {
        snprintf(err, errlen, "%s", jerr.text);
    }
    return v;
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    char err[160];
    if (!sy_lua_encode_json(L, 1, err, sizeof(err))) {
        return luaL_error(L, "json.encode: %s", err);
    }
    return 1;
}

/* ---- direct decoder ---- */

struct dec {
    lua_State *L;
    const char *start, *p, *end;
    const char *fail_at;
    const char *what;
    int array_mt, object_mt; /* stack slots of the two metatables */
    int buf_slot;            /* stack slot of the unescape scratch, a userdata */
    char *buf;
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
        /* Lua's memory, so the limit counts it and an error leaves nothing behind */
        d->buf = lua_newuserdatauv(d->L, span.len, 0);
        lua_replace(d->L, d->buf_slot);
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
    char *copy = len < sizeof(tmp) ? tmp : lua_newuserdatauv(d->L, len + 1, 0);
    memcpy(copy, start, len);
    copy[len] = '\0';
    if (real) {
        lua_pushnumber(d->L, strtod(copy, NULL));
    } else {
        lua_pushinteger(d->L, (lua_Integer)strtoll(copy, NULL, 10));
    }
    if (copy != tmp) {
        lua_remove(d->L, -2); /* the long number's scratch */
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
    lua_pushnil(L); /* the scratch, once a string needs one */
    struct dec d = {.L = L,
                    .start = text,
                    .p = text,
                    .end = text + len,
                    .array_mt = top + 1,
                    .object_mt = top + 2,
                    .buf_slot = top + 3};
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
