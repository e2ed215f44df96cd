/*
 * metrics.c - presence metrics and their Prometheus rendering; see metrics.h.
 *
 * Invariant: every field is read and written under mu; render copies
 * nothing out without it.
 */
#include "osc/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/err.h"

struct osc_metrics {
    pthread_mutex_t mu;
    int64_t interval_ms;
    uint64_t cycles[OSC_METRICS__NRESULT];
    double duration_sum;
    double last_duration;
    struct osc_metrics_cycle last;
    struct osc_metrics_cycle seen; /* the last cycle that read Mapped: the location gauges */
    int have_last;
    uint64_t points_read_total, invalid_values_total;
    uint64_t pushes_accepted, pushes_failed, pushes_unacked, pushes_unsent;
    uint64_t push_requests, mapped_requests;
    uint64_t api_errors[OSC_METRICS__NAPI][OSC_METRICS__NCLASS];
    uint64_t invalid_identities, invalid_identities_total;
    int have_success;
    int64_t last_success_mono, last_success_wall;
    int64_t last_end_mono; /* when the last cycle ended */
    int have_tick;
    int64_t last_tick_mono, live_limit_ms;
};

static const char *const result_names[OSC_METRICS__NRESULT] = {"ok", "partial", "failed",
                                                               "auth_failed"};
static const char *const api_names[OSC_METRICS__NAPI] = {"mapped", "officespace"};
static const char *const class_names[OSC_METRICS__NCLASS] = {
    "auth",    "rate_limited", "server",  "client",        "transport",
    "graphql", "item",         "too_big", "unacknowledged"};
static const char *const status_names[3] = {"NO_PRESENCE", "PASSIVE_PRESENCE", "PRESENCE"};

const char *osc_metrics_result_name(enum osc_metrics_result r)
{
    return (unsigned)r < OSC_METRICS__NRESULT ? result_names[r] : "?";
}

struct osc_metrics *osc_metrics_new(void)
{
    struct osc_metrics *m = calloc(1, sizeof(*m));

    if (m && pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    if (m) {
        m->interval_ms = 60000;
        m->live_limit_ms = 5 * 60000;
    }
    return m;
}

void osc_metrics_free(struct osc_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void osc_metrics_set_interval(struct osc_metrics *m, int64_t interval_ms)
{
    pthread_mutex_lock(&m->mu);
    m->interval_ms = interval_ms;
    pthread_mutex_unlock(&m->mu);
}

void osc_metrics_record_cycle(struct osc_metrics *m, const struct osc_metrics_cycle *c,
                              int64_t now_mono_ms, int64_t now_wall_ms)
{
    pthread_mutex_lock(&m->mu);
    if ((unsigned)c->result < OSC_METRICS__NRESULT)
        m->cycles[c->result]++;
    m->last_duration = (double)c->duration_ms / 1000.0;
    m->duration_sum += m->last_duration;
    m->points_read_total += c->points_read;
    m->invalid_values_total += c->invalid_values;
    m->pushes_accepted += c->pushes_accepted;
    m->pushes_failed += c->pushes_failed;
    m->pushes_unacked += c->pushes_unacked;
    m->pushes_unsent += c->pushes_unsent;
    m->push_requests += c->push_requests;
    m->mapped_requests += c->mapped_requests;
    if (c->discovered) {
        m->invalid_identities = c->invalid_identities;
        m->invalid_identities_total += c->invalid_identities;
    }
    if (c->result == OSC_METRICS_OK || c->result == OSC_METRICS_PARTIAL) {
        m->have_success = 1;
        m->last_success_mono = now_mono_ms;
        m->last_success_wall = now_wall_ms;
    }
    m->last = *c;
    m->have_last = 1;
    m->last_end_mono = now_mono_ms;
    /* a cycle's end is a sign of life too */
    m->have_tick = 1;
    m->last_tick_mono = now_mono_ms;
    /* a cycle that could not read Mapped says nothing about the locations: keep the last view */
    if (c->locations_discovered || c->result == OSC_METRICS_OK || c->result == OSC_METRICS_PARTIAL)
        m->seen = *c;
    pthread_mutex_unlock(&m->mu);
}

void osc_metrics_api_error(struct osc_metrics *m, enum osc_metrics_api api,
                           enum osc_metrics_class cls)
{
    if (!m || (unsigned)api >= OSC_METRICS__NAPI || (unsigned)cls >= OSC_METRICS__NCLASS)
        return;
    pthread_mutex_lock(&m->mu);
    m->api_errors[api][cls]++;
    pthread_mutex_unlock(&m->mu);
}

enum osc_metrics_class osc_metrics_class_of(long status)
{
    if (status == 0)
        return OSC_METRICS_TRANSPORT;
    if (status == 401 || status == 403)
        return OSC_METRICS_AUTH;
    if (status == 429)
        return OSC_METRICS_RATE_LIMITED;
    if (status >= 500)
        return OSC_METRICS_SERVER;
    return OSC_METRICS_CLIENT;
}

#define P "osconnect_presence_"

static int head(struct osc_buf *b, const char *name, const char *type, const char *help)
{
    return osc_buf_printf(b, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

int osc_metrics_render(struct osc_metrics *m, struct osc_buf *b)
{
    int rc = 0;

    pthread_mutex_lock(&m->mu);
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((rc = (x)))                                                                            \
            goto out;                                                                              \
    } while (0)
    TRY(head(b, "cycles_total", "counter", "Presence cycles by result."));
    for (int r = 0; r < OSC_METRICS__NRESULT; r++)
        TRY(osc_buf_printf(b, P "cycles_total{result=\"%s\"} %llu\n", result_names[r],
                           (unsigned long long)m->cycles[r]));
    TRY(head(b, "cycle_duration_seconds", "summary", "Time a presence cycle took."));
    {
        unsigned long long n = 0;
        for (int r = 0; r < OSC_METRICS__NRESULT; r++)
            n += m->cycles[r];
        TRY(osc_buf_printf(
            b, P "cycle_duration_seconds_sum %.3f\n" P "cycle_duration_seconds_count %llu\n",
            m->duration_sum, n));
    }
    TRY(head(b, "last_cycle_duration_seconds", "gauge", "Duration of the last cycle."));
    TRY(osc_buf_printf(b, P "last_cycle_duration_seconds %.3f\n", m->last_duration));
    TRY(head(b, "locations", "gauge", "OfficeSpace locations by their current presence status."));
    for (int s = 2; s >= 0; s--)
        TRY(osc_buf_printf(b, P "locations{status=\"%s\"} %llu\n", status_names[s],
                           (unsigned long long)m->seen.locations_by_status[s]));
    TRY(osc_buf_printf(b, P "locations{status=\"unknown\"} %llu\n",
                       (unsigned long long)m->seen.locations_unknown));
    TRY(head(b, "locations_discovered", "gauge", "Locations with one valid OfficeSpace identity."));
    TRY(osc_buf_printf(b, P "locations_discovered %llu\n",
                       (unsigned long long)m->seen.locations_discovered));
    TRY(head(b, "points", "gauge", "Occupancy points used by a location."));
    TRY(osc_buf_printf(b, P "points %llu\n", (unsigned long long)m->seen.points));
    TRY(head(b, "points_read_total", "counter", "Latest point values read from Mapped."));
    TRY(osc_buf_printf(b, P "points_read_total %llu\n", (unsigned long long)m->points_read_total));
    TRY(head(b, "invalid_values_total", "counter",
             "Point values rejected (NaN, infinite, not a number)."));
    TRY(osc_buf_printf(b, P "invalid_values_total %llu\n",
                       (unsigned long long)m->invalid_values_total));
    TRY(head(b, "pushes_total", "counter", "Location presence pushes by result."));
    TRY(osc_buf_printf(
        b,
        P "pushes_total{result=\"accepted\"} %llu\n" P "pushes_total{result=\"failed\"} %llu\n" P
          "pushes_total{result=\"unacknowledged\"} %llu\n" P
          "pushes_total{result=\"unsent\"} %llu\n",
        (unsigned long long)m->pushes_accepted, (unsigned long long)m->pushes_failed,
        (unsigned long long)m->pushes_unacked, (unsigned long long)m->pushes_unsent));
    TRY(head(b, "push_requests_total", "counter", "GraphQL requests sent to OfficeSpace."));
    TRY(osc_buf_printf(b, P "push_requests_total %llu\n", (unsigned long long)m->push_requests));
    TRY(head(b, "mapped_requests_total", "counter", "GraphQL requests sent to Mapped."));
    TRY(osc_buf_printf(b, P "mapped_requests_total %llu\n",
                       (unsigned long long)m->mapped_requests));
    TRY(head(b, "api_errors_total", "counter", "API errors by API and class."));
    for (int a = 0; a < OSC_METRICS__NAPI; a++)
        for (int c = 0; c < OSC_METRICS__NCLASS; c++)
            TRY(osc_buf_printf(b, P "api_errors_total{api=\"%s\",class=\"%s\"} %llu\n",
                               api_names[a], class_names[c],
                               (unsigned long long)m->api_errors[a][c]));
    TRY(head(b, "invalid_identities", "gauge",
             "Invalid or conflicting OfficeSpace identities at the last discovery."));
    TRY(osc_buf_printf(b, P "invalid_identities %llu\n",
                       (unsigned long long)m->invalid_identities));
    TRY(head(b, "invalid_identities_total", "counter",
             "Invalid or conflicting identities reported, over all discoveries."));
    TRY(osc_buf_printf(b, P "invalid_identities_total %llu\n",
                       (unsigned long long)m->invalid_identities_total));
    TRY(head(b, "last_success_timestamp_seconds", "gauge",
             "Unix time when the last successful cycle ended (0: none yet)."));
    TRY(osc_buf_printf(b, P "last_success_timestamp_seconds %.3f\n",
                       m->have_success ? (double)m->last_success_wall / 1000.0 : 0.0));
    TRY(head(b, "up", "gauge", "1 while the last cycle succeeded."));
    TRY(osc_buf_printf(b, P "up %d\n",
                       m->have_last && (m->last.result == OSC_METRICS_OK ||
                                        m->last.result == OSC_METRICS_PARTIAL)));
#undef TRY
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void osc_metrics_tick(struct osc_metrics *m, int64_t now_mono_ms)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->have_tick = 1;
    m->last_tick_mono = now_mono_ms;
    pthread_mutex_unlock(&m->mu);
}

void osc_metrics_set_live_limit(struct osc_metrics *m, int64_t live_limit_ms)
{
    pthread_mutex_lock(&m->mu);
    m->live_limit_ms = live_limit_ms;
    pthread_mutex_unlock(&m->mu);
}

int osc_metrics_live(struct osc_metrics *m, int64_t now_mono_ms, char *why, size_t cap)
{
    int ok = 0;

    pthread_mutex_lock(&m->mu);
    if (!m->have_tick) {
        snprintf(why, cap, "the presence loop has not started");
    } else {
        int64_t age = now_mono_ms - m->last_tick_mono;
        ok = age <= m->live_limit_ms;
        snprintf(why, cap, "presence loop ticked %.1fs ago (limit %.1fs)", (double)age / 1000.0,
                 (double)m->live_limit_ms / 1000.0);
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

int osc_metrics_ready(struct osc_metrics *m, int64_t now_mono_ms, char *why, size_t cap)
{
    const struct osc_metrics_cycle *c = &m->last;
    int ok = 0;

    pthread_mutex_lock(&m->mu);
    if (!m->have_last) {
        snprintf(why, cap, "no presence cycle yet");
    } else {
        int64_t age = now_mono_ms - m->last_end_mono;
        const char *res = osc_metrics_result_name(c->result);
        if (!c->mapped_read)
            snprintf(why, cap, "last cycle (%s, %.1fs ago) could not read Mapped", res,
                     (double)age / 1000.0);
        else if (c->pushes_unacked || c->pushes_unsent || c->result == OSC_METRICS_FAILED ||
                 c->result == OSC_METRICS_AUTH_FAILED)
            snprintf(why, cap,
                     "last cycle (%s, %.1fs ago): %llu push(es) unacknowledged, %llu unsent", res,
                     (double)age / 1000.0, (unsigned long long)c->pushes_unacked,
                     (unsigned long long)c->pushes_unsent);
        else if (age > 3 * m->interval_ms)
            snprintf(why, cap, "last cycle ended %.1fs ago (limit %.1fs)", (double)age / 1000.0,
                     3.0 * (double)m->interval_ms / 1000.0);
        else {
            ok = 1;
            snprintf(why, cap,
                     "last cycle (%s) read Mapped and every push was acknowledged "
                     "(%llu accepted, %llu refused), %.1fs ago (limit %.1fs)",
                     res, (unsigned long long)c->pushes_accepted,
                     (unsigned long long)c->pushes_failed, (double)age / 1000.0,
                     3.0 * (double)m->interval_ms / 1000.0);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}
