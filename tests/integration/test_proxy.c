/*
 * test_proxy.c - osconnect reaches OfficeSpace through the proxy named by
 * the environment (libcurl reads http_proxy, https_proxy and no_proxy; the
 * config has no proxy key). The scripted test server plays the proxy and
 * records the request line it was sent: the absolute form for http://
 * (GET http://HOST:PORT/path) and CONNECT HOST:PORT for https://. The
 * OfficeSpace hosts are under .invalid, which never resolves: only a proxy
 * can reach them.
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

static struct ts_server *proxy;

static int setup(void **state)
{
    (void)state;
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    return (proxy = ts_start()) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    ts_stop(proxy);
    proxy = NULL;
    th_tmpdir_cleanup();
    return 0;
}

static char *config(const char *base_url)
{
    char *text = NULL, *path;
    assert_true(asprintf(&text,
                         "officespace:\n  hostname: acme\n  base_url: %s\n  api_key: %s\n"
                         "  allow_insecure_http: true\n  timeout: 10s\n"
                         "destinations:\n  employees:\n    template: upsert_employees\n",
                         base_url, TH_SIM_OS_KEY) > 0);
    path = th_write_file("proxy.yaml", text);
    free(text);
    return path;
}

/* http_proxy: the request goes to the proxy in absolute form, with its headers. */
static void test_http_proxy(void **state)
{
    struct ts_response ok = {200, "Content-Type: application/json\n",
                             "{\"count\":1,\"response\":[{\"id\":1,\"name\":\"HQ\"}]}", 0, 0};
    char *cfg = config("http://officespace.invalid:8080");
    const char *argv[] = {"check", "-c", cfg, NULL};
    struct th_result r;
    struct ts_request req;
    char auth[256];

    (void)state;
    ts_push(proxy, &ok);
    setenv("http_proxy", ts_url(proxy), 1);
    assert_int_equal(th_run(argv, NULL, 30000, &r), 0);
    unsetenv("http_proxy");
    if (r.status != 0)
        fail_msg("check failed through the proxy: %s%s", r.out, r.err);
    assert_non_null(strstr(r.out, "GET http://officespace.invalid:8080/api/1/sites: ok"));
    assert_int_equal(ts_count(proxy), 1);
    assert_int_equal(ts_get(proxy, 0, &req), 0);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "http://officespace.invalid:8080/api/1/sites");
    assert_int_equal(ts_header(&req, "authorization", auth, sizeof(auth)), 0);
    assert_string_equal(auth, "Token token=" TH_SIM_OS_KEY);
    ts_request_free(&req);
    assert_null(strstr(r.out, TH_SIM_OS_KEY));
    assert_null(strstr(r.err, TH_SIM_OS_KEY));
    th_result_free(&r);
    free(cfg);
}

/* https_proxy: a CONNECT tunnel to the host and port (the proxy here refuses it, so the
 * check fails and says so). */
static void test_https_proxy(void **state)
{
    struct ts_response no = {403, NULL, "no", 0, 0};
    char *cfg = config("https://officespace.invalid:8443");
    const char *argv[] = {"check", "-c", cfg, NULL};
    struct th_result r;
    struct ts_request req;

    (void)state;
    ts_push(proxy, &no);
    setenv("https_proxy", ts_url(proxy), 1);
    assert_int_equal(th_run(argv, NULL, 30000, &r), 0);
    unsetenv("https_proxy");
    assert_int_not_equal(r.status, 0);
    assert_true(ts_count(proxy) >= 1);
    assert_int_equal(ts_get(proxy, 0, &req), 0);
    assert_string_equal(req.method, "CONNECT");
    assert_string_equal(req.url, "officespace.invalid:8443");
    ts_request_free(&req);
    assert_null(strstr(r.out, TH_SIM_OS_KEY));
    assert_null(strstr(r.err, TH_SIM_OS_KEY));
    th_result_free(&r);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_https_proxy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
