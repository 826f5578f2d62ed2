/* Which handlers are paused (read from the store at most once a second), and their listing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/engine_int.h"
#include "engine/pause.h"
#include "metrics.h"
#include "util/clock.h"
#include "util/log.h"

#define PAUSE_READ_MS 1000

/* Every handler name of the current generation and the plugins, in order, into *names (new). */
static size_t handler_names(struct sy_engine *eng, struct sy_rule_gen *g, const char ***names)
{
    size_t n = g->n_rules + eng->n_plugins;
    *names = calloc(n ? n : 1, sizeof(**names));
    if (*names == NULL) {
        return 0;
    }
    for (size_t i = 0; i < g->n_rules; i++) {
        (*names)[i] = g->rules[i].name;
    }
    for (size_t i = 0; i < eng->n_plugins; i++) {
        (*names)[g->n_rules + i] = eng->plugins[i].desc->name;
    }
    return n;
}

static void paused_clear(struct sy_engine *eng)
{
    for (size_t i = 0; i < eng->n_paused; i++) {
        free(eng->paused[i]);
    }
    free(eng->paused);
    eng->paused = NULL;
    eng->n_paused = 0;
}

/* The paused handlers as the store says now, into *out (new). False when the store fails. */
static bool paused_read(struct sy_engine *eng, char ***out, size_t *n_out)
{
    struct sy_rule_gen *g = sy_engine_gen(eng);
    const char **names = NULL;
    size_t n = handler_names(eng, g, &names);
    char **list = calloc(n ? n : 1, sizeof(*list));
    size_t k = 0;
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        bool p = false;
        if (sy_rule_pause_get(eng->store, names[i], &p) != SY_OK) {
            ok = false; /* the store is down: keep what was known */
        } else if (p && (list[k] = strdup(names[i])) != NULL) {
            k++;
        }
    }
    free(names);
    sy_rule_gen_release(g);
    if (!ok && list != NULL) {
        for (size_t i = 0; i < k; i++) {
            free(list[i]);
        }
        free(list);
    }
    *out = ok ? list : NULL;
    *n_out = ok ? k : 0;
    return ok;
}

/*
 * Read the paused set again when it is older than PAUSE_READ_MS. Called under pause_mu,
 * which it lets go of while it reads the store (one reader at a time; the others use
 * the set they have), except for the first read. A pause made meanwhile wins over what
 * was read.
 */
static void paused_fresh(struct sy_engine *eng)
{
    if (eng->paused_reading ||
        (eng->paused_read_ms != 0 && sy_mono_ms() - eng->paused_read_ms < PAUSE_READ_MS)) {
        return;
    }
    /* the first read holds the lock: until it is done nobody may take a paused job for a free one */
    bool first = eng->paused_read_ms == 0;
    eng->paused_reading = true;
    unsigned version = eng->paused_version;
    if (!first) {
        pthread_mutex_unlock(&eng->pause_mu);
    }
    char **list = NULL;
    size_t n = 0;
    bool ok = paused_read(eng, &list, &n);
    if (!first) {
        pthread_mutex_lock(&eng->pause_mu);
    }
    if (ok && version == eng->paused_version) {
        paused_clear(eng);
        eng->paused = list;
        eng->n_paused = n;
        list = NULL;
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
    eng->paused_read_ms = sy_mono_ms();
    eng->paused_reading = false;
}

bool sy_engine_paused(struct sy_engine *eng, const char *name)
{
    pthread_mutex_lock(&eng->pause_mu);
    paused_fresh(eng);
    bool p = false;
    for (size_t i = 0; !p && i < eng->n_paused; i++) {
        p = strcmp(eng->paused[i], name) == 0;
    }
    pthread_mutex_unlock(&eng->pause_mu);
    return p;
}

static bool known(struct sy_engine *eng, const char *name)
{
    struct sy_rule_gen *g = sy_engine_gen(eng);
    bool found = sy_rule_gen_find(g, name) != NULL || sy_engine_plugin(eng, name) != NULL;
    sy_rule_gen_release(g);
    return found;
}

int sy_engine_pause(struct sy_engine *eng, const char *name, bool paused)
{
    if (!known(eng, name)) {
        return SY_ENOTFOUND;
    }
    int rc = sy_rule_pause_set(eng->store, name, paused);
    if (rc == SY_OK) {
        /* this engine sees it at once: the set changes here, and a read under way is dropped */
        pthread_mutex_lock(&eng->pause_mu);
        eng->paused_version++;
        size_t at = eng->n_paused;
        for (size_t i = 0; i < eng->n_paused; i++) {
            at = strcmp(eng->paused[i], name) == 0 ? i : at;
        }
        if (!paused && at < eng->n_paused) {
            free(eng->paused[at]);
            eng->paused[at] = eng->paused[--eng->n_paused];
        } else if (paused && at == eng->n_paused) {
            char **grown = realloc(eng->paused, (eng->n_paused + 1) * sizeof(*grown));
            char *copy = grown ? strdup(name) : NULL;
            if (grown != NULL) {
                eng->paused = grown;
            }
            if (copy != NULL) {
                eng->paused[eng->n_paused++] = copy;
            } else {
                eng->paused_read_ms = 0; /* out of memory: read it all next time */
            }
        }
        pthread_mutex_unlock(&eng->pause_mu);
        sy_log(SY_LOG_INFO, paused ? "rule paused: its jobs wait" : "rule resumed", "rule", name,
               NULL);
    }
    return rc;
}

json_t *sy_engine_rules_json(struct sy_engine *eng)
{
    json_t *arr = json_array();
    struct sy_rule_gen *g = sy_engine_gen(eng);
    for (size_t i = 0; arr != NULL && i < g->n_rules + eng->n_plugins; i++) {
        bool is_rule = i < g->n_rules;
        const char *name = is_rule ? g->rules[i].name : eng->plugins[i - g->n_rules].desc->name;
        json_t *o = json_pack("{s:s, s:s, s:b, s:I}", "name", name, "kind",
                              is_rule ? "rule" : "plugin", "paused", sy_engine_paused(eng, name),
                              "running", (json_int_t)sy_engine_rule_running(eng, name));
        uint64_t att[4];
        sy_metrics_rule(name, att);
        if (o != NULL) {
            json_object_set_new(o, "attempts",
                                json_pack("{s:I, s:I, s:I, s:I}", "done", (json_int_t)att[0],
                                          "skipped", (json_int_t)att[1], "retry",
                                          (json_int_t)att[2], "dead", (json_int_t)att[3]));
            double p99 = sy_metrics_rule_p99(name);
            json_object_set_new(o, "p99_ms", p99 > 0 ? json_real(round(p99 * 1e4) / 10) : json_null());
        }
        if (o != NULL && is_rule) {
            const struct sy_lua_rule *r = &g->rules[i];
            json_t *on = json_array(), *key = json_array();
            for (size_t k = 0; k < r->n_on; k++) {
                json_array_append_new(on, json_string(r->on[k]));
            }
            for (size_t k = 0; k < r->n_key; k++) {
                json_array_append_new(key, json_string(r->key[k]));
            }
            json_object_set_new(o, "on", on);
            json_object_set_new(o, "key", key);
            json_object_set_new(o, "file", json_string(g->rules[i].file));
            json_object_set_new(o, "line", json_integer(g->rules[i].line));
            json_object_set_new(o, "concurrency", g->rules[i].concurrency
                                                      ? json_integer(g->rules[i].concurrency)
                                                      : json_null());
        } else if (o != NULL) {
            json_object_set_new(o, "file", json_string(eng->plugins[i - g->n_rules].file));
        }
        json_array_append_new(arr, o);
    }
    sy_rule_gen_release(g);
    return arr;
}

void sy_engine_paused_each(struct sy_engine *eng, void (*each)(void *ctx, const char *name),
                           void *ctx)
{
    pthread_mutex_lock(&eng->pause_mu);
    for (size_t i = 0; i < eng->n_paused; i++) {
        each(ctx, eng->paused[i]);
    }
    pthread_mutex_unlock(&eng->pause_mu);
}

void sy_engine_paused_refresh(struct sy_engine *eng)
{
    pthread_mutex_lock(&eng->pause_mu);
    paused_fresh(eng);
    pthread_mutex_unlock(&eng->pause_mu);
}

void sy_engine_pause_dispose(struct sy_engine *eng)
{
    paused_clear(eng);
}
