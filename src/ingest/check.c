#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ingest/check.h"

static bool refuse(struct sy_refusal *r, int status, const char *reason, const char *code,
                   const char *detail)
{
    r->status = status;
    r->reason = reason;
    r->code = code;
    snprintf(r->detail, sizeof(r->detail), "%s", detail);
    return false;
}

/* True for application/json and application/<something>+json, parameters allowed. */
static bool json_content_type(const char *v, size_t len)
{
    const char *semi = memchr(v, ';', len);
    if (semi != NULL) {
        len = (size_t)(semi - v);
    }
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }
    if (len == 16 && strncasecmp(v, "application/json", 16) == 0) {
        return true;
    }
    return len > 17 && strncasecmp(v, "application/", 12) == 0 &&
           strncasecmp(v + len - 5, "+json", 5) == 0;
}

bool sy_delivery_authenticate(struct sy_verifier *v, const struct sy_check_policy *p, int64_t now_s,
                              const struct sy_delivery_in *in, bool *ts_checked,
                              struct sy_refusal *r)
{
    *ts_checked = false;
    /* 2. size */
    if (in->body_len > p->max_body) {
        char detail[128];
        snprintf(detail, sizeof(detail), "the body is %zu bytes; the limit is %llu", in->body_len,
                 (unsigned long long)p->max_body);
        return refuse(r, 413, "Payload Too Large", "too_large", detail);
    }

    /* 3. timestamp: required when the signature covers it; checked whenever it is sent */
    if (in->timestamp.n > 1) {
        return refuse(r, 401, "Unauthorized", "stale_timestamp",
                      "x-unizo-timestamp is sent more than once");
    }
    const char *ts = in->timestamp.n == 1 ? in->timestamp.v[0] : NULL;
    size_t ts_len = ts ? in->timestamp.len[0] : 0;
    switch (sy_timestamp_check(ts, ts_len, now_s, p->tolerance_s)) {
    case SY_TS_MISSING:
        if (p->form == SY_SIGNED_TS_BODY) {
            return refuse(r, 401, "Unauthorized", "missing_timestamp",
                          "the x-unizo-timestamp header is missing");
        }
        ts = NULL; /* the body alone is signed: no window to check */
        break;
    case SY_TS_INVALID:
        return refuse(r, 401, "Unauthorized", "stale_timestamp",
                      "x-unizo-timestamp must be a Unix time in whole seconds");
    case SY_TS_STALE:
        return refuse(r, 401, "Unauthorized", "stale_timestamp",
                      "x-unizo-timestamp is outside the allowed window; check the sender's clock");
    default:
        break;
    }

    /* 4. signature: every line of the header contributes candidates */
    if (in->signature.n == 0) {
        return refuse(r, 401, "Unauthorized", "missing_signature",
                      "the x-unizo-signature header is missing");
    }
    struct sy_sig_candidates cands = {.n = 0};
    for (size_t i = 0; i < in->signature.n && i < SY_CHECK_MAX_VALUES; i++) {
        struct sy_sig_candidates more;
        sy_signature_parse(in->signature.v[i], in->signature.len[i], &more);
        for (size_t k = 0; k < more.n && cands.n < SY_SIG_MAX_CANDIDATES; k++) {
            memcpy(cands.mac[cands.n++], more.mac[k], 32);
        }
    }
    bool good = false;
    if (cands.n > 0 && ts != NULL && p->form != SY_SIGNED_BODY) {
        good = sy_verifier_check(v, ts, ts_len, in->body, in->body_len, &cands);
    }
    if (cands.n > 0 && !good && p->form != SY_SIGNED_TS_BODY) {
        good = sy_verifier_check(v, NULL, 0, in->body, in->body_len, &cands);
    }
    if (!good) {
        return refuse(r, 401, "Unauthorized", "invalid_signature",
                      cands.n == 0 ? "x-unizo-signature holds no 64-digit hex HMAC-SHA256"
                      : p->form == SY_SIGNED_BODY ? "the signature does not match the body"
                                                  : "the signature does not match the body and "
                                                    "timestamp");
    }

    *ts_checked = ts != NULL;
    return true;
}

bool sy_delivery_accept(const struct sy_check_policy *p, const struct sy_delivery_in *in,
                        bool ts_checked, struct sy_event_norm *ev, struct sy_refusal *r)
{
    const char *ts = ts_checked && in->timestamp.n == 1 ? in->timestamp.v[0] : NULL;
    size_t ts_len = ts ? in->timestamp.len[0] : 0;
    struct sy_delivery d = {.body = in->body,
                            .body_len = in->body_len,
                            .category = in->category,
                            .category_len = in->category_len,
                            .timestamp = ts,
                            .timestamp_len = ts_len};
    if (in->event_type.n == 1) {
        d.event_type = in->event_type.v[0];
        d.event_type_len = in->event_type.len[0];
    }
    if (in->delivery_id.n == 1) {
        d.delivery_id = in->delivery_id.v[0];
        d.delivery_id_len = in->delivery_id.len[0];
    }
    sy_delivery_normalize(&d, ev);
    bool json_type = in->content_type.n >= 1 &&
                     json_content_type(in->content_type.v[0], in->content_type.len[0]);
    if (p->reject_invalid && !json_type) {
        return refuse(r, 415, "Unsupported Media Type", "unsupported_media_type",
                      "content-type must be application/json");
    }
    if (p->reject_invalid && ev->quarantined) {
        return refuse(r, 400, "Bad Request",
                      strcmp(ev->code, "invalid_json") == 0 ? "invalid_json" : "invalid_event",
                      ev->reason);
    }
    if (!json_type && !ev->quarantined) {
        ev->quarantined = true;
        ev->code = "unsupported_media_type";
        snprintf(ev->reason, sizeof(ev->reason), "content-type must be application/json, got %.*s",
                 in->content_type.n
                     ? (int)(in->content_type.len[0] > 60 ? 60 : in->content_type.len[0])
                     : 4,
                 in->content_type.n ? in->content_type.v[0] : "none");
    }
    return true;
}

bool sy_delivery_check(struct sy_verifier *v, const struct sy_check_policy *p, int64_t now_s,
                       const struct sy_delivery_in *in, struct sy_event_norm *ev,
                       struct sy_refusal *r)
{
    bool ts_checked;
    return sy_delivery_authenticate(v, p, now_s, in, &ts_checked, r) &&
           sy_delivery_accept(p, in, ts_checked, ev, r);
}
