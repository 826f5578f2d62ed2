#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/hash.h"
#include "engine/alerts.h"
#include "ingest/delivery.h"
#include "store/renorm.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

/* One alert on its way into the store: the append and everything it points at. */
struct alert {
    struct sy_append a;
    struct sy_event_norm n;
    char *body;
    struct sy_buf norm;
};

static void alert_free(struct alert *x)
{
    free(x->body);
    sy_buf_dispose(&x->norm);
    free(x);
}

static void alert_done(struct sy_append *a)
{
    struct alert *x = (struct alert *)a; /* 'a' is its first member */
    if (a->status != SY_OK) {
        sy_log(SY_LOG_WARN, "an alert event could not be stored", "type", x->n.type, NULL);
    }
    alert_free(x);
}

void sy_alert_make_id(char out[SY_ALERT_ID_MAX], const char *kind, const char *const *parts,
                      size_t n)
{
    uint64_t h = SY_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h = sy_fnv1a(h, "\n", i ? 1 : 0);
        h = sy_fnv1a(h, parts[i], strlen(parts[i]));
    }
    snprintf(out, SY_ALERT_ID_MAX, SY_ALERT_ID_PREFIX "%.32s:%016llx", kind, (unsigned long long)h);
}

bool sy_alert_id(const char *event_id)
{
    return strncmp(event_id, SY_ALERT_ID_PREFIX, strlen(SY_ALERT_ID_PREFIX)) == 0;
}

int sy_alert_emit(struct sy_store *st, const char *type, const char *id, json_t *data)
{
    char at[32];
    time_t now = (time_t)(sy_wall_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:o}", "id", id, "type", type,
                           "timestamp", at, "source", "type", "switchyard", "name", "switchyard",
                           "data", data ? data : json_object());
    struct alert *x = ev ? calloc(1, sizeof(*x)) : NULL;
    if (x == NULL || (x->body = json_dumps(ev, JSON_COMPACT)) == NULL) {
        json_decref(ev);
        free(x);
        return SY_ENOMEM;
    }
    json_decref(ev);
    size_t len = strlen(x->body);
    struct sy_delivery d = {.body = x->body, .body_len = len};
    sy_delivery_normalize(&d, &x->n);
    sy_buf_init(&x->norm, 64 << 10);
    sy_event_norm_json(&x->n, &x->norm);
    if (x->n.quarantined || x->norm.failed) {
        sy_log(SY_LOG_ERROR, "an alert event could not be built", "type", type, "reason",
               x->n.quarantined ? x->n.reason : "out of memory", NULL);
        alert_free(x);
        return SY_EINVAL;
    }
    sy_store_append_of(&x->n, &x->a);
    x->a.body = x->body;
    x->a.body_len = len;
    x->a.norm = x->norm.data;
    x->a.norm_len = x->norm.len;
    x->a.headers = "{}";
    x->a.headers_len = 2;
    x->a.received_ms = sy_wall_ms();
    x->a.done = alert_done;
    int rc = sy_store_submit(st, &x->a);
    if (rc != SY_OK) {
        sy_log(SY_LOG_WARN, "an alert event was dropped: the store's queue is full or it is down",
               "type", type, NULL);
        alert_free(x);
    }
    return rc;
}
