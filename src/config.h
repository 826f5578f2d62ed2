#ifndef SY_CONFIG_H
#define SY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/check.h"
#include "ingest/cidr.h"
#include "util/error.h"

enum sy_sync_mode { SY_SYNC_FULL, SY_SYNC_NORMAL, SY_SYNC_OFF };


/*
 * The whole configuration. Built once by sy_config_load and then immutable:
 * every thread may read it without locks. All strings are owned by the
 * struct and released by sy_config_dispose. Relative paths in the file are
 * resolved against the config file's folder.
 */
struct sy_config {
    char *path; /* the file it came from, or NULL for built-in defaults */
    char *dir;  /* folder relative paths are resolved against */

    char **listen; /* "ADDR:PORT" */
    size_t n_listen;

    struct {
        int threads; /* loop threads; default: number of cores */
        bool http2;
        char *tls_cert; /* NULL = plain HTTP */
        char *tls_key;
        uint64_t idle_timeout_ms;
        uint64_t request_timeout_ms; /* time to receive a whole request */
        int max_connections;         /* open webhook connections at most; more are closed at once */
        int max_connections_per_address; /* from one client address (trusted proxies exempt) */
    } http;

    struct {
        char *listen; /* NULL = admin listener disabled */
        char *token;  /* NULL = no bearer token required */
        uint64_t store_timeout_ms; /* an admin request waits this long for the store, then 503 */
    } admin;

    struct {
        char *path;
        char **secrets;
        size_t n_secrets;
        int64_t tolerance_s;
        uint64_t max_body;
        struct sy_cidr *allow;
        size_t n_allow;
        struct sy_cidr *trusted_proxies;
        size_t n_trusted_proxies;
        enum sy_signed_payload signed_payload;
        bool reject_invalid; /* on_invalid = "reject": 400 instead of quarantine */
    } webhook;

    struct {
        char *url; /* "sqlite:/abs/path" after resolution */
        enum sy_sync_mode synchronous;
        size_t queue;     /* bounded write queue, in events */
        size_t max_batch; /* events per commit at most */
        uint64_t checkpoint_at; /* SQLite: WAL bytes that start a background checkpoint */
        char *prefix;     /* Redis key prefix */
        char *instance;   /* Redis: this instance's name (default: the host name); unique per instance */
        uint64_t visibility_ms; /* Redis: a job unfinished this long is taken over by another instance */
    } store;

    uint64_t dedupe_retention_ms;

    int workers;  /* worker threads running rules */
    int max_in_flight; /* engine.max_in_flight: jobs a worker runs at once */
    uint64_t shutdown_grace_ms; /* how long SIGTERM waits for running jobs */
    char **rules; /* glob patterns of rule files, resolved against dir */
    size_t n_rules;

    struct {
        uint64_t *schedule_ms; /* delay before retry 1, 2, ...; then dead */
        size_t n_schedule;
        double jitter; /* each delay is scaled by a random factor in [1-j, 1+j] */
    } retry;

    struct {
        char *base_url; /* no trailing slash */
        char *api_key;  /* NULL = dry-run: calls are logged, not sent */
        char *ca_file;  /* NULL = the system's CA bundle */
        uint64_t connect_timeout_ms;
        uint64_t timeout_ms; /* one HTTP attempt */
        uint64_t max_response;
        int attempts; /* HTTP attempts per call, for 429, 502-504 and connection errors */
        uint64_t backoff_base_ms;
        uint64_t backoff_cap_ms;
        struct sy_unizo_integration {
            char *name;         /* the key rules use, e.g. "jira-prod" */
            char *id;           /* sent as integrationId; defaults to the name */
            char *organization; /* default for ticketing calls; may be NULL */
            char *collection;   /* default for ticketing calls; may be NULL */
            long max_in_flight; /* HTTP attempts at once, all workers; 0 = no cap */
            double rate;        /* attempts started per second; 0 = no cap */
        } * integrations;
        size_t n_integrations;
    } unizo;

    struct {
        uint64_t instruction_limit; /* per call of a rule function */
        uint64_t memory_limit;      /* per worker state */
        uint64_t timeout_ms;        /* wall clock per call of a rule function */
    } lua;

    struct {
        int level; /* enum sy_log_level */
        bool json;
    } log;

    char *plugin_dir; /* every *.so here is loaded (NULL = none) */
    struct sy_plugin_conf {
        char *name;        /* configures the plugin of this name (from plugin_dir); may be NULL */
        char *path;        /* or loads this file; may be NULL */
        char *config_json; /* its config table as JSON ("{}" when none) */
        char *integration; /* route only events of this integration type (NULL = any) */
        char *category;    /* route only events of this category (NULL = any) */
        int line;          /* where it is in the config file */
    } *plugins;
    size_t n_plugins;

    /* serve --record DIR: deliveries and Unizo exchanges are saved here (NULL = off) */
    char *record_dir;
};

/* Fill 'cfg' with every default. Owns nothing the caller must free beyond sy_config_dispose. */
int sy_config_defaults(struct sy_config *cfg);

/*
 * Load 'path' (a Lua file) over the defaults. On a user error returns
 * SY_EINVAL and fills 'err' with the file, the line and what to fix.
 * Environment variables are read through env() in the file.
 */
int sy_config_load(struct sy_config *cfg, const char *path, struct sy_error *err);

void sy_config_dispose(struct sy_config *cfg);

/* Resolve 'rel' against cfg->dir into a new malloc'd string (absolute paths are copied). */
char *sy_config_resolve(const struct sy_config *cfg, const char *rel);

/* Split "host:port" or "[v6]:port" into host and port; false when malformed. */
bool sy_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port);

#endif
