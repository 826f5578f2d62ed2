#ifndef SY_CORE_KVKEY_H
#define SY_CORE_KVKEY_H

#include <stdbool.h>
#include <string.h>

/*
 * kv keys under this prefix are the server's own (paused rules): a running
 * rule or plugin cannot write them. Pure; allocates nothing; any thread.
 */
#define SY_RESERVED_KV_PREFIX "switchyard:"

static inline bool sy_kv_key_reserved(const char *key)
{
    return strncmp(key, SY_RESERVED_KV_PREFIX, sizeof(SY_RESERVED_KV_PREFIX) - 1) == 0;
}

#endif
