#ifndef SY_CORE_RETRY_H
#define SY_CORE_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The one retry policy: how long to wait before retry number 'retry' (0 =
 * the first retry, after the first failure), or that there is none left.
 * Used for job-level retries (an explicit schedule, each delay varied by
 * +-jitter) and for the Unizo client's retries inside one call (doubling
 * from base up to cap, full jitter). Pure: the randomness comes in as 'r'.
 */
struct sy_backoff {
    const uint64_t *schedule_ms; /* delay before retry 1, 2, ...; NULL: doubling from base_ms */
    size_t n_schedule;           /* with a schedule: retries at most (0: none) */
    uint64_t base_ms;            /* doubling: the first ceiling */
    uint64_t cap_ms;             /* doubling: no ceiling above this; 0 = none */
    unsigned max_retries;        /* doubling: retries at most */
    double jitter;               /* schedule: each delay scaled by a factor in [1-j, 1+j] */
    bool full_jitter;            /* doubling: a delay in [0, ceiling) */
};

/*
 * Milliseconds to wait before retry number 'retry', or -1 when the policy
 * has no retry left. 'r' is a random number in [0, 1). 'retry_after_ms' is
 * what the other side asked for (Retry-After; < 0 when it did not): the
 * wait is never shorter, but at most four times cap_ms when a cap is set.
 * Pure; any thread.
 */
int64_t sy_backoff_delay(const struct sy_backoff *p, unsigned retry, double r,
                         int64_t retry_after_ms);

#endif
