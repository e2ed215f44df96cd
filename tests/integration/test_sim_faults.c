/*
 * test_sim_faults.c - every fault rule and the rate limit, scripted per
 * test through POST /_sim/faults: status codes with Retry-After and counts,
 * path and server selection, probabilities, delays beyond a client timeout,
 * reset (before applying) and reset-after (applied, cut mid-body), timeout
 * (held, then closed), and that a faulted request changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "test_sim_util.h"

static struct th_sim sim;

static const char *os_url(char *buf, size_t cap, const char *path)
{
    return url_of(buf, cap, sim.officespace_url, path);
}

static int setup(void **state)
{
    const char *extra[] = {"--seed", "11", NULL};
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return th_sim_start(&sim, extra);
}

/* The simulator's exit status: a leak or a sanitizer report in it fails the run. */
static int sim_exit;

static int teardown(void **state)
{
    (void)state;
    sim_exit = th_sim_stop(&sim);
    curl_global_cleanup();
    return sim_exit == 0 ? 0 : -1;
}

static int reset(void **state)
{
    (void)state;
    return th_sim_reset(&sim);
}

static void set_faults(const char *rules, long want)
{
    char url[256];
    assert_int_equal(th_http("POST", os_url(url, sizeof(url), "/_sim/faults"), rules, NULL), want);
}

static void stage(const char *id, long timeout_ms, struct resp *r)
{
    const char *hdrs[] = {REST_AUTH, "Content-Type: application/json", NULL};
    char url[256], body[128];

    snprintf(body, sizeof(body), "[{\"EmployeeId\":\"%s\",\"Source\":\"F\",\"FirstName\":\"x\"}]",
             id);
    http("POST", os_url(url, sizeof(url), "/api/1/employee_batch_imports"), hdrs, body, timeout_ms,
         r);
}

static long long staged(void)
{
    char url[256];
    json_t *j = th_get_json(os_url(url, sizeof(url), "/_sim/employees?summary=1"));
    long long n = jint_at(j, "staged_total");
    json_decref(j);
    return n;
}

static long get_sites(void)
{
    const char *hdrs[] = {REST_AUTH, NULL};
    char url[256];
    struct resp r;
    long st;

    http("GET", os_url(url, sizeof(url), "/api/1/sites"), hdrs, NULL, 0, &r);
    st = r.status;
    resp_free(&r);
    return st;
}

/* 503x2 with Retry-After: two refusals that stage nothing, then normal service. */
static void test_status_count_retry_after(void **state)
{
    struct resp r;
    (void)state;

    set_faults("503x2:retry-after=3", 200);
    for (int i = 0; i < 2; i++) {
        stage("A", 0, &r);
        assert_int_equal(r.status, 503);
        assert_string_equal(r.retry_after, "3");
        resp_free(&r);
    }
    assert_int_equal(staged(), 0);
    stage("A", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.retry_after, "");
    resp_free(&r);
    assert_int_equal(staged(), 1);
    {
        char url[256];
        json_t *j = th_get_json(os_url(url, sizeof(url), "/_sim/requests"));
        assert_string_equal(jstr_at(j, "requests.0.fault"), "status");
        assert_int_equal(jint_at(j, "requests.0.status"), 503);
        assert_null(jpath(j, "requests.2.fault"));
        json_decref(j);
    }
}

/* path= and server= pick the requests a rule applies to. */
static void test_path_and_server_selection(void **state)
{
    struct resp r;
    long st = 0;
    json_t *j;
    (void)state;

    set_faults("429:path=/api/1/employee_batch_imports:retry-after=1,500:server=mapped", 200);
    assert_int_equal(get_sites(), 200);
    stage("B", 0, &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(r.retry_after, "1");
    resp_free(&r);
    j = gql(sim.mapped_url, MAPPED_AUTH, "{ sites { id } }", NULL, &st);
    assert_int_equal(st, 500);
    assert_non_null(jstr_at(j, "errors.0.message"));
    json_decref(j);
    assert_int_equal(staged(), 0);
    /* /_sim is never faulted */
    set_faults("500", 200);
    assert_int_equal(staged(), 0);
    assert_int_equal(get_sites(), 500);
}

/* 500@0.5 fails about half of the requests, reproducibly for a seed. */
static void test_probability(void **state)
{
    int fails[2] = {0, 0};
    char seq[2][64];
    (void)state;

    for (int run = 0; run < 2; run++) {
        set_faults("500@0.5", 200);
        for (int i = 0; i < 60; i++) {
            int f = get_sites() == 500;
            fails[run] += f;
            seq[run][i] = f ? 'x' : '.';
        }
        seq[run][60] = '\0';
    }
    assert_in_range(fails[0], 15, 45);
    assert_string_equal(seq[0], seq[1]); /* POST /_sim/faults reseeds */
}

/* reset: closed before applying, no response. reset-after: applied, cut mid-body. */
static void test_resets(void **state)
{
    struct resp r;
    (void)state;

    set_faults("resetx1", 200);
    stage("R1", 0, &r);
    assert_int_equal(r.curl_rc, CURLE_GOT_NOTHING);
    assert_int_equal(r.status, 0);
    resp_free(&r);
    assert_int_equal(staged(), 0);

    set_faults("reset-afterx1", 200);
    stage("R2", 0, &r);
    assert_int_equal(r.curl_rc, CURLE_PARTIAL_FILE);
    assert_true(r.len > 0);
    resp_free(&r);
    assert_int_equal(staged(), 1);

    stage("R3", 0, &r);
    assert_int_equal(r.curl_rc, CURLE_OK);
    resp_free(&r);
    assert_int_equal(staged(), 2);
}

/* A delay beyond the client's timeout: the client gives up, the server still applies. */
static void test_delay(void **state)
{
    struct resp r;
    long deadline;
    (void)state;

    set_faults("delay=300ms", 200);
    stage("D1", 0, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.ms >= 280);
    resp_free(&r);

    set_faults("delay=1500ms", 200);
    stage("D2", 400, &r);
    assert_int_equal(r.curl_rc, CURLE_OPERATION_TIMEDOUT);
    resp_free(&r);
    deadline = tsu_now_ms() + 5000;
    while (staged() < 2 && tsu_now_ms() < deadline) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(staged(), 2);
}

/* timeout: held, then closed without an answer; nothing applied. */
static void test_timeout_hold(void **state)
{
    struct resp r;
    (void)state;

    set_faults("timeout:hold=700ms", 200);
    stage("T1", 5000, &r);
    assert_int_equal(r.curl_rc, CURLE_GOT_NOTHING);
    assert_true(r.ms >= 650);
    resp_free(&r);
    assert_int_equal(staged(), 0);
}

static void test_bad_rules(void **state)
{
    char url[256];
    char *body = NULL;
    json_t *j;
    (void)state;

    set_faults("600", 400);
    set_faults("500@2", 400);
    set_faults("delay=soon", 400);
    set_faults("500:colour=red", 400);
    assert_int_equal(th_http("POST", os_url(url, sizeof(url), "/_sim/faults"), "nope", &body), 400);
    assert_non_null(strstr(body, "nope"));
    free(body);
    set_faults("429@0.25:retry-after=2, 503x3", 200);
    j = th_get_json(os_url(url, sizeof(url), "/_sim/faults"));
    assert_int_equal(json_array_size(jpath(j, "parsed")), 2);
    assert_int_equal(jint_at(j, "parsed.0.retry_after"), 2);
    assert_int_equal(jint_at(j, "parsed.1.remaining"), 3);
    json_decref(j);
    set_faults("", 200);
    assert_int_equal(get_sites(), 200);

    {
        const char *argv[] = {"sim", "--mapped-port", "0",     "--officespace-port",
                              "0",   "--faults",      "bogus", NULL};
        struct th_result res;
        th_run(argv, NULL, 10000, &res);
        assert_int_equal(res.status, 64);
        assert_non_null(strstr(res.err, "bogus"));
        th_result_free(&res);
    }
}

/* --rate-limit: a burst beyond the budget gets 429 with Retry-After; /_sim is exempt. */
static void test_rate_limit(void **state)
{
    const char *extra[] = {"--rate-limit", "5/s", NULL};
    const char *hdrs[] = {REST_AUTH, NULL};
    struct th_sim rl;
    char url[256];
    int ok = 0, limited = 0;
    (void)state;

    assert_int_equal(th_sim_start(&rl, extra), 0);
    snprintf(url, sizeof(url), "%s/api/1/sites", rl.officespace_url);
    for (int i = 0; i < 20; i++) {
        struct resp r;
        http("GET", url, hdrs, NULL, 0, &r);
        if (r.status == 200)
            ok++;
        if (r.status == 429) {
            limited++;
            assert_true(atoi(r.retry_after) >= 1);
        }
        resp_free(&r);
    }
    assert_in_range(ok, 5, 8);
    assert_int_equal(ok + limited, 20);
    snprintf(url, sizeof(url), "%s/_sim/requests", rl.officespace_url);
    for (int i = 0; i < 10; i++)
        assert_int_equal(th_http("GET", url, NULL, NULL), 200);
    assert_int_equal(th_sim_stop(&rl), 0);
}

/* SIGTERM while a request is held: a clean, quick exit. */
static void test_stop_while_held(void **state)
{
    const char *extra[] = {"--faults", "timeout:hold=60s", NULL};
    struct th_sim h;
    pid_t pid;
    long t0;
    (void)state;

    assert_int_equal(th_sim_start(&h, extra), 0);
    pid = fork();
    if (pid == 0) {
        char url[256];
        snprintf(url, sizeof(url), "%s/api/1/sites", h.officespace_url);
        th_http("GET", url, NULL, NULL);
        _exit(0);
    }
    {
        struct timespec ts = {0, 300000000L};
        nanosleep(&ts, NULL);
    }
    t0 = tsu_now_ms();
    assert_int_equal(th_sim_stop(&h), 0);
    assert_true(tsu_now_ms() - t0 < 3000);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_status_count_retry_after, reset),
        cmocka_unit_test_setup(test_path_and_server_selection, reset),
        cmocka_unit_test_setup(test_probability, reset),
        cmocka_unit_test_setup(test_resets, reset),
        cmocka_unit_test_setup(test_delay, reset),
        cmocka_unit_test_setup(test_timeout_hold, reset),
        cmocka_unit_test_setup(test_bad_rules, reset),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_stop_while_held),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (sim_exit)
        fprintf(stderr, "the simulator exited with status %d\n", sim_exit);
    return failed || sim_exit;
}
