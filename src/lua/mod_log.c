/* The 'log' module and print(): log lines with the rule and event id. */
#include <stdlib.h>

#include <jansson.h>
#include <lauxlib.h>

#include "lua/sandbox_int.h"
#include "lua/json.h"
#include "util/buf.h"
#include "util/log.h"

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
    struct sy_lua *lx = sy_lua_self(L);
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
int sy_lua_print(lua_State *L)
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

void sy_lua_open_log(lua_State *L)
{
    static const luaL_Reg logf[] = {
        {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error}, {NULL, NULL}};
    luaL_newlib(L, logf);
}
