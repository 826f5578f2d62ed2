#ifndef SY_INSPECT_H
#define SY_INSPECT_H

#include <stdbool.h>

#include <jansson.h>

#include "util/error.h"

/*
 * Read-side views of a SQLite store for `switchyard events`, `replay` and
 * the admin API. Each call opens its own connection; safe beside a running
 * server (WAL readers never block the writer). Any thread.
 */

/*
 * A page of events, newest first, with a count of their jobs per state: the
 * events 'f' selects (store/filter.h) as {"events": [...], "next": cursor
 * or null}. Returns new JSON, or NULL with 'err'.
 */
struct sy_event_filter;
struct sy_sqlite_ids;
json_t *sy_inspect_list(const char *db_path, struct sy_sqlite_ids *ids,
                        const struct sy_event_filter *f, struct sy_error *err);

/*
 * One event: envelope fields, headers (signature redacted), body, and its jobs. NULL + err when
 * absent. 'ids' (both calls) is the running store's id map, or NULL to find an id by a scan
 * (store/sqlite_ids.h).
 */
json_t *sy_inspect_show(const char *db_path, struct sy_sqlite_ids *ids, const char *id,
                        struct sy_error *err);

/*
 * Ask the server to requeue the dead jobs of 'event_id' (NULL = all dead
 * jobs), or to normalize and route it again when it is quarantined. The
 * request is durable; a running server acts on it within a second, a
 * stopped one at its next start. Sets *dead to how many dead jobs match now
 * and *quarantined. Returns SY_OK, SY_ENOTFOUND (no such event) or SY_EIO.
 */
int sy_inspect_request_replay(const char *db_path, const char *event_id, long *dead,
                              bool *quarantined, struct sy_error *err);

/* The path of a "sqlite:PATH" store URL, or NULL. */
const char *sy_inspect_db_path(const char *store_url);

#endif
