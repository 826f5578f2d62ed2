#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ingest/envelope.h"

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

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Fetch obj[key] as a string; on failure write the detail and return NULL. */
static const char *need_string(json_t *obj, const char *key, const char *path, bool optional,
                               size_t *len, char *detail, size_t dlen, bool *failed)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (!optional) {
            snprintf(detail, dlen, "field '%s' is missing", path);
            *failed = true;
        }
        return NULL;
    }
    if (!json_is_string(v)) {
        snprintf(detail, dlen, "field '%s' must be a string, got %s", path, json_kind(v));
        *failed = true;
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

int sy_envelope_parse(const char *body, size_t len, struct sy_envelope *env, const char **code,
                      char *detail, size_t dlen)
{
    memset(env, 0, sizeof(*env));
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (root == NULL) {
        *code = "invalid_json";
        snprintf(detail, dlen, "%s at line %d, column %d", jerr.text, jerr.line, jerr.column);
        return -1;
    }
    *code = "invalid_event";
    bool failed = false;
    size_t n = 0;
    if (!json_is_object(root)) {
        snprintf(detail, dlen, "the body must be a JSON object, got %s", json_kind(root));
        goto fail;
    }
    env->id = need_string(root, "id", "id", false, &env->id_len, detail, dlen, &failed);
    if (failed) {
        goto fail;
    }
    if (env->id_len == 0 || env->id_len > SY_ENVELOPE_ID_MAX) {
        snprintf(detail, dlen, "field 'id' must be 1 to %d bytes, got %zu", SY_ENVELOPE_ID_MAX,
                 env->id_len);
        goto fail;
    }
    env->type = need_string(root, "type", "type", false, &env->type_len, detail, dlen, &failed);
    if (failed) {
        goto fail;
    }
    if (!sy_event_type_valid(env->type, env->type_len)) {
        snprintf(detail, dlen,
                 "field 'type' must be 1 to %d letters, digits or '_.:-' (like "
                 "scm.pull_request.created)",
                 SY_ENVELOPE_TYPE_MAX);
        goto fail;
    }
    json_t *integ = json_object_get(root, "integration");
    if (integ == NULL) {
        snprintf(detail, dlen, "field 'integration' is missing");
        goto fail;
    }
    if (!json_is_object(integ)) {
        snprintf(detail, dlen, "field 'integration' must be an object, got %s", json_kind(integ));
        goto fail;
    }
    need_string(integ, "id", "integration.id", false, &n, detail, dlen, &failed);
    if (failed) {
        goto fail;
    }
    env->integration_type =
        need_string(integ, "type", "integration.type", false, &n, detail, dlen, &failed);
    if (failed) {
        goto fail;
    }
    need_string(integ, "name", "integration.name", true, &n, detail, dlen, &failed);
    if (failed) {
        goto fail;
    }
    json_t *data = json_object_get(root, "data");
    if (data == NULL) {
        snprintf(detail, dlen, "field 'data' is missing");
        goto fail;
    }
    if (!json_is_object(data)) {
        snprintf(detail, dlen, "field 'data' must be an object, got %s", json_kind(data));
        goto fail;
    }
    need_string(root, "timestamp", "timestamp", true, &n, detail, dlen, &failed);
    if (failed) {
        goto fail;
    }
    env->root = root;
    return 0;
fail:
    json_decref(root);
    memset(env, 0, sizeof(*env));
    return -1;
}

void sy_envelope_dispose(struct sy_envelope *env)
{
    json_decref(env->root);
    memset(env, 0, sizeof(*env));
}
