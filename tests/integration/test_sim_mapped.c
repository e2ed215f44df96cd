/*
 * test_sim_mapped.c - the simulated Mapped GraphQL API over HTTP: auth,
 * the documented query shapes, aliases, variables, fragments on union
 * members, __typename, filters, series values, errors with positions,
 * value evolution, and scenario files (JSON and YAML).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_sim_util.h"

static struct th_sim sim;
static char gq[256];

static int setup(void **state)
{
    const char *extra[] = {"--scenario", th_fixture("sim/small.json"), NULL};
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (th_sim_start(&sim, extra))
        return -1;
    snprintf(gq, sizeof(gq), "%s", sim.mapped_url);
    return 0;
}

/* The simulator's exit status: a leak or a sanitizer report in it fails the run. */
static int sim_exit;

static int teardown(void **state)
{
    (void)state;
    sim_exit = th_sim_stop(&sim);
    curl_global_cleanup();
    return sim_exit == 0 ? 0 : -1;
}

static json_t *q(const char *query) { return gql(gq, MAPPED_AUTH, query, NULL, NULL); }

static void test_auth_401(void **state)
{
    const char *bad[] = {NULL, "Authorization: token wrong",
                         "Authorization: Bearer " TH_SIM_MAPPED_TOKEN,
                         "Authorization: " TH_SIM_MAPPED_TOKEN};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long status = 0;
        json_t *j = gql(gq, bad[i], "{ sites { id } }", NULL, &status);
        assert_int_equal(status, 401);
        assert_non_null(j);
        assert_non_null(jstr_at(j, "errors.0.message"));
        assert_null(json_object_get(j, "data"));
        json_decref(j);
    }
}

/* The queries quoted in mapped.md §3, answered in the documented shapes. */
static void test_documented_queries(void **state)
{
    json_t *j;
    (void)state;

    j = q("{ sites { name id } }");
    assert_string_equal(jstr_at(j, "data.sites.0.id"), "SITEsmall");
    assert_string_equal(jstr_at(j, "data.sites.0.name"), "Small Site");
    assert_int_equal(json_array_size(jpath(j, "data.sites")), 1);
    json_decref(j);

    j = q("query {sites{description,exactType,id,name}}");
    assert_true(json_is_null(jpath(j, "data.sites.0.description")));
    assert_string_equal(jstr_at(j, "data.sites.0.exactType"), "Site");
    json_decref(j);

    j = q("{ buildings { id name floors { id name things { id name } } } }");
    assert_int_equal(json_array_size(jpath(j, "data.buildings")), 2);
    assert_string_equal(jstr_at(j, "data.buildings.0.floors.0.things.0.id"), "THGcounter");
    json_decref(j);

    j = q(
        "{ buildings(filter: {id: {eq: \"BLDGone\"}}) { name id points { id name exactType } } }");
    assert_int_equal(json_array_size(jpath(j, "data.buildings")), 1);
    assert_int_equal(json_array_size(jpath(j, "data.buildings.0.points")), 0);
    json_decref(j);

    /* points of a floor: its own and those of things located there */
    j = q(
        "{ floors(filter: { id: { eq: \"FLRone1\"} }) { id level points { id exactType type } } }");
    assert_int_equal(jint_at(j, "data.floors.0.level"), 1);
    assert_int_equal(json_array_size(jpath(j, "data.floors.0.points")), 2);
    assert_string_equal(jstr_at(j, "data.floors.0.points.1.id"), "PNTthing");
    assert_string_equal(jstr_at(j, "data.floors.0.points.0.type.0"), "Class");
    json_decref(j);

    j = q("{ things(filter: { id: { eq: \"THGcounter\" } }) { points(filter: { exactType: { ne: "
          "\"Point\"} }) { id,mappingKey,name,unit{description,id,name} } } }");
    assert_string_equal(jstr_at(j, "data.things.0.points.0.unit.id"), "UNITLESS");
    json_decref(j);
}

static void test_aliases_typename_fragments(void **state)
{
    json_t *j;
    (void)state;

    j = q("query Named { a: spaces(filter: {id: {eq: \"SPCroomA\"}}) { __typename key: id "
          "identities { __typename ...Ext ... on SpaceCode { code: value } } } "
          "b: zones { name } }\n"
          "fragment Ext on ExternalIdentity { value }");
    assert_null(json_object_get(j, "errors"));
    assert_string_equal(jstr_at(j, "data.a.0.__typename"), "Space");
    assert_string_equal(jstr_at(j, "data.a.0.key"), "SPCroomA");
    assert_string_equal(jstr_at(j, "data.a.0.identities.0.__typename"), "ExternalIdentity");
    assert_string_equal(jstr_at(j, "data.a.0.identities.0.value"), "urn:officespace:room:id:711");
    assert_string_equal(jstr_at(j, "data.a.0.identities.1.code"), "A");
    assert_null(jpath(j, "data.a.0.identities.1.value"));
    assert_string_equal(jstr_at(j, "data.b.0.name"), "North");
    json_decref(j);
}

/* Union members not selected by a fragment come back as {} (mapped.md §2.5). */
static void test_identities_empty_objects(void **state)
{
    json_t *j;
    (void)state;

    j = q("{ buildings(filter: {id: {eq: \"BLDGone\"}}) { identities { ... on ExternalIdentity { "
          "dateCreated, dateUpdated, value } } } }");
    assert_int_equal(json_array_size(jpath(j, "data.buildings.0.identities")), 2);
    assert_string_equal(jstr_at(j, "data.buildings.0.identities.0.value"),
                        "urn:officespace:site:id:7");
    assert_true(json_is_object(jpath(j, "data.buildings.0.identities.1")));
    assert_int_equal(json_object_size(jpath(j, "data.buildings.0.identities.1")), 0);
    json_decref(j);
}

static void test_variables(void **state)
{
    json_t *vars = json_pack("{s:[s,s]}", "ids", "BLDGtwo", "BLDGnone"), *j;
    (void)state;

    j = gql(gq, MAPPED_AUTH,
            "query B($ids: [String!], $skipName: Boolean = false) { buildings(filter: {id: {in: "
            "$ids}}) { id name @skip(if: $skipName) } }",
            vars, NULL);
    assert_int_equal(json_array_size(jpath(j, "data.buildings")), 1);
    assert_string_equal(jstr_at(j, "data.buildings.0.id"), "BLDGtwo");
    assert_string_equal(jstr_at(j, "data.buildings.0.name"), "Two Building");
    json_decref(j);
    json_decref(vars);

    /* a whole filter object as a variable */
    vars = json_pack("{s:{s:{s:s}}}", "f", "name", "contains", "Room");
    j = gql(gq, MAPPED_AUTH, "query($f: SpaceFilter) { spaces(filter: $f) { id } }", vars, NULL);
    assert_null(json_object_get(j, "errors"));
    assert_int_equal(json_array_size(jpath(j, "data.spaces")), 2);
    json_decref(j);
    json_decref(vars);

    /* a required variable that was not given */
    j = gql(gq, MAPPED_AUTH, "query($id: String!) { spaces(filter: {id: {eq: $id}}) { id } }", NULL,
            NULL);
    assert_non_null(strstr(jstr_at(j, "errors.0.message"), "was not provided"));
    assert_null(json_object_get(j, "data"));
    json_decref(j);
}

static size_t count(const char *query)
{
    json_t *j = q(query);
    json_t *data = json_object_get(j, "data");
    const char *k;
    json_t *v;
    size_t n = (size_t)-1;

    json_object_foreach(data, k, v) n = json_array_size(v);
    if (json_object_get(j, "errors"))
        n = (size_t)-2;
    json_decref(j);
    return n;
}

static void test_filters(void **state)
{
    (void)state;
    assert_int_equal(count("{ spaces { id } }"), 3);
    assert_int_equal(count("{ spaces(filter: {id: {eq: \"SPCroomB\"}}) { id } }"), 1);
    assert_int_equal(count("{ spaces(filter: {name: {ne: \"Room B\"}}) { id } }"), 2);
    assert_int_equal(
        count("{ spaces(filter: {id: {in: [\"SPCroomA\", \"SPCdesk1\", \"x\"]}}) { id } }"), 2);
    assert_int_equal(count("{ spaces(filter: {name: {contains: \"Desk\"}}) { id } }"), 1);
    assert_int_equal(count("{ spaces(filter: {not: {name: {contains: \"Desk\"}}}) { id } }"), 2);
    assert_int_equal(count("{ spaces(filter: {or: [{id: {eq: \"SPCroomA\"}}, {id: {eq: "
                           "\"SPCroomB\"}}]}) { id } }"),
                     2);
    assert_int_equal(count("{ spaces(filter: {and: [{name: {contains: \"Room\"}}, {name: {ne: "
                           "\"Room A\"}}]}) { id } }"),
                     1);
    assert_int_equal(count("{ spaces(filter: {type: {eq: \"Workspace\"}}) { id } }"), 1);
    assert_int_equal(
        count(
            "{ points(filter: {exactType: {in: [\"Occupancy_Status\", \"PIR_Sensor\"]}}) { id } }"),
        3);
    assert_int_equal(count("{ points(filter: {exactType: {ne: \"Point\"}}) { id } }"), 7);
    /* a filter on an unknown field is a validation error */
    assert_int_equal(count("{ spaces(filter: {colour: {eq: \"red\"}}) { id } }"), (size_t)-2);
}

static void test_series_values(void **state)
{
    json_t *j;
    const char *sel = "series(latest: true) { timestamp value { float64Value float32Value "
                      "int64Value int32Value uint32Value boolValue stringValue } }";
    char query[512];
    (void)state;

    snprintf(query, sizeof(query), "{ points(filter: {id: {eq: \"PNTstatusA\"}}) { %s } }", sel);
    j = q(query);
    assert_int_equal(json_array_size(jpath(j, "data.points.0.series")), 1);
    assert_true(json_is_number(jpath(j, "data.points.0.series.0.value.float64Value")));
    assert_true(json_number_value(jpath(j, "data.points.0.series.0.value.float64Value")) == 1.0);
    assert_true(json_is_null(jpath(j, "data.points.0.series.0.value.int64Value")));
    assert_true(json_is_null(jpath(j, "data.points.0.series.0.value.stringValue")));
    assert_string_equal(jstr_at(j, "data.points.0.series.0.timestamp"), "2024-03-01T10:00:00Z");
    json_decref(j);

    snprintf(query, sizeof(query), "{ points(filter: {id: {eq: \"PNTcountA\"}}) { %s } }", sel);
    j = q(query);
    assert_int_equal(jint_at(j, "data.points.0.series.0.value.int64Value"), 3);
    assert_true(json_is_null(jpath(j, "data.points.0.series.0.value.float64Value")));
    json_decref(j);

    snprintf(query, sizeof(query), "{ points(filter: {id: {eq: \"PNTzone\"}}) { %s } }", sel);
    j = q(query);
    assert_int_equal(jint_at(j, "data.points.0.series.0.value.uint32Value"), 2);
    json_decref(j);

    /* a point that never reported: an empty series */
    snprintf(query, sizeof(query), "{ points(filter: {id: {eq: \"PNTpir1\"}}) { %s } }", sel);
    j = q(query);
    assert_true(json_is_array(jpath(j, "data.points.0.series")));
    assert_int_equal(json_array_size(jpath(j, "data.points.0.series")), 0);
    json_decref(j);
}

static void test_errors_with_positions(void **state)
{
    json_t *j;
    long status = 0;
    (void)state;

    j = q("{ buildings {\n  id\n  colour\n} }");
    assert_string_equal(jstr_at(j, "errors.0.message"),
                        "Cannot query field \"colour\" on type \"Building\".");
    assert_int_equal(jint_at(j, "errors.0.locations.0.line"), 3);
    assert_int_equal(jint_at(j, "errors.0.locations.0.column"), 3);
    assert_null(json_object_get(j, "data"));
    json_decref(j);

    j = q("{ buildings { id }");
    assert_non_null(strstr(jstr_at(j, "errors.0.message"), "Syntax Error"));
    assert_int_equal(jint_at(j, "errors.0.locations.0.line"), 1);
    assert_int_equal(jint_at(j, "errors.0.locations.0.column"), 19);
    json_decref(j);

    j = q("{ buildings { identities { value } } }");
    assert_non_null(strstr(jstr_at(j, "errors.0.message"), "inline fragment"));
    json_decref(j);

    j = q("mutation { buildings { id } }");
    assert_non_null(strstr(jstr_at(j, "errors.0.message"), "mutation"));
    json_decref(j);

    /* not JSON at all: 400 with a GraphQL errors body */
    {
        const char *hdrs[] = {MAPPED_AUTH, NULL};
        struct resp r;
        http("POST", gq, hdrs, "query { sites { id } }", 0, &r);
        status = r.status;
        j = resp_json(&r);
        resp_free(&r);
    }
    assert_int_equal(status, 400);
    assert_non_null(jstr_at(j, "errors.0.message"));
    json_decref(j);
}

static double status_b(void)
{
    json_t *j = q("{ points(filter: {id: {eq: \"PNTstatusB\"}}) { series(latest: true) { value { "
                  "int32Value } } } }");
    double v = json_number_value(jpath(j, "data.points.0.series.0.value.int32Value"));
    json_decref(j);
    return v;
}

/* Scripted steps: 0 at start, 1 after a second; and POST /_sim/points overrides. */
static void test_value_evolution(void **state)
{
    char url[256];
    long deadline = tsu_now_ms() + 5000;
    double v;
    struct resp r;
    json_t *j;
    (void)state;

    while ((v = status_b()) != 1.0 && tsu_now_ms() < deadline) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(v == 1.0);

    http("POST", url_of(url, sizeof(url), sim.officespace_url, "/_sim/points"), NULL,
         "{\"id\":\"PNTcountA\",\"value\":9,\"timestamp\":\"2025-05-05T05:05:05Z\"}", 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    j = q("{ points(filter: {id: {eq: \"PNTcountA\"}}) { series(latest: true) { timestamp value { "
          "int64Value } } } }");
    assert_int_equal(jint_at(j, "data.points.0.series.0.value.int64Value"), 9);
    assert_string_equal(jstr_at(j, "data.points.0.series.0.timestamp"), "2025-05-05T05:05:05Z");
    json_decref(j);

    http("POST", url_of(url, sizeof(url), sim.officespace_url, "/_sim/points"), NULL,
         "{\"id\":\"PNTnope\",\"value\":1}", 0, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

/* The YAML twin of the JSON scenario answers the same; a broken file is refused. */
static void test_yaml_scenario(void **state)
{
    const char *extra[] = {"--scenario", th_fixture("sim/small.yaml"), NULL};
    struct th_sim y;
    json_t *a, *b;
    const char *query = "{ buildings { id name identities { ... on ExternalIdentity { value } } "
                        "floors { id level spaces { id name } zones { id } } } }";
    (void)state;

    assert_int_equal(th_sim_start(&y, extra), 0);
    a = q(query);
    b = gql(y.mapped_url, MAPPED_AUTH, query, NULL, NULL);
    assert_non_null(jpath(b, "data.buildings.0.floors.0.spaces.2"));
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    assert_int_equal(th_sim_stop(&y), 0);

    {
        char *bad = th_write_file("bad.yaml", "sites:\n  - id: S\n    buildings: [\n");
        const char *argv[] = {"sim", "--mapped-port", "0", "--officespace-port",
                              "0",   "--scenario",    bad, NULL};
        struct th_result res;
        th_run(argv, NULL, 10000, &res);
        assert_int_equal(res.status, 65);
        assert_non_null(strstr(res.err, "bad.yaml"));
        th_result_free(&res);
        free(bad);
        th_tmpdir_cleanup();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_401),
        cmocka_unit_test(test_documented_queries),
        cmocka_unit_test(test_aliases_typename_fragments),
        cmocka_unit_test(test_identities_empty_objects),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_series_values),
        cmocka_unit_test(test_errors_with_positions),
        cmocka_unit_test(test_value_evolution),
        cmocka_unit_test(test_yaml_scenario),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (sim_exit)
        fprintf(stderr, "the simulator exited with status %d\n", sim_exit);
    return failed || sim_exit;
}
