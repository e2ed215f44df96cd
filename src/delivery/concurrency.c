/*
 * concurrency.c - adaptive request concurrency (AIMD); see concurrency.h.
 *
 * The algorithm, in the spirit of Vector's Adaptive Request Concurrency
 * (its RFC 1858) and of TCP congestion control:
 *
 * Windows. Decisions are taken once per window, about once per round trip:
 * a window opens after each decision; its cohort is the first `limit`
 * requests sent after that (tickets tell which), and it closes when the
 * whole cohort has been answered. So it measures the current limit, not
 * the previous one (answers to earlier requests are not samples), and not
 * only its fastest answers (later requests that overtake the cohort are
 * not samples either). The cohort's successes give cur, their mean latency,
 * and se, the standard error of that mean.
 *
 * Latency model, per closed window (ms):
 *   rtt   EWMA of cur (RTT_ALPHA): "is latency rising?"
 *   dev   EWMA of se (DEV_ALPHA): how far noise alone moves cur
 *   base  the uncongested latency. It follows a lower cur quickly
 *         (BASE_DOWN) and a higher one slowly (BASE_UP), and only while the
 *         limit is at most base_limit: the highest limit at which latency
 *         was seen at the baseline, lowered below any limit cut for latency.
 *         So latency that rises because we send more never becomes the new
 *         normal (no creep to the ceiling), while a server that becomes
 *         slower at a load it used to take moves the baseline.
 *   slack = max(SLACK_MIN_MS, DEV_SCALE * dev)
 *
 * Decisions at the end of a window:
 *   rtt > base * (1 + CONGEST_TOL) + slack  limit = floor(limit * 0.9), at
 *                                           least -1 (a queue: back off gently)
 *   rtt > base * (1 + RISE_TOL) + slack     hold
 *   otherwise, if in-flight reached the limit during the window (evidence
 *   that more would be used): limit + 1, or limit * 2 during slow start.
 *
 * Back-pressure (429, 503, a timeout) halves the limit at once (rounding
 * up), but only for an answer to a request sent after the previous halving:
 * 32 simultaneous 429s halve once; halving again needs a request sent at the
 * new limit to be refused too. So at most once per round trip.
 *
 * Slow start: from the start limit, the limit doubles per window until the
 * first cut of either kind or the first window whose latency rises; then it
 * grows by one per window. Against a 20 ms sink the limit reaches 64 after
 * 85 answers instead of some 2,000 with +1 alone, which matters for short
 * runs; and since a window needs a whole cohort answered, in flight is at
 * most twice a limit whose cohort was accepted (a server that refuses above
 * 8 sees at most 16).
 *
 * Parameters (measured by tests/unit/test_concurrency.c):
 *   start 4         today's default max_in_flight: every server that works
 *                   with osconnect now sees no more at first.
 *   ceiling         limit_max (config max_in_flight_limit, default 64); floor 1.
 *   RTT_ALPHA 0.5   a window already averages `limit` answers; more weight on
 *                   history would slow the reaction to a queue.
 *   DEV_ALPHA 0.5, DEV_SCALE 2: a rise within two standard errors is noise;
 *   SLACK_MIN_MS 1  and within 1 ms (loopback answers in well under 1 ms).
 *   RISE_TOL 0.2    20 % above the baseline stops the growth.
 *   CONGEST_TOL 0.5 50 % above the baseline is a queue: x0.9.
 *   BASE_DOWN 0.5, BASE_UP 0.2: a soft minimum.
 * Results: a 20 ms sink reaches 64 at answer 85 and stays (10,000 requests
 * in 3.24 s simulated); +-30 % noise changes nothing; latency 20 ms x
 * max(1, inflight/10) settles at 13; 429 above 8 in flight gives a 5..9
 * sawtooth with 6.8-6.9 in flight on average; a server that becomes 3 x
 * slower costs three cuts (to 45), then the limit returns to 64.
 *
 * Fixed mode keeps the limit at N and only counts. Retry-After pauses are
 * the sender's business, not this module's.
 */
#include "concurrency.h"

#include <math.h>
#include <stdlib.h>

#define START_LIMIT  4
#define RTT_ALPHA    0.5
#define DEV_ALPHA    0.5
#define DEV_SCALE    2.0
#define SLACK_MIN_MS 1.0
#define RISE_TOL     0.2
#define CONGEST_TOL  0.5
#define LATENCY_CUT  0.9
#define BASE_DOWN    0.5
#define BASE_UP      0.2

struct osc_cc {
    int fixed;
    int limit_max;
    int limit;
    int in_flight;
    int slow_start;
    uint64_t next_ticket;
    uint64_t window_ticket;   /* the open window's cohort: tickets [window_ticket, */
    uint64_t cohort_end;      /* cohort_end) */
    uint64_t recovery_ticket; /* back-pressure from tickets below this is already answered */

    /* the open window: answers from its cohort */
    double win_sum, win_sumsq;
    uint64_t win_n;  /* successes (latency samples) */
    int win_answers; /* answers of any class but back-pressure */
    int win_reached;
    int win_limit;

    /* the latency model (valid once have_rtt) */
    int have_rtt;
    double rtt, dev, base;
    int base_limit;

    uint64_t increases, backpressure_cuts, latency_cuts, samples;
};

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

static void open_window(struct osc_cc *cc)
{
    cc->window_ticket = cc->next_ticket;
    cc->cohort_end = cc->next_ticket + (uint64_t)cc->limit;
    cc->win_sum = cc->win_sumsq = 0;
    cc->win_n = 0;
    cc->win_answers = 0;
    cc->win_limit = cc->limit;
    /* requests left over from a higher limit already fill this one */
    cc->win_reached = cc->in_flight >= cc->limit;
}

struct osc_cc *osc_cc_new(const struct osc_cc_opts *opts)
{
    struct osc_cc *cc = calloc(1, sizeof(*cc));
    struct osc_cc_opts o = {0};

    if (!cc)
        return NULL;
    if (opts)
        o = *opts;
    cc->fixed = o.fixed > 0 ? o.fixed : 0;
    cc->limit_max = o.limit_max > 0 ? o.limit_max : OSC_CC_LIMIT_MAX_DEFAULT;
    if (cc->fixed) {
        cc->limit = cc->limit_max = cc->fixed;
    } else {
        cc->limit = imin(o.start > 0 ? o.start : START_LIMIT, cc->limit_max);
        cc->slow_start = 1;
    }
    open_window(cc);
    return cc;
}

void osc_cc_free(struct osc_cc *cc) { free(cc); }

int osc_cc_limit(const struct osc_cc *cc) { return cc->limit; }
int osc_cc_in_flight(const struct osc_cc *cc) { return cc->in_flight; }
int osc_cc_may_send(const struct osc_cc *cc) { return cc->in_flight < cc->limit; }

uint64_t osc_cc_sent(struct osc_cc *cc)
{
    cc->in_flight++;
    if (cc->in_flight >= cc->limit)
        cc->win_reached = 1;
    return cc->next_ticket++;
}

static void cut_backpressure(struct osc_cc *cc)
{
    cc->limit = imax(1, (cc->limit + 1) / 2);
    cc->slow_start = 0;
    cc->backpressure_cuts++;
    /* answers to what is in flight now were provoked by the old limit */
    cc->recovery_ticket = cc->next_ticket;
    open_window(cc);
}

static void close_window(struct osc_cc *cc)
{
    double cur, var, se, slack;
    int congested, rising, at_base;

    if (cc->win_n == 0) {
        /* only errors: nothing learnt about load */
        open_window(cc);
        return;
    }
    cur = cc->win_sum / (double)cc->win_n;
    /* the standard error of cur: how far noise alone moves a window's mean */
    var = cc->win_sumsq / (double)cc->win_n - cur * cur;
    se = var > 0 ? sqrt(var / (double)cc->win_n) : 0;
    if (!cc->have_rtt) {
        cc->have_rtt = 1;
        cc->rtt = cc->base = cur;
        cc->dev = se;
        cc->base_limit = cc->win_limit;
    } else {
        cc->dev += DEV_ALPHA * (se - cc->dev);
        cc->rtt += RTT_ALPHA * (cur - cc->rtt);
    }
    slack = fmax(SLACK_MIN_MS, DEV_SCALE * cc->dev);
    congested = cc->rtt > cc->base * (1 + CONGEST_TOL) + slack;
    rising = cc->rtt > cc->base * (1 + RISE_TOL) + slack;
    at_base = cur <= cc->base * (1 + RISE_TOL) + slack;

    /* the baseline first, judged on what was known before this window */
    if (cur < cc->base)
        cc->base += BASE_DOWN * (cur - cc->base);
    else if (cc->win_limit <= cc->base_limit)
        cc->base += BASE_UP * (cur - cc->base); /* slower at a load it used to take */
    if (at_base)
        cc->base_limit = imax(cc->base_limit, cc->win_limit);

    if (congested && cc->limit > 1) {
        int next = (int)floor(cc->limit * LATENCY_CUT);
        /* a queue at this limit: the baseline must not follow latency here */
        cc->base_limit = imin(cc->base_limit, cc->limit - 1);
        cc->limit = imax(1, imin(next, cc->limit - 1));
        cc->slow_start = 0;
        cc->latency_cuts++;
    } else if (rising || congested) {
        cc->slow_start = 0; /* hold, and grow by one from now on */
    } else if (cc->win_reached && cc->limit < cc->limit_max) {
        cc->limit = cc->slow_start ? imin(cc->limit * 2, cc->limit_max) : cc->limit + 1;
        cc->increases++;
    }
    open_window(cc);
}

void osc_cc_done(struct osc_cc *cc, uint64_t ticket, double latency_ms, enum osc_cc_class cls)
{
    if (cc->in_flight > 0)
        cc->in_flight--;
    if (!(latency_ms >= 0)) /* negative or NaN: a caller's clock glitch */
        latency_ms = 0;
    if (cls == OSC_CC_SUCCESS)
        cc->samples++;
    if (cc->fixed)
        return;
    if (cls == OSC_CC_BACKPRESSURE) {
        if (ticket >= cc->recovery_ticket)
            cut_backpressure(cc);
        return;
    }
    /* sent before the window opened: it measured the previous limit */
    if (ticket < cc->window_ticket || ticket >= cc->cohort_end)
        return;
    if (cls == OSC_CC_SUCCESS) {
        cc->win_sum += latency_ms;
        cc->win_sumsq += latency_ms * latency_ms;
        cc->win_n++;
    }
    if (++cc->win_answers >= cc->win_limit)
        close_window(cc);
}

void osc_cc_stats(const struct osc_cc *cc, struct osc_cc_stats *out)
{
    out->limit = cc->limit;
    out->in_flight = cc->in_flight;
    out->slow_start = cc->slow_start;
    out->rtt_ms = cc->have_rtt ? cc->rtt : 0;
    out->base_ms = cc->have_rtt ? cc->base : 0;
    out->increases = cc->increases;
    out->backpressure_cuts = cc->backpressure_cuts;
    out->latency_cuts = cc->latency_cuts;
    out->samples = cc->samples;
}
