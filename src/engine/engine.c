#include <glob.h>

#include <jansson.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/router.h"
#include "lua/sandbox.h"
#include "metrics.h"
#include "plugin/plugins.h"
#include "unizo/client.h"
#include "util/clock.h"
#include "util/log.h"

/*
 * One compiled generation of the rule files. Immutable once published; old
 * generations are kept until the engine is freed, because the store's
 * writer may still hold handler names it borrowed from one.
 */
struct ruleset {
    struct ruleset *older;
    unsigned generation;
    char **files;   /* absolute paths, in load order */
    char **display; /* the same, as shown in messages */
    size_t n_files;
    struct sy_lua *probe; /* owns the rule descriptions */
    const struct sy_lua_rule *rules;
    size_t n_rules;
    struct sy_route *routes; /* parallel to rules */
};

struct worker {
    struct sy_engine *eng;
    pthread_t tid;
    int index;
    struct sy_unizo *unizo; /* this worker's Unizo client */
};

struct sy_engine {
    const struct sy_config *cfg;
    struct sy_store *store;
    struct sy_loaded_plugin *plugins; /* loaded at start; not reloaded */
    size_t n_plugins;
    struct ruleset *current; /* atomic pointer */
    pthread_mutex_t reload_mu;
    struct worker *workers;
    size_t n_workers;
    int stop; /* atomic */
};

static void ruleset_free(struct ruleset *rs)
{
    while (rs != NULL) {
        struct ruleset *older = rs->older;
        for (size_t i = 0; i < rs->n_files; i++) {
            free(rs->files[i]);
            free(rs->display[i]);
        }
        free(rs->files);
        free(rs->display);
        free(rs->routes);
        sy_lua_free(rs->probe);
        free(rs);
        rs = older;
    }
}

static struct sy_lua_limits limits_of(const struct sy_config *cfg)
{
    struct sy_lua_limits lim = {.instructions = cfg->lua.instruction_limit,
                                .memory = (size_t)cfg->lua.memory_limit};
    return lim;
}

/* Add every file matching 'pattern' (sorted; *_test.lua excluded) to the set. */
static int expand(const struct sy_config *cfg, const char *pattern, struct ruleset *rs,
                  struct sy_error *err)
{
    char *abs = sy_config_resolve(cfg, pattern);
    if (abs == NULL) {
        return SY_ENOMEM;
    }
    glob_t g;
    int grc = glob(abs, 0, NULL, &g);
    bool wildcard = strpbrk(pattern, "*?[") != NULL;
    int rc = SY_OK;
    if (grc == GLOB_NOMATCH) {
        if (!wildcard) {
            rc = sy_error_set(err, cfg->path, 0, "rule file %s does not exist", abs);
        }
        free(abs);
        return rc;
    }
    if (grc != 0) {
        free(abs);
        return sy_error_set(err, cfg->path, 0, "cannot list rule files %s", pattern);
    }
    size_t dirlen = strlen(cfg->dir);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        size_t len = strlen(p);
        if (len >= 9 && strcmp(p + len - 9, "_test.lua") == 0) {
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < rs->n_files; k++) {
            dup = dup || strcmp(rs->files[k], p) == 0;
        }
        if (dup) {
            continue;
        }
        char **f = realloc(rs->files, (rs->n_files + 1) * sizeof(*f));
        char **d = f ? realloc(rs->display, (rs->n_files + 1) * sizeof(*d)) : NULL;
        if (f) {
            rs->files = f;
        }
        if (d == NULL) {
            rc = SY_ENOMEM;
            break;
        }
        rs->display = d;
        bool inside = strncmp(p, cfg->dir, dirlen) == 0 && p[dirlen] == '/';
        rs->files[rs->n_files] = strdup(p);
        rs->display[rs->n_files] = strdup(inside ? p + dirlen + 1 : p);
        rs->n_files++;
    }
    globfree(&g);
    free(abs);
    return rc;
}

int sy_rule_files(const struct sy_config *cfg, char ***files, char ***display, size_t *n,
                  struct sy_error *err)
{
    struct ruleset tmp = {0};
    int rc = SY_OK;
    for (size_t i = 0; rc == SY_OK && i < cfg->n_rules; i++) {
        rc = expand(cfg, cfg->rules[i], &tmp, err);
    }
    if (rc != SY_OK) {
        sy_rule_files_free(tmp.files, tmp.display, tmp.n_files);
        return rc;
    }
    *files = tmp.files;
    *display = tmp.display;
    *n = tmp.n_files;
    return SY_OK;
}

void sy_rule_files_free(char **files, char **display, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i]);
        free(display[i]);
    }
    free(files);
    free(display);
}

/* While rule files load, 'unizo' exists but refuses calls. */
static int probe_unizo_call(void *ctx, const struct sy_unizo_request *req,
                            struct sy_unizo_response *resp)
{
    (void)ctx;
    (void)req;
    memset(resp, 0, sizeof(*resp));
    snprintf(resp->error, sizeof(resp->error), "Unizo calls are not allowed while rules load");
    return SY_EUNAVAIL;
}

static void probe_unizo_defaults(void *ctx, const char *integration, const char **org,
                                 const char **collection)
{
    (void)ctx;
    (void)integration;
    *org = *collection = NULL;
}

static struct ruleset *ruleset_load(const struct sy_config *cfg, unsigned generation,
                                    struct sy_error *err)
{
    struct ruleset *rs = calloc(1, sizeof(*rs));
    if (rs == NULL) {
        return NULL;
    }
    rs->generation = generation;
    int rc = SY_OK;
    for (size_t i = 0; rc == SY_OK && i < cfg->n_rules; i++) {
        rc = expand(cfg, cfg->rules[i], rs, err);
    }
    struct sy_lua_limits lim = limits_of(cfg);
    struct sy_lua_host probe_host = {.unizo_call = probe_unizo_call,
                                     .unizo_defaults = probe_unizo_defaults};
    if (rc == SY_OK && (rs->probe = sy_lua_new(&lim, &probe_host)) == NULL) {
        rc = SY_ENOMEM;
    }
    for (size_t i = 0; rc == SY_OK && i < rs->n_files; i++) {
        rc = sy_lua_load_file(rs->probe, rs->files[i], rs->display[i], err);
    }
    if (rc == SY_OK) {
        rs->n_rules = sy_lua_rules(rs->probe, &rs->rules);
        rs->routes = calloc(rs->n_rules ? rs->n_rules : 1, sizeof(*rs->routes));
        if (rs->routes == NULL) {
            rc = SY_ENOMEM;
        }
        for (size_t i = 0; rc == SY_OK && i < rs->n_rules; i++) {
            rs->routes[i].name = rs->rules[i].name;
            rs->routes[i].on = rs->rules[i].on;
            rs->routes[i].n_on = rs->rules[i].n_on;
            rs->routes[i].integration = rs->rules[i].integration;
        }
    }
    if (rc != SY_OK) {
        if (rc == SY_ENOMEM) {
            sy_error_set(err, cfg->path, 0, "out of memory while loading rules");
        }
        ruleset_free(rs);
        return NULL;
    }
    return rs;
}

static struct ruleset *current(struct sy_engine *eng)
{
    return __atomic_load_n(&eng->current, __ATOMIC_ACQUIRE);
}

/* The store's writer asks which handlers take an event. */
static size_t route(void *ctx, const char *type, size_t type_len, const char *integration,
                    const char **names, size_t max)
{
    struct sy_engine *eng = ctx;
    struct ruleset *rs = current(eng);
    size_t n = 0;
    for (size_t i = 0; i < rs->n_rules && n < max; i++) {
        if (sy_route_matches(&rs->routes[i], type, type_len, integration)) {
            names[n++] = rs->routes[i].name;
        }
    }
    /* plugins after the rules, in load order */
    for (size_t i = 0; i < eng->n_plugins && n < max; i++) {
        const struct sy_plugin *d = eng->plugins[i].desc;
        for (size_t k = 0; k < eng->plugins[i].n_events; k++) {
            if (sy_pattern_match(d->events[k], type, type_len)) {
                names[n++] = d->name;
                break;
            }
        }
    }
    return n;
}

/* A plugin may not take a rule's name: jobs refer to handlers by name. */
static int check_names(const struct ruleset *rs, const struct sy_loaded_plugin *p, size_t n,
                       struct sy_error *err)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < rs->n_rules; k++) {
            if (strcmp(rs->rules[k].name, p[i].desc->name) == 0) {
                return sy_error_set(err, p[i].file, 0,
                                    "plugin name '%s' is already a rule's (%s:%d)", p[i].desc->name,
                                    rs->rules[k].file, rs->rules[k].line);
            }
        }
    }
    return SY_OK;
}

long sy_engine_check(const struct sy_config *cfg, long *n_plugins, struct sy_error *err)
{
    struct ruleset *rs = ruleset_load(cfg, 0, err);
    if (rs == NULL) {
        return SY_EINVAL;
    }
    struct sy_loaded_plugin *p = NULL;
    size_t np = 0;
    int rc = sy_plugins_load(cfg, NULL, &p, &np, err);
    if (rc == SY_OK) {
        rc = check_names(rs, p, np, err);
        for (size_t i = 0; rc == SY_OK && i < np; i++) {
            printf("plugin %s %s (%s)\n", p[i].desc->name,
                   p[i].desc->version ? p[i].desc->version : "", p[i].file);
        }
        sy_plugins_unload(p, np);
    }
    long n = (long)rs->n_rules;
    ruleset_free(rs);
    *n_plugins = (long)np;
    return rc == SY_OK ? n : rc;
}

struct sy_engine *sy_engine_new(const struct sy_config *cfg, struct sy_store *store,
                                struct sy_error *err)
{
    struct sy_engine *eng = calloc(1, sizeof(*eng));
    if (eng == NULL) {
        return NULL;
    }
    eng->cfg = cfg;
    eng->store = store;
    pthread_mutex_init(&eng->reload_mu, NULL);
    eng->current = ruleset_load(cfg, 1, err);
    if (eng->current == NULL ||
        sy_plugins_load(cfg, store, &eng->plugins, &eng->n_plugins, err) != SY_OK ||
        check_names(eng->current, eng->plugins, eng->n_plugins, err) != SY_OK) {
        sy_engine_free(eng);
        return NULL;
    }
    return eng;
}

size_t sy_engine_rule_count(struct sy_engine *eng)
{
    return current(eng)->n_rules;
}

int sy_engine_reload(struct sy_engine *eng, struct sy_error *err)
{
    pthread_mutex_lock(&eng->reload_mu);
    struct ruleset *old = current(eng);
    struct ruleset *rs = ruleset_load(eng->cfg, old->generation + 1, err);
    int rc = SY_EINVAL;
    if (rs != NULL) {
        rs->older = old;
        __atomic_store_n(&eng->current, rs, __ATOMIC_RELEASE);
        rc = SY_OK;
    }
    pthread_mutex_unlock(&eng->reload_mu);
    return rc;
}

/* ---- workers ---- */

static int kv_get(void *ctx, const char *key, char **value)
{
    struct worker *w = ctx;
    return sy_store_kv_get(w->eng->store, key, value);
}

static int kv_set(void *ctx, const char *key, const char *value, uint64_t ttl_ms)
{
    struct worker *w = ctx;
    return sy_store_kv_set(w->eng->store, key, value, ttl_ms);
}

static int kv_delete(void *ctx, const char *key)
{
    struct worker *w = ctx;
    return sy_store_kv_delete(w->eng->store, key);
}

static int unizo_call(void *ctx, const struct sy_unizo_request *req, struct sy_unizo_response *resp)
{
    struct worker *w = ctx;
    return sy_unizo_call(w->unizo, req, resp);
}

static void unizo_defaults(void *ctx, const char *integration, const char **org,
                           const char **collection)
{
    struct worker *w = ctx;
    sy_unizo_defaults(w->unizo, integration, org, collection);
}

static const struct sy_loaded_plugin *find_plugin(const struct sy_engine *eng, const char *name)
{
    for (size_t i = 0; i < eng->n_plugins; i++) {
        if (strcmp(eng->plugins[i].desc->name, name) == 0) {
            return &eng->plugins[i];
        }
    }
    return NULL;
}

static const struct sy_lua_rule *find_rule(const struct ruleset *rs, const char *name)
{
    for (size_t i = 0; i < rs->n_rules; i++) {
        if (strcmp(rs->rules[i].name, name) == 0) {
            return &rs->rules[i];
        }
    }
    return NULL;
}

/* A worker's state with every rule file of 'rs' loaded, or NULL (logged). */
static struct sy_lua *build_state(struct worker *w, const struct ruleset *rs)
{
    struct sy_engine *eng = w->eng;
    struct sy_lua_limits lim = limits_of(eng->cfg);
    struct sy_lua_host host = {.ctx = w,
                               .kv_get = kv_get,
                               .kv_set = kv_set,
                               .kv_delete = kv_delete,
                               .unizo_call = w->unizo ? unizo_call : NULL,
                               .unizo_defaults = unizo_defaults};
    struct sy_lua *lx = sy_lua_new(&lim, &host);
    for (size_t i = 0; lx != NULL && i < rs->n_files; i++) {
        struct sy_error err;
        if (sy_lua_load_file(lx, rs->files[i], rs->display[i], &err) != SY_OK) {
            char msg[1024];
            sy_error_format(&err, msg, sizeof(msg));
            sy_log(SY_LOG_ERROR, "cannot load a rule file in a worker", "error", msg, NULL);
            sy_lua_free(lx);
            lx = NULL;
        }
    }
    return lx;
}

/* Decide what a failed attempt leads to; returns the outcome and sets *retry_at. */
static enum sy_job_outcome after_failure(struct sy_engine *eng, const struct sy_job *job,
                                         unsigned *seed, int64_t *retry_at)
{
    const struct sy_config *cfg = eng->cfg;
    size_t attempt = (size_t)job->attempts; /* retries used so far */
    if (attempt >= cfg->retry.n_schedule) {
        return SY_JOB_DEAD;
    }
    double factor = 1.0 + cfg->retry.jitter * (2.0 * rand_r(seed) / (double)RAND_MAX - 1.0);
    *retry_at = sy_wall_ms() + (int64_t)((double)cfg->retry.schedule_ms[attempt] * factor);
    return SY_JOB_RETRY;
}

static void run_job(struct worker *w, struct sy_job *job, struct sy_lua **lx, unsigned *generation,
                    unsigned *seed)
{
    struct sy_engine *eng = w->eng;
    struct ruleset *rs = current(eng);
    char err[4096] = "";
    enum sy_job_outcome outcome;
    int64_t retry_at = 0;
    double t0 = sy_mono_s();
    sy_store_bind_job(job); /* kv writes from here on commit with the outcome */

    const struct sy_loaded_plugin *plugin = find_plugin(eng, job->handler);
    if (plugin == NULL && find_rule(rs, job->handler) == NULL) {
        snprintf(err, sizeof(err), "rule '%s' no longer exists (removed by a reload)",
                 job->handler);
        outcome = SY_JOB_DEAD;
        goto finish;
    }
    if (plugin != NULL) {
        int brc = sy_store_load_body(eng->store, job);
        if (brc != SY_OK) {
            snprintf(err, sizeof(err), "cannot run: the event could not be read");
            outcome = brc == SY_ENOTFOUND ? SY_JOB_DEAD : after_failure(eng, job, seed, &retry_at);
            goto finish;
        }
        json_t *obj = json_loadb(job->body, job->body_len, 0, NULL);
        json_t *integ = json_object_get(json_object_get(obj, "integration"), "type");
        struct sy_event ev = {.id = job->event_id,
                              .type = json_string_value(json_object_get(obj, "type")),
                              .integration = json_string_value(integ),
                              .json = job->body,
                              .len = job->body_len,
                              .obj = obj};
        struct sy_plugin_call call = {
            .unizo = w->unizo, .event_id = job->event_id, .handler = job->handler};
        int prc = plugin->desc->handle(plugin->state, &ev, &call);
        json_decref(obj);
        if (prc == SY_OK) {
            outcome = SY_JOB_DONE;
        } else if (prc == SY_FAIL) {
            snprintf(err, sizeof(err), "plugin '%s' failed (SY_FAIL)", job->handler);
            outcome = SY_JOB_DEAD;
        } else {
            snprintf(err, sizeof(err), "plugin '%s' asked for a retry (%s)", job->handler,
                     prc == SY_RETRY ? "SY_RETRY" : "unknown return value");
            outcome = after_failure(eng, job, seed, &retry_at);
        }
        goto finish;
    }
    if (*lx == NULL || *generation != rs->generation) {
        sy_lua_free(*lx);
        *lx = build_state(w, rs);
        *generation = rs->generation;
    }
    int rc = sy_store_load_body(eng->store, job);
    if (*lx == NULL || rc != SY_OK) {
        snprintf(err, sizeof(err), "%s",
                 rc == SY_ENOTFOUND ? "the event is no longer stored"
                                    : "cannot run: the store or the rule state is unavailable");
        outcome = rc == SY_ENOTFOUND ? SY_JOB_DEAD : after_failure(eng, job, seed, &retry_at);
        goto finish;
    }
    switch (
        sy_lua_run(*lx, job->handler, job->event_id, job->body, job->body_len, err, sizeof(err))) {
    case SY_LUA_OK:
        outcome = SY_JOB_DONE;
        break;
    case SY_LUA_SKIPPED:
        outcome = SY_JOB_SKIPPED;
        break;
    case SY_LUA_PERMANENT:
        outcome = SY_JOB_DEAD;
        break;
    case SY_LUA_LIMIT:
        /* a state that hit a limit may be half-way through anything: start clean */
        sy_lua_free(*lx);
        *lx = NULL;
        outcome = after_failure(eng, job, seed, &retry_at);
        break;
    default:
        outcome = after_failure(eng, job, seed, &retry_at);
    }

finish:;
    sy_store_bind_job(NULL);
    double took = sy_mono_s() - t0;
    sy_metrics_job(job->handler, outcome, took);
    char ms[32], attempt[32], max[32];
    snprintf(ms, sizeof(ms), "%.3f", took * 1000);
    snprintf(attempt, sizeof(attempt), "%d", job->attempts + 1);
    snprintf(max, sizeof(max), "%zu", eng->cfg->retry.n_schedule + 1);
    if (outcome == SY_JOB_DONE || outcome == SY_JOB_SKIPPED) {
        sy_log(SY_LOG_INFO, outcome == SY_JOB_DONE ? "job done" : "job skipped (when)", "rule",
               job->handler, "event", job->event_id, "ms", ms, NULL);
    } else if (outcome == SY_JOB_RETRY) {
        char in[32];
        snprintf(in, sizeof(in), "%.1fs", (double)(retry_at - sy_wall_ms()) / 1000.0);
        sy_log(SY_LOG_WARN, "job failed; will retry", "rule", job->handler, "event", job->event_id,
               "attempt", attempt, "of", max, "retry_in", in, "error", err, NULL);
    } else {
        sy_log(SY_LOG_ERROR, "job dead", "rule", job->handler, "event", job->event_id, "attempt",
               attempt, "error", err, NULL);
    }
    sy_store_finish(eng->store, job, outcome, err[0] ? err : NULL, retry_at);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sy_engine *eng = w->eng;
    char name[16];
    snprintf(name, sizeof(name), "sy-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    struct sy_lua *lx = NULL;
    unsigned generation = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(w->index * 2654435761u);
    w->unizo = sy_unizo_new(eng->cfg);
    if (w->unizo == NULL) {
        sy_log(SY_LOG_ERROR, "cannot create the Unizo client; rules see no 'unizo'", NULL);
    }
    while (!__atomic_load_n(&eng->stop, __ATOMIC_ACQUIRE)) {
        struct sy_job *job = sy_store_next_job(eng->store, 200);
        if (job != NULL) {
            run_job(w, job, &lx, &generation, &seed);
        }
    }
    sy_lua_free(lx);
    sy_unizo_free(w->unizo);
    return NULL;
}

int sy_engine_start(struct sy_engine *eng)
{
    sy_store_set_router(eng->store, route, eng);
    eng->workers = calloc((size_t)eng->cfg->workers, sizeof(*eng->workers));
    if (eng->workers == NULL) {
        return SY_ENOMEM;
    }
    for (int i = 0; i < eng->cfg->workers; i++) {
        eng->workers[i].eng = eng;
        eng->workers[i].index = i;
        if (pthread_create(&eng->workers[i].tid, NULL, worker_main, &eng->workers[i]) != 0) {
            return SY_ENOMEM;
        }
        eng->n_workers++;
    }
    return SY_OK;
}

bool sy_engine_stop(struct sy_engine *eng, uint64_t grace_ms)
{
    __atomic_store_n(&eng->stop, 1, __ATOMIC_RELEASE);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(grace_ms / 1000);
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    size_t left = 0;
    for (size_t i = 0; i < eng->n_workers; i++) {
        if (pthread_timedjoin_np(eng->workers[i].tid, NULL, &until) != 0) {
            left++;
        }
    }
    if (left > 0) {
        char n[24];
        snprintf(n, sizeof(n), "%zu", left);
        sy_log(SY_LOG_WARN,
               "shutdown_grace is over with jobs still running; they stay pending and run "
               "again after the restart",
               "workers", n, NULL);
        return false;
    }
    eng->n_workers = 0;
    return true;
}

void sy_engine_free(struct sy_engine *eng)
{
    if (eng == NULL) {
        return;
    }
    free(eng->workers);
    if (eng->plugins != NULL) {
        sy_plugins_unload(eng->plugins, eng->n_plugins);
    }
    ruleset_free(eng->current);
    pthread_mutex_destroy(&eng->reload_mu);
    free(eng);
}
