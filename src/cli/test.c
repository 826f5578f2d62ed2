/* `switchyard test`: its arguments; the runner is src/testkit/ (testkit.h). */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "testkit/testkit.h"

static const char usage[] =
    "usage: switchyard test [-c FILE] [--filter PATTERN] [--junit FILE] [PATH...]\n"
    "\n"
    "Run rule tests: every *_test.lua in PATHs (files or folders), by default in\n"
    "the folders of the config's rule files. The rules tested are the config's with\n"
    "-c; without it, the *.lua files beside the test files (./switchyard.lua gives\n"
    "the settings when there is one). Each test runs in a fresh world: fire()\n"
    "puts an event through the server's checks, a memory store, the engine's\n"
    "router (rules and plugins) and job runner; only the network (respond()),\n"
    "the clock (freeze_time, advance) and the log are the test's. Prints a line\n"
    "per test and ends with \"N passed, N failed\"; exit 1 when a test failed,\n"
    "2 on usage errors.\n"
    "  --filter PATTERN  run only tests whose name contains PATTERN\n"
    "  --junit FILE      also write a JUnit XML report\n";

int sy_cli_test(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"filter", required_argument, NULL, 'f'},
        {"junit", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *filter = NULL, *junit = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'f':
            filter = optarg;
            break;
        case 'j':
            junit = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    struct sy_testkit_args a = {.config = config,
                                .filter = filter,
                                .junit = junit,
                                .paths = argv + optind,
                                .n_paths = (size_t)(argc - optind)};
    return sy_testkit_run(&a);
}
