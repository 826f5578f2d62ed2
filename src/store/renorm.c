/* Normalizing a stored delivery again (renorm.h). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "store/renorm.h"

static const char *header(json_t *headers, const char *name, size_t *len)
{
    json_t *v = json_object_get(headers, name);
    *len = json_is_string(v) ? json_string_length(v) : 0;
    return json_string_value(v);
}

void sy_store_renormalize(const char *id, const char *body, size_t body_len, const char *headers,
                          const char *category, struct sy_event_norm *n)
{
    json_t *h = json_loads(headers ? headers : "{}", 0, NULL);
    struct sy_delivery d = {.body = body, .body_len = body_len, .category = category};
    d.category_len = category ? strlen(category) : 0;
    d.event_type = header(h, "x-unizo-event-type", &d.event_type_len);
    d.delivery_id = header(h, "x-unizo-delivery-id", &d.delivery_id_len);
    d.timestamp = header(h, "x-unizo-timestamp", &d.timestamp_len);
    sy_delivery_normalize(&d, n);
    json_decref(h);
    snprintf(n->id, sizeof(n->id), "%s", id);
    n->id_len = strlen(n->id);
}

void sy_store_append_of(const struct sy_event_norm *n, struct sy_append *a)
{
    a->id = n->id;
    a->id_len = n->id_len;
    a->type = n->type;
    a->type_len = n->type_len;
    a->integration = n->integration_type[0] ? n->integration_type : NULL;
    a->category = n->category[0] ? n->category : NULL;
}
