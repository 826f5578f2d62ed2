#ifndef SY_HTTP_CONN_TABLE_H
#define SY_HTTP_CONN_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "ingest/cidr.h"

/*
 * Open webhook connections per client address, shared by the loop threads
 * (a mutex; touched once when a connection opens and once when it closes).
 * Holds at most 'max_entries' addresses: the server counts a connection here
 * only after the global limit let it in, so there are never more addresses
 * than open connections.
 */
struct sy_conn_table;

struct sy_conn_table *sy_conn_table_new(size_t max_entries);
void sy_conn_table_free(struct sy_conn_table *t);

/* Count one more connection from 'a'; false, and nothing counted, when 'a' already has 'cap'. */
bool sy_conn_table_enter(struct sy_conn_table *t, const struct sy_addr *a, int cap);

/* One connection from 'a' closed. */
void sy_conn_table_leave(struct sy_conn_table *t, const struct sy_addr *a);

/* Connections counted for 'a' now (for tests and metrics). */
int sy_conn_table_count(struct sy_conn_table *t, const struct sy_addr *a);

#endif
