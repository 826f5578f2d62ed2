/*
 * table.insert, table.remove and table.move as in Lua 5.4, with their loops
 * charged to the sandbox. The stock ones loop in C, where the count hook
 * never runs: table.move(t, 1, 1e15, 2), or insert and remove on a table
 * whose length is huge (a __len metamethod, or a border found through a few
 * entries at powers of two), would hold the worker for hours.
 */
#include <lauxlib.h>

#include "lua/sandbox_int.h"

#define CHARGE_EVERY 1024

/* Count one element moved; every CHARGE_EVERY of them go to the sandbox, which may raise. */
static void moved(lua_State *L, uint64_t *n)
{
    if (++*n == CHARGE_EVERY) {
        sy_lua_charge(L, *n);
        *n = 0;
    }
}

static int l_insert(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer first_empty = luaL_len(L, 1) + 1;
    lua_Integer pos = first_empty;
    uint64_t n = 0;
    if (lua_gettop(L) == 3) {
        pos = luaL_checkinteger(L, 2);
        /* 1 <= pos <= first_empty, in unsigned arithmetic so that no value wraps */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)first_empty, 2,
                      "position out of bounds");
        for (lua_Integer i = first_empty; i > pos; i--) {
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
            moved(L, &n);
        }
    } else if (lua_gettop(L) != 2) {
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    sy_lua_charge(L, n);
    return 0;
}

static int l_remove(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size) {
        /* 1 <= pos <= size + 1 */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    }
    uint64_t n = 0;
    lua_geti(L, 1, pos); /* the result */
    for (; pos < size; pos++) {
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
        moved(L, &n);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    sy_lua_charge(L, n);
    return 1;
}

static int l_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int dst = lua_isnoneornil(L, 5) ? 1 : 5;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, dst, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer count = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - count + 1, 4, "destination wrap around");
        uint64_t n = 0;
        /* copy forwards unless the ranges overlap with the destination after the source */
        bool forwards = t > e || t <= f || (dst != 1 && !lua_compare(L, 1, dst, LUA_OPEQ));
        for (lua_Integer i = 0; i < count; i++) {
            lua_Integer k = forwards ? i : count - 1 - i;
            lua_geti(L, 1, f + k);
            lua_seti(L, dst, t + k);
            moved(L, &n);
        }
        sy_lua_charge(L, n);
    }
    lua_pushvalue(L, dst);
    return 1;
}

void sy_lua_tables_install(lua_State *L, int table)
{
    static const luaL_Reg fns[] = {
        {"insert", l_insert}, {"remove", l_remove}, {"move", l_move}, {NULL, NULL}};
    for (const luaL_Reg *f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, table, f->name);
    }
}
