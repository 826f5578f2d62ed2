#include <stdio.h>
#include <string.h>

#include "util/error.h"

int sy_error_set(struct sy_error *err, const char *file, int line, const char *fmt, ...)
{
    if (err == NULL) {
        return SY_EINVAL;
    }
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    err->code = SY_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return SY_EINVAL;
}

int sy_error_io(struct sy_error *err, const char *file, const char *fmt, ...)
{
    if (err == NULL) {
        return SY_EIO;
    }
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = 0;
    err->code = SY_EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return SY_EIO;
}

void sy_error_format(const struct sy_error *err, char *out, size_t outlen)
{
    if (err->file[0] != '\0' && err->line > 0) {
        snprintf(out, outlen, "%s:%d: %s", err->file, err->line, err->msg);
    } else if (err->file[0] != '\0') {
        snprintf(out, outlen, "%s: %s", err->file, err->msg);
    } else {
        snprintf(out, outlen, "%s", err->msg);
    }
}

const char *sy_strerror(int code)
{
    switch (code) {
    case SY_OK:
        return "ok";
    case SY_ENOMEM:
        return "out of memory";
    case SY_EINVAL:
        return "invalid input";
    case SY_EIO:
        return "i/o error";
    case SY_EFULL:
        return "queue full";
    case SY_EUNAVAIL:
        return "unavailable";
    case SY_ENOTFOUND:
        return "not found";
    case SY_EAGAIN:
        return "under way";
    default:
        return "unknown error";
    }
}
