#ifndef SY_STORE_H
#define SY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util/error.h"

/*
 * The durable store: events deduplicated by id. One interface, several
 * backends (sqlite: now). Appends are asynchronous and group-committed by
 * the backend's own writer thread; everything else is synchronous.
 */
struct sy_store;

/*
 * One append request. The caller allocates it and keeps it (and every
 * buffer it points to) alive until done() is called. done() is called
 * exactly once, from the store's writer thread, after the event is durable
 * (status SY_OK) or the transaction failed (status < 0).
 */
struct sy_append {
    const char *id; /* borrowed; id_len bytes */
    size_t id_len;
    const char *type; /* borrowed */
    size_t type_len;
    const char *integration; /* borrowed, NUL-terminated, may be NULL */
    const char *body;        /* borrowed: the raw request body */
    size_t body_len;
    const char *headers; /* borrowed: JSON object of the headers kept for replay */
    size_t headers_len;
    int64_t received_ms; /* Unix time in milliseconds */

    int status;  /* out: SY_OK or a negative SY_E* */
    bool is_new; /* out: false when the id was already stored */
    void (*done)(struct sy_append *a);
    struct sy_append *next; /* store-internal */
};

/*
 * Open the store named by cfg->store.url and start its writer thread.
 * 'cfg' is borrowed and must outlive the store. Returns NULL and fills 'err'.
 */
struct sy_store *sy_store_open(const struct sy_config *cfg, struct sy_error *err);

/*
 * Queue 'a' for the next group commit. Returns SY_OK (done() will follow),
 * SY_EFULL when the bounded queue is full, or SY_EUNAVAIL when the store is
 * closing or failing; in both error cases done() is not called. Any thread.
 */
int sy_store_submit(struct sy_store *st, struct sy_append *a);

/* True when the last transaction succeeded and the store accepts work. Any thread. */
bool sy_store_ready(struct sy_store *st);

/* Commit everything queued, stop the writer and close. NULL is a no-op. */
void sy_store_close(struct sy_store *st);

/* ---- backend interface ---- */

struct sy_store_ops {
    int (*submit)(struct sy_store *st, struct sy_append *a);
    bool (*ready)(struct sy_store *st);
    void (*close)(struct sy_store *st);
};

struct sy_store {
    const struct sy_store_ops *ops;
};

struct sy_store *sy_store_sqlite_open(const struct sy_config *cfg, const char *path,
                                      struct sy_error *err);

#endif
