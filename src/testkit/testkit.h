#ifndef SY_TESTKIT_H
#define SY_TESTKIT_H

/*
 * `switchyard test`: the rule-test runner. world.c builds one test's world
 * (below): fire() runs the server's delivery checks (ingest/check.h), stores
 * the event in a memory store whose router is the engine's, and runs its jobs
 * with the engine's job runner; the network under the effect journal is the
 * test's respond() declarations, and the clock can be frozen. runner.c finds
 * the test files, runs each test in a world of its own and reports. The
 * command in cli/test.c only reads its arguments.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "config.h"

/* What every test of a run shares: the config and the rule files. */
struct sy_testkit_suite {
    const struct sy_config *cfg;
    char **rule_files, **rule_display;
    size_t n_rules;
};

struct sy_store;
struct sy_engine;

/*
 * One test's world: the test file's own Lua state (testkit.lua, the test),
 * and the live pipeline the events it fires go through: a memory store
 * (store.h) and an engine running its jobs inline on this thread (the real
 * router, rules and plugins, job runner, retry policy, effect journal).
 */
struct tctx {
    const struct sy_config *cfg;
    struct sy_lua *lx; /* the test file's state */
    lua_State *L;
    const char *test_dir;
    int64_t now; /* frozen Unix time in seconds, or 0 */
    struct sy_store *store;
    struct sy_engine *eng;
    int logs_ref; /* LUA_NOREF or the table receiving log lines */
    int jobs_ref;     /* LUA_NOREF, or while sy.run_jobs runs: the table of {rule, outcome} */
    int attempts_ref; /* ...and the table of {event, attempt, retry_at} */
    int sy_ref;   /* the primitives table (holds sy.transport) */
};

/* Build the world of a test file (in 'dir'); false with 'msg' when it cannot load. */
bool sy_testkit_world_build(struct tctx *t, const struct sy_testkit_suite *s, const char *file,
                            const char *dir, char *msg, size_t msglen);
void sy_testkit_world_dispose(struct tctx *t);

/* Call sy.<fn>(args...) in the world's state; results stay on the stack. */
int sy_testkit_call(struct tctx *t, const char *fn, int nargs, int nres);

/* What `switchyard test` was asked. */
struct sy_testkit_args {
    const char *config; /* -c; NULL = none */
    const char *filter; /* run only tests whose name contains it; NULL = all */
    const char *junit;  /* a JUnit report to write; NULL = none */
    char *const *paths; /* test files or folders */
    size_t n_paths;
};

/* Run the tests; returns the exit status (0 passed, 1 failed, 2 usage). */
int sy_testkit_run(const struct sy_testkit_args *a);

#endif
