#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "unizo/request.h"
#include "util/error.h"
#include "util/parse.h"

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar without '%' (checked on its own): unreserved, sub-delims, ':' and '@'. */
static bool pchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL);
}

/* A segment that is "." or ".." once "%2e" is read as '.'. */
static bool dot_segment(const char *s, size_t len)
{
    size_t dots = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] == '.') {
            i++;
        } else if (i + 2 < len && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] | 0x20) == 'e') {
            i += 3;
        } else {
            return false;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

/*
 * Walk 'text' (len bytes): every byte a pchar, one of 'extra', or a valid %XX. With
 * 'segments', also refuse dot segments between the '/'. Returns NULL or the reason.
 */
static const char *check_chars(const char *text, size_t len, const char *extra, bool segments)
{
    size_t seg = 0;
    for (size_t i = 0; i <= len; i++) {
        if (segments && (i == len || text[i] == '/')) {
            if (i > seg && dot_segment(text + seg, i - seg)) {
                return "a '.' or '..' segment (it would name another resource)";
            }
            seg = i + 1;
        }
        if (i == len) {
            break;
        }
        char c = text[i];
        if (c == '%') {
            if (i + 2 >= len || !is_hex(text[i + 1]) || !is_hex(text[i + 2])) {
                return "a '%' not followed by two hex digits";
            }
            i += 2;
        } else if (!pchar(c) && strchr(extra, c) == NULL) {
            return (unsigned char)c < 0x20 || c == 0x7f ? "a control character (CR, LF, ...)"
                   : c == ' '                           ? "a space (percent-encode it)"
                   : (unsigned char)c >= 0x80           ? "a non-ASCII byte (percent-encode it)"
                                              : "a character that must be percent-encoded";
        }
    }
    return NULL;
}

int sy_unizo_request_check(const struct sy_unizo_request *req, char *err, size_t errlen)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    bool known = false;
    for (size_t i = 0; req->method != NULL && i < sizeof(methods) / sizeof(methods[0]); i++) {
        known = known || strcmp(req->method, methods[i]) == 0;
    }
    if (!known) {
        snprintf(err, errlen, "the method must be GET, POST, PUT, PATCH or DELETE");
        return SY_EINVAL;
    }
    if (req->path == NULL || req->path[0] != '/') {
        snprintf(err, errlen, "the path must start with '/'");
        return SY_EINVAL;
    }
    size_t plen = strlen(req->path);
    const char *why =
        plen > SY_UNIZO_PATH_MAX ? "more than 4096 bytes" : check_chars(req->path, plen, "/", true);
    if (why != NULL) {
        snprintf(err, errlen, "the path holds %s", why);
        return SY_EINVAL;
    }
    if (req->query != NULL) {
        size_t qlen = strlen(req->query);
        why = qlen > SY_UNIZO_QUERY_MAX ? "more than 8192 bytes"
                                        : check_chars(req->query, qlen, "/?", false);
        if (why != NULL) {
            snprintf(err, errlen, "the query holds %s", why);
            return SY_EINVAL;
        }
    }
    if (req->integration != NULL && !sy_header_value_ok(req->integration)) {
        snprintf(err, errlen,
                 "the integration must be 1 to %d visible ASCII characters (it is sent as the "
                 "integrationId header)",
                 SY_HEADER_VALUE_MAX);
        return SY_EINVAL;
    }
    if (req->idempotency_key != NULL && !sy_header_value_ok(req->idempotency_key)) {
        snprintf(err, errlen, "the Idempotency-Key must be visible ASCII");
        return SY_EINVAL;
    }
    return SY_OK;
}
