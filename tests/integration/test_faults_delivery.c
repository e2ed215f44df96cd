/*
 * test_faults_delivery.c - the delivery fault matrix: 100,000 employee
 * records through 429 with Retry-After, 500, 503, answers slower than the
 * timeout, connections reset mid-response and random permanent 400s.
 *
 * test_fault_matrix: the engine runs in-process against the scripted test
 * server, whose responses are drawn at random (seeded; the seed is printed)
 * and queued ahead of the requests, so request i got scripted response i.
 * Afterwards what the server accepted plus the dead-letter file must account
 * for every record: each input record delivered or dead-lettered; a record
 * delivered twice, or both delivered and dead-lettered, only when one of its
 * requests was answered 2xx by the server but lost on the way back (reset or
 * timeout), which a client cannot tell from a failure. The client side of
 * that is taken from the engine (a call without an answer), matched to the
 * server's log by X-Request-Id, so a slow machine cannot fake a pass.
 *
 * test_fault_matrix_sim: 20,000 records through the real binary and the
 * simulator's fault rules, accounted from the simulator's staging area.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "osc/clock.h"
#include "osc/config.h"
#include "osc/delivery.h"
#include "osc/log.h"
#include "testserver.h"

#define NREC         100000
#define BATCH        100
#define MAX_SCRIPTED 200000

enum fault { F_OK = 0, F_429, F_500, F_503, F_SLOW, F_RESET, F_400, F_NFAULTS };
static const char *const fault_names[] = {"200",  "429+Retry-After", "500", "503",
                                          "slow", "reset",           "400"};

struct matrix {
    struct ts_server *ts;
    unsigned char *script; /* enum fault per request, in arrival order */
    size_t pushed;
    unsigned retry_after_left; /* 429s with Retry-After: 1 (each pauses ~1 s) */
    unsigned counts[F_NFAULTS];
    uint64_t rng;
};

static uint64_t rnd(struct matrix *m)
{
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 0x2545F4914F6CDD1DULL;
}

static void push_one(struct matrix *m)
{
    unsigned r = (unsigned)(rnd(m) % 1000);
    enum fault f = r < 780   ? F_OK
                   : r < 800 ? F_429
                   : r < 850 ? F_500
                   : r < 890 ? F_503
                   : r < 920 ? F_SLOW
                   : r < 960 ? F_RESET
                             : F_400;
    struct ts_response resp = {200, NULL, "{\"imported\":true}", 0, 0};

    switch (f) {
    case F_429:
        resp.status = 429;
        resp.body = "rate limited";
        /* a few ask for a real pause (it stops the whole destination); the rest for 0 s */
        resp.headers = m->retry_after_left ? "Retry-After: 1\n" : "Retry-After: 0\n";
        if (m->retry_after_left)
            m->retry_after_left--;
        break;
    case F_500:
        resp.status = 500;
        resp.body = "internal error";
        break;
    case F_503:
        resp.status = 503;
        resp.body = "unavailable";
        break;
    case F_SLOW:
        resp.delay_ms = 400; /* the client gives up at 150 ms; the server still takes it */
        break;
    case F_RESET:
        resp.reset = 1; /* 200, half the body, then the connection drops */
        resp.body = "{\"imported\":true,\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
        break;
    case F_400:
        resp.status = 400;
        resp.body = "{\"error\":\"invalid record\"}";
        break;
    default: break;
    }
    assert_true(m->pushed < MAX_SCRIPTED);
    m->script[m->pushed++] = (unsigned char)f;
    ts_push(m->ts, &resp);
}

/* Keep the server's queue well ahead of the requests (at most 4 in flight). */
static void top_up(struct matrix *m)
{
    while (m->pushed < ts_count(m->ts) + 120)
        push_one(m);
}

/* Request ids (X-Request-Id: one per batch) of batches that saw no answer at least once. */
static char lost_ids[4096][40];
static size_t nlost;

static void on_call(void *ud, const struct osc_delivery_call *c)
{
    /* a reply lost on the way back (reset, or a timeout: scripted, or a loaded machine)
     * may have been applied by the server: its records may legitimately come twice */
    if (c->resp && c->resp->transport && nlost < 4096)
        snprintf(lost_ids[nlost++], sizeof(lost_ids[0]), "%s", c->request_id);
    top_up(ud);
}

static int lost(const struct ts_request *r)
{
    char id[64];
    if (ts_header(r, "x-request-id", id, sizeof(id)) != 0)
        return 0;
    for (size_t i = 0; i < nlost; i++)
        if (strcmp(lost_ids[i], id) == 0)
            return 1;
    return 0;
}

static void test_fault_matrix(void **state)
{
    struct matrix m = {0};
    struct osc_config *cfg = NULL;
    struct osc_delivery *d;
    struct osc_delivery_stats st;
    struct osc_err err = {0};
    struct osc_buf in;
    char *text = NULL, *input, *dl;
    unsigned char *delivered = calloc(NREC, 1), *dead = calloc(NREC, 1);
    unsigned char *lost_reply = calloc(NREC, 1); /* in a request answered 2xx but lost */
    unsigned seed = (unsigned)time(NULL);
    size_t both = 0, dups = 0, n_dead = 0;
    int64_t t0 = osc_clock_mono_ms(NULL);
    (void)state;

    printf("# seed %u\n", seed);
    m.rng = seed | 1;
    m.retry_after_left = 3;
    m.script = calloc(MAX_SCRIPTED, 1);
    m.ts = ts_start();
    assert_non_null(m.ts);
    ts_set_default(m.ts, &(struct ts_response){599, NULL, "script ran dry", 0, 0});
    top_up(&m);

    osc_buf_init(&in, 1u << 27);
    for (int i = 0; i < NREC; i++)
        osc_buf_printf(
            &in, "{\"employee_id\":\"%d\",\"email\":\"u%d@example.com\",\"name\":\"A B\"}\n", i, i);
    input = th_write_file("in.jsonl", osc_buf_str(&in));
    osc_buf_free(&in);
    dl = th_write_file("faults.dead.jsonl", "");
    remove(dl);
    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: fault-key-0123456789abcdef\n"
                         "destinations:\n  employees:\n    template: upsert_employees\n"
                         "    clear_staging: false\n    batch: {size: %d}\n    max_in_flight: 4\n"
                         "    timeout: 150ms\n    dead_letter: %s\n"
                         "    retry: {base: 1ms, cap: 4ms, max_attempts: 5, max_elapsed: 30s}\n",
                         ts_url(m.ts), BATCH, dl) > 0);
    assert_int_equal(osc_config_load_string(text, strlen(text), "f.yaml", &cfg, &err), 0);
    free(text);

    d = osc_delivery_new(cfg, "employees",
                         &(struct osc_delivery_opts){.on_call = on_call, .ud = &m, .seed = seed},
                         &err);
    assert_non_null(d);
    assert_int_equal(osc_delivery_feed(d, input, OSC_RECORDS_AUTO, 0, &err), 0);
    assert_int_equal(osc_delivery_finish(d), 0);
    osc_delivery_get_stats(d, &st);
    osc_delivery_free(d);

    /* what the server accepted: request i got scripted response i */
    assert_true(ts_count(m.ts) <= m.pushed);
    for (size_t i = 0; i < ts_count(m.ts); i++) {
        struct ts_request r;
        enum fault f = (enum fault)m.script[i];
        json_t *arr, *v;
        int is_lost;
        size_t k;
        m.counts[f]++;
        if (f != F_OK && f != F_SLOW && f != F_RESET)
            continue; /* the server refused it */
        assert_int_equal(ts_get(m.ts, i, &r), 0);
        arr = json_loads(r.body, 0, NULL);
        assert_non_null(arr);
        is_lost = lost(&r);
        if (f != F_OK)
            assert_true(is_lost); /* the client saw the scripted fault */
        json_array_foreach(arr, k, v)
        {
            int id = atoi(json_string_value(json_object_get(v, "EmployeeId")));
            assert_true(id >= 0 && id < NREC);
            if (delivered[id]++)
                dups++;
            if (is_lost)
                lost_reply[id] = 1;
        }
        json_decref(arr);
        ts_request_free(&r);
    }
    {
        char *t = th_read_file(dl), *line, *save = NULL;
        for (line = t ? strtok_r(t, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
            json_t *j = json_loads(line, 0, NULL);
            const char *reason = json_string_value(json_object_get(j, "reason"));
            int id = atoi(
                json_string_value(json_object_get(json_object_get(j, "record"), "employee_id")));
            assert_true(id >= 0 && id < NREC);
            assert_non_null(reason);
            assert_true(strstr(reason, "HTTP 400") || strstr(reason, "gave up after"));
            assert_false(dead[id]++); /* dead-lettered at most once */
            n_dead++;
            json_decref(j);
        }
        free(t);
    }
    for (int i = 0; i < NREC; i++) {
        if (!delivered[i] && !dead[i])
            fail_msg("record %d was neither delivered nor dead-lettered", i);
        if (delivered[i] && dead[i]) {
            both++;
            if (!lost_reply[i])
                fail_msg("record %d was delivered and dead-lettered without a lost reply", i);
        }
        if (delivered[i] > 1 && !lost_reply[i])
            fail_msg("record %d was delivered %u times without a lost reply", i, delivered[i]);
    }
    printf("# %zu requests in %.1f s:", ts_count(m.ts),
           (double)(osc_clock_mono_ms(NULL) - t0) / 1000.0);
    for (int f = 0; f < F_NFAULTS; f++)
        printf(" %s=%u", fault_names[f], m.counts[f]);
    printf("\n# %llu sent, %zu dead-lettered, %zu duplicates, %zu both delivered and "
           "dead-lettered (lost replies), %llu retries\n",
           (unsigned long long)st.sent, n_dead, dups, both, (unsigned long long)st.retries);
    /* every fault kind happened, and the counters agree with the files */
    for (int f = 0; f < F_NFAULTS; f++)
        assert_true(m.counts[f] > 0);
    assert_int_equal(st.records, NREC);
    assert_int_equal(st.sent + st.rejected + st.unavailable, NREC);
    assert_int_equal(st.dead_lettered, n_dead);
    assert_int_equal(st.rejected + st.unavailable, n_dead);

    free(delivered);
    free(dead);
    free(lost_reply);
    free(m.script);
    free(input);
    free(dl);
    osc_config_free(cfg);
    ts_stop(m.ts);
    th_tmpdir_cleanup();
    osc_log_secret_clear();
}

/*
 * The same through the real binary and the simulator's own fault rules
 * (docs/simulator.md): what the simulator staged plus the dead-letter file
 * must hold every record; a record staged twice, or staged and
 * dead-lettered, only through `reset-after` (applied, then the connection
 * dropped), never through a fault the simulator did not apply.
 */
static void test_fault_matrix_sim(void **state)
{
    struct th_sim sim;
    struct osc_buf in;
    char *input, *dl, *cfg, *text = NULL, url[300];
    const int n = 20000;
    unsigned char *staged = calloc((size_t)n, 1), *dead = calloc((size_t)n, 1);
    size_t dups = 0, both = 0, n_dead = 0, i;
    json_t *emp, *r;
    struct th_result res;
    (void)state;

    assert_int_equal(th_sim_start(&sim, (const char *const[]){"--seed", "7", NULL}), 0);
    snprintf(url, sizeof(url), "%s/_sim/faults", sim.officespace_url);
    assert_int_equal(th_http("POST", url,
                             "429x2:retry-after=1:path=/api/1/employee_batch_imports,"
                             "429@0.04:retry-after=0:path=/api/1/employee_batch_imports,"
                             "500@0.05:path=/api/1/employee_batch_imports,"
                             "503@0.04:path=/api/1/employee_batch_imports,"
                             "reset@0.03:path=/api/1/employee_batch_imports,"
                             "reset-after@0.03:path=/api/1/employee_batch_imports,"
                             "timeout@0.02:hold=600ms:path=/api/1/employee_batch_imports,"
                             "400@0.02:path=/api/1/employee_batch_imports",
                             NULL),
                     200);
    osc_buf_init(&in, 1u << 24);
    for (int k = 0; k < n; k++)
        osc_buf_printf(&in, "{\"employee_id\":\"%d\",\"email\":\"u%d@example.com\"}\n", k, k);
    input = th_write_file("sim.jsonl", osc_buf_str(&in));
    osc_buf_free(&in);
    dl = th_write_file("sim.dead.jsonl", "");
    remove(dl);
    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: %s\n"
                         "destinations:\n  employees:\n    template: upsert_employees\n"
                         "    source_name: FM\n    batch: {size: 100}\n    max_in_flight: 4\n"
                         "    timeout: 300ms\n    dead_letter: %s\n"
                         "    retry: {base: 1ms, cap: 5ms, max_attempts: 6}\n",
                         sim.officespace_url, TH_SIM_OS_KEY, dl) > 0);
    cfg = th_write_file("sim.yaml", text);
    free(text);
    {
        const char *argv[] = {"send", "-q", "-c", cfg, "-d", "employees", input, NULL};
        assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
        /* 65: some batches were refused (400); 69: some gave up after retries */
        if (res.status != 0 && res.status != 65 && res.status != 69)
            fail_msg("exit %d: %s", res.status, res.err);
        assert_null(strstr(res.err, TH_SIM_OS_KEY));
        printf("# %s", res.err);
        th_result_free(&res);
    }
    snprintf(url, sizeof(url), "%s/_sim/employees", sim.officespace_url);
    emp = th_get_json(url);
    assert_non_null(emp);
    json_array_foreach(json_object_get(json_object_get(emp, "staged"), "FM"), i, r)
    {
        int id = atoi(json_string_value(json_object_get(r, "EmployeeId")));
        assert_true(id >= 0 && id < n);
        if (staged[id]++)
            dups++;
    }
    json_decref(emp);
    {
        char *t = th_read_file(dl), *line, *save = NULL;
        for (line = t ? strtok_r(t, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
            json_t *j = json_loads(line, 0, NULL);
            int id = atoi(
                json_string_value(json_object_get(json_object_get(j, "record"), "employee_id")));
            const char *reason = json_string_value(json_object_get(j, "reason"));
            assert_true(id >= 0 && id < n);
            assert_true(strstr(reason, "HTTP 400") || strstr(reason, "gave up after"));
            assert_false(dead[id]++);
            n_dead++;
            json_decref(j);
        }
        free(t);
    }
    for (int k = 0; k < n; k++) {
        if (!staged[k] && !dead[k])
            fail_msg("record %d was neither staged nor dead-lettered", k);
        both += staged[k] && dead[k];
    }
    printf("# simulator: %d records, %zu dead-lettered, %zu staged twice, %zu staged and "
           "dead-lettered (reset-after)\n",
           n, n_dead, dups, both);
    /* only reset-after applies a request the client then retries: whole batches of 100 */
    assert_int_equal(dups % 100, 0);
    assert_int_equal(both % 100, 0);
    assert_int_equal(th_sim_stop(&sim), 0);
    free(staged);
    free(dead);
    free(input);
    free(dl);
    free(cfg);
    th_tmpdir_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fault_matrix),
                                       cmocka_unit_test(test_fault_matrix_sim)};
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
