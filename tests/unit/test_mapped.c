/*
 * test_mapped.c - the Mapped reader: value extraction from every
 * TimeseriesRowValue member, the query text, discovery of a canned
 * building (valid, invalid, conflicting, missing and shared identities,
 * points shared by places), a values-only read, GraphQL errors and
 * malformed JSON, parts of the wrong shape skipped with one warning each
 * (tests/fixtures/presence/malformed.json), and the HTTP exchange against a
 * scripted server.
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

#include "osc/log.h"
#include "osc/mapped.h"
#include "testserver.h"

#define TOKEN "PATmapped12345" /* listed in tests/fixtures/test-secrets.txt */

static char *slurp(const char *rel, size_t *len)
{
    char path[512];
    const char *dir = getenv("OSC_FIXTURES");
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/presence/%s", dir ? dir : "tests/fixtures", rel);
    f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int value(const char *json, double *out)
{
    return osc_mapped_value_parse(json, strlen(json), out);
}

static void test_values(void **state)
{
    double v = -1;

    (void)state;
    assert_int_equal(value("{\"float64Value\":1.5}", &v), 0);
    assert_true(v == 1.5);
    assert_int_equal(value("{\"float32Value\":2}", &v), 0);
    assert_true(v == 2);
    assert_int_equal(value("{\"int64Value\":7}", &v), 0);
    assert_true(v == 7);
    assert_int_equal(value("{\"int64Value\":\"12\"}", &v), 0);
    assert_true(v == 12);
    assert_int_equal(value("{\"uint64Value\":\"18446744073709551615\"}", &v), 0);
    assert_true(v > 1.8e19);
    assert_int_equal(value("{\"int32Value\":-3}", &v), 0);
    assert_true(v == -3);
    assert_int_equal(value("{\"uint32Value\":4}", &v), 0);
    assert_true(v == 4);
    assert_int_equal(value("{\"boolValue\":true}", &v), 0);
    assert_true(v == 1);
    assert_int_equal(value("{\"boolValue\":false}", &v), 0);
    assert_true(v == 0);
    assert_int_equal(value("{\"stringValue\":\"3.25\"}", &v), 0);
    assert_true(v == 3.25);
    /* the preferred member wins whatever the order */
    assert_int_equal(value("{\"stringValue\":\"9\",\"boolValue\":false,\"float64Value\":5}", &v),
                     0);
    assert_true(v == 5);
    /* all null / empty / null object: no value */
    assert_int_equal(value("{\"float64Value\":null,\"int64Value\":null,\"stringValue\":null}", &v),
                     OSC_ENOTFOUND);
    assert_int_equal(value("{}", &v), OSC_ENOTFOUND);
    assert_int_equal(value("null", &v), OSC_ENOTFOUND);
    assert_int_equal(value("{\"geopointValue\":{\"type\":\"Point\"}}", &v), OSC_ENOTFOUND);
    /* rejected */
    assert_int_equal(value("{\"stringValue\":\"NaN\"}", &v), OSC_EDATA);
    assert_int_equal(value("{\"stringValue\":\"inf\"}", &v), OSC_EDATA);
    assert_int_equal(value("{\"stringValue\":\"occupied\"}", &v), OSC_EDATA);
    assert_int_equal(value("{\"float64Value\":1e999}", &v), OSC_EDATA);
    assert_int_equal(value("{\"int64Value\":\"1.5\"}", &v), OSC_EDATA);
    assert_int_equal(value("{\"float64Value\":\"x\"}", &v), OSC_EDATA);
    assert_int_equal(value("{\"float64Value\":1", &v), OSC_EDATA);
    assert_int_equal(value("{\"float64Value\":01}", &v), OSC_EDATA);
    assert_true(v == 5); /* unchanged by the failures */
}

static void test_query(void **state)
{
    struct osc_buf b;

    (void)state;
    osc_buf_init(&b, 1 << 20);
    assert_int_equal(osc_mapped_query((const char *[]){"BLDG5o26DguWKu5T9nRvSYn5Em"}, 1, 1, &b), 0);
    assert_non_null(strstr(osc_buf_str(&b),
                           "buildings(filter: {id: {in: [\\\"BLDG5o26DguWKu5T9nRvSYn5Em\\\"]}})"));
    assert_non_null(
        strstr(osc_buf_str(&b), "identities { __typename ... on ExternalIdentity { value } }"));
    assert_non_null(strstr(osc_buf_str(&b),
                           "exactType: {in: [\\\"Occupancy_Status\\\", "
                           "\\\"Temporary_Occupancy_Status\\\", \\\"Occupancy_Count_Sensor\\\", "
                           "\\\"Occupancy_Sensor\\\", \\\"PIR_Sensor\\\"]}"));
    assert_non_null(strstr(osc_buf_str(&b),
                           "series(latest: true) { timestamp value { float64Value "
                           "float32Value int64Value int32Value uint64Value uint32Value "
                           "boolValue stringValue } }"));
    assert_non_null(strstr(osc_buf_str(&b), "spaces {"));
    assert_non_null(strstr(osc_buf_str(&b), "zones {"));
    assert_int_equal(strncmp(osc_buf_str(&b), "{\"query\":\"query { buildings", 27), 0);
    assert_int_equal(osc_mapped_query((const char *[]){"BLDG1"}, 1, 0, &b), 0);
    assert_null(strstr(osc_buf_str(&b), "identities"));
    assert_null(strstr(osc_buf_str(&b), "name"));
    assert_non_null(strstr(osc_buf_str(&b), "series(latest: true)"));
    /* a read asks for every building in one request */
    assert_int_equal(osc_mapped_query((const char *[]){"B1", "B2", "B3"}, 3, 0, &b), 0);
    assert_non_null(strstr(osc_buf_str(&b), "buildings(filter: {id: {in: [\\\"B1\\\", "
                                            "\\\"B2\\\", \\\"B3\\\"]}})"));
    assert_int_equal(osc_mapped_query((const char *[]){"B1", "B\\"}, 2, 0, &b), OSC_EINVAL);
    assert_int_equal(osc_mapped_query(NULL, 0, 0, &b), OSC_EINVAL);
    /* no injection through the building id */
    assert_int_equal(osc_mapped_query((const char *[]){"B\"]}) { x"}, 1, 1, &b), OSC_EINVAL);
    assert_int_equal(osc_mapped_query((const char *[]){"B\\"}, 1, 1, &b), OSC_EINVAL);
    assert_int_equal(osc_mapped_query((const char *[]){""}, 1, 1, &b), OSC_EINVAL);
    osc_buf_free(&b);
}

static const struct osc_mapped_loc *loc(const struct osc_mapped_topo *t, enum osc_urn_type ty,
                                        int64_t id, size_t *index)
{
    for (size_t i = 0; i < t->nlocs; i++)
        if (t->locs[i].urn.type == ty && t->locs[i].urn.id == id) {
            *index = i;
            return &t->locs[i];
        }
    return NULL;
}

static size_t links_of(const struct osc_mapped_topo *t, size_t l, char *ids, size_t cap)
{
    size_t n = 0;
    ids[0] = '\0';
    for (size_t i = 0; i < t->nlinks; i++)
        if (t->links[i].loc == l) {
            n++;
            strncat(ids, t->points[t->links[i].point].id, cap - strlen(ids) - 2);
            strncat(ids, " ", cap - strlen(ids) - 1);
        }
    return n;
}

static const struct osc_mapped_point *point(const struct osc_mapped_topo *t, const char *id)
{
    long i = osc_mapped_topo_point(t, id, strlen(id));
    return i < 0 ? NULL : &t->points[i];
}

static void test_discovery(void **state)
{
    struct osc_mapped_topo *t = osc_mapped_topo_new();
    const struct osc_mapped_loc *l;
    const struct osc_mapped_point *p;
    struct osc_err err = {0};
    size_t len, li = 0;
    char ids[256];
    char *json = slurp("discovery.json", &len);

    (void)state;
    assert_int_equal(osc_mapped_parse(t, json, len, 1, &err), 0);
    osc_mapped_topo_finish(t);
    assert_int_equal(t->nlocs, 5);
    assert_int_equal(t->npoints, 10); /* PNTX (exactType Point) skipped */
    assert_int_equal(t->places, 9);
    assert_int_equal(t->invalid_identities, 2); /* SPC2's bad id, SPC3's conflict */
    assert_int_equal(t->conflicting_places, 1);
    assert_int_equal(t->shared_urns, 1);
    assert_int_equal(t->npoints_used, 8); /* PNT3 (no identity), PNT9 (bad identity) unused */
    assert_int_equal(t->values_read, 6);  /* PNT3's value is not counted */
    assert_int_equal(t->bad_values, 1);   /* PNT8: "NaN" */
    assert_int_equal(t->malformed, 0);    /* nulls and {} identities are normal shapes */
    assert_false(point(t, "PNT3")->linked);
    assert_false(point(t, "PNT9")->linked);
    assert_true(point(t, "PNT8")->linked);

    assert_non_null(l = loc(t, OSC_URN_SITE, 1, &li));
    assert_string_equal(l->place_id, "BLDG1");
    assert_string_equal(l->place_kind, "Building");
    assert_int_equal(links_of(t, li, ids, sizeof(ids)), 0);
    assert_non_null(l = loc(t, OSC_URN_FLOOR, 10, &li));
    assert_int_equal(links_of(t, li, ids, sizeof(ids)), 1);
    assert_non_null(l = loc(t, OSC_URN_ROOM, 100, &li));
    assert_string_equal(l->place_id, "SPC1");
    assert_string_equal(l->place_name, "Room \"A\"");
    assert_int_equal(l->nplaces, 2);
    assert_int_equal(links_of(t, li, ids, sizeof(ids)), 4);
    assert_non_null(strstr(ids, "PNT7"));
    assert_non_null(l = loc(t, OSC_URN_DESK, 5, &li));
    assert_int_equal(links_of(t, li, ids, sizeof(ids)), 2);
    assert_non_null(l = loc(t, OSC_URN_NEIGHBORHOOD, 7, &li));
    assert_string_equal(l->place_kind, "Zone");
    assert_int_equal(links_of(t, li, ids, sizeof(ids)), 3);
    assert_non_null(strstr(ids, "PNT1"));
    assert_null(loc(t, OSC_URN_ROOM, 301, &li));
    assert_null(loc(t, OSC_URN_DESK, 302, &li));

    assert_non_null(p = point(t, "PNT2"));
    assert_int_equal(p->kind, OSC_POINT_OCCUPANCY_COUNT_SENSOR);
    assert_true(p->has_value && p->value == 4);
    assert_true(p->at_ms == 1767781860500LL);
    assert_non_null(p = point(t, "PNTF"));
    assert_true(p->has_value && p->value == 12);
    assert_non_null(p = point(t, "PNT1")); /* its later "series": null does not erase it */
    assert_true(p->has_value && p->value == 1);
    assert_non_null(p = point(t, "PNT4"));
    assert_true(p->has_value && p->value == 1 && p->kind == OSC_POINT_PIR_SENSOR);
    assert_non_null(p = point(t, "PNT7"));
    assert_true(p->has_value && p->kind == OSC_POINT_TEMPORARY_OCCUPANCY_STATUS);
    assert_non_null(p = point(t, "PNT5"));
    assert_true(p->has_value && p->value == 0);
    assert_non_null(p = point(t, "PNT6"));
    assert_false(p->has_value);
    assert_non_null(p = point(t, "PNT8"));
    assert_false(p->has_value);
    assert_null(point(t, "PNTX"));
    free(json);

    /* a values-only read of the same topology */
    json = slurp("read.json", &len);
    osc_mapped_topo_clear_values(t);
    assert_int_equal(osc_mapped_parse(t, json, len, 0, &err), 0);
    assert_int_equal(t->npoints, 10); /* PNTNEW is not adopted outside a discovery */
    assert_int_equal(t->values_read, 3);
    assert_true(point(t, "PNT1")->has_value && point(t, "PNT1")->value == 0);
    assert_true(point(t, "PNT6")->has_value && point(t, "PNT6")->value == 2.5);
    assert_false(point(t, "PNT2")->has_value);
    assert_null(point(t, "PNTNEW"));
    free(json);
    osc_mapped_topo_free(t);
}

/* What the log stream got since the last call (static buffer). */
static const char *logged(FILE *f)
{
    static char buf[16384];
    size_t n;
    osc_log_flush();
    fflush(f);
    rewind(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    rewind(f);
    assert_int_equal(ftruncate(fileno(f), 0), 0);
    return buf;
}

static size_t count_of(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/*
 * Valid JSON of the wrong shape is skipped part by part, each problem warned once per place
 * (naming the place and what is wrong), and the rest of the answer is used.
 */
static void test_malformed_parts(void **state)
{
    static const char *const want[] = {
        "Mapped answer: Floor FLRodd: identities is an object, not a list; ignored",
        "Mapped answer: Floor FLRodd: points is an object, not a list; skipped",
        "Mapped answer: Space #1 \"Numeric id\" in Floor FLRodd: id is a number, not a string; "
        "the place is skipped",
        "Mapped answer: Space #2 \"Null id\" in Floor FLRodd: id is null, not a string; the place "
        "is skipped",
        "Mapped answer: Space SPCgood: identities[1] is a string, not an object; ignored",
        "Mapped answer: Space SPCgood: identities[2].value is a number, not a string; ignored",
        "Mapped answer: Space SPCgood: point PNTseriesObj: series is an object, not a list; its "
        "value is ignored",
        "Mapped answer: Space SPCgood: points[1]: id is a number, not a string; the point is "
        "skipped",
        "Mapped answer: Space SPCgood: point PNTtype: exactType is a number, not a string; the "
        "point is skipped",
        "Mapped answer: Space SPCgood: point PNTrowval: series[0].value is a number, not an "
        "object; ignored",
        "Mapped answer: Space SPCgood: point PNTrow: series[0] is a string, not an object; "
        "ignored",
        "Mapped answer: Space SPCgood: points[5] is a string, not an object; skipped",
        "Mapped answer: Floor FLRodd: spaces[3] is a string, not an object; skipped",
        "Mapped answer: Space SPCname: name is a number, not a string; ignored",
        "Mapped answer: Floor FLRodd: zones is a string, not a list; skipped",
    };
    struct osc_mapped_topo *t = osc_mapped_topo_new(), *t2 = osc_mapped_topo_new();
    struct osc_err err = {0};
    FILE *logf = tmpfile();
    const char *out;
    size_t len, li = 0;
    char *json = slurp("malformed.json", &len);

    (void)state;
    assert_non_null(logf);
    osc_log_set_stream(logf);
    osc_log_set_level(OSC_LOG_LEVEL_WARN);
    assert_int_equal(osc_mapped_parse(t, json, len, 1, &err), 0);
    osc_mapped_topo_finish(t);
    out = logged(logf);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (count_of(out, want[i]) != 1)
            fail_msg("expected once: %s\nlog:\n%s", want[i], out);
    assert_int_equal(count_of(out, "Mapped answer: "), 15);
    assert_int_equal(t->malformed, 15);
    /* the rest of the answer is used */
    assert_int_equal(t->nlocs, 2);
    assert_non_null(loc(t, OSC_URN_ROOM, 3, &li));
    assert_non_null(loc(t, OSC_URN_ROOM, 4, &li));
    assert_null(loc(t, OSC_URN_ROOM, 1, &li));
    assert_null(loc(t, OSC_URN_ROOM, 2, &li));
    assert_true(point(t, "PNTok")->has_value && point(t, "PNTok")->value == 4);
    assert_false(point(t, "PNTseriesObj")->has_value);
    assert_false(point(t, "PNTrowval")->has_value);
    assert_null(point(t, "PNTtype"));

    /* the same answer read every cycle: counted each time, never logged again */
    for (int cycle = 0; cycle < 3; cycle++) {
        osc_mapped_topo_clear_values(t);
        assert_int_equal(osc_mapped_parse(t, json, len, 0, &err), 0);
        assert_int_equal(t->malformed, 12); /* place ids and exactType matter to a discovery */
        assert_true(point(t, "PNTok")->has_value);
    }
    assert_string_equal(logged(logf), "");
    /* nor at the next discovery, which takes the notes over from the topology it replaces */
    osc_mapped_topo_keep_notes(t2, t);
    assert_null(t->notes);
    assert_int_equal(osc_mapped_parse(t2, json, len, 1, &err), 0);
    assert_int_equal(t2->malformed, 15);
    assert_string_equal(logged(logf), "");
    /* a topology without them warns again */
    osc_mapped_topo_free(t);
    t = osc_mapped_topo_new();
    assert_int_equal(osc_mapped_parse(t, json, len, 1, &err), 0);
    assert_int_equal(count_of(logged(logf), "Mapped answer: "), 15);

    osc_log_set_stream(NULL);
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    fclose(logf);
    osc_mapped_topo_free(t);
    osc_mapped_topo_free(t2);
    free(json);
}

static void test_errors(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"data\":{\"buildings\":[{\"id\":\"B\",\"floors\":[{]}]}}",
        "{\"data\":{\"buildings\":[{\"id\":\"B\"}]}} trailing",
        "{\"errors\":[{\"message\":\"Cannot query field \\\"foo\\\" on type "
        "\\\"Building\\\".\"}],\"data\":null}",
        "{\"data\":null}",
        "{\"other\":1}",
    };
    struct osc_err err = {0};
    char deep[400];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct osc_mapped_topo *t = osc_mapped_topo_new();
        assert_int_equal(osc_mapped_parse(t, bad[i], strlen(bad[i]), 1, &err), OSC_EPROTO);
        if (i == 4)
            assert_non_null(strstr(err.msg, "Cannot query field \"foo\""));
        osc_mapped_topo_free(t);
    }
    /* nesting deeper than the cursor allows fails cleanly */
    memset(deep, '[', sizeof(deep));
    memcpy(deep, "{\"data\":{\"x\":", 13);
    {
        struct osc_mapped_topo *t = osc_mapped_topo_new();
        assert_int_equal(osc_mapped_parse(t, deep, sizeof(deep), 1, &err), OSC_EPROTO);
        osc_mapped_topo_free(t);
    }
    /* empty building list is fine */
    {
        struct osc_mapped_topo *t = osc_mapped_topo_new();
        const char *ok = "{\"data\":{\"buildings\":[]}}";
        assert_int_equal(osc_mapped_parse(t, ok, strlen(ok), 1, &err), 0);
        assert_int_equal(t->nlocs, 0);
        osc_mapped_topo_free(t);
    }
}

static void test_fetch(void **state)
{
    struct ts_server *s = ts_start();
    struct osc_http *h = osc_http_new(NULL, NULL);
    struct osc_conf_mapped m = {0};
    struct osc_mapped_topo *t = osc_mapped_topo_new();
    struct ts_request rq;
    struct osc_err err = {0};
    char url[160], hv[256];
    int64_t ra;
    size_t len;
    char *json = slurp("discovery.json", &len);
    struct ts_response ok = {200, "Content-Type: application/json\n", json, 0, 0};
    struct ts_response unauth = {401, NULL, "{\"errors\":[{\"message\":\"unauthorized\"}]}", 0, 0};
    struct ts_response busy = {503, "Retry-After: 7\n", "busy", 0, 0};

    (void)state;
    assert_non_null(s);
    snprintf(url, sizeof(url), "%s/graphql", ts_url(s));
    m.url = url;
    m.token = TOKEN;
    m.timeout_ms = 5000;
    ts_push(s, &ok);
    ts_push(s, &unauth);
    ts_push(s, &busy);
    ts_push(s, &ok);

    assert_int_equal(
        osc_mapped_fetch(h, &m, 1 << 20, (const char *[]){"BLDG1"}, 1, 1, t, &ra, &err), 0);
    assert_int_equal(t->nlocs, 5);
    assert_int_equal(ts_get(s, 0, &rq), 0);
    assert_string_equal(rq.method, "POST");
    assert_string_equal(rq.url, "/graphql");
    assert_int_equal(ts_header(&rq, "authorization", hv, sizeof(hv)), 0);
    assert_string_equal(hv, "token " TOKEN);
    assert_int_equal(ts_header(&rq, "content-type", hv, sizeof(hv)), 0);
    assert_string_equal(hv, "application/json");
    assert_non_null(strstr(rq.body, "buildings(filter: {id: {in: [\\\"BLDG1\\\"]}})"));
    ts_request_free(&rq);

    assert_int_equal(
        osc_mapped_fetch(h, &m, 1 << 20, (const char *[]){"BLDG1"}, 1, 0, t, &ra, &err), OSC_EAUTH);
    assert_int_equal(err.status, 401);
    assert_null(strstr(err.msg, TOKEN));
    assert_int_equal(
        osc_mapped_fetch(h, &m, 1 << 20, (const char *[]){"BLDG1"}, 1, 0, t, &ra, &err),
        OSC_EUNAVAIL);
    assert_true(ra == 7000);
    /* larger than the cap */
    assert_int_equal(osc_mapped_fetch(h, &m, 1024, (const char *[]){"BLDG1"}, 1, 0, t, &ra, &err),
                     OSC_ETOOBIG);
    assert_non_null(strstr(err.msg, "presence.max_response"));
    assert_int_equal(ts_count(s), 4);

    osc_mapped_topo_free(t);
    osc_http_free(h);
    ts_stop(s);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),    cmocka_unit_test(test_query),
        cmocka_unit_test(test_discovery), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fetch),     cmocka_unit_test(test_malformed_parts),
    };
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
