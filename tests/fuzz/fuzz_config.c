/* Config loading on arbitrary Lua text: an error with a location, never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (path[0] == '\0') {
        snprintf(path, sizeof(path), "/tmp/sy-fuzz-config-%d.lua", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return 0;
    }
    fwrite(data, 1, size, f);
    fclose(f);
    struct sy_config cfg;
    struct sy_error err;
    sy_config_defaults(&cfg);
    sy_config_load(&cfg, path, &err);
    sy_config_dispose(&cfg);
    return 0;
}
