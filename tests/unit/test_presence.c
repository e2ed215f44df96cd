/*
 * test_presence.c - the pure presence rules: point -> status mapping,
 * per-location aggregation, the push decision, the scheduler stepped with a
 * fake clock, auth backoff, and the OfficeSpace request/answer (aliases,
 * per-item errors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "osc/err.h"
#include "osc/presence.h"

static void test_kinds(void **state)
{
    enum osc_point_kind k;
    const char *names[] = {"Occupancy_Status", "Temporary_Occupancy_Status",
                           "Occupancy_Count_Sensor", "Occupancy_Sensor", "PIR_Sensor"};

    (void)state;
    for (int i = 0; i < OSC_POINT__COUNT; i++) {
        assert_int_equal(osc_presence_kind_parse(names[i], strlen(names[i]), &k), 0);
        assert_int_equal(k, i);
        assert_string_equal(osc_presence_kind_name(k), names[i]);
    }
    assert_int_equal(osc_presence_kind_parse("Occupancy_Statu", 15, &k), OSC_EINVAL);
    assert_int_equal(osc_presence_kind_parse("Point", 5, &k), OSC_EINVAL);
}

static void expect(enum osc_point_kind k, double v, enum osc_presence_status st, int64_t count)
{
    struct osc_presence_obs o;

    osc_presence_map(k, v, 1000, &o);
    assert_int_equal(o.status, st);
    assert_true(o.count == count);
    assert_true(o.at_ms == 1000);
    assert_int_equal(o.count_sensor, k == OSC_POINT_OCCUPANCY_COUNT_SENSOR);
}

static void test_mapping(void **state)
{
    (void)state;
    expect(OSC_POINT_OCCUPANCY_STATUS, 1, OSC_PRESENCE_YES, 1);
    expect(OSC_POINT_OCCUPANCY_STATUS, 0, OSC_PRESENCE_NO, 0);
    expect(OSC_POINT_OCCUPANCY_STATUS, 0.5, OSC_PRESENCE_NO, 0);
    expect(OSC_POINT_OCCUPANCY_STATUS, 2, OSC_PRESENCE_YES, 1);
    expect(OSC_POINT_TEMPORARY_OCCUPANCY_STATUS, 1, OSC_PRESENCE_YES, 1);
    expect(OSC_POINT_TEMPORARY_OCCUPANCY_STATUS, 0, OSC_PRESENCE_NO, 0);
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, 3, OSC_PRESENCE_YES, 3);
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, 2.6, OSC_PRESENCE_YES, 3);
    /* the presence decision is made before rounding: 0.4 people is someone */
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, 0.4, OSC_PRESENCE_YES, 1);
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, 1e-9, OSC_PRESENCE_YES, 1);
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, 1.5, OSC_PRESENCE_YES, 2);
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, 5e12, OSC_PRESENCE_YES, 1000000000);
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, 0, OSC_PRESENCE_NO, 0);
    expect(OSC_POINT_OCCUPANCY_COUNT_SENSOR, -5, OSC_PRESENCE_NO, 0);
    expect(OSC_POINT_OCCUPANCY_SENSOR, 1, OSC_PRESENCE_PASSIVE, 1);
    expect(OSC_POINT_OCCUPANCY_SENSOR, 0.1, OSC_PRESENCE_PASSIVE, 1);
    expect(OSC_POINT_OCCUPANCY_SENSOR, 0, OSC_PRESENCE_NO, 0);
    expect(OSC_POINT_PIR_SENSOR, 1, OSC_PRESENCE_PASSIVE, 1);
    expect(OSC_POINT_PIR_SENSOR, -1, OSC_PRESENCE_NO, 0);
    assert_string_equal(osc_presence_status_name(OSC_PRESENCE_YES), "PRESENCE");
    assert_string_equal(osc_presence_status_name(OSC_PRESENCE_PASSIVE), "PASSIVE_PRESENCE");
    assert_string_equal(osc_presence_status_name(OSC_PRESENCE_NO), "NO_PRESENCE");
}

static void add(struct osc_presence_agg *a, enum osc_point_kind k, double v, int64_t at)
{
    struct osc_presence_obs o;
    osc_presence_map(k, v, at, &o);
    osc_presence_agg_add(a, &o);
}

static void test_aggregation(void **state)
{
    struct osc_presence_agg a;

    (void)state;
    /* PRESENCE beats PASSIVE beats NO; newest timestamp wins */
    osc_presence_agg_init(&a);
    add(&a, OSC_POINT_PIR_SENSOR, 1, 5000);
    add(&a, OSC_POINT_OCCUPANCY_STATUS, 0, 9000);
    assert_int_equal(a.status, OSC_PRESENCE_PASSIVE);
    assert_true(osc_presence_agg_count(&a) == 1);
    assert_true(a.at_ms == 9000);
    add(&a, OSC_POINT_OCCUPANCY_STATUS, 1, 7000);
    assert_int_equal(a.status, OSC_PRESENCE_YES);
    assert_true(a.at_ms == 9000);
    assert_int_equal(a.n, 3);

    /* count: the largest count sensor when any exists */
    osc_presence_agg_init(&a);
    add(&a, OSC_POINT_OCCUPANCY_COUNT_SENSOR, 2, 1);
    add(&a, OSC_POINT_OCCUPANCY_COUNT_SENSOR, 5, 2);
    add(&a, OSC_POINT_OCCUPANCY_COUNT_SENSOR, 4, 3);
    add(&a, OSC_POINT_OCCUPANCY_STATUS, 1, 4);
    assert_int_equal(a.status, OSC_PRESENCE_YES);
    assert_true(osc_presence_agg_count(&a) == 5);

    /* a present location carries a count >= 1: a count sensor at 0 does not empty it */
    osc_presence_agg_init(&a);
    add(&a, OSC_POINT_OCCUPANCY_COUNT_SENSOR, 0, 1);
    add(&a, OSC_POINT_PIR_SENSOR, 1, 2);
    assert_int_equal(a.status, OSC_PRESENCE_PASSIVE);
    assert_true(osc_presence_agg_count(&a) == 1);
    osc_presence_agg_init(&a);
    add(&a, OSC_POINT_OCCUPANCY_STATUS, 1, 1);
    add(&a, OSC_POINT_OCCUPANCY_COUNT_SENSOR, 0, 2);
    assert_int_equal(a.status, OSC_PRESENCE_YES);
    assert_true(osc_presence_agg_count(&a) == 1);
    /* and 0.4 on the count sensor alone is PRESENCE with 1 */
    osc_presence_agg_init(&a);
    add(&a, OSC_POINT_OCCUPANCY_COUNT_SENSOR, 0.4, 1);
    assert_int_equal(a.status, OSC_PRESENCE_YES);
    assert_true(osc_presence_agg_count(&a) == 1);

    /* all empty */
    osc_presence_agg_init(&a);
    add(&a, OSC_POINT_OCCUPANCY_STATUS, 0, 1);
    add(&a, OSC_POINT_OCCUPANCY_SENSOR, 0, 2);
    assert_int_equal(a.status, OSC_PRESENCE_NO);
    assert_true(osc_presence_agg_count(&a) == 0);

    osc_presence_agg_init(&a);
    assert_int_equal(a.n, 0);
}

static void test_diff(void **state)
{
    struct osc_presence_last l = {1, OSC_PRESENCE_YES, 2, 0, 100000, 0};
    const int64_t R = 15 * 60 * 1000;

    (void)state;
    assert_int_equal(osc_presence_diff(NULL, OSC_PRESENCE_NO, 0, 0, R), OSC_PRESENCE_CHANGED);
    {
        struct osc_presence_last none = {0};
        assert_int_equal(osc_presence_diff(&none, OSC_PRESENCE_NO, 0, 0, R), OSC_PRESENCE_CHANGED);
    }
    assert_int_equal(osc_presence_diff(&l, OSC_PRESENCE_YES, 2, 100000 + 1000, R),
                     OSC_PRESENCE_SKIP);
    assert_int_equal(osc_presence_diff(&l, OSC_PRESENCE_YES, 3, 100000 + 1000, R),
                     OSC_PRESENCE_CHANGED);
    assert_int_equal(osc_presence_diff(&l, OSC_PRESENCE_PASSIVE, 2, 100000 + 1000, R),
                     OSC_PRESENCE_CHANGED);
    assert_int_equal(osc_presence_diff(&l, OSC_PRESENCE_YES, 2, 100000 + R - 1, R),
                     OSC_PRESENCE_SKIP);
    assert_int_equal(osc_presence_diff(&l, OSC_PRESENCE_YES, 2, 100000 + R, R),
                     OSC_PRESENCE_REFRESH);
    /* the wall clock went backwards: refresh rather than stay silent forever */
    assert_int_equal(osc_presence_diff(&l, OSC_PRESENCE_YES, 2, 50000, R), OSC_PRESENCE_REFRESH);
    /* refresh off */
    assert_int_equal(osc_presence_diff(&l, OSC_PRESENCE_YES, 2, 100000 + 10 * R, 0),
                     OSC_PRESENCE_SKIP);
    assert_string_equal(osc_presence_why_name(OSC_PRESENCE_REFRESH), "refresh");
    assert_string_equal(osc_presence_why_name(OSC_PRESENCE_CHANGED), "changed");
    assert_string_equal(osc_presence_why_name(OSC_PRESENCE_EXPIRE), "expired");
    /* after an expiry, the first fresh reading is pushed whatever it says */
    {
        struct osc_presence_last x = {1, OSC_PRESENCE_NO, 0, 0, 100000, 1};
        assert_int_equal(osc_presence_diff(&x, OSC_PRESENCE_NO, 0, 100000 + 1000, R),
                         OSC_PRESENCE_CHANGED);
    }
}

static void test_expiry_rule(void **state)
{
    const int64_t E = 15 * 60 * 1000, now = 10 * E;
    struct osc_presence_last yes = {1, OSC_PRESENCE_YES, 5, now - E, now - E, 0};
    struct osc_presence_last no = {1, OSC_PRESENCE_NO, 0, now - 2 * E, now - 2 * E, 0};
    struct osc_presence_last done = {1, OSC_PRESENCE_NO, 0, now - 2 * E, now - 2 * E, 1};
    struct osc_presence_last never = {0};

    (void)state;
    /* a fresh reading never expires; neither does anything with expiry off */
    assert_false(osc_presence_expired(&yes, 1, now, now, E));
    assert_false(osc_presence_expired(&yes, 0, 0, now, 0));
    /* PRESENCE 5 pushed, the newest reading expire_after old: expire */
    assert_true(osc_presence_expired(&yes, 0, now - E, now, E));
    /* no reading left: the last push's reading time counts */
    assert_true(osc_presence_expired(&yes, 0, 0, now, E));
    assert_false(osc_presence_expired(&yes, 0, 0, now - 1, E));
    /* a newer (but not fresh) reading than the last push moves the expiry later */
    assert_false(osc_presence_expired(&yes, 0, now - E + 1, now, E));
    /* OfficeSpace already has NO_PRESENCE from us, or the expiry itself, or nothing: no push */
    assert_false(osc_presence_expired(&no, 0, 0, now, E));
    assert_false(osc_presence_expired(&done, 0, 0, now, E));
    assert_false(osc_presence_expired(&never, 0, 0, now, E));
    assert_false(osc_presence_expired(NULL, 0, 0, now, E));
    /* PASSIVE_PRESENCE expires too */
    yes.status = OSC_PRESENCE_PASSIVE;
    assert_true(osc_presence_expired(&yes, 0, 0, now, E));
}

/* A fake monotonic clock stepped by the test. */
static int64_t fake_now;
static int64_t fake_mono(void *ud)
{
    (void)ud;
    return fake_now;
}

static void test_scheduler(void **state)
{
    struct osc_clock clk = {fake_mono, fake_mono, NULL};
    struct osc_presence_sched s;

    (void)state;
    fake_now = 1000000;
    osc_presence_sched_init(&s, 60000, osc_clock_mono_ms(&clk));
    assert_true(osc_presence_sched_delay(&s, osc_clock_mono_ms(&clk)) == 0); /* first: now */

    /* a 2 s cycle: the next starts 60 s after the previous start */
    fake_now += 2000;
    assert_true(osc_presence_sched_done(&s, fake_now, 0) == 58000);
    assert_true(s.next_ms == 1060000);
    fake_now += 30000;
    assert_true(osc_presence_sched_delay(&s, fake_now) == 28000);
    fake_now = 1060000;
    assert_true(osc_presence_sched_delay(&s, fake_now) == 0);

    /* a cycle overruns by 2.5 intervals: no overlap, back on the grid, slots skipped */
    fake_now = 1060000 + 150000;
    assert_true(osc_presence_sched_done(&s, fake_now, 0) == 30000);
    assert_true(s.next_ms == 1240000);
    assert_true(s.skipped == 2);

    /* a cycle ends exactly on the next slot: starts at once */
    fake_now = 1300000;
    assert_true(osc_presence_sched_done(&s, fake_now, 0) == 0);

    /* backoff pushes the start out, still on the grid */
    fake_now = 1300500;
    assert_true(osc_presence_sched_done(&s, fake_now, 120000) == 179500);
    assert_true((s.next_ms - 1000000) % 60000 == 0);

    /* reload with a new interval */
    osc_presence_sched_set_interval(&s, 1000);
    fake_now = s.next_ms + 10;
    assert_true(osc_presence_sched_done(&s, fake_now, 0) == 990);
}

static void test_auth_backoff(void **state)
{
    const int64_t hour = 3600000;

    (void)state;
    assert_true(osc_presence_auth_backoff_ms(60000, 0, hour) == 0);
    assert_true(osc_presence_auth_backoff_ms(60000, 1, hour) == 120000);
    assert_true(osc_presence_auth_backoff_ms(60000, 2, hour) == 240000);
    assert_true(osc_presence_auth_backoff_ms(60000, 5, hour) == 1920000);
    assert_true(osc_presence_auth_backoff_ms(60000, 6, hour) == hour);
    assert_true(osc_presence_auth_backoff_ms(60000, 400, hour) == hour);
}

static void test_push_body(void **state)
{
    struct osc_presence_item it[2];
    struct osc_buf b;

    (void)state;
    memset(it, 0, sizeof(it));
    it[0].urn.type = OSC_URN_ROOM;
    it[0].urn.id = 1234;
    it[0].status = OSC_PRESENCE_YES;
    it[0].count = 3;
    it[0].at_ms = 1767781800000LL;
    it[1].urn.type = OSC_URN_DESK;
    it[1].urn.id = 7;
    it[1].status = OSC_PRESENCE_NO;
    it[1].at_ms = 1767781801000LL;
    osc_buf_init(&b, 1 << 20);
    assert_int_equal(osc_presence_push_body(it, 2, &b), 0);
    assert_string_equal(
        osc_buf_str(&b),
        "{\"query\":\"mutation { p0: createEmployeePresence(employeePresence: {roomId: "
        "\\\"1234\\\", occupancyStatus: PRESENCE, occupancyCount: 3, presenceDetectedAt: "
        "\\\"2026-01-07T10:30:00Z\\\"}) { success errors { attribute errors label } } p1: "
        "createEmployeePresence(employeePresence: {seatId: \\\"7\\\", occupancyStatus: "
        "NO_PRESENCE, occupancyCount: 0, presenceDetectedAt: \\\"2026-01-07T10:30:01Z\\\"}) { "
        "success errors { attribute errors label } } }\"}");
    osc_buf_free(&b);
}

static void test_push_parse(void **state)
{
    struct osc_presence_item it[5];
    const char *answer = "{\"data\":{\"p0\":{\"success\":true,\"errors\":null},"
                         "\"p1\":{\"success\":false,\"errors\":[{\"attribute\":\"roomId\","
                         "\"errors\":[\"not found\"],"
                         "\"label\":null}]},\"p2\":null,\"p3\":{\"success\":true,\"errors\":[]}},"
                         "\"errors\":[{\"message\":\"boom\",\"path\":[\"p2\",\"success\"]}]}";

    (void)state;
    memset(it, 0, sizeof(it));
    assert_int_equal(osc_presence_push_parse(answer, strlen(answer), it, 5, NULL), 0);
    assert_int_equal(it[0].state, OSC_PRESENCE_ITEM_ACCEPTED);
    assert_int_equal(it[1].state, OSC_PRESENCE_ITEM_FAILED);
    assert_string_equal(it[1].error, "roomId: not found");
    assert_int_equal(it[2].state, OSC_PRESENCE_ITEM_FAILED);
    assert_string_equal(it[2].error, "boom");
    assert_int_equal(it[3].state, OSC_PRESENCE_ITEM_ACCEPTED);
    /* not mentioned: not acknowledged */
    assert_int_equal(it[4].state, OSC_PRESENCE_ITEM_UNACKED);
    assert_string_equal(it[4].error, "no answer under alias p4");

    /* an error without a path acknowledges nothing */
    memset(it, 0, sizeof(it));
    answer = "{\"errors\":[{\"message\":\"Field 'x' doesn't exist\"}],\"data\":null}";
    assert_int_equal(osc_presence_push_parse(answer, strlen(answer), it, 2, NULL), 0);
    assert_int_equal(it[0].state, OSC_PRESENCE_ITEM_UNACKED);
    assert_int_equal(it[1].state, OSC_PRESENCE_ITEM_UNACKED);
    assert_string_equal(it[1].error, "no answer under alias p1; GraphQL error: Field 'x' doesn't "
                                     "exist");

    /* aliases out of range or malformed acknowledge nothing; the reason names one */
    memset(it, 0, sizeof(it));
    answer = "{\"data\":{\"p9\":{\"success\":true},\"p01\":{\"success\":true},\"x\":1}}";
    assert_int_equal(osc_presence_push_parse(answer, strlen(answer), it, 2, NULL), 0);
    assert_int_equal(it[0].state, OSC_PRESENCE_ITEM_UNACKED);
    assert_int_equal(it[1].state, OSC_PRESENCE_ITEM_UNACKED);
    assert_string_equal(it[0].error, "no answer under alias p0 (the answer has alias 'p9')");

    /* the acknowledgement is data.pI.success, the JSON boolean true, and nothing else */
    {
        static const char *const bad[][2] = {
            {"{\"data\":{\"p0\":null}}", "data.p0 is null, not an acknowledgement"},
            {"{\"data\":{\"p0\":true}}", "data.p0 is a boolean, not an acknowledgement"},
            {"{\"data\":{\"p0\":{\"success\":\"true\"}}}",
             "data.p0.success is a string, not a boolean"},
            {"{\"data\":{\"p0\":{\"success\":1}}}", "data.p0.success is a number, not a boolean"},
            {"{\"data\":{\"p0\":{\"success\":null}}}", "data.p0.success is null, not a boolean"},
            {"{\"data\":{\"p0\":{}}}", "data.p0 has no success field"},
            {"{\"data\":{}}", "no answer under alias p0"},
            {"{\"data\":{\"P0\":{\"success\":true}}}",
             "no answer under alias p0 (the answer has alias 'P0')"},
        };
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            memset(it, 0, sizeof(it));
            assert_int_equal(osc_presence_push_parse(bad[k][0], strlen(bad[k][0]), it, 1, NULL), 0);
            assert_int_equal(it[0].state, OSC_PRESENCE_ITEM_UNACKED);
            assert_string_equal(it[0].error, bad[k][1]);
        }
    }

    /* not JSON: nothing changes */
    memset(it, 0, sizeof(it));
    assert_int_equal(osc_presence_push_parse("<html>", 6, it, 2, NULL), OSC_EPROTO);
    assert_int_equal(osc_presence_push_parse("{}", 2, it, 2, NULL), OSC_EPROTO);
    assert_int_equal(it[0].state, OSC_PRESENCE_ITEM_PENDING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_aggregation),  cmocka_unit_test(test_diff),
        cmocka_unit_test(test_expiry_rule),  cmocka_unit_test(test_scheduler),
        cmocka_unit_test(test_auth_backoff), cmocka_unit_test(test_push_body),
        cmocka_unit_test(test_push_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
