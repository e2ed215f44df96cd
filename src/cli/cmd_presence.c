/*
 * cmd_presence.c - `osconnect presence`: sync Mapped occupancy to
 * OfficeSpace presence, continuously or once. Thin: options, signals,
 * exit codes; the work is osc_presence_loop().
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "osc/metrics.h"
#include "osc/presence.h"

enum { OPT_ONCE = CLI_OPT_FIRST_PRIVATE, OPT_DRY_RUN };

static void usage(void)
{
    printf(
        "Usage: osconnect presence -c FILE [--once] [--dry-run]\n"
        "\n"
        "Sync occupancy from the Mapped graph to OfficeSpace presence: every\n"
        "presence.interval, read the latest occupancy points of presence.buildings,\n"
        "map them to PRESENCE / PASSIVE_PRESENCE / NO_PRESENCE per OfficeSpace\n"
        "location (urn:officespace:{type}:id:{id} identities) and push what changed\n"
        "(plus a refresh every presence.resend_after) with createEmployeePresence.\n"
        "\n"
        "Options:\n"
        "      --once             run one cycle and exit with its status\n"
        "      --dry-run          print what would be pushed (location, Mapped place,\n"
        "                         status, count, detected at, why); send nothing\n" CLI_COMMON_HELP
        "\n"
        "Signals: SIGTERM/SIGINT stop within 2 s: a request in flight is aborted and\n"
        "what it carried is not recorded (sent again next time); exit 0 (75 with\n"
        "--once). SIGHUP reloads the configuration (a bad file keeps the old one).\n"
        "\n"
        "One process per state file: presence.state is locked (STATE.lock); a second\n"
        "osconnect on it exits 75 naming the holder's pid. --dry-run needs no lock.\n"
        "\n"
        "Exit status with --once: 0 the cycle succeeded, 1 OfficeSpace refused or did\n"
        "not acknowledge some locations, 77 Mapped or OfficeSpace refused the\n"
        "credentials, 69 an API was unavailable or refused the request, 76 unexpected\n"
        "response, 65 a Mapped answer above presence.max_response, 74 state database\n"
        "error, 75 the state file is locked by another osconnect, or a signal stopped\n"
        "the cycle, 78 configuration error, 64 usage. Without --once: 0 after a\n"
        "signal, 75 state file locked, 78 configuration error, 64 usage, 74 state\n"
        "database error.\n");
}

int cmd_presence(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONG,
                                             {"once", no_argument, NULL, OPT_ONCE},
                                             {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                             {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_presence_loop_opts lo = {0};
    struct osc_config *cfg = NULL;
    struct osc_metrics *metrics = NULL;
    struct osc_err err = {0};
    int opt, rc, once = 0, dry = 0;

    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        if (opt == OPT_ONCE) {
            once = 1;
            continue;
        }
        if (opt == OPT_DRY_RUN) {
            dry = 1;
            continue;
        }
        if (cli_common_option(&common, opt, optarg) <= 0)
            return cli_usage_error("presence");
    }
    if (common.help) {
        usage();
        return 0;
    }
    if (optind < argc) {
        fprintf(stderr, "osconnect presence: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_error("presence");
    }
    if ((rc = cli_load_config(&common, &cfg)))
        return rc;
    if (!(metrics = osc_metrics_new())) {
        rc = cli_fail("presence", OSC_ENOMEM, NULL);
        goto out;
    }
    cli_daemon_signals();
    lo.config_path = cfg->path;
    lo.once = once;
    lo.dry_run = dry;
    lo.dry_out = stdout;
    lo.metrics = metrics;
    lo.stop = &cli_stop;
    lo.reload = &cli_reload;
    rc = osc_presence_loop(&cfg, &lo, &err);
    if (rc == OSC_EREJECTED) {
        fprintf(stderr, "osconnect presence: %s\n", osc_err_text(&err, rc));
        rc = 1;
    } else if (rc) {
        rc = cli_fail("presence", rc, &err);
    }
out:
    osc_metrics_free(metrics);
    osc_config_free(cfg);
    return rc;
}
