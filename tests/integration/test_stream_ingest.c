/*
 * test_stream_ingest.c - `osconnect run` with an http source: POST
 * /ingest/{destination} on the status listener (src/stream/ingest.c), the
 * real binary against the scripted test server.
 *
 *   - Answers: 401 without or with a wrong bearer token (the token never in
 *     the answer), 404 for a destination without an http source, 413 over
 *     max_body, 400 naming the line of a malformed record (nothing queued),
 *     415 for another content type; 202 for a JSON array, JSON Lines and
 *     CSV, whose records all reach the sink.
 *   - A full queue (the sink never answers) answers 429 with Retry-After;
 *     SIGTERM still stops the run within 2 s.
 *   - 202 means durable: kill -9 right after the 202, before the record was
 *     delivered; the next start delivers it.
 *   - One process per queue: a second `run` on the same state folder exits 75
 *     naming the queue file; an http source with status.enabled: false is a
 *     configuration error (78).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "test_sim_util.h"
#include "test_stream_util.h"
#include "testserver.h"

#define TOKEN  "ingest-token-SECRET-4711"
#define BEARER "Authorization: Bearer " TOKEN

static int teardown(void **state)
{
    (void)state;
    kill_all();
    th_tmpdir_cleanup();
    return 0;
}

static char *ingest_config(const char *sink, const char *limits)
{
    char *yaml = NULL, *path;

    assert_true(asprintf(&yaml,
                         "officespace: {hostname: acme}\n"
                         "status: {listen: 127.0.0.1:0}\n"
                         "destinations:\n"
                         "  records:\n"
                         "    url: %s/records\n"
                         "    batch: {enabled: true, size: 50}\n"
                         "    flush_interval: 50ms\n"
                         "    retry: {max_attempts: 3, base: 10ms, cap: 20ms}\n"
                         "    source: {type: http, ingest_token: " TOKEN "%s}\n"
                         "  other: {url: %s/other}\n",
                         sink, limits ? limits : "", sink) > 0);
    path = th_write_file("ingest.yaml", yaml);
    free(yaml);
    return path;
}

/* How many records with "id": id the sink received. */
static int sink_has(struct ts_server *ts, int id)
{
    char want[32];
    int n = 0;

    snprintf(want, sizeof(want), "\"id\":%d", id);
    for (size_t i = 0; i < ts_count(ts); i++) {
        struct ts_request r;
        if (ts_get(ts, i, &r) == 0) {
            for (const char *p = r.body; p && (p = strstr(p, want)) != NULL; p++)
                if (p[strlen(want)] == ',' || p[strlen(want)] == '}')
                    n++;
            ts_request_free(&r);
        }
    }
    return n;
}

static void wait_sink(struct ts_server *ts, int id, long ms)
{
    long deadline = now_ms() + ms;
    while (!sink_has(ts, id)) {
        if (now_ms() > deadline)
            fail_msg("record %d never reached the sink", id);
        nap_ms(20);
    }
}

static void post(const char *status, const char *dest, const char *const *hdrs, const char *body,
                 struct resp *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/ingest/%s", status, dest);
    assert_int_equal(http("POST", url, hdrs, body, 10000, r), 0);
    assert_null(strstr(r->body, TOKEN));
}

static void test_ingest_answers(void **state)
{
    struct ts_server *ts = ts_start();
    struct proc pr = {0};
    char status[128], big[6000], url[600];
    const char *jsonl[] = {BEARER, "Content-Type: application/x-ndjson", NULL};
    const char *json[] = {BEARER, "Content-Type: application/json", NULL};
    const char *csv[] = {BEARER, "Content-Type: text/csv; charset=utf-8", NULL};
    const char *xml[] = {BEARER, "Content-Type: text/xml", NULL};
    const char *wrong[] = {"Authorization: Bearer not-" TOKEN, NULL};
    struct resp r;
    char *cfg;
    (void)state;

    assert_non_null(ts);
    cfg = ingest_config(ts_url(ts), ", max_body: 4KiB");
    spawn_run(&pr, cfg, NULL);
    status_url_n(&pr, 1, status, sizeof(status));

    post(status, "records", NULL, "{\"id\":1}\n", &r);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.www_auth, "Bearer"));
    resp_free(&r);
    post(status, "records", wrong, "{\"id\":1}\n", &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    post(status, "other", jsonl, "{\"id\":1}\n", &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '[';
    big[sizeof(big) - 2] = ']';
    big[sizeof(big) - 1] = '\0';
    post(status, "records", json, big, &r);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    post(status, "records", jsonl, "{\"id\":2}\n{\"id\": 3,,}\n{\"id\":4}\n", &r);
    assert_int_equal(r.status, 400);
    if (!strstr(r.body, "POST /ingest/records:2:"))
        fail_msg("the 400 does not name line 2: %s", r.body);
    resp_free(&r);
    post(status, "records", xml, "<id>5</id>", &r);
    assert_int_equal(r.status, 415);
    resp_free(&r);

    post(status, "records", json, "[{\"id\":11},{\"id\":12},{\"id\":13}]", &r);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"queued\":3"));
    resp_free(&r);
    post(status, "records", jsonl, "{\"id\":14}\n{\"id\":15}\n", &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    post(status, "records", csv, "id,name\n16,a\n17,b\n", &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    for (int id = 11; id <= 15; id++)
        wait_sink(ts, id, 10000);
    /* CSV values are strings */
    for (size_t i = 0, found = 0; !found; i++) {
        struct ts_request q;
        if (i >= ts_count(ts)) {
            nap_ms(20);
            i = (size_t)-1;
            continue;
        }
        assert_int_equal(ts_get(ts, i, &q), 0);
        found = q.body && strstr(q.body, "\"id\":\"16\"") && strstr(q.body, "\"id\":\"17\"");
        ts_request_free(&q);
    }
    /* the rejected bodies queued nothing */
    assert_int_equal(sink_has(ts, 2) + sink_has(ts, 4) + sink_has(ts, 1), 0);
    /* a second instance on the same state folder is refused: the queue has one owner */
    {
        struct proc second = {0};
        spawn_run(&second, cfg, NULL);
        assert_int_equal(wait_exit(&second, 10000), 75);
        wait_text(second.err_path, "records.ingest.db", 1000);
        proc_free(&second);
    }
    {
        struct proc off = {0};
        char *yaml = NULL, *noff;
        assert_true(asprintf(&yaml,
                             "officespace: {hostname: acme}\n"
                             "status: {enabled: false}\n"
                             "destinations:\n"
                             "  records:\n"
                             "    url: %s/records\n"
                             "    source: {type: http, ingest_token: " TOKEN "}\n",
                             ts_url(ts)) > 0);
        noff = th_write_file("off.yaml", yaml);
        free(yaml);
        snprintf(url, sizeof(url), "%s/off", th_tmpdir());
        spawn_run(&off, noff, url); /* a state folder of its own: the queue above is locked */
        assert_int_equal(wait_exit(&off, 10000), 78);
        wait_text(off.err_path, "set status.enabled: true", 1000);
        proc_free(&off);
        free(noff);
    }
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    assert_int_equal(count_text(pr.err_path, TOKEN), 0);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

/* The sink never answers: the queue fills up, 429 with Retry-After; SIGTERM still stops. */
static void test_ingest_full(void **state)
{
    struct ts_server *ts = ts_start();
    struct ts_response hang = {200, NULL, "{}", TS_HANG, 0};
    const char *jsonl[] = {BEARER, "Content-Type: application/x-ndjson", NULL};
    struct proc pr = {0};
    char status[128], body[1100];
    struct resp r;
    int accepted = 0;
    char *cfg;
    (void)state;

    assert_non_null(ts);
    ts_set_default(ts, &hang);
    cfg = ingest_config(ts_url(ts), ", max_body: 1KiB, queue_max_bytes: 4KiB");
    spawn_run(&pr, cfg, NULL);
    status_url_n(&pr, 1, status, sizeof(status));
    for (int i = 0;; i++) {
        snprintf(body, sizeof(body), "{\"id\":%d,\"pad\":\"%0900d\"}\n", 100 + i, 0);
        post(status, "records", jsonl, body, &r);
        if (r.status == 429) {
            assert_string_equal(r.retry_after, "5");
            resp_free(&r);
            break;
        }
        assert_int_equal(r.status, 202);
        resp_free(&r);
        accepted++;
        assert_true(accepted <= 4);
    }
    assert_int_equal(accepted, 4);
    /* a request hangs in flight: the stop still takes under 2 s */
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

/* 202 means on disk: killed right after the 202, the record arrives after a restart. */
static void test_ingest_kill_after_202(void **state)
{
    struct ts_server *ts = ts_start(), *ts2 = ts_start();
    struct ts_response hang = {200, NULL, "{}", TS_HANG, 0};
    const char *jsonl[] = {BEARER, "Content-Type: application/x-ndjson", NULL};
    struct proc pr = {0};
    char status[128], url[256], *cfg, *body = NULL;
    struct resp r;
    (void)state;

    assert_non_null(ts);
    assert_non_null(ts2);
    ts_set_default(ts, &hang);
    cfg = ingest_config(ts_url(ts), NULL);
    spawn_run(&pr, cfg, NULL);
    status_url_n(&pr, 1, status, sizeof(status));
    post(status, "records", jsonl, "{\"id\":77}\n{\"id\":78}\n", &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    kill(pr.pid, SIGKILL);
    waitpid(pr.pid, NULL, 0);
    track(0, pr.pid);
    /* nothing was accepted before the kill (the sink held every request) */
    {
        struct ts_stats st;
        ts_get_stats(ts, &st);
        assert_int_equal(st.answered_2xx, 0);
    }

    /* the same state, a sink that answers */
    free(cfg);
    cfg = ingest_config(ts_url(ts2), NULL);
    spawn_run(&pr, cfg, NULL);
    status_url_n(&pr, 2, status, sizeof(status));
    wait_sink(ts2, 77, 15000);
    wait_sink(ts2, 78, 15000);
    /* delivered, so no longer queued */
    snprintf(url, sizeof(url), "%s/metrics", status);
    for (long deadline = now_ms() + 10000;; nap_ms(20)) {
        assert_int_equal(th_http("GET", url, NULL, &body), 200);
        if (strstr(body, "osconnect_source_queue_depth{destination=\"records\",source=\"http\"} 0"))
            break;
        if (now_ms() > deadline)
            fail_msg("the queue never emptied:\n%s", body);
        free(body);
    }
    free(body);
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    assert_int_equal(sink_has(ts2, 77), 1);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
    ts_stop(ts2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ingest_answers, teardown),
        cmocka_unit_test_teardown(test_ingest_full, teardown),
        cmocka_unit_test_teardown(test_ingest_kill_after_202, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
