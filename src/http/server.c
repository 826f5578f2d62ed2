#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http/internal.h"
#include "http/overview.h"
#include "http/server.h"
#include "metrics.h"
#include "util/buf.h"
#include "util/log.h"

enum ctl_op { CTL_CLOSE_LISTENERS, CTL_EXIT };

struct ctl_msg {
    h2o_multithread_message_t super;
    enum ctl_op op;
};

void sy_http_send(h2o_req_t *req, int status, const char *reason, const char *content_type,
                  const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_send_inline(req, body, len);
}

void sy_http_send_error(h2o_req_t *req, int status, const char *reason, const char *code,
                        const char *detail)
{
    struct sy_buf *b = sy_scratch(SY_SCRATCH_HTTP, 16 * 1024);
    if (b == NULL) {
        sy_http_send(req, status, reason, "application/json", "{}", 2);
        return;
    }
    sy_buf_reset(b);
    sy_buf_puts(b, "{\"error\":");
    sy_buf_json_string(b, code, strlen(code));
    sy_buf_puts(b, ",\"detail\":");
    sy_buf_json_string(b, detail, strlen(detail));
    sy_buf_puts(b, "}");
    sy_http_send(req, status, reason, "application/json", b->data, b->len);
}

/* ---- listeners ---- */

static int bind_listener(const char *addr, struct sy_error *err)
{
    char host[256];
    unsigned port;
    if (!sy_split_hostport(addr, host, sizeof(host), &port)) {
        sy_error_set(err, NULL, 0, "listen address \"%s\" is not ADDRESS:PORT", addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        sy_error_set(err, NULL, 0, "listen address \"%s\": %s", addr, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        sy_error_set(err, NULL, 0, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* "ADDRESS:PORT" of a bound socket, for the log (port 0 becomes the real port). */
static void bound_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
            snprintf(out, len, "%s:%u", host, port);
            return;
        }
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, len, "[%s]:%u", host, port);
}

/* What a webhook connection holds until it closes: its place in the limits. */
struct conn_hold {
    struct sy_server *srv;
    struct sy_addr addr;
    bool per_addr; /* counted in srv->per_addr */
};

static void on_conn_close(void *data)
{
    struct conn_hold *h = data;
    if (h->per_addr) {
        sy_conn_table_leave(h->srv->per_addr, &h->addr);
    }
    __atomic_fetch_sub(&h->srv->open_conns, 1, __ATOMIC_RELAXED);
    free(h);
}

/*
 * The checks a webhook connection passes as it is accepted, before any byte of a request
 * is read, so that connections nobody will serve cannot hold the slots real deliveries
 * need: a direct peer outside webhook.allow (a trusted proxy is judged later, by the
 * X-Forwarded-For of each request), then http.max_connections, then
 * http.max_connections_per_address (trusted proxies exempt: everything comes through
 * them). Returns the hold to keep with the socket, or NULL with the refusal counted.
 */
static struct conn_hold *admit(struct sy_server *srv, h2o_socket_t *sock)
{
    const struct sy_config *cfg = srv->cfg;
    struct sockaddr_storage ss;
    struct sy_addr peer;
    socklen_t sl = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    bool known = sl > 0 && sy_addr_from_sockaddr((struct sockaddr *)&ss, &peer);
    bool proxy = known && sy_cidr_list_contains(cfg->webhook.trusted_proxies,
                                                cfg->webhook.n_trusted_proxies, &peer);
    if (known && !proxy && cfg->webhook.n_allow > 0 &&
        !sy_cidr_list_contains(cfg->webhook.allow, cfg->webhook.n_allow, &peer)) {
        sy_metrics_add(&sy_metrics.conns_refused_forbidden, 1);
        return NULL;
    }
    struct conn_hold *h = malloc(sizeof(*h));
    if (h == NULL) {
        sy_metrics_add(&sy_metrics.conns_refused, 1);
        return NULL;
    }
    /* over the limit: close at once, so a flood cannot exhaust memory or descriptors */
    if (__atomic_fetch_add(&srv->open_conns, 1, __ATOMIC_RELAXED) >= cfg->http.max_connections) {
        __atomic_fetch_sub(&srv->open_conns, 1, __ATOMIC_RELAXED);
        sy_metrics_add(&sy_metrics.conns_refused, 1);
        free(h);
        return NULL;
    }
    h->srv = srv;
    h->per_addr = known && !proxy;
    if (h->per_addr) {
        h->addr = peer;
        if (!sy_conn_table_enter(srv->per_addr, &peer, cfg->http.max_connections_per_address)) {
            __atomic_fetch_sub(&srv->open_conns, 1, __ATOMIC_RELAXED);
            sy_metrics_add(&sy_metrics.conns_refused_address, 1);
            free(h);
            return NULL;
        }
    }
    return h;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL) {
        return;
    }
    struct sy_loop *lp = listener->data;
    struct sy_server *srv = lp->srv;
    /* several at once: under load one wakeup often finds a backlog */
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            return;
        }
        if (lp->webhook) {
            struct conn_hold *h = admit(srv, sock);
            if (h == NULL) {
                h2o_socket_close(sock);
                continue;
            }
            sock->on_close.cb = on_conn_close;
            sock->on_close.data = h;
        }
        h2o_accept(&lp->accept_ctx, sock);
    }
}

static void close_listeners(struct sy_loop *lp)
{
    for (size_t i = 0; i < lp->n_listeners; i++) {
        if (lp->listeners[i] != NULL) {
            h2o_socket_read_stop(lp->listeners[i]);
            h2o_socket_close(lp->listeners[i]);
            lp->listeners[i] = NULL;
        }
    }
}

static void on_ctl(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    struct sy_loop *lp = H2O_STRUCT_FROM_MEMBER(struct sy_loop, ctl_rx, rx);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct ctl_msg *msg = (struct ctl_msg *)m;
        if (msg->op == CTL_CLOSE_LISTENERS) {
            close_listeners(lp);
            h2o_context_request_shutdown(&lp->ctx);
        } else {
            lp->exit = true;
        }
        free(msg);
    }
}

static void send_ctl(struct sy_loop *lp, enum ctl_op op)
{
    if (lp->init_status != SY_OK) {
        return; /* its thread has already returned */
    }
    struct ctl_msg *msg = calloc(1, sizeof(*msg));
    if (msg == NULL) {
        return;
    }
    msg->op = op;
    h2o_multithread_send_message(&lp->ctl_rx, &msg->super);
}

/*
 * Set up a loop on its own thread: h2o keeps per-thread buffer pools, so a
 * context, its queue and its sockets must be created by the thread that runs them.
 */
static int loop_init(struct sy_loop *lp)
{
    struct sy_server *srv = lp->srv;
    const struct sy_config *cfg = srv->cfg;
    h2o_context_init(&lp->ctx, h2o_evloop_create(), lp->conf);
    lp->accept_ctx.ctx = &lp->ctx;
    lp->accept_ctx.hosts = lp->conf->hosts;
    lp->accept_ctx.ssl_ctx = lp->webhook ? srv->ssl_ctx : NULL;
    lp->queue = h2o_multithread_create_queue(lp->ctx.loop);
    sy_buf_init(&lp->log_held, 64 * 1024);
    h2o_multithread_register_receiver(lp->queue, &lp->done_rx, sy_webhook_on_done);
    h2o_multithread_register_receiver(lp->queue, &lp->ctl_rx, on_ctl);
    if (!lp->webhook) {
        sy_admin_jobs_attach(lp);
    }
    if (lp->webhook) {
        lp->verifier =
            sy_verifier_new((const char *const *)cfg->webhook.secrets, cfg->webhook.n_secrets);
        if (lp->verifier == NULL) {
            return sy_error_set(&lp->init_err, NULL, 0, "cannot set up HMAC-SHA256 (OpenSSL)");
        }
    }
    lp->listeners = calloc(lp->n_fds, sizeof(*lp->listeners));
    if (lp->listeners == NULL) {
        return SY_ENOMEM;
    }
    for (size_t i = 0; i < lp->n_fds; i++) {
        int fd = dup(lp->fds[i]);
        if (fd < 0) {
            return sy_error_set(&lp->init_err, NULL, 0, "dup: %s", strerror(errno));
        }
        h2o_socket_t *sock = h2o_evloop_socket_create(lp->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        sock->data = lp;
        h2o_socket_read_start(sock, on_accept);
        lp->listeners[lp->n_listeners++] = sock;
    }
    return SY_OK;
}

static void *loop_main(void *arg)
{
    struct sy_loop *lp = arg;
    struct sy_server *srv = lp->srv;
    char name[16];
    snprintf(name, sizeof(name), lp->webhook ? "sy-http-%zu" : "sy-admin",
             (size_t)(lp - srv->loops));
    pthread_setname_np(pthread_self(), name);
    int rc = loop_init(lp);
    pthread_mutex_lock(&srv->init_mu);
    lp->init_status = rc;
    srv->n_ready++;
    pthread_cond_broadcast(&srv->init_cv);
    pthread_mutex_unlock(&srv->init_mu);
    while (rc == SY_OK && !lp->exit) {
        h2o_evloop_run(lp->ctx.loop, INT32_MAX);
    }
    close_listeners(lp);
    sy_verifier_free(lp->verifier);
    lp->verifier = NULL;
    sy_buf_dispose(&lp->log_held);
    return NULL;
}

static void loop_dispose(struct sy_loop *lp)
{
    free(lp->listeners);
    lp->listeners = NULL;
}

static h2o_pathconf_t *register_handler(h2o_globalconf_t *conf,
                                        int (*on_req)(h2o_handler_t *, h2o_req_t *))
{
    h2o_hostconf_t *host =
        h2o_config_register_host(conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    return path;
}

static SSL_CTX *make_ssl_ctx(const struct sy_config *cfg, struct sy_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        sy_error_set(err, NULL, 0, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    char *cert = sy_config_resolve(cfg, cfg->http.tls_cert);
    char *key = sy_config_resolve(cfg, cfg->http.tls_key);
    bool ok = cert && key && SSL_CTX_use_certificate_chain_file(ctx, cert) == 1;
    if (!ok) {
        sy_error_set(err, cfg->path, 0, "cannot load TLS certificate %s: %s", cert ? cert : "?",
                     ERR_reason_error_string(ERR_get_error()));
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
               SSL_CTX_check_private_key(ctx) != 1) {
        ok = false;
        sy_error_set(err, cfg->path, 0, "cannot load TLS key %s: %s", key,
                     ERR_reason_error_string(ERR_get_error()));
    }
    free(cert);
    free(key);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (cfg->http.http2) {
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    }
    return ctx;
}

/*
 * h2o's own advisories list HTTP/2 denial-of-service flaws fixed only after
 * 2.2.5, the version Debian 12 ships with no later security fix: the ping,
 * reset and settings floods (fixed in 2.2.6) and the rapid reset (fixed after
 * any 2.2 release). HTTP/1.1 is not affected by them.
 */
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR < 2 ||                                             \
    H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2 && H2O_VERSION_PATCH < 6
#define HTTP2_FLAWS                                                                                \
    "CVE-2019-9512, CVE-2019-9514 and CVE-2019-9515 (the ping, reset and settings floods, fixed "  \
    "in 2.2.6) and CVE-2023-44487 (the rapid reset)"
#else
#define HTTP2_FLAWS "CVE-2023-44487 (the rapid reset)"
#endif

const char *sy_server_http2_warning(const struct sy_config *cfg)
{
    if (!cfg->http.http2) {
        return NULL;
    }
    return "http.http2 is on: HTTP/2 comes from h2o " H2O_VERSION ", which lacks the fixes of "
           "later h2o releases for HTTP/2 denial-of-service flaws: " HTTP2_FLAWS ". HTTP/1.1 "
           "is not affected. Unless you must, keep http2 off and let a patched proxy in front "
           "speak HTTP/2 (README: HTTP/2 and TLS at the edge)";
}

struct sy_server *sy_server_new(const struct sy_config *cfg, struct sy_store *store,
                                struct sy_engine *engine, struct sy_error *err)
{
    struct sy_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return NULL;
    }
    srv->cfg = cfg;
    srv->store = store;
    srv->engine = engine;
    srv->admin_fd = -1;
    pthread_mutex_init(&srv->init_mu, NULL);
    pthread_cond_init(&srv->init_cv, NULL);
    srv->listen_fds = calloc(cfg->n_listen, sizeof(int));
    srv->per_addr = sy_conn_table_new((size_t)cfg->http.max_connections);
    srv->console = sy_console_new();
    if (cfg->admin.listen != NULL) {
        srv->overview = sy_overview_start(10, 361); /* an hour, one sample every 10 s */
    }
    if (srv->listen_fds == NULL || srv->per_addr == NULL || srv->console == NULL ||
        (cfg->admin.listen != NULL && srv->overview == NULL)) {
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        int fd = bind_listener(cfg->listen[i], err);
        if (fd < 0) {
            goto fail;
        }
        srv->listen_fds[srv->n_listen++] = fd;
    }
    if (cfg->admin.listen != NULL && (srv->admin_fd = bind_listener(cfg->admin.listen, err)) < 0) {
        goto fail;
    }
    if (cfg->http.tls_cert != NULL && (srv->ssl_ctx = make_ssl_ctx(cfg, err)) == NULL) {
        goto fail;
    }

    h2o_config_init(&srv->conf);
    /*
     * h2o refuses bodies over this limit itself (plain-text 413, before the
     * handler). Leave room above max_body so that near misses reach the
     * handler and get the JSON answer, while huge bodies are cut early.
     */
    uint64_t hard = cfg->webhook.max_body * 2;
    if (hard < cfg->webhook.max_body + 65536) {
        hard = cfg->webhook.max_body + 65536;
    }
    srv->conf.max_request_entity_size = (size_t)hard;
    srv->conf.http1.req_timeout = cfg->http.request_timeout_ms;
    srv->conf.http1.upgrade_to_http2 = cfg->http.http2;
    srv->conf.http2.idle_timeout = cfg->http.idle_timeout_ms;
    srv->conf.server_name = h2o_iovec_init(H2O_STRLIT("switchyard"));
    register_handler(&srv->conf, sy_webhook_on_req);

    h2o_config_init(&srv->admin_conf);
    srv->admin_conf.max_request_entity_size = 64 * 1024;
    srv->admin_conf.http1.upgrade_to_http2 = 0;
    srv->admin_conf.server_name = h2o_iovec_init(H2O_STRLIT("switchyard"));
    register_handler(&srv->admin_conf, sy_admin_on_req);
    return srv;
fail:
    sy_server_free(srv);
    return NULL;
}

static void start_loop(struct sy_server *srv, struct sy_loop *lp, h2o_globalconf_t *conf,
                       const int *fds, size_t n_fds, bool webhook)
{
    lp->srv = srv;
    lp->conf = conf;
    lp->fds = fds;
    lp->n_fds = n_fds;
    lp->webhook = webhook;
    h2o_multithread_create_thread(&lp->tid, NULL, loop_main, lp);
    lp->running = true;
}

int sy_server_start(struct sy_server *srv, struct sy_error *err)
{
    const struct sy_config *cfg = srv->cfg;
    srv->loops = calloc((size_t)cfg->http.threads, sizeof(*srv->loops));
    if (srv->loops == NULL) {
        return SY_ENOMEM;
    }
    srv->n_loops = (size_t)cfg->http.threads;
    size_t expected = srv->n_loops;
    for (size_t i = 0; i < srv->n_loops; i++) {
        start_loop(srv, &srv->loops[i], &srv->conf, srv->listen_fds, srv->n_listen, true);
    }
    if (srv->admin_fd >= 0) {
        if (sy_admin_jobs_start(srv) != SY_OK) {
            return sy_error_set(err, NULL, 0, "cannot start the admin workers");
        }
        start_loop(srv, &srv->admin, &srv->admin_conf, &srv->admin_fd, 1, false);
        expected++;
    }
    pthread_mutex_lock(&srv->init_mu);
    while (srv->n_ready < expected) {
        pthread_cond_wait(&srv->init_cv, &srv->init_mu);
    }
    pthread_mutex_unlock(&srv->init_mu);
    for (size_t i = 0; i <= srv->n_loops; i++) {
        struct sy_loop *lp = i < srv->n_loops ? &srv->loops[i] : &srv->admin;
        if (lp->running && lp->init_status != SY_OK) {
            if (err != NULL) {
                *err = lp->init_err;
            }
            return lp->init_status;
        }
    }
    char name[80];
    for (size_t i = 0; i < srv->n_listen; i++) {
        bound_name(srv->listen_fds[i], name, sizeof(name));
        sy_log(SY_LOG_INFO, "listening", "kind", "webhook", "addr", name, "scheme",
               srv->ssl_ctx ? "https" : "http", "path", cfg->webhook.path, NULL);
    }
    if (srv->admin_fd >= 0) {
        bound_name(srv->admin_fd, name, sizeof(name));
        sy_log(SY_LOG_INFO, "listening", "kind", "admin", "addr", name, NULL);
    }
    return SY_OK;
}

static void stop_loop(struct sy_loop *lp)
{
    if (!lp->running) {
        return;
    }
    send_ctl(lp, CTL_EXIT);
    pthread_join(lp->tid, NULL);
    lp->running = false;
}

void sy_server_shutdown(struct sy_server *srv, int grace_ms)
{
    for (size_t i = 0; i < srv->n_loops; i++) {
        if (srv->loops[i].running) {
            send_ctl(&srv->loops[i], CTL_CLOSE_LISTENERS);
        }
    }
    /* answer what the store still owes before the loops go away */
    struct timespec tick = {0, 5 * 1000 * 1000};
    for (int waited = 0; waited < grace_ms; waited += 5) {
        if (__atomic_load_n(&srv->inflight, __ATOMIC_ACQUIRE) == 0) {
            break;
        }
        nanosleep(&tick, NULL);
    }
    /* a moment for the last responses to be flushed to their sockets */
    struct timespec flush = {0, 50 * 1000 * 1000};
    nanosleep(&flush, NULL);
    for (size_t i = 0; i < srv->n_loops; i++) {
        stop_loop(&srv->loops[i]);
    }
    stop_loop(&srv->admin);
    sy_admin_jobs_stop(srv);
}

void sy_server_free(struct sy_server *srv)
{
    if (srv == NULL) {
        return;
    }
    sy_admin_jobs_stop(srv); /* after a start that failed; a no-op after the shutdown */
    for (size_t i = 0; i < srv->n_loops; i++) {
        loop_dispose(&srv->loops[i]);
    }
    loop_dispose(&srv->admin);
    free(srv->loops);
    sy_conn_table_free(srv->per_addr); /* after the loops: closing their sockets leaves it */
    sy_console_free(srv->console);
    sy_overview_stop(srv->overview);
    for (size_t i = 0; i < srv->n_listen; i++) {
        close(srv->listen_fds[i]);
    }
    free(srv->listen_fds);
    if (srv->admin_fd >= 0) {
        close(srv->admin_fd);
    }
    if (srv->ssl_ctx) {
        SSL_CTX_free(srv->ssl_ctx);
    }
    pthread_cond_destroy(&srv->init_cv);
    pthread_mutex_destroy(&srv->init_mu);
    free(srv);
}
