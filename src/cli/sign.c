#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "ingest/verify.h"
#include "util/parse.h"

static const char usage[] =
    "usage: switchyard sign (--secret-env VAR | --secret-file PATH) [--timestamp T] FILE\n"
    "\n"
    "Print the headers Unizo would send with FILE's exact bytes (\"-\" reads stdin):\n"
    "x-unizo-timestamp, x-unizo-signature (v1=HMAC-SHA256 of \"T.<body>\"), content-type.\n"
    "The secret comes from an environment variable or a file, never from the command line.\n";

int sy_cli_sign(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret-env", required_argument, NULL, 'e'},
        {"secret-file", required_argument, NULL, 'f'},
        {"timestamp", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = NULL, *file = NULL, *tsarg = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
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
    if ((env == NULL) == (file == NULL) || optind + 1 != argc) {
        fputs(usage, stderr);
        return 2;
    }
    int64_t ts = (int64_t)time(NULL);
    if (tsarg != NULL && !sy_parse_int64(tsarg, strlen(tsarg), &ts)) {
        fprintf(stderr, "switchyard sign: --timestamp %s is not a whole number\n", tsarg);
        return 2;
    }
    char *secret = sy_cli_secret(env, file);
    if (secret == NULL) {
        return 1;
    }
    size_t len = 0;
    char *body = sy_cli_read_file(argv[optind], 256u << 20, &len);
    int rc = 1;
    char tsbuf[32], hex[65];
    snprintf(tsbuf, sizeof(tsbuf), "%lld", (long long)ts);
    if (body != NULL &&
        sy_signature_hex(secret, strlen(secret), tsbuf, strlen(tsbuf), body, len, hex) == 0) {
        printf("x-unizo-timestamp: %s\nx-unizo-signature: v1=%s\ncontent-type: application/json\n",
               tsbuf, hex);
        rc = 0;
    }
    explicit_bzero(secret, strlen(secret));
    free(secret);
    free(body);
    return rc;
}
