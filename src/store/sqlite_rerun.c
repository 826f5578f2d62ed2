/* The SQLite store's part of replays of anything: scanning events, running jobs again. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/clock.h"
#include "util/log.h"

#define SCAN_PAGE 200

/* One item in the writer's transaction: requeue the job, or create it. */
static int rerun_one(struct sqlite_store *s, const struct sy_rerun *it, int64_t now,
                     struct sy_job_list *dead_again, struct sy_job_list *again, long *count)
{
    int64_t seq = sy_sqlite_event_seq(s->db, &s->ids, it->event_id, strlen(it->event_id));
    if (seq <= 0) {
        /* the event is gone (purged since the scan): nothing to run */
        return seq == 0 ? SY_OK : SY_EIO;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, state, runs FROM jobs WHERE event_seq = ?1 AND handler = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return SY_EIO;
    }
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, it->handler, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        bool busy = strcmp(state, "pending") == 0 || strcmp(state, "retrying") == 0;
        bool was_dead = strcmp(state, "dead") == 0;
        int runs = sqlite3_column_int(st, 2);
        sqlite3_finalize(st);
        if (busy) {
            return SY_OK; /* it will run anyway */
        }
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE jobs SET state = 'pending', attempts = 0, due_at = ?2, "
                               "updated_at = ?2, last_error = NULL, key = ?3 WHERE id = ?1",
                               -1, &st, NULL) != SQLITE_OK) {
            return SY_EIO;
        }
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now);
        if (it->key != NULL) {
            sqlite3_bind_text(st, 3, it->key, -1, SQLITE_STATIC);
        }
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            return SY_EIO;
        }
        struct sy_job *j = sy_sqlite_job_new(id, it->event_id, it->handler, it->key, 0, runs);
        if (j != NULL) {
            sy_sqlite_list_add(was_dead ? dead_again : again, j);
        }
        (*count)++;
        return SY_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return SY_EIO;
    }
    /* a rule that did not take the event when it came: its job starts now */
    sqlite3_stmt *ij = s->insert_job;
    sqlite3_bind_int64(ij, 1, seq);
    sqlite3_bind_text(ij, 2, it->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ij, 3, it->handler, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ij, 4, now);
    sy_sqlite_bind_text_or_null(ij, 5, it->key, -1);
    rc = sqlite3_step(ij);
    sqlite3_reset(ij);
    sqlite3_clear_bindings(ij);
    if (rc != SQLITE_DONE) {
        return SY_EIO;
    }
    struct sy_job *j = sy_sqlite_job_new(sqlite3_last_insert_rowid(s->db), it->event_id,
                                         it->handler, it->key, 0, 0);
    if (j != NULL) {
        j->fresh = true;
        sy_sqlite_list_add(again, j);
    }
    (*count)++;
    return SY_OK;
}

int sy_sqlite_apply_rerun(struct sqlite_store *s, struct op *o, struct sy_job_list *dead_again,
                          struct sy_job_list *again)
{
    o->count = 0;
    int64_t now = sy_wall_ms();
    int rc = SY_OK;
    for (size_t i = 0; rc == SY_OK && i < o->n_items; i++) {
        rc = rerun_one(s, &o->items[i], now, dead_again, again, &o->count);
    }
    if (rc != SY_OK) {
        sy_log(SY_LOG_ERROR, "sqlite rerun failed", "error", sqlite3_errmsg(s->db), NULL);
    }
    return rc;
}

int sy_sqlite_rerun(struct sy_store *st, const struct sy_rerun *items, size_t n, long *queued)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return SY_ENOMEM;
    }
    o->kind = OP_RERUN;
    o->items = (struct sy_rerun *)items;
    o->n_items = n;
    o->sync = true;
    int rc = sy_sqlite_push_op(s, o);
    *queued = rc == SY_OK ? o->count : 0;
    free(o);
    return rc;
}

/* Call each() with one event row (the statement's current row) and its jobs. */
static int visit(sqlite3 *db, sqlite3_stmt *ev, int (*each)(void *, const struct sy_scan_event *),
                 void *ctx)
{
    struct sy_scan_event e = {
        .id = (const char *)sqlite3_column_text(ev, 1),
        .type = (const char *)sqlite3_column_text(ev, 2),
        .integration = (const char *)sqlite3_column_text(ev, 3),
        .category = (const char *)sqlite3_column_text(ev, 4),
        .body = (const char *)sqlite3_column_blob(ev, 5),
        .body_len = (size_t)sqlite3_column_bytes(ev, 5),
        .norm = (const char *)sqlite3_column_blob(ev, 6),
        .norm_len = (size_t)sqlite3_column_bytes(ev, 6),
        .state = (const char *)sqlite3_column_text(ev, 7),
        .received_ms = sqlite3_column_int64(ev, 8),
    };
    if (e.body == NULL) {
        e.body = "";
    }
    sqlite3_stmt *js = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT handler, state, id FROM jobs WHERE event_seq = ? ORDER BY id",
                           -1, &js, NULL) != SQLITE_OK) {
        return SY_EIO;
    }
    sqlite3_bind_int64(js, 1, sqlite3_column_int64(ev, 0));
    char **names = NULL;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = SY_OK;
    while (rc == SY_OK && sqlite3_step(js) == SQLITE_ROW) {
        if (n + 2 > cap) {
            cap = cap ? cap * 2 : 16;
            char **g = realloc(names, cap * sizeof(*g));
            if (g == NULL) {
                rc = SY_ENOMEM;
                break;
            }
            names = g;
            int64_t *gi = realloc(ids, cap / 2 * sizeof(*gi));
            if (gi == NULL) {
                rc = SY_ENOMEM;
                break;
            }
            ids = gi;
        }
        ids[n / 2] = sqlite3_column_int64(js, 2);
        names[n] = strdup((const char *)sqlite3_column_text(js, 0));
        names[n + 1] = strdup((const char *)sqlite3_column_text(js, 1));
        n += 2;
    }
    sqlite3_finalize(js);
    /* handlers at the even places, states at the odd ones: two views of one array */
    const char **h = calloc(n / 2 + 1, sizeof(*h)), **sts = calloc(n / 2 + 1, sizeof(*sts));
    if (rc == SY_OK && (h == NULL || sts == NULL)) {
        rc = SY_ENOMEM;
    }
    for (size_t i = 0; rc == SY_OK && i < n / 2; i++) {
        h[i] = names[2 * i] ? names[2 * i] : "";
        sts[i] = names[2 * i + 1] ? names[2 * i + 1] : "";
    }
    if (rc == SY_OK) {
        e.n_jobs = n / 2;
        e.job_handler = h;
        e.job_state = sts;
        e.job_id = ids;
        rc = each(ctx, &e);
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    free(ids);
    free(h);
    free(sts);
    return rc;
}

#define EVENT_COLUMNS "seq, id, type, integration, category, body, norm, state, received_at"

int sy_sqlite_scan(struct sy_store *st, const struct sy_scan_query *q,
                   int (*each)(void *ctx, const struct sy_scan_event *ev), void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct reader *r = sy_sqlite_reader_acquire(s);
    if (r == NULL) {
        return SY_EIO;
    }
    sqlite3_stmt *ev = NULL;
    const char *sql = q->n_ids > 0 ? "SELECT " EVENT_COLUMNS " FROM events WHERE seq = ?1"
                                   : "SELECT " EVENT_COLUMNS " FROM events WHERE seq > ?1 AND "
                                     "(?2 = 0 OR received_at >= ?2) AND (?3 = 0 OR "
                                     "received_at < ?3) ORDER BY seq LIMIT " /* page */ "200";
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &ev, NULL) == SQLITE_OK ? SY_OK : SY_EIO;
    if (q->n_ids > 0) {
        for (size_t i = 0; rc == SY_OK && i < q->n_ids; i++) {
            int64_t seq =
                sy_sqlite_event_seq(r->db, sy_sqlite_live_ids(s), q->ids[i], strlen(q->ids[i]));
            if (seq < 0) {
                rc = SY_EIO;
                break;
            }
            sqlite3_bind_int64(ev, 1, seq);
            if (seq > 0 && sqlite3_step(ev) == SQLITE_ROW) {
                rc = visit(r->db, ev, each, ctx);
            }
            sqlite3_reset(ev);
        }
    } else {
        /* a page at a time, each read in its own snapshot, so checkpoints are not held up */
        int64_t after = 0;
        for (bool more = true; rc == SY_OK && more;) {
            sqlite3_bind_int64(ev, 1, after);
            sqlite3_bind_int64(ev, 2, q->since_ms);
            sqlite3_bind_int64(ev, 3, q->until_ms);
            int rows = 0;
            while (rc == SY_OK && sqlite3_step(ev) == SQLITE_ROW) {
                after = sqlite3_column_int64(ev, 0);
                rows++;
                rc = visit(r->db, ev, each, ctx);
            }
            sqlite3_reset(ev);
            more = rows == SCAN_PAGE;
        }
    }
    sqlite3_finalize(ev);
    sy_sqlite_reader_release(s, r);
    return rc;
}
