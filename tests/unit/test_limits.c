/*
 * The sandbox's limits inside C: pattern matching, table moves, string.rep and
 * finalizers cannot hold a worker past the instruction or the time limit; and
 * the charged string functions give exactly what Lua 5.4's stock ones give.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "snippet.h"
#include "lua/sandbox.h"
#include "unizo/client.h"
#include "util/error.h"

static char err[4096];

static enum sy_lua_result run_code(struct sy_lua *lx, const char *code)
{
    return run_snippet(lx, code, err, sizeof(err));
}

/* 'code' fails with the limit's message, and the same state then runs a normal snippet. */
static bool stopped(struct sy_lua *lx, const char *code, const char *want)
{
    enum sy_lua_result r = run_code(lx, code);
    bool ok = r == SY_LUA_LIMIT && strstr(err, want) != NULL;
    if (!ok) {
        fprintf(stderr, "not stopped as expected: %s\n  -> %d %s\n", code, r, err);
    }
    if (run_code(lx, "local s = ('ab'):rep(10); assert(s:find('ba', 1, true) == 2)") != SY_LUA_OK) {
        fprintf(stderr, "the state did not recover after: %s (%s)\n", code, err);
        ok = false;
    }
    return ok;
}

static const char *const bombs[] = {
    /* the review's proof of concept, and its other spellings */
    "string.find(string.rep('a', 2000), '.-.-.-.-.-b')",
    "local s = ('a'):rep(2000); s:match('.-.-.-.-.-b')",
    "for _ in string.gmatch(('a'):rep(2000), '.-.-.-.-.-b') do end",
    "string.gsub(('a'):rep(2000), '.-.-.-.-.-b', 'x')",
    "string.find(('a'):rep(3000), '(.-)(.-)(.-)(.-)%1%2%3%4b')",
    "string.find(('('):rep(100000) .. 'x', '%b()%b()%b()y')",
    /* pcall cannot swallow the limit */
    "for i = 1, 100 do pcall(string.find, ('a'):rep(2000), '.-.-.-.-.-b') end",
    /* table loops in C */
    "table.move({}, 1, 1e15, 2)",
    /* a border at 2^40 from 45 entries: #t is 1099511627776 */
    "local t = {1, 2, 3, 4, 5, [8] = 1, [9] = 1} for k = 4, 40 do t[1 << k] = 1 end "
    "assert(#t == 1 << 40) table.insert(t, 1, 'x')",
    "local t = {1, 2, 3, 4, 5, [8] = 1, [9] = 1} for k = 4, 40 do t[1 << k] = 1 end "
    "table.remove(t, 1)",
    "local t = setmetatable({}, {__len = function() return 1e15 end}) table.insert(t, 1, 'x')",
    "local t = setmetatable({}, {__len = function() return 1e15 end}) table.remove(t, 1)",
};

static void test_bombs(void)
{
    /* by instructions */
    struct sy_lua_limits lim = {.instructions = 1000000, .memory = 32u << 20, .timeout_ms = 0};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
        CHECK(stopped(lx, bombs[i], "instruction limit exceeded"));
    }
    sy_lua_free(lx);
    /* by time alone: no instruction limit, a 200 ms timeout */
    lim = (struct sy_lua_limits){.instructions = 0, .memory = 32u << 20, .timeout_ms = 200};
    lx = sy_lua_new(&lim, NULL);
    for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
        CHECK(stopped(lx, bombs[i], "time limit exceeded (lua.timeout = 200 ms)"));
    }
    CHECK(stopped(lx, "while true do end", "time limit exceeded"));
    sy_lua_free(lx);
}

static void test_finalizers_and_rep(void)
{
    struct sy_lua_limits lim = {.instructions = 1000000, .memory = 32u << 20, .timeout_ms = 1000};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    CHECK(run_code(lx, "setmetatable({}, {__gc = function() while true do end end})") ==
          SY_LUA_ERROR);
    CHECK(strstr(err, "__gc metamethods are not allowed") != NULL);
    /* other metatables are as before, and a __gc added later finalizes nothing */
    CHECK(run_code(lx, "local mt = {__index = function(t, k) return k .. '!' end}; "
                       "local t = setmetatable({}, mt); assert(t.x == 'x!'); "
                       "mt.__gc = function() while true do end end; t = nil") == SY_LUA_OK);
    CHECK(run_code(lx, "assert(setmetatable({}, nil)); local t = {}; "
                       "assert(setmetatable(t, {}) == t)") == SY_LUA_OK);
    /* an empty repetition is made at once, however many times */
    CHECK(run_code(lx, "assert(string.rep('', 1e15) == ''); assert(('x'):rep(0) == ''); "
                       "assert(string.rep('', 1e15, '') == ''); assert(('ab'):rep(3, ',') == "
                       "'ab,ab,ab'); assert(('x'):rep(-5) == '')") == SY_LUA_OK);
    sy_lua_free(lx);
    /* a state closed with objects it never got to finalize closes at once */
    lx = sy_lua_new(&lim, NULL);
    run_code(lx, "keep = setmetatable({}, {__gc = function() while true do end end})");
    sy_lua_free(lx);
}

/* ---- the charged string functions against the stock library ---- */

static const char probe[] =
    "local function ser(...)\n"
    "  local t, out = table.pack(...), {}\n"
    "  for i = 1, t.n do out[#out + 1] = type(t[i]) .. ':' .. tostring(t[i]) end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "local function try(f, ...)\n"
    "  local r = table.pack(pcall(f, ...))\n"
    "  if not r[1] then return 'error:' .. tostring(r[2]) end\n"
    "  return ser(table.unpack(r, 2, r.n))\n"
    "end\n"
    "function probe(s, p, init)\n"
    "  local r = {}\n"
    "  r[#r + 1] = try(string.find, s, p, init)\n"
    "  r[#r + 1] = try(string.find, s, p, init, true)\n"
    "  r[#r + 1] = try(string.match, s, p, init)\n"
    "  r[#r + 1] = try(function()\n"
    "    local acc = {}\n"
    "    for a, b in string.gmatch(s, p, init) do acc[#acc + 1] = ser(a, b) end\n"
    "    return table.concat(acc, ';')\n"
    "  end)\n"
    "  r[#r + 1] = try(string.gsub, s, p, '<%0>')\n"
    "  r[#r + 1] = try(string.gsub, s, p, '%1.%%', init)\n"
    "  r[#r + 1] = try(string.gsub, s, p, function(...) return ser(...) end)\n"
    "  r[#r + 1] = try(string.gsub, s, p, function(a) if a == 'a' then return false end return 1 "
    "end)\n"
    "  r[#r + 1] = try(string.gsub, s, p, { a = 'A', b = true, ['('] = 7 })\n"
    "  return table.concat(r, ' | ')\n"
    "end\n";

static const char *call_probe(lua_State *L, struct sy_lua *lx, const char *s, const char *p,
                              int init)
{
    lua_getglobal(L, "probe");
    lua_pushstring(L, s);
    lua_pushstring(L, p);
    lua_pushinteger(L, init);
    int rc = lx ? (sy_lua_pcall(lx, 3, 1, err, sizeof(err)) == SY_LUA_OK ? LUA_OK : LUA_ERRRUN)
                : lua_pcall(L, 3, 1, 0);
    if (rc != LUA_OK) {
        return lx ? err : lua_tostring(L, -1);
    }
    return lua_tostring(L, -1);
}

static void test_same_as_stock(void)
{
    struct sy_lua_limits lim = {.instructions = 100000000, .memory = 64u << 20, .timeout_ms = 0};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    lua_State *mine = sy_lua_state(lx);
    lua_State *stock = luaL_newstate();
    luaL_openlibs(stock);
    CHECK(luaL_dostring(stock, probe) == LUA_OK);
    CHECK(luaL_loadstring(mine, probe) == LUA_OK &&
          sy_lua_pcall(lx, 0, 0, err, sizeof(err)) == SY_LUA_OK);
    static const char *const items[] = {
        "a",    "b",      "c",      ".",     "%a",   "%d",   "%s",    "%w",    "%p",
        "%A",   "%l",     "%u",     "%x",    "%c",   "%g",   "%.",    "%%",    "%b()",
        "%bab", "%f[%w]", "%f[%W]", "%f[a]", "[ab]", "[^a]", "[a-c]", "[%a-]", "[]a]",
        "[^]]", "[a-]",   "(",      ")",     "()",   "%1",   "%2",    "%0",    "*",
        "+",    "-",      "?",      "^",     "$",    "%",    "[",     "]",     "%]",
        "%f",   "%b",     "[%",     "(a)",   "(.-)", "(a*)", " ",     "1",     "%z"};
    static const char subject_chars[] = "ab(c) 1.%]";
    static const int inits[] = {1, 1, 1, 2, 0, -1, -3, 4, 9};
    size_t n_items = sizeof(items) / sizeof(items[0]);
    unsigned seed = 2026;
    int shown = 0;
    for (int round = 0; round < 30000; round++) {
        char s[16], p[64] = "";
        size_t ls = (size_t)rand_r(&seed) % 9;
        for (size_t i = 0; i < ls; i++) {
            s[i] = subject_chars[(size_t)rand_r(&seed) % (sizeof(subject_chars) - 1)];
        }
        s[ls] = '\0';
        size_t np = 1 + (size_t)rand_r(&seed) % 5;
        for (size_t i = 0; i < np; i++) {
            size_t at = strlen(p);
            snprintf(p + at, sizeof(p) - at, "%s", items[(size_t)rand_r(&seed) % n_items]);
        }
        int init = inits[(size_t)rand_r(&seed) % (sizeof(inits) / sizeof(inits[0]))];
        char want[4096];
        snprintf(want, sizeof(want), "%s", call_probe(stock, NULL, s, p, init));
        lua_pop(stock, 1);
        const char *got = call_probe(mine, lx, s, p, init);
        bool same = got != NULL && strcmp(got, want) == 0;
        CHECK(same);
        if (!same && shown++ < 10) {
            fprintf(stderr, "string.*(%s, %s, %d):\n  stock: %s\n  mine:  %s\n", s, p, init, want,
                    got ? got : "(null)");
        }
        lua_settop(mine, 0);
    }
    lua_close(stock);
    sy_lua_free(lx);
}

/* ---- memory on the rule's behalf, and error paths that must leave nothing behind ---- */

static int fake_kv_get(void *ctx, void *run, const char *key, char **value)
{
    (void)ctx;
    (void)run;
    /* a stored value large enough that decoding it runs into a 2 MiB limit */
    size_t n = strcmp(key, "big") == 0 ? 600000 : 1;
    char *v = malloc(n * 6 + 3);
    size_t at = 0;
    v[at++] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(v + at, i ? ",\"ab\"" : "\"ab\" ", 5);
        at += 5;
    }
    v[at++] = ']';
    v[at] = '\0';
    *value = v;
    return SY_OK;
}

static int fake_kv_set(void *ctx, void *run, const char *key, const char *value, uint64_t ttl)
{
    (void)ctx;
    (void)run;
    (void)key;
    (void)value;
    (void)ttl;
    return SY_OK;
}

/* The API answers every call with a large body: turning it into Lua may hit the limit. */
static int fake_unizo(void *ctx, void *run, struct sy_unizo_request *req,
                      struct sy_unizo_response *resp)
{
    (void)ctx;
    (void)run;
    memset(resp, 0, sizeof(*resp));
    if (strstr(req->path, "slow")) {
        struct timespec nap = {0, 150 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    size_t n = strstr(req->path, "big") ? (3u << 20) : 2;
    resp->body = malloc(n + 1);
    memset(resp->body, ' ', n);
    memcpy(resp->body, "{}", 2);
    resp->body[n] = '\0';
    resp->len = n;
    resp->status = 200;
    return SY_OK;
}

static const char memory_rules[] =
    "local raising = setmetatable({}, {__tostring = function() error('raised') end})\n"
    "rule { name = 'blowup', on = 'x', run = function(ev)\n"
    "  local t = {} for i = 1, 30 do t = {t, t} end\n"
    "  return json.encode(t)\n"
    "end }\n"
    "rule { name = 'blowup-kv', on = 'x', run = function(ev)\n"
    "  local t = {} for i = 1, 30 do t = {t, t} end\n"
    "  kv.set('k', t)\n"
    "end }\n"
    "rule { name = 'blowup-log', on = 'x', run = function(ev)\n"
    "  local t = {} for i = 1, 30 do t = {t, t} end\n"
    "  log.info('big', { t = t })\n"
    "end }\n"
    "rule { name = 'blowup-body', on = 'x', run = function(ev)\n"
    "  local t = {} for i = 1, 30 do t = {t, t} end\n"
    "  unizo.request { method = 'POST', path = '/x', body = t }\n"
    "end }\n"
    "rule { name = 'raises', on = 'x', run = function(ev)\n"
    "  for i = 1, 50 do\n"
    "    assert(not pcall(unizo.request, { path = '/x', query = { a = 1, b = raising } }))\n"
    "    assert(not pcall(print, 'x', raising))\n"
    "    assert(not pcall(json.encode, { f = print }))\n"
    "    assert(not pcall(kv.set, 'k', { [1] = 1, ['1'] = 2 }))\n"
    "  end\n"
    "  local t = {} t.self = t\n"
    "  local ok, e = pcall(json.encode, t)\n"
    "  assert(not ok and e:find('contains itself'), e)\n"
    "end }\n"
    "rule { name = 'big-kv', on = 'x', run = function(ev) local v = kv.get('big') end }\n"
    "rule { name = 'big-answer', on = 'x', run = function(ev)\n"
    "  unizo.request { path = '/big' }\n"
    "end }\n"
    "rule { name = 'slow-calls', on = 'x', run = function(ev)\n"
    "  for i = 1, 3 do unizo.request { path = '/slow' } end\n"
    "  local x = 0 for i = 1, 100000 do x = x + i end -- the hook looks at the clock again\n"
    "end }\n"
    "rule { name = 'fine', on = 'x', run = function(ev)\n"
    "  assert(#kv.get('small') == 1)\n"
    "  assert(unizo.request { path = '/small' })\n"
    "  log.info('fine', { n = 1, t = { a = { 1, 2 } } })\n"
    "end }\n";

static void test_memory(void)
{
    struct sy_lua_limits lim = {.instructions = 0, .memory = 2u << 20, .timeout_ms = 10000};
    struct sy_lua_host host = {
        .kv_get = fake_kv_get, .kv_set = fake_kv_set, .unizo_call = fake_unizo};
    static const char ev[] = "{\"id\":\"e\",\"type\":\"x\",\"data\":{}}";
    static const char *const over[] = {"blowup",      "blowup-kv", "blowup-log",
                                       "blowup-body", "big-kv",    "big-answer"};
    int run_ctx = 0;
    for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
        /* each in a fresh state, as the engine rebuilds one after a limit */
        struct sy_lua *lx = sy_lua_new(&lim, &host);
        struct sy_error e;
        CHECK(sy_lua_load_source(lx, memory_rules, strlen(memory_rules), "m.lua", &e) == SY_OK);
        enum sy_lua_result r =
            sy_lua_run(lx, over[i], "e", ev, strlen(ev), NULL, 0, &run_ctx, err, sizeof(err));
        CHECK(r == SY_LUA_LIMIT && strstr(err, "memory limit exceeded") != NULL);
        if (r != SY_LUA_LIMIT) {
            fprintf(stderr, "  %s: %d %s\n", over[i], r, err);
        }
        sy_lua_free(lx);
    }
    struct sy_lua *lx = sy_lua_new(&lim, &host);
    struct sy_error e;
    CHECK(sy_lua_load_source(lx, memory_rules, strlen(memory_rules), "m.lua", &e) == SY_OK);
    CHECK(sy_lua_run(lx, "raises", "e", ev, strlen(ev), NULL, 0, &run_ctx, err, sizeof(err)) ==
          SY_LUA_OK);
    CHECK(sy_lua_run(lx, "fine", "e", ev, strlen(ev), NULL, 0, &run_ctx, err, sizeof(err)) ==
          SY_LUA_OK);
    sy_lua_free(lx);
    /* time waiting on the API is not the rule's: three 150 ms calls under a 200 ms timeout */
    lim.timeout_ms = 200;
    lx = sy_lua_new(&lim, &host);
    CHECK(sy_lua_load_source(lx, memory_rules, strlen(memory_rules), "m.lua", &e) == SY_OK);
    CHECK(sy_lua_run(lx, "slow-calls", "e", ev, strlen(ev), NULL, 0, &run_ctx, err, sizeof(err)) ==
          SY_LUA_OK);
    sy_lua_free(lx);
}

int main(void)
{
    test_memory();
    test_same_as_stock();
    test_finalizers_and_rep();
    test_bombs();
    CHECK_DONE();
}
