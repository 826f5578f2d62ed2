#ifndef SY_LUA_SANDBOX_INT_H
#define SY_LUA_SANDBOX_INT_H

/* The sandbox's private parts, shared by sandbox.c and its rule modules (mod_*.c). */

#include <lua.h>

#include "lua/sandbox.h"

struct sy_lua {
    lua_State *L;
    struct sy_lua_limits limits;
    struct sy_lua_host host;
    size_t used;      /* bytes allocated by the state */
    bool enforce_mem; /* off while the state is being built */
    uint64_t counted; /* instructions in the current call, in HOOK_EVERY steps */
    double deadline;  /* monotonic seconds when the current call must stop; 0 = none */
    bool limit_hit;
    const char *rule;     /* the running rule, for log lines */
    const char *event_id; /* the running event, for log lines */
    void *run;            /* the running job's context for the host callbacks, or NULL */
    /* rules registered by rule{}: parallel to the registry list, strings owned */
    struct sy_lua_rule *rules;
    size_t n_rules, cap_rules;
    const char *loading; /* display name of the file being loaded */
};

/* The sandbox that owns L. */
struct sy_lua *sy_lua_self(lua_State *L);

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
