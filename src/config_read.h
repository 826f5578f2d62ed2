#ifndef SY_CONFIG_READ_H
#define SY_CONFIG_READ_H

/*
 * Reading the config's Lua tables: typed readers that check one value and
 * say what is wrong with it at its file and line. Internal to config*.c.
 * Each reader takes the value on top of the Lua stack and leaves the stack
 * as it found it; each returns SY_OK or a negative SY_E* with w->err set.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "config.h"
#include "ingest/cidr.h"
#include "util/error.h"

/* State shared by the readers while walking the config tables. */
struct sy_cfg_walker {
    lua_State *L;
    const char *file;
    char *source;  /* the file's text, to find the line of a nested key */
    int base_line; /* line of the top-level assignment being walked */
    struct sy_error *err;
};

/* Fill w->err naming the line of 'key' (a leaf name; NULL = the assignment's line). */
int sy_cfg_fail(struct sy_cfg_walker *w, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The line where "key =" starts the assignment Lua reported as ending at 'end_line'. */
int sy_cfg_statement_line(const char *source, const char *key, int end_line);

/* The last segment of a dotted path ("webhook.allow" -> "allow"). */
const char *sy_cfg_leaf(const char *path);

int sy_cfg_string(struct sy_cfg_walker *w, const char *path, char **out);
int sy_cfg_bool(struct sy_cfg_walker *w, const char *path, bool *out);
int sy_cfg_int(struct sy_cfg_walker *w, const char *path, int64_t min, int64_t max, int64_t *out);
/* A number of 'plain_factor' units, or a string with a unit read by 'parse'. */
int sy_cfg_unit(struct sy_cfg_walker *w, const char *path, bool (*parse)(const char *, uint64_t *),
                uint64_t plain_factor, const char *example, uint64_t *out);
/* A list of strings (or one string when 'allow_single'); replaces *out. */
int sy_cfg_strv(struct sy_cfg_walker *w, const char *path, bool allow_single, char ***out,
                size_t *n);
int sy_cfg_cidrs(struct sy_cfg_walker *w, const char *path, struct sy_cidr **out, size_t *n);
/* Every key of the table on top is a string in 'known' (NULL-ended). */
int sy_cfg_keys(struct sy_cfg_walker *w, const char *path, const char *const *known);
/* One of 'choices' (NULL-ended) into *out as its index. */
int sy_cfg_choice(struct sy_cfg_walker *w, const char *path, const char *const *choices, int *out);
/* Push t[key] (t on top); returns false and pushes nothing when it is nil. */
bool sy_cfg_field(lua_State *L, const char *key);

/* Walk one top-level assignment 'key' (its value on top) into 'cfg'. */
int sy_cfg_walk_global(struct sy_cfg_walker *w, struct sy_config *cfg, const char *key);

void sy_cfg_free_strv(char **v, size_t n);

#endif
