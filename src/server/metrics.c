/*
 * metrics.c - presence metrics and their Prometheus rendering, the build
 * info, and the final metrics file of a `send`; see metrics.h.
 *
 * Invariant: every field is read and written under mu; render copies
 * nothing out without it. Label values are escaped (\\, \", \n), so a
 * destination name cannot break the exposition.
 */
#include "osc/metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <lua5.4/lua.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <jansson.h>

#include "osc/err.h"
#include "osc/version.h"

static const double duration_bounds[] = {OSC_METRICS_DURATION_BUCKETS};
#define NBOUNDS (sizeof(duration_bounds) / sizeof(duration_bounds[0]))

/* A Prometheus histogram: counts per bucket (not cumulative; summed when rendered). */
struct histogram {
    uint64_t bucket[NBOUNDS + 1]; /* the last is +Inf */
    uint64_t count;
    double sum;
};

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
    struct histogram request_duration[OSC_METRICS__NAPI];
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

void osc_metrics_observe_request(struct osc_metrics *m, enum osc_metrics_api api, double seconds)
{
    struct histogram *h;
    size_t i = 0;

    if (!m || (unsigned)api >= OSC_METRICS__NAPI)
        return;
    if (!(seconds >= 0)) /* NaN, or a clock that stepped back */
        seconds = 0;
    while (i < NBOUNDS && seconds > duration_bounds[i])
        i++;
    pthread_mutex_lock(&m->mu);
    h = &m->request_duration[api];
    h->bucket[i]++;
    h->count++;
    h->sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

/* A label value in the exposition format: \\, \" and \n escaped. */
static int label_value(struct osc_buf *b, const char *v)
{
    int rc = 0;

    for (; *v && !rc; v++)
        rc = *v == '\\'   ? osc_buf_adds(b, "\\\\")
             : *v == '"'  ? osc_buf_adds(b, "\\\"")
             : *v == '\n' ? osc_buf_adds(b, "\\n")
                          : osc_buf_addc(b, *v);
    return rc;
}

int osc_metrics_render_build_info(struct osc_buf *b)
{
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    const char *const labels[][2] = {
        {"version", OSC_VERSION},
        {"curl", cv && cv->version ? cv->version : "unknown"},
        {"jansson", jansson_version_str()},
        {"sqlite", sqlite3_libversion()},
        {"microhttpd", MHD_get_version()},
        {"yaml", yaml_get_version_string()},
        {"lua", LUA_VERSION_MAJOR "." LUA_VERSION_MINOR "." LUA_VERSION_RELEASE}};
    int rc = osc_buf_adds(b, "# HELP osconnect_build_info The osconnect version and the versions "
                             "of the libraries it runs with.\n"
                             "# TYPE osconnect_build_info gauge\nosconnect_build_info{");

    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]) && !rc; i++) {
        rc = osc_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i][0]);
        if (!rc)
            rc = label_value(b, labels[i][1] ? labels[i][1] : "unknown");
        if (!rc)
            rc = osc_buf_addc(b, '"');
    }
    return rc ? rc : osc_buf_adds(b, "} 1\n");
}

static int render_histograms(struct osc_metrics *m, struct osc_buf *b)
{
    static const char *const name = "osconnect_http_request_duration_seconds";
    int rc = osc_buf_printf(b,
                            "# HELP %s Duration of the presence sync's HTTP requests, by API "
                            "(retries counted one by one).\n# TYPE %s histogram\n",
                            name, name);

    for (int a = 0; a < OSC_METRICS__NAPI && !rc; a++) {
        const struct histogram *h = &m->request_duration[a];
        uint64_t cum = 0;
        for (size_t i = 0; i < NBOUNDS && !rc; i++) {
            cum += h->bucket[i];
            rc = osc_buf_printf(b, "%s_bucket{api=\"%s\",le=\"%g\"} %llu\n", name, api_names[a],
                                duration_bounds[i], (unsigned long long)cum);
        }
        if (!rc)
            rc =
                osc_buf_printf(b,
                               "%s_bucket{api=\"%s\",le=\"+Inf\"} %llu\n%s_sum{api=\"%s\"} %.6f\n"
                               "%s_count{api=\"%s\"} %llu\n",
                               name, api_names[a], (unsigned long long)h->count, name, api_names[a],
                               h->sum, name, api_names[a], (unsigned long long)h->count);
    }
    return rc;
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
    TRY(render_histograms(m, b));
    TRY(osc_metrics_render_build_info(b));
    TRY(osc_metrics_render_process(b));
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

/* ---- the final metrics of a `send` run (--metrics-file) --------------------------- */

#define S "osconnect_send_"

/* One gauge family of a single series: HELP, TYPE and name{destination="..."} value. */
static int send_gauge(struct osc_buf *b, const char *dest, const char *name, const char *help,
                      const char *fmt_value, double v)
{
    int rc = osc_buf_printf(b, "# HELP " S "%s %s\n# TYPE " S "%s gauge\n" S "%s{destination=\"",
                            name, help, name, name);

    if (!rc)
        rc = label_value(b, dest);
    if (!rc)
        rc = osc_buf_adds(b, "\"} ");
    if (!rc)
        rc = osc_buf_printf(b, fmt_value, v);
    return rc ? rc : osc_buf_addc(b, '\n');
}

/* One more series of a family: name{destination="...",key="val"} value. */
static int send_series(struct osc_buf *b, const char *dest, const char *name, const char *key,
                       const char *val, unsigned long long v)
{
    int rc = osc_buf_printf(b, S "%s{destination=\"", name);

    if (!rc)
        rc = label_value(b, dest);
    return rc ? rc : osc_buf_printf(b, "\",%s=\"%s\"} %llu\n", key, val, v);
}

int osc_metrics_render_send(const char *dest, const struct osc_delivery_stats *st, int exit_code,
                            int64_t now_wall_ms, struct osc_buf *b)
{
    static const char *const commits[] = {"none", "triggered", "refused", "failed", "unknown"};
    const char *const reasons[] = {"malformed", "unmappable", "api", "retries"};
    const uint64_t rejected[] = {st->malformed, st->invalid, st->rejected, st->unavailable};
    /* st->commit: 0 none, 1 triggered, -1 refused, -2 failed, -3 unknown */
    int commit = st->commit == 1 ? 1 : st->commit < 0 && st->commit >= -3 ? 1 - st->commit : 0;
    int rc = 0;

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((rc = (x)))                                                                            \
            return rc;                                                                             \
    } while (0)
#define U(x) "%.0f", (double)(x)
    TRY(send_gauge(b, dest, "records", "Records read by the last send (valid and malformed).",
                   U(st->records)));
    TRY(send_gauge(b, dest, "records_sent", "Records the API accepted in the last send.",
                   U(st->sent)));
    TRY(osc_buf_adds(b, "# HELP " S "records_rejected Records of the last send that were not "
                        "delivered, by reason (all in the dead-letter file).\n# TYPE " S
                        "records_rejected gauge\n"));
    for (size_t i = 0; i < 4; i++)
        TRY(send_series(b, dest, "records_rejected", "reason", reasons[i],
                        (unsigned long long)rejected[i]));
    TRY(send_gauge(b, dest, "records_unsent",
                   "Records of the last send that were never sent (it stopped early).",
                   U(st->unsent)));
    TRY(send_gauge(b, dest, "records_dead_lettered",
                   "Lines the last send wrote to the dead-letter file.", U(st->dead_lettered)));
    TRY(send_gauge(b, dest, "requests", "API requests of the last send, retries included.",
                   U(st->requests)));
    TRY(send_gauge(b, dest, "retries", "Retried requests of the last send.", U(st->retries)));
    TRY(send_gauge(b, dest, "duration_seconds", "How long the last send took.", "%.3f",
                   st->seconds));
    TRY(send_gauge(b, dest, "exit_code",
                   "Exit status of the last send (0: every record delivered).", U(exit_code)));
    TRY(osc_buf_adds(b, "# HELP " S "commit Outcome of the last send's directory import (1 for "
                        "the one that happened).\n# TYPE " S "commit gauge\n"));
    for (int i = 0; i < 5; i++)
        TRY(send_series(b, dest, "commit", "outcome", commits[i], i == commit));
    TRY(send_gauge(b, dest, "last_run_timestamp_seconds", "Unix time the last send ended.", "%.3f",
                   (double)now_wall_ms / 1000.0));
#undef U
#undef TRY
    return rc;
}

int osc_metrics_write_file(const char *path, const char *text, size_t len, struct osc_err *err)
{
    char *tmp = NULL;
    int fd = -1, rc = 0;
    size_t off = 0;

    if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
        tmp = NULL;
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    }
    /* in the same folder: rename(2) is atomic only within one file system */
    if ((fd = mkstemp(tmp)) < 0) {
        rc = osc_err_set(err, OSC_EIO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = osc_err_set(err, OSC_EIO, "cannot write %s: %s", tmp,
                             n < 0 ? strerror(errno) : "short write");
            goto out;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, 0644) || fsync(fd)) {
        rc = osc_err_set(err, OSC_EIO, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd)) {
        fd = -1;
        rc = osc_err_set(err, OSC_EIO, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path))
        rc = osc_err_set(err, OSC_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}
