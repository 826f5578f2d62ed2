/* JSON -> Lua -> JSON: the direct decoder must accept what jansson accepts, with the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "lua/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (L == NULL) {
        L = luaL_newstate();
        sy_lua_open_json(L);
        lua_setglobal(L, "json");
    }
    char err[200];
    json_t *want = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    int ok = sy_lua_decode_json(L, (const char *)data, size, true, err, sizeof(err));
    if ((ok && want == NULL) || (!ok && want != NULL && memchr(data, 0, size) == NULL)) {
        abort(); /* see fuzz_envelope.c: jansson's NUL quirk is the one allowed difference */
    }
    if (ok && want != NULL) {
        json_t *got = sy_lua_to_json(L, -1, err, sizeof(err));
        if (got == NULL || !json_equal(got, want)) {
            abort();
        }
        json_decref(got);
        lua_pop(L, 1);
    }
    json_decref(want);
    lua_settop(L, 0);
    return 0;
}
