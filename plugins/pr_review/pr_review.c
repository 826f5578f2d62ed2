/*
 * pr_review: a new pull request becomes a review ticket, as the Lua rule
 * examples/rules/pr_review.lua does, written in C. The ticket id is kept in
 * kv under "pr:<url>" (the same key the Lua rules use).
 * Config: plugins = { pr_review = { config = { integration = "jira-prod" } } }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <switchyard/plugin.h>

struct state {
    const struct sy_plugin_host *host;
    char *integration;
};

static int init(const struct sy_plugin_host *host, const char *config_json, void **out)
{
    struct state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return 1;
    }
    st->host = host;
    st->integration = host->config_get(config_json, "integration");
    if (st->integration == NULL) {
        host->log(SY_PLUGIN_ERROR, "pr_review", "config needs integration = \"<name>\"");
        free(st);
        return 1;
    }
    *out = st;
    return SY_OK;
}

static int handle(void *state, const struct sy_event *ev, struct sy_plugin_call *call)
{
    struct state *st = state;
    const struct sy_plugin_host *h = st->host;
    json_t *data = json_object_get(h->event_object(ev), "data");
    const char *title = json_string_value(json_object_get(data, "title"));
    const char *url = json_string_value(json_object_get(data, "url"));
    if (json_is_true(json_object_get(data, "draft"))) {
        return SY_OK; /* drafts are not ready for review */
    }
    if (title == NULL || url == NULL) {
        h->log(SY_PLUGIN_ERROR, "pr_review", "the event has no data.title or data.url");
        return SY_FAIL; /* retrying will not add the fields */
    }
    char name[512];
    snprintf(name, sizeof(name), "Review PR: %s", title);
    json_t *fields = json_pack("{s:s, s:s, s:{s:s}}", "title", name, "description", url,
                               "custom_fields", "pr_url", url);
    char *fields_json = json_dumps(fields, JSON_COMPACT);
    json_decref(fields);
    char *response = NULL;
    int rc = h->create_ticket(call, st->integration, fields_json, &response);
    free(fields_json);
    if (rc != SY_OK) {
        h->free(response);
        return SY_RETRY; /* the Unizo client already retried inside the call */
    }
    json_t *ticket = json_loads(response ? response : "{}", 0, NULL);
    h->free(response);
    json_t *value = json_pack("{s:O?}", "ticket", json_object_get(ticket, "id"));
    char *value_json = json_dumps(value, JSON_COMPACT);
    char key[1024];
    snprintf(key, sizeof(key), "pr:%s", url);
    rc = h->kv_set(key, value_json, UINT64_C(30) * 86400 * 1000);
    free(value_json);
    json_decref(value);
    json_decref(ticket);
    return rc == SY_OK ? SY_OK : SY_RETRY;
}

static void fini(void *state)
{
    struct state *st = state;
    if (st != NULL) {
        st->host->free(st->integration);
        free(st);
    }
}

static const char *const events[] = {"scm.pull_request.created", NULL};

SY_PLUGIN_DEFINE = {
    .abi_version = SY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct sy_plugin),
    .name = "pr_review",
    .version = "1.0.0",
    .events = events,
    .init = init,
    .handle = handle,
    .fini = fini,
};
