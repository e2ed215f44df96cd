/*
 * test_crash_send.c - `osconnect send --commit` killed with SIGKILL at
 * random moments and run again until it completes.
 *
 * The server (the scripted test server: every request recorded, answered
 * 200 after a short delay so batches are in flight when the kill lands)
 * must end up with every input record in some accepted batch or in the
 * dead-letter file; duplicates only within the batches that could have
 * been in flight at each kill; the staging area cleared exactly once (a
 * resumed run must never clear what an earlier run staged); the directory
 * import triggered exactly once, after the last batch.
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
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "osc/buf.h"
#include "testserver.h"

#define NREC      20000
#define BATCH     50
#define IN_FLIGHT 4
#define KILLS     5

static void test_crash_resume(void **state)
{
    struct ts_server *ts = ts_start();
    struct osc_buf in;
    char *input, *cfg, *text = NULL, *dl;
    unsigned *seen = calloc(NREC, sizeof(*seen));
    unsigned dup = 0, deletes = 0, commits = 0, killed = 0, bad_seen = 0;
    size_t last_batch = 0, commit_at = 0;
    unsigned seed = (unsigned)time(NULL);
    int last_status = -1;
    char *last_err = NULL;
    struct th_result res;
    (void)state;

    assert_non_null(ts);
    printf("# seed %u\n", seed);
    srand(seed);
    ts_set_default(ts, &(struct ts_response){200, NULL, "{\"count\":0,\"response\":[]}", 25, 0});
    /* CSV: resuming reads and skips (JSON Lines seeks; the unit tests cover both) */
    osc_buf_init(&in, 1u << 26);
    osc_buf_adds(&in, "employee_id,first_name,last_name,email,department\n");
    for (int i = 0; i < NREC; i++) {
        if (i % 997 == 500) /* a row with no id and no email: dead-lettered, never sent */
            osc_buf_printf(&in, ",Nobody,%d,,Ghosts\n", i);
        else
            osc_buf_printf(&in, "E%05d,First%d,Last%d,u%d@example.com,Dept%d\n", i, i, i, i, i % 7);
    }
    input = th_write_file("employees.csv", osc_buf_str(&in));
    osc_buf_free(&in);
    dl = th_write_file("employees.dead.jsonl", "");
    remove(dl);
    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: crash-key-0123456789abcdef\n"
                         "destinations:\n"
                         "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                         "    batch: {size: %d}\n    max_in_flight: %d\n    dead_letter: %s\n"
                         "  commit:\n    template: trigger_directory_import\n    source_name: HR\n",
                         ts_url(ts), BATCH, IN_FLIGHT, dl) > 0);
    cfg = th_write_file("crash.yaml", text);
    free(text);

    {
        const char *argv[] = {"send",      "-q",       "-c",     cfg,   "-d",
                              "employees", "--commit", "commit", input, NULL};
        /* a full run takes ~2.5 s here: kill it early, several times, until one completes */
        int done = 0;
        for (int k = 0; k < KILLS && !done; k++) {
            int ms = 100 + rand() % 500;
            assert_int_equal(th_run(argv, NULL, ms, &res), 0);
            if (res.status == 128 + 9) {
                killed++;
            } else {
                printf("# run %d ended by itself (%d) before the kill at %d ms\n", k, res.status,
                       ms);
                done = 1;
                last_status = res.status;
                last_err = strdup(res.err);
            }
            th_result_free(&res);
        }
        if (!done) {
            assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
            last_status = res.status;
            last_err = strdup(res.err);
            th_result_free(&res);
        }
        if (last_status != 65) /* 65: the ghost rows were dead-lettered */
            fail_msg("final run exited %d: %s", last_status, last_err);
        assert_non_null(strstr(last_err, "commit: directory import triggered"));
        free(last_err);
    }
    assert_true(killed >= 1);

    /* account for every request the server received */
    for (size_t i = 0; i < ts_count(ts); i++) {
        struct ts_request r;
        json_t *arr, *v;
        size_t k;
        assert_int_equal(ts_get(ts, i, &r), 0);
        if (strcmp(r.method, "DELETE") == 0) {
            deletes++;
        } else if (strcmp(r.url, "/api/1/employee_directory") == 0) {
            commits++;
            commit_at = i;
            assert_string_equal(r.body, "Source=HR");
        } else {
            assert_string_equal(r.url, "/api/1/employee_batch_imports");
            arr = json_loads(r.body, 0, NULL);
            assert_non_null(arr);
            last_batch = i;
            json_array_foreach(arr, k, v)
            {
                const char *id = json_string_value(json_object_get(v, "EmployeeId"));
                int n;
                assert_non_null(id);
                assert_int_equal(sscanf(id, "E%d", &n), 1);
                assert_true(n >= 0 && n < NREC);
                if (seen[n]++)
                    dup++;
            }
            json_decref(arr);
        }
        ts_request_free(&r);
    }
    assert_int_equal(deletes, 1);
    assert_int_equal(commits, 1);
    assert_true(commit_at > last_batch);
    {
        char *t = th_read_file(dl);
        char *line, *save = NULL;
        for (line = t ? strtok_r(t, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
            json_t *j = json_loads(line, 0, NULL);
            json_t *src = json_object_get(j, "source");
            int row = (int)json_integer_value(json_object_get(src, "line")) - 2;
            assert_non_null(j);
            assert_true(row >= 0 && row < NREC && row % 997 == 500);
            assert_non_null(
                strstr(json_string_value(json_object_get(j, "reason")), "no EmployeeId or Email"));
            if (seen[row]++)
                dup++;
            bad_seen++;
            json_decref(j);
        }
        free(t);
    }
    for (int i = 0; i < NREC; i++)
        if (!seen[i])
            fail_msg("record %d was neither accepted nor dead-lettered", i);
    printf("# %u kills, %u requests, %u duplicate records (bound %u), %u dead letters\n", killed,
           (unsigned)ts_count(ts), dup, killed * (IN_FLIGHT + 1) * BATCH, bad_seen);
    assert_true(dup <= killed * (IN_FLIGHT + 1) * BATCH);

    free(seen);
    free(input);
    free(cfg);
    free(dl);
    ts_stop(ts);
    th_tmpdir_cleanup();
}

/* Start $OSC_BIN with argv, stdout and stderr to errfile; returns the pid. */
static pid_t spawn(const char *const *argv, const char *errfile)
{
    const char *bin = getenv("OSC_BIN");
    char *av[16];
    size_t n = 0;
    pid_t pid;

    av[n++] = (char *)"osconnect";
    for (size_t i = 0; argv[i] && n < 15; i++)
        av[n++] = (char *)argv[i];
    av[n] = NULL;
    pid = fork();
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(bin ? bin : "osconnect", av);
        _exit(127);
    }
    return pid;
}

/*
 * SIGTERM: stop reading, deliver what was read, keep the checkpoint, exit 75;
 * a second send on the same checkpoint meanwhile is refused (locked); the
 * rerun completes the rest, each record once.
 */
static void test_sigterm_and_lock(void **state)
{
    struct ts_server *ts = ts_start();
    struct osc_buf in;
    char *input, *cfg, *text = NULL, *dl, *errf, *out;
    unsigned *seen = calloc(NREC, sizeof(*seen));
    unsigned dup = 0;
    struct th_result res;
    int status = 0;
    pid_t pid;
    (void)state;

    assert_non_null(ts);
    ts_set_default(ts, &(struct ts_response){200, NULL, "{}", 40, 0});
    osc_buf_init(&in, 1u << 26);
    for (int i = 0; i < NREC; i++)
        osc_buf_printf(&in, "{\"employee_id\":\"E%05d\",\"email\":\"u%d@example.com\"}\n", i, i);
    input = th_write_file("term.jsonl", osc_buf_str(&in));
    osc_buf_free(&in);
    dl = th_write_file("term.dead.jsonl", "");
    remove(dl);
    errf = th_write_file("term.err", "");
    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: crash-key-0123456789abcdef\n"
                         "destinations:\n  employees:\n    template: upsert_employees\n"
                         "    batch: {size: %d}\n    max_in_flight: %d\n    dead_letter: %s\n",
                         ts_url(ts), BATCH, IN_FLIGHT, dl) > 0);
    cfg = th_write_file("term.yaml", text);
    free(text);
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", input, NULL};
        struct timespec t = {0, 20 * 1000000L};
        char *cp = NULL;
        assert_true(asprintf(&cp, "%.*s.checkpoint.db", (int)(strlen(dl) - 11), dl) > 0);
        pid = spawn(argv, errf);
        assert_true(pid > 0);
        /* wait (with a deadline) until the first run holds its checkpoint and is sending */
        for (int i = 0; i < 500 && (access(cp, F_OK) != 0 || ts_count(ts) < 3); i++)
            nanosleep(&t, NULL);
        assert_true(ts_count(ts) >= 3);
        free(cp);
        /* the checkpoint file is locked while the first run holds it */
        assert_int_equal(th_run(argv, NULL, 20000, &res), 0);
        assert_int_equal(res.status, 74);
        assert_non_null(strstr(res.err, "another osconnect"));
        th_result_free(&res);
        kill(pid, SIGTERM);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        out = th_read_file(errf);
        if (WEXITSTATUS(status) != 75)
            fail_msg("exit %d after SIGTERM: %s", WEXITSTATUS(status), out);
        assert_non_null(strstr(out, "interrupted"));
        free(out);
        /* everything the stopped run read was delivered; the rerun sends the rest */
        assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
        if (res.status != 0)
            fail_msg("rerun exited %d: %s", res.status, res.err);
        assert_non_null(strstr(res.err, "resumed from a checkpoint"));
        th_result_free(&res);
    }
    for (size_t i = 0; i < ts_count(ts); i++) {
        struct ts_request r;
        json_t *arr, *v;
        size_t k;
        assert_int_equal(ts_get(ts, i, &r), 0);
        if (strcmp(r.method, "POST") == 0) {
            arr = json_loads(r.body, 0, NULL);
            json_array_foreach(arr, k, v)
            {
                int n = atoi(json_string_value(json_object_get(v, "EmployeeId")) + 1);
                if (seen[n]++)
                    dup++;
            }
            json_decref(arr);
        }
        ts_request_free(&r);
    }
    for (int i = 0; i < NREC; i++)
        if (!seen[i])
            fail_msg("record %d was not delivered", i);
    /* a clean stop delivers what was read before the checkpoint is saved: no duplicates */
    assert_int_equal(dup, 0);
    assert_int_equal(access(dl, F_OK), -1);
    free(seen);
    free(input);
    free(cfg);
    free(dl);
    free(errf);
    ts_stop(ts);
    th_tmpdir_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_crash_resume),
                                       cmocka_unit_test(test_sigterm_and_lock)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
