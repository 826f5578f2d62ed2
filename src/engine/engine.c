/* The engine object: generations, reload, routing, and the pool's start and stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/router.h"
#include "engine/alerts.h"
#include "engine/engine_int.h"
#include "unizo/flow.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

struct sy_rule_gen *sy_engine_gen(struct sy_engine *eng)
{
    pthread_mutex_lock(&eng->gen_mu);
    struct sy_rule_gen *g = eng->current;
    sy_rule_gen_hold(g);
    pthread_mutex_unlock(&eng->gen_mu);
    return g;
}

const struct sy_loaded_plugin *sy_engine_plugin(const struct sy_engine *eng, const char *name)
{
    for (size_t i = 0; i < eng->n_plugins; i++) {
        if (strcmp(eng->plugins[i].desc->name, name) == 0) {
            return &eng->plugins[i];
        }
    }
    return NULL;
}

/*
 * The store's writer asks which handlers take an event, and with which
 * ordering key. Names and keys are copied into 'out', so the generation is
 * only held for the length of the call.
 */
size_t sy_engine_route(struct sy_engine *eng, const struct sy_append *a, struct sy_routes *out)
{
    struct sy_rule_gen *g = sy_engine_gen(eng);
    size_t n = 0;
    char key[SY_KEY_MAX + 1];
    for (size_t i = 0; i < g->n_rules && n < SY_ROUTES_MAX; i++) {
        const struct sy_route *r = &g->routes[i];
        if (sy_route_matches(r, a->type, a->type_len, a->integration, a->category)) {
            long klen = sy_route_key(r, a->body, a->body_len, key);
            n += sy_routes_add(out, r->name, klen >= 0 ? key : NULL) == SY_OK;
        }
    }
    sy_rule_gen_release(g);
    /* plugins after the rules, in load order */
    for (size_t i = 0; i < eng->n_plugins && n < SY_ROUTES_MAX; i++) {
        const struct sy_loaded_plugin *p = &eng->plugins[i];
        struct sy_route r = {.name = p->desc->name,
                             .on = p->desc->events,
                             .n_on = p->n_events,
                             .integration = p->integration,
                             .category = p->category};
        if (sy_route_matches(&r, a->type, a->type_len, a->integration, a->category)) {
            n += sy_routes_add(out, r.name, NULL) == SY_OK;
        }
    }
    return n;
}

bool sy_engine_wants(struct sy_engine *eng, const char *type)
{
    struct sy_append a = {.type = type,
                          .type_len = strlen(type),
                          .integration = "switchyard",
                          .category = "switchyard",
                          .body = "{}",
                          .body_len = 2};
    struct sy_routes r;
    sy_routes_init(&r);
    size_t n = sy_engine_route(eng, &a, &r);
    sy_routes_dispose(&r);
    return n > 0;
}

static size_t route(void *ctx, const struct sy_append *a, struct sy_routes *out)
{
    return sy_engine_route(ctx, a, out);
}

/* A plugin may not take a rule's name: jobs refer to handlers by name. */
static int check_names(const struct sy_rule_gen *g, const struct sy_loaded_plugin *p, size_t n,
                       struct sy_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct sy_lua_rule *r = sy_rule_gen_find(g, p[i].desc->name);
        if (r != NULL) {
            return sy_error_set(err, p[i].file, 0, "plugin name '%s' is already a rule's (%s:%d)",
                                p[i].desc->name, r->file, r->line);
        }
    }
    return SY_OK;
}

long sy_engine_check(const struct sy_config *cfg, long *n_plugins, struct sy_error *err)
{
    struct sy_rule_gen *g = sy_rule_gen_load(cfg, 0, err);
    if (g == NULL) {
        return SY_EINVAL;
    }
    struct sy_loaded_plugin *p = NULL;
    size_t np = 0;
    int rc = sy_plugins_load(cfg, NULL, &p, &np, err);
    if (rc == SY_OK) {
        rc = check_names(g, p, np, err);
        for (size_t i = 0; rc == SY_OK && i < np; i++) {
            printf("plugin %s %s (%s)\n", p[i].desc->name,
                   p[i].desc->version ? p[i].desc->version : "", p[i].file);
        }
        sy_plugins_unload(p, np);
    }
    long n = (long)g->n_rules;
    sy_rule_gen_release(g);
    *n_plugins = (long)np;
    return rc == SY_OK ? n : rc;
}

/* The API held an integration (429 / Retry-After): tell the rules (switchyard.unizo.integration_throttled). */
static void alert_throttled(void *ctx, const char *name, int64_t ms)
{
    struct sy_engine *eng = ctx;
    char sec[24], id[SY_ALERT_ID_MAX];
    /* one event per integration and second the hold began, however many calls saw it */
    snprintf(sec, sizeof(sec), "%lld", (long long)(sy_wall_ms() / 1000));
    const char *parts[] = {name, sec};
    sy_alert_make_id(id, "throttled", parts, 2);
    if (!sy_engine_wants(eng, "switchyard.unizo.integration_throttled")) {
        return;
    }
    json_t *data = json_pack("{s:s, s:f}", "integration", name, "seconds", (double)ms / 1000.0);
    sy_alert_emit(eng->store, "switchyard.unizo.integration_throttled", id, data);
}

struct sy_engine *sy_engine_new(const struct sy_config *cfg, struct sy_store *store,
                                const struct sy_engine_hooks *hooks, struct sy_error *err)
{
    struct sy_engine *eng = calloc(1, sizeof(*eng));
    if (eng == NULL) {
        sy_error_set(err, NULL, 0, "out of memory");
        return NULL;
    }
    if (hooks != NULL) {
        eng->hooks = *hooks;
    }
    eng->cfg = cfg;
    eng->store = store;
    pthread_mutex_init(&eng->gen_mu, NULL);
    pthread_mutex_init(&eng->reload_mu, NULL);
    pthread_mutex_init(&eng->caps_mu, NULL);
    pthread_mutex_init(&eng->pause_mu, NULL);
    pthread_mutex_init(&eng->watch_mu, NULL);
    pthread_cond_init(&eng->watch_cv, NULL);
    eng->flow = sy_flow_new(cfg);
    if (eng->flow == NULL) {
        sy_error_set(err, NULL, 0, "out of memory");
        sy_engine_free(eng);
        return NULL;
    }
    sy_flow_on_hold(eng->flow, alert_throttled, eng);
    eng->current = sy_rule_gen_load(cfg, 1, err);
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
    struct sy_rule_gen *g = sy_engine_gen(eng);
    size_t n = g->n_rules;
    sy_rule_gen_release(g);
    return n;
}

int sy_engine_reload(struct sy_engine *eng, struct sy_error *err)
{
    pthread_mutex_lock(&eng->reload_mu);
    struct sy_rule_gen *old = sy_engine_gen(eng);
    struct sy_rule_gen *g = sy_rule_gen_load(eng->cfg, old->generation + 1, err);
    int rc = g != NULL ? check_names(g, eng->plugins, eng->n_plugins, err) : SY_EINVAL;
    if (rc == SY_OK) {
        pthread_mutex_lock(&eng->gen_mu);
        eng->current = g;
        pthread_mutex_unlock(&eng->gen_mu);
        sy_rule_gen_release(old); /* the engine's reference; workers drop theirs as they move */
    } else {
        sy_rule_gen_release(g);
    }
    sy_rule_gen_release(old);
    pthread_mutex_unlock(&eng->reload_mu);
    return rc;
}

/*
 * Once a second: did the store stop accepting writes, or start again? An outage is told
 * when it is over (it cannot be stored while it lasts): switchyard.store.unavailable with
 * when it began, then switchyard.store.recovered with how long it lasted.
 */
static void *watch_main(void *arg)
{
    struct sy_engine *eng = arg;
    pthread_setname_np(pthread_self(), "sy-watch");
    int64_t down_since = 0;
    pthread_mutex_lock(&eng->watch_mu);
    while (!__atomic_load_n(&eng->stop, __ATOMIC_ACQUIRE)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&eng->watch_cv, &eng->watch_mu, &until);
        bool ready = sy_store_ready(eng->store);
        if (ready) {
            sy_engine_paused_refresh(eng); /* what /metrics shows without a store call */
        }
        if (!ready && down_since == 0) {
            down_since = sy_wall_ms();
        } else if (ready && down_since != 0) {
            char since[24], id[SY_ALERT_ID_MAX];
            snprintf(since, sizeof(since), "%lld", (long long)down_since);
            const char *parts[] = {since};
            double secs = (double)(sy_wall_ms() - down_since) / 1000.0;
            if (sy_engine_wants(eng, "switchyard.store.unavailable")) {
                sy_alert_make_id(id, "store.unavailable", parts, 1);
                sy_alert_emit(eng->store, "switchyard.store.unavailable", id,
                              json_pack("{s:I}", "since_ms", (json_int_t)down_since));
            }
            if (sy_engine_wants(eng, "switchyard.store.recovered")) {
                sy_alert_make_id(id, "store.recovered", parts, 1);
                sy_alert_emit(eng->store, "switchyard.store.recovered", id,
                              json_pack("{s:I, s:f}", "since_ms", (json_int_t)down_since,
                                        "seconds", secs));
            }
            down_since = 0;
        }
    }
    pthread_mutex_unlock(&eng->watch_mu);
    return NULL;
}

int sy_engine_start(struct sy_engine *eng)
{
    sy_store_set_router(eng->store, route, eng);
    /* the paused set's first read holds its lock until done: do it now, before anything
     * (a worker, /metrics) waits on that lock; later reads let it go while they read */
    sy_engine_paused_refresh(eng);
    eng->watching = pthread_create(&eng->watch_tid, NULL, watch_main, eng) == 0;
    eng->workers = calloc((size_t)eng->cfg->workers, sizeof(*eng->workers));
    if (eng->workers == NULL && eng->cfg->workers > 0) {
        return SY_ENOMEM;
    }
    for (int i = 0; i < eng->cfg->workers; i++) {
        struct worker *w = &eng->workers[i];
        sy_worker_init(w, eng, i, (unsigned)time(NULL) ^ (unsigned)((unsigned)i * 2654435761u));
        if (pthread_create(&w->tid, NULL, sy_worker_main, w) != 0) {
            return SY_ENOMEM;
        }
        eng->n_workers++;
    }
    return SY_OK;
}

int64_t sy_engine_now_ms(const struct sy_engine *eng)
{
    return eng->hooks.now_ms ? eng->hooks.now_ms(eng->hooks.ctx) : sy_wall_ms();
}

int sy_engine_start_inline(struct sy_engine *eng)
{
    eng->inline_worker = calloc(1, sizeof(*eng->inline_worker));
    if (eng->inline_worker == NULL) {
        return SY_ENOMEM;
    }
    /* the same jitter every run: tests are deterministic */
    sy_worker_init(eng->inline_worker, eng, 0, 1u);
    eng->inline_worker->unizo = sy_unizo_new(eng->cfg, eng->flow);
    sy_store_set_router(eng->store, route, eng);
    return SY_OK;
}

int sy_engine_run_one(struct sy_engine *eng, int timeout_ms,
                      void (*report)(void *ctx, const struct sy_attempt *a), void *ctx)
{
    struct sy_job *job = sy_store_next_job(eng->store, timeout_ms);
    if (job == NULL) {
        return 0;
    }
    sy_worker_run_job(eng->inline_worker, job, report, ctx);
    return 1;
}

bool sy_engine_stop(struct sy_engine *eng, uint64_t grace_ms)
{
    __atomic_store_n(&eng->stop, 1, __ATOMIC_RELEASE);
    if (eng->watching) {
        pthread_mutex_lock(&eng->watch_mu);
        pthread_cond_signal(&eng->watch_cv);
        pthread_mutex_unlock(&eng->watch_mu);
        pthread_join(eng->watch_tid, NULL);
        eng->watching = false;
    }
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
    if (eng->watching) { /* started and never stopped (a failed start): stop the watcher */
        __atomic_store_n(&eng->stop, 1, __ATOMIC_RELEASE);
        pthread_mutex_lock(&eng->watch_mu);
        pthread_cond_signal(&eng->watch_cv);
        pthread_mutex_unlock(&eng->watch_mu);
        pthread_join(eng->watch_tid, NULL);
    }
    free(eng->workers);
    if (eng->inline_worker != NULL) {
        sy_worker_dispose(eng->inline_worker);
        free(eng->inline_worker);
    }
    if (eng->plugins != NULL) {
        sy_plugins_unload(eng->plugins, eng->n_plugins);
    }
    sy_rule_gen_release(eng->current);
    sy_flow_free(eng->flow);
    for (size_t i = 0; i < eng->n_counts; i++) {
        free(eng->counts[i].name);
    }
    free(eng->counts);
    pthread_mutex_destroy(&eng->gen_mu);
    pthread_mutex_destroy(&eng->reload_mu);
    pthread_mutex_destroy(&eng->caps_mu);
    sy_engine_pause_dispose(eng);
    pthread_mutex_destroy(&eng->pause_mu);
    pthread_mutex_destroy(&eng->watch_mu);
    pthread_cond_destroy(&eng->watch_cv);
    free(eng);
}

/* The count of rule 'name', added when it is new (NULL when out of memory). Under caps_mu. */
static struct rule_count *count_of(struct sy_engine *eng, const char *name, bool add)
{
    for (size_t i = 0; i < eng->n_counts; i++) {
        if (strcmp(eng->counts[i].name, name) == 0) {
            return &eng->counts[i];
        }
    }
    if (!add) {
        return NULL;
    }
    struct rule_count *c = realloc(eng->counts, (eng->n_counts + 1) * sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    eng->counts = c;
    c = &eng->counts[eng->n_counts];
    if ((c->name = strdup(name)) == NULL) {
        return NULL;
    }
    c->running = 0;
    eng->n_counts++;
    return c;
}

bool sy_engine_rule_take(struct sy_engine *eng, const char *name, long cap)
{
    pthread_mutex_lock(&eng->caps_mu);
    struct rule_count *c = count_of(eng, name, true);
    bool ok = c == NULL || cap <= 0 || c->running < cap;
    if (ok && c != NULL) {
        c->running++;
    }
    pthread_mutex_unlock(&eng->caps_mu);
    return ok;
}

void sy_engine_rule_release(struct sy_engine *eng, const char *name)
{
    pthread_mutex_lock(&eng->caps_mu);
    struct rule_count *c = count_of(eng, name, false);
    if (c != NULL && c->running > 0) {
        c->running--;
    }
    pthread_mutex_unlock(&eng->caps_mu);
}

long sy_engine_rule_running(struct sy_engine *eng, const char *name)
{
    pthread_mutex_lock(&eng->caps_mu);
    struct rule_count *c = count_of(eng, name, false);
    long n = c ? c->running : 0;
    pthread_mutex_unlock(&eng->caps_mu);
    return n;
}

static void paused_line(void *ctx, const char *name)
{
    struct sy_buf *out = ctx;
    sy_buf_puts(out, "switchyard_rule_paused{rule=");
    sy_buf_json_string(out, name, strlen(name));
    sy_buf_puts(out, "} 1\n");
}

void sy_engine_render_metrics(struct sy_engine *eng, struct sy_buf *out)
{
    int64_t now = sy_mono_ms();
    int n = sy_flow_count(eng->flow);
    static const char *const heads[] = {
        "# HELP switchyard_unizo_in_flight HTTP attempts to the integration in flight\n"
        "# TYPE switchyard_unizo_in_flight gauge\n",
        "# HELP switchyard_unizo_waiting calls waiting for the integration's max_in_flight, rate "
        "or hold\n# TYPE switchyard_unizo_waiting gauge\n",
        "# HELP switchyard_unizo_held_seconds how much longer the API's 429/Retry-After holds "
        "the integration\n# TYPE switchyard_unizo_held_seconds gauge\n",
        "# HELP switchyard_unizo_holds_total holds the API asked for (429 / Retry-After)\n"
        "# TYPE switchyard_unizo_holds_total counter\n",
    };
    for (int k = 0; k < 4 && n > 0; k++) {
        sy_buf_puts(out, heads[k]);
        for (int i = 0; i < n; i++) {
            struct sy_flow_stat st;
            sy_flow_stat(eng->flow, i, now, &st);
            static const char *const names[] = {"in_flight", "waiting", "held_seconds",
                                                "holds_total"};
            double v = k == 0   ? (double)st.in_flight
                       : k == 1 ? (double)st.waiting
                       : k == 2 ? (double)st.held_ms / 1000.0
                                : (double)st.held_total;
            sy_buf_printf(out, "switchyard_unizo_%s{integration=", names[k]);
            sy_buf_json_string(out, st.name, strlen(st.name)); /* its quoting is Prometheus's */
            sy_buf_printf(out, "} %g\n", v);
        }
    }
    sy_buf_puts(out, "# HELP switchyard_rule_running jobs of the rule running now\n"
                     "# TYPE switchyard_rule_running gauge\n");
    pthread_mutex_lock(&eng->caps_mu);
    for (size_t i = 0; i < eng->n_counts; i++) {
        sy_buf_puts(out, "switchyard_rule_running{rule=");
        sy_buf_json_string(out, eng->counts[i].name, strlen(eng->counts[i].name));
        sy_buf_printf(out, "} %ld\n", eng->counts[i].running);
    }
    pthread_mutex_unlock(&eng->caps_mu);
    sy_buf_puts(out, "# HELP switchyard_rule_paused 1 while the rule is paused (its jobs wait)\n"
                     "# TYPE switchyard_rule_paused gauge\n");
    sy_engine_paused_each(eng, paused_line, out);
}
