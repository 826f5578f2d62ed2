/* The SQLite store's schema: created fresh, or migrated from an older version in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/clock.h"
#include "util/log.h"

/* Version 1: events, jobs, kv, replay requests. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL,"
    "  integration TEXT,"
    "  received_at INTEGER NOT NULL,"
    "  headers TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'routed'" /* routed | unrouted | quarantined (v3) */
    ");"
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,"
    "  handler TEXT NOT NULL,"
    "  state TEXT NOT NULL," /* pending | retrying | done | skipped | dead */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  due_at INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  UNIQUE(event_id, handler)"
    ");"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);"
    "CREATE TABLE IF NOT EXISTS kv ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  expires_at INTEGER"
    ");"
    "CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires_at) WHERE expires_at IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS replay_requests ("
    "  id INTEGER PRIMARY KEY,"
    "  event_id TEXT," /* NULL: every dead job */
    "  requested_at INTEGER NOT NULL"
    ");";

/* Version 2: ordering keys and attempt counts that survive replays on jobs; the effect journal. */
static const char migrate_v2[] =
    "ALTER TABLE jobs ADD COLUMN key TEXT;"
    "ALTER TABLE jobs ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;"
    "UPDATE jobs SET runs = attempts;"
    /* the next job of a key, and what a waiting job waits for */
    "CREATE INDEX jobs_key ON jobs(key, id) WHERE key IS NOT NULL AND state = 'pending';"
    "CREATE TABLE calls ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  attempt INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  idem_key TEXT,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  request TEXT,"
    "  status INTEGER NOT NULL,"
    "  response TEXT,"
    "  truncated INTEGER NOT NULL DEFAULT 0,"
    "  replayed INTEGER NOT NULL DEFAULT 0,"
    "  dry_run INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  at INTEGER NOT NULL,"
    "  ms REAL NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX calls_job ON calls(job_id, id);";

/*
 * Version 3: every delivery form normalized into one envelope (norm), the
 * category it came under, and why an authentic one could not be routed.
 */
static const char migrate_v3[] = "ALTER TABLE events ADD COLUMN category TEXT;"
                                 "ALTER TABLE events ADD COLUMN norm TEXT;"
                                 "ALTER TABLE events ADD COLUMN reason TEXT;"
                                 "CREATE INDEX events_quarantined ON events(seq) "
                                 "WHERE state = 'quarantined';";

/*
 * Version 4: no b-tree index on event ids. With random ids (UUIDs, as
 * Unizo's are) every insert landed on a page of its own of that index: a
 * WAL frame per event, and a page per event for the checkpoint, growing
 * with the store (docs/PERFORMANCE.md). The writer finds duplicates through
 * a map of id hashes it keeps in memory (store/idmap.h), loaded at start
 * from events_ids, an index in arrival order that only ever grows at its
 * end; idh is sy_id_hash(id) as a signed 64-bit integer (NULL: not yet
 * computed; the server fills it in at start). Jobs point at their event by
 * seq, so their (event, handler) key also grows at its end; event_id stays
 * beside it, as the jobs' readers know them by it. Both tables are rebuilt
 * (SQLite cannot drop a UNIQUE constraint): once, in one transaction.
 */
static const char migrate_v4[] =
    "CREATE TABLE events_v4 ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL,"
    "  idh INTEGER,"
    "  type TEXT NOT NULL,"
    "  integration TEXT,"
    "  received_at INTEGER NOT NULL,"
    "  headers TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'routed',"
    "  category TEXT,"
    "  norm TEXT,"
    "  reason TEXT"
    ");"
    "INSERT INTO events_v4(seq, id, idh, type, integration, received_at, headers, body, state, "
    "  category, norm, reason) "
    "SELECT seq, id, sy_id_hash(id), type, integration, received_at, headers, body, state, "
    "  category, norm, reason FROM events ORDER BY seq;"
    "CREATE TABLE jobs_v4 ("
    "  id INTEGER PRIMARY KEY,"
    "  event_seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,"
    "  event_id TEXT NOT NULL,"
    "  handler TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  due_at INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  key TEXT,"
    "  runs INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(event_seq, handler)"
    ");"
    "INSERT INTO jobs_v4(id, event_seq, event_id, handler, state, attempts, due_at, last_error, "
    "  created_at, updated_at, key, runs) "
    "SELECT j.id, e.seq, j.event_id, j.handler, j.state, j.attempts, j.due_at, j.last_error, "
    "  j.created_at, j.updated_at, j.key, j.runs FROM jobs AS j JOIN events AS e "
    "  ON e.id = j.event_id ORDER BY j.id;"
    "DROP TABLE jobs;"
    "DROP TABLE events;"
    "ALTER TABLE events_v4 RENAME TO events;"
    "ALTER TABLE jobs_v4 RENAME TO jobs;"
    "CREATE INDEX events_ids ON events(seq, idh);"
    "CREATE INDEX events_quarantined ON events(seq) WHERE state = 'quarantined';"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE INDEX jobs_key ON jobs(key, id) WHERE key IS NOT NULL AND state = 'pending';";

int sy_sqlite_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sy_log(SY_LOG_ERROR, "sqlite statement failed", "sql", sql, "error", msg, NULL);
        sqlite3_free(msg);
        return SY_EIO;
    }
    return SY_OK;
}

char *sy_sqlite_dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

struct sy_job *sy_sqlite_job_new(int64_t id, const char *event_id, const char *handler,
                                 const char *key, int attempts, int runs)
{
    struct sy_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->id = id;
    j->event_id = strdup(event_id);
    j->handler = strdup(handler);
    j->key = key ? strdup(key) : NULL;
    j->attempts = attempts;
    j->runs = runs;
    if (j->event_id == NULL || j->handler == NULL || (key != NULL && j->key == NULL)) {
        sy_job_free(j);
        return NULL;
    }
    return j;
}

static int64_t count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/*
 * Bring the schema from 'from' to SCHEMA_VERSION in one transaction. The
 * rebuild of version 4 rewrites the events: it runs with a rollback journal
 * (a WAL would take a copy of the whole store) and foreign keys off, as
 * SQLite's procedure for rebuilding a table asks, and checks them after.
 */
static int migrate(sqlite3 *db, const char *path, int from)
{
    bool rebuild = from >= 1 && from < 4;
    int64_t events = rebuild ? count_rows(db, "SELECT count(*) FROM events") : 0;
    double t0 = sy_mono_s();
    if (rebuild) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)events);
        sy_log(SY_LOG_INFO,
               "store schema upgrade to 4: rewriting the events and jobs tables once (it needs "
               "free disk space about the store's size)",
               "path", path, "events", n, NULL);
        if (sy_sqlite_exec(db, "PRAGMA journal_mode=DELETE") != SY_OK) {
            return SY_EIO;
        }
    }
    if (sy_sqlite_exec(db, "PRAGMA foreign_keys=OFF") != SY_OK ||
        sy_sqlite_exec(db, "BEGIN IMMEDIATE") != SY_OK) {
        return SY_EIO;
    }
    int rc = SY_OK;
    if (from < 1) {
        rc = sy_sqlite_exec(db, schema_v1);
    }
    if (rc == SY_OK && from < 2) {
        rc = sy_sqlite_exec(db, migrate_v2);
    }
    if (rc == SY_OK && from < 3) {
        rc = sy_sqlite_exec(db, migrate_v3);
    }
    if (rc == SY_OK && from < 4) {
        rc = sy_sqlite_exec(db, migrate_v4);
    }
    if (rc == SY_OK && count_rows(db, "SELECT count(*) FROM pragma_foreign_key_check") != 0) {
        sy_log(SY_LOG_ERROR, "store schema upgrade: a row points at nothing", "path", path, NULL);
        rc = SY_EIO;
    }
    if (rc == SY_OK) {
        rc = sy_sqlite_exec(db, "PRAGMA user_version=4; COMMIT");
    }
    if (rc != SY_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    } else if (from > 0) {
        char v[16], secs[32];
        snprintf(v, sizeof(v), "%d", from);
        snprintf(secs, sizeof(secs), "%.1f", sy_mono_s() - t0);
        sy_log(SY_LOG_INFO, "store schema upgraded", "from", v, "to", "4", "seconds", secs, NULL);
    }
    return rc;
}

static bool prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK;
}

int sy_sqlite_schema(struct sqlite_store *s, struct sy_error *err)
{
    int version = sy_sqlite_schema_version(s->db);
    if (version < 0 || version > SCHEMA_VERSION) {
        return sy_error_set(
            err, s->path, 0, "the store has schema version %d; this switchyard understands %d",
            version, SCHEMA_VERSION);
    }
    if (sy_sqlite_ids_functions(s->db) != SY_OK) {
        return sy_error_set(err, s->path, 0, "cannot set up the store: %s", sqlite3_errmsg(s->db));
    }
    if (version < SCHEMA_VERSION && migrate(s->db, s->path, version) != SY_OK) {
        return sy_error_set(err, s->path, 0, "cannot bring the store to schema version %d: %s",
                            SCHEMA_VERSION, sqlite3_errmsg(s->db));
    }
    if (!prepare(s,
                 "INSERT INTO events(id, type, integration, received_at, headers, body, state, "
                 "category, norm, reason, idh) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 &s->insert) ||
        !prepare(s,
                 "INSERT INTO jobs(event_seq, event_id, handler, state, attempts, due_at, "
                 "created_at, updated_at, key) VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4, ?5)",
                 &s->insert_job) ||
        !prepare(s, "SELECT id FROM events WHERE seq = ?", &s->id_at) ||
        !prepare(s,
                 "UPDATE jobs SET state = ?1, attempts = ?2, due_at = ?3, last_error = ?4, "
                 "updated_at = ?5, runs = runs + 1 WHERE id = ?6",
                 &s->finish_job) ||
        !prepare(s, "UPDATE jobs SET state = 'pending', due_at = ?1, updated_at = ?2 WHERE id = ?3",
                 &s->defer_job) ||
        !prepare(s, "INSERT OR REPLACE INTO kv(key, value, expires_at) VALUES (?, ?, ?)",
                 &s->kv_set) ||
        !prepare(s, "DELETE FROM kv WHERE key = ?", &s->kv_del) ||
        !prepare(s,
                 "SELECT id, event_id, handler, attempts, runs FROM jobs WHERE key = ?1 AND "
                 "state = 'pending' ORDER BY id LIMIT 1",
                 &s->next_of_key) ||
        !prepare(s,
                 "INSERT INTO calls(job_id, attempt, n, idem_key, method, path, request, status, "
                 "response, truncated, replayed, dry_run, error, at, ms) VALUES (?1, ?2, ?3, ?4, "
                 "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                 &s->insert_call)) {
        return sy_error_set(err, s->path, 0, "cannot prepare statements: %s",
                            sqlite3_errmsg(s->db));
    }
    return SY_OK;
}
