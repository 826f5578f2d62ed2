#ifndef SY_PLUGINS_H
#define SY_PLUGINS_H

#include <stddef.h>

#include <switchyard/plugin.h>

#include "config.h"
#include "store/store.h"
#include "unizo/client.h"
#include "util/error.h"

/* A loaded plugin. */
struct sy_loaded_plugin {
    char *file;
    int fd; /* the checked file, open while it is mapped */
    void *dl;
    const struct sy_plugin *desc; /* borrowed from the shared object */
    void *state;
    size_t n_events;
    char *integration; /* from its config entry: route only this integration type (NULL = any) */
    char *category;    /* and only this category (NULL = any) */
};

/*
 * The context of one handle(): what the host functions need (see plugin.h).
 * Unizo calls go through the job's call path (Idempotency-Key, journal),
 * the same one Lua rules use; kv writes ride on the job.
 */
struct sy_plugin_call {
    int (*unizo_call)(void *ctx, struct sy_unizo_request *req, struct sy_unizo_response *resp);
    void (*unizo_defaults)(void *ctx, const char *integration, const char **organization,
                           const char **collection);
    void *ctx;
    struct sy_store *store;
    struct sy_job *job;
    const char *handler;
};

/* The event handed to handle(). */
struct sy_event {
    const char *id;
    const char *type;
    const char *integration;
    const char *json;
    size_t len;
    struct json_t *obj;
};

/*
 * Load every plugin of cfg (plugin_dir's *.so and plugins = {...}), check
 * its ABI, and init it. 'store' backs host->kv_*. On error nothing stays
 * loaded and 'err' names the file and the reason. Main thread.
 */
int sy_plugins_load(const struct sy_config *cfg, struct sy_store *store,
                    struct sy_loaded_plugin **out, size_t *n, struct sy_error *err);

/* fini and dlclose each (after the last handle()). */
void sy_plugins_unload(struct sy_loaded_plugin *list, size_t n);

/* The host table given to plugins. */
const struct sy_plugin_host *sy_plugin_host(void);

/*
 * Run p's handle() on 'ev' under 'call' (borrowed for the call). Returns
 * what handle() returned. The worker thread running the job.
 */
int sy_plugin_handle(const struct sy_loaded_plugin *p, const struct sy_event *ev,
                     struct sy_plugin_call *call);

#endif
