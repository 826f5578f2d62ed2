#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"

struct scanner {
    const char *text;
    const char *p;
    const char *end;
    const char *fail_at;
    const char *what;
    struct sy_json_envelope *env;
};

static bool fail(struct scanner *s, const char *at, const char *what)
{
    if (s->what == NULL) {
        s->fail_at = at;
        s->what = what;
    }
    return false;
}

static void skip_ws(struct scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) {
        s->p++;
    }
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return -1;
        }
        v = v << 4 | d;
    }
    return v;
}

/* Length of the UTF-8 sequence at p (1..4), or 0 when malformed (overlong, surrogate, > U+10FFFF).
 */
static int utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    int n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (end - p < n) {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* s->p at the opening quote; on success s->p is past the closing quote. */
/*
 * Skip 8 bytes at a time while none of them is a quote, a backslash, a control
 * character or a non-ASCII byte: the long runs of plain text in an event body.
 * A false alarm only sends the bytes through the byte-by-byte path.
 */
static const char *skip_plain(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
        uint64_t special =
            ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) | w;
        if (special & highs) {
            break;
        }
        p += 8;
    }
    return p;
}

static bool scan_string(struct scanner *s, struct sy_json_span *span)
{
    const char *start = ++s->p;
    while (s->p < s->end) {
        s->p = skip_plain(s->p, s->end);
        if (s->p >= s->end) {
            break;
        }
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            if (span != NULL) {
                span->kind = SY_JSON_STRING;
                span->p = start;
                span->len = (size_t)(s->p - start);
            }
            s->p++;
            return true;
        }
        if (c < 0x20) {
            return fail(s, s->p, "control character in a string");
        }
        if (c == '\\') {
            if (s->end - s->p < 2) {
                break;
            }
            char e = s->p[1];
            if (e == 'u') {
                if (s->end - s->p < 6) {
                    return fail(s, s->p, "truncated \\u escape");
                }
                int v = hex4(s->p + 2);
                if (v < 0) {
                    return fail(s, s->p, "invalid \\u escape");
                }
                if (v == 0) {
                    return fail(s, s->p, "\\u0000 (NUL) is not allowed");
                }
                s->p += 6;
                if (v >= 0xdc00 && v <= 0xdfff) {
                    return fail(s, s->p - 6, "invalid Unicode: lone low surrogate");
                }
                if (v >= 0xd800 && v <= 0xdbff) {
                    int lo = s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u'
                                 ? hex4(s->p + 2)
                                 : -1;
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        return fail(s, s->p - 6, "invalid Unicode: lone high surrogate");
                    }
                    s->p += 6;
                }
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' &&
                e != 't') {
                return fail(s, s->p, "invalid escape");
            }
            s->p += 2;
            continue;
        }
        if (c < 0x80) {
            s->p++;
            continue;
        }
        int n = utf8_len((const unsigned char *)s->p, (const unsigned char *)s->end);
        if (n == 0) {
            return fail(s, s->p, "invalid UTF-8");
        }
        s->p += n;
    }
    return fail(s, s->p, "unterminated string");
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool scan_number(struct scanner *s)
{
    const char *start = s->p;
    if (*s->p == '-') {
        s->p++;
    }
    if (s->p >= s->end || !is_digit(*s->p)) {
        return fail(s, start, "invalid number");
    }
    if (*s->p == '0') {
        s->p++;
    } else {
        while (s->p < s->end && is_digit(*s->p)) {
            s->p++;
        }
    }
    if (s->p < s->end && is_digit(*s->p)) {
        return fail(s, start, "invalid number: leading zero");
    }
    bool real = false;
    if (s->p < s->end && *s->p == '.') {
        real = true;
        s->p++;
        if (s->p >= s->end || !is_digit(*s->p)) {
            return fail(s, start, "invalid number");
        }
        while (s->p < s->end && is_digit(*s->p)) {
            s->p++;
        }
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        real = true;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }
        if (s->p >= s->end || !is_digit(*s->p)) {
            return fail(s, start, "invalid number");
        }
        while (s->p < s->end && is_digit(*s->p)) {
            s->p++;
        }
    }
    size_t len = (size_t)(s->p - start);
    char buf[64];
    if (!real) {
        size_t digits = len - (*start == '-');
        if (digits < 19) {
            return true;
        }
        if (len >= sizeof(buf)) {
            return fail(s, start, "too big integer");
        }
        memcpy(buf, start, len);
        buf[len] = '\0';
        errno = 0;
        (void)strtoll(buf, NULL, 10);
        return errno == ERANGE ? fail(s, start, "too big integer") : true;
    }
    char *tmp = len < sizeof(buf) ? buf : malloc(len + 1);
    if (tmp == NULL) {
        return fail(s, start, "out of memory");
    }
    memcpy(tmp, start, len);
    tmp[len] = '\0';
    errno = 0;
    double v = strtod(tmp, NULL);
    bool overflow = errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL);
    if (tmp != buf) {
        free(tmp);
    }
    /* like jansson: overflow to infinity is an error, underflow to zero is not */
    return overflow ? fail(s, start, "real number overflow") : true;
}

const char *sy_json_string_at(const char *p, const char *end, struct sy_json_span *span,
                              const char **what)
{
    struct scanner s = {.text = p, .p = p, .end = end};
    if (!scan_string(&s, span)) {
        *what = s.what;
        return NULL;
    }
    return s.p;
}

const char *sy_json_number_at(const char *p, const char *end, bool *is_real, const char **what)
{
    struct scanner s = {.text = p, .p = p, .end = end};
    if (!scan_number(&s)) {
        *what = s.what;
        return NULL;
    }
    *is_real = memchr(p, '.', (size_t)(s.p - p)) != NULL || memchr(p, 'e', (size_t)(s.p - p)) ||
               memchr(p, 'E', (size_t)(s.p - p));
    return s.p;
}

static bool match_word(struct scanner *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return fail(s, s->p, "invalid token");
    }
    s->p += n;
    return true;
}

/* Which span (if any) a member's value goes to, by the path to it. */
static struct sy_json_span *slot_for(struct scanner *s, int depth,
                                     const struct sy_json_span *parent,
                                     const struct sy_json_span *key)
{
    struct sy_json_envelope *e = s->env;
#define KEY_IS(lit) (key->len == sizeof(lit) - 1 && memcmp(key->p, lit, sizeof(lit) - 1) == 0)
    if (depth == 1) {
        return KEY_IS("id")            ? &e->id
               : KEY_IS("type")        ? &e->type
               : KEY_IS("event")       ? &e->event
               : KEY_IS("integration") ? &e->integration
               : KEY_IS("source")      ? &e->source
               : KEY_IS("data")        ? &e->data
               : KEY_IS("timestamp")   ? &e->timestamp
                                       : NULL;
    }
    if (depth == 2 && parent == &e->integration) {
        return KEY_IS("id")     ? &e->integration_id
               : KEY_IS("type") ? &e->integration_type
               : KEY_IS("name") ? &e->integration_name
                                : NULL;
    }
    if (depth == 2 && parent == &e->source) {
        return KEY_IS("integration_id") ? &e->source_integration_id
               : KEY_IS("type")         ? &e->source_type
               : KEY_IS("name")         ? &e->source_name
                                        : NULL;
    }
#undef KEY_IS
    return NULL;
}

/*
 * Iterative scan with an explicit stack of container kinds, so hostile
 * nesting cannot exhaust the C stack.
 */
static bool scan_value_tree(struct scanner *s)
{
    char stack[SY_JSON_MAX_DEPTH + 1];
    int depth = 0;
    /* the depth-1 member whose object is the open depth-2 container, if any */
    const struct sy_json_span *parent = NULL;
    struct sy_json_span *slot = NULL;
    struct sy_json_span *open_slot[3] = {NULL, NULL, NULL};
    const char *open_at[3] = {NULL, NULL, NULL};
    bool root = true;

    for (;;) {
        /* parse one value */
        skip_ws(s);
        if (s->p >= s->end) {
            return fail(s, s->p, root ? "'[' or '{' expected" : "unexpected end of input");
        }
        const char *vstart = s->p;
        char c = *s->p;
        if (root && c != '{' && c != '[') {
            return fail(s, s->p, "'[' or '{' expected");
        }
        root = false;
        if (c == '{' || c == '[') {
            if (depth == SY_JSON_MAX_DEPTH) {
                return fail(s, s->p, "maximum parsing depth reached");
            }
            if (depth == 1) {
                parent = c == '{' ? slot : NULL;
            }
            if (depth < 3) {
                open_slot[depth] = slot;
                open_at[depth] = vstart;
            }
            stack[++depth] = c;
            if (depth == 1) {
                s->env->root = c == '{' ? SY_JSON_OBJECT : SY_JSON_ARRAY;
            }
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == (c == '{' ? '}' : ']')) {
                s->p++;
                goto closed;
            }
            if (c == '[') {
                slot = NULL;
                continue; /* first element */
            }
            goto member;
        }
        if (c == '"') {
            struct sy_json_span span;
            if (!scan_string(s, &span)) {
                return false;
            }
            if (slot) {
                *slot = span;
            }
        } else if (c == '-' || is_digit(c)) {
            if (!scan_number(s)) {
                return false;
            }
            if (slot) {
                slot->kind = SY_JSON_NUMBER;
            }
        } else if (c == 't' || c == 'f') {
            if (!match_word(s, c == 't' ? "true" : "false", c == 't' ? 4 : 5)) {
                return false;
            }
            if (slot) {
                slot->kind = SY_JSON_BOOL;
            }
        } else if (c == 'n') {
            if (!match_word(s, "null", 4)) {
                return false;
            }
            if (slot) {
                slot->kind = SY_JSON_NULL;
            }
        } else {
            return fail(s, s->p, "invalid token");
        }
        goto after_value;

    closed:
        /* a container just ended at depth; record it in its slot */
        if (depth <= 3 && open_slot[depth - 1] != NULL) {
            struct sy_json_span *os = open_slot[depth - 1];
            os->kind = stack[depth] == '{' ? SY_JSON_OBJECT : SY_JSON_ARRAY;
            os->p = open_at[depth - 1];
            os->len = (size_t)(s->p - open_at[depth - 1]);
        }
        if (depth == 2) {
            parent = NULL;
        }
        depth--;
        if (depth == 0) {
            return true;
        }

    after_value:
        skip_ws(s);
        if (s->p >= s->end) {
            return fail(s, s->p, "unexpected end of input");
        }
        if (*s->p == ',') {
            s->p++;
            if (stack[depth] == '[') {
                slot = NULL;
                continue;
            }
            goto member;
        }
        if (*s->p == (stack[depth] == '{' ? '}' : ']')) {
            s->p++;
            goto closed;
        }
        return fail(s, s->p, stack[depth] == '{' ? "',' or '}' expected" : "',' or ']' expected");

    member:
        skip_ws(s);
        if (s->p >= s->end || *s->p != '"') {
            return fail(s, s->p, "string or '}' expected");
        }
        struct sy_json_span key;
        if (!scan_string(s, &key)) {
            return false;
        }
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':') {
            return fail(s, s->p, "':' expected");
        }
        s->p++;
        slot = slot_for(s, depth, parent, &key);
        if (slot != NULL) {
            memset(slot, 0, sizeof(*slot));
        }
        /* a repeated object member replaces the first one wholly, as in jansson */
        if (slot == &s->env->integration) {
            memset(&s->env->integration_id, 0, sizeof(s->env->integration_id));
            memset(&s->env->integration_type, 0, sizeof(s->env->integration_type));
            memset(&s->env->integration_name, 0, sizeof(s->env->integration_name));
        } else if (slot == &s->env->source) {
            memset(&s->env->source_integration_id, 0, sizeof(s->env->source_integration_id));
            memset(&s->env->source_type, 0, sizeof(s->env->source_type));
            memset(&s->env->source_name, 0, sizeof(s->env->source_name));
        }
    }
}

bool sy_json_scan_envelope(const char *text, size_t len, struct sy_json_envelope *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct scanner s = {.text = text, .p = text, .end = text + len, .env = out};
    bool ok = scan_value_tree(&s);
    if (ok) {
        skip_ws(&s);
        if (s.p != s.end) {
            ok = fail(&s, s.p, "end of file expected");
        }
    }
    if (!ok) {
        int line = 1, col = 1;
        for (const char *q = text; q < s.fail_at; q++) {
            if (*q == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        snprintf(err, errlen, "%s at line %d, column %d", s.what, line, col);
        memset(out, 0, sizeof(*out));
    }
    return ok;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

long sy_json_unescape(const struct sy_json_span *s, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = s->p, *end = s->p + s->len;
    while (p < end) {
        char tmp[4];
        size_t w;
        if (*p != '\\') {
            tmp[0] = *p++;
            w = 1;
        } else {
            char e = p[1];
            p += 2;
            switch (e) {
            case 'b':
                tmp[0] = '\b';
                w = 1;
                break;
            case 'f':
                tmp[0] = '\f';
                w = 1;
                break;
            case 'n':
                tmp[0] = '\n';
                w = 1;
                break;
            case 'r':
                tmp[0] = '\r';
                w = 1;
                break;
            case 't':
                tmp[0] = '\t';
                w = 1;
                break;
            case 'u': {
                uint32_t cp = (uint32_t)hex4(p);
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo = (uint32_t)hex4(p + 2);
                    p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                w = put_utf8(tmp, cp);
                break;
            }
            default:
                tmp[0] = e;
                w = 1;
            }
        }
        if (n + w > cap) {
            return -1;
        }
        memcpy(out + n, tmp, w);
        n += w;
    }
    return (long)n;
}

/*
 * Skip the value at s->p (whitespace before it skipped). The text was
 * validated before, so this only tracks nesting and strings; on text that
 * was not, it stops at the end without reading past it.
 */
static bool skip_value(struct scanner *s)
{
    int depth = 0;
    do {
        skip_ws(s);
        if (s->p >= s->end) {
            return false;
        }
        char c = *s->p;
        if (c == '"') {
            if (!scan_string(s, NULL)) {
                return false;
            }
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            depth--;
            s->p++;
        } else if (c == ',' || c == ':') {
            s->p++;
        } else {
            const char *from = s->p;
            while (s->p < s->end && strchr(",:]} \t\r\n", *s->p) == NULL) {
                s->p++;
            }
            s->p += s->p == from; /* a NUL byte: step over it */
        }
    } while (depth > 0);
    return true;
}

/* True when the (escaped) key span decodes to exactly seg[0..len). */
static bool key_equals(const struct sy_json_span *key, const char *seg, size_t len)
{
    if (memchr(key->p, '\\', key->len) == NULL) {
        return key->len == len && memcmp(key->p, seg, len) == 0;
    }
    char buf[256];
    long n = len <= sizeof(buf) ? sy_json_unescape(key, buf, sizeof(buf)) : -1;
    return n >= 0 && (size_t)n == len && memcmp(buf, seg, len) == 0;
}

/* s->p at '{': move to the value of member seg (the last one, as jansson keeps). */
static bool find_member(struct scanner *s, const char *seg, size_t len)
{
    const char *found = NULL;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        return false;
    }
    for (;;) {
        skip_ws(s);
        struct sy_json_span key;
        if (s->p >= s->end || *s->p != '"' || !scan_string(s, &key)) {
            return false;
        }
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':') {
            return false;
        }
        s->p++;
        skip_ws(s);
        if (key_equals(&key, seg, len)) {
            found = s->p;
        }
        if (!skip_value(s)) {
            return false;
        }
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        break;
    }
    if (found != NULL) {
        s->p = found;
    }
    return found != NULL;
}

/* s->p at '[': move to element 'index'. */
static bool find_element(struct scanner *s, unsigned long index)
{
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        return false;
    }
    for (unsigned long i = 0; i < index; i++) {
        if (!skip_value(s)) {
            return false;
        }
        skip_ws(s);
        if (s->p >= s->end || *s->p != ',') {
            return false;
        }
        s->p++;
    }
    skip_ws(s);
    return s->p < s->end;
}

bool sy_json_lookup(const char *text, size_t len, const char *path, struct sy_json_span *out)
{
    struct scanner s = {.text = text, .p = text, .end = text + len};
    memset(out, 0, sizeof(*out));
    const char *seg = path;
    for (;;) {
        size_t n = strcspn(seg, ".");
        skip_ws(&s);
        if (n == 0 || s.p >= s.end) {
            return false;
        }
        bool numeric = strspn(seg, "0123456789") == n && n < 10;
        if (*s.p == '{') {
            if (!find_member(&s, seg, n)) {
                return false;
            }
        } else if (*s.p == '[' && numeric) {
            if (!find_element(&s, strtoul(seg, NULL, 10))) {
                return false;
            }
        } else {
            return false;
        }
        if (seg[n] == '\0') {
            break;
        }
        seg += n + 1;
    }
    skip_ws(&s);
    const char *start = s.p;
    char c = start < s.end ? *start : '\0';
    if (c == '"') {
        return scan_string(&s, out);
    }
    if (!skip_value(&s)) {
        return false;
    }
    out->kind = c == '{'                ? SY_JSON_OBJECT
                : c == '['              ? SY_JSON_ARRAY
                : c == 't' || c == 'f'  ? SY_JSON_BOOL
                : c == 'n'              ? SY_JSON_NULL
                                        : SY_JSON_NUMBER;
    out->p = start;
    out->len = (size_t)(s.p - start);
    return true;
}
