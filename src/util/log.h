#ifndef SY_LOG_H
#define SY_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum sy_log_level { SY_LOG_DEBUG, SY_LOG_INFO, SY_LOG_WARN, SY_LOG_ERROR };

/*
 * Logging to stderr, one line per call, written with a single write(2) so
 * lines from several threads never interleave. Callable from any thread.
 * Never pass a secret, a signature or an API key: nothing here redacts.
 */

/* Set the minimum level and the format (JSON lines or text). Call before threads start. */
void sy_log_configure(enum sy_log_level level, bool json);
/* Parse "debug" / "info" / "warn" / "error"; returns -1 when unknown. */
int sy_log_level_parse(const char *name);
bool sy_log_enabled(enum sy_log_level level);

/*
 * Log 'msg' with string fields given as key, value pairs ended by NULL:
 * sy_log(SY_LOG_INFO, "listening", "addr", addr, NULL). A NULL value is skipped.
 */
void sy_log(enum sy_log_level level, const char *msg, ...) __attribute__((sentinel));

/*
 * The same with 'n' fields given as arrays: keys[i] (NUL-ended) and vals[i]
 * of vlens[i] bytes. For callers that build fields at run time (a rule's log).
 */
void sy_log_fields(enum sy_log_level level, const char *msg, const char *const *keys,
                   const char *const *vals, const size_t *vlens, size_t n);

/* The per-request line: result code, HTTP status, event id (may be NULL), latency, peer. */
void sy_log_request(const char *result, int status, const char *id, size_t idlen, double latency_ms,
                    const char *peer);

/*
 * Request lines held by their caller and written together: a loop thread
 * answering a batch of stored events writes their lines with one write(2)
 * instead of one each. 'held' is the caller's buffer (one thread; initialise
 * it with sy_buf_init). sy_log_request_hold appends the line that
 * sy_log_request would write (nothing below the level); sy_log_flush writes
 * what is held in runs of whole lines of at most SY_LOG_ATOMIC bytes (a
 * longer line alone), so that lines from other threads never land inside
 * one, and empties the buffer.
 */
#define SY_LOG_ATOMIC 4096 /* PIPE_BUF on Linux: a pipe takes a write this size whole */
struct sy_buf;
void sy_log_request_hold(struct sy_buf *held, const char *result, int status, const char *id,
                         size_t idlen, double latency_ms, const char *peer);
void sy_log_flush(struct sy_buf *held);

#endif
