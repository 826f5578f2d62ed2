/* rule{...}: how a rule file declares its rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "lua/sandbox_int.h"
#include "core/router.h"
#include "ingest/delivery.h"

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        abort(); /* rule loading happens at start and reload only */
    }
    return p;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
}

/*
 * The rule's ordering key: a dotted path or a list of up to 16. Returns 0,
 * or -1 with the error message pushed.
 */
static int read_key(lua_State *L, const char *name, char ***out, size_t *n_out)
{
    lua_getfield(L, 1, "key");
    int t = lua_type(L, -1);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    size_t n = t == LUA_TSTRING ? 1 : t == LUA_TTABLE ? lua_rawlen(L, -1) : 0;
    if (n == 0 || n > 16) {
        lua_pushfstring(L,
                        "rule '%s': 'key' must be a dotted path into the event like \"data.url\", "
                        "or a list of 1 to 16 of them",
                        name);
        return -1;
    }
    char **key = calloc(n, sizeof(char *));
    if (key == NULL) {
        abort(); /* rule loading happens at start and reload only */
    }
    for (size_t i = 0; i < n; i++) {
        if (t == LUA_TTABLE) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
        } else {
            lua_pushvalue(L, -1);
        }
        const char *path = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (path == NULL || !sy_key_path_valid(path)) {
            lua_pushfstring(L,
                            "rule '%s': 'key' has an invalid path \"%s\" (use names and "
                            "indexes joined by '.', like \"data.url\" or \"data.items.0.id\")",
                            name, path ? path : "?");
            free_list(key, i);
            return -1;
        }
        key[i] = xstrdup(path);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    *out = key;
    *n_out = n;
    return 0;
}

void sy_lua_rules_dispose(struct sy_lua *lx)
{
    for (size_t i = 0; i < lx->n_rules; i++) {
        struct sy_lua_rule *r = &lx->rules[i];
        free((char *)r->name);
        free_list((char **)r->on, r->n_on);
        free_list((char **)r->key, r->n_key);
        free((char *)r->integration);
        free((char *)r->category);
        free((char *)r->file);
    }
    free(lx->rules);
    lx->rules = NULL;
    lx->n_rules = lx->cap_rules = 0;
}

int sy_lua_rule_decl(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Debug ar;
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) {
        line = ar.currentline;
    }
    static const char *const known[] = {"name", "on",  "integration", "category", "key",
                                        "when", "run", "concurrency", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        lua_pop(L, 1);
        bool ok = false;
        for (const char *const *k = known; *k && lua_type(L, -1) == LUA_TSTRING; k++) {
            ok = ok || strcmp(*k, lua_tostring(L, -1)) == 0;
        }
        if (!ok) {
            return luaL_error(L,
                              "rule: unknown field '%s' (known: name, on, integration, "
                              "category, key, when, run, concurrency)",
                              luaL_tolstring(L, -1, NULL));
        }
    }
    lua_getfield(L, 1, "name");
    if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0 || lua_rawlen(L, -1) > 128) {
        return luaL_error(L, "rule: 'name' must be a string of 1 to 128 bytes");
    }
    const char *name = lua_tostring(L, -1);
    for (size_t i = 0; i < lx->n_rules; i++) {
        if (strcmp(lx->rules[i].name, name) == 0) {
            return luaL_error(L, "rule '%s' is defined twice (first at %s:%d)", name,
                              lx->rules[i].file, lx->rules[i].line);
        }
    }
    lua_getfield(L, 1, "run");
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        return luaL_error(L, "rule '%s': 'run' must be a function", name);
    }
    lua_getfield(L, 1, "when");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TFUNCTION) {
        return luaL_error(L, "rule '%s': 'when' must be a function", name);
    }
    bool has_when = !lua_isnil(L, -1);
    lua_getfield(L, 1, "integration");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
        return luaL_error(L, "rule '%s': 'integration' must be a string", name);
    }
    const char *integration = lua_tostring(L, -1);
    lua_getfield(L, 1, "category");
    const char *category = lua_tostring(L, -1);
    if (!lua_isnil(L, -1) &&
        (lua_type(L, -1) != LUA_TSTRING || !sy_category_valid(category, strlen(category)))) {
        return luaL_error(L,
                          "rule '%s': 'category' must be a category name like \"identity\" "
                          "(lowercase letters, digits, '_' or '-')",
                          name);
    }
    lua_getfield(L, 1, "concurrency");
    lua_Integer concurrency = 0;
    if (!lua_isnil(L, -1)) {
        int isnum = 0;
        concurrency = lua_tointegerx(L, -1, &isnum);
        if (!isnum || concurrency < 1 || concurrency > 100000) {
            return luaL_error(L,
                              "rule '%s': 'concurrency' must be a whole number from 1 to 100000 "
                              "(jobs of this rule running at once in the instance)",
                              name);
        }
    }
    lua_pop(L, 1);
    size_t n_key = 0;
    char **key = NULL;
    if (read_key(L, name, &key, &n_key) != 0) {
        return lua_error(L);
    }
    lua_getfield(L, 1, "on");
    size_t n_on = 0;
    char **on = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        n_on = 1;
        on = calloc(1, sizeof(char *));
        on[0] = xstrdup(lua_tostring(L, -1));
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        n_on = lua_rawlen(L, -1);
        on = calloc(n_on ? n_on : 1, sizeof(char *));
        for (size_t i = 0; i < n_on; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            on[i] = lua_type(L, -1) == LUA_TSTRING ? xstrdup(lua_tostring(L, -1)) : NULL;
            lua_pop(L, 1);
        }
    }
    for (size_t i = 0; i <= n_on; i++) {
        const char *bad = i == n_on ? (n_on == 0 ? "" : NULL) : (on[i] == NULL ? "?" : NULL);
        if (bad == NULL && i < n_on && !sy_pattern_valid(on[i])) {
            bad = on[i];
        }
        if (bad != NULL) {
            char msg[300];
            snprintf(msg, sizeof(msg),
                     n_on == 0 ? "rule '%s': 'on' must be an event type or a list of them "
                                 "(like \"scm.pull_request.created\", \"scm.*\" or \"*\")%s"
                               : "rule '%s': 'on' has an invalid pattern \"%s\" (use segments "
                                 "of letters, digits, '_' or '-', or '*', joined by '.' or ':', "
                                 "like \"ticket:*\" or \"scm.*\")",
                     name, bad);
            free_list(on, n_on);
            free_list(key, n_key);
            return luaL_error(L, "%s", msg);
        }
    }
    if (lx->n_rules == lx->cap_rules) {
        lx->cap_rules = lx->cap_rules ? lx->cap_rules * 2 : 16;
        lx->rules = realloc(lx->rules, lx->cap_rules * sizeof(*lx->rules));
        if (lx->rules == NULL) {
            abort();
        }
    }
    struct sy_lua_rule *r = &lx->rules[lx->n_rules++];
    r->name = xstrdup(name);
    r->on = (const char *const *)on;
    r->n_on = n_on;
    r->integration = integration ? xstrdup(integration) : NULL;
    r->category = category ? xstrdup(category) : NULL;
    r->key = (const char *const *)key;
    r->n_key = n_key;
    r->has_when = has_when;
    r->concurrency = (long)concurrency;
    r->file = xstrdup(lx->loading ? lx->loading : "?");
    r->line = line;
    /* registry["sy.rules"][name] = { run = ..., when = ... } */
    lua_getfield(L, LUA_REGISTRYINDEX, "sy.rules");
    lua_createtable(L, 0, 2);
    lua_getfield(L, 1, "run");
    lua_setfield(L, -2, "run");
    lua_getfield(L, 1, "when");
    lua_setfield(L, -2, "when");
    lua_setfield(L, -2, name);
    return 0;
}
