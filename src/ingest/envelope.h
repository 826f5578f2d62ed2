#ifndef SY_ENVELOPE_H
#define SY_ENVELOPE_H

#include <stddef.h>

/*
 * The Unizo event envelope: id (string, 1-255 bytes), type (letters, digits,
 * "_.:-", 1-255 bytes), integration {id, type: strings; name: optional
 * string}, data (object), timestamp (optional string). Other fields are kept
 * in the raw body; nothing is re-serialised.
 */
#define SY_ENVELOPE_ID_MAX 255
#define SY_ENVELOPE_TYPE_MAX 255
#define SY_ENVELOPE_INTEGRATION_TYPE_MAX 255

struct sy_envelope {
    char id[SY_ENVELOPE_ID_MAX + 1]; /* unescaped, NUL-terminated */
    size_t id_len;
    char type[SY_ENVELOPE_TYPE_MAX + 1];
    size_t type_len;
    char integration_type[SY_ENVELOPE_INTEGRATION_TYPE_MAX + 1];
};

/*
 * Validate 'body' (strict JSON, UTF-8) and the envelope. On success returns
 * 0 and fills 'env'. On failure returns -1, sets *code to "invalid_json" or
 * "invalid_event" and writes a detail naming the field (or the line and
 * column of the JSON error) into 'detail'. Allocates nothing; any thread.
 */
int sy_envelope_parse(const char *body, size_t len, struct sy_envelope *env, const char **code,
                      char *detail, size_t detail_len);

/* True when 's' is a valid event type string. */
int sy_event_type_valid(const char *s, size_t len);

#endif
