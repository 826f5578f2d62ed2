/*
 * A slow Unizo API for the end-to-end benchmark: an h2o server that holds
 * every request for a fixed delay, then answers as the ticketing API would
 * (201 {"id": "T-<n>"} to a POST, 200 {"id": ...} otherwise), so thousands
 * of calls can be in flight at once and the benchmark measures switchyard,
 * not the mock. GET /_stats answers at once with what it saw:
 * {"requests", "in_flight", "max_in_flight", "repeated_keys"} (a repeated
 * Idempotency-Key is a call sent twice).
 * usage: sy-bench-slow-unizo PORT THREADS DELAY_MS
 */
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

#define MAX_KEYS (1u << 21) /* Idempotency-Keys remembered; later ones are not checked */

static h2o_globalconf_t conf;
static int listen_fd;
static uint64_t delay_ms;

static long requests, in_flight, max_in_flight, repeated_keys; /* atomic */

/* The keys seen: open addressing on a 64-bit hash, under a lock. */
static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *keys;
static size_t n_keys;

static uint64_t hash_of(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    }
    return h | 1; /* 0 marks an empty slot */
}

/* True when the key was seen before. */
static bool seen(const char *k, size_t n)
{
    uint64_t h = hash_of(k, n);
    bool again = false;
    pthread_mutex_lock(&keys_mu);
    if (n_keys < MAX_KEYS / 2) {
        size_t i = (size_t)h & (MAX_KEYS - 1);
        while (keys[i] != 0 && keys[i] != h) {
            i = (i + 1) & (MAX_KEYS - 1);
        }
        again = keys[i] == h;
        if (!again) {
            keys[i] = h;
            n_keys++;
        }
    }
    pthread_mutex_unlock(&keys_mu);
    return again;
}

struct loop {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_timeout_t delay;
};

/* A held request; freed with its pool, which unlinks it if the client went away. */
struct held {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
    bool post;
};

static void send_json(h2o_req_t *req, int status, const char *reason, const char *body)
{
    size_t len = strlen(body);
    char *copy = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(copy, body, len);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, copy, len);
}

static void on_due(h2o_timeout_entry_t *entry)
{
    struct held *h = H2O_STRUCT_FROM_MEMBER(struct held, entry, entry);
    long n = __atomic_fetch_add(&requests, 1, __ATOMIC_RELAXED) + 1;
    __atomic_fetch_sub(&in_flight, 1, __ATOMIC_RELAXED);
    char body[64];
    snprintf(body, sizeof(body), "{\"id\":\"T-%ld\",\"key\":\"K-%ld\"}", n, n);
    h2o_req_t *req = h->req;
    h->req = NULL;
    send_json(req, h->post ? 201 : 200, h->post ? "Created" : "OK", body);
}

static void on_held_dispose(void *p)
{
    struct held *h = p;
    if (h2o_timeout_is_linked(&h->entry)) {
        h2o_timeout_unlink(&h->entry); /* the client left before the answer */
        __atomic_fetch_sub(&in_flight, 1, __ATOMIC_RELAXED);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/_stats"))) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"requests\":%ld,\"in_flight\":%ld,\"max_in_flight\":%ld,\"repeated_keys\":%ld}",
                 __atomic_load_n(&requests, __ATOMIC_RELAXED),
                 __atomic_load_n(&in_flight, __ATOMIC_RELAXED),
                 __atomic_load_n(&max_in_flight, __ATOMIC_RELAXED),
                 __atomic_load_n(&repeated_keys, __ATOMIC_RELAXED));
        send_json(req, 200, "OK", body);
        return 0;
    }
    ssize_t k = h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1);
    if (k >= 0 && seen(req->headers.entries[k].value.base, req->headers.entries[k].value.len)) {
        __atomic_fetch_add(&repeated_keys, 1, __ATOMIC_RELAXED);
    }
    long now = __atomic_fetch_add(&in_flight, 1, __ATOMIC_RELAXED) + 1;
    long max = __atomic_load_n(&max_in_flight, __ATOMIC_RELAXED);
    while (now > max &&
           !__atomic_compare_exchange_n(&max_in_flight, &max, now, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
    struct held *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), on_held_dispose);
    memset(&h->entry, 0, sizeof(h->entry));
    h->entry.cb = on_due;
    h->req = req;
    h->post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    struct loop *lp = H2O_STRUCT_FROM_MEMBER(struct loop, ctx, req->conn->ctx);
    h2o_timeout_link(lp->ctx.loop, &lp->delay, &h->entry);
    return 0;
}

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
    h2o_timeout_init(lp->ctx.loop, &lp->delay, delay_ms);
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
    if (argc != 4) {
        fprintf(stderr, "usage: sy-bench-slow-unizo PORT THREADS DELAY_MS\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    delay_ms = (uint64_t)strtoull(argv[3], NULL, 10);
    keys = calloc(MAX_KEYS, sizeof(*keys));
    if (keys == NULL) {
        fprintf(stderr, "sy-bench-slow-unizo: out of memory\n");
        return 1;
    }
    h2o_config_init(&conf);
    conf.http1.upgrade_to_http2 = 0;
    conf.max_request_entity_size = 1 << 20;
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
    struct loop *loops = calloc((size_t)(n > 0 ? n : 1), sizeof(*loops));
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, run, &loops[i]);
    }
    pause();
    return 0;
}
