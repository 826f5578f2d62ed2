#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "lua/json.h"

/* Decode then encode in Lua; the text must come back identical (compact, sorted keys). */
static char *roundtrip(lua_State *L, const char *text)
{
    static char out[4096];
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "encode");
    lua_getfield(L, -2, "decode");
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_pcall(L, 1, 1, 0) != LUA_OK) {
        snprintf(out, sizeof(out), "error: %s", lua_tostring(L, -1));
    } else {
        snprintf(out, sizeof(out), "%s", lua_tostring(L, -1));
    }
    lua_settop(L, 0);
    return out;
}

static const char *eval(lua_State *L, const char *code)
{
    static char out[4096];
    if (luaL_dostring(L, code) != LUA_OK) {
        snprintf(out, sizeof(out), "error: %s", lua_tostring(L, -1));
    } else {
        snprintf(out, sizeof(out), "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nil)");
    }
    lua_settop(L, 0);
    return out;
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    sy_lua_open_json(L);
    lua_setglobal(L, "json");

    CHECK_STR(roundtrip(L, "null"), "null");
    CHECK_STR(roundtrip(L, "[]"), "[]");
    CHECK_STR(roundtrip(L, "{}"), "{}");
    CHECK_STR(roundtrip(L, "[1,2.0,-3,0.5]"), "[1,2.0,-3,0.5]");
    CHECK_STR(roundtrip(L, "{\"a\":null}"), "{\"a\":null}");
    CHECK_STR(roundtrip(L, "[null,null]"), "[null,null]");
    CHECK_STR(roundtrip(L, "{\"b\":{},\"a\":[],\"c\":[{}]}"), "{\"a\":[],\"b\":{},\"c\":[{}]}");
    CHECK_STR(roundtrip(L, "[9223372036854775807,-9223372036854775808]"),
              "[9223372036854775807,-9223372036854775808]");
    CHECK_STR(roundtrip(L, "[2.5,1e22,true,false]"), "[2.5,1e22,true,false]");
    CHECK_STR(roundtrip(L, "[\"caf\\u00e9\",\"\\ud83d\\ude00\"]"), "[\"café\",\"😀\"]");
    CHECK_STR(roundtrip(L, "\"x\""), "\"x\"");

    /* Lua side: integer vs float, null, marks, unmarked tables */
    CHECK_STR(eval(L, "return json.encode({1, 2, 3})"), "[1,2,3]");
    CHECK_STR(eval(L, "return json.encode({a = 1})"), "{\"a\":1}");
    CHECK_STR(eval(L, "return json.encode({})"), "{}");
    CHECK_STR(eval(L, "return json.encode(json.array())"), "[]");
    CHECK_STR(eval(L, "return json.encode(json.array({}))"), "[]");
    CHECK_STR(eval(L, "return json.encode(3)"), "3");
    CHECK_STR(eval(L, "return json.encode(3.0)"), "3.0");
    CHECK_STR(eval(L, "return json.encode(json.null)"), "null");
    CHECK_STR(eval(L, "return json.encode({x = json.null})"), "{\"x\":null}");
    CHECK_STR(eval(L, "return math.type(json.decode('5'))"), "integer");
    CHECK_STR(eval(L, "return math.type(json.decode('5.0'))"), "float");
    CHECK_STR(eval(L, "return tostring(json.decode('null') == json.null)"), "true");
    CHECK_STR(eval(L, "return tostring(json.decode('{\"a\":null}').a == json.null)"), "true");
    CHECK_STR(eval(L, "return #json.decode('[1,2,3]')"), "3");
    /* errors are clear */
    CHECK(strstr(eval(L, "local t = {} t.self = t return json.encode(t)"), "nested deeper") !=
          NULL);
    CHECK(strstr(eval(L, "return json.encode({f = print})"), "has no JSON form") != NULL);
    CHECK(strstr(eval(L, "return json.encode(0/0)"), "NaN") != NULL);
    CHECK(strstr(eval(L, "return json.encode('\\xff')"), "UTF-8") != NULL);
    CHECK(strstr(eval(L, "return json.decode('{bad')"), "json.decode") != NULL);
    CHECK(strstr(eval(L, "return json.encode({[true] = 1})"), "key must be a string") != NULL);
    lua_close(L);
    CHECK_DONE();
}
