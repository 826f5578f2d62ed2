/* A store's health as its own threads saw it: read by probes without a store call. */
#include <stdio.h>
#include <string.h>

#include "store/health.h"
#include "util/clock.h"

void sy_health_init(struct sy_health *h, const char *backend)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    h->backend = backend;
}

void sy_health_dispose(struct sy_health *h)
{
    pthread_mutex_destroy(&h->mu);
}

void sy_health_begin(struct sy_health *h)
{
    int64_t now = sy_wall_ms();
    pthread_mutex_lock(&h->mu);
    h->busy_since_ms = now;
    pthread_mutex_unlock(&h->mu);
}

/* Records a call's outcome; 'mu' is held. */
static void record(struct sy_health *h, int64_t now, bool ok, const char *error)
{
    h->failed = !ok;
    if (ok) {
        h->last_ok_ms = now;
        h->error[0] = '\0';
    } else {
        snprintf(h->error, sizeof(h->error), "%s", error ? error : "an error");
    }
}

void sy_health_end(struct sy_health *h, bool ok, const char *error)
{
    int64_t now = sy_wall_ms();
    pthread_mutex_lock(&h->mu);
    h->busy_since_ms = 0;
    record(h, now, ok, error);
    pthread_mutex_unlock(&h->mu);
}

void sy_health_closing(struct sy_health *h)
{
    pthread_mutex_lock(&h->mu);
    h->closing = true;
    pthread_mutex_unlock(&h->mu);
}

void sy_health_note(struct sy_health *h, bool ok, const char *error)
{
    int64_t now = sy_wall_ms();
    pthread_mutex_lock(&h->mu);
    record(h, now, ok, error);
    pthread_mutex_unlock(&h->mu);
}

/* "for 3.2 s" since 'since_ms', or "since the start" when nothing ever succeeded. */
static void span(char *out, size_t len, int64_t now_ms, int64_t since_ms)
{
    if (since_ms <= 0) {
        snprintf(out, len, "since the start");
    } else {
        snprintf(out, len, "for %.1f s", (double)(now_ms - since_ms) / 1000.0);
    }
}

void sy_health_read(struct sy_health *h, int64_t now_ms, struct sy_store_health *out)
{
    pthread_mutex_lock(&h->mu);
    int64_t busy = h->busy_since_ms, last_ok = h->last_ok_ms;
    bool failed = h->failed, closing = h->closing;
    char error[sizeof(h->error)];
    memcpy(error, h->error, sizeof(error));
    pthread_mutex_unlock(&h->mu);
    char text[48];
    out->ready = false;
    if (closing) {
        snprintf(out->detail, sizeof(out->detail), "%s: closing", h->backend);
    } else if (busy != 0 && now_ms - busy > SY_HEALTH_STALL_MS) {
        /* counted from the last answer: a call that timed out and its retry are one silence */
        span(text, sizeof(text), now_ms, last_ok > 0 ? last_ok : busy);
        snprintf(out->detail, sizeof(out->detail), "%s: no answer %s", h->backend, text);
    } else if (failed) {
        span(text, sizeof(text), now_ms, last_ok);
        snprintf(out->detail, sizeof(out->detail), "%s: %s; no answer %s", h->backend, error,
                 text);
    } else {
        out->ready = true;
        out->detail[0] = '\0';
    }
}
