#ifndef SY_ENGINE_ALERTS_H
#define SY_ENGINE_ALERTS_H

#include <stdbool.h>

#include "store/store.h"

/*
 * switchyard's own events, stored and routed like any delivery, so rules can
 * act on them (`on = "switchyard.job.dead"`): switchyard.job.dead,
 * switchyard.event.quarantined and switchyard.unizo.integration_throttled.
 * Their ids start with SY_ALERT_ID_PREFIX and are derived from what they
 * report, so the same fact stored twice is one event.
 */
#define SY_ALERT_ID_PREFIX "switchyard:"

struct json_t;

/*
 * Store an event of type 'type' with id 'id' and 'data' (an object; the
 * reference is stolen) for the rules. Asynchronous like a delivery. Returns
 * SY_OK when queued, or a negative SY_E* (the queue is full, the store is
 * down: the alert is dropped and logged). Any thread but the store's writer.
 */
int sy_alert_emit(struct sy_store *st, const char *type, const char *id, struct json_t *data);

/*
 * The id of an alert of 'kind' about the facts in parts[0..n) (joined by newlines):
 * "switchyard:<kind>:<16 hex digits of their 64-bit FNV-1a hash>". Pure.
 */
#define SY_ALERT_ID_MAX 96
void sy_alert_make_id(char out[SY_ALERT_ID_MAX], const char *kind, const char *const *parts,
                      size_t n);

/* True for an event id an alert has: a job of such an event going dead raises no alert. */
bool sy_alert_id(const char *event_id);

#endif
