#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define DEFAULT_LIMIT ((size_t)64 << 20)

void sy_buf_init(struct sy_buf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit ? limit : DEFAULT_LIMIT;
}

void sy_buf_dispose(struct sy_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void sy_buf_reset(struct sy_buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data) {
        b->data[0] = '\0';
    }
}

static int reserve(struct sy_buf *b, size_t extra)
{
    if (b->failed) {
        return -1;
    }
    if (extra > b->limit || b->len + extra > b->limit) {
        b->failed = true;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int sy_buf_append(struct sy_buf *b, const void *data, size_t len)
{
    if (reserve(b, len) != 0) {
        return -1;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int sy_buf_puts(struct sy_buf *b, const char *s)
{
    return sy_buf_append(b, s, strlen(s));
}

int sy_buf_printf(struct sy_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) != 0) {
        b->failed = true;
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int sy_buf_json_escape(struct sy_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        sy_buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            sy_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            sy_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            sy_buf_append(b, "\\n", 2);
            break;
        case '\r':
            sy_buf_append(b, "\\r", 2);
            break;
        case '\t':
            sy_buf_append(b, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sy_buf_append(b, u, 6);
        }
        }
    }
    sy_buf_append(b, s + run, len - run);
    return b->failed ? -1 : 0;
}

int sy_buf_json_string(struct sy_buf *b, const char *s, size_t len)
{
    sy_buf_append(b, "\"", 1);
    sy_buf_json_escape(b, s, len);
    return sy_buf_append(b, "\"", 1);
}

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    struct sy_buf *set = p;
    for (int i = 0; i < SY_SCRATCH__COUNT; i++) {
        sy_buf_dispose(&set[i]);
    }
    free(set);
}

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

struct sy_buf *sy_scratch(enum sy_scratch which, size_t limit)
{
    pthread_once(&scratch_once, scratch_init);
    struct sy_buf *set = pthread_getspecific(scratch_key);
    if (set == NULL) {
        set = calloc(SY_SCRATCH__COUNT, sizeof(*set));
        if (set == NULL || pthread_setspecific(scratch_key, set) != 0) {
            free(set);
            return NULL;
        }
    }
    struct sy_buf *b = &set[which];
    if (b->limit == 0) {
        sy_buf_init(b, limit);
    }
    return b;
}
