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

/* Load and validate the rules of cfg->rules. Returns NULL and fills 'err' (file:line). */
struct sy_engine *sy_engine_new(const struct sy_config *cfg, struct sy_store *store,
                                struct sy_error *err);

/* Install the router in the store and start cfg->workers threads. */
int sy_engine_start(struct sy_engine *eng);

/*
 * Read and compile every rule file again and swap the new generation in.
 * On any error (one broken file is enough) the old generation stays and
 * 'err' says why. Any thread; reloads are serialised.
 */
int sy_engine_reload(struct sy_engine *eng, struct sy_error *err);

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
