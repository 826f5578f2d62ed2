#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/retry.h"
#include "metrics.h"
#include "unizo/client.h"
#include "unizo/flow.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/record.h"

/*
 * One call in flight: its easy handle, and where it is. A call waiting for
 * its integration's slot or for its next attempt's time is on u->waiting.
 */
struct xfer {
    struct sy_unizo *u;
    CURL *easy;
    struct curl_slist *hdrs;
    struct sy_buf url, body;
    const struct sy_unizo_request *req; /* borrowed until done */
    struct sy_unizo_response *resp;
    void (*done)(void *ctx, int rc);
    void *ctx;
    int flow;             /* the integration's gate in u->flow, or -1 */
    int attempt;          /* HTTP attempts finished */
    int64_t not_before;   /* monotonic ms: the next attempt waits until then */
    double t0;            /* when the current attempt started */
    double retry_after_s; /* from the current attempt's headers; < 0 = absent */
    bool counted_waiting; /* it is counted in the flow's waiting figure */
    bool in_multi;        /* an attempt is in the multi handle (holding its gate's slot) */
    struct xfer *next;    /* on u->waiting */
    struct xfer *prev_all, *next_all; /* every call of u */
};

struct sy_unizo {
    const struct sy_config *cfg;
    struct sy_flow *flow; /* borrowed; may be NULL */
    CURLM *multi;
    unsigned seed;
    size_t in_flight; /* calls started and not done, waiting ones included */
    struct xfer *waiting, **waiting_tail;
    struct xfer *all;
};

static const struct sy_unizo_integration *find_integration(const struct sy_config *cfg,
                                                           const char *name)
{
    for (size_t i = 0; name && i < cfg->unizo.n_integrations; i++) {
        if (strcmp(cfg->unizo.integrations[i].name, name) == 0) {
            return &cfg->unizo.integrations[i];
        }
    }
    return NULL;
}

void sy_unizo_defaults(const struct sy_unizo *u, const char *integration, const char **organization,
                       const char **collection)
{
    const struct sy_unizo_integration *in = find_integration(u->cfg, integration);
    *organization = in ? in->organization : NULL;
    *collection = in ? in->collection : NULL;
}

struct sy_unizo *sy_unizo_new(const struct sy_config *cfg, struct sy_flow *flow)
{
    struct sy_unizo *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return NULL;
    }
    u->cfg = cfg;
    u->flow = flow;
    u->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)u;
    u->waiting_tail = &u->waiting;
    if (cfg->unizo.api_key != NULL && (u->multi = curl_multi_init()) == NULL) {
        free(u);
        return NULL;
    }
    return u;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sy_buf *b = arg;
    return sy_buf_append(b, data, size * n) == 0 ? size * n : 0; /* 0 aborts: over the cap */
}

/* "Retry-After: 2", "Retry-After: <HTTP-date>", "X-RateLimit-Reset-After: 1.5" */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct xfer *u = arg;
    size_t len = size * n;
    char line[256];
    if (len >= sizeof(line)) {
        return len;
    }
    memcpy(line, data, len);
    line[len] = '\0';
    char *colon = strchr(line, ':');
    if (colon == NULL) {
        return len;
    }
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    v[strcspn(v, "\r\n")] = '\0';
    double secs = -1;
    if (strcasecmp(line, "retry-after") == 0 || strcasecmp(line, "x-ratelimit-reset-after") == 0) {
        char *end = NULL;
        double d = strtod(v, &end);
        if (end != v && *end == '\0' && d >= 0) {
            secs = d;
        } else {
            time_t when = curl_getdate(v, NULL);
            if (when > 0) {
                secs = difftime(when, time(NULL));
                secs = secs < 0 ? 0 : secs;
            }
        }
    }
    if (secs >= 0 && secs > u->retry_after_s) {
        u->retry_after_s = secs;
    }
    return len;
}

static bool retryable_status(long status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

/* Record mode: one line per call with what the rule sent and got back (never the key). */
static void record(const struct sy_unizo *u, const struct sy_unizo_request *req,
                   const struct sy_unizo_response *resp)
{
    const char *dir = u->cfg->record_dir;
    if (dir == NULL || req->event_id == NULL) {
        return;
    }
    json_t *request = req->body ? json_loads(req->body, JSON_DECODE_ANY, NULL) : NULL;
    json_t *response = resp->len ? json_loadb(resp->body, resp->len, JSON_DECODE_ANY, NULL) : NULL;
    if (response == NULL && resp->body != NULL) {
        response = json_stringn(resp->body, resp->len);
    }
    json_t *line = json_pack(
        "{s:s?, s:s, s:s, s:s?, s:s, s:s?, s:o?, s:I, s:o?, s:b}", "key", req->idempotency_key,
        "method", req->method, "path", req->path, "query", req->query, "apikey", "(redacted)",
        "integration", req->integration, "request", request, "status", (json_int_t)resp->status,
        "response", response, "dry_run", resp->dry_run);
    char *s = line ? json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (s != NULL) {
        size_t n = strlen(s);
        s[n] = '\n'; /* json_dumps leaves room for the terminator it wrote */
        sy_record_exchange(dir, req->event_id, s, n + 1);
    }
    free(s);
    json_decref(line);
}

/* Nothing is sent: the answer says so, with an id rules can store ("dry-run:<key>"). */
static int dry_run(struct sy_unizo *u, const struct sy_unizo_request *req,
                   struct sy_unizo_response *resp)
{
    sy_log(SY_LOG_INFO, "unizo dry-run (no api_key): not sent", "method", req->method, "path",
           req->path, "query", req->query, "integration", req->integration, "body", req->body,
           NULL);
    struct sy_buf b;
    sy_buf_init(&b, 4096);
    char id[700];
    snprintf(id, sizeof(id), "dry-run:%s", req->idempotency_key ? req->idempotency_key : "");
    sy_buf_puts(&b, "{\"dry_run\":true,\"id\":");
    sy_buf_json_string(&b, id, strlen(id));
    sy_buf_puts(&b, "}");
    resp->dry_run = true;
    resp->status = 200;
    resp->body = b.failed ? NULL : b.data;
    resp->len = b.failed ? 0 : b.len;
    if (b.failed) {
        sy_buf_dispose(&b);
    }
    record(u, req, resp);
    return resp->body ? SY_OK : SY_ENOMEM;
}


/* Build the attempt's easy handle: the URL, the headers (never logged: one holds the key). */
static int setup(struct xfer *x)
{
    const struct sy_config *cfg = x->u->cfg;
    const struct sy_unizo_request *req = x->req;
    sy_buf_init(&x->url, 16384);
    sy_buf_printf(&x->url, "%s%s%s%s", cfg->unizo.base_url, req->path, req->query ? "?" : "",
                  req->query ? req->query : "");
    sy_buf_init(&x->body, (size_t)cfg->unizo.max_response);
    char line[1200];
    snprintf(line, sizeof(line), "apikey: %s", cfg->unizo.api_key);
    struct curl_slist *h = curl_slist_append(NULL, line);
    explicit_bzero(line, sizeof(line));
    if (req->integration != NULL) {
        const struct sy_unizo_integration *in = find_integration(cfg, req->integration);
        snprintf(line, sizeof(line), "integrationId: %s", in ? in->id : req->integration);
        h = h ? curl_slist_append(h, line) : NULL;
    }
    if (req->idempotency_key != NULL) {
        snprintf(line, sizeof(line), "Idempotency-Key: %s", req->idempotency_key);
        h = h ? curl_slist_append(h, line) : NULL;
    }
    static const char *const fixed[] = {"content-type: application/json",
                                        "accept: application/json", "expect:"};
    for (size_t i = 0; i < 3; i++) {
        h = h ? curl_slist_append(h, fixed[i]) : NULL;
    }
    x->hdrs = h;
    x->easy = curl_easy_init();
    if (h == NULL || x->easy == NULL || x->url.failed) {
        return SY_ENOMEM;
    }
    CURL *c = x->easy;
    curl_easy_setopt(c, CURLOPT_URL, x->url.data);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (req->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->body));
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_USERAGENT, "switchyard/" SY_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->unizo.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->unizo.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->unizo.max_response);
    if (cfg->unizo.ca_file != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->unizo.ca_file);
    }
    /* http_proxy, https_proxy and no_proxy are read by libcurl itself */
    return SY_OK;
}

static void xfer_free(struct xfer *x)
{
    if (x->prev_all != NULL) {
        x->prev_all->next_all = x->next_all;
    } else if (x->u->all == x) {
        x->u->all = x->next_all;
    }
    if (x->next_all != NULL) {
        x->next_all->prev_all = x->prev_all;
    }
    if (x->easy != NULL) {
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->hdrs);
    sy_buf_dispose(&x->url);
    sy_buf_dispose(&x->body);
    free(x);
}

/* The call is over with 'rc': hand the answer over and forget it. */
static void complete(struct xfer *x, int rc)
{
    struct sy_unizo *u = x->u;
    struct sy_unizo_response *resp = x->resp;
    resp->len = x->body.len;
    resp->body = x->body.data ? x->body.data : strdup("");
    x->body.data = NULL;
    x->body.len = 0;
    if (x->body.failed && resp->status != 0) {
        snprintf(resp->error, sizeof(resp->error), "the response is larger than %llu bytes",
                 (unsigned long long)u->cfg->unizo.max_response);
    }
    if (resp->body == NULL) {
        rc = SY_ENOMEM;
    }
    record(u, x->req, resp);
    u->in_flight--;
    void (*done)(void *, int) = x->done;
    void *ctx = x->ctx;
    xfer_free(x);
    done(ctx, rc);
}

/*
 * The monotonic millisecond 'ms' from now, rounded up: part of the clock's current millisecond
 * has already passed, and a wait the API asked for (Retry-After) must not end early.
 */
static int64_t mono_after(int64_t ms)
{
    return sy_mono_ms() + 1 + ms;
}

static void put_waiting(struct sy_unizo *u, struct xfer *x)
{
    x->next = NULL;
    *u->waiting_tail = x;
    u->waiting_tail = &x->next;
    if (!x->counted_waiting && x->flow >= 0) {
        sy_flow_waiting(u->flow, x->flow, 1);
        x->counted_waiting = true;
    }
}

/* Start the waiting calls whose time has come and whose integration has room. */
static void admit(struct sy_unizo *u, int64_t now, int64_t *next_check)
{
    struct xfer **pp = &u->waiting;
    while (*pp != NULL) {
        struct xfer *x = *pp;
        int64_t wait = x->not_before > now ? x->not_before - now : 0;
        if (wait == 0 && x->flow >= 0) {
            wait = sy_flow_take(u->flow, x->flow, now);
        }
        if (wait > 0) {
            *next_check = *next_check < 0 || now + wait < *next_check ? now + wait : *next_check;
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        if (*pp == NULL) {
            u->waiting_tail = pp;
        }
        if (x->counted_waiting) {
            sy_flow_waiting(u->flow, x->flow, -1);
            x->counted_waiting = false;
        }
        sy_buf_reset(&x->body);
        x->retry_after_s = -1;
        x->t0 = sy_mono_s();
        x->in_multi = curl_multi_add_handle(u->multi, x->easy) == CURLM_OK;
        if (!x->in_multi) {
            if (x->flow >= 0) {
                sy_flow_release(u->flow, x->flow);
            }
            snprintf(x->resp->error, sizeof(x->resp->error), "cannot start the transfer");
            complete(x, SY_EUNAVAIL);
        }
    }
}

/* An attempt ended: answer, or wait and try again (the API's Retry-After holds its integration). */
static void attempt_over(struct xfer *x, CURLcode cc)
{
    struct sy_unizo *u = x->u;
    const struct sy_config *cfg = u->cfg;
    const struct sy_unizo_request *req = x->req;
    struct sy_unizo_response *resp = x->resp;
    curl_multi_remove_handle(u->multi, x->easy);
    x->in_multi = false;
    double took = sy_mono_s() - x->t0;
    int attempt = x->attempt++;
    resp->attempts++;
    long status = 0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        resp->error[0] = '\0';
    } else {
        snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror(cc));
    }
    resp->status = status;
    sy_metrics_unizo(req->endpoint ? req->endpoint : "request", status, took, attempt > 0);
    int64_t hold_ms = x->retry_after_s >= 0 ? (int64_t)(x->retry_after_s * 1000.0) : -1;
    if (x->flow >= 0 && (status == 429 || (hold_ms >= 0 && retryable_status(status)))) {
        /* the API said slow down: every call to this integration waits, not only this one */
        sy_flow_hold(u->flow, x->flow, mono_after(hold_ms >= 0 ? hold_ms : 1000));
    }
    if (x->flow >= 0) {
        /* after the hold: another worker must not take the slot and send in between */
        sy_flow_release(u->flow, x->flow);
    }
    if (cc == CURLE_OK && !retryable_status(status)) {
        complete(x, SY_OK);
        return;
    }
    if (cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED ||
        cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ||
        cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_PEER_FAILED_VERIFICATION) {
        complete(x, SY_EUNAVAIL); /* not a passing condition: do not retry */
        return;
    }
    struct sy_backoff policy = {.base_ms = cfg->unizo.backoff_base_ms,
                                .cap_ms = cfg->unizo.backoff_cap_ms,
                                .max_retries = (unsigned)(cfg->unizo.attempts - 1),
                                .full_jitter = true};
    double r = (double)rand_r(&u->seed) / ((double)RAND_MAX + 1.0);
    int64_t wait_ms = sy_backoff_delay(&policy, (unsigned)attempt, r, hold_ms);
    if (wait_ms < 0) {
        complete(x, cc == CURLE_OK ? SY_OK : SY_EUNAVAIL); /* the last answer, if any */
        return;
    }
    char st[16], w[32];
    snprintf(st, sizeof(st), "%ld", status);
    snprintf(w, sizeof(w), "%.2fs", (double)wait_ms / 1000.0);
    sy_log(SY_LOG_WARN, "unizo call will be retried", "method", req->method, "path", req->path,
           "status", status ? st : NULL, "error", status ? NULL : resp->error, "wait", w, NULL);
    x->not_before = mono_after(wait_ms);
    put_waiting(u, x);
}

int sy_unizo_start(struct sy_unizo *u, const struct sy_unizo_request *req,
                   struct sy_unizo_response *resp, void (*done)(void *ctx, int rc), void *ctx)
{
    memset(resp, 0, sizeof(*resp));
    if (u->cfg->unizo.api_key == NULL) {
        return dry_run(u, req, resp);
    }
    struct xfer *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        snprintf(resp->error, sizeof(resp->error), "out of memory");
        return SY_ENOMEM;
    }
    *x = (struct xfer){.u = u,
                       .req = req,
                       .resp = resp,
                       .done = done,
                       .ctx = ctx,
                       .flow = u->flow ? sy_flow_find(u->flow, req->integration) : -1};
    if (setup(x) != SY_OK) {
        xfer_free(x);
        snprintf(resp->error, sizeof(resp->error), "out of memory");
        return SY_ENOMEM;
    }
    u->in_flight++;
    x->next_all = u->all;
    if (u->all != NULL) {
        u->all->prev_all = x;
    }
    u->all = x;
    put_waiting(u, x);
    int64_t next = -1;
    admit(u, sy_mono_ms(), &next);
    return SY_EAGAIN;
}

int sy_unizo_poll(struct sy_unizo *u, int timeout_ms)
{
    if (u->multi == NULL) {
        return 0;
    }
    int64_t now = sy_mono_ms();
    int64_t next = -1;
    admit(u, now, &next);
    int wait = timeout_ms;
    if (next >= 0 && next - now < wait) {
        wait = (int)(next - now);
    }
    int running = 0;
    curl_multi_perform(u->multi, &running);
    if (wait > 0) {
        curl_multi_poll(u->multi, NULL, 0, wait, NULL);
        curl_multi_perform(u->multi, &running);
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE) {
            struct xfer *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            attempt_over(x, m->data.result);
        }
    }
    next = -1;
    admit(u, sy_mono_ms(), &next);
    return (int)u->in_flight;
}

size_t sy_unizo_in_flight(const struct sy_unizo *u)
{
    return u->in_flight;
}

struct blocking {
    bool done;
    int rc;
};

static void blocking_done(void *ctx, int rc)
{
    struct blocking *b = ctx;
    b->done = true;
    b->rc = rc;
}

int sy_unizo_call(struct sy_unizo *u, const struct sy_unizo_request *req,
                  struct sy_unizo_response *resp)
{
    struct blocking b = {0};
    int rc = sy_unizo_start(u, req, resp, blocking_done, &b);
    if (rc != SY_EAGAIN) {
        return rc;
    }
    while (!b.done) {
        sy_unizo_poll(u, 100); /* the other calls in flight go on meanwhile */
    }
    return b.rc;
}

void sy_unizo_free(struct sy_unizo *u)
{
    if (u == NULL) {
        return;
    }
    /* calls still in flight (a stop past its grace) are dropped: their jobs stay pending */
    while (u->all != NULL) {
        struct xfer *x = u->all;
        if (x->counted_waiting) {
            sy_flow_waiting(u->flow, x->flow, -1);
        }
        if (x->in_multi) {
            curl_multi_remove_handle(u->multi, x->easy);
            if (x->flow >= 0) {
                sy_flow_release(u->flow, x->flow); /* the gate is the instance's: give it back */
            }
        }
        xfer_free(x);
    }
    if (u->multi != NULL) {
        curl_multi_cleanup(u->multi);
    }
    free(u);
}
