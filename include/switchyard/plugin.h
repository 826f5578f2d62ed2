/*
 * switchyard plugin ABI. A plugin is a shared object that exports one
 * symbol, `switchyard_plugin`, a const struct sy_plugin. The host hands it a
 * table of functions (struct sy_plugin_host), so a plugin never links
 * against switchyard. Both structs start with their ABI version and size and
 * only ever grow at the end: a plugin built against an older minor version
 * keeps loading, and one built for another major version is refused.
 *
 * Build: cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags switchyard-plugin) \
 *           -o my.so my.c
 */
#ifndef SWITCHYARD_PLUGIN_H
#define SWITCHYARD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SY_PLUGIN_ABI_MAJOR 1
#define SY_PLUGIN_ABI_MINOR 0
#define SY_PLUGIN_ABI_VERSION ((uint32_t)(SY_PLUGIN_ABI_MAJOR << 16 | SY_PLUGIN_ABI_MINOR))

/* What handle() returns. */
#ifndef SY_OK
#define SY_OK 0 /* done: this event is handled */
#endif
#define SY_RETRY 1 /* failed for now: run again on the retry schedule */
#define SY_FAIL 2  /* failed for good: the job goes dead (replayable) */

/* Log levels for host->log. */
#define SY_PLUGIN_DEBUG 0
#define SY_PLUGIN_INFO 1
#define SY_PLUGIN_WARN 2
#define SY_PLUGIN_ERROR 3

/* An event being handled. Opaque; read it through the host's accessors. */
struct sy_event;
/* One handle() invocation: carries the Idempotency-Key context of its calls. Opaque. */
struct sy_plugin_call;
/* jansson's type, for plugins that want the parsed event (they then use jansson themselves). */
struct json_t;

/*
 * The host's functions. Every function is safe to call from handle() on any
 * worker thread at the same time. Strings returned as "new" are released
 * with host->free; "borrowed" ones live as long as the object they come from.
 * Functions returning int give SY_OK (0) or a negative error.
 */
struct sy_plugin_host {
    uint32_t abi_version; /* SY_PLUGIN_ABI_VERSION of the host */
    uint32_t struct_size; /* sizeof(struct sy_plugin_host) in the host */

    /* A log line from plugin 'plugin' (its name), at SY_PLUGIN_* 'level'. Never log secrets. */
    void (*log)(int level, const char *plugin, const char *message);
    /* Release a string the host returned as new. */
    void (*free)(void *p);

    /* The event: id, type, integration type (borrowed; NULL when absent), raw JSON body. */
    const char *(*event_id)(const struct sy_event *ev);
    const char *(*event_type)(const struct sy_event *ev);
    const char *(*event_integration)(const struct sy_event *ev);
    const char *(*event_json)(const struct sy_event *ev, size_t *len);
    /* The parsed body as a jansson object (borrowed, valid during handle()). */
    struct json_t *(*event_object)(const struct sy_event *ev);

    /*
     * Any Unizo API endpoint, with the same client, retries,
     * Idempotency-Key (<event id>/<plugin>/<n>) and effect journal as Lua
     * rules: when a retried handle() makes its n-th call with the same
     * method and path as a call that got a 2xx in an earlier attempt, that
     * answer is returned again and nothing is sent. 'body_json', 'query' and
     * 'integration' may be NULL. On return *status is the HTTP status (0 =
     * no answer) and *response the body (new, may be NULL). Returns SY_OK
     * when a 2xx answer arrived, a negative value otherwise. Blocks until
     * the answer is there: the plugin's job holds its worker's thread (and
     * its slot of engine.max_in_flight) while it waits. The worker's other
     * jobs keep their calls in flight meanwhile, and the integration's caps
     * (max_in_flight, rate, a 429's hold) apply to this call too, but Lua
     * jobs of that worker go on only once handle() returns.
     */
    int (*unizo_request)(struct sy_plugin_call *call, const char *method, const char *path,
                         const char *query, const char *body_json, const char *integration,
                         long *status, char **response);
    /*
     * Ticketing helpers, as in Lua: 'fields_json' is an object with title,
     * description, type, priority, status, labels, assignee_ids,
     * custom_fields (and optionally organization, collection); 'id' names the
     * ticket for update/comment/get. *response: the answer (new) or NULL.
     */
    int (*create_ticket)(struct sy_plugin_call *call, const char *integration,
                         const char *fields_json, char **response);
    int (*update_ticket)(struct sy_plugin_call *call, const char *integration, const char *id,
                         const char *fields_json, char **response);
    int (*add_comment)(struct sy_plugin_call *call, const char *integration, const char *id,
                       const char *content, char **response);
    int (*get_ticket)(struct sy_plugin_call *call, const char *integration, const char *id,
                      char **response);

    /*
     * Persistent key/value shared with rules; values are JSON text. *value: new or NULL.
     * Called from handle(), sets and deletes commit with the job's outcome: they are
     * visible to this handle() at once, to others once it returns SY_OK, and dropped
     * when it returns anything else.
     */
    int (*kv_get)(const char *key, char **value_json);
    int (*kv_set)(const char *key, const char *value_json, uint64_t ttl_ms);
    int (*kv_delete)(const char *key);

    /*
     * Look up a dotted path ("jira.collection") in a plugin's config JSON.
     * Returns the value as text (strings unquoted, others as JSON; new) or NULL.
     */
    char *(*config_get)(const char *config_json, const char *path);
};

/* The descriptor a plugin exports as `switchyard_plugin`. */
struct sy_plugin {
    uint32_t abi_version; /* SY_PLUGIN_ABI_VERSION the plugin was built with */
    uint32_t struct_size; /* sizeof(struct sy_plugin) the plugin was built with */
    const char *name;     /* handler name: unique among rules and plugins, stable */
    const char *version;
    const char *const
        *events; /* NULL-terminated patterns: "scm.pull_request.created", "scm.*", "*" */

    /*
     * Called once at start, on the main thread. 'host' stays valid until
     * fini. 'config_json' (borrowed, only during init) is the plugin's
     * config from the switchyard config ("{}" when none). Set *state to the
     * plugin's own data. Return SY_OK, or anything else to refuse loading.
     */
    int (*init)(const struct sy_plugin_host *host, const char *config_json, void **state);
    /*
     * Handle one event. May run on several workers at once: 'state' must be
     * read-only or guarded by the plugin. 'event' and 'call' are borrowed for
     * the call. Return SY_OK, SY_RETRY or SY_FAIL.
     */
    int (*handle)(void *state, const struct sy_event *event, struct sy_plugin_call *call);
    /* Called once at shutdown, after the last handle(). May be NULL. */
    void (*fini)(void *state);
};

#if defined(__GNUC__)
#define SY_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SY_PLUGIN_EXPORT
#endif

/* Declare the descriptor: SY_PLUGIN_DEFINE = { SY_PLUGIN_ABI_VERSION, sizeof(struct sy_plugin), ...
 * }; */
#define SY_PLUGIN_DEFINE SY_PLUGIN_EXPORT const struct sy_plugin switchyard_plugin

#ifdef __cplusplus
}
#endif

#endif
