/* The event list's filters (store/filter.h): checked once, matched by the memory and Redis stores. */
#include <string.h>

#include "core/router.h"
#include "store/filter.h"

static const char *const event_states[] = {"routed", "unrouted", "quarantined", NULL};
static const char *const job_states[] = {"pending", "retrying", "dead", "done", "skipped", NULL};

static bool listed(const char *const *names, const char *s)
{
    for (; *names; names++) {
        if (strcmp(*names, s) == 0) {
            return true;
        }
    }
    return false;
}

int sy_event_filter_check(const struct sy_event_filter *f, struct sy_error *err)
{
    if (f->state && !listed(event_states, f->state) && !listed(job_states, f->state)) {
        return sy_error_set(err, NULL, 0,
                            "unknown state '%.64s' (use routed, unrouted, quarantined, pending, "
                            "retrying, dead, done or skipped)",
                            f->state);
    }
    if (f->type && !sy_pattern_valid(f->type)) {
        return sy_error_set(err, NULL, 0,
                            "type '%.64s' is not a pattern (segments of letters, digits, '_' "
                            "and '-', or '*', joined by '.' or ':')",
                            f->type);
    }
    if (f->limit < 0 || f->limit > SY_LIST_MAX) {
        return sy_error_set(err, NULL, 0, "limit must be 1 to %d", SY_LIST_MAX);
    }
    if (f->text && (f->text[0] == '\0' || strlen(f->text) > SY_LIST_TEXT_MAX)) {
        return sy_error_set(err, NULL, 0, "the search text must be 1 to %d bytes",
                            SY_LIST_TEXT_MAX);
    }
    if (f->since_ms < 0 || f->until_ms < 0 || (f->until_ms && f->since_ms >= f->until_ms)) {
        return sy_error_set(err, NULL, 0, "the time range is empty or negative");
    }
    if (f->cursor && strlen(f->cursor) > SY_CURSOR_MAX) {
        return sy_error_set(err, NULL, 0, "the cursor is not one this server gave");
    }
    return SY_OK;
}

int sy_event_filter_limit(const struct sy_event_filter *f)
{
    return f->limit > 0 ? f->limit : 50;
}

bool sy_event_filter_job_state(const struct sy_event_filter *f)
{
    return f->state != NULL && listed(job_states, f->state);
}

static bool same(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

bool sy_event_filter_head(const struct sy_event_filter *f, const char *type,
                          const char *integration, const char *category, int64_t received_ms,
                          const char *state)
{
    if (f->type && !sy_pattern_match(f->type, type, strlen(type))) {
        return false;
    }
    if (!same(f->integration, integration) || !same(f->category, category)) {
        return false;
    }
    if ((f->since_ms && received_ms < f->since_ms) || (f->until_ms && received_ms >= f->until_ms)) {
        return false;
    }
    return sy_event_filter_job_state(f) || same(f->state, state);
}

bool sy_event_filter_text(const struct sy_event_filter *f, const char *id, const char *body,
                          size_t body_len)
{
    if (f->text == NULL || strcmp(f->text, id) == 0) {
        return true;
    }
    size_t n = strlen(f->text);
    return body != NULL && body_len >= n && memmem(body, body_len, f->text, n) != NULL;
}
