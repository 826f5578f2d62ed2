/* The SQLite store's reads: pooled read-only connections, one at a time per caller. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/clock.h"

static void reader_close(struct reader *r)
{
    if (r != NULL) {
        sqlite3_finalize(r->body);
        sqlite3_finalize(r->kv);
        sqlite3_finalize(r->calls);
        sqlite3_close(r->db);
        free(r);
    }
}

void sy_sqlite_readers_close(struct sqlite_store *s)
{
    for (size_t i = 0; i < s->n_readers; i++) {
        reader_close(s->readers[i]);
    }
    free(s->readers);
    s->readers = NULL;
    s->n_readers = s->cap_readers = 0;
}

static bool prepare(struct reader *r, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK;
}

struct reader *sy_sqlite_reader_acquire(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->mu);
    struct reader *r = s->n_readers > 0 ? s->readers[--s->n_readers] : NULL;
    pthread_mutex_unlock(&s->mu);
    if (r != NULL) {
        return r;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                     NULL) != SQLITE_OK) {
        reader_close(r);
        return NULL;
    }
    sqlite3_busy_timeout(r->db, 5000);
    if (!prepare(r,
                 "SELECT e.body, e.norm FROM jobs AS j JOIN events AS e ON e.seq = j.event_seq "
                 "WHERE j.id = ?",
                 &r->body) ||
        !prepare(r,
                 "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                 &r->kv) ||
        !prepare(r,
                 "SELECT attempt, n, idem_key, method, path, request, status, response, "
                 "truncated, replayed, dry_run, error, at, ms FROM calls WHERE job_id = ? "
                 "ORDER BY id",
                 &r->calls)) {
        reader_close(r);
        return NULL;
    }
    return r;
}

void sy_sqlite_reader_release(struct sqlite_store *s, struct reader *r)
{
    sqlite3_reset(r->body);
    sqlite3_reset(r->kv);
    sqlite3_reset(r->calls);
    pthread_mutex_lock(&s->mu);
    if (s->n_readers == s->cap_readers) {
        size_t cap = s->cap_readers ? s->cap_readers * 2 : 8;
        struct reader **rs = realloc(s->readers, cap * sizeof(*rs));
        if (rs != NULL) {
            s->readers = rs;
            s->cap_readers = cap;
        }
    }
    if (s->n_readers < s->cap_readers) {
        s->readers[s->n_readers++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    reader_close(r);
}

static char *column_dup(sqlite3_stmt *st, int col, size_t *len)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (len != NULL) {
        *len = t ? n : 0;
    }
    return t ? sy_sqlite_dupn((const char *)t, n) : NULL;
}

int sy_sqlite_load_body(struct sy_store *st, struct sy_job *job)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct reader *r = sy_sqlite_reader_acquire(s);
    if (r == NULL) {
        return SY_EIO;
    }
    int rc;
    sqlite3_bind_int64(r->body, 1, job->id);
    int step = sqlite3_step(r->body);
    if (step == SQLITE_ROW) {
        job->body_len = (size_t)sqlite3_column_bytes(r->body, 0);
        job->body = sy_sqlite_dupn((const char *)sqlite3_column_text(r->body, 0), job->body_len);
        job->norm = column_dup(r->body, 1, &job->norm_len);
        rc = job->body ? SY_OK : SY_ENOMEM;
    } else {
        rc = step == SQLITE_DONE ? SY_ENOTFOUND : SY_EIO;
    }
    sy_sqlite_reader_release(s, r);
    return rc;
}

int sy_sqlite_kv_get(struct sy_store *st, const char *key, char **value)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    *value = NULL;
    struct reader *r = sy_sqlite_reader_acquire(s);
    if (r == NULL) {
        return SY_EIO;
    }
    int rc;
    sqlite3_bind_text(r->kv, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(r->kv, 2, sy_wall_ms());
    int step = sqlite3_step(r->kv);
    if (step == SQLITE_ROW) {
        *value = strdup((const char *)sqlite3_column_text(r->kv, 0));
        rc = *value ? SY_OK : SY_ENOMEM;
    } else {
        rc = step == SQLITE_DONE ? SY_OK : SY_EIO;
    }
    sy_sqlite_reader_release(s, r);
    return rc;
}

int sy_sqlite_journal_load(struct sy_store *st, const struct sy_job *job,
                           struct sy_call_record **recs, size_t *n)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    struct reader *r = sy_sqlite_reader_acquire(s);
    if (r == NULL) {
        return SY_EIO;
    }
    struct sy_call_record *out = NULL;
    size_t count = 0, cap = 0;
    int rc = SY_OK, step;
    sqlite3_bind_int64(r->calls, 1, job->id);
    while ((step = sqlite3_step(r->calls)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            struct sy_call_record *grown = realloc(out, cap * sizeof(*grown));
            if (grown == NULL) {
                rc = SY_ENOMEM;
                break;
            }
            out = grown;
        }
        struct sy_call_record *c = &out[count++];
        memset(c, 0, sizeof(*c));
        sqlite3_stmt *q = r->calls;
        c->attempt = sqlite3_column_int(q, 0);
        c->n = sqlite3_column_int(q, 1);
        c->key = column_dup(q, 2, NULL);
        c->method = column_dup(q, 3, NULL);
        c->path = column_dup(q, 4, NULL);
        c->request = column_dup(q, 5, NULL);
        c->status = (long)sqlite3_column_int64(q, 6);
        c->response = column_dup(q, 7, &c->response_len);
        c->truncated = sqlite3_column_int(q, 8) != 0;
        c->replayed = sqlite3_column_int(q, 9) != 0;
        c->dry_run = sqlite3_column_int(q, 10) != 0;
        c->error = column_dup(q, 11, NULL);
        c->at_ms = sqlite3_column_int64(q, 12);
        c->ms = sqlite3_column_double(q, 13);
        if (c->method == NULL || c->path == NULL) {
            rc = SY_ENOMEM;
            break;
        }
    }
    if (rc == SY_OK && step != SQLITE_DONE) {
        rc = SY_EIO;
    }
    sy_sqlite_reader_release(s, r);
    if (rc != SY_OK) {
        sy_call_records_free(out, count);
        return rc;
    }
    *recs = out;
    *n = count;
    return SY_OK;
}
