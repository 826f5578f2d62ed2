#ifndef SY_ENGINE_INT_H
#define SY_ENGINE_INT_H

/* The engine's private parts, shared by engine.c and worker.c. */

#include <pthread.h>

#include "engine/engine.h"
#include "lua/sandbox.h"
#include "plugin/plugins.h"
#include "unizo/client.h"

struct worker {
    struct sy_engine *eng;
    pthread_t tid;
    int index;
    unsigned seed;          /* randomness for the retry policy's jitter */
    struct sy_unizo *unizo; /* this worker's Unizo client (its curl handle) */
    struct sy_rule_gen *gen; /* the generation 'lx' is built from (one reference held) */
    struct sy_lua *lx;       /* NULL until a rule runs, and after a limit was hit */
};

struct sy_engine {
    const struct sy_config *cfg;
    struct sy_store *store;
    struct sy_loaded_plugin *plugins; /* loaded at start; not reloaded */
    size_t n_plugins;
    pthread_mutex_t gen_mu;      /* guards 'current' for the moment of taking a reference */
    struct sy_rule_gen *current; /* one reference held by the engine */
    pthread_mutex_t reload_mu;   /* one reload at a time */
    struct sy_engine_hooks hooks;
    struct worker *workers;
    size_t n_workers;
    struct worker *inline_worker; /* sy_engine_start_inline: the caller's thread runs jobs */
    int stop; /* atomic */
};

/* The current generation with a reference for the caller (sy_rule_gen_release it). Any thread. */
struct sy_rule_gen *sy_engine_gen(struct sy_engine *eng);

/*
 * Which handlers take an event, and with which ordering keys (appended to 'out'): the
 * current rules, then the plugins. The one router: the store calls it through
 * sy_store_set_router, and replays call it directly. Any thread.
 */
size_t sy_engine_route(struct sy_engine *eng, const struct sy_append *a, struct sy_routes *out);

/* The plugin named 'name', or NULL. */
const struct sy_loaded_plugin *sy_engine_plugin(const struct sy_engine *eng, const char *name);

/* A worker thread: takes jobs from the store until the engine stops. */
void *sy_worker_main(void *arg);

/* Run one attempt of 'job' (owned) on worker 'w'; 'report' as in sy_engine_run_one. */
void sy_worker_run_job(struct worker *w, struct sy_job *job,
                       void (*report)(void *ctx, const struct sy_attempt *a), void *ctx);
/* Release what a worker holds (its Lua state, generation and Unizo client). */
void sy_worker_dispose(struct worker *w);

/* The engine's clock in Unix ms: the hooks' or the wall's. */
int64_t sy_engine_now_ms(const struct sy_engine *eng);

#endif
