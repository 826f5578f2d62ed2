#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"

static enum sy_log_level min_level = SY_LOG_INFO;
static bool json_format = false;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sy_log_configure(enum sy_log_level level, bool json)
{
    min_level = level;
    json_format = json;
}

int sy_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

bool sy_log_enabled(enum sy_log_level level)
{
    return level >= min_level;
}

/*
 * "2026-11-30T04:27:00.123Z". The part up to the seconds is formatted once per
 * second per thread: a busy loop thread writes a line per request.
 */
static size_t timestamp(char out[32])
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[24];
    static _Thread_local size_t cached_len;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = tv.tv_sec;
    }
    memcpy(out, cached, cached_len);
    int ms = (int)(tv.tv_usec / 1000);
    char *p = out + cached_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    return (size_t)(p - out);
}

/*
 * A message as it is, but for control characters, written as JSON escapes: a message
 * can hold an event id or other text from a sender, and one log line must stay one line.
 */
static void put_message(struct sy_buf *b, const char *msg)
{
    size_t run = 0, i = 0;
    for (; msg[i]; i++) {
        if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f) {
            sy_buf_append(b, msg + run, i - run);
            sy_buf_json_escape(b, msg + i, 1);
            run = i + 1;
        }
    }
    sy_buf_append(b, msg + run, i - run);
}

static void begin_line(struct sy_buf *b, enum sy_log_level level, const char *msg)
{
    char ts[32];
    size_t tslen = timestamp(ts);
    const char *name = level_names[level];
    if (json_format) {
        sy_buf_append(b, "{\"ts\":\"", 7);
        sy_buf_append(b, ts, tslen);
        sy_buf_append(b, "\",\"level\":\"", 11);
        sy_buf_puts(b, name);
        sy_buf_append(b, "\",\"msg\":", 8);
        sy_buf_json_string(b, msg, strlen(msg));
    } else {
        sy_buf_append(b, ts, tslen);
        sy_buf_append(b, " ", 1);
        sy_buf_puts(b, name);
        sy_buf_append(b, "      ", 6 - strlen(name)); /* the level padded to 5, then a space */
        put_message(b, msg);
    }
}

static void add_field(struct sy_buf *b, const char *key, const char *val, size_t vlen)
{
    if (json_format) {
        sy_buf_append(b, ",", 1);
        sy_buf_json_string(b, key, strlen(key));
        sy_buf_append(b, ":", 1);
        sy_buf_json_string(b, val, vlen);
        return;
    }
    sy_buf_append(b, " ", 1);
    sy_buf_puts(b, key);
    sy_buf_append(b, "=", 1);
    bool quote = vlen == 0 || memchr(val, ' ', vlen) != NULL || memchr(val, '"', vlen) != NULL;
    if (quote) {
        sy_buf_json_string(b, val, vlen);
    } else {
        sy_buf_json_escape(b, val, vlen);
    }
}

static void end_line(struct sy_buf *b)
{
    if (json_format) {
        sy_buf_append(b, "}", 1);
    }
    sy_buf_append(b, "\n", 1);
    if (b->failed) {
        return;
    }
    /* One write per line; a short write on a pipe to journald is not worth a retry loop. */
    ssize_t w = write(STDERR_FILENO, b->data, b->len);
    (void)w;
}

void sy_log(enum sy_log_level level, const char *msg, ...)
{
    if (level < min_level) {
        return;
    }
    struct sy_buf *line = sy_scratch(SY_SCRATCH_LOG, 64 * 1024);
    if (line == NULL) {
        return;
    }
    sy_buf_reset(line);
    begin_line(line, level, msg);
    va_list ap;
    va_start(ap, msg);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);
        if (val != NULL) {
            add_field(line, key, val, strlen(val));
        }
    }
    va_end(ap);
    end_line(line);
    if (line->cap > 4096) {
        /* do not keep a huge line buffer alive per thread */
        sy_buf_dispose(line);
    }
}

void sy_log_request(const char *result, int status, const char *id, size_t idlen, double latency_ms,
                    const char *peer)
{
    if (SY_LOG_INFO < min_level) {
        return;
    }
    struct sy_buf *line = sy_scratch(SY_SCRATCH_LOG, 64 * 1024);
    if (line == NULL) {
        return;
    }
    sy_buf_reset(line);
    begin_line(line, SY_LOG_INFO, "request");
    add_field(line, "result", result, strlen(result));
    char num[32];
    size_t n = 0;
    for (int v = status < 0 ? 0 : status, d = 100; d > 0; d /= 10) { /* statuses have 3 digits */
        num[n++] = (char)('0' + v / d % 10);
    }
    add_field(line, "status", num, n);
    if (id != NULL) {
        add_field(line, "id", id, idlen);
    }
    long us = latency_ms > 0 && latency_ms < 1e9 ? (long)(latency_ms * 1000.0 + 0.5) : 0;
    int len = snprintf(num, sizeof(num), "%ld.%03ld", us / 1000, us % 1000);
    add_field(line, "latency_ms", num, (size_t)len);
    if (peer != NULL) {
        add_field(line, "peer", peer, strlen(peer));
    }
    end_line(line);
}
