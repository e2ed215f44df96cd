/*
 * metrics.h - presence sync counters and gauges, rendered as Prometheus text.
 *
 * The presence loop records into one struct osc_metrics; the status server
 * reads it from its own thread, so every access takes the struct's mutex
 * (recording is a handful of additions per cycle, never on a hot path).
 * The location gauges (locations, locations_discovered, points) show the
 * last cycle that read Mapped, so a failed read does not zero them. The
 * struct also holds the loop's heartbeat and the last cycles' verdicts, for
 * /livez and /readyz.
 * Names (all prefixed osconnect_presence_):
 *   cycles_total{result}                 counter  ok|partial|failed|auth_failed
 *   cycle_duration_seconds               summary  (_sum, _count)
 *   last_cycle_duration_seconds          gauge
 *   locations{status}                    gauge    PRESENCE|PASSIVE_PRESENCE|NO_PRESENCE|unknown
 *   locations_discovered                 gauge
 *   points                               gauge    occupancy points used by a location
 *   points_read_total                    counter  latest values read
 *   invalid_values_total                 counter  NaN/inf/non-numeric values
 *   pushes_total{result}                 counter  accepted|failed|unacknowledged|unsent (locations)
 *   push_requests_total                  counter  GraphQL requests to OfficeSpace
 *   mapped_requests_total                counter  GraphQL requests to Mapped
 *   api_errors_total{api,class}          counter  api mapped|officespace; class auth|
 *                                                 rate_limited|server|client|transport|graphql|item|too_big|
 *                                                 unacknowledged
 *   invalid_identities                   gauge    at the last discovery
 *   invalid_identities_total             counter
 *   last_success_timestamp_seconds       gauge    Unix time of the last ok/partial cycle
 *   up                                   gauge    1 while the last cycle was ok/partial
 * Besides those, osc_metrics_render() writes:
 *   osconnect_build_info{version,curl,jansson,sqlite,microhttpd,yaml,lua}  gauge, always 1
 *   osconnect_http_request_duration_seconds{api}  histogram  presence HTTP calls
 *                                                            (mapped|officespace)
 *   process_cpu_seconds_total, process_resident_memory_bytes,
 *   process_virtual_memory_bytes, process_open_fds, process_max_fds,
 *   process_start_time_seconds       the standard process metrics, from /proc/self
 */
#ifndef OSC_METRICS_H
#define OSC_METRICS_H

#include <stdint.h>

#include "osc/buf.h"
#include "osc/delivery.h"
#include "osc/err.h"

enum osc_metrics_result {
    OSC_METRICS_OK = 0,
    OSC_METRICS_PARTIAL,     /* some locations were not accepted */
    OSC_METRICS_FAILED,      /* Mapped could not be read, or nothing could be pushed */
    OSC_METRICS_AUTH_FAILED, /* a credential was refused */
    OSC_METRICS__NRESULT
};

enum osc_metrics_api { OSC_METRICS_MAPPED = 0, OSC_METRICS_OFFICESPACE, OSC_METRICS__NAPI };

enum osc_metrics_class {
    OSC_METRICS_AUTH = 0,
    OSC_METRICS_RATE_LIMITED,
    OSC_METRICS_SERVER,
    OSC_METRICS_CLIENT,
    OSC_METRICS_TRANSPORT,
    OSC_METRICS_GRAPHQL,
    OSC_METRICS_ITEM,
    OSC_METRICS_TOO_BIG,
    OSC_METRICS_UNACKNOWLEDGED, /* an answer that does not acknowledge an item under its alias */
    OSC_METRICS__NCLASS
};

/* What one cycle did. */
struct osc_metrics_cycle {
    enum osc_metrics_result result;
    int64_t duration_ms;
    uint64_t locations_by_status[3]; /* indexed by enum osc_presence_status */
    uint64_t locations_unknown;      /* discovered, but no usable reading */
    uint64_t locations_discovered;
    uint64_t points;
    uint64_t points_read;
    uint64_t invalid_values;
    uint64_t pushes_accepted; /* data.pI.success true */
    uint64_t pushes_failed;   /* refused under their alias (success false, an error naming it) */
    uint64_t pushes_unacked;  /* answered, but not acknowledged under their alias */
    uint64_t pushes_unsent;   /* no answer (transport, 5xx after retries, paused, stopping) */
    uint64_t push_requests, mapped_requests;
    int mapped_read;             /* this cycle read Mapped (discovery or values) */
    int discovered;              /* this cycle ran a discovery */
    uint64_t invalid_identities; /* found by that discovery */
};

struct osc_metrics;

/* New metrics; caller frees with osc_metrics_free(). NULL on ENOMEM. */
struct osc_metrics *osc_metrics_new(void);
void osc_metrics_free(struct osc_metrics *m);

void osc_metrics_set_interval(struct osc_metrics *m, int64_t interval_ms);
void osc_metrics_record_cycle(struct osc_metrics *m, const struct osc_metrics_cycle *c,
                              int64_t now_mono_ms, int64_t now_wall_ms);
void osc_metrics_api_error(struct osc_metrics *m, enum osc_metrics_api api,
                           enum osc_metrics_class cls);
/* Class of an HTTP failure (status 0: transport). */
enum osc_metrics_class osc_metrics_class_of(long status);
/*
 * One HTTP call to api took seconds (any outcome: an error answers too);
 * counted in the request-duration histogram. m may be NULL (not counted).
 */
void osc_metrics_observe_request(struct osc_metrics *m, enum osc_metrics_api api, double seconds);
/* The histogram's upper bounds (seconds), besides +Inf. */
#define OSC_METRICS_DURATION_BUCKETS 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60

/* Prometheus text exposition into out (appended). 0 or OSC_ENOMEM/OSC_ETOOBIG. */
int osc_metrics_render(struct osc_metrics *m, struct osc_buf *out);

/* osconnect_build_info, then the process metrics (process.c), appended to out. */
int osc_metrics_render_build_info(struct osc_buf *out);
int osc_metrics_render_process(struct osc_buf *out);

/*
 * The final metrics of one `send` run, in the Prometheus text format, for
 * node_exporter's textfile collector (every series labelled with
 * destination; all gauges, since the file holds the last run):
 *   osconnect_send_records, _records_sent, _records_rejected{reason=malformed|
 *   unmappable|api|retries}, _records_unsent, _records_dead_lettered,
 *   _requests, _retries, _duration_seconds, _exit_code,
 *   _commit{outcome=none|triggered|refused|failed|unknown} (1 for the one that
 *   happened), _last_run_timestamp_seconds (now_wall_ms).
 * Appended to out; 0 or OSC_ENOMEM/OSC_ETOOBIG.
 */
int osc_metrics_render_send(const char *destination, const struct osc_delivery_stats *st,
                            int exit_code, int64_t now_wall_ms, struct osc_buf *out);

/*
 * Replace path with text atomically: write a temporary file in the same
 * folder (PATH.tmp.XXXXXX), fsync it, make it mode 0644 (node_exporter runs
 * as another user), rename it over path. A reader sees the old file or the
 * new one, never a part. Returns 0, or OSC_EIO with err naming the file
 * and why (the temporary file is removed; path is unchanged).
 */
int osc_metrics_write_file(const char *path, const char *text, size_t len, struct osc_err *err);

/*
 * The loop's heartbeat: the presence loop calls it while it waits and the
 * engine before every request, so a silence longer than live_limit_ms means
 * the loop is stuck. set_live_limit: the longest silence that is still alive
 * (the loop sets interval + the longest API timeout + 10 s).
 */
void osc_metrics_tick(struct osc_metrics *m, int64_t now_mono_ms);
void osc_metrics_set_live_limit(struct osc_metrics *m, int64_t live_limit_ms);

/*
 * Liveness (/livez): 1 when the loop ticked at most live_limit_ms before
 * now_mono_ms, else 0 (also before the first tick). why (cap bytes) gets a
 * one-line explanation either way.
 */
int osc_metrics_live(struct osc_metrics *m, int64_t now_mono_ms, char *why, size_t cap);

/*
 * Readiness (/readyz, /healthz): 1 when the last cycle read Mapped, and
 * OfficeSpace acknowledged every push it made (accepted it, or refused it
 * under its own alias: none unacknowledged, none unsent), and it ended at
 * most 3 intervals before now_mono_ms; else 0. why (cap bytes) gets a
 * one-line explanation either way.
 */
int osc_metrics_ready(struct osc_metrics *m, int64_t now_mono_ms, char *why, size_t cap);

const char *osc_metrics_result_name(enum osc_metrics_result r);

#endif
