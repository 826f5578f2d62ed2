/* Finding, running and reporting rule tests for `switchyard test` (testkit.h). */
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cli/cli.h"
#include "testkit/testkit.h"
#include "engine/engine.h"
#include "engine/journal.h"
#include "engine/rules.h"
#include "core/router.h"
#include "ingest/check.h"
#include "ingest/delivery.h"
#include "ingest/verify.h"
#include "lua/json.h"
#include "lua/sandbox.h"
#include "util/buf.h"
#include "util/log.h"


/* ---- discovery, reporting ---- */

struct result {
    char *file;
    char *name;
    char *message; /* NULL = passed */
    double seconds;
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 'path' relative to the current folder when it lies inside it. */
static const char *shown(const char *path)
{
    static char cwd[4096];
    if (cwd[0] == '\0' && getcwd(cwd, sizeof(cwd)) == NULL) {
        return path;
    }
    size_t n = strlen(cwd);
    return strncmp(path, cwd, n) == 0 && path[n] == '/' ? path + n + 1 : path;
}

/* Add the *_test.lua files of 'path' (a file, or a folder searched one level and its tests/). */
static void discover(const char *path, char ***files, size_t *n)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return;
    }
    if (S_ISREG(st.st_mode)) {
        *files = realloc(*files, (*n + 1) * sizeof(char *));
        (*files)[(*n)++] = strdup(shown(path));
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    size_t first = *n;
    while (d && (e = readdir(d)) != NULL) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (ends_with(e->d_name, "_test.lua")) {
            *files = realloc(*files, (*n + 1) * sizeof(char *));
            (*files)[(*n)++] = strdup(shown(p));
        } else if (strcmp(e->d_name, "tests") == 0) {
            discover(p, files, n);
        }
    }
    if (d) {
        closedir(d);
    }
    qsort(*files + first, *n - first, sizeof(char *), cmp_str);
}

static void xml_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t') {
                fputc(*s, f);
            }
        }
    }
}

static int write_junit(const char *path, struct result *r, size_t n, size_t failed)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "switchyard test: cannot write %s\n", path);
        return 1;
    }
    fprintf(
        f,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"%zu\" failures=\"%zu\">\n",
        n, failed);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(r[i].file, r[i - 1].file) != 0) {
            if (i > 0) {
                fputs("  </testsuite>\n", f);
            }
            fputs("  <testsuite name=\"", f);
            xml_escape(f, r[i].file);
            fputs("\">\n", f);
        }
        fputs("    <testcase classname=\"", f);
        xml_escape(f, r[i].file);
        fputs("\" name=\"", f);
        xml_escape(f, r[i].name);
        fprintf(f, "\" time=\"%.3f\"", r[i].seconds);
        if (r[i].message == NULL) {
            fputs("/>\n", f);
        } else {
            fputs(">\n      <failure message=\"", f);
            xml_escape(f, r[i].message);
            fputs("\"/>\n    </testcase>\n", f);
        }
    }
    if (n > 0) {
        fputs("  </testsuite>\n", f);
    }
    fputs("</testsuites>\n", f);
    return fclose(f) == 0 ? 0 : 1;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_result(struct result **r, size_t *n, const char *file, const char *name,
                       const char *message, double seconds)
{
    *r = realloc(*r, (*n + 1) * sizeof(**r));
    (*r)[*n] =
        (struct result){strdup(file), strdup(name), message ? strdup(message) : NULL, seconds};
    (*n)++;
}

/* Run every test of one file; results appended. */
static void run_file(const struct sy_testkit_suite *s, const char *file, const char *filter,
                     struct result **res, size_t *n_res)
{
    char *copy = strdup(file);
    const char *dir = dirname(copy);
    char msg[8192];
    struct tctx t;
    if (!sy_testkit_world_build(&t, s, file, dir, msg, sizeof(msg))) {
        printf("FAIL %s: cannot load\n     %s\n", file, msg);
        add_result(res, n_res, file, "(load)", msg, 0);
        sy_testkit_world_dispose(&t);
        free(copy);
        return;
    }
    int count = 0;
    if (sy_testkit_call(&t, "count", 0, 1) == LUA_OK) {
        count = (int)lua_tointeger(t.L, -1);
    }
    sy_testkit_world_dispose(&t);
    for (int i = 1; i <= count; i++) {
        double t0 = mono();
        bool ok = sy_testkit_world_build(&t, s, file, dir, msg, sizeof(msg));
        char name[512] = "?";
        if (ok) {
            lua_pushinteger(t.L, i);
            if (sy_testkit_call(&t, "name", 1, 1) == LUA_OK) {
                snprintf(name, sizeof(name), "%s", lua_tostring(t.L, -1));
            }
            lua_pop(t.L, 1);
        }
        if (filter != NULL && strstr(name, filter) == NULL) {
            sy_testkit_world_dispose(&t);
            continue;
        }
        if (ok) {
            lua_pushinteger(t.L, i);
            if (sy_testkit_call(&t, "run_test", 1, 3) != LUA_OK) {
                snprintf(msg, sizeof(msg), "%s", lua_tostring(t.L, -1));
                ok = false;
            } else if (!lua_toboolean(t.L, -3)) {
                snprintf(msg, sizeof(msg), "%s: %s",
                         lua_tostring(t.L, -1) ? lua_tostring(t.L, -1) : file,
                         lua_tostring(t.L, -2) ? lua_tostring(t.L, -2) : "failed");
                ok = false;
            }
        }
        double took = mono() - t0;
        if (ok) {
            printf("ok   %s: %s\n", file, name);
        } else {
            printf("FAIL %s: %s\n", file, name);
            /* indent every line of the message */
            for (char *line = msg, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                printf("     %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
            }
        }
        add_result(res, n_res, file, name, ok ? NULL : msg, took);
        sy_testkit_world_dispose(&t);
    }
    free(copy);
}

/* The config's rules become the *.lua files (not *_test.lua) in the folders of the tests. */
static int rules_beside(struct sy_config *cfg, char *const *tests, size_t n)
{
    char **globs = calloc(n ? n : 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; globs != NULL && i < n; i++) {
        char *copy = strdup(tests[i]);
        char *dir = copy ? realpath(dirname(copy), NULL) : NULL;
        char pattern[PATH_MAX + 16] = "";
        if (dir != NULL) {
            sy_cli_glob_quote(pattern, sizeof(pattern) - 8, dir);
            size_t at = strlen(pattern);
            snprintf(pattern + at, sizeof(pattern) - at, "/*.lua");
        }
        bool seen = dir == NULL;
        for (size_t j = 0; j < k && !seen; j++) {
            seen = strcmp(globs[j], pattern) == 0;
        }
        if (!seen) {
            globs[k++] = strdup(pattern);
        }
        free(dir);
        free(copy);
    }
    if (globs == NULL) {
        return SY_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_rules; i++) {
        free(cfg->rules[i]);
    }
    free(cfg->rules);
    cfg->rules = globs;
    cfg->n_rules = k;
    return SY_OK;
}

int sy_testkit_run(const struct sy_testkit_args *a)
{
    /*
     * Which rules the tests see: with -c (or SWITCHYARD_CONFIG), the config's. Without it,
     * the rule files beside the test files given, with ./switchyard.lua's settings when
     * there is one; with neither paths nor -c, ./switchyard.lua. Never the demo's.
     */
    const char *env = getenv("SWITCHYARD_CONFIG");
    bool explicit_cfg = a->config != NULL || (env != NULL && env[0] != '\0');
    const char *cfg_path = explicit_cfg                          ? sy_cli_config_path(a->config)
                           : access("switchyard.lua", R_OK) == 0 ? "switchyard.lua"
                                                                 : NULL;
    bool beside = !explicit_cfg && a->n_paths > 0;
    if (cfg_path == NULL && !beside) {
        fputs("switchyard test: no rules to test: give the test files or folders (the rules "
              "beside them are tested), or -c FILE\n",
              stderr);
        return 2;
    }
    struct sy_config cfg;
    if (sy_cli_load_config(cfg_path, &cfg) != 0) {
        return 1;
    }
    sy_log_configure(SY_LOG_ERROR, false);
    char **files = NULL;
    size_t n_files = 0;
    for (size_t i = 0; i < a->n_paths; i++) {
        size_t before = n_files;
        discover(a->paths[i], &files, &n_files);
        if (n_files == before) {
            fprintf(stderr, "switchyard test: %s: no *_test.lua there\n", a->paths[i]);
        }
    }
    if (beside && rules_beside(&cfg, files, n_files) != SY_OK) {
        fputs("switchyard test: out of memory\n", stderr);
        sy_config_dispose(&cfg);
        return 1;
    }
    struct sy_testkit_suite s = {.cfg = &cfg};
    struct sy_error err = {0};
    if (sy_rule_files(&cfg, &s.rule_files, &s.rule_display, &s.n_rules, &err) != SY_OK) {
        char msg[1024];
        sy_error_format(&err, msg, sizeof(msg));
        fprintf(stderr, "%s\n", msg);
        sy_config_dispose(&cfg);
        return 1;
    }
    if (a->n_paths == 0) {
        /* the folders the rule files live in */
        for (size_t i = 0; i < s.n_rules; i++) {
            char *copy = strdup(s.rule_files[i]);
            char *dir = dirname(copy);
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++) {
                char *other = strdup(s.rule_files[k]);
                seen = strcmp(dirname(other), dir) == 0;
                free(other);
            }
            if (!seen) {
                discover(dir, &files, &n_files);
            }
            free(copy);
        }
    }
    printf("rules (%s):", beside ? "beside the tests" : cfg.path ? cfg.path : "config");
    for (size_t i = 0; i < s.n_rules; i++) {
        printf(" %s", s.rule_display[i]);
    }
    printf("%s\n", s.n_rules == 0 ? " none" : "");
    struct result *res = NULL;
    size_t n_res = 0, failed = 0;
    for (size_t i = 0; i < n_files; i++) {
        run_file(&s, files[i], a->filter, &res, &n_res);
    }
    for (size_t i = 0; i < n_res; i++) {
        failed += res[i].message != NULL;
    }
    int rc = failed > 0 ? 1 : 0;
    if (a->junit != NULL && write_junit(a->junit, res, n_res, failed) != 0) {
        rc = 1;
    }
    printf("%zu passed, %zu failed\n", n_res - failed, failed);
    for (size_t i = 0; i < n_res; i++) {
        free(res[i].file);
        free(res[i].name);
        free(res[i].message);
    }
    free(res);
    for (size_t i = 0; i < n_files; i++) {
        free(files[i]);
    }
    free(files);
    sy_rule_files_free(s.rule_files, s.rule_display, s.n_rules);
    sy_config_dispose(&cfg);
    return rc;
}
