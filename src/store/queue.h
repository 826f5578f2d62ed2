#ifndef SY_STORE_QUEUE_H
#define SY_STORE_QUEUE_H

#include <stddef.h>

#include "store/store.h"

/*
 * The bounded FIFO of appends a backend's writer thread drains. Not
 * locked itself: every call is made with the backend's mutex held.
 */
struct sy_append_queue {
    struct sy_append *head, *tail;
    size_t depth;
    size_t limit;
};

/* Queue 'a'. Returns SY_OK (and *was_empty), or SY_EFULL at the limit. */
int sy_append_queue_push(struct sy_append_queue *q, struct sy_append *a, bool *was_empty);

/* Detach up to 'max' appends as a NULL-terminated list (NULL when empty); *n gets the count. */
struct sy_append *sy_append_queue_take(struct sy_append_queue *q, size_t max, size_t *n);

#endif
