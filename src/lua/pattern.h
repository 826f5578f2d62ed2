#ifndef SY_LUA_PATTERN_H
#define SY_LUA_PATTERN_H

#include <lua.h>

/*
 * Replace find, match, gmatch, gsub and rep in the string library table at
 * index 'string_table' with versions that behave as Lua 5.4's but charge
 * their work to the sandbox (sy_lua_charge), so the instruction and time
 * limits hold inside pattern matching too. Called while the state is built.
 */
void sy_lua_patterns_install(lua_State *L, int string_table);

#endif
