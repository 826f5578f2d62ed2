#ifndef SY_CORE_JSON_SCAN_H
#define SY_CORE_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A strict, allocation-free JSON validator (RFC 8259, UTF-8 only) that
 * reports where interesting members sit without building a tree. It accepts
 * exactly what jansson's json_loadb(…, 0, …) accepts for an object or array
 * root: no NUL (\u0000), no lone surrogates, no integer outside int64, no
 * real that overflows a double, at most SY_JSON_MAX_DEPTH levels.
 */

#define SY_JSON_MAX_DEPTH 2048

enum sy_json_kind {
    SY_JSON_NONE, /* absent */
    SY_JSON_OBJECT,
    SY_JSON_ARRAY,
    SY_JSON_STRING,
    SY_JSON_NUMBER,
    SY_JSON_BOOL,
    SY_JSON_NULL,
};

/* A value's kind and its bytes; for a string, the bytes between the quotes (still escaped). */
struct sy_json_span {
    enum sy_json_kind kind;
    const char *p;
    size_t len;
};

/* Members of the root object, root.integration and root.source that normalization needs. */
struct sy_json_envelope {
    enum sy_json_kind root;
    struct sy_json_span id, type, event, integration, source, data, timestamp;
    struct sy_json_span integration_id, integration_type, integration_name;
    struct sy_json_span source_integration_id, source_type, source_name;
};

/*
 * Validate 'text' and fill 'out' (the last occurrence of a repeated key
 * wins, as in jansson). Returns true when valid; otherwise false with a
 * message naming the line and column in 'err'. Pure; any thread.
 */
bool sy_json_scan_envelope(const char *text, size_t len, struct sy_json_envelope *out, char *err,
                           size_t errlen);

/*
 * Building blocks for decoders that share these rules. Each scans the token
 * that starts at 'p' (a '"' or the first character of a number) and returns
 * the position just after it, or NULL with a reason in *what.
 */
const char *sy_json_string_at(const char *p, const char *end, struct sy_json_span *span,
                              const char **what);
const char *sy_json_number_at(const char *p, const char *end, bool *is_real, const char **what);

/*
 * Decode the escaped string bytes of a span into 'out' (at most 'cap'
 * bytes, no terminator added). Returns the decoded length, or -1 when it
 * does not fit. The span must come from a successful scan.
 */
long sy_json_unescape(const struct sy_json_span *s, char *out, size_t cap);

/*
 * Find the value at a dotted 'path' ("data.url", "data.assignees.0.login":
 * object members by name, array elements by index) in JSON text that has
 * already been validated. Returns true and fills 'out' (for a string, the
 * bytes between the quotes, still escaped; otherwise the value's text).
 * A repeated member: the last one, as jansson keeps. Allocates nothing;
 * pure; any thread.
 */
bool sy_json_lookup(const char *text, size_t len, const char *path, struct sy_json_span *out);

#endif
