/*
 * test_check.c - `osconnect check` end to end: the real binary against a
 * scripted server on 127.0.0.1. States what the server received (paths,
 * auth headers) and that no credential reaches the output.
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
             "presence:\n  buildings: [BLDG1, BLDG2]\n%s",
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_ok),
        cmocka_unit_test(test_wrong_key_is_auth_failure),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_offline_print_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
