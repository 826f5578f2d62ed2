#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin/plugins.h"

void sy_plugin_host_set_store(struct sy_store *store);

/* The smallest descriptor this host can use: everything up to handle. */
#define MIN_DESC_SIZE (offsetof(struct sy_plugin, handle) + sizeof(void *))

static int refuse(struct sy_error *err, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct sy_error *err, const char *file, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sy_error_set(err, file, 0, "%s", msg);
}

/* dlopen, find and check the descriptor, init with its entry's config ('conf' may be NULL). */
static int load_one(const char *file, const struct sy_plugin_conf *conf,
                    struct sy_loaded_plugin *p, struct sy_error *err)
{
    const char *config_json = conf != NULL ? conf->config_json : NULL;
    memset(p, 0, sizeof(*p));
    struct stat st;
    if (stat(file, &st) != 0) {
        return refuse(err, file, "cannot load plugin: %s", strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return refuse(err, file, "cannot load plugin: not a regular file");
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        return refuse(err, file, "refusing to load plugin: the file is writable by %s (chmod go-w)",
                      (st.st_mode & S_IWOTH) ? "everyone" : "its group");
    }
    /* as sshd treats authorized_keys: code we run must belong to us or to root */
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        return refuse(err, file,
                      "refusing to load plugin: the file is owned by uid %u, not by root or the "
                      "user switchyard runs as (uid %u)",
                      (unsigned)st.st_uid, (unsigned)geteuid());
    }
    p->dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        return refuse(err, file, "cannot load plugin: %s", dlerror());
    }
    p->desc = dlsym(p->dl, "switchyard_plugin");
    if (p->desc == NULL) {
        dlclose(p->dl);
        return refuse(err, file, "not a switchyard plugin: it does not export 'switchyard_plugin'");
    }
    const struct sy_plugin *d = p->desc;
    char theirs[32], ours[32];
    snprintf(theirs, sizeof(theirs), "%u.%u", d->abi_version >> 16, d->abi_version & 0xffff);
    snprintf(ours, sizeof(ours), "%d.%d", SY_PLUGIN_ABI_MAJOR, SY_PLUGIN_ABI_MINOR);
    int rc = SY_OK;
    if (d->abi_version >> 16 != SY_PLUGIN_ABI_MAJOR) {
        rc = refuse(err, file, "plugin built for ABI %s; this switchyard speaks ABI %s", theirs,
                    ours);
    } else if (d->struct_size < MIN_DESC_SIZE) {
        char have[24], need[24];
        snprintf(have, sizeof(have), "%u", d->struct_size);
        snprintf(need, sizeof(need), "%zu", (size_t)MIN_DESC_SIZE);
        rc =
            refuse(err, file, "plugin descriptor is %s bytes; ABI 1 needs at least %s", have, need);
    } else if (d->name == NULL || d->name[0] == '\0' || d->handle == NULL || d->events == NULL ||
               d->events[0] == NULL) {
        rc = refuse(err, file, "plugin descriptor has no %s",
                    d->name == NULL || d->name[0] == '\0' ? "name"
                    : d->handle == NULL                   ? "handle function"
                                                          : "event patterns");
    }
    if (rc != SY_OK) {
        dlclose(p->dl);
        return rc;
    }
    if (d->init != NULL) {
        int irc = d->init(sy_plugin_host(), config_json ? config_json : "{}", &p->state);
        if (irc != SY_OK) {
            /* the message first: d->name lives in the object dlclose unmaps */
            rc = refuse(err, file, "plugin '%s' refused to start (init returned %d)", d->name, irc);
            dlclose(p->dl);
            return rc;
        }
    }
    while (d->events[p->n_events] != NULL) {
        p->n_events++;
    }
    p->file = strdup(file);
    p->integration = conf != NULL && conf->integration ? strdup(conf->integration) : NULL;
    p->category = conf != NULL && conf->category ? strdup(conf->category) : NULL;
    return SY_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sy_plugins_load(const struct sy_config *cfg, struct sy_store *store,
                    struct sy_loaded_plugin **out, size_t *n, struct sy_error *err)
{
    sy_plugin_host_set_store(store);
    *out = NULL;
    *n = 0;
    /* the files: plugin_dir's *.so in name order, then the explicit paths */
    char **files = NULL;
    size_t n_files = 0;
    if (cfg->plugin_dir != NULL) {
        DIR *d = opendir(cfg->plugin_dir);
        if (d == NULL && errno != ENOENT) {
            return sy_error_set(err, cfg->plugin_dir, 0, "cannot read plugin_dir: %s",
                                strerror(errno));
        }
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            size_t l = strlen(e->d_name);
            if (l > 3 && strcmp(e->d_name + l - 3, ".so") == 0) {
                files = realloc(files, (n_files + 1) * sizeof(char *));
                size_t need = strlen(cfg->plugin_dir) + l + 2;
                files[n_files] = malloc(need);
                snprintf(files[n_files++], need, "%s/%s", cfg->plugin_dir, e->d_name);
            }
        }
        if (d) {
            closedir(d);
        }
        if (n_files > 1) {
            qsort(files, n_files, sizeof(char *), cmp_str);
        }
    }
    size_t from_dir = n_files;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        if (cfg->plugins[i].path != NULL) {
            files = realloc(files, (n_files + 1) * sizeof(char *));
            files[n_files++] = strdup(cfg->plugins[i].path);
        }
    }
    struct sy_loaded_plugin *list = calloc(n_files ? n_files : 1, sizeof(*list));
    int rc = list ? SY_OK : SY_ENOMEM;
    size_t loaded = 0;
    for (size_t i = 0; rc == SY_OK && i < n_files; i++) {
        /* its config: the explicit entry for this path, else the entry named after it (after init
         * we know the name) */
        const struct sy_plugin_conf *conf = NULL;
        if (i >= from_dir) {
            size_t k = 0, seen = from_dir;
            for (; k < cfg->n_plugins; k++) {
                if (cfg->plugins[k].path != NULL && seen++ == i) {
                    break;
                }
            }
            conf = &cfg->plugins[k];
        } else {
            /* plugin_dir files are configured by name: peek at the descriptor name first */
            void *dl = dlopen(files[i], RTLD_NOW | RTLD_LOCAL);
            const struct sy_plugin *d = dl ? dlsym(dl, "switchyard_plugin") : NULL;
            for (size_t k = 0; d && d->name && k < cfg->n_plugins; k++) {
                if (cfg->plugins[k].name && strcmp(cfg->plugins[k].name, d->name) == 0) {
                    conf = &cfg->plugins[k];
                }
            }
            if (dl) {
                dlclose(dl);
            }
        }
        rc = load_one(files[i], conf, &list[loaded], err);
        if (rc == SY_OK) {
            for (size_t k = 0; k < loaded; k++) {
                if (strcmp(list[k].desc->name, list[loaded].desc->name) == 0) {
                    rc = sy_error_set(err, files[i], 0, "plugin name '%s' is already taken by %s",
                                      list[loaded].desc->name, list[k].file);
                }
            }
            loaded++;
        }
    }
    for (size_t i = 0; i < n_files; i++) {
        free(files[i]);
    }
    free(files);
    if (rc != SY_OK) {
        sy_plugins_unload(list, loaded);
        return rc;
    }
    *out = list;
    *n = loaded;
    return SY_OK;
}

void sy_plugins_unload(struct sy_loaded_plugin *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i].desc->fini != NULL) {
            list[i].desc->fini(list[i].state);
        }
        dlclose(list[i].dl);
        free(list[i].file);
        free(list[i].integration);
        free(list[i].category);
    }
    free(list);
}
