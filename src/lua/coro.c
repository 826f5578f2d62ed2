/*
 * Rule runs in coroutines: each job's Lua runs in a thread of its own with
 * its own budgets (struct sy_lua_call in the thread's extra space), so a
 * worker can keep many runs waiting on the network in one state.
 */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "lua/sandbox_int.h"
#include "util/clock.h"

struct sy_lua_co {
    struct sy_lua *lx;
    lua_State *co;
    int ref; /* anchors the thread in the registry while the run is held */
    struct sy_lua_call call;
};

/* The run's body, yieldable throughout: 'when' (if any), then 'run'. Returns done or skipped. */
static int body_k(lua_State *L, int status, lua_KContext step)
{
    (void)status;
    if (step == 1) {
        /* after 'when': its answer is on top */
        if (!lua_toboolean(L, -1)) {
            lua_pushboolean(L, 0);
            return 1;
        }
        lua_settop(L, 2);
    }
    if (step <= 1) {
        lua_getfield(L, 1, "run");
        lua_pushvalue(L, 2);
        lua_callk(L, 1, 0, 2, body_k);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int body(lua_State *L)
{
    /* 1: the rule's entry, 2: the event */
    lua_getfield(L, 1, "when");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return body_k(L, LUA_OK, 0);
    }
    lua_pushvalue(L, 2);
    lua_callk(L, 1, 1, 1, body_k);
    return body_k(L, LUA_OK, 1);
}

/* The new thread and its registry reference (protected: either may raise a memory error). */
static int new_thread(lua_State *L)
{
    lua_newthread(L);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 2;
}

static int unref_thread(lua_State *L)
{
    luaL_unref(L, LUA_REGISTRYINDEX, (int)lua_tointeger(L, 1));
    return 0;
}

static enum sy_lua_result step(struct sy_lua_co *c, int nargs, char *err, size_t errlen)
{
    lua_State *L = c->lx->L;
    int nres = 0;
    int rc = lua_resume(c->co, L, nargs, &nres);
    if (rc == LUA_YIELD) {
        lua_pop(c->co, nres);
        return SY_LUA_YIELDED;
    }
    lua_sethook(c->co, NULL, 0, 0);
    if (rc == LUA_OK) {
        bool done = nres > 0 && lua_toboolean(c->co, -1);
        lua_settop(c->co, 0);
        return done ? SY_LUA_OK : SY_LUA_SKIPPED;
    }
    enum sy_lua_result res = sy_lua_failure(c->lx, L, c->co, rc, &c->call, err, errlen);
    lua_settop(c->co, 0);
    return res;
}

enum sy_lua_result sy_lua_co_start(struct sy_lua *lx, struct sy_lua_co **out, const char *name,
                                   const char *event_id, const char *json, size_t len,
                                   const char *norm, size_t norm_len, void *run, char *err,
                                   size_t errlen)
{
    *out = NULL;
    lua_State *L = lx->L;
    int base = lua_gettop(L);
    struct sy_lua_co *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory for a rule run");
        return SY_LUA_ERROR;
    }
    c->lx = lx;
    enum sy_lua_result res = sy_lua_push_job(lx, name, json, len, norm, norm_len, err, errlen);
    if (res != SY_LUA_OK) {
        free(c);
        return res;
    }
    /* a light C function: pushing it allocates nothing, and the pcall catches a memory error */
    lua_pushcfunction(L, new_thread);
    if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
        lua_settop(L, base);
        free(c);
        snprintf(err, errlen, "%s", lx->mem_hit ? "memory limit exceeded" : "out of memory");
        return SY_LUA_LIMIT;
    }
    c->co = lua_tothread(L, -2);
    c->ref = (int)lua_tointeger(L, -1);
    if (!lua_checkstack(c->co, 4)) {
        lua_settop(L, base);
        sy_lua_co_free(c); /* gives the registry slot back */
        snprintf(err, errlen, "out of memory");
        return SY_LUA_LIMIT;
    }
    *(struct sy_lua_call **)lua_getextraspace(c->co) = &c->call;
    c->call.rule = name;
    c->call.event_id = event_id;
    c->call.run = run;
    lua_pushcfunction(c->co, body);
    lua_pushvalue(L, base + 1); /* the rule's entry */
    lua_pushvalue(L, base + 2); /* the event */
    lua_xmove(L, c->co, 2);
    lua_settop(L, base);
    *out = c;
    sy_lua_call_arm(lx, c->co, &c->call);
    return step(c, 2, err, errlen);
}

enum sy_lua_result sy_lua_co_resume(struct sy_lua_co *c, char *err, size_t errlen)
{
    if (c->call.deadline > 0) {
        c->call.deadline += sy_mono_s() - c->call.wait_began; /* waiting is not running */
    }
    return step(c, 0, err, errlen);
}

void sy_lua_co_free(struct sy_lua_co *c)
{
    if (c == NULL) {
        return;
    }
    lua_State *L = c->lx->L;
    lua_pushcfunction(L, unref_thread);
    lua_pushinteger(L, c->ref);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_pop(L, 1); /* the slot stays taken until the state goes: nothing worse */
    }
    free(c);
}
