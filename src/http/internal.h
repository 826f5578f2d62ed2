#ifndef SY_HTTP_INTERNAL_H
#define SY_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <h2o.h>

#include "config.h"
#include "http/conn_table.h"
#include "http/console.h"
#include "ingest/verify.h"
#include "store/store.h"
#include "util/buf.h"

/* One event loop thread. Everything in it belongs to that thread once started. */
struct sy_loop {
    struct sy_server *srv;
    pthread_t tid;
    bool running;
    h2o_globalconf_t *conf; /* set before the thread starts */
    const int *fds;
    size_t n_fds;
    bool webhook;
    int init_status; /* SY_OK or the error the thread hit while setting up */
    struct sy_error init_err;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t done_rx; /* store completions (struct sy_pending) */
    h2o_multithread_receiver_t ctl_rx;  /* control messages from the main thread */
    h2o_socket_t **listeners;
    size_t n_listeners;
    struct sy_verifier *verifier; /* NULL on the admin loop */
    /* the admin loop's: deadlines of store requests run off the loop, and their answers */
    h2o_timeout_t store_deadline, long_deadline;
    h2o_multithread_receiver_t jobs_rx;
    struct sy_buf log_held;       /* request lines of the batch being answered (webhook.c) */
    bool exit;
};

struct sy_server {
    const struct sy_config *cfg;
    struct sy_store *store;
    struct sy_engine *engine;
    h2o_globalconf_t conf;
    h2o_globalconf_t admin_conf;
    SSL_CTX *ssl_ctx;
    int *listen_fds;
    size_t n_listen;
    int admin_fd; /* -1 when the admin listener is off */
    struct sy_loop *loops;
    size_t n_loops;
    struct sy_loop admin;
    uint64_t inflight;              /* requests waiting for the store (atomic) */
    int open_conns;                 /* webhook connections open now (atomic) */
    struct sy_conn_table *per_addr; /* open webhook connections per client address */
    struct sy_console *console;     /* the console's sessions (the admin loop's) */
    struct sy_overview *overview;   /* the console's samples; NULL without an admin listener */
    struct sy_admin_pool *jobs;     /* admin requests that need the store (admin_jobs.c) */
    pthread_mutex_t init_mu;        /* guards n_ready while the loops set themselves up */
    pthread_cond_t init_cv;
    size_t n_ready;
};

/* webhook.c: the handler and the completion receiver, run on a loop thread. */
int sy_webhook_on_req(h2o_handler_t *self, h2o_req_t *req);
void sy_webhook_on_done(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages);

/* admin.c */
int sy_admin_on_req(h2o_handler_t *self, h2o_req_t *req);
/* Answer 405 naming the method to use; send a JSON value (taken) as the whole answer. */
int sy_admin_method_not_allowed(h2o_req_t *req, const char *allow);
struct json_t;
void sy_admin_send_json(h2o_req_t *req, int status, const char *reason, struct json_t *v);
/* admin_replay.c: POST /admin/replay */
int sy_admin_replay(h2o_req_t *req, struct sy_server *srv);

/*
 * admin_jobs.c: admin requests that need the store run on worker threads, off
 * the admin loop, with a deadline (admin.store_timeout): the loop goes on
 * answering probes, /metrics and the console while the store hangs.
 *
 * An answer: 'body' (taken) as JSON with 'status', or else {"error": error,
 * "detail": detail}. A 503 carries Retry-After.
 */
struct sy_admin_answer {
    int status;
    struct json_t *body;
    const char *error;
    char detail[1024];
    bool retry_after;
};
void sy_admin_answer_error(struct sy_admin_answer *out, int status, const char *error,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The store part of a request: runs on an admin worker thread with 'arg' (the loop's copy). */
typedef void (*sy_admin_work_fn)(struct sy_server *srv, void *arg, struct sy_admin_answer *out);
enum sy_admin_kind {
    SY_ADMIN_READ,       /* past the deadline: 503 */
    SY_ADMIN_WRITE,      /* past the deadline: 503, saying the change may still be made */
    SY_ADMIN_LONG_READ,  /* the same with a deadline of at least 30 s (a replay by filter, */
    SY_ADMIN_LONG_WRITE, /* which may read a week of events: a dry run, or not) */
};
/*
 * Answer 'req' with what work(srv, arg) gives on a worker, or 503
 * store_unavailable once the deadline passes (or at once when too many wait).
 * Takes 'arg', freed with free_arg (NULL: free()) whether or not work ran.
 * Admin loop only; returns 0 for h2o.
 */
int sy_admin_defer(h2o_req_t *req, struct sy_server *srv, enum sy_admin_kind kind,
                   sy_admin_work_fn work, void *arg, void (*free_arg)(void *arg));
/* Start the workers (before the admin loop), attach the loop (in its thread), stop them. */
int sy_admin_jobs_start(struct sy_server *srv);
void sy_admin_jobs_attach(struct sy_loop *lp);
void sy_admin_jobs_stop(struct sy_server *srv);

/* Send 'body' as a complete response with a content length, keeping the connection alive. */
void sy_http_send(h2o_req_t *req, int status, const char *reason, const char *content_type,
                  const char *body, size_t len);

/* Send {"error": code, "detail": detail}. */
void sy_http_send_error(h2o_req_t *req, int status, const char *reason, const char *code,
                        const char *detail);

static inline struct sy_loop *sy_loop_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(struct sy_loop, ctx, req->conn->ctx);
}

#endif
