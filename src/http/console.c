/* The console's assets and sessions (see console.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "http/console.h"
#include "http/internal.h"
#include "util/clock.h"

extern const unsigned char sy_console_html[], sy_console_js[], sy_console_css[];
extern const unsigned long sy_console_html_len, sy_console_js_len, sy_console_css_len;

#define MAX_SESSIONS 64
#define SESSION_S (12 * 3600)
#define COOKIE "sy_session"

struct session {
    char id[65];   /* hex of 32 random bytes; "" = free */
    char csrf[33]; /* hex of 16 random bytes */
    int64_t expires_ms; /* monotonic */
    bool authenticated; /* logged in with the token (or none is configured) */
};

struct sy_console {
    struct session s[MAX_SESSIONS];
};

struct sy_console *sy_console_new(void)
{
    return calloc(1, sizeof(struct sy_console));
}

void sy_console_free(struct sy_console *c)
{
    if (c != NULL) {
        OPENSSL_cleanse(c, sizeof(*c));
        free(c);
    }
}

void sy_console_secure_headers(h2o_req_t *req)
{
    static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                              "img-src 'self'; connect-src 'self'; form-action 'self'; "
                              "frame-ancestors 'none'; base-uri 'none'";
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0,
                          NULL, csp, sizeof(csp) - 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0,
                          NULL, H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                          H2O_STRLIT("no-referrer"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL,
                          H2O_STRLIT("DENY"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
}

static bool random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    if (bytes > sizeof(raw) || RAND_bytes(raw, (int)bytes) != 1) {
        return false;
    }
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = "0123456789abcdef"[raw[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
    }
    out[2 * bytes] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return true;
}

/* The value of cookie 'name' in the request, or an empty iovec. */
static h2o_iovec_t cookie_value(h2o_req_t *req, const char *name)
{
    size_t nlen = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) >= 0;) {
        const char *p = req->headers.entries[i].value.base;
        const char *end = p + req->headers.entries[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';')) {
                p++;
            }
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
                return h2o_iovec_init(p + nlen + 1, (size_t)(stop - p - (ptrdiff_t)nlen - 1));
            }
            p = stop;
        }
    }
    return h2o_iovec_init(NULL, 0);
}

static struct session *find_session(struct sy_console *c, h2o_req_t *req)
{
    h2o_iovec_t v = cookie_value(req, COOKIE);
    if (v.len != 64) {
        return NULL;
    }
    int64_t now = sy_mono_ms();
    for (size_t i = 0; i < MAX_SESSIONS; i++) {
        struct session *s = &c->s[i];
        if (s->id[0] != '\0' && CRYPTO_memcmp(s->id, v.base, 64) == 0) {
            if (s->expires_ms < now) {
                memset(s, 0, sizeof(*s));
                return NULL;
            }
            return s;
        }
    }
    return NULL;
}

/* A new session in a free slot (or the one that expires first) with its cookie set. */
static struct session *new_session(struct sy_console *c, h2o_req_t *req, bool authenticated)
{
    struct session *s = &c->s[0];
    for (size_t i = 0; i < MAX_SESSIONS; i++) {
        if (c->s[i].id[0] == '\0') {
            s = &c->s[i];
            break;
        }
        s = c->s[i].expires_ms < s->expires_ms ? &c->s[i] : s;
    }
    if (!random_hex(s->id, 32) || !random_hex(s->csrf, 16)) {
        memset(s, 0, sizeof(*s));
        return NULL;
    }
    s->expires_ms = sy_mono_ms() + (int64_t)SESSION_S * 1000;
    s->authenticated = authenticated;
    char *cookie = h2o_mem_alloc_pool(&req->pool, 160);
    int n = snprintf(cookie, 160, COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
                     s->id, SESSION_S);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, cookie, (size_t)n);
    return s;
}

static bool method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static bool path_is(h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

static void send_asset(h2o_req_t *req, const char *type, const unsigned char *data,
                       unsigned long len)
{
    sy_console_secure_headers(req);
    sy_http_send(req, 200, "OK", type, (const char *)data, (size_t)len);
}

static void send_session(h2o_req_t *req, const struct session *s, const char *token)
{
    json_t *o = json_pack("{s:b, s:b, s:s?}", "token_required", token != NULL, "authenticated",
                          s != NULL && s->authenticated, "csrf",
                          s != NULL && s->authenticated ? s->csrf : NULL);
    sy_console_secure_headers(req);
    sy_admin_send_json(req, 200, "OK", o);
}

static void login(struct sy_console *c, h2o_req_t *req, const char *token)
{
    sy_console_secure_headers(req);
    json_t *body = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, NULL);
    const char *given = json_string_value(json_object_get(body, "token"));
    bool ok = token == NULL || (given != NULL && strlen(given) == strlen(token) &&
                                CRYPTO_memcmp(given, token, strlen(token)) == 0);
    json_decref(body);
    if (!ok) {
        sy_http_send_error(req, 401, "Unauthorized", "unauthorized", "that is not the admin token");
        return;
    }
    struct session *s = new_session(c, req, true);
    if (s == NULL) {
        sy_http_send_error(req, 500, "Internal Server Error", "internal", "no randomness");
        return;
    }
    sy_admin_send_json(req, 200, "OK", json_pack("{s:s}", "csrf", s->csrf));
}

bool sy_console_handle(struct sy_console *c, h2o_req_t *req, const char *token)
{
    bool get = method_is(req, "GET") || method_is(req, "HEAD");
    if (path_is(req, "/") || path_is(req, "/index.html")) {
        if (!get) {
            sy_admin_method_not_allowed(req, "GET");
        } else {
            send_asset(req, "text/html; charset=utf-8", sy_console_html, sy_console_html_len);
        }
        return true;
    }
    if (path_is(req, "/console/app.js") || path_is(req, "/console/app.css")) {
        bool js = path_is(req, "/console/app.js");
        if (!get) {
            sy_admin_method_not_allowed(req, "GET");
        } else {
            send_asset(req, js ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8",
                       js ? sy_console_js : sy_console_css, js ? sy_console_js_len : sy_console_css_len);
        }
        return true;
    }
    if (path_is(req, "/console/session")) {
        if (!get) {
            sy_admin_method_not_allowed(req, "GET");
            return true;
        }
        struct session *s = find_session(c, req);
        if (s == NULL && token == NULL) {
            s = new_session(c, req, true); /* no token: a session only for its CSRF token */
        }
        send_session(req, s, token);
        return true;
    }
    if (path_is(req, "/console/login") || path_is(req, "/console/logout")) {
        if (!method_is(req, "POST")) {
            sy_admin_method_not_allowed(req, "POST");
        } else if (path_is(req, "/console/login")) {
            login(c, req, token);
        } else {
            struct session *s = find_session(c, req);
            if (s != NULL) {
                memset(s, 0, sizeof(*s));
            }
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
                           H2O_STRLIT(COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
            sy_console_secure_headers(req);
            sy_admin_send_json(req, 200, "OK", json_pack("{s:b}", "logged_out", 1));
        }
        return true;
    }
    return false;
}

static bool csrf_ok(h2o_req_t *req, const struct session *s)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-csrf-token"), -1);
    return i >= 0 && req->headers.entries[i].value.len == 32 &&
           CRYPTO_memcmp(req->headers.entries[i].value.base, s->csrf, 32) == 0;
}

enum sy_console_auth sy_console_authorize(struct sy_console *c, h2o_req_t *req, const char *token,
                                          bool bearer_ok)
{
    if (token != NULL && bearer_ok) {
        return SY_AUTH_OK; /* an API client: it sends no cookie, so it cannot be a forged request */
    }
    bool post = !method_is(req, "GET") && !method_is(req, "HEAD");
    struct session *s = find_session(c, req);
    if (s != NULL && s->authenticated) {
        return !post || csrf_ok(req, s) ? SY_AUTH_OK : SY_AUTH_CSRF;
    }
    if (token != NULL) {
        return SY_AUTH_LOGIN;
    }
    if (!post) {
        return SY_AUTH_OK;
    }
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    bool json = i >= 0 && req->headers.entries[i].value.len >= 16 &&
                h2o_lcstris(req->headers.entries[i].value.base, 16, H2O_STRLIT("application/json"));
    return json ? SY_AUTH_OK : SY_AUTH_ORIGIN;
}
