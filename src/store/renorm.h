#ifndef SY_STORE_RENORM_H
#define SY_STORE_RENORM_H

#include <stddef.h>

#include "ingest/delivery.h"
#include "store/store.h"

/*
 * A stored delivery normalized again with the current code (a replay of a
 * quarantined event): its raw body, the headers kept for replay (a JSON
 * object's text) and the endpoint category it came to (NULL = none). The id
 * stays 'id', the one dedupe knows it by. Fills 'n'; any thread.
 */
void sy_store_renormalize(const char *id, const char *body, size_t body_len, const char *headers,
                          const char *category, struct sy_event_norm *n);

/*
 * Point a's id, type, integration and category (NULL when empty) at those of
 * 'n' (borrowed: 'n' must outlive 'a'); the other members are left alone.
 */
void sy_store_append_of(const struct sy_event_norm *n, struct sy_append *a);

#endif
