#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "config.h"
#include "config_read.h"
#include "lua/json.h"
#include "util/log.h"
#include "util/parse.h"

int sy_config_defaults(struct sy_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = calloc(1, sizeof(char *));
    if (cfg->listen == NULL) {
        return SY_ENOMEM;
    }
    cfg->listen[0] = strdup("0.0.0.0:8080");
    cfg->n_listen = 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->http.threads = cores > 0 ? (int)cores : 1;
    cfg->http.idle_timeout_ms = 60000;
    cfg->http.request_timeout_ms = 10000;
    cfg->admin.store_timeout_ms = 2000;
    cfg->http.max_connections = 10000;
    cfg->http.max_connections_per_address = 256;
    cfg->admin.listen = strdup("127.0.0.1:9091");
    cfg->webhook.path = strdup("/webhooks/unizo");
    cfg->webhook.tolerance_s = 300;
    cfg->webhook.max_body = 1 << 20;
    cfg->store.url = strdup("sqlite:var/switchyard.db");
    cfg->store.synchronous = SY_SYNC_FULL;
    cfg->store.queue = 16384;
    cfg->store.max_batch = 1024;
    cfg->store.checkpoint_at = UINT64_C(64) << 20;
    cfg->store.prefix = strdup("switchyard:");
    cfg->store.visibility_ms = 600000;
    cfg->dedupe_retention_ms = UINT64_C(7) * 86400 * 1000;
    cfg->log.level = SY_LOG_INFO;
    cfg->log.json = false;
    cfg->workers = 4;
    cfg->max_in_flight = 64;
    cfg->shutdown_grace_ms = 30000;
    static const uint64_t schedule[] = {60000, 300000, 1800000, 7200000, 43200000};
    cfg->retry.schedule_ms = malloc(sizeof(schedule));
    if (cfg->retry.schedule_ms == NULL) {
        return SY_ENOMEM;
    }
    memcpy(cfg->retry.schedule_ms, schedule, sizeof(schedule));
    cfg->retry.n_schedule = 5;
    cfg->retry.jitter = 0.2;
    cfg->unizo.base_url = strdup("https://api.unizo.ai/api/v1");
    cfg->unizo.connect_timeout_ms = 5000;
    cfg->unizo.timeout_ms = 30000;
    cfg->unizo.max_response = 8u << 20;
    cfg->unizo.attempts = 4;
    cfg->unizo.backoff_base_ms = 500;
    cfg->unizo.backoff_cap_ms = 30000;
    cfg->lua.instruction_limit = 10000000;
    cfg->lua.memory_limit = UINT64_C(64) << 20;
    cfg->lua.timeout_ms = 5000;
    char cwd[4096];
    cfg->dir = strdup(getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    if (!cfg->listen[0] || !cfg->admin.listen || !cfg->webhook.path || !cfg->store.url ||
        !cfg->dir || !cfg->unizo.base_url) {
        return SY_ENOMEM;
    }
    return SY_OK;
}

void sy_config_dispose(struct sy_config *cfg)
{
    free(cfg->path);
    free(cfg->dir);
    sy_cfg_free_strv(cfg->listen, cfg->n_listen);
    free(cfg->http.tls_cert);
    free(cfg->http.tls_key);
    free(cfg->admin.listen);
    if (cfg->admin.token) {
        explicit_bzero(cfg->admin.token, strlen(cfg->admin.token));
    }
    free(cfg->admin.token);
    free(cfg->webhook.path);
    for (size_t i = 0; i < cfg->webhook.n_secrets; i++) {
        explicit_bzero(cfg->webhook.secrets[i], strlen(cfg->webhook.secrets[i]));
    }
    sy_cfg_free_strv(cfg->webhook.secrets, cfg->webhook.n_secrets);
    free(cfg->webhook.allow);
    free(cfg->webhook.trusted_proxies);
    free(cfg->store.url);
    free(cfg->store.prefix);
    free(cfg->store.instance);
    sy_cfg_free_strv(cfg->rules, cfg->n_rules);
    free(cfg->retry.schedule_ms);
    free(cfg->unizo.base_url);
    if (cfg->unizo.api_key) {
        explicit_bzero(cfg->unizo.api_key, strlen(cfg->unizo.api_key));
    }
    free(cfg->unizo.api_key);
    free(cfg->unizo.ca_file);
    for (size_t i = 0; i < cfg->unizo.n_integrations; i++) {
        struct sy_unizo_integration *in = &cfg->unizo.integrations[i];
        free(in->name);
        free(in->id);
        free(in->organization);
        free(in->collection);
    }
    free(cfg->unizo.integrations);
    free(cfg->record_dir);
    free(cfg->plugin_dir);
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        free(cfg->plugins[i].name);
        free(cfg->plugins[i].path);
        free(cfg->plugins[i].config_json);
        free(cfg->plugins[i].integration);
        free(cfg->plugins[i].category);
    }
    free(cfg->plugins);
    memset(cfg, 0, sizeof(*cfg));
}

char *sy_config_resolve(const struct sy_config *cfg, const char *rel)
{
    if (rel[0] == '/' || cfg->dir == NULL) {
        return strdup(rel);
    }
    size_t n = strlen(cfg->dir) + strlen(rel) + 2;
    char *out = malloc(n);
    if (out) {
        snprintf(out, n, "%s/%s", cfg->dir, rel);
    }
    return out;
}

bool sy_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return false;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return false;
        }
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen) {
        return false;
    }
    int64_t p;
    const char *ps = colon + 1;
    if (!sy_parse_int64(ps, strlen(ps), &p) || p < 0 || p > 65535) {
        return false;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return true;
}

/* env(name [, default]): the variable's value, else the default, else nil. */
static int lua_env(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *v = getenv(name);
    if (v != NULL) {
        lua_pushstring(L, v);
    } else if (lua_gettop(L) >= 2) {
        lua_pushvalue(L, 2);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

/* file(path): a secret kept in a file, without its trailing newline. */
static int lua_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return luaL_error(L, "file(\"%s\"): %s", path, strerror(errno));
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }
    lua_pushlstring(L, buf, n);
    explicit_bzero(buf, sizeof(buf));
    return 1;
}

/* A config file is a program; bound it so a mistake fails instead of hanging or eating memory. */
#define CONFIG_MEMORY (64u << 20)
#define CONFIG_HOOK_EVERY 100000
#define CONFIG_MAX_HOOKS 1000 /* 10^8 instructions */

struct config_alloc {
    size_t used;
    int hooks;
};

static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct config_alloc *a = ud;
    if (ptr == NULL) {
        osize = 0;
    }
    if (nsize == 0) {
        free(ptr);
        a->used -= osize;
        return NULL;
    }
    if (nsize > osize && a->used + (nsize - osize) > CONFIG_MEMORY) {
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p != NULL) {
        a->used = a->used - osize + nsize;
    }
    return p;
}

static void config_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    void *ud = NULL;
    lua_getallocf(L, &ud);
    struct config_alloc *a = ud;
    if (++a->hooks > CONFIG_MAX_HOOKS) {
        lua_sethook(L, config_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "the config file runs too long (an endless loop?)");
    }
}

/* __newindex on _G: remember the line where each top-level key was set. */
static int record_global(lua_State *L)
{
    lua_Debug ar;
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) {
        line = ar.currentline;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "sy_config_lines");
    lua_pushvalue(L, 2);
    lua_pushinteger(L, line);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_rawset(L, 1);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                break;
            }
            char *p = realloc(buf, cap);
            if (p == NULL) {
                break;
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
    }
    return buf;
}

int sy_config_load(struct sy_config *cfg, const char *path, struct sy_error *err)
{
    int rc = SY_OK;
    struct sy_cfg_walker w = {.file = path, .err = err};
    w.source = slurp(path);
    if (w.source == NULL) {
        return sy_error_set(err, path, 0, "cannot read config: %s", strerror(errno));
    }
    struct config_alloc alloc = {0};
    lua_State *L = lua_newstate(config_alloc, &alloc);
    if (L == NULL) {
        free(w.source);
        return SY_ENOMEM;
    }
    lua_sethook(L, config_hook, LUA_MASKCOUNT, CONFIG_HOOK_EVERY);
    w.L = L;
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    lua_settop(L, 0);
    lua_register(L, "env", lua_env);
    lua_register(L, "file", lua_file);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "sy_config_lines");
    lua_pushglobaltable(L);
    lua_newtable(L);
    lua_pushcfunction(L, record_global);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);

    char chunkname[1024];
    snprintf(chunkname, sizeof(chunkname), "@%s", path);
    if (luaL_loadbufferx(L, w.source, strlen(w.source), chunkname, "t") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK) {
        /* Lua's message already starts with "path:line:" */
        const char *msg = lua_tostring(L, -1);
        rc = sy_error_set(err, "", 0, "%s", msg ? msg : "error loading config");
        goto done;
    }

    free(cfg->path);
    cfg->path = strdup(path);
    char *tmp = strdup(path);
    char *absdir = NULL;
    if (tmp != NULL) {
        const char *d = dirname(tmp);
        absdir = realpath(d, NULL);
    }
    free(tmp);
    if (absdir != NULL) {
        free(cfg->dir);
        cfg->dir = absdir;
    }

    /* walk assignments in source order so the first error is the first in the file */
    lua_getfield(L, LUA_REGISTRYINDEX, "sy_config_lines");
    int lines_idx = lua_gettop(L);
    for (int pass_line = 0; rc == SY_OK;) {
        const char *next_key = NULL;
        int next_line = 0;
        lua_pushnil(L);
        while (lua_next(L, lines_idx) != 0) {
            int l = (int)lua_tointeger(L, -1);
            if (lua_type(L, -2) == LUA_TSTRING && l > pass_line &&
                (next_key == NULL || l < next_line)) {
                next_key = lua_tostring(L, -2);
                next_line = l;
            }
            lua_pop(L, 1);
        }
        if (next_key == NULL) {
            break;
        }
        /* several keys on one line are walked together */
        lua_pushnil(L);
        while (rc == SY_OK && lua_next(L, lines_idx) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_tointeger(L, -1) == next_line) {
                const char *key = lua_tostring(L, -2);
                w.base_line = sy_cfg_statement_line(w.source, key, next_line);
                lua_getglobal(L, key);
                if (!lua_isnil(L, -1)) {
                    rc = sy_cfg_walk_global(&w, cfg, key);
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        if (rc != SY_OK) {
            /* lua_next left the key on the stack */
            lua_settop(L, lines_idx);
        }
        pass_line = next_line;
    }
done:
    lua_close(L);
    free(w.source);
    return rc;
}
