#ifndef SY_HTTP_OVERVIEW_H
#define SY_HTTP_OVERVIEW_H

/*
 * The console's overview: a thread samples the process's counters every
 * 'every_s' seconds and keeps the last 'keep' samples in a ring, so the last
 * hour can be drawn without Prometheus. Thread-safe (one mutex).
 */
struct sy_overview;
struct json_t;

/* Start sampling (the first sample at once). NULL when out of memory or threads. */
struct sy_overview *sy_overview_start(int every_s, int keep);
/* Stop the thread and free. NULL is a no-op. */
void sy_overview_stop(struct sy_overview *o);

/*
 * {"every_s": N, "series": [{"name", "label", "unit", "now", "values": [...], "link"}]}:
 * rates per second between samples (and gauges as sampled), oldest first. New reference.
 */
struct json_t *sy_overview_json(struct sy_overview *o);

#endif
