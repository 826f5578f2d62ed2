#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "core/router.h"
#include "store/filter.h"
#include "store/inspect.h"
#include "store/journal.h"
#include "store/sqlite_ids.h"
#include "util/parse.h"


const char *sy_inspect_db_path(const char *url)
{
    return strncmp(url, "sqlite:", 7) == 0 ? url + 7 : NULL;
}

static sqlite3 *open_db(const char *path, bool write, struct sy_error *err)
{
    sqlite3 *db = NULL;
    int flags = write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sy_error_io(err, path, "cannot open the store: %s", db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    /* the layout these reads know: an older store is upgraded by the server of this version */
    int version = sy_sqlite_schema_version(db);
    if (version < 0) {
        sy_error_io(err, path, "cannot read the store: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    if (version != SY_STORE_SCHEMA) {
        sy_error_set(err, path, 0,
                     version < SY_STORE_SCHEMA
                         ? "the store has schema version %d and this switchyard reads %d: start "
                           "this version's server once (it upgrades the store), or use the "
                           "switchyard that wrote it"
                         : "the store has schema version %d and this switchyard reads %d: use the "
                           "switchyard that wrote it",
                     version, SY_STORE_SCHEMA);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? json_string((const char *)t) : json_null();
}

/* {"pending": n, ...} for one event. */
static json_t *job_counts(sqlite3 *db, int64_t seq)
{
    json_t *counts = json_object();
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT state, count(*) FROM jobs WHERE event_seq = ? GROUP BY state",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, seq);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_object_set_new(counts, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int64(st, 1)));
        }
    }
    sqlite3_finalize(st);
    return counts;
}

/* sy_type_match(pattern, type): the router's pattern match, for the list's type filter. */
static void type_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *pattern = (const char *)sqlite3_value_text(argv[0]);
    const char *type = (const char *)sqlite3_value_text(argv[1]);
    sqlite3_result_int(ctx, pattern && type &&
                                sy_pattern_match(pattern, type, (size_t)sqlite3_value_bytes(argv[1])));
}

/* A cursor of ours ("s" and a sequence number), as the sequence to read below. */
static bool parse_cursor(const char *cursor, int64_t *before)
{
    *before = INT64_MAX;
    if (cursor == NULL) {
        return true;
    }
    return cursor[0] == 's' && sy_parse_int64(cursor + 1, strlen(cursor + 1), before) &&
           *before > 0;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v != NULL) {
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    }
}

/*
 * A page reads the events of the SY_INSPECT_SCAN sequence numbers below its
 * cursor, newest first, and stops once it has its limit: the filters run over
 * that window only, so a page costs the same on any size of store (backwards
 * along the primary key, no sort), and one that ran out of window says where
 * to go on.
 */
#define SY_INSPECT_SCAN 20000

#define LIST_COLUMNS                                                                               \
    "SELECT e.seq, e.id, e.type, e.integration, e.received_at, e.state, e.category, e.reason "     \
    "FROM events AS e "

/* by the event's own jobs: '+' keeps SQLite off the state index, which would walk every job in
 * that state for each event of the window */
#define LIST_FILTERS                                                                               \
    "(?3 IS NULL OR sy_type_match(?3, e.type)) "                                                   \
    "AND (?4 IS NULL OR e.integration = ?4) AND (?5 IS NULL OR e.category = ?5) "                  \
    "AND (?6 = 0 OR e.received_at >= ?6) AND (?7 = 0 OR e.received_at < ?7) "                      \
    "AND (?8 IS NULL OR e.state = ?8) "                                                            \
    "AND (?9 IS NULL OR EXISTS (SELECT 1 FROM jobs WHERE jobs.event_seq = e.seq "                  \
    "                           AND +jobs.state = ?9)) "                                           \
    "AND (?10 IS NULL OR e.id = ?10 OR instr(e.body, ?10) > 0) "

/* A page of the window [?2, ?1). */
static const char list_sql[] = LIST_COLUMNS "WHERE e.seq < ?1 AND e.seq >= ?2 AND " LIST_FILTERS
                                            "ORDER BY e.seq DESC LIMIT ?11";
/* The event whose id is the search text (seq ?1), when it passes the other filters (?2 unused). */
static const char list_id_sql[] =
    LIST_COLUMNS "WHERE e.seq = ?1 AND e.id = ?10 AND ?2 IS NOT NULL AND " LIST_FILTERS "LIMIT ?11";

/* The newest sequence number + 1 (1 for an empty store). */
static int64_t seq_end(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t end = 1;
    if (sqlite3_prepare_v2(db, "SELECT max(seq) + 1 FROM events", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        end = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return end;
}

/* The received time of the first event at or after sequence 'seq' (INT64_MAX when none). */
static int64_t received_from(sqlite3_stmt *st, int64_t seq)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, seq);
    return sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MAX;
}

/*
 * The first sequence number whose event was received at or after 't', by a
 * binary search over the sequence: events are numbered as they arrive, so
 * their received times rise with it (after a step back of the wall clock, the
 * boundary is off by the events of that step). 1 when every event is.
 */
static int64_t first_seq_from(sqlite3 *db, int64_t t)
{
    sqlite3_stmt *st = NULL;
    int64_t lo = 1, hi = seq_end(db);
    if (sqlite3_prepare_v2(db,
                           "SELECT received_at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return 1;
    }
    while (lo < hi) { /* the answer is in [lo, hi] */
        int64_t mid = lo + (hi - lo) / 2;
        if (received_from(st, mid) >= t) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    sqlite3_finalize(st);
    return lo;
}

/* Bind what 'f' asks for to a list statement (window [lower, before)). */
static void bind_filters(sqlite3_stmt *st, const struct sy_event_filter *f, int64_t before,
                         int64_t lower)
{
    bool job_state = sy_event_filter_job_state(f);
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int64(st, 2, lower);
    bind_opt(st, 3, f->type);
    bind_opt(st, 4, f->integration);
    bind_opt(st, 5, f->category);
    sqlite3_bind_int64(st, 6, f->since_ms);
    sqlite3_bind_int64(st, 7, f->until_ms);
    bind_opt(st, 8, job_state ? NULL : f->state);
    bind_opt(st, 9, job_state ? f->state : NULL);
    bind_opt(st, 10, f->text);
    sqlite3_bind_int(st, 11, sy_event_filter_limit(f));
}

/* Append the statement's rows to 'events' (with their job counts); *last = the oldest seq. */
static int read_rows(sqlite3 *db, sqlite3_stmt *st, json_t *events, int64_t *last)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 1);
        int64_t seq = sqlite3_column_int64(st, 0);
        *last = seq;
        json_t *e = json_pack("{s:s, s:o, s:o, s:I, s:o, s:o, s:o}", "id", id, "type",
                              text_or_null(st, 2), "integration", text_or_null(st, 3),
                              "received_at", (json_int_t)sqlite3_column_int64(st, 4), "state",
                              text_or_null(st, 5), "category", text_or_null(st, 6), "jobs",
                              job_counts(db, seq));
        if (e != NULL && sqlite3_column_type(st, 7) != SQLITE_NULL) {
            json_object_set_new(e, "reason", text_or_null(st, 7));
        }
        json_array_append_new(events, e);
    }
    return rc == SQLITE_DONE ? SY_OK : SY_EIO;
}

/*
 * Received times are stamped before an event is queued for the store, so
 * under load (or after a step of the wall clock) they are not quite in
 * arrival order: a time range's bounds in the sequence are looked for this
 * much wider, and the exact times are checked on each row.
 */
#define TIME_SLACK_MS (5 * 60 * 1000)

json_t *sy_inspect_list(const char *db_path, struct sy_sqlite_ids *ids,
                        const struct sy_event_filter *f, struct sy_error *err)
{
    int64_t before;
    if (sy_event_filter_check(f, err) != SY_OK) {
        return NULL;
    }
    if (!parse_cursor(f->cursor, &before)) {
        sy_error_set(err, NULL, 0, "the cursor is not one this server gave");
        return NULL;
    }
    sqlite3 *db = open_db(db_path, false, err);
    if (db == NULL) {
        return NULL;
    }
    sqlite3_stmt *st = NULL;
    json_t *out = NULL, *events = json_array();
    int64_t last = 0;
    if (events == NULL ||
        sqlite3_create_function(db, "sy_type_match", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                type_match, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) { /* one snapshot */
        goto failed;
    }
    if (f->text != NULL && f->cursor == NULL) {
        /* an event's id lists that event alone, found by its id */
        int64_t seq = sy_sqlite_event_seq(db, ids, f->text, strlen(f->text));
        if (seq < 0 || sqlite3_prepare_v2(db, list_id_sql, -1, &st, NULL) != SQLITE_OK) {
            goto failed;
        }
        bind_filters(st, f, seq, 0);
        if (read_rows(db, st, events, &last) != SY_OK) {
            goto failed;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (json_array_size(events) > 0) {
            out = json_pack("{s:o, s:n}", "events", events, "next");
            goto done;
        }
    }
    /* a time range bounds the sequence read: newer than its end is never read, nor older
     * than its start */
    int64_t floor = f->since_ms > 0 ? first_seq_from(db, f->since_ms - TIME_SLACK_MS) : 1;
    int64_t end = f->until_ms > 0 ? first_seq_from(db, f->until_ms + TIME_SLACK_MS) : seq_end(db);
    before = end < before ? end : before;
    int64_t lower = before - floor > SY_INSPECT_SCAN ? before - SY_INSPECT_SCAN : floor;
    if (sqlite3_prepare_v2(db, list_sql, -1, &st, NULL) != SQLITE_OK) {
        goto failed;
    }
    bind_filters(st, f, before, lower);
    if (read_rows(db, st, events, &last) != SY_OK) {
        goto failed;
    }
    /* a full page goes on below its last event; a short one below its window */
    int64_t next = json_array_size(events) == (size_t)sy_event_filter_limit(f) ? last : lower;
    char cursor[32];
    snprintf(cursor, sizeof(cursor), "s%lld", (long long)next);
    out = json_pack("{s:o, s:s?}", "events", events, "next", next > floor ? cursor : NULL);
    goto done;
failed:
    sy_error_io(err, db_path, "cannot read events: %s", sqlite3_errmsg(db));
    json_decref(events);
done:
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return out;
}

/*
 * What a pending job with an ordering key waits for: the job of the same key
 * that is retrying, or else the oldest earlier one still pending. NULL when
 * nothing is ahead of it.
 */
static json_t *waiting_for(sqlite3 *db, const char *key, int64_t job_id)
{
    sqlite3_stmt *st = NULL;
    json_t *out = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT event_id, handler FROM jobs WHERE key = ?1 AND id != ?2 AND "
                           "(state = 'retrying' OR (state = 'pending' AND id < ?2)) "
                           "ORDER BY state = 'retrying' DESC, id LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, job_id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            out = json_pack("{s:o, s:o}", "event", text_or_null(st, 0), "handler",
                            text_or_null(st, 1));
        }
    }
    sqlite3_finalize(st);
    return out;
}

/* Every Unizo call the job made, attempt by attempt, as `events show` lists them. */
static json_t *job_calls(sqlite3 *db, int64_t job_id)
{
    json_t *calls = json_array();
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT attempt, n, idem_key, method, path, request, status, response, "
                           "truncated, replayed, dry_run, error, at, ms FROM calls WHERE "
                           "job_id = ? ORDER BY id",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, job_id);
        while (sqlite3_step(st) == SQLITE_ROW) {
            struct sy_call_record r = {
                .attempt = sqlite3_column_int(st, 0),
                .n = sqlite3_column_int(st, 1),
                .key = (char *)sqlite3_column_text(st, 2),
                .method = (char *)sqlite3_column_text(st, 3),
                .path = (char *)sqlite3_column_text(st, 4),
                .request = (char *)sqlite3_column_text(st, 5),
                .status = (long)sqlite3_column_int64(st, 6),
                .response = (char *)sqlite3_column_text(st, 7),
                .response_len = (size_t)sqlite3_column_bytes(st, 7),
                .truncated = sqlite3_column_int(st, 8) != 0,
                .replayed = sqlite3_column_int(st, 9) != 0,
                .dry_run = sqlite3_column_int(st, 10) != 0,
                .error = (char *)sqlite3_column_text(st, 11),
                .at_ms = sqlite3_column_int64(st, 12),
                .ms = sqlite3_column_double(st, 13),
            };
            if (r.method != NULL && r.path != NULL) {
                json_array_append_new(calls, sy_call_record_json(&r, true)); /* borrows r */
            }
        }
    }
    sqlite3_finalize(st);
    return calls;
}

json_t *sy_inspect_show(const char *db_path, struct sy_sqlite_ids *ids, const char *id,
                        struct sy_error *err)
{
    sqlite3 *db = open_db(db_path, false, err);
    if (db == NULL) {
        return NULL;
    }
    json_t *out = NULL;
    sqlite3_stmt *st = NULL;
    /* one snapshot for the event and its jobs */
    int64_t seq = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK
                      ? sy_sqlite_event_seq(db, ids, id, strlen(id))
                      : -1;
    if (seq < 0 || sqlite3_prepare_v2(db,
                                      "SELECT type, integration, received_at, state, headers, "
                                      "body, category, reason, norm FROM events WHERE seq = ?",
                                      -1, &st, NULL) != SQLITE_OK) {
        sy_error_io(err, db_path, "cannot read events: %s", sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_bind_int64(st, 1, seq);
    if (seq == 0 || sqlite3_step(st) != SQLITE_ROW) {
        sy_error_set(err, NULL, 0, "no event with id '%s'", id);
        goto done;
    }
    json_t *headers = json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
    if (headers && json_object_get(headers, "x-unizo-signature")) {
        json_object_set_new(headers, "x-unizo-signature", json_string("(redacted)"));
    }
    json_t *body = json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
    /* a quarantined body need not be JSON: then it is shown as the text it is */
    if (body == NULL && sqlite3_column_type(st, 5) != SQLITE_NULL) {
        body = json_stringn((const char *)sqlite3_column_text(st, 5),
                            (size_t)sqlite3_column_bytes(st, 5));
    }
    json_t *norm = sqlite3_column_type(st, 8) != SQLITE_NULL
                       ? json_loads((const char *)sqlite3_column_text(st, 8), 0, NULL)
                       : NULL;
    out = json_pack("{s:s, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:[]}", "id", id, "type",
                    text_or_null(st, 0), "integration", text_or_null(st, 1), "received_at",
                    (json_int_t)sqlite3_column_int64(st, 2), "state", text_or_null(st, 3),
                    "category", text_or_null(st, 6), "headers", headers ? headers : json_object(),
                    "event", body ? body : json_null(), "jobs");
    if (norm != NULL) {
        json_object_set_new(out, "normalized", norm);
    }
    if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
        json_object_set_new(out, "reason", text_or_null(st, 7));
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, handler, state, attempts, due_at, last_error, updated_at, "
                           "key FROM jobs WHERE event_seq = ? ORDER BY id",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, seq);
        json_t *jobs = json_object_get(out, "jobs");
        while (sqlite3_step(st) == SQLITE_ROW) {
            int64_t job_id = sqlite3_column_int64(st, 0);
            const char *state = (const char *)sqlite3_column_text(st, 2);
            const char *key = (const char *)sqlite3_column_text(st, 7);
            json_t *job = json_pack(
                "{s:o, s:o, s:I, s:I, s:o, s:I, s:o}", "handler", text_or_null(st, 1), "state",
                text_or_null(st, 2), "attempts", (json_int_t)sqlite3_column_int64(st, 3), "due_at",
                (json_int_t)sqlite3_column_int64(st, 4), "last_error", text_or_null(st, 5),
                "updated_at", (json_int_t)sqlite3_column_int64(st, 6), "key", text_or_null(st, 7));
            if (key != NULL && state != NULL && strcmp(state, "pending") == 0) {
                json_t *w = waiting_for(db, key, job_id);
                if (w != NULL) {
                    json_object_set_new(job, "waiting_for", w);
                }
            }
            json_object_set_new(job, "calls", job_calls(db, job_id));
            json_array_append_new(jobs, job);
        }
    }
done:
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return out;
}

int sy_inspect_request_replay(const char *db_path, const char *event_id, long *dead,
                              bool *quarantined, struct sy_error *err)
{
    *dead = 0;
    *quarantined = false;
    sqlite3 *db = open_db(db_path, true, err);
    if (db == NULL) {
        return SY_EIO;
    }
    int rc = SY_EIO;
    sqlite3_stmt *st = NULL;
    int64_t seq = 0;
    if (event_id != NULL) {
        seq = sy_sqlite_event_seq(db, NULL, event_id, strlen(event_id));
        if (seq < 0 || sqlite3_prepare_v2(db, "SELECT state = 'quarantined' FROM events WHERE "
                                              "seq = ?",
                                          -1, &st, NULL) != SQLITE_OK) {
            goto fail;
        }
        sqlite3_bind_int64(st, 1, seq);
        bool exists = seq > 0 && sqlite3_step(st) == SQLITE_ROW;
        *quarantined = exists && sqlite3_column_int(st, 0) != 0;
        sqlite3_finalize(st);
        st = NULL;
        if (!exists) {
            sy_error_set(err, NULL, 0, "no event with id '%s'", event_id);
            rc = SY_ENOTFOUND;
            goto done;
        }
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM jobs WHERE state = 'dead' AND (?1 IS NULL OR "
                           "event_seq = ?1)",
                           -1, &st, NULL) != SQLITE_OK) {
        goto fail;
    }
    if (event_id) {
        sqlite3_bind_int64(st, 1, seq);
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *dead = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (*dead == 0 && !*quarantined) {
        rc = SY_OK;
        goto done;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO replay_requests(event_id, requested_at) VALUES (?, "
                           "CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
                           -1, &st, NULL) != SQLITE_OK) {
        goto fail;
    }
    if (event_id) {
        sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        goto fail;
    }
    rc = SY_OK;
    goto done;
fail:
    sy_error_io(err, db_path, "cannot request the replay: %s", sqlite3_errmsg(db));
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
