/*
 * test_send_tty.c - `osconnect send` on a terminal: the real binary on a
 * pseudo-terminal (forkpty), against the simulator.
 *
 * What a person at the terminal sees is checked by replaying the output
 * through a one-line terminal model (\r to column 0, ESC[K erases, \n ends a
 * line): log lines stand alone, never glued onto the progress line; the
 * progress line shows the phases, a percent of the input's bytes, and never
 * "ETA 0"; it is gone when the run ends. Records typed at the terminal get a
 * hint, the first Ctrl-C stops the read that waits on the terminal and
 * delivers what was typed (exit 75), the second ends the process at once.
 * Without a terminal there is no progress line unless --progress asks.
 * Nothing here is timed: the simulator's delays only make sure there is
 * something to wait for, and every wait has a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

static struct th_sim sim;
static int sim_exit;

/* A child on a pseudo-terminal: its stdin, stdout and stderr are the terminal. */
struct tty {
    pid_t pid;
    int master;
    char *out; /* everything it wrote, raw */
    size_t len, cap;
    int status; /* exit code, or 128 + signal; -1 while running */
};

static int group_setup(void **state)
{
    (void)state;
    return th_sim_start(&sim, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    sim_exit = th_sim_stop(&sim);
    th_tmpdir_cleanup();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    return th_sim_reset(&sim);
}

static void set_faults(const char *rules)
{
    char url[300];
    snprintf(url, sizeof(url), "%s/_sim/faults", sim.officespace_url);
    assert_int_equal(th_http("POST", url, rules, NULL), 200);
}

static char *config(void)
{
    char *text = NULL, *path;
    assert_true(
        asprintf(&text,
                 "officespace:\n  hostname: acme\n  base_url: %s\n  api_key: %s\n"
                 "destinations:\n"
                 "  employees:\n    template: upsert_employees\n    source_name: TTY\n"
                 "    batch: {size: 20}\n    dead_letter: %s/employees.dead.jsonl\n"
                 "    max_in_flight: 1\n    retry: {base: 5ms, cap: 20ms, max_attempts: 4}\n"
                 "  commit:\n    template: trigger_directory_import\n    source_name: TTY\n",
                 sim.officespace_url, TH_SIM_OS_KEY, th_tmpdir()) > 0);
    path = th_write_file("tty.yaml", text);
    free(text);
    return path;
}

/* Start $OSC_BIN argv on a new pseudo-terminal of 200 columns. */
static void tty_start(struct tty *t, const char *const *argv)
{
    const char *bin = getenv("OSC_BIN");
    struct winsize ws = {24, 200, 0, 0};
    const char *args[32];
    size_t n = 0;

    assert_non_null(bin);
    memset(t, 0, sizeof(*t));
    t->status = -1;
    args[n++] = bin;
    for (; argv[n - 1] && n < 31; n++)
        args[n] = argv[n - 1];
    args[n] = NULL;
    t->pid = forkpty(&t->master, NULL, NULL, &ws);
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        execv(bin, (char *const *)args);
        _exit(127);
    }
    fcntl(t->master, F_SETFL, O_NONBLOCK);
}

/* Read what is there (waiting at most ms); notes the exit once the child is gone. */
static void tty_pump(struct tty *t, int ms)
{
    struct pollfd p = {t->master, POLLIN, 0};
    char buf[4096];
    ssize_t r;
    int st;

    if (poll(&p, 1, ms) > 0) {
        while ((r = read(t->master, buf, sizeof(buf))) > 0) {
            if (t->len + (size_t)r + 1 > t->cap) {
                t->cap = (t->len + (size_t)r + 1) * 2;
                t->out = realloc(t->out, t->cap);
                assert_non_null(t->out);
            }
            memcpy(t->out + t->len, buf, (size_t)r);
            t->len += (size_t)r;
            t->out[t->len] = '\0';
        }
    }
    if (t->status < 0 && waitpid(t->pid, &st, WNOHANG) == t->pid)
        t->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Wait until the output holds needle (deadline 30 s). */
static void tty_expect(struct tty *t, const char *needle)
{
    long deadline = th_now_ms() + 30000;

    while (!(t->out && strstr(t->out, needle))) {
        int gone = t->status >= 0;
        if (th_now_ms() > deadline || gone) {
            tty_pump(t, 50); /* the last bytes */
            if (t->out && strstr(t->out, needle))
                return;
            fail_msg("'%s' never came%s; output so far:\n%s", needle,
                     gone ? " (the process ended)" : "", t->out ? t->out : "");
        }
        tty_pump(t, 50);
    }
}

/* Wait for the exit (deadline 60 s: a liveness bound, not a benchmark); the status. */
static int tty_wait(struct tty *t)
{
    long deadline = th_now_ms() + 60000;

    while (t->status < 0) {
        if (th_now_ms() > deadline) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, NULL, 0);
            fail_msg("still running after 60 s; output:\n%s", t->out ? t->out : "");
        }
        tty_pump(t, 50);
    }
    tty_pump(t, 0);
    return t->status;
}

static void tty_close(struct tty *t)
{
    if (t->status < 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
    }
    close(t->master);
    free(t->out);
    t->out = NULL;
}

/*
 * The lines a person sees: replay the bytes on a one-line terminal. \r moves to column 0,
 * ESC[K erases from the cursor, \n ends the line (the pty writes \r\n). The lines are
 * returned joined by \n, and what is left on the last line after the output ended in *tail.
 */
static char *screen(const char *raw, char **tail)
{
    size_t n = strlen(raw), cur = 0, len = 0;
    char *line = calloc(n + 1, 1), *out = calloc(n + 2, 1);
    size_t olen = 0;

    assert_non_null(line);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        if (c == '\r') {
            cur = 0;
        } else if (c == '\n') {
            memcpy(out + olen, line, len);
            olen += len;
            out[olen++] = '\n';
            len = cur = 0;
        } else if (c == '\033' && raw[i + 1] == '[' && raw[i + 2] == 'K') {
            len = cur;
            i += 2;
        } else {
            line[cur++] = c;
            if (cur > len)
                len = cur;
        }
    }
    line[len] = '\0';
    out[olen] = '\0';
    *tail = line;
    return out;
}

/* Every line that holds a log line's level tag starts with its timestamp and nothing else
 * is on it; the progress line never ends up on screen. */
static void assert_lines_clean(const char *lines)
{
    const char *p = lines;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, l);
        if (strstr(line, " info  [") || strstr(line, " warn  [") || strstr(line, " error [")) {
            if (!(l > 24 && line[4] == '-' && line[10] == 'T' && line[23] == 'Z'))
                fail_msg("a log line shares its line: '%s'", line);
            if (strstr(line + 24, "Z info  [") || strstr(line, "records/s"))
                fail_msg("two things on one line: '%s'", line);
        }
        if (strstr(line, "records/s") || strstr(line, "clearing the staging area of the import") ||
            strstr(line, "committing ("))
            fail_msg("the progress line was left on screen: '%s'", line);
        free(line);
        p += l + (nl ? 1 : 0);
    }
}

/* 1 when a progress line showed a percent: "records (N%)". */
static int has_percent(const char *out)
{
    const char *p = out;

    while ((p = strstr(p, " records (")) != NULL) {
        const char *q = p += 10;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q > p && q[0] == '%' && q[1] == ')')
            return 1;
    }
    return 0;
}

/* A CSV of n employees. */
static char *csv_file(const char *name, int n)
{
    size_t cap = 64 + (size_t)n * 64, len = 0;
    char *text = malloc(cap), *path;

    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "employee_id,first_name,last_name,email\n");
    for (int i = 1; i <= n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%d,First%d,Last%d,p%d@example.com\n", i, i,
                                i, i);
    path = th_write_file(name, text);
    free(text);
    return path;
}

/* A send with a progress line: phases, percent, log lines on their own lines, nothing left. */
static void test_progress_and_log_lines(void **state)
{
    char *cfg = config(), *csv = csv_file("hr.csv", 100), *lines, *tail;
    const char *argv[] = {"send", "-c", cfg, "-d", "employees", "--commit", "commit", csv, NULL};
    struct tty t;

    (void)state;
    /* each batch waits in the simulator, so progress ticks come while batches are out;
     * a 503 on one batch makes a log line (a retry) while the line is shown */
    set_faults("delay=300ms:path=/api/1/employee_batch_imports,"
               "503x1:path=/api/1/employee_batch_imports");
    tty_start(&t, argv);
    assert_int_equal(tty_wait(&t), 0);
    set_faults("");
    lines = screen(t.out, &tail);
    /* the phases were shown */
    assert_non_null(strstr(t.out, "employees: clearing the staging area of the import..."));
    assert_non_null(strstr(t.out, "employees: sending: "));
    assert_true(has_percent(t.out));
    assert_non_null(strstr(t.out, "employees: committing (100 records sent)"));
    assert_null(strstr(t.out, "ETA 0"));
    /* log lines, each on a line of its own */
    assert_non_null(
        strstr(lines, "[delivery] employees: cleared the staging area of source 'TTY'\n"));
    assert_non_null(strstr(lines, "HTTP 503; retry 1 in"));
    assert_non_null(
        strstr(lines, "[delivery] employees: directory import triggered for source 'TTY'"));
    assert_lines_clean(lines);
    assert_non_null(strstr(lines, "\nemployees: 100 records read, 100 sent, 0 rejected"));
    assert_string_equal(tail, ""); /* nothing left on the last line */
    /* no hint: the records came from a file */
    assert_null(strstr(t.out, "reading records from the terminal"));
    free(lines);
    free(tail);
    tty_close(&t);
    free(csv);
    free(cfg);
}

/* Wait until the simulator received n batch imports. */
static void wait_batches(size_t n)
{
    char url[300];
    long deadline = th_now_ms() + 30000;

    snprintf(url, sizeof(url), "%s/_sim/requests?path=/api/1/employee_batch_imports",
             sim.officespace_url);
    for (;;) {
        json_t *r = th_get_json(url);
        size_t got = r ? json_array_size(json_object_get(r, "requests")) : 0;
        json_decref(r);
        if (got >= n)
            return;
        if (th_now_ms() > deadline)
            fail_msg("the simulator got %zu batch imports, not %zu", got, n);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Records typed at the terminal: a hint first, no progress line drawn into the typing;
 * Ctrl-C ends the read that waits for more, what was typed is delivered, exit 75. */
static void test_terminal_input_and_ctrl_c(void **state)
{
    char *cfg = config(), *lines, *tail, url[300], rec[128];
    const char *argv[] = {"send", "-c", cfg, "-d", "employees", "--restart", NULL};
    struct tty t;
    json_t *emp;
    char *dump;

    (void)state;
    tty_start(&t, argv);
    tty_expect(&t, "osconnect send: reading records from the terminal; end with Ctrl-D, or name "
                   "a file\r\n");
    /* one batch (batch.size 20): once the simulator has it, every typed line was read */
    for (int i = 1; i <= 20; i++) {
        int n = snprintf(rec, sizeof(rec),
                         "{\"EmployeeId\":\"T%d\",\"Email\":\"t%d@example.com\"}\n", i, i);
        assert_int_equal(write(t.master, rec, (size_t)n), n);
    }
    wait_batches(1);
    assert_int_equal(write(t.master, "\x03", 1), 1); /* Ctrl-C, as a keyboard sends it */
    assert_int_equal(tty_wait(&t), 75);
    lines = screen(t.out, &tail);
    assert_non_null(strstr(lines, "osconnect send: interrupted: no more records are read"));
    assert_non_null(strstr(lines, "employees: 20 records read, 20 sent, 0 rejected"));
    assert_null(strstr(t.out, "records/s")); /* no progress line while typing */
    assert_lines_clean(lines);
    snprintf(url, sizeof(url), "%s/_sim/employees", sim.officespace_url);
    emp = th_get_json(url);
    assert_non_null(emp);
    dump = json_dumps(emp, JSON_COMPACT);
    assert_non_null(strstr(dump, "t1@example.com"));
    assert_non_null(strstr(dump, "t20@example.com"));
    free(dump);
    json_decref(emp);
    free(lines);
    free(tail);
    tty_close(&t);
    free(cfg);
}

/* The second Ctrl-C ends the process at once, by the signal, while the first one waits for
 * a request the simulator holds for a minute. */
static void test_second_ctrl_c_aborts(void **state)
{
    char *cfg = config(), *csv = csv_file("hr3.csv", 10);
    const char *argv[] = {"send", "-c", cfg, "-d", "employees", "--restart", csv, NULL};
    struct tty t;

    (void)state;
    set_faults("delay=60s:path=/api/1/employee_batch_imports");
    tty_start(&t, argv);
    tty_expect(&t, "employees: waiting for the last answers: 0 of 10 records sent");
    assert_int_equal(write(t.master, "\x03", 1), 1);
    tty_expect(&t, "osconnect send: interrupted: no more records are read");
    tty_expect(&t, "employees: interrupted, finishing the requests in flight: 0 of 10 records");
    assert_int_equal(write(t.master, "\x03", 1), 1);
    assert_int_equal(tty_wait(&t), 128 + SIGINT);
    assert_null(strstr(t.out, "10 records read")); /* no summary: it ended at once */
    set_faults("");
    tty_close(&t);
    free(csv);
    free(cfg);
}

/* Not a terminal: no progress line (and no hint); --progress draws it anyway. */
static void test_no_progress_without_terminal(void **state)
{
    char *cfg = config(), *csv = csv_file("hr2.csv", 30);
    const char *plain[] = {"send", "-c", cfg, "-d", "employees", "--restart", csv, NULL};
    const char *forced[] = {"send",      "-c",         cfg, "-d", "employees",
                            "--restart", "--progress", csv, NULL};
    struct th_result r;

    (void)state;
    assert_int_equal(th_run(plain, "", 60000, &r), 0);
    assert_int_equal(r.status, 0);
    assert_null(strchr(r.err, '\r'));
    assert_null(strstr(r.err, "\033[K"));
    assert_null(strstr(r.err, "reading records from the terminal"));
    th_result_free(&r);
    assert_int_equal(th_run(forced, "", 60000, &r), 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "\r\033[Kemployees: clearing the staging area of the import..."));
    th_result_free(&r);
    free(csv);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_progress_and_log_lines, reset),
        cmocka_unit_test_setup(test_terminal_input_and_ctrl_c, reset),
        cmocka_unit_test_setup(test_second_ctrl_c_aborts, reset),
        cmocka_unit_test_setup(test_no_progress_without_terminal, reset),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return rc ? rc : sim_exit;
}
