/*
 * Store conformance, the event list (store/filter.h): filters, newest first,
 * paging by cursor, the id lookup. Included by test_store.c; uses its
 * prepare() and submit_wait(). Every event here is routed to nobody.
 */
#include <jansson.h>

#include "store/filter.h"

#define LIST_N 30

/* Every event id the filter selects, page after page of 'limit', newest first; -1 on error. */
static int list_all(struct sy_store *st, struct sy_event_filter f, int limit, char ids[][16],
                    int max, int *pages)
{
    char cursor[SY_CURSOR_MAX + 1];
    int n = 0;
    *pages = 0;
    f.limit = limit;
    for (;;) {
        struct sy_error err = {0};
        json_t *page = sy_store_list(st, &f, &err);
        if (page == NULL) {
            fprintf(stderr, "list: %s\n", err.msg);
            return -1;
        }
        (*pages)++;
        json_t *events = json_object_get(page, "events"), *e;
        size_t i;
        CHECK(json_array_size(events) <= (size_t)limit);
        json_array_foreach(events, i, e) {
            if (n < max) {
                snprintf(ids[n], sizeof(ids[n]), "%s", json_string_value(json_object_get(e, "id")));
            }
            n++;
        }
        const char *next = json_string_value(json_object_get(page, "next"));
        if (next == NULL || *pages > 500) {
            json_decref(page);
            return n;
        }
        snprintf(cursor, sizeof(cursor), "%s", next);
        f.cursor = cursor;
        json_decref(page);
    }
}

/* True when 'ids' are exactly lst_<hi>, lst_<hi - step>, ... down to lst_<lo> (newest first). */
static bool ids_are(char ids[][16], int n, int hi, int lo, int step)
{
    int k = 0;
    for (int i = hi; i >= lo; i -= step, k++) {
        char want[16];
        snprintf(want, sizeof(want), "lst_%02d", i);
        if (k >= n || strcmp(ids[k], want) != 0) {
            fprintf(stderr, "list: position %d is %s, want %s\n", k, k < n ? ids[k] : "(end)", want);
            return false;
        }
    }
    return k == n;
}

static void check_list(struct sy_store *st)
{
    /* lst_00..29, a second apart after every event before them (received times rise with
     * arrival, as the server's clock gives them): odd ones jira tickets under "ticketing",
     * even ones list items from github with no category; every tenth body holds a needle */
    int64_t base = sy_wall_ms() + 1000;
    for (int i = 0; i < LIST_N; i++) {
        struct req r;
        char id[16], body_text[96];
        snprintf(id, sizeof(id), "lst_%02d", i);
        prepare(&r, id, i % 2 ? "helpdesk.ticket.updated" : "list.item.created");
        snprintf(body_text, sizeof(body_text), "{\"id\":\"%s\",\"note\":\"%s\"}", id,
                 i % 10 == 3 ? "needle-in-it" : "hay");
        r.a.body = body_text;
        r.a.body_len = strlen(body_text);
        r.a.integration = i % 2 ? "jira" : "github";
        r.a.category = i % 2 ? "ticketing" : NULL;
        r.a.received_ms = base + i * 1000;
        bool is_new = false;
        CHECK(submit_wait(st, &r, &is_new) == SY_OK && is_new);
    }
    barrier(st);
    char ids[64][16];
    int pages, n;
    struct sy_event_filter f = {.type = "helpdesk.*"};
    /* a type pattern, paged by 4: every odd one, newest first, none twice */
    n = list_all(st, f, 4, ids, 64, &pages);
    CHECK(n == 15 && ids_are(ids, n, 29, 1, 2) && pages >= 4);
    /* the same in one page */
    n = list_all(st, f, 50, ids, 64, &pages);
    CHECK(n == 15 && pages == 1 && ids_are(ids, n, 29, 1, 2));
    /* integration and category, exactly */
    n = list_all(st, (struct sy_event_filter){.integration = "jira"}, 7, ids, 64, &pages);
    CHECK(n == 15 && ids_are(ids, n, 29, 1, 2));
    n = list_all(st, (struct sy_event_filter){.category = "ticketing", .type = "list.*"}, 7, ids,
                 64, &pages);
    CHECK(n == 0 && pages == 1); /* a small store is read to its end in one page */
    n = list_all(st, (struct sy_event_filter){.category = "ticketing"}, 6, ids, 64, &pages);
    CHECK(n == 15 && ids_are(ids, n, 29, 1, 2));
    n = list_all(st, (struct sy_event_filter){.integration = "github", .type = "list.item.*"}, 5,
                 ids, 64, &pages);
    CHECK(n == 15 && ids_are(ids, n, 28, 0, 2));
    /* a time range: [base + 10 s, base + 20 s) */
    n = list_all(st, (struct sy_event_filter){.since_ms = base + 10000, .until_ms = base + 20000},
                 3, ids, 64, &pages);
    CHECK(n == 10 && ids_are(ids, n, 19, 10, 1));
    /* received times stamped before the store's queue can come a little out of order:
     * a range still finds each event by its own time, on every backend */
    static const struct { const char *id; int64_t at; } late[] = {{"lst_ooo_c", 40300}, {"lst_ooo_d", 40200}};
    for (size_t k = 0; k < 2; k++) {
        struct req r;
        prepare(&r, late[k].id, "list.item.created");
        r.a.received_ms = base + late[k].at;
        bool is_new = false;
        CHECK(submit_wait(st, &r, &is_new) == SY_OK && is_new);
    }
    barrier(st);
    n = list_all(st, (struct sy_event_filter){.since_ms = base + 40000, .until_ms = base + 40250},
                 50, ids, 64, &pages);
    CHECK(n == 1 && strcmp(ids[0], "lst_ooo_d") == 0);
    /* text the body holds, and an id */
    n = list_all(st, (struct sy_event_filter){.text = "needle-in-it"}, 2, ids, 64, &pages);
    CHECK(n == 3 && ids_are(ids, n, 23, 3, 10));
    n = list_all(st, (struct sy_event_filter){.text = "lst_07"}, 50, ids, 64, &pages);
    CHECK(n == 1 && pages == 1 && ids_are(ids, n, 7, 7, 1));
    /* an id that fails another filter is not listed */
    n = list_all(st, (struct sy_event_filter){.text = "lst_07", .type = "list.*"}, 50, ids, 64,
                 &pages);
    CHECK(n == 0);
    /* event states: none of these was routed */
    n = list_all(st, (struct sy_event_filter){.state = "unrouted", .integration = "jira"}, 50, ids,
                 64, &pages);
    CHECK(n == 15);
    n = list_all(st, (struct sy_event_filter){.state = "routed", .integration = "jira"}, 50, ids,
                 64, &pages);
    CHECK(n == 0);
    /* a job state: every listed event has a done job, and the list is not empty */
    struct sy_error err = {0};
    json_t *page = sy_store_list(st, &(struct sy_event_filter){.state = "done"}, &err);
    json_t *e;
    size_t i;
    CHECK(page != NULL && json_array_size(json_object_get(page, "events")) > 0);
    json_array_foreach(json_object_get(page, "events"), i, e) {
        CHECK(json_integer_value(json_object_get(json_object_get(e, "jobs"), "done")) > 0);
    }
    /* a row has the list's shape */
    json_decref(page);
    page = sy_store_list(st, &(struct sy_event_filter){.text = "lst_29"}, &err);
    e = json_array_get(json_object_get(page, "events"), 0);
    CHECK_STR(json_string_value(json_object_get(e, "type")), "helpdesk.ticket.updated");
    CHECK_STR(json_string_value(json_object_get(e, "integration")), "jira");
    CHECK_STR(json_string_value(json_object_get(e, "category")), "ticketing");
    CHECK_STR(json_string_value(json_object_get(e, "state")), "unrouted");
    CHECK(json_integer_value(json_object_get(e, "received_at")) == base + 29000);
    CHECK(json_is_object(json_object_get(e, "jobs")));
    json_decref(page);
    /* refusals name what is wrong */
    static const struct sy_event_filter bad[] = {
        {.state = "lost"}, {.type = "scm..x"}, {.limit = SY_LIST_MAX + 1}, {.text = ""},
        {.since_ms = 5, .until_ms = 5}, {.cursor = "not-a-cursor"},
        {.cursor = "r1700000000000.999999999"}, /* Redis would walk that many members */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        memset(&err, 0, sizeof(err));
        page = sy_store_list(st, &bad[k], &err);
        CHECK(page == NULL && err.msg[0] != '\0');
        json_decref(page);
    }
}

/*
 * Redis only (its window is small enough to fill here): a page reads at most
 * 2,000 events, so a rare event behind 2,100 newer ones takes two pages, the
 * first empty with a cursor. Events that share a millisecond are each read once.
 */
static void check_list_window(struct sy_store *st)
{
    int64_t base = sy_wall_ms() + 100000;
    for (int i = -1; i < 2100; i++) {
        struct req r;
        char id[32];
        snprintf(id, sizeof(id), i < 0 ? "win_rare" : "win_%04d", i);
        prepare(&r, id, i < 0 ? "rare.thing.happened" : "bulk.item.created");
        r.a.received_ms = i < 0 ? base - 1000 : base + i / 3; /* three per millisecond */
        bool is_new = false;
        CHECK(submit_wait(st, &r, &is_new) == SY_OK && is_new);
    }
    barrier(st);
    char ids[64][16];
    int pages;
    int n = list_all(st, (struct sy_event_filter){.type = "rare.*"}, 50, ids, 64, &pages);
    CHECK(n == 1 && pages == 2 && strcmp(ids[0], "win_rare") == 0);
    /* paging through a shared millisecond neither skips nor repeats */
    static char all[2200][16];
    n = list_all(st, (struct sy_event_filter){.type = "bulk.*"}, 7, all, 2200, &pages);
    CHECK(n == 2100);
    bool ordered = n == 2100;
    for (int i = 0; ordered && i < n; i++) {
        char want[16];
        /* newest first; within a millisecond, Redis's reverse order of the members */
        snprintf(want, sizeof(want), "win_%04d", 2099 - i);
        ordered = strcmp(all[i], want) == 0;
    }
    CHECK(ordered);
}
