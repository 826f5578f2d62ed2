#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <strings.h>
#include <time.h>

#include "engine/alerts.h"
#include "engine/engine.h"
#include "http/internal.h"
#include "ingest/cidr.h"
#include "ingest/check.h"
#include "ingest/delivery.h"
#include "ingest/verify.h"
#include "metrics.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/record.h"

/*
 * A request waiting for the store. Allocated on the loop thread, handed to
 * the store's writer, and returned through the loop's done_rx receiver; only
 * the loop thread touches 'req'.
 */
struct sy_pending {
    h2o_multithread_message_t msg;
    struct sy_append append;
    struct sy_loop *loop;
    h2o_req_t *req;      /* NULL once the client went away */
    struct guard *guard; /* lives in req's pool */
    double t0;
    char peer[INET6_ADDRSTRLEN];
    char data[]; /* id, type, integration, headers, body */
};

/* Allocated in the request's pool: tells a pending request that 'req' is gone. */
struct guard {
    struct sy_pending *p;
};

static void finish(enum sy_result r, int status, const char *id, size_t idlen, double t0,
                   const char *peer)
{
    sy_metrics_add(&sy_metrics.requests[r], 1);
    if (sy_log_enabled(SY_LOG_INFO)) {
        sy_log_request(sy_result_name(r), status, id, idlen, (sy_mono_s() - t0) * 1000.0, peer);
    }
}

/* finish() for an answer from the store: its line is held until the batch's lines are written. */
static void finish_held(struct sy_loop *lp, enum sy_result r, int status, const char *id,
                        size_t idlen, double t0, const char *peer)
{
    sy_metrics_add(&sy_metrics.requests[r], 1);
    if (sy_log_enabled(SY_LOG_INFO)) {
        sy_log_request_hold(&lp->log_held, sy_result_name(r), status, id, idlen,
                            (sy_mono_s() - t0) * 1000.0, peer);
    }
}

static int reject(h2o_req_t *req, int status, const char *reason, enum sy_result r,
                  const char *detail, double t0, const char *peer)
{
    if (status == 503) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    }
    sy_http_send_error(req, status, reason, sy_result_name(r), detail);
    finish(r, status, NULL, 0, t0, peer);
    return 0;
}

static void send_status(h2o_req_t *req, const char *status, const char *id, size_t idlen,
                        const char *detail)
{
    struct sy_buf *b = sy_scratch(SY_SCRATCH_HTTP, 16 * 1024);
    if (b == NULL) {
        sy_http_send(req, 503, "Service Unavailable", "application/json", "{}", 2);
        return;
    }
    sy_buf_reset(b);
    sy_buf_puts(b, "{\"status\":\"");
    sy_buf_puts(b, status);
    sy_buf_puts(b, "\",\"id\":");
    sy_buf_json_string(b, id, idlen);
    if (detail != NULL) {
        sy_buf_puts(b, ",\"detail\":");
        sy_buf_json_string(b, detail, strlen(detail));
    }
    sy_buf_puts(b, "}");
    sy_http_send(req, 200, "OK", "application/json", b->data, b->len);
}

static void on_guard_dispose(void *ptr)
{
    struct guard *g = ptr;
    if (g->p != NULL) {
        g->p->req = NULL;
    }
}

/* Store writer thread: hand the result back to the request's loop. */
static void on_stored(struct sy_append *a)
{
    struct sy_pending *p = H2O_STRUCT_FROM_MEMBER(struct sy_pending, append, a);
    h2o_multithread_send_message(&p->loop->done_rx, &p->msg);
}

/* Tell the rules a delivery was quarantined (switchyard.event.quarantined), once per event. */
static void alert_quarantined(struct sy_store *st, const struct sy_append *a)
{
    char id[SY_ALERT_ID_MAX];
    const char *parts[] = {a->id}; /* NUL-terminated: the append's text is */
    sy_alert_make_id(id, "quarantined", parts, 1);
    json_t *data = json_pack("{s:s%, s:s}", "event_id", a->id, a->id_len, "reason", a->reason);
    sy_alert_emit(st, "switchyard.event.quarantined", id, data);
}

/* What the store said of a pending request, as the result counted and logged. */
static enum sy_result stored_result(const struct sy_append *a)
{
    if (a->status != SY_OK) {
        return SY_R_UNAVAILABLE;
    }
    return !a->is_new ? SY_R_DUPLICATE : a->reason != NULL ? SY_R_QUARANTINED : SY_R_ACCEPTED;
}

/* Answer one stored request (the client is still there) and free it. */
static void answer_stored(struct sy_loop *lp, struct sy_pending *p)
{
    struct sy_append *a = &p->append;
    h2o_req_t *req = p->req;
    enum sy_result r = stored_result(a);
    if (req == NULL) {
        /* the client went away; stored all the same, the sender will retry and get "duplicate" */
    } else if (r == SY_R_UNAVAILABLE) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        sy_http_send_error(req, 503, "Service Unavailable", sy_result_name(r),
                           "the event could not be stored; retry later");
    } else {
        if (a->is_new && lp->srv->cfg->record_dir != NULL) {
            sy_record_delivery(lp->srv->cfg->record_dir, a->type, a->type_len, a->id, a->id_len,
                               a->category, a->headers, a->headers_len, a->body, a->body_len);
        }
        send_status(req,
                    r == SY_R_DUPLICATE     ? "duplicate"
                    : r == SY_R_QUARANTINED ? "quarantined"
                                            : "accepted",
                    a->id, a->id_len, r == SY_R_QUARANTINED ? a->reason : NULL);
        if (r == SY_R_QUARANTINED) {
            sy_log(SY_LOG_WARN, "delivery quarantined: authentic, stored, not routable", "id",
                   a->id, "reason", a->reason, NULL);
            if (sy_engine_wants(lp->srv->engine, "switchyard.event.quarantined")) {
                alert_quarantined(lp->srv->store, a);
            }
        }
    }
    free(p);
    __atomic_fetch_sub(&lp->srv->inflight, 1, __ATOMIC_RELEASE);
}

/*
 * A batch of requests the store has answered. Their request lines are
 * written first, with one write(2) for the batch, then the answers go out:
 * a client that has its answer finds its line already in the log.
 */
void sy_webhook_on_done(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    struct sy_loop *lp = H2O_STRUCT_FROM_MEMBER(struct sy_loop, done_rx, rx);
    for (h2o_linklist_t *l = messages->next; l != messages; l = l->next) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, l);
        struct sy_pending *p = H2O_STRUCT_FROM_MEMBER(struct sy_pending, msg, m);
        const struct sy_append *a = &p->append;
        enum sy_result r = stored_result(a);
        bool ok = r != SY_R_UNAVAILABLE;
        int status = p->req == NULL ? 0 : ok ? 200 : 503;
        if (p->req != NULL) {
            p->guard->p = NULL; /* from here on, the request's pool outlives this answer */
        }
        if (p->req != NULL || ok) {
            finish_held(lp, r, status, ok ? a->id : NULL, ok ? a->id_len : 0, p->t0, p->peer);
        }
    }
    sy_log_flush(&lp->log_held);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        answer_stored(lp, H2O_STRUCT_FROM_MEMBER(struct sy_pending, msg, m));
    }
}

/* The headers worth keeping with the event, as a JSON object (for replay and record mode). */
static void kept_headers(h2o_req_t *req, struct sy_buf *b)
{
    sy_buf_puts(b, "{");
    bool first = true;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        const h2o_iovec_t *name = h->name;
        bool keep = (name->len > 8 && strncmp(name->base, "x-unizo-", 8) == 0) ||
                    h->name == &H2O_TOKEN_CONTENT_TYPE->buf ||
                    h->name == &H2O_TOKEN_USER_AGENT->buf;
        if (!keep) {
            continue;
        }
        if (!first) {
            sy_buf_puts(b, ",");
        }
        first = false;
        sy_buf_json_string(b, name->base, name->len);
        sy_buf_puts(b, ":");
        sy_buf_json_string(b, h->value.base, h->value.len);
    }
    sy_buf_puts(b, "}");
}

/* Copy 'len' bytes of 'src' to *w, NUL-terminated; returns the copy and moves *w past it. */
static const char *put(char **w, const char *src, size_t len)
{
    char *at = *w;
    memcpy(at, src, len);
    at[len] = '\0';
    *w += len + 1;
    return at;
}

static int submit(h2o_req_t *req, struct sy_loop *lp, const struct sy_event_norm *ev, double t0,
                  const char *peer)
{
    struct sy_buf *hdrs = sy_scratch(SY_SCRATCH_HEADERS, 256 * 1024);
    if (hdrs == NULL) {
        return reject(req, 503, "Service Unavailable", SY_R_UNAVAILABLE, "out of memory", t0, peer);
    }
    sy_buf_reset(hdrs);
    kept_headers(req, hdrs);
    if (hdrs->failed) {
        return reject(req, 400, "Bad Request", SY_R_INVALID_EVENT, "headers are too large", t0,
                      peer);
    }
    size_t hlen = hdrs->len;
    /* the normalized envelope goes after the headers in the same scratch buffer */
    sy_event_norm_json(ev, hdrs);
    if (hdrs->failed) {
        return reject(req, 503, "Service Unavailable", SY_R_UNAVAILABLE, "out of memory", t0, peer);
    }
    size_t nlen = hdrs->len - hlen;
    size_t itype = strlen(ev->integration_type), cat = strlen(ev->category);
    size_t rlen = ev->quarantined ? strlen(ev->reason) : 0;
    size_t need = ev->id_len + ev->type_len + itype + cat + rlen + hdrs->len + req->entity.len + 8;
    struct sy_pending *p = malloc(sizeof(*p) + need);
    if (p == NULL) {
        return reject(req, 503, "Service Unavailable", SY_R_UNAVAILABLE, "out of memory", t0, peer);
    }
    memset(p, 0, sizeof(*p));
    char *w = p->data;
    struct sy_append *a = &p->append;
    a->id = put(&w, ev->id, ev->id_len);
    a->id_len = ev->id_len;
    a->type = put(&w, ev->type, ev->type_len);
    a->type_len = ev->type_len;
    a->integration = itype ? put(&w, ev->integration_type, itype) : NULL;
    a->category = cat ? put(&w, ev->category, cat) : NULL;
    a->reason = ev->quarantined ? put(&w, ev->reason, rlen) : NULL;
    a->headers = put(&w, hdrs->data, hlen);
    a->headers_len = hlen;
    a->norm = put(&w, hdrs->data + hlen, nlen);
    a->norm_len = nlen;
    a->body = put(&w, req->entity.base ? req->entity.base : "", req->entity.len);
    a->body_len = req->entity.len;
    a->received_ms = sy_wall_ms();
    a->done = on_stored;
    p->loop = lp;
    p->req = req;
    p->t0 = t0;
    snprintf(p->peer, sizeof(p->peer), "%s", peer);
    p->guard = h2o_mem_alloc_shared(&req->pool, sizeof(struct guard), on_guard_dispose);
    p->guard->p = p;

    __atomic_fetch_add(&lp->srv->inflight, 1, __ATOMIC_ACQ_REL);
    int rc = sy_store_submit(lp->srv->store, a);
    if (rc != SY_OK) {
        __atomic_fetch_sub(&lp->srv->inflight, 1, __ATOMIC_RELEASE);
        p->guard->p = NULL;
        free(p);
        return reject(req, 503, "Service Unavailable", SY_R_UNAVAILABLE,
                      rc == SY_EFULL ? "the store's write queue is full; retry later"
                                     : "the store is unavailable; retry later",
                      t0, peer);
    }
    return 0;
}

/* Every line of header 'name', in order (the count goes on past what is kept). */
static void header_values(h2o_req_t *req, const char *name, size_t len,
                          struct sy_header_values *out)
{
    out->n = 0;
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, name, len, i)) >= 0;) {
        if (out->n < SY_CHECK_MAX_VALUES) {
            out->v[out->n] = req->headers.entries[i].value.base;
            out->len[out->n] = req->headers.entries[i].value.len;
        }
        out->n++;
    }
}

/*
 * Every X-Forwarded-For line as one list, in the order received (RFC 7230: lines of a
 * list header are one comma-joined value). A proxy appends its own line after the
 * client's, so reading only the first would let the client's forged line decide.
 */
static h2o_iovec_t forwarded_for(h2o_req_t *req)
{
    ssize_t first = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, -1);
    if (first < 0) {
        return h2o_iovec_init(NULL, 0);
    }
    size_t total = 0, lines = 0;
    for (ssize_t i = first; i >= 0;
         i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, i)) {
        total += req->headers.entries[i].value.len + 1;
        lines++;
    }
    if (lines == 1) {
        return req->headers.entries[first].value;
    }
    char *buf = h2o_mem_alloc_pool(&req->pool, total);
    size_t n = 0;
    for (ssize_t i = first; i >= 0;
         i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, i)) {
        const h2o_iovec_t *v = &req->headers.entries[i].value;
        if (n > 0) {
            buf[n++] = ',';
        }
        memcpy(buf + n, v->base, v->len);
        n += v->len;
    }
    return h2o_iovec_init(buf, n);
}

int sy_webhook_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    double t0 = sy_mono_s();
    struct sy_loop *lp = sy_loop_of(req);
    const struct sy_config *cfg = lp->srv->cfg;
    char peer[INET6_ADDRSTRLEN] = "";

    /* who is asking (logged with every answer) */
    struct sockaddr_storage ss;
    struct sy_addr paddr = {0}, client = {0};
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    bool have_peer = sl > 0 && sy_addr_from_sockaddr((struct sockaddr *)&ss, &paddr);
    if (have_peer) {
        h2o_iovec_t xff = forwarded_for(req);
        sy_client_addr(&paddr, xff.base, xff.len, cfg->webhook.trusted_proxies,
                       cfg->webhook.n_trusted_proxies, &client);
        sy_addr_format(&client, peer, sizeof(peer));
    }

    /* the webhook path, or one endpoint per category under it (/webhooks/unizo/scm) */
    size_t plen = strlen(cfg->webhook.path);
    const h2o_iovec_t *path = &req->path_normalized;
    const char *category = NULL;
    size_t category_len = 0;
    if (path->len < plen || memcmp(path->base, cfg->webhook.path, plen) != 0) {
        return reject(req, 404, "Not Found", SY_R_NOT_FOUND, "no such endpoint", t0, peer);
    }
    if (path->len > plen) {
        category = path->base + plen + 1;
        category_len = path->len - plen - 1;
        if (path->base[plen] != '/' || !sy_category_valid(category, category_len)) {
            return reject(req, 404, "Not Found", SY_R_NOT_FOUND, "no such endpoint", t0, peer);
        }
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        return reject(req, 405, "Method Not Allowed", SY_R_METHOD_NOT_ALLOWED,
                      "webhooks are delivered with POST", t0, peer);
    }

    /* 1. client address */
    if (cfg->webhook.n_allow > 0 &&
        (!have_peer || !sy_cidr_list_contains(cfg->webhook.allow, cfg->webhook.n_allow, &client))) {
        char detail[128];
        snprintf(detail, sizeof(detail), "address %s is not allowed", peer[0] ? peer : "unknown");
        return reject(req, 403, "Forbidden", SY_R_FORBIDDEN_IP, detail, t0, peer);
    }

    /* 2-5. size, timestamp, signature, content type and shape: the one delivery check */
    struct sy_delivery_in in = {.body = req->entity.base ? req->entity.base : "",
                                .body_len = req->entity.len,
                                .category = category,
                                .category_len = category_len};
    header_values(req, H2O_STRLIT("x-unizo-timestamp"), &in.timestamp);
    header_values(req, H2O_STRLIT("x-unizo-signature"), &in.signature);
    header_values(req, H2O_STRLIT("x-unizo-event-type"), &in.event_type);
    header_values(req, H2O_STRLIT("x-unizo-delivery-id"), &in.delivery_id);
    header_values(req, H2O_STRLIT("content-type"), &in.content_type);
    struct sy_check_policy policy = {.form = cfg->webhook.signed_payload,
                                     .tolerance_s = cfg->webhook.tolerance_s,
                                     .max_body = cfg->webhook.max_body,
                                     .reject_invalid = cfg->webhook.reject_invalid};
    struct sy_event_norm *ev = h2o_mem_alloc_pool(&req->pool, sizeof(*ev));
    struct sy_refusal refusal;
    if (!sy_delivery_check(lp->verifier, &policy, (int64_t)time(NULL), &in, ev, &refusal)) {
        return reject(req, refusal.status, refusal.reason, sy_result_from_name(refusal.code),
                      refusal.detail, t0, peer);
    }

    /* 7. dedupe + durable append; the answer comes from sy_webhook_on_done */
    return submit(req, lp, ev, t0, peer);
}
