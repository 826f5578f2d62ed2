#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "plugin/plugins.h"
#include "unizo/ticketing.h"
#include "util/buf.h"
#include "util/log.h"

static struct sy_store *kv_store; /* set once at load, before any worker starts */

/*
 * The kv functions of ABI 1.0 take no call argument, so for the length of
 * handle() the host binds the call to the thread running it; that is what
 * makes a plugin's kv writes commit with its job. Outside handle() (in init)
 * they go straight to the store.
 */
static _Thread_local struct sy_plugin_call *bound_call;

int sy_plugin_handle(const struct sy_loaded_plugin *p, const struct sy_event *ev,
                     struct sy_plugin_call *call)
{
    bound_call = call;
    int rc = p->desc->handle(p->state, ev, call);
    bound_call = NULL;
    return rc;
}

void sy_plugin_host_set_store(struct sy_store *store);
void sy_plugin_host_set_store(struct sy_store *store)
{
    kv_store = store;
}

static void h_log(int level, const char *plugin, const char *message)
{
    enum sy_log_level lv = level <= 0   ? SY_LOG_DEBUG
                           : level >= 3 ? SY_LOG_ERROR
                                        : (enum sy_log_level)level;
    sy_log(lv, message ? message : "", "plugin", plugin ? plugin : "?", NULL);
}

static void h_free(void *p)
{
    free(p);
}

static const char *ev_id(const struct sy_event *ev)
{
    return ev->id;
}

static const char *ev_type(const struct sy_event *ev)
{
    return ev->type;
}

static const char *ev_integration(const struct sy_event *ev)
{
    return ev->integration;
}

static const char *ev_json(const struct sy_event *ev, size_t *len)
{
    if (len) {
        *len = ev->len;
    }
    return ev->json;
}

static struct json_t *ev_object(const struct sy_event *ev)
{
    return ev->obj;
}

static int h_request(struct sy_plugin_call *call, const char *method, const char *path,
                     const char *query, const char *body_json, const char *integration,
                     long *status, char **response)
{
    struct sy_unizo_request req = {.method = method,
                                   .path = path,
                                   .query = query,
                                   .body = body_json,
                                   .integration = integration,
                                   .endpoint = "plugin"};
    struct sy_unizo_response resp;
    memset(&resp, 0, sizeof(resp));
    int rc = method && path && call && call->unizo_call
                 ? call->unizo_call(call->ctx, &req, &resp)
                 : SY_EUNAVAIL;
    if (status) {
        *status = resp.status;
    }
    if (response) {
        *response = resp.body;
    } else {
        free(resp.body);
    }
    return rc == SY_OK && resp.status >= 200 && resp.status <= 299 ? SY_OK : SY_EUNAVAIL;
}

static int ticket_call(struct sy_plugin_call *call, enum sy_ticketing_op op,
                       const char *integration, const char *id, const char *fields_json,
                       const char *content, char **response)
{
    if (response) {
        *response = NULL;
    }
    json_t *fields = fields_json ? json_loads(fields_json, 0, NULL) : json_object();
    if (fields == NULL || !json_is_object(fields)) {
        json_decref(fields);
        return SY_EINVAL;
    }
    if (id != NULL) {
        json_object_set_new(fields, "id", json_string(id));
    }
    if (content != NULL) {
        json_object_set_new(fields, "content", json_string(content));
    }
    const char *org = NULL, *col = NULL;
    if (call->unizo_defaults) {
        call->unizo_defaults(call->ctx, integration, &org, &col);
    }
    const char *method = NULL;
    char *path = NULL, *body = NULL, err[300];
    int rc = sy_ticketing_request(op, fields, org, col, &method, &path, &body, err, sizeof(err));
    json_decref(fields);
    if (rc != 0) {
        sy_log(SY_LOG_ERROR, err, "plugin", call->handler, NULL);
        return SY_EINVAL;
    }
    rc = h_request(call, method, path, NULL, body, integration, NULL, response);
    free(path);
    free(body);
    return rc;
}

static int h_create_ticket(struct sy_plugin_call *call, const char *integration,
                           const char *fields_json, char **response)
{
    return ticket_call(call, SY_TICKET_CREATE, integration, NULL, fields_json, NULL, response);
}

static int h_update_ticket(struct sy_plugin_call *call, const char *integration, const char *id,
                           const char *fields_json, char **response)
{
    return ticket_call(call, SY_TICKET_UPDATE, integration, id, fields_json, NULL, response);
}

static int h_add_comment(struct sy_plugin_call *call, const char *integration, const char *id,
                         const char *content, char **response)
{
    return ticket_call(call, SY_TICKET_COMMENT, integration, id, NULL, content ? content : "",
                       response);
}

static int h_get_ticket(struct sy_plugin_call *call, const char *integration, const char *id,
                        char **response)
{
    return ticket_call(call, SY_TICKET_GET, integration, id, NULL, NULL, response);
}

static int h_kv_get(const char *key, char **value)
{
    struct sy_plugin_call *c = bound_call;
    struct sy_store *st = c ? c->store : kv_store;
    return st ? sy_store_kv_get(st, c ? c->job : NULL, key, value) : SY_EUNAVAIL;
}

static int h_kv_set(const char *key, const char *value, uint64_t ttl_ms)
{
    json_t *check = json_loads(value, JSON_DECODE_ANY, NULL);
    json_decref(check);
    if (check == NULL) {
        return SY_EINVAL; /* values are JSON, as for rules */
    }
    struct sy_plugin_call *c = bound_call;
    struct sy_store *st = c ? c->store : kv_store;
    return st ? sy_store_kv_set(st, c ? c->job : NULL, key, value, ttl_ms) : SY_EUNAVAIL;
}

static int h_kv_delete(const char *key)
{
    struct sy_plugin_call *c = bound_call;
    struct sy_store *st = c ? c->store : kv_store;
    return st ? sy_store_kv_delete(st, c ? c->job : NULL, key) : SY_EUNAVAIL;
}

static char *h_config_get(const char *config_json, const char *path)
{
    json_t *root = json_loads(config_json ? config_json : "{}", 0, NULL);
    json_t *v = root;
    /* walk "a.b.c" one segment at a time */
    const char *p = path ? path : "";
    while (v != NULL && *p != '\0') {
        size_t n = strcspn(p, ".");
        char part[256];
        snprintf(part, sizeof(part), "%.*s", (int)(n < sizeof(part) ? n : sizeof(part) - 1), p);
        v = json_is_object(v) ? json_object_get(v, part) : NULL;
        p += n + (p[n] == '.');
    }
    char *out = NULL;
    if (v != NULL) {
        out = json_is_string(v) ? strdup(json_string_value(v))
                                : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    json_decref(root);
    return out;
}

static const struct sy_plugin_host host = {
    .abi_version = SY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct sy_plugin_host),
    .log = h_log,
    .free = h_free,
    .event_id = ev_id,
    .event_type = ev_type,
    .event_integration = ev_integration,
    .event_json = ev_json,
    .event_object = ev_object,
    .unizo_request = h_request,
    .create_ticket = h_create_ticket,
    .update_ticket = h_update_ticket,
    .add_comment = h_add_comment,
    .get_ticket = h_get_ticket,
    .kv_get = h_kv_get,
    .kv_set = h_kv_set,
    .kv_delete = h_kv_delete,
    .config_get = h_config_get,
};

const struct sy_plugin_host *sy_plugin_host(void)
{
    return &host;
}
