/* The config file's sections: each walker checks its table's keys and fills struct sy_config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#include "config_read.h"
#include "ingest/delivery.h"
#include "lua/json.h"
#include "util/log.h"
#include "util/parse.h"

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != SY_OK) {                                                                        \
            lua_pop(w->L, 1);                                                                      \
            return rc_;                                                                            \
        }                                                                                          \
        lua_pop(w->L, 1);                                                                          \
    } while (0)

static int check_listen_addr(struct sy_cfg_walker *w, const char *path, const char *addr)
{
    char host[256];
    unsigned port;
    if (!sy_split_hostport(addr, host, sizeof(host), &port)) {
        return sy_cfg_fail(w, sy_cfg_leaf(path),
                           "'%s': \"%s\" is not ADDRESS:PORT (like 0.0.0.0:8080 or [::]:8080)",
                           path, addr);
    }
    return SY_OK;
}

static int walk_http(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"threads",
                                       "http2",
                                       "tls",
                                       "idle_timeout",
                                       "request_timeout",
                                       "max_connections",
                                       "max_connections_per_address",
                                       NULL};
    int rc = sy_cfg_keys(w, "http", keys);
    if (rc != SY_OK) {
        return rc;
    }
    int64_t n;
    if (sy_cfg_field(w->L, "threads")) {
        TRY(sy_cfg_int(w, "http.threads", 1, 256, &n));
        cfg->http.threads = (int)n;
    }
    if (sy_cfg_field(w->L, "http2")) {
        TRY(sy_cfg_bool(w, "http.http2", &cfg->http.http2));
    }
    if (sy_cfg_field(w->L, "max_connections")) {
        TRY(sy_cfg_int(w, "http.max_connections", 1, 1000000, &n));
        cfg->http.max_connections = (int)n;
    }
    if (sy_cfg_field(w->L, "max_connections_per_address")) {
        TRY(sy_cfg_int(w, "http.max_connections_per_address", 1, 1000000, &n));
        cfg->http.max_connections_per_address = (int)n;
    }
    if (sy_cfg_field(w->L, "idle_timeout")) {
        TRY(sy_cfg_unit(w, "http.idle_timeout", sy_parse_duration_ms, 1000, "60s",
                        &cfg->http.idle_timeout_ms));
    }
    if (sy_cfg_field(w->L, "request_timeout")) {
        TRY(sy_cfg_unit(w, "http.request_timeout", sy_parse_duration_ms, 1000, "10s",
                        &cfg->http.request_timeout_ms));
    }
    if (sy_cfg_field(w->L, "tls")) {
        static const char *const tkeys[] = {"cert", "key", NULL};
        rc = sy_cfg_keys(w, "http.tls", tkeys);
        if (rc == SY_OK && sy_cfg_field(w->L, "cert")) {
            rc = sy_cfg_string(w, "http.tls.cert", &cfg->http.tls_cert);
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && sy_cfg_field(w->L, "key")) {
            rc = sy_cfg_string(w, "http.tls.key", &cfg->http.tls_key);
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && (cfg->http.tls_cert == NULL) != (cfg->http.tls_key == NULL)) {
            rc = sy_cfg_fail(w, "tls", "'http.tls' needs both 'cert' and 'key' (PEM files)");
        }
        lua_pop(w->L, 1);
        if (rc != SY_OK) {
            return rc;
        }
    }
    return SY_OK;
}

static int walk_admin(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"listen", "token", "store_timeout", NULL};
    int rc = sy_cfg_keys(w, "admin", keys);
    if (rc != SY_OK) {
        return rc;
    }
    lua_getfield(w->L, -1, "listen");
    if (lua_type(w->L, -1) == LUA_TBOOLEAN && !lua_toboolean(w->L, -1)) {
        free(cfg->admin.listen);
        cfg->admin.listen = NULL;
        lua_pop(w->L, 1);
    } else if (!lua_isnil(w->L, -1)) {
        TRY(sy_cfg_string(w, "admin.listen", &cfg->admin.listen));
        rc = check_listen_addr(w, "admin.listen", cfg->admin.listen);
        if (rc != SY_OK) {
            return rc;
        }
    } else {
        lua_pop(w->L, 1);
    }
    if (sy_cfg_field(w->L, "token")) {
        TRY(sy_cfg_string(w, "admin.token", &cfg->admin.token));
        if (cfg->admin.token[0] == '\0') {
            free(cfg->admin.token);
            cfg->admin.token = NULL;
        }
    }
    if (sy_cfg_field(w->L, "store_timeout")) {
        TRY(sy_cfg_unit(w, "admin.store_timeout", sy_parse_duration_ms, 1000, "2s",
                        &cfg->admin.store_timeout_ms));
        if (cfg->admin.store_timeout_ms < 100 || cfg->admin.store_timeout_ms > 60000) {
            return sy_cfg_fail(w, "store_timeout",
                               "'admin.store_timeout' must be between 100ms and 60s");
        }
    }
    return SY_OK;
}

static int walk_webhook(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"path",           "secrets",    "tolerance",
                                       "max_body",       "allow",      "trusted_proxies",
                                       "signed_payload", "on_invalid", NULL};
    int rc = sy_cfg_keys(w, "webhook", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (sy_cfg_field(w->L, "path")) {
        TRY(sy_cfg_string(w, "webhook.path", &cfg->webhook.path));
        if (cfg->webhook.path[0] != '/') {
            return sy_cfg_fail(w, "path", "'webhook.path' must start with '/', got \"%s\"",
                               cfg->webhook.path);
        }
    }
    if (sy_cfg_field(w->L, "secrets")) {
        TRY(sy_cfg_strv(w, "webhook.secrets", true, &cfg->webhook.secrets,
                        &cfg->webhook.n_secrets));
        for (size_t i = 0; i < cfg->webhook.n_secrets; i++) {
            if (cfg->webhook.secrets[i][0] == '\0') {
                return sy_cfg_fail(w, "secrets", "'webhook.secrets' contains an empty secret");
            }
        }
    }
    if (sy_cfg_field(w->L, "tolerance")) {
        uint64_t ms;
        TRY(sy_cfg_unit(w, "webhook.tolerance", sy_parse_duration_ms, 1000, "300s", &ms));
        if (ms < 1000 || ms > UINT64_C(86400) * 1000) {
            return sy_cfg_fail(w, "tolerance", "'webhook.tolerance' must be between 1s and 1d");
        }
        cfg->webhook.tolerance_s = (int64_t)(ms / 1000);
    }
    if (sy_cfg_field(w->L, "max_body")) {
        TRY(sy_cfg_unit(w, "webhook.max_body", sy_parse_size, 1, "1MiB", &cfg->webhook.max_body));
        if (cfg->webhook.max_body < 64 || cfg->webhook.max_body > (UINT64_C(256) << 20)) {
            return sy_cfg_fail(w, "max_body", "'webhook.max_body' must be between 64B and 256MiB");
        }
    }
    if (sy_cfg_field(w->L, "allow")) {
        TRY(sy_cfg_cidrs(w, "webhook.allow", &cfg->webhook.allow, &cfg->webhook.n_allow));
    }
    if (sy_cfg_field(w->L, "trusted_proxies")) {
        TRY(sy_cfg_cidrs(w, "webhook.trusted_proxies", &cfg->webhook.trusted_proxies,
                         &cfg->webhook.n_trusted_proxies));
    }
    static const char *const payloads[] = {[SY_SIGNED_TS_BODY] = "timestamp.body",
                                           [SY_SIGNED_BODY] = "body",
                                           [SY_SIGNED_EITHER] = "either",
                                           NULL};
    if (sy_cfg_field(w->L, "signed_payload")) {
        int v = 0;
        TRY(sy_cfg_choice(w, "webhook.signed_payload", payloads, &v));
        cfg->webhook.signed_payload = (enum sy_signed_payload)v;
    }
    static const char *const invalid[] = {"quarantine", "reject", NULL};
    if (sy_cfg_field(w->L, "on_invalid")) {
        int v = 0;
        TRY(sy_cfg_choice(w, "webhook.on_invalid", invalid, &v));
        cfg->webhook.reject_invalid = v == 1;
    }
    return SY_OK;
}

static int check_store_url(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    const char *u = cfg->store.url;
    if (strncmp(u, "sqlite:", 7) == 0 && u[7] != '\0') {
        char *abs = sy_config_resolve(cfg, u + 7);
        size_t n = abs ? strlen(abs) + 8 : 0;
        char *url = abs ? malloc(n) : NULL;
        if (url == NULL) {
            free(abs);
            return SY_ENOMEM;
        }
        snprintf(url, n, "sqlite:%s", abs);
        free(abs);
        free(cfg->store.url);
        cfg->store.url = url;
        return SY_OK;
    }
    if (strncmp(u, "redis://", 8) == 0 && u[8] != '\0') {
        return SY_OK;
    }
    return sy_cfg_fail(
        w, "store", "'store' must be \"sqlite:PATH\" or \"redis://HOST:PORT/DB\", got \"%s\"", u);
}

static int walk_store(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    if (lua_type(w->L, -1) == LUA_TSTRING) {
        int rc = sy_cfg_string(w, "store", &cfg->store.url);
        return rc == SY_OK ? check_store_url(w, cfg) : rc;
    }
    static const char *const keys[] = {"url",      "synchronous", "queue",
                                       "max_batch", "prefix",     "instance",
                                       "visibility", "checkpoint_at", NULL};
    int rc = sy_cfg_keys(w, "store", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (sy_cfg_field(w->L, "url")) {
        TRY(sy_cfg_string(w, "store.url", &cfg->store.url));
    }
    if (sy_cfg_field(w->L, "synchronous")) {
        char *mode = NULL;
        rc = sy_cfg_string(w, "store.synchronous", &mode);
        lua_pop(w->L, 1);
        if (rc != SY_OK) {
            return rc;
        }
        if (strcasecmp(mode, "full") == 0) {
            cfg->store.synchronous = SY_SYNC_FULL;
        } else if (strcasecmp(mode, "normal") == 0) {
            cfg->store.synchronous = SY_SYNC_NORMAL;
        } else if (strcasecmp(mode, "off") == 0) {
            cfg->store.synchronous = SY_SYNC_OFF;
        } else {
            rc = sy_cfg_fail(
                w, "synchronous",
                "'store.synchronous' must be \"full\", \"normal\" or \"off\", got \"%s\"", mode);
        }
        free(mode);
        if (rc != SY_OK) {
            return rc;
        }
    }
    int64_t n;
    if (sy_cfg_field(w->L, "queue")) {
        TRY(sy_cfg_int(w, "store.queue", 1, 10000000, &n));
        cfg->store.queue = (size_t)n;
    }
    if (sy_cfg_field(w->L, "max_batch")) {
        TRY(sy_cfg_int(w, "store.max_batch", 1, 100000, &n));
        cfg->store.max_batch = (size_t)n;
    }
    if (sy_cfg_field(w->L, "checkpoint_at")) {
        TRY(sy_cfg_unit(w, "store.checkpoint_at", sy_parse_size, 1, "64MiB",
                        &cfg->store.checkpoint_at));
        if (cfg->store.checkpoint_at < (UINT64_C(1) << 20) ||
            cfg->store.checkpoint_at > (UINT64_C(1) << 30)) {
            return sy_cfg_fail(w, "checkpoint_at",
                               "'store.checkpoint_at' must be between 1MiB and 1GiB");
        }
    }
    if (sy_cfg_field(w->L, "prefix")) {
        TRY(sy_cfg_string(w, "store.prefix", &cfg->store.prefix));
    }
    if (sy_cfg_field(w->L, "instance")) {
        TRY(sy_cfg_string(w, "store.instance", &cfg->store.instance));
    }
    if (sy_cfg_field(w->L, "visibility")) {
        TRY(sy_cfg_unit(w, "store.visibility", sy_parse_duration_ms, 1000, "10m",
                        &cfg->store.visibility_ms));
    }
    return check_store_url(w, cfg);
}

static int walk_log(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"level", "format", NULL};
    int rc = sy_cfg_keys(w, "log", keys);
    if (rc != SY_OK) {
        return rc;
    }
    char *s = NULL;
    if (sy_cfg_field(w->L, "level")) {
        rc = sy_cfg_string(w, "log.level", &s);
        lua_pop(w->L, 1);
        if (rc == SY_OK) {
            int lv = sy_log_level_parse(s);
            if (lv < 0) {
                rc = sy_cfg_fail(w, "level",
                                 "'log.level' must be \"debug\", \"info\", \"warn\" or \"error\", "
                                 "got \"%s\"",
                                 s);
            }
            cfg->log.level = lv;
        }
    }
    if (rc == SY_OK && sy_cfg_field(w->L, "format")) {
        rc = sy_cfg_string(w, "log.format", &s);
        lua_pop(w->L, 1);
        if (rc == SY_OK) {
            if (strcmp(s, "json") == 0 || strcmp(s, "text") == 0) {
                cfg->log.json = strcmp(s, "json") == 0;
            } else {
                rc = sy_cfg_fail(w, "format",
                                 "'log.format' must be \"json\" or \"text\", got \"%s\"", s);
            }
        }
    }
    free(s);
    return rc;
}

static int walk_retry(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"schedule", "jitter", NULL};
    int rc = sy_cfg_keys(w, "retry", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (sy_cfg_field(w->L, "schedule")) {
        lua_State *L = w->L;
        if (lua_type(L, -1) != LUA_TTABLE) {
            rc = sy_cfg_fail(w, "schedule",
                             "'retry.schedule' must be a list of durations like "
                             "{ \"1m\", \"5m\" }");
            lua_pop(L, 1);
            return rc;
        }
        size_t n = lua_rawlen(L, -1);
        uint64_t *v = calloc(n ? n : 1, sizeof(*v));
        if (v == NULL) {
            lua_pop(L, 1);
            return SY_ENOMEM;
        }
        for (size_t i = 0; i < n && rc == SY_OK; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            rc = sy_cfg_unit(w, "retry.schedule", sy_parse_duration_ms, 1000, "5m", &v[i]);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (rc != SY_OK) {
            free(v);
            return rc;
        }
        free(cfg->retry.schedule_ms);
        cfg->retry.schedule_ms = v;
        cfg->retry.n_schedule = n;
    }
    if (sy_cfg_field(w->L, "jitter")) {
        if (lua_type(w->L, -1) != LUA_TNUMBER || lua_tonumber(w->L, -1) < 0 ||
            lua_tonumber(w->L, -1) > 1) {
            lua_pop(w->L, 1);
            return sy_cfg_fail(w, "jitter", "'retry.jitter' must be a number from 0 to 1");
        }
        cfg->retry.jitter = lua_tonumber(w->L, -1);
        lua_pop(w->L, 1);
    }
    return SY_OK;
}

/* rate = "20/s", "600/m" or "3600/h": attempts started per second */
static int walk_rate(struct sy_cfg_walker *w, const char *path, double *rate)
{
    const char *s = lua_tostring(w->L, -1);
    char *end = NULL;
    double n = s != NULL && lua_type(w->L, -1) == LUA_TSTRING ? strtod(s, &end) : 0;
    double per = 0;
    if (end != NULL && end != s && end[0] == '/' && end[1] != '\0' && end[2] == '\0') {
        per = end[1] == 's' ? 1 : end[1] == 'm' ? 60 : end[1] == 'h' ? 3600 : 0;
    }
    if (per == 0 || !(n > 0) || n / per > 100000) {
        return sy_cfg_fail(w, "rate",
                           "'%s.rate' must be calls per second, minute or hour, like \"20/s\", "
                           "\"600/m\" or \"3600/h\" (at most 100000/s)",
                           path);
    }
    *rate = n / per;
    return SY_OK;
}

static int walk_integrations(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    lua_State *L = w->L;
    if (lua_type(L, -1) != LUA_TTABLE) {
        return sy_cfg_fail(w, "integrations",
                           "'unizo.integrations' must be a table of name = { ... }");
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return sy_cfg_fail(w, "integrations", "'unizo.integrations' keys must be names");
        }
        const char *name = lua_tostring(L, -2);
        char path[160];
        snprintf(path, sizeof(path), "unizo.integrations.%s", name);
        static const char *const keys[] = {"id",   "organization", "collection", "max_in_flight",
                                           "rate", NULL};
        int rc = sy_cfg_keys(w, path, keys);
        struct sy_unizo_integration *list =
            rc == SY_OK
                ? realloc(cfg->unizo.integrations, (cfg->unizo.n_integrations + 1) * sizeof(*list))
                : NULL;
        if (list == NULL) {
            lua_pop(L, 2);
            return rc == SY_OK ? SY_ENOMEM : rc;
        }
        cfg->unizo.integrations = list;
        struct sy_unizo_integration *in = &list[cfg->unizo.n_integrations++];
        memset(in, 0, sizeof(*in));
        in->name = strdup(name);
        const char *fields[] = {"id", "organization", "collection"};
        char **dst[] = {&in->id, &in->organization, &in->collection};
        for (int i = 0; i < 3 && rc == SY_OK; i++) {
            if (sy_cfg_field(L, fields[i])) {
                char fp[200];
                snprintf(fp, sizeof(fp), "%s.%s", path, fields[i]);
                rc = sy_cfg_string(w, fp, dst[i]);
                lua_pop(L, 1);
            }
        }
        if (rc == SY_OK && sy_cfg_field(L, "max_in_flight")) {
            char fp[200];
            snprintf(fp, sizeof(fp), "%s.max_in_flight", path);
            int64_t n = 0;
            rc = sy_cfg_int(w, fp, 1, 100000, &n);
            in->max_in_flight = (long)n;
            lua_pop(L, 1);
        }
        if (rc == SY_OK && sy_cfg_field(L, "rate")) {
            rc = walk_rate(w, path, &in->rate);
            lua_pop(L, 1);
        }
        if (rc == SY_OK && in->id == NULL) {
            in->id = strdup(name);
        }
        if (rc == SY_OK && !sy_header_value_ok(in->id)) {
            /* it is sent as the integrationId header: a newline (say from file()) would end it */
            rc = sy_cfg_fail(w, "id",
                             "'%s.id' must be visible ASCII without spaces (it is sent as the "
                             "integrationId header); a trailing newline from file()?",
                             path);
        }
        lua_pop(L, 1);
        if (rc != SY_OK) {
            lua_pop(L, 1);
            return rc;
        }
    }
    return SY_OK;
}

static int walk_unizo(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"base_url",        "api_key",      "ca_file",
                                       "connect_timeout", "timeout",      "max_response",
                                       "retry",           "integrations", NULL};
    int rc = sy_cfg_keys(w, "unizo", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (sy_cfg_field(w->L, "base_url")) {
        TRY(sy_cfg_string(w, "unizo.base_url", &cfg->unizo.base_url));
        size_t n = strlen(cfg->unizo.base_url);
        while (n > 0 && cfg->unizo.base_url[n - 1] == '/') {
            cfg->unizo.base_url[--n] = '\0';
        }
        if (strncmp(cfg->unizo.base_url, "http://", 7) != 0 &&
            strncmp(cfg->unizo.base_url, "https://", 8) != 0) {
            return sy_cfg_fail(w, "base_url",
                               "'unizo.base_url' must start with https:// or http://");
        }
    }
    if (sy_cfg_field(w->L, "api_key")) {
        TRY(sy_cfg_string(w, "unizo.api_key", &cfg->unizo.api_key));
        if (cfg->unizo.api_key[0] == '\0') {
            free(cfg->unizo.api_key);
            cfg->unizo.api_key = NULL;
        }
    }
    if (sy_cfg_field(w->L, "ca_file")) {
        TRY(sy_cfg_string(w, "unizo.ca_file", &cfg->unizo.ca_file));
        char *abs = sy_config_resolve(cfg, cfg->unizo.ca_file);
        free(cfg->unizo.ca_file);
        cfg->unizo.ca_file = abs;
    }
    if (sy_cfg_field(w->L, "connect_timeout")) {
        TRY(sy_cfg_unit(w, "unizo.connect_timeout", sy_parse_duration_ms, 1000, "5s",
                        &cfg->unizo.connect_timeout_ms));
    }
    if (sy_cfg_field(w->L, "timeout")) {
        TRY(sy_cfg_unit(w, "unizo.timeout", sy_parse_duration_ms, 1000, "30s",
                        &cfg->unizo.timeout_ms));
    }
    if (sy_cfg_field(w->L, "max_response")) {
        TRY(sy_cfg_unit(w, "unizo.max_response", sy_parse_size, 1, "8MiB",
                        &cfg->unizo.max_response));
    }
    if (sy_cfg_field(w->L, "retry")) {
        static const char *const rkeys[] = {"attempts", "base", "cap", NULL};
        rc = sy_cfg_keys(w, "unizo.retry", rkeys);
        int64_t n;
        if (rc == SY_OK && sy_cfg_field(w->L, "attempts")) {
            rc = sy_cfg_int(w, "unizo.retry.attempts", 1, 20, &n);
            cfg->unizo.attempts = (int)n;
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && sy_cfg_field(w->L, "base")) {
            rc = sy_cfg_unit(w, "unizo.retry.base", sy_parse_duration_ms, 1000, "500ms",
                             &cfg->unizo.backoff_base_ms);
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && sy_cfg_field(w->L, "cap")) {
            rc = sy_cfg_unit(w, "unizo.retry.cap", sy_parse_duration_ms, 1000, "30s",
                             &cfg->unizo.backoff_cap_ms);
            lua_pop(w->L, 1);
        }
        lua_pop(w->L, 1);
        if (rc != SY_OK) {
            return rc;
        }
    }
    if (sy_cfg_field(w->L, "integrations")) {
        TRY(walk_integrations(w, cfg));
    }
    return SY_OK;
}

/*
 * plugins = { name = { config = {...} }, { path = "x.so", config = {...} } }, each entry with an
 * optional integration and category filter
 */
static int walk_plugins(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    lua_State *L = w->L;
    if (lua_type(L, -1) != LUA_TTABLE) {
        return sy_cfg_fail(w, "plugins", "'plugins' must be a table");
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        bool named = lua_type(L, -2) == LUA_TSTRING;
        char path[200];
        if (named) {
            snprintf(path, sizeof(path), "plugins.%s", lua_tostring(L, -2));
        } else {
            snprintf(path, sizeof(path), "plugins[%lld]", (long long)lua_tointeger(L, -2));
        }
        static const char *const keys[] = {"path", "config", "integration", "category", NULL};
        int rc = sy_cfg_keys(w, path, keys);
        struct sy_plugin_conf *list =
            rc == SY_OK ? realloc(cfg->plugins, (cfg->n_plugins + 1) * sizeof(*list)) : NULL;
        if (list == NULL) {
            lua_pop(L, 2);
            return rc == SY_OK ? SY_ENOMEM : rc;
        }
        cfg->plugins = list;
        struct sy_plugin_conf *pc = &list[cfg->n_plugins++];
        memset(pc, 0, sizeof(*pc));
        pc->line = w->base_line;
        if (named) {
            pc->name = strdup(lua_tostring(L, -2));
        }
        if (rc == SY_OK && sy_cfg_field(L, "path")) {
            char *rel = NULL;
            rc = sy_cfg_string(w, "plugins.path", &rel);
            lua_pop(L, 1);
            if (rc == SY_OK) {
                pc->path = sy_config_resolve(cfg, rel);
            }
            free(rel);
        }
        if (rc == SY_OK && !named && pc->path == NULL) {
            rc = sy_cfg_fail(w, "plugins",
                             "'%s' needs a path = \"....so\" (or use a name = { ... } "
                             "entry for a plugin in plugin_dir)",
                             path);
        }
        if (rc == SY_OK && sy_cfg_field(L, "integration")) {
            rc = sy_cfg_string(w, "plugins.integration", &pc->integration);
            lua_pop(L, 1);
        }
        if (rc == SY_OK && sy_cfg_field(L, "category")) {
            rc = sy_cfg_string(w, "plugins.category", &pc->category);
            lua_pop(L, 1);
            if (rc == SY_OK && !sy_category_valid(pc->category, strlen(pc->category))) {
                rc = sy_cfg_fail(w, "category",
                                 "'%s.category' must be a category name like \"identity\" "
                                 "(lowercase letters, digits, '_' or '-')",
                                 path);
            }
        }
        if (rc == SY_OK && sy_cfg_field(L, "config")) {
            char err[160];
            json_t *v =
                lua_type(L, -1) == LUA_TTABLE ? sy_lua_to_json(L, -1, err, sizeof(err)) : NULL;
            lua_pop(L, 1);
            if (v == NULL || !json_is_object(v)) {
                json_decref(v);
                rc = sy_cfg_fail(w, "config", "'%s.config' must be a table of settings", path);
            } else {
                pc->config_json = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
                json_decref(v);
            }
        }
        if (rc == SY_OK && pc->config_json == NULL) {
            pc->config_json = strdup("{}");
        }
        lua_pop(L, 1);
        if (rc != SY_OK) {
            lua_pop(L, 1);
            return rc;
        }
    }
    return SY_OK;
}

static int walk_lua(struct sy_cfg_walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"instruction_limit", "memory_limit", "timeout", NULL};
    int rc = sy_cfg_keys(w, "lua", keys);
    if (rc != SY_OK) {
        return rc;
    }
    int64_t n;
    if (sy_cfg_field(w->L, "instruction_limit")) {
        TRY(sy_cfg_int(w, "lua.instruction_limit", 1000, INT64_MAX, &n));
        cfg->lua.instruction_limit = (uint64_t)n;
    }
    if (sy_cfg_field(w->L, "memory_limit")) {
        TRY(sy_cfg_unit(w, "lua.memory_limit", sy_parse_size, 1, "64MiB", &cfg->lua.memory_limit));
        if (cfg->lua.memory_limit < (UINT64_C(1) << 20)) {
            return sy_cfg_fail(w, "memory_limit", "'lua.memory_limit' must be at least 1MiB");
        }
    }
    if (sy_cfg_field(w->L, "timeout")) {
        TRY(sy_cfg_unit(w, "lua.timeout", sy_parse_duration_ms, 1000, "5s", &cfg->lua.timeout_ms));
        if (cfg->lua.timeout_ms < 10) {
            return sy_cfg_fail(w, "timeout", "'lua.timeout' must be at least 10ms");
        }
    }
    return SY_OK;
}

int sy_cfg_walk_global(struct sy_cfg_walker *w, struct sy_config *cfg, const char *key)
{
    if (strcmp(key, "workers") == 0) {
        int64_t n;
        int rc = sy_cfg_int(w, "workers", 0, 256, &n);
        cfg->workers = (int)n;
        return rc;
    }
    if (strcmp(key, "engine") == 0) {
        static const char *const keys[] = {"max_in_flight", NULL};
        int rc = sy_cfg_keys(w, "engine", keys);
        if (rc == SY_OK && sy_cfg_field(w->L, "max_in_flight")) {
            int64_t n = 0;
            rc = sy_cfg_int(w, "engine.max_in_flight", 1, 10000, &n);
            cfg->max_in_flight = (int)n;
            lua_pop(w->L, 1);
        }
        return rc;
    }
    if (strcmp(key, "shutdown_grace") == 0) {
        return sy_cfg_unit(w, "shutdown_grace", sy_parse_duration_ms, 1000, "30s",
                           &cfg->shutdown_grace_ms);
    }
    if (strcmp(key, "rules") == 0) {
        return sy_cfg_strv(w, "rules", true, &cfg->rules, &cfg->n_rules);
    }
    if (strcmp(key, "retry") == 0) {
        return walk_retry(w, cfg);
    }
    if (strcmp(key, "lua") == 0) {
        return walk_lua(w, cfg);
    }
    if (strcmp(key, "unizo") == 0) {
        return walk_unizo(w, cfg);
    }
    if (strcmp(key, "plugins") == 0) {
        return walk_plugins(w, cfg);
    }
    if (strcmp(key, "plugin_dir") == 0) {
        char *rel = NULL;
        int rc = sy_cfg_string(w, "plugin_dir", &rel);
        if (rc == SY_OK) {
            free(cfg->plugin_dir);
            cfg->plugin_dir = sy_config_resolve(cfg, rel);
        }
        free(rel);
        return rc;
    }
    if (strcmp(key, "listen") == 0) {
        int rc = sy_cfg_strv(w, "listen", true, &cfg->listen, &cfg->n_listen);
        for (size_t i = 0; rc == SY_OK && i < cfg->n_listen; i++) {
            rc = check_listen_addr(w, "listen", cfg->listen[i]);
        }
        if (rc == SY_OK && cfg->n_listen == 0) {
            rc = sy_cfg_fail(w, "listen", "'listen' needs at least one ADDRESS:PORT");
        }
        return rc;
    }
    if (strcmp(key, "http") == 0) {
        return walk_http(w, cfg);
    }
    if (strcmp(key, "admin") == 0) {
        if (lua_type(w->L, -1) == LUA_TBOOLEAN && !lua_toboolean(w->L, -1)) {
            free(cfg->admin.listen);
            cfg->admin.listen = NULL;
            return SY_OK;
        }
        return walk_admin(w, cfg);
    }
    if (strcmp(key, "webhook") == 0) {
        return walk_webhook(w, cfg);
    }
    if (strcmp(key, "store") == 0) {
        return walk_store(w, cfg);
    }
    if (strcmp(key, "dedupe_retention") == 0) {
        int rc = sy_cfg_unit(w, "dedupe_retention", sy_parse_duration_ms, 1000, "7d",
                             &cfg->dedupe_retention_ms);
        if (rc == SY_OK && cfg->dedupe_retention_ms < 1000) {
            rc = sy_cfg_fail(w, key, "'dedupe_retention' must be at least 1s");
        }
        return rc;
    }
    if (strcmp(key, "log") == 0) {
        return walk_log(w, cfg);
    }
    return sy_cfg_fail(
        w, NULL,
        "unknown key '%s' (known: listen, http, admin, webhook, store, "
        "dedupe_retention, workers, engine, shutdown_grace, rules, retry, lua, unizo, plugin_dir, "
        "plugins, log)",
        key);
}
