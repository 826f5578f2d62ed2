#ifndef SY_ENGINE_INT_H
#define SY_ENGINE_INT_H

/* The engine's private parts, shared by engine.c and worker.c. */

#include <pthread.h>

#include "engine/engine.h"
#include "lua/sandbox.h"
#include "plugin/plugins.h"
#include "unizo/client.h"

struct run;
struct wstate;

/*
 * A worker thread: up to cfg->max_in_flight jobs at once, each rule's run in
 * a coroutine of one Lua state, their Unizo calls in flight together on the
 * worker's client. Everything here belongs to the worker's thread.
 */
struct worker {
    struct sy_engine *eng;
    pthread_t tid;
    int index;
    unsigned seed;          /* randomness for the retry policy's jitter */
    struct sy_unizo *unizo; /* this worker's Unizo client (its curl multi handle) */
    struct sy_rule_gen *gen; /* the generation new jobs resolve in (one reference held) */
    struct wstate *cur;      /* the state new rule jobs run in; NULL until one runs */
    struct wstate *retired;  /* older states, until their last job ends */
    int running;             /* jobs started and not ended */
    struct run *ready, **ready_tail; /* runs whose call was answered */
    struct run *held, **held_tail;   /* jobs waiting for their rule's slot (concurrency) */
    int n_held;
};

/* A worker ready to run jobs (no thread started). */
void sy_worker_init(struct worker *w, struct sy_engine *eng, int index, unsigned seed);

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
    struct sy_flow *flow; /* the caps per integration, shared by the workers */
    pthread_mutex_t caps_mu; /* guards 'counts' */
    struct rule_count {
        char *name;
        long running;
    } *counts; /* jobs running per rule, in the instance */
    size_t n_counts;
    pthread_mutex_t pause_mu; /* guards the three below */
    char **paused;            /* the paused handlers, as last read from the store */
    size_t n_paused;
    int64_t paused_read_ms;   /* monotonic; 0 = never read */
    bool paused_reading;      /* a thread reads the store for it now */
    unsigned paused_version;  /* bumped by every pause through this engine */
    pthread_t watch_tid;      /* watches the store's health for the alerts */
    bool watching;
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
};

/*
 * Call each() with every paused handler as last read, under the set's lock: no store
 * call (/metrics must answer whatever the store does). The watcher thread reads the set
 * again once a second (sy_engine_paused_refresh), the workers as they take jobs.
 */
void sy_engine_paused_each(struct sy_engine *eng, void (*each)(void *ctx, const char *name),
                           void *ctx);
/* Read the paused set again when it is stale (a store call, off any loop). */
void sy_engine_paused_refresh(struct sy_engine *eng);
/* Free the paused set (handlers.c). */
void sy_engine_pause_dispose(struct sy_engine *eng);

/*
 * Count a job of rule 'name' as running unless 'cap' (> 0) of them run
 * already in this instance; true when counted (give it back with
 * sy_engine_rule_release). Any thread.
 */
bool sy_engine_rule_take(struct sy_engine *eng, const char *name, long cap);
void sy_engine_rule_release(struct sy_engine *eng, const char *name);
/* Jobs of rule 'name' running now. Any thread. */
long sy_engine_rule_running(struct sy_engine *eng, const char *name);

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

/*
 * Run one attempt of 'job' (owned) on worker 'w' to its end, on the calling
 * thread; 'report' as in sy_engine_run_one.
 */
void sy_worker_run_job(struct worker *w, struct sy_job *job,
                       void (*report)(void *ctx, const struct sy_attempt *a), void *ctx);
/* Release what a worker holds (its Lua state, generation and Unizo client). */
void sy_worker_dispose(struct worker *w);

/* The engine's clock in Unix ms: the hooks' or the wall's. */
int64_t sy_engine_now_ms(const struct sy_engine *eng);

#endif
