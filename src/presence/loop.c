/*
 * loop.c - run presence cycles on a fixed grid until stopped; see presence.h.
 *
 * Invariants: at most one cycle runs at a time (the loop is single-threaded
 * and a cycle's retries end before its deadline, the next grid slot);
 * *cfg and the engine are replaced together, only after a reloaded file
 * parsed and a new engine was built from it, so a bad reload changes
 * nothing. Signals only set flags; everything happens here between cycles.
 */
#include "osc/presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "osc/log.h"
#include "osc/metrics.h"

#define AUTH_BACKOFF_MAX_MS (60LL * 60 * 1000)

static int flag(volatile int *f) { return f && *f; }

/* Sleep up to ms, waking early on stop or reload, or when the coordinator took over a
 * building (its generation moved past gen); every slice is a heartbeat for /livez, and
 * o->tick runs after each. */
static void nap(int64_t ms, const struct osc_presence_loop_opts *o,
                struct osc_presence_coord *coord, uint64_t gen)
{
    while (ms > 0 && !flag(o->stop) && !flag(o->reload) &&
           !(coord && osc_presence_coord_gen(coord) != gen)) {
        int64_t slice = ms > 100 ? 100 : ms;
        struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
        osc_metrics_tick(o->metrics, osc_clock_mono_ms(o->clock));
        nanosleep(&ts, NULL); /* a signal ends the slice early, which is what we want */
        ms -= slice;
        if (o->tick)
            o->tick(o->tick_arg, NULL);
    }
}

/*
 * The longest silence of a live loop: a cycle's retry waits end before the next grid slot, and
 * the engine ticks before every request, so one interval plus the longest request, plus slack.
 */
static void set_live_limit(struct osc_metrics *m, const struct osc_config *cfg)
{
    int64_t t = cfg->mapped.timeout_ms > cfg->officespace.timeout_ms ? cfg->mapped.timeout_ms
                                                                     : cfg->officespace.timeout_ms;
    osc_metrics_set_live_limit(m, cfg->presence.interval_ms + t + 10000);
}

/* Start the coordinator when cfg asks for one (and the loop coordinates). 0 or its error. */
static int coord_start(const struct osc_config *cfg, const struct osc_presence_loop_opts *o,
                       struct osc_presence_coord **coord, struct osc_err *err)
{
    *coord = NULL;
    if (!o->coordinate || o->dry_run || !cfg->presence.coordination.meta.present ||
        cfg->presence.coordination.type != OSC_CONF_COORD_NATS)
        return 0;
    return osc_presence_coord_start(cfg, coord, err);
}

/* Before a cycle: the engine polls what the coordinator holds now. */
static uint64_t apply_held(struct osc_presence *eng, struct osc_presence_coord *coord, size_t n)
{
    unsigned char *held;
    uint64_t gen;

    if (!coord)
        return 0;
    if (!(held = calloc(n ? n : 1, 1))) {
        OSC_LOG_ERROR("presence", "out of memory");
        return osc_presence_coord_gen(coord);
    }
    gen = osc_presence_coord_held(coord, held, n);
    if (osc_presence_hold(eng, held))
        OSC_LOG_ERROR("presence", "out of memory");
    free(held);
    return gen;
}

/* path is the loop's own copy: the caller's may live inside the config this frees. */
static int reload_config(const char *path, struct osc_config **cfg, struct osc_presence **eng,
                         const struct osc_presence_loop_opts *o, struct osc_presence_opts *eo,
                         struct osc_presence_sched *sched, struct osc_presence_coord **coord)
{
    struct osc_config *ncfg = NULL;
    struct osc_presence *neng = NULL;
    struct osc_presence_coord *ncoord = NULL;
    struct osc_err err = {0};
    int rc, keep;

    if ((rc = osc_config_load(path, &ncfg, &err))) {
        OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "presence", "reload_failed", (OSC_LF_STR("config", path)),
                   "reload of %s failed, keeping the running configuration: %s", path,
                   osc_err_text(&err, rc));
        return rc;
    }
    if ((rc = osc_presence_new(ncfg, eo, &neng, &err))) {
        OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "presence", "reload_failed", (OSC_LF_STR("config", path)),
                   "reload of %s failed, keeping the running configuration: %s", path,
                   osc_err_text(&err, rc));
        osc_config_free(ncfg);
        return rc;
    }
    /* the leases stay as they are unless the buildings or the coordination changed */
    keep = *coord && osc_presence_coord_same(*coord, ncfg);
    if (!keep && (rc = coord_start(ncfg, o, &ncoord, &err))) {
        OSC_LOG_ERROR("presence", "reload of %s failed, keeping the running configuration: %s",
                      path, osc_err_text(&err, rc));
        osc_presence_free(neng);
        osc_config_free(ncfg);
        return rc;
    }
    if (!keep) {
        osc_presence_coord_stop(*coord);
        *coord = ncoord;
    }
    osc_presence_free(*eng);
    osc_config_free(*cfg);
    *eng = neng;
    *cfg = ncfg;
    osc_presence_sched_set_interval(sched, ncfg->presence.interval_ms);
    osc_metrics_set_interval(o->metrics, ncfg->presence.interval_ms);
    set_live_limit(o->metrics, ncfg);
    OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "presence", "reloaded",
               (OSC_LF_STR("config", path), OSC_LF_INT("interval_ms", ncfg->presence.interval_ms),
                OSC_LF_INT("buildings", ncfg->presence.buildings.n)),
               "configuration reloaded from %s (interval %lldms, %zu building(s))", path,
               (long long)ncfg->presence.interval_ms, ncfg->presence.buildings.n);
    return 0;
}

int osc_presence_loop(struct osc_config **cfg, const struct osc_presence_loop_opts *o,
                      struct osc_err *err)
{
    struct osc_presence_opts eo = {0};
    struct osc_presence *eng = NULL;
    struct osc_presence_coord *coord = NULL;
    struct osc_presence_sched sched;
    unsigned auth_failures = 0;
    uint64_t gen = 0;
    char *path = NULL;
    int rc;

    if (o->config_path && !(path = strdup(o->config_path)))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    eo.clock = o->clock;
    eo.metrics = o->metrics;
    eo.dry_run = o->dry_run;
    eo.dry_out = o->dry_out;
    eo.stop = o->stop;
    if ((rc = osc_presence_new(*cfg, &eo, &eng, err)) || (rc = coord_start(*cfg, o, &coord, err)))
        goto out;
    osc_metrics_set_interval(o->metrics, (*cfg)->presence.interval_ms);
    set_live_limit(o->metrics, *cfg);
    osc_metrics_tick(o->metrics, osc_clock_mono_ms(o->clock));
    osc_presence_sched_init(&sched, (*cfg)->presence.interval_ms, osc_clock_mono_ms(o->clock));

    for (;;) {
        struct osc_metrics_cycle rep;
        struct osc_err cerr = {0};
        int64_t start = osc_clock_mono_ms(o->clock), end, delay, backoff = 0;
        /* the cycle must end before the next grid slot */
        int64_t deadline = start + (*cfg)->presence.interval_ms - 50;

        gen = apply_held(eng, coord, (*cfg)->presence.buildings.n);
        rc = osc_presence_cycle(eng, deadline, &rep, &cerr);
        end = osc_clock_mono_ms(o->clock);
        osc_metrics_record_cycle(o->metrics, &rep, end, osc_clock_wall_ms(o->clock));
        if (o->tick)
            o->tick(o->tick_arg, &rep);
        if (rc && flag(o->stop)) {
            /* a stop ended the cycle early: what was in flight is unsent, nothing is lost */
            OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "presence", "cycle_interrupted",
                       (OSC_LF_STR("result", osc_metrics_result_name(rep.result))),
                       "cycle interrupted: %s", osc_err_text(&cerr, rc));
            if (!o->once)
                rc = 0;
            else if (rc != OSC_EINTERRUPTED) {
                char why[OSC_ERR_MSG_MAX];
                snprintf(why, sizeof(why), "%s", osc_err_text(&cerr, rc));
                rc = osc_err_set(&cerr, OSC_EINTERRUPTED, "stopped by a signal: %s", why);
            }
        } else if (rc && rc != OSC_EAUTH)
            OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "presence", "cycle_failed",
                       (OSC_LF_STR("result", osc_metrics_result_name(rep.result)),
                        OSC_LF_INT_NZ("status", cerr.status)),
                       "cycle %s: %s", osc_metrics_result_name(rep.result),
                       osc_err_text(&cerr, rc));
        if (o->once) {
            if (rc == OSC_EAUTH)
                OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "presence", "auth_refused",
                           (OSC_LF_INT_NZ("status", cerr.status)), "%s", osc_err_text(&cerr, rc));
            if (err && rc)
                *err = cerr;
            break;
        }
        if (rc == OSC_EAUTH) {
            auth_failures++;
            backoff = osc_presence_auth_backoff_ms((*cfg)->presence.interval_ms, auth_failures,
                                                   AUTH_BACKOFF_MAX_MS);
            OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "presence", "auth_backoff",
                       (OSC_LF_INT_NZ("status", cerr.status), OSC_LF_INT("delay_ms", backoff),
                        OSC_LF_INT("step", auth_failures)),
                       "%s; backing off: next attempt in %.1fs (step %u)", osc_err_text(&cerr, rc),
                       (double)backoff / 1000.0, auth_failures);
            osc_presence_invalidate(eng);
        } else if (auth_failures) {
            OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "presence", "auth_recovered",
                       (OSC_LF_INT("refused_cycles", auth_failures)),
                       "credentials accepted again after %u refused cycle(s)", auth_failures);
            auth_failures = 0;
        }
        rc = 0;
        if (flag(o->stop))
            break;
        delay = osc_presence_sched_done(&sched, end, backoff);
        OSC_LOG_DEBUG("presence", "next cycle in %lldms", (long long)delay);
        for (;;) {
            nap(osc_presence_sched_delay(&sched, osc_clock_mono_ms(o->clock)), o, coord, gen);
            if (flag(o->stop))
                goto out;
            if (coord && osc_presence_coord_gen(coord) != gen) {
                /* a building taken over is polled now, not at the next grid slot */
                osc_presence_sched_init(&sched, (*cfg)->presence.interval_ms,
                                        osc_clock_mono_ms(o->clock));
                break;
            }
            if (flag(o->reload)) {
                *o->reload = 0;
                if (path && reload_config(path, cfg, &eng, o, &eo, &sched, &coord) == 0) {
                    /* new settings or credentials: use them now, on a new grid */
                    auth_failures = 0;
                    osc_presence_sched_init(&sched, (*cfg)->presence.interval_ms,
                                            osc_clock_mono_ms(o->clock));
                }
                continue;
            }
            if (osc_presence_sched_delay(&sched, osc_clock_mono_ms(o->clock)) == 0)
                break;
        }
    }
out:
    osc_presence_coord_stop(coord);
    osc_presence_free(eng);
    free(path);
    return rc;
}
