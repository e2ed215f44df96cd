/*
 * test_notify.c - `osconnect run` under a simulated systemd: the test binds
 * a unix datagram socket, starts the real binary with NOTIFY_SOCKET (and
 * WATCHDOG_USEC) pointing at it, against the simulator, and checks that the
 * sd_notify messages arrive: READY=1, a STATUS= summary after a cycle,
 * WATCHDOG=1 pings while the loop waits, and STOPPING=1 on SIGTERM. Without
 * WATCHDOG_USEC no ping is sent. Every wait polls with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct th_sim sim;
static pid_t child; /* killed by teardown if a test failed */
static int sock = -1;
static char err_path[512];

struct seen {
    int ready, status, watchdog, stopping;
    char status_text[512];
};

static int setup(void **state)
{
    const char *extra[] = {"--scenario", th_fixture("presence/sim_scenario.json"), NULL};
    (void)state;
    assert_int_equal(th_sim_start(&sim, extra), 0);
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
    if (sock >= 0)
        close(sock);
    sock = -1;
    assert_int_equal(th_sim_stop(&sim), 0);
    th_tmpdir_cleanup();
    return 0;
}

/* Bind a datagram socket in the temp dir; returns its path (malloc'd). */
static char *bind_notify_socket(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *path = NULL;

    assert_true(asprintf(&path, "%s/notify.sock", th_tmpdir()) > 0);
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(sock >= 0);
    assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return path;
}

static char *write_config(const char *interval)
{
    char *yaml = NULL, *path;
    assert_true(
        asprintf(
            &yaml,
            "officespace:\n  base_url: %s\n  api_key: " TH_SIM_OS_KEY "\n"
            "  graphql_url: %s/graphql\n  timeout: 5s\n"
            "mapped:\n  url: %s\n  token: " TH_SIM_MAPPED_TOKEN "\n  timeout: 5s\n"
            "status:\n  listen: 127.0.0.1:0\n"
            "presence:\n  buildings: [BLDGtest1, BLDGtest2]\n  interval: %s\n  expire_after: 0\n"
            "  state: %s/state.db\n",
            sim.officespace_url, sim.officespace_url, sim.mapped_url, interval, th_tmpdir()) > 0);
    path = th_write_file("notify.yaml", yaml);
    free(yaml);
    return path;
}

/* Start `osconnect run -c cfg` with NOTIFY_SOCKET (and WATCHDOG_USEC unless NULL). */
static void start_run(const char *cfg, const char *notify_path, const char *watchdog_usec)
{
    const char *bin = getenv("OSC_BIN");

    assert_non_null(bin);
    snprintf(err_path, sizeof(err_path), "%s/run-err.txt", th_tmpdir());
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        FILE *e = fopen(err_path, "w");
        if (!e || !freopen("/dev/null", "w", stdout))
            _exit(127);
        dup2(fileno(e), 2);
        setenv("NOTIFY_SOCKET", notify_path, 1);
        if (watchdog_usec)
            setenv("WATCHDOG_USEC", watchdog_usec, 1);
        else
            unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        execl(bin, bin, "run", "-c", cfg, (char *)NULL);
        _exit(127);
    }
}

/* Read datagrams for at most ms, or until done(seen) holds. */
static void collect(struct seen *s, long ms, int (*done)(const struct seen *))
{
    long deadline = th_now_ms() + ms;

    while (!done(s) && th_now_ms() < deadline) {
        struct pollfd p = {sock, POLLIN, 0};
        char buf[1024];
        ssize_t n;

        if (poll(&p, 1, (int)(deadline - th_now_ms())) <= 0)
            continue;
        n = recv(sock, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        /* one datagram may carry several newline-separated assignments */
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            if (strcmp(line, "READY=1") == 0)
                s->ready++;
            else if (strcmp(line, "WATCHDOG=1") == 0)
                s->watchdog++;
            else if (strcmp(line, "STOPPING=1") == 0)
                s->stopping++;
            else if (strncmp(line, "STATUS=", 7) == 0) {
                s->status++;
                snprintf(s->status_text, sizeof(s->status_text), "%s", line + 7);
            }
        }
    }
}

static int stop_run(int sig)
{
    int status = 0;
    long deadline = th_now_ms() + 15000;

    kill(child, sig);
    while (waitpid(child, &status, WNOHANG) == 0) {
        struct timespec ts = {0, 20 * 1000000L};
        if (th_now_ms() > deadline) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            child = 0;
            fail_msg("osconnect run did not stop within 15 s");
        }
        nanosleep(&ts, NULL);
    }
    child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* a ping after each cycle, and at least two more from the waits between cycles */
static int got_ready_status_idle_pings(const struct seen *s)
{
    return s->ready && s->status && s->watchdog >= s->status + 2;
}

static int got_stopping(const struct seen *s) { return s->stopping > 0; }

static int got_three_status(const struct seen *s) { return s->ready && s->status >= 3; }

/* READY=1, STATUS= after a cycle, WATCHDOG=1 while waiting, STOPPING=1 on SIGTERM. */
static void test_notify_ready_status_watchdog(void **state)
{
    struct seen s = {0};
    char *cfg, *npath, *err;
    (void)state;

    npath = bind_notify_socket();
    /* 1 s watchdog, a cycle every 3 s: pings every 500 ms while the loop waits */
    cfg = write_config("3s");
    start_run(cfg, npath, "1000000");
    collect(&s, 20000, got_ready_status_idle_pings);
    assert_int_equal(s.ready, 1);
    assert_true(s.status >= 1);
    /* the scenario has one location OfficeSpace refuses: partial */
    if (!strstr(s.status_text, "last cycle partial: 6 PRESENCE, 2 PASSIVE_PRESENCE"))
        fail_msg("STATUS=%s", s.status_text);
    assert_non_null(strstr(s.status_text, "PRESENCE"));
    assert_true(s.watchdog >= s.status + 2);
    assert_int_equal(stop_run(SIGTERM), 0);
    collect(&s, 5000, got_stopping);
    assert_int_equal(s.stopping, 1);
    /* a watchdog shorter than the interval is worth a warning */
    err = th_read_file(err_path);
    assert_non_null(err);
    assert_non_null(strstr(err, "is not longer than presence.interval"));
    free(err);
    free(cfg);
    free(npath);
}

/* Without WATCHDOG_USEC nothing pings, but READY and STATUS still arrive. */
static void test_notify_without_watchdog(void **state)
{
    struct seen s = {0};
    char *cfg, *npath;
    (void)state;

    npath = bind_notify_socket();
    cfg = write_config("200ms");
    start_run(cfg, npath, NULL);
    collect(&s, 20000, got_three_status);
    assert_int_equal(s.ready, 1);
    assert_true(s.status >= 3);
    assert_int_equal(s.watchdog, 0);
    assert_int_equal(stop_run(SIGTERM), 0);
    free(cfg);
    free(npath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notify_ready_status_watchdog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_without_watchdog, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
