/* POST /admin/replay: run stored events through the current rules again (engine/replay.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/router.h"
#include "engine/replay.h"
#include "http/internal.h"
#include "util/clock.h"
#include "util/parse.h"

#define MAX_IDS 10000
#define MAX_LISTED 1000 /* jobs listed in the answer; the counts cover all */

struct listing {
    json_t *jobs;
    size_t listed;
    bool truncated;
};

static void list_job(void *ctx, const char *event_id, const char *handler, const char *was)
{
    struct listing *l = ctx;
    if (l->listed == MAX_LISTED) {
        l->truncated = true;
        return;
    }
    json_array_append_new(
        l->jobs, json_pack("{s:s, s:s, s:s}", "event", event_id, "rule", handler, "was", was));
    l->listed++;
}

/* A time field: milliseconds since the epoch, or text sy_parse_time_ms reads. */
static bool time_field(json_t *body, const char *name, int64_t *out, char *why, size_t len)
{
    json_t *v = json_object_get(body, name);
    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_string(v) && sy_parse_time_ms(json_string_value(v), sy_wall_ms(), out)) {
        return true;
    }
    snprintf(why, len,
             "'%s' must be a time like \"2026-12-01\", \"2026-12-01T09:30:00Z\" or \"2h\" (ago)",
             name);
    return false;
}

/* "dead", "done", "skipped", "finished" (all three), or a comma-separated list of them. */
static bool parse_states(const char *s, unsigned *out)
{
    *out = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n == 4 && memcmp(s, "dead", 4) == 0) {
            *out |= SY_REPLAY_DEAD;
        } else if (n == 4 && memcmp(s, "done", 4) == 0) {
            *out |= SY_REPLAY_DONE;
        } else if (n == 7 && memcmp(s, "skipped", 7) == 0) {
            *out |= SY_REPLAY_SKIPPED;
        } else if (n == 8 && memcmp(s, "finished", 8) == 0) {
            *out |= SY_REPLAY_FINISHED;
        } else {
            return false;
        }
        s += n + (s[n] == ',');
    }
    return *out != 0;
}

/* Read the request into 'sel' (ids borrowed from 'body'); false with the reason. */
static bool read_selection(json_t *body, struct sy_replay_sel *sel, const char **ids, char *why,
                           size_t len)
{
    memset(sel, 0, sizeof(*sel));
    sel->states = SY_REPLAY_DEAD;
    if (!json_is_object(body)) {
        snprintf(why, len, "the body must be a JSON object");
        return false;
    }
    static const char *const known[] = {"since", "until", "ids",     "type",
                                        "rule",  "state", "dry_run", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        bool ok = false;
        for (int i = 0; known[i] != NULL; i++) {
            ok = ok || strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            snprintf(
                why, len,
                "unknown field '%.100s' (known: since, until, ids, type, rule, state, dry_run)",
                key);
            return false;
        }
    }
    if (!time_field(body, "since", &sel->q.since_ms, why, len) ||
        !time_field(body, "until", &sel->q.until_ms, why, len)) {
        return false;
    }
    json_t *idv = json_object_get(body, "ids");
    if (idv != NULL) {
        if (!json_is_array(idv) || json_array_size(idv) == 0 || json_array_size(idv) > MAX_IDS) {
            snprintf(why, len, "'ids' must be a list of 1 to %d event ids", MAX_IDS);
            return false;
        }
        for (size_t i = 0; i < json_array_size(idv); i++) {
            ids[i] = json_string_value(json_array_get(idv, i));
            if (ids[i] == NULL) {
                snprintf(why, len, "'ids' must hold strings");
                return false;
            }
        }
        sel->q.ids = ids;
        sel->q.n_ids = json_array_size(idv);
    }
    if (sel->q.n_ids == 0 && sel->q.since_ms == 0) {
        snprintf(why, len, "say which events: 'since' (and 'until'), or 'ids'");
        return false;
    }
    if (sel->q.n_ids > 0 && (sel->q.since_ms != 0 || sel->q.until_ms != 0)) {
        snprintf(why, len, "give 'ids' or a time range, not both");
        return false;
    }
    if ((v = json_object_get(body, "type")) != NULL) {
        sel->type = json_string_value(v);
        if (sel->type == NULL || !sy_pattern_valid(sel->type)) {
            snprintf(why, len, "'type' must be a type pattern like \"scm.*\" or \"ticket:*\"");
            return false;
        }
    }
    if ((v = json_object_get(body, "rule")) != NULL && (sel->rule = json_string_value(v)) == NULL) {
        snprintf(why, len, "'rule' must be a rule or plugin name");
        return false;
    }
    if ((v = json_object_get(body, "state")) != NULL &&
        (!json_is_string(v) || !parse_states(json_string_value(v), &sel->states))) {
        snprintf(why, len,
                 "'state' must be dead, done, skipped or finished (or a list: \"dead,done\")");
        return false;
    }
    if ((v = json_object_get(body, "dry_run")) != NULL) {
        if (!json_is_boolean(v)) {
            snprintf(why, len, "'dry_run' must be true or false");
            return false;
        }
        sel->dry_run = json_is_true(v);
    }
    return true;
}

/* A replay as the loop read it: the selection points into 'body' and 'ids'. */
struct replay_arg {
    json_t *body;
    const char **ids;
    struct sy_replay_sel sel;
};

static void replay_arg_free(void *p)
{
    struct replay_arg *a = p;
    if (a != NULL) {
        json_decref(a->body);
        free(a->ids);
        free(a);
    }
}

static void replay_work(struct sy_server *srv, void *p, struct sy_admin_answer *out)
{
    struct replay_arg *a = p;
    struct listing l = {.jobs = json_array()};
    struct sy_replay_report rep;
    if (l.jobs == NULL || sy_engine_replay(srv->engine, &a->sel, list_job, &l, &rep) != SY_OK) {
        json_decref(l.jobs);
        sy_admin_answer_error(out, 503, "unavailable",
                              "the store could not read the events or record the replay");
        return;
    }
    out->status = 200;
    out->body = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:o, s:b}", "dry_run", a->sel.dry_run,
                          "events", (json_int_t)rep.events, "again", (json_int_t)rep.again, "new",
                          (json_int_t)rep.created, "busy", (json_int_t)rep.busy, "quarantined",
                          (json_int_t)rep.quarantined, "jobs", l.jobs, "jobs_truncated",
                          l.truncated);
}

int sy_admin_replay(h2o_req_t *req, struct sy_server *srv)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        return sy_admin_method_not_allowed(req, "POST");
    }
    json_error_t jerr;
    struct replay_arg *a = calloc(1, sizeof(*a));
    json_t *body = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, &jerr);
    json_t *idv = json_is_object(body) ? json_object_get(body, "ids") : NULL;
    const char **ids = calloc(json_is_array(idv) ? json_array_size(idv) + 1 : 1, sizeof(*ids));
    char why[256];
    if (a == NULL || body == NULL || ids == NULL) {
        snprintf(why, sizeof(why), "the body is not JSON: %s", body ? "out of memory" : jerr.text);
        free(ids);
        json_decref(body);
        free(a);
        sy_http_send_error(req, 400, "Bad Request", "invalid_request", why);
        return 0;
    }
    a->body = body;
    a->ids = ids;
    if (!read_selection(body, &a->sel, ids, why, sizeof(why))) {
        replay_arg_free(a);
        sy_http_send_error(req, 400, "Bad Request", "invalid_request", why);
        return 0;
    }
    /* a dry run changes nothing; a replay of many events may take its time */
    return sy_admin_defer(req, srv, a->sel.dry_run ? SY_ADMIN_LONG_READ : SY_ADMIN_LONG_WRITE,
                          replay_work, a, replay_arg_free);
}
