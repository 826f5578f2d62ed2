#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pause.h"
#include "util/clock.h"

#define PAUSED_PREFIX SY_RESERVED_KV_PREFIX "paused:"

static int key_of(const char *name, char *out, size_t len)
{
    int n = snprintf(out, len, "%s%s", PAUSED_PREFIX, name);
    return n > 0 && (size_t)n < len ? SY_OK : SY_EINVAL;
}

int sy_rule_pause_set(struct sy_store *st, const char *name, bool paused)
{
    char key[300];
    if (key_of(name, key, sizeof(key)) != SY_OK) {
        return SY_EINVAL;
    }
    if (!paused) {
        return sy_store_kv_delete(st, NULL, key);
    }
    char value[64];
    snprintf(value, sizeof(value), "{\"paused_at\":%lld}", (long long)sy_wall_ms());
    return sy_store_kv_set(st, NULL, key, value, 0);
}

int sy_rule_pause_get(struct sy_store *st, const char *name, bool *paused)
{
    char key[300];
    *paused = false;
    if (key_of(name, key, sizeof(key)) != SY_OK) {
        return SY_EINVAL;
    }
    char *v = NULL;
    int rc = sy_store_kv_get(st, NULL, key, &v);
    *paused = rc == SY_OK && v != NULL;
    free(v);
    return rc;
}
