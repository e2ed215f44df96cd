/*
 * test_lease.c - building leases on a JetStream KV bucket (src/stream/
 * lease.c) with several holders in one process against a real
 * `nats-server -js`.
 *
 * Holders run one round each per 1 s tick (TTL 4 s). Checked after every
 * round of every case: no building is held by two holders. Cases: three
 * holders over 6 buildings settle at 2 each, and when one stops renewing
 * (no release: a crash) its buildings are held by the others within 2
 * rounds after its TTL; a clean release hands everything over in one
 * round; a second holder joining takes half; building and instance ids of
 * any characters; a server that dies: the round fails, held[] keeps what
 * was written less than a TTL ago and drops it after.
 *
 * Timing is only checked from below or counted in rounds, never against
 * the wall clock's upper end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "natsserver.h"
#include "osc/lease.h"

#define NB      6
#define MAXH    3
#define TTL_MS  4000
#define TICK_MS 1000

static struct th_nats server;
static const char *const buildings[NB] = {"101", "102", "b.3 x", "104", "bâtiment-5", "106"};

struct holder {
    struct osc_lease *l;
    int running;
    unsigned char held[NB];
};

static void sleep_until(long t)
{
    long left = t - th_now_ms();
    if (left > 0) {
        struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static struct osc_lease *open_holder(const char *bucket, const char *instance, const char *url)
{
    struct osc_lease_opts o;
    struct osc_lease *l = NULL;
    struct osc_err err = {0};

    memset(&o, 0, sizeof(o));
    o.conn.url = url;
    o.bucket = bucket;
    o.instance = instance;
    o.ttl_ms = TTL_MS;
    if (osc_lease_open(&o, &l, &err))
        fail_msg("osc_lease_open: %s", err.msg);
    return l;
}

/* One tick: a round for every running holder, then the at-most-one check. */
static void tick(struct holder *h, int nh, long *next)
{
    sleep_until(*next);
    *next = th_now_ms() + TICK_MS;
    for (int k = 0; k < nh; k++) {
        struct osc_err err = {0};
        if (!h[k].running)
            continue;
        if (osc_lease_round(h[k].l, buildings, NB, h[k].held, &err))
            fail_msg("round of holder %d: %s", k, err.msg);
    }
    for (int b = 0; b < NB; b++) {
        int holders = 0;
        for (int k = 0; k < nh; k++)
            holders += h[k].running && h[k].held[b];
        if (holders > 1)
            fail_msg("building %s held by %d holders", buildings[b], holders);
    }
}

static int count_held(const struct holder *h)
{
    int c = 0;
    for (int b = 0; h->running && b < NB; b++)
        c += h->held[b];
    return c;
}

/* Every building held by exactly one running holder, and each holder at most `most`. */
static int settled(const struct holder *h, int nh, int most)
{
    for (int b = 0; b < NB; b++) {
        int holders = 0;
        for (int k = 0; k < nh; k++)
            holders += h[k].running && h[k].held[b];
        if (holders != 1)
            return 0;
    }
    for (int k = 0; k < nh; k++)
        if (count_held(&h[k]) > most)
            return 0;
    return 1;
}

static void test_three_then_crash_then_release(void **state)
{
    struct holder h[MAXH];
    const char *ids[MAXH] = {"host-a.example.com/1", "host-b 2", "host-c:3"};
    long next = th_now_ms(), last_c_round;
    int rounds;

    (void)state;
    memset(h, 0, sizeof(h));
    for (int k = 0; k < MAXH; k++) {
        h[k].l = open_holder("leases1", ids[k], server.url);
        h[k].running = 1;
    }
    /* the first rounds may see fewer heartbeats; it settles at 2 each */
    for (rounds = 0; rounds < 8 && !settled(h, MAXH, 2); rounds++)
        tick(h, MAXH, &next);
    if (!settled(h, MAXH, 2))
        fail_msg("three holders did not settle at 2 buildings each in 8 rounds");
    for (int k = 0; k < MAXH; k++)
        assert_int_equal(osc_lease_live(h[k].l), 3);
    print_message("3 holders settled after %d rounds\n", rounds);
    tick(h, MAXH, &next); /* and stays so */
    assert_true(settled(h, MAXH, 2));

    /* holder c stops renewing without releasing: its keys expire after TTL */
    last_c_round = th_now_ms();
    h[2].running = 0;
    for (rounds = 0; !settled(h, MAXH, 3); rounds++) {
        long since = th_now_ms() - last_c_round;
        /* the TTL, then 2 more rounds (plus the round that notices) */
        if (rounds > TTL_MS / TICK_MS + 3)
            fail_msg("c's buildings not taken over %d rounds (%ld ms) after its last round", rounds,
                     since);
        tick(h, MAXH, &next);
    }
    assert_true(th_now_ms() - last_c_round >= TTL_MS); /* not before its TTL */
    assert_int_equal(count_held(&h[0]) + count_held(&h[1]), NB);
    assert_int_equal(osc_lease_live(h[0].l), 2);
    print_message("c's buildings taken over %d rounds after its last\n", rounds);

    /* a clean release by a: b has everything after its next round */
    assert_int_equal(osc_lease_release(h[0].l, NULL), 0);
    h[0].running = 0;
    tick(h, MAXH, &next);
    assert_int_equal(count_held(&h[1]), NB);
    assert_int_equal(osc_lease_live(h[1].l), 1);
    for (int k = 0; k < MAXH; k++)
        osc_lease_close(h[k].l);
}

static void test_second_joins(void **state)
{
    struct holder h[2];
    long next = th_now_ms();
    int rounds;

    (void)state;
    memset(h, 0, sizeof(h));
    h[0].l = open_holder("leases2", "first", server.url);
    h[0].running = 1;
    tick(h, 2, &next);
    assert_int_equal(count_held(&h[0]), NB);
    h[1].l = open_holder("leases2", "second", server.url);
    h[1].running = 1;
    for (rounds = 0; rounds < 5 && !settled(h, 2, 3); rounds++)
        tick(h, 2, &next);
    if (!settled(h, 2, 3))
        fail_msg("the second holder did not get half in 5 rounds");
    assert_int_equal(count_held(&h[1]), 3);
    /* the same instance id reopened (a restart) renews its own leases */
    osc_lease_close(h[1].l);
    h[1].l = open_holder("leases2", "second", server.url);
    tick(h, 2, &next);
    assert_int_equal(count_held(&h[1]), 3);
    assert_true(settled(h, 2, 3));
    osc_lease_close(h[0].l);
    osc_lease_close(h[1].l);
}

static void test_server_dies(void **state)
{
    struct th_nats own;
    struct holder h[1];
    struct osc_err err = {0};
    long next = th_now_ms(), last_ok, deadline;
    int rc;

    (void)state;
    assert_int_equal(th_nats_start(&own, NULL), 0);
    memset(h, 0, sizeof(h));
    h[0].l = open_holder("leases3", "only", own.url);
    h[0].running = 1;
    tick(h, 1, &next);
    last_ok = th_now_ms();
    assert_int_equal(count_held(&h[0]), NB);
    th_nats_kill(&own);
    rc = osc_lease_round(h[0].l, buildings, NB, h[0].held, &err);
    assert_int_equal(rc, OSC_EUNAVAIL);
    print_message("%s\n", err.msg);
    if (th_now_ms() - last_ok < TTL_MS - 500) /* answered well within the TTL */
        assert_int_equal(count_held(&h[0]), NB);
    deadline = th_now_ms() + TTL_MS + 20000;
    while (count_held(&h[0]) > 0) {
        if (th_now_ms() > deadline)
            fail_msg("leases still reported held long after the TTL");
        sleep_until(th_now_ms() + 200);
        assert_int_not_equal(osc_lease_round(h[0].l, buildings, NB, h[0].held, &err), 0);
    }
    assert_true(th_now_ms() - last_ok >= TTL_MS - 1000); /* dropped only around the TTL */
    osc_lease_close(h[0].l);
}

static void test_bad_options(void **state)
{
    struct osc_lease_opts o;
    struct osc_lease *l = NULL;
    struct osc_err err = {0};

    (void)state;
    memset(&o, 0, sizeof(o));
    o.conn.url = server.url;
    o.bucket = "bad.bucket";
    o.instance = "x";
    o.ttl_ms = TTL_MS;
    assert_int_equal(osc_lease_open(&o, &l, &err), OSC_EINVAL);
    o.bucket = "ok";
    o.ttl_ms = 10;
    assert_int_equal(osc_lease_open(&o, &l, &err), OSC_EINVAL);
    o.ttl_ms = TTL_MS;
    o.instance = "";
    assert_int_equal(osc_lease_open(&o, &l, &err), OSC_EINVAL);
    assert_null(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_then_crash_then_release),
        cmocka_unit_test(test_second_joins),
        cmocka_unit_test(test_server_dies),
        cmocka_unit_test(test_bad_options),
    };
    int failed;

    if (th_nats_start(&server, NULL) != 0)
        return 1;
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (th_nats_stop(&server) != 0)
        failed++;
    th_tmpdir_cleanup();
    return failed;
}
