#ifndef SY_ENGINE_PAUSE_H
#define SY_ENGINE_PAUSE_H

#include <stdbool.h>

#include "core/kvkey.h"
#include "store/store.h"

/*
 * Paused rules, kept in the store's kv under "switchyard:paused:<rule>", so
 * a pause survives restarts and, on Redis, holds for every instance. A
 * running rule or plugin cannot write keys under "switchyard:" (core/kvkey.h).
 */

/* Pause (or resume) rule 'name': durable before it returns. SY_OK or a negative SY_E*. */
int sy_rule_pause_set(struct sy_store *st, const char *name, bool paused);

/* Whether rule 'name' is paused in the store. SY_OK or a negative SY_E* (store down). */
int sy_rule_pause_get(struct sy_store *st, const char *name, bool *paused);

#endif
