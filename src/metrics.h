#ifndef SY_METRICS_H
#define SY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/*
 * Process-wide counters and histograms, updated with relaxed atomics from
 * any thread and rendered in the Prometheus text format by the admin thread.
 */

/* Every answer the webhook endpoint gives; the name is the JSON "status"/"error" code. */
enum sy_result {
    SY_R_ACCEPTED,
    SY_R_DUPLICATE,
    SY_R_FORBIDDEN_IP,
    SY_R_TOO_LARGE,
    SY_R_MISSING_TIMESTAMP,
    SY_R_STALE_TIMESTAMP,
    SY_R_MISSING_SIGNATURE,
    SY_R_INVALID_SIGNATURE,
    SY_R_UNSUPPORTED_MEDIA_TYPE,
    SY_R_INVALID_JSON,
    SY_R_INVALID_EVENT,
    SY_R_UNAVAILABLE,
    SY_R_NOT_FOUND,
    SY_R_METHOD_NOT_ALLOWED,
    SY_R_QUARANTINED, /* authentic, stored, but it cannot be routed as it is */
    SY_R__COUNT
};

const char *sy_result_name(enum sy_result r);
/* The result whose name is 'name' ("stale_timestamp"); SY_R_INVALID_EVENT when none is. */
enum sy_result sy_result_from_name(const char *name);

#define SY_HIST_MAX_BUCKETS 16

struct sy_histogram {
    const char *name;
    const char *help;
    size_t n_bounds;
    double bounds[SY_HIST_MAX_BUCKETS];
    uint64_t buckets[SY_HIST_MAX_BUCKETS + 1]; /* last is +Inf */
    uint64_t count;
    uint64_t sum_micro; /* sum of observations, in millionths */
};

void sy_histogram_observe(struct sy_histogram *h, double v);

struct sy_metrics {
    uint64_t requests[SY_R__COUNT];
    struct sy_histogram commit_seconds; /* one transaction: BEGIN..COMMIT including fsync */
    struct sy_histogram batch_size;     /* events per commit */
    uint64_t queue_depth;               /* events waiting for the writer (gauge) */
    uint64_t store_errors;
    uint64_t conns_refused;            /* closed at once: over http.max_connections */
    uint64_t conns_refused_address;    /* closed at once: over http.max_connections_per_address */
    uint64_t conns_refused_forbidden;  /* closed at once: a direct peer outside webhook.allow */
    uint64_t jobs_queued;              /* jobs runnable, running or waiting to retry (gauge) */
    uint64_t jobs_dead;                /* jobs waiting for a replay (gauge) */
    struct sy_histogram job_seconds;   /* one attempt of one handler */
    struct sy_histogram unizo_seconds; /* one HTTP attempt to the Unizo API */
    uint64_t unizo_retries;
    uint64_t unizo_replayed;   /* calls answered from the journal of an earlier attempt */
    uint64_t rule_generations; /* rule generations alive (gauge): current + held by workers */
};

/*
 * Count one finished attempt of handler 'rule' with 'outcome' (the values of
 * enum sy_job_outcome: done, skipped, retry, dead). Any thread.
 */
void sy_metrics_job(const char *rule, int outcome, double seconds);

/* Count one HTTP attempt to the Unizo API (status 0 = no answer). Any thread. */
void sy_metrics_unizo(const char *endpoint, long status, double seconds, bool retry);

extern struct sy_metrics sy_metrics;

static inline void sy_metrics_add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static inline void sy_metrics_set(uint64_t *gauge, uint64_t v)
{
    __atomic_store_n(gauge, v, __ATOMIC_RELAXED);
}

/*
 * Totals for the console's samples: finished attempts of every handler by
 * outcome (done, skipped, retry, dead), and Unizo HTTP attempts answered 2xx
 * and not (another status, or no answer). Any thread.
 */
void sy_metrics_totals(uint64_t jobs[4], uint64_t *unizo_ok, uint64_t *unizo_failed);

/* One handler's finished attempts by outcome (done, skipped, retry, dead). Any thread. */
void sy_metrics_rule(const char *rule, uint64_t out[4]);

/*
 * The 99th percentile of one handler's attempt durations since the start, in
 * seconds (within 19% above, up to 706 s: longer reads as 706), or 0 before
 * its first. Any thread.
 */
double sy_metrics_rule_p99(const char *rule);

/* Append the whole exposition to 'out'. */
void sy_metrics_render(struct sy_buf *out);

#endif
