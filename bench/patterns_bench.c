/*
 * The sandbox's charged string matching against the stock Lua library, in one run: the
 * same workload (what rules do with titles, URLs and lists) in a plain Lua state and in
 * the sandbox, alternately. usage: sy-bench-patterns SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/sandbox.h"

static const char workload[] =
    "local title = 'Review PR: Add OAuth login for the payments API (#4242)'\n"
    "local url = 'https://github.com/acme/payments-api/pull/4242'\n"
    "local labels = 'code-review, security,  payments ,backend,urgent'\n"
    "local n = 0\n"
    "for i = 1, 2000 do\n"
    "  if title:find('OAuth', 1, true) then n = n + 1 end\n"
    "  local what = title:match('^Review PR: (.+) %(#(%d+)%)$')\n"
    "  local org, repo, num = url:match('github%.com/([^/]+)/([^/]+)/pull/(%d+)')\n"
    "  for l in labels:gmatch('[^,]+') do n = n + #l:gsub('^%s+', ''):gsub('%s+$', '') end\n"
    "  n = n + select(2, title:gsub('%s+', ' '))\n"
    "  if title:lower():find('security') then n = n + 1 end\n"
    "end\n"
    "return n\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs of the workload per second in 'L' ('lx' arms the sandbox's limits when set). */
static double rate(lua_State *L, struct sy_lua *lx, double seconds, long long *check)
{
    char err[512];
    long runs = 0;
    double t0 = now();
    while (now() - t0 < seconds) {
        if (luaL_loadstring(L, workload) != LUA_OK) {
            return 0;
        }
        int ok = lx ? sy_lua_pcall(lx, 0, 1, err, sizeof(err)) == SY_LUA_OK
                    : lua_pcall(L, 0, 1, 0) == LUA_OK;
        if (!ok) {
            fprintf(stderr, "workload failed: %s\n", lx ? err : lua_tostring(L, -1));
            return 0;
        }
        *check = lua_tointeger(L, -1);
        lua_settop(L, 0);
        runs++;
    }
    return (double)runs / (now() - t0);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 3;
    lua_State *stock = luaL_newstate();
    luaL_openlibs(stock);
    /* the default limits: ten million instructions and five seconds a call */
    struct sy_lua_limits lim = {.instructions = 10000000, .memory = 64u << 20, .timeout_ms = 5000};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    double s[3], m[3];
    long long cs = 0, cm = 0;
    for (int rep = 0; rep < 3; rep++) { /* A B A B A B */
        s[rep] = rate(stock, NULL, seconds / 6, &cs);
        m[rep] = rate(sy_lua_state(lx), lx, seconds / 6, &cm);
    }
    double bs = s[0] > s[1] ? (s[0] > s[2] ? s[0] : s[2]) : (s[1] > s[2] ? s[1] : s[2]);
    double bm = m[0] > m[1] ? (m[0] > m[2] ? m[0] : m[2]) : (m[1] > m[2] ? m[1] : m[2]);
    printf("workload runs/s (best of 3): stock Lua %.0f, sandbox %.0f; sandbox/stock %.2fx; "
           "results %s\n",
           bs, bm, bs > 0 ? bm / bs : 0, cs == cm ? "equal" : "DIFFER");
    lua_close(stock);
    sy_lua_free(lx);
    return cs == cm ? 0 : 1;
}
