#ifndef SY_CORE_HASH_H
#define SY_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a: not for hostile keys, for ids already trusted to be few. Pure. */
#define SY_FNV_OFFSET 1469598103934665603ull

/* Continue hash 'h' (start at SY_FNV_OFFSET) over n bytes of 's'. */
static inline uint64_t sy_fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    }
    return h;
}

#endif
