/* Journal records as JSON: how Redis keeps them, and how `events show` prints them. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/journal.h"

/* A body as the JSON it holds when it parses, else as a string. */
static json_t *body_value(const char *text, size_t len, bool parse)
{
    if (text == NULL) {
        return json_null();
    }
    json_t *v = parse ? json_loadb(text, len, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_stringn(text, len);
}

json_t *sy_call_record_json(const struct sy_call_record *r, bool display)
{
    json_t *o = json_pack("{s:i, s:i, s:s?, s:s, s:s, s:I, s:b, s:b, s:b, s:s?, s:I, s:f}",
                          "attempt", r->attempt, "n", r->n, "key", r->key, "method", r->method,
                          "path", r->path, "status", (json_int_t)r->status, "truncated",
                          r->truncated, "replayed", r->replayed, "dry_run", r->dry_run, "error",
                          r->error, "at", (json_int_t)r->at_ms, "ms", r->ms);
    if (o != NULL) {
        json_object_set_new(o, "request",
                            body_value(r->request, r->request ? strlen(r->request) : 0, display));
        json_object_set_new(o, "response",
                            body_value(r->response, r->response_len, display && !r->truncated));
    }
    return o;
}

static char *dup_string(json_t *o, const char *name, size_t *len)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v)) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }
    size_t n = json_string_length(v);
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, json_string_value(v), n);
        p[n] = '\0';
    }
    if (len) {
        *len = p ? n : 0;
    }
    return p;
}

int sy_call_record_from_json(json_t *o, struct sy_call_record *r)
{
    memset(r, 0, sizeof(*r));
    if (!json_is_object(o)) {
        return SY_EINVAL;
    }
    r->attempt = (int)json_integer_value(json_object_get(o, "attempt"));
    r->n = (int)json_integer_value(json_object_get(o, "n"));
    r->key = dup_string(o, "key", NULL);
    r->method = dup_string(o, "method", NULL);
    r->path = dup_string(o, "path", NULL);
    r->request = dup_string(o, "request", NULL);
    r->status = (long)json_integer_value(json_object_get(o, "status"));
    r->response = dup_string(o, "response", &r->response_len);
    r->truncated = json_is_true(json_object_get(o, "truncated"));
    r->replayed = json_is_true(json_object_get(o, "replayed"));
    r->dry_run = json_is_true(json_object_get(o, "dry_run"));
    r->error = dup_string(o, "error", NULL);
    r->at_ms = (int64_t)json_integer_value(json_object_get(o, "at"));
    r->ms = json_number_value(json_object_get(o, "ms"));
    return r->method != NULL && r->path != NULL ? SY_OK : SY_EINVAL;
}
