#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/engine.h"
#include "http/server.h"

static const char usage[] = "usage: switchyard check [-c FILE]\n"
                            "\n"
                            "Validate a config file without starting anything. Exit 0 when it is\n"
                            "usable, 1 with the file and line of the first problem otherwise.\n";

int sy_cli_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') {
            config = optarg;
        } else if (c == 'h') {
            fputs(usage, stdout);
            return 0;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    const char *path = sy_cli_config_path(config);
    struct sy_config cfg;
    if (sy_cli_load_config(path, &cfg) != 0) {
        return 1;
    }
    int rc = 0;
    const char *where = path ? path : "(built-in defaults)";
    const char *h2 = sy_server_http2_warning(&cfg);
    if (h2 != NULL) {
        fprintf(stderr, "%s: warning: %s\n", where, h2);
    }
    if (cfg.webhook.n_secrets == 0) {
        fprintf(stderr, "%s: webhook.secrets is empty: every delivery would be refused\n", where);
        rc = 1;
    }
    const char *tls[] = {cfg.http.tls_cert, cfg.http.tls_key};
    for (int i = 0; i < 2; i++) {
        if (tls[i] == NULL) {
            continue;
        }
        char *p = sy_config_resolve(&cfg, tls[i]);
        if (p == NULL || access(p, R_OK) != 0) {
            fprintf(stderr, "%s: cannot read TLS %s file %s\n", where, i ? "key" : "certificate",
                    p ? p : tls[i]);
            rc = 1;
        }
        free(p);
    }
    struct sy_error err = {0};
    long n_plugins = 0;
    long n_rules = sy_engine_check(&cfg, &n_plugins, &err);
    if (n_rules < 0) {
        char msg[2048];
        sy_error_format(&err, msg, sizeof(msg));
        fprintf(stderr, "%s\n", msg);
        rc = 1;
    }
    if (rc == 0) {
        printf("%s: ok (%zu listener%s, %zu secret%s, %ld rule%s, %ld plugin%s, store %s)\n", where,
               cfg.n_listen, cfg.n_listen == 1 ? "" : "s", cfg.webhook.n_secrets,
               cfg.webhook.n_secrets == 1 ? "" : "s", n_rules, n_rules == 1 ? "" : "s", n_plugins,
               n_plugins == 1 ? "" : "s", cfg.store.url);
    }
    sy_config_dispose(&cfg);
    return rc;
}
