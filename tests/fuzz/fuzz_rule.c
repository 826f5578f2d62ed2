/*
 * Rule code in the sandbox with small limits: whatever it is, it must end
 * (instructions, time, memory), never crash, and leave the state usable.
 * The first byte picks the form: 'p' runs the string functions on
 * "subject\npattern" (the charged matcher); anything else runs the input as
 * a Lua chunk.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua/sandbox.h"
#include "util/log.h"

static const char patterns[] =
    "local s, p = ...\n"
    "pcall(string.find, s, p) pcall(string.find, s, p, 2, true) pcall(string.match, s, p, -3)\n"
    "pcall(function() for a, b in string.gmatch(s, p) do end end)\n"
    "pcall(string.gsub, s, p, '%0%1') pcall(string.gsub, s, p, function(...) return ... end)\n"
    "pcall(string.gsub, s, p, { a = 'b' }, 3) pcall(string.rep, s, #p, p)\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096) {
        return 0;
    }
    sy_log_configure(SY_LOG_ERROR, false); /* print and log.* would flood the fuzzer's output */
    struct sy_lua_limits lim = {.instructions = 200000, .memory = 4u << 20, .timeout_ms = 500};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    if (lx == NULL) {
        return 0;
    }
    lua_State *L = sy_lua_state(lx);
    char err[512];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] == 'p') {
        const char *nl = memchr(text, '\n', len);
        size_t ls = nl ? (size_t)(nl - text) : len;
        if (luaL_loadbufferx(L, patterns, strlen(patterns), "=patterns", "t") == LUA_OK) {
            lua_pushlstring(L, text, ls);
            lua_pushlstring(L, nl ? nl + 1 : "", nl ? len - ls - 1 : 0);
            sy_lua_pcall(lx, 2, 0, err, sizeof(err));
        }
    } else if (luaL_loadbufferx(L, text, len, "=fuzz", "t") == LUA_OK) {
        sy_lua_pcall(lx, 0, 0, err, sizeof(err));
    }
    lua_settop(L, 0);
    /* the state still runs code after whatever happened */
    if (luaL_loadstring(L, "return 1 + 1") != LUA_OK ||
        sy_lua_pcall(lx, 0, 1, err, sizeof(err)) != SY_LUA_OK || lua_tointeger(L, -1) != 2) {
        abort();
    }
    sy_lua_free(lx);
    return 0;
}
