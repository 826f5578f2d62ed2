/*
 * `switchyard replay --since ... | ID... --rule ...`: replays chosen by time, type, rule
 * and job state run in the server (POST /admin/replay), through the rules it runs now.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli/cli.h"
#include "util/buf.h"

#define MAX_ANSWER (64u << 20)

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct sy_buf *b = ud;
    return sy_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

/* "http://HOST:PORT" of the admin listener (a wildcard address asks loopback). */
static bool admin_base(const char *listen, char *out, size_t len)
{
    char host[256];
    unsigned port;
    if (listen == NULL || !sy_split_hostport(listen, host, sizeof(host), &port) || port == 0) {
        return false;
    }
    bool v6 = strchr(host, ':') != NULL;
    const char *h = strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1"
                    : strcmp(host, "::") == 0    ? "::1"
                                                 : host;
    snprintf(out, len, "http://%s%s%s:%u", v6 ? "[" : "", h, v6 ? "]" : "", port);
    return true;
}

long sy_cli_admin_post(const struct sy_config *cfg, const char *listen, const char *path,
                       const char *json, struct sy_buf *answer, char *why, size_t whylen)
{
    char url[512];
    if (!admin_base(listen, url, sizeof(url) - strlen(path) - 1)) {
        snprintf(why, whylen,
                 "this needs the running server's admin listener: set admin.listen to an "
                 "address with a port, or pass --admin ADDRESS:PORT");
        return 0;
    }
    size_t at = strlen(url);
    snprintf(url + at, sizeof(url) - at, "%s", path);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "content-type: application/json");
    char auth[600] = "";
    if (cfg->admin.token != NULL) {
        snprintf(auth, sizeof(auth), "authorization: Bearer %s", cfg->admin.token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    } else {
        snprintf(why, whylen, "cannot reach the server's admin listener at %s: %s", url,
                 curl_easy_strerror(cc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return status;
}

int sy_cli_replay_selected(const struct sy_config *cfg, const struct sy_cli_replay_args *a)
{
    json_t *req = json_object();
    if (a->since) {
        json_object_set_new(req, "since", json_string(a->since));
    }
    if (a->until) {
        json_object_set_new(req, "until", json_string(a->until));
    }
    if (a->n_ids > 0) {
        json_t *ids = json_array();
        for (size_t i = 0; i < a->n_ids; i++) {
            json_array_append_new(ids, json_string(a->ids[i]));
        }
        json_object_set_new(req, "ids", ids);
    }
    if (a->type) {
        json_object_set_new(req, "type", json_string(a->type));
    }
    if (a->rule) {
        json_object_set_new(req, "rule", json_string(a->rule));
    }
    if (a->state) {
        json_object_set_new(req, "state", json_string(a->state));
    }
    json_object_set_new(req, "dry_run", json_boolean(a->dry_run));
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct sy_buf answer;
    sy_buf_init(&answer, MAX_ANSWER);
    char why[600] = "";
    const char *listen = a->admin ? a->admin : cfg->admin.listen;
    long status =
        text ? sy_cli_admin_post(cfg, listen, "/admin/replay", text, &answer, why, sizeof(why)) : 0;
    free(text);
    json_t *out = status ? json_loadb(answer.data ? answer.data : "", answer.len, 0, NULL) : NULL;
    sy_buf_dispose(&answer);
    if (status != 200) {
        const char *detail = json_string_value(json_object_get(out, "detail"));
        fprintf(stderr, "switchyard replay: %s\n",
                detail   ? detail
                : why[0] ? why
                         : "the server refused the replay");
        json_decref(out);
        return 1;
    }
    size_t i;
    json_t *job;
    json_array_foreach(json_object_get(out, "jobs"), i, job)
    {
        printf("%-36s %-28s %s\n", json_string_value(json_object_get(job, "event")),
               json_string_value(json_object_get(job, "rule")),
               json_string_value(json_object_get(job, "was")));
    }
    if (json_is_true(json_object_get(out, "jobs_truncated"))) {
        printf("... (the first %zu jobs listed)\n", json_array_size(json_object_get(out, "jobs")));
    }
    long long again = json_integer_value(json_object_get(out, "again"));
    long long fresh = json_integer_value(json_object_get(out, "new"));
    printf("%s %lld event%s read: %lld job%s %s again, %lld new; %lld left alone (pending or "
           "retrying), %lld quarantined event%s skipped (replay those by id)\n",
           a->dry_run ? "dry run, nothing changed:" : "replayed:",
           (long long)json_integer_value(json_object_get(out, "events")),
           json_integer_value(json_object_get(out, "events")) == 1 ? "" : "s", again,
           again == 1 ? "" : "s", a->dry_run ? "would run" : "run", fresh,
           (long long)json_integer_value(json_object_get(out, "busy")),
           (long long)json_integer_value(json_object_get(out, "quarantined")),
           json_integer_value(json_object_get(out, "quarantined")) == 1 ? "" : "s");
    json_decref(out);
    return 0;
}
