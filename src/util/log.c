#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/utf8.h"

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
 * Text from outside (a PR title, a rule's field name, an event id) written so that one call
 * stays one line a reader can trust: control characters and DEL as JSON escapes, the code
 * points some viewers break lines at (U+0085, U+2028, U+2029) as \uXXXX, and each byte that
 * is not valid UTF-8 as \u00XX. With 'json', '"' and '\\' are escaped too, so the result is
 * the inside of a JSON string.
 */
static void put_escaped(struct sy_buf *b, const char *text, size_t len, bool json)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n = 1;
        uint32_t cp = c;
        bool escape;
        if (c < 0x80) {
            escape = c < 0x20 || c == 0x7f || (json && (c == '"' || c == '\\'));
        } else if ((n = sy_utf8_seq(s + i, len - i, &cp)) != 0) {
            escape = cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        } else {
            n = 1;
            escape = true; /* cp = the byte itself */
        }
        if (!escape) {
            i += n;
            continue;
        }
        sy_buf_append(b, text + run, i - run);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sy_buf_append(b, e, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            char e[2] = {'\\', c == '\n' ? 'n' : c == '\r' ? 'r' : 't'};
            sy_buf_append(b, e, 2);
        } else {
            char u[6] = {'\\',        'u', hex[cp >> 12 & 15], hex[cp >> 8 & 15], hex[cp >> 4 & 15],
                         hex[cp & 15]};
            sy_buf_append(b, u, 6);
        }
        i += n;
        run = i;
    }
    sy_buf_append(b, text + run, len - run);
}

static void put_json_string(struct sy_buf *b, const char *s, size_t len)
{
    sy_buf_append(b, "\"", 1);
    put_escaped(b, s, len, true);
    sy_buf_append(b, "\"", 1);
}

/* A text-format key: as it is when it is a plain name, else quoted and escaped. */
static void put_text_key(struct sy_buf *b, const char *key)
{
    size_t len = strlen(key);
    bool plain = len > 0;
    for (size_t i = 0; plain && i < len; i++) {
        char c = key[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-' || c == '.';
    }
    if (plain) {
        sy_buf_append(b, key, len);
    } else {
        put_json_string(b, key, len);
    }
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
        put_json_string(b, msg, strlen(msg));
    } else {
        sy_buf_append(b, ts, tslen);
        sy_buf_append(b, " ", 1);
        sy_buf_puts(b, name);
        sy_buf_append(b, "      ", 6 - strlen(name)); /* the level padded to 5, then a space */
        put_escaped(b, msg, strlen(msg), false);
    }
}

static void add_field(struct sy_buf *b, const char *key, const char *val, size_t vlen)
{
    if (json_format) {
        sy_buf_append(b, ",", 1);
        put_json_string(b, key, strlen(key));
        sy_buf_append(b, ":", 1);
        put_json_string(b, val, vlen);
        return;
    }
    sy_buf_append(b, " ", 1);
    put_text_key(b, key);
    sy_buf_append(b, "=", 1);
    bool quote = vlen == 0 || memchr(val, ' ', vlen) != NULL || memchr(val, '"', vlen) != NULL ||
                 memchr(val, '=', vlen) != NULL || memchr(val, '\\', vlen) != NULL;
    if (quote) {
        put_json_string(b, val, vlen);
    } else {
        put_escaped(b, val, vlen, false);
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
    /* callers spell their fields out: a few dozen at most */
    const char *keys[32], *vals[32];
    size_t lens[32], n = 0;
    va_list ap;
    va_start(ap, msg);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);
        if (val != NULL && n < 32) {
            keys[n] = key;
            vals[n] = val;
            lens[n++] = strlen(val);
        }
    }
    va_end(ap);
    sy_log_fields(level, msg, keys, vals, lens, n);
}

void sy_log_fields(enum sy_log_level level, const char *msg, const char *const *keys,
                   const char *const *vals, const size_t *vlens, size_t n)
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
    for (size_t i = 0; i < n; i++) {
        add_field(line, keys[i], vals[i], vlens[i]);
    }
    end_line(line);
    if (line->cap > 4096) {
        /* do not keep a huge line buffer alive per thread */
        sy_buf_dispose(line);
    }
}

/* The request line, ended with a newline, appended to 'line'. */
static void format_request(struct sy_buf *line, const char *result, int status, const char *id,
                           size_t idlen, double latency_ms, const char *peer)
{
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
    n = 0;
    char digits[24];
    size_t nd = 0;
    for (long v = us / 1000; nd == 0 || v > 0; v /= 10) {
        digits[nd++] = (char)('0' + v % 10);
    }
    while (nd > 0) {
        num[n++] = digits[--nd];
    }
    num[n++] = '.';
    num[n++] = (char)('0' + us % 1000 / 100);
    num[n++] = (char)('0' + us % 100 / 10);
    num[n++] = (char)('0' + us % 10);
    add_field(line, "latency_ms", num, n);
    if (peer != NULL) {
        add_field(line, "peer", peer, strlen(peer));
    }
    if (json_format) {
        sy_buf_append(line, "}", 1);
    }
    sy_buf_append(line, "\n", 1);
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
    format_request(line, result, status, id, idlen, latency_ms, peer);
    if (!line->failed) {
        ssize_t w = write(STDERR_FILENO, line->data, line->len);
        (void)w;
    }
}

void sy_log_request_hold(struct sy_buf *held, const char *result, int status, const char *id,
                         size_t idlen, double latency_ms, const char *peer)
{
    if (SY_LOG_INFO < min_level) {
        return;
    }
    size_t before = held->len;
    format_request(held, result, status, id, idlen, latency_ms, peer);
    if (held->failed) {
        /* full: write what was held before this line, then the line alone */
        held->failed = false;
        held->len = before;
        sy_log_flush(held);
        sy_log_request(result, status, id, idlen, latency_ms, peer);
    }
}

void sy_log_flush(struct sy_buf *held)
{
    const char *p = held->data;
    size_t left = held->len;
    while (left > 0) {
        /* the longest run of whole lines that fits in SY_LOG_ATOMIC, or one longer line */
        size_t run = 0;
        for (;;) {
            const char *nl = memchr(p + run, '\n', left - run);
            size_t end = nl != NULL ? (size_t)(nl - p) + 1 : left;
            if (run > 0 && end > SY_LOG_ATOMIC) {
                break;
            }
            run = end;
            if (run == left || run >= SY_LOG_ATOMIC) {
                break;
            }
        }
        ssize_t w = write(STDERR_FILENO, p, run);
        (void)w; /* as for single lines: a short write to journald is not retried */
        p += run;
        left -= run;
    }
    sy_buf_reset(held);
}
