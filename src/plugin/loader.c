#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
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

/* The entry configuring a plugin_dir plugin: the one named after it, if any. */
static const struct sy_plugin_conf *conf_by_name(const struct sy_config *cfg, const char *name)
{
    const struct sy_plugin_conf *found = NULL;
    for (size_t k = 0; k < cfg->n_plugins; k++) {
        if (cfg->plugins[k].name && strcmp(cfg->plugins[k].name, name) == 0) {
            found = &cfg->plugins[k];
        }
    }
    return found;
}

/*
 * Open the file once and check it through that descriptor (a regular file, not writable by
 * group or others, owned by root or us) before anything maps it: dlopen runs a library's
 * constructors, so a refused file must never reach it. The library is then mapped from the
 * same descriptor (/proc/self/fd/N), so a rename after the check cannot swap it. The
 * descriptor stays open while the plugin is loaded: that keeps the /proc name unique, and
 * the dynamic loader tells loaded objects apart by name.
 */
static int open_checked(const char *file, int *fd_out, struct sy_error *err)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return refuse(err, file, "cannot load plugin: %s", strerror(errno));
    }
    struct stat st;
    int rc = SY_OK;
    if (fstat(fd, &st) != 0) {
        rc = refuse(err, file, "cannot load plugin: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = refuse(err, file, "cannot load plugin: not a regular file");
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        rc = refuse(err, file, "refusing to load plugin: the file is writable by %s (chmod go-w)",
                    (st.st_mode & S_IWOTH) ? "everyone" : "its group");
    } else if (st.st_uid != 0 && st.st_uid != geteuid()) {
        /* as sshd treats authorized_keys: code we run must belong to us or to root */
        rc = refuse(err, file,
                    "refusing to load plugin: the file is owned by uid %u, not by root or the "
                    "user switchyard runs as (uid %u)",
                    (unsigned)st.st_uid, (unsigned)geteuid());
    }
    if (rc != SY_OK) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return SY_OK;
}

/*
 * Check, map, find and check the descriptor, init. 'conf' is the plugin's explicit entry, or
 * NULL for a plugin_dir file (configured by the entry named after it, found once the
 * descriptor says its name).
 */
static int load_one(const char *file, const struct sy_config *cfg,
                    const struct sy_plugin_conf *conf, struct sy_loaded_plugin *p,
                    struct sy_error *err)
{
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    int rc = open_checked(file, &p->fd, err);
    if (rc != SY_OK) {
        return rc;
    }
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->fd);
    p->dl = dlopen(proc, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        rc = refuse(err, file, "cannot load plugin: %s%s", dlerror(),
                    access("/proc/self/fd", F_OK) != 0 ? " (is /proc mounted?)" : "");
        close(p->fd);
        return rc;
    }
    p->desc = dlsym(p->dl, "switchyard_plugin");
    const struct sy_plugin *d = p->desc;
    char theirs[32], ours[32];
    if (d != NULL) {
        snprintf(theirs, sizeof(theirs), "%u.%u", d->abi_version >> 16, d->abi_version & 0xffff);
    }
    snprintf(ours, sizeof(ours), "%d.%d", SY_PLUGIN_ABI_MAJOR, SY_PLUGIN_ABI_MINOR);
    if (d == NULL) {
        rc = refuse(err, file, "not a switchyard plugin: it does not export 'switchyard_plugin'");
    } else if (d->abi_version >> 16 != SY_PLUGIN_ABI_MAJOR) {
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
    if (rc == SY_OK && conf == NULL) {
        conf = conf_by_name(cfg, d->name);
    }
    if (rc == SY_OK && d->init != NULL) {
        const char *config_json = conf != NULL ? conf->config_json : NULL;
        int irc = d->init(sy_plugin_host(), config_json ? config_json : "{}", &p->state);
        if (irc != SY_OK) {
            /* the message first: d->name lives in the object dlclose unmaps */
            rc = refuse(err, file, "plugin '%s' refused to start (init returned %d)", d->name, irc);
        }
    }
    if (rc != SY_OK) {
        dlclose(p->dl);
        close(p->fd);
        return rc;
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

/* Append "dir/name" (or name alone when dir is NULL) to the list. */
static int push_file(char ***files, size_t *n, const char *dir, const char *name)
{
    char **grown = realloc(*files, (*n + 1) * sizeof(char *));
    if (grown == NULL) {
        return SY_ENOMEM;
    }
    *files = grown;
    size_t need = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *path = malloc(need);
    if (path == NULL) {
        return SY_ENOMEM;
    }
    snprintf(path, need, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    grown[(*n)++] = path;
    return SY_OK;
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
    bool oom = false;
    if (cfg->plugin_dir != NULL) {
        DIR *d = opendir(cfg->plugin_dir);
        if (d == NULL && errno != ENOENT) {
            return sy_error_set(err, cfg->plugin_dir, 0, "cannot read plugin_dir: %s",
                                strerror(errno));
        }
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            size_t l = strlen(e->d_name);
            if (l > 3 && strcmp(e->d_name + l - 3, ".so") == 0 &&
                push_file(&files, &n_files, cfg->plugin_dir, e->d_name) != SY_OK) {
                oom = true;
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
        if (cfg->plugins[i].path != NULL &&
            push_file(&files, &n_files, NULL, cfg->plugins[i].path) != SY_OK) {
            oom = true;
        }
    }
    struct sy_loaded_plugin *list = oom ? NULL : calloc(n_files ? n_files : 1, sizeof(*list));
    int rc = list ? SY_OK : SY_ENOMEM;
    size_t loaded = 0;
    for (size_t i = 0; rc == SY_OK && i < n_files; i++) {
        /* an explicit path's own entry; plugin_dir files are configured by name */
        const struct sy_plugin_conf *conf = NULL;
        if (i >= from_dir) {
            size_t seen = from_dir;
            for (size_t k = 0; conf == NULL && k < cfg->n_plugins; k++) {
                if (cfg->plugins[k].path != NULL && seen++ == i) {
                    conf = &cfg->plugins[k];
                }
            }
        }
        rc = load_one(files[i], cfg, conf, &list[loaded], err);
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
        close(list[i].fd);
        free(list[i].file);
        free(list[i].integration);
        free(list[i].category);
    }
    free(list);
}
