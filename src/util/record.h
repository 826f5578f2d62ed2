#ifndef SY_RECORD_H
#define SY_RECORD_H

#include <stddef.h>

/*
 * Record mode (`serve --record DIR`): files a rule test can replay. Each
 * call writes or appends one file with a single write(2); any thread.
 */

/* DIR/deliveries/<type>--<id>.json (names as sy_record_safe_name makes them):
 * {"headers": {...}, "category": "<category>" (when it has one), "body": "<raw body>"}. */
void sy_record_delivery(const char *dir, const char *type, size_t type_len, const char *id,
                        size_t id_len, const char *category, const char *headers_json,
                        size_t headers_len, const char *body, size_t body_len);

/* Append one JSON line (already formatted) to DIR/cassettes/<event id>.jsonl. */
void sy_record_exchange(const char *dir, const char *event_id, const char *line, size_t len);

/* Longest name part, so "<type>--<id>.json" stays within a file name's 255 bytes. */
#define SY_RECORD_NAME_MAX 120

/*
 * 's' as a file name part in out (cap bytes): [A-Za-z0-9._-] as they are,
 * every other byte %XX, so distinct ids give distinct names and a name
 * decodes back to its id. Past SY_RECORD_NAME_MAX: a prefix, '~' and the
 * SHA-256 of the whole of 's' (unique; the id itself is in the file).
 */
void sy_record_safe_name(const char *s, size_t len, char *out, size_t cap);

#endif
