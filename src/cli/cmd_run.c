/*
 * cmd_run.c - `osconnect run`: presence sync plus the status endpoint
 * (/livez, /readyz, /healthz, /metrics). Thin: options, signals, the server's lifetime;
 * the work is osc_presence_loop() and osc_status_start().
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "osc/clock.h"
#include "osc/log.h"
#include "osc/metrics.h"
#include "osc/notify.h"
#include "osc/presence.h"
#include "osc/status.h"
#include "osc/store.h"

/* systemd (Type=notify): STATUS= after each cycle, WATCHDOG=1 at half the period. */
struct run_notify {
    int64_t watchdog_ms; /* 0: no watchdog */
    int64_t last_ping_ms;
};

static void on_tick(void *arg, const struct osc_metrics_cycle *done)
{
    struct run_notify *n = arg;
    int64_t now = osc_clock_mono_ms(NULL);

    if (done)
        osc_notify_status("last cycle %s: %llu PRESENCE, %llu PASSIVE_PRESENCE, %llu NO_PRESENCE, "
                          "%llu unknown; %llu pushed, %llu failed",
                          osc_metrics_result_name(done->result),
                          (unsigned long long)done->locations_by_status[OSC_PRESENCE_YES],
                          (unsigned long long)done->locations_by_status[OSC_PRESENCE_PASSIVE],
                          (unsigned long long)done->locations_by_status[OSC_PRESENCE_NO],
                          (unsigned long long)done->locations_unknown,
                          (unsigned long long)done->pushes_accepted,
                          (unsigned long long)(done->pushes_failed + done->pushes_unsent));
    if (n->watchdog_ms > 0 && (done || now - n->last_ping_ms >= n->watchdog_ms / 2)) {
        osc_notify_watchdog();
        n->last_ping_ms = now;
    }
}

static void usage(void)
{
    printf("Usage: osconnect run -c FILE\n"
           "\n"
           "Run the presence sync continuously (see `osconnect presence --help`) and\n"
           "serve the status endpoint on status.listen (default 127.0.0.1:9464; port 0\n"
           "picks a free port, printed as `status http://HOST:PORT`):\n"
           "  GET /livez    200 while the presence loop ticked recently, else 503\n"
           "  GET /readyz   200 while the last cycle read Mapped and OfficeSpace\n"
           "                acknowledged every push, within 3 intervals, else 503\n"
           "  GET /healthz  the same as /readyz; every body says why\n"
           "  GET /metrics  Prometheus text format (osconnect_presence_*)\n"
           "\n"
           "Options:\n" CLI_COMMON_HELP "\n"
           "A second osconnect on the same presence.state exits 75 (see presence --help).\n"
           "Under systemd (Type=notify) it sends READY=1 once serving, a STATUS= line\n"
           "after each cycle, WATCHDOG=1 at half of WatchdogSec= and STOPPING=1.\n"
           "\n"
           "Signals: SIGTERM/SIGINT stop within 2 s, aborting requests in flight (exit 0);\n"
           "SIGHUP reloads the configuration (a bad file keeps the old one; a changed\n"
           "status.listen needs a restart).\n"
           "\n" CLI_EXIT_HELP);
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONG, {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_presence_loop_opts lo = {0};
    struct osc_config *cfg = NULL;
    struct osc_metrics *metrics = NULL;
    struct osc_status *status = NULL;
    struct osc_store_lock *lock = NULL;
    struct osc_err err = {0};
    struct run_notify notify = {osc_notify_watchdog_ms(), 0};
    int opt, rc;

    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1)
        if (cli_common_option(&common, opt, optarg) <= 0)
            return cli_usage_error("run");
    if (common.help) {
        usage();
        return 0;
    }
    if (optind < argc) {
        fprintf(stderr, "osconnect run: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_error("run");
    }
    if ((rc = cli_load_config(&common, &cfg)))
        return rc;
    if (!cfg->presence.meta.present) {
        fprintf(stderr, "osconnect run: %s has no presence: section; nothing to run\n", cfg->path);
        rc = EX_CONFIG;
        goto out;
    }
    if (!(metrics = osc_metrics_new())) {
        rc = cli_fail("run", OSC_ENOMEM, NULL);
        goto out;
    }
    /* one process per state file: refuse before serving anything (the engine shares the lock) */
    if ((rc = osc_store_lock(cfg->presence.state, &lock, &err))) {
        rc = cli_fail("run", rc, &err);
        goto out;
    }
    cli_daemon_signals();
    if (cfg->status.enabled) {
        if ((rc = osc_status_start(cfg->status.listen, metrics, &status, &err))) {
            rc = cli_fail("run", rc, &err);
            goto out;
        }
        printf("status http://%s\n", osc_status_address(status));
        fflush(stdout);
        OSC_LOG_INFO("run", "status endpoint on http://%s (/livez, /readyz, /healthz, /metrics)",
                     osc_status_address(status));
    }
    lo.config_path = cfg->path;
    lo.metrics = metrics;
    lo.stop = &cli_stop;
    lo.reload = &cli_reload;
    lo.tick = on_tick;
    lo.tick_arg = &notify;
    if (notify.watchdog_ms > 0 && notify.watchdog_ms <= cfg->presence.interval_ms)
        OSC_LOG_WARN("run",
                     "the systemd watchdog (%lldms) is not longer than presence.interval "
                     "(%lldms): no ping is sent during a cycle; raise WatchdogSec=",
                     (long long)notify.watchdog_ms, (long long)cfg->presence.interval_ms);
    osc_notify_ready();
    notify.last_ping_ms = osc_clock_mono_ms(NULL);
    rc = osc_presence_loop(&cfg, &lo, &err);
    osc_notify_stopping();
    if (rc)
        rc = cli_fail("run", rc, &err);
    else
        OSC_LOG_INFO("run", "stopped");
out:
    osc_status_stop(status);
    osc_store_unlock(lock);
    osc_metrics_free(metrics);
    osc_config_free(cfg);
    return rc;
}
