#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ingest/envelope.h"
#include "core/json_scan.h"

int sy_event_type_valid(const char *s, size_t len)
{
    if (len == 0 || len > SY_ENVELOPE_TYPE_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok) {
            return 0;
        }
    }
    return 1;
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

/* A present-and-right-kind check; writes the detail and returns false otherwise. */
static bool need(const struct sy_json_span *v, enum sy_json_kind kind, const char *path,
                 bool optional, char *detail, size_t dlen)
{
    if (v->kind == SY_JSON_NONE) {
        if (!optional) {
            snprintf(detail, dlen, "field '%s' is missing", path);
        }
        return optional;
    }
    if (v->kind != kind) {
        snprintf(detail, dlen, "field '%s' must be %s, got %s", path, kind_name(kind),
                 kind_name(v->kind));
        return false;
    }
    return true;
}

/* Unescape a string span into out[cap+1]; false (with detail) when longer than cap bytes. */
static bool copy_string(const struct sy_json_span *v, const char *path, char *out, size_t cap,
                        size_t *len, char *detail, size_t dlen)
{
    long n = sy_json_unescape(v, out, cap);
    if (n < 0) {
        snprintf(detail, dlen, "field '%s' must be at most %zu bytes", path, cap);
        return false;
    }
    out[n] = '\0';
    if (len != NULL) {
        *len = (size_t)n;
    }
    return true;
}

int sy_envelope_parse(const char *body, size_t len, struct sy_envelope *env, const char **code,
                      char *detail, size_t dlen)
{
    struct sy_json_envelope e;
    if (!sy_json_scan_envelope(body, len, &e, detail, dlen)) {
        *code = "invalid_json";
        return -1;
    }
    *code = "invalid_event";
    if (e.root != SY_JSON_OBJECT) {
        snprintf(detail, dlen, "the body must be a JSON object, got %s", kind_name(e.root));
        return -1;
    }
    if (!need(&e.id, SY_JSON_STRING, "id", false, detail, dlen)) {
        return -1;
    }
    long n = sy_json_unescape(&e.id, env->id, SY_ENVELOPE_ID_MAX);
    if (n <= 0) {
        snprintf(detail, dlen, "field 'id' must be 1 to %d bytes, got %s", SY_ENVELOPE_ID_MAX,
                 n == 0 ? "0" : "more");
        return -1;
    }
    env->id[n] = '\0';
    env->id_len = (size_t)n;
    if (!need(&e.type, SY_JSON_STRING, "type", false, detail, dlen)) {
        return -1;
    }
    n = sy_json_unescape(&e.type, env->type, SY_ENVELOPE_TYPE_MAX);
    if (n < 0 || !sy_event_type_valid(env->type, (size_t)n)) {
        snprintf(detail, dlen,
                 "field 'type' must be 1 to %d letters, digits or '_.:-' (like "
                 "scm.pull_request.created)",
                 SY_ENVELOPE_TYPE_MAX);
        return -1;
    }
    env->type[n] = '\0';
    env->type_len = (size_t)n;
    if (!need(&e.integration, SY_JSON_OBJECT, "integration", false, detail, dlen) ||
        !need(&e.integration_id, SY_JSON_STRING, "integration.id", false, detail, dlen) ||
        !need(&e.integration_type, SY_JSON_STRING, "integration.type", false, detail, dlen) ||
        !copy_string(&e.integration_type, "integration.type", env->integration_type,
                     SY_ENVELOPE_INTEGRATION_TYPE_MAX, NULL, detail, dlen) ||
        !need(&e.integration_name, SY_JSON_STRING, "integration.name", true, detail, dlen) ||
        !need(&e.data, SY_JSON_OBJECT, "data", false, detail, dlen) ||
        !need(&e.timestamp, SY_JSON_STRING, "timestamp", true, detail, dlen)) {
        return -1;
    }
    return 0;
}
