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
 * GET /admin/events?state=&type=&integration=&category=&since=&until=&q=&cursor=&limit=:
 * a page of the list (store/filter.h), {"events": [...], "next": cursor or null}.
 */
static int list_events(h2o_req_t *req, struct sy_server *srv)
{
    char state[32], type[256], integration[128], category[128], text[SY_LIST_TEXT_MAX + 1];
    char cursor[SY_CURSOR_MAX + 1], limit[16];
    struct sy_event_filter f = {0};
    bool ok = filter_param(req, "state", state, sizeof(state), &f.state);
    if (ok && f.state == NULL) {
        ok = filter_param(req, "status", state, sizeof(state), &f.state); /* the older name */
    }
    ok = ok && filter_param(req, "type", type, sizeof(type), &f.type) &&
         filter_param(req, "integration", integration, sizeof(integration), &f.integration) &&
         filter_param(req, "category", category, sizeof(category), &f.category) &&
         filter_param(req, "q", text, sizeof(text), &f.text) &&
         filter_param(req, "cursor", cursor, sizeof(cursor), &f.cursor);
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
    } else if (!time_param(req, "since", &f.since_ms) || !time_param(req, "until", &f.until_ms)) {
        sy_error_set(&err, NULL, 0,
                     "since and until are milliseconds since the epoch, a date "
                     "(2026-12-01T09:30:00Z) or a time ago (2h)");
    }
    f.limit = (int)lim;
    json_t *page = err.msg[0] ? NULL : sy_store_list(srv->store, &f, &err);
    if (page == NULL) {
        sy_error_format(&err, msg, sizeof(msg));
        sy_http_send_error(req, 400, "Bad Request", "invalid_request", msg);
        return 0;
    }
    sy_admin_send_json(req, 200, "OK", page);
    return 0;
}

/* GET /admin/events, GET /admin/events/{id}, POST /admin/events/{id}/replay */
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
        json_t *rules = sy_engine_rules_json(srv->engine);
        if (rules == NULL) {
            sy_http_send_error(req, 500, "Internal Server Error", "internal", "out of memory");
            return 0;
        }
        sy_admin_send_json(req, 200, "OK", json_pack("{s:o}", "rules", rules));
        return 0;
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
    char name[129];
    memcpy(name, rest + 1, nlen);
    name[nlen] = '\0';
    int rc = sy_engine_pause(srv->engine, name, pause);
    if (rc == SY_ENOTFOUND) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no rule or plugin named '%s'", name);
        sy_http_send_error(req, 404, "Not Found", "not_found", msg);
        return 0;
    }
    if (rc != SY_OK) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       H2O_STRLIT("1"));
        sy_http_send_error(req, 503, "Service Unavailable", "store_unavailable",
                           "the store could not record it; nothing changed");
        return 0;
    }
    sy_admin_send_json(req, 200, "OK",
                       json_pack("{s:s, s:b}", "rule", name, "paused", (int)pause));
    return 0;
}

static int admin_events(h2o_req_t *req, struct sy_server *srv)
{
    const char *rest = req->path_normalized.base + 13;
    size_t rlen = req->path_normalized.len - 13;
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    bool is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    struct sy_error err = {0};
    char msg[1024];
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
    char id[1024];
    if (idlen == 0 || !url_decode(rest, idlen, id, sizeof(id)) || strchr(id, '/') != NULL) {
        sy_http_send_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
        return 0;
    }
    if (replay) {
        if (!is_post) {
            return sy_admin_method_not_allowed(req, "POST");
        }
        json_t *ev = sy_store_show(srv->store, id, &err);
        if (ev == NULL) {
            sy_error_format(&err, msg, sizeof(msg));
            sy_http_send_error(req, 404, "Not Found", "not_found", msg);
            return 0;
        }
        json_decref(ev);
        struct sy_replay_result r;
        if (sy_store_replay(srv->store, id, &r) != SY_OK) {
            sy_http_send_error(req, 503, "Service Unavailable", "unavailable",
                               "the store could not record the replay");
            return 0;
        }
        json_t *out = json_pack("{s:s, s:I}", "id", id, "replayed", (json_int_t)r.jobs);
        if (r.was_quarantined) {
            json_object_set_new(out, "quarantined",
                                r.routed ? json_pack("{s:b}", "routed", 1)
                                         : json_pack("{s:b, s:s}", "routed", 0, "reason",
                                                     r.reason));
        }
        sy_admin_send_json(req, 200, "OK", out);
        return 0;
    }
    if (!is_get) {
        return sy_admin_method_not_allowed(req, "GET");
    }
    json_t *ev = sy_store_show(srv->store, id, &err);
    if (ev == NULL) {
        sy_error_format(&err, msg, sizeof(msg));
        sy_http_send_error(req, 404, "Not Found", "not_found", msg);
        return 0;
    }
    sy_admin_send_json(req, 200, "OK", ev);
    return 0;
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
        if (path_is(req, "/healthz")) {
            static const char ok[] = "{\"status\":\"ok\"}";
            sy_http_send(req, 200, "OK", "application/json", ok, sizeof(ok) - 1);
            return 0;
        }
        if (!sy_store_ready(srv->store)) {
            sy_http_send_error(req, 503, "Service Unavailable", "unavailable",
                               "the store is not accepting writes");
            return 0;
        }
        static const char ready[] = "{\"status\":\"ready\"}";
        sy_http_send(req, 200, "OK", "application/json", ready, sizeof(ready) - 1);
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
