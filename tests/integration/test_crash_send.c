/*
 * test_crash_send.c - `osconnect send --commit` killed with SIGKILL at
 * random moments (at least KILLS times, over as many imports as it takes)
 * and run again until each import completes; a batch stuck in its retry
 * while the rest could go on; a kill while the commit is in flight; a
 * checkpoint that cannot be written (a full disk); SIGTERM and the lock.
 *
 * The server (the scripted test server: every request recorded, answered
 * 200 after a short delay so batches are in flight when the kill lands)
 * must end up with every input record in some accepted batch or in the
 * dead-letter file; the staging area cleared exactly once per import (a
 * resumed run never clears what an earlier run staged); the directory
 * import triggered exactly once per import, after its last batch; and
 * each kill followed by at most 2 x max_in_flight batches sent again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "osc/buf.h"
#include "testserver.h"

#define NREC      10000
#define BATCH     50
#define IN_FLIGHT 4
#define KILLS     20
#define MAX_RUNS  200
#define COUNT_0   "{\"count\":0,\"response\":[]}" /* batches, and the commit guard's count */

/* Wait until the server received at least n requests; 1 when it did before deadline_ms. */
static int wait_requests(struct ts_server *ts, size_t n, long deadline_ms)
{
    for (long t = 0; t < deadline_ms; t += 10) {
        if (ts_count(ts) >= n)
            return 1;
        th_nap_ms(10);
    }
    return ts_count(ts) >= n;
}

static char *write_csv(int import, int n)
{
    struct osc_buf in;
    char name[64], *p;

    osc_buf_init(&in, 1u << 26);
    osc_buf_adds(&in, "employee_id,first_name,last_name,email,department\n");
    for (int i = 0; i < n; i++) {
        if (i % 997 == 500) /* a row with no id and no email: dead-lettered, never sent */
            osc_buf_printf(&in, ",Nobody,%d,,Ghosts\n", i);
        else
            osc_buf_printf(&in, "I%d-%05d,First%d,Last%d,u%d@example.com,Dept%d\n", import, i, i, i,
                           i, i % 7);
    }
    snprintf(name, sizeof(name), "import%d.csv", import);
    p = th_write_file(name, osc_buf_str(&in));
    osc_buf_free(&in);
    return p;
}

static char *write_config(struct ts_server *ts, const char *dl, const char *extra)
{
    char *text = NULL, *cfg;

    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: crash-key-0123456789abcdef\n"
                         "destinations:\n"
                         "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                         "    batch: {size: %d}\n    max_in_flight: %d\n    dead_letter: %s\n%s"
                         "  commit:\n    template: trigger_directory_import\n    source_name: HR\n",
                         ts_url(ts), BATCH, IN_FLIGHT, dl, extra ? extra : "") > 0);
    cfg = th_write_file("crash.yaml", text);
    free(text);
    return cfg;
}

/* The record number of an EmployeeId "I<import>-<n>", or -1. */
static int rec_no(const char *id, int import)
{
    int imp, n;
    return id && sscanf(id, "I%d-%d", &imp, &n) == 2 && imp == import && n >= 0 && n < NREC ? n
                                                                                            : -1;
}

/* What the server's requests [from, to) carried. */
struct tally {
    unsigned deletes, commits, dup; /* dup: records seen[] already counted */
    int lo, hi;                     /* record numbers sent, lowest and highest (debug) */
    unsigned nreq;
    size_t last_batch, commit_at; /* indexes of the last batch import and the commit */
};

/*
 * Walk requests [from, to): count the staging DELETEs and the commits, and every record of
 * import `import` in the batch imports into seen[] (the commit guard's GETs are skipped;
 * skip, when not (size_t)-1, is a request whose answer refused it).
 */
static void tally_run(struct ts_server *ts, size_t from, size_t to, int import, size_t skip,
                      const char *run, unsigned *seen, struct tally *t)
{
    for (size_t i = from; i < to; i++) {
        struct ts_request q;
        json_t *arr, *v;
        size_t k;
        char id[64];
        assert_int_equal(ts_get(ts, i, &q), 0);
        if (run && (ts_header(&q, "x-request-id", id, sizeof(id)) != 0 ||
                    strncmp(id, run, strlen(run)) != 0)) {
            ts_request_free(&q);
            continue; /* another run's */
        }
        if (strcmp(q.method, "GET") == 0 || i == skip) {
            /* the commit guard, or a refused request */
        } else if (strcmp(q.method, "DELETE") == 0) {
            t->deletes++;
        } else if (strcmp(q.url, "/api/1/employee_directory") == 0) {
            t->commits++;
            t->commit_at = i;
            assert_string_equal(q.body, "Source=HR");
        } else {
            assert_string_equal(q.url, "/api/1/employee_batch_imports");
            arr = json_loads(q.body, 0, NULL);
            assert_non_null(arr);
            t->last_batch = i;
            json_array_foreach(arr, k, v)
            {
                int n = rec_no(json_string_value(json_object_get(v, "EmployeeId")), import);
                assert_true(n >= 0);
                if (seen[n]++)
                    t->dup++;
                if (!t->nreq || n < t->lo)
                    t->lo = n;
                if (!t->nreq || n > t->hi)
                    t->hi = n;
                t->nreq++;
            }
            json_decref(arr);
        }
        ts_request_free(&q);
    }
}

static void tally(struct ts_server *ts, size_t from, size_t to, int import, size_t skip,
                  unsigned *seen, struct tally *t)
{
    tally_run(ts, from, to, import, skip, NULL, seen, t);
}

/*
 * The runs that sent requests [from, to), in the order they first appear: each run's
 * X-Request-Ids start "osc-<run>-". A killed run's requests may reach a loaded server after
 * the next run began, so arrival order alone cannot tell whose they are.
 */
static size_t list_runs(struct ts_server *ts, size_t from, size_t to, char (*runs)[16], size_t cap)
{
    size_t n = 0;

    for (size_t i = from; i < to; i++) {
        struct ts_request q;
        char id[64];
        size_t j;
        assert_int_equal(ts_get(ts, i, &q), 0);
        if (ts_header(&q, "x-request-id", id, sizeof(id)) == 0 && strlen(id) > 13) {
            id[13] = '\0'; /* "osc-" and the run's 8 hex digits, and the '-' */
            for (j = 0; j < n && strcmp(runs[j], id) != 0; j++)
                ;
            if (j == n && n < cap)
                snprintf(runs[n++], sizeof(runs[0]), "%s", id);
        }
        ts_request_free(&q);
    }
    return n;
}

/* 1 when the server received a commit since request from. */
static int commit_seen(struct ts_server *ts, size_t from)
{
    int seen = 0;

    for (size_t i = from; i < ts_count(ts) && !seen; i++) {
        struct ts_request q;
        assert_int_equal(ts_get(ts, i, &q), 0);
        seen = strcmp(q.method, "POST") == 0 && strcmp(q.url, "/api/1/employee_directory") == 0;
        ts_request_free(&q);
    }
    return seen;
}

static void test_crash_resume(void **state)
{
    struct ts_server *ts = ts_start();
    char *cfg, *dl;
    unsigned seed = (unsigned)time(NULL);
    unsigned kills = 0, imports = 0, max_dup = 0, total_dup = 0, runs = 0, unknown = 0;
    int restart_next = 0;
    struct th_result res;
    (void)state;

    assert_non_null(ts);
    printf("# seed %u\n", seed);
    srand(seed);
    ts_set_default(ts, &(struct ts_response){200, NULL, COUNT_0, 25, 0});
    dl = th_write_file("employees.dead.jsonl", "");
    remove(dl);
    cfg = write_config(ts, dl, NULL);
    /* imports one after the other until KILLS kills landed; each is accounted for alone */
    while (kills < KILLS && runs < MAX_RUNS) {
        int import = (int)imports++;
        char *input = write_csv(import, NREC);
        unsigned *seen = calloc(NREC, sizeof(*seen));
        size_t first_req = ts_count(ts), nrun = 0, nids;
        static char ids[MAX_RUNS][16];
        unsigned bad_seen = 0, before;
        int staged_any = 0;
        struct tally all = {0};
        /* after a kill during a commit the operator starts the next import with --restart */
        const char *argv[] = {"send",     getenv("CRASH_VERBOSE") ? "-v" : "-q",
                              "-c",       cfg,
                              "-d",       "employees",
                              "--commit", "commit",
                              input,      NULL,
                              NULL};
        int done = 0;

        remove(dl);
        if (restart_next)
            argv[9] = "--restart";
        restart_next = 0;
        while (!done && runs < MAX_RUNS) {
            int ms = 40 + rand() % 400;
            if (nrun == 1)
                argv[9] = NULL; /* --restart starts the import; its reruns resume it */
            nrun++;
            runs++;
            assert_int_equal(th_run(argv, NULL, kills < KILLS ? ms : 120000, &res), 0);
            if (getenv("CRASH_VERBOSE") && res.status != 128 + 9)
                printf("# run ended %d: %s\n", res.status, res.err);
            if (res.status == 128 + 9) {
                kills++;
                /* killed while or after its commit was sent: the import is over (the same
                 * command again would refuse, or start a new import of the same file) */
                if (commit_seen(ts, first_req)) {
                    unknown++;
                    restart_next = done = 1;
                }
            } else {
                /* 65: this run dead-lettered ghost rows; 0: it only committed (the kill landed
                 * after the last batch, before the commit) */
                if (res.status != 65 && res.status != 0)
                    fail_msg("import %d: final run exited %d: %s", import, res.status, res.err);
                assert_non_null(strstr(res.err, "commit: directory import triggered"));
                done = 1;
            }
            th_result_free(&res);
        }
        assert_true(done);
        /* account for every request of this import, run by run (by request id) */
        nids = list_runs(ts, first_req, ts_count(ts), ids, MAX_RUNS);
        for (size_t r = 0; r < nids; r++) {
            unsigned dup;
            struct tally one = {0};
            before = all.dup;
            tally_run(ts, first_req, ts_count(ts), import, (size_t)-1, ids[r], seen, &all);
            dup = all.dup - before;
            {
                unsigned *scratch = calloc(NREC, sizeof(*scratch));
                tally_run(ts, first_req, ts_count(ts), import, (size_t)-1, ids[r], scratch, &one);
                free(scratch);
            }
            if (getenv("CRASH_VERBOSE"))
                printf("# import %d run %s: %u records sent again (records %d..%d, %u sent)\n",
                       import, ids[r], dup, one.lo, one.hi, one.nreq);
            /* the staging is cleared before the job's first batch, never after: a run may
             * clear it again only while no batch was staged (its DELETE was not answered) */
            if (one.deletes && staged_any)
                fail_msg("import %d: run %s cleared the staging after batches were staged", import,
                         ids[r]);
            staged_any |= one.nreq > 0;
            /* what run r sent again was left unfinished by the kill that ended run r - 1 */
            if (r > 0) {
                total_dup += dup;
                if (dup > max_dup)
                    max_dup = dup;
                if (dup > 2 * IN_FLIGHT * BATCH)
                    fail_msg("import %d: run %s sent %u records again (bound %d)", import, ids[r],
                             dup, 2 * IN_FLIGHT * BATCH);
            }
        }
        assert_true(ts_count(ts) > first_req);
        assert_true(all.deletes >= 1);
        assert_int_equal(all.commits, 1);
        assert_true(all.commit_at > all.last_batch);
        {
            char *t = th_read_file(dl);
            char *line, *save = NULL;
            for (line = t ? strtok_r(t, "\n", &save) : NULL; line;
                 line = strtok_r(NULL, "\n", &save)) {
                json_t *j = json_loads(line, 0, NULL);
                json_t *src = json_object_get(j, "source");
                int row = (int)json_integer_value(json_object_get(src, "line")) - 2;
                assert_non_null(j);
                assert_true(row >= 0 && row < NREC && row % 997 == 500);
                assert_non_null(strstr(json_string_value(json_object_get(j, "reason")),
                                       "no EmployeeId or Email"));
                seen[row]++;
                bad_seen++;
                json_decref(j);
            }
            free(t);
        }
        for (int i = 0; i < NREC; i++)
            if (!seen[i])
                fail_msg("import %d: record %d was neither accepted nor dead-lettered", import, i);
        printf("# import %d: %zu runs, %u dead letters\n", import, nrun, bad_seen);
        free(seen);
        free(input);
    }
    printf("# %u kills over %u imports (%u runs, %u during or after a commit): records sent again "
           "after "
           "a kill: max %u (%.1f batches of %d), mean %.0f; bound 2 x max_in_flight x batch = %d\n",
           kills, imports, runs, unknown, max_dup, (double)max_dup / BATCH, BATCH,
           kills ? (double)total_dup / kills : 0.0, 2 * IN_FLIGHT * BATCH);
    assert_true(kills >= KILLS);
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
 * The window tests' setup: the staging DELETE is accepted, batch 1 is answered 503 and waits
 * 30 s for its retry, every other request is answered after 5 ms; max_in_flight 2. Files are
 * named after tag; the caller frees the four paths.
 */
static void window_setup(struct ts_server *ts, const char *tag, char **input, char **dl,
                         char **errf, char **cfg)
{
    char name[64], *text = NULL;

    ts_set_default(ts, &(struct ts_response){200, NULL, COUNT_0, 5, 0});
    ts_push(ts, &(struct ts_response){200, NULL, "{}", 0, 0});                   /* DELETE */
    ts_push(ts, &(struct ts_response){503, NULL, "{\"error\":\"busy\"}", 0, 0}); /* batch 1 */
    *input = write_csv(0, NREC);
    snprintf(name, sizeof(name), "%s.dead.jsonl", tag);
    *dl = th_write_file(name, "");
    remove(*dl);
    snprintf(name, sizeof(name), "%s.err", tag);
    *errf = th_write_file(name, "");
    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: crash-key-0123456789abcdef\n"
                         "destinations:\n  employees:\n    template: upsert_employees\n"
                         "    batch: {size: %d}\n    max_in_flight: 2\n    dead_letter: %s\n"
                         "    retry: {base: 30s, cap: 30s}\n",
                         ts_url(ts), BATCH, *dl) > 0);
    snprintf(name, sizeof(name), "%s.yaml", tag);
    *cfg = th_write_file(name, text);
    free(text);
}

/*
 * Issue 10, defect 5: a batch waiting for its retry holds reading once the
 * window is full, so a crash then re-sends at most about 2 x max_in_flight
 * batches (reading went on, and one crash re-sent 65).
 */
static void test_retry_holds_the_window(void **state)
{
    struct ts_server *ts = ts_start();
    char *input, *cfg, *dl, *errf;
    unsigned *seen = calloc(NREC, sizeof(*seen)), dup = 0;
    struct tally t = {0};
    struct th_result res;
    size_t held;
    pid_t pid;
    int status;
    (void)state;

    assert_non_null(ts);
    window_setup(ts, "w", &input, &dl, &errf, &cfg);
    {
        const char *argv[] = {"send", "-q", "-c", cfg, "-d", "employees", input, NULL};
        pid = spawn(argv, errf);
        assert_true(pid > 0);
        /* DELETE, batch 1 (503, retry in up to 30 s), and the window's other batch */
        assert_true(wait_requests(ts, 3, 20000));
        th_nap_ms(500); /* the window is shut: nothing more may come while batch 1 waits */
        held = ts_count(ts);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        printf("# requests while batch 1 waited for its retry: %zu\n", held);
        assert_true(held <= 4);
        /* the rerun sends the rest: every record once, except what the window held */
        ts_set_default(ts, &(struct ts_response){200, NULL, COUNT_0, 0, 0});
        assert_int_equal(th_run(argv, NULL, 120000, &res), 0);
        if (res.status != 65)
            fail_msg("rerun exited %d: %s", res.status, res.err);
        th_result_free(&res);
    }
    tally(ts, 0, ts_count(ts), 0, 1 /* the 503 */, seen, &t);
    dup = t.dup;
    for (int i = 0; i < NREC; i++)
        if (!seen[i] && i % 997 != 500)
            fail_msg("record %d was not delivered", i);
    printf("# records sent twice after the kill: %u (bound %d)\n", dup, 2 * 2 * BATCH);
    assert_true(dup <= 2 * 2 * BATCH);
    free(seen);
    free(input);
    free(cfg);
    free(dl);
    free(errf);
    ts_stop(ts);
    th_tmpdir_cleanup();
}

/* Wait up to deadline_ms for pid; its wait status in *status. 1 when it ended. */
static int wait_exit(pid_t pid, long deadline_ms, int *status)
{
    for (long t = 0; t < deadline_ms; t += 20) {
        if (waitpid(pid, status, WNOHANG) == pid)
            return 1;
        th_nap_ms(20);
    }
    return 0;
}

/*
 * SIGTERM while the window is shut by a batch waiting 30 s for its retry: the run stops
 * at once (it does not wait for the retry), exits 75, and the rerun delivers the rest.
 */
static void test_sigterm_while_a_retry_waits(void **state)
{
    struct ts_server *ts = ts_start();
    char *input, *cfg, *dl, *errf, *out;
    unsigned *seen = calloc(NREC, sizeof(*seen));
    struct tally t = {0};
    struct th_result res;
    pid_t pid;
    int status = 0;
    (void)state;

    assert_non_null(ts);
    window_setup(ts, "t", &input, &dl, &errf, &cfg);
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", input, NULL};
        pid = spawn(argv, errf);
        assert_true(pid > 0);
        assert_true(wait_requests(ts, 3, 20000));
        kill(pid, SIGTERM);
        /* a liveness bound, not a timing: without the fix it waits the 30 s retry */
        if (!wait_exit(pid, 10000, &status)) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("send did not stop within 10 s of SIGTERM");
        }
        out = th_read_file(errf);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 75)
            fail_msg("status %d after SIGTERM: %s", status, out);
        free(out);
        ts_set_default(ts, &(struct ts_response){200, NULL, COUNT_0, 0, 0});
        assert_int_equal(th_run(argv, NULL, 120000, &res), 0);
        if (res.status != 65)
            fail_msg("rerun exited %d: %s", res.status, res.err);
        assert_non_null(strstr(res.err, "resumed from a checkpoint"));
        th_result_free(&res);
    }
    tally(ts, 0, ts_count(ts), 0, 1 /* the 503 */, seen, &t);
    for (int i = 0; i < NREC; i++)
        if (!seen[i] && i % 997 != 500)
            fail_msg("record %d was not delivered", i);
    assert_true(t.dup <= 2 * 2 * BATCH);
    free(seen);
    free(input);
    free(cfg);
    free(dl);
    free(errf);
    ts_stop(ts);
    th_tmpdir_cleanup();
}

/*
 * Issue 10, defect 1: killed while the commit is in flight (the server got
 * it), the same command again does not send a second commit, and nor does
 * `osconnect commit`: the import may already have been applied. Only
 * `commit --force` sends it again.
 */
static void test_kill_during_commit(void **state)
{
    struct ts_server *ts = ts_start();
    char *input, *cfg, *dl, *errf;
    struct th_result res;
    size_t before;
    pid_t pid;
    int status, n = 1000;
    (void)state;

    assert_non_null(ts);
    ts_set_default(ts, &(struct ts_response){200, NULL, COUNT_0, 0, 0});
    /* DELETE, n / BATCH batches, the guard's GET, then the commit: answered after 20 s */
    for (int i = 0; i < 1 + n / BATCH + 1; i++)
        ts_push(ts, &(struct ts_response){200, NULL, COUNT_0, 0, 0});
    ts_push(ts, &(struct ts_response){200, NULL, "{}", 20000, 0});
    input = write_csv(0, n);
    dl = th_write_file("k.dead.jsonl", "");
    remove(dl);
    errf = th_write_file("k.err", "");
    cfg = write_config(ts, dl, NULL);
    {
        const char *argv[] = {"send",     "-c",     cfg,   "-d", "employees",
                              "--commit", "commit", input, NULL};
        pid = spawn(argv, errf);
        assert_true(pid > 0);
        assert_true(wait_requests(ts, (size_t)(1 + n / BATCH + 2), 30000));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        before = ts_count(ts);
        {
            struct ts_request r;
            assert_int_equal(ts_get(ts, before - 1, &r), 0);
            assert_string_equal(r.url, "/api/1/employee_directory");
            ts_request_free(&r);
        }
        /* the same command again: refused, nothing sent */
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 64);
        assert_non_null(strstr(res.err, "may already have been applied"));
        assert_non_null(strstr(res.err, "commit --force"));
        th_result_free(&res);
    }
    {
        const char *argv[] = {"commit", "-c", cfg, "-d", "employees", NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 75);
        assert_non_null(strstr(res.err, "outcome is unknown"));
        th_result_free(&res);
    }
    assert_int_equal(ts_count(ts), before);
    {
        const char *argv[] = {"commit", "-c", cfg, "-d", "employees", "--force", NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        if (res.status != 0)
            fail_msg("commit --force exited %d: %s", res.status, res.err);
        th_result_free(&res);
    }
    assert_int_equal(ts_count(ts), before + 1);
    free(input);
    free(cfg);
    free(dl);
    free(errf);
    ts_stop(ts);
    th_tmpdir_cleanup();
}

/*
 * Issue 10, defect 4: a checkpoint that cannot be written (the disk is
 * full) stops the run with exit 74 and no commit, and leaves a position
 * only before unfinished records: the rerun delivers every record and
 * commits once.
 */
static void test_checkpoint_disk_full(void **state)
{
    struct ts_server *ts = ts_start();
    char *input, *cfg, *dl, *text = NULL;
    unsigned *seen = calloc(NREC, sizeof(*seen));
    struct tally t = {0};
    struct th_result res;
    (void)state;

    assert_non_null(ts);
    ts_set_default(ts, &(struct ts_response){200, NULL, COUNT_0, 0, 0});
    input = write_csv(0, 3000);
    dl = th_write_file("f.dead.jsonl", "");
    remove(dl);
    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: crash-key-0123456789abcdef\n"
                         "destinations:\n"
                         "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                         "    batch: {size: 10}\n    max_in_flight: 1\n    dead_letter: %s\n"
                         "  commit:\n    template: trigger_directory_import\n    source_name: HR\n",
                         ts_url(ts), dl) > 0);
    cfg = th_write_file("f.yaml", text);
    free(text);
    {
        const char *argv[] = {"send",     "-c",     cfg,   "-d", "employees",
                              "--commit", "commit", input, NULL};
        /* 48 KiB per file: the checkpoint's journal fills up after a few dozen batches */
        assert_int_equal(th_run_fsize(argv, 48 * 1024, 60000, &res), 0);
        if (res.status != 74)
            fail_msg("exit %d: %s", res.status, res.err);
        assert_non_null(strstr(res.err, "checkpoint"));
        assert_non_null(strstr(res.err, "directory import NOT triggered"));
        th_result_free(&res);
        assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
        if (res.status != 65)
            fail_msg("rerun exited %d: %s", res.status, res.err);
        assert_non_null(strstr(res.err, "resumed from a checkpoint"));
        assert_non_null(strstr(res.err, "commit: directory import triggered"));
        th_result_free(&res);
    }
    tally(ts, 0, ts_count(ts), 0, (size_t)-1, seen, &t);
    assert_int_equal(t.deletes, 1);
    assert_int_equal(t.commits, 1);
    for (int i = 0; i < 3000; i++)
        if (!seen[i] && i % 997 != 500)
            fail_msg("record %d was not delivered", i);
    free(seen);
    free(input);
    free(cfg);
    free(dl);
    ts_stop(ts);
    th_tmpdir_cleanup();
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
    struct tally t = {0};
    struct th_result res;
    int status = 0;
    pid_t pid;
    (void)state;

    assert_non_null(ts);
    ts_set_default(ts, &(struct ts_response){200, NULL, COUNT_0, 100, 0});
    osc_buf_init(&in, 1u << 26);
    for (int i = 0; i < NREC; i++)
        osc_buf_printf(&in, "{\"employee_id\":\"I0-%05d\",\"email\":\"u%d@example.com\"}\n", i, i);
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
        char *cp = NULL;
        assert_true(asprintf(&cp, "%.*s.checkpoint.db", (int)(strlen(dl) - 11), dl) > 0);
        pid = spawn(argv, errf);
        assert_true(pid > 0);
        /* wait (with a deadline) until the first run holds its checkpoint and is sending */
        for (int i = 0; i < 500 && (access(cp, F_OK) != 0 || ts_count(ts) < 3); i++)
            th_nap_ms(20);
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
    tally(ts, 0, ts_count(ts), 0, (size_t)-1, seen, &t);
    dup = t.dup;
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
                                       cmocka_unit_test(test_retry_holds_the_window),
                                       cmocka_unit_test(test_sigterm_while_a_retry_waits),
                                       cmocka_unit_test(test_kill_during_commit),
                                       cmocka_unit_test(test_checkpoint_disk_full),
                                       cmocka_unit_test(test_sigterm_and_lock)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
