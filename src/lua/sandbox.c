/*
 * The sandbox: a Lua state with an allocator that enforces the memory cap,
 * a count hook that enforces the instruction budget, and globals that hold
 * only what a rule may use. The rule modules are in mod_*.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/file.h"
#include "lua/json.h"
#include "lua/pattern.h"
#include "lua/sandbox_int.h"
#include "util/clock.h"

#define HOOK_EVERY 1000

struct sy_lua *sy_lua_self(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct sy_lua *lx = ud;
    if (ptr == NULL) {
        osize = 0;
    }
    if (nsize == 0) {
        free(ptr);
        lx->used -= osize;
        return NULL;
    }
    if (lx->enforce_mem && lx->limits.memory > 0 && nsize > osize &&
        lx->used + (nsize - osize) > lx->limits.memory) {
        lx->mem_hit = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p != NULL) {
        lx->used = lx->used - osize + nsize;
    }
    return p;
}

struct sy_lua_call *sy_lua_call_of(lua_State *L)
{
    return *(struct sy_lua_call **)lua_getextraspace(L);
}

static void count_hook(lua_State *L, lua_Debug *ar);

/* Raise the limit's error when the run is over its instructions or past its deadline. */
static void check_budget(lua_State *L, struct sy_lua *lx, struct sy_lua_call *call)
{
    bool over_count = lx->limits.instructions > 0 && call->counted > lx->limits.instructions;
    bool over_time = call->deadline > 0 && sy_mono_s() > call->deadline;
    if (!over_count && !over_time) {
        return;
    }
    call->limit_hit = true;
    /* from now on every instruction fails, so a pcall loop cannot swallow it */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    if (over_count) {
        luaL_error(L, "instruction limit exceeded (%I instructions)",
                   (lua_Integer)lx->limits.instructions);
    }
    luaL_error(L, "time limit exceeded (lua.timeout = %I ms)", (lua_Integer)lx->limits.timeout_ms);
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct sy_lua_call *call = sy_lua_call_of(L);
    call->counted += HOOK_EVERY;
    check_budget(L, sy_lua_self(L), call);
}

void sy_lua_charge(lua_State *L, uint64_t steps)
{
    struct sy_lua_call *call = sy_lua_call_of(L);
    call->counted += steps;
    check_budget(L, sy_lua_self(L), call);
}

void sy_lua_call_arm(struct sy_lua *lx, lua_State *L, struct sy_lua_call *call)
{
    call->counted = 0;
    call->limit_hit = false;
    lx->mem_hit = false;
    call->deadline =
        lx->limits.timeout_ms > 0 ? sy_mono_s() + (double)lx->limits.timeout_ms / 1000.0 : 0;
    if (lx->limits.instructions > 0 || call->deadline > 0) {
        lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    }
}

/*
 * setmetatable, refusing a metatable with __gc: Lua runs finalizers with hooks off, so a
 * finalizer's loop could never be stopped by any limit. (A __gc added to the metatable
 * later does not make the object finalizable, as Lua only looks when it is set.)
 */
static int l_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        bool has_gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (has_gc) {
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in rules "
                                 "(finalizers run where no limit can stop them)");
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

double sy_lua_wait_begin(lua_State *L)
{
    (void)L;
    return sy_mono_s();
}

void sy_lua_wait_end(lua_State *L, double began)
{
    struct sy_lua_call *call = sy_lua_call_of(L);
    if (call->deadline > 0) {
        call->deadline += sy_mono_s() - began;
    }
}

static int push_copies(lua_State *L)
{
    int n = (int)lua_tointeger(L, 1);
    char *const *s = lua_touserdata(L, 2);
    const size_t *len = lua_touserdata(L, 3);
    for (int i = 0; i < n; i++) {
        if (s[i] == NULL) {
            lua_pushnil(L);
        } else {
            lua_pushlstring(L, s[i], len[i]);
        }
    }
    return n;
}

void sy_lua_push_owned(lua_State *L, int n, char *const *s, const size_t *len)
{
    bool room = n <= 4 && lua_checkstack(L, 8);
    int rc = LUA_OK;
    if (room) {
        lua_pushcfunction(L, push_copies); /* a light function: pushing it allocates nothing */
        lua_pushinteger(L, n);
        lua_pushlightuserdata(L, (void *)s);
        lua_pushlightuserdata(L, (void *)len);
        rc = lua_pcall(L, 3, n, 0);
    }
    for (int i = 0; i < n; i++) {
        free(s[i]);
    }
    if (!room) {
        luaL_error(L, "not enough memory");
    }
    if (rc != LUA_OK) {
        lua_error(L);
    }
}

/* A read-only view of the table on top of the stack; replaces it. */
static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only table '%s'",
                      lua_tostring(L, lua_upvalueindex(1)));
}

void sy_lua_make_readonly(lua_State *L, const char *name)
{
    lua_newtable(L);          /* proxy */
    lua_createtable(L, 0, 3); /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, readonly_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* load(text [, name]): text chunks only, always in the sandbox's globals. */
static int l_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

static void copy_fields(lua_State *L, int from, const char *const *names)
{
    for (const char *const *n = names; *n; n++) {
        lua_getfield(L, from, *n);
        lua_setfield(L, -2, *n);
    }
}

/* os.time() with no argument, when the host keeps the clock; with a table, the library's. */
static int l_host_time(lua_State *L)
{
    struct sy_lua *lx = sy_lua_self(L);
    if (lua_isnoneornil(L, 1)) {
        lua_pushinteger(L, (lua_Integer)lx->host.now_s(lx->host.ctx));
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static void build_globals(lua_State *L)
{
    /* the full libraries, from which the sandbox takes what it offers */
    luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
    int base = lua_gettop(L);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    int str = lua_gettop(L);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    int os = lua_gettop(L);

    /* globals: a fresh table that becomes _G */
    lua_newtable(L);
    int g = lua_gettop(L);
    static const char *const base_names[] = {
        "assert",   "error", "ipairs", "next",         "pairs",    "pcall",  "select",   "tonumber",
        "tostring", "type",  "xpcall", "getmetatable", "rawequal", "rawlen", "_VERSION", NULL,
    };
    copy_fields(L, base, base_names);
    lua_getfield(L, base, "setmetatable");
    lua_pushcclosure(L, l_setmetatable, 1);
    lua_setfield(L, g, "setmetatable");
    lua_pushcfunction(L, l_load);
    lua_setfield(L, g, "load");
    lua_pushcfunction(L, sy_lua_print);
    lua_setfield(L, g, "print");
    lua_pushvalue(L, g);
    lua_setfield(L, g, "_G");

    /* string without dump, its matching charged; its metatable hidden so it cannot be changed */
    lua_pushnil(L);
    lua_setfield(L, str, "dump");
    sy_lua_patterns_install(L, str);
    sy_lua_tables_install(L, str + 1);
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, str);
    sy_lua_make_readonly(L, "string");
    lua_setfield(L, g, "string");
    lua_pushvalue(L, str + 1);
    sy_lua_make_readonly(L, "table");
    lua_setfield(L, g, "table");
    lua_pushvalue(L, str + 2);
    sy_lua_make_readonly(L, "math");
    lua_setfield(L, g, "math");
    lua_pushvalue(L, str + 3);
    sy_lua_make_readonly(L, "utf8");
    lua_setfield(L, g, "utf8");
    lua_newtable(L);
    static const char *const os_names[] = {"time", "date", "clock", "difftime", NULL};
    copy_fields(L, os, os_names);
    if (sy_lua_self(L)->host.now_s != NULL) {
        lua_getfield(L, os, "time");
        lua_pushcclosure(L, l_host_time, 1);
        lua_setfield(L, -2, "time");
    }
    sy_lua_make_readonly(L, "os");
    lua_setfield(L, g, "os");

    sy_lua_open_json(L);
    sy_lua_make_readonly(L, "json");
    lua_setfield(L, g, "json");
    sy_lua_open_log(L);
    sy_lua_make_readonly(L, "log");
    lua_setfield(L, g, "log");
    sy_lua_open_kv(L);
    sy_lua_make_readonly(L, "kv");
    lua_setfield(L, g, "kv");
    lua_pushcfunction(L, sy_lua_rule_decl);
    lua_setfield(L, g, "rule");
    if (sy_lua_self(L)->host.unizo_call != NULL) {
        sy_lua_open_unizo(L);
        sy_lua_make_readonly(L, "unizo");
        lua_setfield(L, g, "unizo");
    }

    /* make it the globals table; the originals stay reachable only from C */
    lua_pushvalue(L, g);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "sy.rules");
    /* package.loaded keeps the real libraries alive for C; clear it so nothing can reach them */
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_settop(L, 0);
}

struct sy_lua *sy_lua_new(const struct sy_lua_limits *limits, const struct sy_lua_host *host)
{
    struct sy_lua *lx = calloc(1, sizeof(*lx));
    if (lx == NULL) {
        return NULL;
    }
    lx->limits = *limits;
    if (host != NULL) {
        lx->host = *host;
    }
    lx->L = lua_newstate(alloc, lx);
    if (lx->L == NULL) {
        free(lx);
        return NULL;
    }
    *(struct sy_lua_call **)lua_getextraspace(lx->L) = &lx->main_call;
    build_globals(lx->L);
    lx->enforce_mem = true;
    return lx;
}

void sy_lua_free(struct sy_lua *lx)
{
    if (lx == NULL) {
        return;
    }
    lua_close(lx->L);
    sy_lua_rules_dispose(lx);
    free(lx);
}

lua_State *sy_lua_state(struct sy_lua *lx)
{
    return lx->L;
}

size_t sy_lua_rules(struct sy_lua *lx, const struct sy_lua_rule **rules)
{
    *rules = lx->rules;
    return lx->n_rules;
}

/* Message handler: keep {permanent = true} tables, add a traceback to everything else. */
static int on_error(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE) {
        /* raw reads: the rule's table may have metamethods */
        lua_pushliteral(L, "permanent");
        bool permanent = lua_rawget(L, 1) != LUA_TNIL && lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (permanent) {
            return 1;
        }
        lua_pushliteral(L, "message");
        const char *m = lua_rawget(L, 1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        luaL_traceback(L, L, m ? m : "error (a table)", 1);
        return 1;
    }
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        msg = lua_pushfstring(L, "error (a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

enum sy_lua_result sy_lua_pcall(struct sy_lua *lx, int nargs, int nresults, char *err,
                                size_t errlen)
{
    lua_State *L = lx->L;
    struct sy_lua_call *call = &lx->main_call;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, on_error);
    lua_insert(L, base);
    sy_lua_call_arm(lx, L, call);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_sethook(L, NULL, 0, 0);
    call->deadline = 0;
    enum sy_lua_result res = SY_LUA_OK;
    if (rc != LUA_OK) {
        /* on_error kept a permanent table and made everything else a traceback */
        res = sy_lua_failure(lx, L, L, rc, call, err, errlen);
        lua_pop(L, 1);
    }
    lua_remove(L, base);
    return res;
}

/* What a failed run's error value says; decoded in a protected call (see sy_lua_failure). */
struct failure {
    lua_State *co;   /* the thread holding the error value on top */
    bool traceback;  /* add co's traceback (a coroutine: its stack is still there) */
    bool permanent;  /* out */
    char *err;
    size_t errlen;
    const char *mem; /* the message to use for a memory error, or NULL */
};

static int decode_failure(lua_State *L)
{
    struct failure *f = lua_touserdata(L, 1);
    /* on the main thread the value was handed in as the second argument */
    lua_State *co = f->co == NULL ? L : f->co;
    int top = f->co == NULL ? 2 : lua_gettop(co);
    const char *m = NULL;
    if (lua_type(co, top) == LUA_TTABLE) {
        /* raw reads: a metamethod of the rule's table must not run here, outside any budget */
        lua_pushliteral(co, "permanent");
        f->permanent = lua_rawget(co, top) != LUA_TNIL && lua_toboolean(co, -1);
        lua_pushliteral(co, "message");
        m = lua_rawget(co, top) == LUA_TSTRING ? lua_tostring(co, -1) : NULL;
        if (m == NULL) {
            m = f->permanent ? "permanent failure" : "error (a table)";
        }
    } else if (lua_isstring(co, top)) {
        m = lua_tostring(co, top);
    } else {
        m = lua_pushfstring(co, "error (a %s value)", luaL_typename(co, top));
    }
    if (f->mem != NULL) {
        m = f->mem;
    }
    if (f->traceback && !f->permanent) {
        luaL_traceback(L, co, m, 0);
        m = lua_tostring(L, -1);
    }
    snprintf(f->err, f->errlen, "%s", m);
    lua_settop(co, top);
    return 0;
}

enum sy_lua_result sy_lua_failure(struct sy_lua *lx, lua_State *L, lua_State *co, int status,
                                  const struct sy_lua_call *call, char *err, size_t errlen)
{
    bool limit = call->limit_hit || (status == LUA_ERRMEM && lx->mem_hit);
    struct failure f = {.co = co != L ? co : NULL,
                        .traceback = co != L,
                        .err = err,
                        .errlen = errlen,
                        .mem = status == LUA_ERRMEM && lx->mem_hit ? "memory limit exceeded" : NULL};
    /* light C function and light userdata: pushing them allocates nothing */
    lua_pushcfunction(L, decode_failure);
    lua_pushlightuserdata(L, &f);
    int nargs = 1;
    if (co == L) {
        lua_pushvalue(L, -3); /* the error value, below the two just pushed */
        nargs = 2;
    }
    if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        snprintf(err, errlen, "%s", f.mem ? f.mem : "error (its message could not be read)");
        f.permanent = false;
    }
    if (f.permanent) {
        return SY_LUA_PERMANENT;
    }
    return limit ? SY_LUA_LIMIT : SY_LUA_ERROR;
}

int sy_lua_load_source(struct sy_lua *lx, const char *source, size_t len, const char *display,
                       struct sy_error *err)
{
    lua_State *L = lx->L;
    char name[1100];
    snprintf(name, sizeof(name), "@%s", display);
    int rc = SY_OK;
    if (luaL_loadbufferx(L, source, len, name, "t") != LUA_OK) {
        rc = sy_error_set(err, "", 0, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    } else {
        lx->loading = display;
        char msg[2048];
        /* loading is bounded like a job, so a file with an endless loop fails to load */
        if (sy_lua_pcall(lx, 0, 0, msg, sizeof(msg)) != SY_LUA_OK) {
            rc = sy_error_set(err, "", 0, "%s", msg);
        }
        lx->loading = NULL;
    }
    return rc;
}

int sy_lua_read_file(const char *path, const char *display, char **source, size_t *len,
                     struct sy_error *err)
{
    int rc = sy_file_read(path, SY_LUA_MAX_FILE, source, len);
    if (rc == SY_EFULL) {
        return sy_error_set(err, display, 0, "the rule file is larger than 16 MiB");
    }
    if (rc != SY_OK) {
        return sy_error_set(err, display, 0, "cannot read the rule file");
    }
    return SY_OK;
}

int sy_lua_load_file(struct sy_lua *lx, const char *path, const char *display, struct sy_error *err)
{
    char *source = NULL;
    size_t len = 0;
    int rc = sy_lua_read_file(path, display, &source, &len, err);
    if (rc == SY_OK) {
        rc = sy_lua_load_source(lx, source, len, display, err);
    }
    free(source);
    return rc;
}

static enum sy_lua_result push_job(struct sy_lua *lx, const char *name, const char *json,
                                   size_t len, const char *norm, size_t norm_len, char *err,
                                   size_t errlen)
{
    lua_State *L = lx->L;
    int base = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "sy.rules");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) {
        lua_settop(L, base);
        snprintf(err, errlen, "rule '%s' is not loaded", name);
        return SY_LUA_PERMANENT;
    }
    char jerr[200];
    if (!sy_lua_decode_json(L, json, len, false, jerr, sizeof(jerr))) {
        lua_settop(L, base);
        snprintf(err, errlen, "the stored event is not valid JSON: %s", jerr);
        return SY_LUA_PERMANENT;
    }
    int ev = lua_gettop(L);
    if (norm != NULL && norm_len > 0) {
        /* the normalized envelope over the body's own members: ev.type whatever the form */
        if (!lua_istable(L, ev) ||
            !sy_lua_decode_json(L, norm, norm_len, false, jerr, sizeof(jerr))) {
            lua_settop(L, base);
            snprintf(err, errlen, "the stored event cannot be read as an event");
            return SY_LUA_PERMANENT;
        }
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, ev);
        }
        lua_pop(L, 1);
        lua_getfield(L, ev, "integration");
        if (!lua_istable(L, -1)) {
            lua_newtable(L); /* ev.integration.type is nil, not an error, when there is none */
            lua_setfield(L, ev, "integration");
        }
        lua_pop(L, 1);
    }
    return SY_LUA_OK;
}

struct job_args {
    struct sy_lua *lx;
    const char *name, *json, *norm;
    size_t len, norm_len;
    char *err;
    size_t errlen;
    enum sy_lua_result res;
};

static int push_job_protected(lua_State *L)
{
    struct job_args *a = lua_touserdata(L, 1);
    lua_pop(L, 1);
    a->res = push_job(a->lx, a->name, a->json, a->len, a->norm, a->norm_len, a->err, a->errlen);
    return a->res == SY_LUA_OK ? 2 : 0;
}

enum sy_lua_result sy_lua_push_job(struct sy_lua *lx, const char *name, const char *json,
                                   size_t len, const char *norm, size_t norm_len, char *err,
                                   size_t errlen)
{
    lua_State *L = lx->L;
    struct job_args a = {.lx = lx,
                         .name = name,
                         .json = json,
                         .norm = norm,
                         .len = len,
                         .norm_len = norm_len,
                         .err = err,
                         .errlen = errlen};
    /* building the event allocates: under a full state that must fail the job, not the process */
    lua_pushcfunction(L, push_job_protected);
    lua_pushlightuserdata(L, &a);
    lx->mem_hit = false;
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
        lua_pop(L, 1);
        snprintf(err, errlen, "%s",
                 lx->mem_hit ? "memory limit exceeded" : "out of memory while reading the event");
        return SY_LUA_LIMIT;
    }
    return a.res;
}

enum sy_lua_result sy_lua_run(struct sy_lua *lx, const char *name, const char *event_id,
                              const char *json, size_t len, const char *norm, size_t norm_len,
                              void *run, char *err, size_t errlen)
{
    lua_State *L = lx->L;
    int base = lua_gettop(L);
    enum sy_lua_result res = sy_lua_push_job(lx, name, json, len, norm, norm_len, err, errlen);
    if (res != SY_LUA_OK) {
        return res;
    }
    int entry = base + 1, ev = base + 2;
    struct sy_lua_call *call = &lx->main_call;
    call->rule = name;
    call->event_id = event_id;
    call->run = run;
    lua_getfield(L, entry, "when");
    if (!lua_isnil(L, -1)) {
        lua_pushvalue(L, ev);
        res = sy_lua_pcall(lx, 1, 1, err, errlen);
        if (res == SY_LUA_OK && !lua_toboolean(L, -1)) {
            res = SY_LUA_SKIPPED;
        }
    }
    lua_settop(L, ev);
    if (res == SY_LUA_OK) {
        lua_getfield(L, entry, "run");
        lua_pushvalue(L, ev);
        res = sy_lua_pcall(lx, 1, 0, err, errlen);
    }
    call->rule = NULL;
    call->event_id = NULL;
    call->run = NULL;
    lua_settop(L, base);
    return res;
}
