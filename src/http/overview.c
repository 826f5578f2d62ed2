#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "http/overview.h"
#include "metrics.h"
#include "util/clock.h"

/* What one sample holds: counters (rates are their differences) and gauges. */
enum {
    C_ACCEPTED,
    C_DUPLICATE,
    C_REJECTED,
    C_QUARANTINED,
    C_DONE,
    C_RETRY,
    C_DEAD,
    C_UNIZO_OK,
    C_UNIZO_FAILED,
    C_UNIZO_COUNT, /* attempts, for the mean latency */
    C_UNIZO_MICRO, /* their summed time */
    G_QUEUED,
    G_DEAD_WAITING,
    N_VALUES
};

struct sample {
    double at; /* monotonic seconds */
    uint64_t v[N_VALUES];
};

struct sy_overview {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    int every_s;
    int keep;
    int n, next; /* samples held; where the next goes */
    struct sample *ring;
};

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void take(struct sample *s)
{
    memset(s, 0, sizeof(*s));
    s->at = sy_mono_s();
    for (int r = 0; r < SY_R__COUNT; r++) {
        uint64_t n = load(&sy_metrics.requests[r]);
        int slot = r == SY_R_ACCEPTED      ? C_ACCEPTED
                   : r == SY_R_DUPLICATE   ? C_DUPLICATE
                   : r == SY_R_QUARANTINED ? C_QUARANTINED
                                           : C_REJECTED;
        s->v[slot] += n;
    }
    uint64_t jobs[4];
    sy_metrics_totals(jobs, &s->v[C_UNIZO_OK], &s->v[C_UNIZO_FAILED]);
    s->v[C_DONE] = jobs[0] + jobs[1];
    s->v[C_RETRY] = jobs[2];
    s->v[C_DEAD] = jobs[3];
    s->v[C_UNIZO_COUNT] = load(&sy_metrics.unizo_seconds.count);
    s->v[C_UNIZO_MICRO] = load(&sy_metrics.unizo_seconds.sum_micro);
    s->v[G_QUEUED] = load(&sy_metrics.jobs_queued);
    s->v[G_DEAD_WAITING] = load(&sy_metrics.jobs_dead);
}

static void *sampler(void *arg)
{
    struct sy_overview *o = arg;
    pthread_setname_np(pthread_self(), "sy-overview");
    pthread_mutex_lock(&o->mu);
    while (!o->stop) {
        struct sample s;
        take(&s);
        o->ring[o->next] = s;
        o->next = (o->next + 1) % o->keep;
        o->n = o->n < o->keep ? o->n + 1 : o->keep;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += o->every_s;
        while (!o->stop && pthread_cond_timedwait(&o->cv, &o->mu, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

struct sy_overview *sy_overview_start(int every_s, int keep)
{
    struct sy_overview *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->ring = calloc((size_t)keep, sizeof(*o->ring))) == NULL) {
        free(o);
        return NULL;
    }
    o->every_s = every_s;
    o->keep = keep;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->tid, NULL, sampler, o) != 0) {
        free(o->ring);
        free(o);
        return NULL;
    }
    return o;
}

void sy_overview_stop(struct sy_overview *o)
{
    if (o == NULL) {
        return;
    }
    pthread_mutex_lock(&o->mu);
    o->stop = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->tid, NULL);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o->ring);
    free(o);
}

static const struct {
    const char *name, *label, *unit, *link;
    int value;
    bool gauge;
} series[] = {
    {"accepted", "Accepted", "/s", "#/events", C_ACCEPTED, false},
    {"duplicate", "Duplicates", "/s", "#/events", C_DUPLICATE, false},
    {"rejected", "Rejected (4xx, 503)", "/s", "#/events", C_REJECTED, false},
    {"quarantined", "Quarantined", "/s", "#/quarantine", C_QUARANTINED, false},
    {"jobs_done", "Jobs done", "/s", "#/events?state=done", C_DONE, false},
    {"jobs_retrying", "Attempts failed, retrying", "/s", "#/events?state=retrying", C_RETRY,
     false},
    {"jobs_dead", "Jobs gone dead", "/s", "#/events?state=dead", C_DEAD, false},
    {"queue", "Jobs queued", "", "#/events?state=pending", G_QUEUED, true},
    {"dead_waiting", "Dead jobs waiting for a replay", "", "#/events?state=dead",
     G_DEAD_WAITING, true},
    {"unizo_ok", "Unizo calls answered 2xx", "/s", "#/events", C_UNIZO_OK, false},
    {"unizo_failed", "Unizo calls failed", "/s", "#/events?state=retrying", C_UNIZO_FAILED,
     false},
};

json_t *sy_overview_json(struct sy_overview *o)
{
    pthread_mutex_lock(&o->mu);
    int n = o->n;
    struct sample *s = malloc((size_t)(n ? n : 1) * sizeof(*s));
    for (int i = 0; s != NULL && i < n; i++) {
        s[i] = o->ring[(o->next - n + i + o->keep) % o->keep];
    }
    pthread_mutex_unlock(&o->mu);
    json_t *out = json_pack("{s:i, s:[]}", "every_s", o->every_s, "series");
    if (s == NULL || out == NULL) {
        free(s);
        json_decref(out);
        return NULL;
    }
    struct sample now;
    take(&now); /* the newest point is now, not up to every_s ago */
    json_t *arr = json_object_get(out, "series");
    size_t ns = sizeof(series) / sizeof(series[0]);
    for (size_t k = 0; k <= ns; k++) {
        bool latency = k == ns;
        json_t *values = json_array();
        double last = 0;
        for (int i = 0; i < n; i++) {
            const struct sample *a = &s[i], *b = i + 1 < n ? &s[i + 1] : &now;
            double dt = b->at - a->at;
            double v;
            if (latency) {
                uint64_t c = b->v[C_UNIZO_COUNT] - a->v[C_UNIZO_COUNT];
                v = c ? (double)(b->v[C_UNIZO_MICRO] - a->v[C_UNIZO_MICRO]) / 1000.0 / (double)c
                      : 0;
            } else if (series[k].gauge) {
                v = (double)b->v[series[k].value];
            } else {
                v = dt > 0 ? (double)(b->v[series[k].value] - a->v[series[k].value]) / dt : 0;
            }
            last = v;
            json_array_append_new(values, json_real((double)(int64_t)(v * 100) / 100));
        }
        json_t *e = latency ? json_pack("{s:s, s:s, s:s, s:s}", "name", "unizo_latency", "label",
                                        "Unizo call time (mean)", "unit", "ms", "link", "#/rules")
                            : json_pack("{s:s, s:s, s:s, s:s}", "name", series[k].name, "label",
                                        series[k].label, "unit", series[k].unit, "link",
                                        series[k].link);
        if (e != NULL) {
            json_object_set_new(e, "now", json_real((double)(int64_t)(last * 100) / 100));
            json_object_set_new(e, "values", values);
            json_array_append_new(arr, e);
        } else {
            json_decref(values);
        }
    }
    free(s);
    return out;
}
