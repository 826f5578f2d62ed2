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

#endif
