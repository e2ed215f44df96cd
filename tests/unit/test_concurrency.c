/*
 * test_concurrency.c - the adaptive concurrency controller driven by
 * simulated servers over a simulated clock (no sockets, no sleeping): a
 * constant 20 ms sink, a server that refuses (429) above 8 in flight, one
 * whose latency grows with concurrency, noise, a server that becomes slower,
 * fixed mode, and a burst of simultaneous 429s.
 *
 * The simulated sender keeps as many requests in flight as the controller
 * allows, resends every refused one at once (no Retry-After here: that is
 * the sender's), and reports each answer with its latency and class.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/delivery/concurrency.h"

#define MAXP 512

struct pending {
    double at; /* completion time (ms) */
    double latency;
    uint64_t ticket;
    enum osc_cc_class cls;
    int accepted; /* counted in the server's load */
};

struct sim;
/* The server's answer to a request arriving with `load` requests (itself included) open there. */
typedef void (*server_fn)(struct sim *s, int load, double *latency, enum osc_cc_class *cls);

struct sim {
    struct osc_cc *cc;
    server_fn server;
    double now;
    struct pending p[MAXP];
    int np;
    int load;          /* requests the server is working on (accepted) */
    uint64_t to_send;  /* requests still to start (a refused one is started again) */
    uint64_t answered; /* answers of any class */
    uint64_t succeeded, refused;
    uint64_t rng;
    /* measured only from `measure_from` answers on */
    uint64_t measure_from;
    double t0, area_in_flight, area_limit;
    int max_limit, min_limit, max_in_flight;
    int max_in_flight_all; /* warm-up included */
    /* first answer count at which the limit reached a value */
    uint64_t reached_30, reached_max;
};

static void sim_init(struct sim *s, struct osc_cc *cc, server_fn fn, uint64_t requests)
{
    memset(s, 0, sizeof(*s));
    s->cc = cc;
    s->server = fn;
    s->to_send = requests;
    s->rng = 0x9E3779B97F4A7C15ULL;
    s->min_limit = 1 << 30;
}

/* Uniform in [0, 1), deterministic. */
static double sim_rand(struct sim *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static void fill(struct sim *s)
{
    while (s->to_send > 0 && osc_cc_may_send(s->cc)) {
        struct pending *q = &s->p[s->np++];
        assert_true(s->np < MAXP);
        q->ticket = osc_cc_sent(s->cc);
        s->server(s, s->load + 1, &q->latency, &q->cls);
        q->at = s->now + q->latency;
        q->accepted = q->cls == OSC_CC_SUCCESS;
        s->load += q->accepted;
        s->to_send--;
    }
}

/* Start what the limit allows, then deliver the earliest answer. 0 when all is done. */
static int step(struct sim *s)
{
    struct pending q;
    int best = 0, limit;

    fill(s);
    if (s->np == 0)
        return 0;
    for (int i = 1; i < s->np; i++)
        if (s->p[i].at < s->p[best].at ||
            (s->p[i].at == s->p[best].at && s->p[i].ticket < s->p[best].ticket))
            best = i;
    q = s->p[best];
    s->p[best] = s->p[--s->np];
    if (s->answered >= s->measure_from) {
        if (s->answered == s->measure_from)
            s->t0 = s->now;
        s->area_in_flight += (q.at - s->now) * osc_cc_in_flight(s->cc);
        s->area_limit += (q.at - s->now) * osc_cc_limit(s->cc);
    }
    s->now = q.at;
    s->load -= q.accepted;
    osc_cc_done(s->cc, q.ticket, q.latency, q.cls);
    s->answered++;
    if (q.cls == OSC_CC_SUCCESS)
        s->succeeded++;
    else
        s->to_send++, s->refused++;
    limit = osc_cc_limit(s->cc);
    if (limit >= 30 && !s->reached_30)
        s->reached_30 = s->answered;
    if (s->answered >= s->measure_from) {
        if (limit > s->max_limit)
            s->max_limit = limit;
        if (limit < s->min_limit)
            s->min_limit = limit;
    }
    return 1;
}

/* Track the in-flight maximum after warm-up as requests start. */
static void run(struct sim *s, int limit_max)
{
    while (1) {
        fill(s);
        if (s->answered >= s->measure_from && osc_cc_in_flight(s->cc) > s->max_in_flight)
            s->max_in_flight = osc_cc_in_flight(s->cc);
        if (osc_cc_in_flight(s->cc) > s->max_in_flight_all)
            s->max_in_flight_all = osc_cc_in_flight(s->cc);
        if (!step(s))
            break;
        if (osc_cc_limit(s->cc) == limit_max && !s->reached_max)
            s->reached_max = s->answered;
    }
}

static double mean_in_flight(const struct sim *s) { return s->area_in_flight / (s->now - s->t0); }
static double mean_limit(const struct sim *s) { return s->area_limit / (s->now - s->t0); }

static void report(const char *name, const struct sim *s)
{
    struct osc_cc_stats st;

    osc_cc_stats(s->cc, &st);
    print_message(
        "%s: %llu answers in %.0f ms simulated; limit %d (min %d, max %d after warm-up), "
        "mean in flight %.1f, mean limit %.1f, max in flight %d; reached 30 at answer "
        "%llu, the ceiling at %llu; rtt %.1f base %.1f; +%llu, halvings %llu, x0.9 %llu\n",
        name, (unsigned long long)s->answered, s->now, st.limit, s->min_limit, s->max_limit,
        mean_in_flight(s), mean_limit(s), s->max_in_flight, (unsigned long long)s->reached_30,
        (unsigned long long)s->reached_max, st.rtt_ms, st.base_ms, (unsigned long long)st.increases,
        (unsigned long long)st.backpressure_cuts, (unsigned long long)st.latency_cuts);
}

/* ---- servers ----------------------------------------------------------- */

static void constant_20ms(struct sim *s, int load, double *lat, enum osc_cc_class *cls)
{
    (void)s;
    (void)load;
    *lat = 20;
    *cls = OSC_CC_SUCCESS;
}

/* Refuses (429, answered in refusal_ms) what arrives while 8 are being worked on. */
static double refusal_ms = 1;
static void refuse_above_8(struct sim *s, int load, double *lat, enum osc_cc_class *cls)
{
    (void)s;
    if (load > 8) {
        *lat = refusal_ms;
        *cls = OSC_CC_BACKPRESSURE;
    } else {
        *lat = 20;
        *cls = OSC_CC_SUCCESS;
    }
}

/* 20 ms x max(1, inflight / 10): a queue behind 10 workers. */
static void queueing(struct sim *s, int load, double *lat, enum osc_cc_class *cls)
{
    (void)s;
    *lat = 20.0 * (load > 10 ? load / 10.0 : 1.0);
    *cls = OSC_CC_SUCCESS;
}

/* 20 ms +- 30 %, uniformly. */
static void noisy_20ms(struct sim *s, int load, double *lat, enum osc_cc_class *cls)
{
    (void)load;
    *lat = 20.0 * (0.7 + 0.6 * sim_rand(s));
    *cls = OSC_CC_SUCCESS;
}

/* 20 ms, then 60 ms from the 2,000th answer on, whatever the load. */
static void slows_down(struct sim *s, int load, double *lat, enum osc_cc_class *cls)
{
    (void)load;
    *lat = s->answered < 2000 ? 20 : 60;
    *cls = OSC_CC_SUCCESS;
}

/* ---- tests ------------------------------------------------------------- */

/* (a) 10,000 requests to a 20 ms sink: the ceiling quickly, and kept. */
static void test_constant_latency_reaches_ceiling(void **state)
{
    struct osc_cc *cc = osc_cc_new(NULL);
    struct osc_cc_stats st;
    struct sim s;

    (void)state;
    assert_int_equal(osc_cc_limit(cc), 4);
    sim_init(&s, cc, constant_20ms, 10000);
    run(&s, 64);
    report("constant 20 ms", &s);
    osc_cc_stats(cc, &st);
    assert_int_equal(s.succeeded, 10000);
    assert_true(s.reached_30 > 0 && s.reached_30 <= 50);
    assert_true(s.reached_max > 0 && s.reached_max <= 100);
    assert_int_equal(st.limit, 64);
    assert_int_equal(st.backpressure_cuts, 0);
    assert_int_equal(st.latency_cuts, 0);
    /* 1 M records in batches of 100 at 20 ms: ~3.2 s of round trips (64 in flight) */
    assert_true(s.now <= 3300);
    osc_cc_free(cc);
}

/*
 * (b) a server that refuses above 8 in flight, quickly or as slowly as it
 * accepts: never more than 2 x 8 in flight (warm-up included), and after
 * warm-up the limit stays <= 16 while using most of what it allows.
 */
static void test_refusing_server(void **state)
{
    static const double refusals[] = {1, 20};

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        struct osc_cc *cc = osc_cc_new(NULL);
        struct sim s;

        refusal_ms = refusals[i];
        sim_init(&s, cc, refuse_above_8, 10000);
        s.measure_from = 200;
        run(&s, 64);
        report(i ? "429 above 8 (in 20 ms)" : "429 above 8 (in 1 ms)", &s);
        assert_int_equal(s.succeeded, 10000);
        assert_true(s.max_in_flight_all <= 16);
        assert_true(s.max_limit <= 16);
        assert_true(mean_in_flight(&s) >= 6.0);
        /* few refusals: about one per sawtooth */
        assert_true(s.refused * 10 < s.succeeded);
        osc_cc_free(cc);
    }
}

/* (c) latency that grows with concurrency: it settles well below the ceiling. */
static void test_queueing_server_settles(void **state)
{
    struct osc_cc *cc = osc_cc_new(NULL);
    struct sim s;

    (void)state;
    sim_init(&s, cc, queueing, 10000);
    s.measure_from = 1000;
    run(&s, 64);
    report("20 ms x max(1, inflight/10)", &s);
    /* at 10 in flight the server is busy; past 20, latency doubles for nothing */
    assert_true(s.min_limit >= 10);
    assert_true(s.max_limit <= 20);
    assert_true(mean_in_flight(&s) >= 10.0);
    osc_cc_free(cc);
}

/* Noise within +-30 % is not congestion: the limit still climbs high. */
static void test_noise_is_not_congestion(void **state)
{
    struct osc_cc *cc = osc_cc_new(NULL);
    struct sim s;

    (void)state;
    sim_init(&s, cc, noisy_20ms, 10000);
    s.measure_from = 2000;
    run(&s, 64);
    report("20 ms +-30 %", &s);
    assert_true(s.reached_30 > 0 && s.reached_30 <= 300);
    assert_true(mean_limit(&s) >= 48.0);
    osc_cc_free(cc);
}

/*
 * A server that becomes 3 x slower at any load (from the 2,000th answer):
 * sending less would not help (nothing queues behind us), so after a few
 * cuts the baseline follows and the limit returns to the ceiling.
 */
static void test_slower_server_recovers(void **state)
{
    struct osc_cc *cc = osc_cc_new(NULL);
    struct osc_cc_stats st;
    struct sim s;

    (void)state;
    sim_init(&s, cc, slows_down, 20000);
    s.measure_from = 2000;
    run(&s, 64);
    report("20 ms, then 60 ms", &s);
    osc_cc_stats(cc, &st);
    assert_true(st.latency_cuts >= 1 && st.latency_cuts <= 6);
    assert_true(s.min_limit >= 32);
    assert_true(st.base_ms > 50.0);
    assert_int_equal(st.limit, 64);
    osc_cc_free(cc);
}

/* (d) fixed mode: the limit never moves, whatever the server says. */
static void test_fixed_mode(void **state)
{
    struct osc_cc_opts o = {.fixed = 7};
    server_fn servers[] = {constant_20ms, refuse_above_8, queueing};

    (void)state;
    for (size_t i = 0; i < sizeof(servers) / sizeof(servers[0]); i++) {
        struct osc_cc *cc = osc_cc_new(&o);
        struct osc_cc_stats st;
        struct sim s;

        sim_init(&s, cc, servers[i], 2000);
        run(&s, 7);
        osc_cc_stats(cc, &st);
        assert_int_equal(s.min_limit, 7);
        assert_int_equal(s.max_limit, 7);
        assert_int_equal(s.max_in_flight, 7);
        assert_int_equal(st.increases + st.backpressure_cuts + st.latency_cuts, 0);
        osc_cc_free(cc);
    }
}

/* (e) 32 simultaneous 429s halve once; a refusal of a later request halves again. */
static void test_burst_halves_once(void **state)
{
    struct osc_cc_opts o = {.limit_max = 32};
    struct osc_cc *cc = osc_cc_new(&o);
    struct osc_cc_stats st;
    uint64_t t[32], later;
    int n;

    (void)state;
    /* whole windows of 20 ms answers until the ceiling */
    while (osc_cc_limit(cc) < 32) {
        n = osc_cc_limit(cc);
        for (int i = 0; i < n; i++)
            t[i] = osc_cc_sent(cc);
        for (int i = 0; i < n; i++)
            osc_cc_done(cc, t[i], 20, OSC_CC_SUCCESS);
    }
    for (int i = 0; i < 32; i++)
        t[i] = osc_cc_sent(cc);
    assert_false(osc_cc_may_send(cc));
    for (int i = 0; i < 32; i++)
        osc_cc_done(cc, t[i], 3, OSC_CC_BACKPRESSURE);
    osc_cc_stats(cc, &st);
    assert_int_equal(st.limit, 16);
    assert_int_equal(st.backpressure_cuts, 1);
    assert_int_equal(st.in_flight, 0);

    later = osc_cc_sent(cc);
    osc_cc_done(cc, later, 3, OSC_CC_BACKPRESSURE);
    assert_int_equal(osc_cc_limit(cc), 8);
    /* halving stops at 1 */
    for (int i = 0; i < 10; i++)
        osc_cc_done(cc, osc_cc_sent(cc), 3, OSC_CC_BACKPRESSURE);
    assert_int_equal(osc_cc_limit(cc), 1);
    osc_cc_free(cc);
}

/* Errors other than back-pressure say nothing about load; the defaults and NULL. */
static void test_errors_and_defaults(void **state)
{
    struct osc_cc_opts o = {.limit_max = 3};
    struct osc_cc *cc = osc_cc_new(NULL);

    (void)state;
    /* answers that are neither successes nor back-pressure change nothing */
    for (int i = 0; i < 100; i++)
        osc_cc_done(cc, osc_cc_sent(cc), 20, OSC_CC_ERROR);
    assert_int_equal(osc_cc_limit(cc), 4);
    /* a limit never grows without the evidence that it was used up */
    for (int i = 0; i < 100; i++)
        osc_cc_done(cc, osc_cc_sent(cc), 20, OSC_CC_SUCCESS);
    assert_int_equal(osc_cc_limit(cc), 4);
    /* a glitched latency is taken as 0, never as a number that breaks the model */
    osc_cc_done(cc, osc_cc_sent(cc), -5, OSC_CC_SUCCESS);
    assert_int_equal(osc_cc_in_flight(cc), 0);
    osc_cc_free(cc);
    osc_cc_free(NULL);

    cc = osc_cc_new(&o); /* the start never exceeds the ceiling */
    assert_int_equal(osc_cc_limit(cc), 3);
    osc_cc_free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_latency_reaches_ceiling),
        cmocka_unit_test(test_refusing_server),
        cmocka_unit_test(test_queueing_server_settles),
        cmocka_unit_test(test_noise_is_not_congestion),
        cmocka_unit_test(test_slower_server_recovers),
        cmocka_unit_test(test_fixed_mode),
        cmocka_unit_test(test_burst_halves_once),
        cmocka_unit_test(test_errors_and_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
