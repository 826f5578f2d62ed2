/*
 * Store conformance: the behaviour every backend behind store.h must have.
 * usage: test_store URL   (sqlite:/tmp/x.db, redis://HOST:PORT/DB, or memory:, which
 * keeps nothing across a close and so skips only the part after the reopen)
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "store/idmap.h"
#include "store/store.h"
#include "util/clock.h"

#include "append.h"

/* Append and wait for the answer; returns the status, sets *is_new. */
static int append(struct sy_store *st, const char *id, const char *type, bool *is_new)
{
    struct req r;
    prepare(&r, id, type);
    return submit_wait(st, &r, is_new);
}

/*
 * The router: "scm.*" goes to handlers a and b; "keyed.<K>" to handler k with
 * ordering key <K>; anything else to nobody.
 */
static size_t route(void *ctx, const struct sy_append *a, struct sy_routes *out)
{
    (void)ctx;
    if (a->type_len > 4 && strncmp(a->type, "scm.", 4) == 0) {
        sy_routes_add(out, "a", NULL);
        sy_routes_add(out, "b", NULL);
        return 2;
    }
    if (a->type_len > 6 && strncmp(a->type, "keyed.", 6) == 0) {
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(a->type_len - 6), a->type + 6);
        sy_routes_add(out, "k", key);
        return 1;
    }
    return 0;
}

/* Take every job that becomes runnable within ms; returns how many, keeps up to 16. */
static size_t drain(struct sy_store *st, int ms, struct sy_job **out, size_t max)
{
    size_t n = 0;
    struct sy_job *j;
    while ((j = sy_store_next_job(st, ms)) != NULL) {
        if (n < max) {
            out[n] = j;
        } else {
            sy_store_finish(st, j, SY_JOB_DONE, NULL, 0);
        }
        n++;
    }
    return n;
}

struct racer {
    struct sy_store *st;
    int new_count;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    bool is_new = false;
    if (append(r->st, "evt_race", "ticketing.ticket.created", &is_new) == SY_OK && is_new) {
        __atomic_fetch_add(&r->new_count, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

/* The next runnable job within ms, or NULL; checks it is 'event_id' when that is given. */
static struct sy_job *take(struct sy_store *st, int ms, const char *event_id)
{
    struct sy_job *j = sy_store_next_job(st, ms);
    if (event_id != NULL) {
        CHECK(j != NULL && strcmp(j->event_id, event_id) == 0);
        if (j != NULL && strcmp(j->event_id, event_id) != 0) {
            fprintf(stderr, "  expected %s, got %s\n", event_id, j->event_id);
        }
    }
    return j;
}

/* Wait until every op queued before now is committed (ops commit in order). */
static void barrier(struct sy_store *st)
{
    CHECK(sy_store_kv_set(st, NULL, "barrier", "1", 0) == SY_OK);
}

#include "store_list.h"

static struct sy_call_record *record(int attempt, int n, const char *method, const char *path,
                                     long status, const char *response)
{
    struct sy_call_record *r = calloc(1, sizeof(*r));
    r->attempt = attempt;
    r->n = n;
    r->key = strdup("evt_j/k/1");
    r->method = strdup(method);
    r->path = strdup(path);
    r->request = strdup("{\"name\":\"x\"}");
    r->status = status;
    r->response = strdup(response);
    r->response_len = strlen(response);
    r->at_ms = 1700000000123;
    r->ms = 12.5;
    return r;
}

/*
 * Two ids whose hashes share the bits a SQLite store keeps of them in memory (store/idmap.h):
 * the store must read the ids back, not take one for the other. Found by trying ids in turn
 * (some 50,000 tries: the birthday bound of 31 bits).
 */
static void colliding_ids(char a[32], char b[32])
{
    enum { BITS = 20 };
    uint32_t *frag = calloc((size_t)1 << BITS, sizeof(*frag));
    int *which = calloc((size_t)1 << BITS, sizeof(*which));
    a[0] = b[0] = '\0';
    for (int n = 0; frag != NULL && which != NULL && n < 4000000 && a[0] == '\0'; n++) {
        char id[32];
        int len = snprintf(id, sizeof(id), "collide-%d", n);
        uint32_t f = (uint32_t)(sy_id_hash(id, (size_t)len) >> 32) | 1u;
        for (size_t i = f >> (32 - BITS);; i = (i + 1) & (((size_t)1 << BITS) - 1)) {
            if (frag[i] == 0) {
                frag[i] = f;
                which[i] = n;
                break;
            }
            if (frag[i] == f) {
                snprintf(a, 32, "collide-%d", which[i]);
                snprintf(b, 32, "%s", id);
                break;
            }
        }
    }
    free(frag);
    free(which);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_store URL\n");
        return 2;
    }
    struct sy_config cfg;
    sy_config_defaults(&cfg);
    free(cfg.store.url);
    cfg.store.url = strdup(argv[1]);
    if (strncmp(argv[1], "sqlite:", 7) == 0) {
        char wal[1100];
        unlink(argv[1] + 7);
        snprintf(wal, sizeof(wal), "%s-wal", argv[1] + 7);
        unlink(wal);
    }
    struct sy_error err = {0};
    struct sy_store *st = sy_store_open(&cfg, &err);
    if (st == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], err.msg);
        return 1;
    }
    sy_store_set_router(st, route, NULL);
    CHECK(sy_store_ready(st));

    /* dedupe: new, then duplicate */
    bool is_new = false;
    CHECK(append(st, "evt_1", "scm.pull_request.created", &is_new) == SY_OK && is_new);
    CHECK(append(st, "evt_1", "scm.pull_request.created", &is_new) == SY_OK && !is_new);

    /* the same new id from 16 threads at once: exactly one is new */
    struct racer r = {.st = st};
    pthread_t t[16];
    for (int i = 0; i < 16; i++) {
        pthread_create(&t[i], NULL, race, &r);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
    }
    CHECK(r.new_count == 1);

    /* one job per matching handler, with the body; an unrouted event makes none */
    struct sy_job *jobs[16];
    size_t n = drain(st, 300, jobs, 16);
    CHECK(n == 2);
    CHECK(n >= 2 && strcmp(jobs[0]->event_id, "evt_1") == 0);
    CHECK(n >= 2 && strcmp(jobs[0]->handler, "a") == 0 && strcmp(jobs[1]->handler, "b") == 0);
    CHECK(n >= 1 && sy_store_load_body(st, jobs[0]) == SY_OK && strcmp(jobs[0]->body, body) == 0);
    CHECK(n >= 1 && jobs[0]->attempts == 0);

    /* outcomes: a is done for good; b is retried after its due time, then dead */
    int64_t due = sy_wall_ms() + 600;
    if (n == 2) {
        sy_store_finish(st, jobs[0], SY_JOB_DONE, NULL, 0);
        sy_store_finish(st, jobs[1], SY_JOB_RETRY, "first failure", due);
    }
    CHECK(sy_store_next_job(st, 300) == NULL); /* not before it is due */
    struct sy_job *again = sy_store_next_job(st, 2000);
    CHECK(again != NULL && sy_wall_ms() >= due - 5);
    CHECK(again && strcmp(again->handler, "b") == 0 && again->attempts == 1);
    CHECK(again && sy_store_load_body(st, again) == SY_OK);
    if (again) {
        sy_store_finish(st, again, SY_JOB_DEAD, "gave up", 0);
    }
    CHECK(sy_store_next_job(st, 300) == NULL); /* a is never run again */

    /* replay: the dead job comes back, once, with a fresh count */
    struct sy_replay_result rr;
    CHECK(sy_store_replay(st, "evt_1", &rr) == SY_OK && rr.jobs == 1 && !rr.was_quarantined);
    struct sy_job *replayed = sy_store_next_job(st, 2000);
    CHECK(replayed && strcmp(replayed->handler, "b") == 0 && replayed->attempts == 0);
    if (replayed) {
        sy_store_finish(st, replayed, SY_JOB_DONE, NULL, 0);
    }
    CHECK(sy_store_replay(st, "evt_1", &rr) == SY_OK && rr.jobs == 0);
    CHECK(sy_store_next_job(st, 300) == NULL);

    /* kv: set, get, overwrite, delete, expiry */
    char *v = NULL;
    CHECK(sy_store_kv_get(st, NULL, "k", &v) == SY_OK && v == NULL);
    CHECK(sy_store_kv_set(st, NULL, "k", "{\"ticket\":\"T-1\"}", 0) == SY_OK);
    CHECK(sy_store_kv_get(st, NULL, "k", &v) == SY_OK && v &&
          strcmp(v, "{\"ticket\":\"T-1\"}") == 0);
    free(v);
    CHECK(sy_store_kv_set(st, NULL, "k", "2", 0) == SY_OK);
    CHECK(sy_store_kv_get(st, NULL, "k", &v) == SY_OK && v && strcmp(v, "2") == 0);
    free(v);
    CHECK(sy_store_kv_delete(st, NULL, "k") == SY_OK);
    CHECK(sy_store_kv_get(st, NULL, "k", &v) == SY_OK && v == NULL);
    CHECK(sy_store_kv_set(st, NULL, "short", "1", 200) == SY_OK);
    CHECK(sy_store_kv_get(st, NULL, "short", &v) == SY_OK && v != NULL);
    free(v);
    struct timespec wait = {0, 400 * 1000 * 1000};
    nanosleep(&wait, NULL);
    CHECK(sy_store_kv_get(st, NULL, "short", &v) == SY_OK && v == NULL);

    /* a running job's kv writes commit with its outcome: it sees them at once, nobody else
       does until it is done, and a failed attempt's writes are dropped */
    CHECK(append(st, "evt_kv", "scm.branch.created", &is_new) == SY_OK && is_new);
    n = drain(st, 300, jobs, 16);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(sy_store_kv_set(st, NULL, "shared", "before", 0) == SY_OK);
        CHECK(sy_store_kv_set(st, jobs[0], "mine", "1", 0) == SY_OK);
        CHECK(sy_store_kv_set(st, jobs[0], "mine", "2", 60000) == SY_OK);
        CHECK(sy_store_kv_delete(st, jobs[0], "shared") == SY_OK);
        CHECK(sy_store_kv_get(st, jobs[0], "mine", &v) == SY_OK && v && strcmp(v, "2") == 0);
        free(v);
        CHECK(sy_store_kv_get(st, jobs[0], "shared", &v) == SY_OK && v == NULL);
        CHECK(sy_store_kv_set(st, jobs[1], "failed", "x", 0) == SY_OK);
        /* a running handler cannot write the server's own keys (paused rules) */
        CHECK(sy_store_kv_set(st, jobs[0], "switchyard:paused:a", "{}", 0) == SY_EINVAL);
        CHECK(sy_store_kv_delete(st, jobs[0], "switchyard:paused:a") == SY_EINVAL);
        CHECK(sy_store_kv_get(st, jobs[1], "mine", &v) == SY_OK && v == NULL); /* another job's */
        CHECK(sy_store_kv_get(st, NULL, "shared", &v) == SY_OK && v && strcmp(v, "before") == 0);
        free(v);
        sy_store_finish(st, jobs[1], SY_JOB_RETRY, "failed", sy_wall_ms() + 600000);
        sy_store_finish(st, jobs[0], SY_JOB_DONE, NULL, 0);
        CHECK(sy_store_kv_set(st, NULL, "barrier", "1", 0) == SY_OK); /* after both outcomes */
        CHECK(sy_store_kv_get(st, NULL, "mine", &v) == SY_OK && v && strcmp(v, "2") == 0);
        free(v);
        CHECK(sy_store_kv_get(st, NULL, "shared", &v) == SY_OK && v == NULL);
        CHECK(sy_store_kv_get(st, NULL, "failed", &v) == SY_OK && v == NULL);
        CHECK(sy_store_kv_get(st, NULL, "switchyard:paused:a", &v) == SY_OK && v == NULL);
    }

    /*
     * ordering keys: jobs of one key run one at a time in store order; other keys and
     * key-less jobs are not held up; a retry keeps the key; done, skipped or dead hands it on
     */
    CHECK(append(st, "evt_k1", "keyed.A", &is_new) == SY_OK && is_new);
    CHECK(append(st, "evt_k2", "keyed.A", &is_new) == SY_OK && is_new);
    CHECK(append(st, "evt_k3", "keyed.B", &is_new) == SY_OK && is_new);
    struct sy_job *k1 = take(st, 1000, "evt_k1");
    struct sy_job *k3 = take(st, 1000, "evt_k3");
    CHECK(k1 && k1->key && strcmp(k1->key, "A") == 0);
    CHECK(sy_store_next_job(st, 300) == NULL); /* evt_k2 waits for evt_k1 */
    if (k1 && k3) {
        sy_store_finish(st, k3, SY_JOB_DONE, NULL, 0);
        sy_store_finish(st, k1, SY_JOB_RETRY, "503", sy_wall_ms() + 400);
        CHECK(sy_store_next_job(st, 200) == NULL); /* still waiting: k1 holds A while it retries */
        k1 = take(st, 2000, "evt_k1");
        CHECK(k1 && k1->attempts == 1);
        CHECK(sy_store_next_job(st, 200) == NULL);
        if (k1) {
            sy_store_finish(st, k1, SY_JOB_DONE, NULL, 0);
        }
        struct sy_job *k2 = take(st, 2000, "evt_k2");
        CHECK(k2 && k2->attempts == 0);
        /* dead hands the key on too; a replay queues behind the job that holds it then */
        if (k2) {
            sy_store_finish(st, k2, SY_JOB_DEAD, "gave up", 0);
        }
        CHECK(append(st, "evt_k4", "keyed.A", &is_new) == SY_OK && is_new);
        struct sy_job *k4 = take(st, 2000, "evt_k4");
        CHECK(sy_store_replay(st, "evt_k2", &rr) == SY_OK && rr.jobs == 1);
        struct sy_job *early = sy_store_next_job(st, 300);
        CHECK(early == NULL);
        if (early) {
            fprintf(stderr, "  replayed too early: %s/%s\n", early->event_id, early->handler);
        }
        if (k4) {
            sy_store_finish(st, k4, SY_JOB_SKIPPED, NULL, 0);
        }
        k2 = take(st, 2000, "evt_k2");
        CHECK(k2 && k2->attempts == 0);
        if (k2) {
            sy_store_finish(st, k2, SY_JOB_DONE, NULL, 0);
        }
    }
    CHECK(sy_store_next_job(st, 200) == NULL);

    /*
     * a deferred job (its rule is paused) is pending again at its time with its counts as
     * they were, and keeps its ordering key while it waits
     */
    CHECK(append(st, "evt_d1", "keyed.D", &is_new) == SY_OK && is_new);
    CHECK(append(st, "evt_d2", "keyed.D", &is_new) == SY_OK && is_new);
    struct sy_job *d1 = take(st, 1000, "evt_d1");
    CHECK(d1 && d1->attempts == 0);
    if (d1) {
        int64_t d_due = sy_wall_ms() + 400;
        sy_store_finish(st, d1, SY_JOB_DEFER, NULL, d_due);
        CHECK(sy_store_next_job(st, 200) == NULL); /* not before its time; evt_d2 waits */
        d1 = take(st, 2000, "evt_d1");
        CHECK(d1 && d1->attempts == 0 && d1->runs == 0 && sy_wall_ms() >= d_due - 5);
        CHECK(sy_store_next_job(st, 200) == NULL); /* it still holds the key */
        if (d1) {
            sy_store_finish(st, d1, SY_JOB_DONE, NULL, 0);
        }
        struct sy_job *d2 = take(st, 2000, "evt_d2");
        CHECK(d2 != NULL);
        if (d2) {
            sy_store_finish(st, d2, SY_JOB_DONE, NULL, 0);
        }
    }
    CHECK(sy_store_next_job(st, 200) == NULL);

    /* the journal: what a job recorded, in order, kept across a failed attempt */
    CHECK(append(st, "evt_j", "keyed.J", &is_new) == SY_OK && is_new);
    struct sy_job *jj = take(st, 1000, "evt_j");
    if (jj) {
        sy_store_journal_add(st, jj, record(1, 1, "POST", "/tickets", 201, "{\"id\":\"T-1\"}"));
        struct sy_call_record *failed = record(1, 2, "POST", "/tickets/T-1/comments", 0, "");
        failed->error = strdup("Connection refused");
        sy_store_journal_add(st, jj, failed);
        sy_store_finish(st, jj, SY_JOB_RETRY, "comment failed", sy_wall_ms() + 300);
        barrier(st);
        jj = take(st, 2000, "evt_j");
    }
    CHECK(jj && jj->runs == 1 && !jj->fresh);
    if (jj) {
        struct sy_call_record *recs = NULL;
        size_t nrec = 0;
        CHECK(sy_store_journal_load(st, jj, &recs, &nrec) == SY_OK && nrec == 2);
        if (nrec == 2) {
            CHECK(recs[0].attempt == 1 && recs[0].n == 1 && recs[0].status == 201);
            CHECK_STR(recs[0].method, "POST");
            CHECK_STR(recs[0].path, "/tickets");
            CHECK_STR(recs[0].key, "evt_j/k/1");
            CHECK_STR(recs[0].request, "{\"name\":\"x\"}");
            CHECK(recs[0].response_len == 12 &&
                  memcmp(recs[0].response, "{\"id\":\"T-1\"}", 12) == 0);
            CHECK(recs[0].at_ms == 1700000000123 && recs[0].ms > 12 && recs[0].ms < 13);
            CHECK(recs[1].n == 2 && recs[1].status == 0);
            CHECK_STR(recs[1].error, "Connection refused");
        }
        sy_call_records_free(recs, nrec);
        sy_store_finish(st, jj, SY_JOB_DONE, NULL, 0);
        barrier(st);
    }

    /* a rerun gives a job the key the current rules give it: none, and it runs at once */
    CHECK(append(st, "evt_q1", "keyed.Q", &is_new) == SY_OK && is_new);
    struct sy_job *q1 = take(st, 2000, "evt_q1");
    if (q1) {
        sy_store_finish(st, q1, SY_JOB_DONE, NULL, 0);
    }
    barrier(st);
    CHECK(append(st, "evt_q2", "keyed.Q", &is_new) == SY_OK && is_new);
    struct sy_job *q2 = take(st, 2000, "evt_q2"); /* running: it holds Q */
    struct sy_rerun again_q1 = {.event_id = "evt_q1", .handler = "k", .key = NULL};
    long queued = 0;
    CHECK(sy_store_rerun(st, &again_q1, 1, &queued) == SY_OK && queued == 1);
    struct sy_job *q1b = take(st, 2000, "evt_q1"); /* not behind evt_q2 */
    CHECK(q1b == NULL || q1b->key == NULL);
    if (q1b) {
        sy_store_finish(st, q1b, SY_JOB_DONE, NULL, 0);
    }
    if (q2) {
        sy_store_finish(st, q2, SY_JOB_DONE, NULL, 0);
    }
    barrier(st);

    check_list(st);
    if (strncmp(argv[1], "redis", 5) == 0) {
        check_list_window(st);
    }

    /* a job left unfinished is runnable again after the store is reopened */
    CHECK(append(st, "evt_2", "scm.branch.created", &is_new) == SY_OK && is_new);
    /* and one holding a key: after the reopen it runs first, the one behind it waits */
    CHECK(append(st, "evt_r1", "keyed.R", &is_new) == SY_OK && is_new);
    CHECK(append(st, "evt_r2", "keyed.R", &is_new) == SY_OK && is_new);
    n = drain(st, 300, jobs, 16);
    CHECK(n == 3);
    if (n == 3) {
        sy_store_finish(st, jobs[0], SY_JOB_DONE, NULL, 0);
        /* evt_r1 made a call before the process died: its journal line outlives the attempt */
        sy_store_journal_add(st, jobs[2], record(1, 1, "POST", "/tickets", 201, "{}"));
        barrier(st);
        sy_job_free(jobs[1]); /* as if the process died while running them */
        sy_job_free(jobs[2]);
    }
    /* ids alike in the bits of their hash a store may keep: both new, each its own duplicate */
    char col_a[32], col_b[32];
    colliding_ids(col_a, col_b);
    CHECK(col_a[0] != '\0' && strcmp(col_a, col_b) != 0);
    CHECK(append(st, col_a, "x.collide", &is_new) == SY_OK && is_new);
    CHECK(append(st, col_b, "x.collide", &is_new) == SY_OK && is_new);
    CHECK(append(st, col_b, "x.collide", &is_new) == SY_OK && !is_new);
    CHECK(append(st, col_a, "x.collide", &is_new) == SY_OK && !is_new);
    sy_store_close(st);
    st = strcmp(argv[1], "memory:") == 0 ? NULL : sy_store_open(&cfg, &err);
    CHECK(st != NULL || strcmp(argv[1], "memory:") == 0);
    if (st != NULL) {
        sy_store_set_router(st, route, NULL);
        n = drain(st, 500, jobs, 16);
        CHECK(n == 2);
        if (n == 2 && strcmp(jobs[0]->event_id, "evt_r1") == 0) {
            struct sy_job *first = jobs[0];
            jobs[0] = jobs[1];
            jobs[1] = first;
        }
        CHECK(n == 2 && strcmp(jobs[0]->event_id, "evt_2") == 0 &&
              strcmp(jobs[0]->handler, "b") == 0);
        /* a job with a journal is never taken for fresh: its retry must read it */
        CHECK(n == 2 && strcmp(jobs[1]->event_id, "evt_r1") == 0 && !jobs[1]->fresh);
        if (n == 2) {
            struct sy_call_record *recs = NULL;
            size_t nrec = 0;
            CHECK(sy_store_journal_load(st, jobs[1], &recs, &nrec) == SY_OK && nrec == 1);
            sy_call_records_free(recs, nrec);
            sy_store_finish(st, jobs[0], SY_JOB_DONE, NULL, 0);
            sy_store_finish(st, jobs[1], SY_JOB_DONE, NULL, 0);
            struct sy_job *r2 = take(st, 2000, "evt_r2");
            if (r2) {
                sy_store_finish(st, r2, SY_JOB_DONE, NULL, 0);
            }
        }
        /* dedupe survives the reopen */
        CHECK(append(st, "evt_2", "scm.branch.created", &is_new) == SY_OK && !is_new);
        CHECK(append(st, col_b, "x.collide", &is_new) == SY_OK && !is_new);
        CHECK(append(st, col_a, "x.collide", &is_new) == SY_OK && !is_new);
        sy_store_close(st);
    }
    sy_config_dispose(&cfg);
    CHECK_DONE();
}
