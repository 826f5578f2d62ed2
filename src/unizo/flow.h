#ifndef SY_UNIZO_FLOW_H
#define SY_UNIZO_FLOW_H

#include <stdint.h>

#include "config.h"

/*
 * Flow control per Unizo integration, shared by every worker of the
 * instance: at most max_in_flight HTTP attempts at once, at most 'rate' of
 * them started per second (spaced evenly: "20/s" starts one every 50 ms),
 * and a hold until a time the API named (429, Retry-After) during which
 * none starts. Integrations without caps are still tracked, for the
 * metrics. Thread-safe: one mutex, held for a few instructions.
 */
struct sy_flow;

/* The gates of cfg->unizo.integrations ('cfg' borrowed, must outlive it). NULL on failure. */
struct sy_flow *sy_flow_new(const struct sy_config *cfg);
void sy_flow_free(struct sy_flow *f);

/* The gate of integration 'name' (a configured name), or -1: not gated. NULL name = -1. */
int sy_flow_find(const struct sy_flow *f, const char *name);

/*
 * Take a slot for one attempt starting at monotonic 'now_ms': returns 0
 * when taken (give it back with sy_flow_release), or how many ms to wait
 * before asking again (at least 1).
 */
int64_t sy_flow_take(struct sy_flow *f, int gate, int64_t now_ms);
void sy_flow_release(struct sy_flow *f, int gate);

/*
 * Start no attempt on this gate before monotonic 'until_ms' (a later hold wins). When
 * the gate was not held, the hook of sy_flow_on_hold is called (outside the lock).
 */
void sy_flow_hold(struct sy_flow *f, int gate, int64_t until_ms);

/* Call fn(ctx, integration name, hold in ms) each time a hold begins. Before workers start. */
void sy_flow_on_hold(struct sy_flow *f, void (*fn)(void *ctx, const char *name, int64_t ms),
                     void *ctx);

/* Count calls waiting for this gate up (+1) or down (-1), for the metrics. */
void sy_flow_waiting(struct sy_flow *f, int gate, int delta);

/* What one gate holds now, for the metrics and the admin API. */
struct sy_flow_stat {
    const char *name; /* borrowed from the config */
    long in_flight, waiting;
    long max_in_flight; /* 0 = no cap */
    double rate;        /* starts per second; 0 = no cap */
    int64_t held_ms;    /* how much longer the API's hold lasts; 0 = none */
    uint64_t held_total; /* holds the API asked for since the start */
};

/* Number of gates; fill 'out' for gate i < that number. */
int sy_flow_count(const struct sy_flow *f);
void sy_flow_stat(struct sy_flow *f, int gate, int64_t now_ms, struct sy_flow_stat *out);

#endif
