#ifndef SY_LUA_SANDBOX_INT_H
#define SY_LUA_SANDBOX_INT_H

/* The sandbox's private parts, shared by sandbox.c and its rule modules (mod_*.c). */

#include <lua.h>

#include "lua/sandbox.h"

/*
 * What one run counts and carries: the main thread's (a file loading, sy_lua_run) or a
 * coroutine's (sy_lua_co_start). Each Lua thread's extra space points at its own.
 */
struct sy_lua_call {
    uint64_t counted;     /* instructions so far, in HOOK_EVERY steps */
    double deadline;      /* monotonic seconds when the run must stop; 0 = none */
    double wait_began;    /* when the coroutine yielded on a host call */
    bool limit_hit;       /* the instruction or time budget is spent */
    const char *rule;     /* the running rule, for log lines */
    const char *event_id; /* the running event, for log lines */
    void *run;            /* the running job's context for the host callbacks, or NULL */
};

struct sy_lua {
    lua_State *L;
    struct sy_lua_limits limits;
    struct sy_lua_host host;
    size_t used;      /* bytes allocated by the state */
    bool enforce_mem; /* off while the state is being built */
    bool mem_hit;     /* an allocation was refused by the memory limit */
    struct sy_lua_call main_call; /* the main thread's */
    /* rules registered by rule{}: parallel to the registry list, strings owned */
    struct sy_lua_rule *rules;
    size_t n_rules, cap_rules;
    const char *loading; /* display name of the file being loaded */
};

/* The sandbox that owns L. */
struct sy_lua *sy_lua_self(lua_State *L);

/* The run in progress on the thread L (the main thread's or a coroutine's). */
struct sy_lua_call *sy_lua_call_of(lua_State *L);

/* Arm the budgets of a run starting now on thread L. */
void sy_lua_call_arm(struct sy_lua *lx, lua_State *L, struct sy_lua_call *call);

/*
 * Push rule 'name''s registry entry and the event table built from 'json' and 'norm'
 * (see sy_lua_run) onto the main thread, in a protected call. Returns SY_LUA_OK;
 * SY_LUA_PERMANENT (no such rule, not an event) or SY_LUA_LIMIT (out of memory) with
 * 'err' and nothing pushed.
 */
enum sy_lua_result sy_lua_push_job(struct sy_lua *lx, const char *name, const char *json,
                                   size_t len, const char *norm, size_t norm_len, char *err,
                                   size_t errlen);

/*
 * The result of a failed run whose error value is on top of 'co' (the thread that
 * raised it; 'L' receives the traceback): SY_LUA_PERMANENT, SY_LUA_LIMIT or
 * SY_LUA_ERROR, with the message in 'err'. 'status' is the Lua status. Pops nothing.
 */
enum sy_lua_result sy_lua_failure(struct sy_lua *lx, lua_State *L, lua_State *co, int status,
                                  const struct sy_lua_call *call, char *err, size_t errlen);

/*
 * Charge 'steps' units of work done in C on the rule's behalf (pattern
 * matching, table moves) to the current call's instruction budget, and check
 * its deadline. Raises the limit's error when either is spent; from then on
 * every instruction of the call fails, so a pcall cannot swallow it.
 */
void sy_lua_charge(lua_State *L, uint64_t steps);

/*
 * Push copies of the 'n' (at most 4) strings s[i] (len[i] bytes, malloc'd by the caller;
 * NULL pushes nil) and free them all whatever happens: when a copy hits the memory limit,
 * the error is raised after every s[i] is freed.
 */
void sy_lua_push_owned(lua_State *L, int n, char *const *s, const size_t *len);

/*
 * Around a host call that waits on the outside world (the Unizo API, the store): the time
 * between sy_lua_wait_begin and sy_lua_wait_end is not counted against lua.timeout, which
 * bounds the rule's own running time (unizo.timeout bounds the calls).
 */
double sy_lua_wait_begin(lua_State *L);
void sy_lua_wait_end(lua_State *L, double began);

/* Replace insert, remove and move in the table library table at 'table' with charged ones. */
void sy_lua_tables_install(lua_State *L, int table);

/* Replace the table on top of the stack with a read-only view of it named 'name'. */
void sy_lua_make_readonly(lua_State *L, const char *name);

/* Each pushes its module's table (not yet read-only) onto the stack. */
void sy_lua_open_log(lua_State *L);
void sy_lua_open_kv(lua_State *L);
void sy_lua_open_unizo(lua_State *L);
/* print(...): to the log at info level. */
int sy_lua_print(lua_State *L);
/* rule{...}: declare a rule while a file loads. */
int sy_lua_rule_decl(lua_State *L);
/* Free what rule{} recorded. */
void sy_lua_rules_dispose(struct sy_lua *lx);

#endif
