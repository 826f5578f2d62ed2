#ifndef SY_TICKETING_H
#define SY_TICKETING_H

#include <stddef.h>

#include <jansson.h>

/*
 * The Unizo Ticketing API as DESIGN.md maps it, shared by the Lua helpers
 * and the plugin host: one place that knows the paths and the field names.
 */
enum sy_ticketing_op { SY_TICKET_CREATE, SY_TICKET_UPDATE, SY_TICKET_COMMENT, SY_TICKET_GET };

/*
 * Build the request for 'op'. 'fields' (borrowed) holds the helper's fields:
 * title (-> name), description, type, priority, status, labels,
 * assignee_ids (-> assigneeIds), custom_fields (-> metadata), content (for a
 * comment), id (the ticket), and optionally organization and collection,
 * which otherwise come from 'default_org' / 'default_collection' (may be
 * NULL). On success returns 0 and sets *method (static), *path and *body
 * (new strings; *body NULL for GET). On failure returns -1 with a message
 * saying what is missing in 'err'.
 */
int sy_ticketing_request(enum sy_ticketing_op op, json_t *fields, const char *default_org,
                         const char *default_collection, const char **method, char **path,
                         char **body, char *err, size_t errlen);

/* The helper's name, for messages and metrics ("create_ticket", ...). */
const char *sy_ticketing_name(enum sy_ticketing_op op);

#endif
