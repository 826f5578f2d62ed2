#ifndef SY_SANDBOX_H
#define SY_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "unizo/client.h"
#include "util/error.h"

/*
 * A sandboxed Lua state for rules. It offers only: rule, log, json, kv, the
 * safe base functions, string (no dump), table, math, utf8 and os.time /
 * date / clock / difftime. Text chunks only. Library tables are read-only
 * and the string metatable is hidden. One state belongs to one thread.
 */

struct sy_lua_limits {
    uint64_t instructions; /* per call; 0 = unlimited */
    size_t memory;         /* whole state; 0 = unlimited */
    uint64_t timeout_ms;   /* wall clock per call; 0 = unlimited */
};

/*
 * Where kv, Unizo calls and log lines go; every callback is called on the
 * state's thread. 'ctx' is the host's (given at sy_lua_new); 'run' is the
 * one given to the sy_lua_run in progress, or NULL outside a run (while a
 * file loads, or from a rule test's own code).
 */
struct sy_lua_host {
    void *ctx;
    int (*kv_get)(void *ctx, void *run, const char *key, char **value); /* *value: new or NULL */
    int (*kv_set)(void *ctx, void *run, const char *key, const char *value, uint64_t ttl_ms);
    int (*kv_delete)(void *ctx, void *run, const char *key);
    /*
     * The Unizo API; when unizo_call is NULL the 'unizo' global is absent.
     * Only called during a run. The host sets req->idempotency_key and
     * req->event_id; resp->body is new (free()).
     */
    int (*unizo_call)(void *ctx, void *run, struct sy_unizo_request *req,
                      struct sy_unizo_response *resp);
    /*
     * Optional: the same call where the run can wait for it (a coroutine run,
     * sy_lua_co_start, outside a C boundary such as a table.sort comparator;
     * elsewhere unizo_call is used). It may return SY_EAGAIN, having copied
     * what it sends: the run yields (SY_LUA_YIELDED) and, once resumed, takes
     * the answer from unizo_result (same contract as unizo_call).
     */
    int (*unizo_start)(void *ctx, void *run, struct sy_unizo_request *req,
                       struct sy_unizo_response *resp);
    int (*unizo_result)(void *ctx, void *run, struct sy_unizo_response *resp);
    void (*unizo_defaults)(void *ctx, const char *integration, const char **organization,
                           const char **collection);
    /* optional: receives log.* calls instead of the process log (the fields table at
     * fields_idx, or 0) */
    void (*log)(void *ctx, lua_State *L, int level, const char *msg, int fields_idx);
    /* optional: the clock os.time() reads (Unix seconds), for a test's frozen time */
    int64_t (*now_s)(void *ctx);
};

/* A rule as declared by rule{...} in a file. Strings borrowed from the state. */
struct sy_lua_rule {
    const char *name;
    const char *const *on;
    size_t n_on;
    const char *integration; /* NULL = any */
    const char *category;    /* NULL = any */
    const char *const *key;  /* ordering key: dotted paths into the event */
    size_t n_key;            /* 0 = no key */
    bool has_when;
    long concurrency; /* its jobs running at once in the instance; 0 = no cap */
    const char *file;
    int line;
};

#define SY_LUA_MAX_FILE (16u << 20)

struct sy_lua;

/* New state (NULL on failure). 'host' is copied; NULL host = kv calls fail. */
struct sy_lua *sy_lua_new(const struct sy_lua_limits *limits, const struct sy_lua_host *host);
void sy_lua_free(struct sy_lua *lx);

/*
 * Run a rule file's text; its rule{} calls register rules. 'display' is the
 * name used in messages (file:line). On error returns SY_EINVAL with the
 * message (it names the file and line) in err. 'source' is borrowed.
 */
int sy_lua_load_source(struct sy_lua *lx, const char *source, size_t len, const char *display,
                       struct sy_error *err);

/* Read a rule file (at most SY_LUA_MAX_FILE bytes) into *source (new). SY_EINVAL with 'err'. */
int sy_lua_read_file(const char *path, const char *display, char **source, size_t *len,
                     struct sy_error *err);

/* sy_lua_read_file, then sy_lua_load_source. */
int sy_lua_load_file(struct sy_lua *lx, const char *path, const char *display,
                     struct sy_error *err);

/* Rules registered so far, in declaration order. Valid until the state is freed. */
size_t sy_lua_rules(struct sy_lua *lx, const struct sy_lua_rule **rules);

/* Outcome of sy_lua_run. */
enum sy_lua_result {
    SY_LUA_OK,
    SY_LUA_SKIPPED,   /* the rule's 'when' returned false */
    SY_LUA_ERROR,     /* an error: retry */
    SY_LUA_PERMANENT, /* error({permanent = true}): straight to dead */
    SY_LUA_LIMIT,     /* instruction or memory limit: retry; the state must be rebuilt */
    SY_LUA_YIELDED,   /* a coroutine run waits for its host call: resume it when answered */
};

/*
 * Run rule 'name' on the event (JSON text): 'when' first if it has one,
 * then 'run'. 'norm' (JSON, may be NULL) is the normalized envelope
 * (ingest/delivery.h); its members replace the body's. On failure 'err'
 * gets the message with a traceback. 'event_id' is used as log context;
 * 'run' (borrowed) is handed to the host callbacks made during the run.
 * The Lua stack is left as it was, so a C function called from Lua (a rule
 * test) may use it.
 */
enum sy_lua_result sy_lua_run(struct sy_lua *lx, const char *name, const char *event_id,
                              const char *json, size_t len, const char *norm, size_t norm_len,
                              void *run, char *err, size_t errlen);

/*
 * A run of a rule in its own coroutine of the state, so that many runs can be
 * in progress in one state while their Unizo calls are in flight. Limits are
 * per run: lua.instruction_limit counts its instructions ('when' and 'run'
 * together), lua.timeout its running time without the time it waited on the
 * host; lua.memory_limit stays the whole state's.
 */
struct sy_lua_co;

/*
 * Start rule 'name' on the event (as sy_lua_run) in a new coroutine and run
 * it until it ends or yields on a host call. Sets *co (new) unless the run
 * could not start: SY_LUA_PERMANENT (no such rule, not an event) or
 * SY_LUA_LIMIT (no memory left in the state), with *co NULL. Any result but
 * SY_LUA_YIELDED is final: free *co.
 */
enum sy_lua_result sy_lua_co_start(struct sy_lua *lx, struct sy_lua_co **co, const char *name,
                                   const char *event_id, const char *json, size_t len,
                                   const char *norm, size_t norm_len, void *run, char *err,
                                   size_t errlen);

/* Go on with a yielded run once its host call has its answer. Same results. */
enum sy_lua_result sy_lua_co_resume(struct sy_lua_co *co, char *err, size_t errlen);

/* Release the run (ended, or abandoned while yielded). NULL is a no-op. Before sy_lua_free. */
void sy_lua_co_free(struct sy_lua_co *co);

/* The raw state, for tests. */
lua_State *sy_lua_state(struct sy_lua *lx);

/* Protected call of the function below 'nargs' arguments with the limits armed. */
enum sy_lua_result sy_lua_pcall(struct sy_lua *lx, int nargs, int nresults, char *err,
                                size_t errlen);

#endif
