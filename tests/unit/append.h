/*
 * Appends for the store tests: a request prepared with a fixed body, submitted,
 * and waited for on a condition variable (the answer comes on the writer's thread).
 */
#ifndef SY_TEST_APPEND_H
#define SY_TEST_APPEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "util/clock.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

struct req {
    struct sy_append a;
    bool done;
    char id[64];
};

static void on_done(struct sy_append *a)
{
    pthread_mutex_lock(&mu);
    ((struct req *)a)->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static const char body[] = "{\"id\":\"x\",\"type\":\"scm.pull_request.created\"}";

static void prepare(struct req *r, const char *id, const char *type)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->a.id = r->id;
    r->a.id_len = strlen(r->id);
    r->a.type = type;
    r->a.type_len = strlen(type);
    r->a.integration = "github";
    r->a.body = body;
    r->a.body_len = strlen(body);
    r->a.headers = "{}";
    r->a.headers_len = 2;
    r->a.received_ms = sy_wall_ms();
    r->a.done = on_done;
}

/* Wait for a request submitted before (sy_store_submit returned SY_OK). */
static void wait_done(struct req *r)
{
    pthread_mutex_lock(&mu);
    while (!r->done) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
}

/* Submit a prepared request and wait for the answer; returns the status, sets *is_new. */
static int submit_wait(struct sy_store *st, struct req *r, bool *is_new)
{
    int rc = sy_store_submit(st, &r->a);
    if (rc != SY_OK) {
        return rc;
    }
    wait_done(r);
    *is_new = r->a.is_new;
    return r->a.status;
}

#endif
