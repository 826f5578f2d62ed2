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
 * Encode the value at 'idx' as compact JSON text, object keys in byte order
 * (the same table always gives the same text). Unmarked tables are lists
 * when their keys are exactly 1..n, else objects. The text is built in
 * memory the state's allocator counts, so a rule's memory limit covers it,
 * and nothing is left on the C heap by any error. Pushes the text and
 * returns 1, or returns 0 with a message in 'err' and nothing pushed (a
 * table inside itself, nesting over 2048 (as the decoder), a function, NaN, a string that is
 * not UTF-8, an integer key colliding with a string key). Raises only the
 * state's memory error.
 */
int sy_lua_encode_json(lua_State *L, int idx, char *err, size_t errlen);

/* Largest text sy_lua_to_json turns into a jansson tree (which no Lua limit counts). */
#define SY_LUA_TO_JSON_MAX (4u << 20)

/* The same value as a jansson tree, through the text above. NULL with 'err' set. */
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
