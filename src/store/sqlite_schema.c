/* The SQLite store's schema: created fresh, or migrated from an older version in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
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

static int user_version(sqlite3 *db)
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

/* Bring the schema from 'from' to SCHEMA_VERSION in one transaction. */
static int migrate(sqlite3 *db, int from)
{
    if (sy_sqlite_exec(db, "BEGIN IMMEDIATE") != SY_OK) {
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
    if (rc == SY_OK) {
        rc = sy_sqlite_exec(db, "PRAGMA user_version=3; COMMIT");
    }
    if (rc != SY_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    } else if (from > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", from);
        sy_log(SY_LOG_INFO, "store schema upgraded", "from", v, "to", "3", NULL);
    }
    return rc;
}

static bool prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK;
}

int sy_sqlite_schema(struct sqlite_store *s, struct sy_error *err)
{
    int version = user_version(s->db);
    if (version < 0 || version > SCHEMA_VERSION) {
        return sy_error_set(
            err, s->path, 0, "the store has schema version %d; this switchyard understands %d",
            version, SCHEMA_VERSION);
    }
    if (version < SCHEMA_VERSION && migrate(s->db, version) != SY_OK) {
        return sy_error_set(err, s->path, 0, "cannot bring the store to schema version %d: %s",
                            SCHEMA_VERSION, sqlite3_errmsg(s->db));
    }
    if (!prepare(s,
                 "INSERT OR IGNORE INTO events(id, type, integration, received_at, headers, "
                 "body, state, category, norm, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 &s->insert) ||
        !prepare(s,
                 "INSERT INTO jobs(event_id, handler, state, attempts, due_at, created_at, "
                 "updated_at, key) VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?3, ?4)",
                 &s->insert_job) ||
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
