/* The scheduler: FIFO order, retries by due time, and ordering keys held by one job at a time. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store/sched.h"

static struct sy_job *job(int64_t id, const char *key)
{
    struct sy_job *j = calloc(1, sizeof(*j));
    j->id = id;
    j->event_id = strdup("e");
    j->handler = strdup("h");
    j->key = key ? strdup(key) : NULL;
    return j;
}

static int64_t pop_id(struct sy_sched *s)
{
    struct sy_job *j = sy_sched_pop(s);
    int64_t id = j ? j->id : -1;
    sy_job_free(j);
    return id;
}

int main(void)
{
    struct sy_sched s;
    sy_sched_init(&s);

    /* key-less jobs: first in, first out */
    CHECK(sy_sched_admit(&s, job(1, NULL)));
    CHECK(sy_sched_admit(&s, job(2, NULL)));
    CHECK(pop_id(&s) == 1 && pop_id(&s) == 2 && pop_id(&s) == -1);

    /* a key is held by one job; others with it are refused, other keys are not */
    struct sy_job *a = job(10, "A");
    CHECK(sy_sched_admit(&s, a));
    struct sy_job *a2 = job(11, "A");
    CHECK(!sy_sched_admit(&s, a2));
    CHECK(sy_sched_busy(&s, "A", 11) && !sy_sched_busy(&s, "A", 10) && !sy_sched_busy(&s, "B", 1));
    CHECK(sy_sched_admit(&s, job(12, "B")));
    /* the holder found a second time (after one commit) is not queued twice */
    struct sy_job *again = job(10, "A");
    CHECK(!sy_sched_admit(&s, again));
    sy_job_free(again);
    CHECK(pop_id(&s) == 10 && pop_id(&s) == 12 && pop_id(&s) == -1);
    /* releasing by another job than the holder does nothing */
    sy_sched_release_key(&s, "A", 11);
    CHECK(sy_sched_busy(&s, "A", 11));
    sy_sched_release_key(&s, "A", 10);
    CHECK(!sy_sched_busy(&s, "A", 11));
    CHECK(sy_sched_admit(&s, a2));
    CHECK(pop_id(&s) == 11);
    sy_sched_release_key(&s, "A", 11);
    sy_sched_release_key(&s, "B", 12);
    CHECK(s.n_keys == 0);

    /* retries: released in due order, keeping their keys while they wait */
    struct sy_job *r1 = job(20, "K"), *r2 = job(21, NULL), *r3 = job(22, "L");
    r1->due_ms = 300;
    r2->due_ms = 100;
    r3->due_ms = 200;
    sy_sched_defer(&s, r1);
    sy_sched_defer(&s, r2);
    sy_sched_defer(&s, r3);
    CHECK(sy_sched_busy(&s, "K", 99) && sy_sched_busy(&s, "L", 99));
    CHECK(sy_sched_release_due(&s, 50) == 50);
    CHECK(pop_id(&s) == -1);
    CHECK(sy_sched_release_due(&s, 250) == 50);
    CHECK(pop_id(&s) == 21 && pop_id(&s) == 22 && pop_id(&s) == -1);
    CHECK(sy_sched_release_due(&s, 1000) == -1);
    CHECK(pop_id(&s) == 20);
    CHECK(sy_sched_busy(&s, "K", 99)); /* still held: the job runs again */
    sy_sched_release_key(&s, "K", 20);
    sy_sched_release_key(&s, "L", 22);

    /* many keys, held and released in a random order, against a plain model */
    enum { N = 5000 };
    static int64_t holder[N]; /* 0 = free */
    char name[32];
    unsigned seed = 7;
    for (int round = 0; round < 200000; round++) {
        int k = (int)(rand_r(&seed) % N);
        snprintf(name, sizeof(name), "key-%d", k);
        int64_t id = 1 + (int64_t)(rand_r(&seed) % 1000000);
        if (holder[k] == 0) {
            struct sy_job *j = job(id, name);
            CHECK(sy_sched_admit(&s, j));
            holder[k] = id;
            sy_job_free(sy_sched_pop(&s));
        } else if (rand_r(&seed) % 2) {
            CHECK(sy_sched_busy(&s, name, holder[k] + 1));
            sy_sched_release_key(&s, name, holder[k]);
            holder[k] = 0;
        }
        if (round % 10007 == 0) {
            size_t held = 0;
            for (int i = 0; i < N; i++) {
                snprintf(name, sizeof(name), "key-%d", i);
                bool busy = sy_sched_busy(&s, name, -1);
                CHECK(busy == (holder[i] != 0));
                held += holder[i] != 0;
            }
            CHECK(held == s.n_keys);
        }
    }
    sy_sched_dispose(&s);
    CHECK_DONE();
}
