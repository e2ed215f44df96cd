/*
 * test_nats_cluster.c - the JetStream source on a 3-node nats-server
 * cluster: an R3 stream and its durable keep working when the node that
 * leads the stream is SIGKILLed mid-stream.
 *
 * 150 messages: 50 fetched and acked before the kill, 50 after it, and 50
 * more published after it. Every sequence must arrive (at least once: a
 * message whose ack was lost in the failover may come twice) and, once all
 * are acked, nothing may stay pending. Errors while the cluster elects new
 * leaders (connection down, no answer) are tolerated until a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "natsserver.h"
#include "osc/nats.h"

#define TOTAL 150

static struct th_nats_cluster cluster;
static unsigned seen[TOTAL + 1];

/* The node leading stream, asked through libnats directly (osc_nats does not expose it). */
static int stream_leader(const char *stream)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    int idx = -1;

    if (natsConnection_ConnectTo(&nc, cluster.urls) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK && si->Cluster)
        idx = th_nats_cluster_index(&cluster, si->Cluster->Leader);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return idx;
}

/* Publish seqs [from, to) (bodies "m-<i>"), retrying through a failover. */
static void publish_range(struct osc_nats *n, int from, int to)
{
    long deadline = th_now_ms() + 60000;
    char body[32];

    for (int i = from; i < to; i++) {
        struct osc_err err = {0};
        int len = snprintf(body, sizeof(body), "m-%d", i);
        while (osc_nats_publish(n, "CL.x", body, (size_t)len, NULL, &err) != 0) {
            if (th_now_ms() > deadline)
                fail_msg("publish %d: %s", i, err.msg);
            th_nap_ms(200);
        }
    }
}

/* Fetch and ack until `until` distinct sequences were seen; returns the errors tolerated. */
static int consume_until(struct osc_nats *n, int until, long deadline_ms)
{
    long deadline = th_now_ms() + deadline_ms;
    int distinct = 0, errors = 0;

    for (int s = 1; s <= TOTAL; s++)
        distinct += seen[s] > 0;
    while (distinct < until) {
        struct osc_nats_msg *batch[20];
        struct osc_err err = {0};
        size_t got = 0;
        if (th_now_ms() > deadline)
            fail_msg("only %d of %d messages after %ld ms (%d errors, last: %s)", distinct, until,
                     deadline_ms, errors, err.msg);
        if (osc_nats_fetch(n, batch, 20, 1000, &got, &err) != 0) {
            errors++;
            th_nap_ms(200);
            continue;
        }
        for (size_t i = 0; i < got; i++) {
            uint64_t seq = osc_nats_msg_seq(batch[i]);
            assert_true(seq >= 1 && seq <= TOTAL);
            if (seen[seq]++ == 0)
                distinct++;
            osc_nats_ack(batch[i], NULL);
            osc_nats_msg_free(batch[i]);
        }
    }
    return errors;
}

static void test_failover(void **state)
{
    struct osc_nats_opts o;
    struct osc_nats *n = NULL;
    struct osc_err err = {0};
    struct osc_nats_info info;
    int leader, dup = 0, errors;
    long deadline;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.conn.url = cluster.urls;
    o.stream = "CL";
    o.subject = "CL.>";
    o.durable = "d";
    o.create_stream = 1;
    o.replicas = 3;
    o.ack_wait_ms = 2000;
    if (osc_nats_open(&o, &n, &err))
        fail_msg("open: %s", err.msg);
    publish_range(n, 0, 100);
    consume_until(n, 50, 60000);
    assert_int_equal(osc_nats_flush(n, 5000, &err), 0);

    leader = stream_leader("CL");
    assert_true(leader >= 0);
    {
        char url[256] = "";
        osc_nats_connected_url(n, url, sizeof(url));
        print_message("killing %s (%s), the leader of stream CL; the source is on %s\n",
                      cluster.node[leader].name, cluster.node[leader].url, url);
    }
    th_nats_kill(&cluster.node[leader]);
    assert_int_equal(th_nats_cluster_wait_leader(&cluster, 30000), 0);

    errors = consume_until(n, 100, 90000);
    publish_range(n, 100, TOTAL);
    errors += consume_until(n, TOTAL, 90000);
    for (int s = 1; s <= TOTAL; s++)
        dup += seen[s] > 1;
    print_message("all %d messages after the kill; %d redelivered, %d fetch errors on the way\n",
                  TOTAL, dup, errors);

    /* every ack reached the new leaders: nothing pending */
    deadline = th_now_ms() + 30000;
    for (;;) {
        osc_nats_flush(n, 2000, NULL);
        if (osc_nats_info(n, &info, &err) == 0 && info.num_ack_pending == 0 &&
            info.num_pending == 0)
            break;
        if (th_now_ms() > deadline)
            fail_msg("still pending after the failover: ack_pending %lld, pending %llu (%s)",
                     (long long)info.num_ack_pending, (unsigned long long)info.num_pending,
                     err.msg);
        consume_until(n, TOTAL, 10000); /* take redeliveries of lost acks */
        th_nap_ms(500);
    }
    osc_nats_close(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover),
    };
    int failed;

    if (th_nats_cluster_start(&cluster) != 0) {
        fprintf(stderr, "test_nats_cluster: the 3-node cluster did not start\n");
        return 1;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    th_nats_cluster_stop(&cluster);
    th_tmpdir_cleanup();
    return failed;
}
