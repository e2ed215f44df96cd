/*
 * test_checkpoint.c - the send checkpoint: the SQLite file itself, and the
 * delivery engine resuming from it against the scripted test server (an
 * interrupted run continues where the acknowledged records end, never
 * clears the staging area twice, keeps a failed batch's veto on the
 * commit; --restart starts over; stdin keeps no checkpoint; a completed run
 * leaves no row).
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
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "osc/checkpoint.h"
#include "osc/config.h"
#include "osc/delivery.h"
#include "osc/log.h"
#include "testserver.h"

#define KEY "unit-key-SECRET-0123456789abcdef"

static void test_file_roundtrip(void **state)
{
    struct osc_checkpoint *c = NULL;
    struct osc_checkpoint_pos p = {2, 4096, 77, 250, 300, 4, 1, 9, 0}, q;
    struct osc_err err = {0};
    char *path = th_write_file("cp.db", "");
    char id1[OSC_CHECKPOINT_ID_MAX], id2[OSC_CHECKPOINT_ID_MAX];
    char *in = th_write_file("in.jsonl", "{\"a\":1}\n");
    (void)state;

    assert_int_equal(osc_checkpoint_open(path, &c, &err), 0);
    assert_int_equal(osc_checkpoint_load(c, "k", &q, &err), 0);
    assert_int_equal(osc_checkpoint_save(c, "k", &p, &err), 0);
    osc_checkpoint_close(c);
    /* survives a reopen */
    assert_int_equal(osc_checkpoint_open(path, &c, &err), 0);
    assert_int_equal(osc_checkpoint_load(c, "k", &q, &err), 1);
    assert_int_equal(q.input, 2);
    assert_int_equal(q.offset, 4096);
    assert_int_equal(q.line, 77);
    assert_int_equal(q.done, 250);
    assert_int_equal(q.sent, 300);
    assert_int_equal(q.refused, 4);
    assert_int_equal(q.resolved, 1);
    assert_int_equal(q.job, 9);
    assert_int_equal(osc_checkpoint_clear(c, "k", &err), 0);
    assert_int_equal(osc_checkpoint_load(c, "k", &q, &err), 0);
    osc_checkpoint_close_clean(c);
    assert_int_equal(access(path, F_OK), -1); /* empty: removed */

    /* identity: the same file twice is the same; a changed file is not; stdin has none */
    assert_int_equal(osc_checkpoint_input_id(in, id1, sizeof(id1), &err), 0);
    assert_int_equal(osc_checkpoint_input_id(in, id2, sizeof(id2), &err), 0);
    assert_string_equal(id1, id2);
    free(in);
    in = th_write_file("in.jsonl", "{\"a\":2}\n");
    assert_int_equal(osc_checkpoint_input_id(in, id2, sizeof(id2), &err), 0);
    assert_string_not_equal(id1, id2);
    assert_int_equal(osc_checkpoint_input_id("-", id2, sizeof(id2), &err), OSC_ENOINPUT);
    free(in);
    free(path);
    th_tmpdir_cleanup();
}

struct fx {
    struct ts_server *ts;
    struct osc_config *cfg;
    struct osc_checkpoint *cp;
    char *cp_path;
    char *dl_path;
    volatile int stop;
    unsigned stop_after; /* set stop after this many data calls (0: never) */
    unsigned calls;
};

static void setup(struct fx *f, const char *extra)
{
    char *text = NULL;
    struct osc_err err = {0};

    f->ts = ts_start();
    assert_non_null(f->ts);
    /* a 2xx for every batch, and an empty directory for the commit guard's count */
    ts_set_default(f->ts, &(struct ts_response){200, NULL, "{\"count\":0,\"response\":[]}", 0, 0});
    f->dl_path = th_write_file("out.dead.jsonl", "");
    remove(f->dl_path);
    f->cp_path = th_write_file("cp.db", "");
    remove(f->cp_path);
    assert_true(asprintf(&text,
                         "officespace:\n  base_url: %s\n  api_key: " KEY "\n"
                         "destinations:\n"
                         "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                         "    commit: commit\n    batch: {size: 10}\n    max_in_flight: 1\n"
                         "    dead_letter: %s\n"
                         "    retry: {base: 1ms, cap: 2ms, max_attempts: 2}\n%s"
                         "  commit:\n    template: trigger_directory_import\n    source_name: HR\n",
                         ts_url(f->ts), f->dl_path, extra ? extra : "") > 0);
    if (osc_config_load_string(text, strlen(text), "t.yaml", &f->cfg, &err))
        fail_msg("%s", err.msg);
    free(text);
    assert_int_equal(osc_checkpoint_open(f->cp_path, &f->cp, &err), 0);
}

static void teardown(struct fx *f)
{
    osc_checkpoint_close(f->cp);
    osc_config_free(f->cfg);
    ts_stop(f->ts);
    free(f->dl_path);
    free(f->cp_path);
    th_tmpdir_cleanup();
    osc_log_secret_clear();
}

static void count_calls(void *ud, const struct osc_delivery_call *c)
{
    struct fx *f = ud;
    if (strstr(c->url, "employee_batch_imports") && ++f->calls == f->stop_after)
        f->stop = 1;
}

/* One send run over paths; returns its stats. */
static struct osc_delivery_stats run(struct fx *f, const char *const *paths, size_t n, int restart,
                                     int expect_resume)
{
    struct osc_delivery_opts o = {.on_call = count_calls, .ud = f, .interrupt = &f->stop};
    struct osc_err err = {0};
    struct osc_delivery *d = osc_delivery_new(f->cfg, "employees", &o, &err);
    struct osc_delivery_stats st;

    assert_non_null(d);
    assert_int_equal(osc_delivery_checkpoint(d, f->cp, paths, n, restart, &err), expect_resume);
    for (size_t i = 0; i < n; i++)
        if (osc_delivery_feed(d, paths[i], OSC_RECORDS_AUTO, 0, &err))
            break;
    osc_delivery_finish(d);
    osc_delivery_get_stats(d, &st);
    osc_delivery_free(d);
    return st;
}

/* The EmployeeIds the server received in batch imports, in order, as "1,2,3,". */
static void received_ids(struct fx *f, char *out, size_t cap, size_t *deletes, size_t *commits)
{
    size_t len = 0;
    *deletes = *commits = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ts_count(f->ts); i++) {
        struct ts_request r;
        json_t *arr, *v;
        size_t k;
        assert_int_equal(ts_get(f->ts, i, &r), 0);
        if (strcmp(r.method, "GET") == 0)
            ; /* the commit guard's count */
        else if (strcmp(r.method, "DELETE") == 0)
            (*deletes)++;
        else if (strcmp(r.url, "/api/1/employee_directory") == 0)
            (*commits)++;
        else if ((arr = json_loads(r.body, 0, NULL)) != NULL) {
            json_array_foreach(arr, k, v)
            {
                len += (size_t)snprintf(out + len, cap - len, "%s,",
                                        json_string_value(json_object_get(v, "EmployeeId")));
            }
            json_decref(arr);
        }
        ts_request_free(&r);
    }
}

static char *make_input(const char *name, int csv, int from, int to)
{
    struct osc_buf b;
    char *p;
    osc_buf_init(&b, 1 << 20);
    if (csv)
        osc_buf_adds(&b, "employee_id,email\n");
    for (int i = from; i < to; i++)
        osc_buf_printf(
            &b, csv ? "%d,u%d@x.io\n" : "{\"employee_id\":\"%d\",\"email\":\"u%d@x.io\"}\n", i, i);
    p = th_write_file(name, osc_buf_str(&b));
    osc_buf_free(&b);
    return p;
}

static void expect_ids(const char *got, int from, int to)
{
    char want[8192];
    size_t len = 0;
    want[0] = '\0';
    for (int i = from; i < to; i++)
        len += (size_t)snprintf(want + len, sizeof(want) - len, "%d,", i);
    assert_string_equal(got, want);
}

static void test_resume_after_interrupt(void **state)
{
    struct fx f = {0};
    char ids[8192];
    size_t dels, commits;
    struct osc_delivery_stats st;
    (void)state;

    for (int csv = 0; csv <= 1; csv++) {
        /* two inputs: JSON Lines resumes by seeking, CSV by reading and skipping */
        char *a, *b;
        const char *paths[2];
        memset(&f, 0, sizeof(f));
        setup(&f, NULL);
        a = make_input(csv ? "a.csv" : "a.jsonl", csv, 0, 35);
        b = make_input(csv ? "b.csv" : "b.jsonl", csv, 35, 60);
        paths[0] = a;
        paths[1] = b;
        f.stop_after = 2; /* interrupted after the second batch */
        st = run(&f, paths, 2, 0, 0);
        if (!st.interrupted)
            fail_msg("not interrupted: %llu records, %u calls", (unsigned long long)st.records,
                     f.calls);
        assert_int_equal(st.commit, -1);
        received_ids(&f, ids, sizeof(ids), &dels, &commits);
        assert_int_equal(dels, 1);
        assert_int_equal(commits, 0);
        /* what was read before the stop was still delivered */
        assert_int_equal(st.sent, st.records);
        assert_true(st.sent >= 20 && st.sent < 60);

        /* the same command again: the rest, no second DELETE, then the commit */
        f.stop_after = 0;
        f.stop = 0;
        f.calls = 0;
        {
            size_t before = st.sent;
            st = run(&f, paths, 2, 0, 1);
            assert_true(st.resumed);
            assert_int_equal(st.sent, 60 - before);
            /* the summary adds up: what the checkpoint skipped and what this run read */
            assert_int_equal(st.skipped + st.records, 60);
        }
        received_ids(&f, ids, sizeof(ids), &dels, &commits);
        expect_ids(ids, 0, 60); /* each record exactly once, in order */
        assert_int_equal(dels, 1);
        assert_int_equal(commits, 1);
        assert_int_equal(st.commit, 1);
        assert_int_equal(osc_delivery_exit_code(&st), 0);

        /* completed: no row; running again starts from the top (and clears staging) */
        st = run(&f, paths, 2, 0, 0);
        assert_int_equal(st.sent, 60);
        received_ids(&f, ids, sizeof(ids), &dels, &commits);
        assert_int_equal(dels, 2);
        free(a);
        free(b);
        teardown(&f);
    }
}

static void test_restart_and_failed_veto(void **state)
{
    struct fx f = {0};
    char ids[8192];
    size_t dels, commits;
    struct osc_delivery_stats st;
    char *a;
    const char *paths[1];
    (void)state;

    setup(&f, NULL);
    a = make_input("a.jsonl", 0, 0, 40);
    paths[0] = a;
    /* DELETE ok, batch 1 rejected (dead-lettered), batch 2 ok, then stop */
    ts_push(f.ts, &(struct ts_response){200, NULL, "{}", 0, 0});
    ts_push(f.ts, &(struct ts_response){422, NULL, "{\"error\":\"bad\"}", 0, 0});
    f.stop_after = 2;
    st = run(&f, paths, 1, 0, 0);
    assert_true(st.interrupted);
    assert_int_equal(st.rejected, 10);
    /* resumed: the earlier failure still vetoes the commit */
    f.stop_after = 0;
    f.stop = 0;
    f.calls = 0;
    st = run(&f, paths, 1, 0, 1);
    assert_int_equal(st.commit, -1);
    assert_non_null(strstr(st.commit_reason, "10 record(s) the API refused"));
    received_ids(&f, ids, sizeof(ids), &dels, &commits);
    expect_ids(ids, 0, 40);
    assert_int_equal(commits, 0);
    assert_int_equal(osc_delivery_exit_code(&st), 65);

    /* --restart: everything again, staging cleared again, and the commit runs */
    f.stop = 0;
    st = run(&f, paths, 1, 1, 0);
    assert_int_equal(st.sent, 40);
    assert_int_equal(st.commit, 1);
    received_ids(&f, ids, sizeof(ids), &dels, &commits);
    assert_int_equal(dels, 2);
    assert_int_equal(commits, 1);
    free(a);
    teardown(&f);
}

/* A record whose dead letter could not be written is not done: the saved position stays
 * before it, so the next run dead-letters it instead of skipping it for good. */
static void test_dead_letter_failure_keeps_position(void **state)
{
    struct fx f = {0};
    struct osc_delivery_stats st;
    char *in, *text;
    const char *paths[1];
    (void)state;

    setup(&f, NULL);
    in = th_write_file("dl.jsonl", "{\"employee_id\":\"1\",\"email\":\"u1@x.io\"}\n"
                                   "{\"employee_id\":\"2\",\"email\":\"u2@x.io\"}\n"
                                   "{\"first_name\":\"NoId\"}\n"
                                   "{\"employee_id\":\"4\",\"email\":\"u4@x.io\"}\n");
    paths[0] = in;
    assert_int_equal(mkdir(f.dl_path, 0700), 0); /* the dead letter cannot be written */
    st = run(&f, paths, 1, 0, 0);
    assert_int_equal(st.dead_letter_error, 1);
    assert_int_not_equal(st.commit, 1);
    assert_int_equal(rmdir(f.dl_path), 0);

    st = run(&f, paths, 1, 0, 1);
    assert_int_equal(st.dead_letter_error, 0);
    assert_int_equal(st.invalid, 1);
    text = th_read_file(f.dl_path);
    assert_non_null(text);
    assert_non_null(strstr(text, "NoId"));
    free(text);
    free(in);
    teardown(&f);
}

static void test_stdin(void **state)
{
    struct fx f = {0};
    struct osc_delivery_opts o = {0};
    struct osc_err err = {0};
    struct osc_delivery *d;
    const char *paths[] = {"-"};
    (void)state;

    setup(&f, NULL);
    d = osc_delivery_new(f.cfg, "employees", &o, &err);
    assert_non_null(d);
    /* stdin cannot resume: no checkpoint, not an error, and nothing saved */
    assert_int_equal(osc_delivery_checkpoint(d, f.cp, paths, 1, 0, &err), 0);
    assert_int_equal(osc_delivery_finish(d), 0);
    osc_delivery_free(d);
    osc_checkpoint_close_clean(f.cp);
    f.cp = NULL;
    assert_int_equal(access(f.cp_path, F_OK), -1);
    teardown(&f);
}

/* --no-checkpoint (or stdin) keeps no position, but the import job still knows a run of it
 * did not finish: the commit waits until a run of a new job (--restart) completes. */
static void test_no_resume_blocks_commit(void **state)
{
    struct fx f = {0};
    char ids[8192];
    size_t dels, commits;
    struct osc_delivery_stats st;
    char *a;
    const char *paths[1];
    (void)state;

    setup(&f, NULL);
    a = make_input("a.jsonl", 0, 0, 40);
    paths[0] = a;
    f.stop_after = 2;
    st = run(&f, paths, 1, OSC_DELIVERY_NO_RESUME, 0);
    assert_true(st.interrupted);
    /* the same command again: a new run, not a resume; the job refuses it */
    f.stop_after = 0;
    f.stop = 0;
    {
        struct osc_delivery_opts o = {0};
        struct osc_err err = {0};
        struct osc_delivery *d = osc_delivery_new(f.cfg, "employees", &o, &err);
        assert_non_null(d);
        assert_int_equal(osc_delivery_checkpoint(d, f.cp, paths, 1, OSC_DELIVERY_NO_RESUME, &err),
                         OSC_EUSAGE);
        assert_non_null(strstr(err.msg, "did not finish"));
        osc_delivery_free(d);
    }
    /* --restart: a new job, the staging cleared again, everything staged and committed */
    st = run(&f, paths, 1, OSC_DELIVERY_RESTART | OSC_DELIVERY_NO_RESUME, 0);
    assert_int_equal(st.sent, 40);
    assert_int_equal(st.commit, 1);
    received_ids(&f, ids, sizeof(ids), &dels, &commits);
    assert_int_equal(dels, 2);
    assert_int_equal(commits, 1);
    free(a);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_roundtrip),
        cmocka_unit_test(test_resume_after_interrupt),
        cmocka_unit_test(test_restart_and_failed_veto),
        cmocka_unit_test(test_dead_letter_failure_keeps_position),
        cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_no_resume_blocks_commit),
    };
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
