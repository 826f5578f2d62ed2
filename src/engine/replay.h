#ifndef SY_ENGINE_REPLAY_H
#define SY_ENGINE_REPLAY_H

#include <stdbool.h>

#include "engine/engine.h"
#include "store/store.h"

/* Finished jobs a replay runs again, by their state. */
enum { SY_REPLAY_DEAD = 1, SY_REPLAY_DONE = 2, SY_REPLAY_SKIPPED = 4, SY_REPLAY_FINISHED = 7 };

/* What to replay. */
struct sy_replay_sel {
    struct sy_scan_query q; /* a time range, or event ids */
    const char *type;       /* a type pattern the event must match, or NULL */
    const char *rule;       /* only this handler, or NULL */
    unsigned states;        /* SY_REPLAY_* bits: which finished jobs run again */
    bool dry_run;           /* list what would run; change nothing */
};

/* What it did (or, dry, would do). */
struct sy_replay_report {
    long events;      /* events read */
    long again;       /* finished jobs run again */
    long created;     /* jobs for handlers that did not take the event when it came */
    long busy;        /* jobs left alone: still pending or retrying */
    long quarantined; /* events skipped: quarantined (replay them by id) */
};

/* Called for each job a replay runs or would run: 'was' is its state, or "new". */
typedef void (*sy_replay_line_fn)(void *ctx, const char *event_id, const char *handler,
                                  const char *was);

/*
 * Read the selected events a page at a time, route each through the
 * current rules and plugins (the live router), and run again each job the
 * selection names (new attempts, fresh schedule; completed Unizo calls are
 * answered from the journal), creating jobs for handlers that take the event
 * now but did not when it came. Pending and retrying jobs are left alone.
 * Queued in batches, so memory does not grow with the store. Returns SY_OK
 * or a negative SY_E*; 'line' (may be NULL) hears of each job. Any thread.
 */
int sy_engine_replay(struct sy_engine *eng, const struct sy_replay_sel *sel, sy_replay_line_fn line,
                     void *ctx, struct sy_replay_report *rep);

#endif
