#ifndef SY_LUA_JSON_H
#define SY_LUA_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <lua.h>

/*
 * JSON <-> Lua. Objects and arrays become tables carrying a metatable that
 * remembers which they were (so {} and [] survive a round trip); JSON null
 * becomes json.null; integers stay integers and reals stay floats.
 * All functions run on the thread that owns L.
 */

/*
 * Convert the value at 'idx'. Returns a new reference, or NULL with a
 * message in 'err' (cycles, nesting over 512, functions, NaN, non-UTF-8
 * strings, tables mixing list and named keys).
 */
json_t *sy_lua_to_json(lua_State *L, int idx, char *err, size_t errlen);

/*
 * Decode JSON text straight into Lua values (same rules as the ingest
 * scanner: strict, UTF-8, no NUL, 64-bit integers, depth 2048). Returns 1
 * with the value pushed, or 0 with a message in 'err' and nothing pushed.
 * 'any' allows a scalar at the top level.
 */
int sy_lua_decode_json(lua_State *L, const char *text, size_t len, bool any, char *err,
                       size_t errlen);

/* Push the 'json' module table: encode, decode, null, array, object. */
void sy_lua_open_json(lua_State *L);

/* True when the value at idx is json.null. */
int sy_lua_is_null(lua_State *L, int idx);

#endif
