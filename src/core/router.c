#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/json_scan.h"
#include "core/router.h"

static bool seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static bool is_sep(char c)
{
    return c == '.' || c == ':';
}

bool sy_pattern_valid(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len > 255) {
        return false;
    }
    /* segments of [A-Za-z0-9_-], or "*", joined by '.' or ':' */
    size_t seg_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && !is_sep(p[i])) {
            if (!seg_char(p[i]) && p[i] != '*') {
                return false;
            }
            continue;
        }
        size_t n = i - seg_start;
        if (n == 0) {
            return false;
        }
        if (memchr(p + seg_start, '*', n) != NULL && n != 1) {
            return false; /* '*' is a whole segment or nothing */
        }
        seg_start = i + 1;
    }
    return true;
}

struct seg {
    const char *p;
    size_t len;
};

/* The type's segment starting at offset 'at' (at <= len), and the offset of the next one. */
static struct seg type_seg(const char *type, size_t len, size_t at, size_t *next)
{
    size_t e = at;
    while (e < len && !is_sep(type[e])) {
        e++;
    }
    *next = e + 1; /* len + 1 once the last segment is taken */
    return (struct seg){type + at, e - at};
}

static bool is_star(const struct seg *g)
{
    return g->len == 1 && g->p[0] == '*';
}

bool sy_pattern_match(const char *pattern, const char *type, size_t len)
{
    /* a valid pattern is at most 255 bytes: at most 128 segments */
    struct seg ps[128];
    size_t np = 0, plen = strlen(pattern), start = 0;
    for (size_t i = 0; i <= plen; i++) {
        if (i == plen || is_sep(pattern[i])) {
            if (np == 128) {
                return false;
            }
            ps[np++] = (struct seg){pattern + start, i - start};
            start = i + 1;
        }
    }
    /*
     * '*' matches one or more segments. Greedy matching with a return to the last star
     * when a segment does not match: O(np * len) at worst. The type is walked by offset,
     * so it may hold any number of segments.
     */
    size_t p = 0, t = 0, star = SIZE_MAX, mark = 0, next;
    while (t <= len) {
        struct seg ts = type_seg(type, len, t, &next);
        if (p < np && is_star(&ps[p])) {
            star = p++;
            t = mark = next; /* the star takes one segment, and maybe more later */
        } else if (p < np && ps[p].len == ts.len && memcmp(ps[p].p, ts.p, ts.len) == 0) {
            p++;
            t = next;
        } else if (star != SIZE_MAX) {
            p = star + 1;
            type_seg(type, len, mark, &mark); /* the last star takes one more segment */
            t = mark;
        } else {
            return false;
        }
    }
    return p == np;
}

bool sy_route_matches(const struct sy_route *r, const char *type, size_t type_len,
                      const char *integration, const char *category)
{
    if (r->integration != NULL &&
        (integration == NULL || strcmp(r->integration, integration) != 0)) {
        return false;
    }
    if (r->category != NULL && (category == NULL || strcmp(r->category, category) != 0)) {
        return false;
    }
    /* switchyard's own events go only to rules that name them: "*" is every delivery */
    bool own = type_len >= 11 && memcmp(type, "switchyard.", 11) == 0;
    for (size_t i = 0; i < r->n_on; i++) {
        if ((!own || strncmp(r->on[i], "switchyard.", 11) == 0) &&
            sy_pattern_match(r->on[i], type, type_len)) {
            return true;
        }
    }
    return false;
}

bool sy_key_path_valid(const char *path)
{
    size_t len = strlen(path);
    if (len == 0 || len > 255) {
        return false;
    }
    bool seg_empty = true;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '.') {
            if (seg_empty) {
                return false;
            }
            seg_empty = true;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '-') {
            seg_empty = false;
        } else {
            return false;
        }
    }
    return !seg_empty;
}

/* Append one key part (decoded) to 'b'; false when it does not fit. */
static bool put_part(const struct sy_json_span *v, char *b, size_t *n, size_t cap)
{
    if (v->kind == SY_JSON_STRING) {
        long w = sy_json_unescape(v, b + *n, cap - *n);
        if (w < 0) {
            return false;
        }
        *n += (size_t)w;
        return true;
    }
    if (v->len > cap - *n) {
        return false;
    }
    memcpy(b + *n, v->p, v->len);
    *n += v->len;
    return true;
}

long sy_route_key(const struct sy_route *r, const char *body, size_t len, char *out)
{
    if (r->n_key == 0) {
        return -1;
    }
    struct sy_json_span parts[16];
    size_t n_parts = r->n_key < 16 ? r->n_key : 16;
    size_t total = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (!sy_json_lookup(body, len, r->key[i], &parts[i]) || parts[i].kind == SY_JSON_NULL) {
            return -1;
        }
        total += parts[i].len + 1; /* decoding never makes a value longer */
    }
    /* short keys are kept as they are; long ones are hashed so any length fits */
    char small[SY_KEY_MAX + 16];
    char *buf = total <= sizeof(small) ? small : malloc(total);
    if (buf == NULL) {
        return -1;
    }
    size_t n = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < n_parts; i++) {
        if (i > 0) {
            buf[n++] = '\x1f';
        }
        ok = put_part(&parts[i], buf, &n, total);
    }
    long rc = -1;
    if (ok && n <= SY_KEY_MAX) {
        memcpy(out, buf, n);
        out[n] = '\0';
        rc = (long)n;
    } else if (ok) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)buf, n, md);
        memcpy(out, "sha256:", 7);
        for (size_t i = 0; i < sizeof(md); i++) {
            out[7 + 2 * i] = "0123456789abcdef"[md[i] >> 4];
            out[8 + 2 * i] = "0123456789abcdef"[md[i] & 15];
        }
        out[7 + 2 * sizeof(md)] = '\0';
        rc = 7 + 2 * (long)sizeof(md);
    }
    if (buf != small) {
        free(buf);
    }
    return rc;
}
