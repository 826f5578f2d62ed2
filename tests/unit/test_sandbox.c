#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "check.h"
#include "snippet.h"
#include "lua/sandbox.h"

static const char *data_dir;
static char err[4096];

static struct sy_lua *fresh(void)
{
    struct sy_lua_limits lim = {.instructions = 2000000, .memory = 32u << 20};
    return sy_lua_new(&lim, NULL);
}

/* Run a snippet inside the sandbox; returns the result and leaves the message in err. */
static enum sy_lua_result run_code(struct sy_lua *lx, const char *code)
{
    return run_snippet(lx, code, err, sizeof(err));
}

static bool fails(struct sy_lua *lx, const char *code, const char *want)
{
    enum sy_lua_result r = run_code(lx, code);
    if (r == SY_LUA_OK || strstr(err, want) == NULL) {
        fprintf(stderr, "escape not refused as expected: %s -> %d %s\n", code, r, err);
        return false;
    }
    return true;
}

struct dumped {
    unsigned char bytes[1024];
    size_t n;
};

static int collect(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    struct dumped *d = ud;
    if (n > sizeof(d->bytes) - d->n) {
        return 1;
    }
    memcpy(d->bytes + d->n, p, n);
    d->n += n;
    return 0;
}

/*
 * A snippet loading a whole, valid precompiled chunk (made by a plain Lua state, outside the
 * sandbox): only the mode the sandbox gives load() can refuse it.
 */
static const char *binary_chunk_load(void)
{
    static char code[5000];
    struct dumped d = {.n = 0};
    lua_State *L = luaL_newstate();
    CHECK(luaL_loadstring(L, "return 42") == LUA_OK);
    CHECK(lua_dump(L, collect, &d, 1) == 0 && d.n > 4);
    lua_close(L);
    size_t at = (size_t)snprintf(code, sizeof(code), "local f = assert(load('");
    for (size_t i = 0; i < d.n && at + 8 < sizeof(code); i++) {
        at += (size_t)snprintf(code + at, sizeof(code) - at, "\\%03u", d.bytes[i]);
    }
    snprintf(code + at, sizeof(code) - at, "')); assert(f() ~= 42)");
    return code;
}

static void test_escapes(void)
{
    struct sy_lua *lx = fresh();
    CHECK(fails(lx, "io.open('/etc/passwd')", "io"));
    CHECK(fails(lx, "os.execute('true')", "execute"));
    CHECK(fails(lx, "os.exit(1)", "exit"));
    CHECK(fails(lx, "os.remove('/tmp/x')", "remove"));
    CHECK(fails(lx, "require('os')", "require"));
    CHECK(fails(lx, "dofile('/etc/passwd')", "dofile"));
    CHECK(fails(lx, "loadfile('/etc/passwd')", "loadfile"));
    CHECK(fails(lx, "debug.getinfo(1)", "debug"));
    CHECK(fails(lx, "collectgarbage()", "collectgarbage"));
    CHECK(fails(lx, "string.dump(function() end)", "dump"));
    CHECK(fails(lx, "rawset(_G, 'x', 1)", "rawset"));
    CHECK(fails(lx, "package.loaded.io.open('/etc/passwd')", "package"));
    /* a precompiled chunk is refused even when someone has the bytes */
    CHECK(fails(lx, "local f = assert(load('\\27Lua\\x54\\0'))", "binary"));
    CHECK(fails(lx, binary_chunk_load(), "attempt to load a binary chunk"));
    /* the string metatable is hidden and the library tables are read-only */
    CHECK(fails(lx, "getmetatable('').__index = {}", "index a boolean"));
    CHECK(fails(lx, "string.rep = nil", "read-only"));
    CHECK(fails(lx, "table.insert = print", "read-only"));
    CHECK(fails(lx, "json.null = 1", "read-only"));
    CHECK(fails(lx, "setmetatable(string, {})", "protected"));
    /* what is offered works */
    CHECK(run_code(lx,
                   "assert(('x'):rep(3) == 'xxx'); assert(os.time() > 0); "
                   "assert(math.floor(2.5) == 2); assert(utf8.char(233) == '\\u{e9}'); "
                   "assert(load('return 1 + 1')() == 2); assert(type(os.date()) == 'string')") ==
          SY_LUA_OK);
    sy_lua_free(lx);
}

static char *path(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf), "%s/%s", data_dir, name);
    return buf;
}

static const char ev_pr[] = "{\"id\":\"e1\",\"type\":\"scm.pull_request.created\","
                            "\"integration\":{\"id\":\"i\",\"type\":\"github\"},"
                            "\"data\":{\"title\":\"Add OAuth\",\"draft\":false}}";
static const char ev_draft[] = "{\"id\":\"e2\",\"type\":\"scm.pull_request.created\","
                               "\"integration\":{\"id\":\"i\",\"type\":\"github\"},"
                               "\"data\":{\"title\":\"WIP\",\"draft\":true}}";

static void test_rules_and_limits(void)
{
    struct sy_lua *lx = fresh();
    struct sy_error e;
    CHECK(sy_lua_load_file(lx, path("good.lua"), "rules/good.lua", &e) == SY_OK);
    const struct sy_lua_rule *rules;
    CHECK(sy_lua_rules(lx, &rules) == 6);
    CHECK_STR(rules[0].name, "counter");
    CHECK(rules[0].n_on == 2 && rules[0].has_when && rules[0].line == 1);
    CHECK_STR(rules[0].file, "rules/good.lua");
    CHECK_STR(rules[1].on[0], "incidents.*");

    CHECK(sy_lua_run(lx, "counter", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_OK);
    CHECK(sy_lua_run(lx, "counter", "e2", ev_draft, strlen(ev_draft), NULL, 0, NULL, err,
                     sizeof(err)) == SY_LUA_SKIPPED);
    CHECK(run_code(lx, "assert(seen == 1 and last_title == 'Add OAuth')") == SY_LUA_OK);

    CHECK(sy_lua_run(lx, "gives-up", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_PERMANENT);
    CHECK_STR(err, "no such team: nil");

    CHECK(sy_lua_run(lx, "fails", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_ERROR);
    if (strstr(err, "rules/good.lua:49: attempt to index a nil value") == NULL) {
        fprintf(stderr, "got: %s\n", err);
        check_failures++;
    }
    CHECK(strstr(err, "stack traceback") != NULL);

    /* an endless loop fails its job; the same state then runs the next job */
    CHECK(sy_lua_run(lx, "spins", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_LIMIT);
    if (strstr(err, "instruction limit exceeded") == NULL) {
        fprintf(stderr, "got: %s\n", err);
        check_failures++;
    }
    CHECK(sy_lua_run(lx, "counter", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_OK);
    /* pcall cannot swallow the budget */
    CHECK(sy_lua_run(lx, "spins-in-pcall", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err,
                     sizeof(err)) == SY_LUA_LIMIT);
    CHECK(sy_lua_run(lx, "counter", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_OK);
    /* a memory bomb fails its job */
    CHECK(sy_lua_run(lx, "eats-memory", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err,
                     sizeof(err)) == SY_LUA_LIMIT);
    CHECK(strstr(err, "memory") != NULL);
    sy_lua_free(lx);

    /* the engine rebuilds the state after a limit; a fresh one runs normally */
    lx = fresh();
    CHECK(sy_lua_load_file(lx, path("good.lua"), "rules/good.lua", &e) == SY_OK);
    CHECK(sy_lua_run(lx, "counter", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_OK);
    CHECK(sy_lua_run(lx, "nope", "e1", ev_pr, strlen(ev_pr), NULL, 0, NULL, err, sizeof(err)) ==
          SY_LUA_PERMANENT);
    sy_lua_free(lx);
}

static void load_error(const char *file, const char *want)
{
    struct sy_lua *lx = fresh();
    struct sy_error e;
    char display[256], msg[2048];
    snprintf(display, sizeof(display), "rules/%s", file);
    int rc = sy_lua_load_file(lx, path(file), display, &e);
    sy_error_format(&e, msg, sizeof(msg));
    check_count++;
    if (rc == SY_OK || strstr(msg, want) == NULL) {
        fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", file, rc == SY_OK ? "ok" : msg, want);
        check_failures++;
    }
    sy_lua_free(lx);
}

static void test_load_errors(void)
{
    load_error("no_run.lua", "rules/no_run.lua:1: rule 'no-run': 'run' must be a function");
    load_error("bad_pattern.lua", "rules/bad_pattern.lua:1: rule 'bad': 'on' has an invalid "
                                  "pattern \"scm*.created\"");
    load_error("syntax.lua", "rules/syntax.lua:");
    /* the same name in two files names both places */
    struct sy_lua *lx = fresh();
    struct sy_error e;
    char msg[2048];
    CHECK(sy_lua_load_file(lx, path("dup_a.lua"), "rules/dup_a.lua", &e) == SY_OK);
    CHECK(sy_lua_load_file(lx, path("dup_b.lua"), "rules/dup_b.lua", &e) != SY_OK);
    sy_error_format(&e, msg, sizeof(msg));
    CHECK(strstr(msg, "rules/dup_b.lua:3: rule 'same' is defined twice (first at "
                      "rules/dup_a.lua:1)") != NULL);
    sy_lua_free(lx);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        return 2;
    }
    data_dir = argv[1];
    test_escapes();
    test_rules_and_limits();
    test_load_errors();
    CHECK_DONE();
}
