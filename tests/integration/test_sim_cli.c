/*
 * test_sim_cli.c - `osconnect sim` as a command: --help, usage errors, the
 * built-in demo scenario (--dump-demo and what it serves: two buildings,
 * ~50 spaces and zones whose valid identities exist on the OfficeSpace
 * side), the generator, --listen, custom credentials, and a clean stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_sim_util.h"

static void test_help_and_usage(void **state)
{
    const char *help[] = {"sim", "--help", NULL};
    const char *bad[][6] = {{"sim", "--nope", NULL},
                            {"sim", "--mapped-port", "70000", NULL},
                            {"sim", "--rate-limit", "fast", NULL},
                            {"sim", "--import-mode", "merge", NULL},
                            {"sim", "--generate-points", "5", NULL},
                            {"sim", "--listen", "not-an-address", "--mapped-port", "0", NULL},
                            {"sim", "extra", NULL},
                            {"sim", "--scenario", "x.json", "--generate-locations", "5", NULL}};
    struct th_result res;
    (void)state;

    assert_int_equal(th_run(help, NULL, 10000, &res), 0);
    assert_int_equal(res.status, 0);
    assert_non_null(strstr(res.out, "--faults"));
    assert_non_null(strstr(res.out, "--generate-locations"));
    assert_non_null(strstr(res.out, "--import-mode"));
    assert_non_null(strstr(res.out, "Exit status"));
    th_result_free(&res);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        th_run(bad[i], NULL, 10000, &res);
        if (res.status != 64)
            fail_msg("%s %s: exit %d", bad[i][1], bad[i][2] ? bad[i][2] : "", res.status);
        assert_string_equal(res.out, "");
        th_result_free(&res);
    }
    {
        const char *argv[] = {"sim", "--scenario", "/nonexistent/s.json", NULL};
        th_run(argv, NULL, 10000, &res);
        assert_int_equal(res.status, 66);
        th_result_free(&res);
    }
}

static size_t count_urns(json_t *j, size_t *valid)
{
    size_t n = 0, i;
    const char *k;
    json_t *v;

    if (json_is_string(j) && strncmp(json_string_value(j), "urn:", 4) == 0) {
        int type_ok = 0;
        const char *s = json_string_value(j);
        const char *types[] = {"site", "floor", "room", "neighborhood", "desk"};
        for (size_t t = 0; t < 5; t++) {
            char pre[64];
            snprintf(pre, sizeof(pre), "urn:officespace:%s:id:", types[t]);
            if (strncmp(s, pre, strlen(pre)) == 0 && s[strlen(pre)] >= '0' && s[strlen(pre)] <= '9')
                type_ok = 1;
        }
        *valid += (size_t)type_ok;
        return 1;
    }
    json_array_foreach(j, i, v) n += count_urns(v, valid);
    json_object_foreach(j, k, v) n += count_urns(v, valid);
    return n;
}

static void test_dump_demo(void **state)
{
    const char *argv[] = {"sim", "--dump-demo", NULL};
    struct th_result res;
    json_t *j;
    size_t valid = 0, all;
    (void)state;

    assert_int_equal(th_run(argv, NULL, 10000, &res), 0);
    assert_int_equal(res.status, 0);
    j = json_loads(res.out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(jpath(j, "sites.0.buildings")), 2);
    all = count_urns(j, &valid);
    assert_true(valid >= 55);
    assert_true(all - valid >= 2); /* a few deliberately invalid ones */
    json_decref(j);
    th_result_free(&res);
}

/* What the demo serves: every valid identity's location exists in OfficeSpace. */
static void test_demo_ids_exist(void **state)
{
    struct th_sim sim;
    json_t *j, *b, *f, *s;
    size_t i, k, m, checked = 0, spaces = 0;
    const char *paths[] = {"sites", "floors", "rooms", "neighborhoods", "seats"};
    const char *types[] = {"site", "floor", "room", "neighborhood", "desk"};
    const char *hdrs[] = {REST_AUTH, NULL};
    (void)state;

    assert_int_equal(th_sim_start(&sim, NULL), 0);
    j = gql(sim.mapped_url, MAPPED_AUTH,
            "{ buildings { id identities { ... on ExternalIdentity { value } } floors { "
            "identities { ... on ExternalIdentity { value } } spaces { identities { ... on "
            "ExternalIdentity { value } } } zones { identities { ... on ExternalIdentity { value } "
            "} } } } }",
            NULL, NULL);
    assert_int_equal(json_array_size(jpath(j, "data.buildings")), 2);
    json_array_foreach(jpath(j, "data.buildings"), i, b)
    {
        json_t *lists[64];
        size_t nl = 0;
        lists[nl++] = json_object_get(b, "identities");
        json_array_foreach(json_object_get(b, "floors"), k, f)
        {
            lists[nl++] = json_object_get(f, "identities");
            json_array_foreach(json_object_get(f, "spaces"), m, s)
            {
                if (nl < 64)
                    lists[nl++] = json_object_get(s, "identities");
                spaces++;
            }
            json_array_foreach(json_object_get(f, "zones"), m, s)
            {
                if (nl < 64)
                    lists[nl++] = json_object_get(s, "identities");
                spaces++;
            }
        }
        for (size_t l = 0; l < nl; l++) {
            json_t *id;
            size_t x;
            json_array_foreach(lists[l], x, id)
            {
                const char *v = json_string_value(json_object_get(id, "value"));
                for (size_t t = 0; v && t < 5; t++) {
                    char pre[64], url[256];
                    struct resp r;
                    snprintf(pre, sizeof(pre), "urn:officespace:%s:id:", types[t]);
                    if (strncmp(v, pre, strlen(pre)) || !v[strlen(pre)])
                        continue;
                    snprintf(url, sizeof(url), "%s/api/1/%s/%s", sim.officespace_url, paths[t],
                             v + strlen(pre));
                    http("GET", url, hdrs, NULL, 0, &r);
                    if (r.status != 200)
                        fail_msg("%s: GET %s gave %ld", v, url, r.status);
                    resp_free(&r);
                    checked++;
                }
            }
        }
    }
    assert_in_range(spaces, 45, 60);
    assert_true(checked >= 55);
    json_decref(j);
    assert_int_equal(th_sim_stop(&sim), 0);
}

static void test_generator_and_options(void **state)
{
    const char *extra[] = {"--generate-locations",
                           "500",
                           "--generate-points",
                           "1200",
                           "--listen",
                           "127.0.0.1",
                           "--officespace-key",
                           "k1",
                           "--graphql-key",
                           "k2",
                           "--mapped-token",
                           "t3",
                           NULL};
    struct th_sim sim;
    json_t *j;
    long st;
    char url[256];
    (void)state;

    assert_int_equal(th_sim_start(&sim, extra), 0);
    assert_int_equal(strncmp(sim.mapped_url, "http://127.0.0.1:", 17), 0);
    j = gql(sim.mapped_url, "Authorization: token t3",
            "{ floors { id } spaces { id } zones { id } points { id } }", NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(jpath(j, "data.floors")) +
                         json_array_size(jpath(j, "data.spaces")) +
                         json_array_size(jpath(j, "data.zones")),
                     500);
    assert_int_equal(json_array_size(jpath(j, "data.points")), 1200);
    json_decref(j);
    j = gql(sim.mapped_url, MAPPED_AUTH, "{ floors { id } }", NULL, &st);
    assert_int_equal(st, 401);
    json_decref(j);
    j = gql(url_of(url, sizeof(url), sim.officespace_url, "/graphql"), "apikey: k2",
            "{ sites { id } }", NULL, &st);
    assert_int_equal(st, 200);
    json_decref(j);
    {
        const char *h[] = {"Authorization: Token token=k1", NULL};
        struct resp r;
        http("GET", url_of(url, sizeof(url), sim.officespace_url, "/api/1/floors"), h, NULL, 0, &r);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    assert_int_equal(th_sim_stop(&sim), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage),
        cmocka_unit_test(test_dump_demo),
        cmocka_unit_test(test_demo_ids_exist),
        cmocka_unit_test(test_generator_and_options),
    };
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    th_tmpdir_cleanup();
    return rc;
}
