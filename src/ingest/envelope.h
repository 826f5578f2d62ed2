#ifndef SY_ENVELOPE_H
#define SY_ENVELOPE_H

#include <stddef.h>

#include <jansson.h>

/*
 * The Unizo event envelope: id (string, 1-255 bytes), type (letters, digits,
 * "_.:-", 1-255 bytes), integration {id, type: strings; name: optional
 * string}, data (object), timestamp (optional string). Other fields are kept.
 */
struct sy_envelope {
    json_t *root;                 /* new reference, released by sy_envelope_dispose */
    const char *id;               /* borrowed from root */
    size_t id_len;
    const char *type;             /* borrowed from root */
    size_t type_len;
    const char *integration_type; /* borrowed from root */
};

#define SY_ENVELOPE_ID_MAX 255
#define SY_ENVELOPE_TYPE_MAX 255

/*
 * Parse and validate 'body'. On success returns 0 and fills 'env'. On failure
 * returns -1, sets *code to "invalid_json" or "invalid_event" and writes a
 * detail naming the field (or the JSON error position) into 'detail'.
 * Pure; callable from any thread.
 */
int sy_envelope_parse(const char *body, size_t len, struct sy_envelope *env, const char **code,
                      char *detail, size_t detail_len);
void sy_envelope_dispose(struct sy_envelope *env);

/* True when 's' is a valid event type string. */
int sy_event_type_valid(const char *s, size_t len);

#endif
