#ifndef SY_STORE_SCHED_H
#define SY_STORE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/*
 * A backend's in-memory scheduler: the FIFO of runnable jobs, the retries
 * waiting for their time (a min-heap on due_ms), and the ordering keys held
 * by admitted jobs. A job is admitted (runnable, running or waiting for a
 * retry) only while no other job holds its key; it holds the key until it
 * is done, skipped or dead. Jobs that cannot be admitted stay in the
 * database only. Not locked: every call is made with the backend's mutex
 * held. Memory: one entry per admitted job.
 */
struct sy_sched_key;

struct sy_sched {
    struct sy_job *ready, *ready_tail;
    size_t n_ready;
    struct sy_job **heap;
    size_t n_heap, cap_heap;
    struct sy_sched_key *keys; /* open addressing, linear probing */
    size_t n_keys, cap_keys;
};

void sy_sched_init(struct sy_sched *s);
/* Free every job still queued and the key table. */
void sy_sched_dispose(struct sy_sched *s);

/* True when 'key' is held by a job other than 'job_id'. */
bool sy_sched_busy(const struct sy_sched *s, const char *key, int64_t job_id);

/*
 * Make 'j' runnable: takes its key (if any) and queues it. Returns false,
 * leaving 'j' to the caller, when the key is held (by another job, or by
 * this one, which is then queued already) or cannot be recorded. Takes
 * ownership of 'j' on true.
 */
bool sy_sched_admit(struct sy_sched *s, struct sy_job *j);

/*
 * Park 'j' until j->due_ms, holding its key. Takes ownership of 'j' (on a
 * failed allocation it is freed: it stays in the database as it was).
 */
void sy_sched_defer(struct sy_sched *s, struct sy_job *j);

/* Queue the retries that are due at 'now_ms'; returns ms until the next one, or -1. */
int64_t sy_sched_release_due(struct sy_sched *s, int64_t now_ms);

/* The next runnable job (new to the caller), or NULL. */
struct sy_job *sy_sched_pop(struct sy_sched *s);

/* Job 'job_id' is done, skipped or dead: its key (if it held it) is free again. */
void sy_sched_release_key(struct sy_sched *s, const char *key, int64_t job_id);

#endif
