/*
 * test_gql.c - the simulator's insides without HTTP: the GraphQL parser
 * (syntax errors with positions, strings, numbers, bounds), validation and
 * execution corner cases over the Mapped schema, point values under a
 * stepped clock, the fault rule parser and evaluator, the token bucket, and
 * the employee directory's index under many inserts, updates and deletes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/sim/gql.h"
#include "../../src/sim/sim_int.h"
#include "osc/buf.h"
#include "osc/sim.h"

/* ---- parser ---------------------------------------------------------------- */

static void expect_syntax(const char *doc, const char *msg_part, unsigned line, unsigned col)
{
    struct gql_doc *d = NULL;
    struct gql_error e;

    assert_int_equal(gql_parse(doc, strlen(doc), &d, &e), -1);
    assert_null(d);
    if (!strstr(e.msg, msg_part))
        fail_msg("\"%s\": got \"%s\", wanted \"%s\"", doc, e.msg, msg_part);
    assert_int_equal(e.line, line);
    assert_int_equal(e.col, col);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_syntax("", "Unexpected <EOF>", 1, 1);
    expect_syntax("{ a", "Expected Name, found <EOF>", 1, 4);
    expect_syntax("{\n  a(x: \"open\n}", "Unterminated string", 2, 13);
    expect_syntax("{ a(x: \"\\q\") }", "Invalid character escape", 1, 9);
    expect_syntax("{ a(x: \"\\uD800\") }", "Invalid Unicode escape", 1, 9);
    expect_syntax("{ a(x: 01) }", "unexpected digit after 0", 1, 9);
    expect_syntax("{ a(x: 1.) }", "expected digit", 1, 10);
    expect_syntax("{ a(x: 1e) }", "expected digit", 1, 10);
    expect_syntax("{ a(x: 12abc) }", "expected digit", 1, 10);
    expect_syntax("{ a }\n\n  }", "Unexpected \"}\"", 3, 3);
    expect_syntax("{ a(: 1) }", "Expected Name", 1, 5);
    expect_syntax("{ a(x: $) }", "Expected Name", 1, 9);
    expect_syntax("query Q($v: Int = $w) { a }", "Unexpected \"$\"", 1, 19);
    expect_syntax("{ ... }", "Expected \"{\", found \"}\"", 1, 7);
    expect_syntax("fragment on on X { a }", "Unexpected Name \"on\"", 1, 10);
    expect_syntax("fragment F X { a }", "Expected \"on\"", 1, 12);
    expect_syntax("type Query { a: Int }", "not executable", 1, 1);
    expect_syntax("{ a } ..", "Unexpected \".\"", 1, 7);
    expect_syntax("{ a \x01 }", "Invalid character", 1, 5);
    expect_syntax("{ a(x: {}) b() }", "Expected Name, found \")\"", 1, 14);
    expect_syntax("{}", "Expected Name, found \"}\"", 1, 2);
    /* columns count characters, not bytes */
    expect_syntax("# \xc3\xa9\xc3\xa9\n{ \"\xc3\xa9\" }", "Expected Name, found String", 2, 3);
}

static void test_parse_valid(void **state)
{
    static const char doc[] =
        "\xEF\xBB\xBF# comment\r\n"
        "query Q($a: [String!]! = [\"x\"], $b: Int = -0, $c: Float = 1.5e-3) @skip(if: false) {\n"
        "  alias: f(s: \"tab\\t\\u00e9\\uD83D\\uDE00\", l: [1, 2.0, true, null, ENUM, {k: $a}])\n"
        "  ...Frag @include(if: true)\n"
        "  ... on T { g }\n"
        "  ... { h }\n"
        "  block: f(s: \"\"\"\n"
        "      first\n"
        "        indented \\\"\"\" quote\n"
        "\n"
        "    \"\"\")\n"
        "}\n"
        "fragment Frag on T { i }\n"
        "mutation M { m }\n"
        "subscription S { s }\n";
    struct gql_doc *d = NULL;
    struct gql_error e;
    const struct gql_sel *s;
    const struct gql_value *v;

    (void)state;
    assert_int_equal(gql_parse(doc, sizeof(doc) - 1, &d, &e), 0);
    assert_non_null(d);
    assert_string_equal(d->ops->name, "Q");
    assert_int_equal(d->ops->line, 2);
    assert_int_equal(d->ops->next->kind, GQL_OP_MUTATION);
    assert_int_equal(d->ops->next->next->kind, GQL_OP_SUBSCRIPTION);
    assert_string_equal(d->frags->name, "Frag");
    s = d->ops->sel;
    assert_string_equal(s->alias, "alias");
    assert_string_equal(s->name, "f");
    v = s->args->value;
    assert_string_equal(v->str, "tab\t\xc3\xa9\xf0\x9f\x98\x80");
    v = s->args->next->value->items;
    assert_int_equal(v->kind, GQL_V_INT);
    assert_int_equal(v->next->kind, GQL_V_FLOAT);
    assert_int_equal(v->next->next->kind, GQL_V_BOOL);
    assert_int_equal(v->next->next->next->kind, GQL_V_NULL);
    assert_int_equal(v->next->next->next->next->kind, GQL_V_ENUM);
    assert_int_equal(v->next->next->next->next->next->items->kind, GQL_V_VAR);
    s = s->next;
    assert_int_equal(s->kind, GQL_S_SPREAD);
    assert_string_equal(s->dirs->name, "include");
    s = s->next;
    assert_string_equal(s->type_cond, "T");
    s = s->next;
    assert_null(s->type_cond);
    s = s->next;
    assert_string_equal(s->args->value->str, "first\n  indented \"\"\" quote");
    gql_doc_free(d);
}

static void test_parse_bounds(void **state)
{
    size_t n = 3 * (GQL_MAX_DEPTH + 5) + 1;
    char *deep = malloc(n + 1), *list = malloc(n + 8);
    struct gql_doc *d = NULL;
    struct gql_error e;
    size_t k = 0;

    (void)state;
    for (int i = 0; i < GQL_MAX_DEPTH + 5; i++) {
        deep[k++] = '{';
        deep[k++] = 'a';
        deep[k++] = ' ';
    }
    deep[k] = '\0';
    assert_int_equal(gql_parse(deep, k, &d, &e), -1);
    assert_non_null(strstr(e.msg, "nested too deeply"));
    k = (size_t)sprintf(list, "{ a(x: ");
    for (int i = 0; i < GQL_MAX_DEPTH + 5; i++)
        list[k++] = '[';
    list[k] = '\0';
    assert_int_equal(gql_parse(list, k, &d, &e), -1);
    assert_non_null(strstr(e.msg, "nested too deeply"));
    assert_int_equal(gql_parse("{ a }", GQL_MAX_DOCUMENT + 1, &d, &e), -1);
    assert_non_null(strstr(e.msg, "too large"));
    free(deep);
    free(list);
}

/* ---- execution over the Mapped schema ------------------------------------------- */

static int64_t fake_mono, fake_wall = 1700000000000LL;
static int64_t mono_cb(void *ud)
{
    (void)ud;
    return fake_mono;
}
static int64_t wall_cb(void *ud)
{
    (void)ud;
    return fake_wall;
}
static const struct osc_clock fake_clock = {mono_cb, wall_cb, NULL};

static const char scenario[] =
    "{\"buildings\": [{\"id\": \"B1\", \"name\": \"B\", \"floors\": [{\"id\": \"F1\","
    " \"name\": \"F\", \"spaces\": [{\"id\": \"S1\", \"name\": \"S\", \"points\": ["
    "{\"id\": \"Psteps\", \"exactType\": \"Occupancy_Status\", \"valueType\": \"int64\","
    " \"steps\": [{\"at\": \"0s\", \"value\": 0}, {\"at\": \"10s\", \"value\": 1},"
    " {\"at\": \"20s\", \"value\": 2}], \"loop\": \"30s\"},"
    "{\"id\": \"Pcycle\", \"exactType\": \"PIR_Sensor\", \"valueType\": \"bool\","
    " \"cycle\": {\"values\": [true, false], \"every\": \"5s\"}},"
    "{\"id\": \"Prand\", \"exactType\": \"Occupancy_Count_Sensor\", \"random\": {\"min\": 0,"
    " \"max\": 100, \"every\": \"1s\"}},"
    "{\"id\": \"Pstr\", \"exactType\": \"Occupancy_Sensor\", \"valueType\": \"string\","
    " \"value\": \"on\", \"age\": \"90s\"}]}]}]}]}";

static struct sim_graph *load(uint64_t seed)
{
    json_t *j = json_loads(scenario, 0, NULL);
    struct sim_graph *g = NULL;
    struct osc_err err;

    memset(&err, 0, sizeof(err));
    fake_mono = 1000;
    assert_int_equal(sim_graph_load(j, seed, &fake_clock, &g, &err), 0);
    json_decref(j);
    return g;
}

static json_t *run(struct sim_graph *g, const char *body)
{
    struct sim_reply r;
    json_t *j;

    memset(&r, 0, sizeof(r));
    sim_mapped_graphql(g, body, strlen(body), fake_mono, &r);
    j = json_loads(r.body, 0, NULL);
    free(r.body);
    assert_non_null(j);
    return j;
}

static const char *first_error(json_t *j)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
}

static void expect_error(struct sim_graph *g, const char *body, const char *part)
{
    json_t *j = run(g, body);
    const char *m = first_error(j);
    if (!m || !strstr(m, part))
        fail_msg("%s: got \"%s\", wanted \"%s\"", body, m ? m : "(none)", part);
    json_decref(j);
}

static void test_validation(void **state)
{
    struct sim_graph *g = load(1);
    (void)state;

    expect_error(g,
                 "{\"query\": \"{ spaces { ...A } } fragment A on Space { ...B } fragment B on "
                 "Space { ...A }\"}",
                 "within itself");
    expect_error(g, "{\"query\": \"{ spaces { id } } fragment A on Space { id }\"}", "never used");
    expect_error(g, "{\"query\": \"{ spaces { ...Nope } }\"}", "Unknown fragment");
    expect_error(g, "{\"query\": \"{ spaces { ... on Floor { id } } }\"}", "can never be of type");
    expect_error(g, "{\"query\": \"query A { sites { id } } query A { sites { id } }\"}",
                 "only one operation named");
    expect_error(g, "{\"query\": \"query A { sites { id } } query B { sites { id } }\"}",
                 "Must provide operation name");
    expect_error(g, "{\"query\": \"query A { sites { id } }\", \"operationName\": \"Z\"}",
                 "Unknown operation");
    expect_error(g,
                 "{\"query\": \"query($n: Int) { spaces(childDepth: $n) { id } }\", \"variables\": "
                 "{\"n\": \"x\"}}",
                 "got invalid value");
    expect_error(g, "{\"query\": \"query($n: Int) { sites { id } }\"}", "never used");
    expect_error(g, "{\"query\": \"{ sites { id(x: 1) } }\"}", "Unknown argument");
    expect_error(g, "{\"query\": \"query($id: ID) { spaces(filter: {id: {eq: $id}}) { id } }\"}",
                 "of type \"ID\" used in position expecting type \"String\"");
    expect_error(g,
                 "{\"query\": \"query($ids: String) { spaces(filter: {id: {in: $ids}}) { id } }\"}",
                 "expecting type \"[String]\"");
    expect_error(g, "{\"query\": \"query($y: Boolean) { sites @skip(if: $y) { id } }\"}",
                 "expecting type \"Boolean!\"");
    expect_error(g, "{\"query\": \"{ sites }\"}", "must have a selection");
    expect_error(g, "{\"query\": \"{ sites { id { x } } }\"}", "must not have a selection");
    expect_error(g, "{\"query\": \"{ spaces(childDepth: \\\"1\\\") { id } }\"}",
                 "Int cannot represent");
    expect_error(g, "{\"query\": \"{ sites @nope { id } }\"}", "Unknown directive");
    expect_error(g, "{\"query\": 5}", "No query string");
    expect_error(g, "[1]", "expected an object");
    /* a fragment bomb is refused by the work budget, not executed */
    {
        char q[4096];
        size_t n = (size_t)snprintf(q, sizeof(q), "{\"query\": \"{ spaces { ...F0 } } ");
        for (int i = 0; i < 30; i++)
            n += (size_t)snprintf(q + n, sizeof(q) - n,
                                  "fragment F%d on Space { ...F%d ...F%d id } ", i, i + 1, i + 1);
        snprintf(q + n, sizeof(q) - n, "fragment F30 on Space { id }\"}");
        expect_error(g, q, "too complex");
    }
    sim_graph_free(g);
}

static void test_execution(void **state)
{
    struct sim_graph *g = load(1);
    json_t *j;
    (void)state;

    /* operation choice, @include/@skip with variables, field merging */
    j = run(g, "{\"query\": \"query A { sites { id } } query B($y: Boolean!) { spaces { id "
               "@include(if: $y) "
               "name @skip(if: $y) } spaces { points { id } } }\", \"operationName\": \"B\", "
               "\"variables\": {\"y\": true}}");
    assert_null(json_object_get(j, "errors"));
    {
        json_t *s = json_array_get(json_object_get(json_object_get(j, "data"), "spaces"), 0);
        assert_string_equal(json_string_value(json_object_get(s, "id")), "S1");
        assert_null(json_object_get(s, "name"));
        assert_int_equal(json_array_size(json_object_get(s, "points")), 4);
    }
    json_decref(j);
    sim_graph_free(g);
}

/* ---- values under a stepped clock ---------------------------------------------- */

static double value_at(struct sim_graph *g, const char *id, int64_t mono, int64_t *ts)
{
    struct sim_value v;
    size_t i = sim_graph_find_point(g, id);

    assert_true(i != SIM_NONE);
    sim_point_value(g, &g->points[i], mono, &v);
    if (ts)
        *ts = v.ts_ms;
    return v.has_value ? v.num : -1;
}

static void test_values(void **state)
{
    struct sim_graph *g = load(1), *g2 = load(1), *g3 = load(2);
    int64_t ts;
    int differs = 0;
    (void)state;

    /* steps with a 30 s loop: 0 at 0 s, 1 at 10 s, 2 at 20 s, 0 again at 30 s */
    assert_true(value_at(g, "Psteps", 1000, &ts) == 0);
    assert_int_equal(ts, fake_wall);
    assert_true(value_at(g, "Psteps", 1000 + 9999, NULL) == 0);
    assert_true(value_at(g, "Psteps", 1000 + 10000, &ts) == 1);
    assert_int_equal(ts, fake_wall + 10000);
    assert_true(value_at(g, "Psteps", 1000 + 25000, NULL) == 2);
    assert_true(value_at(g, "Psteps", 1000 + 31000, &ts) == 0);
    assert_int_equal(ts, fake_wall + 30000);
    /* cycle every 5 s */
    assert_true(value_at(g, "Pcycle", 1000, NULL) == 1);
    assert_true(value_at(g, "Pcycle", 1000 + 5000, NULL) == 0);
    assert_true(value_at(g, "Pcycle", 1000 + 10000, NULL) == 1);
    /* fixed with an age: the timestamp is 90 s before the start */
    value_at(g, "Pstr", 5000, &ts);
    assert_int_equal(ts, fake_wall - 90000);
    /* random: same seed same series, another seed another one, within bounds */
    for (int k = 0; k < 50; k++) {
        double a = value_at(g, "Prand", 1000 + k * 1000, NULL);
        assert_true(a == value_at(g2, "Prand", 1000 + k * 1000, NULL));
        assert_true(a >= 0 && a <= 100 && a == (double)(long)a);
        differs |= a != value_at(g3, "Prand", 1000 + k * 1000, NULL);
    }
    assert_true(differs);
    /* an override wins until reset */
    assert_int_equal(sim_point_set(&g->points[sim_graph_find_point(g, "Psteps")], 1, 7, NULL, 123),
                     0);
    assert_true(value_at(g, "Psteps", 1000, &ts) == 7);
    assert_int_equal(ts, 123);
    sim_graph_reset(g);
    assert_true(value_at(g, "Psteps", 1000, NULL) == 0);

    /* the same through GraphQL: the string point answers in stringValue only */
    {
        json_t *j = run(
            g, "{\"query\": \"{ points(filter: {id: {eq: \\\"Pstr\\\"}}) { series(latest: true) "
               "{ value { stringValue float64Value boolValue } } } }\"}");
        json_t *v = json_object_get(
            json_array_get(
                json_object_get(
                    json_array_get(json_object_get(json_object_get(j, "data"), "points"), 0),
                    "series"),
                0),
            "value");
        assert_string_equal(json_string_value(json_object_get(v, "stringValue")), "on");
        assert_true(json_is_null(json_object_get(v, "float64Value")));
        json_decref(j);
    }
    sim_graph_free(g);
    sim_graph_free(g2);
    sim_graph_free(g3);
}

static void test_bad_scenarios(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{\"buildings\": [{\"name\": \"no id\"}]}",
        "{\"buildings\": [{\"id\": \"B\", \"points\": [{\"id\": \"P\"}, {\"id\": \"P\"}]}]}",
        "{\"buildings\": [{\"id\": \"B\", \"points\": [{\"id\": \"P\", \"valueType\": "
        "\"complex\"}]}]}",
        "{\"buildings\": [{\"id\": \"B\", \"points\": [{\"id\": \"P\", \"random\": {\"min\": 5, "
        "\"max\": 1}}]}]}",
        "{\"buildings\": [{\"id\": \"B\", \"points\": [{\"id\": \"P\", \"steps\": [{\"at\": "
        "\"5s\"}, {\"at\": \"1s\"}]}]}]}",
        "{\"buildings\": [{\"id\": \"B\", \"identities\": [{\"type\": \"Nope\", \"value\": "
        "\"x\"}]}]}",
        "{\"things\": [{\"id\": \"T\", \"location\": \"nowhere\"}]}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        struct sim_graph *g = NULL;
        struct osc_err err;
        memset(&err, 0, sizeof(err));
        assert_int_equal(sim_graph_load(j, 1, NULL, &g, &err), OSC_EDATA);
        assert_null(g);
        assert_non_null(strstr(err.msg, "scenario"));
        json_decref(j);
    }
}

/* ---- faults and the bucket --------------------------------------------------------- */

static void test_fault_rules(void **state)
{
    struct sim_faults f;
    struct sim_fault_action a;
    char msg[300];
    int hits = 0;
    (void)state;

    memset(&f, 0, sizeof(f));
    assert_int_equal(
        sim_faults_parse(
            &f, "delay=100ms,delay=50ms:server=mapped,503x2:retry-after=4:path=/api/1/,reset-after",
            msg, sizeof(msg)),
        0);
    assert_int_equal(f.n, 4);
    sim_faults_eval(&f, "officespace", "/api/1/sites", &a);
    assert_int_equal(a.delay_ms, 100);
    assert_int_equal(a.status, 503);
    assert_int_equal(a.retry_after_s, 4);
    sim_faults_eval(&f, "mapped", "/graphql", &a);
    assert_int_equal(a.delay_ms, 150);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.reset, 2);
    sim_faults_eval(&f, "officespace", "/api/1/sites", &a);
    assert_int_equal(a.status, 503);
    sim_faults_eval(&f, "officespace", "/api/1/sites", &a); /* 503x2 used up */
    assert_int_equal(a.status, 0);
    assert_int_equal(a.reset, 2);
    /* a bad rule leaves the old rules in place */
    assert_int_equal(sim_faults_parse(&f, "503,9000", msg, sizeof(msg)), OSC_EINVAL);
    assert_non_null(strstr(msg, "9000"));
    assert_int_equal(f.n, 4);
    assert_int_equal(sim_faults_parse(&f, "timeout@0.5:hold=2s", msg, sizeof(msg)), 0);
    f.rng = 3;
    for (int i = 0; i < 1000; i++) {
        sim_faults_eval(&f, "officespace", "/x", &a);
        if (a.hold_ms) {
            assert_int_equal(a.hold_ms, 2000);
            hits++;
        }
    }
    assert_in_range(hits, 400, 600);
    assert_int_equal(sim_faults_parse(&f, "retry-after=3", msg, sizeof(msg)), OSC_EINVAL);
    assert_int_equal(sim_faults_parse(&f, "500:path=nope", msg, sizeof(msg)), OSC_EINVAL);
    assert_int_equal(sim_faults_parse(&f, "500x0", msg, sizeof(msg)), OSC_EINVAL);
    sim_faults_free(&f);
}

static void test_bucket(void **state)
{
    struct sim_bucket b = {.rate = 2.0}, z = {.rate = 2.0};
    (void)state;
    /* a clock that starts at 0 is limited too */
    assert_int_equal(sim_bucket_take(&z, 0), 0);
    assert_int_equal(sim_bucket_take(&z, 0), 0);
    assert_int_equal(sim_bucket_take(&z, 0), 1);
    assert_int_equal(sim_bucket_take(&b, 1000), 0);
    assert_int_equal(sim_bucket_take(&b, 1000), 0);
    assert_int_equal(sim_bucket_take(&b, 1000), 1);
    assert_int_equal(sim_bucket_take(&b, 1500), 0);
    assert_int_equal(sim_bucket_take(&b, 1500), 1);
    b.rate = 0;
    assert_int_equal(sim_bucket_take(&b, 1500), 0);
}

/* ---- the directory --------------------------------------------------------------------- */

static void test_directory_index(void **state)
{
    struct sim_dir *d = sim_dir_new(OSC_SIM_IMPORT_REPLACE);
    struct sim_dir_counts c;
    char key[32];
    struct osc_buf b;
    (void)state;

    for (int i = 0; i < 30000; i++) {
        json_t *rec;
        snprintf(key, sizeof(key), "K%d", i);
        rec = json_pack("{s:s,s:s,s:i}", "EmployeeId", key, "FirstName", "x", "Udf1", i);
        assert_int_equal(sim_dir_stage(d, i % 2 ? "odd" : "even", key, rec), 0);
        json_decref(rec);
    }
    assert_int_equal(sim_dir_staged(d), 30000);
    /* an undone batch leaves no trace, in old sources or new ones */
    assert_int_equal(sim_dir_begin(d), 0);
    {
        json_t *rec = json_pack("{s:s}", "EmployeeId", "U");
        assert_int_equal(sim_dir_stage(d, "odd", "U", rec), 0);
        assert_int_equal(sim_dir_stage(d, "new", "U", rec), 0);
        json_decref(rec);
    }
    assert_int_equal(sim_dir_staged(d), 30002);
    sim_dir_undo(d);
    assert_int_equal(sim_dir_staged(d), 30000);
    assert_int_equal(sim_dir_clear(d, "new"), 0);
    assert_int_equal(sim_dir_clear(d, "odd"), 15000);
    assert_int_equal(sim_dir_commit(d, "even", &c), 0);
    assert_int_equal(c.created, 15000);
    assert_int_equal(c.deactivated, 0);
    assert_int_equal(sim_dir_live(d), 15000);
    assert_int_equal(sim_dir_staged(d), 0);
    /* delete every third, then look everything up */
    for (int i = 0; i < 30000; i += 6) {
        snprintf(key, sizeof(key), "K%d", i);
        assert_int_equal(sim_dir_delete(d, sim_dir_find(d, key)), 0);
    }
    for (int i = 0; i < 30000; i += 2) {
        snprintf(key, sizeof(key), "K%d", i);
        if (i % 6 == 0)
            assert_int_equal(sim_dir_find(d, key), -1);
        else
            assert_true(sim_dir_exists(d, sim_dir_find(d, key)));
    }
    /* a REST update that changes client_employee_id moves the index entry */
    {
        int64_t id = sim_dir_find(d, "K2");
        json_t *rec = json_pack("{s:s,s:s}", "client_employee_id", "NEW", "title", "T"), *e;
        assert_int_equal(sim_dir_update(d, id, rec), 0);
        json_decref(rec);
        assert_int_equal(sim_dir_find(d, "K2"), -1);
        assert_int_equal(sim_dir_find(d, "NEW"), id);
        e = sim_dir_render(d, id);
        assert_string_equal(json_string_value(json_object_get(e, "title")), "T");
        assert_string_equal(json_string_value(json_object_get(e, "first_name")), "x");
        assert_int_equal(json_integer_value(json_object_get(e, "udf1")), 2);
        json_decref(e);
    }
    osc_buf_init(&b, 1 << 24);
    assert_int_equal(sim_dir_list(d, "NEW", NULL, &b), 0);
    assert_non_null(strstr(osc_buf_str(&b), "\"count\":1"));
    osc_buf_reset(&b);
    assert_int_equal(sim_dir_view(d, 1, &b), 0);
    {
        json_t *v = json_loads(osc_buf_str(&b), 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(v, "live_count")), 10000);
        assert_int_equal(json_array_size(json_object_get(v, "live")), 10000);
        json_decref(v);
    }
    osc_buf_free(&b);
    sim_dir_free(d);
}

/* Stage ids (space-separated) under source; each record's Title is title. */
static void stage_ids(struct sim_dir *d, const char *source, const char *ids, const char *title)
{
    char *copy = strdup(ids), *save = NULL;

    for (char *k = strtok_r(copy, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
        json_t *rec = json_pack("{s:s,s:s,s:s}", "EmployeeId", k, "Source", source, "Title", title);
        assert_int_equal(sim_dir_stage(d, source, k, rec), 0);
        json_decref(rec);
    }
    free(copy);
}

static json_t *view(const struct sim_dir *d, int detail)
{
    struct osc_buf b;
    json_t *v;

    osc_buf_init(&b, 1 << 24);
    assert_int_equal(sim_dir_view(d, detail, &b), 0);
    v = json_loads(osc_buf_str(&b), 0, NULL);
    osc_buf_free(&b);
    assert_non_null(v);
    return v;
}

static long long src_stat(json_t *v, const char *source, const char *what)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(v, "sources"), source), what));
}

/* A replacing commit deactivates the source's employees missing from its staging, only
   those, and a later commit that stages them again brings them back under the same id. */
static void test_directory_replace(void **state)
{
    struct sim_dir *d = sim_dir_new(OSC_SIM_IMPORT_REPLACE);
    struct sim_dir_counts c;
    json_t *v, *e, *own = json_pack("{s:s}", "client_employee_id", "OWN");
    int64_t a3;
    (void)state;

    assert_true(sim_dir_create(d, own, NULL) > 0); /* no source: never deactivated */
    json_decref(own);
    stage_ids(d, "A", "A1 A2 A3", "t1");
    stage_ids(d, "B", "B1 B2", "t1");
    assert_int_equal(sim_dir_commit(d, "A", &c), 0);
    assert_int_equal(c.created, 3);
    assert_int_equal(sim_dir_commit(d, "B", &c), 0);
    assert_int_equal(sim_dir_live(d), 6);
    a3 = sim_dir_find(d, "A3");

    /* A again without A3, and B2 moves to A */
    stage_ids(d, "A", "A1 A2 B2", "t2");
    assert_int_equal(sim_dir_commit(d, "A", &c), 0);
    assert_int_equal(c.created, 0);
    assert_int_equal(c.updated, 3);
    assert_int_equal(c.deactivated, 1);
    assert_int_equal(sim_dir_live(d), 5);
    e = sim_dir_render(d, a3);
    assert_true(json_is_false(json_object_get(e, "active")));
    assert_string_equal(json_string_value(json_object_get(e, "source")), "A");
    json_decref(e);
    e = sim_dir_render(d, sim_dir_find(d, "B2"));
    assert_string_equal(json_string_value(json_object_get(e, "source")), "A");
    assert_string_equal(json_string_value(json_object_get(e, "title")), "t2");
    json_decref(e);
    v = view(d, 1);
    assert_int_equal(src_stat(v, "A", "live"), 3);
    assert_int_equal(src_stat(v, "A", "deactivated"), 1);
    assert_int_equal(src_stat(v, "A", "commits"), 2);
    assert_int_equal(src_stat(v, "B", "live"), 1);
    assert_int_equal(src_stat(v, "B", "deactivated"), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "deactivated_count")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "deactivated"), 0)),
                        "A3");
    json_decref(v);

    /* the list filters: active only, by source */
    {
        struct osc_buf b;
        osc_buf_init(&b, 1 << 24);
        assert_int_equal(sim_dir_list(d, "A3", NULL, &b), 0);
        assert_string_equal(osc_buf_str(&b), "{\"count\":0,\"response\":[]}");
        osc_buf_reset(&b);
        assert_int_equal(sim_dir_list(d, NULL, "A", &b), 0);
        v = json_loads(osc_buf_str(&b), 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(v, "count")), 3);
        assert_int_equal(json_array_size(json_object_get(v, "response")), 3);
        json_decref(v);
        osc_buf_reset(&b);
        assert_int_equal(sim_dir_list(d, "B1", "A", &b), 0);
        assert_string_equal(osc_buf_str(&b), "{\"count\":0,\"response\":[]}");
        osc_buf_reset(&b);
        assert_int_equal(sim_dir_list(d, NULL, "nobody", &b), 0);
        assert_string_equal(osc_buf_str(&b), "{\"count\":0,\"response\":[]}");
        osc_buf_free(&b);
    }

    /* A3 staged again: the same employee, active again */
    stage_ids(d, "A", "A1 A2 A3 B2", "t3");
    assert_int_equal(sim_dir_commit(d, "A", &c), 0);
    assert_int_equal(c.reactivated, 1);
    assert_int_equal(c.deactivated, 0);
    assert_int_equal(sim_dir_find(d, "A3"), a3);
    assert_int_equal(sim_dir_live(d), 6);

    /* an empty staging replaces A with nothing: all of A goes, B and OWN stay */
    assert_int_equal(sim_dir_commit(d, "A", &c), 0);
    assert_int_equal(c.deactivated, 4);
    assert_int_equal(sim_dir_live(d), 2);
    /* a deleted employee is gone from every count */
    assert_int_equal(sim_dir_delete(d, a3), 0);
    v = view(d, 0);
    assert_int_equal(src_stat(v, "A", "deactivated"), 3);
    assert_int_equal(src_stat(v, "A", "commits"), 4);
    assert_int_equal(json_integer_value(json_object_get(v, "live_count")), 2);
    assert_string_equal(json_string_value(json_object_get(v, "import_mode")), "replace");
    json_decref(v);
    sim_dir_free(d);

    /* upsert mode: the same sequence deactivates nobody */
    d = sim_dir_new(OSC_SIM_IMPORT_UPSERT);
    stage_ids(d, "A", "A1 A2 A3", "t1");
    assert_int_equal(sim_dir_commit(d, "A", &c), 0);
    stage_ids(d, "A", "A1", "t2");
    assert_int_equal(sim_dir_commit(d, "A", &c), 0);
    assert_int_equal(c.deactivated, 0);
    assert_int_equal(sim_dir_commit(d, "A", &c), 0);
    assert_int_equal(sim_dir_live(d), 3);
    v = view(d, 0);
    assert_string_equal(json_string_value(json_object_get(v, "import_mode")), "upsert");
    assert_int_equal(src_stat(v, "A", "commits"), 3);
    json_decref(v);
    sim_dir_free(d);
}

/* ---- the in-process API ------------------------------------------------------------------ */

static void test_inprocess_api(void **state)
{
    struct osc_sim_opts o;
    struct osc_sim *sim = NULL;
    struct osc_err err;
    char want[64];
    (void)state;

    memset(&o, 0, sizeof(o));
    memset(&err, 0, sizeof(err));
    o.faults = "bogus";
    assert_int_equal(osc_sim_new(&o, &sim, &err), OSC_EUSAGE);
    assert_null(sim);
    assert_non_null(strstr(err.msg, "bogus"));
    memset(&err, 0, sizeof(err));
    o.faults = NULL;
    o.scenario_path = "/nonexistent/scenario.yaml";
    assert_int_equal(osc_sim_new(&o, &sim, &err), OSC_ENOINPUT);
    assert_null(sim);

    memset(&err, 0, sizeof(err));
    o.scenario_path = NULL;
    o.clock = &fake_clock;
    assert_int_equal(osc_sim_new(&o, &sim, &err), 0);
    assert_int_equal(osc_sim_start(sim, &err), 0);
    assert_true(osc_sim_mapped_port(sim) > 0);
    assert_true(osc_sim_officespace_port(sim) > 0);
    assert_int_not_equal(osc_sim_mapped_port(sim), osc_sim_officespace_port(sim));
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/graphql", osc_sim_mapped_port(sim));
    assert_string_equal(osc_sim_mapped_url(sim), want);
    snprintf(want, sizeof(want), "http://127.0.0.1:%d", osc_sim_officespace_port(sim));
    assert_string_equal(osc_sim_officespace_url(sim), want);
    osc_sim_stop(sim);
    osc_sim_stop(sim);
    osc_sim_free(sim);
    osc_sim_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_execution),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bad_scenarios),
        cmocka_unit_test(test_fault_rules),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_directory_index),
        cmocka_unit_test(test_directory_replace),
        cmocka_unit_test(test_inprocess_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
