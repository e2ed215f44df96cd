/*
 * cli.c - helpers shared by the subcommands.
 */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osc/log.h"

static int verbosity_level(const struct cli_common *c, int base)
{
    int level = base + c->verbose;
    if (c->quiet)
        level = OSC_LOG_LEVEL_ERROR;
    return level > OSC_LOG_LEVEL_DEBUG ? OSC_LOG_LEVEL_DEBUG : level;
}

int cli_common_option(struct cli_common *c, int opt, const char *arg)
{
    enum osc_log_format f;

    switch (opt) {
    case 'c': c->config_path = arg; return 1;
    case 'v':
        c->verbose++;
        osc_log_set_level((enum osc_log_level)verbosity_level(c, OSC_LOG_LEVEL_INFO));
        return 1;
    case 'q':
        c->quiet = 1;
        osc_log_set_level(OSC_LOG_LEVEL_ERROR);
        return 1;
    case 'h': c->help = 1; return 1;
    case CLI_OPT_LOG_FORMAT:
        if (osc_log_format_parse(arg, &f)) {
            fprintf(stderr, "osconnect: --log-format takes text or json, not '%s'\n", arg);
            return -1;
        }
        c->log_format = arg;
        osc_log_set_format(f);
        return 1;
    default: return 0;
    }
}

void cli_common_apply(const struct cli_common *c, const struct osc_config *cfg)
{
    enum osc_log_format f;
    int base = cfg ? cfg->log.level : OSC_LOG_LEVEL_INFO;

    osc_log_set_level((enum osc_log_level)verbosity_level(c, base));
    if (c->log_format && osc_log_format_parse(c->log_format, &f) == 0)
        osc_log_set_format(f);
    else if (cfg)
        osc_log_set_format((enum osc_log_format)cfg->log.format);
}

/* The lookup order of cli.h; *last is set when nothing before the system path applied. */
static const char *config_path(const struct cli_common *c, int *last)
{
    const char *env = getenv("OSCONNECT_CONFIG");

    *last = 0;
    if (c->config_path)
        return c->config_path;
    if (env && *env)
        return env;
    if (access(CLI_LOCAL_CONFIG, F_OK) == 0)
        return CLI_LOCAL_CONFIG;
    *last = 1;
    return CLI_SYSTEM_CONFIG;
}

int cli_load_config(const struct cli_common *c, struct osc_config **out)
{
    struct osc_err err = {0};
    int last, rc;
    const char *path = config_path(c, &last);

    if (last && access(path, F_OK) != 0) {
        fprintf(stderr,
                "osconnect config: no configuration: pass -c FILE, set OSCONNECT_CONFIG, or "
                "create ./" CLI_LOCAL_CONFIG " or " CLI_SYSTEM_CONFIG "\n");
        return EX_NOINPUT;
    }
    rc = osc_config_load(path, out, &err);
    if (rc)
        return cli_fail("config", rc, &err);
    cli_common_apply(c, *out);
    return 0;
}

int cli_fail(const char *cmd, int code, const struct osc_err *err)
{
    fprintf(stderr, "osconnect %s: %s\n", cmd, osc_err_text(err, code));
    return osc_err_exit_code(code);
}

int cli_usage_error(const char *cmd)
{
    fprintf(stderr, "Try 'osconnect %s --help'.\n", cmd);
    return EX_USAGE;
}

int cli_pick_destination(const char *cmd, const struct osc_config *cfg, const char **dest)
{
    if (!*dest && cfg->destinations.n == 1)
        *dest = cfg->destinations.names[0];
    if (*dest)
        return 0;
    fprintf(stderr, "osconnect %s: name the destination with -d (%zu in %s)\n", cmd,
            cfg->destinations.n, cfg->path);
    return cfg->destinations.n ? EX_USAGE : EX_CONFIG;
}

volatile int cli_stop, cli_reload;

static void on_stop(int sig)
{
    (void)sig;
    cli_stop = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    cli_reload = 1;
}

void cli_daemon_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
