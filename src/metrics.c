#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

static const char *const result_names[SY_R__COUNT] = {
    [SY_R_ACCEPTED] = "accepted",
    [SY_R_DUPLICATE] = "duplicate",
    [SY_R_FORBIDDEN_IP] = "forbidden_ip",
    [SY_R_TOO_LARGE] = "too_large",
    [SY_R_MISSING_TIMESTAMP] = "missing_timestamp",
    [SY_R_STALE_TIMESTAMP] = "stale_timestamp",
    [SY_R_MISSING_SIGNATURE] = "missing_signature",
    [SY_R_INVALID_SIGNATURE] = "invalid_signature",
    [SY_R_UNSUPPORTED_MEDIA_TYPE] = "unsupported_media_type",
    [SY_R_INVALID_JSON] = "invalid_json",
    [SY_R_INVALID_EVENT] = "invalid_event",
    [SY_R_UNAVAILABLE] = "unavailable",
    [SY_R_NOT_FOUND] = "not_found",
    [SY_R_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [SY_R_QUARANTINED] = "quarantined",
};

struct sy_metrics sy_metrics = {
    .commit_seconds = {.name = "switchyard_store_commit_seconds",
                       .help = "Time of one store transaction, fsync included.",
                       .n_bounds = 12,
                       .bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1, 0.25, 1}},
    .job_seconds = {.name = "switchyard_job_duration_seconds",
                    .help = "Time of one attempt of one handler.",
                    .n_bounds = 12,
                    .bounds = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30}},
    .unizo_seconds = {.name = "switchyard_unizo_request_seconds",
                      .help = "Time of one HTTP attempt to the Unizo API.",
                      .n_bounds = 12,
                      .bounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}},
    .batch_size = {.name = "switchyard_store_batch_size",
                   .help = "Events committed together by one group commit.",
                   .n_bounds = 10,
                   .bounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024}},
};

#define MAX_RULES 512
#define N_OUTCOMES 4
static const char *const outcome_names[N_OUTCOMES] = {"done", "skipped", "retry", "dead"};

/*
 * Per-rule job durations, for their p99: bucket k holds attempts that took up
 * to DUR_BASE_S * 2^(k/4) (a quarter octave, so a quantile is within 19%),
 * from 50 us to about 12 minutes (706 s); the last bucket holds anything
 * longer, so a p99 beyond it reads as 706 s.
 */
#define DUR_BUCKETS 96
#define DUR_BASE_S 0.00005

/* Per-rule counters; rules are few and stable, so a locked array is enough. */
static struct {
    char name[96];
    uint64_t count[N_OUTCOMES];
    uint64_t dur[DUR_BUCKETS];
} rules[MAX_RULES];
static size_t n_rules;
static pthread_mutex_t rules_mu = PTHREAD_MUTEX_INITIALIZER;

void sy_metrics_job(const char *rule, int outcome, double seconds)
{
    sy_histogram_observe(&sy_metrics.job_seconds, seconds);
    if (outcome < 0 || outcome >= N_OUTCOMES) {
        return;
    }
    pthread_mutex_lock(&rules_mu);
    size_t i = 0;
    while (i < n_rules && strcmp(rules[i].name, rule) != 0) {
        i++;
    }
    if (i == n_rules && n_rules < MAX_RULES) {
        snprintf(rules[i].name, sizeof(rules[i].name), "%s", rule);
        n_rules++;
    }
    if (i < n_rules) {
        rules[i].count[outcome]++;
        double k = seconds > DUR_BASE_S ? ceil(4 * log2(seconds / DUR_BASE_S)) : 0;
        rules[i].dur[k < DUR_BUCKETS - 1 ? (size_t)k : DUR_BUCKETS - 1]++;
    }
    pthread_mutex_unlock(&rules_mu);
}

#define MAX_UNIZO_SERIES 256

/* Unizo requests by endpoint and status. */
static struct {
    char endpoint[48];
    long status;
    uint64_t count;
} unizo_series[MAX_UNIZO_SERIES];
static size_t n_unizo;

void sy_metrics_unizo(const char *endpoint, long status, double seconds, bool retry)
{
    sy_histogram_observe(&sy_metrics.unizo_seconds, seconds);
    if (retry) {
        sy_metrics_add(&sy_metrics.unizo_retries, 1);
    }
    pthread_mutex_lock(&rules_mu);
    size_t i = 0;
    while (i < n_unizo &&
           (unizo_series[i].status != status || strcmp(unizo_series[i].endpoint, endpoint) != 0)) {
        i++;
    }
    if (i == n_unizo && n_unizo < MAX_UNIZO_SERIES) {
        snprintf(unizo_series[i].endpoint, sizeof(unizo_series[i].endpoint), "%s", endpoint);
        unizo_series[i].status = status;
        n_unizo++;
    }
    if (i < n_unizo) {
        unizo_series[i].count++;
    }
    pthread_mutex_unlock(&rules_mu);
}

void sy_metrics_totals(uint64_t jobs[4], uint64_t *unizo_ok, uint64_t *unizo_failed)
{
    pthread_mutex_lock(&rules_mu);
    memset(jobs, 0, 4 * sizeof(*jobs));
    for (size_t i = 0; i < n_rules; i++) {
        for (int o = 0; o < N_OUTCOMES; o++) {
            jobs[o] += rules[i].count[o];
        }
    }
    *unizo_ok = *unizo_failed = 0;
    for (size_t i = 0; i < n_unizo; i++) {
        bool ok = unizo_series[i].status >= 200 && unizo_series[i].status <= 299;
        *(ok ? unizo_ok : unizo_failed) += unizo_series[i].count;
    }
    pthread_mutex_unlock(&rules_mu);
}

void sy_metrics_rule(const char *rule, uint64_t out[4])
{
    pthread_mutex_lock(&rules_mu);
    memset(out, 0, 4 * sizeof(*out));
    for (size_t i = 0; i < n_rules; i++) {
        if (strcmp(rules[i].name, rule) == 0) {
            memcpy(out, rules[i].count, 4 * sizeof(*out));
        }
    }
    pthread_mutex_unlock(&rules_mu);
}

double sy_metrics_rule_p99(const char *rule)
{
    double out = 0;
    pthread_mutex_lock(&rules_mu);
    for (size_t i = 0; i < n_rules; i++) {
        if (strcmp(rules[i].name, rule) != 0) {
            continue;
        }
        uint64_t all = 0, seen = 0;
        for (size_t k = 0; k < DUR_BUCKETS; k++) {
            all += rules[i].dur[k];
        }
        /* the first bucket by which 99% of the attempts had finished */
        for (size_t k = 0; all > 0 && k < DUR_BUCKETS; k++) {
            seen += rules[i].dur[k];
            if (seen * 100 >= all * 99) {
                out = DUR_BASE_S * exp2((double)k / 4);
                break;
            }
        }
    }
    pthread_mutex_unlock(&rules_mu);
    return out;
}

const char *sy_result_name(enum sy_result r)
{
    return r < SY_R__COUNT ? result_names[r] : "unknown";
}

enum sy_result sy_result_from_name(const char *name)
{
    for (int r = 0; r < SY_R__COUNT; r++) {
        if (strcmp(result_names[r], name) == 0) {
            return (enum sy_result)r;
        }
    }
    return SY_R_INVALID_EVENT;
}

void sy_histogram_observe(struct sy_histogram *h, double v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) {
        i++;
    }
    __atomic_fetch_add(&h->buckets[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_micro, (uint64_t)(v * 1e6), __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void render_histogram(struct sy_buf *out, const struct sy_histogram *h)
{
    sy_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    uint64_t cum = 0;
    for (size_t i = 0; i < h->n_bounds; i++) {
        cum += load(&h->buckets[i]);
        sy_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i],
                      (unsigned long long)cum);
    }
    cum += load(&h->buckets[h->n_bounds]);
    sy_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", h->name, (unsigned long long)cum);
    sy_buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", h->name, (double)load(&h->sum_micro) / 1e6,
                  h->name, (unsigned long long)load(&h->count));
}

void sy_metrics_render(struct sy_buf *out)
{
    sy_buf_puts(out, "# HELP switchyard_webhook_requests_total Webhook requests by result.\n"
                     "# TYPE switchyard_webhook_requests_total counter\n");
    for (int r = 0; r < SY_R__COUNT; r++) {
        sy_buf_printf(out, "switchyard_webhook_requests_total{result=\"%s\"} %llu\n",
                      result_names[r], (unsigned long long)load(&sy_metrics.requests[r]));
    }
    sy_buf_puts(out, "# HELP switchyard_jobs_total Finished job attempts by rule and outcome.\n"
                     "# TYPE switchyard_jobs_total counter\n");
    pthread_mutex_lock(&rules_mu);
    for (size_t i = 0; i < n_rules; i++) {
        for (int o = 0; o < N_OUTCOMES; o++) {
            sy_buf_puts(out, "switchyard_jobs_total{rule=");
            sy_buf_json_string(out, rules[i].name, strlen(rules[i].name));
            sy_buf_printf(out, ",outcome=\"%s\"} %llu\n", outcome_names[o],
                          (unsigned long long)rules[i].count[o]);
        }
    }
    pthread_mutex_unlock(&rules_mu);
    render_histogram(out, &sy_metrics.job_seconds);
    sy_buf_puts(out, "# HELP switchyard_unizo_requests_total HTTP attempts to the Unizo API by "
                     "endpoint and status (0 = no answer).\n"
                     "# TYPE switchyard_unizo_requests_total counter\n");
    pthread_mutex_lock(&rules_mu);
    for (size_t i = 0; i < n_unizo; i++) {
        sy_buf_printf(out, "switchyard_unizo_requests_total{endpoint=\"%s\",status=\"%ld\"} %llu\n",
                      unizo_series[i].endpoint, unizo_series[i].status,
                      (unsigned long long)unizo_series[i].count);
    }
    pthread_mutex_unlock(&rules_mu);
    sy_buf_printf(out,
                  "# HELP switchyard_unizo_retries_total Unizo API attempts that were retries.\n"
                  "# TYPE switchyard_unizo_retries_total counter\n"
                  "switchyard_unizo_retries_total %llu\n",
                  (unsigned long long)load(&sy_metrics.unizo_retries));
    sy_buf_printf(out,
                  "# HELP switchyard_unizo_replayed_total Unizo calls a retried job did not "
                  "send again: answered from the journal of an earlier attempt.\n"
                  "# TYPE switchyard_unizo_replayed_total counter\n"
                  "switchyard_unizo_replayed_total %llu\n",
                  (unsigned long long)load(&sy_metrics.unizo_replayed));
    sy_buf_printf(out,
                  "# HELP switchyard_rule_generations Compiled rule sets in memory: the current "
                  "one and any a worker still uses.\n"
                  "# TYPE switchyard_rule_generations gauge\n"
                  "switchyard_rule_generations %llu\n",
                  (unsigned long long)load(&sy_metrics.rule_generations));
    render_histogram(out, &sy_metrics.unizo_seconds);
    sy_buf_printf(out,
                  "# HELP switchyard_jobs_queued Jobs runnable, running or waiting for a retry.\n"
                  "# TYPE switchyard_jobs_queued gauge\n"
                  "switchyard_jobs_queued %llu\n",
                  (unsigned long long)load(&sy_metrics.jobs_queued));
    sy_buf_printf(out,
                  "# HELP switchyard_jobs_dead Dead jobs waiting for a replay.\n"
                  "# TYPE switchyard_jobs_dead gauge\n"
                  "switchyard_jobs_dead %llu\n",
                  (unsigned long long)load(&sy_metrics.jobs_dead));
    render_histogram(out, &sy_metrics.commit_seconds);
    render_histogram(out, &sy_metrics.batch_size);
    sy_buf_printf(out,
                  "# HELP switchyard_store_queue_depth Events waiting for the store writer.\n"
                  "# TYPE switchyard_store_queue_depth gauge\n"
                  "switchyard_store_queue_depth %llu\n",
                  (unsigned long long)load(&sy_metrics.queue_depth));
    sy_buf_printf(out,
                  "# HELP switchyard_connections_refused_total Webhook connections closed as "
                  "they were accepted, by reason.\n"
                  "# TYPE switchyard_connections_refused_total counter\n"
                  "switchyard_connections_refused_total{reason=\"max_connections\"} %llu\n"
                  "switchyard_connections_refused_total{reason=\"per_address\"} %llu\n"
                  "switchyard_connections_refused_total{reason=\"not_allowed\"} %llu\n",
                  (unsigned long long)load(&sy_metrics.conns_refused),
                  (unsigned long long)load(&sy_metrics.conns_refused_address),
                  (unsigned long long)load(&sy_metrics.conns_refused_forbidden));
    sy_buf_printf(out,
                  "# HELP switchyard_store_errors_total Failed store transactions.\n"
                  "# TYPE switchyard_store_errors_total counter\n"
                  "switchyard_store_errors_total %llu\n",
                  (unsigned long long)load(&sy_metrics.store_errors));
}
