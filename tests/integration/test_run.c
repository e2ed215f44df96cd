/*
 * test_run.c - `osconnect run` (presence plus the status endpoint) as a
 * daemon against the simulator: /healthz and /metrics content, the
 * resend_after refresh, SIGTERM aborting a push that never gets an answer, SIGHUP reloads
 * (a bad file keeps the running config; a good one is used at once).
 *
 * Each test starts a fresh simulator with tests/fixtures/presence/
 * sim_scenario.json and runs the real binary in the background with its
 * stdout and stderr in files; every wait polls a condition with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "testserver.h"

static struct th_sim sim;
static char *state_path;
static pid_t child; /* a background osconnect still running; killed by teardown if a test failed */

struct proc {
    pid_t pid;
    char *out_path, *err_path;
    char status_url[128]; /* http://127.0.0.1:PORT */
};

static int setup(void **state)
{
    const char *extra[] = {"--scenario", th_fixture("presence/sim_scenario.json"), NULL};
    (void)state;
    assert_int_equal(th_sim_start(&sim, extra), 0);
    assert_true(asprintf(&state_path, "%s/state.db", th_tmpdir()) > 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = 0;
    }
    assert_int_equal(th_sim_stop(&sim), 0);
    free(state_path);
    state_path = NULL;
    th_tmpdir_cleanup();
    return 0;
}

/*
 * The scenario's fixed readings (room 100: 2026-01-07) are older than any expire_after, so
 * configs turn expiry off unless the test sets it.
 */
static const char *no_expiry(const char *extra)
{
    return extra && strstr(extra, "expire_after") ? "" : "  expire_after: 0\n";
}

static char *config_text(const char *buildings, const char *token, const char *interval,
                         const char *extra)
{
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: " TH_SIM_OS_KEY "\n"
                         "  graphql_url: %s/graphql\n  timeout: 5s\n"
                         "mapped:\n  url: %s\n  token: %s\n  timeout: 5s\n"
                         "status:\n  listen: 127.0.0.1:0\n"
                         "presence:\n  buildings: [%s]\n  interval: %s\n  state: %s\n"
                         "  retry:\n    max_attempts: 3\n    base: 20ms\n    cap: 50ms\n%s%s",
                         sim.officespace_url, sim.officespace_url, sim.mapped_url,
                         token ? token : TH_SIM_MAPPED_TOKEN, buildings, interval, state_path,
                         no_expiry(extra), extra ? extra : "") > 0);
    return yaml;
}

static char *config(const char *buildings, const char *token, const char *interval,
                    const char *extra)
{
    char *yaml = config_text(buildings, token, interval, extra), *path;
    path = th_write_file("run.yaml", yaml);
    free(yaml);
    return path;
}

static char *slurp(const char *path)
{
    char *s = th_read_file(path);
    if (!s)
        s = strdup(""); /* the child has not opened it yet */
    assert_non_null(s);
    return s;
}

/* Start `osconnect run -c cfg` and wait for its "status http://..." line. */
static void start_run(struct proc *pr, const char *cfg)
{
    const char *bin = getenv("OSC_BIN");
    long deadline = th_now_ms() + 15000;

    assert_non_null(bin);
    memset(pr, 0, sizeof(*pr));
    assert_true(asprintf(&pr->out_path, "%s/run-out.txt", th_tmpdir()) > 0);
    assert_true(asprintf(&pr->err_path, "%s/run-err.txt", th_tmpdir()) > 0);
    pr->pid = fork();
    assert_true(pr->pid >= 0);
    if (pr->pid == 0) {
        FILE *o = fopen(pr->out_path, "w"), *e = fopen(pr->err_path, "w");
        if (!o || !e)
            _exit(127);
        dup2(fileno(o), 1);
        dup2(fileno(e), 2);
        execl(bin, bin, "run", "-c", cfg, (char *)NULL);
        _exit(127);
    }
    child = pr->pid;
    for (;;) {
        char *out = slurp(pr->out_path), *s = strstr(out, "status http://"), *nl;
        if (s && (nl = strchr(s, '\n'))) {
            *nl = '\0';
            snprintf(pr->status_url, sizeof(pr->status_url), "%s", s + 7);
            free(out);
            return;
        }
        free(out);
        if (th_now_ms() > deadline)
            fail_msg("osconnect run printed no status address");
        th_nap_ms(20);
    }
}

/* Signal (0: none) and wait at most 15 s; the exit status. */
static int stop_run(struct proc *pr, int sig)
{
    int status = 0;
    long deadline = th_now_ms() + 15000;
    char *err;

    if (sig)
        kill(pr->pid, sig);
    while (waitpid(pr->pid, &status, WNOHANG) == 0) {
        if (th_now_ms() > deadline) {
            kill(pr->pid, SIGKILL);
            waitpid(pr->pid, &status, 0);
            child = 0;
            fail_msg("osconnect run did not stop within 15 s");
        }
        th_nap_ms(20);
    }
    child = 0;
    err = slurp(pr->err_path);
    assert_null(strstr(err, TH_SIM_MAPPED_TOKEN));
    assert_null(strstr(err, TH_SIM_OS_KEY));
    free(err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Signal and wait: the process must be gone within ms (a liveness bound, not a benchmark). */
static int stop_within(struct proc *pr, int sig, long ms)
{
    int status = 0;
    long deadline = th_now_ms() + ms;

    kill(pr->pid, sig);
    while (waitpid(pr->pid, &status, WNOHANG) == 0) {
        if (th_now_ms() > deadline) {
            kill(pr->pid, SIGKILL);
            waitpid(pr->pid, &status, 0);
            child = 0;
            fail_msg("osconnect was still running %ld ms after signal %d", ms, sig);
        }
        th_nap_ms(10);
    }
    child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void proc_free(struct proc *pr)
{
    free(pr->out_path);
    free(pr->err_path);
}

static long get(const struct proc *pr, const char *path, char **body)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", pr->status_url, path);
    return th_http("GET", url, NULL, body);
}

/* The value of the sample line that starts with `series ` in Prometheus text, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static double metric(const struct proc *pr, const char *series)
{
    char *body = NULL;
    double v;
    assert_int_equal(get(pr, "/metrics", &body), 200);
    v = sample(body, series);
    free(body);
    return v;
}

/* Wait (at most ms) until stderr holds what. */
static void wait_err(const struct proc *pr, const char *what, long ms)
{
    long deadline = th_now_ms() + ms;
    for (;;) {
        char *err = slurp(pr->err_path);
        int found = strstr(err, what) != NULL;
        free(err);
        if (found)
            return;
        if (th_now_ms() > deadline)
            fail_msg("stderr never said \"%s\"", what);
        th_nap_ms(20);
    }
}

static json_t *presence_of(const char *type, const char *id)
{
    char url[256];
    json_t *p, *v, *copy = NULL;
    size_t i;
    snprintf(url, sizeof(url), "%s/_sim/presence", sim.officespace_url);
    p = th_get_json(url);
    assert_non_null(p);
    json_array_foreach(json_object_get(p, "locations"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "type")), type) == 0 &&
            strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
            copy = json_deep_copy(v);
    }
    json_decref(p);
    return copy;
}

static long updates_of(const char *type, const char *id)
{
    json_t *l = presence_of(type, id);
    long n = l ? (long)json_integer_value(json_object_get(l, "updates")) : 0;
    json_decref(l);
    return n;
}

static size_t sim_requests(const char *server)
{
    char url[256];
    json_t *r, *v;
    size_t i, n = 0;
    snprintf(url, sizeof(url), "%s/_sim/requests?path=/graphql", sim.officespace_url);
    r = th_get_json(url);
    assert_non_null(r);
    json_array_foreach(json_object_get(r, "requests"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "server")), server) == 0)
            n++;
    }
    json_decref(r);
    return n;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_health_metrics_refresh(void **state)
{
    char *cfg = config("BLDGtest1", NULL, "300ms", "  resend_after: 1s\n"), *body = NULL;
    struct proc pr;
    long deadline;
    double ok1, acc1;

    (void)state;
    start_run(&pr, cfg);
    deadline = th_now_ms() + 30000;
    while (get(&pr, "/healthz", &body) != 200) {
        free(body);
        body = NULL;
        assert_true(th_now_ms() < deadline);
        th_nap_ms(20);
    }
    assert_non_null(strstr(body, "ok: last cycle (ok) read Mapped and every push was "
                                 "acknowledged (8 accepted, 0 refused)"));
    free(body);
    /* /healthz is /readyz; /livez says the loop is alive */
    assert_int_equal(get(&pr, "/readyz", &body), 200);
    assert_non_null(strstr(body, "ok: last cycle (ok) read Mapped"));
    free(body);
    assert_int_equal(get(&pr, "/livez", &body), 200);
    assert_non_null(strstr(body, "ok: presence loop ticked "));
    free(body);

    assert_int_equal(get(&pr, "/metrics", &body), 200);
    assert_non_null(strstr(body, "# TYPE osconnect_presence_cycles_total counter\n"));
    assert_non_null(strstr(body, "# TYPE osconnect_presence_locations gauge\n"));
    assert_non_null(strstr(body, "# TYPE osconnect_presence_cycle_duration_seconds summary\n"));
    assert_true(sample(body, "osconnect_presence_cycles_total{result=\"ok\"}") >= 1);
    assert_true(sample(body, "osconnect_presence_cycle_duration_seconds_count") >= 1);
    assert_true(sample(body, "osconnect_presence_cycle_duration_seconds_sum") >= 0);
    assert_true(sample(body, "osconnect_presence_cycles_total{result=\"failed\"}") == 0);
    assert_true(sample(body, "osconnect_presence_locations{status=\"PRESENCE\"}") == 4);
    assert_true(sample(body, "osconnect_presence_locations{status=\"PASSIVE_PRESENCE\"}") == 2);
    assert_true(sample(body, "osconnect_presence_locations{status=\"NO_PRESENCE\"}") == 2);
    assert_true(sample(body, "osconnect_presence_locations{status=\"unknown\"}") == 3);
    assert_true(sample(body, "osconnect_presence_locations_discovered") == 11);
    assert_true(sample(body, "osconnect_presence_points") == 13);
    assert_true(sample(body, "osconnect_presence_invalid_identities") == 2);
    assert_true(sample(body, "osconnect_presence_invalid_values_total") >= 1); /* the NaN */
    assert_true(sample(body, "osconnect_presence_pushes_total{result=\"accepted\"}") >= 8);
    assert_true(sample(body, "osconnect_presence_pushes_total{result=\"failed\"}") == 0);
    assert_true(sample(body, "osconnect_presence_pushes_total{result=\"unacknowledged\"}") == 0);
    assert_true(sample(body, "osconnect_presence_push_requests_total") >= 1);
    assert_true(sample(body, "osconnect_presence_mapped_requests_total") >= 1);
    assert_true(
        sample(body, "osconnect_presence_api_errors_total{api=\"mapped\",class=\"auth\"}") == 0);
    assert_true(sample(body, "osconnect_presence_last_success_timestamp_seconds") > 1.7e9);
    assert_true(sample(body, "osconnect_presence_up") == 1);
    free(body);

    /* unchanged locations are pushed again once resend_after (1 s) has passed */
    acc1 = metric(&pr, "osconnect_presence_pushes_total{result=\"accepted\"}");
    ok1 = metric(&pr, "osconnect_presence_cycles_total{result=\"ok\"}");
    deadline = th_now_ms() + 30000;
    while (updates_of("floor", "10") < 2) {
        assert_true(th_now_ms() < deadline);
        th_nap_ms(50);
    }
    {
        json_t *l = presence_of("floor", "10");
        assert_string_equal(json_string_value(json_object_get(l, "occupancyStatus")), "PRESENCE");
        assert_int_equal(json_integer_value(json_object_get(l, "occupancyCount")), 12);
        json_decref(l);
    }
    assert_true(metric(&pr, "osconnect_presence_pushes_total{result=\"accepted\"}") >= acc1 + 8);
    assert_true(metric(&pr, "osconnect_presence_cycles_total{result=\"ok\"}") > ok1);

    /* the endpoint serves nothing else */
    assert_int_equal(get(&pr, "/nope", NULL), 404);
    {
        char url[256];
        snprintf(url, sizeof(url), "%s/metrics", pr.status_url);
        assert_int_equal(th_http("POST", url, "x", NULL), 405);
    }
    assert_int_equal(stop_run(&pr, SIGTERM), 0);
    {
        char *err = slurp(pr.err_path), *first = strstr(err, "PNTr105status: latest value is NaN");
        assert_non_null(strstr(err, "stopped"));
        /* the NaN point was read every cycle but reported once */
        assert_non_null(first);
        assert_null(strstr(first + 1, "PNTr105status: latest value is NaN"));
        free(err);
    }
    proc_free(&pr);
    free(cfg);
}

static void test_unhealthy_while_mapped_refuses(void **state)
{
    char *cfg = config("BLDGtest1", "sim-mapped-token-WRONG-0000000000", "200ms", NULL),
         *body = NULL;
    struct proc pr;

    (void)state;
    start_run(&pr, cfg);
    wait_err(&pr, "(step 1)", 10000);
    assert_int_equal(get(&pr, "/healthz", &body), 503);
    assert_non_null(strstr(body, "not ready: last cycle (auth_failed, "));
    assert_non_null(strstr(body, "could not read Mapped"));
    free(body);
    assert_int_equal(get(&pr, "/readyz", &body), 503);
    free(body);
    /* backing off is alive */
    assert_int_equal(get(&pr, "/livez", &body), 200);
    free(body);
    assert_true(metric(&pr, "osconnect_presence_up") == 0);
    assert_true(metric(&pr, "osconnect_presence_cycles_total{result=\"auth_failed\"}") >= 1);
    assert_true(metric(&pr, "osconnect_presence_api_errors_total{api=\"mapped\",class=\"auth\"}") >=
                1);
    assert_true(metric(&pr, "osconnect_presence_cycles_total{result=\"ok\"}") == 0);
    /* SIGTERM during the backoff wait ends it at once */
    {
        long t0 = th_now_ms();
        assert_int_equal(stop_run(&pr, SIGTERM), 0);
        assert_true(th_now_ms() - t0 < 2000);
    }
    proc_free(&pr);
    free(cfg);
}

/*
 * SIGTERM while OfficeSpace never answers the push: the push is aborted, the process exits 0
 * within 2 s (the test allows 4), and nothing unacknowledged was recorded: the next cycle
 * sends all eight again.
 */
static void test_sigterm_aborts_hung_push(void **state)
{
    struct ts_server *hang = ts_start();
    struct ts_response never = {200, NULL, "{}", TS_HANG, 0};
    char *yaml = NULL, *cfg, *good, url[256];
    struct proc pr;
    long deadline;
    json_t *p;

    (void)state;
    assert_non_null(hang);
    ts_set_default(hang, &never);
    /* OfficeSpace GraphQL is the stand-in that never answers; its timeout is a minute */
    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: " TH_SIM_OS_KEY "\n"
                         "  graphql_url: %s/graphql\n  timeout: 60s\n"
                         "mapped:\n  url: %s\n  token: " TH_SIM_MAPPED_TOKEN "\n  timeout: 60s\n"
                         "status:\n  listen: 127.0.0.1:0\n"
                         "presence:\n  buildings: [BLDGtest1]\n  interval: 5s\n  state: %s\n"
                         "  expire_after: 0\n",
                         sim.officespace_url, ts_url(hang), sim.mapped_url, state_path) > 0);
    cfg = th_write_file("hang.yaml", yaml);
    free(yaml);
    start_run(&pr, cfg);
    deadline = th_now_ms() + 30000;
    while (ts_count(hang) == 0) {
        assert_true(th_now_ms() < deadline);
        th_nap_ms(10);
    }
    assert_int_equal(stop_within(&pr, SIGTERM, 4000), 0);
    {
        char *err = slurp(pr.err_path);
        assert_non_null(strstr(err, "stopped"));
        free(err);
    }
    assert_int_equal(ts_count(hang), 1);         /* no retry after the stop */
    assert_int_equal(sim_requests("mapped"), 1); /* and no new cycle */
    ts_stop(hang);
    proc_free(&pr);
    free(cfg);

    /* the state recorded nothing: with OfficeSpace answering, all eight go out */
    good = config("BLDGtest1", NULL, "5s", NULL);
    {
        const char *argv[] = {"presence", "-c", good, "--once", NULL};
        struct th_result r;
        assert_int_equal(th_run(argv, NULL, 30000, &r), 0);
        assert_int_equal(r.status, 0);
        th_result_free(&r);
    }
    snprintf(url, sizeof(url), "%s/_sim/presence", sim.officespace_url);
    p = th_get_json(url);
    assert_int_equal(json_integer_value(json_object_get(p, "accepted")), 8);
    json_decref(p);
    free(good);
}

static void test_sighup_reload(void **state)
{
    char *cfg = config("BLDGtest1", NULL, "300ms", NULL), *good, *path;
    struct proc pr;
    long deadline;
    double ok;

    (void)state;
    start_run(&pr, cfg);
    wait_err(&pr, "cycle: 11 locations", 10000);

    /* a bad file: logged with the reason, the running configuration goes on */
    path = th_write_file("run.yaml", "presence:\n  buildings: [BLDGtest1\n  interval: fast\n");
    free(path);
    kill(pr.pid, SIGHUP);
    wait_err(&pr, "failed, keeping the running configuration", 5000);
    ok = metric(&pr, "osconnect_presence_cycles_total{result=\"ok\"}");
    deadline = th_now_ms() + 5000;
    while (metric(&pr, "osconnect_presence_cycles_total{result=\"ok\"}") < ok + 2) {
        assert_true(th_now_ms() < deadline);
        th_nap_ms(50);
    }
    assert_int_equal(get(&pr, "/healthz", NULL), 200);
    assert_null(presence_of("room", "106"));

    /* a good file with a second building: used from the next cycle on */
    good = config_text("BLDGtest1, BLDGtest2", NULL, "300ms", NULL);
    path = th_write_file("run.yaml", good);
    free(path);
    free(good);
    kill(pr.pid, SIGHUP);
    wait_err(&pr, "configuration reloaded", 5000);
    deadline = th_now_ms() + 5000;
    for (;;) {
        json_t *l = presence_of("room", "106");
        if (l) {
            assert_int_equal(json_integer_value(json_object_get(l, "occupancyCount")), 7);
            json_decref(l);
            break;
        }
        assert_true(th_now_ms() < deadline);
        th_nap_ms(50);
    }
    /* the state carried over: BLDGtest1's locations were not pushed again */
    assert_int_equal(updates_of("room", "100"), 1);
    /* after the rediscovery, one read request covers both buildings */
    {
        char url[256];
        size_t i, both = 0;
        json_t *r, *v;
        snprintf(url, sizeof(url), "%s/_sim/requests?path=/graphql", sim.officespace_url);
        deadline = th_now_ms() + 5000;
        while (!both) {
            assert_true(th_now_ms() < deadline);
            th_nap_ms(100);
            r = th_get_json(url);
            json_array_foreach(json_object_get(r, "requests"), i, v)
            {
                const char *b = json_string_value(json_object_get(v, "body"));
                if (b && strstr(b, "in: [\\\"BLDGtest1\\\", \\\"BLDGtest2\\\"]") &&
                    !strstr(b, "identities"))
                    both = 1;
            }
            json_decref(r);
        }
    }
    assert_int_equal(stop_run(&pr, SIGTERM), 0);
    proc_free(&pr);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_metrics_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unhealthy_while_mapped_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_aborts_hung_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sighup_reload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
