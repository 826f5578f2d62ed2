#include <string.h>

#include <openssl/crypto.h>

#include "http/internal.h"
#include "metrics.h"
#include "util/buf.h"

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
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
            sy_http_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
            return 0;
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
    if (!authorized(req, srv->cfg->admin.token)) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer"));
        sy_http_send_error(req, 401, "Unauthorized", "unauthorized",
                           "this endpoint needs Authorization: Bearer <admin token>");
        return 0;
    }
    if (path_is(req, "/metrics")) {
        if (!is_get) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
            sy_http_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
            return 0;
        }
        struct sy_buf b;
        sy_buf_init(&b, 4 << 20);
        sy_metrics_render(&b);
        sy_http_send(req, 200, "OK", "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
        sy_buf_dispose(&b);
        return 0;
    }
    sy_http_send_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
    return 0;
}
