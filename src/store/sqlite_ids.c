/*
 * The SQLite store's events by id: the map of id hashes the writer keeps
 * (loaded at start, added to as events commit, taken back when a commit
 * fails, trimmed by the purge), and lookups by id for every reader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_ids.h"
#include "store/sqlite_int.h"
#include "util/clock.h"
#include "util/log.h"

int sy_sqlite_schema_version(sqlite3 *db)
{
    sqlite3_stmt *ver = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &ver, NULL) == SQLITE_OK &&
        sqlite3_step(ver) == SQLITE_ROW) {
        version = sqlite3_column_int(ver, 0);
    }
    sqlite3_finalize(ver);
    return version;
}

static void id_hash_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *id = (const char *)sqlite3_value_text(argv[0]);
    if (id == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    size_t len = (size_t)sqlite3_value_bytes(argv[0]);
    sqlite3_result_int64(ctx, (sqlite3_int64)sy_id_hash(id, len));
}

int sy_sqlite_ids_functions(sqlite3 *db)
{
    return sqlite3_create_function(db, "sy_id_hash", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                   id_hash_fn, NULL, NULL) == SQLITE_OK
               ? SY_OK
               : SY_EIO;
}

/* Whether the event at 'seq' has this id: 1 yes, 0 no (or no such event), -1 a failed read. */
static int id_is(sqlite3_stmt *st, int64_t seq, const char *id, size_t len)
{
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_ROW ? (size_t)sqlite3_column_bytes(st, 0) == len &&
                                     memcmp(sqlite3_column_text(st, 0), id, len) == 0
              : rc == SQLITE_DONE ? 0
                                  : -1;
    sqlite3_reset(st);
    return out;
}

#define CANDIDATES 16 /* seqs whose hash bits match: two is already one chance in billions */

int64_t sy_sqlite_event_seq(sqlite3 *db, struct sy_sqlite_ids *ids, const char *id, size_t len)
{
    uint64_t h = sy_id_hash(id, len);
    int64_t cand[CANDIDATES];
    size_t n = 0;
    bool all = true;
    if (ids != NULL) {
        pthread_rwlock_rdlock(&ids->lock);
        struct sy_idmap_iter it;
        sy_idmap_iter_init(ids->map, h, &it);
        int64_t seq;
        while (sy_idmap_iter_next(ids->map, &it, ids->max_seq, &seq)) {
            if (n == CANDIDATES) {
                all = false;
                break;
            }
            cand[n++] = seq;
        }
        pthread_rwlock_unlock(&ids->lock);
    }
    sqlite3_stmt *at = NULL, *scan = NULL;
    int64_t found = 0;
    if (sqlite3_prepare_v2(db, "SELECT id FROM events WHERE seq = ?", -1, &at, NULL) != SQLITE_OK) {
        found = -1;
        goto done;
    }
    for (size_t i = 0; i < n && found == 0; i++) {
        int is = id_is(at, cand[i], id, len);
        found = is < 0 ? -1 : is ? cand[i] : 0;
    }
    if (found != 0 || (ids != NULL && all)) {
        goto done;
    }
    /* no map (or more candidates than it gave): every entry of the index in arrival order */
    if (sqlite3_prepare_v2(db,
                           "SELECT seq FROM events INDEXED BY events_ids WHERE idh = ?1 OR "
                           "idh IS NULL",
                           -1, &scan, NULL) != SQLITE_OK) {
        found = -1;
        goto done;
    }
    sqlite3_bind_int64(scan, 1, (sqlite3_int64)h);
    int rc = SQLITE_DONE;
    while (found == 0 && (rc = sqlite3_step(scan)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(scan, 0);
        int is = id_is(at, seq, id, len);
        found = is < 0 ? -1 : is ? seq : 0;
    }
    if (found == 0 && rc != SQLITE_DONE) {
        found = -1;
    }
done:
    sqlite3_finalize(scan);
    sqlite3_finalize(at);
    return found;
}

/* ---- the writer's side ---- */

/* Every (seq, idh) of the events_ids index into the map; *unhashed counts rows without idh. */
static int fill(struct sqlite_store *s, int64_t *unhashed)
{
    sqlite3_stmt *st = NULL;
    *unhashed = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT seq, idh FROM events INDEXED BY events_ids", -1, &st,
                           NULL) != SQLITE_OK) {
        return SY_EIO;
    }
    int rc, status = SY_OK;
    while (status == SY_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
            (*unhashed)++;
            continue;
        }
        status = sy_idmap_add(s->ids.map, (uint64_t)sqlite3_column_int64(st, 1), seq);
        if (seq > s->ids.max_seq) {
            s->ids.max_seq = seq;
        }
    }
    sqlite3_finalize(st);
    return status != SY_OK ? status : rc == SQLITE_DONE ? SY_OK : SY_EIO;
}

int sy_sqlite_ids_load(struct sqlite_store *s, struct sy_error *err)
{
    double t0 = sy_mono_s();
    int64_t unhashed = 0;
    int rc = fill(s, &unhashed);
    if (rc == SY_OK && unhashed > 0) {
        /* rows written without their hash (by a tool beside the server) get it now */
        sy_idmap_free(s->ids.map);
        s->ids.map = sy_idmap_new();
        rc = s->ids.map == NULL ? SY_ENOMEM
             : sy_sqlite_exec(s->db, "UPDATE events INDEXED BY events_ids SET idh = "
                                     "sy_id_hash(id) WHERE idh IS NULL") != SY_OK
                 ? SY_EIO
                 : fill(s, &unhashed);
    }
    if (rc == SY_ENOMEM) {
        return sy_error_set(err, s->path, 0, "no memory for the ids of the stored events");
    }
    if (rc != SY_OK) {
        return sy_error_set(err, s->path, 0, "cannot read the stored ids: %s",
                            sqlite3_errmsg(s->db));
    }
    char n[24], mib[24], ms[24];
    snprintf(n, sizeof(n), "%zu", sy_idmap_count(s->ids.map));
    snprintf(mib, sizeof(mib), "%.1f", (double)sy_idmap_bytes(s->ids.map) / 1048576.0);
    snprintf(ms, sizeof(ms), "%.0f", (sy_mono_s() - t0) * 1000.0);
    sy_log(SY_LOG_INFO, "stored event ids loaded", "events", n, "mib", mib, "ms", ms, NULL);
    s->ids_live = true;
    return SY_OK;
}

int sy_sqlite_ids_find(struct sqlite_store *s, uint64_t h, const char *id, size_t len,
                       bool *dup)
{
    /* only this thread changes the map: it reads it without the lock */
    struct sy_idmap_iter it;
    sy_idmap_iter_init(s->ids.map, h, &it);
    int64_t seq;
    *dup = false;
    while (sy_idmap_iter_next(s->ids.map, &it, s->ids.max_seq, &seq)) {
        int is = id_is(s->id_at, seq, id, len);
        if (is != 0) {
            *dup = is > 0;
            return is > 0 ? SY_OK : SY_EIO;
        }
    }
    return SY_OK;
}

int sy_sqlite_ids_add(struct sqlite_store *s, uint64_t h, int64_t seq)
{
    if (s->n_added == s->cap_added) {
        size_t cap = s->cap_added ? s->cap_added * 2 : 64;
        struct sy_sqlite_added *g = realloc(s->added, cap * sizeof(*g));
        if (g == NULL) {
            return SY_ENOMEM;
        }
        s->added = g;
        s->cap_added = cap;
    }
    pthread_rwlock_wrlock(&s->ids.lock);
    int rc = sy_idmap_add(s->ids.map, h, seq);
    if (rc == SY_OK && seq > s->ids.max_seq) {
        s->ids.max_seq = seq;
    }
    pthread_rwlock_unlock(&s->ids.lock);
    if (rc == SY_OK) {
        s->added[s->n_added++] = (struct sy_sqlite_added){h, seq};
    }
    return rc;
}

void sy_sqlite_ids_end_batch(struct sqlite_store *s, bool committed)
{
    if (!committed && s->n_added > 0) {
        pthread_rwlock_wrlock(&s->ids.lock);
        for (size_t i = 0; i < s->n_added; i++) {
            sy_idmap_remove(s->ids.map, s->added[i].h, s->added[i].seq);
        }
        pthread_rwlock_unlock(&s->ids.lock);
    }
    s->n_added = 0;
}

void sy_sqlite_ids_remove(struct sqlite_store *s, uint64_t h, int64_t seq)
{
    pthread_rwlock_wrlock(&s->ids.lock);
    sy_idmap_remove(s->ids.map, h, seq);
    pthread_rwlock_unlock(&s->ids.lock);
}
