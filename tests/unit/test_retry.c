/* The retry policy: schedules with jitter, doubling with full jitter, Retry-After, the end. */
#include "check.h"
#include "core/retry.h"

int main(void)
{
    const uint64_t schedule[] = {60000, 300000, 1800000};
    struct sy_backoff job = {.schedule_ms = schedule, .n_schedule = 3, .jitter = 0.2};
    /* r = 0.5 is the middle of the jitter range: the schedule itself */
    CHECK(sy_backoff_delay(&job, 0, 0.5, -1) == 60000);
    CHECK(sy_backoff_delay(&job, 1, 0.5, -1) == 300000);
    CHECK(sy_backoff_delay(&job, 2, 0.5, -1) == 1800000);
    /* the edges of the jitter: 0.8x and almost 1.2x */
    CHECK(sy_backoff_delay(&job, 0, 0.0, -1) == 48000);
    CHECK(sy_backoff_delay(&job, 0, 0.999999, -1) >= 71999);
    CHECK(sy_backoff_delay(&job, 0, 0.999999, -1) <= 72000);
    /* out of range randomness is clamped, never extrapolated */
    CHECK(sy_backoff_delay(&job, 0, -3.0, -1) == 48000);
    CHECK(sy_backoff_delay(&job, 0, 7.0, -1) <= 72000);
    /* past the schedule: no retry left */
    CHECK(sy_backoff_delay(&job, 3, 0.5, -1) == -1);
    CHECK(sy_backoff_delay(&job, 1000, 0.5, -1) == -1);
    /* a server's Retry-After is honoured, even beyond the schedule's delay (no cap set) */
    CHECK(sy_backoff_delay(&job, 0, 0.5, 90000) == 90000);
    CHECK(sy_backoff_delay(&job, 0, 0.5, 1000) == 60000);
    /* no jitter: exact */
    struct sy_backoff exact = {.schedule_ms = schedule, .n_schedule = 3, .jitter = 0};
    CHECK(sy_backoff_delay(&exact, 2, 0.0, -1) == 1800000);
    CHECK(sy_backoff_delay(&exact, 2, 0.9, -1) == 1800000);
    /* an empty schedule: dead after the first failure */
    struct sy_backoff none = {.schedule_ms = schedule, .n_schedule = 0};
    CHECK(sy_backoff_delay(&none, 0, 0.5, -1) == -1);
    struct sy_backoff none2 = {0};
    CHECK(sy_backoff_delay(&none2, 0, 0.5, -1) == -1);

    /* the Unizo client's in-call policy: 4 attempts = 3 retries, 500 ms doubling to 2 s */
    struct sy_backoff call = {
        .base_ms = 500, .cap_ms = 2000, .max_retries = 3, .full_jitter = true};
    CHECK(sy_backoff_delay(&call, 0, 0.999999, -1) == 499);
    CHECK(sy_backoff_delay(&call, 1, 0.5, -1) == 500);
    CHECK(sy_backoff_delay(&call, 2, 0.5, -1) == 1000); /* ceiling 2000 = the cap */
    CHECK(sy_backoff_delay(&call, 0, 0.0, -1) == 0);    /* full jitter reaches zero */
    CHECK(sy_backoff_delay(&call, 3, 0.5, -1) == -1);
    /* beyond the cap the ceiling stays at the cap */
    struct sy_backoff many = {.base_ms = 500, .cap_ms = 2000, .max_retries = 100};
    CHECK(sy_backoff_delay(&many, 10, 0.5, -1) == 2000);
    CHECK(sy_backoff_delay(&many, 99, 0.5, -1) == 2000);
    /* Retry-After wins over a shorter wait, but at most 4 x cap */
    CHECK(sy_backoff_delay(&call, 0, 0.1, 1500) == 1500);
    CHECK(sy_backoff_delay(&call, 0, 0.1, 60000) == 8000);
    CHECK(sy_backoff_delay(&call, 0, 0.1, 0) == 50);
    /* no cap: doubling goes on without overflowing */
    struct sy_backoff uncapped = {.base_ms = 1, .max_retries = 1000};
    CHECK(sy_backoff_delay(&uncapped, 10, 0.5, -1) == 1024);
    CHECK(sy_backoff_delay(&uncapped, 500, 0.5, -1) > 0);
    CHECK_DONE();
}
