/*
 * test_check.c - `osconnect check` end to end: the real binary against a
 * scripted server on 127.0.0.1 (what it received: paths, auth headers) and
 * against the simulator (only what the config uses is probed); that no
 * credential reaches the output; and that --offline refuses every config in
 * tests/fixtures/config that cannot work, with file:line:col.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testserver.h"

#define REST_KEY "check-rest-key-0123456789"
#define GQL_KEY  "check-gql-key-0123456789"
#define PAT      "check-mapped-pat-0123456789"

static char *config_for(struct ts_server *s, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "officespace:\n  hostname: acme\n  base_url: %s\n  api_key: %s\n"
             "  graphql_url: %s/os/graphql\n  graphql_api_key: %s\n"
             "mapped:\n  url: %s/mapped/graphql\n  token: %s\n"
             "presence:\n  buildings: [BLDG1, BLDG2]\n"
             "destinations:\n  employees: {template: upsert_employees}\n%s",
             ts_url(s), REST_KEY, ts_url(s), GQL_KEY, ts_url(s), PAT, extra ? extra : "");
    return th_write_file("check.yaml", text);
}

static void assert_no_secrets(const struct th_result *res)
{
    const char *keys[] = {REST_KEY, GQL_KEY, PAT};
    for (size_t i = 0; i < 3; i++) {
        assert_null(strstr(res->out, keys[i]));
        assert_null(strstr(res->err, keys[i]));
    }
}

static void test_all_ok(void **state)
{
    struct ts_server *s = ts_start();
    struct ts_response rest = {200, "Content-Type: application/json\n",
                               "{\"count\":1,\"response\":[{\"id\":1,\"name\":\"HQ\"}]}", 0, 0};
    struct ts_response gql = {200, NULL, "{\"data\":{\"sites\":[{\"id\":\"1\",\"name\":\"HQ\"}]}}",
                              0, 0};
    struct ts_response mapped = {200, NULL,
                                 "{\"data\":{\"buildings\":[{\"id\":\"BLDG1\",\"name\":\"A\"},"
                                 "{\"id\":\"BLDG2\",\"name\":\"B\"}]}}",
                                 0, 0};
    char *cfg = config_for(s, NULL), v[512];
    const char *argv[] = {"check", "-c", cfg, NULL};
    struct th_result res;
    struct ts_request rq;

    (void)state;
    ts_push(s, &rest);
    ts_push(s, &gql);
    ts_push(s, &mapped);
    assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
    if (res.status != 0)
        fail_msg("exit %d\n%s\n%s", res.status, res.out, res.err);
    assert_non_null(strstr(res.out, "officespace rest     GET"));
    assert_non_null(strstr(res.out, "ok, 1 site"));
    assert_non_null(strstr(res.out, "ok, 2 of 2 buildings found"));
    assert_no_secrets(&res);
    assert_int_equal(ts_count(s), 3);

    ts_get(s, 0, &rq);
    assert_string_equal(rq.method, "GET");
    assert_string_equal(rq.url, "/api/1/sites");
    ts_header(&rq, "authorization", v, sizeof(v));
    assert_string_equal(v, "Token token=" REST_KEY);
    ts_request_free(&rq);

    ts_get(s, 1, &rq);
    assert_string_equal(rq.url, "/os/graphql");
    assert_string_equal(rq.body, "{\"query\":\"query { sites { id name } }\"}");
    ts_header(&rq, "apikey", v, sizeof(v));
    assert_string_equal(v, GQL_KEY);
    ts_request_free(&rq);

    ts_get(s, 2, &rq);
    assert_string_equal(rq.url, "/mapped/graphql");
    assert_non_null(
        strstr(rq.body, "buildings(filter: {id: {in: [\\\"BLDG1\\\",\\\"BLDG2\\\"]}})"));
    ts_header(&rq, "authorization", v, sizeof(v));
    assert_string_equal(v, "token " PAT);
    ts_request_free(&rq);

    th_result_free(&res);
    free(cfg);
    ts_stop(s);
    th_tmpdir_cleanup();
}

static void test_wrong_key_is_auth_failure(void **state)
{
    struct ts_server *s = ts_start();
    struct ts_response denied = {401, "WWW-Authenticate: Token realm=\"Application\"\n",
                                 "HTTP Token: Access denied.", 0, 0};
    struct ts_response mapped = {
        200, NULL, "{\"data\":{\"buildings\":[{\"id\":\"BLDG1\",\"name\":\"A\"}]}}", 0, 0};
    char *cfg = config_for(s, NULL);
    const char *argv[] = {"check", "-c", cfg, NULL};
    struct th_result res;

    (void)state;
    ts_push(s, &denied);
    ts_push(s, &denied);
    ts_push(s, &mapped);
    assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
    assert_int_equal(res.status, 77);
    assert_non_null(strstr(res.out, "FAILED, credential refused (HTTP 401)"));
    /* the missing building is reported too, by name */
    assert_non_null(strstr(res.out, "1 of 2 buildings found; missing: BLDG2"));
    assert_non_null(strstr(res.err, "authentication failed"));
    assert_no_secrets(&res);
    th_result_free(&res);
    free(cfg);
    ts_stop(s);
    th_tmpdir_cleanup();
}

static void test_config_errors(void **state)
{
    char *bad = th_write_file("bad.yaml", "officespace:\n  hostname: acme\n  api_key: k12345678\n"
                                          "  timeout: forever\n");
    char *unknown = th_write_file("unknown.yaml", "officespace:\n  hostname: acme\n"
                                                  "  api_key: k12345678\nmapped_typo: {}\n");
    const char *a1[] = {"check", "-c", bad, NULL};
    const char *a2[] = {"check", "-c", unknown, NULL};
    const char *a3[] = {"check", "-c", "/nonexistent/osconnect.yaml", NULL};
    const char *a4[] = {"check", "--bogus", NULL};
    struct th_result res;

    (void)state;
    th_run(a1, NULL, 10000, &res);
    assert_int_equal(res.status, 78);
    assert_non_null(strstr(res.err, "bad.yaml:4:12: officespace.timeout: expected a duration"));
    th_result_free(&res);
    th_run(a2, NULL, 10000, &res);
    assert_int_equal(res.status, 78);
    assert_non_null(strstr(res.err, "unknown.yaml:4:1: unknown key 'mapped_typo'"));
    th_result_free(&res);
    th_run(a3, NULL, 10000, &res);
    assert_int_equal(res.status, 66);
    assert_non_null(strstr(res.err, "cannot open config /nonexistent/osconnect.yaml"));
    th_result_free(&res);
    th_run(a4, NULL, 10000, &res);
    assert_int_equal(res.status, 64);
    th_result_free(&res);
    free(bad);
    free(unknown);
    th_tmpdir_cleanup();
}

static void test_offline_print_config(void **state)
{
    char *cfg =
        th_write_file("p.yaml", "officespace:\n  hostname: acme\n  api_key: printed-key-123456\n");
    const char *argv[] = {"check", "-c", cfg, "--offline", "--print-config", NULL};
    struct th_result res;

    (void)state;
    th_run(argv, NULL, 10000, &res);
    assert_int_equal(res.status, 0);
    assert_null(strstr(res.out, "rest_base")); /* derived fields are not keys */
    assert_non_null(strstr(res.out, "api_key: \"***\""));
    assert_null(strstr(res.out, "printed-key-123456"));
    th_result_free(&res);
    free(cfg);
    th_tmpdir_cleanup();
}

/* Requests the simulator logged for server ("officespace", "mapped") under path prefix. */
static size_t sim_count(const struct th_sim *sim, const char *server, const char *prefix)
{
    char url[256];
    json_t *r, *v;
    size_t i, n = 0;

    snprintf(url, sizeof(url), "%s/_sim/requests", sim->officespace_url);
    r = th_get_json(url);
    assert_non_null(r);
    json_array_foreach(json_object_get(r, "requests"), i, v)
    {
        const char *srv = json_string_value(json_object_get(v, "server"));
        const char *path = json_string_value(json_object_get(v, "path"));
        if (srv && path && strcmp(srv, server) == 0 && strncmp(path, prefix, strlen(prefix)) == 0)
            n++;
    }
    json_decref(r);
    return n;
}

static char *example(const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/examples/%s", getenv("OSC_SRC"), name) > 0);
    return p;
}

/*
 * check probes only what the config uses: examples/delivery.yaml (destinations,
 * no presence) gets one REST request and nothing else, where it used to probe
 * the real OfficeSpace GraphQL endpoint and exit 75; examples/presence.yaml (no
 * REST api_key at all) gets GraphQL and Mapped, no REST.
 */
static void test_probes_what_is_used(void **state)
{
    struct th_sim sim;
    struct th_result res;
    char *delivery = example("delivery.yaml"), *presence = example("presence.yaml");
    const char *a1[] = {"check", "-c", delivery, NULL};
    const char *a2[] = {"check", "-c", presence, NULL};
    char gql[256];

    (void)state;
    assert_int_equal(th_sim_start(&sim, NULL), 0);
    snprintf(gql, sizeof(gql), "%s/graphql", sim.officespace_url);
    setenv("OFFICESPACE_URL", sim.officespace_url, 1);
    setenv("OFFICESPACE_GRAPHQL_URL", gql, 1);
    setenv("MAPPED_URL", sim.mapped_url, 1);
    setenv("OFFICESPACE_API_KEY", TH_SIM_OS_KEY, 1);
    setenv("MAPPED_API_TOKEN", TH_SIM_MAPPED_TOKEN, 1);

    assert_int_equal(th_run(a1, NULL, 30000, &res), 0);
    if (res.status != 0)
        fail_msg("exit %d\n%s\n%s", res.status, res.out, res.err);
    assert_non_null(strstr(res.out, "officespace rest     GET "));
    assert_non_null(strstr(res.out, "/api/1/sites: ok, 2 sites"));
    assert_null(strstr(res.out, "graphql"));
    assert_null(strstr(res.out, "mapped "));
    assert_null(strstr(res.out, TH_SIM_OS_KEY));
    th_result_free(&res);
    assert_int_equal(sim_count(&sim, "officespace", "/api/1/sites"), 1);
    assert_int_equal(sim_count(&sim, "officespace", "/graphql"), 0);
    assert_int_equal(sim_count(&sim, "mapped", "/"), 0);

    assert_int_equal(th_sim_reset(&sim), 0);
    assert_int_equal(th_run(a2, NULL, 30000, &res), 0);
    if (res.status != 0)
        fail_msg("exit %d\n%s\n%s", res.status, res.out, res.err);
    assert_null(strstr(res.out, "officespace rest"));
    assert_non_null(strstr(res.out, "officespace graphql  POST "));
    assert_non_null(strstr(res.out, "mapped               POST "));
    assert_non_null(strstr(res.out, "ok, 2 of 2 buildings found"));
    assert_null(strstr(res.out, TH_SIM_MAPPED_TOKEN));
    th_result_free(&res);
    assert_int_equal(sim_count(&sim, "officespace", "/api/"), 0);
    assert_int_equal(sim_count(&sim, "officespace", "/graphql"), 1);
    assert_int_equal(sim_count(&sim, "mapped", "/graphql"), 1);

    unsetenv("OFFICESPACE_URL");
    unsetenv("OFFICESPACE_GRAPHQL_URL");
    unsetenv("MAPPED_URL");
    unsetenv("OFFICESPACE_API_KEY");
    unsetenv("MAPPED_API_TOKEN");
    assert_int_equal(th_sim_stop(&sim), 0);
    free(delivery);
    free(presence);
}

/* Nothing that sends: nothing to test, and no request. */
static void test_nothing_to_probe(void **state)
{
    char *cfg = th_write_file("n.yaml", "officespace: {hostname: acme}\n");
    const char *argv[] = {"check", "-c", cfg, NULL};
    struct th_result res;

    (void)state;
    assert_int_equal(th_run(argv, NULL, 10000, &res), 0);
    assert_int_equal(res.status, 0);
    assert_non_null(strstr(res.out, "credentials          no destination sends to OfficeSpace "
                                    "and presence is not configured: nothing to test"));
    th_result_free(&res);
    free(cfg);
    th_tmpdir_cleanup();
}

/*
 * Every config in tests/fixtures/config that cannot work is refused by
 * `check --offline` (exit 78) with file:line:col and what is wrong. Each of
 * these passed before (the alias bomb grew to 24 GB before it was killed).
 */
static void test_offline_refuses_what_cannot_work(void **state)
{
    static const struct {
        const char *fixture, *want;
    } cases[] = {
        {"listen-garbage.yaml", "listen-garbage.yaml:5:3: status.listen: expected HOST:PORT"},
        {"api-key-empty.yaml", "api-key-empty.yaml:3:12: officespace.api_key: must not be empty"},
        {"api-key-empty-env.yaml", "api-key-empty-env.yaml:3:12: officespace.api_key: must not "
                                   "be empty (${OSC_FIXTURE_UNSET_KEY:-} expands to nothing)"},
        {"ca-file-missing.yaml", "ca-file-missing.yaml:4:3: officespace.ca_file: cannot open "
                                 "/nonexistent/osconnect-ca.pem"},
        {"ca-file-not-pem.yaml", "not-a-cert.der holds no PEM certificate"},
        {"presence-state-empty.yaml",
         "presence-state-empty.yaml:8:10: presence.state: must not be empty"},
        {"base-url-ftp.yaml", "base-url-ftp.yaml:2:3: officespace.base_url: expected an http:// "
                              "or https:// URL, not ftp://"},
        {"base-url-file.yaml", "base-url-file.yaml:2:3: officespace.base_url: expected an "
                               "http:// or https:// URL, not file://"},
        {"base-url-not-a-url.yaml", "base-url-not-a-url.yaml:2:3: officespace.base_url: not a URL"},
        {"base-url-empty.yaml",
         "base-url-empty.yaml:2:13: officespace.base_url: must not be empty"},
        {"base-url-http-remote.yaml",
         "base-url-http-remote.yaml:2:3: officespace.base_url: plain http:// is allowed only to a "
         "loopback host"},
        {"graphql-url-ftp.yaml", "graphql-url-ftp.yaml:4:3: officespace.graphql_url: expected an "
                                 "http:// or https:// URL"},
        {"mapped-url-http-remote.yaml", "mapped-url-http-remote.yaml:5:3: mapped.url: plain "
                                        "http:// is allowed only to a loopback host"},
        {"destination-url-file.yaml", "destination-url-file.yaml:6:5: destinations.d.url: "
                                      "expected an http:// or https:// URL, not file://"},
        {"webhook-url-ftp.yaml", "webhook-url-ftp.yaml:7:5: destinations.d.response_webhook: "
                                 "expected an http:// or https:// URL, not ftp://"},
        {"second-document.yaml", "second-document.yaml:6:1: a second YAML document starts here"},
        {"upsert-format.yaml", "upsert-format.yaml:7:5: destinations.employees.format: template "
                               "upsert_employees does not use format"},
        {"alias-bomb.yaml", "alias-bomb.yaml:19:16: destinations.bomb.batch.other_props.f[0]: "
                            "alias *e takes the YAML aliases of this file past 100000 expanded "
                            "nodes"},
    };
    struct th_result res;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char path[1024];
        const char *argv[] = {"check", "--offline", "-c", path, NULL};
        snprintf(path, sizeof(path), "%s", th_fixture("config/"));
        strncat(path, cases[i].fixture, sizeof(path) - strlen(path) - 1);
        /* the deadline is the guard: a config that expands or loops is killed (137) */
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        if (res.status != 78 || !strstr(res.err, cases[i].want))
            fail_msg("%s: exit %d, expected 78 and '%s' in:\n%s", cases[i].fixture, res.status,
                     cases[i].want, res.err);
        assert_null(strstr(res.err, "fixture-key-0123456789"));
        th_result_free(&res);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_ok),
        cmocka_unit_test(test_wrong_key_is_auth_failure),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_offline_print_config),
        cmocka_unit_test(test_probes_what_is_used),
        cmocka_unit_test(test_nothing_to_probe),
        cmocka_unit_test(test_offline_refuses_what_cannot_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
