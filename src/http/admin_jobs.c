/*
 * Admin requests that need the store (event lists and details, replays,
 * rules, pause and resume) run on worker threads of their own, off the admin
 * loop, each with a deadline: when the store hangs, the loop goes on serving
 * the probes, /metrics and the console, and a request whose deadline passes
 * is answered 503 store_unavailable. Its work, when the store finally
 * answers, is dropped.
 *
 * A job is made and freed on the admin loop; between the two a worker runs
 * it and hands it back through the loop's receiver. The request is the
 * loop's alone: a guard in its pool tells the job when the client went away.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http/internal.h"
#include "util/log.h"

#define ADMIN_WORKERS 2
#define ADMIN_QUEUE_MAX 64         /* jobs waiting for a worker; more are answered 503 at once */
#define LONG_DEADLINE_MS 30000     /* a replay by filter may read a week of events */

struct job_guard;

struct admin_job {
    h2o_multithread_message_t msg; /* back to the admin loop once run */
    struct admin_job *next;        /* the queue */
    struct admin_job *prev_all, *next_all; /* every job not yet freed (for the shutdown) */
    struct sy_server *srv;
    h2o_req_t *req;          /* admin loop only; NULL once answered or gone */
    struct job_guard *guard; /* in req's pool */
    h2o_timeout_entry_t deadline;
    enum sy_admin_kind kind;
    uint64_t deadline_ms;
    sy_admin_work_fn work;
    void *arg;
    void (*free_arg)(void *arg);
    struct sy_admin_answer answer; /* the worker's */
};

struct job_guard {
    struct admin_job *job;
};

struct sy_admin_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct admin_job *head, *tail; /* waiting for a worker */
    size_t queued;
    struct admin_job *all;
    pthread_t threads[ADMIN_WORKERS];
    size_t n_threads;
    bool closing;
};

void sy_admin_answer_error(struct sy_admin_answer *out, int status, const char *error,
                           const char *fmt, ...)
{
    out->status = status;
    out->error = error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
    va_end(ap);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static void send_answer(h2o_req_t *req, struct sy_admin_answer *a)
{
    if (a->retry_after || a->status == 503) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       H2O_STRLIT("1"));
    }
    if (a->body != NULL) {
        json_t *body = a->body;
        a->body = NULL;
        sy_admin_send_json(req, a->status, reason_of(a->status), body);
        return;
    }
    if (a->error == NULL) {
        sy_http_send_error(req, 500, "Internal Server Error", "internal", "no answer was made");
        return;
    }
    sy_http_send_error(req, a->status, reason_of(a->status), a->error, a->detail);
}

/* The loop is done with the request: the job no longer answers it. */
static void let_go(struct admin_job *job)
{
    if (job->guard != NULL) {
        job->guard->job = NULL;
        job->guard = NULL;
    }
    job->req = NULL;
}

static void on_guard_dispose(void *p)
{
    struct job_guard *g = p;
    if (g->job != NULL) {
        g->job->req = NULL;
        g->job->guard = NULL;
    }
}

static void job_free(struct sy_admin_pool *pool, struct admin_job *job)
{
    pthread_mutex_lock(&pool->mu);
    if (job->prev_all != NULL) {
        job->prev_all->next_all = job->next_all;
    } else {
        pool->all = job->next_all;
    }
    if (job->next_all != NULL) {
        job->next_all->prev_all = job->prev_all;
    }
    pthread_mutex_unlock(&pool->mu);
    json_decref(job->answer.body);
    job->free_arg(job->arg);
    free(job);
}

/* The deadline passed before the store answered (admin loop). */
static void on_deadline(h2o_timeout_entry_t *entry)
{
    struct admin_job *job = H2O_STRUCT_FROM_MEMBER(struct admin_job, deadline, entry);
    if (job->req == NULL) {
        return;
    }
    struct sy_store_health h;
    sy_store_health(job->srv->store, &h);
    struct sy_admin_answer a = {0};
    sy_admin_answer_error(&a, 503, "store_unavailable",
                          "the store did not answer within %.1f s (%s)%s",
                          (double)job->deadline_ms / 1000.0,
                          h.ready ? "it is busy" : h.detail,
                          job->kind == SY_ADMIN_WRITE || job->kind == SY_ADMIN_LONG_WRITE
                              ? "; the change may still be made when it answers"
                              : "");
    h2o_req_t *req = job->req;
    let_go(job);
    send_answer(req, &a);
}

/* Jobs the workers ran, back on the admin loop: answer what is still waiting, free them. */
static void on_done(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    struct sy_loop *lp = H2O_STRUCT_FROM_MEMBER(struct sy_loop, jobs_rx, rx);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct admin_job *job = H2O_STRUCT_FROM_MEMBER(struct admin_job, msg, m);
        if (h2o_timeout_is_linked(&job->deadline)) {
            h2o_timeout_unlink(&job->deadline);
        }
        if (job->req != NULL) {
            h2o_req_t *req = job->req;
            let_go(job);
            send_answer(req, &job->answer);
        }
        job_free(lp->srv->jobs, job);
    }
}

static void *worker_main(void *arg)
{
    struct sy_server *srv = arg;
    struct sy_admin_pool *pool = srv->jobs;
    pthread_setname_np(pthread_self(), "sy-admin-job");
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->head == NULL && !pool->closing) {
            pthread_cond_wait(&pool->cv, &pool->mu);
        }
        if (pool->closing) {
            break;
        }
        struct admin_job *job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL) {
            pool->tail = NULL;
        }
        pool->queued--;
        pthread_mutex_unlock(&pool->mu);
        job->work(srv, job->arg, &job->answer);
        h2o_multithread_send_message(&srv->admin.jobs_rx, &job->msg);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

int sy_admin_defer(h2o_req_t *req, struct sy_server *srv, enum sy_admin_kind kind,
                   sy_admin_work_fn work, void *arg, void (*free_arg)(void *arg))
{
    struct sy_admin_pool *pool = srv->jobs;
    struct sy_loop *lp = &srv->admin;
    struct admin_job *job = pool != NULL ? calloc(1, sizeof(*job)) : NULL;
    free_arg = free_arg != NULL ? free_arg : free;
    if (job == NULL) {
        free_arg(arg);
        sy_http_send_error(req, 503, "Service Unavailable", "store_unavailable",
                           "out of memory");
        return 0;
    }
    job->srv = srv;
    job->req = req;
    job->kind = kind;
    job->work = work;
    job->arg = arg;
    job->free_arg = free_arg;
    job->deadline.cb = on_deadline;
    job->deadline_ms = srv->cfg->admin.store_timeout_ms;
    pthread_mutex_lock(&pool->mu);
    bool full = pool->queued >= ADMIN_QUEUE_MAX || pool->closing;
    if (!full) {
        if (pool->tail != NULL) {
            pool->tail->next = job;
        } else {
            pool->head = job;
        }
        pool->tail = job;
        pool->queued++;
        job->next_all = pool->all;
        if (pool->all != NULL) {
            pool->all->prev_all = job;
        }
        pool->all = job;
        pthread_cond_signal(&pool->cv);
    }
    pthread_mutex_unlock(&pool->mu);
    if (full) {
        free_arg(arg);
        free(job);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       H2O_STRLIT("1"));
        sy_http_send_error(req, 503, "Service Unavailable", "store_unavailable",
                           "too many admin requests are waiting for the store");
        return 0;
    }
    job->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*job->guard), on_guard_dispose);
    job->guard->job = job;
    bool long_job = kind == SY_ADMIN_LONG_READ || kind == SY_ADMIN_LONG_WRITE;
    if (long_job && job->deadline_ms < LONG_DEADLINE_MS) {
        job->deadline_ms = LONG_DEADLINE_MS;
        h2o_timeout_link(lp->ctx.loop, &lp->long_deadline, &job->deadline);
    } else {
        h2o_timeout_link(lp->ctx.loop, &lp->store_deadline, &job->deadline);
    }
    return 0;
}

void sy_admin_jobs_attach(struct sy_loop *lp)
{
    uint64_t ms = lp->srv->cfg->admin.store_timeout_ms;
    h2o_timeout_init(lp->ctx.loop, &lp->store_deadline, ms);
    h2o_timeout_init(lp->ctx.loop, &lp->long_deadline, ms > LONG_DEADLINE_MS ? ms : LONG_DEADLINE_MS);
    h2o_multithread_register_receiver(lp->queue, &lp->jobs_rx, on_done);
}

int sy_admin_jobs_start(struct sy_server *srv)
{
    struct sy_admin_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return SY_ENOMEM;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    srv->jobs = pool;
    for (size_t i = 0; i < ADMIN_WORKERS; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, srv) != 0) {
            return SY_ENOMEM;
        }
        pool->n_threads++;
    }
    return SY_OK;
}

void sy_admin_jobs_stop(struct sy_server *srv)
{
    struct sy_admin_pool *pool = srv->jobs;
    if (pool == NULL) {
        return;
    }
    pthread_mutex_lock(&pool->mu);
    pool->closing = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    /* a worker inside a store call returns when the store gives up on it (its own timeouts) */
    for (size_t i = 0; i < pool->n_threads; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    /* the admin loop has stopped: what it did not free (queued, or run and not yet back) */
    while (pool->all != NULL) {
        job_free(pool, pool->all);
    }
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
    srv->jobs = NULL;
}
