#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "store/filter.h"
#include "store/inspect.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/parse.h"

static const char events_usage[] =
    "usage: switchyard events [-c FILE] [--status STATUS] [--type PATTERN]\n"
    "                         [--integration NAME] [--category NAME] [--since T] [--until T]\n"
    "                         [--search TEXT] [--limit N] [--json]\n"
    "       switchyard events [-c FILE] show ID\n"
    "\n"
    "List stored events, newest first, with their jobs by state; or show one event\n"
    "with its headers (signature redacted), body, jobs, attempts and last errors.\n"
    "STATUS: pending, retrying, dead, done, skipped (events with a job in that state),\n"
    "routed, unrouted (events no rule took) or quarantined (authentic deliveries that\n"
    "could not be routed as they came; `events show` says why).\n"
    "PATTERN: a route pattern (scm.pull_request.*). TEXT: an event id, or text the body\n"
    "holds (case-sensitive). T: 2026-12-01, 2026-12-01T09:30:00Z, or a time ago (2h, 7d).\n";

static const char replay_usage[] =
    "usage: switchyard replay [-c FILE] ID...\n"
    "       switchyard replay [-c FILE] --dead\n"
    "       switchyard replay [-c FILE] --since T [--until T] [--type PATTERN] [--rule NAME]\n"
    "                         [--state STATE] [--dry-run]\n"
    "       switchyard replay [-c FILE] ID... --rule NAME [--state STATE] [--dry-run]\n"
    "\n"
    "Run the dead jobs of these events (or every dead job) again, with a fresh retry\n"
    "schedule; a quarantined event is normalized again. A running server starts them\n"
    "within a second; a stopped one at its next start.\n"
    "\n"
    "With --since, --rule, --state or --dry-run, the running server reads the chosen\n"
    "events a page at a time and routes each through the rules it runs now: jobs of\n"
    "rules that did not take an event when it came are created, and finished jobs in\n"
    "STATE (dead by default; done, skipped, finished, or a list like dead,done) run\n"
    "again as new attempts. Completed Unizo calls are answered from the journal.\n"
    "T: 2026-12-01, 2026-12-01T09:30:00Z, or a time ago like 2h or 7d. The server is\n"
    "reached at admin.listen (with admin.token), or at --admin ADDRESS:PORT.\n";

/*
 * What the commands read: a SQLite file directly (beside a running server),
 * or a Redis store opened like a server would (its stream is shared).
 */
struct target {
    struct sy_config cfg;
    const char *db_path;    /* SQLite */
    struct sy_store *store; /* Redis */
};

static bool open_target(const char *config, struct target *t)
{
    memset(t, 0, sizeof(*t));
    if (sy_cli_load_config(sy_cli_config_path(config), &t->cfg) != 0) {
        return false;
    }
    t->db_path = sy_inspect_db_path(t->cfg.store.url);
    if (t->db_path == NULL) {
        struct sy_error err = {0};
        sy_log_configure(SY_LOG_ERROR, false);
        t->store = sy_store_open(&t->cfg, &err);
        if (t->store == NULL) {
            fprintf(stderr, "switchyard: %s\n", err.msg);
            sy_config_dispose(&t->cfg);
            return false;
        }
    }
    return true;
}

static void close_target(struct target *t)
{
    sy_store_close(t->store);
    sy_config_dispose(&t->cfg);
}

static void print_error(const struct sy_error *err)
{
    char msg[1024];
    sy_error_format(err, msg, sizeof(msg));
    fprintf(stderr, "switchyard: %s\n", msg);
}

static void print_table(json_t *list)
{
    size_t i;
    json_t *ev;
    printf("%-20s %-36s %-34s %-9s %s\n", "RECEIVED (UTC)", "ID", "TYPE", "STATE", "JOBS");
    json_array_foreach(list, i, ev)
    {
        time_t t = (time_t)(json_integer_value(json_object_get(ev, "received_at")) / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        char jobs[256] = "";
        size_t off = 0;
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(ev, "jobs"), k, v)
        {
            off +=
                (size_t)snprintf(jobs + off, off < sizeof(jobs) ? sizeof(jobs) - off : 0,
                                 "%s%s=%lld", off ? " " : "", k, (long long)json_integer_value(v));
        }
        printf("%-20s %-36s %-34s %-9s %s\n", when, json_string_value(json_object_get(ev, "id")),
               json_string_value(json_object_get(ev, "type")),
               json_string_value(json_object_get(ev, "state")), jobs[0] ? jobs : "-");
    }
}

/* Up to 'limit' events 'f' selects, page after page (a new array), or NULL with 'err'. */
static json_t *list_events(const struct target *t, struct sy_event_filter *f, int64_t limit,
                           struct sy_error *err)
{
    json_t *all = json_array();
    char cursor[SY_CURSOR_MAX + 1];
    while (all != NULL && (int64_t)json_array_size(all) < limit) {
        int64_t left = limit - (int64_t)json_array_size(all);
        f->limit = left < SY_LIST_MAX ? (int)left : SY_LIST_MAX;
        json_t *page = t->store ? sy_store_list(t->store, f, err) : sy_inspect_list(t->db_path, NULL, f, err);
        if (page == NULL) {
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, json_object_get(page, "events"));
        const char *next = json_string_value(json_object_get(page, "next"));
        bool more = next != NULL && strlen(next) <= SY_CURSOR_MAX;
        if (more) {
            snprintf(cursor, sizeof(cursor), "%s", next);
            f->cursor = cursor;
        }
        json_decref(page);
        if (!more) {
            break;
        }
    }
    return all;
}

int sy_cli_events(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"status", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'n'},  {"json", no_argument, NULL, 'j'},
        {"type", required_argument, NULL, 't'},   {"integration", required_argument, NULL, 'i'},
        {"category", required_argument, NULL, 'C'}, {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'u'},  {"search", required_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    struct sy_event_filter f = {0};
    int64_t limit = 50;
    bool as_json = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 's':
            f.state = optarg;
            break;
        case 't':
            f.type = optarg;
            break;
        case 'i':
            f.integration = optarg;
            break;
        case 'C':
            f.category = optarg;
            break;
        case 'q':
            f.text = optarg;
            break;
        case 'S':
        case 'u':
            if (!sy_parse_time_ms(optarg, sy_wall_ms(), c == 'S' ? &f.since_ms : &f.until_ms)) {
                fprintf(stderr, "switchyard events: --%s '%s' is not a time (2026-12-01, "
                                "2026-12-01T09:30:00Z, 2h, 7d)\n",
                        c == 'S' ? "since" : "until", optarg);
                return 2;
            }
            break;
        case 'n':
            if (!sy_parse_int64(optarg, strlen(optarg), &limit) || limit < 1 || limit > 100000) {
                fprintf(stderr, "switchyard events: --limit must be 1 to 100000\n");
                return 2;
            }
            break;
        case 'j':
            as_json = true;
            break;
        case 'h':
            fputs(events_usage, stdout);
            return 0;
        default:
            fputs(events_usage, stderr);
            return 2;
        }
    }
    bool show = optind < argc && strcmp(argv[optind], "show") == 0;
    if ((show && optind + 2 != argc) || (!show && optind != argc)) {
        fputs(events_usage, stderr);
        return 2;
    }
    struct target t;
    if (!open_target(config, &t)) {
        return 1;
    }
    struct sy_error err = {0};
    json_t *out;
    if (show) {
        out = t.store ? sy_store_show(t.store, argv[optind + 1], &err)
                      : sy_inspect_show(t.db_path, NULL, argv[optind + 1], &err);
    } else {
        out = list_events(&t, &f, limit, &err);
    }
    close_target(&t);
    if (out == NULL) {
        print_error(&err);
        return 1;
    }
    if (show || as_json) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
        putchar('\n');
    } else {
        print_table(out);
    }
    json_decref(out);
    return 0;
}

int sy_cli_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"dead", no_argument, NULL, 'd'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {"type", required_argument, NULL, 't'},
        {"rule", required_argument, NULL, 'r'},
        {"state", required_argument, NULL, 'S'},
        {"dry-run", no_argument, NULL, 'n'},
        {"admin", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool all = false;
    struct sy_cli_replay_args sel = {0};
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            all = true;
            break;
        case 's':
            sel.since = optarg;
            break;
        case 'u':
            sel.until = optarg;
            break;
        case 't':
            sel.type = optarg;
            break;
        case 'r':
            sel.rule = optarg;
            break;
        case 'S':
            sel.state = optarg;
            break;
        case 'n':
            sel.dry_run = true;
            break;
        case 'a':
            sel.admin = optarg;
            break;
        case 'h':
            fputs(replay_usage, stdout);
            return 0;
        default:
            fputs(replay_usage, stderr);
            return 2;
        }
    }
    bool selected = sel.since || sel.until || sel.type || sel.rule || sel.state || sel.dry_run;
    bool has_ids = optind < argc;
    if (selected) {
        /* a time range or ids (not both), never with --dead */
        if (all || (sel.since != NULL) == has_ids || (sel.until && !sel.since)) {
            fputs(replay_usage, stderr);
            return 2;
        }
        struct sy_config cfg;
        if (sy_cli_load_config(sy_cli_config_path(config), &cfg) != 0) {
            return 1;
        }
        sel.ids = argv + optind;
        sel.n_ids = (size_t)(argc - optind);
        int rc = sy_cli_replay_selected(&cfg, &sel);
        sy_config_dispose(&cfg);
        return rc;
    }
    if (all == has_ids) {
        fputs(replay_usage, stderr);
        return 2;
    }
    struct target t;
    if (!open_target(config, &t)) {
        return 1;
    }
    int rc = 0;
    for (int i = all ? argc - 1 : optind; i < argc; i++) {
        const char *id = all ? NULL : argv[i];
        struct sy_replay_result r = {0};
        bool quarantined = false;
        struct sy_error err = {0};
        json_t *ev = t.store && id ? sy_store_show(t.store, id, &err) : NULL;
        int rrc = t.store == NULL
                      ? sy_inspect_request_replay(t.db_path, id, &r.jobs, &quarantined, &err)
                  : (id && ev == NULL) ? SY_ENOTFOUND
                                       : sy_store_replay(t.store, id, &r);
        json_decref(ev);
        if (rrc != SY_OK) {
            print_error(&err);
            rc = 1;
            continue;
        }
        const char *name = id ? id : "store";
        if (quarantined) {
            /* through the database: the running server routes it within a second */
            printf("%s: quarantined; asked the server to normalize and route it again (see "
                   "`switchyard events show %s`)\n",
                   name, name);
        } else if (r.was_quarantined && !r.routed) {
            printf("%s: still quarantined: %s\n", name, r.reason);
            rc = 1;
        } else if (r.was_quarantined) {
            printf("%s: routed after all: %ld job%s queued\n", name, r.jobs,
                   r.jobs == 1 ? "" : "s");
        } else if (r.jobs == 0) {
            printf("%s: no dead jobs to replay\n", name);
        } else {
            printf("%s: %ld dead job%s queued for replay\n", name, r.jobs, r.jobs == 1 ? "" : "s");
        }
    }
    close_target(&t);
    return rc;
}
