#include <getopt.h>

#include <curl/curl.h>
#include <errno.h>
#include <h2o/version.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/engine.h"
#include "http/server.h"
#include "store/store.h"
#include "util/log.h"
#include "util/parse.h"

static const char usage[] =
    "usage: switchyard serve [-c FILE] [--listen ADDR:PORT] [--store URL] [--workers N]\n"
    "                        [--record DIR]\n"
    "\n"
    "Run the webhook server until SIGTERM or SIGINT.\n"
    "  -c, --config FILE   config file (default: $SWITCHYARD_CONFIG, ./switchyard.lua,\n"
    "                      then the demo config in examples/)\n"
    "  --listen ADDR:PORT  listen here instead of the config's 'listen'\n"
    "  --store URL         use this store instead of the config's 'store' (sqlite:PATH)\n"
    "  --workers N         run N workers instead of the config's 'workers' (0 = none)\n"
    "  --record DIR        save every accepted delivery as a test fixture in DIR/deliveries\n"
    "                      and every Unizo exchange in DIR/cassettes (API key redacted)\n";

/* Apply command-line overrides; relative store paths are relative to the current folder. */
static int apply_overrides(struct sy_config *cfg, const char *listen, const char *store)
{
    if (listen != NULL) {
        char host[256];
        unsigned port;
        if (!sy_split_hostport(listen, host, sizeof(host), &port)) {
            fprintf(stderr, "switchyard serve: --listen %s is not ADDRESS:PORT\n", listen);
            return 2;
        }
        for (size_t i = 0; i < cfg->n_listen; i++) {
            free(cfg->listen[i]);
        }
        cfg->n_listen = 1;
        cfg->listen[0] = strdup(listen);
    }
    if (store != NULL) {
        if (strncmp(store, "sqlite:", 7) != 0 || store[7] == '\0') {
            fprintf(stderr, "switchyard serve: --store %s: use sqlite:PATH\n", store);
            return 2;
        }
        char cwd[4096];
        size_t n = strlen(store) + sizeof(cwd) + 2;
        char *url = malloc(n);
        if (url == NULL || getcwd(cwd, sizeof(cwd)) == NULL) {
            free(url);
            return 1;
        }
        if (store[7] == '/') {
            snprintf(url, n, "%s", store);
        } else {
            snprintf(url, n, "sqlite:%s/%s", cwd, store + 7);
        }
        free(cfg->store.url);
        cfg->store.url = url;
    }
    return 0;
}

/* True when "ADDR:PORT" names a loopback address. */
static bool on_loopback(const char *listen)
{
    char host[256];
    unsigned port;
    if (!sy_split_hostport(listen, host, sizeof(host), &port)) {
        return false;
    }
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

int sy_cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"store", required_argument, NULL, 's'},
        {"workers", required_argument, NULL, 'w'},
        {"record", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *listen = NULL, *store_url = NULL;
    int64_t workers = -1;
    const char *record = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 's':
            store_url = optarg;
            break;
        case 'r':
            record = optarg;
            break;
        case 'w':
            if (!sy_parse_int64(optarg, strlen(optarg), &workers) || workers < 0 || workers > 256) {
                fprintf(stderr, "switchyard serve: --workers must be 0 to 256\n");
                return 2;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }

    /* signals are taken by sigwait in this thread; every other thread inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* before any thread exists: libcurl's global setup is not thread-safe */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sy_config cfg;
    const char *path = sy_cli_config_path(config);
    if (sy_cli_load_config(path, &cfg) != 0) {
        return 1;
    }
    int rc = apply_overrides(&cfg, listen, store_url);
    if (workers >= 0) {
        cfg.workers = (int)workers;
    }
    if (record != NULL) {
        char sub[4200];
        bool ok = true;
        for (int i = 0; i < 3 && ok; i++) {
            static const char *const parts[] = {"", "/deliveries", "/cassettes"};
            snprintf(sub, sizeof(sub), "%s%s", record, parts[i]);
            ok = mkdir(sub, 0750) == 0 || errno == EEXIST;
        }
        cfg.record_dir = ok ? realpath(record, NULL) : NULL;
        if (cfg.record_dir == NULL) {
            fprintf(stderr, "switchyard serve: --record %s: %s\n", record, strerror(errno));
            sy_config_dispose(&cfg);
            return 1;
        }
    }
    if (rc != 0) {
        sy_config_dispose(&cfg);
        return rc;
    }
    sy_log_configure(cfg.log.level, cfg.log.json);
    if (cfg.webhook.n_secrets == 0) {
        fprintf(stderr,
                "%s: webhook.secrets is empty, so every delivery would be refused; set it, "
                "e.g. secrets = { env(\"UNIZO_WEBHOOK_SECRET\") }, and export that variable\n",
                path ? path : "switchyard");
        sy_config_dispose(&cfg);
        return 1;
    }

    struct sy_error err = {0};
    char msg[2048];
    struct sy_server *srv = NULL;
    struct sy_engine *engine = NULL;
    struct sy_store *store = sy_store_open(&cfg, &err);
    if (store == NULL) {
        goto fail;
    }
    engine = sy_engine_new(&cfg, store, NULL, &err);
    if (engine == NULL || sy_engine_start(engine) != SY_OK) {
        goto fail;
    }
    srv = sy_server_new(&cfg, store, engine, &err);
    if (srv == NULL || sy_server_start(srv, &err) != SY_OK) {
        goto fail;
    }
    char nrules[24], nworkers[24], durability[64];
    sy_store_describe(store, durability, sizeof(durability));
    snprintf(nrules, sizeof(nrules), "%zu", sy_engine_rule_count(engine));
    snprintf(nworkers, sizeof(nworkers), "%d", cfg.workers);
    sy_log(SY_LOG_INFO, "switchyard started", "version", SY_VERSION, "config",
           path ? path : "(built-in defaults)", "store", cfg.store.url, "durability",
           durability[0] != '\0' ? durability : NULL, "rules", nrules, "workers", nworkers, NULL);
    const char *h2 = sy_server_http2_warning(&cfg);
    if (h2 != NULL) {
        sy_log(SY_LOG_WARN, h2, "h2o", H2O_VERSION, NULL);
    }
    if (cfg.admin.listen != NULL && cfg.admin.token == NULL && !on_loopback(cfg.admin.listen)) {
        sy_log(SY_LOG_WARN,
               "the admin listener and its console are open to the network without admin.token: "
               "anyone who reaches it can read events and replay jobs; set admin.token or "
               "listen on 127.0.0.1",
               "admin", cfg.admin.listen, NULL);
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            struct sy_error rerr = {0};
            if (sy_engine_reload(engine, &rerr) == SY_OK) {
                snprintf(nrules, sizeof(nrules), "%zu", sy_engine_rule_count(engine));
                sy_log(SY_LOG_INFO, "rules reloaded", "rules", nrules, NULL);
            } else {
                sy_error_format(&rerr, msg, sizeof(msg));
                sy_log(SY_LOG_ERROR, "reload refused; the previous rules stay", "error", msg, NULL);
            }
            continue;
        }
        sy_log(SY_LOG_INFO, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
        break;
    }
    sy_server_shutdown(srv, 10000);
    if (!sy_engine_stop(engine, cfg.shutdown_grace_ms)) {
        /*
         * A worker is still inside a job. Everything acknowledged is committed
         * and the unfinished jobs are pending in the store, so leaving now
         * loses nothing; closing the store under a running worker would be unsafe.
         */
        sy_log(SY_LOG_INFO, "stopped", NULL);
        _exit(0);
    }
    sy_store_close(store);
    sy_server_free(srv);
    sy_engine_free(engine);
    sy_log(SY_LOG_INFO, "stopped", NULL);
    sy_config_dispose(&cfg);
    curl_global_cleanup();
    return 0;
fail:
    sy_error_format(&err, msg, sizeof(msg));
    fprintf(stderr, "switchyard serve: %s\n", msg);
    if (srv != NULL) {
        sy_server_shutdown(srv, 0);
    }
    sy_server_free(srv);
    if (engine != NULL && !sy_engine_stop(engine, cfg.shutdown_grace_ms)) {
        _exit(1);
    }
    sy_store_close(store);
    sy_engine_free(engine);
    sy_config_dispose(&cfg);
    return 1;
}
