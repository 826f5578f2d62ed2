#include <stdio.h>
#include <stdlib.h>

#include "core/file.h"
#include "util/error.h"

int sy_file_read_stream(FILE *f, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap + 1);
    int rc = buf ? SY_OK : SY_ENOMEM;
    while (rc == SY_OK) {
        if (n == cap) {
            if (cap >= max) {
                /* exactly 'max' bytes is fine; one more is not */
                rc = fgetc(f) == EOF ? SY_OK : SY_EFULL;
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *p = realloc(buf, cap + 1);
            if (p == NULL) {
                rc = SY_ENOMEM;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            rc = ferror(f) ? SY_EIO : SY_OK;
            break;
        }
    }
    if (rc != SY_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return SY_OK;
}

int sy_file_read(const char *path, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return SY_ENOTFOUND;
    }
    int rc = sy_file_read_stream(f, max, data, len);
    fclose(f);
    return rc;
}
