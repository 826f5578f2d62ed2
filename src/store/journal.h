#ifndef SY_STORE_JOURNAL_H
#define SY_STORE_JOURNAL_H

#include <stdbool.h>

#include <jansson.h>

#include "store/store.h"

/*
 * One journal record as JSON (new). With 'display', bodies that hold JSON
 * are shown as JSON (for `events show`); without, every body stays the
 * string it was (how the Redis backend keeps records). Any thread.
 */
json_t *sy_call_record_json(const struct sy_call_record *r, bool display);

/* Fill 'r' (strings new) from what sy_call_record_json(r, false) made. SY_OK or SY_EINVAL. */
int sy_call_record_from_json(json_t *o, struct sy_call_record *r);

#endif
