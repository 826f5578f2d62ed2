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
