/*
 * `switchyard rules`: the config's rules and plugins with their state and
 * their jobs by state in the store; `rules pause|resume NAME`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli/cli.h"
#include "engine/pause.h"
#include "engine/rules.h"
#include "plugin/plugins.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"

static const char usage[] =
    "usage: switchyard rules [-c FILE] [--json]\n"
    "       switchyard rules [-c FILE] [--admin ADDRESS:PORT] pause NAME\n"
    "       switchyard rules [-c FILE] [--admin ADDRESS:PORT] resume NAME\n"
    "\n"
    "List the config's rules and plugins: active or paused, and their jobs by state in\n"
    "the store (it reads every stored event). `pause NAME` makes the rule's jobs wait,\n"
    "pending and using no attempt, while its events keep being stored and routed;\n"
    "`resume NAME` lets them run. A pause survives restarts and, on Redis, holds for\n"
    "every instance. With the server running, pause and resume go through its admin\n"
    "listener (admin.listen or --admin, admin.token) and hold at once; otherwise they are\n"
    "written"
    " to the store, and a server reads them within a second.\n";

static const char *const states[] = {"pending", "retrying", "done", "skipped", "dead"};
#define N_STATES 5

/* The handlers of the config: rule names (with file:line) and plugin names. */
struct handlers {
    struct sy_rule_gen *gen;
    struct sy_loaded_plugin *plugins;
    size_t n_plugins;
    size_t n;
    long (*counts)[N_STATES];
};

static const char *handler_name(const struct handlers *h, size_t i)
{
    return i < h->gen->n_rules ? h->gen->rules[i].name
                               : h->plugins[i - h->gen->n_rules].desc->name;
}

static int load_handlers(const struct sy_config *cfg, struct handlers *h)
{
    struct sy_error err = {0};
    memset(h, 0, sizeof(*h));
    h->gen = sy_rule_gen_load(cfg, 0, &err);
    if (h->gen == NULL || sy_plugins_load(cfg, NULL, &h->plugins, &h->n_plugins, &err) != SY_OK) {
        char msg[1024];
        sy_error_format(&err, msg, sizeof(msg));
        fprintf(stderr, "%s\n", msg);
        sy_rule_gen_release(h->gen);
        return SY_EINVAL;
    }
    h->n = h->gen->n_rules + h->n_plugins;
    h->counts = calloc(h->n ? h->n : 1, sizeof(*h->counts));
    return h->counts ? SY_OK : SY_ENOMEM;
}

static void free_handlers(struct handlers *h)
{
    free(h->counts);
    if (h->plugins != NULL) {
        sy_plugins_unload(h->plugins, h->n_plugins);
    }
    sy_rule_gen_release(h->gen);
}

static long find(const struct handlers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(handler_name(h, i), name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static int count_event(void *ctx, const struct sy_scan_event *ev)
{
    struct handlers *h = ctx;
    for (size_t j = 0; j < ev->n_jobs; j++) {
        long i = find(h, ev->job_handler[j]);
        for (int s = 0; i >= 0 && s < N_STATES; s++) {
            h->counts[i][s] += strcmp(ev->job_state[j], states[s]) == 0;
        }
    }
    return 0;
}

static int list(const struct sy_config *cfg, bool as_json)
{
    struct handlers h;
    if (load_handlers(cfg, &h) != SY_OK) {
        return 2;
    }
    struct sy_error err = {0};
    struct sy_store *st = sy_store_open_readonly(cfg, &err);
    if (st == NULL) {
        fprintf(stderr, "switchyard: %s\n", err.msg);
        free_handlers(&h);
        return 1;
    }
    struct sy_scan_query q = {0};
    int rc = sy_store_scan(st, &q, count_event, &h);
    json_t *out = json_array();
    if (!as_json) {
        printf("%-32s %-7s %8s %8s %8s %8s %8s  %s\n", "RULE", "STATE", "PENDING", "RETRYING",
               "DONE", "SKIPPED", "DEAD", "WHERE");
    }
    for (size_t i = 0; rc == SY_OK && i < h.n; i++) {
        const char *name = handler_name(&h, i);
        bool paused = false;
        rc = sy_rule_pause_get(st, name, &paused);
        char where[1200];
        if (i < h.gen->n_rules) {
            snprintf(where, sizeof(where), "%s:%d", h.gen->rules[i].file, h.gen->rules[i].line);
        } else {
            snprintf(where, sizeof(where), "plugin %s", h.plugins[i - h.gen->n_rules].file);
        }
        if (as_json) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I}}", "name", name,
                                  "state", paused ? "paused" : "active", "where", where, "jobs",
                                  "pending", (json_int_t)h.counts[i][0], "retrying",
                                  (json_int_t)h.counts[i][1], "done", (json_int_t)h.counts[i][2],
                                  "skipped", (json_int_t)h.counts[i][3], "dead",
                                  (json_int_t)h.counts[i][4]);
            json_array_append_new(out, o);
        } else {
            printf("%-32s %-7s %8ld %8ld %8ld %8ld %8ld  %s\n", name, paused ? "paused" : "active",
                   h.counts[i][0], h.counts[i][1], h.counts[i][2], h.counts[i][3], h.counts[i][4],
                   where);
        }
    }
    if (rc == SY_OK && as_json) {
        char *s = json_dumps(out, JSON_COMPACT);
        printf("%s\n", s ? s : "[]");
        free(s);
    }
    json_decref(out);
    if (rc != SY_OK) {
        fprintf(stderr, "switchyard: the store could not be read (%s)\n", sy_strerror(rc));
    }
    sy_store_close(st);
    free_handlers(&h);
    return rc == SY_OK ? 0 : 1;
}

/* The running server does it (at once, with its own check of the name); 0 when none answered. */
static long through_server(const struct sy_config *cfg, const char *listen, const char *name,
                           bool pause, int *exit)
{
    CURL *c = curl_easy_init();
    char *esc = c ? curl_easy_escape(c, name, 0) : NULL;
    char path[512];
    snprintf(path, sizeof(path), "/admin/rules/%s/%s", esc ? esc : "", pause ? "pause" : "resume");
    curl_free(esc);
    if (c != NULL) {
        curl_easy_cleanup(c);
    }
    struct sy_buf answer;
    sy_buf_init(&answer, 1 << 20);
    char why[512] = "";
    long status = sy_cli_admin_post(cfg, listen, path, "{}", &answer, why, sizeof(why));
    if (status == 200) {
        printf("rule '%s' %s\n", name,
               pause ? "paused: its jobs wait (pending) until `switchyard rules resume`"
                     : "resumed: its waiting jobs run within a few seconds");
        *exit = 0;
    } else if (status != 0) {
        json_t *j = json_loadb(answer.data ? answer.data : "", answer.len, 0, NULL);
        const char *detail = json_string_value(json_object_get(j, "detail"));
        fprintf(stderr, "switchyard: the server answered %ld: %s\n", status,
                detail ? detail : "(no detail)");
        json_decref(j);
        *exit = status == 404 ? 2 : 1;
    }
    sy_buf_dispose(&answer);
    return status;
}

static int set_paused(const struct sy_config *cfg, const char *admin, const char *name,
                      bool pause)
{
    int exit = 1;
    const char *listen = admin ? admin : cfg->admin.listen;
    if (listen != NULL && through_server(cfg, listen, name, pause, &exit) != 0) {
        return exit;
    }
    if (admin != NULL) {
        fprintf(stderr, "switchyard: no server answered at %s\n", admin);
        return 1;
    }
    /* no server answered: write the store; a server reads it within a second */
    struct handlers h;
    if (load_handlers(cfg, &h) != SY_OK) {
        return 2;
    }
    if (find(&h, name) < 0) {
        fprintf(stderr, "switchyard: %s has no rule or plugin named '%s'\n",
                cfg->path ? cfg->path : "the config", name);
        free_handlers(&h);
        return 2;
    }
    free_handlers(&h);
    struct sy_error err = {0};
    sy_log_configure(SY_LOG_ERROR, false);
    struct sy_store *st = sy_store_open(cfg, &err);
    if (st == NULL) {
        fprintf(stderr, "switchyard: %s\n", err.msg);
        return 1;
    }
    int rc = sy_rule_pause_set(st, name, pause);
    sy_store_close(st);
    if (rc != SY_OK) {
        fprintf(stderr, "switchyard: the store could not record it (%s)\n", sy_strerror(rc));
        return 1;
    }
    printf("rule '%s' %s (written to the store)\n", name, pause ? "paused" : "resumed");
    return 0;
}

int sy_cli_rules(int argc, char **argv)
{
    const char *config = NULL, *admin = NULL;
    bool as_json = false;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"admin", required_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'a':
            admin = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    bool listing = optind == argc;
    bool verb = optind + 2 == argc &&
                (strcmp(argv[optind], "pause") == 0 || strcmp(argv[optind], "resume") == 0);
    if (!listing && !verb) {
        fputs(usage, stderr);
        return 2;
    }
    struct sy_config cfg;
    if (sy_cli_load_config(sy_cli_config_path(config), &cfg) != 0) {
        return 2;
    }
    int rc = listing ? list(&cfg, as_json)
                     : set_paused(&cfg, admin, argv[optind + 1],
                                  strcmp(argv[optind], "pause") == 0);
    sy_config_dispose(&cfg);
    return rc;
}
