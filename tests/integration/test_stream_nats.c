/*
 * test_stream_nats.c - scale-out on NATS JetStream: several `osconnect run`
 * with the same config share one durable pull consumer (src/stream/natssrc.c),
 * against a real `nats-server -js` and the scripted test server as the sink.
 *
 *   - 20,000 records published, 3 instances, one SIGKILLed mid-stream: every
 *     record is accepted by the sink, and the records sent twice are at most
 *     one batch per request the killed instance could have in flight
 *     (max_in_flight x batch.size); the two others each delivered some.
 *   - A record the sink refuses (400) is dead-lettered and its message
 *     terminated (never redelivered); a sink that answers 503 for a while
 *     gets the records later (nak'ed with the backoff, redelivered), none
 *     lost, none dead-lettered; SIGTERM stops within 2 s.
 *   - A message may hold several records (JSON Lines, a JSON array); a
 *     batch slower than ack_wait is not redelivered meanwhile (its messages
 *     are marked in progress): each record reaches the sink once.
 *   - SIGTERM while the sink holds a request: the run stops within 2 s and
 *     nak's what it held, so the next instance gets it at once, long before
 *     ack_wait (30 s here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "harness.h"
#include "natsserver.h"
#include "osc/nats.h"
#include "test_stream_util.h"
#include "testserver.h"

#define N_RECORDS 20000
#define BATCH     100
#define IN_FLIGHT 2

static struct th_nats server;

static int group_setup(void **state)
{
    (void)state;
    return th_nats_start(&server, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    kill_all();
    th_nats_stop(&server);
    th_tmpdir_cleanup();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill_all();
    return 0;
}

/* Publish {"id": from..to} on subject, one message each, creating the stream. */
static void publish(const char *stream, const char *subject, int from, int to)
{
    struct osc_nats_opts o;
    struct osc_nats *n = NULL;
    struct osc_err err = {0};
    char msg[64];

    memset(&o, 0, sizeof(o));
    o.conn.url = server.url;
    o.stream = stream;
    o.subject = subject;
    o.create_stream = 1;
    if (osc_nats_open(&o, &n, &err))
        fail_msg("%s", err.msg);
    for (int i = from; i <= to; i++) {
        int len = snprintf(msg, sizeof(msg), "{\"id\":%d}", i);
        if (osc_nats_publish_async(n, subject, msg, (size_t)len, &err))
            fail_msg("%s", err.msg);
    }
    if (osc_nats_publish_wait(n, 30000, &err))
        fail_msg("%s", err.msg);
    osc_nats_close(n);
}

/* ids in the requests from the first-th on (the scripted answers come first: a request's
 * answer is the scripted one of its rank), counted into seen[1..max]; returns the total. */
static size_t sink_ids(struct ts_server *ts, unsigned *seen, int max, size_t first)
{
    size_t total = 0;

    memset(seen, 0, sizeof(unsigned) * ((size_t)max + 1));
    for (size_t i = first; i < ts_count(ts); i++) {
        struct ts_request r;
        json_t *a, *v;
        size_t k;
        assert_int_equal(ts_get(ts, i, &r), 0);
        a = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
        if (json_is_array(a))
            json_array_foreach(a, k, v)
            {
                json_int_t id = json_integer_value(json_object_get(v, "id"));
                if (id >= 1 && id <= max)
                    seen[id]++;
                total++;
            }
        json_decref(a);
        ts_request_free(&r);
    }
    return total;
}

static char *nats_config(const char *name, const char *sink, const char *stream,
                         const char *subject, const char *extra)
{
    char *yaml = NULL, *path;

    assert_true(asprintf(&yaml,
                         "officespace: {hostname: acme}\n"
                         "status: {listen: 127.0.0.1:0}\n"
                         "destinations:\n"
                         "  records:\n"
                         "    url: %s/records\n"
                         "    batch: {enabled: true, size: %d}\n"
                         "    max_in_flight: %d\n"
                         "    flush_interval: 100ms\n"
                         "%s"
                         "    source:\n"
                         "      type: nats\n"
                         "      url: %s\n"
                         "      stream: %s\n"
                         "      subject: %s\n"
                         "      ack_wait: 2s\n",
                         sink, BATCH, IN_FLIGHT,
                         extra ? extra : "    retry: {max_attempts: 5, base: 10ms, cap: 50ms}\n",
                         server.url, stream, subject) > 0);
    path = th_write_file(name, yaml);
    free(yaml);
    return path;
}

/* The accepted counter of a running instance's /metrics. */
static long accepted_of(const struct proc *pr)
{
    char url[256], *body = NULL, *p;
    long v = -1;

    status_url_n(pr, 1, url, sizeof(url) - 16);
    strcat(url, "/metrics");
    if (th_http("GET", url, NULL, &body) == 200 &&
        (p = strstr(body, "result=\"accepted\"} ")) != NULL)
        v = strtol(p + 19, NULL, 10);
    free(body);
    return v;
}

static void test_three_instances_one_killed(void **state)
{
    struct ts_server *ts = ts_start();
    struct proc pr[3] = {{0}};
    static unsigned seen[N_RECORDS + 1];
    char sd[512], *cfg;
    size_t total = 0, at_kill;
    long deadline, killed_at;
    int missing = 0;
    (void)state;

    assert_non_null(ts);
    ts_set_delay(ts, 30);
    publish("RECORDS", "records.in", 1, N_RECORDS);
    cfg = nats_config("nats3.yaml", ts_url(ts), "RECORDS", "records.in", NULL);
    for (int i = 0; i < 3; i++) {
        snprintf(sd, sizeof(sd), "%s/instance-%d", th_tmpdir(), i);
        spawn_run(&pr[i], cfg, sd);
    }
    /* mid-stream: some batches accepted, most records still to come */
    for (deadline = now_ms() + 30000; ts_count(ts) < 30; nap_ms(5))
        if (now_ms() > deadline)
            fail_msg("the sink got %zu requests in 30 s", ts_count(ts));
    kill(pr[0].pid, SIGKILL);
    killed_at = now_ms();
    waitpid(pr[0].pid, NULL, 0);
    track(0, pr[0].pid);
    pr[0].pid = 0;
    at_kill = sink_ids(ts, seen, N_RECORDS, 0);
    assert_true(at_kill < N_RECORDS / 2);

    /* the survivors take the rest, the killed one's unacked messages after ack_wait */
    for (deadline = now_ms() + 60000;; nap_ms(200)) {
        total = sink_ids(ts, seen, N_RECORDS, 0);
        missing = 0;
        for (int i = 1; i <= N_RECORDS; i++)
            missing += seen[i] == 0;
        if (!missing)
            break;
        if (now_ms() > deadline)
            fail_msg("%d of %d records never reached the sink", missing, N_RECORDS);
    }
    print_message("%zu records at the sink when one instance was killed; all %d there %.1f s "
                  "later; %zu sent twice\n",
                  at_kill, N_RECORDS, (double)(now_ms() - killed_at) / 1000.0, total - N_RECORDS);
    /* at most one batch per request the killed instance had in flight is sent twice */
    if (total - N_RECORDS > (size_t)IN_FLIGHT * BATCH)
        fail_msg("%zu records sent twice; at most %d allowed", total - N_RECORDS,
                 IN_FLIGHT * BATCH);
    assert_true(accepted_of(&pr[1]) > 0);
    assert_true(accepted_of(&pr[2]) > 0);
    for (int i = 1; i < 3; i++)
        assert_int_equal(stop_within(&pr[i], SIGTERM, 2000), 0);
    /* nothing is sent after the stop, and nothing more was needed */
    assert_int_equal(sink_ids(ts, seen, N_RECORDS, 0), total);
    for (int i = 0; i < 3; i++)
        proc_free(&pr[i]);
    free(cfg);
    ts_stop(ts);
}

/* A refused record is dead-lettered and terminated; a 503 spell only delays the others. */
static void test_refused_and_unavailable(void **state)
{
    struct ts_server *ts = ts_start();
    struct ts_response refuse = {400, NULL, "{\"error\":\"bad record\"}", 0, 0};
    struct ts_response busy = {503, NULL, "{}", 0, 0};
    struct proc pr = {0};
    unsigned seen[31];
    char sd[512], dl[600], *cfg, *text;
    long deadline;
    (void)state;

    assert_non_null(ts);
    publish("SMALL", "small.in", 1, 10);
    cfg = nats_config("small.yaml", ts_url(ts), "SMALL", "small.in",
                      "    retry: {max_attempts: 2, base: 10ms, cap: 20ms}\n");
    /* the first batch is refused as a whole: its records are dead-lettered, never redelivered */
    ts_push(ts, &refuse);
    snprintf(sd, sizeof(sd), "%s/small", th_tmpdir());
    spawn_run(&pr, cfg, sd);
    snprintf(dl, sizeof(dl), "%s/records.dead.jsonl", sd);
    wait_file(dl, 20000);
    /* then a 503 spell longer than the retries: those records come back (nak) and arrive */
    for (int i = 0; i < 6; i++)
        ts_push(ts, &busy);
    publish("SMALL", "small.in", 11, 30);
    for (deadline = now_ms() + 30000;; nap_ms(50)) {
        int missing = 0;
        /* answered 200: after the refusal and the six 503s */
        sink_ids(ts, seen, 30, 7);
        for (int i = 11; i <= 30; i++)
            missing += seen[i] == 0;
        if (!missing)
            break;
        if (now_ms() > deadline)
            fail_msg("%d records of the 503 spell never arrived", missing);
    }
    assert_true(count_text(pr.err_path, "left to their source to redeliver") >= 1);
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    /* the refused batch (the first request): each of its records in the dead-letter file */
    text = slurp(dl);
    {
        struct ts_request r;
        json_t *a, *v;
        size_t k, n = 0;
        assert_int_equal(ts_get(ts, 0, &r), 0);
        assert_non_null(a = json_loadb(r.body, r.body_len, 0, NULL));
        json_array_foreach(a, k, v)
        {
            char want[40];
            snprintf(want, sizeof(want), "{\"id\":%lld}",
                     (long long)json_integer_value(json_object_get(v, "id")));
            assert_non_null(strstr(text, want));
            n++;
        }
        assert_true(n >= 1);
        json_decref(a);
        ts_request_free(&r);
    }
    free(text);
    /* terminated, not redelivered: each of the first ten was sent exactly once */
    sink_ids(ts, seen, 30, 0);
    for (int i = 1; i <= 10; i++)
        assert_int_equal(seen[i], 1);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

/* Several records per message; a sink slower than ack_wait still gets each record once. */
static void test_multi_record_and_slow_sink(void **state)
{
    struct ts_server *ts = ts_start();
    struct osc_nats_opts o;
    struct osc_nats *n = NULL;
    struct osc_err err = {0};
    struct proc pr = {0};
    unsigned seen[11];
    char sd[512], *yaml = NULL, *cfg;
    const char *lines = "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n";
    const char *array = "[{\"id\":4},{\"id\":5}]";
    long deadline;
    (void)state;

    assert_non_null(ts);
    /* every answer after 2.5 s, with ack_wait 1 s: only in-progress marks keep them ours */
    ts_set_delay(ts, 2500);
    memset(&o, 0, sizeof(o));
    o.conn.url = server.url;
    o.stream = "MULTI";
    o.subject = "multi.in";
    o.create_stream = 1;
    if (osc_nats_open(&o, &n, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(osc_nats_publish(n, "multi.in", lines, strlen(lines), NULL, &err), 0);
    assert_int_equal(osc_nats_publish(n, "multi.in", array, strlen(array), NULL, &err), 0);
    osc_nats_close(n);
    assert_true(asprintf(&yaml,
                         "officespace: {hostname: acme}\n"
                         "status: {listen: 127.0.0.1:0}\n"
                         "destinations:\n"
                         "  records:\n"
                         "    url: %s/records\n"
                         "    batch: {enabled: true, size: 100}\n"
                         "    flush_interval: 100ms\n"
                         "    source: {type: nats, url: %s, stream: MULTI, subject: multi.in,\n"
                         "             ack_wait: 1s}\n",
                         ts_url(ts), server.url) > 0);
    cfg = th_write_file("multi.yaml", yaml);
    free(yaml);
    snprintf(sd, sizeof(sd), "%s/multi", th_tmpdir());
    spawn_run(&pr, cfg, sd);
    for (deadline = now_ms() + 20000;; nap_ms(50)) {
        int missing = 0;
        sink_ids(ts, seen, 10, 0);
        for (int i = 1; i <= 5; i++)
            missing += seen[i] == 0;
        if (!missing)
            break;
        if (now_ms() > deadline)
            fail_msg("%d of 5 records never reached the sink", missing);
    }
    /* the answer takes 2.5 s: wait for it and for two more ack_waits of any redelivery */
    for (deadline = now_ms() + 20000;; nap_ms(50)) {
        struct ts_stats st;
        ts_get_stats(ts, &st);
        if (st.answered_2xx >= 1)
            break;
        if (now_ms() > deadline)
            fail_msg("the sink never answered");
    }
    wait_text(pr.err_path, "consuming stream MULTI", 1000);
    {
        /* a redelivery would have been sent by now: ack_wait 1 s, flush_interval 100 ms */
        long until = now_ms() + 2500;
        while (now_ms() < until && ts_count(ts) == 1)
            nap_ms(50);
    }
    sink_ids(ts, seen, 10, 0);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(ts_count(ts), 1);
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

/* A stopped instance gives its messages back at once (nak), not after ack_wait. */
static void test_stop_gives_messages_back(void **state)
{
    struct ts_server *held = ts_start(), *ts = ts_start();
    struct ts_response hang = {200, NULL, "{}", TS_HANG, 0};
    struct proc a = {0}, b = {0};
    unsigned seen[21];
    char sd[512], *yaml = NULL, *cfg;
    long deadline, stopped_at = 0;
    (void)state;

    assert_non_null(held);
    assert_non_null(ts);
    ts_set_default(held, &hang);
    publish("BACK", "back.in", 1, 20);
    for (int i = 0; i < 2; i++) {
        assert_true(asprintf(&yaml,
                             "officespace: {hostname: acme}\n"
                             "status: {listen: 127.0.0.1:0}\n"
                             "destinations:\n"
                             "  records:\n"
                             "    url: %s/records\n"
                             "    batch: {enabled: true, size: 100}\n"
                             "    flush_interval: 100ms\n"
                             "    source: {type: nats, url: %s, stream: BACK, subject: back.in,\n"
                             "             ack_wait: 30s}\n",
                             ts_url(i ? ts : held), server.url) > 0);
        cfg = th_write_file(i ? "back-b.yaml" : "back-a.yaml", yaml);
        free(yaml);
        snprintf(sd, sizeof(sd), "%s/back-%d", th_tmpdir(), i);
        spawn_run(i ? &b : &a, cfg, sd);
        free(cfg);
        if (i)
            break;
        /* the first instance holds all twenty in a request that never ends */
        for (deadline = now_ms() + 20000; ts_count(held) < 1; nap_ms(10))
            if (now_ms() > deadline)
                fail_msg("the first instance sent nothing");
        assert_int_equal(stop_within(&a, SIGTERM, 2000), 0);
        stopped_at = now_ms();
    }
    for (deadline = stopped_at + 15000;; nap_ms(50)) {
        int missing = 0;
        sink_ids(ts, seen, 20, 0);
        for (int i = 1; i <= 20; i++)
            missing += seen[i] == 0;
        if (!missing)
            break;
        if (now_ms() > deadline)
            fail_msg("%d records were not given back by the stopped instance", missing);
    }
    print_message("given back and delivered %.1f s after the stop (ack_wait 30 s)\n",
                  (double)(now_ms() - stopped_at) / 1000.0);
    assert_int_equal(stop_within(&b, SIGTERM, 2000), 0);
    proc_free(&a);
    proc_free(&b);
    ts_stop(held);
    ts_stop(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_three_instances_one_killed, teardown),
        cmocka_unit_test_teardown(test_refused_and_unavailable, teardown),
        cmocka_unit_test_teardown(test_multi_record_and_slow_sink, teardown),
        cmocka_unit_test_teardown(test_stop_gives_messages_back, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
