#ifndef SY_HTTP_CONSOLE_H
#define SY_HTTP_CONSOLE_H

#include <stdbool.h>

#include <h2o.h>

/*
 * The web console on the admin listener: its page, script and styles
 * (embedded at build time), and its sessions. With admin.token set, the
 * login form exchanges the token for an HttpOnly, SameSite=Strict session
 * cookie (12 hours); every POST made with a session must carry its CSRF
 * token in X-CSRF-Token. Everything here belongs to the admin loop's thread.
 */
struct sy_console;

/* NULL when out of memory. */
struct sy_console *sy_console_new(void);
void sy_console_free(struct sy_console *c);

/*
 * Answer the console's own paths: GET / (the page), GET /console/app.js and
 * /console/app.css, GET /console/session, POST /console/login and
 * /console/logout. Returns true when 'req' was one of them (and is answered).
 * 'token' is admin.token (NULL = none).
 */
bool sy_console_handle(struct sy_console *c, h2o_req_t *req, const char *token);

/* How a request to the admin API may go on. */
enum sy_console_auth {
    SY_AUTH_OK,      /* a valid bearer token or session (with its CSRF token on a POST) */
    SY_AUTH_LOGIN,   /* 401: neither a bearer token nor a session */
    SY_AUTH_CSRF,    /* 403: a POST with a session but without its CSRF token */
    SY_AUTH_ORIGIN,  /* 403: without admin.token, a POST that a web page could forge */
};

/*
 * Check a request to the admin API (not the probes): 'bearer_ok' says
 * whether it carried the right Authorization: Bearer token. Without a token
 * configured, GETs pass, and a POST passes with a session's CSRF token or,
 * from a client without a session (the CLI), with content-type
 * application/json, which no cross-site form can send.
 */
enum sy_console_auth sy_console_authorize(struct sy_console *c, h2o_req_t *req, const char *token,
                                          bool bearer_ok);

/* Add the headers every console and admin answer carries (CSP, nosniff, no-referrer). */
void sy_console_secure_headers(h2o_req_t *req);

#endif
