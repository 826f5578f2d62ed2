/* Log lines: whatever a message, a field name or a value holds, one call is one trustworthy line.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "lua/sandbox.h"
#include "snippet.h"
#include "util/buf.h"
#include "util/log.h"

/* Run one sy_log call with stderr sent to a file; returns what it wrote (malloc'd). */
static char *logged(bool json, const char *msg, const char *key, const char *val)
{
    char path[] = "/tmp/sy-test-log-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    sy_log_configure(SY_LOG_DEBUG, json);
    sy_log(SY_LOG_INFO, msg, key, val, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    if (pread(fd, out, (size_t)len, 0) != len) {
        out[0] = '\0';
    }
    close(fd);
    unlink(path);
    return out;
}

/* One line, ended by its only newline, holding no control byte and no U+0085/2028/2029. */
static bool one_clean_line(const char *line)
{
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1) != NULL) {
        return false;
    }
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return strstr(line, "\xe2\x80\xa8") == NULL && strstr(line, "\xe2\x80\xa9") == NULL &&
           strstr(line, "\xc2\x85") == NULL;
}

static const char *const hostile[] = {
    "plain",
    "two\nlines",
    "cr\rreturn",
    "forged\n2026-12-01T00:00:00.000Z error  admin login ok",
    "tab\tand\x7f del",
    "unicode\xe2\x80\xa8line\xe2\x80\xa9para\xc2\x85nel",
    "bad \xff byte, overlong \xc0\x80, cut \xe2\x82, surrogate \xed\xa0\x80",
    "quote \" backslash \\ equals = done",
    "",
};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void text_format(void)
{
    for (size_t i = 0; i < N_HOSTILE; i++) {
        for (size_t j = 0; j < N_HOSTILE; j++) {
            const char *key = hostile[j][0] ? hostile[j] : "k";
            char *line = logged(false, hostile[i], key, hostile[(i + j) % N_HOSTILE]);
            CHECK(one_clean_line(line));
            if (!one_clean_line(line)) {
                fprintf(stderr, "  text line: %s", line);
            }
            free(line);
        }
    }
    /* a key that is not a plain name cannot pass for two fields */
    char *line = logged(false, "m", "a b=c", "v");
    CHECK(strstr(line, " \"a b=c\"=v") != NULL);
    free(line);
    line = logged(false, "m", "title", "x level=error");
    CHECK(strstr(line, " title=\"x level=error\"") != NULL);
    free(line);
    line = logged(false, "m", "path", "a=b");
    CHECK(strstr(line, " path=\"a=b\"") != NULL);
    free(line);
}

/* Valid UTF-8 round-trips through the JSON line exactly; invalid bytes come back as U+00XX. */
static void json_format(void)
{
    for (size_t i = 0; i < N_HOSTILE; i++) {
        for (size_t j = 0; j < N_HOSTILE; j++) {
            const char *key = hostile[j][0] ? hostile[j] : "k";
            const char *val = hostile[(i + j) % N_HOSTILE];
            char *line = logged(true, hostile[i], key, val);
            CHECK(one_clean_line(line));
            json_error_t e;
            json_t *o = json_loads(line, 0, &e);
            CHECK(o != NULL);
            if (o == NULL) {
                fprintf(stderr, "  json line (%s): %s", e.text, line);
            } else if (i != 6 && j != 6 && (i + j) % N_HOSTILE != 6) {
                CHECK_STR(json_string_value(json_object_get(o, "msg")), hostile[i]);
                CHECK_STR(json_string_value(json_object_get(o, key)), val);
            }
            json_decref(o);
            free(line);
        }
    }
    char *line = logged(true, "bad \xff", "k", "v");
    json_t *o = json_loads(line, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(o, "msg")), "bad \xc3\xbf");
    json_decref(o);
    free(line);
}

/* A rule's log.info: up to 16 fields, each value cut at 8 KiB, tables as JSON. */
static void rule_fields(void)
{
    struct sy_lua_limits lim = {.instructions = 1000000, .memory = 8u << 20};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    char path[] = "/tmp/sy-test-rulelog-XXXXXX", err[512];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    sy_log_configure(SY_LOG_DEBUG, true);
    enum sy_lua_result r = run_snippet(lx,
                                       "local f = {} for i = 1, 20 do f['k' .. i] = i end "
                                       "log.info('many', f) "
                                       "log.info('sizes', { big = string.rep('x', 20000), "
                                       "t = { a = { 1, 2 } } })",
                                       err, sizeof(err));
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    CHECK(pread(fd, out, (size_t)len, 0) == len);
    close(fd);
    unlink(path);
    CHECK(r == SY_LUA_OK);
    char *second = strchr(out, '\n');
    CHECK(second != NULL);
    if (second == NULL) {
        free(out);
        sy_lua_free(lx);
        return;
    }
    *second++ = '\0';
    json_t *many = json_loads(out, 0, NULL), *sizes = json_loads(second, 0, NULL);
    /* ts, level, msg, rule, event, and 16 of the 20 fields */
    CHECK(many != NULL && json_object_size(many) == 5 + 16);
    CHECK(sizes != NULL && json_string_length(json_object_get(sizes, "big")) == 8192);
    CHECK_STR(json_string_value(json_object_get(sizes, "t")), "{\"a\":[1,2]}");
    json_decref(many);
    json_decref(sizes);
    free(out);
    sy_lua_free(lx);
}

/* What one write(2) to stderr carried, in order: a SOCK_SEQPACKET socket keeps each whole. */
struct writes {
    int fd;
    char *msg[4096];
    size_t len[4096];
    size_t n;
};

static void *read_writes(void *arg)
{
    struct writes *w = arg;
    static char buf[1 << 17];
    ssize_t got;
    while ((got = read(w->fd, buf, sizeof(buf))) > 0 && w->n < 4096) {
        w->msg[w->n] = malloc((size_t)got);
        memcpy(w->msg[w->n], buf, (size_t)got);
        w->len[w->n++] = (size_t)got;
    }
    return NULL;
}

/*
 * Request lines held and written together: one write for many lines, each write whole
 * lines of at most SY_LOG_ATOMIC bytes (a longer line alone), nothing lost or reordered,
 * even past the held buffer's cap.
 */
static void held_lines(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
    struct writes w = {.fd = sv[1]};
    pthread_t reader;
    pthread_create(&reader, NULL, read_writes, &w);
    int saved = dup(STDERR_FILENO);
    dup2(sv[0], STDERR_FILENO);
    sy_log_configure(SY_LOG_INFO, false);

    struct sy_buf held;
    sy_buf_init(&held, 16 * 1024);
    static char long_id[6001];
    memset(long_id, 'x', 6000);
    char id[64];
    int n_lines = 0;
    /* 40 short lines, a 6,000-byte one, 400 more: more than the 16 KiB buffer holds */
    for (int i = 0; i < 441; i++) {
        if (i == 40) {
            sy_log_request_hold(&held, "accepted", 200, long_id, 6000, 1.5, "127.0.0.1");
        } else {
            int len = snprintf(id, sizeof(id), "evt-%04d", i);
            sy_log_request_hold(&held, "accepted", 200, id, (size_t)len, 0.25, "127.0.0.1");
        }
        n_lines++;
        if (i == 200) {
            sy_log_flush(&held);
        }
    }
    sy_log_flush(&held);
    sy_log_flush(&held); /* nothing held: writes nothing */
    /* below the level, nothing is held */
    sy_log_configure(SY_LOG_WARN, false);
    sy_log_request_hold(&held, "accepted", 200, "quiet", 5, 0.1, NULL);
    CHECK(held.len == 0);
    sy_buf_dispose(&held);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(sv[0]);
    pthread_join(reader, NULL);
    close(sv[1]);

    CHECK(w.n >= 10 && w.n <= 30); /* 441 lines of ~100 bytes: some 12 writes, not 441 */
    int seen = 0, next = 0;
    bool whole = true, ordered = true, sized = true, long_alone = false;
    for (size_t k = 0; k < w.n; k++) {
        whole = whole && w.len[k] > 0 && w.msg[k][w.len[k] - 1] == '\n';
        size_t lines = 0;
        for (size_t i = 0; i < w.len[k]; i++) {
            lines += w.msg[k][i] == '\n';
        }
        if (w.len[k] > SY_LOG_ATOMIC) {
            sized = sized && lines == 1;
            long_alone = long_alone || (lines == 1 && memmem(w.msg[k], w.len[k], long_id, 6000));
        }
        for (char *p = w.msg[k]; p < w.msg[k] + w.len[k];) {
            char *nl = memchr(p, '\n', (size_t)(w.msg[k] + w.len[k] - p));
            if (nl == NULL) {
                break;
            }
            if (next == 40) {
                ordered = ordered && memmem(p, (size_t)(nl - p), long_id, 6000) != NULL;
            } else {
                snprintf(id, sizeof(id), "id=evt-%04d ", next);
                ordered = ordered && memmem(p, (size_t)(nl - p), id, strlen(id)) != NULL;
            }
            next++;
            seen++;
            p = nl + 1;
        }
        free(w.msg[k]);
    }
    CHECK(whole);
    CHECK(sized);
    CHECK(long_alone);
    CHECK(ordered);
    CHECK(seen == n_lines);
}

int main(void)
{
    held_lines();
    text_format();
    json_format();
    rule_fields();
    CHECK_DONE();
}
