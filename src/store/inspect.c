#include <stdbool.h>
#include <string.h>

#include <sqlite3.h>

#include "store/inspect.h"
#include "store/journal.h"

static const char *const states[] = {"pending", "retrying", "dead", "done", "skipped", NULL};

const char *sy_inspect_db_path(const char *url)
{
    return strncmp(url, "sqlite:", 7) == 0 ? url + 7 : NULL;
}

static sqlite3 *open_db(const char *path, bool write, struct sy_error *err)
{
    sqlite3 *db = NULL;
    int flags = write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sy_error_set(err, path, 0, "cannot open the store: %s",
                     db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? json_string((const char *)t) : json_null();
}

/* {"pending": n, ...} for one event. */
static json_t *job_counts(sqlite3 *db, const char *id)
{
    json_t *counts = json_object();
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT state, count(*) FROM jobs WHERE event_id = ? GROUP BY state",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_object_set_new(counts, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int64(st, 1)));
        }
    }
    sqlite3_finalize(st);
    return counts;
}

json_t *sy_inspect_list(const char *db_path, const char *status, int limit, struct sy_error *err)
{
    bool plain_state = status != NULL &&
                       (strcmp(status, "unrouted") == 0 || strcmp(status, "quarantined") == 0);
    bool known = status == NULL || plain_state;
    for (const char *const *s = states; status && *s; s++) {
        known = known || strcmp(*s, status) == 0;
    }
    if (!known) {
        sy_error_set(err, NULL, 0,
                     "unknown status '%s' (use pending, retrying, dead, done, skipped, "
                     "unrouted or quarantined)",
                     status);
        return NULL;
    }
    sqlite3 *db = open_db(db_path, false, err);
    if (db == NULL) {
        return NULL;
    }
    const char *sql =
        status == NULL ? "SELECT id, type, integration, received_at, state, category, reason "
                         "FROM events ORDER BY seq DESC LIMIT ?1"
        : plain_state
            ? "SELECT id, type, integration, received_at, state, category, reason FROM events "
              "WHERE state = ?2 ORDER BY seq DESC LIMIT ?1"
            : "SELECT id, type, integration, received_at, state, category, reason FROM events "
              "WHERE id IN (SELECT event_id FROM jobs WHERE state = ?2) ORDER BY seq DESC "
              "LIMIT ?1";
    sqlite3_stmt *st = NULL;
    json_t *out = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sy_error_set(err, db_path, 0, "cannot read events: %s", sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_bind_int(st, 1, limit > 0 ? limit : 50);
    if (status != NULL) {
        sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    }
    out = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        json_t *e = json_pack("{s:s, s:o, s:o, s:I, s:o, s:o, s:o}", "id", id, "type",
                              text_or_null(st, 1), "integration", text_or_null(st, 2),
                              "received_at", (json_int_t)sqlite3_column_int64(st, 3), "state",
                              text_or_null(st, 4), "category", text_or_null(st, 5), "jobs",
                              job_counts(db, id));
        if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
            json_object_set_new(e, "reason", text_or_null(st, 6));
        }
        json_array_append_new(out, e);
    }
done:
    sqlite3_finalize(st);
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

json_t *sy_inspect_show(const char *db_path, const char *id, struct sy_error *err)
{
    sqlite3 *db = open_db(db_path, false, err);
    if (db == NULL) {
        return NULL;
    }
    json_t *out = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT type, integration, received_at, state, headers, body, "
                           "category, reason, norm FROM events WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        sy_error_set(err, db_path, 0, "cannot read events: %s", sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
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
                           "key FROM jobs WHERE event_id = ? ORDER BY id",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
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
    if (event_id != NULL) {
        if (sqlite3_prepare_v2(db, "SELECT state = 'quarantined' FROM events WHERE id = ?", -1, &st,
                               NULL) != SQLITE_OK) {
            goto fail;
        }
        sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
        bool exists = sqlite3_step(st) == SQLITE_ROW;
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
                           "event_id = ?1)",
                           -1, &st, NULL) != SQLITE_OK) {
        goto fail;
    }
    if (event_id) {
        sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
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
    sy_error_set(err, db_path, 0, "cannot request the replay: %s", sqlite3_errmsg(db));
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
