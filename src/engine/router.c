#include <string.h>

#include "engine/router.h"

static bool seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':' || c == '-';
}

bool sy_pattern_valid(const char *p)
{
    if (strcmp(p, "*") == 0) {
        return true;
    }
    size_t len = strlen(p);
    if (len == 0 || len > 255) {
        return false;
    }
    if (len >= 2 && strcmp(p + len - 2, ".*") == 0) {
        len -= 2;
    }
    bool seg_empty = true;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '.') {
            if (seg_empty) {
                return false;
            }
            seg_empty = true;
        } else if (seg_char(p[i])) {
            seg_empty = false;
        } else {
            return false;
        }
    }
    return !seg_empty;
}

bool sy_pattern_match(const char *pattern, const char *type, size_t len)
{
    size_t plen = strlen(pattern);
    if (plen == 1 && pattern[0] == '*') {
        return true;
    }
    if (plen >= 2 && pattern[plen - 1] == '*' && pattern[plen - 2] == '.') {
        /* "a.b.*": type starts with "a.b." and has something after it */
        size_t prefix = plen - 1;
        return len > prefix && memcmp(type, pattern, prefix) == 0;
    }
    return plen == len && memcmp(type, pattern, len) == 0;
}

bool sy_route_matches(const struct sy_route *r, const char *type, size_t type_len,
                      const char *integration)
{
    if (r->integration != NULL &&
        (integration == NULL || strcmp(r->integration, integration) != 0)) {
        return false;
    }
    for (size_t i = 0; i < r->n_on; i++) {
        if (sy_pattern_match(r->on[i], type, type_len)) {
            return true;
        }
    }
    return false;
}
