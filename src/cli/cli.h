#ifndef SY_CLI_H
#define SY_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Subcommands: each returns the process exit status (0 ok, 1 failure, 2 usage). */
int sy_cli_serve(int argc, char **argv);
/* version.c: linked into the switchyard binary alone, with the commit it was built from */
int sy_cli_version(int argc, char **argv);
int sy_cli_check(int argc, char **argv);
int sy_cli_sign(int argc, char **argv);
int sy_cli_send(int argc, char **argv);
int sy_cli_events(int argc, char **argv);
int sy_cli_replay(int argc, char **argv);
int sy_cli_test(int argc, char **argv);
int sy_cli_backtest(int argc, char **argv);
int sy_cli_rules(int argc, char **argv);

/*
 * Pick the config file: 'path' when given, else $SWITCHYARD_CONFIG, else
 * ./switchyard.lua, else the demo config in examples/; NULL means built-in
 * defaults. The result is borrowed (static or from the environment).
 */
const char *sy_cli_config_path(const char *path);

/* Defaults, then the file. Prints a located error to stderr and returns 1 on failure. */
int sy_cli_load_config(const char *path, struct sy_config *cfg);

/*
 * Read a whole file ("-" is standard input) into a new buffer of at most
 * 'max' bytes. Returns NULL and prints "FILE: reason" on failure.
 */
char *sy_cli_read_file(const char *path, size_t max, size_t *len);

/*
 * The secret named by --secret-env VAR or --secret-file PATH (one of them
 * non-NULL). New string; NULL with a message on stderr when unset or empty.
 */
char *sy_cli_secret(const char *env_var, const char *file);

/* Append 's' to the NUL-ended 'out' (cap bytes) with glob(3)'s special characters escaped. */
void sy_cli_glob_quote(char *out, size_t cap, const char *s);

/*
 * POST 'json' to 'path' of the running server's admin listener 'listen'
 * (ADDRESS:PORT; with cfg's admin.token). The answer's body goes to
 * 'answer'. Returns the HTTP status, or 0 with the reason in 'why' (no
 * listener configured, or none answering).
 */
struct sy_buf;
long sy_cli_admin_post(const struct sy_config *cfg, const char *listen, const char *path,
                       const char *json, struct sy_buf *answer, char *why, size_t whylen);

/* What `switchyard replay` was asked, beyond plain ids and --dead. */
struct sy_cli_replay_args {
    const char *since, *until, *type, *rule, *state; /* NULL = not given */
    const char *admin; /* ADDRESS:PORT of the admin listener; NULL = the config's admin.listen */
    bool dry_run;
    char *const *ids;
    size_t n_ids;
};

/* Ask the running server (POST /admin/replay) and print what ran. Returns the exit status. */
int sy_cli_replay_selected(const struct sy_config *cfg, const struct sy_cli_replay_args *a);

#endif
