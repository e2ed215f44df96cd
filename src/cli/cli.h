/*
 * cli.h - what the subcommands share: common options, config loading,
 * exit codes. The CLI uses only include/osc/ (like curl's tool_*.c).
 */
#ifndef OSC_CLI_H
#define OSC_CLI_H

#include <getopt.h>
#include <stdio.h>
#include <sysexits.h>

#include "osc/config.h"
#include "osc/err.h"

/* Options every subcommand accepts. */
struct cli_common {
    const char *config_path;
    int verbose;
    int quiet;
    const char *log_format;
    int help;
};

enum { CLI_OPT_LOG_FORMAT = 1000, CLI_OPT_FIRST_PRIVATE = 1100 };

#define CLI_COMMON_SHORT "c:vqh"
#define CLI_COMMON_LONG                                                                            \
    {"config", required_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},                 \
        {"quiet", no_argument, NULL, 'q'},                                                         \
        {"log-format", required_argument, NULL, CLI_OPT_LOG_FORMAT},                               \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

#define CLI_COMMON_HELP                                                                            \
    "  -c, --config FILE      configuration file (YAML); default $OSCONNECT_CONFIG,\n"             \
    "                         else ./osconnect.yaml, else /etc/osconnect/osconnect.yaml\n"         \
    "  -v, --verbose          more log output (repeat for debug)\n"                                \
    "  -q, --quiet            errors only\n"                                                       \
    "      --log-format FMT   text (default) or json\n"                                            \
    "  -h, --help             this help\n"

#define CLI_EXIT_HELP                                                                              \
    "Exit status: 0 success, 1 presence: some locations refused, 64 usage,\n"                      \
    "65 bad input data, 66 cannot open input, 69 service unavailable,\n"                           \
    "70 internal error, 74 cannot write a file, 75 temporary failure or\n"                         \
    "interrupted, 76 unexpected response, 77 authentication failed,\n"                             \
    "78 configuration error.\n"

/* Handle a common option; returns 1 if handled, 0 if not, -1 on a bad value. */
int cli_common_option(struct cli_common *c, int opt, const char *arg);
/* Apply -v/-q/--log-format (after the config, which may set them too). */
void cli_common_apply(const struct cli_common *c, const struct osc_config *cfg);
#define CLI_LOCAL_CONFIG  "osconnect.yaml"
#define CLI_SYSTEM_CONFIG "/etc/osconnect/osconnect.yaml"
/*
 * Load the config: -c, else $OSCONNECT_CONFIG (when not empty), else
 * ./osconnect.yaml when it exists, else /etc/osconnect/osconnect.yaml. Prints the error and returns
 * its exit code on failure (66 naming every place looked at when none exists); 0 and *out on
 * success.
 */
int cli_load_config(const struct cli_common *c, struct osc_config **out);
/* Daemon signals for presence and run: SIGTERM/SIGINT set cli_stop, SIGHUP
 * cli_reload (no SA_RESTART, so sleeps wake up); SIGPIPE is ignored. */
extern volatile int cli_stop, cli_reload;
void cli_daemon_signals(void);

/* The destination named by -d, or the only one the config has. 0, or an exit
 * code after saying what is missing (64 with destinations, 78 without). */
int cli_pick_destination(const char *cmd, const struct osc_config *cfg, const char **dest);
/* Print "osconnect CMD: MSG" to stderr, return the exit code for code. */
int cli_fail(const char *cmd, int code, const struct osc_err *err);
/* Report an unknown option or missing argument; returns EX_USAGE. */
int cli_usage_error(const char *cmd);

/* examples/hr-sample.csv, compiled in (build/gen/hr_sample.c) for `osconnect demo`. */
extern const unsigned char cli_hr_sample[];
extern const size_t cli_hr_sample_len;

/* The subcommands; each parses its own argv (argv[0] is the command name). */
int cmd_sim(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_preview(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_presence(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_help(int argc, char **argv);

#endif
