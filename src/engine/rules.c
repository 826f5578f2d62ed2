/* Rule files and their generations. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rules.h"
#include "metrics.h"

long sy_rule_gen_live(void)
{
    return (long)__atomic_load_n(&sy_metrics.rule_generations, __ATOMIC_RELAXED);
}

struct file_list {
    char **files, **display;
    size_t n;
};

static void file_list_free(struct file_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->files[i]);
        free(l->display[i]);
    }
    free(l->files);
    free(l->display);
    memset(l, 0, sizeof(*l));
}

/* Add every file matching 'pattern' (sorted; *_test.lua excluded) to the list. */
static int expand(const struct sy_config *cfg, const char *pattern, struct file_list *l,
                  struct sy_error *err)
{
    char *abs = sy_config_resolve(cfg, pattern);
    if (abs == NULL) {
        return SY_ENOMEM;
    }
    glob_t g;
    int grc = glob(abs, 0, NULL, &g);
    bool wildcard = strpbrk(pattern, "*?[") != NULL;
    int rc = SY_OK;
    if (grc == GLOB_NOMATCH) {
        if (!wildcard) {
            rc = sy_error_set(err, cfg->path, 0, "rule file %s does not exist", abs);
        }
        free(abs);
        return rc;
    }
    if (grc != 0) {
        free(abs);
        return sy_error_set(err, cfg->path, 0, "cannot list rule files %s", pattern);
    }
    size_t dirlen = strlen(cfg->dir);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        size_t len = strlen(p);
        if (len >= 9 && strcmp(p + len - 9, "_test.lua") == 0) {
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < l->n; k++) {
            dup = dup || strcmp(l->files[k], p) == 0;
        }
        if (dup) {
            continue;
        }
        char **f = realloc(l->files, (l->n + 1) * sizeof(*f));
        char **d = f ? realloc(l->display, (l->n + 1) * sizeof(*d)) : NULL;
        if (f) {
            l->files = f;
        }
        if (d == NULL) {
            rc = SY_ENOMEM;
            break;
        }
        l->display = d;
        bool inside = strncmp(p, cfg->dir, dirlen) == 0 && p[dirlen] == '/';
        l->files[l->n] = strdup(p);
        l->display[l->n] = strdup(inside ? p + dirlen + 1 : p);
        l->n++;
    }
    globfree(&g);
    free(abs);
    return rc;
}

int sy_rule_files(const struct sy_config *cfg, char ***files, char ***display, size_t *n,
                  struct sy_error *err)
{
    struct file_list l = {0};
    int rc = SY_OK;
    for (size_t i = 0; rc == SY_OK && i < cfg->n_rules; i++) {
        rc = expand(cfg, cfg->rules[i], &l, err);
    }
    if (rc != SY_OK) {
        file_list_free(&l);
        return rc;
    }
    *files = l.files;
    *display = l.display;
    *n = l.n;
    return SY_OK;
}

void sy_rule_files_free(char **files, char **display, size_t n)
{
    struct file_list l = {.files = files, .display = display, .n = n};
    file_list_free(&l);
}

static void gen_free(struct sy_rule_gen *g)
{
    for (size_t i = 0; i < g->n_files; i++) {
        free(g->display[i]);
        free(g->source ? g->source[i] : NULL);
    }
    free(g->display);
    free(g->source);
    free(g->source_len);
    free(g->routes);
    sy_lua_free(g->probe);
    free(g);
    sy_metrics_add(&sy_metrics.rule_generations, (uint64_t)-1);
}

void sy_rule_gen_hold(struct sy_rule_gen *g)
{
    __atomic_fetch_add(&g->refs, 1, __ATOMIC_RELAXED);
}

void sy_rule_gen_release(struct sy_rule_gen *g)
{
    if (g != NULL && __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        gen_free(g);
    }
}

/* While rule files load, 'unizo' exists but refuses calls (the sandbox refuses them outside a
 * run). */
static int no_unizo_call(void *ctx, void *run, struct sy_unizo_request *req,
                         struct sy_unizo_response *resp)
{
    (void)ctx, (void)run, (void)req;
    memset(resp, 0, sizeof(*resp));
    return SY_EUNAVAIL;
}

static void no_unizo_defaults(void *ctx, const char *integration, const char **org,
                              const char **collection)
{
    (void)ctx, (void)integration;
    *org = *collection = NULL;
}

struct sy_lua *sy_rule_gen_state(const struct sy_rule_gen *g, const struct sy_lua_limits *limits,
                                 const struct sy_lua_host *host, struct sy_error *err)
{
    struct sy_lua *lx = sy_lua_new(limits, host);
    if (lx == NULL) {
        sy_error_set(err, NULL, 0, "out of memory for a Lua state");
        return NULL;
    }
    for (size_t i = 0; i < g->n_files; i++) {
        if (sy_lua_load_source(lx, g->source[i], g->source_len[i], g->display[i], err) != SY_OK) {
            sy_lua_free(lx);
            return NULL;
        }
    }
    return lx;
}

struct sy_rule_gen *sy_rule_gen_load(const struct sy_config *cfg, unsigned generation,
                                     struct sy_error *err)
{
    struct sy_rule_gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    sy_metrics_add(&sy_metrics.rule_generations, 1);
    g->generation = generation;
    g->refs = 1;
    struct file_list l = {0};
    int rc = SY_OK;
    for (size_t i = 0; rc == SY_OK && i < cfg->n_rules; i++) {
        rc = expand(cfg, cfg->rules[i], &l, err);
    }
    /* the generation takes the display names; the paths are not needed after the read */
    g->display = l.display;
    g->n_files = l.n;
    g->source = calloc(l.n ? l.n : 1, sizeof(*g->source));
    g->source_len = calloc(l.n ? l.n : 1, sizeof(*g->source_len));
    if (rc == SY_OK && (g->source == NULL || g->source_len == NULL)) {
        rc = SY_ENOMEM;
    }
    for (size_t i = 0; rc == SY_OK && i < l.n; i++) {
        rc = sy_lua_read_file(l.files[i], l.display[i], &g->source[i], &g->source_len[i], err);
    }
    for (size_t i = 0; i < l.n; i++) {
        free(l.files[i]);
    }
    free(l.files);
    struct sy_lua_limits lim = sy_rule_limits(cfg);
    struct sy_lua_host probe_host = {.unizo_call = no_unizo_call,
                                     .unizo_defaults = no_unizo_defaults};
    if (rc == SY_OK && (g->probe = sy_rule_gen_state(g, &lim, &probe_host, err)) == NULL) {
        rc = SY_EINVAL;
    }
    if (rc == SY_OK) {
        g->n_rules = sy_lua_rules(g->probe, &g->rules);
        g->routes = calloc(g->n_rules ? g->n_rules : 1, sizeof(*g->routes));
        if (g->routes == NULL) {
            rc = SY_ENOMEM;
        }
        for (size_t i = 0; rc == SY_OK && i < g->n_rules; i++) {
            const struct sy_lua_rule *r = &g->rules[i];
            g->routes[i] = (struct sy_route){.name = r->name,
                                             .on = r->on,
                                             .n_on = r->n_on,
                                             .integration = r->integration,
                                             .category = r->category,
                                             .key = r->key,
                                             .n_key = r->n_key};
        }
    }
    if (rc != SY_OK) {
        if (rc == SY_ENOMEM) {
            sy_error_set(err, cfg->path, 0, "out of memory while loading rules");
        }
        gen_free(g);
        return NULL;
    }
    return g;
}

struct sy_lua_limits sy_rule_limits(const struct sy_config *cfg)
{
    return (struct sy_lua_limits){.instructions = cfg->lua.instruction_limit,
                                  .memory = (size_t)cfg->lua.memory_limit,
                                  .timeout_ms = cfg->lua.timeout_ms};
}

const struct sy_lua_rule *sy_rule_gen_find(const struct sy_rule_gen *g, const char *name)
{
    for (size_t i = 0; i < g->n_rules; i++) {
        if (strcmp(g->rules[i].name, name) == 0) {
            return &g->rules[i];
        }
    }
    return NULL;
}
