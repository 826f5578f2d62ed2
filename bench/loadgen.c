/*
 * sy-loadgen: signed webhook traffic for runs longer than the signature window.
 *
 * wrk replays pre-signed files, and a file signed now is stale in five minutes.
 * This generator signs every request as it sends it: one thread per keep-alive
 * connection, each holding its share of a target rate (0 = as fast as it can).
 * Every interval it prints one line of counts and latency percentiles; at the
 * end a RESULT line for scripts.
 *
 * usage: sy-loadgen --port P --secret S [--connections 32] [--duration 10]
 *                   [--rate 0] [--interval 10] [--ids uuid|sequential] [--prefix ID]
 *                   [--body-kb 1]
 *
 * Event ids are UUID v4 by default, as real delivery ids are (random keys cost
 * the store more than rising ones); --ids sequential sends evt_PREFIX_THREAD_N.
 * --body-kb N pads each body to about N KiB (1 to 4096).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingest/verify.h"

/* Latency histogram: 10 µs buckets up to 200 ms, 1 ms buckets up to 10 s, then one overflow. */
#define BUCKET_US 10
#define FINE_BUCKETS 20000
#define COARSE_US 1000
#define BUCKETS (FINE_BUCKETS + 9800 + 1)

struct counters {
    _Atomic uint64_t sent, accepted, duplicate, other, errors;
    _Atomic uint64_t hist[BUCKETS];
};

struct options {
    int port, connections, duration, interval, body_kb;
    double rate;
    const char *secret, *prefix;
    bool sequential;
};

static struct options opt = {.connections = 32, .duration = 10, .interval = 10, .prefix = "soak",
                              .body_kb = 1};

/* splitmix64: each connection's own stream, seeded from the kernel. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A UUID v4 (version and variant bits set) into id. */
static void uuid_v4(uint64_t *state, char *id, size_t cap)
{
    uint64_t hi = next_random(state), lo = next_random(state);
    hi = (hi & ~UINT64_C(0xf000)) | UINT64_C(0x4000);
    lo = (lo & ~(UINT64_C(3) << 62)) | (UINT64_C(2) << 62);
    snprintf(id, cap, "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
             hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48, lo & UINT64_C(0xffffffffffff));
}
static struct counters total;

/* The histogram bucket of a latency in µs. */
static uint64_t bucket_of(uint64_t us)
{
    if (us < (uint64_t)FINE_BUCKETS * BUCKET_US) {
        return us / BUCKET_US;
    }
    uint64_t b = FINE_BUCKETS + (us - (uint64_t)FINE_BUCKETS * BUCKET_US) / COARSE_US;
    return b < BUCKETS - 1 ? b : BUCKETS - 1;
}
static atomic_bool stopping;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A pull-request event with this id, padded in data.description to 'size' bytes (at least ~500). */
static size_t make_body(char *out, size_t cap, size_t size, const char *id)
{
    int n = snprintf(
        out, cap,
        "{\"id\":\"%s\",\"type\":\"scm.pull_request.created\","
        "\"timestamp\":\"2024-01-15T10:30:00Z\",\"integration\":{\"id\":\"int_github_123\","
        "\"type\":\"github\",\"name\":\"GitHub (acme)\"},\"data\":{\"number\":42,"
        "\"title\":\"Add OAuth login\",\"state\":\"open\",\"draft\":false,"
        "\"url\":\"https://github.com/acme/payments-api/pull/42\",\"author\":{\"id\":"
        "\"usr_1042\",\"login\":\"mchen\",\"name\":\"Mei Chen\"},\"repository\":{\"id\":"
        "\"repo_5521\",\"name\":\"payments-api\",\"full_name\":\"acme/payments-api\"},"
        "\"description\":\"",
        id);
    size_t len = (size_t)n;
    while (len < size - 3 && len < cap - 8) {
        out[len++] = 'x';
    }
    memcpy(out + len, "\"}}", 3);
    return len + 3;
}

/* Read one response; return its status, or -1 when the connection failed. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    char *end = NULL;
    while (end == NULL) {
        if (have == cap - 1) {
            return -1;
        }
        ssize_t r = read(fd, buf + have, cap - 1 - have);
        if (r <= 0) {
            return -1;
        }
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        return -1;
    }
    size_t clen = 0;
    for (char *p = buf; p < end; p++) {
        if ((*p == '\n') && strncasecmp(p + 1, "content-length:", 15) == 0) {
            clen = strtoul(p + 16, NULL, 10);
        }
    }
    size_t body_have = have - (size_t)(end + 4 - buf);
    char sink[4096];
    while (body_have < clen) {
        size_t want = clen - body_have < sizeof sink ? clen - body_have : sizeof sink;
        ssize_t r = read(fd, sink, want);
        if (r <= 0) {
            return -1;
        }
        body_have += (size_t)r;
    }
    /* A 200 body names the outcome: "accepted" or "duplicate". */
    if (status == 200 && strstr(end, "duplicate") != NULL) {
        return 2000;
    }
    return status;
}

static void *connection_main(void *arg)
{
    int index = (int)(intptr_t)arg;
    double gap = opt.rate > 0 ? (double)opt.connections / opt.rate : 0;
    double due = now_s() + gap * ((double)index / opt.connections);
    char id[96], resp[8192], mac_hex[65];
    size_t size = (size_t)opt.body_kb * 1024, cap = size + 1024;
    char *body = malloc(cap), *req = malloc(cap + 1024);
    if (body == NULL || req == NULL) {
        fprintf(stderr, "sy-loadgen: no memory for %d KiB bodies\n", opt.body_kb);
        exit(1);
    }
    int fd = -1;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)index;
    }
    for (uint64_t n = 0; !atomic_load(&stopping); n++) {
        if (gap > 0) {
            sleep_until(due);
            due += gap;
        }
        if (fd < 0 && (fd = connect_loopback(opt.port)) < 0) {
            atomic_fetch_add(&total.errors, 1);
            sleep_until(now_s() + 0.1);
            continue;
        }
        if (opt.sequential) {
            snprintf(id, sizeof id, "evt_%s_%d_%" PRIu64, opt.prefix, index, n);
        } else {
            uuid_v4(&seed, id, sizeof id);
        }
        size_t blen = make_body(body, cap, size, id);
        char ts[24];
        int tslen = snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
        if (sy_signature_hex(opt.secret, strlen(opt.secret), ts, (size_t)tslen, body, blen,
                             mac_hex) != 0) {
            atomic_fetch_add(&total.errors, 1);
            continue;
        }
        int hlen = snprintf(req, 1024,
                            "POST /webhooks/unizo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "content-type: application/json\r\nx-unizo-timestamp: %s\r\n"
                            "x-unizo-signature: v1=%s\r\ncontent-length: %zu\r\n\r\n",
                            ts, mac_hex, blen);
        memcpy(req + hlen, body, blen);
        double t0 = now_s();
        atomic_fetch_add(&total.sent, 1);
        int status = -1;
        if (write(fd, req, (size_t)hlen + blen) == (ssize_t)((size_t)hlen + blen)) {
            status = read_response(fd, resp, sizeof resp);
        }
        if (status < 0) {
            atomic_fetch_add(&total.errors, 1);
            close(fd);
            fd = -1;
            continue;
        }
        uint64_t us = (uint64_t)((now_s() - t0) * 1e6);
        uint64_t b = bucket_of(us);
        atomic_fetch_add(&total.hist[b], 1);
        if (status == 200) {
            atomic_fetch_add(&total.accepted, 1);
        } else if (status == 2000) {
            atomic_fetch_add(&total.duplicate, 1);
        } else {
            atomic_fetch_add(&total.other, 1);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(body);
    free(req);
    return NULL;
}

/* The upper bound (µs) of bucket i. */
static uint64_t bucket_top_us(int i)
{
    return i < FINE_BUCKETS
               ? (uint64_t)(i + 1) * BUCKET_US
               : (uint64_t)FINE_BUCKETS * BUCKET_US + (uint64_t)(i - FINE_BUCKETS + 1) * COARSE_US;
}

/* The latency (ms) below which this fraction of the histogram's counts fall. */
static double percentile(const uint64_t *hist, uint64_t count, double q)
{
    uint64_t want = (uint64_t)((double)count * q), seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) {
            return (double)bucket_top_us(i) / 1000.0;
        }
    }
    return (double)bucket_top_us(BUCKETS - 1) / 1000.0;
}

static void snapshot(uint64_t *hist, uint64_t *counts)
{
    for (int i = 0; i < BUCKETS; i++) {
        hist[i] = atomic_load(&total.hist[i]);
    }
    counts[0] = atomic_load(&total.accepted);
    counts[1] = atomic_load(&total.duplicate);
    counts[2] = atomic_load(&total.other);
    counts[3] = atomic_load(&total.errors);
}

/* A whole positive number, or -1 (the caller reports it). */
static int number(const char *v)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end != v && *end == '\0' && n > 0 && n <= 1000000 ? (int)n : -1;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--port") == 0) {
            opt.port = number(v);
        } else if (strcmp(k, "--secret") == 0) {
            opt.secret = v;
        } else if (strcmp(k, "--connections") == 0) {
            opt.connections = number(v);
        } else if (strcmp(k, "--duration") == 0) {
            opt.duration = number(v);
        } else if (strcmp(k, "--rate") == 0) {
            opt.rate = strtod(v, NULL);
        } else if (strcmp(k, "--interval") == 0) {
            opt.interval = number(v);
        } else if (strcmp(k, "--body-kb") == 0) {
            opt.body_kb = number(v);
        } else if (strcmp(k, "--prefix") == 0) {
            opt.prefix = v;
        } else if (strcmp(k, "--ids") == 0 && (strcmp(v, "uuid") == 0 || strcmp(v, "sequential") == 0)) {
            opt.sequential = strcmp(v, "sequential") == 0;
        } else {
            fprintf(stderr, "sy-loadgen: unknown option %s\n", k);
            return -1;
        }
    }
    if (opt.port <= 0 || opt.secret == NULL || opt.connections <= 0 || opt.duration <= 0 ||
        opt.interval <= 0 || opt.body_kb <= 0 || opt.body_kb > 4096) {
        fprintf(
            stderr,
            "usage: sy-loadgen --port P --secret S [--connections N] [--duration S] [--rate R/s] "
            "[--interval S] [--ids uuid|sequential] [--prefix ID] [--body-kb N]\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        return 2;
    }
    pthread_t *threads = calloc((size_t)opt.connections, sizeof *threads);
    uint64_t *prev_hist = calloc(BUCKETS, sizeof(uint64_t)),
             *hist = calloc(BUCKETS, sizeof(uint64_t));
    uint64_t *delta = calloc(BUCKETS, sizeof(uint64_t));
    if (threads == NULL || prev_hist == NULL || hist == NULL || delta == NULL) {
        return 1;
    }
    for (int i = 0; i < opt.connections; i++) {
        pthread_create(&threads[i], NULL, connection_main, (void *)(intptr_t)i);
    }
    double start = now_s();
    uint64_t prev[4] = {0}, cur[4];
    for (int t = opt.interval; t <= opt.duration; t += opt.interval) {
        sleep_until(start + t);
        snapshot(hist, cur);
        uint64_t n = 0;
        for (int i = 0; i < BUCKETS; i++) {
            delta[i] = hist[i] - prev_hist[i];
            n += delta[i];
        }
        printf("t=%d answered_per_s=%.0f accepted=%" PRIu64 " duplicate=%" PRIu64 " other=%" PRIu64
               " errors=%" PRIu64 " p50_ms=%.2f p99_ms=%.2f\n",
               t, (double)n / opt.interval, cur[0] - prev[0], cur[1] - prev[1], cur[2] - prev[2],
               cur[3] - prev[3], percentile(delta, n, 0.5), percentile(delta, n, 0.99));
        fflush(stdout);
        memcpy(prev_hist, hist, BUCKETS * sizeof(uint64_t));
        memcpy(prev, cur, sizeof prev);
    }
    atomic_store(&stopping, true);
    for (int i = 0; i < opt.connections; i++) {
        pthread_join(threads[i], NULL);
    }
    double elapsed = now_s() - start;
    snapshot(hist, cur);
    uint64_t n = 0;
    for (int i = 0; i < BUCKETS; i++) {
        n += hist[i];
    }
    printf("RESULT duration_s=%.2f answered=%" PRIu64 " accepted=%" PRIu64 " duplicate=%" PRIu64
           " other=%" PRIu64 " errors=%" PRIu64 " rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
           elapsed, n, cur[0], cur[1], cur[2], cur[3], (double)n / elapsed,
           percentile(hist, n, 0.5), percentile(hist, n, 0.99));
    free(threads);
    free(prev_hist);
    free(hist);
    free(delta);
    return 0;
}
