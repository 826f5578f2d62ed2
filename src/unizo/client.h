#ifndef SY_UNIZO_CLIENT_H
#define SY_UNIZO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * The Unizo API client. One per worker thread (it owns a curl easy handle,
 * so connections are reused); not thread-safe. Without an API key in the
 * config it runs dry: every call is logged and answered locally.
 */
struct sy_unizo;

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

/* 'cfg' is borrowed and must outlive the client. NULL on failure. */
struct sy_unizo *sy_unizo_new(const struct sy_config *cfg);
void sy_unizo_free(struct sy_unizo *u);

/*
 * Make one call, retrying 429, 502, 503, 504 and connection errors with
 * full-jitter exponential backoff (Retry-After and X-RateLimit-Reset-After
 * honoured). Other statuses are returned at once. Returns SY_OK when an HTTP
 * answer arrived (any status; check resp->status) or SY_EUNAVAIL when every
 * attempt failed to get one. resp->body is always set on return.
 */
int sy_unizo_call(struct sy_unizo *u, const struct sy_unizo_request *req,
                  struct sy_unizo_response *resp);

/* The configured organization and collection of an integration (either may be NULL). */
void sy_unizo_defaults(const struct sy_unizo *u, const char *integration, const char **organization,
                       const char **collection);

#endif
