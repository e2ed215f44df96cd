/*
 * test_http.c - the HTTP client against a scripted server on 127.0.0.1:
 * what it sends (auth headers, body, User-Agent), outcome classification for
 * every status class and transport errors, the response cap, Retry-After,
 * and bounded concurrency.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/http.h"
#include "osc/log.h"
#include "osc/retry.h"
#include "testserver.h"

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(osc_http_classify(200, 0), OSC_HTTP_SENT);
    assert_int_equal(osc_http_classify(201, 0), OSC_HTTP_SENT);
    assert_int_equal(osc_http_classify(204, 0), OSC_HTTP_SENT);
    assert_int_equal(osc_http_classify(301, 0), OSC_HTTP_REJECT);
    assert_int_equal(osc_http_classify(400, 0), OSC_HTTP_REJECT);
    assert_int_equal(osc_http_classify(401, 0), OSC_HTTP_REJECT);
    assert_int_equal(osc_http_classify(404, 0), OSC_HTTP_REJECT);
    assert_int_equal(osc_http_classify(408, 0), OSC_HTTP_RETRY);
    assert_int_equal(osc_http_classify(422, 0), OSC_HTTP_REJECT);
    assert_int_equal(osc_http_classify(429, 0), OSC_HTTP_RETRY);
    assert_int_equal(osc_http_classify(500, 0), OSC_HTTP_RETRY);
    assert_int_equal(osc_http_classify(503, 0), OSC_HTTP_RETRY);
    assert_int_equal(osc_http_classify(0, CURLE_COULDNT_CONNECT), OSC_HTTP_RETRY);
    assert_int_equal(osc_http_classify(0, CURLE_OPERATION_TIMEDOUT), OSC_HTTP_RETRY);
    assert_int_equal(osc_http_classify(0, CURLE_URL_MALFORMAT), OSC_HTTP_REJECT);
}

static void test_retry_policy(void **state)
{
    struct osc_conf_retry r = {0};
    char *keys[] = {"409", "4xx"}, *vals[] = {"sent", "retry"};
    uint64_t rng = 42;

    (void)state;
    r.base_ms = 100;
    r.cap_ms = 1000;
    r.classes.keys = keys;
    r.classes.vals = vals;
    r.classes.n = 2;
    assert_int_equal(osc_retry_classify(&r, 409, 0), OSC_HTTP_SENT);
    assert_int_equal(osc_retry_classify(&r, 400, 0), OSC_HTTP_RETRY);
    assert_int_equal(osc_retry_classify(&r, 500, 0), OSC_HTTP_RETRY);
    assert_int_equal(osc_retry_classify(NULL, 400, 0), OSC_HTTP_REJECT);
    for (unsigned a = 1; a < 20; a++) {
        int64_t d = osc_retry_backoff_ms(&r, a, &rng);
        assert_true(d >= 0 && d <= 1000);
        if (a == 1)
            assert_true(d <= 100);
    }
}

static void test_retry_after(void **state)
{
    int64_t now = 1767781800000LL; /* 2026-01-07T10:30:00Z */

    (void)state;
    assert_int_equal(osc_http_retry_after_ms("2", now), 2000);
    assert_int_equal(osc_http_retry_after_ms(" 120 ", now), 120000);
    assert_int_equal(osc_http_retry_after_ms("Wed, 07 Jan 2026 10:30:05 GMT", now), 5000);
    assert_int_equal(osc_http_retry_after_ms("Wed, 07 Jan 2026 10:00:00 GMT", now), 0);
    assert_int_equal(osc_http_retry_after_ms("soon", now), -1);
    assert_int_equal(osc_http_retry_after_ms("2x", now), -1);
}

static void test_request_and_auth(void **state)
{
    struct ts_server *s = ts_start();
    struct osc_http *h = osc_http_new(NULL, NULL);
    struct osc_http_response r;
    struct ts_request got;
    char url[128], v[256];
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", NULL};
    struct osc_http_request req = {
        "POST", url, hdrs, OSC_HTTP_AUTH_OS_TOKEN, "restkey-abcdef123", "[{\"a\":1}]", 9, 0, 0};
    struct ts_response ok = {201, "Retry-After: 3\nContent-Type: application/json\n",
                             "{\"ok\":true}", 0, 0};

    (void)state;
    assert_non_null(s);
    snprintf(url, sizeof(url), "%s/api/1/employee_batch_imports", ts_url(s));
    ts_push(s, &ok);
    osc_http_response_init(&r);
    assert_int_equal(osc_http_perform(h, &req, &r, NULL), 0);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.outcome, OSC_HTTP_SENT);
    assert_string_equal(osc_buf_str(&r.body), "{\"ok\":true}");
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.retry_after_ms, 3000);
    assert_int_equal(ts_get(s, 0, &got), 0);
    assert_string_equal(got.method, "POST");
    assert_string_equal(got.url, "/api/1/employee_batch_imports");
    assert_string_equal(got.body, "[{\"a\":1}]");
    assert_int_equal(ts_header(&got, "authorization", v, sizeof(v)), 0);
    assert_string_equal(v, "Token token=restkey-abcdef123");
    assert_int_equal(ts_header(&got, "user-agent", v, sizeof(v)), 0);
    assert_non_null(strstr(v, "osconnect/"));
    assert_int_equal(ts_header(&got, "expect", v, sizeof(v)), -1);
    ts_request_free(&got);

    req.auth = OSC_HTTP_AUTH_OS_APIKEY;
    req.secret = "gqlkey-abcdef123";
    assert_int_equal(osc_http_perform(h, &req, &r, NULL), 0);
    ts_get(s, 1, &got);
    assert_int_equal(ts_header(&got, "apikey", v, sizeof(v)), 0);
    assert_string_equal(v, "gqlkey-abcdef123");
    assert_int_equal(ts_header(&got, "authorization", v, sizeof(v)), -1);
    ts_request_free(&got);

    req.auth = OSC_HTTP_AUTH_MAPPED;
    req.secret = "PATmapped12345";
    req.method = "DELETE";
    req.body = NULL;
    req.body_len = 0;
    assert_int_equal(osc_http_perform(h, &req, &r, NULL), 0);
    ts_get(s, 2, &got);
    assert_string_equal(got.method, "DELETE");
    assert_int_equal(ts_header(&got, "authorization", v, sizeof(v)), 0);
    assert_string_equal(v, "token PATmapped12345");
    ts_request_free(&got);

    osc_http_response_free(&r);
    osc_http_free(h);
    ts_stop(s);
    osc_log_secret_clear();
}

static void test_status_classes_and_cap(void **state)
{
    struct ts_server *s = ts_start();
    struct osc_http_opts o = {0};
    struct osc_http *h;
    struct osc_http_response r;
    struct osc_err err;
    char big[5000];
    struct osc_http_request req = {"GET", ts_url(s), NULL, 0, NULL, NULL, 0, 0, 0};
    static const struct {
        int status;
        enum osc_http_outcome out;
    } cases[] = {{200, OSC_HTTP_SENT},  {400, OSC_HTTP_REJECT}, {401, OSC_HTTP_REJECT},
                 {429, OSC_HTTP_RETRY}, {500, OSC_HTTP_RETRY},  {503, OSC_HTTP_RETRY}};

    (void)state;
    o.max_response = 1000;
    h = osc_http_new(&o, NULL);
    osc_http_response_init(&r);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ts_response tr = {cases[i].status, NULL, "x", 0, 0};
        ts_push(s, &tr);
        assert_int_equal(osc_http_perform(h, &req, &r, NULL), 0);
        assert_int_equal(r.status, cases[i].status);
        assert_int_equal(r.outcome, cases[i].out);
    }
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    {
        struct ts_response tr = {200, NULL, big, 0, 0};
        ts_push(s, &tr);
        assert_int_equal(osc_http_perform(h, &req, &r, NULL), 0);
        assert_int_equal(r.status, 200);
        assert_true(r.truncated);
        assert_int_equal(r.body.len, 1000);
    }
    {
        /* the connection drops half way through the body */
        struct ts_response tr = {200, NULL, big, 0, 1};
        ts_push(s, &tr);
        assert_int_equal(osc_http_perform(h, &req, &r, &err), OSC_ETRANSPORT);
        assert_int_equal(r.outcome, OSC_HTTP_RETRY);
        assert_true(r.transport != 0);
    }
    {
        /* a reply slower than the timeout */
        struct ts_response tr = {200, NULL, "late", 1500, 0};
        req.timeout_ms = 300;
        ts_push(s, &tr);
        assert_int_equal(osc_http_perform(h, &req, &r, &err), OSC_ETRANSPORT);
        assert_int_equal(r.transport, CURLE_OPERATION_TIMEDOUT);
        assert_int_equal(r.outcome, OSC_HTTP_RETRY);
    }
    osc_http_response_free(&r);
    osc_http_free(h);
    ts_stop(s);
}

static void test_connection_refused(void **state)
{
    struct osc_http *h = osc_http_new(NULL, NULL);
    struct osc_http_response r;
    struct osc_err err = {0};
    /* port 1 on loopback: nothing listens there */
    struct osc_http_request req = {"GET", "http://127.0.0.1:1/", NULL, 0, NULL, NULL, 0, 0, 0};

    (void)state;
    osc_http_response_init(&r);
    assert_int_equal(osc_http_perform(h, &req, &r, &err), OSC_ETRANSPORT);
    assert_int_equal(r.outcome, OSC_HTTP_RETRY);
    assert_non_null(strstr(err.msg, "127.0.0.1:1"));
    osc_http_response_free(&r);
    osc_http_free(h);
}

struct counter {
    int done;
};

static void count_done(void *ud, struct osc_http_response *resp)
{
    (void)resp;
    ((struct counter *)ud)->done++;
}

static void test_bounded_in_flight(void **state)
{
    struct ts_server *s = ts_start();
    struct osc_http_opts o = {0};
    struct osc_http *h;
    struct osc_http_response rs[3];
    struct counter c = {0};
    struct osc_http_request req = {"GET", ts_url(s), NULL, 0, NULL, NULL, 0, 0, 0};
    struct ts_response slow = {200, NULL, "ok", 200, 0};

    (void)state;
    o.max_in_flight = 2;
    h = osc_http_new(&o, NULL);
    ts_set_default(s, &slow);
    for (int i = 0; i < 3; i++)
        osc_http_response_init(&rs[i]);
    assert_int_equal(osc_http_submit(h, &req, &rs[0], count_done, &c), 0);
    assert_int_equal(osc_http_submit(h, &req, &rs[1], count_done, &c), 0);
    assert_int_equal(osc_http_submit(h, &req, &rs[2], count_done, &c), OSC_EBUSY);
    assert_int_equal(osc_http_in_flight(h), 2);
    while (osc_http_run(h, 100) > 0)
        ;
    assert_int_equal(c.done, 2);
    assert_int_equal(rs[0].status, 200);
    assert_int_equal(rs[1].status, 200);
    /* a transfer left in flight is aborted cleanly by osc_http_free */
    assert_int_equal(osc_http_submit(h, &req, &rs[2], count_done, &c), 0);
    for (int i = 0; i < 3; i++)
        osc_http_response_free(&rs[i]);
    osc_http_free(h);
    ts_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_retry_policy),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_request_and_auth),
        cmocka_unit_test(test_status_classes_and_cap),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_bounded_in_flight),
    };
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
