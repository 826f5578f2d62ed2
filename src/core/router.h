#ifndef SY_CORE_ROUTER_H
#define SY_CORE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Event type patterns. A type is read as segments split on '.' and ':'
 * ("scm.pull_request.created", "ticket:created"). A pattern is segments of
 * [A-Za-z0-9_-] or "*", joined by '.' or ':'; a "*" segment matches one or
 * more segments of the type: "scm.*", "ticket:*", "*:created", "*". The two
 * separators are the same to matching. Pure functions; any thread.
 */

/* True when 'pattern' is well formed (see above; at most 255 bytes). */
bool sy_pattern_valid(const char *pattern);

/* True when 'type' (len bytes) matches 'pattern'. Time O(segments^2) at worst. */
bool sy_pattern_match(const char *pattern, const char *type, size_t len);

/* One handler's routing: its patterns, an optional integration type filter and ordering key. */
struct sy_route {
    const char *name;      /* borrowed */
    const char *const *on; /* borrowed, n_on patterns */
    size_t n_on;
    const char *integration; /* borrowed; NULL = any */
    const char *category;    /* borrowed; NULL = any */
    const char *const *key;  /* borrowed: dotted paths into the event; n_key 0 = no key */
    size_t n_key;
};

/* Longest ordering key kept as it is; longer values become "sha256:<hex of the value>". */
#define SY_KEY_MAX 200

/* True when 'path' is a valid key path: segments of [A-Za-z0-9_-] joined by '.'. */
bool sy_key_path_valid(const char *path);

/*
 * The ordering key of an event (validated JSON 'body') for route 'r': the
 * value at each key path (strings decoded, other values as their JSON text),
 * joined by "\x1f". Writes it to 'out' (SY_KEY_MAX + 1 bytes, NUL-ended) and
 * returns its length, or -1 when 'r' has no key or a path is absent or null
 * in this event (the job then runs without ordering). Pure; any thread.
 */
long sy_route_key(const struct sy_route *r, const char *body, size_t len, char *out);

/*
 * True when 'r' takes an event of 'type' from 'integration' under 'category' (each may
 * be NULL). switchyard's own events ("switchyard.*") match only patterns that start
 * with "switchyard.": a rule on "*" takes every delivery, not the server's alerts.
 */
bool sy_route_matches(const struct sy_route *r, const char *type, size_t type_len,
                      const char *integration, const char *category);

#endif
