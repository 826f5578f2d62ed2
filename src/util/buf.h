#ifndef SY_BUF_H
#define SY_BUF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A growing byte buffer with a hard cap. Always NUL-terminated when len > 0
 * or after any append. Not thread-safe; owned by one thread at a time.
 */
struct sy_buf {
    char *data;
    size_t len;
    size_t cap;   /* allocated */
    size_t limit; /* appends past this fail; 0 = 64 MiB */
    bool failed;  /* an append failed (no memory or over the limit) */
};

void sy_buf_init(struct sy_buf *b, size_t limit);
void sy_buf_dispose(struct sy_buf *b);
void sy_buf_reset(struct sy_buf *b);
/* Each returns 0 or -1; after a failure 'failed' stays set and later appends are no-ops. */
int sy_buf_append(struct sy_buf *b, const void *data, size_t len);
int sy_buf_puts(struct sy_buf *b, const char *s);
int sy_buf_printf(struct sy_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append 's' (len bytes) as the inside of a JSON string: quotes not added. */
int sy_buf_json_escape(struct sy_buf *b, const char *s, size_t len);
/* Append "s" as a quoted JSON string. */
int sy_buf_json_string(struct sy_buf *b, const char *s, size_t len);

/* Per-thread scratch buffers, reset by the caller, freed when the thread exits. */
enum sy_scratch { SY_SCRATCH_LOG, SY_SCRATCH_HTTP, SY_SCRATCH_HEADERS, SY_SCRATCH__COUNT };

/* The calling thread's buffer 'which' (created with 'limit' on first use); NULL without memory. */
struct sy_buf *sy_scratch(enum sy_scratch which, size_t limit);

#endif
