#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"serve", sy_cli_serve, "run the webhook server"},
    {"check", sy_cli_check, "validate a config file"},
    {"sign", sy_cli_sign, "print the signed headers for a delivery"},
    {"send", sy_cli_send, "sign files with the current time and POST them"},
    {"events", sy_cli_events, "list stored events and their jobs, or show one"},
    {"replay", sy_cli_replay, "run dead jobs, or any stored events, again"},
    {"backtest", sy_cli_backtest, "run candidate rules over stored deliveries, offline"},
    {"test", sy_cli_test, "run *_test.lua rule tests"},
    {"rules", sy_cli_rules, "list rules with their state and jobs; pause or resume one"},
    {"version", sy_cli_version, "print the version, the commit and the libraries"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: switchyard COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\n'switchyard COMMAND --help' describes each one.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        char *none[] = {argv[1], NULL};
        return sy_cli_version(1, none);
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "switchyard: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}
