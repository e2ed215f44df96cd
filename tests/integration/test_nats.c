/*
 * test_nats.c - the JetStream pull-consumer source (src/stream/nats.c)
 * against a real `nats-server -js` started by this test on 127.0.0.1.
 *
 * Cases: 1,000 messages fetched and acked exactly once; a consumer that
 * closes without acking, and a consumer process SIGKILLed while holding
 * messages (this binary re-run with --child-fetch): the messages are
 * redelivered to the next consumer on the same durable after ack_wait; two
 * consumers on one durable never get the same message; nak with a delay
 * redelivers (not before the delay); term never redelivers; in-progress
 * holds a message past ack_wait; max_ack_pending stops delivery until
 * acks; close detaches unfreed messages; a changed ack_wait /
 * max_ack_pending / max_deliver updates the consumer; clear errors for an
 * unreachable server, a missing stream, refused credentials (the token
 * never in the message), a filter mismatch, bad names, unreadable files
 * and TLS (with and without ca_file).
 *
 * Each case uses its own stream. Redelivery timing is only checked from
 * below (never before ack_wait / the nak delay), which a slow machine
 * cannot break.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "natsserver.h"
#include "osc/nats.h"

#define TOKEN "nats-token-SECRET-0123456789"

static struct th_nats server;
static const char *self_path; /* argv[0]: re-run as a consumer process that gets SIGKILLed */

static int group_setup(void **state)
{
    (void)state;
    return th_nats_start(&server, NULL);
}

static struct osc_nats_opts opts_for(const char *stream, const char *durable)
{
    static char subject[64];
    struct osc_nats_opts o;

    memset(&o, 0, sizeof(o));
    snprintf(subject, sizeof(subject), "%s.>", stream);
    o.conn.url = server.url;
    o.stream = stream;
    o.subject = subject;
    o.durable = durable;
    o.create_stream = 1;
    o.ack_wait_ms = 1000;
    return o;
}

static struct osc_nats *open_ok(const struct osc_nats_opts *o)
{
    struct osc_nats *n = NULL;
    struct osc_err err = {0};
    int rc = osc_nats_open(o, &n, &err);
    if (rc)
        fail_msg("osc_nats_open: %s", err.msg);
    return n;
}

static void publish_n(struct osc_nats *n, const char *subject, int count)
{
    struct osc_err err = {0};
    char body[64];

    for (int i = 0; i < count; i++) {
        int len = snprintf(body, sizeof(body), "msg-%d", i);
        assert_int_equal(osc_nats_publish_async(n, subject, body, (size_t)len, &err), 0);
    }
    if (osc_nats_publish_wait(n, 30000, &err))
        fail_msg("publish_wait: %s", err.msg);
}

/* Fetch until want messages arrived (or deadline_ms passed); returns how many. */
static size_t fetch_until(struct osc_nats *n, struct osc_nats_msg **msgs, size_t want,
                          long deadline_ms)
{
    size_t have = 0;
    long deadline = th_now_ms() + deadline_ms;

    while (have < want && th_now_ms() < deadline) {
        size_t got = 0;
        struct osc_err err = {0};
        int rc = osc_nats_fetch(n, msgs + have, want - have, 1000, &got, &err);
        if (rc)
            fail_msg("fetch: %s", err.msg);
        have += got;
    }
    return have;
}

static void test_thousand_once(void **state)
{
    struct osc_nats_opts o = opts_for("T1000", "d");
    struct osc_nats *n;
    struct osc_nats_msg *batch[100];
    struct osc_nats_info info;
    struct osc_err err = {0};
    static unsigned char seen[1001];
    size_t total = 0, got = 0;
    long deadline;

    (void)state;
    n = open_ok(&o);
    publish_n(n, "T1000.x", 1000);
    deadline = th_now_ms() + 60000;
    while (total < 1000 && th_now_ms() < deadline) {
        assert_int_equal(osc_nats_fetch(n, batch, 100, 2000, &got, &err), 0);
        for (size_t i = 0; i < got; i++) {
            size_t len;
            const char *data = osc_nats_msg_data(batch[i], &len);
            uint64_t seq = osc_nats_msg_seq(batch[i]);
            char want[32];
            assert_true(seq >= 1 && seq <= 1000);
            assert_false(seen[seq]);
            seen[seq] = 1;
            snprintf(want, sizeof(want), "msg-%llu", (unsigned long long)(seq - 1));
            assert_int_equal(len, strlen(want));
            assert_memory_equal(data, want, len);
            assert_string_equal(osc_nats_msg_subject(batch[i]), "T1000.x");
            assert_int_equal(osc_nats_msg_delivered(batch[i]), 1);
            assert_int_equal(osc_nats_ack(batch[i], &err), 0);
        }
        total += got;
        assert_int_equal(osc_nats_outstanding(n), got);
        for (size_t i = 0; i < got; i++)
            osc_nats_msg_free(batch[i]);
        assert_int_equal(osc_nats_outstanding(n), 0);
    }
    assert_int_equal(total, 1000);
    assert_int_equal(osc_nats_flush(n, 5000, &err), 0);
    /* longer than ack_wait: nothing may come back */
    assert_int_equal(osc_nats_fetch(n, batch, 100, 2500, &got, &err), 0);
    assert_int_equal(got, 0);
    assert_int_equal(osc_nats_info(n, &info, &err), 0);
    assert_int_equal(info.num_ack_pending, 0);
    assert_int_equal(info.num_redelivered, 0);
    assert_int_equal(info.num_pending, 0);
    assert_int_equal(info.ack_floor_seq, 1000);
    assert_int_equal(info.delivered_seq, 1000);
    osc_nats_close(n);
}

static void test_redelivered_after_consumer_dies(void **state)
{
    struct osc_nats_opts o = opts_for("TDIE", "shared");
    struct osc_nats *a, *b;
    struct osc_nats_msg *msgs[10], *kept;
    struct osc_err err = {0};
    uint64_t first_seqs = 0, second_seqs = 0;
    size_t len;
    long fetched_at;

    (void)state;
    a = open_ok(&o);
    publish_n(a, "TDIE.x", 10);
    assert_int_equal(fetch_until(a, msgs, 10, 20000), 10);
    fetched_at = th_now_ms();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(osc_nats_msg_delivered(msgs[i]), 1);
        first_seqs += osc_nats_msg_seq(msgs[i]);
    }
    /* free nine unacked, keep one across the close: it must be detached, not dangling */
    for (int i = 0; i < 9; i++)
        osc_nats_msg_free(msgs[i]);
    kept = msgs[9];
    osc_nats_close(a); /* the consumer "disappears" */
    assert_null(osc_nats_msg_data(kept, &len));
    assert_int_equal(len, 0);
    assert_int_equal(osc_nats_ack(kept, &err), OSC_EINVAL);
    osc_nats_msg_free(kept);

    b = open_ok(&o);
    assert_int_equal(fetch_until(b, msgs, 10, 30000), 10);
    assert_true(th_now_ms() - fetched_at >= 1000); /* not before ack_wait */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(osc_nats_msg_delivered(msgs[i]), 2);
        second_seqs += osc_nats_msg_seq(msgs[i]);
        assert_int_equal(osc_nats_ack(msgs[i], &err), 0);
        osc_nats_msg_free(msgs[i]);
    }
    assert_int_equal(first_seqs, second_seqs);
    assert_int_equal(osc_nats_flush(b, 5000, &err), 0);
    osc_nats_close(b);
}

/* Child mode: open the durable, fetch n, say "fetched", wait to be killed. */
static int child_fetch(const char *url, const char *stream, int n)
{
    struct osc_nats_opts o = opts_for(stream, "shared");
    struct osc_nats_msg *msgs[64];
    struct osc_nats *src = NULL;
    int have = 0;

    o.conn.url = url;
    if (n > 64 || osc_nats_open(&o, &src, NULL))
        return 1;
    while (have < n) {
        size_t got = 0;
        if (osc_nats_fetch(src, msgs + have, (size_t)(n - have), 1000, &got, NULL))
            return 1;
        have += (int)got;
    }
    printf("fetched %d\n", have);
    fflush(stdout);
    for (;;)
        pause();
}

static void test_redelivered_after_consumer_killed(void **state)
{
    struct osc_nats_opts o = opts_for("TKILL", "shared");
    struct osc_nats *n;
    struct osc_nats_msg *msgs[10];
    struct osc_err err = {0};
    char line[64] = "";
    int out[2], status;
    pid_t pid;

    (void)state;
    n = open_ok(&o); /* creates the stream and the durable */
    publish_n(n, "TKILL.x", 10);
    assert_int_equal(pipe(out), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(self_path, self_path, "--child-fetch", server.url, "TKILL", "10", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    {
        struct pollfd p = {out[0], POLLIN, 0};
        assert_true(poll(&p, 1, 30000) == 1);
        assert_true(read(out[0], line, sizeof(line) - 1) > 0);
    }
    close(out[0]);
    assert_string_equal(line, "fetched 10\n");
    kill(pid, SIGKILL); /* the consumer dies holding 10 unacked messages */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    assert_int_equal(fetch_until(n, msgs, 10, 30000), 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(osc_nats_msg_delivered(msgs[i]), 2); /* the child had them first */
        assert_int_equal(osc_nats_ack(msgs[i], &err), 0);
        osc_nats_msg_free(msgs[i]);
    }
    osc_nats_close(n);
}

/* Two consumers on one durable (two instances): each message goes to one of them. */
static void test_two_consumers_share(void **state)
{
    const char *subjects[] = {"TSHARE.>"};
    struct osc_nats_opts o = opts_for("TSHARE", "shared");
    struct osc_nats *a, *b;
    struct osc_nats_msg *batch[25];
    struct osc_err err = {0};
    static unsigned char seen[201];
    size_t total = 0, from_a = 0, from_b = 0;
    long deadline;

    (void)state;
    o.subject = NULL; /* no filter: every subject of the stream */
    o.subjects = subjects;
    o.nsubjects = 1;
    o.ack_wait_ms = 30000;
    a = open_ok(&o);
    b = open_ok(&o);
    publish_n(a, "TSHARE.a", 100);
    publish_n(b, "TSHARE.b", 100);
    deadline = th_now_ms() + 60000;
    for (int turn = 0; total < 200 && th_now_ms() < deadline; turn++) {
        struct osc_nats *src = turn % 2 ? b : a;
        size_t got = 0;
        assert_int_equal(osc_nats_fetch(src, batch, 25, 1000, &got, &err), 0);
        for (size_t i = 0; i < got; i++) {
            uint64_t seq = osc_nats_msg_seq(batch[i]);
            assert_true(seq >= 1 && seq <= 200);
            assert_false(seen[seq]); /* never to both */
            seen[seq] = 1;
            assert_int_equal(osc_nats_msg_delivered(batch[i]), 1);
            assert_int_equal(osc_nats_ack(batch[i], &err), 0);
            osc_nats_msg_free(batch[i]);
        }
        total += got;
        if (src == a)
            from_a += got;
        else
            from_b += got;
    }
    assert_int_equal(total, 200);
    assert_true(from_a > 0 && from_b > 0);
    osc_nats_close(a);
    osc_nats_close(b);
}

static void test_nak_with_delay(void **state)
{
    struct osc_nats_opts o = opts_for("TNAK", "d");
    struct osc_nats *n;
    struct osc_nats_msg *m;
    struct osc_err err = {0};
    long naked_at;

    (void)state;
    o.ack_wait_ms = 30000; /* only the nak can bring it back */
    n = open_ok(&o);
    publish_n(n, "TNAK.x", 1);
    assert_int_equal(fetch_until(n, &m, 1, 20000), 1);
    naked_at = th_now_ms();
    assert_int_equal(osc_nats_nak(m, 1500, &err), 0);
    osc_nats_msg_free(m);
    assert_int_equal(fetch_until(n, &m, 1, 20000), 1);
    assert_true(th_now_ms() - naked_at >= 1400);
    assert_int_equal(osc_nats_msg_delivered(m), 2);
    assert_int_equal(osc_nats_msg_seq(m), 1);
    /* nak without delay: back at once (well within ack_wait) */
    assert_int_equal(osc_nats_nak(m, 0, &err), 0);
    osc_nats_msg_free(m);
    assert_int_equal(fetch_until(n, &m, 1, 20000), 1);
    assert_int_equal(osc_nats_msg_delivered(m), 3);
    assert_int_equal(osc_nats_ack(m, &err), 0);
    assert_int_equal(osc_nats_nak(m, 0, &err), 0); /* settled already: a no-op */
    osc_nats_msg_free(m);
    osc_nats_close(n);
}

static void test_term_never_redelivers(void **state)
{
    struct osc_nats_opts o = opts_for("TTERM", "d");
    struct osc_nats *n;
    struct osc_nats_msg *m[2];
    struct osc_nats_info info;
    struct osc_err err = {0};
    size_t got = 0;

    (void)state;
    n = open_ok(&o);
    publish_n(n, "TTERM.x", 2);
    assert_int_equal(fetch_until(n, m, 2, 20000), 2);
    assert_int_equal(osc_nats_term(m[0], &err), 0);
    assert_int_equal(osc_nats_ack(m[1], &err), 0);
    osc_nats_msg_free(m[0]);
    osc_nats_msg_free(m[1]);
    assert_int_equal(osc_nats_flush(n, 5000, &err), 0);
    assert_int_equal(osc_nats_fetch(n, m, 2, 2500, &got, &err), 0); /* > ack_wait */
    assert_int_equal(got, 0);
    assert_int_equal(osc_nats_info(n, &info, &err), 0);
    assert_int_equal(info.num_ack_pending, 0);
    assert_int_equal(info.ack_floor_seq, 2);
    osc_nats_close(n);
}

static void test_in_progress_holds(void **state)
{
    struct osc_nats_opts o = opts_for("TWIP", "d");
    struct osc_nats *n;
    struct osc_nats_msg *m, *other;
    struct osc_err err = {0};
    long start;

    (void)state;
    o.ack_wait_ms = 3000;
    n = open_ok(&o);
    publish_n(n, "TWIP.x", 1);
    assert_int_equal(fetch_until(n, &m, 1, 20000), 1);
    start = th_now_ms();
    /* hold it for twice ack_wait, telling the server every 300 ms */
    while (th_now_ms() - start < 6000) {
        size_t got = 0;
        assert_int_equal(osc_nats_in_progress(m, &err), 0);
        assert_int_equal(osc_nats_fetch(n, &other, 1, 300, &got, &err), 0);
        assert_int_equal(got, 0);
    }
    assert_int_equal(osc_nats_ack(m, &err), 0);
    osc_nats_msg_free(m);
    osc_nats_close(n);
}

static void test_max_ack_pending(void **state)
{
    struct osc_nats_opts o = opts_for("TMAP", "d");
    struct osc_nats *n;
    struct osc_nats_msg *m[10];
    struct osc_err err = {0};
    size_t got = 0;

    (void)state;
    o.max_ack_pending = 4;
    o.ack_wait_ms = 30000;
    n = open_ok(&o);
    publish_n(n, "TMAP.x", 8);
    assert_int_equal(fetch_until(n, m, 4, 20000), 4);
    assert_int_equal(osc_nats_fetch(n, m + 4, 4, 1000, &got, &err), 0);
    assert_int_equal(got, 0); /* four unacked: the server holds the rest */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(osc_nats_ack(m[i], &err), 0);
        osc_nats_msg_free(m[i]);
    }
    assert_int_equal(fetch_until(n, m, 4, 20000), 4);
    for (int i = 0; i < 4; i++) {
        assert_true(osc_nats_msg_seq(m[i]) > 4);
        assert_int_equal(osc_nats_ack(m[i], &err), 0);
        osc_nats_msg_free(m[i]);
    }
    osc_nats_close(n);
}

static void test_unreachable(void **state)
{
    struct osc_nats_opts o = opts_for("TX", "d");
    struct osc_nats *n = NULL;
    struct osc_err err = {0};

    (void)state;
    o.conn.url = "nats://127.0.0.1:1, nats://user:pw-in-url@127.0.0.1:2";
    o.conn.connect_timeout_ms = 1000;
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_EUNAVAIL);
    print_message("%s\n", err.msg);
    assert_null(n);
    assert_non_null(strstr(err.msg, "unreachable"));
    assert_non_null(strstr(err.msg, "nats://127.0.0.1:1"));
    assert_null(strstr(err.msg, "pw-in-url"));
}

static void test_stream_missing(void **state)
{
    struct osc_nats_opts o = opts_for("NOSUCH", "d");
    struct osc_nats *n = NULL;
    struct osc_err err = {0};

    (void)state;
    o.create_stream = 0;
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_ENOTFOUND);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "\"NOSUCH\" does not exist"));
}

static void test_bad_names_and_files(void **state)
{
    struct osc_nats_opts o = opts_for("TBAD", "bad.name");
    struct osc_nats *n = NULL;
    struct osc_err err = {0};

    (void)state;
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_EINVAL);
    assert_non_null(strstr(err.msg, "bad.name"));
    o = opts_for("TBAD", "d");
    o.conn.creds_file = "/nonexistent/user.creds";
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_ENOINPUT);
    assert_non_null(strstr(err.msg, "/nonexistent/user.creds"));
    o = opts_for("TBAD", "d");
    o.conn.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_ENOINPUT);
    assert_null(n);
}

static void test_filter_mismatch(void **state)
{
    struct osc_nats_opts o = opts_for("TFLT", "d");
    struct osc_nats_info info;
    struct osc_nats *n;
    struct osc_err err = {0};

    (void)state;
    n = open_ok(&o); /* creates the consumer filtering TFLT.> */
    osc_nats_close(n);
    /* other ack_wait / max_ack_pending / max_deliver: the consumer is updated */
    o.ack_wait_ms = 7000;
    o.max_ack_pending = 77;
    o.max_deliver = 5;
    n = open_ok(&o);
    assert_int_equal(osc_nats_info(n, &info, &err), 0);
    assert_int_equal(info.ack_wait_ms, 7000);
    assert_int_equal(info.max_ack_pending, 77);
    assert_int_equal(info.max_deliver, 5);
    osc_nats_close(n);
    n = NULL;
    o.subject = "TFLT.other";
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_ECONFIG);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "TFLT.other"));
    assert_null(n);
}

static void test_publish_only_handle(void **state)
{
    struct osc_nats_opts o = opts_for("TPUB", NULL);
    struct osc_nats *n;
    struct osc_nats_msg *m;
    struct osc_err err = {0};
    uint64_t seq = 0;
    size_t got = 5;

    (void)state;
    n = open_ok(&o);
    assert_int_equal(osc_nats_publish(n, "TPUB.a", "x", 1, &seq, &err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(osc_nats_fetch(n, &m, 1, 100, &got, &err), OSC_EINVAL);
    assert_int_equal(got, 0);
    /* no stream takes this subject */
    assert_int_equal(osc_nats_publish_async(n, "nobody.listens", "x", 1, &err), 0);
    assert_int_equal(osc_nats_publish_wait(n, 10000, &err), OSC_EIO);
    assert_non_null(strstr(err.msg, "1 JetStream publishes failed"));
    assert_int_not_equal(osc_nats_publish(n, "nobody.listens", "x", 1, &seq, &err), 0);
    osc_nats_close(n);
}

static void test_auth(void **state)
{
    const char *extra[] = {"--auth", TOKEN, NULL};
    struct th_nats secured;
    struct osc_nats_opts o;
    struct osc_nats *n = NULL;
    struct osc_err err = {0};

    (void)state;
    assert_int_equal(th_nats_start(&secured, extra), 0);
    o = opts_for("TAUTH", "d");
    o.conn.url = secured.url;
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_EAUTH);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "refused the credentials"));
    o.conn.token = "nats-token-WRONG-000000000000";
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_EAUTH);
    assert_null(strstr(err.msg, "WRONG"));
    assert_null(n);
    o.conn.token = TOKEN;
    n = open_ok(&o);
    osc_nats_close(n);
    assert_int_equal(th_nats_stop(&secured), 0);
}

/* A CA and a server certificate for 127.0.0.1, made with the openssl CLI. */
static int make_certs(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=osc-test-ca "
             "-keyout ca.key -out ca.pem >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr "
             ">/dev/null 2>&1 && printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile ext.cnf -out srv.pem >/dev/null 2>&1",
             dir);
    return system(cmd);
}

static void test_tls(void **state)
{
    char dir[512], cert[600], key[600], ca[600], tlsurl[160], plainurl[160];
    struct th_nats secured;
    struct osc_nats_opts o;
    struct osc_nats *n = NULL;
    struct osc_err err = {0};
    const char *port;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/tls", th_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(make_certs(dir), 0);
    snprintf(cert, sizeof(cert), "%s/srv.pem", dir);
    snprintf(key, sizeof(key), "%s/srv.key", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    {
        const char *extra[] = {"--tls", "--tlscert", cert, "--tlskey", key, NULL};
        assert_int_equal(th_nats_start(&secured, extra), 0);
    }
    port = strrchr(secured.url, ':') + 1;
    snprintf(tlsurl, sizeof(tlsurl), "tls://127.0.0.1:%s", port);
    snprintf(plainurl, sizeof(plainurl), "nats://127.0.0.1:%s", port);
    o = opts_for("TTLS", "d");
    o.conn.connect_timeout_ms = 3000;
    /* no CA that knows the server's certificate */
    o.conn.url = tlsurl;
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_ETRANSPORT);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "TLS"));
    /* TLS required by the server, nats:// URL: libnats follows the server into TLS */
    o.conn.url = plainurl;
    assert_int_equal(osc_nats_open(&o, &n, &err), OSC_ETRANSPORT);
    print_message("%s\n", err.msg);
    assert_null(n);
    /* no CA, verification off */
    o.conn.no_verify_tls = 1;
    n = open_ok(&o);
    osc_nats_close(n);
    o.conn.no_verify_tls = 0;
    o.conn.url = tlsurl;
    o.conn.ca_file = ca;
    n = open_ok(&o);
    osc_nats_close(n);
    /* a nats:// URL with ca_file works too */
    o.conn.url = plainurl;
    n = open_ok(&o);
    osc_nats_close(n);
    assert_int_equal(th_nats_stop(&secured), 0);
    /* verification off does not force TLS on a server without it */
    o = opts_for("TPLAIN", "d");
    o.conn.no_verify_tls = 1;
    n = open_ok(&o);
    osc_nats_close(n);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_once),
        cmocka_unit_test(test_redelivered_after_consumer_dies),
        cmocka_unit_test(test_redelivered_after_consumer_killed),
        cmocka_unit_test(test_two_consumers_share),
        cmocka_unit_test(test_nak_with_delay),
        cmocka_unit_test(test_term_never_redelivers),
        cmocka_unit_test(test_in_progress_holds),
        cmocka_unit_test(test_max_ack_pending),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_stream_missing),
        cmocka_unit_test(test_bad_names_and_files),
        cmocka_unit_test(test_filter_mismatch),
        cmocka_unit_test(test_publish_only_handle),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_tls),
    };
    int failed;

    self_path = argv[0];
    if (argc == 5 && strcmp(argv[1], "--child-fetch") == 0)
        return child_fetch(argv[2], argv[3], (int)strtol(argv[4], NULL, 10));
    failed = cmocka_run_group_tests(tests, group_setup, NULL);

    if (server.pid > 0 && th_nats_stop(&server) != 0)
        failed++;
    th_tmpdir_cleanup();
    return failed;
}
