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
 *   anything else 404; methods other than GET/HEAD 405
 *
 * The server answers from its own thread and reads the metrics under their
 * mutex; it never touches the presence engine.
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
/* The port actually bound. */
int osc_status_port(const struct osc_status *s);
/* "127.0.0.1:9464" as bound (static inside s). */
const char *osc_status_address(const struct osc_status *s);
/* Stop serving and free; accepts NULL. */
void osc_status_stop(struct osc_status *s);

#endif
