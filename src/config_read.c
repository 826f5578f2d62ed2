#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "config_read.h"

void sy_cfg_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/*
 * Lua reports an assignment at the line where its value ends; a table
 * constructor can span many lines. Find the line where "key =" starts it:
 * the last line at or before 'end_line' that begins with the key.
 */
int sy_cfg_statement_line(const char *source, const char *key, int end_line)
{
    int found = end_line, line = 1;
    size_t klen = strlen(key);
    for (const char *p = source; *p && line <= end_line; line++) {
        const char *q = p;
        while (*q == ' ' || *q == '\t') {
            q++;
        }
        if (strncmp(q, key, klen) == 0) {
            q += klen;
            while (*q == ' ' || *q == '\t') {
                q++;
            }
            if (*q == '=' && q[1] != '=') {
                found = line;
            }
        }
        p = strchr(p, '\n');
        if (p == NULL) {
            break;
        }
        p++;
    }
    return found;
}

/* Line of the first "key =" at or after the statement's line, or that line when not found. */
static int find_key_line(const struct sy_cfg_walker *w, const char *key)
{
    if (w->source == NULL) {
        return w->base_line;
    }
    int line = 1;
    const char *p = w->source;
    size_t klen = strlen(key);
    while (*p && line < w->base_line) {
        if (*p++ == '\n') {
            line++;
        }
    }
    for (; *p; p++) {
        if (*p == '\n') {
            line++;
            continue;
        }
        bool boundary = p == w->source || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        if (boundary && strncmp(p, key, klen) == 0 &&
            !(isalnum((unsigned char)p[klen]) || p[klen] == '_')) {
            const char *q = p + klen;
            while (*q == ' ' || *q == '\t' || *q == ']' || *q == '"' || *q == '\'') {
                q++;
            }
            if (*q == '=' && q[1] != '=') {
                return line;
            }
        }
    }
    return w->base_line;
}

int sy_cfg_fail(struct sy_cfg_walker *w, const char *key, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = key ? find_key_line(w, key) : w->base_line;
    return sy_error_set(w->err, w->file, line, "%s", msg);
}

/* Last path segment, used to find the key's line in the source. */
const char *sy_cfg_leaf(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* ---- typed readers: the value is on top of the stack ---- */

int sy_cfg_string(struct sy_cfg_walker *w, const char *path, char **out)
{
    if (lua_type(w->L, -1) != LUA_TSTRING) {
        return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' must be a string, got %s", path,
                           luaL_typename(w->L, -1));
    }
    size_t len;
    const char *s = lua_tolstring(w->L, -1, &len);
    if (strlen(s) != len) {
        return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' contains a NUL byte", path);
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return SY_ENOMEM;
    }
    free(*out);
    *out = copy;
    return SY_OK;
}

int sy_cfg_bool(struct sy_cfg_walker *w, const char *path, bool *out)
{
    if (lua_type(w->L, -1) != LUA_TBOOLEAN) {
        return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' must be true or false, got %s", path,
                           luaL_typename(w->L, -1));
    }
    *out = lua_toboolean(w->L, -1);
    return SY_OK;
}

int sy_cfg_int(struct sy_cfg_walker *w, const char *path, int64_t min, int64_t max, int64_t *out)
{
    int isnum = 0;
    lua_Integer v = lua_tointegerx(w->L, -1, &isnum);
    if (lua_type(w->L, -1) != LUA_TNUMBER || !isnum) {
        return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' must be a whole number, got %s", path,
                           luaL_typename(w->L, -1));
    }
    if (v < min || v > max) {
        return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' must be between %lld and %lld, got %lld",
                           path, (long long)min, (long long)max, (long long)v);
    }
    *out = v;
    return SY_OK;
}

/* A number of 'plain' units or a string with a unit, through 'parse'. */
int sy_cfg_unit(struct sy_cfg_walker *w, const char *path, bool (*parse)(const char *, uint64_t *),
                uint64_t plain_factor, const char *example, uint64_t *out)
{
    int t = lua_type(w->L, -1);
    if (t == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(w->L, -1);
        if (n < 0 || n > 9.0e15) {
            return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' is out of range", path);
        }
        *out = (uint64_t)(n * (lua_Number)plain_factor);
        return SY_OK;
    }
    if (t == LUA_TSTRING && parse(lua_tostring(w->L, -1), out)) {
        return SY_OK;
    }
    return sy_cfg_fail(
        w, sy_cfg_leaf(path), "'%s' must be a number or a string like \"%s\", got %s%s%s%s", path,
        example, luaL_typename(w->L, -1), t == LUA_TSTRING ? " \"" : "",
        t == LUA_TSTRING ? lua_tostring(w->L, -1) : "", t == LUA_TSTRING ? "\"" : "");
}

/* A string or a list of strings. */
int sy_cfg_strv(struct sy_cfg_walker *w, const char *path, bool allow_single, char ***out,
                size_t *n)
{
    lua_State *L = w->L;
    if (allow_single && lua_type(L, -1) == LUA_TSTRING) {
        char **v = calloc(1, sizeof(char *));
        if (v == NULL || (v[0] = strdup(lua_tostring(L, -1))) == NULL) {
            free(v);
            return SY_ENOMEM;
        }
        sy_cfg_free_strv(*out, *n);
        *out = v;
        *n = 1;
        return SY_OK;
    }
    if (lua_type(L, -1) != LUA_TTABLE) {
        return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' must be a list of strings, got %s", path,
                           luaL_typename(L, -1));
    }
    /* collect by numeric key, skipping holes left by env() values that are unset */
    lua_Integer max = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        int isint = 0;
        lua_Integer k = lua_tointegerx(L, -2, &isint);
        if (lua_type(L, -2) != LUA_TNUMBER || !isint || k < 1 || k > 4096) {
            lua_pop(L, 2);
            return sy_cfg_fail(w, sy_cfg_leaf(path),
                               "'%s' must be a list, not a table with named keys", path);
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            int rc = sy_cfg_fail(w, sy_cfg_leaf(path), "'%s[%lld]' must be a string, got %s", path,
                                 (long long)k, luaL_typename(L, -1));
            lua_pop(L, 2);
            return rc;
        }
        if (k > max) {
            max = k;
        }
        lua_pop(L, 1);
    }
    char **v = calloc((size_t)max + 1, sizeof(char *));
    if (v == NULL) {
        return SY_ENOMEM;
    }
    size_t count = 0;
    for (lua_Integer i = 1; i <= max; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) == LUA_TSTRING) {
            v[count] = strdup(lua_tostring(L, -1));
            if (v[count++] == NULL) {
                lua_pop(L, 1);
                sy_cfg_free_strv(v, count);
                return SY_ENOMEM;
            }
        }
        lua_pop(L, 1);
    }
    sy_cfg_free_strv(*out, *n);
    *out = v;
    *n = count;
    return SY_OK;
}

int sy_cfg_cidrs(struct sy_cfg_walker *w, const char *path, struct sy_cidr **out, size_t *n)
{
    char **v = NULL;
    size_t count = 0;
    int rc = sy_cfg_strv(w, path, false, &v, &count);
    if (rc != SY_OK) {
        return rc;
    }
    struct sy_cidr *list = calloc(count ? count : 1, sizeof(*list));
    if (list == NULL) {
        sy_cfg_free_strv(v, count);
        return SY_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (!sy_cidr_parse(v[i], &list[i])) {
            rc = sy_cfg_fail(w, sy_cfg_leaf(path),
                             "'%s': \"%s\" is not an address or CIDR range (like 10.0.0.0/8 or "
                             "2001:db8::/32)",
                             path, v[i]);
            free(list);
            sy_cfg_free_strv(v, count);
            return rc;
        }
    }
    sy_cfg_free_strv(v, count);
    free(*out);
    *out = list;
    *n = count;
    return SY_OK;
}

/*
 * Check that every key of the table on top of the stack is in 'known'
 * (NULL-terminated) and is a string.
 */
int sy_cfg_keys(struct sy_cfg_walker *w, const char *path, const char *const *known)
{
    lua_State *L = w->L;
    if (lua_type(L, -1) != LUA_TTABLE) {
        return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' must be a table, got %s", path,
                           luaL_typename(L, -1));
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' has a key that is not a name", path);
        }
        const char *k = lua_tostring(L, -1);
        bool found = false;
        for (const char *const *p = known; *p; p++) {
            if (strcmp(*p, k) == 0) {
                found = true;
            }
        }
        if (!found) {
            char list[256] = "";
            size_t off = 0;
            for (const char *const *p = known; *p && off < sizeof(list); p++) {
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
                                        p == known ? "" : ", ", *p);
            }
            int rc = sy_cfg_fail(w, k, "unknown key '%s.%s' (known: %s)", path, k, list);
            lua_pop(L, 1);
            return rc;
        }
    }
    return SY_OK;
}

/* One of 'choices' (a NULL-ended list of strings) into *out as its index. */
int sy_cfg_choice(struct sy_cfg_walker *w, const char *path, const char *const *choices, int *out)
{
    const char *s = lua_type(w->L, -1) == LUA_TSTRING ? lua_tostring(w->L, -1) : NULL;
    for (int i = 0; s != NULL && choices[i] != NULL; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return SY_OK;
        }
    }
    char list[200] = "";
    for (int i = 0; choices[i] != NULL; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s\"%s\"",
                 i == 0           ? ""
                 : choices[i + 1] ? ", "
                                  : " or ",
                 choices[i]);
    }
    return sy_cfg_fail(w, sy_cfg_leaf(path), "'%s' must be %s, got %s%s%s", path, list,
                       s ? "\"" : "", s ? s : luaL_typename(w->L, -1), s ? "\"" : "");
}

/* Push t[key] (t on top); returns false (and pushes nothing) when nil. */
bool sy_cfg_field(lua_State *L, const char *key)
{
    lua_getfield(L, -1, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}
