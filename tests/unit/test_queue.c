/*
 * test_queue.c - the durable ingest queue (src/store/queue.c) on real files
 * in a temporary directory: append/claim/delete in order per destination,
 * the byte bound (OSC_EFULL, then room again after a delete; OSC_ETOOBIG
 * for one oversized body), a restart redelivering everything not deleted
 * (claims forgotten, progress kept), durability across a process killed
 * right after append returned (SIGKILL, no close), the one-process lock
 * (a forked child and a second open both get OSC_EBUSY), release, bad
 * arguments, and appends from several threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "osc/queue.h"

static char *qpath(const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", th_tmpdir(), name) > 0);
    return p;
}

static struct osc_queue *open_ok(const char *path, uint64_t max)
{
    struct osc_queue *q = NULL;
    struct osc_err err = {0};
    if (osc_queue_open(path, max, &q, &err))
        fail_msg("osc_queue_open: %s", err.msg);
    return q;
}

static int64_t append_str(struct osc_queue *q, const char *dest, const char *body)
{
    int64_t id = 0;
    struct osc_err err = {0};
    if (osc_queue_append(q, dest, OSC_RECORDS_JSONL, body, strlen(body), &id, &err))
        fail_msg("append: %s", err.msg);
    return id;
}

static struct osc_queue_item *claim(struct osc_queue *q, const char *dest)
{
    struct osc_queue_item *it = NULL;
    assert_int_equal(osc_queue_claim(q, dest, &it, NULL), 0);
    return it;
}

static void test_order_per_destination(void **state)
{
    char *path = qpath("order.queue");
    struct osc_queue *q = open_ok(path, 0);
    struct osc_queue_item *it;
    int64_t a1, b1, a2;

    (void)state;
    a1 = append_str(q, "alpha", "{\"n\":1}\n");
    b1 = append_str(q, "beta", "id,name\n1,x\n");
    a2 = append_str(q, "alpha", "{\"n\":2}\n");
    assert_true(a1 < b1 && b1 < a2);
    assert_int_equal(osc_queue_count(q, NULL), 3);
    assert_int_equal(osc_queue_count(q, "alpha"), 2);

    it = claim(q, "alpha");
    assert_non_null(it);
    assert_int_equal(it->id, a1);
    assert_string_equal(it->dest, "alpha");
    assert_int_equal(it->format, OSC_RECORDS_JSONL);
    assert_int_equal(it->len, 8);
    assert_string_equal((char *)it->body, "{\"n\":1}\n"); /* NUL-terminated */
    assert_true(it->created_ms > 0);
    assert_int_equal(it->progress, 0);
    osc_queue_item_free(it);

    it = claim(q, "alpha"); /* the first is claimed: the next one */
    assert_int_equal(it->id, a2);
    osc_queue_item_free(it);
    assert_null(claim(q, "alpha"));

    it = claim(q, NULL); /* any destination: only beta's is left */
    assert_int_equal(it->id, b1);
    osc_queue_item_free(it);
    assert_null(claim(q, NULL));

    /* release puts a1 back, before later ones */
    assert_int_equal(osc_queue_release(q, a1), 0);
    assert_int_equal(osc_queue_release(q, a1), OSC_ENOTFOUND);
    it = claim(q, "alpha");
    assert_int_equal(it->id, a1);
    osc_queue_item_free(it);

    assert_int_equal(osc_queue_delete(q, a1, NULL), 0);
    assert_int_equal(osc_queue_delete(q, a1, NULL), OSC_ENOTFOUND);
    assert_int_equal(osc_queue_count(q, "alpha"), 1);
    osc_queue_close(q);
    free(path);
}

static void test_bound(void **state)
{
    char *path = qpath("bound.queue");
    struct osc_queue *q = open_ok(path, 100);
    struct osc_err err = {0};
    char body[60];
    int64_t first;

    (void)state;
    memset(body, 'x', sizeof(body));
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_CSV, body, 60, &first, &err), 0);
    assert_int_equal(osc_queue_bytes(q), 60);
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_CSV, body, 40, NULL, &err), 0);
    assert_int_equal(osc_queue_bytes(q), 100); /* exactly at the bound is fine */
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_CSV, body, 1, NULL, &err), OSC_EFULL);
    assert_non_null(strstr(err.msg, "full"));
    assert_int_equal(osc_queue_count(q, NULL), 2); /* nothing written */
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_CSV, "", 101, NULL, &err), OSC_ETOOBIG);
    /* a delete makes room */
    assert_int_equal(osc_queue_delete(q, first, NULL), 0);
    assert_int_equal(osc_queue_bytes(q), 40);
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_CSV, body, 60, NULL, &err), 0);
    osc_queue_close(q);
    /* the total is recomputed on open */
    q = open_ok(path, 100);
    assert_int_equal(osc_queue_bytes(q), 100);
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_CSV, body, 1, NULL, &err), OSC_EFULL);
    osc_queue_close(q);
    free(path);
}

static void test_restart_redelivers(void **state)
{
    char *path = qpath("restart.queue");
    struct osc_queue *q = open_ok(path, 0);
    struct osc_queue_item *it;
    int64_t id[4];

    (void)state;
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof(body), "body-%d", i);
        id[i] = append_str(q, "d", body);
    }
    /* claim three: delete the first, leave the second mid-way with progress, the third claimed */
    for (int i = 0; i < 3; i++)
        osc_queue_item_free(claim(q, "d"));
    assert_int_equal(osc_queue_delete(q, id[0], NULL), 0);
    assert_int_equal(osc_queue_set_progress(q, id[1], 42, NULL), 0);
    assert_int_equal(osc_queue_set_progress(q, 9999, 1, NULL), OSC_ENOTFOUND);
    osc_queue_close(q);

    q = open_ok(path, 0);
    for (int i = 1; i < 4; i++) {
        char want[16];
        it = claim(q, "d");
        assert_non_null(it);
        snprintf(want, sizeof(want), "body-%d", i);
        assert_int_equal(it->id, id[i]);
        assert_string_equal((char *)it->body, want);
        assert_int_equal(it->progress, i == 1 ? 42 : 0);
        osc_queue_item_free(it);
    }
    assert_null(claim(q, "d"));
    osc_queue_close(q);
    free(path);
}

static void test_durable_across_kill(void **state)
{
    char *path = qpath("kill.queue");
    unsigned char bin[300];
    struct osc_queue *q;
    struct osc_queue_item *it;
    int pipefd[2], status;
    char ok;
    pid_t pid;

    (void)state;
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)i; /* NUL bytes included */
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct osc_queue *cq = NULL;
        close(pipefd[0]);
        if (osc_queue_open(path, 0, &cq, NULL) ||
            osc_queue_append(cq, "dest-x", OSC_RECORDS_JSON, bin, sizeof(bin), NULL, NULL))
            _exit(1);
        if (write(pipefd[1], "y", 1) != 1)
            _exit(1);
        pause(); /* killed here, the queue never closed */
        _exit(0);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &ok, 1), 1); /* append returned in the child */
    close(pipefd[0]);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    q = open_ok(path, 0);
    it = claim(q, NULL);
    assert_non_null(it);
    assert_string_equal(it->dest, "dest-x");
    assert_int_equal(it->format, OSC_RECORDS_JSON);
    assert_int_equal(it->len, sizeof(bin));
    assert_memory_equal(it->body, bin, sizeof(bin));
    osc_queue_item_free(it);
    osc_queue_close(q);
    free(path);
}

static void test_one_process(void **state)
{
    char *path = qpath("lock.queue");
    struct osc_queue *q = open_ok(path, 0), *q2 = NULL;
    struct osc_err err = {0};
    int status;
    pid_t pid;

    (void)state;
    append_str(q, "d", "x");
    assert_int_equal(osc_queue_open(path, 0, &q2, &err), OSC_EBUSY);
    assert_null(q2);
    assert_non_null(strstr(err.msg, path));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct osc_queue *cq = NULL;
        _exit(osc_queue_open(path, 0, &cq, NULL) == OSC_EBUSY ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    osc_queue_close(q);
    q = open_ok(path, 0); /* free again once closed */
    assert_int_equal(osc_queue_count(q, NULL), 1);
    osc_queue_close(q);
    free(path);
}

static void test_bad_arguments(void **state)
{
    char *path = qpath("bad.queue");
    struct osc_queue *q = open_ok(path, 0);
    struct osc_err err = {0};
    char longname[OSC_QUEUE_DEST_MAX + 2];

    (void)state;
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(osc_queue_append(q, "", OSC_RECORDS_JSONL, "x", 1, NULL, &err), OSC_EINVAL);
    assert_int_equal(osc_queue_append(q, longname, OSC_RECORDS_JSONL, "x", 1, NULL, &err),
                     OSC_EINVAL);
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_AUTO, "x", 1, NULL, &err), OSC_EINVAL);
    /* an empty body is a body */
    assert_int_equal(osc_queue_append(q, "d", OSC_RECORDS_CSV, NULL, 0, NULL, &err), 0);
    assert_int_equal(osc_queue_count(q, "d"), 1);
    osc_queue_close(q);
    free(path);
    /* a folder that does not exist */
    assert_int_equal(osc_queue_open("/nonexistent/dir/q.db", 0, &q, &err), OSC_EDB);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/q.db"));
}

struct writer {
    struct osc_queue *q;
    int n;
    int failed;
};

static void *write_many(void *ud)
{
    struct writer *w = ud;
    for (int i = 0; i < w->n; i++)
        if (osc_queue_append(w->q, "t", OSC_RECORDS_JSONL, "{}", 2, NULL, NULL))
            w->failed++;
    return NULL;
}

static void test_threads(void **state)
{
    char *path = qpath("threads.queue");
    struct osc_queue *q = open_ok(path, 0);
    struct writer w[4];
    pthread_t t[4];
    int claimed = 0;
    struct osc_queue_item *it;

    (void)state;
    for (int i = 0; i < 4; i++) {
        w[i] = (struct writer){q, 25, 0};
        assert_int_equal(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
    }
    /* claim and delete while they write */
    while (claimed < 100) {
        assert_int_equal(osc_queue_claim(q, "t", &it, NULL), 0);
        if (!it)
            continue;
        assert_int_equal(osc_queue_delete(q, it->id, NULL), 0);
        osc_queue_item_free(it);
        claimed++;
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failed, 0);
    }
    assert_int_equal(osc_queue_count(q, NULL), 0);
    assert_int_equal(osc_queue_bytes(q), 0);
    osc_queue_close(q);
    free(path);
}

static int teardown(void **state)
{
    (void)state;
    th_tmpdir_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_order_per_destination, teardown),
        cmocka_unit_test_teardown(test_bound, teardown),
        cmocka_unit_test_teardown(test_restart_redelivers, teardown),
        cmocka_unit_test_teardown(test_durable_across_kill, teardown),
        cmocka_unit_test_teardown(test_one_process, teardown),
        cmocka_unit_test_teardown(test_bad_arguments, teardown),
        cmocka_unit_test_teardown(test_threads, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
