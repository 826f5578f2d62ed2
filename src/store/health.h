#ifndef SY_STORE_HEALTH_H
#define SY_STORE_HEALTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/*
 * What a store's own threads last saw of their backend (the SQLite writer's
 * transactions, the Redis store's pings), kept so that probes can say whether
 * the store is well, and why not, without a store call of their own: a hung
 * backend must not hang /readyz. Guarded by 'mu', which is held for a few
 * instructions and never across I/O.
 */
struct sy_health {
    pthread_mutex_t mu;
    const char *backend;   /* "sqlite", "redis": the first word of a detail */
    int64_t busy_since_ms; /* a call to the backend under way since (wall clock); 0 = none */
    int64_t last_ok_ms;    /* when a call last succeeded */
    bool failed;           /* the last call failed... */
    char error[128];       /* ...with this */
    bool closing;
};

/* A call slower than this makes the store not ready. */
#define SY_HEALTH_STALL_MS 1000

void sy_health_init(struct sy_health *h, const char *backend);
void sy_health_dispose(struct sy_health *h);
/* A call to the backend starts; it ends with ok or with 'error' (NULL: none given). Any thread. */
void sy_health_begin(struct sy_health *h);
void sy_health_end(struct sy_health *h, bool ok, const char *error);
void sy_health_closing(struct sy_health *h);
/* What a call of another thread found, without its start (busy_since is the caller's). */
void sy_health_note(struct sy_health *h, bool ok, const char *error);
/* The state as a probe sees it at 'now_ms' (wall clock). Any thread. */
void sy_health_read(struct sy_health *h, int64_t now_ms, struct sy_store_health *out);

#endif
