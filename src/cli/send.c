#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "ingest/verify.h"
#include "util/buf.h"
#include "util/parse.h"

static const char usage[] =
    "usage: switchyard send [--url URL] (--secret-env VAR | --secret-file PATH)\n"
    "                       [--timestamp T] FILE...\n"
    "\n"
    "Sign each FILE (\"-\" reads stdin) with the current time and POST its exact bytes.\n"
    "Prints \"FILE: STATUS BODY\" per file; exits 1 when any answer is not 2xx.\n"
    "  --url URL      default http://127.0.0.1:8080/webhooks/unizo\n"
    "  --timestamp T  sign with this Unix time instead of now (to test the window)\n";

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    struct sy_buf *b = arg;
    return sy_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

/* POST one body; prints the outcome; returns true on a 2xx answer. */
static bool post_one(CURL *curl, const char *url, const char *name, const char *secret,
                     const char *tsarg, const char *body, size_t len)
{
    char ts[32], hex[65], h_ts[64], h_sig[96];
    if (tsarg != NULL) {
        snprintf(ts, sizeof(ts), "%s", tsarg);
    } else {
        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    }
    if (sy_signature_hex(secret, strlen(secret), ts, strlen(ts), body, len, hex) != 0) {
        fprintf(stderr, "%s: cannot compute the signature\n", name);
        return false;
    }
    snprintf(h_ts, sizeof(h_ts), "x-unizo-timestamp: %s", ts);
    snprintf(h_sig, sizeof(h_sig), "x-unizo-signature: v1=%s", hex);
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "content-type: application/json");
    hdrs = curl_slist_append(hdrs, h_ts);
    hdrs = curl_slist_append(hdrs, h_sig);
    hdrs = curl_slist_append(hdrs, "expect:");
    struct sy_buf resp;
    sy_buf_init(&resp, 1 << 20);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "switchyard-send/" SY_VERSION);
    CURLcode cc = curl_easy_perform(curl);
    long status = 0;
    bool ok = false;
    if (cc != CURLE_OK) {
        fprintf(stderr, "%s: %s: %s\n", name, url, curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        printf("%s: %ld %s\n", name, status, resp.data ? resp.data : "");
        ok = status >= 200 && status < 300;
    }
    curl_slist_free_all(hdrs);
    sy_buf_dispose(&resp);
    return ok;
}

int sy_cli_send(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"secret-env", required_argument, NULL, 'e'},
        {"secret-file", required_argument, NULL, 'f'},
        {"timestamp", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = "http://127.0.0.1:8080/webhooks/unizo";
    const char *env = NULL, *file = NULL, *tsarg = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 'e':
            env = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 't':
            tsarg = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    int64_t tsv;
    if ((env == NULL) == (file == NULL) || optind >= argc ||
        (tsarg && !sy_parse_int64(tsarg, strlen(tsarg), &tsv))) {
        fputs(usage, stderr);
        return 2;
    }
    char *secret = sy_cli_secret(env, file);
    if (secret == NULL) {
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *curl = curl_easy_init();
    int rc = curl ? 0 : 1;
    for (int i = optind; curl && i < argc; i++) {
        size_t len = 0;
        char *body = sy_cli_read_file(argv[i], 256u << 20, &len);
        if (body == NULL || !post_one(curl, url, argv[i], secret, tsarg, body, len)) {
            rc = 1;
        }
        free(body);
    }
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    explicit_bzero(secret, strlen(secret));
    free(secret);
    return rc;
}
