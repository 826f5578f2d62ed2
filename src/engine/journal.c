#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/journal.h"
#include "metrics.h"
#include "unizo/request.h"
#include "util/clock.h"
#include "util/log.h"

void sy_journal_init(struct sy_journal *j, const char *event_id, const char *handler,
                     sy_send_fn send, void *send_ctx)
{
    memset(j, 0, sizeof(*j));
    j->event_id = event_id;
    j->handler = handler;
    j->attempt = 1;
    j->send = send;
    j->send_ctx = send_ctx;
}

void sy_journal_set_prior(struct sy_journal *j, struct sy_call_record *prior, size_t n, int runs)
{
    sy_call_records_free(j->prior, j->n_prior);
    j->prior = prior;
    j->n_prior = n;
    int last = runs;
    for (size_t i = 0; i < n; i++) {
        /* an attempt cut short by a crash left records but was never counted */
        last = prior[i].attempt > last ? prior[i].attempt : last;
    }
    j->attempt = last + 1;
}

void sy_journal_dispose(struct sy_journal *j)
{
    sy_call_records_free(j->prior, j->n_prior);
    j->prior = NULL;
    j->n_prior = 0;
}

/* An earlier attempt's successful n-th call with this method and path, or NULL. */
static const struct sy_call_record *earlier_answer(const struct sy_journal *j, int n,
                                                   const char *method, const char *path)
{
    for (size_t i = 0; i < j->n_prior; i++) {
        const struct sy_call_record *r = &j->prior[i];
        if (r->n == n && r->attempt < j->attempt && r->status >= 200 && r->status <= 299 &&
            !r->truncated && strcmp(r->method, method) == 0 && strcmp(r->path, path) == 0) {
            return r;
        }
    }
    return NULL;
}

static char *dup_bounded(const char *s, size_t len, size_t max, bool *truncated)
{
    if (s == NULL) {
        return NULL;
    }
    if (len > max) {
        len = max;
        *truncated = true;
    }
    char *p = malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void keep_record(struct sy_journal *j, const struct sy_unizo_request *req,
                        const struct sy_unizo_response *resp, const char *key, bool replayed,
                        int64_t at_ms, double ms)
{
    if (j->keep == NULL) {
        return;
    }
    struct sy_call_record *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return;
    }
    bool request_cut = false;
    r->attempt = j->attempt;
    r->n = j->n;
    r->key = strdup(key);
    r->method = strdup(req->method);
    r->path = strdup(req->path);
    r->request = req->body
                     ? dup_bounded(req->body, strlen(req->body), SY_JOURNAL_MAX_BODY, &request_cut)
                     : NULL;
    r->status = resp->status;
    r->response =
        dup_bounded(resp->body ? resp->body : "", resp->len, SY_JOURNAL_MAX_BODY, &r->truncated);
    r->response_len =
        r->response ? (resp->len > SY_JOURNAL_MAX_BODY ? SY_JOURNAL_MAX_BODY : resp->len) : 0;
    r->replayed = replayed;
    r->dry_run = resp->dry_run;
    r->error = resp->status == 0 && resp->error[0] ? strdup(resp->error) : NULL;
    r->at_ms = at_ms;
    r->ms = ms;
    if (r->key == NULL || r->method == NULL || r->path == NULL) {
        sy_call_record_free(r);
        return;
    }
    j->keep(j->keep_ctx, r);
}

/*
 * Append 's' with every byte that is not visible ASCII, and '%', percent-encoded: an
 * event id is the sender's text, and a CR or LF in it must never end the header it is
 * sent in. Returns the new length (the output is cut, never overrun, at cap).
 */
static size_t put_encoded(char *out, size_t n, size_t cap, const char *s)
{
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c > 0x20 && c < 0x7f && c != '%') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = "0123456789ABCDEF"[c >> 4];
            out[n++] = "0123456789ABCDEF"[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/* One block holding every string of 'req'; c->req points into it. */
static int copy_request(struct sy_journal_call *c, const struct sy_unizo_request *req)
{
    const char *in[] = {req->method, req->path,     req->query,
                        req->body,   req->integration, req->endpoint};
    size_t total = 0;
    for (size_t i = 0; i < 6; i++) {
        total += in[i] ? strlen(in[i]) + 1 : 0;
    }
    c->copy = malloc(total ? total : 1);
    if (c->copy == NULL) {
        return SY_ENOMEM;
    }
    const char *out[6];
    char *p = c->copy;
    for (size_t i = 0; i < 6; i++) {
        out[i] = NULL;
        if (in[i] != NULL) {
            size_t len = strlen(in[i]) + 1;
            memcpy(p, in[i], len);
            out[i] = p;
            p += len;
        }
    }
    c->req = (struct sy_unizo_request){.method = out[0],
                                       .path = out[1],
                                       .query = out[2],
                                       .body = out[3],
                                       .integration = out[4],
                                       .endpoint = out[5]};
    return SY_OK;
}

int sy_journal_begin(struct sy_journal *j, const struct sy_unizo_request *req,
                     struct sy_journal_call *c, struct sy_unizo_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    c->copy = NULL;
    if (sy_unizo_request_check(req, resp->error, sizeof(resp->error)) != SY_OK) {
        return SY_EINVAL; /* nothing is sent, journaled or numbered: the caller gets the reason */
    }
    if (copy_request(c, req) != SY_OK) {
        snprintf(resp->error, sizeof(resp->error), "out of memory");
        return SY_ENOMEM;
    }
    j->n++;
    size_t kn = put_encoded(c->key, 0, sizeof(c->key), j->event_id ? j->event_id : "-");
    c->key[kn++] = '/';
    kn = put_encoded(c->key, kn, sizeof(c->key), j->handler ? j->handler : "-");
    snprintf(c->key + kn, sizeof(c->key) - kn, "/%d", j->n);
    c->req.idempotency_key = c->key;
    c->req.event_id = j->event_id;
    c->at_ms = sy_wall_ms();
    c->t0 = sy_mono_s();
    const struct sy_call_record *hit = earlier_answer(j, j->n, req->method, req->path);
    if (hit == NULL) {
        return SY_EAGAIN;
    }
    resp->status = hit->status;
    resp->dry_run = hit->dry_run;
    resp->len = hit->response_len;
    resp->body = malloc(hit->response_len + 1);
    if (resp->body == NULL) {
        free(c->copy);
        c->copy = NULL;
        return SY_ENOMEM;
    }
    memcpy(resp->body, hit->response ? hit->response : "", hit->response_len);
    resp->body[hit->response_len] = '\0';
    j->replayed++;
    char was[16];
    snprintf(was, sizeof(was), "%d", hit->attempt);
    sy_log(SY_LOG_INFO, "unizo call replayed from the journal; not sent", "rule", j->handler,
           "event", j->event_id, "method", req->method, "path", req->path, "key", c->key,
           "answered_in_attempt", was, NULL);
    sy_metrics_add(&sy_metrics.unizo_replayed, 1);
    keep_record(j, &c->req, resp, c->key, true, c->at_ms, (sy_mono_s() - c->t0) * 1000.0);
    free(c->copy);
    c->copy = NULL;
    return SY_OK;
}

void sy_journal_end(struct sy_journal *j, struct sy_journal_call *c,
                    const struct sy_unizo_response *resp)
{
    keep_record(j, &c->req, resp, c->key, false, c->at_ms, (sy_mono_s() - c->t0) * 1000.0);
    free(c->copy);
    c->copy = NULL;
}

int sy_journal_call(struct sy_journal *j, const struct sy_unizo_request *req,
                    struct sy_unizo_response *resp)
{
    struct sy_journal_call c;
    int rc = sy_journal_begin(j, req, &c, resp);
    if (rc != SY_EAGAIN) {
        return rc;
    }
    rc = j->send(j->send_ctx, &c.req, resp);
    sy_journal_end(j, &c, resp);
    return rc;
}
