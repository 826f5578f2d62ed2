#ifndef SY_UNIZO_CLIENT_H
#define SY_UNIZO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * The Unizo API client. One per worker thread: it owns a curl multi handle
 * on which many calls are in flight at once, reusing connections; not
 * thread-safe. Without an API key in the config it runs dry: every call is
 * logged and answered locally.
 */
struct sy_unizo;
struct sy_flow;

struct sy_unizo_request {
    const char *method;          /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *path;            /* after base_url, starting with '/', already escaped */
    const char *query;           /* "a=1&b=2", already escaped; may be NULL */
    const char *body;            /* JSON text; may be NULL */
    const char *integration;     /* a name from unizo.integrations (or a raw id); may be NULL */
    const char *idempotency_key; /* "<event id>/<handler>/<call index>"; may be NULL */
    const char *endpoint;        /* label for metrics: "create_ticket", "request", ... */
    const char *event_id;        /* the event whose job calls; names the record-mode cassette */
};

struct sy_unizo_response {
    long status; /* HTTP status of the last attempt; 0 when none got through */
    char *body;  /* new, NUL-terminated (may be empty); free with free() */
    size_t len;
    int attempts;    /* HTTP attempts made */
    bool dry_run;    /* nothing was sent */
    char error[256]; /* transport error of the last attempt, when status is 0 */
};

/*
 * 'cfg' is borrowed and must outlive the client; so must 'flow' (the
 * instance's caps per integration, unizo/flow.h; NULL = none). NULL on failure.
 */
struct sy_unizo *sy_unizo_new(const struct sy_config *cfg, struct sy_flow *flow);
/* Calls still in flight are dropped without their done(). NULL is a no-op. */
void sy_unizo_free(struct sy_unizo *u);

/*
 * Start one call in the background, retrying 429, 502, 503, 504 and
 * connection errors with full-jitter exponential backoff (Retry-After and
 * X-RateLimit-Reset-After honoured; a 429 or Retry-After holds every call to
 * the integration, see flow.h). Each attempt waits for its integration's
 * slot and rate. Returns SY_EAGAIN: done(ctx, rc) follows from
 * sy_unizo_poll (or a blocking sy_unizo_call) with 'resp' filled and rc
 * SY_OK when an HTTP answer arrived (any status) or SY_EUNAVAIL when every
 * attempt failed to get one. Returns SY_OK when answered at once (dry run),
 * or SY_ENOMEM; then done() is not called. 'req' and 'resp' are borrowed
 * until done().
 */
int sy_unizo_start(struct sy_unizo *u, const struct sy_unizo_request *req,
                   struct sy_unizo_response *resp, void (*done)(void *ctx, int rc), void *ctx);

/*
 * Move the calls in flight on for up to timeout_ms (less when one is due
 * sooner), calling done() for each that ended. Returns how many are still in flight.
 */
int sy_unizo_poll(struct sy_unizo *u, int timeout_ms);

/* Calls started and not done (waiting for a slot or a retry included). */
size_t sy_unizo_in_flight(const struct sy_unizo *u);

/*
 * Make one call and wait for its answer (sy_unizo_start, then poll until its
 * done): the client's other calls in flight go on meanwhile, and their
 * done() callbacks run from inside. Returns SY_OK or SY_EUNAVAIL as done()
 * would; resp->body is always set on return.
 */
int sy_unizo_call(struct sy_unizo *u, const struct sy_unizo_request *req,
                  struct sy_unizo_response *resp);

/* The configured organization and collection of an integration (either may be NULL). */
void sy_unizo_defaults(const struct sy_unizo *u, const char *integration, const char **organization,
                       const char **collection);

#endif
