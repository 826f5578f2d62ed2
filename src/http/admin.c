#include <string.h>

#include <openssl/crypto.h>

#include <stdlib.h>

#include <jansson.h>

#include "engine/engine.h"
#include "http/internal.h"
#include "http/overview.h"
#include "store/filter.h"
#include "store/inspect.h"
#include "util/parse.h"
#include "metrics.h"
#include "util/buf.h"
#include "util/clock.h"

int sy_admin_method_not_allowed(h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    char detail[32];
    snprintf(detail, sizeof(detail), "use %s", allow);
    sy_http_send_error(req, 405, "Method Not Allowed", "method_not_allowed", detail);
    return 0;
}

/* True when the request carries "Authorization: Bearer <token>" (constant-time compare). */
static bool authorized(h2o_req_t *req, const char *token)
{
    if (token == NULL) {
        return true;
    }
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0) {
        return false;
    }
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t tlen = strlen(token);
    if (v.len != 7 + tlen || strncasecmp(v.base, "Bearer ", 7) != 0) {
        return false;
    }
    return CRYPTO_memcmp(v.base + 7, token, tlen) == 0;
}

static bool path_is(h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

void sy_admin_send_json(h2o_req_t *req, int status, const char *reason, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (s == NULL) {
        sy_http_send_error(req, 500, "Internal Server Error", "internal", "out of memory");
        return;
    }
    sy_http_send(req, status, reason, "application/json", s, strlen(s));
    free(s);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decode %XX escapes of a path segment into out (NUL-terminated); false when malformed. */
static bool url_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (n + 1 >= cap) {
            return false;
        }
        if (s[i] == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return false;
            }
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
            continue;
        }
        out[n++] = s[i] == '+' ? ' ' : s[i];
    }
    out[n] = '\0';
    return true;
}

/*
 * Query parameter 'name' of the request, decoded into out: 1, or 0 when absent,
 * or -1 when it is malformed or longer than 'cap'.
 */
static int query_value(h2o_req_t *req, const char *name, char *out, size_t cap)
{
    if (req->query_at == SIZE_MAX) {
        return 0;
    }
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1, nlen = strlen(name);
    for (size_t i = 0; i < qlen;) {
        size_t end = i;
        while (end < qlen && q[end] != '&') {
            end++;
        }
        if (end - i > nlen && q[i + nlen] == '=' && memcmp(q + i, name, nlen) == 0) {
            return url_decode(q + i + nlen + 1, end - i - nlen - 1, out, cap) ? 1 : -1;
        }
        i = end + 1;
    }
    return 0;
}

/* Value of query parameter 'name', decoded into out; false when absent or malformed. */
static bool query_param(h2o_req_t *req, const char *name, char *out, size_t cap)
{
    return query_value(req, name, out, cap) == 1;
}

/* An optional filter parameter: *dst is out (or NULL when absent or empty); false when malformed. */
static bool filter_param(h2o_req_t *req, const char *name, char *out, size_t cap,
                         const char **dst)
{
    int rc = query_value(req, name, out, cap);
    *dst = rc == 1 && out[0] ? out : NULL;
    return rc >= 0;
}

/* A time parameter: milliseconds since the epoch, or what sy_parse_time_ms reads. */
static bool time_param(h2o_req_t *req, const char *name, int64_t *out)
{
    char v[64];
    *out = 0;
    if (!query_param(req, name, v, sizeof(v))) {
        return true;
    }
    return sy_parse_int64(v, strlen(v), out) || sy_parse_time_ms(v, sy_wall_ms(), out);
}

/*
 * A store read's answer: its body, 503 store_unavailable when the store failed (SY_EIO), or
 * 'status' with 'error' when the request was at fault (a bad filter, an unknown id).
 */
static void answer_read(struct sy_admin_answer *out, json_t *body, const struct sy_error *err,
                        int status, const char *error)
{
    if (body != NULL) {
        out->status = 200;
        out->body = body;
        return;
    }
    char msg[1024];
    sy_error_format(err, msg, sizeof(msg));
    if (err->code == SY_EIO) {
        status = 503;
        error = "store_unavailable";
    }
    sy_admin_answer_error(out, status, error, "%s", msg);
}

/* A list request as the loop read it, for the worker: the filter points into the copy. */
struct list_arg {
    struct sy_event_filter f;
    char state[32], type[256], integration[128], category[128], text[SY_LIST_TEXT_MAX + 1];
    char cursor[SY_CURSOR_MAX + 1];
};

static void list_work(struct sy_server *srv, void *p, struct sy_admin_answer *out)
{
    struct list_arg *a = p;
    struct sy_error err = {0};
    answer_read(out, sy_store_list(srv->store, &a->f, &err), &err, 400, "invalid_request");
}

/*
 * GET /admin/events?state=&type=&integration=&category=&since=&until=&q=&cursor=&limit=:
 * a page of the list (store/filter.h), {"events": [...], "next": cursor or null}.
 */
static int list_events(h2o_req_t *req, struct sy_server *srv)
{
    struct list_arg *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        sy_http_send_error(req, 503, "Service Unavailable", "unavailable", "out of memory");
        return 0;
    }
    struct sy_event_filter *f = &a->f;
    char limit[16];
    bool ok = filter_param(req, "state", a->state, sizeof(a->state), &f->state);
    if (ok && f->state == NULL) {
        ok = filter_param(req, "status", a->state, sizeof(a->state), &f->state); /* older name */
    }
    ok = ok && filter_param(req, "type", a->type, sizeof(a->type), &f->type) &&
         filter_param(req, "integration", a->integration, sizeof(a->integration),
                      &f->integration) &&
         filter_param(req, "category", a->category, sizeof(a->category), &f->category) &&
         filter_param(req, "q", a->text, sizeof(a->text), &f->text) &&
         filter_param(req, "cursor", a->cursor, sizeof(a->cursor), &f->cursor);
    int64_t lim = 50;
    struct sy_error err = {0};
    char msg[1024];
    if (!ok) {
        sy_error_set(&err, NULL, 0,
                     "a filter is malformed or too long (state 31, type 255, integration and "
                     "category 127, q %d, cursor %d bytes)",
                     SY_LIST_TEXT_MAX, SY_CURSOR_MAX);
    } else if (query_param(req, "limit", limit, sizeof(limit)) &&
               (!sy_parse_int64(limit, strlen(limit), &lim) || lim < 1 || lim > SY_LIST_MAX)) {
        sy_error_set(&err, NULL, 0, "limit must be 1 to %d", SY_LIST_MAX);
    } else if (!time_param(req, "since", &f->since_ms) || !time_param(req, "until", &f->until_ms)) {
        sy_error_set(&err, NULL, 0,
                     "since and until are milliseconds since the epoch, a date "
                     "(2026-12-01T09:30:00Z) or a time ago (2h)");
    }
    f->limit = (int)lim;
    if (!err.msg[0]) {
        sy_event_filter_check(f, &err); /* the store's own refusals, before it is asked */
    }
    if (err.msg[0]) {
        free(a);
        sy_error_format(&err, msg, sizeof(msg));
        sy_http_send_error(req, 400, "Bad Request", "invalid_request", msg);
        return 0;
    }
    return sy_admin_defer(req, srv, SY_ADMIN_READ, list_work, a, NULL);
}

/* GET /admin/rules on a worker: the paused set may be read from the store. */
static void rules_work(struct sy_server *srv, void *p, struct sy_admin_answer *out)
{
    (void)p;
    json_t *rules = sy_engine_rules_json(srv->engine);
    if (rules == NULL) {
        sy_admin_answer_error(out, 500, "internal", "out of memory");
        return;
    }
    out->status = 200;
    out->body = json_pack("{s:o}", "rules", rules);
}

struct pause_arg {
    bool pause;
    char name[129];
};

static void pause_work(struct sy_server *srv, void *p, struct sy_admin_answer *out)
{
    struct pause_arg *a = p;
    int rc = sy_engine_pause(srv->engine, a->name, a->pause);
    if (rc == SY_ENOTFOUND) {
        sy_admin_answer_error(out, 404, "not_found", "no rule or plugin named '%s'", a->name);
    } else if (rc != SY_OK) {
        sy_admin_answer_error(out, 503, "store_unavailable",
                              "the store could not record it; nothing changed");
    } else {
        out->status = 200;
        out->body = json_pack("{s:s, s:b}", "rule", a->name, "paused", (int)a->pause);
    }
}

/*
 * GET /admin/rules: every rule and plugin with its state; POST
 * /admin/rules/{name}/pause or /resume: durable before the answer.
 */
static int admin_rules(h2o_req_t *req, struct sy_server *srv)
{
    const char *rest = req->path_normalized.base + 12;
    size_t rlen = req->path_normalized.len - 12;
    bool is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (rlen == 0 || (rlen == 1 && rest[0] == '/')) {
        if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
            return sy_admin_method_not_allowed(req, "GET");
        }
        return sy_admin_defer(req, srv, SY_ADMIN_READ, rules_work, NULL, NULL);
    }
    const char *slash = rest[0] == '/' ? memrchr(rest + 1, '/', rlen - 1) : NULL;
    size_t nlen = slash ? (size_t)(slash - rest - 1) : 0;
    const char *verb = slash ? slash + 1 : NULL;
    size_t vlen = slash ? rlen - (size_t)(slash - rest) - 1 : 0;
    bool pause = verb && h2o_memis(verb, vlen, H2O_STRLIT("pause"));
    bool resume = verb && h2o_memis(verb, vlen, H2O_STRLIT("resume"));
    if ((!pause && !resume) || nlen == 0 || nlen > 128) {
        sy_http_send_error(req, 404, "Not Found", "not_found",
                           "use GET /admin/rules, POST /admin/rules/NAME/pause or "
                           "POST /admin/rules/NAME/resume");
        return 0;
    }
    if (!is_post) {
        return sy_admin_method_not_allowed(req, "POST");
    }
    struct pause_arg *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        sy_http_send_error(req, 503, "Service Unavailable", "unavailable", "out of memory");
        return 0;
    }
    a->pause = pause;
    memcpy(a->name, rest + 1, nlen);
    a->name[nlen] = '\0';
    return sy_admin_defer(req, srv, SY_ADMIN_WRITE, pause_work, a, NULL);
}

/* An event's id as the loop read it from the path. */
struct event_arg {
    char id[1024];
};

static void show_work(struct sy_server *srv, void *p, struct sy_admin_answer *out)
{
    struct event_arg *a = p;
    struct sy_error err = {0};
    answer_read(out, sy_store_show(srv->store, a->id, &err), &err, 404, "not_found");
}

static void replay_work(struct sy_server *srv, void *p, struct sy_admin_answer *out)
{
    struct event_arg *a = p;
    struct sy_error err = {0};
    json_t *ev = sy_store_show(srv->store, a->id, &err);
    if (ev == NULL) {
        char msg[1024];
        sy_error_format(&err, msg, sizeof(msg));
        if (err.code == SY_EIO) {
            sy_admin_answer_error(out, 503, "store_unavailable", "%s", msg);
        } else {
            sy_admin_answer_error(out, 404, "not_found", "%s", msg);
        }
        return;
    }
    json_decref(ev);
    struct sy_replay_result r;
    if (sy_store_replay(srv->store, a->id, &r) != SY_OK) {
        sy_admin_answer_error(out, 503, "unavailable", "the store could not record the replay");
        return;
    }
    json_t *body = json_pack("{s:s, s:I}", "id", a->id, "replayed", (json_int_t)r.jobs);
    if (r.was_quarantined) {
        json_object_set_new(body, "quarantined",
                            r.routed ? json_pack("{s:b}", "routed", 1)
                                     : json_pack("{s:b, s:s}", "routed", 0, "reason", r.reason));
    }
    out->status = 200;
    out->body = body;
}

/* GET /admin/events, GET /admin/events/{id}, POST /admin/events/{id}/replay */
static int admin_events(h2o_req_t *req, struct sy_server *srv)
{
    const char *rest = req->path_normalized.base + 13;
    size_t rlen = req->path_normalized.len - 13;
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    bool is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (rlen == 0 || (rlen == 1 && rest[0] == '/')) {
        if (!is_get) {
            return sy_admin_method_not_allowed(req, "GET");
        }
        return list_events(req, srv);
    }
    if (rest[0] != '/') {
        sy_http_send_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
        return 0;
    }
    rest++;
    rlen--;
    bool replay = rlen > 7 && memcmp(rest + rlen - 7, "/replay", 7) == 0;
    size_t idlen = replay ? rlen - 7 : rlen;
    struct event_arg *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        sy_http_send_error(req, 503, "Service Unavailable", "unavailable", "out of memory");
        return 0;
    }
    if (idlen == 0 || !url_decode(rest, idlen, a->id, sizeof(a->id)) ||
        strchr(a->id, '/') != NULL) {
        free(a);
        sy_http_send_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
        return 0;
    }
    if (replay ? !is_post : !is_get) {
        free(a);
        return sy_admin_method_not_allowed(req, replay ? "POST" : "GET");
    }
    return replay ? sy_admin_defer(req, srv, SY_ADMIN_WRITE, replay_work, a, NULL)
                  : sy_admin_defer(req, srv, SY_ADMIN_READ, show_work, a, NULL);
}

int sy_admin_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct sy_loop *lp = sy_loop_of(req);
    struct sy_server *srv = lp->srv;
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                  h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));

    /* probes stay open so that load balancers need no secret */
    if (path_is(req, "/healthz") || path_is(req, "/readyz")) {
        if (!is_get) {
            return sy_admin_method_not_allowed(req, "GET");
        }
        /* from what the store's own threads last saw: no store call, so no wait on it */
        struct sy_store_health h;
        sy_store_health(srv->store, &h);
        if (path_is(req, "/healthz")) {
            /* alive: the process answers; the store's state is said, not judged */
            sy_admin_send_json(req, 200, "OK",
                               json_pack("{s:s, s:s}", "status", "ok", "store",
                                         h.ready ? "ready" : h.detail));
            return 0;
        }
        if (!h.ready) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                           H2O_STRLIT("1"));
            sy_admin_send_json(req, 503, "Service Unavailable",
                               json_pack("{s:s, s:s}", "status", "unavailable", "store", h.detail));
            return 0;
        }
        sy_admin_send_json(req, 200, "OK",
                           json_pack("{s:s, s:s}", "status", "ready", "store", "ready"));
        return 0;
    }
    const char *token = srv->cfg->admin.token;
    if (sy_console_handle(srv->console, req, token)) {
        return 0;
    }
    sy_console_secure_headers(req);
    switch (sy_console_authorize(srv->console, req, token, token != NULL && authorized(req, token))) {
    case SY_AUTH_OK:
        break;
    case SY_AUTH_LOGIN:
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer"));
        sy_http_send_error(req, 401, "Unauthorized", "unauthorized",
                           "this endpoint needs Authorization: Bearer <admin token>");
        return 0;
    case SY_AUTH_CSRF:
        sy_http_send_error(req, 403, "Forbidden", "csrf",
                           "a console action needs its session's X-CSRF-Token header");
        return 0;
    case SY_AUTH_ORIGIN:
        sy_http_send_error(req, 403, "Forbidden", "content_type",
                           "without admin.token, a POST needs content-type: application/json "
                           "(which no other web page can send here)");
        return 0;
    }
    if (path_is(req, "/metrics")) {
        if (!is_get) {
            return sy_admin_method_not_allowed(req, "GET");
        }
        struct sy_buf b;
        sy_buf_init(&b, 4 << 20);
        sy_metrics_render(&b);
        sy_engine_render_metrics(srv->engine, &b);
        sy_http_send(req, 200, "OK", "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
        sy_buf_dispose(&b);
        return 0;
    }
    if (path_is(req, "/admin/overview")) {
        if (!is_get) {
            return sy_admin_method_not_allowed(req, "GET");
        }
        json_t *o = srv->overview ? sy_overview_json(srv->overview) : NULL;
        if (o == NULL) {
            sy_http_send_error(req, 500, "Internal Server Error", "internal", "out of memory");
            return 0;
        }
        sy_admin_send_json(req, 200, "OK", o);
        return 0;
    }
    if (req->path_normalized.len >= 13 &&
        memcmp(req->path_normalized.base, "/admin/events", 13) == 0) {
        return admin_events(req, srv);
    }
    if (req->path_normalized.len >= 12 &&
        memcmp(req->path_normalized.base, "/admin/rules", 12) == 0 &&
        (req->path_normalized.len == 12 || req->path_normalized.base[12] == '/')) {
        return admin_rules(req, srv);
    }
    if (path_is(req, "/admin/replay")) {
        return sy_admin_replay(req, srv);
    }
    if (path_is(req, "/admin/reload")) {
        if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
            return sy_admin_method_not_allowed(req, "POST");
        }
        struct sy_error err = {0};
        if (sy_engine_reload(srv->engine, &err) != SY_OK) {
            char msg[2048];
            sy_error_format(&err, msg, sizeof(msg));
            sy_http_send_error(req, 400, "Bad Request", "reload_failed", msg);
            return 0;
        }
        char body[96];
        int n = snprintf(body, sizeof(body), "{\"status\":\"reloaded\",\"rules\":%zu}",
                         sy_engine_rule_count(srv->engine));
        sy_http_send(req, 200, "OK", "application/json", body, (size_t)n);
        return 0;
    }
    sy_http_send_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
    return 0;
}
