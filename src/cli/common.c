#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/file.h"

const char *sy_cli_config_path(const char *path)
{
    if (path != NULL) {
        return path;
    }
    const char *env = getenv("SWITCHYARD_CONFIG");
    if (env != NULL && env[0] != '\0') {
        return env;
    }
    if (access("switchyard.lua", R_OK) == 0) {
        return "switchyard.lua";
    }
    if (access(SY_DEMO_CONFIG, R_OK) == 0) {
        return SY_DEMO_CONFIG;
    }
    return NULL;
}

int sy_cli_load_config(const char *path, struct sy_config *cfg)
{
    if (sy_config_defaults(cfg) != SY_OK) {
        fprintf(stderr, "switchyard: out of memory\n");
        return 1;
    }
    if (path == NULL) {
        return 0;
    }
    struct sy_error err;
    if (sy_config_load(cfg, path, &err) != SY_OK) {
        char msg[1024];
        sy_error_format(&err, msg, sizeof(msg));
        fprintf(stderr, "%s\n", msg);
        sy_config_dispose(cfg);
        return 1;
    }
    return 0;
}

char *sy_cli_read_file(const char *path, size_t max, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    int rc = sy_file_read_stream(f, max, &buf, len);
    if (!is_stdin) {
        fclose(f);
    }
    if (rc == SY_EFULL) {
        fprintf(stderr, "%s: larger than %zu bytes\n", path, max);
    } else if (rc != SY_OK) {
        fprintf(stderr, "%s: %s\n", path, rc == SY_ENOMEM ? "out of memory" : "read error");
    }
    return buf;
}

char *sy_cli_secret(const char *env_var, const char *file)
{
    if (env_var != NULL) {
        const char *v = getenv(env_var);
        if (v == NULL || v[0] == '\0') {
            fprintf(stderr, "switchyard: environment variable %s is not set or empty\n", env_var);
            return NULL;
        }
        return strdup(v);
    }
    size_t len = 0;
    char *s = sy_cli_read_file(file, 64 * 1024, &len);
    if (s == NULL) {
        return NULL;
    }
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r')) {
        s[--len] = '\0';
    }
    if (len == 0) {
        fprintf(stderr, "%s: the secret file is empty\n", file);
        free(s);
        return NULL;
    }
    return s;
}

void sy_cli_glob_quote(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out);
    for (; *s && n + 2 < cap; s++) {
        if (strchr("*?[]\\", *s) != NULL) {
            out[n++] = '\\';
        }
        out[n++] = *s;
    }
    out[n] = '\0';
}
