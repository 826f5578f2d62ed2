/* The flow gates of unizo/flow.h: caps, rate spacing, holds, on a clock the test sets. */
#include <stdlib.h>

#include "check.h"
#include "config.h"
#include "unizo/flow.h"

static int64_t held_ms;
static void on_hold(void *ctx, const char *name, int64_t ms)
{
    (void)ctx, (void)name;
    held_ms = ms;
}

int main(void)
{
    struct sy_unizo_integration in[3] = {
        {.name = "capped", .max_in_flight = 2},
        {.name = "slow", .rate = 10},   /* one start every 100 ms */
        {.name = "fast", .rate = 5000}, /* five per millisecond */
    };
    struct sy_config cfg = {0};
    cfg.unizo.integrations = in;
    cfg.unizo.n_integrations = 3;
    struct sy_flow *f = sy_flow_new(&cfg);
    CHECK(f != NULL);
    CHECK(sy_flow_find(f, "capped") == 0 && sy_flow_find(f, "fast") == 2);
    CHECK(sy_flow_find(f, "other") == -1 && sy_flow_find(f, NULL) == -1);

    /* max_in_flight: the third waits until one is given back */
    CHECK(sy_flow_take(f, 0, 1000) == 0);
    CHECK(sy_flow_take(f, 0, 1000) == 0);
    CHECK(sy_flow_take(f, 0, 1000) > 0);
    sy_flow_release(f, 0);
    CHECK(sy_flow_take(f, 0, 1000) == 0);

    /* rate 10/s: starts 100 ms apart, the wait says how long */
    CHECK(sy_flow_take(f, 1, 1000) == 0);
    sy_flow_release(f, 1);
    CHECK(sy_flow_take(f, 1, 1040) == 60);
    CHECK(sy_flow_take(f, 1, 1100) == 0);
    sy_flow_release(f, 1);
    /* late: no burst to catch up */
    CHECK(sy_flow_take(f, 1, 5000) == 0);
    sy_flow_release(f, 1);
    CHECK(sy_flow_take(f, 1, 5001) > 0);

    /* above 1000/s several start in one millisecond, and no more than the rate */
    int started = 0;
    for (int i = 0; i < 20; i++) {
        if (sy_flow_take(f, 2, 7000) == 0) {
            started++;
            sy_flow_release(f, 2);
        }
    }
    CHECK(started == 5);

    /* a hold stops every start until it is over; the hook hears of its beginning once */
    sy_flow_on_hold(f, on_hold, NULL);
    int64_t now = 0;
    struct sy_flow_stat st;
    sy_flow_stat(f, 0, now, &st);
    CHECK(st.in_flight == 2 && st.held_total == 0);
    sy_flow_release(f, 0);
    sy_flow_release(f, 0);
    /* holds are in monotonic time: take the gate's clock from sy_flow_stat's view */
    sy_flow_hold(f, 0, (int64_t)1 << 50);
    CHECK(held_ms > 0);
    held_ms = 0;
    sy_flow_hold(f, 0, (int64_t)1 << 49); /* already held: no new beginning, no shorter hold */
    CHECK(held_ms == 0);
    CHECK(sy_flow_take(f, 0, ((int64_t)1 << 50) - 10) == 10);
    CHECK(sy_flow_take(f, 0, (int64_t)1 << 50) == 0);
    sy_flow_stat(f, 0, 0, &st);
    CHECK(st.held_total == 2 && st.in_flight == 1);

    sy_flow_waiting(f, 1, 3);
    sy_flow_waiting(f, 1, -1);
    sy_flow_stat(f, 1, 0, &st);
    CHECK(st.waiting == 2 && st.rate == 10);
    sy_flow_free(f);
    printf("%d checks, %d failed\n", check_count, check_failures);
    return check_failures != 0;
}
