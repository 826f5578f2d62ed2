#ifndef SY_SERVER_H
#define SY_SERVER_H

#include "config.h"
#include "store/store.h"
#include "util/error.h"

/*
 * The HTTP side: N loop threads serving the webhook listeners, and one
 * admin thread. All functions are called from the main thread.
 */
struct sy_server;

/*
 * Bind every listener (so a port in use is reported before anything
 * starts). 'cfg', 'store' and 'engine' (for the admin API) are borrowed and must outlive the
 * server.
 */
struct sy_engine;
struct sy_server *sy_server_new(const struct sy_config *cfg, struct sy_store *store,
                                struct sy_engine *engine, struct sy_error *err);

/* Start the loop threads and the admin thread. */
int sy_server_start(struct sy_server *srv, struct sy_error *err);

/*
 * Graceful stop: close the listeners, wait up to 'grace_ms' for requests
 * waiting on the store to be answered, then stop the loops and join them.
 */
void sy_server_shutdown(struct sy_server *srv, int grace_ms);

/* Release everything; NULL is a no-op. Call after sy_server_shutdown. */
void sy_server_free(struct sy_server *srv);

/*
 * What `serve` and `check` say when 'cfg' turns HTTP/2 on: the h2o version this
 * binary uses and the HTTP/2 flaws it was never fixed for (README, "HTTP/2 and
 * TLS at the edge"); NULL when HTTP/2 is off. The text is static.
 */
const char *sy_server_http2_warning(const struct sy_config *cfg);

#endif
