#ifndef SY_PARSE_H
#define SY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parsers for the human units used in the config. Each returns true and
 * stores the value, or false on anything malformed or out of range.
 */

/* "1MiB", "512KiB", "64kB", "1GiB", "1048576" (bytes). Units: B, k/K/kB, KiB, M/MB, MiB, G/GB, GiB.
 */
bool sy_parse_size(const char *s, uint64_t *out);

/* "7d", "12h", "30m", "5s", "250ms", "90" (seconds). Result in milliseconds. */
bool sy_parse_duration_ms(const char *s, uint64_t *out);

/* A whole decimal number, optional leading '-', no spaces, no overflow. */
bool sy_parse_int64(const char *s, size_t len, int64_t *out);

/*
 * A point in time as milliseconds since the epoch: "2026-12-01" (midnight
 * UTC), "2026-12-01T09:30", "2026-12-01T09:30:00Z", with seconds and an offset
 * ("+02:00") optional; or a duration before 'now_ms' ("90m", "2h", "7d").
 * Returns false on anything else. Pure.
 */
bool sy_parse_time_ms(const char *s, int64_t now_ms, int64_t *out);

/* Longest header value sy_header_value_ok accepts. */
#define SY_HEADER_VALUE_MAX 512

/* True when 's' is 1 to SY_HEADER_VALUE_MAX visible ASCII characters: safe as a header value. */
bool sy_header_value_ok(const char *s);

#endif
