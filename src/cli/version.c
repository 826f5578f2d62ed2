/*
 * `switchyard version`: the version, the commit it was built from, and the
 * libraries it runs with, as they report themselves at run time where they
 * can (OpenSSL, SQLite, libcurl, jansson); for the others the version their
 * headers gave at build time and the file the loader found.
 */
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <h2o/version.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <lua.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

#include "cli/cli.h"

extern const char sy_build_commit[]; /* build_info.c, written by cmake/build_info.cmake */

/* The file name of the loaded library whose name starts with 'prefix' (in 'out'), or "". */
struct found {
    const char *prefix;
    char file[PATH_MAX];
};

static int find_library(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct found *f = arg;
    const char *base = strrchr(info->dlpi_name, '/');
    base = base ? base + 1 : info->dlpi_name;
    if (strncmp(base, f->prefix, strlen(f->prefix)) != 0) {
        return 0;
    }
    /* the soname's link leads to the file of the full version (libfoo.so.0.13.5) */
    char *real = realpath(info->dlpi_name, NULL);
    const char *name = real ? strrchr(real, '/') : NULL;
    snprintf(f->file, sizeof(f->file), "%s", name ? name + 1 : base);
    free(real);
    return 1;
}

static void loaded(const char *prefix, char *out, size_t len)
{
    struct found f = {.prefix = prefix, .file = ""};
    dl_iterate_phdr(find_library, &f);
    snprintf(out, len, "%s", f.file[0] ? f.file : "statically linked");
}

int sy_cli_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: switchyard version\n\nPrints the version, the git commit it was built from "
               "and the libraries it runs with.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "switchyard version: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    char h2o[PATH_MAX], lua[PATH_MAX], hiredis[PATH_MAX];
    loaded("libh2o", h2o, sizeof(h2o));
    loaded("liblua", lua, sizeof(lua));
    loaded("libhiredis", hiredis, sizeof(hiredis));
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    printf("switchyard %s (commit %s)\n", SY_VERSION, sy_build_commit);
    printf("h2o       %s (%s)\n", H2O_VERSION, h2o);
    printf("OpenSSL   %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("Lua       %s (%s)\n", LUA_RELEASE, lua);
    printf("SQLite    %s\n", sqlite3_libversion());
    printf("libcurl   %s\n", curl ? curl->version : "?");
    printf("jansson   %s\n", jansson_version_str());
    printf("hiredis   %d.%d.%d (%s)\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, hiredis);
    return 0;
}
