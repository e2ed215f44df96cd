/*
 * test_log_json.c - `--log-format json` of real runs against the simulator:
 * every stderr line of a log is one JSON object, and the events carry their
 * fields (event, destination, status, records, request_id, url, attempt,
 * location, ...) as typed keys, so a log shipper never parses a message.
 * No credential appears in any field.
 *
 * The simulator serves tests/fixtures/presence/sim_scenario.json, where
 * OfficeSpace refuses room 104 (a push_refused event) and every reading is
 * old (an expired event once expire_after is on).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct th_sim sim;
static int sim_exit;

static int group_setup(void **state)
{
    const char *extra[] = {"--scenario", th_fixture("presence/sim_scenario.json"), NULL};
    (void)state;
    return th_sim_start(&sim, extra);
}

static int group_teardown(void **state)
{
    (void)state;
    sim_exit = th_sim_stop(&sim);
    th_tmpdir_cleanup();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    return th_sim_reset(&sim);
}

static void set_faults(const char *rules)
{
    char url[300];
    snprintf(url, sizeof(url), "%s/_sim/faults", sim.officespace_url);
    assert_int_equal(th_http("POST", url, rules, NULL), 200);
}

/* Every line of err is a JSON object with time, level, module and msg; returns them all. */
static json_t *parse_lines(const char *err)
{
    json_t *all = json_array();
    const char *p = err;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        json_error_t jerr;
        json_t *o;
        /* the summary lines of send are not log lines: they start with the destination */
        if (l && p[0] == '{') {
            o = json_loadb(p, l, 0, &jerr);
            if (!o)
                fail_msg("not JSON (%s): %.*s", jerr.text, (int)l, p);
            assert_non_null(json_object_get(o, "time"));
            assert_non_null(json_object_get(o, "level"));
            assert_non_null(json_object_get(o, "module"));
            assert_non_null(json_object_get(o, "msg"));
            json_array_append_new(all, o);
        }
        p += l + (nl ? 1 : 0);
    }
    return all;
}

/* The first line with event ev (and, when key is set, key == val); NULL when none. */
static json_t *event(json_t *all, const char *ev, const char *key, const char *val)
{
    size_t i;
    json_t *o;

    json_array_foreach(all, i, o)
    {
        const char *e = json_string_value(json_object_get(o, "event"));
        if (!e || strcmp(e, ev) != 0)
            continue;
        if (key && (!json_string_value(json_object_get(o, key)) ||
                    strcmp(json_string_value(json_object_get(o, key)), val) != 0))
            continue;
        return o;
    }
    return NULL;
}

static json_t *must(json_t *all, const char *ev, const char *key, const char *val)
{
    json_t *o = event(all, ev, key, val);
    if (!o) {
        char *d = json_dumps(all, JSON_INDENT(1));
        fail_msg("no '%s' event in:\n%s", ev, d ? d : "?");
    }
    return o;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (!s)
        fail_msg("no string field '%s'", k);
    return s;
}

static long long num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("no integer field '%s'", k);
    return (long long)json_integer_value(v);
}

static void no_secret(const struct th_result *r)
{
    assert_null(strstr(r->err, TH_SIM_OS_KEY));
    assert_null(strstr(r->out, TH_SIM_OS_KEY));
    assert_null(strstr(r->err, TH_SIM_MAPPED_TOKEN));
}

/* Delivery: a retried staging DELETE, a refused batch, its dead letters, the refused commit;
 * then the resend of the dead letters and the commit that follows. */
static void test_delivery_events(void **state)
{
    char *text = NULL, *cfg, *csv, *dl;
    struct th_result r;
    json_t *all, *o;

    (void)state;
    assert_true(asprintf(&dl, "%s/emp.dead.jsonl", th_tmpdir()) > 0);
    assert_true(
        asprintf(&text,
                 "officespace:\n  base_url: %s\n  api_key: %s\n"
                 "destinations:\n"
                 "  employees:\n    template: upsert_employees\n    source_name: LOGS\n"
                 "    batch: {size: 10}\n    dead_letter: %s\n    max_in_flight: 1\n"
                 "    retry: {base: 5ms, cap: 20ms, max_attempts: 4}\n"
                 "  commit:\n    template: trigger_directory_import\n    source_name: LOGS\n",
                 sim.officespace_url, TH_SIM_OS_KEY, dl) > 0);
    cfg = th_write_file("logs.yaml", text);
    free(text);
    csv = th_write_file("logs.csv", "employee_id,first_name,email\n"
                                    "1,A,a@example.com\n2,B,b@example.com\n3,C,c@example.com\n"
                                    "4,D,d@example.com\n5,E,e@example.com\n6,F,f@example.com\n"
                                    "7,G,g@example.com\n8,H,h@example.com\n9,I,i@example.com\n"
                                    "10,J,j@example.com\n11,K,k@example.com\n");
    set_faults("503x1:path=/api/1/employee_directory/LOGS,"
               "422x1:path=/api/1/employee_batch_imports");
    {
        const char *argv[] = {"send",   "-c",           cfg,    "-d", "employees", "--commit",
                              "commit", "--log-format", "json", csv,  NULL};
        assert_int_equal(th_run(argv, NULL, 60000, &r), 0);
    }
    set_faults("");
    assert_int_equal(r.status, 65);
    no_secret(&r);
    all = parse_lines(r.err);

    o = must(all, "retry", "method", "DELETE");
    assert_string_equal(str(o, "level"), "info");
    assert_string_equal(str(o, "module"), "delivery");
    assert_string_equal(str(o, "destination"), "employees");
    assert_int_equal(num(o, "status"), 503);
    assert_int_equal(num(o, "attempt"), 1);
    assert_true(num(o, "delay_ms") >= 0);
    assert_true(strncmp(str(o, "request_id"), "osc-", 4) == 0);
    assert_non_null(strstr(str(o, "url"), "/api/1/employee_directory/LOGS"));

    o = must(all, "staging_cleared", NULL, NULL);
    assert_string_equal(str(o, "source"), "LOGS");

    o = must(all, "rejected", NULL, NULL);
    assert_string_equal(str(o, "level"), "warn");
    assert_string_equal(str(o, "destination"), "employees");
    assert_string_equal(str(o, "method"), "POST");
    assert_non_null(strstr(str(o, "url"), "/api/1/employee_batch_imports"));
    assert_int_equal(num(o, "status"), 422);
    assert_int_equal(num(o, "records"), 10);
    assert_int_equal(num(o, "attempt"), 1);
    assert_string_equal(str(o, "dead_letter"), dl);
    assert_string_equal(str(o, "reason"), "rejected by the API: HTTP 422");
    assert_true(strncmp(str(o, "request_id"), "osc-", 4) == 0);

    o = must(all, "dead_letter_file", NULL, NULL);
    assert_string_equal(str(o, "dead_letter"), dl);

    o = must(all, "commit_refused", NULL, NULL);
    assert_string_equal(str(o, "level"), "error");
    assert_string_equal(str(o, "source"), "LOGS");
    assert_null(event(all, "commit_triggered", NULL, NULL));
    json_decref(all);
    th_result_free(&r);

    /* the dead letters again: the commit follows */
    {
        const char *argv[] = {"send",         "-c",       cfg,        "-d",
                              "employees",    "--append", "--commit", "commit",
                              "--log-format", "json",     dl,         NULL};
        assert_int_equal(th_run(argv, NULL, 60000, &r), 0);
    }
    assert_int_equal(r.status, 0);
    no_secret(&r);
    all = parse_lines(r.err);
    o = must(all, "commit_triggered", NULL, NULL);
    assert_string_equal(str(o, "destination"), "employees");
    assert_string_equal(str(o, "source"), "LOGS");
    assert_int_equal(num(o, "status"), 200);
    assert_int_equal(num(o, "attempt"), 1);
    assert_non_null(strstr(str(o, "url"), "/api/1/employee_directory"));
    json_decref(all);
    th_result_free(&r);
    free(csv);
    free(cfg);
    free(dl);
}

static char *presence_config(const char *name, const char *extra)
{
    char *yaml = NULL, *path;

    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  graphql_url: %s/graphql\n"
                         "  graphql_api_key: %s\n"
                         "mapped:\n  url: %s\n  token: %s\n"
                         "presence:\n  buildings: [BLDGtest1, BLDGtest2]\n  interval: 1s\n"
                         "  state: %s/state.db\n%s",
                         sim.officespace_url, sim.officespace_url, TH_SIM_OS_KEY, sim.mapped_url,
                         TH_SIM_MAPPED_TOKEN, th_tmpdir(), extra) > 0);
    path = th_write_file(name, yaml);
    free(yaml);
    return path;
}

/* Presence: discovery, the refused location, the cycle's counts; then an expiry. */
static void test_presence_events(void **state)
{
    char *cfg = presence_config("p.yaml", "  expire_after: 0\n");
    char *cfg2 = presence_config("p2.yaml", "  expire_after: 1s\n");
    const char *argv[] = {"presence", "-c", cfg, "--once", "--log-format", "json", NULL};
    const char *argv2[] = {"presence", "-c", cfg2, "--once", "--log-format", "json", NULL};
    struct th_result r;
    json_t *all, *o;

    (void)state;
    assert_int_equal(th_run(argv, NULL, 30000, &r), 0);
    assert_int_equal(r.status, 1); /* partial: room 104 is refused */
    no_secret(&r);
    all = parse_lines(r.err);
    o = must(all, "discovered", NULL, NULL);
    assert_int_equal(num(o, "buildings"), 2);
    assert_true(num(o, "locations") > 0);
    o = must(all, "push_refused", "location", "urn:officespace:room:id:104");
    assert_string_equal(str(o, "level"), "warn");
    assert_string_equal(str(o, "module"), "presence");
    assert_non_null(strstr(str(o, "reason"), "Room 104 not found"));
    assert_non_null(json_object_get(o, "presence"));
    o = must(all, "cycle", NULL, NULL);
    assert_int_equal(num(o, "refused"), 1);
    assert_int_equal(num(o, "accepted"), num(o, "pushed") - 1);
    assert_int_equal(num(o, "unsent"), 0);
    assert_true(num(o, "requests") >= 1);
    assert_int_equal(num(o, "locations"),
                     num(o, "locations_presence") + num(o, "locations_passive_presence") +
                         num(o, "locations_no_presence") + num(o, "locations_unknown"));
    json_decref(all);
    th_result_free(&r);

    /* the scenario's readings are months old: with expire_after on, what was pushed expires */
    assert_int_equal(th_run(argv2, NULL, 30000, &r), 0);
    no_secret(&r);
    all = parse_lines(r.err);
    o = must(all, "expired", NULL, NULL);
    assert_true(strncmp(str(o, "location"), "urn:officespace:", 16) == 0);
    assert_int_equal(num(o, "expire_after_ms"), 1000);
    assert_non_null(json_object_get(o, "last_presence"));
    o = must(all, "cycle", NULL, NULL);
    assert_true(num(o, "expired") > 0);
    json_decref(all);
    th_result_free(&r);
    free(cfg);
    free(cfg2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_delivery_events, reset),
        cmocka_unit_test_setup(test_presence_events, reset),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return rc ? rc : sim_exit;
}
