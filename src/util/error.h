#ifndef SY_ERROR_H
#define SY_ERROR_H

#include <stdarg.h>

/* Status codes: SY_OK or a negative SY_E*. (SY_OK is shared with the plugin ABI.) */
#ifndef SY_OK
#define SY_OK 0
#endif
enum {
    SY_ENOMEM = -1,   /* allocation failed */
    SY_EINVAL = -2,   /* bad input (user's config, payload, arguments) */
    SY_EIO = -3,      /* I/O or storage failure */
    SY_EFULL = -4,    /* a bounded queue is full */
    SY_EUNAVAIL = -5, /* a dependency is down or shutting down */
    SY_ENOTFOUND = -6,
    SY_EAGAIN = -7, /* under way: the answer comes later (a call sent in the background) */
};

/*
 * An error a user caused, with where it happened. 'file' may be empty and
 * 'line' 0 when no location applies.
 */
struct sy_error {
    char file[256];
    int line;
    char msg[512];
    int code; /* SY_EINVAL: the caller's mistake (sy_error_set); SY_EIO: the store failed */
};

/* Fill 'err' (may be NULL: no-op). Always returns SY_EINVAL for "return sy_error_set(...)". */
int sy_error_set(struct sy_error *err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same for a failure of the store, not of the request: code SY_EIO, returned. */
int sy_error_io(struct sy_error *err, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "file:line: msg", "file: msg" or "msg" into 'out'. */
void sy_error_format(const struct sy_error *err, char *out, size_t outlen);

/* Short English name of a status code. */
const char *sy_strerror(int code);

#endif
