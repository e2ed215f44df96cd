/*
 * stream_int.h - pieces of src/stream shared between the JetStream source
 * (nats.c) and the KV lease (lease.c): connecting with the configured
 * credentials and TLS, and turning libnats statuses into osconnect errors.
 * Not public.
 */
#ifndef OSC_STREAM_INT_H
#define OSC_STREAM_INT_H

#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>

#include "osc/err.h"
#include "osc/nats.h"

/*
 * Connect to o->url (a comma-separated list) with the credentials and TLS
 * of o, reconnecting forever once connected (1 s apart, pings every 5 s so
 * a dead server is noticed within about 15 s). No callbacks are installed:
 * nothing of osconnect runs on libnats' threads. display (cap >= 256)
 * receives the URL list without user info, for messages. Returns 0 and
 * *nc, or the error of osc_nats_open() (OSC_EINVAL, OSC_ENOINPUT,
 * OSC_EUNAVAIL, OSC_EAUTH, OSC_ETRANSPORT, OSC_ENOMEM).
 */
int osc_stream_connect(const struct osc_nats_conn_opts *o, natsConnection **nc, char *display,
                       size_t cap, struct osc_err *err);

/* The JetStream context of nc with o's request timeout. 0, OSC_ENOMEM. */
int osc_stream_js(natsConnection *nc, const struct osc_nats_conn_opts *o, jsCtx **js,
                  struct osc_err *err);

/*
 * Fill err from a failed libnats call: the code mapped from s (and the
 * JetStream error code jerr, 0 if none), the message "<what>: <libnats'
 * last error text>". Returns the code.
 */
int osc_stream_fail(struct osc_err *err, natsStatus s, int jerr, const char *what);

/* Monotonic milliseconds. */
int64_t osc_stream_now_ms(void);

/*
 * Wait until nc is connected (not reconnecting), at most timeout_ms,
 * polling every 20 ms. 1 when connected, 0 when not (closed or timed out).
 */
int osc_stream_wait_connected(natsConnection *nc, int timeout_ms);

#endif
