#ifndef SY_ENGINE_RULES_H
#define SY_ENGINE_RULES_H

#include <stddef.h>

#include "config.h"
#include "core/router.h"
#include "lua/sandbox.h"
#include "util/error.h"

/*
 * One generation of the rule files: the source of every file as it was read
 * when the generation was compiled, and the rules it declares. Workers build
 * their Lua states from this source, never from the files again, so what is
 * on disk matters only at the next reload. Immutable once made; shared by
 * reference count (the engine holds one reference to its current generation,
 * each worker one to the generation its state was built from).
 */
struct sy_rule_gen {
    unsigned generation;
    int refs; /* atomic */
    size_t n_files;
    char **display; /* each file as named in messages */
    char **source;  /* its text when the generation was compiled */
    size_t *source_len;
    struct sy_lua *probe; /* owns the rule descriptions */
    const struct sy_lua_rule *rules;
    size_t n_rules;
    struct sy_route *routes; /* parallel to rules */
};

/*
 * Read and compile every rule file of cfg->rules (one reference, the
 * caller's). Returns NULL and fills 'err' (file:line) when any file is
 * missing or broken: a generation is all the files or nothing.
 */
struct sy_rule_gen *sy_rule_gen_load(const struct sy_config *cfg, unsigned generation,
                                     struct sy_error *err);
void sy_rule_gen_hold(struct sy_rule_gen *g);
/* Drop a reference; the last one frees the generation. NULL is a no-op. Any thread. */
void sy_rule_gen_release(struct sy_rule_gen *g);

/* Generations alive in this process (for the metric and the tests). */
long sy_rule_gen_live(void);

/*
 * A new Lua state with every file of 'g' run from its captured source, or
 * NULL with 'err'. 'host' is copied.
 */
/* The sandbox limits the config sets for every rule call (lua.instruction_limit, memory_limit,
 * timeout). */
struct sy_lua_limits sy_rule_limits(const struct sy_config *cfg);

struct sy_lua *sy_rule_gen_state(const struct sy_rule_gen *g, const struct sy_lua_limits *limits,
                                 const struct sy_lua_host *host, struct sy_error *err);

/* The rule named 'name' in 'g', or NULL. */
const struct sy_lua_rule *sy_rule_gen_find(const struct sy_rule_gen *g, const char *name);

/*
 * The rule files of cfg->rules, as `serve` loads them: absolute paths and
 * the names used in messages, in load order (*_test.lua excluded). New
 * arrays; release with sy_rule_files_free.
 */
int sy_rule_files(const struct sy_config *cfg, char ***files, char ***display, size_t *n,
                  struct sy_error *err);
void sy_rule_files_free(char **files, char **display, size_t n);

#endif
