#ifndef SY_ENGINE_H
#define SY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine/rules.h"
#include "store/store.h"
#include "util/error.h"

/*
 * The engine: the rule generations (rules.h), the router the store uses to
 * create jobs, and the worker pool (worker.c). Each worker owns a Lua state
 * built from the current generation's captured source; a reload swaps the
 * generation atomically and each worker rebuilds before its next job. A
 * generation is freed once neither the engine nor any worker uses it.
 */
struct sy_engine;
struct sy_unizo_request;
struct sy_unizo_response;
struct lua_State;

/*
 * What a caller that runs jobs itself (`switchyard test`) puts in place of
 * the process's: the network under the effect journal (the Idempotency-Key,
 * the journal and the replay of recorded answers stay the engine's), where
 * rules' log lines go (lua/sandbox.h's log hook), and the clock of retry
 * schedules and of os.time() in rules. Each member may be NULL.
 */
struct sy_engine_hooks {
    void *ctx;
    int (*send)(void *ctx, const struct sy_unizo_request *req, struct sy_unizo_response *resp);
    void (*log)(void *ctx, struct lua_State *L, int level, const char *msg, int fields_idx);
    int64_t (*now_ms)(void *ctx);
};

/*
 * Load and validate the rules of cfg->rules and the plugins of cfg->plugins.
 * 'hooks' (copied; NULL = none) replaces the network, the rule log and the
 * clock. Returns NULL and fills 'err' (file:line).
 */
struct sy_engine *sy_engine_new(const struct sy_config *cfg, struct sy_store *store,
                                const struct sy_engine_hooks *hooks, struct sy_error *err);

/* Install the router in the store and start cfg->workers threads. */
int sy_engine_start(struct sy_engine *eng);

/*
 * Install the router and start no thread: jobs run when the caller asks,
 * with sy_engine_run_one (`switchyard test`). Returns SY_OK or SY_ENOMEM.
 */
int sy_engine_start_inline(struct sy_engine *eng);

/* What one attempt of a job ended in, for the caller of sy_engine_run_one. */
struct sy_attempt {
    const char *event_id;
    const char *handler;
    int attempt; /* 1, 2, ... since the job was queued or replayed */
    enum sy_job_outcome outcome;
    const char *error;   /* NULL when none */
    int64_t retry_at_ms; /* with SY_JOB_RETRY */
};

/*
 * Take one runnable job from the store (waiting up to timeout_ms) and run one
 * attempt of it on the calling thread, exactly as a worker does: the handler
 * (a rule of the current generation or a plugin), its kv and journal, the
 * retry policy, the outcome recorded in the store. 'report' (may be NULL) is
 * called with the outcome before it is recorded; the attempt is not logged.
 * Returns 1 when a job ran, 0 when none was runnable. After
 * sy_engine_start_inline; one thread at a time.
 */
int sy_engine_run_one(struct sy_engine *eng, int timeout_ms,
                      void (*report)(void *ctx, const struct sy_attempt *a), void *ctx);

/*
 * Read and compile every rule file again and swap the new generation in.
 * On any error (one broken file is enough) the old generation stays and
 * 'err' says why. Any thread; reloads are serialised.
 */
int sy_engine_reload(struct sy_engine *eng, struct sy_error *err);

/*
 * Append the engine's gauges to a Prometheus text page: per integration the
 * calls in flight, the calls waiting for its slot or rate, and whether the
 * API holds it (429 / Retry-After); per rule the jobs running. Any thread.
 */
struct sy_buf;
void sy_engine_render_metrics(struct sy_engine *eng, struct sy_buf *out);

/*
 * Whether handler 'name' is paused: the store's state (kv, so it survives
 * restarts and, on Redis, holds for every instance), read at most once a
 * second; a pause made through this engine is seen at once. Any thread.
 */
bool sy_engine_paused(struct sy_engine *eng, const char *name);

/*
 * Pause (or resume) a rule or plugin: durable before it returns. A paused
 * handler's jobs wait, pending, without using attempts; its events keep
 * being stored and routed. SY_ENOTFOUND when no handler has that name;
 * another negative SY_E* when the store fails. Any thread.
 */
int sy_engine_pause(struct sy_engine *eng, const char *name, bool paused);

/*
 * The handlers for GET /admin/rules: [{name, kind ("rule"|"plugin"), file,
 * line, concurrency, paused, running}]. New reference (NULL when out of memory). Any thread.
 */
struct json_t;
struct json_t *sy_engine_rules_json(struct sy_engine *eng);

/*
 * True when a rule of the current set or a plugin takes events of 'type' from
 * switchyard itself (integration and category "switchyard"): an alert nobody
 * subscribes to is not stored. Any thread.
 */
bool sy_engine_wants(struct sy_engine *eng, const char *type);

/* Number of rules in the current set. */
size_t sy_engine_rule_count(struct sy_engine *eng);

/*
 * Stop the workers: each finishes the job it is running. Returns true when
 * all stopped within grace_ms; false when some are still running (their
 * jobs stay pending in the store and run again after a restart), in which
 * case the engine and the store must not be freed.
 */
bool sy_engine_stop(struct sy_engine *eng, uint64_t grace_ms);
void sy_engine_free(struct sy_engine *eng);

/*
 * Load the rule files and plugins of 'cfg' and validate them (for `switchyard
 * check`; each plugin is initialised and finalised, and listed on stdout).
 * Returns the number of rules and sets *n_plugins, or a negative SY_E* with 'err'.
 */
long sy_engine_check(const struct sy_config *cfg, long *n_plugins, struct sy_error *err);

#endif
