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
#include "engine/alerts.h"
#include "engine/engine_int.h"
#include "engine/journal.h"
#include "metrics.h"
#include "util/clock.h"
#include "util/log.h"

/*
 * A Lua state built from one generation's rules, shared by the jobs running
 * in it (each in its own coroutine). A state retired (the generation moved
 * on, or a job hit a limit in it) takes no new job and is freed when its
 * last job ends.
 */
struct wstate {
    struct sy_lua *lx;
    int users;
    struct wstate *next; /* on w->retired */
};

/* One job in flight on a worker: what a handler gets. */
struct run {
    struct worker *w;
    struct sy_job *job;
    struct sy_journal journal;
    struct sy_journal_call call;   /* the Unizo call it waits for */
    struct sy_unizo_response resp; /* ...and its answer */
    int call_rc;
    struct wstate *st;       /* the state its coroutine runs in */
    struct sy_lua_co *co;    /* its rule's run, while it lasts */
    const char *counted;     /* the rule whose running count it holds (engine caps), or NULL */
    long concurrency;        /* its rule's cap; 0 = none */
    double t0;
    void (*report)(void *ctx, const struct sy_attempt *a);
    void *report_ctx;
    struct run *next; /* on w->ready or w->held */
    char err[4096];
};

enum run_result {
    RUN_DONE,
    RUN_SKIPPED,   /* the rule's 'when' said no */
    RUN_FAILED,    /* retry on the schedule */
    RUN_PERMANENT, /* straight to dead */
    RUN_WAITING,   /* its coroutine waits for a call (or the job for its rule's slot) */
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
    /* blocking (a plugin's call): the worker's other calls in flight go on meanwhile */
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

/* The client finished a rule's call: the run goes on in the worker's loop, not from here. */
static void call_done(void *ctx, int rc)
{
    struct run *r = ctx;
    struct worker *w = r->w;
    r->call_rc = rc;
    r->next = NULL;
    *w->ready_tail = r;
    w->ready_tail = &r->next;
}

/*
 * A rule's call: sent in the background (the rule's coroutine yields) unless
 * the journal answers it, it is dry, or a test's transport answers it at once.
 */
static int lua_unizo_call(void *ctx, void *run, struct sy_unizo_request *req,
                          struct sy_unizo_response *resp)
{
    (void)ctx;
    return run_call(run, req, resp); /* blocking: the worker's other calls go on meanwhile */
}

static int lua_unizo_start(void *ctx, void *run, struct sy_unizo_request *req,
                           struct sy_unizo_response *resp)
{
    struct worker *w = ctx;
    struct run *r = run;
    if (w->eng->hooks.send != NULL || w->unizo == NULL) {
        return run_call(run, req, resp);
    }
    int rc = sy_journal_begin(&r->journal, req, &r->call, resp);
    if (rc != SY_EAGAIN) {
        return rc;
    }
    rc = sy_unizo_start(w->unizo, &r->call.req, &r->resp, call_done, r);
    if (rc == SY_EAGAIN) {
        return SY_EAGAIN;
    }
    sy_journal_end(&r->journal, &r->call, &r->resp);
    *resp = r->resp;
    memset(&r->resp, 0, sizeof(r->resp));
    return rc;
}

static int lua_unizo_result(void *ctx, void *run, struct sy_unizo_response *resp)
{
    (void)ctx;
    struct run *r = run;
    *resp = r->resp;
    memset(&r->resp, 0, sizeof(r->resp));
    return r->call_rc;
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

/* ---- the worker's Lua states ---- */

static void state_release(struct worker *w, struct wstate *st)
{
    if (st == NULL || --st->users > 0 || st == w->cur) {
        return;
    }
    for (struct wstate **pp = &w->retired; *pp; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    }
    sy_lua_free(st->lx);
    free(st);
}

/* Take no new job in the current state; it goes when its last job ends. */
static void state_retire(struct worker *w, struct wstate *st)
{
    if (st == NULL || st != w->cur) {
        return;
    }
    w->cur = NULL;
    if (st->users == 0) {
        sy_lua_free(st->lx);
        free(st);
        return;
    }
    st->next = w->retired;
    w->retired = st;
}

/* The state new rule jobs run in, built from the worker's generation when there is none. */
static struct wstate *state_current(struct worker *w, char *err, size_t errlen)
{
    if (w->cur != NULL) {
        return w->cur;
    }
    struct sy_lua_limits lim = sy_rule_limits(w->eng->cfg);
    struct sy_lua_host host = {.ctx = w,
                               .kv_get = kv_get,
                               .kv_set = kv_set,
                               .kv_delete = kv_delete,
                               .unizo_call = lua_unizo_call,
                               .unizo_start = lua_unizo_start,
                               .unizo_result = lua_unizo_result,
                               .unizo_defaults = worker_defaults,
                               .log = w->eng->hooks.log ? rule_log : NULL,
                               .now_s = w->eng->hooks.now_ms ? rule_now_s : NULL};
    struct sy_error e;
    struct wstate *st = calloc(1, sizeof(*st));
    /* from the generation's captured source: a file changed on disk is not read here */
    if (st == NULL || (st->lx = sy_rule_gen_state(w->gen, &lim, &host, &e)) == NULL) {
        char msg[1024] = "out of memory";
        if (st != NULL) {
            sy_error_format(&e, msg, sizeof(msg));
        }
        snprintf(err, errlen, "cannot build the rule state: %s", msg);
        free(st);
        return NULL;
    }
    w->cur = st;
    return st;
}

/* ---- the two kinds of handler ---- */

static enum run_result lua_outcome(struct run *r, enum sy_lua_result res)
{
    switch (res) {
    case SY_LUA_YIELDED:
        return RUN_WAITING;
    case SY_LUA_OK:
        return RUN_DONE;
    case SY_LUA_SKIPPED:
        return RUN_SKIPPED;
    case SY_LUA_PERMANENT:
        return RUN_PERMANENT;
    case SY_LUA_LIMIT:
        /* a state that hit a limit may be half-way through anything: start clean */
        state_retire(r->w, r->st);
        return RUN_FAILED;
    default:
        return RUN_FAILED;
    }
}

static enum run_result run_rule(const struct handler *h, struct run *r)
{
    (void)h;
    struct worker *w = r->w;
    struct sy_job *job = r->job;
    r->st = state_current(w, r->err, sizeof(r->err));
    if (r->st == NULL) {
        return RUN_FAILED;
    }
    r->st->users++;
    return lua_outcome(r, sy_lua_co_start(r->st->lx, &r->co, job->handler, job->event_id,
                                          job->body, job->body_len, job->norm, job->norm_len, r,
                                          r->err, sizeof(r->err)));
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

/* The handler of 'name': a plugin, or a rule of the worker's generation (its cap in *cap). */
static bool resolve(const struct worker *w, const char *name, struct handler *h, long *cap)
{
    *cap = 0;
    h->plugin = sy_engine_plugin(w->eng, name);
    if (h->plugin != NULL) {
        h->run = run_plugin;
        return true;
    }
    h->run = run_rule;
    const struct sy_lua_rule *rule = sy_rule_gen_find(w->gen, name);
    *cap = rule ? rule->concurrency : 0;
    return rule != NULL;
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

/* Build new jobs' state from the current generation from now on, if it changed. */
static void follow_generation(struct worker *w)
{
    struct sy_rule_gen *g = sy_engine_gen(w->eng);
    if (g == w->gen) {
        sy_rule_gen_release(g);
        return;
    }
    state_retire(w, w->cur);
    sy_rule_gen_release(w->gen);
    w->gen = g;
}

/* Everything before the handler runs: is it there, and what does the store hold for it. */
static enum run_result prepare(struct worker *w, struct run *r, struct handler *h)
{
    struct sy_job *job = r->job;
    if (!resolve(w, job->handler, h, &r->concurrency)) {
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
    return RUN_DONE;
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

/*
 * Tell the rules a job went dead (switchyard.job.dead), unless it was a job of an alert:
 * a rule on alerts that fails raises none about itself. The id names the job and its run,
 * so the same death stored twice is one event.
 */
static void alert_dead(struct worker *w, const struct sy_job *job, const char *error)
{
    char runs[24], id[SY_ALERT_ID_MAX];
    snprintf(runs, sizeof(runs), "%d", job->runs + 1);
    const char *parts[] = {job->event_id, job->handler, runs};
    sy_alert_make_id(id, "job.dead", parts, 3);
    json_t *data = json_pack("{s:s, s:s, s:s?, s:i}", "event_id", job->event_id, "rule",
                             job->handler, "error", error, "attempts", job->attempts + 1);
    sy_alert_emit(w->eng->store, "switchyard.job.dead", id, data);
}

/* The attempt is over: record its outcome and free the run. */
static void end_run(struct worker *w, struct run *r, enum run_result res)
{
    struct sy_job *job = r->job;
    enum sy_job_outcome outcome;
    int64_t retry_at = 0;
    switch (res) {
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
    sy_lua_co_free(r->co);
    r->co = NULL;
    state_release(w, r->st);
    if (r->counted != NULL) {
        sy_engine_rule_release(w->eng, r->counted);
    }
    sy_journal_dispose(&r->journal);
    free(r->resp.body);
    w->running--;

    double took = sy_mono_s() - r->t0;
    sy_metrics_job(job->handler, outcome, took);
    const char *error = r->err[0] ? r->err : NULL;
    if (r->report != NULL) {
        struct sy_attempt a = {.event_id = job->event_id,
                               .handler = job->handler,
                               .attempt = job->attempts + 1,
                               .outcome = outcome,
                               .error = error,
                               .retry_at_ms = retry_at};
        r->report(r->report_ctx, &a);
    } else {
        log_outcome(w, job, outcome, error, retry_at, took);
    }
    if (outcome == SY_JOB_DEAD && !sy_alert_id(job->event_id) &&
        sy_engine_wants(w->eng, "switchyard.job.dead")) {
        alert_dead(w, job, error);
    }
    sy_store_finish(w->eng->store, job, outcome, error, retry_at);
    free(r);
}

/* Run the job's handler now (its rule's slot is taken): to its end, or to its first wait. */
static void begin_run(struct worker *w, struct run *r, const struct handler *h)
{
    w->running++;
    enum run_result res = h->run(h, r);
    if (res != RUN_WAITING) {
        end_run(w, r, res);
    }
}

/* How long a paused rule's job waits before it is looked at again. */
#define PAUSED_RECHECK_MS 2000
/* ...and a job of a rule at its concurrency when its worker holds enough waiting ones. */
#define CAPPED_RECHECK_MS 500

/* Jobs waiting for their rule's slot a worker keeps at most: a quarter of its in-flight slots. */
static int held_cap(const struct worker *w)
{
    int cap = w->eng->cfg->max_in_flight / 4;
    return cap > 0 ? cap : 1;
}

/* The job's rule is paused: the job goes back to the store, pending, its attempts untouched. */
static void defer_paused(struct worker *w, struct sy_job *job)
{
    sy_log(SY_LOG_DEBUG, "job waits: its rule is paused", "rule", job->handler, "event",
           job->event_id, NULL);
    sy_store_finish(w->eng->store, job, SY_JOB_DEFER, NULL,
                    sy_engine_now_ms(w->eng) + PAUSED_RECHECK_MS);
}

static void start_job(struct worker *w, struct sy_job *job,
                      void (*report)(void *ctx, const struct sy_attempt *a), void *ctx)
{
    follow_generation(w);
    if (sy_engine_paused(w->eng, job->handler)) {
        defer_paused(w, job);
        return;
    }
    struct run *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        sy_job_free(job); /* still pending in the store: it runs again after a restart */
        sy_log(SY_LOG_ERROR, "out of memory for a job; it stays pending", NULL);
        return;
    }
    r->w = w;
    r->job = job;
    r->t0 = sy_mono_s();
    r->report = report;
    r->report_ctx = ctx;
    sy_journal_init(&r->journal, job->event_id, job->handler, send_unizo, w);
    r->journal.keep = keep_call;
    r->journal.keep_ctx = r;
    struct handler h;
    enum run_result res = prepare(w, r, &h);
    if (res != RUN_DONE) {
        w->running++;
        end_run(w, r, res);
        return;
    }
    if (!sy_engine_rule_take(w->eng, job->handler, r->concurrency)) {
        /* its rule runs as many jobs as it may: this one waits, pending, using no attempt */
        if (w->n_held >= held_cap(w)) {
            /* the worker holds enough waiting jobs: more would keep other rules' jobs out */
            sy_journal_dispose(&r->journal);
            free(r);
            sy_store_finish(w->eng->store, job, SY_JOB_DEFER, NULL,
                            sy_engine_now_ms(w->eng) + CAPPED_RECHECK_MS);
            return;
        }
        r->next = NULL;
        *w->held_tail = r;
        w->held_tail = &r->next;
        w->n_held++;
        return;
    }
    r->counted = job->handler;
    begin_run(w, r, &h);
}

/* Start the held jobs whose rule has a free slot now, in the order they came. */
static void start_held(struct worker *w)
{
    struct run **pp = &w->held;
    while (*pp != NULL) {
        struct run *r = *pp;
        bool paused = sy_engine_paused(w->eng, r->job->handler);
        if (!paused && !sy_engine_rule_take(w->eng, r->job->handler, r->concurrency)) {
            pp = &r->next;
            continue;
        }
        if (paused) {
            *pp = r->next;
            w->n_held--;
            sy_journal_dispose(&r->journal);
            defer_paused(w, r->job);
            free(r);
            continue;
        }
        *pp = r->next;
        w->n_held--;
        r->counted = r->job->handler;
        struct handler h;
        long cap;
        if (!resolve(w, r->job->handler, &h, &cap)) {
            w->running++;
            snprintf(r->err, sizeof(r->err), "rule '%s' no longer exists (removed by a reload)",
                     r->job->handler);
            end_run(w, r, RUN_PERMANENT);
        } else {
            begin_run(w, r, &h);
        }
    }
    w->held_tail = pp;
}

/* Go on with the runs whose call was answered. */
static void resume_ready(struct worker *w)
{
    while (w->ready != NULL) {
        struct run *r = w->ready;
        w->ready = r->next;
        if (w->ready == NULL) {
            w->ready_tail = &w->ready;
        }
        sy_journal_end(&r->journal, &r->call, &r->resp);
        enum run_result res = lua_outcome(r, sy_lua_co_resume(r->co, r->err, sizeof(r->err)));
        if (res != RUN_WAITING) {
            end_run(w, r, res);
        }
    }
}

/* One turn of the worker's loop: calls move on, answered runs go on, held jobs start. */
static void turn(struct worker *w, int timeout_ms)
{
    resume_ready(w);
    bool stopping = __atomic_load_n(&w->eng->stop, __ATOMIC_ACQUIRE); /* start nothing new */
    if (w->held != NULL && !stopping) {
        start_held(w);
    }
    if (w->unizo != NULL && sy_unizo_in_flight(w->unizo) > 0) {
        sy_unizo_poll(w->unizo, w->ready ? 0 : timeout_ms);
    } else if (w->held != NULL && !stopping && timeout_ms > 0) {
        struct timespec nap = {0, 5 * 1000 * 1000}; /* a slot frees in another worker */
        nanosleep(&nap, NULL);
    }
    resume_ready(w);
}

void sy_worker_run_job(struct worker *w, struct sy_job *job,
                       void (*report)(void *ctx, const struct sy_attempt *a), void *ctx)
{
    start_job(w, job, report, ctx);
    while (w->running > 0 || w->n_held > 0 || w->ready != NULL) {
        turn(w, 50);
    }
}

void sy_worker_init(struct worker *w, struct sy_engine *eng, int index, unsigned seed)
{
    memset(w, 0, sizeof(*w));
    w->eng = eng;
    w->index = index;
    w->seed = seed;
    w->ready_tail = &w->ready;
    w->held_tail = &w->held;
}

void *sy_worker_main(void *arg)
{
    struct worker *w = arg;
    struct sy_engine *eng = w->eng;
    char name[16];
    snprintf(name, sizeof(name), "sy-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    w->unizo = sy_unizo_new(eng->cfg, eng->flow);
    if (w->unizo == NULL) {
        sy_log(SY_LOG_ERROR, "cannot create the Unizo client; rules' Unizo calls will fail",
               NULL);
    }
    int cap = eng->cfg->max_in_flight > 0 ? eng->cfg->max_in_flight : 1;
    for (;;) {
        bool stopping = __atomic_load_n(&eng->stop, __ATOMIC_ACQUIRE);
        if (stopping && w->running == 0 && w->ready == NULL) {
            break; /* held jobs never started: they stay pending in the store */
        }
        while (!stopping && w->running + w->n_held < cap) {
            bool idle = w->running == 0 && w->n_held == 0;
            struct sy_job *job = sy_store_next_job(eng->store, idle ? 200 : 0);
            if (job == NULL) {
                break;
            }
            start_job(w, job, NULL, NULL);
        }
        if (w->running > 0 || w->n_held > 0 || w->ready != NULL) {
            turn(w, 10);
        }
    }
    sy_worker_dispose(w);
    return NULL;
}

void sy_worker_dispose(struct worker *w)
{
    while (w->held != NULL) {
        struct run *r = w->held;
        w->held = r->next;
        sy_journal_dispose(&r->journal);
        sy_job_free(r->job);
        free(r);
    }
    w->n_held = 0;
    w->held_tail = &w->held;
    sy_unizo_free(w->unizo); /* before the states: nothing in flight refers to them then */
    w->unizo = NULL;
    state_retire(w, w->cur);
    while (w->retired != NULL) {
        struct wstate *st = w->retired;
        w->retired = st->next;
        sy_lua_free(st->lx);
        free(st);
    }
    sy_rule_gen_release(w->gen);
    w->gen = NULL;
}
