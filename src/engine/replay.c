#include <stdlib.h>
#include <string.h>

#include "core/router.h"
#include "engine/engine_int.h"
#include "engine/replay.h"

#define BATCH 256

struct replay {
    struct sy_engine *eng;
    const struct sy_replay_sel *sel;
    sy_replay_line_fn line;
    void *ctx;
    struct sy_replay_report *rep;
    struct sy_routes routes;
    struct sy_rerun items[BATCH];
    char *owned[BATCH * 3]; /* the items' strings */
    size_t n;
};

static void drop_batch(struct replay *r)
{
    for (size_t i = 0; i < r->n * 3; i++) {
        free(r->owned[i]);
    }
    r->n = 0;
}

static int flush(struct replay *r)
{
    long queued = 0;
    int rc = r->sel->dry_run ? SY_OK : sy_store_rerun(r->eng->store, r->items, r->n, &queued);
    drop_batch(r);
    return rc;
}

static int add(struct replay *r, const char *event_id, const char *handler, const char *key)
{
    char **o = &r->owned[r->n * 3];
    o[0] = strdup(event_id);
    o[1] = strdup(handler);
    o[2] = key ? strdup(key) : NULL;
    r->items[r->n] = (struct sy_rerun){.event_id = o[0], .handler = o[1], .key = o[2]};
    r->n++;
    if (o[0] == NULL || o[1] == NULL || (key != NULL && o[2] == NULL)) {
        drop_batch(r);
        return SY_ENOMEM;
    }
    return r->n == BATCH ? flush(r) : SY_OK;
}

static const char *state_of(const struct sy_scan_event *ev, const char *handler)
{
    for (size_t i = 0; i < ev->n_jobs; i++) {
        if (strcmp(ev->job_handler[i], handler) == 0) {
            return ev->job_state[i];
        }
    }
    return NULL;
}

static bool wanted(unsigned states, const char *state)
{
    return (strcmp(state, "dead") == 0 && (states & SY_REPLAY_DEAD)) ||
           (strcmp(state, "done") == 0 && (states & SY_REPLAY_DONE)) ||
           (strcmp(state, "skipped") == 0 && (states & SY_REPLAY_SKIPPED));
}

static int each(void *ctx, const struct sy_scan_event *ev)
{
    struct replay *r = ctx;
    const struct sy_replay_sel *sel = r->sel;
    r->rep->events++;
    if (strcmp(ev->state, "quarantined") == 0) {
        r->rep->quarantined++;
        return SY_OK;
    }
    if (sel->type != NULL && !sy_pattern_match(sel->type, ev->type, strlen(ev->type))) {
        return SY_OK;
    }
    struct sy_append a = {.id = ev->id,
                          .id_len = strlen(ev->id),
                          .type = ev->type,
                          .type_len = strlen(ev->type),
                          .integration = ev->integration,
                          .category = ev->category,
                          .body = ev->body,
                          .body_len = ev->body_len,
                          .norm = ev->norm,
                          .norm_len = ev->norm_len};
    sy_routes_reset(&r->routes);
    size_t hits = sy_engine_route(r->eng, &a, &r->routes);
    int rc = SY_OK;
    for (size_t i = 0; rc == SY_OK && i < hits; i++) {
        const char *handler = sy_routes_handler(&r->routes, i);
        if (sel->rule != NULL && strcmp(sel->rule, handler) != 0) {
            continue;
        }
        const char *state = state_of(ev, handler);
        if (state != NULL && (strcmp(state, "pending") == 0 || strcmp(state, "retrying") == 0)) {
            r->rep->busy++;
            continue;
        }
        if (state != NULL && !wanted(sel->states, state)) {
            continue;
        }
        if (state == NULL) {
            r->rep->created++;
        } else {
            r->rep->again++;
        }
        if (r->line != NULL) {
            r->line(r->ctx, ev->id, handler, state ? state : "new");
        }
        rc = add(r, ev->id, handler, sy_routes_key(&r->routes, i));
    }
    return rc;
}

int sy_engine_replay(struct sy_engine *eng, const struct sy_replay_sel *sel, sy_replay_line_fn line,
                     void *ctx, struct sy_replay_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    struct replay *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return SY_ENOMEM;
    }
    *r = (struct replay){.eng = eng, .sel = sel, .line = line, .ctx = ctx, .rep = rep};
    sy_routes_init(&r->routes);
    int rc = sy_store_scan(eng->store, &sel->q, each, r);
    if (rc == SY_OK) {
        rc = flush(r);
    }
    drop_batch(r);
    sy_routes_dispose(&r->routes);
    free(r);
    return rc;
}
