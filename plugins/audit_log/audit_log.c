/*
 * audit_log: append one JSON line per event to a file, for a compliance trail
 * of everything Unizo delivered. Every write is a single O_APPEND write(2),
 * so several workers can share the file.
 * Config: plugins = { audit_log = { config = { path = "/var/log/switchyard/audit.jsonl" } } }
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <switchyard/plugin.h>

struct state {
    const struct sy_plugin_host *host;
    int fd;
};

static int init(const struct sy_plugin_host *host, const char *config_json, void **out)
{
    char *path = host->config_get(config_json, "path");
    if (path == NULL) {
        host->log(SY_PLUGIN_ERROR, "audit_log", "config needs path = \"<file>\"");
        return 1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    host->free(path);
    if (fd < 0) {
        host->log(SY_PLUGIN_ERROR, "audit_log", "cannot open the audit file");
        return 1;
    }
    struct state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        close(fd);
        return 1;
    }
    st->host = host;
    st->fd = fd;
    *out = st;
    return SY_OK;
}

/* Write 's' as a JSON string (the ids and types are printable, but be exact anyway). */
static size_t put_json_string(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (n < cap) {
        out[n++] = '"';
    }
    for (; s && *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    if (n < cap) {
        out[n++] = '"';
    }
    return n;
}

static int handle(void *state, const struct sy_event *ev, struct sy_plugin_call *call)
{
    (void)call;
    struct state *st = state;
    const struct sy_plugin_host *h = st->host;
    char line[2048];
    size_t n = (size_t)snprintf(line, sizeof(line), "{\"at\":%lld,\"id\":", (long long)time(NULL));
    n += put_json_string(line + n, sizeof(line) - n, h->event_id(ev));
    n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"type\":");
    n += put_json_string(line + n, sizeof(line) - n, h->event_type(ev));
    n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"integration\":");
    n += put_json_string(line + n, sizeof(line) - n, h->event_integration(ev));
    n += (size_t)snprintf(line + n, sizeof(line) - n, "}\n");
    if (n >= sizeof(line) || write(st->fd, line, n) != (ssize_t)n || fdatasync(st->fd) != 0) {
        return SY_RETRY;
    }
    return SY_OK;
}

static void fini(void *state)
{
    struct state *st = state;
    if (st != NULL) {
        close(st->fd);
        free(st);
    }
}

static const char *const events[] = {"*", NULL};

SY_PLUGIN_DEFINE = {
    .abi_version = SY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct sy_plugin),
    .name = "audit_log",
    .version = "1.0.0",
    .events = events,
    .init = init,
    .handle = handle,
    .fini = fini,
};
