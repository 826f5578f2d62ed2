/*
 * Rule throughput of one worker's Lua path: decode a 1 KB event, convert it
 * to a Lua table, call the rule. usage: sy-bench-rules RULE_FILE RULE EVENT_FILE SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua/sandbox.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: sy-bench-rules RULE_FILE RULE EVENT_FILE SECONDS\n");
        return 2;
    }
    FILE *f = fopen(argv[3], "rb");
    if (f == NULL) {
        perror(argv[3]);
        return 1;
    }
    static char body[1 << 20];
    size_t len = fread(body, 1, sizeof(body), f);
    fclose(f);
    struct sy_lua_limits lim = {.instructions = 10000000, .memory = 64u << 20};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    struct sy_error err;
    if (sy_lua_load_file(lx, argv[1], argv[1], &err) != SY_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double seconds = strtod(argv[4], NULL), t0 = now(), t = t0;
    long n = 0;
    char msg[1024];
    while (t - t0 < seconds) {
        for (int i = 0; i < 1000; i++) {
            if (sy_lua_run(lx, argv[2], "bench", body, len, NULL, 0, NULL, msg, sizeof(msg)) > SY_LUA_SKIPPED) {
                fprintf(stderr, "rule failed: %s\n", msg);
                return 1;
            }
        }
        n += 1000;
        t = now();
    }
    printf("%s: %.0f events/s on one worker (%ld runs, %zu-byte event)\n", argv[2],
           (double)n / (t - t0), n, len);
    sy_lua_free(lx);
    return 0;
}
