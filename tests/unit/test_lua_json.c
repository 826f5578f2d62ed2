#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "files.h"
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

/* The direct decoder must accept what jansson accepts and produce the same values. */
static void compare_decoder(lua_State *L, const char *text, size_t len, const char *label)
{
    char err[200];
    json_error_t jerr;
    json_t *want = json_loadb(text, len, 0, &jerr);
    int ok = sy_lua_decode_json(L, text, len, false, err, sizeof(err));
    check_count++;
    if (ok != (want != NULL)) {
        fprintf(stderr, "%s: decoder %s, jansson %s: %.80s\n", label, ok ? "accepts" : "rejects",
                want ? "accepts" : "rejects", text);
        check_failures++;
    } else if (ok) {
        json_t *got = sy_lua_to_json(L, -1, err, sizeof(err));
        if (got == NULL || !json_equal(got, want)) {
            fprintf(stderr, "%s: values differ: %.80s\n", label, text);
            check_failures++;
        }
        json_decref(got);
        lua_pop(L, 1);
    }
    json_decref(want);
}

static void test_decoder(lua_State *L, const char *data_dir, const char *events_dir)
{
    const char *subs[] = {"valid", "invalid"};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        char **names;
        snprintf(path, sizeof(path), "%s/%s", data_dir, subs[k]);
        size_t n = list_dir(path, ".json", &names);
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s/%s", data_dir, subs[k], names[i]);
            size_t len;
            char *body = read_all(path, &len);
            compare_decoder(L, body, len, names[i]);
            free(body);
            free(names[i]);
        }
        free(names);
    }
    char **names;
    size_t n = list_dir(events_dir, ".json", &names);
    unsigned seed = 777;
    static const char specials[] = "{}[]\",:\\u0123456789eE+-.tfn \n\x80\xc3";
    for (size_t f = 0; f < n; f++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", events_dir, names[f]);
        size_t len;
        char *orig = read_all(path, &len);
        char *buf = malloc(len + 8);
        compare_decoder(L, orig, len, names[f]);
        for (int iter = 0; iter < 500; iter++) {
            memcpy(buf, orig, len);
            size_t at = (size_t)rand_r(&seed) % len;
            buf[at] = specials[(size_t)rand_r(&seed) % (sizeof(specials) - 1)];
            compare_decoder(L, buf, len, names[f]);
        }
        free(buf);
        free(orig);
        free(names[f]);
    }
    free(names);
}

int main(int argc, char **argv)
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
    /* what the decoder takes, the encoder writes back: 2000 levels deep (the fuzzer found 600) */
    CHECK_STR(eval(L, "local s = string.rep('[', 2000) .. string.rep(']', 2000) "
                      "return tostring(json.encode(json.decode(s)) == s)"),
              "true");
    CHECK(strstr(eval(L, "local t = {} for i = 1, 2100 do t = {t} end return json.encode(t)"),
                 "nested deeper than 2048") != NULL);
    /* errors are clear */
    CHECK(strstr(eval(L, "local t = {} t.self = t return json.encode(t)"), "contains itself") !=
          NULL);
    CHECK(strstr(eval(L, "return json.encode({f = print})"), "has no JSON form") != NULL);
    CHECK(strstr(eval(L, "return json.encode(0/0)"), "NaN") != NULL);
    CHECK(strstr(eval(L, "return json.encode('\\xff')"), "UTF-8") != NULL);
    CHECK(strstr(eval(L, "return json.decode('{bad')"), "json.decode") != NULL);
    CHECK(strstr(eval(L, "return json.encode({[true] = 1})"), "key must be a string") != NULL);
    if (argc == 3) {
        test_decoder(L, argv[1], argv[2]);
    }
    lua_close(L);
    CHECK_DONE();
}
