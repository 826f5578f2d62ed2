#include "core/retry.h"

int64_t sy_backoff_delay(const struct sy_backoff *p, unsigned retry, double r,
                         int64_t retry_after_ms)
{
    if (r < 0) {
        r = 0;
    } else if (r >= 1) {
        r = 0.999999;
    }
    double wait;
    if (p->schedule_ms != NULL) {
        if (retry >= p->n_schedule) {
            return -1;
        }
        double factor = 1.0 + p->jitter * (2.0 * r - 1.0);
        wait = (double)p->schedule_ms[retry] * (factor < 0 ? 0 : factor);
    } else {
        if (retry >= p->max_retries) {
            return -1;
        }
        /* doubling without overflow: past 2^40 the cap (or the sheer size) decides anyway */
        double ceiling = (double)p->base_ms * (double)(1ull << (retry < 40 ? retry : 40));
        if (p->cap_ms > 0 && ceiling > (double)p->cap_ms) {
            ceiling = (double)p->cap_ms;
        }
        wait = p->full_jitter ? ceiling * r : ceiling;
    }
    if (retry_after_ms >= 0 && (double)retry_after_ms > wait) {
        double most = p->cap_ms > 0 ? 4.0 * (double)p->cap_ms : (double)retry_after_ms;
        wait = (double)retry_after_ms < most ? (double)retry_after_ms : most;
    }
    return (int64_t)wait;
}
