#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unizo/flow.h"
#include "util/clock.h"

struct gate {
    const struct sy_unizo_integration *in;
    long in_flight, waiting;
    int64_t next_us; /* monotonic microseconds: the rate lets the next attempt start then */
    int64_t held_until; /* monotonic ms: the API's hold */
    uint64_t holds;
};

struct sy_flow {
    void (*on_hold)(void *ctx, const char *name, int64_t ms);
    void *on_hold_ctx;
    pthread_mutex_t mu;
    int n;
    struct gate *g;
};

struct sy_flow *sy_flow_new(const struct sy_config *cfg)
{
    struct sy_flow *f = calloc(1, sizeof(*f));
    size_t n = cfg->unizo.n_integrations;
    if (f == NULL || (f->g = calloc(n ? n : 1, sizeof(*f->g))) == NULL) {
        free(f);
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->n = (int)n;
    for (size_t i = 0; i < n; i++) {
        f->g[i].in = &cfg->unizo.integrations[i];
    }
    return f;
}

void sy_flow_free(struct sy_flow *f)
{
    if (f != NULL) {
        pthread_mutex_destroy(&f->mu);
        free(f->g);
        free(f);
    }
}

int sy_flow_find(const struct sy_flow *f, const char *name)
{
    for (int i = 0; f != NULL && name != NULL && i < f->n; i++) {
        if (strcmp(f->g[i].in->name, name) == 0) {
            return i;
        }
    }
    return -1;
}

int64_t sy_flow_take(struct sy_flow *f, int gate, int64_t now_ms)
{
    pthread_mutex_lock(&f->mu);
    struct gate *g = &f->g[gate];
    int64_t wait = 0;
    if (g->held_until > now_ms) {
        wait = g->held_until - now_ms;
    } else if (g->in->max_in_flight > 0 && g->in_flight >= g->in->max_in_flight) {
        wait = 5; /* a slot frees when a call ends, in this worker or another */
    } else if (g->in->rate > 0 && g->next_us >= (now_ms + 1) * 1000) {
        wait = g->next_us / 1000 - now_ms; /* at least 1 */
    }
    if (wait == 0) {
        g->in_flight++;
        if (g->in->rate > 0) {
            /* in microseconds, so above 1000/s several start in one ms, and exactly the rate */
            int64_t now_us = now_ms * 1000;
            int64_t from = g->next_us > now_us - 1000 ? g->next_us : now_us;
            g->next_us = from + (int64_t)(1e6 / g->in->rate + 0.5);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return wait;
}

void sy_flow_release(struct sy_flow *f, int gate)
{
    pthread_mutex_lock(&f->mu);
    f->g[gate].in_flight--;
    pthread_mutex_unlock(&f->mu);
}

void sy_flow_hold(struct sy_flow *f, int gate, int64_t until_ms)
{
    pthread_mutex_lock(&f->mu);
    struct gate *g = &f->g[gate];
    int64_t now = sy_mono_ms();
    bool begins = g->held_until <= now;
    if (until_ms > g->held_until) {
        g->held_until = until_ms;
    }
    g->holds++;
    pthread_mutex_unlock(&f->mu);
    if (begins && f->on_hold != NULL) {
        f->on_hold(f->on_hold_ctx, g->in->name, until_ms - now);
    }
}

void sy_flow_on_hold(struct sy_flow *f, void (*fn)(void *ctx, const char *name, int64_t ms),
                     void *ctx)
{
    f->on_hold = fn;
    f->on_hold_ctx = ctx;
}

void sy_flow_waiting(struct sy_flow *f, int gate, int delta)
{
    pthread_mutex_lock(&f->mu);
    f->g[gate].waiting += delta;
    pthread_mutex_unlock(&f->mu);
}

int sy_flow_count(const struct sy_flow *f)
{
    return f ? f->n : 0;
}

void sy_flow_stat(struct sy_flow *f, int gate, int64_t now_ms, struct sy_flow_stat *out)
{
    pthread_mutex_lock(&f->mu);
    const struct gate *g = &f->g[gate];
    *out = (struct sy_flow_stat){.name = g->in->name,
                                 .in_flight = g->in_flight,
                                 .waiting = g->waiting,
                                 .max_in_flight = g->in->max_in_flight,
                                 .rate = g->in->rate,
                                 .held_ms = g->held_until > now_ms ? g->held_until - now_ms : 0,
                                 .held_total = g->holds};
    pthread_mutex_unlock(&f->mu);
}
