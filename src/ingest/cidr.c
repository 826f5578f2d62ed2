#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/cidr.h"

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void normalize(struct sy_addr *a)
{
    if (a->family == AF_INET6 && memcmp(a->b, v4mapped, 12) == 0) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->family = AF_INET;
    }
}

bool sy_addr_parse(const char *s, size_t len, struct sy_addr *out)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1])) {
        len--;
    }
    char tmp[64];
    if (len == 0 || len >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, tmp, out->b) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, tmp, out->b) == 1) {
        out->family = AF_INET6;
        normalize(out);
        return true;
    }
    return false;
}

bool sy_addr_from_sockaddr(const struct sockaddr *sa, struct sy_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        out->family = AF_INET;
        memcpy(out->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        out->family = AF_INET6;
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        normalize(out);
        return true;
    }
    return false;
}

void sy_addr_format(const struct sy_addr *a, char *buf, size_t len)
{
    if (inet_ntop(a->family, a->b, buf, (socklen_t)len) == NULL && len > 0) {
        buf[0] = '\0';
    }
}

bool sy_cidr_parse(const char *s, struct sy_cidr *out)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (!sy_addr_parse(s, alen, &out->net)) {
        return false;
    }
    bool mapped_v4 = out->net.family == AF_INET && memchr(s, ':', alen) != NULL;
    int max = out->net.family == AF_INET ? 32 : 128;
    if (slash == NULL) {
        out->bits = max;
        return true;
    }
    const char *p = slash + 1;
    if (*p == '\0' || strlen(p) > 3) {
        return false;
    }
    int bits = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            return false;
        }
        bits = bits * 10 + (*p - '0');
    }
    if (mapped_v4) {
        /* "::ffff:10.0.0.0/104" counts bits over the IPv6 form */
        if (bits < 96 || bits > 128) {
            return false;
        }
        bits -= 96;
    }
    if (bits > max) {
        return false;
    }
    out->bits = bits;
    /* clear host bits so "10.1.2.3/8" means 10.0.0.0/8 */
    for (int i = 0; i < 16; i++) {
        int keep = bits - i * 8;
        if (keep >= 8) {
            continue;
        }
        out->net.b[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
    return true;
}

bool sy_cidr_contains(const struct sy_cidr *c, const struct sy_addr *a)
{
    if (c->net.family != a->family) {
        return false;
    }
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->net.b, a->b, (size_t)full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->net.b[full] & mask) == (a->b[full] & mask);
}

bool sy_cidr_list_contains(const struct sy_cidr *list, size_t n, const struct sy_addr *a)
{
    for (size_t i = 0; i < n; i++) {
        if (sy_cidr_contains(&list[i], a)) {
            return true;
        }
    }
    return false;
}

void sy_client_addr(const struct sy_addr *peer, const char *xff, size_t xff_len,
                    const struct sy_cidr *trusted, size_t n_trusted, struct sy_addr *out)
{
    *out = *peer;
    if (xff == NULL || !sy_cidr_list_contains(trusted, n_trusted, peer)) {
        return;
    }
    size_t end = xff_len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',') {
            start--;
        }
        struct sy_addr hop;
        if (!sy_addr_parse(xff + start, end - start, &hop)) {
            return;
        }
        *out = hop;
        if (!sy_cidr_list_contains(trusted, n_trusted, &hop)) {
            return;
        }
        end = start > 0 ? start - 1 : 0;
    }
}
