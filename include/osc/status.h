/*
 * status.h - the status endpoint of `osconnect run` (libmicrohttpd).
 *
 *   GET /livez    200 "ok: ..." while the presence loop ticked recently
 *                 (osc_metrics_live), else 503 "dead: ..."
 *   GET /readyz   200 "ok: ..." while the last cycle read Mapped and every
 *                 push was acknowledged, within 3 intervals
 *                 (osc_metrics_ready), else 503 "not ready: ..."
 *   GET /healthz  the same as /readyz
 *   GET /metrics  Prometheus text format (version 0.0.4), see metrics.h
 *                 and source.h
 *   POST /ingest/{destination}  a body for a destination with an http
 *                 source (osc_sources_ingest(): 202, 400, 401, 404, 413,
 *                 415, 429, 503)
 *   anything else 404; methods other than GET/HEAD (POST on /ingest/) 405
 *
 * With sources (osc_status_start_opts()), /livez and /readyz cover them
 * too: 200 only when the presence loop (if it runs) and every source are
 * live / ready; the body says why for each. Without a presence loop
 * (opts.presence NULL) only the sources count.
 *
 * The server answers from its own threads (a pool of 4 when it takes
 * ingest bodies) and reads the metrics under their mutex; it never touches
 * the presence engine.
 */
#ifndef OSC_STATUS_H
#define OSC_STATUS_H

#include "osc/err.h"
#include "osc/metrics.h"

struct osc_status;

/*
 * Listen on "HOST:PORT" (IPv4 address or "localhost"; "[v6]:PORT"; port 0
 * picks a free one) and serve m (borrowed; it must outlive the server).
 * Caller stops with osc_status_stop(). Returns 0, OSC_EINVAL (bad address,
 * err says why) or OSC_EUNAVAIL (cannot bind).
 */
int osc_status_start(const char *listen, struct osc_metrics *m, struct osc_status **out,
                     struct osc_err *err);
struct osc_sources;

struct osc_status_opts {
    const char *listen;           /* "HOST:PORT", as for osc_status_start() */
    struct osc_metrics *presence; /* the presence loop's metrics; NULL: no presence loop */
    struct osc_sources *sources;  /* NULL: none (no /ingest/, no source metrics) */
};

/* osc_status_start() with sources; o->presence and o->sources are borrowed like m. */
int osc_status_start_opts(const struct osc_status_opts *o, struct osc_status **out,
                          struct osc_err *err);
/* The port actually bound. */
int osc_status_port(const struct osc_status *s);
/* "127.0.0.1:9464" as bound (static inside s). */
const char *osc_status_address(const struct osc_status *s);
/* Stop serving and free; accepts NULL. */
void osc_status_stop(struct osc_status *s);

#endif
