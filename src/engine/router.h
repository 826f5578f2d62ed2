#ifndef SY_ROUTER_H
#define SY_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Event type patterns: an exact type ("scm.pull_request.created"), a prefix
 * with one or more further segments ("scm.*" matches "scm.pull_request.created"
 * but not "scm"), or "*" (everything). Pure functions; any thread.
 */

/* True when 'pattern' is well formed: "*", or segments of [A-Za-z0-9_:-] joined by '.', optionally
 * ending in ".*". */
bool sy_pattern_valid(const char *pattern);

/* True when 'type' (len bytes) matches 'pattern'. */
bool sy_pattern_match(const char *pattern, const char *type, size_t len);

/* One handler's routing: its patterns and an optional integration type filter. */
struct sy_route {
    const char *name;      /* borrowed */
    const char *const *on; /* borrowed, n_on patterns */
    size_t n_on;
    const char *integration; /* borrowed; NULL = any */
};

/* True when 'r' takes an event of 'type' from 'integration' (may be NULL). */
bool sy_route_matches(const struct sy_route *r, const char *type, size_t type_len,
                      const char *integration);

#endif
