/*
 * main.c - osconnect's entry point: find the subcommand and run it.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "osc/log.h"
#include "osc/version.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"check", cmd_check, "validate a config file and test its credentials"},
    {"send", cmd_send, "deliver records from files or stdin to a destination"},
    {"commit", cmd_commit, "commit the staged employee import of a source (exactly once)"},
    {"preview", cmd_preview, "print the requests a destination would send, send nothing"},
    {"test", cmd_test, "send one sample request to a destination and show the response"},
    {"presence", cmd_presence, "sync occupancy from Mapped to OfficeSpace presence"},
    {"run", cmd_run, "run presence sync with the health and metrics server"},
    {"sim", cmd_sim, "run the local OfficeSpace and Mapped simulator"},
    {"demo", cmd_demo, "run the connector against the simulator and show what happened"},
    {"help", cmd_help, "help on a command, or `help config` for every config key"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "Usage: osconnect COMMAND [OPTIONS]\n\n"
                 "osconnect delivers records and live occupancy to OfficeSpace.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'osconnect COMMAND --help' for a command's options.\n"
                 "  -V, --version   print the version\n\n" CLI_EXIT_HELP);
}

int cmd_help(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: osconnect help [COMMAND | config [--man]]\n\n"
               "Help on a command, or the reference of every configuration key\n"
               "(--man: as roff, for the man page).\n");
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "config") == 0) {
        int man = argc >= 3 && strcmp(argv[2], "--man") == 0;
        if (!man)
            printf("Configuration keys (section.key, type, default, meaning):\n");
        osc_config_describe(stdout, man);
        return 0;
    }
    if (argc >= 2) {
        for (size_t i = 0; i < NCOMMANDS; i++) {
            if (strcmp(argv[1], commands[i].name) == 0 && commands[i].run != cmd_help) {
                char help[] = "--help";
                char *av[] = {argv[1], help, NULL};
                return commands[i].run(2, av);
            }
        }
        fprintf(stderr, "osconnect: no command '%s'\n", argv[1]);
        return EX_USAGE;
    }
    usage(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    int rc;

    /* a file-size limit (ulimit -f, LimitFSIZE=) must fail a write, which osconnect reports and
     * cuts back, not kill the process mid-line */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("osconnect %s (%s)\n", OSC_VERSION, curl_version());
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            rc = commands[i].run(argc - 1, argv + 1);
            osc_log_flush();
            osc_log_secret_clear();
            curl_global_cleanup();
            return rc;
        }
    }
    fprintf(stderr, "osconnect: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EX_USAGE;
}
