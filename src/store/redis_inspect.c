/* The Redis store's inspection (the shapes of store/inspect.h) and its journal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/filter.h"
#include "store/journal.h"
#include "store/redis_int.h"
#include "util/log.h"
#include "util/parse.h"


/* A job's journal lines, as records (new array). */
static int load_calls(struct redis_store *s, const char *ref, size_t reflen,
                      struct sy_call_record **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    redisReply *r = sy_redis_cmd(s, "LRANGE %scalls:%b 0 -1", s->prefix, ref, reflen);
    if (r == NULL) {
        return SY_EIO;
    }
    int rc = SY_OK;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        *out = calloc(r->elements, sizeof(**out));
        rc = *out ? SY_OK : SY_ENOMEM;
        for (size_t i = 0; rc == SY_OK && i < r->elements; i++) {
            json_t *o = json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL);
            if (sy_call_record_from_json(o, &(*out)[*n]) == SY_OK) {
                (*n)++;
            } else {
                sy_call_record_dispose(&(*out)[*n]); /* a line that does not parse is skipped */
            }
            json_decref(o);
        }
    }
    freeReplyObject(r);
    if (rc != SY_OK) {
        sy_call_records_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* {"event", "handler"} of the job holding 'key', unless it is 'ref' itself. */
static json_t *waiting_for(struct redis_store *s, const char *key, const char *ref)
{
    redisReply *r = sy_redis_cmd(s, "GET %ska:%s", s->prefix, key);
    json_t *out = NULL;
    if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, ref) != 0) {
        const char *nl = strchr(r->str, '\n');
        if (nl != NULL) {
            out = json_pack("{s:s%, s:s}", "event", r->str, (size_t)(nl - r->str), "handler",
                            nl + 1);
        }
    }
    freeReplyObject(r);
    return out;
}

/* A string reply's text, or NULL when it is absent or empty. */
static const char *nonempty(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len > 0 ? r->str : NULL;
}

static int by_seq(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "seq"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "seq"));
    return x < y ? -1 : x > y;
}

/* Sort an array of job objects by their "seq" member, in place. */
static void sort_by_seq(json_t *jobs)
{
    size_t n = json_array_size(jobs);
    json_t **v = n ? malloc(n * sizeof(*v)) : NULL;
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = json_incref(json_array_get(jobs, i));
    }
    qsort(v, n, sizeof(*v), by_seq);
    json_array_clear(jobs);
    for (size_t i = 0; i < n; i++) {
        json_object_del(v[i], "seq"); /* Redis's own order; not part of the shape */
        json_array_append_new(jobs, v[i]);
    }
    free(v);
}

/* The jobs of an event: per-state counts, or (full) the list with attempts, errors and calls. */
static json_t *event_jobs(struct redis_store *s, const char *id, bool full)
{
    json_t *out = full ? json_array() : json_object();
    redisReply *refs = sy_redis_cmd(s, "SMEMBERS %sevjobs:%s", s->prefix, id);
    for (size_t i = 0; refs && refs->type == REDIS_REPLY_ARRAY && i < refs->elements; i++) {
        const char *ref = refs->element[i]->str;
        size_t reflen = refs->element[i]->len;
        redisReply *j = sy_redis_cmd(s, "HMGET %sjob:%b handler state attempts due error key seq",
                                     s->prefix, ref, reflen);
        if (j && j->type == REDIS_REPLY_ARRAY && j->elements == 7 &&
            j->element[1]->type == REDIS_REPLY_STRING) {
            const char *state = j->element[1]->str;
            if (full) {
                const char *key = j->element[5]->str && j->element[5]->str[0] ? j->element[5]->str
                                                                               : NULL;
                json_t *job = json_pack(
                    "{s:s?, s:s, s:I, s:I, s:s?, s:s?, s:I}", "handler", j->element[0]->str,
                    "state", state, "attempts",
                    (json_int_t)strtoll(j->element[2]->str ? j->element[2]->str : "0", NULL, 10),
                    "due_at",
                    (json_int_t)strtoll(j->element[3]->str ? j->element[3]->str : "0", NULL, 10),
                    "last_error",
                    j->element[4]->str && j->element[4]->str[0] ? j->element[4]->str : NULL, "key",
                    key, "seq",
                    (json_int_t)strtoll(j->element[6]->str ? j->element[6]->str : "0", NULL, 10));
                if (key != NULL && strcmp(state, "pending") == 0) {
                    json_t *w = waiting_for(s, key, ref);
                    if (w != NULL) {
                        json_object_set_new(job, "waiting_for", w);
                    }
                }
                struct sy_call_record *calls = NULL;
                size_t n = 0;
                json_t *list = json_array();
                if (load_calls(s, ref, reflen, &calls, &n) == SY_OK) {
                    for (size_t k = 0; k < n; k++) {
                        json_array_append_new(list, sy_call_record_json(&calls[k], true));
                    }
                }
                sy_call_records_free(calls, n);
                json_object_set_new(job, "calls", list);
                json_array_append_new(out, job);
            } else {
                json_t *n = json_object_get(out, state);
                json_object_set_new(out, state, json_integer(n ? json_integer_value(n) + 1 : 1));
            }
        }
        freeReplyObject(j);
    }
    freeReplyObject(refs);
    if (full) {
        /* jobs in store order, as on SQLite */
        sort_by_seq(out);
    }
    return out;
}

/*
 * The events a page of the list examines at most (store/filter.h): each costs
 * a round trip, and this bounds a page to about a tenth of a second.
 */
#define REDIS_LIST_SCAN 2000
#define REDIS_LIST_BATCH 200
/* More events than this in one millisecond is not a cursor this server gave (Redis walks it). */
#define REDIS_SKIP_MAX 100000

/* Where a page starts: at score 'max' ("+inf" for the newest), past 'skip' members there. */
struct redis_cursor {
    char max[32];
    long skip;
};

static bool parse_cursor(const char *text, const struct sy_event_filter *f,
                         struct redis_cursor *c)
{
    c->skip = 0;
    if (text == NULL) {
        if (f->until_ms > 0) {
            snprintf(c->max, sizeof(c->max), "(%lld", (long long)f->until_ms);
        } else {
            snprintf(c->max, sizeof(c->max), "+inf");
        }
        return true;
    }
    const char *dot = text[0] == 'r' ? strchr(text, '.') : NULL;
    int64_t score, skip;
    if (dot == NULL || !sy_parse_int64(text + 1, (size_t)(dot - text - 1), &score) ||
        !sy_parse_int64(dot + 1, strlen(dot + 1), &skip) || score < 0 || skip < 0 ||
        skip > REDIS_SKIP_MAX) {
        return false;
    }
    snprintf(c->max, sizeof(c->max), "%lld", (long long)score);
    c->skip = (long)skip;
    return true;
}

/* The list row of event 'id' when it passes 'f', else NULL. */
static json_t *list_row(struct redis_store *s, const struct sy_event_filter *f, const char *id)
{
    redisReply *ev = sy_redis_cmd(s, "HMGET %sev:%s type integration received_at state category "
                                     "reason %s",
                                  s->prefix, id, f->text ? "body" : "type");
    json_t *out = NULL;
    if (ev && ev->type == REDIS_REPLY_ARRAY && ev->elements == 7 &&
        ev->element[0]->type == REDIS_REPLY_STRING) {
        const char *state = ev->element[3]->str ? ev->element[3]->str : "";
        int64_t received = strtoll(ev->element[2]->str ? ev->element[2]->str : "0", NULL, 10);
        bool keep = sy_event_filter_head(f, ev->element[0]->str, nonempty(ev->element[1]),
                                         nonempty(ev->element[4]), received, state) &&
                    sy_event_filter_text(f, id, ev->element[6]->str, ev->element[6]->len);
        json_t *jobs = keep ? event_jobs(s, id, false) : NULL;
        if (jobs != NULL && sy_event_filter_job_state(f) && !json_object_get(jobs, f->state)) {
            json_decref(jobs);
            jobs = NULL;
        }
        if (jobs != NULL) {
            out = json_pack("{s:s, s:s, s:s?, s:I, s:s, s:s?, s:o}", "id", id, "type",
                            ev->element[0]->str, "integration", nonempty(ev->element[1]),
                            "received_at", (json_int_t)received, "state", state, "category",
                            nonempty(ev->element[4]), "jobs", jobs);
            if (out != NULL && nonempty(ev->element[5]) != NULL) {
                json_object_set_new(out, "reason", json_string(ev->element[5]->str));
            }
        }
    }
    freeReplyObject(ev);
    return out;
}

json_t *sy_redis_list(struct sy_store *st, const struct sy_event_filter *f, struct sy_error *err)
{
    struct redis_store *s = (struct redis_store *)st;
    struct redis_cursor c;
    if (!parse_cursor(f->cursor, f, &c)) {
        sy_error_set(err, NULL, 0, "the cursor is not one this server gave");
        return NULL;
    }
    char min[32];
    snprintf(min, sizeof(min), "%lld", (long long)f->since_ms);
    size_t limit = (size_t)sy_event_filter_limit(f);
    if (f->text != NULL && f->cursor == NULL) {
        /* an event's id lists that event alone, found by its key */
        json_t *row = list_row(s, f, f->text);
        if (row != NULL) {
            return json_pack("{s:[o], s:n}", "events", row, "next");
        }
    }
    json_t *events = json_array();
    long budget = REDIS_LIST_SCAN;
    bool more = true;
    char last[32] = "";
    long at_last = 0;
    while (events && more && budget > 0 && json_array_size(events) < limit) {
        long want = budget < REDIS_LIST_BATCH ? budget : REDIS_LIST_BATCH;
        redisReply *page = sy_redis_cmd(s, "ZREVRANGEBYSCORE %sevents %s %s WITHSCORES LIMIT %ld %ld",
                                        s->prefix, c.max, min, c.skip, want);
        if (page == NULL || page->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(page);
            json_decref(events);
            sy_error_io(err, NULL, "cannot read events from Redis at %s:%d", s->host, s->port);
            return NULL;
        }
        size_t pairs = page->elements / 2, i = 0;
        for (; i < pairs && json_array_size(events) < limit; i++) {
            const char *score = page->element[2 * i + 1]->str;
            if (strcmp(score, last) == 0) {
                at_last++;
            } else {
                snprintf(last, sizeof(last), "%s", score);
                at_last = 1;
            }
            json_t *row = list_row(s, f, page->element[2 * i]->str);
            if (row != NULL) {
                json_array_append_new(events, row);
            }
        }
        budget -= (long)i;
        more = (long)pairs == want || i < pairs;
        /* the next read starts at the last score seen, past the members of it visited */
        if (last[0] != '\0') {
            c.skip = strcmp(c.max, last) == 0 ? c.skip + (long)i : at_last;
            if (strcmp(c.max, last) != 0) {
                snprintf(c.max, sizeof(c.max), "%s", last);
            }
        }
        freeReplyObject(page);
    }
    char cursor[SY_CURSOR_MAX + 1];
    snprintf(cursor, sizeof(cursor), "r%s.%ld", c.max, c.skip);
    return json_pack("{s:o, s:s?}", "events", events, "next", more && last[0] ? cursor : NULL);
}

json_t *sy_redis_show(struct sy_store *st, const char *id, struct sy_error *err)
{
    struct redis_store *s = (struct redis_store *)st;
    redisReply *ev = sy_redis_cmd(
        s, "HMGET %sev:%s type integration received_at state headers body category reason norm",
        s->prefix, id);
    json_t *out = NULL;
    if (ev && ev->type == REDIS_REPLY_ARRAY && ev->elements == 9 &&
        ev->element[0]->type == REDIS_REPLY_STRING) {
        json_t *headers = json_loads(ev->element[4]->str ? ev->element[4]->str : "{}", 0, NULL);
        if (headers && json_object_get(headers, "x-unizo-signature")) {
            json_object_set_new(headers, "x-unizo-signature", json_string("(redacted)"));
        }
        json_t *body = json_loads(ev->element[5]->str ? ev->element[5]->str : "null", 0, NULL);
        if (body == NULL && ev->element[5]->type == REDIS_REPLY_STRING) {
            body = json_stringn(ev->element[5]->str, ev->element[5]->len); /* not JSON */
        }
        out = json_pack("{s:s, s:s, s:s?, s:I, s:s?, s:s?, s:o, s:o, s:o}", "id", id, "type",
                        ev->element[0]->str, "integration", nonempty(ev->element[1]),
                        "received_at",
                        (json_int_t)strtoll(ev->element[2]->str ? ev->element[2]->str : "0", NULL, 10),
                        "state", ev->element[3]->str, "category", nonempty(ev->element[6]),
                        "headers", headers ? headers : json_object(), "event",
                        body ? body : json_null(), "jobs", event_jobs(s, id, true));
        if (nonempty(ev->element[7]) != NULL) {
            json_object_set_new(out, "reason", json_string(ev->element[7]->str));
        }
        json_t *norm = nonempty(ev->element[8]) ? json_loads(ev->element[8]->str, 0, NULL) : NULL;
        if (norm != NULL) {
            json_object_set_new(out, "normalized", norm);
        }
    } else {
        sy_error_set(err, NULL, 0, "no event with id '%s'", id);
    }
    freeReplyObject(ev);
    return out;
}

void sy_redis_journal_add(struct sy_store *st, const struct sy_job *job,
                          struct sy_call_record *rec)
{
    struct redis_store *s = (struct redis_store *)st;
    json_t *o = sy_call_record_json(rec, false);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    sy_call_record_free(rec);
    struct conn *cn = sy_redis_conn(s);
    if (text == NULL || cn == NULL) {
        free(text);
        sy_log(SY_LOG_WARN, "a journal line could not be written (Redis unreachable)", "event",
               job->event_id, "rule", job->handler, NULL);
        return;
    }
    /* written before the rule goes on: the window a crash leaves is Redis's own fsync policy */
    redisAppendCommand(cn->c, "RPUSH %scalls:%s\n%s %s", s->prefix, job->event_id, job->handler,
                       text);
    redisAppendCommand(cn->c, "EXPIRE %scalls:%s\n%s %llu", s->prefix, job->event_id,
                       job->handler, (unsigned long long)s->retention_s);
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(cn->c, (void **)&r) != REDIS_OK) {
            break;
        }
        freeReplyObject(r);
    }
    free(text);
}

int sy_redis_journal_load(struct sy_store *st, const struct sy_job *job,
                          struct sy_call_record **recs, size_t *n)
{
    struct redis_store *s = (struct redis_store *)st;
    char ref[1024];
    int len = snprintf(ref, sizeof(ref), "%s\n%s", job->event_id, job->handler);
    return load_calls(s, ref, (size_t)len < sizeof(ref) ? (size_t)len : sizeof(ref) - 1, recs, n);
}
