/*
 * test_presence_engine.c - whole presence cycles against two scripted
 * servers (Mapped and OfficeSpace GraphQL) with a fake clock: discovery,
 * change-only pushes across cycles with scripted value changes, per-item
 * errors retried next cycle, the resend_after refresh, a restart that
 * resends nothing (state in SQLite), 503 + Retry-After retried within the
 * cycle, 401s from either API, chunking by mutations_per_request, the
 * dry-run table, the metrics text, presence.expire_after (readings gone
 * stale or missing, a place removed, restarts, readings returning),
 * answers that do not acknowledge a push under its alias, and a permanent
 * transport error (a URL scheme other than http/https) that is not retried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "osc/log.h"
#include "osc/metrics.h"
#include "osc/presence.h"
#include "testserver.h"

#define GQL_KEY      "gqlkey-abcdef123" /* listed in tests/fixtures/test-secrets.txt */
#define MAPPED_TOKEN "PATmapped12345"

static int64_t fake_mono_now, fake_wall_now;
static int64_t fake_mono(void *ud)
{
    (void)ud;
    return fake_mono_now;
}
static int64_t fake_wall(void *ud)
{
    (void)ud;
    return fake_wall_now;
}
static const struct osc_clock fake = {fake_mono, fake_wall, NULL};

struct fx {
    struct ts_server *mapped, *os;
    struct osc_config *cfg;
    struct osc_metrics *m;
    char *state;
};

/* A building: room:1 (Occupancy_Status P1), desk:2 (PIR P2), room:3 (count P3). */
static char *building(double p1, double p2, double p3)
{
    char *s = NULL;
    assert_true(
        asprintf(
            &s,
            "{\"data\":{\"buildings\":[{\"id\":\"B1\",\"name\":\"HQ\",\"identities\":[{}],"
            "\"points\":[],"
            "\"floors\":[{\"id\":\"F1\",\"name\":\"1\",\"identities\":[],\"points\":[],\"spaces\":["
            "{\"id\":\"S1\",\"name\":\"Room "
            "1\",\"identities\":[{\"__typename\":\"ExternalIdentity\",\"value\":\"urn:officespace:"
            "room:id:1\"}],"
            "\"points\":[{\"id\":\"P1\",\"exactType\":\"Occupancy_Status\",\"series\":[{"
            "\"timestamp\":\"2026-01-07T10:30:00Z\",\"value\":{\"float64Value\":%g}}]}]},"
            "{\"id\":\"S2\",\"name\":\"Desk "
            "2\",\"identities\":[{\"__typename\":\"ExternalIdentity\",\"value\":\"urn:officespace:"
            "desk:id:2\"}],"
            "\"points\":[{\"id\":\"P2\",\"exactType\":\"PIR_Sensor\",\"series\":[{\"timestamp\":"
            "\"2026-01-07T10:31:00Z\",\"value\":{\"int32Value\":%g}}]}]},"
            "{\"id\":\"S3\",\"name\":\"Room "
            "3\",\"identities\":[{\"__typename\":\"ExternalIdentity\",\"value\":\"urn:officespace:"
            "room:id:3\"}],"
            "\"points\":[{\"id\":\"P3\",\"exactType\":\"Occupancy_Count_Sensor\",\"series\":[{"
            "\"timestamp\":\"2026-01-07T10:32:00Z\",\"value\":{\"int64Value\":\"%g\"}}]}]}"
            "],\"zones\":[]}]}]}}",
            p1, p2, p3) > 0);
    return s;
}

static void mapped_answer(struct fx *f, double p1, double p2, double p3)
{
    char *body = building(p1, p2, p3);
    struct ts_response r = {200, "Content-Type: application/json\n", body, 0, 0};
    ts_set_default(f->mapped, &r);
    free(body);
}

static const char *ALL_OK = "{\"data\":{\"p0\":{\"success\":true,\"errors\":null},\"p1\":{"
                            "\"success\":true,\"errors\":null},"
                            "\"p2\":{\"success\":true,\"errors\":null}}}";

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct osc_err err = {0};
    struct ts_response ok = {200, "Content-Type: application/json\n", ALL_OK, 0, 0};
    char *yaml = NULL, *path;

    f->mapped = ts_start();
    f->os = ts_start();
    assert_non_null(f->mapped);
    assert_non_null(f->os);
    ts_set_default(f->os, &ok);
    assert_true(asprintf(&f->state, "%s/state-%p.db", th_tmpdir(), (void *)f) > 0);
    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: restkey-abcdef123\n"
                         "  graphql_url: %s/graphql\n  graphql_api_key: " GQL_KEY "\n"
                         "mapped:\n  url: %s/graphql\n  token: " MAPPED_TOKEN "\n"
                         "presence:\n  buildings: [B1]\n  interval: 60s\n  resend_after: 15m\n"
                         "  topology_refresh: 15m\n  mutations_per_request: 2\n  state: %s\n"
                         /* the fixed readings (10:30-10:32) would expire as the wall clock
                          * steps 20 min here; expiry has its own tests below */
                         "  expire_after: 0\n"
                         "  retry:\n    base: 10ms\n    cap: 50ms\n",
                         ts_url(f->os), ts_url(f->os), ts_url(f->mapped), f->state) > 0);
    path = th_write_file("presence.yaml", yaml);
    assert_int_equal(osc_config_load(path, &f->cfg, &err), 0);
    f->m = osc_metrics_new();
    free(yaml);
    free(path);
    fake_mono_now = 1000000;
    fake_wall_now = 1767781900000LL;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ts_stop(f->mapped);
    ts_stop(f->os);
    osc_config_free(f->cfg);
    osc_metrics_free(f->m);
    free(f->state);
    free(f);
    th_tmpdir_cleanup();
    return 0;
}

static struct osc_presence *engine(struct fx *f, int dry, FILE *out)
{
    struct osc_presence_opts o = {&fake, f->m, dry, out, NULL};
    struct osc_presence *p = NULL;
    struct osc_err err = {0};
    assert_int_equal(osc_presence_new(f->cfg, &o, &p, &err), 0);
    return p;
}

static int cycle(struct fx *f, struct osc_presence *p, struct osc_metrics_cycle *rep)
{
    struct osc_err err = {0};
    int rc = osc_presence_cycle(p, fake_mono_now + 60000, rep, &err);
    osc_metrics_record_cycle(f->m, rep, fake_mono_now, fake_wall_now);
    assert_null(strstr(err.msg, GQL_KEY));
    assert_null(strstr(err.msg, MAPPED_TOKEN));
    return rc;
}

/* Body of the last OfficeSpace request (static copy). */
static const char *os_body_last(struct fx *f)
{
    static char buf[8192];
    struct ts_request r;
    assert_true(ts_count(f->os) > 0);
    assert_int_equal(ts_get(f->os, ts_count(f->os) - 1, &r), 0);
    snprintf(buf, sizeof(buf), "%s", r.body ? r.body : "");
    ts_request_free(&r);
    return buf;
}

/* Body of the i-th OfficeSpace request (malloc'd). */
static char *os_body(struct fx *f, size_t i, char *apikey, size_t cap)
{
    struct ts_request r;
    char *b;
    assert_int_equal(ts_get(f->os, i, &r), 0);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.url, "/graphql");
    if (apikey)
        assert_int_equal(ts_header(&r, "apikey", apikey, cap), 0);
    b = strdup(r.body ? r.body : "");
    ts_request_free(&r);
    return b;
}

static void test_change_only(void **state)
{
    struct fx *f = *state;
    struct osc_presence *p;
    struct osc_metrics_cycle rep;
    struct osc_buf mt;
    char key[64], *b;
    struct ts_request mr;

    p = engine(f, 0, NULL);
    mapped_answer(f, 1, 0, 2);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.result, OSC_METRICS_OK);
    assert_true(rep.discovered);
    assert_int_equal(rep.locations_discovered, 3);
    assert_int_equal(rep.pushes_accepted, 3);
    assert_int_equal(rep.push_requests, 2); /* mutations_per_request: 2 */
    assert_int_equal(ts_count(f->os), 2);
    b = os_body(f, 0, key, sizeof(key));
    assert_string_equal(key, GQL_KEY);
    assert_non_null(strstr(b, "p0: createEmployeePresence(employeePresence: {roomId: \\\"1\\\", "
                              "occupancyStatus: PRESENCE, occupancyCount: 1, presenceDetectedAt: "
                              "\\\"2026-01-07T10:30:00Z\\\"})"));
    assert_non_null(strstr(b, "p1: createEmployeePresence(employeePresence: {seatId: \\\"2\\\", "
                              "occupancyStatus: NO_PRESENCE, occupancyCount: 0"));
    free(b);
    b = os_body(f, 1, NULL, 0);
    assert_non_null(strstr(b, "p0: createEmployeePresence(employeePresence: {roomId: \\\"3\\\", "
                              "occupancyStatus: PRESENCE, occupancyCount: 2, presenceDetectedAt: "
                              "\\\"2026-01-07T10:32:00Z\\\"})"));
    assert_null(strstr(b, "p1:"));
    free(b);
    assert_int_equal(ts_get(f->mapped, 0, &mr), 0);
    assert_non_null(strstr(mr.body, "identities"));
    ts_request_free(&mr);

    /* unchanged: nothing pushed; the read query has no identities */
    fake_mono_now += 60000;
    fake_wall_now += 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_false(rep.discovered);
    assert_int_equal(rep.push_requests, 0);
    assert_int_equal(ts_count(f->os), 2);
    assert_int_equal(ts_get(f->mapped, 1, &mr), 0);
    assert_null(strstr(mr.body, "identities"));
    ts_request_free(&mr);

    /* one count changes: one location pushed */
    mapped_answer(f, 1, 0, 0);
    fake_mono_now += 60000;
    fake_wall_now += 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 1);
    assert_int_equal(ts_count(f->os), 3);
    b = os_body(f, 2, NULL, 0);
    assert_non_null(
        strstr(b, "roomId: \\\"3\\\", occupancyStatus: NO_PRESENCE, occupancyCount: 0"));
    assert_null(strstr(b, "roomId: \\\"1\\\""));
    free(b);
    assert_int_equal(rep.locations_by_status[OSC_PRESENCE_YES], 1);
    assert_int_equal(rep.locations_by_status[OSC_PRESENCE_NO], 2);

    /* PIR motion: PASSIVE_PRESENCE */
    mapped_answer(f, 1, 1, 0);
    fake_mono_now += 60000;
    fake_wall_now += 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    b = os_body(f, 3, NULL, 0);
    assert_non_null(
        strstr(b, "seatId: \\\"2\\\", occupancyStatus: PASSIVE_PRESENCE, occupancyCount: 1"));
    free(b);

    /* refresh after resend_after (wall clock), everything again */
    fake_mono_now += 60000;
    fake_wall_now += 15 * 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 3);
    assert_int_equal(ts_count(f->os), 6);

    osc_buf_init(&mt, 1 << 20);
    assert_int_equal(osc_metrics_render(f->m, &mt), 0);
    assert_non_null(strstr(osc_buf_str(&mt), "# TYPE osconnect_presence_cycles_total counter\n"));
    assert_non_null(strstr(osc_buf_str(&mt), "osconnect_presence_cycles_total{result=\"ok\"} 5\n"));
    assert_non_null(
        strstr(osc_buf_str(&mt), "osconnect_presence_pushes_total{result=\"accepted\"} 8\n"));
    assert_non_null(
        strstr(osc_buf_str(&mt), "osconnect_presence_locations{status=\"PASSIVE_PRESENCE\"} 1\n"));
    assert_non_null(strstr(osc_buf_str(&mt), "osconnect_presence_push_requests_total 6\n"));
    osc_buf_free(&mt);
    osc_presence_free(p);

    /* restart: the state file remembers, nothing is resent */
    p = engine(f, 0, NULL);
    fake_mono_now += 60000;
    fake_wall_now += 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_true(rep.discovered);
    assert_int_equal(rep.push_requests, 0);
    assert_int_equal(ts_count(f->os), 6);
    osc_presence_free(p);
}

static void test_item_errors_and_retries(void **state)
{
    struct fx *f = *state;
    struct osc_presence *p = engine(f, 0, NULL);
    struct osc_metrics_cycle rep;
    struct ts_response part = {200, NULL,
                               "{\"data\":{\"p0\":{\"success\":true,\"errors\":null},"
                               "\"p1\":{\"success\":false,\"errors\":[{\"attribute\":\"seatId\","
                               "\"errors\":[\"not found\"],\"label\":null}]}}}",
                               0, 0};
    struct ts_response path_err = {
        200, NULL,
        "{\"data\":{\"p0\":null},\"errors\":[{\"message\":\"no such room\","
        "\"path\":[\"p0\"]}]}",
        0, 0};
    struct ts_response busy = {503, "Retry-After: 0\n", "busy", 0, 0};
    struct ts_response unauth = {401, NULL, "{\"errors\":[{\"message\":\"bad key\"}]}", 0, 0};
    struct osc_buf mt;
    char *b;

    mapped_answer(f, 1, 0, 2);
    ts_push(f->os, &part);     /* chunk 1: room 1 ok, desk 2 refused */
    ts_push(f->os, &path_err); /* chunk 2: room 3 refused through a path error */
    assert_int_equal(cycle(f, p, &rep), OSC_EREJECTED);
    assert_int_equal(rep.result, OSC_METRICS_PARTIAL);
    assert_int_equal(rep.pushes_accepted, 1);
    assert_int_equal(rep.pushes_failed, 2);
    {
        /* refused under their alias is an answer: the daemon stays ready */
        char why[256];
        assert_true(osc_metrics_ready(f->m, fake_mono_now, why, sizeof(why)));
        assert_non_null(strstr(why, "(1 accepted, 2 refused)"));
    }

    /* next cycle: only the two refused ones again; a 503 is retried within the cycle */
    ts_push(f->os, &busy);
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 2);
    assert_int_equal(rep.push_requests, 2);
    assert_int_equal(ts_count(f->os), 4);
    b = os_body(f, 3, NULL, 0);
    assert_non_null(strstr(b, "seatId: \\\"2\\\""));
    assert_non_null(strstr(b, "roomId: \\\"3\\\""));
    assert_null(strstr(b, "roomId: \\\"1\\\""));
    free(b);

    /* OfficeSpace refuses the key: auth failure, nothing remembered (all three change) */
    mapped_answer(f, 0, 1, 0);
    ts_push(f->os, &unauth);
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), OSC_EAUTH);
    assert_int_equal(rep.result, OSC_METRICS_AUTH_FAILED);
    assert_int_equal(rep.pushes_unsent, 3);

    /* persistent 5xx: bounded retries, items stay for the next cycle */
    busy.headers = NULL;
    busy.status = 500;
    ts_set_default(f->os, &busy);
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), OSC_EUNAVAIL);
    assert_int_equal(rep.result, OSC_METRICS_FAILED);
    assert_int_equal(rep.pushes_unsent, 3);
    assert_true(rep.push_requests >= 2 * 2); /* retried, per chunk */

    /* Mapped refuses the token */
    unauth.body = "{\"errors\":[{\"message\":\"unauthorized\"}]}";
    ts_set_default(f->mapped, &unauth);
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), OSC_EAUTH);
    assert_int_equal(rep.result, OSC_METRICS_AUTH_FAILED);

    osc_buf_init(&mt, 1 << 20);
    assert_int_equal(osc_metrics_render(f->m, &mt), 0);
    assert_non_null(
        strstr(osc_buf_str(&mt), "api_errors_total{api=\"officespace\",class=\"item\"} 2\n"));
    assert_non_null(
        strstr(osc_buf_str(&mt), "api_errors_total{api=\"officespace\",class=\"auth\"} 1\n"));
    assert_non_null(
        strstr(osc_buf_str(&mt), "api_errors_total{api=\"mapped\",class=\"auth\"} 1\n"));
    assert_non_null(strstr(osc_buf_str(&mt), "cycles_total{result=\"partial\"} 1\n"));
    assert_non_null(strstr(osc_buf_str(&mt), "cycles_total{result=\"auth_failed\"} 2\n"));
    /* the refused read did not zero the location gauges */
    assert_non_null(strstr(osc_buf_str(&mt), "osconnect_presence_locations_discovered 3\n"));
    assert_non_null(strstr(osc_buf_str(&mt), "osconnect_presence_up 0\n"));
    osc_buf_free(&mt);
    osc_presence_free(p);
}

/* A Retry-After longer than the cycle holds the next cycles' requests back until it passed. */
static void test_retry_after_across_cycles(void **state)
{
    struct fx *f = *state;
    struct osc_presence *p = engine(f, 0, NULL);
    struct osc_metrics_cycle rep;
    struct ts_response slow = {429, "Retry-After: 3600\n",
                               "{\"errors\":[{\"message\":\"slow down\"}]}", 0, 0};
    struct ts_response down = {503, "Retry-After: 600\n", "busy", 0, 0};

    mapped_answer(f, 1, 0, 2);
    ts_push(f->os, &slow);
    assert_int_equal(cycle(f, p, &rep), OSC_EUNAVAIL);
    assert_int_equal(rep.push_requests, 1); /* no second chunk, no retry inside the cycle */
    assert_int_equal(rep.pushes_unsent, 3);
    assert_int_equal(ts_count(f->os), 1);

    /* half an hour later: still inside the hour OfficeSpace asked for; Mapped is read, nothing sent
     */
    fake_mono_now += 30 * 60000;
    fake_wall_now += 30 * 60000;
    assert_int_equal(cycle(f, p, &rep), OSC_EUNAVAIL);
    assert_int_equal(rep.push_requests, 0);
    assert_int_equal(rep.pushes_unsent, 3);
    assert_int_equal(ts_count(f->os), 1);

    /* after the hour: pushed */
    fake_mono_now += 31 * 60000;
    fake_wall_now += 31 * 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 3);
    assert_int_equal(ts_count(f->os), 3);

    /* the same for Mapped: the next cycle does not ask it */
    ts_push(f->mapped, &down);
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), OSC_EUNAVAIL);
    assert_int_equal(rep.mapped_requests, 1);
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), OSC_EUNAVAIL);
    assert_int_equal(rep.mapped_requests, 0);
    fake_mono_now += 10 * 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.mapped_requests, 1);
    osc_presence_free(p);
}

/* Two buildings read in one request; an answer above max_response falls back to one each. */
static void test_read_fallback_per_building(void **state)
{
    struct fx *f = *state;
    struct osc_presence *p;
    struct osc_metrics_cycle rep;
    struct osc_err err = {0};
    struct osc_config *cfg = NULL;
    struct ts_request rq;
    char *yaml = NULL, *path, *body = building(1, 0, 2), *big;
    struct ts_response normal = {200, NULL, body, 0, 0}, huge = {200, NULL, NULL, 0, 0};
    size_t n0;

    /* the same answer padded past 4 KiB with a field the walker skips */
    assert_true(asprintf(&big, "{\"extensions\":\"%0*d\",%s", 5000, 0, body + 1) > 0);
    huge.body = big;
    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: restkey-abcdef123\n"
                         "  graphql_url: %s/graphql\n  graphql_api_key: " GQL_KEY "\n"
                         "mapped:\n  url: %s/graphql\n  token: " MAPPED_TOKEN "\n"
                         "presence:\n  buildings: [B1, B2]\n  max_response: 4KiB\n  state: %s\n",
                         ts_url(f->os), ts_url(f->os), ts_url(f->mapped), f->state) > 0);
    path = th_write_file("two.yaml", yaml);
    assert_int_equal(osc_config_load(path, &cfg, &err), 0);
    {
        struct osc_presence_opts o = {&fake, f->m, 0, NULL, NULL};
        assert_int_equal(osc_presence_new(cfg, &o, &p, &err), 0);
    }
    ts_set_default(f->mapped, &normal);
    assert_int_equal(cycle(f, p, &rep), 0); /* discovery: one request per building */
    assert_int_equal(rep.mapped_requests, 2);
    assert_int_equal(rep.pushes_accepted, 3);

    /* a read: one request for both */
    mapped_answer(f, 0, 0, 2);
    fake_mono_now += 60000;
    n0 = ts_count(f->mapped);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.mapped_requests, 1);
    assert_int_equal(ts_get(f->mapped, n0, &rq), 0);
    assert_non_null(strstr(rq.body, "in: [\\\"B1\\\", \\\"B2\\\"]"));
    ts_request_free(&rq);
    assert_int_equal(rep.pushes_accepted, 1); /* room 1 emptied */

    /* the combined answer is too big: each building alone */
    ts_push(f->mapped, &huge);
    mapped_answer(f, 1, 0, 2);
    fake_mono_now += 60000;
    n0 = ts_count(f->mapped);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.mapped_requests, 3);
    assert_int_equal(ts_get(f->mapped, n0 + 2, &rq), 0);
    assert_non_null(strstr(rq.body, "in: [\\\"B2\\\"]"));
    ts_request_free(&rq);
    assert_int_equal(rep.pushes_accepted, 1); /* room 1 occupied again */
    osc_presence_free(p);
    osc_config_free(cfg);
    free(yaml);
    free(path);
    free(body);
    free(big);
}

/*
 * A building for the expiry tests: room:1 (Occupancy_Status v1 at ts1), room:3 (count sensor v3
 * at ts3); room3: 0 normal, 1 its series is empty (sensor offline), 2 its place is gone.
 */
static char *building_ts(double v1, const char *ts1, double v3, const char *ts3, int room3)
{
    char *s = NULL, *r3 = NULL;

    if (room3 == 0)
        assert_true(asprintf(&r3,
                             ",{\"id\":\"S3\",\"name\":\"Room 3\",\"identities\":[{\"value\":"
                             "\"urn:officespace:room:id:3\"}],\"points\":[{\"id\":\"P3\","
                             "\"exactType\":\"Occupancy_Count_Sensor\",\"series\":[{\"timestamp\":"
                             "\"%s\",\"value\":{\"float64Value\":%g}}]}]}",
                             ts3, v3) > 0);
    else if (room3 == 1)
        assert_true(asprintf(&r3, ",{\"id\":\"S3\",\"name\":\"Room 3\",\"identities\":[{\"value\":"
                                  "\"urn:officespace:room:id:3\"}],\"points\":[{\"id\":\"P3\","
                                  "\"exactType\":\"Occupancy_Count_Sensor\",\"series\":[]}]}") > 0);
    else
        assert_non_null(r3 = strdup(""));
    assert_true(asprintf(&s,
                         "{\"data\":{\"buildings\":[{\"id\":\"B1\",\"floors\":[{\"id\":\"F1\","
                         "\"spaces\":[{\"id\":\"S1\",\"name\":\"Room 1\",\"identities\":[{"
                         "\"value\":\"urn:officespace:room:id:1\"}],\"points\":[{\"id\":\"P1\","
                         "\"exactType\":\"Occupancy_Status\",\"series\":[{\"timestamp\":\"%s\","
                         "\"value\":{\"float64Value\":%g}}]}]}%s]}]}]}}",
                         ts1, v1, r3) > 0);
    free(r3);
    return s;
}

static void mapped_ts(struct fx *f, double v1, const char *ts1, double v3, const char *ts3,
                      int room3)
{
    char *body = building_ts(v1, ts1, v3, ts3, room3);
    struct ts_response r = {200, "Content-Type: application/json\n", body, 0, 0};
    ts_set_default(f->mapped, &r);
    free(body);
}

static struct osc_config *expiry_config(struct fx *f, const char *expire)
{
    struct osc_config *cfg = NULL;
    struct osc_err err = {0};
    char *yaml = NULL, *path;

    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: restkey-abcdef123\n"
                         "  graphql_url: %s/graphql\n  graphql_api_key: " GQL_KEY "\n"
                         "mapped:\n  url: %s/graphql\n  token: " MAPPED_TOKEN "\n"
                         "presence:\n  buildings: [B1]\n  interval: 60s\n  resend_after: 1h\n"
                         "  topology_refresh: 1h\n  state: %s\n%s%s%s",
                         ts_url(f->os), ts_url(f->os), ts_url(f->mapped), f->state,
                         expire ? "  expire_after: " : "", expire ? expire : "",
                         expire ? "\n" : "") > 0);
    path = th_write_file("expire.yaml", yaml);
    assert_int_equal(osc_config_load(path, &cfg, &err), 0);
    free(yaml);
    free(path);
    return cfg;
}

static struct osc_presence *engine_for(struct fx *f, const struct osc_config *cfg)
{
    struct osc_presence_opts o = {&fake, f->m, 0, NULL, NULL};
    struct osc_presence *p = NULL;
    struct osc_err err = {0};
    assert_int_equal(osc_presence_new(cfg, &o, &p, &err), 0);
    return p;
}

static void step(int64_t ms)
{
    fake_mono_now += ms;
    fake_wall_now += ms;
}

#define T0 "2026-01-07T10:31:00Z" /* fake_wall_now starts at 10:31:40 */

/* No fresh reading for expire_after: one NO_PRESENCE push, remembered, nothing more until
 * readings return. */
static void test_expiry(void **state)
{
    struct fx *f = *state;
    struct osc_config *cfg = expiry_config(f, "10m");
    struct osc_presence *p = engine_for(f, cfg);
    struct osc_metrics_cycle rep;
    char *b, now_ts[40];

    /* room 1 PRESENCE 1, room 3 PRESENCE 5 */
    mapped_ts(f, 1, T0, 5, T0, 0);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 2);
    assert_int_equal(ts_count(f->os), 1);

    /* 9 minutes later: still fresh, nothing to say */
    step(9 * 60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);

    /* 10 minutes after the readings: both expire, in one request, as NO_PRESENCE 0 */
    step(60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 2);
    assert_int_equal(rep.locations_unknown, 2);
    assert_int_equal(ts_count(f->os), 2);
    b = os_body(f, 1, NULL, 0);
    osc_clock_iso8601(fake_wall_now, now_ts, sizeof(now_ts));
    {
        char want[200];
        snprintf(want, sizeof(want),
                 "roomId: \\\"3\\\", occupancyStatus: NO_PRESENCE, occupancyCount: 0, "
                 "presenceDetectedAt: \\\"%s\\\"",
                 now_ts);
        assert_non_null(strstr(b, want));
    }
    assert_non_null(
        strstr(b, "roomId: \\\"1\\\", occupancyStatus: NO_PRESENCE, occupancyCount: 0"));
    free(b);

    /* once: later cycles, a refresh due, and a restart send nothing */
    step(70 * 60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);
    osc_presence_free(p);
    p = engine_for(f, cfg);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);
    assert_int_equal(ts_count(f->os), 2);

    /* readings return: room 1 says 0 (the same NO_PRESENCE, pushed once as news), room 3 says 2 */
    osc_clock_iso8601(fake_wall_now, now_ts, sizeof(now_ts));
    mapped_ts(f, 0, now_ts, 2, now_ts, 0);
    step(60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 2);
    b = os_body(f, 2, NULL, 0);
    assert_non_null(
        strstr(b, "roomId: \\\"1\\\", occupancyStatus: NO_PRESENCE, occupancyCount: 0"));
    assert_non_null(strstr(b, "roomId: \\\"3\\\", occupancyStatus: PRESENCE, occupancyCount: 2"));
    free(b);
    step(60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);

    /* room 1 was NO_PRESENCE already: when it goes quiet nothing is pushed; room 3 (PRESENCE 2)
     * loses its sensor (empty series): it expires expire_after after its last reading */
    mapped_ts(f, 0, now_ts, 2, now_ts, 1);
    step(5 * 60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);
    step(4 * 60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 1);
    assert_int_equal(rep.pushes_accepted, 1);
    b = os_body(f, 3, NULL, 0);
    assert_non_null(
        strstr(b, "roomId: \\\"3\\\", occupancyStatus: NO_PRESENCE, occupancyCount: 0"));
    assert_null(strstr(b, "roomId: \\\"1\\\""));
    free(b);
    osc_presence_free(p);
    osc_config_free(cfg);
}

/* A location that disappears from Mapped expires too; expire_after 0 never expires. */
static void test_expiry_gone_and_off(void **state)
{
    struct fx *f = *state;
    struct osc_config *cfg = expiry_config(f, "10m"), *off;
    struct osc_presence *p = engine_for(f, cfg);
    struct osc_metrics_cycle rep;
    FILE *fp;
    char *path = NULL, *out;

    mapped_ts(f, 1, T0, 5, T0, 0);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 2);
    /* room 3's place is removed; the rediscovery no longer lists it */
    mapped_ts(f, 1, T0, 0, T0, 2);
    osc_presence_invalidate(p);
    step(60000);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);
    assert_int_equal(rep.locations_discovered, 1);
    osc_presence_free(p);

    /* a dry run shows the expiries that are due */
    step(9 * 60000);
    assert_true(asprintf(&path, "%s/dry-expire.txt", th_tmpdir()) > 0);
    fp = fopen(path, "w+");
    {
        struct osc_presence_opts o = {&fake, f->m, 1, fp, NULL};
        struct osc_err err = {0};
        assert_int_equal(osc_presence_new(cfg, &o, &p, &err), 0);
    }
    assert_int_equal(cycle(f, p, &rep), 0);
    osc_presence_free(p);
    fclose(fp);
    out = th_read_file(path);
    assert_non_null(strstr(out, "(no longer in Mapped)"));
    assert_non_null(strstr(out, "room:3 "));
    assert_non_null(strstr(out, "expired"));
    assert_non_null(strstr(out, "2 would be pushed (0 changed, 0 refresh, 2 expired)"));
    free(out);
    free(path);

    /* the default is 15 minutes */
    off = expiry_config(f, NULL);
    assert_true(off->presence.expire_after_ms == 15 * 60000);
    osc_config_free(off);

    /* expire_after: 0 turns it off: the same state and readings push nothing */
    off = expiry_config(f, "0");
    p = engine_for(f, off);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);
    osc_presence_free(p);
    osc_config_free(off);

    /* on again: both are pushed NO_PRESENCE once */
    p = engine_for(f, cfg);
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 2);
    assert_non_null(strstr(os_body_last(f), "roomId: \\\"3\\\", occupancyStatus: NO_PRESENCE"));
    osc_presence_free(p);
    osc_config_free(cfg);
}

/* Answers that do not acknowledge a push under its alias: a failed push, retried, counted. */
static void test_unacknowledged(void **state)
{
    struct fx *f = *state;
    struct osc_presence *p = engine(f, 0, NULL);
    struct osc_metrics_cycle rep;
    struct ts_response null_alias = {200, NULL,
                                     "{\"data\":{\"p0\":null,\"p1\":{\"success\":true}}}", 0, 0};
    struct ts_response not_bool = {200, NULL, "{\"data\":{\"p0\":{\"success\":\"yes\"}}}", 0, 0};
    struct ts_response wrong = {200, NULL, "{\"data\":{\"q0\":{\"success\":true}}}", 0, 0};
    struct osc_buf mt;
    char why[256];

    mapped_answer(f, 1, 0, 2);
    ts_push(f->os, &null_alias); /* room 1 not acknowledged, desk 2 accepted */
    ts_push(f->os, &not_bool);   /* room 3: success is a string */
    assert_int_equal(cycle(f, p, &rep), OSC_EREJECTED);
    assert_int_equal(rep.result, OSC_METRICS_PARTIAL);
    assert_int_equal(rep.pushes_accepted, 1);
    assert_int_equal(rep.pushes_unacked, 2);
    assert_int_equal(rep.pushes_failed, 0);
    assert_false(osc_metrics_ready(f->m, fake_mono_now, why, sizeof(why)));
    assert_non_null(strstr(why, "2 push(es) unacknowledged"));

    /* next cycle: both again, in one request; an alias that does not match fails them again */
    ts_push(f->os, &wrong);
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), OSC_EREJECTED);
    assert_int_equal(rep.pushes_unacked,
                     2); /* one request (room 1, room 3): q0 acknowledges none */
    {
        char *b = os_body(f, 2, NULL, 0);
        assert_non_null(strstr(b, "roomId: \\\"1\\\""));
        assert_non_null(strstr(b, "roomId: \\\"3\\\""));
        assert_null(strstr(b, "seatId"));
        free(b);
    }
    /* then acknowledged: nothing is left */
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.pushes_accepted, 2);
    assert_true(osc_metrics_ready(f->m, fake_mono_now, why, sizeof(why)));
    fake_mono_now += 60000;
    assert_int_equal(cycle(f, p, &rep), 0);
    assert_int_equal(rep.push_requests, 0);

    osc_buf_init(&mt, 1 << 20);
    assert_int_equal(osc_metrics_render(f->m, &mt), 0);
    assert_non_null(
        strstr(osc_buf_str(&mt), "osconnect_presence_pushes_total{result=\"unacknowledged\"} 4\n"));
    assert_non_null(strstr(osc_buf_str(&mt),
                           "api_errors_total{api=\"officespace\",class=\"unacknowledged\"} 4\n"));
    assert_non_null(strstr(osc_buf_str(&mt), "cycles_total{result=\"partial\"} 2\n"));
    osc_buf_free(&mt);
    osc_presence_free(p);
}

/* A malformed Mapped answer: its skipped parts are warned once, not every cycle or discovery. */
static void test_malformed_warned_once(void **state)
{
    struct fx *f = *state;
    struct osc_presence *p = engine(f, 0, NULL);
    struct osc_metrics_cycle rep;
    char path[512], *body, *logtext;
    struct ts_response r = {200, "Content-Type: application/json\n", NULL, 0, 0};
    FILE *fp, *logf;
    long n;

    snprintf(path, sizeof(path), "%s/presence/malformed.json",
             getenv("OSC_FIXTURES") ? getenv("OSC_FIXTURES") : "tests/fixtures");
    assert_non_null(fp = fopen(path, "rb"));
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    assert_non_null(body = calloc(1, (size_t)n + 1));
    assert_int_equal(fread(body, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    r.body = body;
    ts_set_default(f->mapped, &r);
    free(body);
    logtext = NULL;
    assert_true(asprintf(&logtext, "%s/engine-log.txt", th_tmpdir()) > 0);
    assert_non_null(logf = fopen(logtext, "w"));
    osc_log_set_stream(logf);
    osc_log_set_level(OSC_LOG_LEVEL_WARN);
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            osc_presence_invalidate(p); /* a rediscovery */
        assert_int_equal(cycle(f, p, &rep), 0);
        fake_mono_now += 60000;
    }
    osc_log_flush();
    osc_log_set_stream(NULL);
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    fclose(logf);
    body = th_read_file(logtext);
    {
        const char *what = "Mapped answer: Space #1 \"Numeric id\" in Floor FLRodd: id is a number";
        const char *first = strstr(body, what);
        assert_non_null(first);
        assert_null(strstr(first + 1, what));
        what = "Mapped answer: Space SPCgood: point PNTseriesObj: series is an object";
        assert_non_null(first = strstr(body, what));
        assert_null(strstr(first + 1, what));
    }
    /* the rest was used: room 3 (count 4) was pushed */
    assert_non_null(strstr(os_body_last(f), "roomId: \\\"3\\\", occupancyStatus: PRESENCE, "
                                            "occupancyCount: 4"));
    free(body);
    free(logtext);
    osc_presence_free(p);
}

/* /livez and /readyz verdicts against a stepped clock. */
static void test_probes(void **state)
{
    struct fx *f = *state;
    struct osc_metrics *m = osc_metrics_new();
    struct osc_metrics_cycle c;
    char why[256];

    (void)f;
    assert_false(osc_metrics_live(m, 1000, why, sizeof(why)));
    assert_string_equal(why, "the presence loop has not started");
    assert_false(osc_metrics_ready(m, 1000, why, sizeof(why)));
    assert_string_equal(why, "no presence cycle yet");
    osc_metrics_set_interval(m, 60000);
    osc_metrics_set_live_limit(m, 80000);
    osc_metrics_tick(m, 1000);
    assert_true(osc_metrics_live(m, 81000, why, sizeof(why)));
    assert_false(osc_metrics_live(m, 96000, why, sizeof(why)));
    assert_string_equal(why, "presence loop ticked 95.0s ago (limit 80.0s)");

    /* a good cycle: ready for 3 intervals after it ended */
    memset(&c, 0, sizeof(c));
    c.result = OSC_METRICS_OK;
    c.mapped_read = 1;
    c.pushes_accepted = 3;
    osc_metrics_record_cycle(m, &c, 100000, fake_wall_now);
    assert_true(osc_metrics_live(m, 100000, why, sizeof(why))); /* a cycle's end is a tick */
    assert_true(osc_metrics_ready(m, 100000 + 180000, why, sizeof(why)));
    assert_false(osc_metrics_ready(m, 100000 + 180001, why, sizeof(why)));
    assert_string_equal(why, "last cycle ended 180.0s ago (limit 180.0s)");
    /* a cycle that could not read Mapped, or left a push unsent: not ready at once */
    c.result = OSC_METRICS_FAILED;
    c.mapped_read = 0;
    osc_metrics_record_cycle(m, &c, 200000, fake_wall_now);
    assert_false(osc_metrics_ready(m, 200000, why, sizeof(why)));
    assert_string_equal(why, "last cycle (failed, 0.0s ago) could not read Mapped");
    c.mapped_read = 1;
    c.pushes_unsent = 2;
    osc_metrics_record_cycle(m, &c, 300000, fake_wall_now);
    assert_false(osc_metrics_ready(m, 300500, why, sizeof(why)));
    assert_string_equal(why, "last cycle (failed, 0.5s ago): 0 push(es) unacknowledged, 2 unsent");
    osc_metrics_free(m);
}

static void test_dry_run(void **state)
{
    struct fx *f = *state;
    char *path = NULL, *out;
    FILE *fp;
    struct osc_presence *p;
    struct osc_metrics_cycle rep;

    assert_true(asprintf(&path, "%s/dry.txt", th_tmpdir()) > 0);
    fp = fopen(path, "w+");
    p = engine(f, 1, fp);
    mapped_answer(f, 1, 0, 2);
    assert_int_equal(cycle(f, p, &rep), 0);
    fclose(fp);
    out = th_read_file(path);
    assert_non_null(strstr(out, "LOCATION"));
    assert_non_null(strstr(out, "room:1 "));
    assert_non_null(strstr(out, "Space S1 Room 1"));
    assert_non_null(strstr(out, "desk:2 "));
    assert_non_null(strstr(out, "NO_PRESENCE"));
    assert_non_null(strstr(out, "2026-01-07T10:32:00Z"));
    assert_non_null(strstr(out, "changed"));
    assert_non_null(strstr(out, "3 would be pushed"));
    assert_int_equal(ts_count(f->os), 0);         /* nothing sent */
    assert_int_equal(access(f->state, F_OK), -1); /* no state file created */
    osc_presence_free(p);
    free(out);
    free(path);
}

/* A permanent transport error (here a URL scheme other than http/https) is not retried. */
static void test_permanent_transport_error(void **state)
{
    struct fx *f = *state;
    struct osc_presence *p;
    struct osc_metrics_cycle rep;
    struct osc_err err = {0};
    char *url = NULL;

    assert_true(asprintf(&url, "ftp://127.0.0.1:%d/graphql", ts_port(f->os)) > 0);
    free(f->cfg->officespace.graphql_url);
    f->cfg->officespace.graphql_url = url;
    p = engine(f, 0, NULL);
    mapped_answer(f, 1, 0, 2);
    assert_int_equal(osc_presence_cycle(p, fake_mono_now + 60000, &rep, &err), OSC_EHTTP);
    /* one request: no retry within the chunk, no second chunk */
    assert_int_equal(rep.push_requests, 1);
    assert_int_equal(rep.pushes_unsent, 3);
    assert_non_null(strstr(err.msg, "unsupported URL scheme \"ftp\""));
    assert_int_equal(ts_count(f->os), 0);
    osc_presence_free(p);

    /* the same for Mapped (which answered the first cycle) */
    assert_int_equal(ts_count(f->mapped), 1);
    assert_true(asprintf(&url, "ftp://127.0.0.1:%d/graphql", ts_port(f->mapped)) > 0);
    free(f->cfg->mapped.url);
    f->cfg->mapped.url = url;
    p = engine(f, 0, NULL);
    assert_int_equal(osc_presence_cycle(p, fake_mono_now + 60000, &rep, &err), OSC_EHTTP);
    assert_int_equal(rep.mapped_requests, 1);
    assert_non_null(strstr(err.msg, "unsupported URL scheme \"ftp\""));
    assert_int_equal(ts_count(f->mapped), 1);
    osc_presence_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_change_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_item_errors_and_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_across_cycles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_fallback_per_building, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_transport_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_gone_and_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unacknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_warned_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probes, setup, teardown),
    };
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
