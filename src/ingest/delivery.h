#ifndef SY_INGEST_DELIVERY_H
#define SY_INGEST_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/*
 * Normalization: every documented Unizo delivery form becomes one event.
 * Signed body fields win; the headers (not covered by the signature) fill
 * in only what the body lacks:
 *
 *   id           body "id", else x-unizo-delivery-id, else "sha256:<hex>", the first 128 bits
 *                of the SHA-256 of the raw body
 *   type         body "type", else body "event", else x-unizo-event-type
 *   integration  body "integration" {id, type, name}, else body "source"
 *                {integration_id, type, name}, else none
 *   category     the path under webhook.path (/webhooks/unizo/identity -> identity), else
 *                the first segment of a dotted type (scm.pull_request.created -> scm), else none
 *   delivery_id  x-unizo-delivery-id
 *   timestamp    body "timestamp", else x-unizo-timestamp
 *   data         body "data" (the raw body keeps everything else)
 *
 * A body that is not JSON, not an object, has a member of the wrong kind, or
 * from which no valid type can be found cannot be routed: its verdict is
 * "quarantine", with the reason; it is still authentic and is stored.
 */

#define SY_EVENT_ID_MAX 255
#define SY_EVENT_TYPE_MAX 255
#define SY_EVENT_FIELD_MAX 255  /* integration id, type and name */
#define SY_EVENT_CATEGORY_MAX 64
#define SY_EVENT_DELIVERY_MAX 128
#define SY_EVENT_TIMESTAMP_MAX 64

/* What arrived, borrowed for the call. Headers may be NULL (absent). */
struct sy_delivery {
    const char *body;
    size_t body_len;
    const char *category; /* the path below webhook.path, without the '/'; may be NULL */
    size_t category_len;
    const char *event_type; /* x-unizo-event-type */
    size_t event_type_len;
    const char *delivery_id; /* x-unizo-delivery-id */
    size_t delivery_id_len;
    const char *timestamp; /* x-unizo-timestamp */
    size_t timestamp_len;
};

/* The normalized event's envelope. Every string unescaped and NUL-terminated; "" = none. */
struct sy_event_norm {
    char id[SY_EVENT_ID_MAX + 1];
    size_t id_len;
    const char *id_from; /* "body", "header" or "hash" */
    char type[SY_EVENT_TYPE_MAX + 1];
    size_t type_len;
    char integration_id[SY_EVENT_FIELD_MAX + 1];
    char integration_type[SY_EVENT_FIELD_MAX + 1];
    char integration_name[SY_EVENT_FIELD_MAX + 1];
    char category[SY_EVENT_CATEGORY_MAX + 1];
    char delivery_id[SY_EVENT_DELIVERY_MAX + 1];
    char timestamp[SY_EVENT_TIMESTAMP_MAX + 1];
    bool quarantined;
    const char *code; /* when quarantined: "invalid_json" or "invalid_event" */
    char reason[256]; /* when quarantined: what is wrong, naming the field or the position */
};

/*
 * Normalize 'd' into 'out'. Always fills an id (so a quarantined delivery
 * is deduplicated too) and sets out->quarantined with a reason when the
 * event cannot be routed. Allocates nothing; pure; any thread.
 */
void sy_delivery_normalize(const struct sy_delivery *d, struct sy_event_norm *out);

/* True when 's' is a valid event type: 1-255 of [A-Za-z0-9_.:-]. */
bool sy_event_type_valid(const char *s, size_t len);

/* True when 's' is a valid category (a path segment under webhook.path): 1-64 of [a-z0-9_-]. */
bool sy_category_valid(const char *s, size_t len);

/*
 * Append the envelope as a JSON object (id, type, integration {id, type,
 * name} (always an object), category, delivery_id, timestamp; absent fields
 * left out): what a rule's 'ev' is built from, over the body's own members.
 */
void sy_event_norm_json(const struct sy_event_norm *n, struct sy_buf *out);

#endif
