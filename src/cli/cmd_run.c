/*
 * cmd_run.c - `osconnect run`: presence sync, the continuous sources of the
 * destinations (spool, http ingest, NATS) and the status endpoint (/livez,
 * /readyz, /healthz, /metrics, POST /ingest/). Thin: options, signals, the
 * threads' and the server's lifetime; the work is osc_presence_loop(),
 * include/osc/source.h and osc_status_start_opts().
 *
 * The sources run on their own copy of the configuration (a SIGHUP reload
 * replaces the presence loop's copy, which the source threads must not
 * see freed under them), so a changed source: needs a restart.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "osc/clock.h"
#include "osc/log.h"
#include "osc/metrics.h"
#include "osc/notify.h"
#include "osc/presence.h"
#include "osc/source.h"
#include "osc/status.h"
#include "osc/store.h"

/* The sources stop with the presence loop; this long after the stop they are left behind. */
#define SOURCES_JOIN_MS 1800

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
           "Run the presence sync continuously (see `osconnect presence --help`) when the\n"
           "config has presence:, and deliver every active destination that has a source:\n"
           "(spool folder, http ingest, NATS JetStream), each on its own thread, sending a\n"
           "partial batch after flush_interval. Serve the status endpoint on status.listen\n"
           "(default 127.0.0.1:9464; port 0 picks a free port, printed as\n"
           "`status http://HOST:PORT`):\n"
           "  GET /livez    200 while the presence loop and every source ticked recently\n"
           "  GET /readyz   200 while the last cycle read Mapped and OfficeSpace\n"
           "                acknowledged every push, within 3 intervals, and every source\n"
           "                is connected and sending, else 503\n"
           "  GET /healthz  the same as /readyz; every body says why\n"
           "  GET /metrics  Prometheus text format (osconnect_presence_*, osconnect_source_*)\n"
           "  POST /ingest/NAME  records for destination NAME (source type http):\n"
           "                Authorization: Bearer TOKEN; 202 once queued on disk\n"
           "\n"
           "With presence.coordination, instances of the same config share the buildings;\n"
           "with NATS sources they share the JetStream durable consumer.\n"
           "\n"
           "Options:\n" CLI_COMMON_HELP "\n"
           "A second osconnect on the same presence.state exits 75 (see presence --help).\n"
           "Under systemd (Type=notify) it sends READY=1 once serving, a STATUS= line\n"
           "after each cycle, WATCHDOG=1 at half of WatchdogSec= and STOPPING=1.\n"
           "\n"
           "Signals: SIGTERM/SIGINT stop within 2 s, aborting requests in flight (exit 0;\n"
           "what a source did not finish stays at the source and is delivered later);\n"
           "SIGHUP reloads the presence configuration (a bad file keeps the old one; a\n"
           "changed status.listen or source: needs a restart).\n"
           "\n" CLI_EXIT_HELP);
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONG, {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_presence_loop_opts lo = {0};
    struct osc_config *cfg = NULL, *scfg = NULL;
    struct osc_metrics *metrics = NULL;
    struct osc_status *status = NULL;
    struct osc_status_opts so = {0};
    struct osc_sources *sources = NULL;
    struct osc_store_lock *lock = NULL;
    struct osc_err err = {0};
    struct run_notify notify = {osc_notify_watchdog_ms(), 0};
    int opt, rc, presence;
    size_t left = 0;

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
    presence = cfg->presence.meta.present;
    /* the sources' own copy: a reload frees cfg, never scfg */
    if ((rc = cli_load_config(&common, &scfg)))
        goto out;
    if ((rc = osc_sources_new(scfg, &cli_stop, &sources, &err))) {
        rc = cli_fail("run", rc, &err);
        goto out;
    }
    if (!presence && !osc_sources_count(sources)) {
        fprintf(stderr,
                "osconnect run: %s has no presence: section and no active destination with a "
                "source:; nothing to run\n",
                cfg->path);
        rc = EX_CONFIG;
        goto out;
    }
    if (osc_sources_has_ingest(sources) && !cfg->status.enabled) {
        fprintf(stderr,
                "osconnect run: %s: a destination has source type http, which is served on "
                "status.listen; set status.enabled: true\n",
                cfg->path);
        rc = EX_CONFIG;
        goto out;
    }
    if (presence && !(metrics = osc_metrics_new())) {
        rc = cli_fail("run", OSC_ENOMEM, NULL);
        goto out;
    }
    /* one process per state file: refuse before serving anything (the engine shares the lock) */
    if (presence && (rc = osc_store_lock(cfg->presence.state, &lock, &err))) {
        rc = cli_fail("run", rc, &err);
        goto out;
    }
    cli_daemon_signals();
    if (cfg->status.enabled) {
        so.listen = cfg->status.listen;
        so.presence = metrics;
        so.sources = sources;
        if ((rc = osc_status_start_opts(&so, &status, &err))) {
            rc = cli_fail("run", rc, &err);
            goto out;
        }
        printf("status http://%s\n", osc_status_address(status));
        fflush(stdout);
        OSC_LOG_INFO("run", "status endpoint on http://%s (/livez, /readyz, /healthz, /metrics%s)",
                     osc_status_address(status),
                     osc_sources_has_ingest(sources) ? ", POST /ingest/" : "");
    }
    if ((rc = osc_sources_start(sources, &err))) {
        cli_stop = 1;
        rc = cli_fail("run", rc, &err);
        goto out;
    }
    if (osc_sources_count(sources))
        OSC_LOG_INFO("run", "%zu source(s) running", osc_sources_count(sources));
    lo.config_path = cfg->path;
    lo.metrics = metrics;
    lo.stop = &cli_stop;
    lo.reload = &cli_reload;
    lo.tick = on_tick;
    lo.tick_arg = &notify;
    if (presence && notify.watchdog_ms > 0 && notify.watchdog_ms <= cfg->presence.interval_ms)
        OSC_LOG_WARN("run",
                     "the systemd watchdog (%lldms) is not longer than presence.interval "
                     "(%lldms): no ping is sent during a cycle; raise WatchdogSec=",
                     (long long)notify.watchdog_ms, (long long)cfg->presence.interval_ms);
    lo.coordinate = 1;
    osc_notify_ready();
    notify.last_ping_ms = osc_clock_mono_ms(NULL);
    if (presence) {
        rc = osc_presence_loop(&cfg, &lo, &err);
    } else {
        /* sources only: the threads do the work; this one waits for a signal */
        while (!cli_stop) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
            if (cli_reload) {
                cli_reload = 0;
                OSC_LOG_WARN("run", "SIGHUP: sources are not reloaded; restart to apply a "
                                    "changed source:");
            }
            on_tick(&notify, NULL);
        }
    }
    /* the sources stop too (when the loop ended on an error rather than a signal as well) */
    cli_stop = 1;
    osc_notify_stopping();
    if (rc)
        rc = cli_fail("run", rc, &err);
out:
    cli_stop = 1;
    left = osc_sources_join(sources, SOURCES_JOIN_MS);
    if (left)
        /* their records are safe where they came from (checkpoint, queue, unacked messages) */
        OSC_LOG_WARN("run", "%zu source(s) did not stop within %.1fs; exiting without them", left,
                     SOURCES_JOIN_MS / 1000.0);
    else if (!rc)
        OSC_LOG_INFO("run", "stopped");
    osc_status_stop(status);
    osc_store_unlock(lock);
    osc_metrics_free(metrics);
    osc_config_free(cfg);
    if (!left) {
        osc_sources_free(sources);
        osc_config_free(scfg);
    }
    return rc;
}
