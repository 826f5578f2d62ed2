#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unizo/ticketing.h"
#include "util/buf.h"

const char *sy_ticketing_name(enum sy_ticketing_op op)
{
    static const char *const names[] = {"create_ticket", "update_ticket", "add_comment",
                                        "get_ticket"};
    return names[op];
}

static void escape_segment(struct sy_buf *b, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (isalnum(*c) || strchr("-._~", *c)) {
            sy_buf_append(b, c, 1);
        } else {
            sy_buf_printf(b, "%%%02X", *c);
        }
    }
}

/* A string field, or an integer id written as text. */
static const char *text_of(json_t *v, char *tmp, size_t len)
{
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        snprintf(tmp, len, "%lld", (long long)json_integer_value(v));
        return tmp;
    }
    return NULL;
}

int sy_ticketing_request(enum sy_ticketing_op op, json_t *fields, const char *default_org,
                         const char *default_collection, const char **method, char **path,
                         char **body, char *err, size_t errlen)
{
    const char *name = sy_ticketing_name(op);
    char idbuf[32];
    json_t *o = json_object_get(fields, "organization"), *c = json_object_get(fields, "collection");
    const char *org = json_is_string(o) ? json_string_value(o) : default_org;
    const char *col = json_is_string(c) ? json_string_value(c) : default_collection;
    if (org == NULL || col == NULL) {
        snprintf(err, errlen,
                 "%s: no organization or collection (pass them, or set unizo.integrations in "
                 "the config)",
                 name);
        return -1;
    }
    json_t *idv = json_object_get(fields, "id");
    if (idv == NULL) {
        idv = json_object_get(fields, "ticket_id");
    }
    const char *id = text_of(idv, idbuf, sizeof(idbuf));
    if (op != SY_TICKET_CREATE && id == NULL) {
        snprintf(err, errlen, "%s: 'id' is required", name);
        return -1;
    }
    struct sy_buf p;
    sy_buf_init(&p, 8192);
    sy_buf_puts(&p, "/ticketing/");
    escape_segment(&p, org);
    sy_buf_puts(&p, "/collections/");
    escape_segment(&p, col);
    sy_buf_puts(&p, "/tickets");
    if (op != SY_TICKET_CREATE) {
        sy_buf_puts(&p, "/");
        escape_segment(&p, id);
    }
    if (op == SY_TICKET_COMMENT) {
        sy_buf_puts(&p, "/comments");
    }
    json_t *b = NULL;
    if (op == SY_TICKET_COMMENT) {
        json_t *content = json_object_get(fields, "content");
        b = json_pack("{s:O?}", "content", content ? content : json_object_get(fields, "body"));
    } else if (op != SY_TICKET_GET) {
        static const char *const map[][2] = {
            {"title", "name"},
            {"name", "name"},
            {"description", "description"},
            {"type", "type"},
            {"priority", "priority"},
            {"status", "status"},
            {"labels", "labels"},
            {"assignee_ids", "assigneeIds"},
            {"assigneeIds", "assigneeIds"},
            {"custom_fields", "metadata"},
            {"metadata", "metadata"},
        };
        b = json_object();
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
            json_t *v = json_object_get(fields, map[i][0]);
            if (v != NULL && json_object_get(b, map[i][1]) == NULL) {
                json_object_set(b, map[i][1], v);
            }
        }
    }
    static const char *const methods[] = {"POST", "PUT", "POST", "GET"};
    *method = methods[op];
    *body = b ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(b);
    *path = p.failed ? NULL : p.data;
    if (*path == NULL) {
        sy_buf_dispose(&p);
        free(*body);
        snprintf(err, errlen, "%s: the path is too long", name);
        return -1;
    }
    return 0;
}
