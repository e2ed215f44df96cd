/*
 * natssrc.c - the nats source: a JetStream durable pull consumer feeding
 * the delivery engine, one thread; see source.h.
 *
 * Invariants: every fetched message sits in one slot until it is settled
 * (acked, nak'ed or term'ed) and freed; its records are offered with the
 * slot index as the tag, so their fates count down the slot's pending
 * records; a slot is settled only once all its records were offered and
 * none is pending. Slots bound the unacked messages (at most
 * max_ack_pending, at most MAX_SLOTS). Acks are flushed (one round trip)
 * after each pass that settled something, so what OfficeSpace accepted is
 * acknowledged to the server batch by batch. A message held for a third of
 * ack_wait is marked in progress, so it is not redelivered while its batch
 * waits for a retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osc/clock.h"
#include "osc/log.h"
#include "osc/nats.h"
#include "osc/records.h"
#include "osc/retry.h"
#include "source_int.h"

#define MAX_SLOTS 65536
#define FETCH_MAX 512
/*
 * A fetch returns as soon as messages are there; this is how long it waits when none are.
 * Not shorter: with libnats 3.4.1, fetches of a few ms timing out while messages stream in
 * corrupted the heap under load (seen in the bench with 5 ms: "malloc(): invalid size").
 */
#define FETCH_WAIT_MS 100
#define INFO_EVERY_MS 2000
#define TOUCH_MIN_MS  100

struct nslot {
    struct osc_nats_msg *m; /* NULL: free */
    uint32_t pending;       /* records offered, fate not known */
    uint32_t accepted, dead, retry;
    int fed;
    int64_t touched_ms; /* fetched, or last marked in progress */
};

struct nsrc {
    struct osc_nats *n;
    int64_t last_touch;
    struct nslot *slots;
    size_t nslots, used;
    size_t *free_list;
    size_t nfree;
    uint64_t rng;
    uint64_t settled; /* since the last flush */
    int64_t ack_wait_ms;
};

static void settle(struct src *s, size_t k)
{
    struct nsrc *ns = s->kind;
    struct nslot *sl = &ns->slots[k];
    struct osc_err err = {0};
    int rc;

    if (sl->retry) {
        int64_t delay = osc_retry_backoff_ms(&s->dest->retry,
                                             (unsigned)osc_nats_msg_delivered(sl->m), &ns->rng);
        rc = osc_nats_nak(sl->m, delay, &err);
    } else if (sl->dead && !sl->accepted) {
        rc = osc_nats_term(sl->m, &err);
    } else {
        rc = osc_nats_ack(sl->m, &err);
    }
    if (rc)
        OSC_LOG_WARN("source", "%s: message %llu: %s (it is redelivered after ack_wait)",
                     s->dest->name, (unsigned long long)osc_nats_msg_seq(sl->m), err.msg);
    osc_nats_msg_free(sl->m);
    memset(sl, 0, sizeof(*sl));
    ns->free_list[ns->nfree++] = k;
    ns->used--;
    ns->settled++;
}

static void on_fate(struct src *s, uint64_t tag, enum osc_delivery_fate f)
{
    struct nsrc *ns = s->kind;
    struct nslot *sl;

    if (tag >= ns->nslots || !(sl = &ns->slots[tag])->m || !sl->pending)
        return;
    sl->pending--;
    if (f == OSC_DELIVERY_ACCEPTED)
        sl->accepted++;
    else if (f == OSC_DELIVERY_DEAD_LETTERED)
        sl->dead++;
    else
        sl->retry++;
    if (!sl->pending && sl->fed)
        settle(s, (size_t)tag);
}

/* Offer the records of message m in slot k. 0, or the delivery's stop code. */
static int feed(struct src *s, struct osc_delivery *d, size_t k)
{
    struct nsrc *ns = s->kind;
    struct nslot *sl = &ns->slots[k];
    struct osc_records_reader *rd;
    struct osc_record rec;
    struct osc_err err = {0};
    size_t len = 0, skip = 0;
    const char *data = osc_nats_msg_data(sl->m, &len);
    char name[300];
    int got, rc = 0, any = 0;

    snprintf(name, sizeof(name), "nats %s #%llu", s->dest->source.stream,
             (unsigned long long)osc_nats_msg_seq(sl->m));
    /* the first character tells a JSON array from JSON Lines (the payload is not a C string) */
    while (data && skip < len &&
           (data[skip] == ' ' || data[skip] == '\t' || data[skip] == '\r' || data[skip] == '\n'))
        skip++;
    rd = osc_records_open_mem(
        data ? data : "", len, name,
        data && skip < len && data[skip] == '[' ? OSC_RECORDS_JSON : OSC_RECORDS_JSONL, &err);
    if (!rd)
        return OSC_ENOMEM;
    while ((got = osc_records_next(rd, &rec, &err)) == 1 || got == OSC_EDATA) {
        any = 1;
        atomic_fetch_add(&s->n_in, 1);
        sl->pending++;
        rc = got == 1 ? osc_delivery_add_tagged(d, &rec, k)
                      : osc_delivery_malformed_tagged(d, &rec, err.msg, k);
        if (rc)
            break;
    }
    osc_records_close(rd);
    if (rc == 0 && got < 0 && got != OSC_EDATA)
        rc = got;
    if (rc == 0 && !any) {
        /* an empty message holds no record: nothing to deliver, nothing to redeliver */
        OSC_LOG_WARN("source", "%s: %s is empty; terminated", s->dest->name, name);
        sl->dead++;
    }
    if (rc)
        sl->retry++; /* not all of it was offered: it comes back */
    sl->fed = 1;
    if (!sl->pending)
        settle(s, k);
    return rc;
}

/* Mark the messages held long in progress, so the server does not hand them to another instance. */
static void touch_old(struct nsrc *ns, int64_t now)
{
    int64_t limit = ns->ack_wait_ms / 3;

    for (size_t k = 0; k < ns->nslots; k++) {
        struct nslot *sl = &ns->slots[k];
        if (sl->m && now - sl->touched_ms >= limit) {
            osc_nats_in_progress(sl->m, NULL);
            sl->touched_ms = now;
        }
    }
}

/* A delivery going away: its unsettled messages come back at once (or after delay_ms). */
static void release_all(struct src *s, int64_t delay_ms)
{
    struct nsrc *ns = s->kind;

    for (size_t k = 0; k < ns->nslots; k++) {
        struct nslot *sl = &ns->slots[k];
        if (!sl->m)
            continue;
        osc_nats_nak(sl->m, delay_ms, NULL);
        osc_nats_msg_free(sl->m);
        memset(sl, 0, sizeof(*sl));
        ns->free_list[ns->nfree++] = k;
        ns->used--;
    }
}

/* While the delivery waits (a full window, a retry): keep the held messages ours. */
static void on_tick(struct src *s)
{
    struct nsrc *ns = s->kind;
    int64_t now = osc_clock_mono_ms(NULL);

    /* checked every sixth of ack_wait, touched from a third: nothing waits half of it */
    if (now - ns->last_touch >=
        (ns->ack_wait_ms / 6 > TOUCH_MIN_MS ? ns->ack_wait_ms / 6 : TOUCH_MIN_MS)) {
        touch_old(ns, now);
        ns->last_touch = now;
    }
}

static void flush_acks(struct src *s)
{
    struct nsrc *ns = s->kind;
    struct osc_err err = {0};

    if (!ns->settled)
        return;
    if (osc_nats_flush(ns->n, 2000, &err))
        OSC_LOG_WARN("source", "%s: %s", s->dest->name, err.msg);
    ns->settled = 0;
}

static void drain(struct src *s, struct osc_delivery *d)
{
    int64_t end = osc_clock_mono_ms(NULL) + SRC_STOP_GRACE_MS;

    while (osc_delivery_poll(d, 50) > 0 && osc_clock_mono_ms(NULL) < end)
        ;
    flush_acks(s);
}

static int open_consumer(struct src *s, struct osc_err *err)
{
    const struct osc_conf_source *c = &s->dest->source;
    struct nsrc *ns = s->kind;
    struct osc_nats_opts o;
    char durable[300], conn_name[300], host[128] = "?";
    size_t i;

    memset(&o, 0, sizeof(o));
    if (c->durable) {
        snprintf(durable, sizeof(durable), "%s", c->durable);
    } else {
        /* a name JetStream takes: the destination's, with separators replaced */
        snprintf(durable, sizeof(durable), "osconnect_%s", s->dest->name);
        for (i = 0; durable[i]; i++)
            if (strchr(".*> \t/\\", durable[i]) || (unsigned char)durable[i] < 0x20)
                durable[i] = '_';
    }
    gethostname(host, sizeof(host) - 1);
    snprintf(conn_name, sizeof(conn_name), "osconnect %s pid %ld (%s)", host, (long)getpid(),
             s->dest->name);
    o.conn.url = c->url;
    o.conn.creds_file = c->creds_file;
    o.conn.token = c->token;
    o.conn.ca_file = c->ca_file;
    o.conn.no_verify_tls = !c->verify_tls;
    o.conn.name = conn_name;
    o.conn.connect_timeout_ms = 2000;
    o.stream = c->stream;
    o.subject = c->subject;
    o.durable = durable;
    o.create_stream = c->subject != NULL;
    o.ack_wait_ms = c->ack_wait_ms;
    o.max_ack_pending = c->max_ack_pending;
    return osc_nats_open(&o, &ns->n, err);
}

void *src_nats_main(void *arg)
{
    struct src *s = arg;
    struct nsrc *ns = calloc(1, sizeof(*ns));
    struct osc_delivery *d = NULL;
    struct osc_nats_msg *batch[FETCH_MAX];
    unsigned failures = 0;
    int64_t last_info = 0;

    src_beat(s);
    if (ns) {
        ns->nslots = s->dest->source.max_ack_pending < MAX_SLOTS
                         ? (size_t)s->dest->source.max_ack_pending
                         : MAX_SLOTS;
        ns->slots = calloc(ns->nslots, sizeof(*ns->slots));
        ns->free_list = calloc(ns->nslots, sizeof(*ns->free_list));
        s->kind = ns;
    }
    if (!ns || !ns->slots || !ns->free_list) {
        src_set_state(s, 0, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < ns->nslots; k++)
        ns->free_list[ns->nfree++] = ns->nslots - 1 - k;
    ns->rng = (uint64_t)osc_clock_wall_ms(NULL) | 1;
    ns->ack_wait_ms = s->dest->source.ack_wait_ms;
    s->fate = on_fate;
    s->tick = on_tick;

    while (!src_stopping(s)) {
        struct osc_delivery_opts o;
        struct osc_delivery_stats st;
        struct osc_err err = {0};
        size_t got = 0, room;
        int stopped = 0, rc;
        int64_t now;

        src_beat(s);
        if (!ns->n) {
            if ((rc = open_consumer(s, &err))) {
                src_set_state(s, 0, "%s", err.msg);
                src_nap(s, src_backoff_ms(++failures));
                continue;
            }
            src_set_state(s, 1, "consuming stream %s", s->dest->source.stream);
        }
        if (!d) {
            src_delivery_opts(s, 1, &o);
            if (!(d = osc_delivery_new(s->cfg, s->dest->name, &o, &err))) {
                src_set_state(s, 0, "%s", err.msg);
                src_nap(s, src_backoff_ms(++failures));
                continue;
            }
        }
        osc_delivery_poll(d, 0);
        flush_acks(s);
        room = ns->nfree < FETCH_MAX ? ns->nfree : FETCH_MAX;
        if (room) {
            rc = osc_nats_fetch(ns->n, batch, room, FETCH_WAIT_MS, &got, &err);
            if (rc == OSC_EUNAVAIL) {
                src_set_state(s, 0, "%s", err.msg);
                osc_delivery_poll(d, 100);
                continue;
            }
            if (rc) {
                /* the consumer is gone (deleted) or JetStream failed: bind again */
                src_set_state(s, 0, "%s", err.msg);
                release_all(s, 0);
                osc_nats_close(ns->n);
                ns->n = NULL;
                src_nap(s, src_backoff_ms(++failures));
                continue;
            }
        } else {
            osc_delivery_poll(d, 20);
        }
        now = osc_clock_mono_ms(NULL);
        for (size_t i = 0; i < got; i++) {
            size_t k = ns->free_list[--ns->nfree];
            ns->used++;
            ns->slots[k].m = batch[i];
            ns->slots[k].touched_ms = now;
            if (stopped) {
                /* the delivery stopped: take nothing more now */
                ns->slots[k].retry = 1;
                ns->slots[k].fed = 1;
                settle(s, k);
                continue;
            }
            if ((rc = feed(s, d, k)))
                stopped = rc;
        }
        osc_delivery_get_stats(d, &st);
        if (stopped || st.auth_failed || st.fatal || st.dead_letter_error) {
            int64_t back = src_backoff_ms(failures + 1);
            src_set_state(s, 0, "%s; unacknowledged messages come back in %.0fs",
                          st.auth_failed ? "OfficeSpace refused the API key"
                          : st.fatal     ? "a permanent transport error stopped the delivery"
                          : st.dead_letter_error ? "the dead-letter file cannot be written"
                                                 : osc_strerror(stopped),
                          (double)back / 1000.0);
            drain(s, d);
            osc_delivery_free(d);
            d = NULL;
            release_all(s, back);
            flush_acks(s);
            src_nap(s, src_backoff_ms(++failures));
            continue;
        }
        failures = 0;
        src_set_state(s, 1, "consuming stream %s", s->dest->source.stream);
        on_tick(s);
        if (now - last_info >= INFO_EVERY_MS) {
            struct osc_nats_info info;
            if (osc_nats_info(ns->n, &info, NULL) == 0)
                atomic_store(&s->depth, (int_fast64_t)info.num_pending);
            last_info = now;
        }
    }
out:
    if (d) {
        drain(s, d);
        osc_delivery_free(d);
    }
    if (ns) {
        if (ns->slots && ns->free_list)
            release_all(s, 0);
        osc_nats_close(ns->n);
        free(ns->slots);
        free(ns->free_list);
        free(ns);
    }
    s->kind = NULL;
    s->fate = NULL;
    s->tick = NULL;
    src_set_state(s, 0, "stopped");
    return NULL;
}
