/*
 * test_testserver.c - the scripted test server's concurrency knobs, driven
 * by libcurl's multi interface: delayed answers do not stall each other, a
 * concurrency limit answers exactly the excess 429 (with Retry-After when
 * asked), and the figures (max in flight, 2xx and 429 answers) add up.
 * Nothing is timed: the server holds or delays requests until the test has
 * seen the state it expects (with a deadline), then lets them go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"
#include "testserver.h"

#define NREQ        20
#define DEADLINE_MS 30000

struct xfer {
    CURL *e;
    long status;
    char retry_after[16];
    int done;
};

static size_t discard(char *d, size_t sz, size_t n, void *ud)
{
    (void)d;
    (void)ud;
    return sz * n;
}

static size_t on_header(char *d, size_t sz, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = sz * n;

    if (len > 12 && strncasecmp(d, "Retry-After:", 12) == 0) {
        size_t k = 12, m = 0;
        while (k < len && d[k] == ' ')
            k++;
        while (k < len && d[k] != '\r' && d[k] != '\n' && m + 1 < sizeof(x->retry_after))
            x->retry_after[m++] = d[k++];
        x->retry_after[m] = '\0';
    }
    return len;
}

/* Add NREQ GETs of url to a new multi handle. */
static CURLM *start_all(const char *url, struct xfer *x)
{
    CURLM *m = curl_multi_init();

    assert_non_null(m);
    for (int i = 0; i < NREQ; i++) {
        memset(&x[i], 0, sizeof(x[i]));
        x[i].e = curl_easy_init();
        assert_non_null(x[i].e);
        curl_easy_setopt(x[i].e, CURLOPT_URL, url);
        curl_easy_setopt(x[i].e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(x[i].e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(x[i].e, CURLOPT_HEADERDATA, &x[i]);
        curl_easy_setopt(x[i].e, CURLOPT_PRIVATE, &x[i]);
        curl_easy_setopt(x[i].e, CURLOPT_TIMEOUT_MS, (long)DEADLINE_MS * 2);
        assert_int_equal(curl_multi_add_handle(m, x[i].e), CURLM_OK);
    }
    return m;
}

/* Drive the transfers until pred(s) holds (pred NULL: until all are done) or the deadline. */
static int drive(CURLM *m, struct ts_server *s, int (*pred)(struct ts_server *))
{
    long end = th_now_ms() + DEADLINE_MS;
    int running = 1;

    while (th_now_ms() < end) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                struct xfer *x;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &x->status);
                x->done = 1;
            }
        if (pred ? pred(s) : running == 0)
            return 0;
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    return -1;
}

static void finish(CURLM *m, struct xfer *x)
{
    for (int i = 0; i < NREQ; i++) {
        curl_multi_remove_handle(m, x[i].e);
        curl_easy_cleanup(x[i].e);
    }
    curl_multi_cleanup(m);
}

/* The server is full: every request arrived, `limit` are held in flight, the rest got 429. */
static size_t limit;
static int limit_full(struct ts_server *s)
{
    struct ts_stats st;
    ts_get_stats(s, &st);
    return st.requests == NREQ && st.in_flight == limit && st.answered_429 == NREQ - limit;
}

/* 20 parallel requests against a limit of 8: the 8 admitted stay in flight (held), the
   other 12 get 429 with the configured Retry-After; once released the 8 get 200. */
static void test_limit(void **state)
{
    struct ts_server *s = ts_start();
    struct xfer x[NREQ];
    struct ts_stats st;
    int n200 = 0, n429 = 0;
    CURLM *m;
    (void)state;

    assert_non_null(s);
    limit = 8;
    ts_set_limit(s, 8, 3);
    ts_hold(s, 1);
    m = start_all(ts_url(s), x);
    assert_int_equal(drive(m, s, limit_full), 0);
    ts_get_stats(s, &st);
    assert_int_equal(st.in_flight, 8);
    assert_int_equal(st.answered_2xx, 0);
    ts_hold(s, 0);
    assert_int_equal(drive(m, s, NULL), 0);
    for (int i = 0; i < NREQ; i++) {
        assert_true(x[i].done);
        if (x[i].status == 200) {
            n200++;
            assert_string_equal(x[i].retry_after, "");
        } else {
            assert_int_equal(x[i].status, 429);
            assert_string_equal(x[i].retry_after, "3");
            n429++;
        }
    }
    assert_int_equal(n200, 8);
    assert_int_equal(n429, NREQ - 8);
    ts_get_stats(s, &st);
    assert_int_equal(st.requests, NREQ);
    assert_int_equal(st.max_in_flight, 8);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.answered_2xx, 8);
    assert_int_equal(st.answered_429, NREQ - 8);
    assert_int_equal(ts_count(s), NREQ); /* limited requests are recorded too */
    finish(m, x);
    ts_stop(s);
}

/* A limit without Retry-After: the 429s carry none; the held request is released by
   ts_stop() itself (the client then sees the connection end). */
static void test_limit_no_retry_after(void **state)
{
    struct ts_server *s = ts_start();
    struct xfer x[NREQ];
    struct ts_stats st;
    CURLM *m;
    int n429 = 0;
    (void)state;

    assert_non_null(s);
    limit = 1;
    ts_set_limit(s, 1, -1);
    ts_hold(s, 1);
    m = start_all(ts_url(s), x);
    assert_int_equal(drive(m, s, limit_full), 0);
    /* let curl read every 429 that was sent */
    for (long end = th_now_ms() + DEADLINE_MS; n429 < NREQ - 1 && th_now_ms() < end;) {
        n429 = 0;
        drive(m, s, limit_full);
        for (int i = 0; i < NREQ; i++)
            n429 += x[i].done && x[i].status == 429;
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    assert_int_equal(n429, NREQ - 1);
    for (int i = 0; i < NREQ; i++)
        if (x[i].done)
            assert_string_equal(x[i].retry_after, "");
    ts_get_stats(s, &st);
    assert_int_equal(st.max_in_flight, 1);
    ts_stop(s); /* returns although one request is still held */
    finish(m, x);
}

static int all_in_flight(struct ts_server *s)
{
    struct ts_stats st;
    ts_get_stats(s, &st);
    return st.in_flight == NREQ;
}

/* A long delay on every answer: all 20 requests are delayed at the same time (one does
   not wait for another), and lowering the delay releases them. */
static void test_delay_parallel(void **state)
{
    struct ts_server *s = ts_start();
    struct xfer x[NREQ];
    struct ts_stats st;
    CURLM *m;
    (void)state;

    assert_non_null(s);
    ts_set_delay(s, 600000);
    m = start_all(ts_url(s), x);
    assert_int_equal(drive(m, s, all_in_flight), 0);
    ts_get_stats(s, &st);
    assert_int_equal(st.answered_2xx, 0);
    ts_set_delay(s, 0);
    assert_int_equal(drive(m, s, NULL), 0);
    for (int i = 0; i < NREQ; i++)
        assert_int_equal(x[i].status, 200);
    ts_get_stats(s, &st);
    assert_int_equal(st.max_in_flight, NREQ);
    assert_int_equal(st.answered_2xx, NREQ);
    assert_int_equal(st.answered_429, 0);
    finish(m, x);
    ts_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_limit_no_retry_after),
        cmocka_unit_test(test_delay_parallel),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
