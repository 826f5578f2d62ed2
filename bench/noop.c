/*
 * The ceiling for the ingest benchmark: an h2o server whose handler answers
 * 200 {} at once, with the same thread and socket layout as switchyard.
 * usage: sy-bench-noop PORT THREADS
 */
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

static h2o_globalconf_t conf;
static int listen_fd;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = 2;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, "{}", 2);
    return 0;
}

struct loop {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
};

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL) {
        return;
    }
    struct loop *lp = listener->data;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            return;
        }
        h2o_accept(&lp->accept, sock);
    }
}

static void *run(void *arg)
{
    struct loop *lp = arg;
    h2o_context_init(&lp->ctx, h2o_evloop_create(), &conf);
    lp->accept.ctx = &lp->ctx;
    lp->accept.hosts = conf.hosts;
    h2o_socket_t *sock =
        h2o_evloop_socket_create(lp->ctx.loop, dup(listen_fd), H2O_SOCKET_FLAG_DONT_READ);
    sock->data = lp;
    h2o_socket_read_start(sock, on_accept);
    for (;;) {
        h2o_evloop_run(lp->ctx.loop, INT32_MAX);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sy-bench-noop PORT THREADS\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    h2o_config_init(&conf);
    conf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;

    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)strtol(argv[1], NULL, 10)),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(listen_fd, 4096)) {
        perror("listen");
        return 1;
    }
    int n = (int)strtol(argv[2], NULL, 10);
    struct loop *loops = calloc((size_t)n, sizeof(*loops));
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, run, &loops[i]);
    }
    pause();
    return 0;
}
