/*
 * The worker pool: each worker takes a job, resolves its handler (a Lua rule
 * of the current generation or a C plugin, behind one interface), runs one
 * attempt with the job's call path (journal) and kv bound to it, decides the
 * outcome with the retry policy, and records it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/retry.h"
#include "engine/engine_int.h"
#include "engine/journal.h"
#include "metrics.h"
#include "util/clock.h"
#include "util/log.h"

/* One attempt of one job: what a handler gets. */
struct run {
    struct worker *w;
    struct sy_job *job;
    struct sy_journal journal;
    char err[4096];
};

enum run_result {
    RUN_DONE,
    RUN_SKIPPED,   /* the rule's 'when' said no */
    RUN_FAILED,    /* retry on the schedule */
    RUN_PERMANENT, /* straight to dead */
};

/* The one handler interface: a Lua rule or a C plugin. */
struct handler {
    enum run_result (*run)(const struct handler *h, struct run *r);
    const struct sy_loaded_plugin *plugin; /* plugins only */
};

/* ---- what a running job reaches: kv, Unizo calls (through its journal) ---- */

static int kv_get(void *ctx, void *run, const char *key, char **value)
{
    struct worker *w = ctx;
    struct run *r = run;
    if (r == NULL) {
        return SY_EINVAL; /* not while a file loads: it would run at every state rebuild */
    }
    return sy_store_kv_get(w->eng->store, r->job, key, value);
}

static int kv_set(void *ctx, void *run, const char *key, const char *value, uint64_t ttl_ms)
{
    struct worker *w = ctx;
    struct run *r = run;
    return r ? sy_store_kv_set(w->eng->store, r->job, key, value, ttl_ms) : SY_EINVAL;
}

static int kv_delete(void *ctx, void *run, const char *key)
{
    struct worker *w = ctx;
    struct run *r = run;
    return r ? sy_store_kv_delete(w->eng->store, r->job, key) : SY_EINVAL;
}

static int send_unizo(void *ctx, const struct sy_unizo_request *req, struct sy_unizo_response *resp)
{
    struct worker *w = ctx;
    if (w->eng->hooks.send != NULL) {
        return w->eng->hooks.send(w->eng->hooks.ctx, req, resp);
    }
    if (w->unizo == NULL) {
        memset(resp, 0, sizeof(*resp));
        snprintf(resp->error, sizeof(resp->error), "the Unizo client could not be created");
        return SY_EUNAVAIL;
    }
    return sy_unizo_call(w->unizo, req, resp);
}

static void keep_call(void *ctx, struct sy_call_record *rec)
{
    struct run *r = ctx;
    sy_store_journal_add(r->w->eng->store, r->job, rec);
}

static int run_call(void *run, struct sy_unizo_request *req, struct sy_unizo_response *resp)
{
    struct run *r = run;
    return sy_journal_call(&r->journal, req, resp);
}

static int lua_unizo_call(void *ctx, void *run, struct sy_unizo_request *req,
                          struct sy_unizo_response *resp)
{
    (void)ctx;
    return run_call(run, req, resp);
}

static void worker_defaults(void *ctx, const char *integration, const char **org,
                            const char **collection)
{
    struct worker *w = ctx;
    *org = *collection = NULL;
    if (w->unizo != NULL) {
        sy_unizo_defaults(w->unizo, integration, org, collection);
    }
}

static void run_defaults(void *run, const char *integration, const char **org,
                         const char **collection)
{
    worker_defaults(((struct run *)run)->w, integration, org, collection);
}

static void rule_log(void *ctx, lua_State *L, int level, const char *msg, int fields_idx)
{
    struct worker *w = ctx;
    w->eng->hooks.log(w->eng->hooks.ctx, L, level, msg, fields_idx);
}

static int64_t rule_now_s(void *ctx)
{
    struct worker *w = ctx;
    return sy_engine_now_ms(w->eng) / 1000;
}

/* ---- the two kinds of handler ---- */

static enum run_result run_rule(const struct handler *h, struct run *r)
{
    (void)h;
    struct worker *w = r->w;
    struct sy_job *job = r->job;
    if (w->lx == NULL) {
        struct sy_lua_limits lim = sy_rule_limits(w->eng->cfg);
        struct sy_lua_host host = {.ctx = w,
                                   .kv_get = kv_get,
                                   .kv_set = kv_set,
                                   .kv_delete = kv_delete,
                                   .unizo_call = lua_unizo_call,
                                   .unizo_defaults = worker_defaults,
                                   .log = w->eng->hooks.log ? rule_log : NULL,
                                   .now_s = w->eng->hooks.now_ms ? rule_now_s : NULL};
        struct sy_error err;
        /* from the generation's captured source: a file changed on disk is not read here */
        w->lx = sy_rule_gen_state(w->gen, &lim, &host, &err);
        if (w->lx == NULL) {
            char msg[1024];
            sy_error_format(&err, msg, sizeof(msg));
            snprintf(r->err, sizeof(r->err), "cannot build the rule state: %s", msg);
            return RUN_FAILED;
        }
    }
    switch (sy_lua_run(w->lx, job->handler, job->event_id, job->body, job->body_len, job->norm,
                       job->norm_len, r, r->err, sizeof(r->err))) {
    case SY_LUA_OK:
        return RUN_DONE;
    case SY_LUA_SKIPPED:
        return RUN_SKIPPED;
    case SY_LUA_PERMANENT:
        return RUN_PERMANENT;
    case SY_LUA_LIMIT:
        /* a state that hit a limit may be half-way through anything: start clean */
        sy_lua_free(w->lx);
        w->lx = NULL;
        return RUN_FAILED;
    default:
        return RUN_FAILED;
    }
}

static enum run_result run_plugin(const struct handler *h, struct run *r)
{
    struct sy_job *job = r->job;
    json_t *obj = json_loadb(job->body, job->body_len, 0, NULL);
    json_t *norm = job->norm ? json_loadb(job->norm, job->norm_len, 0, NULL) : NULL;
    if (json_is_object(obj) && json_is_object(norm)) {
        json_object_update(obj, norm); /* the normalized envelope over the body's members */
    }
    json_decref(norm);
    json_t *integ = json_object_get(json_object_get(obj, "integration"), "type");
    struct sy_event ev = {.id = job->event_id,
                          .type = json_string_value(json_object_get(obj, "type")),
                          .integration = json_string_value(integ),
                          .json = job->body,
                          .len = job->body_len,
                          .obj = obj};
    struct sy_plugin_call call = {.unizo_call = run_call,
                                  .unizo_defaults = run_defaults,
                                  .ctx = r,
                                  .store = r->w->eng->store,
                                  .job = job,
                                  .handler = job->handler};
    int prc = sy_plugin_handle(h->plugin, &ev, &call);
    json_decref(obj);
    if (prc == SY_OK) {
        return RUN_DONE;
    }
    if (prc == SY_FAIL) {
        snprintf(r->err, sizeof(r->err), "plugin '%s' failed (SY_FAIL)", job->handler);
        return RUN_PERMANENT;
    }
    snprintf(r->err, sizeof(r->err), "plugin '%s' asked for a retry (%s)", job->handler,
             prc == SY_RETRY ? "SY_RETRY" : "unknown return value");
    return RUN_FAILED;
}

/* The handler of 'name': a plugin, or a rule of the worker's generation. */
static bool resolve(const struct worker *w, const char *name, struct handler *h)
{
    h->plugin = sy_engine_plugin(w->eng, name);
    if (h->plugin != NULL) {
        h->run = run_plugin;
        return true;
    }
    h->run = run_rule;
    return sy_rule_gen_find(w->gen, name) != NULL;
}

/* ---- one job ---- */

/* What a failed attempt leads to under the retry policy; sets *retry_at. */
static enum sy_job_outcome after_failure(struct worker *w, const struct sy_job *job,
                                         int64_t *retry_at)
{
    const struct sy_config *cfg = w->eng->cfg;
    struct sy_backoff policy = {.schedule_ms = cfg->retry.schedule_ms,
                                .n_schedule = cfg->retry.n_schedule,
                                .jitter = cfg->retry.jitter};
    double rnd = (double)rand_r(&w->seed) / ((double)RAND_MAX + 1.0);
    int64_t delay = sy_backoff_delay(&policy, (unsigned)job->attempts, rnd, -1);
    if (delay < 0) {
        return SY_JOB_DEAD;
    }
    *retry_at = sy_engine_now_ms(w->eng) + delay;
    return SY_JOB_RETRY;
}

/* Build the worker's state from the current generation from now on, if it changed. */
static void follow_generation(struct worker *w)
{
    struct sy_rule_gen *g = sy_engine_gen(w->eng);
    if (g == w->gen) {
        sy_rule_gen_release(g);
        return;
    }
    sy_lua_free(w->lx);
    w->lx = NULL;
    sy_rule_gen_release(w->gen);
    w->gen = g;
}

static enum run_result attempt(struct worker *w, struct run *r)
{
    struct sy_job *job = r->job;
    struct handler h;
    if (!resolve(w, job->handler, &h)) {
        snprintf(r->err, sizeof(r->err), "rule '%s' no longer exists (removed by a reload)",
                 job->handler);
        return RUN_PERMANENT;
    }
    int rc = sy_store_load_body(w->eng->store, job);
    if (rc != SY_OK) {
        snprintf(r->err, sizeof(r->err), "%s",
                 rc == SY_ENOTFOUND ? "the event is no longer stored"
                                    : "cannot run: the event could not be read from the store");
        return rc == SY_ENOTFOUND ? RUN_PERMANENT : RUN_FAILED;
    }
    if (!job->fresh) {
        /* it ran before (or may have, before a restart): its journal answers repeated calls */
        struct sy_call_record *prior = NULL;
        size_t n = 0;
        if (sy_store_journal_load(w->eng->store, job, &prior, &n) != SY_OK) {
            snprintf(r->err, sizeof(r->err),
                     "cannot run: the job's journal could not be read from the store");
            return RUN_FAILED;
        }
        sy_journal_set_prior(&r->journal, prior, n, job->runs);
    }
    return h.run(&h, r);
}

/* The attempt's lines in the process log (workers; an inline run reports to its caller). */
static void log_outcome(struct worker *w, const struct sy_job *job, enum sy_job_outcome outcome,
                        const char *error, int64_t retry_at, double took)
{
    char ms[32], att[32], max[32];
    snprintf(ms, sizeof(ms), "%.3f", took * 1000);
    snprintf(att, sizeof(att), "%d", job->attempts + 1);
    snprintf(max, sizeof(max), "%zu", w->eng->cfg->retry.n_schedule + 1);
    if (outcome == SY_JOB_DONE || outcome == SY_JOB_SKIPPED) {
        sy_log(SY_LOG_INFO, outcome == SY_JOB_DONE ? "job done" : "job skipped (when)", "rule",
               job->handler, "event", job->event_id, "ms", ms, NULL);
    } else if (outcome == SY_JOB_RETRY) {
        char in[32];
        snprintf(in, sizeof(in), "%.1fs", (double)(retry_at - sy_engine_now_ms(w->eng)) / 1000.0);
        sy_log(SY_LOG_WARN, "job failed; will retry", "rule", job->handler, "event",
               job->event_id, "attempt", att, "of", max, "retry_in", in, "error", error, NULL);
    } else {
        sy_log(SY_LOG_ERROR, "job dead", "rule", job->handler, "event", job->event_id, "attempt",
               att, "error", error, NULL);
    }
}

void sy_worker_run_job(struct worker *w, struct sy_job *job,
                       void (*report)(void *ctx, const struct sy_attempt *a), void *ctx)
{
    double t0 = sy_mono_s();
    follow_generation(w);
    struct run r = {.w = w, .job = job};
    sy_journal_init(&r.journal, job->event_id, job->handler, send_unizo, w);
    r.journal.keep = keep_call;
    r.journal.keep_ctx = &r;

    enum sy_job_outcome outcome;
    int64_t retry_at = 0;
    switch (attempt(w, &r)) {
    case RUN_DONE:
        outcome = SY_JOB_DONE;
        break;
    case RUN_SKIPPED:
        outcome = SY_JOB_SKIPPED;
        break;
    case RUN_PERMANENT:
        outcome = SY_JOB_DEAD;
        break;
    default:
        outcome = after_failure(w, job, &retry_at);
    }
    sy_journal_dispose(&r.journal);

    double took = sy_mono_s() - t0;
    sy_metrics_job(job->handler, outcome, took);
    const char *error = r.err[0] ? r.err : NULL;
    if (report != NULL) {
        struct sy_attempt a = {.event_id = job->event_id,
                               .handler = job->handler,
                               .attempt = job->attempts + 1,
                               .outcome = outcome,
                               .error = error,
                               .retry_at_ms = retry_at};
        report(ctx, &a);
    } else {
        log_outcome(w, job, outcome, error, retry_at, took);
    }
    sy_store_finish(w->eng->store, job, outcome, r.err[0] ? r.err : NULL, retry_at);
}

void *sy_worker_main(void *arg)
{
    struct worker *w = arg;
    struct sy_engine *eng = w->eng;
    char name[16];
    snprintf(name, sizeof(name), "sy-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    w->unizo = sy_unizo_new(eng->cfg);
    if (w->unizo == NULL) {
        sy_log(SY_LOG_ERROR, "cannot create the Unizo client; rules' Unizo calls will fail",
               NULL);
    }
    while (!__atomic_load_n(&eng->stop, __ATOMIC_ACQUIRE)) {
        struct sy_job *job = sy_store_next_job(eng->store, 200);
        if (job != NULL) {
            sy_worker_run_job(w, job, NULL, NULL);
        }
    }
    sy_worker_dispose(w);
    return NULL;
}

void sy_worker_dispose(struct worker *w)
{
    sy_lua_free(w->lx);
    w->lx = NULL;
    sy_rule_gen_release(w->gen);
    w->gen = NULL;
    sy_unizo_free(w->unizo);
    w->unizo = NULL;
}
