#ifndef SY_INGEST_CHECK_H
#define SY_INGEST_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/delivery.h"
#include "ingest/verify.h"

/*
 * The checks a delivery passes after its address, in the order the README
 * gives ("What happens to a delivery", steps 2 to 5): size, timestamp,
 * signature, then content type and normalization. The one implementation:
 * the webhook handler and `switchyard test` both call it, so a rule test
 * answers exactly as the live server would.
 */

/* Every value a header was sent with (a header sent twice is refused where that matters). */
#define SY_CHECK_MAX_VALUES 8
struct sy_header_values {
    const char *v[SY_CHECK_MAX_VALUES];
    size_t len[SY_CHECK_MAX_VALUES];
    size_t n; /* may exceed SY_CHECK_MAX_VALUES: the count of all lines */
};

/* What arrived. Everything is borrowed. */
struct sy_delivery_in {
    const char *body;
    size_t body_len;
    const char *category; /* from the endpoint (/webhooks/unizo/<category>); NULL = none */
    size_t category_len;
    struct sy_header_values timestamp, signature, event_type, delivery_id, content_type;
};

/* What a delivery's signature covers (webhook.signed_payload). */
enum sy_signed_payload {
    SY_SIGNED_TS_BODY, /* "<timestamp>.<raw body>" (default) */
    SY_SIGNED_BODY,    /* the raw body alone (older Unizo pages) */
    SY_SIGNED_EITHER,  /* either of the two: for a migration */
};

/* What the config says (webhook.*). */
struct sy_check_policy {
    enum sy_signed_payload form; /* what the signature covers: webhook.signed_payload */
    int64_t tolerance_s;
    uint64_t max_body;
    bool reject_invalid; /* webhook.on_invalid = "reject" */
};

/* A refusal: the HTTP status, its reason phrase, the JSON error code and a detail. */
struct sy_refusal {
    int status;
    const char *reason;
    const char *code; /* "too_large", "missing_timestamp", ... as in the README's table */
    char detail[256];
};

/*
 * Check a delivery at time 'now_s'. Returns true when it is authentic: 'ev'
 * holds its normalized event, marked quarantined (with code and reason)
 * when it cannot be routed as it is. Returns false with the refusal in 'r'
 * otherwise. Allocates nothing; any thread, with a verifier of its own ('v' keeps HMAC
 * state between calls).
 */
bool sy_delivery_check(struct sy_verifier *v, const struct sy_check_policy *p, int64_t now_s,
                       const struct sy_delivery_in *in, struct sy_event_norm *ev,
                       struct sy_refusal *r);

/*
 * The two halves of sy_delivery_check, for `switchyard test`, which fires
 * unsigned fixtures too: steps 2-4 (size, timestamp, signature; *ts_checked
 * says whether a timestamp was checked and may be used), and step 5 (content
 * type and normalization). Same returns as sy_delivery_check.
 */
bool sy_delivery_authenticate(struct sy_verifier *v, const struct sy_check_policy *p, int64_t now_s,
                              const struct sy_delivery_in *in, bool *ts_checked,
                              struct sy_refusal *r);
bool sy_delivery_accept(const struct sy_check_policy *p, const struct sy_delivery_in *in,
                        bool ts_checked, struct sy_event_norm *ev, struct sy_refusal *r);

#endif
