/* The SQLite writer's replays: dead jobs requeued, quarantined events normalized again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/renorm.h"
#include "store/sqlite_int.h"
#include "util/buf.h"
#include "util/clock.h"

/*
 * A quarantined event, normalized again with the current code: when it can be
 * routed now, it gets its jobs (into 'promoted') and the state it would have
 * had; otherwise its reason is brought up to date. Counts the jobs in o->count.
 */
static int replay_quarantined(struct sqlite_store *s, struct op *o, int64_t seq,
                              struct sy_job_list *promoted)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT body, headers, category, received_at FROM events WHERE seq = ? "
                           "AND state = 'quarantined'",
                           -1, &st, NULL) != SQLITE_OK) {
        return SY_EIO;
    }
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? SY_OK : SY_EIO;
    }
    const char *body = (const char *)sqlite3_column_blob(st, 0);
    size_t body_len = (size_t)sqlite3_column_bytes(st, 0);
    int64_t received = sqlite3_column_int64(st, 3);
    struct sy_event_norm *n = malloc(sizeof(*n));
    struct sy_buf norm;
    sy_buf_init(&norm, 0);
    rc = n ? SY_OK : SY_ENOMEM;
    if (rc == SY_OK) {
        /* the id it was stored under stays its id: it is what dedupe knows */
        sy_store_renormalize(o->text, body, body_len, (const char *)sqlite3_column_text(st, 1),
                             (const char *)sqlite3_column_text(st, 2), n);
        sy_event_norm_json(n, &norm);
    }
    sqlite3_stmt *up = NULL;
    size_t first = s->routes.n, hits = 0;
    if (rc == SY_OK && !n->quarantined) {
        struct sy_append a = {.body = body, .body_len = body_len, .norm = norm.data, .norm_len = norm.len};
        sy_store_append_of(n, &a);
        hits = s->route != NULL ? s->route(s->route_ctx, &a, &s->routes) : 0;
        for (size_t i = 0; rc == SY_OK && i < hits; i++) {
            sqlite3_stmt *ij = s->insert_job;
            sqlite3_bind_int64(ij, 1, seq);
            sqlite3_bind_text(ij, 2, n->id, (int)n->id_len, SQLITE_STATIC);
            sqlite3_bind_text(ij, 3, sy_routes_handler(&s->routes, first + i), -1, SQLITE_STATIC);
            sqlite3_bind_int64(ij, 4, received);
            sy_sqlite_bind_text_or_null(ij, 5, sy_routes_key(&s->routes, first + i), -1);
            rc = sy_sqlite_step_done(s, ij, "sqlite job insert failed");
            struct sy_job *j = rc == SY_OK ? sy_sqlite_job_new(sqlite3_last_insert_rowid(s->db), n->id,
                                                                sy_routes_handler(&s->routes, first + i),
                                                                sy_routes_key(&s->routes, first + i), 0, 0)
                                           : NULL;
            if (j != NULL) {
                j->fresh = true;
                sy_sqlite_list_add(promoted, j);
            }
        }
        if (rc == SY_OK &&
            sqlite3_prepare_v2(s->db,
                               "UPDATE events SET type = ?2, integration = ?3, category = ?4, "
                               "norm = ?5, reason = NULL, state = ?6 WHERE seq = ?1",
                               -1, &up, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(up, 1, seq);
            sqlite3_bind_text(up, 2, n->type, -1, SQLITE_STATIC);
            sy_sqlite_bind_text_or_null(up, 3, n->integration_type[0] ? n->integration_type : NULL, -1);
            sy_sqlite_bind_text_or_null(up, 4, n->category[0] ? n->category : NULL, -1);
            sqlite3_bind_text(up, 5, norm.data, (int)norm.len, SQLITE_STATIC);
            sqlite3_bind_text(up, 6, hits > 0 ? "routed" : "unrouted", -1, SQLITE_STATIC);
            rc = sy_sqlite_step_done(s, up, "sqlite event update failed");
        }
        o->count += (long)hits;
        o->promoted = true;
    } else if (rc == SY_OK &&
               sqlite3_prepare_v2(s->db, "UPDATE events SET reason = ?2 WHERE seq = ?1", -1, &up,
                                  NULL) == SQLITE_OK) {
        sqlite3_bind_int64(up, 1, seq);
        sqlite3_bind_text(up, 2, n->reason, -1, SQLITE_STATIC);
        rc = sy_sqlite_step_done(s, up, "sqlite event update failed");
        snprintf(o->reason, sizeof(o->reason), "%s", n->reason);
    }
    sqlite3_finalize(up);
    sqlite3_finalize(st);
    sy_buf_dispose(&norm);
    free(n);
    return rc;
}

/* Requeue dead jobs (their attempts start over) into 'requeued'; route quarantined events. */
int sy_sqlite_apply_replay(struct sqlite_store *s, struct op *o, struct sy_job_list *requeued,
                           struct sy_job_list *promoted)
{
    o->count = 0;
    int64_t seq = 0;
    if (o->text != NULL) {
        seq = sy_sqlite_event_seq(s->db, &s->ids, o->text, strlen(o->text));
        int qrc = seq < 0 ? SY_EIO : seq > 0 ? replay_quarantined(s, o, seq, promoted) : SY_OK;
        if (qrc != SY_OK) {
            return qrc;
        }
    }
    const char *sql = o->text ? "UPDATE jobs SET state='pending', attempts=0, due_at=?1, "
                                "updated_at=?1 WHERE state='dead' AND event_seq=?2 "
                                "RETURNING id, event_id, handler, key, runs"
                              : "UPDATE jobs SET state='pending', attempts=0, due_at=?1, "
                                "updated_at=?1 WHERE state='dead' "
                                "RETURNING id, event_id, handler, key, runs";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return SY_EIO;
    }
    sqlite3_bind_int64(st, 1, sy_wall_ms());
    if (o->text) {
        sqlite3_bind_int64(st, 2, seq);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct sy_job *j = sy_sqlite_job_new(
            sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3), 0,
            sqlite3_column_int(st, 4));
        if (j != NULL) {
            sy_sqlite_list_add(requeued, j);
        }
        o->count++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SY_OK : SY_EIO;
}
