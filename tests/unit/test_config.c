/*
 * test_config.c - the YAML loader: good files, every kind of bad file,
 * env interpolation, key files, defaults, the dump's redaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "osc/config.h"
#include "osc/log.h"

static struct osc_config *load(const char *text, struct osc_err *err)
{
    struct osc_config *cfg = NULL;
    osc_err_clear(err);
    osc_config_load_string(text, strlen(text), "t.yaml", &cfg, err);
    return cfg;
}

static void expect_error(const char *text, const char *needle)
{
    struct osc_err err;
    struct osc_config *cfg = load(text, &err);
    if (cfg || !strstr(err.msg, needle))
        fail_msg("expected error containing '%s', got '%s'", needle, err.msg);
    assert_int_equal(err.code, OSC_ECONFIG);
}

static void test_minimal_defaults(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;

    (void)state;
    cfg = load("officespace:\n  hostname: acme\n  api_key: abcdefgh12345678\n", &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->officespace.rest_base, "https://acme.officespacesoftware.com");
    assert_string_equal(cfg->officespace.graphql_url,
                        "https://api.officespacesoftware.com/graphql");
    assert_string_equal(cfg->officespace.graphql_api_key, "abcdefgh12345678");
    assert_int_equal(cfg->officespace.timeout_ms, 30000);
    assert_int_equal(cfg->presence.interval_ms, 60000);
    assert_int_equal(cfg->presence.mutations_per_request, 50);
    assert_string_equal(cfg->status.listen, "127.0.0.1:9464");
    assert_false(cfg->mapped.meta.present);
    osc_config_free(cfg);
}

/* A key from a CRLF .env file would break every request: refused, not shown. */
static void test_secret_control_chars(void **state)
{
    struct osc_err err;
    (void)state;

    setenv("OSC_TEST_CRLF_KEY", "crlf-key-0123456789\r", 1);
    assert_null(load("officespace:\n  hostname: acme\n  api_key: ${OSC_TEST_CRLF_KEY}\n", &err));
    assert_int_equal(err.code, OSC_ECONFIG);
    assert_non_null(strstr(err.msg, "officespace.api_key: contains a control character"));
    assert_null(strstr(err.msg, "crlf-key"));
    unsetenv("OSC_TEST_CRLF_KEY");
}

static void test_full_file(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;
    const struct osc_conf_destination *d;

    (void)state;
    setenv("OSC_TEST_KEY", "key-from-env-0123", 1);
    cfg = load("officespace:\n"
               "  hostname: acme\n"
               "  base_url: http://127.0.0.1:18081/\n"
               "  api_key: ${OSC_TEST_KEY}\n"
               "  graphql_api_key: ${OSC_UNSET_VAR:-gql-default-key}\n"
               "mapped:\n  token: tok-123456\n"
               "presence:\n  buildings: [BLDG1, BLDG2]\n  interval: 5s\n  state: /tmp/x.db\n"
               "destinations:\n"
               "  employees:\n    template: upsert_employees\n    source_name: HR\n"
               "    commit: commit\n    batch: {size: 250}\n"
               "    headers: 'X-A: 1, X-B:two'\n"
               "  commit:\n    template: trigger_directory_import\n    source_name: HR\n"
               "  manual:\n    url: /api/1/employees/{id}\n    method: put\n"
               "    exclude: [password, address.street]\n"
               "    batch:\n      grouping: property\n      property_name: records\n"
               "      other_props: {mode: upsert, n: 3}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_string_equal(cfg->officespace.rest_base, "http://127.0.0.1:18081");
    assert_string_equal(cfg->officespace.api_key, "key-from-env-0123");
    assert_string_equal(cfg->officespace.graphql_api_key, "gql-default-key");
    assert_int_equal(cfg->presence.buildings.n, 2);
    assert_string_equal(cfg->presence.buildings.v[1], "BLDG2");
    assert_int_equal(cfg->presence.interval_ms, 5000);
    assert_int_equal(cfg->destinations.n, 3);
    d = osc_config_destination(cfg, "employees");
    assert_non_null(d);
    assert_string_equal(d->name, "employees");
    assert_int_equal(d->template_, OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES);
    assert_int_equal(d->batch.size, 250);
    assert_int_equal(d->batch.max_bytes, 5 * 1024 * 1024);
    assert_int_equal(d->headers.n, 2);
    assert_string_equal(d->headers.keys[1], "X-B");
    assert_string_equal(d->headers.vals[1], "two");
    assert_true(d->clear_staging);
    d = osc_config_destination(cfg, "manual");
    assert_int_equal(d->method, OSC_CONF_METHOD_PUT);
    assert_int_equal(d->exclude.n, 2);
    assert_int_equal(d->batch.grouping, OSC_CONF_GROUPING_PROPERTY);
    assert_int_equal(json_integer_value(json_object_get(d->batch.other_props, "n")), 3);
    assert_null(osc_config_destination(cfg, "nope"));
    osc_config_free(cfg);
}

static void test_errors_name_position(void **state)
{
    (void)state;
    expect_error("officespace:\n  hostname: acme\n  api_key: abcdefgh\n  colour: red\n",
                 "t.yaml:4:3: unknown key 'colour' in officespace");
    expect_error("officespace:\n  hostname: acme\n  api_key: abcdefgh\n  timeout: soon\n",
                 "t.yaml:4:12: officespace.timeout: expected a duration");
    expect_error("officespace:\n  hostname: acme\n  api_key: abcdefgh\n  verify_tls: maybe\n",
                 "t.yaml:4:15: officespace.verify_tls: expected true or false");
    expect_error("officespace:\n  hostname: acme\n  api_key: [a]\n",
                 "t.yaml:3:12: officespace.api_key: expected");
    expect_error("officespace:\n  hostname: acme\n  api_key: ${OSC_SURELY_UNSET_1}\n",
                 "t.yaml:3:12: environment variable OSC_SURELY_UNSET_1 is not set");
    expect_error("officespace:\n  hostname: acme\n", "set api_key");
    expect_error("officespace: {hostname: acme, api_key: abcdefgh}\npresence: {buildings: [B]}\n",
                 "presence needs a mapped: section");
    expect_error("officespace:\n  hostname: acme\n  api_key: abcdefgh\n  hostname: b\n",
                 "t.yaml:4:3: duplicate key 'hostname'");
    expect_error("officespace:\n  hostname: acme\n api_key: x\n", "t.yaml:3:2: YAML syntax error");
    expect_error("officespace: {hostname: acme, api_key: abcdefgh}\n"
                 "destinations:\n  d:\n    template: upsert_employees\n    batch: {size: 0}\n",
                 "t.yaml:5:19: destinations.d.batch.size: '0' is out of range");
    expect_error("officespace: {hostname: acme, api_key: abcdefgh}\n"
                 "destinations:\n  d:\n    template: upsert\n",
                 "destinations.d.template: expected one of manual, upsert_employees");
    expect_error("officespace: {hostname: acme, api_key: abcdefgh}\n"
                 "destinations:\n  d:\n    url: /x\n    headers: {Authorization: x}\n",
                 "cannot be overridden");
    expect_error("officespace: {hostname: acme, api_key: abcdefgh}\n"
                 "destinations:\n  d:\n    template: upsert_employees\n    commit: zzz\n",
                 "unknown destination 'zzz'");
    expect_error("", "is empty");
    expect_error("- a\n- b\n", "expected a mapping of sections");
}

static void test_key_file_permissions(void **state)
{
    char *key, *text = NULL;
    struct osc_err err;
    struct osc_config *cfg;

    (void)state;
    key = th_write_file("key", "file-key-0123456789\n");
    chmod(key, 0644);
    assert_true(asprintf(&text, "officespace:\n  hostname: a\n  api_key_file: %s\n", key) > 0);
    cfg = load(text, &err);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "readable by group or others"));
    chmod(key, 0600);
    cfg = load(text, &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->officespace.api_key, "file-key-0123456789");
    osc_config_free(cfg);
    free(text);
    free(key);
    th_tmpdir_cleanup();
}

static void test_dump_redacts(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    (void)state;
    cfg = load("officespace: {hostname: acme, api_key: dumpsecret123}\n", &err);
    assert_non_null(cfg);
    f = open_memstream(&buf, &len);
    osc_config_dump(cfg, f);
    fclose(f);
    assert_null(strstr(buf, "dumpsecret123"));
    assert_non_null(strstr(buf, "api_key: \"***\""));
    assert_non_null(strstr(buf, "hostname: \"acme\""));
    free(buf);
    osc_config_free(cfg);
}

static void test_describe_lists_every_section(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    osc_config_describe(f, 0);
    fclose(f);
    assert_non_null(strstr(buf, "officespace.api_key"));
    assert_non_null(strstr(buf, "presence.mutations_per_request"));
    assert_non_null(strstr(buf, "destinations.NAME.batch.grouping"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_secret_control_chars),
        cmocka_unit_test(test_errors_name_position),
        cmocka_unit_test(test_key_file_permissions),
        cmocka_unit_test(test_dump_redacts),
        cmocka_unit_test(test_describe_lists_every_section),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    osc_log_secret_clear();
    return rc;
}
