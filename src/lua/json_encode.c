/*
 * Lua values to JSON text, for json.encode, kv values, log fields and Unizo
 * bodies. Everything is built in Lua userdata, so the state's allocator (and
 * its memory limit) sees every byte, and an error anywhere, a memory error
 * included, leaves nothing behind for the C heap: the collector takes it all.
 * A table that refers to itself is refused; one shared many times is written
 * out each time, and the memory limit bounds how large that may grow.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json_scan.h"
#include "lua/json.h"
#include "util/utf8.h"

struct enc {
    lua_State *L;
    int buf_slot, seen_slot; /* stack slots: the output userdata, the tables being written */
    char *p;
    size_t len, cap;
    char *err;
    size_t errlen;
};

/* One key of an object: a string (borrowed from the table) or an integer, with its text. */
struct key {
    const char *p; /* a string key's bytes; unused for an integer */
    size_t len;
    bool integer;
    lua_Integer i;
    char num[24]; /* an integer key's text */
};

static const char *key_text(const struct key *k)
{
    return k->integer ? k->num : k->p;
}

static bool fail(struct enc *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct enc *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
    return false;
}

/* Room for n more bytes: a larger userdata replaces the old one (which the collector takes). */
static void reserve(struct enc *e, size_t n)
{
    if (e->len + n <= e->cap) {
        return;
    }
    size_t cap = e->cap;
    while (cap < e->len + n) {
        cap *= 2;
    }
    char *grown = lua_newuserdatauv(e->L, cap, 0); /* may raise the memory limit's error */
    memcpy(grown, e->p, e->len);
    lua_replace(e->L, e->buf_slot);
    e->p = grown;
    e->cap = cap;
}

static void put(struct enc *e, const char *s, size_t n)
{
    reserve(e, n);
    memcpy(e->p + e->len, s, n);
    e->len += n;
}

static bool put_string(struct enc *e, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    reserve(e, len + 2);
    e->p[e->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t n = sy_utf8_seq((const unsigned char *)s + i, len - i, &cp);
        if (n == 0) {
            return fail(e, "a string is not valid UTF-8");
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i += n;
            continue;
        }
        put(e, s + run, i - run);
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        put(e, esc, el);
        i++;
        run = i;
    }
    put(e, s + run, len - run);
    put(e, "\"", 1);
    return true;
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

static int cmp_keys(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    int c = memcmp(key_text(x), key_text(y), x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static bool value(struct enc *e, int idx, int depth);

/* A real with 17 significant digits, written as jansson writes it: "1e22", "2.5", "3.0". */
static void put_real(struct enc *e, double d)
{
    char num[40];
    int l = snprintf(num, sizeof(num), "%.17g", d);
    char *x = strchr(num, 'e');
    if (x == NULL && strchr(num, '.') == NULL) {
        memcpy(num + l, ".0", 3); /* still a real when read back */
        l += 2;
    } else if (x != NULL) {
        /* "1e+22" -> "1e22", "1e-05" -> "1e-5" */
        char *from = x + 1, *to = x + 1;
        if (*from == '+') {
            from++;
        } else if (*from == '-') {
            *to++ = *from++;
        }
        while (*from == '0' && from[1] != '\0') {
            from++;
        }
        memmove(to, from, strlen(from) + 1);
        l = (int)strlen(num);
    }
    put(e, num, (size_t)l);
}

static bool array(struct enc *e, int idx, size_t n, int depth)
{
    put(e, "[", 1);
    for (size_t i = 1; i <= n; i++) {
        if (i > 1) {
            put(e, ",", 1);
        }
        lua_rawgeti(e->L, idx, (lua_Integer)i);
        bool ok = value(e, lua_gettop(e->L), depth + 1);
        lua_pop(e->L, 1);
        if (!ok) {
            return false;
        }
    }
    put(e, "]", 1);
    return true;
}

/* An object with its keys in byte order, so the same table always gives the same text. */
static bool object(struct enc *e, int idx, size_t count, int depth)
{
    lua_State *L = e->L;
    struct key *keys = lua_newuserdatauv(L, (count ? count : 1) * sizeof(*keys), 0);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        struct key *k = &keys[n];
        lua_pop(L, 1);
        if (n == count) {
            lua_pop(L, 2);
            return fail(e, "a table changed while it was encoded");
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
            k->p = lua_tolstring(L, -1, &k->len); /* kept alive by the table */
            k->integer = false;
        } else if (lua_isinteger(L, -1)) {
            k->i = lua_tointeger(L, -1);
            k->len = (size_t)snprintf(k->num, sizeof(k->num), "%lld", (long long)k->i);
            k->integer = true;
        } else {
            const char *type = luaL_typename(L, -1);
            lua_pop(L, 2);
            return fail(e, "an object key must be a string, got %s", type);
        }
        n++;
    }
    qsort(keys, n, sizeof(*keys), cmp_keys);
    put(e, "{", 1);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        if (i > 0 && cmp_keys(&keys[i - 1], &keys[i]) == 0) {
            char both[64];
            snprintf(both, sizeof(both), "%.*s", (int)(keys[i].len > 40 ? 40 : keys[i].len),
                     key_text(&keys[i]));
            ok = fail(e, "the keys %s and \"%s\" collide (an integer and a string)", both, both);
            break;
        }
        if (i > 0) {
            put(e, ",", 1);
        }
        ok = put_string(e, key_text(&keys[i]), keys[i].len);
        if (!ok) {
            break;
        }
        put(e, ":", 1);
        if (keys[i].integer) {
            lua_rawgeti(L, idx, keys[i].i);
        } else {
            lua_pushlstring(L, keys[i].p, keys[i].len);
            lua_rawget(L, idx);
        }
        ok = value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* the keys */
    if (ok) {
        put(e, "}", 1);
    }
    return ok;
}

static bool table(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth >= SY_JSON_MAX_DEPTH) {
        /* the decoder's limit too: whatever json.decode gives, json.encode writes back */
        return fail(e, "nested deeper than %d levels", SY_JSON_MAX_DEPTH);
    }
    if (!lua_checkstack(L, 8)) {
        return fail(e, "nested too deeply for the stack");
    }
    lua_pushvalue(L, idx);
    if (lua_rawget(L, e->seen_slot) != LUA_TNIL) {
        lua_pop(L, 1);
        return fail(e, "a table contains itself (a cycle)");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->seen_slot);

    bool is_array = has_mt(L, idx, "sy.json.array");
    bool is_object = has_mt(L, idx, "sy.json.object");
    size_t n = lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        count++;
        lua_pop(L, 1);
    }
    if (!is_array && !is_object) {
        /* unmarked: a list when its keys are exactly 1..n (n > 0), else an object */
        is_array = n > 0 && count == n;
    }
    bool ok = is_array ? array(e, idx, n, depth) : object(e, idx, count, depth);

    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, e->seen_slot); /* a table may appear again beside itself, just not inside */
    return ok;
}

static bool value(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    char num[40];
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        put(e, "null", 4);
        return true;
    case LUA_TBOOLEAN:
        lua_toboolean(L, idx) ? put(e, "true", 4) : put(e, "false", 5);
        return true;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            put(e, num,
                (size_t)snprintf(num, sizeof(num), "%lld", (long long)lua_tointeger(L, idx)));
            return true;
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d)) {
                return fail(e, "NaN and infinity have no JSON form");
            }
            put_real(e, d);
            return true;
        }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return put_string(e, s, len);
    }
    case LUA_TTABLE:
        return table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (sy_lua_is_null(L, idx)) {
            put(e, "null", 4);
            return true;
        }
        /* fall through */
    default:
        return fail(e, "a %s has no JSON form", luaL_typename(L, idx));
    }
}

int sy_lua_encode_json(lua_State *L, int idx, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    struct enc e = {.L = L, .err = err, .errlen = errlen, .cap = 256};
    e.p = lua_newuserdatauv(L, e.cap, 0);
    e.buf_slot = lua_gettop(L);
    lua_newtable(L);
    e.seen_slot = lua_gettop(L);
    bool ok = value(&e, idx, 0);
    if (ok) {
        lua_pushlstring(L, e.p, e.len);
        lua_replace(L, e.buf_slot);
    }
    lua_settop(L, e.buf_slot - (ok ? 0 : 1));
    return ok ? 1 : 0;
}
