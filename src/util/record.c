#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/record.h"

void sy_record_safe_name(const char *s, size_t len, char *out, size_t cap)
{
    /* [A-Za-z0-9._-] as they are, every other byte as %XX: distinct ids, distinct names */
    size_t n = 0;
    bool fits = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
        if (n + (plain ? 1 : 3) + 1 > cap || n + (plain ? 1 : 3) > SY_RECORD_NAME_MAX) {
            fits = false;
            break;
        }
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = "0123456789ABCDEF"[c >> 4];
            out[n++] = "0123456789ABCDEF"[c & 15];
        }
    }
    if (!fits) {
        /* too long for a file name: a prefix, then the SHA-256 of the whole id */
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)s, len, md);
        size_t keep = SY_RECORD_NAME_MAX - 1 - 2 * sizeof(md);
        n = n < keep ? n : keep;
        /* never cut a %XX in half */
        if (n >= 1 && out[n - 1] == '%') {
            n -= 1;
        } else if (n >= 2 && out[n - 2] == '%') {
            n -= 2;
        }
        out[n++] = '~';
        for (size_t i = 0; i < sizeof(md) && n + 2 < cap; i++) {
            out[n++] = "0123456789abcdef"[md[i] >> 4];
            out[n++] = "0123456789abcdef"[md[i] & 15];
        }
    }
    out[n] = '\0';
}

static void write_file(const char *path, const char *data, size_t len, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0640);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        sy_log(SY_LOG_WARN, "cannot write a recording", "path", path, NULL);
    }
    if (fd >= 0) {
        close(fd);
    }
}

void sy_record_delivery(const char *dir, const char *type, size_t type_len, const char *id,
                        size_t id_len, const char *category, const char *headers_json,
                        size_t headers_len, const char *body, size_t body_len)
{
    char name[600], path[4800];
    char safe_type[SY_RECORD_NAME_MAX + 1], safe_id[SY_RECORD_NAME_MAX + 1];
    sy_record_safe_name(type, type_len, safe_type, sizeof(safe_type));
    sy_record_safe_name(id, id_len, safe_id, sizeof(safe_id));
    snprintf(name, sizeof(name), "%s--%s.json", safe_type, safe_id);
    snprintf(path, sizeof(path), "%s/deliveries/%s", dir, name);
    struct sy_buf b;
    sy_buf_init(&b, body_len * 6 + headers_len + 64);
    sy_buf_puts(&b, "{\"headers\": ");
    sy_buf_append(&b, headers_json, headers_len);
    if (category != NULL) {
        sy_buf_puts(&b, ",\n \"category\": ");
        sy_buf_json_string(&b, category, strlen(category));
    }
    sy_buf_puts(&b, ",\n \"body\": ");
    sy_buf_json_string(&b, body, body_len);
    sy_buf_puts(&b, "}\n");
    if (!b.failed) {
        write_file(path, b.data, b.len, O_TRUNC);
    }
    sy_buf_dispose(&b);
}

void sy_record_exchange(const char *dir, const char *event_id, const char *line, size_t len)
{
    char safe[SY_RECORD_NAME_MAX + 1], path[4800];
    sy_record_safe_name(event_id, strlen(event_id), safe, sizeof(safe));
    snprintf(path, sizeof(path), "%s/cassettes/%s.jsonl", dir, safe);
    write_file(path, line, len, O_APPEND);
}
