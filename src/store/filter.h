#ifndef SY_STORE_FILTER_H
#define SY_STORE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/*
 * Which events a page of the event list holds (the console's Events page,
 * GET /admin/events, `switchyard events`), newest first.
 *
 * A page examines at most a fixed number of events (the backend's scan
 * budget) past its cursor, so a page costs the same on a store of a
 * thousand events or of ten million, whatever the filters. A page that
 * ran out of budget before it filled returns the matches it found and a
 * cursor to go on from ("next"); only a page with no "next" ends the list.
 *
 * Every field is optional (NULL or 0 = any):
 *   state        an event state (routed, unrouted, quarantined), or a job
 *                state (pending, retrying, dead, done, skipped): an event
 *                with at least one job in it
 *   type         a route pattern (core/router.h: "scm.pull_request.*")
 *   integration  the integration type, exactly ("github")
 *   category     the delivery category, exactly ("scm")
 *   since_ms, until_ms   received in [since, until)
 *   text         an event id, or bytes the body holds (case-sensitive)
 *   cursor       a previous page's "next"; its meaning is the backend's
 *   limit        events per page, 1..SY_LIST_MAX; 0 = 50
 *
 * Pure functions; allocate nothing; any thread.
 */
#define SY_LIST_MAX 200
#define SY_LIST_TEXT_MAX 256
#define SY_CURSOR_MAX 64

struct sy_event_filter {
    const char *state;
    const char *type;
    const char *integration;
    const char *category;
    int64_t since_ms, until_ms;
    const char *text;
    const char *cursor;
    int limit;
};

/* SY_OK, or SY_EINVAL with a message naming the bad field in 'err'. */
int sy_event_filter_check(const struct sy_event_filter *f, struct sy_error *err);

/* The page size 'f' asks for (its limit, or 50). */
int sy_event_filter_limit(const struct sy_event_filter *f);

/* True when f->state names a job state (filtered on the event's jobs). */
bool sy_event_filter_job_state(const struct sy_event_filter *f);

/*
 * True when an event with these fields passes every filter except text and
 * a job state. 'integration' and 'category' may be NULL (none).
 */
bool sy_event_filter_head(const struct sy_event_filter *f, const char *type,
                          const char *integration, const char *category, int64_t received_ms,
                          const char *state);

/* True when f has no text filter, or 'id' is it, or the body holds it. */
bool sy_event_filter_text(const struct sy_event_filter *f, const char *id, const char *body,
                          size_t body_len);

#endif
