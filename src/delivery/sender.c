/*
 * sender.c - batches on the wire: libcurl's multi interface, as many
 * requests in flight as the concurrency controller allows, retries with
 * backoff, Retry-After, and the pause of the whole destination.
 *
 * Each answer is classified once (osc_retry_classify): sent, retry or
 * reject. A batch ends in exactly one enum dlv_final, reported to
 * hooks.final; every call (retries included) is reported to hooks.call.
 *
 * Invariants:
 * - Nothing is submitted before paused_until (a 429/503 with Retry-After
 *   pauses the whole destination); other retries only delay their batch.
 * - Once stopped (the key was refused, a permanent transport error),
 *   nothing more is submitted: queued and waiting batches end UNSENT, and
 *   what is in flight finishes.
 * - The controller hears every answer: its latency, and whether it was
 *   back-pressure (429, 503, a timeout).
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_int.h"
#include "osc/clock.h"
#include "osc/log.h"
#include "osc/retry.h"

static int64_t now_ms(const struct dlv_sender *s) { return osc_clock_mono_ms(s->clock); }

int dlv_sender_init(struct dlv_sender *s, const struct osc_config *cfg,
                    const struct osc_conf_destination *t, const struct osc_delivery_opts *opts,
                    const struct dlv_request *rq, struct dlv_batch *pool, size_t npool,
                    const struct dlv_sender_hooks *hooks, struct osc_err *err)
{
    struct osc_http_opts ho = {0};
    int fixed = (int)t->max_in_flight;
    int limit_max =
        t->max_in_flight_limit > 0 ? (int)t->max_in_flight_limit : OSC_CC_LIMIT_MAX_DEFAULT;
    struct osc_cc_opts cco = {0};

    memset(s, 0, sizeof(*s));
    s->dest = t;
    s->secret = cfg->officespace.api_key;
    s->clock = opts->clock;
    s->pool = pool;
    s->npool = npool;
    s->rq = rq;
    s->dry_run = opts->dry_run;
    s->preview = opts->preview;
    s->single_request = opts->single_request;
    s->hooks = *hooks;
    s->rng = opts->seed ? opts->seed : (uint64_t)osc_clock_wall_ms(NULL) | 1;
    cco.fixed = fixed;
    cco.limit_max = limit_max;
    if (!(s->cc = osc_cc_new(&cco)))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    if (s->dry_run)
        return 0;
    ho.connect_timeout_ms = (long)cfg->officespace.connect_timeout_ms;
    ho.timeout_ms = (long)t->timeout_ms;
    ho.no_verify_tls = !cfg->officespace.verify_tls;
    ho.ca_file = cfg->officespace.ca_file;
    ho.conf_section = "officespace";
    ho.max_in_flight = fixed > 0 ? fixed : limit_max;
    return (s->http = osc_http_new(&ho, err)) ? 0 : (err && err->code ? err->code : OSC_ENOMEM);
}

void dlv_sender_free(struct dlv_sender *s)
{
    osc_http_free(s->http); /* aborts transfers that point into batches */
    s->http = NULL;
    osc_cc_free(s->cc);
    s->cc = NULL;
}

void dlv_sender_queue(struct dlv_sender *s, struct dlv_batch *b, int front)
{
    b->state = DLV_READY;
    b->next_ready = NULL;
    if (front) {
        b->next_ready = s->ready_head;
        s->ready_head = b;
        if (!s->ready_tail)
            s->ready_tail = b;
        return;
    }
    if (s->ready_tail)
        s->ready_tail->next_ready = b;
    else
        s->ready_head = b;
    s->ready_tail = b;
}

static struct dlv_batch *ready_pop(struct dlv_sender *s)
{
    struct dlv_batch *b = s->ready_head;
    if (b) {
        s->ready_head = b->next_ready;
        if (!s->ready_head)
            s->ready_tail = NULL;
        b->next_ready = NULL;
    }
    return b;
}

static void end(struct dlv_sender *s, struct dlv_batch *b, enum dlv_final f, const char *reason)
{
    b->state = DLV_FREE; /* the outcome may reuse it at once; its data stays until reset */
    b->final = f;
    s->hooks.final(s->hooks.ud, b, f, reason);
}

static void on_done(void *ud, struct osc_http_response *r);

/*
 * Hand b to the HTTP client (or to the preview/dry-run sink). Returns 0, or
 * OSC_EBUSY when the client is full (b unchanged: queue it again). A
 * request that cannot even be built ends here (DLV_UNBUILT).
 */
static int submit(struct dlv_sender *s, struct dlv_batch *b)
{
    struct osc_http_request req = {
        b->method,      b->url, b->hdrs, b->auth ? OSC_HTTP_AUTH_OS_TOKEN : OSC_HTTP_AUTH_NONE,
        s->secret,      NULL,   0,       0,
        b->max_response};
    int rc;

    if (b->body.len && strcmp(b->method, "DELETE") != 0 && strcmp(b->method, "GET") != 0) {
        req.body = b->body.data;
        req.body_len = b->body.len;
    }
    b->attempts++;
    b->snd = s;
    b->sent_ms = now_ms(s);
    if (!b->first_ms)
        b->first_ms = b->sent_ms;
    if (s->dry_run) {
        if (s->preview)
            dlv_request_preview(s->rq, b, s->preview);
        b->state = DLV_FLIGHT;
        osc_http_response_free(&b->resp);
        osc_http_response_init(&b->resp);
        b->resp.outcome = OSC_HTTP_SENT;
        on_done(b, &b->resp);
        return 0;
    }
    b->state = DLV_FLIGHT;
    rc = osc_http_submit(s->http, &req, &b->resp, on_done, b);
    if (rc == OSC_EBUSY) {
        b->attempts--;
        b->state = DLV_READY;
        return rc;
    }
    if (rc == 0) {
        b->cc_ticket = osc_cc_sent(s->cc);
        if ((uint64_t)osc_http_in_flight(s->http) > s->peak)
            s->peak = (uint64_t)osc_http_in_flight(s->http);
    }
    if (rc) {
        char why[256];
        snprintf(why, sizeof(why), "gave up: the request could not be sent: %s%s", osc_strerror(rc),
                 rc == OSC_EINVAL ? " (a header or the API key holds a character HTTP cannot carry)"
                                  : "");
        end(s, b, DLV_UNBUILT, why);
    }
    return 0;
}

/* What a finished answer tells the concurrency controller. */
static enum osc_cc_class cc_class(const struct osc_http_response *r, enum osc_http_outcome o)
{
    if (o == OSC_HTTP_SENT)
        return OSC_CC_SUCCESS;
    if (r->status == 429 || r->status == 503 || r->transport == CURLE_OPERATION_TIMEDOUT)
        return OSC_CC_BACKPRESSURE;
    return OSC_CC_ERROR;
}

static void on_done(void *ud, struct osc_http_response *r)
{
    struct dlv_batch *b = ud;
    struct dlv_sender *s = b->snd;
    const struct osc_conf_retry *rp = &s->dest->retry;
    enum osc_http_outcome o;
    char reason[512], why[700];
    int64_t now = now_ms(s), delay;

    if (s->dry_run) {
        o = OSC_HTTP_SENT;
    } else {
        o = osc_retry_classify(rp, r->status, r->transport);
        s->requests++;
        osc_cc_done(s->cc, b->cc_ticket, (double)(now - b->sent_ms), cc_class(r, o));
    }
    s->hooks.call(s->hooks.ud, b, s->dry_run ? NULL : r, o);
    if (o == OSC_HTTP_SENT) {
        s->accepted = 1;
        end(s, b, DLV_ACCEPTED, NULL);
        return;
    }
    if (r->transport && osc_http_transport_permanent(r->transport)) {
        snprintf(reason, sizeof(reason), "%s", r->error); /* the message says what to fix */
        s->stop = 1;
        end(s, b, DLV_FATAL, reason);
        return;
    }
    if (o == OSC_HTTP_REJECT) {
        if ((r->status == 401 || r->status == 403) && !s->accepted) {
            s->stop = 1;
            end(s, b, DLV_AUTH, NULL);
            return;
        }
        if (r->transport)
            snprintf(reason, sizeof(reason), "rejected: %s", r->error);
        else
            snprintf(reason, sizeof(reason), "rejected by the API: HTTP %ld", r->status);
        end(s, b, DLV_REJECTED, reason);
        return;
    }
    /* retry */
    if (r->transport)
        snprintf(reason, sizeof(reason), "%s", r->error);
    else
        snprintf(reason, sizeof(reason), "HTTP %ld", r->status);
    if (s->stop) {
        end(s, b, DLV_UNSENT, reason); /* not done: a rerun (from the checkpoint) sends it */
        return;
    }
    if (r->retry_after_ms >= 0) {
        delay = r->retry_after_ms;
        if (delay > s->dest->max_retry_wait_ms) {
            snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason),
                     " with Retry-After %llds, longer than max_retry_wait (%llds)",
                     (long long)(delay / 1000), (long long)(s->dest->max_retry_wait_ms / 1000));
            delay = -1; /* give up below */
        } else if ((r->status == 429 || r->status == 503) && now + delay > s->paused_until) {
            /* the server asked everyone to wait: pause the whole destination */
            s->paused_until = now + delay;
            OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "delivery", "paused",
                       (OSC_LF_STR("destination", s->dest->name),
                        OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("url", b->url),
                        OSC_LF_INT_NZ("status", r->status), OSC_LF_INT("delay_ms", delay)),
                       "%s: HTTP %ld with Retry-After: pausing the destination for %lld ms",
                       s->dest->name, r->status, (long long)delay);
        }
    } else if (!s->dest->max_in_flight && cc_class(r, o) == OSC_CC_BACKPRESSURE) {
        /* adaptive: the controller already cut the concurrency; the batch itself only
         * waits a few round trips (doubling), not retry.base, which held the window shut */
        struct osc_conf_retry quick = *rp;
        struct osc_cc_stats cs;
        osc_cc_stats(s->cc, &cs);
        quick.base_ms = cs.rtt_ms * 2 > 10 ? (int64_t)(cs.rtt_ms * 2) : 10;
        if (quick.base_ms > rp->base_ms)
            quick.base_ms = rp->base_ms;
        delay = osc_retry_backoff_ms(&quick, b->attempts, &s->rng);
    } else {
        delay = osc_retry_backoff_ms(rp, b->attempts, &s->rng);
    }
    if (delay < 0 || (int64_t)b->attempts >= rp->max_attempts ||
        now + delay - b->first_ms > rp->max_elapsed_ms || s->single_request) {
        if (delay >= 0 && (int64_t)b->attempts < rp->max_attempts && !s->single_request)
            snprintf(why, sizeof(why),
                     "gave up after %u attempt(s) (retry.max_elapsed %llds would pass): %s",
                     b->attempts, (long long)(rp->max_elapsed_ms / 1000), reason);
        else
            snprintf(why, sizeof(why), "gave up after %u attempt(s): %s", b->attempts, reason);
        end(s, b, DLV_GAVE_UP, why);
        return;
    }
    s->retries++;
    OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "delivery", "retry",
               (OSC_LF_STR("destination", s->dest->name), OSC_LF_STR("request_id", b->request_id),
                OSC_LF_STR("method", b->method), OSC_LF_STR("url", b->url),
                OSC_LF_INT_NZ("status", r->status), OSC_LF_INT("records", b->nrecs),
                OSC_LF_INT("attempt", b->attempts), OSC_LF_INT("delay_ms", delay),
                OSC_LF_STR("reason", reason)),
               "%s: %s %s: %s; retry %u in %lld ms", s->dest->name, b->method, b->url, reason,
               b->attempts, (long long)delay);
    b->due_ms = now + delay;
    b->state = DLV_WAIT;
}

static int may_submit(const struct dlv_sender *s)
{
    int limit;

    if (s->dry_run)
        return 1;
    limit = osc_cc_limit(s->cc);
    if (limit > osc_http_max_in_flight(s->http))
        limit = osc_http_max_in_flight(s->http);
    return osc_http_in_flight(s->http) < limit;
}

void dlv_sender_stop(struct dlv_sender *s)
{
    struct dlv_batch *b;

    s->stop = 1;
    while ((b = ready_pop(s)) != NULL)
        end(s, b, DLV_UNSENT, "the destination was stopped");
    for (size_t i = 0; i < s->npool; i++)
        if (s->pool[i].state == DLV_WAIT)
            end(s, &s->pool[i], DLV_UNSENT, "the destination was stopped");
}

size_t dlv_sender_pump(struct dlv_sender *s, long wait_ms)
{
    int64_t now = now_ms(s), next = INT64_MAX;
    size_t busy = 0;

    if (s->stop)
        dlv_sender_stop(s);
    if (now >= s->paused_until && !s->stop) {
        for (size_t i = 0; i < s->npool; i++) {
            struct dlv_batch *b = &s->pool[i];
            if (b->state == DLV_WAIT && b->due_ms <= now)
                dlv_sender_queue(s, b, 1);
        }
        for (int reaped = 0; s->ready_head && !s->stop;) {
            struct dlv_batch *b;
            if (!may_submit(s)) {
                /* answers that arrived while we were reading are not in flight any more:
                 * collect them before counting the limit as reached (else the controller
                 * sees our own lag as demand and raises the limit for nothing) */
                if (reaped++ || !s->http)
                    break;
                osc_http_run(s->http, 0);
                continue;
            }
            b = ready_pop(s);
            if (submit(s, b) != 0) {
                dlv_sender_queue(s, b, 1);
                break;
            }
        }
    }
    for (size_t i = 0; i < s->npool; i++) {
        struct dlv_batch *b = &s->pool[i];
        if (b->state == DLV_WAIT) {
            int64_t due = b->due_ms > s->paused_until ? b->due_ms : s->paused_until;
            if (due < next)
                next = due;
        }
        if (b->state == DLV_READY || b->state == DLV_FLIGHT || b->state == DLV_WAIT)
            busy++;
    }
    if (s->ready_head && s->paused_until > now && s->paused_until < next)
        next = s->paused_until;
    if (wait_ms > 0 && next != INT64_MAX && next - now < wait_ms)
        wait_ms = next - now > 0 ? (long)(next - now) : 0;
    if (s->http && osc_http_in_flight(s->http) > 0)
        osc_http_run(s->http, wait_ms);
    else if (wait_ms > 0 && busy)
        osc_clock_sleep_ms(wait_ms, NULL);
    return busy;
}

enum dlv_final dlv_sender_sync(struct dlv_sender *s, struct dlv_batch *b, int retry)
{
    int single = s->single_request;
    enum dlv_final f = DLV_UNSENT;

    s->single_request = single || !retry; /* one attempt: the caller judges the answer */
    for (;;) {
        if (s->stop)
            break;
        if (submit(s, b) != 0)
            break; /* busy: cannot happen, nothing else is in flight */
        while (b->state == DLV_FLIGHT)
            osc_http_run(s->http, 100);
        if (b->state == DLV_FREE) {
            f = (enum dlv_final)b->final;
            break;
        }
        /* DLV_WAIT: sleep until due */
        {
            int64_t due = b->due_ms > s->paused_until ? b->due_ms : s->paused_until;
            int64_t wait = due - now_ms(s);
            if (wait > 0)
                osc_clock_sleep_ms(wait, NULL);
        }
    }
    s->single_request = single;
    return f;
}
