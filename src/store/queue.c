#include "metrics.h"
#include "store/queue.h"

int sy_append_queue_push(struct sy_append_queue *q, struct sy_append *a, bool *was_empty)
{
    if (q->depth >= q->limit) {
        return SY_EFULL;
    }
    a->next = NULL;
    if (q->tail) {
        q->tail->next = a;
    } else {
        q->head = a;
    }
    q->tail = a;
    *was_empty = q->depth++ == 0;
    sy_metrics_set(&sy_metrics.queue_depth, q->depth);
    return SY_OK;
}

struct sy_append *sy_append_queue_take(struct sy_append_queue *q, size_t max, size_t *n)
{
    *n = 0;
    struct sy_append *batch = q->head, *last = q->head;
    if (batch == NULL) {
        return NULL;
    }
    *n = 1;
    while (last->next != NULL && *n < max) {
        last = last->next;
        (*n)++;
    }
    q->head = last->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    last->next = NULL;
    q->depth -= *n;
    sy_metrics_set(&sy_metrics.queue_depth, q->depth);
    return batch;
}
