/*
 * test_presence_daemon.c - the presence daemon when things go badly, with
 * the real binary: stand-ins (tests/support/testserver.c) that never answer
 * or answer without acknowledging, and the simulator for the rest.
 *
 *   - SIGTERM / SIGINT end `run` and `presence` while a Mapped read hangs
 *     (mapped.timeout 60 s): gone within 2 s (the tests allow 4: a liveness
 *     bound, not a benchmark); `presence --once` stopped that way exits 75.
 *   - Pushes OfficeSpace does not acknowledge under their alias: `--once`
 *     exits 1 naming the location and why; `run` is not ready (/readyz,
 *     /healthz 503), still live (/livez 200), and counts them.
 *   - One process per state file: a second `presence` or `run` exits 75
 *     naming the file and the holder's pid; a dry run needs no lock; after
 *     kill -9 the lock is gone.
 *   - A SIGHUP reload whose token_file is a FIFO is refused at once (it
 *     used to hang the daemon), and so is `check --offline`.
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
#include <sys/stat.h>
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
 * A config file: Mapped at mapped_url (NULL: the simulator), OfficeSpace GraphQL at os_url
 * (NULL: the simulator); extra lines go under mapped: (token or token_file, NULL: the
 * simulator's token). Timeouts are a minute, so only an abort ends a hung request early.
 */
static char *config(const char *name, const char *mapped_url, const char *os_url,
                    const char *interval, const char *mapped_extra)
{
    char *yaml = NULL, *path;

    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: " TH_SIM_OS_KEY "\n"
                         "  graphql_url: %s/graphql\n  timeout: 60s\n"
                         "mapped:\n  url: %s\n  timeout: 60s\n%s"
                         "status:\n  listen: 127.0.0.1:0\n"
                         "presence:\n  buildings: [BLDGtest1]\n  interval: %s\n  state: %s\n"
                         "  expire_after: 0\n"
                         "  retry:\n    max_attempts: 2\n    base: 20ms\n    cap: 50ms\n",
                         sim.officespace_url, os_url ? os_url : sim.officespace_url,
                         mapped_url ? mapped_url : sim.mapped_url,
                         mapped_extra ? mapped_extra : "  token: " TH_SIM_MAPPED_TOKEN "\n",
                         interval, state_path) > 0);
    path = th_write_file(name, yaml);
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

/* Start $OSC_BIN argv... in the background, stdout and stderr in files. */
static void spawn(struct proc *pr, const char *const *argv)
{
    const char *bin = getenv("OSC_BIN");
    const char *av[16];
    size_t n = 0;
    static int seq;

    assert_non_null(bin);
    memset(pr, 0, sizeof(*pr));
    assert_true(asprintf(&pr->out_path, "%s/out-%d.txt", th_tmpdir(), seq) > 0);
    assert_true(asprintf(&pr->err_path, "%s/err-%d.txt", th_tmpdir(), seq++) > 0);
    av[n++] = bin;
    for (size_t i = 0; argv[i] && n < 15; i++)
        av[n++] = argv[i];
    av[n] = NULL;
    pr->pid = fork();
    assert_true(pr->pid >= 0);
    if (pr->pid == 0) {
        FILE *o = fopen(pr->out_path, "w"), *e = fopen(pr->err_path, "w");
        if (!o || !e)
            _exit(127);
        dup2(fileno(o), 1);
        dup2(fileno(e), 2);
        execv(bin, (char *const *)av);
        _exit(127);
    }
    child = pr->pid;
}

/* Signal (0: none) and wait: the process must be gone within ms. Its exit status. */
static int stop_within(struct proc *pr, int sig, long ms)
{
    int status = 0;
    long deadline = th_now_ms() + ms;

    if (sig)
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

/* Wait (at most ms) until the file at path holds what. */
static void wait_text(const char *path, const char *what, long ms)
{
    long deadline = th_now_ms() + ms;
    for (;;) {
        char *t = slurp(path);
        int found = strstr(t, what) != NULL;
        free(t);
        if (found)
            return;
        if (th_now_ms() > deadline)
            fail_msg("%s never said \"%s\"", path, what);
        th_nap_ms(20);
    }
}

/* The status URL (http://127.0.0.1:PORT) `run` printed. */
static void status_url(const struct proc *pr, char *out, size_t cap)
{
    char *text, *s, *nl;

    wait_text(pr->out_path, "status http://", 15000);
    wait_text(pr->out_path, "\n", 15000);
    text = slurp(pr->out_path);
    s = strstr(text, "status http://");
    nl = strchr(s, '\n');
    *nl = '\0';
    snprintf(out, cap, "%s", s + 7);
    free(text);
}

/* Wait (at most 15 s) until the stand-in got a request. */
static void wait_request(struct ts_server *s)
{
    long deadline = th_now_ms() + 15000;
    while (ts_count(s) == 0) {
        if (th_now_ms() > deadline)
            fail_msg("the stand-in got no request");
        th_nap_ms(10);
    }
}

static int run_once(const char *const *argv, struct th_result *r)
{
    assert_int_equal(th_run(argv, NULL, 30000, r), 0);
    assert_null(strstr(r->err, TH_SIM_OS_KEY));
    assert_null(strstr(r->err, TH_SIM_MAPPED_TOKEN));
    return r->status;
}

/* ---- tests ----------------------------------------------------------------- */

/* SIGTERM / SIGINT while the Mapped read hangs (timeout 60 s): gone within 2 s. */
static void test_stop_while_mapped_hangs(void **state)
{
    struct ts_server *hang = ts_start();
    struct ts_response never = {200, NULL, "{}", TS_HANG, 0};
    char url[160], *cfg;
    struct proc pr;
    char *err;

    (void)state;
    assert_non_null(hang);
    ts_set_default(hang, &never);
    snprintf(url, sizeof(url), "%s/graphql", ts_url(hang));
    cfg = config("hang.yaml", url, NULL, "5s", NULL);

    /* `run`, SIGTERM */
    {
        const char *argv[] = {"run", "-c", cfg, NULL};
        spawn(&pr, argv);
        wait_request(hang);
        assert_int_equal(stop_within(&pr, SIGTERM, 4000), 0);
        err = slurp(pr.err_path);
        assert_non_null(strstr(err, "cycle interrupted: stopping: Mapped was not read"));
        assert_non_null(strstr(err, "stopped"));
        assert_null(strstr(err, TH_SIM_MAPPED_TOKEN));
        free(err);
        proc_free(&pr);
    }
    /* `presence`, SIGINT */
    {
        const char *argv[] = {"presence", "-c", cfg, NULL};
        size_t n = ts_count(hang);
        spawn(&pr, argv);
        while (ts_count(hang) == n)
            th_nap_ms(10);
        assert_int_equal(stop_within(&pr, SIGINT, 4000), 0);
        proc_free(&pr);
    }
    /* `presence --once`, SIGTERM: the cycle did not happen, 75 */
    {
        const char *argv[] = {"presence", "-c", cfg, "--once", NULL};
        size_t n = ts_count(hang);
        spawn(&pr, argv);
        while (ts_count(hang) == n)
            th_nap_ms(10);
        assert_int_equal(stop_within(&pr, SIGTERM, 4000), 75);
        err = slurp(pr.err_path);
        assert_non_null(strstr(err, "stopping: Mapped was not read"));
        free(err);
        proc_free(&pr);
    }
    ts_stop(hang);
    free(cfg);
}

static const char *NULL_ALIAS = "{\"data\":{\"p0\":null,\"p1\":{\"success\":true}}}";

/* Pushes OfficeSpace does not acknowledge under their alias are failed pushes. */
static void test_unacknowledged_pushes(void **state)
{
    struct ts_server *os = ts_start();
    struct ts_response ans = {200, "Content-Type: application/json\n", NULL_ALIAS, 0, 0};
    char *cfg, surl[128], url[256], *body = NULL;
    struct th_result r;
    struct proc pr;
    long deadline;

    (void)state;
    assert_non_null(os);
    ts_set_default(os, &ans);
    cfg = config("unacked.yaml", NULL, ts_url(os), "300ms", NULL);

    /* --once: exit 1, each location named with the reason */
    {
        const char *argv[] = {"presence", "-c", cfg, "--once", NULL};
        assert_int_equal(run_once(argv, &r), 1);
        assert_non_null(strstr(r.err, "OfficeSpace did not acknowledge urn:officespace:"));
        assert_non_null(strstr(r.err, "data.p0 is null, not an acknowledgement; sent again next "
                                      "cycle"));
        assert_non_null(strstr(r.err, "no answer under alias p2"));
        assert_non_null(strstr(r.err, "1 accepted, 0 refused, 7 unacknowledged, 0 unsent"));
        assert_non_null(strstr(r.err, "did not acknowledge 7 of 8 locations"));
        th_result_free(&r);
    }
    /* retried next cycle: the seven again, not the one accepted */
    {
        const char *argv[] = {"presence", "-c", cfg, "--once", NULL};
        struct ts_request rq;
        assert_int_equal(run_once(argv, &r), 1);
        assert_non_null(strstr(r.err, "pushed 7 (7 changed"));
        th_result_free(&r);
        assert_int_equal(ts_count(os), 2);
        assert_int_equal(ts_get(os, 1, &rq), 0);
        assert_non_null(strstr(rq.body, "p6: createEmployeePresence"));
        assert_null(strstr(rq.body, "p7:"));
        ts_request_free(&rq);
    }
    /* run: live, not ready, counted */
    {
        const char *argv[] = {"run", "-c", cfg, NULL};
        spawn(&pr, argv);
        status_url(&pr, surl, sizeof(surl));
        wait_text(pr.err_path, "unacknowledged, 0 unsent", 15000);
        snprintf(url, sizeof(url), "%s/healthz", surl);
        deadline = th_now_ms() + 15000;
        while (th_http("GET", url, NULL, &body) != 503 || !strstr(body, "unacknowledged")) {
            free(body);
            body = NULL;
            assert_true(th_now_ms() < deadline);
            th_nap_ms(20);
        }
        assert_non_null(strstr(body, "not ready: last cycle (partial, "));
        free(body);
        body = NULL;
        snprintf(url, sizeof(url), "%s/readyz", surl);
        assert_int_equal(th_http("GET", url, NULL, NULL), 503);
        snprintf(url, sizeof(url), "%s/livez", surl);
        assert_int_equal(th_http("GET", url, NULL, &body), 200);
        assert_non_null(strstr(body, "ok: presence loop ticked"));
        free(body);
        body = NULL;
        snprintf(url, sizeof(url), "%s/metrics", surl);
        assert_int_equal(th_http("GET", url, NULL, &body), 200);
        assert_non_null(
            strstr(body, "osconnect_presence_pushes_total{result=\"unacknowledged\"} "));
        assert_null(strstr(body, "osconnect_presence_pushes_total{result=\"unacknowledged\"} 0\n"));
        assert_non_null(strstr(body, "osconnect_presence_cycles_total{result=\"ok\"} 0\n"));
        free(body);
        assert_int_equal(stop_within(&pr, SIGTERM, 4000), 0);
        proc_free(&pr);
    }
    ts_stop(os);
    free(cfg);
}

/* A second osconnect on the same state file exits 75 naming the file and the holder's pid. */
static void test_one_process_per_state(void **state)
{
    char *cfg = config("lock.yaml", NULL, NULL, "300ms", NULL), want[256];
    const char *once[] = {"presence", "-c", cfg, "--once", NULL};
    const char *dry[] = {"presence", "-c", cfg, "--once", "--dry-run", NULL};
    const char *run[] = {"run", "-c", cfg, NULL};
    struct th_result r;
    struct proc pr;

    (void)state;
    spawn(&pr, run);
    wait_text(pr.err_path, "cycle: 11 locations", 15000);
    snprintf(want, sizeof(want),
             "state database %s is in use by another osconnect (pid %ld holds %s.lock)", state_path,
             (long)pr.pid, state_path);
    assert_int_equal(run_once(once, &r), 75);
    assert_non_null(strstr(r.err, want));
    th_result_free(&r);
    assert_int_equal(run_once(run, &r), 75);
    assert_non_null(strstr(r.err, want));
    assert_null(strstr(r.out, "status http://")); /* refused before serving anything */
    th_result_free(&r);
    /* a dry run opens the state read-only and needs no lock */
    assert_int_equal(run_once(dry, &r), 0);
    assert_non_null(strstr(r.out, "# dry run: 11 locations"));
    th_result_free(&r);
    /* kill -9: the kernel drops the lock with the process */
    assert_int_equal(stop_within(&pr, SIGKILL, 4000), 128 + SIGKILL);
    assert_int_equal(run_once(once, &r), 0);
    th_result_free(&r);
    proc_free(&pr);
    free(cfg);
}

/* A token_file that is a FIFO: refused with the reason, by a reload and by check. */
static void test_fifo_secret_refused(void **state)
{
    char *cfg = config("fifo.yaml", NULL, NULL, "300ms", NULL), *fifo = NULL, *bad, *tok;
    const char *run[] = {"run", "-c", cfg, NULL};
    const char *check[] = {"check", "-c", NULL, "--offline", NULL};
    struct th_result r;
    struct proc pr;
    char line[512];

    (void)state;
    assert_true(asprintf(&fifo, "%s/token.fifo", th_tmpdir()) > 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(line, sizeof(line), "  token_file: %s\n", fifo);
    bad = config("fifo-bad.yaml", NULL, NULL, "300ms", line);

    /* check: at once, exit 78, the reason named */
    check[2] = bad;
    assert_int_equal(run_once(check, &r), 78);
    assert_non_null(strstr(r.err, "mapped.token_file"));
    assert_non_null(strstr(r.err, "is a FIFO (named pipe); secrets are read only from regular "
                                  "files"));
    th_result_free(&r);

    /* a reload: refused, the running configuration goes on */
    spawn(&pr, run);
    wait_text(pr.err_path, "cycle: 11 locations", 15000);
    tok = th_read_file(bad);
    free(th_write_file("fifo.yaml", tok));
    free(tok);
    kill(pr.pid, SIGHUP);
    wait_text(pr.err_path, "failed, keeping the running configuration", 5000);
    wait_text(pr.err_path, "is a FIFO", 5000);
    {
        /* it still runs cycles afterwards */
        char *err = slurp(pr.err_path), *at = strstr(err, "is a FIFO");
        size_t off = (size_t)(at - err);
        long deadline = th_now_ms() + 10000;
        free(err);
        for (;;) {
            err = slurp(pr.err_path);
            at = strstr(err + off, "cycle: 11 locations");
            free(err);
            if (at)
                break;
            assert_true(th_now_ms() < deadline);
            th_nap_ms(20);
        }
    }
    assert_int_equal(stop_within(&pr, SIGTERM, 4000), 0);
    proc_free(&pr);
    free(bad);
    free(fifo);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stop_while_mapped_hangs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unacknowledged_pushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_process_per_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_secret_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
