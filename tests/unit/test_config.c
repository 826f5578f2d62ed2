#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "files.h"
#include "util/log.h"

/* Each tests/data/config/NAME.lua starts with "-- expect: ok" or "-- expect: LINE: text". */
static void run_case(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    size_t len;
    char *src = read_all(path, &len);
    CHECK(src != NULL && strncmp(src, "-- expect: ", 11) == 0);
    if (src == NULL) {
        return;
    }
    char *expect = src + 11;
    expect[strcspn(expect, "\n")] = '\0';

    struct sy_config cfg;
    struct sy_error err;
    memset(&err, 0, sizeof(err));
    CHECK(sy_config_defaults(&cfg) == SY_OK);
    int rc = sy_config_load(&cfg, path, &err);
    char msg[1024];
    sy_error_format(&err, msg, sizeof(msg));
    if (strcmp(expect, "ok") == 0) {
        if (rc != SY_OK) {
            fprintf(stderr, "%s: unexpected error: %s\n", name, msg);
            check_failures++;
        }
    } else {
        int line = (int)strtol(expect, NULL, 10);
        const char *text = strchr(expect, ':') + 2;
        char want[64];
        snprintf(want, sizeof(want), ":%d:", line);
        if (rc == SY_OK || strstr(msg, want) == NULL || strstr(msg, text) == NULL ||
            strstr(msg, name) == NULL) {
            fprintf(stderr, "%s: got \"%s\" (rc %d), want line %d and \"%s\"\n", name, msg, rc,
                    line, text);
            check_failures++;
        }
    }
    check_count++;
    sy_config_dispose(&cfg);
    free(src);
}

static void test_full_values(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/full.lua", dir);
    struct sy_config cfg;
    struct sy_error err;
    sy_config_defaults(&cfg);
    CHECK(sy_config_load(&cfg, path, &err) == SY_OK);
    CHECK(cfg.n_listen == 2);
    CHECK_STR(cfg.listen[1], "[::1]:8081");
    CHECK(cfg.http.threads == 3);
    CHECK(cfg.http.http2);
    CHECK(cfg.http.idle_timeout_ms == 90000);
    CHECK(cfg.http.request_timeout_ms == 5000);
    CHECK_STR(cfg.admin.listen, "127.0.0.1:9999");
    CHECK_STR(cfg.admin.token, "tok");
    CHECK_STR(cfg.webhook.path, "/hooks/in");
    /* an unset env() leaves a hole; the others stay in order */
    CHECK(cfg.webhook.n_secrets == 2);
    CHECK_STR(cfg.webhook.secrets[0], "second");
    CHECK_STR(cfg.webhook.secrets[1], "third");
    CHECK(cfg.webhook.tolerance_s == 120);
    CHECK(cfg.webhook.max_body == 524288);
    CHECK(cfg.webhook.n_allow == 2);
    CHECK(cfg.webhook.n_trusted_proxies == 1);
    CHECK(cfg.store.synchronous == SY_SYNC_NORMAL);
    CHECK(cfg.store.queue == 100);
    CHECK(cfg.store.max_batch == 50);
    CHECK(cfg.store.checkpoint_at == UINT64_C(8) << 20);
    CHECK(cfg.admin.store_timeout_ms == 500);
    /* relative to the config file's folder */
    CHECK(strncmp(cfg.store.url, "sqlite:/", 8) == 0);
    CHECK(strstr(cfg.store.url, "/data/config/data/test.db") != NULL);
    CHECK(cfg.dedupe_retention_ms == UINT64_C(3) * 86400000);
    CHECK(cfg.log.level == SY_LOG_WARN);
    CHECK(cfg.log.json);
    sy_config_dispose(&cfg);

    /* defaults */
    sy_config_defaults(&cfg);
    CHECK(cfg.webhook.tolerance_s == 300);
    CHECK(cfg.webhook.max_body == 1048576);
    CHECK(cfg.dedupe_retention_ms == UINT64_C(7) * 86400000);
    CHECK(cfg.store.synchronous == SY_SYNC_FULL);
    CHECK(cfg.store.checkpoint_at == UINT64_C(64) << 20);
    CHECK_STR(cfg.admin.listen, "127.0.0.1:9091");
    CHECK(cfg.admin.store_timeout_ms == 2000);
    CHECK(cfg.http.threads >= 1);
    sy_config_dispose(&cfg);

    /* a missing file names itself */
    sy_config_defaults(&cfg);
    CHECK(sy_config_load(&cfg, "/nonexistent/switchyard.lua", &err) == SY_EINVAL);
    CHECK(strstr(err.msg, "cannot read config") != NULL);
    sy_config_dispose(&cfg);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        return 2;
    }
    char **names;
    size_t n = list_dir(argv[1], ".lua", &names);
    CHECK(n >= 10);
    for (size_t i = 0; i < n; i++) {
        run_case(argv[1], names[i]);
        free(names[i]);
    }
    free(names);
    test_full_values(argv[1]);
    CHECK_DONE();
}
