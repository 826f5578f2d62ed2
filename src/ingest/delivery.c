#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/json_scan.h"
#include "ingest/delivery.h"

bool sy_event_type_valid(const char *s, size_t len)
{
    if (len == 0 || len > SY_EVENT_TYPE_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool sy_category_valid(const char *s, size_t len)
{
    if (len == 0 || len > SY_EVENT_CATEGORY_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

static const char *kind_name(enum sy_json_kind k)
{
    switch (k) {
    case SY_JSON_OBJECT:
        return "an object";
    case SY_JSON_ARRAY:
        return "an array";
    case SY_JSON_STRING:
        return "a string";
    case SY_JSON_NUMBER:
        return "a number";
    case SY_JSON_BOOL:
        return "a boolean";
    default:
        return "null";
    }
}

static bool quarantine(struct sy_event_norm *out, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Mark the event quarantined with the first reason found; returns false. */
static bool quarantine(struct sy_event_norm *out, const char *code, const char *fmt, ...)
{
    if (!out->quarantined) {
        out->quarantined = true;
        out->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
        va_end(ap);
    }
    return false;
}

/* An optional member: absent is fine, present must be of 'kind'. */
static bool kind_ok(const struct sy_json_span *v, enum sy_json_kind kind, const char *path,
                    struct sy_event_norm *out)
{
    if (v->kind == SY_JSON_NONE || v->kind == kind) {
        return true;
    }
    char what[64];
    snprintf(what, sizeof(what), "%s, got %s", kind_name(kind), kind_name(v->kind));
    return quarantine(out, "invalid_event", "field '%s' must be %s", path, what);
}

/* A string member into out[cap + 1]; false (quarantined) when longer. Absent: "". */
static bool copy_member(const struct sy_json_span *v, const char *path, char *out, size_t cap,
                        size_t *len, struct sy_event_norm *n)
{
    out[0] = '\0';
    if (len != NULL) {
        *len = 0;
    }
    if (v->kind != SY_JSON_STRING) {
        return true;
    }
    long got = sy_json_unescape(v, out, cap);
    if (got < 0) {
        char max[32];
        snprintf(max, sizeof(max), "%zu", cap);
        return quarantine(n, "invalid_event", "field '%s' must be at most %s bytes", path, max);
    }
    out[got] = '\0';
    if (len != NULL) {
        *len = (size_t)got;
    }
    return true;
}

/* A header value into out[cap + 1] when it is 1..cap visible ASCII bytes; else "". */
static size_t copy_header(const char *v, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    if (v == NULL || len == 0 || len > cap) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] <= 0x20 || v[i] >= 0x7f) {
            return 0;
        }
    }
    memcpy(out, v, len);
    out[len] = '\0';
    return len;
}

/* The id: body, else the delivery id header, else a hash of the raw body. */
static bool pick_id(const struct sy_json_envelope *e, const struct sy_delivery *d,
                    struct sy_event_norm *out)
{
    if (e != NULL && e->id.kind != SY_JSON_NONE) {
        if (e->id.kind != SY_JSON_STRING) {
            kind_ok(&e->id, SY_JSON_STRING, "id", out);
        } else {
            long n = sy_json_unescape(&e->id, out->id, SY_EVENT_ID_MAX);
            if (n > 0) {
                out->id[n] = '\0';
                out->id_len = (size_t)n;
                out->id_from = "body";
                return true;
            }
            quarantine(out, "invalid_event", "field 'id' must be 1 to 255 bytes, got %s",
                       n == 0 ? "0" : "more");
        }
    }
    out->id_len = copy_header(d->delivery_id, d->delivery_id_len, out->id, SY_EVENT_ID_MAX);
    if (out->id_len > 0) {
        out->id_from = "header";
    } else {
        /* the first 128 bits: plenty to tell deliveries apart, and short enough that the id
         * never looks like a signature in a log */
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)(d->body ? d->body : ""), d->body_len, md);
        memcpy(out->id, "sha256:", 7);
        for (size_t i = 0; i < 16; i++) {
            out->id[7 + 2 * i] = "0123456789abcdef"[md[i] >> 4];
            out->id[8 + 2 * i] = "0123456789abcdef"[md[i] & 15];
        }
        out->id_len = 7 + 32;
        out->id[out->id_len] = '\0';
        out->id_from = "hash";
    }
    return !out->quarantined;
}

/* The type: body "type", else body "event", else the header. */
static bool pick_type(const struct sy_json_envelope *e, const struct sy_delivery *d,
                      struct sy_event_norm *out)
{
    const struct sy_json_span *from = NULL;
    const char *name = NULL;
    if (e->type.kind != SY_JSON_NONE) {
        from = &e->type;
        name = "type";
    } else if (e->event.kind != SY_JSON_NONE) {
        from = &e->event;
        name = "event";
    }
    long n = -1;
    if (from != NULL) {
        if (!kind_ok(from, SY_JSON_STRING, name, out)) {
            return false;
        }
        n = sy_json_unescape(from, out->type, SY_EVENT_TYPE_MAX);
    } else if (d->event_type != NULL && d->event_type_len <= SY_EVENT_TYPE_MAX) {
        name = "x-unizo-event-type";
        memcpy(out->type, d->event_type, d->event_type_len);
        n = (long)d->event_type_len;
    } else if (d->event_type != NULL) {
        name = "x-unizo-event-type";
    } else {
        return quarantine(out, "invalid_event",
                          "no event type: the body has neither 'type' nor 'event', and there is "
                          "no x-unizo-event-type header");
    }
    if (n < 0 || !sy_event_type_valid(out->type, (size_t)n)) {
        out->type[0] = '\0';
        return quarantine(out, "invalid_event",
                          "%s must be 1 to 255 letters, digits or '_.:-' (like "
                          "scm.pull_request.created or ticket:created)",
                          strcmp(name, "x-unizo-event-type") == 0 ? "x-unizo-event-type"
                          : strcmp(name, "type") == 0             ? "field 'type'"
                                                                  : "field 'event'");
    }
    out->type[n] = '\0';
    out->type_len = (size_t)n;
    return true;
}

/* The integration: body "integration", else body "source". */
static bool pick_integration(const struct sy_json_envelope *e, struct sy_event_norm *out)
{
    if (e->integration.kind != SY_JSON_NONE) {
        return kind_ok(&e->integration, SY_JSON_OBJECT, "integration", out) &&
               kind_ok(&e->integration_id, SY_JSON_STRING, "integration.id", out) &&
               kind_ok(&e->integration_type, SY_JSON_STRING, "integration.type", out) &&
               kind_ok(&e->integration_name, SY_JSON_STRING, "integration.name", out) &&
               copy_member(&e->integration_id, "integration.id", out->integration_id,
                           SY_EVENT_FIELD_MAX, NULL, out) &&
               copy_member(&e->integration_type, "integration.type", out->integration_type,
                           SY_EVENT_FIELD_MAX, NULL, out) &&
               copy_member(&e->integration_name, "integration.name", out->integration_name,
                           SY_EVENT_FIELD_MAX, NULL, out);
    }
    if (e->source.kind != SY_JSON_NONE) {
        return kind_ok(&e->source, SY_JSON_OBJECT, "source", out) &&
               kind_ok(&e->source_integration_id, SY_JSON_STRING, "source.integration_id", out) &&
               kind_ok(&e->source_type, SY_JSON_STRING, "source.type", out) &&
               kind_ok(&e->source_name, SY_JSON_STRING, "source.name", out) &&
               copy_member(&e->source_integration_id, "source.integration_id",
                           out->integration_id, SY_EVENT_FIELD_MAX, NULL, out) &&
               copy_member(&e->source_type, "source.type", out->integration_type,
                           SY_EVENT_FIELD_MAX, NULL, out) &&
               copy_member(&e->source_name, "source.name", out->integration_name,
                           SY_EVENT_FIELD_MAX, NULL, out);
    }
    return true;
}

static void pick_category(const struct sy_delivery *d, struct sy_event_norm *out)
{
    out->category[0] = '\0';
    if (d->category != NULL && sy_category_valid(d->category, d->category_len)) {
        memcpy(out->category, d->category, d->category_len);
        out->category[d->category_len] = '\0';
        return;
    }
    const char *dot = memchr(out->type, '.', out->type_len);
    size_t n = dot ? (size_t)(dot - out->type) : 0;
    if (n > 0 && n <= SY_EVENT_CATEGORY_MAX && memchr(out->type, ':', n) == NULL) {
        memcpy(out->category, out->type, n);
        out->category[n] = '\0';
    }
}

void sy_delivery_normalize(const struct sy_delivery *d, struct sy_event_norm *out)
{
    memset(out, 0, sizeof(*out));
    copy_header(d->delivery_id, d->delivery_id_len, out->delivery_id, SY_EVENT_DELIVERY_MAX);
    struct sy_json_envelope e;
    char err[200];
    if (!sy_json_scan_envelope(d->body ? d->body : "", d->body_len, &e, err, sizeof(err))) {
        pick_id(NULL, d, out);
        quarantine(out, "invalid_json", "%s", err);
        pick_category(d, out);
        return;
    }
    if (e.root != SY_JSON_OBJECT) {
        pick_id(NULL, d, out);
        quarantine(out, "invalid_event", "the body must be a JSON object, got %s",
                   kind_name(e.root));
        pick_category(d, out);
        return;
    }
    /* each step stops at the first problem; the id is always filled for dedupe */
    bool ok = pick_id(&e, d, out);
    ok = ok && pick_type(&e, d, out);
    ok = ok && pick_integration(&e, out);
    ok = ok && kind_ok(&e.data, SY_JSON_OBJECT, "data", out);
    ok = ok && kind_ok(&e.timestamp, SY_JSON_STRING, "timestamp", out);
    if (ok && e.timestamp.kind == SY_JSON_STRING) {
        copy_member(&e.timestamp, "timestamp", out->timestamp, SY_EVENT_TIMESTAMP_MAX, NULL, out);
    } else if (ok) {
        copy_header(d->timestamp, d->timestamp_len, out->timestamp, SY_EVENT_TIMESTAMP_MAX);
    }
    pick_category(d, out);
}

static void member(struct sy_buf *b, const char *name, const char *value, bool *first)
{
    if (value[0] == '\0') {
        return;
    }
    sy_buf_puts(b, *first ? "\"" : ",\"");
    sy_buf_puts(b, name);
    sy_buf_puts(b, "\":");
    sy_buf_json_string(b, value, strlen(value));
    *first = false;
}

void sy_event_norm_json(const struct sy_event_norm *n, struct sy_buf *out)
{
    bool first = true;
    sy_buf_puts(out, "{");
    member(out, "id", n->id, &first);
    member(out, "type", n->type, &first);
    /* always an object, so ev.integration.type is nil, not an error, when there is none */
    sy_buf_puts(out, first ? "\"integration\":{" : ",\"integration\":{");
    bool inner = true;
    member(out, "id", n->integration_id, &inner);
    member(out, "type", n->integration_type, &inner);
    member(out, "name", n->integration_name, &inner);
    sy_buf_puts(out, "}");
    first = false;
    member(out, "category", n->category, &first);
    member(out, "delivery_id", n->delivery_id, &first);
    member(out, "timestamp", n->timestamp, &first);
    sy_buf_puts(out, "}");
}
