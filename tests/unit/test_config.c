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
#include <sys/types.h>

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
               "    batch:\n      enabled: true\n      grouping: property\n"
               "      property_name: records\n"
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
    expect_error("officespace:\n  hostname: acme\ndestinations:\n  d: {url: /x}\n",
                 "t.yaml:2:3: officespace: set api_key (e.g. ${OFFICESPACE_API_KEY}) or "
                 "api_key_file: destination d sends to the OfficeSpace REST API");
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

#define OS_OK "officespace: {hostname: acme, api_key: abcdefgh}\n"

static void expect_ok(const char *text)
{
    struct osc_err err;
    struct osc_config *cfg = load(text, &err);
    if (!cfg)
        fail_msg("expected the config to load, got '%s'\n%s", err.msg, text);
    osc_config_free(cfg);
}

/* Every URL is read by curl_url(): http(s) only, the scheme in any case, plain http only to
 * loopback unless the section allows it. */
static void test_urls(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;
    const struct osc_conf_destination *d;

    (void)state;
    expect_error(
        "officespace:\n  base_url: ftp://files.example.com/\n  api_key: abcdefgh\n",
        "t.yaml:2:3: officespace.base_url: expected an http:// or https:// URL, not ftp://");
    expect_error("officespace:\n  base_url: file:///etc/passwd\n  api_key: abcdefgh\n",
                 "officespace.base_url: expected an http:// or https:// URL, not file://");
    expect_error("officespace:\n  base_url: not a url\n  api_key: abcdefgh\n",
                 "officespace.base_url: not a URL");
    expect_error("officespace:\n  base_url: \"\"\n  api_key: abcdefgh\n",
                 "t.yaml:2:13: officespace.base_url: must not be empty");
    expect_error("officespace:\n  base_url: https://\n  api_key: abcdefgh\n",
                 "officespace.base_url: not a URL");
    expect_error("officespace:\n  base_url: http://acme.example.com\n  api_key: abcdefgh\n",
                 "officespace.base_url: plain http:// is allowed only to a loopback host "
                 "(127.0.0.0/8, ::1, localhost), not acme.example.com: use https://, or set "
                 "officespace.allow_insecure_http: true");
    /* looks like loopback to a prefix test, is not to the parser */
    expect_error("officespace:\n  base_url: http://127.0.0.1.example.com\n  api_key: abcdefgh\n",
                 "not 127.0.0.1.example.com");
    expect_error("officespace:\n  base_url: http://localhost@evil.example\n  api_key: abcdefgh\n",
                 "not evil.example");
    expect_ok("officespace:\n  base_url: http://acme.example.com\n  api_key: abcdefgh\n"
              "  allow_insecure_http: true\n");
    expect_ok("officespace:\n  base_url: http://127.0.0.9:1\n  api_key: abcdefgh\n");
    expect_ok("officespace:\n  base_url: http://[::1]:8080/\n  api_key: abcdefgh\n");
    expect_ok("officespace:\n  base_url: http://LocalHost:8080/\n  api_key: abcdefgh\n");
    expect_error("officespace:\n  hostname: acme\n  api_key: abcdefgh\n"
                 "  graphql_url: ftp://api.example.com/graphql\n",
                 "t.yaml:4:3: officespace.graphql_url: expected an http:// or https:// URL");
    expect_error(OS_OK "mapped:\n  url: http://api.mapped.example/graphql\n  token: tok-0123456\n",
                 "mapped.url: plain http:// is allowed only to a loopback host (127.0.0.0/8, ::1, "
                 "localhost), not api.mapped.example: use https://, or set "
                 "mapped.allow_insecure_http: true");
    expect_ok(OS_OK "mapped:\n  url: http://api.mapped.example/graphql\n  token: tok-0123456\n"
                    "  allow_insecure_http: true\n");
    /* the officespace section's allowance is not the destination's */
    expect_error(
        "officespace: {base_url: http://os.example, api_key: abcdefgh, "
        "allow_insecure_http: true}\n"
        "destinations:\n  d:\n    url: http://hooks.example.com/x\n",
        "t.yaml:4:5: destinations.d.url: plain http:// is allowed only to a loopback host");
    expect_ok(OS_OK "destinations:\n  d:\n    url: http://hooks.example.com/x\n"
                    "    allow_insecure_http: true\n");
    expect_error(OS_OK "destinations:\n  d:\n    url: file:///etc/passwd\n",
                 "destinations.d.url: expected an http:// or https:// URL, not file://");
    expect_error(OS_OK "destinations:\n  d:\n    url: /a b/{id}\n",
                 "destinations.d.url: not a path under the REST base");
    expect_error(OS_OK "destinations:\n  d:\n    url: /x/{id\n",
                 "destinations.d.url: unbalanced or empty {} in the URL");
    expect_error("officespace: {base_url: https://os.example, api_key: abcdefgh}\n"
                 "destinations:\n  d:\n    url: https://{hostname}.officespacesoftware.com/x\n",
                 "destinations.d.url: uses {hostname} but officespace.hostname is not set");
    expect_error(
        OS_OK "destinations:\n  d:\n    url: /x\n    response_webhook: ftp://h.example/c\n",
        "t.yaml:5:5: destinations.d.response_webhook: expected an http:// or https:// URL");
    expect_error(OS_OK
                 "destinations:\n  d:\n    url: /x\n    response_webhook: http://h.example/c\n",
                 "destinations.d.response_webhook: plain http://");

    /* HTTPS:// is https:// (it used to be read as a relative path), everywhere */
    cfg = load("officespace:\n  base_url: HTTPS://acme.example.com/\n  api_key: abcdefgh\n"
               "  graphql_url: Https://api.example.com/graphql\n"
               "mapped: {url: HTTP://127.0.0.1:9/graphql, token: tok-0123456}\n"
               "destinations:\n  d:\n    url: HTTPS://ACME.officespacesoftware.com/api/1/{id}\n"
               "    response_webhook: HTTP://localhost:9/calls\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_string_equal(cfg->officespace.rest_base, "https://acme.example.com");
    assert_string_equal(cfg->officespace.graphql_url, "https://api.example.com/graphql");
    assert_string_equal(cfg->mapped.url, "http://127.0.0.1:9/graphql");
    d = osc_config_destination(cfg, "d");
    assert_string_equal(d->url, "https://ACME.officespacesoftware.com/api/1/{id}");
    assert_string_equal(d->response_webhook, "http://localhost:9/calls");
    assert_true(cfg->uses_rest); /* an officespacesoftware.com host gets the key */
    osc_config_free(cfg);
}

/* An empty string never works: any secret, any key, an empty ${VAR} included. */
static void test_empty_values(void **state)
{
    (void)state;
    expect_error("officespace:\n  hostname: acme\n  api_key: \"\"\n",
                 "t.yaml:3:12: officespace.api_key: must not be empty");
    expect_error("officespace:\n  hostname: acme\n  api_key: ${OSC_TEST_SURELY_UNSET:-}\n",
                 "officespace.api_key: must not be empty (${OSC_TEST_SURELY_UNSET:-} expands to "
                 "nothing)");
    setenv("OSC_TEST_EMPTY_VAR", "", 1);
    expect_error("officespace:\n  hostname: acme\n  graphql_api_key: ${OSC_TEST_EMPTY_VAR}\n",
                 "officespace.graphql_api_key: must not be empty (${OSC_TEST_EMPTY_VAR} expands");
    unsetenv("OSC_TEST_EMPTY_VAR");
    expect_error(OS_OK "mapped: {token: \"\"}\n", "mapped.token: must not be empty");
    expect_error(OS_OK "mapped: {token: tok-0123456}\npresence:\n  buildings: [B]\n  state: \"\"\n",
                 "t.yaml:5:10: presence.state: must not be empty; remove the key for the "
                 "default, osconnect-state.db");
    expect_error(OS_OK "mapped: {token: tok-0123456}\npresence:\n  buildings: [B, \"\"]\n",
                 "presence.buildings: list items must not be empty");
    expect_error(OS_OK "destinations:\n  d: {url: /x, dead_letter: \"\"}\n",
                 "destinations.d.dead_letter: must not be empty");
    expect_error(OS_OK "destinations:\n  d: {url: \"\"}\n",
                 "destinations.d.url: must not be empty");
}

/* A PEM bundle curl can load, checked before anything is sent. */
static void test_ca_file(void **state)
{
    char *pem = th_write_file("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                        "-----END CERTIFICATE-----\n");
    char *der = th_write_file("ca.der", "\x30\x82\x01\x0a\x02\x82");
    char *text = NULL, fifo[512];

    (void)state;
    assert_true(asprintf(&text, OS_OK "mapped: {token: tok-0123456, ca_file: %s}\n", pem) > 0);
    expect_ok(text);
    free(text);
    assert_true(asprintf(&text, "officespace:\n  hostname: acme\n  ca_file: %s\n", der) > 0);
    expect_error(text, "t.yaml:3:3: officespace.ca_file: ");
    expect_error(text, "ca.der holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    free(text);
    expect_error("officespace:\n  hostname: acme\n  ca_file: /nonexistent/ca.pem\n",
                 "officespace.ca_file: cannot open /nonexistent/ca.pem: No such file");
    assert_true(asprintf(&text, "officespace:\n  hostname: acme\n  ca_file: %s\n", th_tmpdir()) >
                0);
    expect_error(text, "is not a regular file");
    free(text);
    /* a FIFO is refused, not waited on */
    snprintf(fifo, sizeof(fifo), "%s/ca.fifo", th_tmpdir());
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_true(asprintf(&text, OS_OK "mapped: {token: tok-0123456, ca_file: %s}\n", fifo) > 0);
    expect_error(text, "mapped.ca_file: ");
    expect_error(text, "ca.fifo is not a regular file");
    free(text);
    free(pem);
    free(der);
    th_tmpdir_cleanup();
}

static void test_status_listen(void **state)
{
    static const char *const good[] = {"127.0.0.1:9464", "0.0.0.0:0",    "[::1]:9464",
                                       "[::]:65535",     "localhost:80", "metrics.example:9464",
                                       "host-1:1"};
    static const char *const bad[] = {
        "garbage", "127.0.0.1", ":9464",    "127.0.0.1:",   "127.0.0.1:65536",
        "[::1]80", "[::1]:",    "::1:9464", "300.1.1.1:80", "1.2.3:80",
        "[zz]:1",  "host_x:80", "-host:80", "host..x:80",   "127.0.0.1:9464/x",
        "a b:80",  "[::1]:-1",  "host:+80"};
    char text[256];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        snprintf(text, sizeof(text), OS_OK "status: {listen: \"%s\"}\n", good[i]);
        expect_ok(text);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        snprintf(text, sizeof(text), OS_OK "status: {listen: \"%s\"}\n", bad[i]);
        expect_error(text, "t.yaml:2:10: status.listen: expected HOST:PORT with an IPv4 address, "
                           "[IPv6] or a host name and a port from 0 to 65535");
    }
}

/* Each part needs only its own credentials. */
static void test_credentials_by_use(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;

    (void)state;
    /* presence only: no REST key */
    cfg = load("officespace:\n  hostname: acme\n  graphql_api_key: gql-0123456\n"
               "mapped: {token: tok-0123456}\npresence: {buildings: [B]}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_null(cfg->officespace.api_key);
    assert_false(cfg->uses_rest);
    osc_config_free(cfg);
    expect_error("officespace: {hostname: acme}\nmapped: {token: tok-0123456}\n"
                 "presence: {buildings: [B]}\n",
                 "t.yaml:1:14: officespace: set graphql_api_key (or api_key): presence pushes go "
                 "to OfficeSpace GraphQL");
    expect_error(OS_OK "mapped: {url: https://m.example/graphql}\npresence: {buildings: [B]}\n",
                 "t.yaml:2:9: mapped: set token (e.g. ${MAPPED_API_TOKEN}) or token_file: "
                 "presence reads Mapped");
    /* delivery only: no GraphQL key, no Mapped token (even with a mapped: section) */
    cfg = load("officespace: {hostname: acme, api_key: rest-0123456}\n"
               "mapped: {url: https://m.example/graphql}\n"
               "destinations:\n  e: {template: upsert_employees}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_true(cfg->uses_rest);
    osc_config_free(cfg);
    expect_error("officespace: {hostname: acme}\ndestinations:\n  t: {template: "
                 "trigger_directory_import}\n",
                 "destination t sends to the OfficeSpace REST API");
    /* a field in the host: the engine never sends the key there, so none is needed */
    cfg = load("officespace: {hostname: acme}\ndestinations:\n  t: {url: "
               "\"https://{tenant}.officespacesoftware.com/api/1/x\"}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_false(cfg->uses_rest);
    osc_config_free(cfg);
    expect_error("officespace: {hostname: acme}\ndestinations:\n  t: {url: "
                 "\"https://{hostname}.officespacesoftware.com/api/1/{id}\"}\n",
                 "destination t sends to the OfficeSpace REST API");
    /* a destination on another host needs no OfficeSpace key at all */
    cfg = load("officespace: {hostname: acme}\ndestinations:\n  hook: {url: "
               "https://hooks.example.com/in}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_false(cfg->uses_rest);
    osc_config_free(cfg);
}

/* The template table: every key a template does not use is refused, naming key and template. */
static void test_template_keys(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;
    const struct osc_conf_destination *d;

    (void)state;
    expect_error(OS_OK "destinations:\n  employees:\n    template: upsert_employees\n"
                       "    format: form\n",
                 "t.yaml:5:5: destinations.employees.format: template upsert_employees does not "
                 "use format (it always sends a JSON array of employee records)");
    expect_error(OS_OK "destinations:\n  e:\n    template: upsert_employees\n    method: PUT\n",
                 "destinations.e.method: template upsert_employees does not use method");
    expect_error(OS_OK "destinations:\n  e:\n    template: upsert_employees\n"
                       "    batch: {size: 10, enabled: false}\n",
                 "t.yaml:5:23: destinations.e.batch.enabled: template upsert_employees does not "
                 "use batch.enabled");
    expect_error(OS_OK "destinations:\n  e:\n    template: upsert_employees\n"
                       "    batch:\n      grouping: property\n",
                 "destinations.e.batch.grouping: template upsert_employees does not use "
                 "batch.grouping");
    expect_error(OS_OK "destinations:\n  e:\n    template: upsert_employees\n"
                       "    batch:\n      code: x\n",
                 "does not use batch.code");
    expect_error(OS_OK "destinations:\n  t:\n    template: trigger_directory_import\n"
                       "    headers: {X-A: b}\n",
                 "destinations.t.headers: template trigger_directory_import does not use headers "
                 "(it sends one POST Source=<source_name> with no records and no extra headers)");
    expect_error(OS_OK "destinations:\n  t:\n    template: trigger_directory_import\n"
                       "    batch: {size: 1}\n",
                 "destinations.t.batch: template trigger_directory_import does not use batch");
    expect_error(OS_OK "destinations:\n  t:\n    template: trigger_directory_import\n"
                       "    dead_letter: x.jsonl\n",
                 "does not use dead_letter");
    expect_error(OS_OK "destinations:\n  t:\n    template: trigger_directory_import\n"
                       "    max_in_flight: 2\n",
                 "does not use max_in_flight");
    expect_error(OS_OK "destinations:\n  t:\n    template: trigger_directory_import\n"
                       "    exclude: [a]\n",
                 "does not use exclude");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    source_name: HR\n",
                 "destinations.m.source_name: template manual does not use source_name (it sends "
                 "the records as they are: no field mapping, staging area or source)");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    fields: {a: B}\n",
                 "template manual does not use fields");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    clear_staging: false\n",
                 "template manual does not use clear_staging");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    min_staged_ratio: 0.5\n",
                 "template manual does not use min_staged_ratio");
    /* what each template uses is accepted */
    expect_ok(OS_OK "destinations:\n  e:\n    template: upsert_employees\n    active: false\n"
                    "    url: /api/1/employee_batch_imports\n    headers: {X-A: b}\n"
                    "    exclude: [ssn]\n    fields: {office: Udf0}\n    source_name: HR\n"
                    "    clear_staging: false\n    commit: t\n    min_staged_ratio: 0.8\n"
                    "    batch: {size: 50, max_bytes: 1MiB}\n    retry: {max_attempts: 3}\n"
                    "    max_retry_wait: 1m\n    response_webhook: https://h.example/c\n"
                    "    dead_letter: e.jsonl\n    max_in_flight: auto\n"
                    "    max_in_flight_limit: 16\n    max_errors: 10\n    timeout: 5s\n"
                    "  t:\n    template: trigger_directory_import\n    active: true\n"
                    "    url: /api/1/employee_directory\n    source_name: HR\n"
                    "    retry: {max_attempts: 3}\n    max_retry_wait: 1m\n    timeout: 5s\n"
                    "    response_webhook: https://h.example/c\n"
                    "  m:\n    url: /x/{id}\n    method: PUT\n    format: ndjson\n"
                    "    headers: {X-A: b}\n    exclude: [a]\n    commit: t\n"
                    "    batch: {enabled: true, size: 5, grouping: code, code: x}\n"
                    "    dead_letter: m.jsonl\n    max_in_flight: 3\n    max_errors: 0\n");

    /* manual: one record per request unless batch.enabled; the batch keys need it */
    cfg = load(OS_OK "destinations:\n  m: {url: /x}\n  e: {template: upsert_employees}\n", &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    d = osc_config_destination(cfg, "m");
    assert_false(d->batch.enabled);
    assert_int_equal(d->max_in_flight, 0); /* auto */
    assert_int_equal(d->max_in_flight_limit, 64);
    assert_int_equal(d->max_errors, 1000);
    d = osc_config_destination(cfg, "e");
    assert_true(d->min_staged_ratio > 0.599 && d->min_staged_ratio < 0.601);
    osc_config_free(cfg);
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    batch:\n      grouping: property\n"
                       "      property_name: records\n",
                 "t.yaml:6:7: destinations.m.batch.grouping: set batch.enabled: true to use it");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    batch: {size: 10}\n",
                 "destinations.m.batch.size: set batch.enabled: true to use it");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    format: form\n"
                       "    batch: {enabled: true}\n",
                 "destinations.m.batch.enabled: format form sends one record per request");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    batch: {enabled: true, code: x}\n",
                 "destinations.m.batch.code: used only with grouping: code");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n"
                       "    batch: {enabled: true, property_name: r}\n",
                 "destinations.m.batch.property_name: used only with grouping: property");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    max_in_flight: 4\n"
                       "    max_in_flight_limit: 8\n",
                 "destinations.m.max_in_flight_limit: used only with max_in_flight: auto");
    expect_error(OS_OK "destinations:\n  m:\n    url: /x\n    max_in_flight: 0\n",
                 "destinations.m.max_in_flight: '0' is out of range (an integer or auto from 1");
    expect_error(OS_OK "destinations:\n  e:\n    template: upsert_employees\n"
                       "    min_staged_ratio: 1.5\n",
                 "destinations.e.min_staged_ratio: expected a ratio from 0 to 1");
    /* a commit must be a trigger of the same source */
    expect_error(OS_OK "destinations:\n  e: {template: upsert_employees, commit: m}\n"
                       "  m: {url: /x}\n",
                 "destinations.e.commit: destination m has template manual; a commit must be "
                 "trigger_directory_import");
    expect_error(OS_OK "destinations:\n  e: {template: upsert_employees, commit: t}\n"
                       "  t: {template: trigger_directory_import, source_name: HR}\n",
                 "destinations.e.commit: this destination stages source 'osconnect' but t "
                 "triggers source 'HR'");
}

/* A second document used to be ignored. */
static void test_one_document(void **state)
{
    (void)state;
    expect_error(OS_OK "---\nofficespace: {hostname: other}\n",
                 "t.yaml:2:1: a second YAML document starts here; a config file holds one");
    expect_error(OS_OK "...\n---\nstatus: {listen: \"127.0.0.1:1\"}\n", "a second YAML document");
    expect_ok("---\n" OS_OK "...\n");
}

/* Aliases are fine in moderation, refused as a bomb, never followed into a cycle. */
static void test_aliases(void **state)
{
    char *bomb = th_read_file(th_fixture("config/alias-bomb.yaml"));
    struct osc_err err;
    struct osc_config *cfg;

    (void)state;
    assert_non_null(bomb);
    assert_null(load(bomb, &err));
    assert_int_equal(err.code, OSC_ECONFIG);
    /* refused where the aliases pass the limit, at the alias, before anything is expanded */
    assert_non_null(strstr(err.msg, "t.yaml:19:16: destinations.bomb.batch.other_props.f[0]: "
                                    "alias *e takes the YAML aliases of this file past 100000 "
                                    "expanded nodes"));
    free(bomb);
    expect_error(OS_OK "x: &a [1, *a]\n",
                 "t.yaml:2:11: x[1]: alias *a is inside the node it names");
    expect_error(OS_OK "destinations:\n  d: {url: /x, exclude: *nope}\n",
                 "destinations.d.exclude: alias *nope names no anchor");
    /* aliases may not nest deeper than plain YAML may */
    {
        char text[4096];
        size_t n = (size_t)snprintf(text, sizeof(text),
                                    OS_OK "destinations:\n  d:\n    url: /x\n    batch:\n"
                                          "      enabled: true\n      grouping: property\n"
                                          "      property_name: r\n      other_props: {a: &deep ");
        for (int i = 0; i < 55; i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "[");
        for (int i = 0; i < 55; i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "]");
        /* &deep is 55 levels at level 6; *deep under 4 more levels would reach 64 */
        snprintf(text + n, sizeof(text) - n, ", b: [[[[*deep]]]], c: [[[[[*deep]]]]]}\n");
        expect_error(text, "alias *deep nests deeper than 64 levels");
    }
    /* a shared retry policy, used by many destinations, is what aliases are for */
    cfg = load(OS_OK "destinations:\n  a: {url: /a, retry: &r {max_attempts: 3, base: 1s}}\n"
                     "  b: {url: /b, retry: *r}\n  c: {url: /c, retry: *r}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_int_equal(osc_config_destination(cfg, "c")->retry.max_attempts, 3);
    assert_int_equal(osc_config_destination(cfg, "c")->retry.base_ms, 1000);
    osc_config_free(cfg);
}

/*
 * Parsing is linear; these inputs tell it from the old quadratic loader
 * without timing anything: they run well inside ctest's 300 s timeout now,
 * and would run far past it before (figures measured on the 2-core dev VM).
 *
 * - Depth: libyaml's scanner does work proportional to the flow nesting
 *   depth for each token, so [[[...]]] cost depth^2: 40,000 levels took
 *   2.1 s, so these 1,000,000 levels (2 MB) would take about 625 x 2.1 s,
 *   over 20 minutes. The composer stops at level 65, after 65 tokens.
 * - Names: every destination was compared with every earlier one, and each
 *   commit looked up by a linear search: 50,000 destinations that commit to
 *   the last one took 37 s under ASan (14 s in a release build); these
 *   200,000 would take 16 times that, about 10 minutes under ASan. Sorting
 *   and binary search make them about 7 million comparisons: the whole
 *   test takes a few seconds under ASan (peak memory about 800 MB, most of
 *   it ASan's quarantine).
 */
static void test_linear_parsing(void **state)
{
    enum { DEPTH = 1000000, DESTS = 200000 };
    static const char head[] = OS_OK "destinations:\n  d:\n    url: /x\n    batch:\n"
                                     "      enabled: true\n      grouping: property\n"
                                     "      property_name: r\n      other_props: {a: ";
    size_t n = sizeof(head) - 1;
    char *text = malloc(n + 2 * DEPTH + 16), name[32];
    struct osc_err err;
    struct osc_config *cfg;
    FILE *f;
    size_t len = 0;

    (void)state;
    assert_non_null(text);
    memcpy(text, head, n);
    memset(text + n, '[', DEPTH);
    memset(text + n + DEPTH, ']', DEPTH);
    memcpy(text + n + 2 * DEPTH, "}\n", 3);
    assert_null(load(text, &err));
    /* five levels of sections, 59 brackets: the 60th (column 23 + 60) is level 65 */
    assert_non_null(strstr(err.msg, "t.yaml:9:83: destinations.d.batch.other_props.a[0][0]"));
    assert_non_null(strstr(err.msg, "nested deeper than 64 levels"));
    free(text);

    /* 200,000 destinations, each committing to the last one (a lookup per destination) */
    text = NULL;
    f = open_memstream(&text, &len);
    fputs(OS_OK "destinations:\n", f);
    for (int i = 0; i < DESTS - 1; i++)
        fprintf(f, "  dest%07d: {template: upsert_employees, commit: zlast}\n", i);
    fputs("  zlast: {template: trigger_directory_import}\n", f);
    fclose(f);
    cfg = load(text, &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_int_equal(cfg->destinations.n, DESTS);
    for (int i = 0; i < DESTS - 1; i += 9973) {
        snprintf(name, sizeof(name), "dest%07d", i);
        assert_string_equal(osc_config_destination(cfg, name)->name, name);
    }
    assert_int_equal(osc_config_destination(cfg, "zlast")->template_,
                     OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT);
    assert_null(osc_config_destination(cfg, "dest"));
    osc_config_free(cfg);
    /* a duplicate among them is still found, at its second place */
    memcpy(strstr(text, "  dest0150000:"), "  dest0000007:", 14);
    assert_null(load(text, &err));
    assert_non_null(strstr(err.msg, "t.yaml:150003:3: destinations: duplicate name 'dest0000007'"));
    free(text);
}

static void test_dump_and_describe_new_keys(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    (void)state;
    cfg = load(OS_OK "destinations:\n  e: {template: upsert_employees, min_staged_ratio: 0.75}\n",
               &err);
    assert_non_null(cfg);
    f = open_memstream(&buf, &len);
    osc_config_dump(cfg, f);
    fclose(f);
    assert_non_null(strstr(buf, "    max_in_flight: auto\n"));
    assert_non_null(strstr(buf, "    min_staged_ratio: 0.75\n"));
    free(buf);
    osc_config_free(cfg);

    buf = NULL;
    f = open_memstream(&buf, &len);
    osc_config_describe(f, 0);
    fclose(f);
    assert_non_null(strstr(buf, "Body encoding: json, form or ndjson. (manual only)"));
    assert_non_null(strstr(buf, "Extra headers: a mapping or \"name:value,name2:value2\". "
                                "(manual, upsert_employees only)"));
    assert_non_null(strstr(buf, "(upsert_employees, trigger_directory_import only)"));
    assert_non_null(strstr(buf, "destinations.NAME.max_in_flight "));
    assert_non_null(strstr(strstr(buf, "destinations.NAME.max_in_flight "), " int|auto auto "));
    free(buf);
}

/* ${VAR:?message} as in the shell: the message, naming file:line:col and VAR, when VAR is
 * unset or empty; the value when it is set. ${VAR:-default} and $${ are unchanged. */
static void test_env_required(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;

    (void)state;
    unsetenv("OSC_TEST_REQ_UNSET");
    expect_error("officespace:\n  hostname: acme\n"
                 "  api_key: ${OSC_TEST_REQ_UNSET:?set it to the REST key from OfficeSpace}\n",
                 "t.yaml:3:12: OSC_TEST_REQ_UNSET: set it to the REST key from OfficeSpace (the "
                 "environment variable is not set)");
    setenv("OSC_TEST_REQ_EMPTY", "", 1);
    expect_error("officespace:\n  hostname: acme\n  api_key: \"${OSC_TEST_REQ_EMPTY:?no key}\"\n",
                 "t.yaml:3:12: OSC_TEST_REQ_EMPTY: no key (the environment variable is empty)");
    /* an empty message still names the variable */
    expect_error("officespace:\n  hostname: acme\n  api_key: ${OSC_TEST_REQ_UNSET:?}\n",
                 "t.yaml:3:12: OSC_TEST_REQ_UNSET: must be set and not empty (the environment "
                 "variable is not set)");
    /* inside a longer value, and on a later line of a flow mapping: the value's position */
    expect_error("officespace: {hostname: acme,\n  base_url: "
                 "\"http://127.0.0.1:${OSC_TEST_REQ_UNSET:?the port}/\", api_key: abcdefgh}\n",
                 "t.yaml:2:13: OSC_TEST_REQ_UNSET: the port (the environment variable is not "
                 "set)");
    expect_error("officespace:\n  hostname: acme\n  api_key: ${:?x}\n",
                 "t.yaml:3:12: bad environment variable reference");

    setenv("OSC_TEST_REQ_SET", "key-from-env-required", 1);
    setenv("OSC_TEST_REQ_PORT", "18081", 1);
    cfg = load("officespace:\n  hostname: acme\n"
               "  base_url: http://127.0.0.1:${OSC_TEST_REQ_PORT:?port}/\n"
               "  api_key: ${OSC_TEST_REQ_SET:?set the key}\n"
               "  graphql_api_key: ${OSC_TEST_REQ_UNSET:-gql-default-key}\n"
               "  graphql_url: http://127.0.0.1:1/$${literal}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_string_equal(cfg->officespace.api_key, "key-from-env-required");
    assert_string_equal(cfg->officespace.rest_base, "http://127.0.0.1:18081");
    assert_string_equal(cfg->officespace.graphql_api_key, "gql-default-key");
    assert_non_null(strstr(cfg->officespace.graphql_url, "/${literal}"));
    osc_config_free(cfg);
    unsetenv("OSC_TEST_REQ_EMPTY");
    unsetenv("OSC_TEST_REQ_SET");
    unsetenv("OSC_TEST_REQ_PORT");
    osc_log_secret_clear();
}

/* destinations.*.source, flush_interval and presence.coordination: what each type needs,
 * keys of another type refused by name, defaults, and the secrets redacted in the dump. */
static void test_sources(void **state)
{
    struct osc_err err;
    struct osc_config *cfg;
    const struct osc_conf_destination *d;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    (void)state;

    cfg = load(OS_OK "destinations:\n"
                     "  a: {url: /x, source: {type: spool, path: /srv/in}}\n"
                     "  b: {url: /x, flush_interval: 250ms,\n"
                     "      source: {type: nats, url: 'nats://h1:4222,tls://h2', stream: S,\n"
                     "               token: nats-secret-4711}}\n"
                     "  c: {url: /x, source: {type: http, ingest_token: ingest-secret-4711}}\n"
                     "  d: {url: /x}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    d = osc_config_destination(cfg, "a");
    assert_int_equal(d->source.type, OSC_CONF_SOURCE_SPOOL);
    assert_string_equal(d->source.path, "/srv/in");
    assert_int_equal(d->flush_interval_ms, 5000);
    d = osc_config_destination(cfg, "b");
    assert_int_equal(d->source.type, OSC_CONF_SOURCE_NATS);
    assert_int_equal(d->flush_interval_ms, 250);
    assert_int_equal(d->source.ack_wait_ms, 30000);
    assert_int_equal(d->source.max_ack_pending, 1000);
    assert_null(d->source.durable);
    d = osc_config_destination(cfg, "c");
    assert_int_equal(d->source.type, OSC_CONF_SOURCE_HTTP);
    assert_int_equal(d->source.max_body, 16 * 1024 * 1024);
    assert_int_equal(d->source.queue_max_bytes, 1024LL * 1024 * 1024);
    assert_int_equal(osc_config_destination(cfg, "d")->source.type, OSC_CONF_SOURCE_NONE);
    assert_non_null(f = open_memstream(&buf, &len));
    osc_config_dump(cfg, f);
    fclose(f);
    assert_null(strstr(buf, "nats-secret-4711"));
    assert_null(strstr(buf, "ingest-secret-4711"));
    free(buf);
    osc_config_free(cfg);

    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {type: spool}}\n",
                 "destinations.a.source.path: required");
    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {path: /srv/in}}\n",
                 "destinations.a.source.type: required: spool, http or nats");
    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {type: spool, path: /i, url: x}}\n",
                 "destinations.a.source.url: used only with type: nats");
    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {type: http}}\n",
                 "source.ingest_token: required");
    expect_error(OS_OK "destinations:\n  a:\n    url: /x\n"
                       "    source: {type: http, ingest_token: t0ken-4711, max_body: 2MiB,\n"
                       "             queue_max_bytes: 1MiB}\n",
                 "max_body (2097152 bytes) is larger than queue_max_bytes");
    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {type: nats, url: nats://h}}\n",
                 "source.stream: required");
    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {type: nats, url: http://h, "
                       "stream: S}}\n",
                 "expected nats://HOST:PORT or tls://HOST:PORT");
    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {type: nats, url: nats://h, "
                       "stream: a.b}}\n",
                 "source.stream: 'a.b': no '.'");
    expect_error(OS_OK "destinations:\n  a: {url: /x, source: {type: nats, url: nats://h, "
                       "stream: S, ca_file: /nonexistent/ca.pem}}\n",
                 "source.ca_file: cannot open /nonexistent/ca.pem");
    expect_error(OS_OK "destinations:\n  t: {template: trigger_directory_import,\n"
                       "      source: {type: spool, path: /i}}\n",
                 "template trigger_directory_import does not use source");
    expect_error(OS_OK "destinations:\n  t: {template: trigger_directory_import, "
                       "flush_interval: 1s}\n",
                 "template trigger_directory_import does not use flush_interval");

#define PRESENCE_OK                                                                                \
    "officespace: {hostname: acme, api_key: abcdefgh}\nmapped: {token: tok-0123456}\n"
    cfg = load(PRESENCE_OK "presence:\n  buildings: [B1, B2]\n  interval: 2s\n"
                           "  coordination: {type: nats, url: nats://127.0.0.1:4222}\n",
               &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_int_equal(cfg->presence.coordination.type, OSC_CONF_COORD_NATS);
    assert_string_equal(cfg->presence.coordination.bucket, "osconnect_presence");
    osc_config_free(cfg);
    expect_error(PRESENCE_OK "presence:\n  buildings: [B1]\n  interval: 500ms\n"
                             "  coordination: {type: nats, url: nats://h}\n",
                 "presence.interval: with coordination the interval must be at least 1s");
    expect_error(PRESENCE_OK "presence:\n  buildings: [B1, B1]\n"
                             "  coordination: {type: nats, url: nats://h}\n",
                 "B1 is listed twice");
    expect_error(PRESENCE_OK "presence:\n  buildings: [B1]\n"
                             "  coordination: {url: nats://h}\n",
                 "presence.coordination.type: set type: nats");
    expect_error(PRESENCE_OK "presence:\n  buildings: [B1]\n"
                             "  coordination: {type: nats, url: nats://h, bucket: a.b}\n",
                 "presence.coordination.bucket: 'a.b': use only letters");
#undef PRESENCE_OK
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
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_empty_values),
        cmocka_unit_test(test_ca_file),
        cmocka_unit_test(test_status_listen),
        cmocka_unit_test(test_credentials_by_use),
        cmocka_unit_test(test_template_keys),
        cmocka_unit_test(test_one_document),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_linear_parsing),
        cmocka_unit_test(test_dump_and_describe_new_keys),
        cmocka_unit_test(test_env_required),
        cmocka_unit_test(test_sources),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    osc_log_secret_clear();
    return rc;
}
