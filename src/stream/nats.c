/*
 * nats.c - the JetStream durable pull-consumer source; see nats.h.
 *
 * Invariants: every message handed out by osc_nats_fetch() is on the
 * source's outstanding list (under mu) until osc_nats_msg_free(); close
 * detaches the list before destroying the subscription, because a libnats
 * message acks through a raw pointer to its subscription. The consumer is
 * created and updated here (js_AddConsumer / js_UpdateConsumer) and the
 * subscription only binds to it, so libnats never deletes it: the durable
 * outlives every instance. Async publishing uses a plain inbox
 * subscription read on the owner's thread, not libnats' PublishAsync
 * callbacks, so no osconnect code runs on libnats' threads.
 */
#include "osc/nats.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/log.h"
#include "stream_int.h"

#define MS_TO_NS(ms)          ((int64_t)(ms)*1000000LL)
#define DEFAULT_ACK_WAIT_MS   30000
#define DEFAULT_MAX_ACK_PEND  1000
#define PUBLISH_MAX_IN_FLIGHT 4096
#define PUBLISH_STALL_MS      5000

struct osc_nats_msg {
    struct osc_nats *src; /* NULL once detached by osc_nats_close() */
    natsMsg *m;           /* NULL once detached */
    struct osc_nats_msg *prev, *next;
    uint64_t seq, delivered, pending;
};

struct osc_nats {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    char *stream;
    char *durable;
    char display[256];
    pthread_mutex_t mu; /* guards head and outstanding */
    struct osc_nats_msg *head;
    size_t outstanding;
    /* owner thread only */
    int down;
    int64_t down_since_ms;
    natsSubscription *ack_sub;
    char ack_prefix[128];
    uint64_t pub_next;
    size_t pub_in_flight;
    size_t pub_failed;
    char pub_first_error[256];
};

/* Names of streams and durables: no separators, wildcards or blanks. */
static int valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 255)
        return 0;
    for (; *s; s++)
        if (*s == '.' || *s == '*' || *s == '>' || *s == ' ' || *s == '\t' || *s == '/' ||
            *s == '\\' || (unsigned char)*s < 0x20)
            return 0;
    return 1;
}

static const char *nz(const char *s) { return s ? s : ""; }

static int ensure_stream(struct osc_nats *n, const struct osc_nats_opts *o, struct osc_err *err)
{
    jsStreamInfo *si = NULL;
    jsStreamConfig sc;
    jsErrCode jerr = 0;
    const char *one[1] = {o->subject};
    char what[512];
    natsStatus s;

    s = js_GetStreamInfo(&si, n->js, n->stream, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    si = NULL;
    if (s == NATS_OK)
        return 0;
    snprintf(what, sizeof(what), "JetStream stream \"%s\" on %s", n->stream, n->display);
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return osc_stream_fail(err, s, jerr, what);
    if (!o->create_stream)
        return osc_err_set(err, OSC_ENOTFOUND,
                           "JetStream stream \"%s\" does not exist on %s (create it, or let "
                           "osconnect create it)",
                           n->stream, n->display);
    jsStreamConfig_Init(&sc);
    sc.Name = n->stream;
    if (o->subjects && o->nsubjects > 0) {
        sc.Subjects = (const char **)o->subjects;
        sc.SubjectsLen = (int)o->nsubjects;
    } else if (o->subject && *o->subject) {
        sc.Subjects = one;
        sc.SubjectsLen = 1;
    } else {
        return osc_err_set(err, OSC_EINVAL, "cannot create JetStream stream \"%s\": no subject",
                           n->stream);
    }
    sc.Storage = js_FileStorage;
    sc.Replicas = o->replicas > 0 ? o->replicas : 1;
    s = js_AddStream(&si, n->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK && jerr != JSStreamNameExistErr) {
        snprintf(what, sizeof(what), "creating JetStream stream \"%s\" on %s", n->stream,
                 n->display);
        return osc_stream_fail(err, s, jerr, what);
    }
    OSC_LOG_INFO("nats", "created JetStream stream %s (%d subject(s), %d replica(s))", n->stream,
                 sc.SubjectsLen, (int)sc.Replicas);
    return 0;
}

static int64_t want_max_deliver(const struct osc_nats_opts *o)
{
    return o->max_deliver > 0 ? o->max_deliver : -1;
}

static int ensure_consumer(struct osc_nats *n, const struct osc_nats_opts *o, struct osc_err *err)
{
    jsConsumerInfo *ci = NULL, *ci2 = NULL;
    jsConsumerConfig cc;
    jsErrCode jerr = 0;
    int64_t ack_wait = MS_TO_NS(o->ack_wait_ms > 0 ? o->ack_wait_ms : DEFAULT_ACK_WAIT_MS);
    int64_t max_pend = o->max_ack_pending > 0 ? o->max_ack_pending : DEFAULT_MAX_ACK_PEND;
    char what[512];
    natsStatus s;
    int rc = 0;

    snprintf(what, sizeof(what), "JetStream consumer \"%s\" of stream \"%s\" on %s", n->durable,
             n->stream, n->display);
    s = js_GetConsumerInfo(&ci, n->js, n->stream, n->durable, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
        jsConsumerConfig_Init(&cc);
        cc.Durable = n->durable;
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        cc.AckWait = ack_wait;
        cc.MaxAckPending = max_pend;
        cc.MaxDeliver = want_max_deliver(o);
        cc.FilterSubject = o->subject && *o->subject ? o->subject : NULL;
        jerr = 0;
        s = js_AddConsumer(&ci, n->js, n->stream, &cc, NULL, &jerr);
        if (s != NATS_OK && jerr == JSConsumerNameExistErr) /* another instance was first */
            s = js_GetConsumerInfo(&ci, n->js, n->stream, n->durable, NULL, &jerr);
        if (s != NATS_OK) {
            rc = osc_stream_fail(err, s, jerr, what);
            goto out;
        }
        OSC_LOG_INFO("nats", "created durable consumer %s on stream %s", n->durable, n->stream);
    } else if (s != NATS_OK) {
        rc = osc_stream_fail(err, s, jerr, what);
        goto out;
    }
    if (ci->Config->DeliverSubject && *ci->Config->DeliverSubject) {
        rc = osc_err_set(err, OSC_ECONFIG, "%s is a push consumer; osconnect needs a pull consumer",
                         what);
        goto out;
    }
    if (ci->Config->AckPolicy != js_AckExplicit) {
        rc = osc_err_set(err, OSC_ECONFIG, "%s does not use explicit acks", what);
        goto out;
    }
    if (strcmp(nz(ci->Config->FilterSubject), nz(o->subject)) != 0) {
        rc = osc_err_set(err, OSC_ECONFIG,
                         "%s filters subject \"%s\" but the configuration says \"%s\" (use another "
                         "durable name or delete the consumer)",
                         what, nz(ci->Config->FilterSubject), nz(o->subject));
        goto out;
    }
    if (ci->Config->AckWait != ack_wait || ci->Config->MaxAckPending != max_pend ||
        ci->Config->MaxDeliver != want_max_deliver(o)) {
        cc = *ci->Config;
        cc.AckWait = ack_wait;
        cc.MaxAckPending = max_pend;
        cc.MaxDeliver = want_max_deliver(o);
        s = js_UpdateConsumer(&ci2, n->js, n->stream, &cc, NULL, &jerr);
        if (s != NATS_OK) {
            snprintf(what, sizeof(what), "updating JetStream consumer \"%s\" of stream \"%s\"",
                     n->durable, n->stream);
            rc = osc_stream_fail(err, s, jerr, what);
            goto out;
        }
        OSC_LOG_INFO("nats", "updated durable consumer %s (ack_wait, max_ack_pending, max_deliver)",
                     n->durable);
    }
out:
    jsConsumerInfo_Destroy(ci);
    jsConsumerInfo_Destroy(ci2);
    return rc;
}

static int bind(struct osc_nats *n, const struct osc_nats_opts *o, struct osc_err *err)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    char what[512];
    natsStatus s;

    jsSubOptions_Init(&so);
    so.Stream = n->stream;
    so.Consumer = n->durable;
    s = js_PullSubscribe(&n->sub, n->js, o->subject && *o->subject ? o->subject : ">", n->durable,
                         NULL, &so, &jerr);
    if (s == NATS_OK)
        return 0;
    n->sub = NULL;
    snprintf(what, sizeof(what), "binding to JetStream consumer \"%s\" of stream \"%s\"",
             n->durable, n->stream);
    return osc_stream_fail(err, s, jerr, what);
}

int osc_nats_open(const struct osc_nats_opts *o, struct osc_nats **out, struct osc_err *err)
{
    struct osc_nats *n;
    int rc;

    if (!valid_name(o->stream))
        return osc_err_set(err, OSC_EINVAL,
                           "NATS stream name \"%s\" is empty or has one of . * > "
                           "/ \\ or a blank",
                           nz(o->stream));
    if (o->durable && !valid_name(o->durable))
        return osc_err_set(err, OSC_EINVAL,
                           "NATS durable name \"%s\" is empty or has one of . * "
                           "> / \\ or a blank",
                           o->durable);
    if (!(n = calloc(1, sizeof(*n))))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    pthread_mutex_init(&n->mu, NULL);
    if (!(n->stream = strdup(o->stream)) || (o->durable && !(n->durable = strdup(o->durable)))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = osc_stream_connect(&o->conn, &n->nc, n->display, sizeof(n->display), err)) ||
        (rc = osc_stream_js(n->nc, &o->conn, &n->js, err)) || (rc = ensure_stream(n, o, err)))
        goto out;
    if (n->durable && ((rc = ensure_consumer(n, o, err)) || (rc = bind(n, o, err))))
        goto out;
out:
    if (rc) {
        osc_nats_close(n);
        return rc;
    }
    *out = n;
    return 0;
}

void osc_nats_close(struct osc_nats *n)
{
    struct osc_nats_msg *m, *next;

    if (!n)
        return;
    if (n->nc && natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(n->nc, 2000);
    pthread_mutex_lock(&n->mu);
    for (m = n->head; m; m = next) {
        next = m->next;
        natsMsg_Destroy(m->m);
        m->m = NULL;
        m->src = NULL;
        m->prev = m->next = NULL;
    }
    n->head = NULL;
    n->outstanding = 0;
    pthread_mutex_unlock(&n->mu);
    natsSubscription_Destroy(n->sub);
    natsSubscription_Destroy(n->ack_sub);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    pthread_mutex_destroy(&n->mu);
    free(n->stream);
    free(n->durable);
    free(n);
}

/* Owner thread: log a change of connection state once; 1 when connected. */
static int check_connected(struct osc_nats *n, int timeout_ms, struct osc_err *err)
{
    char url[256];

    if (natsConnection_Status(n->nc) != NATS_CONN_STATUS_CONNECTED) {
        if (!n->down) {
            n->down = 1;
            n->down_since_ms = osc_stream_now_ms();
            OSC_LOG_WARN("nats", "connection to NATS (%s) lost; reconnecting", n->display);
        }
        if (!osc_stream_wait_connected(n->nc, timeout_ms))
            return osc_err_set(err, OSC_EUNAVAIL,
                               "NATS connection (%s) down for %lld s; reconnecting", n->display,
                               (long long)((osc_stream_now_ms() - n->down_since_ms) / 1000));
    }
    if (n->down) {
        n->down = 0;
        if (osc_nats_connected_url(n, url, sizeof(url)) == 0)
            OSC_LOG_INFO("nats", "reconnected to NATS at %s", url);
    }
    return 0;
}

static void link_msg(struct osc_nats *n, struct osc_nats_msg *m)
{
    pthread_mutex_lock(&n->mu);
    m->next = n->head;
    if (n->head)
        n->head->prev = m;
    n->head = m;
    n->outstanding++;
    pthread_mutex_unlock(&n->mu);
}

int osc_nats_fetch(struct osc_nats *n, struct osc_nats_msg **out, size_t max, int timeout_ms,
                   size_t *count, struct osc_err *err)
{
    natsMsgList list = {NULL, 0};
    jsErrCode jerr = 0;
    char what[256];
    natsStatus s;
    size_t got = 0;
    int64_t start, left;
    int rc = 0;

    *count = 0;
    if (!n->sub)
        return osc_err_set(err, OSC_EINVAL, "NATS source for stream %s has no durable consumer",
                           n->stream);
    if (max == 0)
        return osc_err_set(err, OSC_EINVAL, "NATS fetch of 0 messages");
    if (max > INT_MAX)
        max = INT_MAX;
    if (timeout_ms < 1)
        timeout_ms = 1;
    start = osc_stream_now_ms();
    if ((rc = check_connected(n, timeout_ms, err)))
        return rc;
    /* what waiting for a reconnect used of the timeout is not waited again */
    left = timeout_ms - (osc_stream_now_ms() - start);
    s = natsSubscription_Fetch(&list, n->sub, (int)max, left > 0 ? left : 1, &jerr);
    if (s == NATS_TIMEOUT)
        goto out;
    if (s != NATS_OK) {
        snprintf(what, sizeof(what), "fetching from JetStream consumer \"%s\" of stream \"%s\"",
                 n->durable, n->stream);
        rc = osc_stream_fail(err, s, jerr, what);
        goto out;
    }
    for (int i = 0; i < list.Count && got < max; i++) {
        struct osc_nats_msg *m;
        jsMsgMetaData *meta = NULL;
        if (!list.Msgs[i])
            continue;
        if (natsMsg_GetMetaData(&meta, list.Msgs[i]) != NATS_OK) {
            /* not a JetStream message (a status the library let through): skip */
            continue;
        }
        if (!(m = calloc(1, sizeof(*m)))) {
            jsMsgMetaData_Destroy(meta);
            rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
            break;
        }
        m->src = n;
        m->m = list.Msgs[i];
        list.Msgs[i] = NULL;
        m->seq = meta->Sequence.Stream;
        m->delivered = meta->NumDelivered;
        m->pending = meta->NumPending;
        jsMsgMetaData_Destroy(meta);
        link_msg(n, m);
        out[got++] = m;
    }
    if (rc) {
        while (got > 0)
            osc_nats_msg_free(out[--got]);
    }
out:
    natsMsgList_Destroy(&list);
    *count = got;
    return rc;
}

const void *osc_nats_msg_data(const struct osc_nats_msg *m, size_t *len)
{
    if (!m->m) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)natsMsg_GetDataLength(m->m);
    return natsMsg_GetData(m->m);
}

const char *osc_nats_msg_subject(const struct osc_nats_msg *m)
{
    return m->m ? natsMsg_GetSubject(m->m) : NULL;
}

uint64_t osc_nats_msg_seq(const struct osc_nats_msg *m) { return m->seq; }
uint64_t osc_nats_msg_delivered(const struct osc_nats_msg *m) { return m->delivered; }
uint64_t osc_nats_msg_pending(const struct osc_nats_msg *m) { return m->pending; }

static int settle(struct osc_nats_msg *m, natsStatus s, const char *what, struct osc_err *err)
{
    char buf[128];

    if (s == NATS_OK)
        return 0;
    snprintf(buf, sizeof(buf), "%s of message %llu", what, (unsigned long long)m->seq);
    return osc_stream_fail(err, s, 0, buf);
}

static int detached(const struct osc_nats_msg *m, struct osc_err *err)
{
    return osc_err_set(err, OSC_EINVAL, "message %llu: its NATS source was closed",
                       (unsigned long long)m->seq);
}

int osc_nats_ack(struct osc_nats_msg *m, struct osc_err *err)
{
    if (!m->m)
        return detached(m, err);
    return settle(m, natsMsg_Ack(m->m, NULL), "ack", err);
}

int osc_nats_nak(struct osc_nats_msg *m, int64_t delay_ms, struct osc_err *err)
{
    if (!m->m)
        return detached(m, err);
    if (delay_ms > 0)
        return settle(m, natsMsg_NakWithDelay(m->m, delay_ms, NULL), "nak", err);
    return settle(m, natsMsg_Nak(m->m, NULL), "nak", err);
}

int osc_nats_term(struct osc_nats_msg *m, struct osc_err *err)
{
    if (!m->m)
        return detached(m, err);
    return settle(m, natsMsg_Term(m->m, NULL), "term", err);
}

int osc_nats_in_progress(struct osc_nats_msg *m, struct osc_err *err)
{
    if (!m->m)
        return detached(m, err);
    return settle(m, natsMsg_InProgress(m->m, NULL), "in-progress ack", err);
}

void osc_nats_msg_free(struct osc_nats_msg *m)
{
    struct osc_nats *n;

    if (!m)
        return;
    if ((n = m->src) != NULL) {
        pthread_mutex_lock(&n->mu);
        if (m->prev)
            m->prev->next = m->next;
        else
            n->head = m->next;
        if (m->next)
            m->next->prev = m->prev;
        n->outstanding--;
        pthread_mutex_unlock(&n->mu);
    }
    natsMsg_Destroy(m->m);
    free(m);
}

size_t osc_nats_outstanding(struct osc_nats *n)
{
    size_t c;

    pthread_mutex_lock(&n->mu);
    c = n->outstanding;
    pthread_mutex_unlock(&n->mu);
    return c;
}

int osc_nats_flush(struct osc_nats *n, int timeout_ms, struct osc_err *err)
{
    natsStatus s = natsConnection_FlushTimeout(n->nc, timeout_ms > 0 ? timeout_ms : 1);

    return s == NATS_OK ? 0 : osc_stream_fail(err, s, 0, "NATS flush");
}

int osc_nats_info(struct osc_nats *n, struct osc_nats_info *info, struct osc_err *err)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    memset(info, 0, sizeof(*info));
    if (!n->durable)
        return osc_err_set(err, OSC_EINVAL, "NATS source for stream %s has no durable consumer",
                           n->stream);
    s = js_GetConsumerInfo(&ci, n->js, n->stream, n->durable, NULL, &jerr);
    if (s != NATS_OK)
        return osc_stream_fail(err, s, jerr, "JetStream consumer info");
    info->num_pending = ci->NumPending;
    info->num_ack_pending = ci->NumAckPending;
    info->num_redelivered = ci->NumRedelivered;
    info->delivered_seq = ci->Delivered.Stream;
    info->ack_floor_seq = ci->AckFloor.Stream;
    info->num_waiting = ci->NumWaiting;
    if (ci->Config) {
        info->ack_wait_ms = ci->Config->AckWait / 1000000;
        info->max_ack_pending = ci->Config->MaxAckPending;
        info->max_deliver = ci->Config->MaxDeliver;
    }
    jsConsumerInfo_Destroy(ci);
    return 0;
}

int osc_nats_publish(struct osc_nats *n, const char *subject, const void *data, size_t len,
                     uint64_t *seq, struct osc_err *err)
{
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    char what[300];
    natsStatus s;

    if (len > INT_MAX)
        return osc_err_set(err, OSC_ETOOBIG, "NATS message of %zu bytes", len);
    s = js_Publish(&pa, n->js, subject, data, (int)len, NULL, &jerr);
    if (s != NATS_OK) {
        snprintf(what, sizeof(what), "publishing to %s", subject);
        return osc_stream_fail(err, s, jerr, what);
    }
    if (seq)
        *seq = pa->Sequence;
    jsPubAck_Destroy(pa);
    return 0;
}

static int ack_sub_open(struct osc_nats *n, struct osc_err *err)
{
    natsInbox *inbox = NULL;
    char subj[160];
    natsStatus s;

    if ((s = natsInbox_Create(&inbox)) != NATS_OK)
        return osc_stream_fail(err, s, 0, "NATS inbox");
    snprintf(n->ack_prefix, sizeof(n->ack_prefix), "%s.", inbox);
    snprintf(subj, sizeof(subj), "%s.*", inbox);
    natsInbox_Destroy(inbox);
    s = natsConnection_SubscribeSync(&n->ack_sub, n->nc, subj);
    if (s != NATS_OK) {
        n->ack_sub = NULL;
        return osc_stream_fail(err, s, 0, "NATS publish-ack subscription");
    }
    return 0;
}

static void pub_failed(struct osc_nats *n, const char *why)
{
    if (n->pub_failed++ == 0)
        snprintf(n->pub_first_error, sizeof(n->pub_first_error), "%s", why);
}

/* Take one publish ack (waiting up to timeout_ms). 0, or OSC_EUNAVAIL when none came. */
static int take_ack(struct osc_nats *n, int timeout_ms, struct osc_err *err)
{
    natsMsg *m = NULL;
    natsStatus s = natsSubscription_NextMsg(&m, n->ack_sub, timeout_ms > 0 ? timeout_ms : 1);

    /* libnats turns the server's "no responders" status message into this status */
    if (s == NATS_NO_RESPONDERS) {
        n->pub_in_flight--;
        pub_failed(n, "no stream takes the subject");
        natsMsg_Destroy(m);
        return 0;
    }
    if (s != NATS_OK)
        return osc_stream_fail(err, s, 0, "waiting for JetStream publish acks");
    if (n->pub_in_flight == 0) { /* late: given up on by osc_nats_publish_wait() */
        natsMsg_Destroy(m);
        return 0;
    }
    n->pub_in_flight--;
    if (natsMsg_IsNoResponders(m)) {
        pub_failed(n, "no stream takes the subject");
    } else {
        json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
        json_t *e = json_object_get(j, "error");
        if (!j)
            pub_failed(n, "unreadable publish ack");
        else if (e)
            pub_failed(n, json_string_value(json_object_get(e, "description"))
                              ? json_string_value(json_object_get(e, "description"))
                              : "error");
        json_decref(j);
    }
    natsMsg_Destroy(m);
    return 0;
}

int osc_nats_publish_async(struct osc_nats *n, const char *subject, const void *data, size_t len,
                           struct osc_err *err)
{
    char reply[192];
    natsStatus s;
    int rc;

    if (len > INT_MAX)
        return osc_err_set(err, OSC_ETOOBIG, "NATS message of %zu bytes", len);
    if (!n->ack_sub && (rc = ack_sub_open(n, err)))
        return rc;
    while (n->pub_in_flight >= PUBLISH_MAX_IN_FLIGHT)
        if ((rc = take_ack(n, PUBLISH_STALL_MS, err)))
            return rc;
    snprintf(reply, sizeof(reply), "%s%llu", n->ack_prefix, (unsigned long long)++n->pub_next);
    s = natsConnection_PublishRequest(n->nc, subject, reply, data, (int)len);
    if (s != NATS_OK)
        return osc_stream_fail(err, s, 0, "publishing");
    n->pub_in_flight++;
    return 0;
}

int osc_nats_publish_wait(struct osc_nats *n, int timeout_ms, struct osc_err *err)
{
    int64_t deadline = osc_stream_now_ms() + timeout_ms;
    int rc = 0;

    while (n->pub_in_flight > 0) {
        int64_t left = deadline - osc_stream_now_ms();
        if (left <= 0 || take_ack(n, (int)(left > INT_MAX ? INT_MAX : left), NULL)) {
            /* forget them: their acks, if any come, are ignored */
            rc = osc_err_set(err, OSC_EUNAVAIL,
                             "%zu JetStream publishes not acknowledged after %d ms",
                             n->pub_in_flight, timeout_ms);
            n->pub_in_flight = 0;
            n->pub_failed = 0;
            return rc;
        }
    }
    if (n->pub_failed) {
        rc = osc_err_set(err, OSC_EIO, "%zu JetStream publishes failed; the first: %s",
                         n->pub_failed, n->pub_first_error);
        n->pub_failed = 0;
    }
    return rc;
}

int osc_nats_connected_url(struct osc_nats *n, char *buf, size_t cap)
{
    char raw[256];
    const char *scheme, *host, *at;

    if (natsConnection_GetConnectedUrl(n->nc, raw, sizeof(raw)) != NATS_OK || !raw[0])
        return OSC_EUNAVAIL;
    scheme = strstr(raw, "://");
    host = scheme ? scheme + 3 : raw;
    if ((at = strchr(host, '@')) != NULL)
        host = at + 1;
    snprintf(buf, cap, "%.*s%s", scheme ? (int)(scheme + 3 - raw) : 0, raw, host);
    return 0;
}
