/*
 * `switchyard backtest`: candidate rules over stored deliveries, offline. Each event the
 * candidates take runs in a sandbox whose Unizo calls are answered by what live got for
 * the same call (its effect journal), or by a dry-run answer; kv writes stay in memory.
 * The calls the candidates make are set against the calls live made: same, changed, new,
 * missing. Nothing is sent and the live store is only read.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "core/router.h"
#include "engine/journal.h"
#include "engine/rules.h"
#include "lua/sandbox.h"
#include "store/store.h"
#include "unizo/client.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/parse.h"

static const char usage[] =
    "usage: switchyard backtest [-c FILE] --rules DIR [--since T] [--until T] [--type PATTERN]\n"
    "                           [--junit FILE]\n"
    "\n"
    "Run the candidate rules in DIR (*.lua, not *_test.lua) over the stored deliveries\n"
    "(default: the last 7 days), offline: Unizo calls are answered with what live got\n"
    "for the same call, or dry-run answers; kv writes stay in memory; nothing is sent\n"
    "and the store is only read. Prints, per event, the candidates' calls against the\n"
    "calls live made (same, changed with a diff, new, missing), then a summary; the\n"
    "last line is \"N same, N changed\". Exit 1 when anything differs.\n";

/* One Unizo call: what was asked (and, for a live one, what it got). */
struct call {
    char *method, *path, *body;
    long status;
    char *response;
    bool used; /* a live call already answered a candidate's, or paired in the comparison */
};

struct calls {
    struct call *v;
    size_t n, cap;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void calls_add(struct calls *c, const char *method, const char *path, const char *body,
                      long status, const char *response)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct call *g = realloc(c->v, cap * sizeof(*g));
        if (g == NULL) {
            return;
        }
        c->v = g;
        c->cap = cap;
    }
    c->v[c->n++] = (struct call){.method = dup_or_null(method),
                                 .path = dup_or_null(path),
                                 .body = dup_or_null(body),
                                 .status = status,
                                 .response = dup_or_null(response)};
}

static void calls_clear(struct calls *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].method);
        free(c->v[i].path);
        free(c->v[i].body);
        free(c->v[i].response);
    }
    c->n = 0;
}

/* kv as the candidates see it: their own writes over the live store's values. */
struct kv_entry {
    char *key, *value; /* value NULL: deleted */
};

struct backtest {
    const struct sy_config *cfg;
    struct sy_store *store;
    struct sy_unizo *unizo; /* only for integration defaults: it never sends */
    struct sy_rule_gen *gen;
    struct sy_lua *lx;
    const char *type;
    struct calls live, cand;
    struct kv_entry *kv, *pending; /* committed overlay; this run's writes */
    size_t n_kv, n_pending;
    long events, same, changed, added, missing;
    FILE *junit;
    bool bad_run;
};

static bool same_json(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    json_t *x = json_loads(a, JSON_DECODE_ANY, NULL), *y = json_loads(b, JSON_DECODE_ANY, NULL);
    bool same = x && y ? json_equal(x, y) : strcmp(a, b) == 0;
    json_decref(x);
    json_decref(y);
    return same;
}

static struct kv_entry *kv_find(struct kv_entry *list, size_t n, const char *key)
{
    for (size_t i = n; i-- > 0;) {
        if (strcmp(list[i].key, key) == 0) {
            return &list[i];
        }
    }
    return NULL;
}

static int kv_get(void *ctx, void *run, const char *key, char **value)
{
    struct backtest *b = ctx;
    (void)run;
    struct kv_entry *e = kv_find(b->pending, b->n_pending, key);
    if (e == NULL) {
        e = kv_find(b->kv, b->n_kv, key);
    }
    if (e != NULL) {
        *value = dup_or_null(e->value);
        return SY_OK;
    }
    return sy_store_kv_get(b->store, NULL, key, value);
}

static int kv_put(struct backtest *b, const char *key, const char *value)
{
    struct kv_entry *g = realloc(b->pending, (b->n_pending + 1) * sizeof(*g));
    if (g == NULL) {
        return SY_ENOMEM;
    }
    b->pending = g;
    b->pending[b->n_pending++] = (struct kv_entry){strdup(key), dup_or_null(value)};
    return SY_OK;
}

static int kv_set(void *ctx, void *run, const char *key, const char *value, uint64_t ttl_ms)
{
    (void)run;
    (void)ttl_ms;
    return kv_put(ctx, key, value);
}

static int kv_delete(void *ctx, void *run, const char *key)
{
    (void)run;
    return kv_put(ctx, key, NULL);
}

/* A run's writes count only when it is done, as live. */
static void kv_end_run(struct backtest *b, bool keep)
{
    for (size_t i = 0; i < b->n_pending; i++) {
        struct kv_entry *g = keep ? realloc(b->kv, (b->n_kv + 1) * sizeof(*g)) : NULL;
        if (g != NULL) {
            b->kv = g;
            b->kv[b->n_kv++] = b->pending[i];
        } else {
            free(b->pending[i].key);
            free(b->pending[i].value);
        }
    }
    b->n_pending = 0;
}

/* The candidates' transport: what live got for the same call, else a dry-run answer. */
static int answer(void *ctx, const struct sy_unizo_request *req, struct sy_unizo_response *resp)
{
    struct backtest *b = ctx;
    memset(resp, 0, sizeof(*resp));
    calls_add(&b->cand, req->method, req->path, req->body, 0, NULL);
    for (size_t i = 0; i < b->live.n; i++) {
        struct call *l = &b->live.v[i];
        if (!l->used && l->status > 0 && strcmp(l->method, req->method) == 0 &&
            strcmp(l->path, req->path) == 0 && same_json(l->body, req->body)) {
            l->used = true;
            resp->status = l->status;
            resp->body = strdup(l->response ? l->response : "");
            resp->len = strlen(resp->body);
            resp->attempts = 1;
            return SY_OK;
        }
    }
    char id[600];
    snprintf(id, sizeof(id), "{\"dry_run\":true,\"id\":\"dry-run:%s\"}",
             req->idempotency_key ? req->idempotency_key : "");
    resp->status = 200;
    resp->dry_run = true;
    resp->body = strdup(id);
    resp->len = strlen(id);
    resp->attempts = 1;
    return SY_OK;
}

static int journal_call(void *ctx, void *run, struct sy_unizo_request *req,
                        struct sy_unizo_response *resp)
{
    (void)ctx;
    return sy_journal_call(run, req, resp);
}

static void defaults(void *ctx, const char *integration, const char **org, const char **col)
{
    struct backtest *b = ctx;
    *org = *col = NULL;
    if (b->unizo != NULL) {
        sy_unizo_defaults(b->unizo, integration, org, col);
    }
}

/* The live calls of an event: each job's calls in its last attempt (what took effect). */
static void load_live(struct backtest *b, const struct sy_scan_event *ev)
{
    for (size_t i = 0; i < ev->n_jobs; i++) {
        struct sy_job job = {.id = ev->job_id ? ev->job_id[i] : 0,
                             .event_id = (char *)ev->id,
                             .handler = (char *)ev->job_handler[i]};
        struct sy_call_record *recs = NULL;
        size_t n = 0;
        if (sy_store_journal_load(b->store, &job, &recs, &n) != SY_OK) {
            continue;
        }
        int last = 0;
        for (size_t k = 0; k < n; k++) {
            last = recs[k].attempt > last ? recs[k].attempt : last;
        }
        for (size_t k = 0; k < n; k++) {
            if (recs[k].attempt == last) {
                calls_add(&b->live, recs[k].method, recs[k].path, recs[k].request,
                          recs[k].truncated ? 0 : recs[k].status, recs[k].response);
            }
            sy_call_record_dispose(&recs[k]);
        }
        free(recs);
    }
    for (size_t i = 0; i < b->live.n; i++) {
        b->live.v[i].used = false;
    }
}

/* "name: "a" -> "b"" lines for the members that differ (objects, one level of nesting). */
static void print_diff(const char *was, const char *now)
{
    json_t *x = json_loads(was ? was : "null", JSON_DECODE_ANY, NULL);
    json_t *y = json_loads(now ? now : "null", JSON_DECODE_ANY, NULL);
    if (json_is_object(x) && json_is_object(y)) {
        const char *k;
        json_t *v;
        json_t *keys = json_object();
        json_object_foreach(x, k, v)
        {
            json_object_set(keys, k, json_true());
        }
        json_object_foreach(y, k, v)
        {
            json_object_set(keys, k, json_true());
        }
        json_object_foreach(keys, k, v)
        {
            json_t *a = json_object_get(x, k), *c = json_object_get(y, k);
            if (a == NULL || c == NULL || !json_equal(a, c)) {
                char *sa = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
                char *sc = c ? json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
                printf("      body.%s: %.200s -> %.200s\n", k, sa ? sa : "(none)",
                       sc ? sc : "(none)");
                free(sa);
                free(sc);
            }
        }
        json_decref(keys);
    } else {
        printf("      body: %.300s -> %.300s\n", was ? was : "(none)", now ? now : "(none)");
    }
    json_decref(x);
    json_decref(y);
}

/* Set the candidates' calls against live's; print the event's line(s); count. */
static void compare(struct backtest *b, const char *event_id)
{
    struct calls *l = &b->live, *c = &b->cand;
    bool *cdone = calloc(c->n + 1, sizeof(bool));
    long same = 0, changed = 0, added = 0, missing = 0;
    for (size_t i = 0; i < l->n; i++) {
        l->v[i].used = false;
    }
    /* the same call; then the same endpoint with another body; then in order */
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < c->n; i++) {
            for (size_t k = 0; !cdone[i] && k < l->n; k++) {
                struct call *x = &c->v[i], *y = &l->v[k];
                bool endpoint = strcmp(x->method, y->method) == 0 && strcmp(x->path, y->path) == 0;
                bool fits = !y->used &&
                            (pass == 2 || (endpoint && (pass == 1 || same_json(x->body, y->body))));
                if (!fits) {
                    continue;
                }
                y->used = cdone[i] = true;
                if (pass == 0) {
                    same++;
                    continue;
                }
                changed++;
                printf("  %-30s changed: %s %s", event_id, y->method, y->path);
                if (!endpoint) {
                    printf(" -> %s %s", x->method, x->path);
                }
                printf("\n");
                print_diff(y->body, x->body);
            }
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        if (!cdone[i]) {
            added++;
            printf("  %-30s new: %s %s %.200s\n", event_id, c->v[i].method, c->v[i].path,
                   c->v[i].body ? c->v[i].body : "");
        }
    }
    for (size_t k = 0; k < l->n; k++) {
        if (!l->v[k].used) {
            missing++;
            printf("  %-30s missing: %s %s\n", event_id, l->v[k].method, l->v[k].path);
        }
    }
    if (changed == 0 && added == 0 && missing == 0) {
        printf("  %-30s same (%ld call%s)\n", event_id, same, same == 1 ? "" : "s");
    }
    if (b->junit != NULL) {
        fprintf(b->junit, "  <testcase classname=\"backtest\" name=\"%s\">", event_id);
        if (changed || added || missing) {
            fprintf(b->junit, "<failure message=\"%ld changed, %ld new, %ld missing\"/>", changed,
                    added, missing);
        }
        fprintf(b->junit, "</testcase>\n");
    }
    b->same += same;
    b->changed += changed;
    b->added += added;
    b->missing += missing;
    free(cdone);
}

/* The candidates' Lua state: their rules, with this backtest's kv and transport. */
static struct sy_lua *build_state(struct backtest *b, struct sy_error *err)
{
    struct sy_lua_limits lim = sy_rule_limits(b->cfg);
    struct sy_lua_host host = {.ctx = b,
                               .kv_get = kv_get,
                               .kv_set = kv_set,
                               .kv_delete = kv_delete,
                               .unizo_call = journal_call,
                               .unizo_defaults = defaults};
    return sy_rule_gen_state(b->gen, &lim, &host, err);
}

static int each(void *ctx, const struct sy_scan_event *ev)
{
    struct backtest *b = ctx;
    if (strcmp(ev->state, "quarantined") == 0 ||
        (b->type != NULL && !sy_pattern_match(b->type, ev->type, strlen(ev->type)))) {
        return SY_OK;
    }
    b->events++;
    calls_clear(&b->live);
    calls_clear(&b->cand);
    load_live(b, ev);
    for (size_t i = 0; i < b->gen->n_rules; i++) {
        const struct sy_route *r = &b->gen->routes[i];
        if (!sy_route_matches(r, ev->type, strlen(ev->type), ev->integration, ev->category)) {
            continue;
        }
        struct sy_journal j;
        sy_journal_init(&j, ev->id, r->name, answer, b);
        char err[2048];
        enum sy_lua_result res = sy_lua_run(b->lx, r->name, ev->id, ev->body, ev->body_len,
                                            ev->norm, ev->norm_len, &j, err, sizeof(err));
        sy_journal_dispose(&j);
        kv_end_run(b, res == SY_LUA_OK);
        if (res == SY_LUA_ERROR || res == SY_LUA_LIMIT || res == SY_LUA_PERMANENT) {
            printf("  %-30s %s failed: %.300s\n", ev->id, r->name, err);
        }
        if (res == SY_LUA_LIMIT) {
            /* the state is spent after a limit, as in a worker: build it again */
            struct sy_error e;
            sy_lua_free(b->lx);
            if ((b->lx = build_state(b, &e)) == NULL) {
                return SY_EINVAL;
            }
        }
    }
    compare(b, ev->id);
    return SY_OK;
}

/* The candidates: every *.lua in 'dir' but the tests. */
static int candidate_rules(struct sy_config *cfg, const char *dir)
{
    char *abs = realpath(dir, NULL);
    if (abs == NULL) {
        return SY_ENOTFOUND;
    }
    char pattern[PATH_MAX + 16] = "";
    sy_cli_glob_quote(pattern, sizeof(pattern) - 8, abs);
    size_t n = strlen(pattern);
    snprintf(pattern + n, sizeof(pattern) - n, "/*.lua");
    free(abs);
    for (size_t i = 0; i < cfg->n_rules; i++) {
        free(cfg->rules[i]);
    }
    free(cfg->rules);
    cfg->rules = calloc(1, sizeof(char *));
    if (cfg->rules == NULL || (cfg->rules[0] = strdup(pattern)) == NULL) {
        return SY_ENOMEM;
    }
    cfg->n_rules = 1;
    return SY_OK;
}

int sy_cli_backtest(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"rules", required_argument, NULL, 'r'},
        {"since", required_argument, NULL, 's'},  {"until", required_argument, NULL, 'u'},
        {"type", required_argument, NULL, 't'},   {"junit", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *rules = NULL, *since = "7d", *until = NULL, *type = NULL,
               *junit = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'r':
            rules = optarg;
            break;
        case 's':
            since = optarg;
            break;
        case 'u':
            until = optarg;
            break;
        case 't':
            type = optarg;
            break;
        case 'j':
            junit = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (rules == NULL || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    struct sy_scan_query q = {0};
    int64_t now = sy_wall_ms();
    if (!sy_parse_time_ms(since, now, &q.since_ms) ||
        (until != NULL && !sy_parse_time_ms(until, now, &q.until_ms))) {
        fprintf(stderr, "switchyard backtest: a time is like 2026-12-01, 2026-12-01T09:30:00Z or "
                        "2h (ago)\n");
        return 2;
    }
    if (type != NULL && !sy_pattern_valid(type)) {
        fprintf(stderr, "switchyard backtest: --type %s is not a type pattern\n", type);
        return 2;
    }
    struct sy_config cfg;
    if (sy_cli_load_config(sy_cli_config_path(config), &cfg) != 0) {
        return 1;
    }
    sy_log_configure(SY_LOG_ERROR, false);
    struct backtest b = {.cfg = &cfg, .type = type};
    struct sy_error err = {0};
    char msg[1024];
    int rc = 1;
    if (candidate_rules(&cfg, rules) != SY_OK) {
        fprintf(stderr, "switchyard backtest: cannot read the rules folder %s\n", rules);
        goto done;
    }
    b.gen = sy_rule_gen_load(&cfg, 0, &err);
    if (b.gen == NULL) {
        sy_error_format(&err, msg, sizeof(msg));
        fprintf(stderr, "%s\n", msg);
        goto done;
    }
    b.lx = build_state(&b, &err);
    b.store = b.lx ? sy_store_open_readonly(&cfg, &err) : NULL;
    if (b.store == NULL) {
        sy_error_format(&err, msg, sizeof(msg));
        fprintf(stderr, "switchyard backtest: %s\n", msg);
        goto done;
    }
    b.unizo = sy_unizo_new(&cfg, NULL);
    if (junit != NULL && (b.junit = fopen(junit, "w")) == NULL) {
        fprintf(stderr, "switchyard backtest: cannot write %s\n", junit);
        goto done;
    }
    if (b.junit) {
        fprintf(b.junit,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"backtest\">\n");
    }
    printf("candidates (%s):", rules);
    for (size_t i = 0; i < b.gen->n_files; i++) {
        printf(" %s", b.gen->display[i]);
    }
    printf("\n");
    if (sy_store_scan(b.store, &q, each, &b) != SY_OK) {
        fprintf(stderr, "switchyard backtest: the store could not be read\n");
        goto done;
    }
    if (b.junit) {
        fprintf(b.junit, "</testsuite>\n");
    }
    printf("backtest: %ld event%s; calls: %ld same, %ld changed, %ld new, %ld missing\n", b.events,
           b.events == 1 ? "" : "s", b.same, b.changed, b.added, b.missing);
    printf("%ld same, %ld changed\n", b.same, b.changed);
    rc = b.changed || b.added || b.missing ? 1 : 0;
done:
    if (b.junit) {
        fclose(b.junit);
    }
    calls_clear(&b.live);
    calls_clear(&b.cand);
    free(b.live.v);
    free(b.cand.v);
    kv_end_run(&b, false);
    for (size_t i = 0; i < b.n_kv; i++) {
        free(b.kv[i].key);
        free(b.kv[i].value);
    }
    free(b.kv);
    free(b.pending);
    sy_lua_free(b.lx);
    sy_rule_gen_release(b.gen);
    sy_unizo_free(b.unizo);
    sy_store_close(b.store);
    sy_config_dispose(&cfg);
    return rc;
}
