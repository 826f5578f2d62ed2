/*
 * Store conformance: the behaviour every backend behind store.h must have.
 * usage: test_store URL   (e.g. sqlite:/tmp/x.db; the Redis backend will run the same)
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "store/store.h"
#include "util/clock.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

struct req {
    struct sy_append a;
    bool done;
    char id[64];
};

static void on_done(struct sy_append *a)
{
    pthread_mutex_lock(&mu);
    ((struct req *)a)->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static const char body[] = "{\"id\":\"x\",\"type\":\"scm.pull_request.created\"}";

static void prepare(struct req *r, const char *id, const char *type)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->a.id = r->id;
    r->a.id_len = strlen(r->id);
    r->a.type = type;
    r->a.type_len = strlen(type);
    r->a.integration = "github";
    r->a.body = body;
    r->a.body_len = strlen(body);
    r->a.headers = "{}";
    r->a.headers_len = 2;
    r->a.received_ms = sy_wall_ms();
    r->a.done = on_done;
}

/* Append and wait for the answer; returns the status, sets *is_new. */
static int append(struct sy_store *st, const char *id, const char *type, bool *is_new)
{
    struct req r;
    prepare(&r, id, type);
    int rc = sy_store_submit(st, &r.a);
    if (rc != SY_OK) {
        return rc;
    }
    pthread_mutex_lock(&mu);
    while (!r.done) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    *is_new = r.a.is_new;
    return r.a.status;
}

/* The router: "scm.*" goes to handlers a and b, anything else to nobody. */
static size_t route(void *ctx, const char *type, size_t len, const char *integration,
                    const char **names, size_t max)
{
    (void)ctx, (void)integration, (void)max;
    if (len > 4 && strncmp(type, "scm.", 4) == 0) {
        names[0] = "a";
        names[1] = "b";
        return 2;
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
    long count = 0;
    CHECK(sy_store_replay(st, "evt_1", &count) == SY_OK && count == 1);
    struct sy_job *replayed = sy_store_next_job(st, 2000);
    CHECK(replayed && strcmp(replayed->handler, "b") == 0 && replayed->attempts == 0);
    if (replayed) {
        sy_store_finish(st, replayed, SY_JOB_DONE, NULL, 0);
    }
    CHECK(sy_store_replay(st, "evt_1", &count) == SY_OK && count == 0);
    CHECK(sy_store_next_job(st, 300) == NULL);

    /* kv: set, get, overwrite, delete, expiry */
    char *v = NULL;
    CHECK(sy_store_kv_get(st, "k", &v) == SY_OK && v == NULL);
    CHECK(sy_store_kv_set(st, "k", "{\"ticket\":\"T-1\"}", 0) == SY_OK);
    CHECK(sy_store_kv_get(st, "k", &v) == SY_OK && v && strcmp(v, "{\"ticket\":\"T-1\"}") == 0);
    free(v);
    CHECK(sy_store_kv_set(st, "k", "2", 0) == SY_OK);
    CHECK(sy_store_kv_get(st, "k", &v) == SY_OK && v && strcmp(v, "2") == 0);
    free(v);
    CHECK(sy_store_kv_delete(st, "k") == SY_OK);
    CHECK(sy_store_kv_get(st, "k", &v) == SY_OK && v == NULL);
    CHECK(sy_store_kv_set(st, "short", "1", 200) == SY_OK);
    CHECK(sy_store_kv_get(st, "short", &v) == SY_OK && v != NULL);
    free(v);
    struct timespec wait = {0, 400 * 1000 * 1000};
    nanosleep(&wait, NULL);
    CHECK(sy_store_kv_get(st, "short", &v) == SY_OK && v == NULL);

    /* a running job's kv writes commit with its outcome: it sees them at once, nobody else
       does until it is done, and a failed attempt's writes are dropped */
    CHECK(append(st, "evt_kv", "scm.branch.created", &is_new) == SY_OK && is_new);
    n = drain(st, 300, jobs, 16);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(sy_store_kv_set(st, "shared", "before", 0) == SY_OK);
        sy_store_bind_job(jobs[0]);
        CHECK(sy_store_kv_set(st, "mine", "1", 0) == SY_OK);
        CHECK(sy_store_kv_set(st, "mine", "2", 60000) == SY_OK);
        CHECK(sy_store_kv_delete(st, "shared") == SY_OK);
        CHECK(sy_store_kv_get(st, "mine", &v) == SY_OK && v && strcmp(v, "2") == 0);
        free(v);
        CHECK(sy_store_kv_get(st, "shared", &v) == SY_OK && v == NULL);
        sy_store_bind_job(jobs[1]);
        CHECK(sy_store_kv_set(st, "failed", "x", 0) == SY_OK);
        CHECK(sy_store_kv_get(st, "mine", &v) == SY_OK && v == NULL); /* another job's */
        sy_store_bind_job(NULL);
        CHECK(sy_store_kv_get(st, "shared", &v) == SY_OK && v && strcmp(v, "before") == 0);
        free(v);
        sy_store_finish(st, jobs[1], SY_JOB_RETRY, "failed", sy_wall_ms() + 600000);
        sy_store_finish(st, jobs[0], SY_JOB_DONE, NULL, 0);
        CHECK(sy_store_kv_set(st, "barrier", "1", 0) == SY_OK); /* after both outcomes */
        CHECK(sy_store_kv_get(st, "mine", &v) == SY_OK && v && strcmp(v, "2") == 0);
        free(v);
        CHECK(sy_store_kv_get(st, "shared", &v) == SY_OK && v == NULL);
        CHECK(sy_store_kv_get(st, "failed", &v) == SY_OK && v == NULL);
    }

    /* a job left unfinished is runnable again after the store is reopened */
    CHECK(append(st, "evt_2", "scm.branch.created", &is_new) == SY_OK && is_new);
    n = drain(st, 300, jobs, 16);
    CHECK(n == 2);
    if (n == 2) {
        sy_store_finish(st, jobs[0], SY_JOB_DONE, NULL, 0);
        sy_job_free(jobs[1]); /* as if the process died while running it */
    }
    sy_store_close(st);
    st = sy_store_open(&cfg, &err);
    CHECK(st != NULL);
    if (st != NULL) {
        sy_store_set_router(st, route, NULL);
        n = drain(st, 500, jobs, 16);
        CHECK(n == 1 && strcmp(jobs[0]->event_id, "evt_2") == 0 &&
              strcmp(jobs[0]->handler, "b") == 0);
        if (n == 1) {
            sy_store_finish(st, jobs[0], SY_JOB_DONE, NULL, 0);
        }
        /* dedupe survives the reopen */
        CHECK(append(st, "evt_2", "scm.branch.created", &is_new) == SY_OK && !is_new);
        sy_store_close(st);
    }
    sy_config_dispose(&cfg);
    CHECK_DONE();
}
