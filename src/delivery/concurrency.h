/*
 * concurrency.h - how many requests a destination may have in flight now
 * (internal to src/delivery).
 *
 * An AIMD controller in the spirit of Vector's Adaptive Request Concurrency:
 * the sender asks osc_cc_limit() before starting a request, takes a ticket
 * with osc_cc_sent() when it starts one, and reports every completed request
 * with osc_cc_done(): its latency (measured by the caller on its own,
 * injectable clock) and its class. The module does no I/O, reads no clock
 * and has no threads; given the same calls it makes the same decisions. The
 * algorithm and its parameters are described at the top of concurrency.c.
 *
 * Invariants: 1 <= limit <= limit_max; in fixed mode limit never changes.
 */
#ifndef OSC_DELIVERY_CONCURRENCY_H
#define OSC_DELIVERY_CONCURRENCY_H

#include <stdint.h>

/* The default ceiling (config: max_in_flight_limit). */
#define OSC_CC_LIMIT_MAX_DEFAULT 64

/* What a completed request says about the server's load. */
enum osc_cc_class {
    OSC_CC_SUCCESS = 0,  /* the server processed it (2xx): its latency is a sample */
    OSC_CC_BACKPRESSURE, /* it asks for less: 429, 503, a timeout */
    OSC_CC_ERROR         /* anything else (4xx, a reset): no signal about load */
};

struct osc_cc_opts {
    int fixed;     /* > 0: the limit is always this (max_in_flight: N); no adaptation */
    int limit_max; /* ceiling of the adaptive limit; <= 0: OSC_CC_LIMIT_MAX_DEFAULT */
    int start;     /* first limit; <= 0: min(4, limit_max) */
};

/* Counters for logs and metrics; a snapshot. */
struct osc_cc_stats {
    int limit;
    int in_flight;
    int slow_start;             /* 1 until the first decrease or latency rise */
    double rtt_ms;              /* EWMA of the per-window mean latency; 0 before a sample */
    double base_ms;             /* the uncongested latency it compares against; 0 before */
    uint64_t increases;         /* windows that raised the limit */
    uint64_t backpressure_cuts; /* halvings on back-pressure */
    uint64_t latency_cuts;      /* x0.9 on latency clearly above the baseline */
    uint64_t samples;           /* latency samples taken (successes) */
};

struct osc_cc;

/*
 * New controller (opts NULL: adaptive from 4, ceiling 64). Caller frees with
 * osc_cc_free(). NULL when out of memory.
 */
struct osc_cc *osc_cc_new(const struct osc_cc_opts *opts);
/* Accepts NULL. */
void osc_cc_free(struct osc_cc *cc);

/* How many requests may be in flight now (>= 1). */
int osc_cc_limit(const struct osc_cc *cc);
/* Requests started and not yet reported done. */
int osc_cc_in_flight(const struct osc_cc *cc);
/* 1 when one more request may start now (in flight < limit). */
int osc_cc_may_send(const struct osc_cc *cc);

/*
 * A request starts: counts it in flight and returns its ticket, which the
 * caller keeps with the request and passes to osc_cc_done(). Tickets order
 * requests by start; they let the controller tell responses to requests sent
 * before its last decrease (no new information) from later ones. A retry is
 * a new request with a new ticket.
 */
uint64_t osc_cc_sent(struct osc_cc *cc);

/*
 * The request with ticket ended (exactly once per osc_cc_sent()), after
 * latency_ms (start to end of the exchange, >= 0), with class cls. Updates
 * the limit; never fails. A request abandoned without an answer (shutdown)
 * need not be reported if the controller is freed next.
 */
void osc_cc_done(struct osc_cc *cc, uint64_t ticket, double latency_ms, enum osc_cc_class cls);

void osc_cc_stats(const struct osc_cc *cc, struct osc_cc_stats *out);

#endif
