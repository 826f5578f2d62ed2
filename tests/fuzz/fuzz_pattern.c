/* Type patterns: validation and matching on arbitrary pattern / type pairs. */
#include <stdint.h>
#include <string.h>

#include "core/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[600];
    if (size >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *sep = strchr(buf, '\n');
    if (sep == NULL) {
        return 0;
    }
    *sep = '\0';
    const char *pattern = buf, *type = sep + 1;
    if (sy_pattern_valid(pattern)) {
        bool m = sy_pattern_match(pattern, type, strlen(type));
        /* "*" matches everything; an exact pattern matches itself */
        if (strcmp(pattern, "*") == 0 && !m) {
            __builtin_trap();
        }
        if (strchr(pattern, '*') == NULL && !sy_pattern_match(pattern, pattern, strlen(pattern))) {
            __builtin_trap();
        }
    }
    return 0;
}
