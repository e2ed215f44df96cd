/*
 * test_stream_spool.c - `osconnect run` with a spool source (src/stream/spool.c),
 * the real binary against the scripted test server and the simulator.
 *
 *   - A file renamed into the folder is delivered and moved to done/; one with
 *     a malformed line is moved to failed/ with its dead letter beside it; a
 *     dot-file (a file still being written) is never picked; SIGTERM stops
 *     the run within 2 s (exit 0); /metrics counts the records.
 *   - upsert_employees with commit:: each file is one import job, committed
 *     once (the simulator counts the commits).
 *   - kill -9 in the middle of a file: the next start resumes from the
 *     checkpoint; every record arrives, and what is sent twice is at most the
 *     batches that were unfinished at the kill.
 *   - SIGTERM while the sink holds a request and reading waits for it: the run
 *     still ends within 2 s, and the file stays in the folder (resumed later).
 *   - A second file of the same name goes to done/NAME.2; a refused key (401)
 *     keeps the file in the folder, /readyz says why, and it is delivered once
 *     the key works (after the backoff).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "harness.h"
#include "test_stream_util.h"
#include "testserver.h"

static int teardown(void **state)
{
    (void)state;
    kill_all();
    th_tmpdir_cleanup();
    return 0;
}

/* The ids the sink received (each body a JSON array of {"id": N}) into seen[1..max]. */
static size_t sink_ids(struct ts_server *ts, unsigned *seen, int max)
{
    size_t total = 0;

    memset(seen, 0, sizeof(unsigned) * ((size_t)max + 1));
    for (size_t i = 0; i < ts_count(ts); i++) {
        struct ts_request r;
        json_t *a;
        size_t k;
        json_t *v;
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

static char *records(int from, int to)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);

    for (int i = from; i <= to; i++)
        fprintf(f, "{\"id\":%d,\"name\":\"record %d\"}\n", i, i);
    fclose(f);
    return s;
}

static char *spool_config(const char *url, const char *dir, int batch, const char *extra)
{
    char *yaml = NULL, *path;

    assert_true(asprintf(&yaml,
                         "officespace: {hostname: acme}\n"
                         "status: {listen: 127.0.0.1:0}\n"
                         "destinations:\n"
                         "  records:\n"
                         "    url: %s/records\n"
                         "    batch: {enabled: true, size: %d}\n"
                         "    flush_interval: 100ms\n"
                         "    retry: {max_attempts: 2, base: 10ms, cap: 20ms}\n"
                         "%s"
                         "    source: {type: spool, path: %s}\n",
                         url, batch, extra ? extra : "", dir) > 0);
    path = th_write_file("spool.yaml", yaml);
    free(yaml);
    return path;
}

static void test_spool_done_failed_and_partial(void **state)
{
    struct ts_server *ts = ts_start();
    struct proc pr = {0};
    char dir[512], p[1024], status[128], *cfg, *text, *body = NULL;
    unsigned seen[201];
    (void)state;

    assert_non_null(ts);
    snprintf(dir, sizeof(dir), "%s/spool", th_tmpdir());
    cfg = spool_config(ts_url(ts), dir, 10, NULL);
    spawn_run(&pr, cfg, NULL);
    status_url_n(&pr, 1, status, sizeof(status));
    /* the folders are made at start */
    snprintf(p, sizeof(p), "%s/done", dir);
    assert_true(file_exists(p));
    /* a file still being written (a dot name) is never picked */
    snprintf(p, sizeof(p), "%s/.incoming.jsonl", dir);
    text = records(100, 105);
    {
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    free(text);

    text = records(1, 25);
    write_rename(dir, "good.jsonl", text);
    free(text);
    snprintf(p, sizeof(p), "%s/done/good.jsonl", dir);
    wait_file(p, 20000);
    assert_int_equal(sink_ids(ts, seen, 200), 25);
    for (int i = 1; i <= 25; i++)
        assert_int_equal(seen[i], 1);

    /* line 3 is not JSON: the rest is delivered, the file goes to failed/ with its dead letter */
    write_rename(dir, "bad.jsonl",
                 "{\"id\":31}\n{\"id\":32}\n{\"id\":33,\n{\"id\":34}\n{\"id\":35}\n");
    snprintf(p, sizeof(p), "%s/failed/bad.jsonl", dir);
    wait_file(p, 20000);
    snprintf(p, sizeof(p), "%s/failed/bad.jsonl.dead.jsonl", dir);
    assert_non_null(text = th_read_file(p));
    assert_non_null(strstr(text, "\"line\":3"));
    assert_non_null(strstr(text, "bad.jsonl"));
    free(text);
    assert_int_equal(sink_ids(ts, seen, 200), 29);
    assert_int_equal(seen[31] + seen[32] + seen[34] + seen[35], 4);
    assert_int_equal(seen[33], 0);

    /* the same name again: done/good.jsonl.2 */
    text = records(36, 37);
    write_rename(dir, "good.jsonl", text);
    free(text);
    snprintf(p, sizeof(p), "%s/done/good.jsonl.2", dir);
    wait_file(p, 20000);
    assert_int_equal(sink_ids(ts, seen, 200), 31);

    /* what /metrics and /readyz say */
    snprintf(p, sizeof(p), "%s/metrics", status);
    assert_int_equal(th_http("GET", p, NULL, &body), 200);
    assert_non_null(strstr(body, "osconnect_source_records_total{destination=\"records\","
                                 "source=\"spool\",result=\"accepted\"} 31"));
    assert_non_null(strstr(body, "osconnect_source_records_total{destination=\"records\","
                                 "source=\"spool\",result=\"dead_lettered\"} 1"));
    assert_non_null(
        strstr(body, "osconnect_source_up{destination=\"records\",source=\"spool\"} 1"));
    free(body);
    snprintf(p, sizeof(p), "%s/readyz", status);
    assert_int_equal(th_http("GET", p, NULL, &body), 200);
    assert_non_null(strstr(body, "source records (spool): watching"));
    free(body);

    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    /* the dot-file was never touched */
    snprintf(p, sizeof(p), "%s/.incoming.jsonl", dir);
    assert_true(file_exists(p));
    assert_int_equal(sink_ids(ts, seen, 200), 31);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

/* upsert_employees with commit:: one import job per file, each committed once. */
static void test_spool_upsert_commit(void **state)
{
    struct th_sim sim;
    struct proc pr = {0};
    char dir[512], p[1024], *yaml = NULL, *cfg;
    json_t *emp;
    (void)state;

    assert_int_equal(th_sim_start(&sim, NULL), 0);
    snprintf(dir, sizeof(dir), "%s/hr", th_tmpdir());
    assert_true(asprintf(&yaml,
                         "officespace: {base_url: %s, api_key: " TH_SIM_OS_KEY "}\n"
                         "status: {listen: 127.0.0.1:0}\n"
                         "destinations:\n"
                         "  employees:\n"
                         "    template: upsert_employees\n"
                         "    source_name: SPOOLHR\n"
                         "    commit: commit\n"
                         "    min_staged_ratio: 0\n"
                         "    source: {type: spool, path: %s}\n"
                         "  commit: {template: trigger_directory_import, source_name: SPOOLHR}\n",
                         sim.officespace_url, dir) > 0);
    cfg = th_write_file("upsert.yaml", yaml);
    free(yaml);
    spawn_run(&pr, cfg, NULL);
    wait_text(pr.err_path, "watching", 20000);
    write_rename(dir, "export-1.csv",
                 "EmployeeId,FirstName,LastName,Email\n"
                 "E1,Ada,Lovelace,ada@example.com\nE2,Alan,Turing,alan@example.com\n");
    snprintf(p, sizeof(p), "%s/done/export-1.csv", dir);
    wait_file(p, 20000);
    write_rename(dir, "export-2.csv",
                 "EmployeeId,FirstName,LastName,Email\n"
                 "E1,Ada,Lovelace,ada@example.com\nE3,Grace,Hopper,grace@example.com\n");
    snprintf(p, sizeof(p), "%s/done/export-2.csv", dir);
    wait_file(p, 20000);
    snprintf(p, sizeof(p), "%s/_sim/employees?summary=1", sim.officespace_url);
    assert_non_null(emp = th_get_json(p));
    /* two files, two import jobs, each committed exactly once */
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(emp, "sources"), "SPOOLHR"), "commits")),
                     2);
    /* the second export replaced the first: E2 is deactivated, E1 and E3 are live */
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(emp, "sources"), "SPOOLHR"), "live")),
                     2);
    json_decref(emp);
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    assert_int_equal(count_text(pr.err_path, TH_SIM_OS_KEY), 0);
    proc_free(&pr);
    free(cfg);
    assert_int_equal(th_sim_stop(&sim), 0);
}

/* kill -9 in the middle of a file: the next start resumes it from the checkpoint. */
static void test_spool_kill_resume(void **state)
{
    struct ts_server *ts = ts_start();
    struct proc pr = {0};
    enum { N = 600, BATCH = 20 };
    char dir[512], p[1024], *cfg, *text;
    unsigned seen[N + 1];
    size_t total, before;
    (void)state;

    assert_non_null(ts);
    ts_set_delay(ts, 60);
    snprintf(dir, sizeof(dir), "%s/spool", th_tmpdir());
    cfg = spool_config(ts_url(ts), dir, BATCH, "    max_in_flight: 1\n");
    spawn_run(&pr, cfg, NULL);
    wait_text(pr.err_path, "watching", 20000);
    text = records(1, N);
    write_rename(dir, "big.jsonl", text);
    free(text);
    /* a few batches in, not all */
    while (ts_count(ts) < 5)
        nap_ms(5);
    kill(pr.pid, SIGKILL);
    waitpid(pr.pid, NULL, 0);
    track(0, pr.pid);
    before = ts_count(ts);
    assert_true(before < N / BATCH);
    snprintf(p, sizeof(p), "%s/big.jsonl", dir);
    assert_true(file_exists(p));

    ts_set_delay(ts, 0);
    spawn_run(&pr, cfg, NULL);
    snprintf(p, sizeof(p), "%s/done/big.jsonl", dir);
    wait_file(p, 30000);
    wait_text(pr.err_path, "resuming big.jsonl from its checkpoint", 1000);
    total = sink_ids(ts, seen, N);
    for (int i = 1; i <= N; i++)
        if (seen[i] == 0)
            fail_msg("record %d never arrived", i);
    /* sent twice: at most the unfinished batches of the window (in flight + the next) */
    if (total > N + 2 * BATCH)
        fail_msg("%zu records sent for %d: more than 2 batches again", total, N);
    /* a resume, not a fresh start */
    assert_true(total < N + (size_t)before * BATCH);
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

/* SIGTERM while a request hangs and reading waits for a free batch: gone within 2 s. */
static void test_spool_stop_while_sink_hangs(void **state)
{
    struct ts_server *ts = ts_start();
    struct ts_response hang = {200, NULL, "{}", TS_HANG, 0};
    struct proc pr = {0};
    char dir[512], p[1024], *cfg, *text;
    (void)state;

    assert_non_null(ts);
    ts_set_default(ts, &hang);
    snprintf(dir, sizeof(dir), "%s/spool", th_tmpdir());
    cfg = spool_config(ts_url(ts), dir, 10, "    max_in_flight: 1\n");
    spawn_run(&pr, cfg, NULL);
    wait_text(pr.err_path, "watching", 20000);
    text = records(1, 200);
    write_rename(dir, "held.jsonl", text);
    free(text);
    /* the first request is held; reading fills the window behind it and waits */
    while (ts_count(ts) < 1)
        nap_ms(5);
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    snprintf(p, sizeof(p), "%s/held.jsonl", dir);
    assert_true(file_exists(p));
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

/* A refused key keeps the file; once the key works it is delivered (after the backoff). */
static void test_spool_refused_key_waits(void **state)
{
    struct ts_server *ts = ts_start();
    struct ts_response refuse = {401, NULL, "{\"error\":\"bad key\"}", 0, 0};
    struct ts_response ok = {200, NULL, "{}", 0, 0};
    struct proc pr = {0};
    char dir[512], p[1024], status[128], *cfg, *text, *body = NULL;
    unsigned seen[11];
    (void)state;

    assert_non_null(ts);
    ts_set_default(ts, &refuse);
    snprintf(dir, sizeof(dir), "%s/spool", th_tmpdir());
    cfg = spool_config(ts_url(ts), dir, 10, NULL);
    spawn_run(&pr, cfg, NULL);
    status_url_n(&pr, 1, status, sizeof(status));
    text = records(1, 5);
    write_rename(dir, "wait.jsonl", text);
    free(text);
    snprintf(p, sizeof(p), "%s/readyz", status);
    for (long deadline = now_ms() + 20000;; nap_ms(20)) {
        long code = th_http("GET", p, NULL, &body);
        int refused = code == 503 && strstr(body, "refused the API key");
        free(body);
        body = NULL;
        if (refused)
            break;
        if (now_ms() > deadline)
            fail_msg("/readyz never said the key was refused");
    }
    snprintf(p, sizeof(p), "%s/wait.jsonl", dir);
    assert_true(file_exists(p));
    ts_set_default(ts, &ok);
    snprintf(p, sizeof(p), "%s/done/wait.jsonl", dir);
    wait_file(p, 20000);
    sink_ids(ts, seen, 10);
    for (int i = 1; i <= 5; i++)
        assert_true(seen[i] >= 1);
    snprintf(p, sizeof(p), "%s/readyz", status);
    assert_int_equal(th_http("GET", p, NULL, &body), 200);
    free(body);
    assert_int_equal(stop_within(&pr, SIGTERM, 2000), 0);
    proc_free(&pr);
    free(cfg);
    ts_stop(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_spool_done_failed_and_partial, teardown),
        cmocka_unit_test_teardown(test_spool_upsert_commit, teardown),
        cmocka_unit_test_teardown(test_spool_kill_resume, teardown),
        cmocka_unit_test_teardown(test_spool_stop_while_sink_hangs, teardown),
        cmocka_unit_test_teardown(test_spool_refused_key_waits, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
