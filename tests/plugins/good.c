/*
 * A test plugin: creates a ticket per event (and comments on it when data.mode is
 * "comment"), or returns what data.mode asks for.
 */
#include <stdlib.h>
#include <string.h>

#include <switchyard/plugin.h>

static const struct sy_plugin_host *host;

static int init(const struct sy_plugin_host *h, const char *config_json, void **state)
{
    host = h;
    *state = host->config_get(config_json, "integration");
    return *state ? SY_OK : 1;
}

static int handle(void *state, const struct sy_event *ev, struct sy_plugin_call *call)
{
    size_t len = 0;
    const char *json = host->event_json(ev, &len);
    if (strstr(json, "\"mode\": \"retry\"") || strstr(json, "\"mode\":\"retry\"")) {
        return SY_RETRY;
    }
    if (strstr(json, "\"mode\": \"fail\"") || strstr(json, "\"mode\":\"fail\"")) {
        return SY_FAIL;
    }
    char *resp = NULL;
    int rc = host->create_ticket(call, state, "{\"title\":\"from a plugin\"}", &resp);
    if (rc == SY_OK && (strstr(json, "\"mode\": \"comment\"") || strstr(json, "\"mode\":\"comment\""))) {
        /* a second call that may fail: its retry must not create the ticket again */
        const char *at = resp ? strstr(resp, "\"id\": \"") : NULL;
        char id[64] = "";
        if (at != NULL) {
            at += 7;
            size_t n = strcspn(at, "\"");
            memcpy(id, at, n < sizeof(id) - 1 ? n : sizeof(id) - 1);
        }
        char *c = NULL;
        rc = host->add_comment(call, state, id, "from a plugin", &c);
        host->free(c);
    }
    host->free(resp);
    host->log(SY_PLUGIN_INFO, "good", "PLUGIN RAN");
    return rc == SY_OK ? SY_OK : SY_RETRY;
}

static void fini(void *state)
{
    host->free(state);
}

static const char *const events[] = {"scm.*", NULL};

SY_PLUGIN_DEFINE = {
    SY_PLUGIN_ABI_VERSION, sizeof(struct sy_plugin), "good", "1.0", events, init, handle, fini};
