#ifndef SY_TEST_SNIPPET_H
#define SY_TEST_SNIPPET_H

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "lua/sandbox.h"

/* Run a Lua snippet inside the sandbox with its limits armed; the message goes to err. */
static enum sy_lua_result run_snippet(struct sy_lua *lx, const char *code, char *err, size_t len)
{
    lua_State *L = sy_lua_state(lx);
    err[0] = '\0';
    if (luaL_loadbufferx(L, code, strlen(code), "=snippet", "t") != LUA_OK) {
        snprintf(err, len, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return SY_LUA_ERROR;
    }
    return sy_lua_pcall(lx, 0, 0, err, len);
}

#endif
