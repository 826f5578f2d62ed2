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
#include "lua/json.h"
#include "util/log.h"
#include "util/parse.h"

/* State shared by the validators while walking the config tables. */
struct walker {
    lua_State *L;
    const char *file;
    char *source;  /* the file's text, to find the line of a nested key */
    int base_line; /* line of the top-level assignment being walked */
    struct sy_error *err;
};

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

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
    cfg->http.max_connections = 10000;
    cfg->admin.listen = strdup("127.0.0.1:9091");
    cfg->webhook.path = strdup("/webhooks/unizo");
    cfg->webhook.tolerance_s = 300;
    cfg->webhook.max_body = 1 << 20;
    cfg->store.url = strdup("sqlite:var/switchyard.db");
    cfg->store.synchronous = SY_SYNC_FULL;
    cfg->store.queue = 16384;
    cfg->store.max_batch = 1024;
    cfg->store.prefix = strdup("switchyard:");
    cfg->store.visibility_ms = 600000;
    cfg->dedupe_retention_ms = UINT64_C(7) * 86400 * 1000;
    cfg->log.level = SY_LOG_INFO;
    cfg->log.json = false;
    cfg->workers = 4;
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
    free_strv(cfg->listen, cfg->n_listen);
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
    free_strv(cfg->webhook.secrets, cfg->webhook.n_secrets);
    free(cfg->webhook.allow);
    free(cfg->webhook.trusted_proxies);
    free(cfg->store.url);
    free(cfg->store.prefix);
    free(cfg->store.instance);
    free_strv(cfg->rules, cfg->n_rules);
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

/* ---- locating keys ---- */

/*
 * Lua reports an assignment at the line where its value ends; a table
 * constructor can span many lines. Find the line where "key =" starts it:
 * the last line at or before 'end_line' that begins with the key.
 */
static int statement_line(const char *source, const char *key, int end_line)
{
    int found = end_line, line = 1;
    size_t klen = strlen(key);
    for (const char *p = source; *p && line <= end_line; line++) {
        const char *q = p;
        while (*q == ' ' || *q == '\t') {
            q++;
        }
        if (strncmp(q, key, klen) == 0) {
            q += klen;
            while (*q == ' ' || *q == '\t') {
                q++;
            }
            if (*q == '=' && q[1] != '=') {
                found = line;
            }
        }
        p = strchr(p, '\n');
        if (p == NULL) {
            break;
        }
        p++;
    }
    return found;
}

/* Line of the first "key =" at or after the statement's line, or that line when not found. */
static int find_key_line(const struct walker *w, const char *key)
{
    if (w->source == NULL) {
        return w->base_line;
    }
    int line = 1;
    const char *p = w->source;
    size_t klen = strlen(key);
    while (*p && line < w->base_line) {
        if (*p++ == '\n') {
            line++;
        }
    }
    for (; *p; p++) {
        if (*p == '\n') {
            line++;
            continue;
        }
        bool boundary = p == w->source || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        if (boundary && strncmp(p, key, klen) == 0 &&
            !(isalnum((unsigned char)p[klen]) || p[klen] == '_')) {
            const char *q = p + klen;
            while (*q == ' ' || *q == '\t' || *q == ']' || *q == '"' || *q == '\'') {
                q++;
            }
            if (*q == '=' && q[1] != '=') {
                return line;
            }
        }
    }
    return w->base_line;
}

static int fail_at(struct walker *w, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct walker *w, const char *key, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = key ? find_key_line(w, key) : w->base_line;
    return sy_error_set(w->err, w->file, line, "%s", msg);
}

/* Last path segment, used to find the key's line in the source. */
static const char *leaf(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* ---- typed readers: the value is on top of the stack ---- */

static int read_string(struct walker *w, const char *path, char **out)
{
    if (lua_type(w->L, -1) != LUA_TSTRING) {
        return fail_at(w, leaf(path), "'%s' must be a string, got %s", path,
                       luaL_typename(w->L, -1));
    }
    size_t len;
    const char *s = lua_tolstring(w->L, -1, &len);
    if (strlen(s) != len) {
        return fail_at(w, leaf(path), "'%s' contains a NUL byte", path);
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return SY_ENOMEM;
    }
    free(*out);
    *out = copy;
    return SY_OK;
}

static int read_bool(struct walker *w, const char *path, bool *out)
{
    if (lua_type(w->L, -1) != LUA_TBOOLEAN) {
        return fail_at(w, leaf(path), "'%s' must be true or false, got %s", path,
                       luaL_typename(w->L, -1));
    }
    *out = lua_toboolean(w->L, -1);
    return SY_OK;
}

static int read_int(struct walker *w, const char *path, int64_t min, int64_t max, int64_t *out)
{
    int isnum = 0;
    lua_Integer v = lua_tointegerx(w->L, -1, &isnum);
    if (lua_type(w->L, -1) != LUA_TNUMBER || !isnum) {
        return fail_at(w, leaf(path), "'%s' must be a whole number, got %s", path,
                       luaL_typename(w->L, -1));
    }
    if (v < min || v > max) {
        return fail_at(w, leaf(path), "'%s' must be between %lld and %lld, got %lld", path,
                       (long long)min, (long long)max, (long long)v);
    }
    *out = v;
    return SY_OK;
}

/* A number of 'plain' units or a string with a unit, through 'parse'. */
static int read_unit(struct walker *w, const char *path, bool (*parse)(const char *, uint64_t *),
                     uint64_t plain_factor, const char *example, uint64_t *out)
{
    int t = lua_type(w->L, -1);
    if (t == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(w->L, -1);
        if (n < 0 || n > 9.0e15) {
            return fail_at(w, leaf(path), "'%s' is out of range", path);
        }
        *out = (uint64_t)(n * (lua_Number)plain_factor);
        return SY_OK;
    }
    if (t == LUA_TSTRING && parse(lua_tostring(w->L, -1), out)) {
        return SY_OK;
    }
    return fail_at(w, leaf(path), "'%s' must be a number or a string like \"%s\", got %s%s%s%s",
                   path, example, luaL_typename(w->L, -1), t == LUA_TSTRING ? " \"" : "",
                   t == LUA_TSTRING ? lua_tostring(w->L, -1) : "", t == LUA_TSTRING ? "\"" : "");
}

/* A string or a list of strings. */
static int read_strv(struct walker *w, const char *path, bool allow_single, char ***out, size_t *n)
{
    lua_State *L = w->L;
    if (allow_single && lua_type(L, -1) == LUA_TSTRING) {
        char **v = calloc(1, sizeof(char *));
        if (v == NULL || (v[0] = strdup(lua_tostring(L, -1))) == NULL) {
            free(v);
            return SY_ENOMEM;
        }
        free_strv(*out, *n);
        *out = v;
        *n = 1;
        return SY_OK;
    }
    if (lua_type(L, -1) != LUA_TTABLE) {
        return fail_at(w, leaf(path), "'%s' must be a list of strings, got %s", path,
                       luaL_typename(L, -1));
    }
    /* collect by numeric key, skipping holes left by env() values that are unset */
    lua_Integer max = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        int isint = 0;
        lua_Integer k = lua_tointegerx(L, -2, &isint);
        if (lua_type(L, -2) != LUA_TNUMBER || !isint || k < 1 || k > 4096) {
            lua_pop(L, 2);
            return fail_at(w, leaf(path), "'%s' must be a list, not a table with named keys", path);
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            int rc = fail_at(w, leaf(path), "'%s[%lld]' must be a string, got %s", path,
                             (long long)k, luaL_typename(L, -1));
            lua_pop(L, 2);
            return rc;
        }
        if (k > max) {
            max = k;
        }
        lua_pop(L, 1);
    }
    char **v = calloc((size_t)max + 1, sizeof(char *));
    if (v == NULL) {
        return SY_ENOMEM;
    }
    size_t count = 0;
    for (lua_Integer i = 1; i <= max; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) == LUA_TSTRING) {
            v[count] = strdup(lua_tostring(L, -1));
            if (v[count++] == NULL) {
                lua_pop(L, 1);
                free_strv(v, count);
                return SY_ENOMEM;
            }
        }
        lua_pop(L, 1);
    }
    free_strv(*out, *n);
    *out = v;
    *n = count;
    return SY_OK;
}

static int read_cidrs(struct walker *w, const char *path, struct sy_cidr **out, size_t *n)
{
    char **v = NULL;
    size_t count = 0;
    int rc = read_strv(w, path, false, &v, &count);
    if (rc != SY_OK) {
        return rc;
    }
    struct sy_cidr *list = calloc(count ? count : 1, sizeof(*list));
    if (list == NULL) {
        free_strv(v, count);
        return SY_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (!sy_cidr_parse(v[i], &list[i])) {
            rc = fail_at(w, leaf(path),
                         "'%s': \"%s\" is not an address or CIDR range (like 10.0.0.0/8 or "
                         "2001:db8::/32)",
                         path, v[i]);
            free(list);
            free_strv(v, count);
            return rc;
        }
    }
    free_strv(v, count);
    free(*out);
    *out = list;
    *n = count;
    return SY_OK;
}

/*
 * Check that every key of the table on top of the stack is in 'known'
 * (NULL-terminated) and is a string.
 */
static int check_keys(struct walker *w, const char *path, const char *const *known)
{
    lua_State *L = w->L;
    if (lua_type(L, -1) != LUA_TTABLE) {
        return fail_at(w, leaf(path), "'%s' must be a table, got %s", path, luaL_typename(L, -1));
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return fail_at(w, leaf(path), "'%s' has a key that is not a name", path);
        }
        const char *k = lua_tostring(L, -1);
        bool found = false;
        for (const char *const *p = known; *p; p++) {
            if (strcmp(*p, k) == 0) {
                found = true;
            }
        }
        if (!found) {
            char list[256] = "";
            size_t off = 0;
            for (const char *const *p = known; *p && off < sizeof(list); p++) {
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
                                        p == known ? "" : ", ", *p);
            }
            int rc = fail_at(w, k, "unknown key '%s.%s' (known: %s)", path, k, list);
            lua_pop(L, 1);
            return rc;
        }
    }
    return SY_OK;
}

/* Push t[key] (t on top); returns false (and pushes nothing) when nil. */
/* One of 'choices' (a NULL-ended list of strings) into *out as its index. */
static int read_choice(struct walker *w, const char *path, const char *const *choices, int *out)
{
    const char *s = lua_type(w->L, -1) == LUA_TSTRING ? lua_tostring(w->L, -1) : NULL;
    for (int i = 0; s != NULL && choices[i] != NULL; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return SY_OK;
        }
    }
    char list[200] = "";
    for (int i = 0; choices[i] != NULL; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s\"%s\"", i == 0 ? "" : choices[i + 1] ? ", " : " or ",
                 choices[i]);
    }
    return fail_at(w, leaf(path), "'%s' must be %s, got %s%s%s", path, list, s ? "\"" : "",
                   s ? s : luaL_typename(w->L, -1), s ? "\"" : "");
}

static bool field(lua_State *L, const char *key)
{
    lua_getfield(L, -1, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != SY_OK) {                                                                        \
            lua_pop(w->L, 1);                                                                      \
            return rc_;                                                                            \
        }                                                                                          \
        lua_pop(w->L, 1);                                                                          \
    } while (0)

static int check_listen_addr(struct walker *w, const char *path, const char *addr)
{
    char host[256];
    unsigned port;
    if (!sy_split_hostport(addr, host, sizeof(host), &port)) {
        return fail_at(w, leaf(path),
                       "'%s': \"%s\" is not ADDRESS:PORT (like 0.0.0.0:8080 or [::]:8080)", path,
                       addr);
    }
    return SY_OK;
}

static int walk_http(struct walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"threads",      "http2",           "tls",
                                       "idle_timeout", "request_timeout", "max_connections", NULL};
    int rc = check_keys(w, "http", keys);
    if (rc != SY_OK) {
        return rc;
    }
    int64_t n;
    if (field(w->L, "threads")) {
        TRY(read_int(w, "http.threads", 1, 256, &n));
        cfg->http.threads = (int)n;
    }
    if (field(w->L, "http2")) {
        TRY(read_bool(w, "http.http2", &cfg->http.http2));
    }
    if (field(w->L, "max_connections")) {
        TRY(read_int(w, "http.max_connections", 1, 1000000, &n));
        cfg->http.max_connections = (int)n;
    }
    if (field(w->L, "idle_timeout")) {
        TRY(read_unit(w, "http.idle_timeout", sy_parse_duration_ms, 1000, "60s",
                      &cfg->http.idle_timeout_ms));
    }
    if (field(w->L, "request_timeout")) {
        TRY(read_unit(w, "http.request_timeout", sy_parse_duration_ms, 1000, "10s",
                      &cfg->http.request_timeout_ms));
    }
    if (field(w->L, "tls")) {
        static const char *const tkeys[] = {"cert", "key", NULL};
        rc = check_keys(w, "http.tls", tkeys);
        if (rc == SY_OK && field(w->L, "cert")) {
            rc = read_string(w, "http.tls.cert", &cfg->http.tls_cert);
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && field(w->L, "key")) {
            rc = read_string(w, "http.tls.key", &cfg->http.tls_key);
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && (cfg->http.tls_cert == NULL) != (cfg->http.tls_key == NULL)) {
            rc = fail_at(w, "tls", "'http.tls' needs both 'cert' and 'key' (PEM files)");
        }
        lua_pop(w->L, 1);
        if (rc != SY_OK) {
            return rc;
        }
    }
    return SY_OK;
}

static int walk_admin(struct walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"listen", "token", NULL};
    int rc = check_keys(w, "admin", keys);
    if (rc != SY_OK) {
        return rc;
    }
    lua_getfield(w->L, -1, "listen");
    if (lua_type(w->L, -1) == LUA_TBOOLEAN && !lua_toboolean(w->L, -1)) {
        free(cfg->admin.listen);
        cfg->admin.listen = NULL;
        lua_pop(w->L, 1);
    } else if (!lua_isnil(w->L, -1)) {
        TRY(read_string(w, "admin.listen", &cfg->admin.listen));
        rc = check_listen_addr(w, "admin.listen", cfg->admin.listen);
        if (rc != SY_OK) {
            return rc;
        }
    } else {
        lua_pop(w->L, 1);
    }
    if (field(w->L, "token")) {
        TRY(read_string(w, "admin.token", &cfg->admin.token));
        if (cfg->admin.token[0] == '\0') {
            free(cfg->admin.token);
            cfg->admin.token = NULL;
        }
    }
    return SY_OK;
}

static int walk_webhook(struct walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"path",           "secrets",  "tolerance",
                                       "max_body",       "allow",    "trusted_proxies",
                                       "signed_payload", "on_invalid", NULL};
    int rc = check_keys(w, "webhook", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (field(w->L, "path")) {
        TRY(read_string(w, "webhook.path", &cfg->webhook.path));
        if (cfg->webhook.path[0] != '/') {
            return fail_at(w, "path", "'webhook.path' must start with '/', got \"%s\"",
                           cfg->webhook.path);
        }
    }
    if (field(w->L, "secrets")) {
        TRY(read_strv(w, "webhook.secrets", true, &cfg->webhook.secrets, &cfg->webhook.n_secrets));
        for (size_t i = 0; i < cfg->webhook.n_secrets; i++) {
            if (cfg->webhook.secrets[i][0] == '\0') {
                return fail_at(w, "secrets", "'webhook.secrets' contains an empty secret");
            }
        }
    }
    if (field(w->L, "tolerance")) {
        uint64_t ms;
        TRY(read_unit(w, "webhook.tolerance", sy_parse_duration_ms, 1000, "300s", &ms));
        if (ms < 1000 || ms > UINT64_C(86400) * 1000) {
            return fail_at(w, "tolerance", "'webhook.tolerance' must be between 1s and 1d");
        }
        cfg->webhook.tolerance_s = (int64_t)(ms / 1000);
    }
    if (field(w->L, "max_body")) {
        TRY(read_unit(w, "webhook.max_body", sy_parse_size, 1, "1MiB", &cfg->webhook.max_body));
        if (cfg->webhook.max_body < 64 || cfg->webhook.max_body > (UINT64_C(256) << 20)) {
            return fail_at(w, "max_body", "'webhook.max_body' must be between 64B and 256MiB");
        }
    }
    if (field(w->L, "allow")) {
        TRY(read_cidrs(w, "webhook.allow", &cfg->webhook.allow, &cfg->webhook.n_allow));
    }
    if (field(w->L, "trusted_proxies")) {
        TRY(read_cidrs(w, "webhook.trusted_proxies", &cfg->webhook.trusted_proxies,
                       &cfg->webhook.n_trusted_proxies));
    }
    static const char *const payloads[] = {[SY_SIGNED_TS_BODY] = "timestamp.body",
                                           [SY_SIGNED_BODY] = "body",
                                           [SY_SIGNED_EITHER] = "either", NULL};
    if (field(w->L, "signed_payload")) {
        int v = 0;
        TRY(read_choice(w, "webhook.signed_payload", payloads, &v));
        cfg->webhook.signed_payload = (enum sy_signed_payload)v;
    }
    static const char *const invalid[] = {"quarantine", "reject", NULL};
    if (field(w->L, "on_invalid")) {
        int v = 0;
        TRY(read_choice(w, "webhook.on_invalid", invalid, &v));
        cfg->webhook.reject_invalid = v == 1;
    }
    return SY_OK;
}

static int check_store_url(struct walker *w, struct sy_config *cfg)
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
    return fail_at(w, "store", "'store' must be \"sqlite:PATH\" or \"redis://HOST:PORT/DB\", got \"%s\"", u);
}

static int walk_store(struct walker *w, struct sy_config *cfg)
{
    if (lua_type(w->L, -1) == LUA_TSTRING) {
        int rc = read_string(w, "store", &cfg->store.url);
        return rc == SY_OK ? check_store_url(w, cfg) : rc;
    }
    static const char *const keys[] = {"url",    "synchronous", "queue",      "max_batch",
                                       "prefix", "instance",    "visibility", NULL};
    int rc = check_keys(w, "store", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (field(w->L, "url")) {
        TRY(read_string(w, "store.url", &cfg->store.url));
    }
    if (field(w->L, "synchronous")) {
        char *mode = NULL;
        rc = read_string(w, "store.synchronous", &mode);
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
            rc = fail_at(w, "synchronous",
                         "'store.synchronous' must be \"full\", \"normal\" or \"off\", got \"%s\"",
                         mode);
        }
        free(mode);
        if (rc != SY_OK) {
            return rc;
        }
    }
    int64_t n;
    if (field(w->L, "queue")) {
        TRY(read_int(w, "store.queue", 1, 10000000, &n));
        cfg->store.queue = (size_t)n;
    }
    if (field(w->L, "max_batch")) {
        TRY(read_int(w, "store.max_batch", 1, 100000, &n));
        cfg->store.max_batch = (size_t)n;
    }
    if (field(w->L, "prefix")) {
        TRY(read_string(w, "store.prefix", &cfg->store.prefix));
    }
    if (field(w->L, "instance")) {
        TRY(read_string(w, "store.instance", &cfg->store.instance));
    }
    if (field(w->L, "visibility")) {
        TRY(read_unit(w, "store.visibility", sy_parse_duration_ms, 1000, "10m",
                      &cfg->store.visibility_ms));
    }
    return check_store_url(w, cfg);
}

static int walk_log(struct walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"level", "format", NULL};
    int rc = check_keys(w, "log", keys);
    if (rc != SY_OK) {
        return rc;
    }
    char *s = NULL;
    if (field(w->L, "level")) {
        rc = read_string(w, "log.level", &s);
        lua_pop(w->L, 1);
        if (rc == SY_OK) {
            int lv = sy_log_level_parse(s);
            if (lv < 0) {
                rc = fail_at(w, "level",
                             "'log.level' must be \"debug\", \"info\", \"warn\" or \"error\", "
                             "got \"%s\"",
                             s);
            }
            cfg->log.level = lv;
        }
    }
    if (rc == SY_OK && field(w->L, "format")) {
        rc = read_string(w, "log.format", &s);
        lua_pop(w->L, 1);
        if (rc == SY_OK) {
            if (strcmp(s, "json") == 0 || strcmp(s, "text") == 0) {
                cfg->log.json = strcmp(s, "json") == 0;
            } else {
                rc = fail_at(w, "format", "'log.format' must be \"json\" or \"text\", got \"%s\"",
                             s);
            }
        }
    }
    free(s);
    return rc;
}

static int walk_retry(struct walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"schedule", "jitter", NULL};
    int rc = check_keys(w, "retry", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (field(w->L, "schedule")) {
        lua_State *L = w->L;
        if (lua_type(L, -1) != LUA_TTABLE) {
            rc = fail_at(w, "schedule",
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
            rc = read_unit(w, "retry.schedule", sy_parse_duration_ms, 1000, "5m", &v[i]);
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
    if (field(w->L, "jitter")) {
        if (lua_type(w->L, -1) != LUA_TNUMBER || lua_tonumber(w->L, -1) < 0 ||
            lua_tonumber(w->L, -1) > 1) {
            lua_pop(w->L, 1);
            return fail_at(w, "jitter", "'retry.jitter' must be a number from 0 to 1");
        }
        cfg->retry.jitter = lua_tonumber(w->L, -1);
        lua_pop(w->L, 1);
    }
    return SY_OK;
}

static int walk_integrations(struct walker *w, struct sy_config *cfg)
{
    lua_State *L = w->L;
    if (lua_type(L, -1) != LUA_TTABLE) {
        return fail_at(w, "integrations", "'unizo.integrations' must be a table of name = { ... }");
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return fail_at(w, "integrations", "'unizo.integrations' keys must be names");
        }
        const char *name = lua_tostring(L, -2);
        char path[160];
        snprintf(path, sizeof(path), "unizo.integrations.%s", name);
        static const char *const keys[] = {"id", "organization", "collection", NULL};
        int rc = check_keys(w, path, keys);
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
            if (field(L, fields[i])) {
                char fp[200];
                snprintf(fp, sizeof(fp), "%s.%s", path, fields[i]);
                rc = read_string(w, fp, dst[i]);
                lua_pop(L, 1);
            }
        }
        if (rc == SY_OK && in->id == NULL) {
            in->id = strdup(name);
        }
        lua_pop(L, 1);
        if (rc != SY_OK) {
            lua_pop(L, 1);
            return rc;
        }
    }
    return SY_OK;
}

static int walk_unizo(struct walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"base_url",        "api_key",      "ca_file",
                                       "connect_timeout", "timeout",      "max_response",
                                       "retry",           "integrations", NULL};
    int rc = check_keys(w, "unizo", keys);
    if (rc != SY_OK) {
        return rc;
    }
    if (field(w->L, "base_url")) {
        TRY(read_string(w, "unizo.base_url", &cfg->unizo.base_url));
        size_t n = strlen(cfg->unizo.base_url);
        while (n > 0 && cfg->unizo.base_url[n - 1] == '/') {
            cfg->unizo.base_url[--n] = '\0';
        }
        if (strncmp(cfg->unizo.base_url, "http://", 7) != 0 &&
            strncmp(cfg->unizo.base_url, "https://", 8) != 0) {
            return fail_at(w, "base_url", "'unizo.base_url' must start with https:// or http://");
        }
    }
    if (field(w->L, "api_key")) {
        TRY(read_string(w, "unizo.api_key", &cfg->unizo.api_key));
        if (cfg->unizo.api_key[0] == '\0') {
            free(cfg->unizo.api_key);
            cfg->unizo.api_key = NULL;
        }
    }
    if (field(w->L, "ca_file")) {
        TRY(read_string(w, "unizo.ca_file", &cfg->unizo.ca_file));
        char *abs = sy_config_resolve(cfg, cfg->unizo.ca_file);
        free(cfg->unizo.ca_file);
        cfg->unizo.ca_file = abs;
    }
    if (field(w->L, "connect_timeout")) {
        TRY(read_unit(w, "unizo.connect_timeout", sy_parse_duration_ms, 1000, "5s",
                      &cfg->unizo.connect_timeout_ms));
    }
    if (field(w->L, "timeout")) {
        TRY(read_unit(w, "unizo.timeout", sy_parse_duration_ms, 1000, "30s",
                      &cfg->unizo.timeout_ms));
    }
    if (field(w->L, "max_response")) {
        TRY(read_unit(w, "unizo.max_response", sy_parse_size, 1, "8MiB", &cfg->unizo.max_response));
    }
    if (field(w->L, "retry")) {
        static const char *const rkeys[] = {"attempts", "base", "cap", NULL};
        rc = check_keys(w, "unizo.retry", rkeys);
        int64_t n;
        if (rc == SY_OK && field(w->L, "attempts")) {
            rc = read_int(w, "unizo.retry.attempts", 1, 20, &n);
            cfg->unizo.attempts = (int)n;
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && field(w->L, "base")) {
            rc = read_unit(w, "unizo.retry.base", sy_parse_duration_ms, 1000, "500ms",
                           &cfg->unizo.backoff_base_ms);
            lua_pop(w->L, 1);
        }
        if (rc == SY_OK && field(w->L, "cap")) {
            rc = read_unit(w, "unizo.retry.cap", sy_parse_duration_ms, 1000, "30s",
                           &cfg->unizo.backoff_cap_ms);
            lua_pop(w->L, 1);
        }
        lua_pop(w->L, 1);
        if (rc != SY_OK) {
            return rc;
        }
    }
    if (field(w->L, "integrations")) {
        TRY(walk_integrations(w, cfg));
    }
    return SY_OK;
}

/* plugins = { name = { config = {...} }, { path = "x.so", config = {...} } } */
static int walk_plugins(struct walker *w, struct sy_config *cfg)
{
    lua_State *L = w->L;
    if (lua_type(L, -1) != LUA_TTABLE) {
        return fail_at(w, "plugins", "'plugins' must be a table");
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
        static const char *const keys[] = {"path", "config", NULL};
        int rc = check_keys(w, path, keys);
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
        if (rc == SY_OK && field(L, "path")) {
            char *rel = NULL;
            rc = read_string(w, "plugins.path", &rel);
            lua_pop(L, 1);
            if (rc == SY_OK) {
                pc->path = sy_config_resolve(cfg, rel);
            }
            free(rel);
        }
        if (rc == SY_OK && !named && pc->path == NULL) {
            rc = fail_at(w, "plugins", "'%s' needs a path = \"....so\" (or use a name = { ... } "
                                       "entry for a plugin in plugin_dir)", path);
        }
        if (rc == SY_OK && field(L, "config")) {
            char err[160];
            json_t *v = lua_type(L, -1) == LUA_TTABLE ? sy_lua_to_json(L, -1, err, sizeof(err)) : NULL;
            lua_pop(L, 1);
            if (v == NULL || !json_is_object(v)) {
                json_decref(v);
                rc = fail_at(w, "config", "'%s.config' must be a table of settings", path);
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

static int walk_lua(struct walker *w, struct sy_config *cfg)
{
    static const char *const keys[] = {"instruction_limit", "memory_limit", NULL};
    int rc = check_keys(w, "lua", keys);
    if (rc != SY_OK) {
        return rc;
    }
    int64_t n;
    if (field(w->L, "instruction_limit")) {
        TRY(read_int(w, "lua.instruction_limit", 1000, INT64_MAX, &n));
        cfg->lua.instruction_limit = (uint64_t)n;
    }
    if (field(w->L, "memory_limit")) {
        TRY(read_unit(w, "lua.memory_limit", sy_parse_size, 1, "64MiB", &cfg->lua.memory_limit));
        if (cfg->lua.memory_limit < (UINT64_C(1) << 20)) {
            return fail_at(w, "memory_limit", "'lua.memory_limit' must be at least 1MiB");
        }
    }
    return SY_OK;
}

static int walk_global(struct walker *w, struct sy_config *cfg, const char *key)
{
    if (strcmp(key, "workers") == 0) {
        int64_t n;
        int rc = read_int(w, "workers", 0, 256, &n);
        cfg->workers = (int)n;
        return rc;
    }
    if (strcmp(key, "shutdown_grace") == 0) {
        return read_unit(w, "shutdown_grace", sy_parse_duration_ms, 1000, "30s",
                         &cfg->shutdown_grace_ms);
    }
    if (strcmp(key, "rules") == 0) {
        return read_strv(w, "rules", true, &cfg->rules, &cfg->n_rules);
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
        int rc = read_string(w, "plugin_dir", &rel);
        if (rc == SY_OK) {
            free(cfg->plugin_dir);
            cfg->plugin_dir = sy_config_resolve(cfg, rel);
        }
        free(rel);
        return rc;
    }
    if (strcmp(key, "listen") == 0) {
        int rc = read_strv(w, "listen", true, &cfg->listen, &cfg->n_listen);
        for (size_t i = 0; rc == SY_OK && i < cfg->n_listen; i++) {
            rc = check_listen_addr(w, "listen", cfg->listen[i]);
        }
        if (rc == SY_OK && cfg->n_listen == 0) {
            rc = fail_at(w, "listen", "'listen' needs at least one ADDRESS:PORT");
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
        int rc = read_unit(w, "dedupe_retention", sy_parse_duration_ms, 1000, "7d",
                           &cfg->dedupe_retention_ms);
        if (rc == SY_OK && cfg->dedupe_retention_ms < 1000) {
            rc = fail_at(w, key, "'dedupe_retention' must be at least 1s");
        }
        return rc;
    }
    if (strcmp(key, "log") == 0) {
        return walk_log(w, cfg);
    }
    return fail_at(w, NULL,
                   "unknown key '%s' (known: listen, http, admin, webhook, store, "
                   "dedupe_retention, workers, shutdown_grace, rules, retry, lua, unizo, plugin_dir, "
                   "plugins, log)",
                   key);
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
    struct walker w = {.file = path, .err = err};
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
                w.base_line = statement_line(w.source, key, next_line);
                lua_getglobal(L, key);
                if (!lua_isnil(L, -1)) {
                    rc = walk_global(&w, cfg, key);
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
