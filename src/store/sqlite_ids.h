#ifndef SY_STORE_SQLITE_IDS_H
#define SY_STORE_SQLITE_IDS_H

/*
 * The SQLite store's schema version, and finding its events by id (schema 4
 * keeps no b-tree index on ids: store/sqlite_schema.c says why). Shared by
 * the store's own files and by store/inspect.c, which also serves the CLI
 * from another process.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/idmap.h"

/* The schema version the SQLite store writes and reads (PRAGMA user_version). */
#define SY_STORE_SCHEMA 4

/* The schema version of the store open on 'db' (-1 when it cannot be read). */
int sy_sqlite_schema_version(sqlite3 *db);

/* A running store's ids. The writer thread changes them under the write lock; others read. */
struct sy_sqlite_ids {
    pthread_rwlock_t lock;
    struct sy_idmap *map;
    int64_t max_seq; /* the highest seq in the map ever */
};

/* Register sy_id_hash(text) as an SQL function on 'db'. SY_OK or SY_EIO. */
int sy_sqlite_ids_functions(sqlite3 *db);

/*
 * The seq of the event 'id' (len bytes) as 'db' sees it: 0 when there is
 * none, -1 when a read failed. Through the running store's 'ids' (read
 * lock) when given; NULL scans the events_ids index (the CLI: tenths of a
 * second on a store of millions). Any thread that owns 'db'.
 */
int64_t sy_sqlite_event_seq(sqlite3 *db, struct sy_sqlite_ids *ids, const char *id, size_t len);

#endif
