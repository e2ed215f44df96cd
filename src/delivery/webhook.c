/*
 * webhook.c - the response webhook: every API call is reported, as JSON,
 * to a user's URL, without ever slowing or endangering deliveries.
 *
 * Invariants: reports wait in a bounded ring (WEBHOOK_QUEUE_MAX; when it is
 * full the oldest report is dropped and counted); they are sent on the
 * webhook's own HTTP client (its own connections, two in flight) and only
 * advanced by non-blocking pumps from the delivery loop; a failed report is
 * retried (WEBHOOK_ATTEMPTS in all, not before a short delay) and then
 * logged and dropped. No API key is ever sent to the webhook.
 */
#include "delivery_int.h"

#include <stdlib.h>
#include <string.h>

#include "osc/clock.h"
#include "osc/log.h"

#define IN_FLIGHT      2
#define RETRY_DELAY_MS 500

struct report {
    char *doc;
    size_t len;
    unsigned attempts;
    int64_t due;
};

struct slot {
    struct webhook *w;
    struct report r;
    struct osc_http_response resp;
    int busy;
};

struct webhook {
    char *url;
    struct osc_http *h;
    struct report q[WEBHOOK_QUEUE_MAX];
    size_t head, n;
    struct slot slots[IN_FLIGHT];
    uint64_t failed, delivered;
};

struct webhook *webhook_new(const char *url, const struct osc_http_opts *opts, struct osc_err *err)
{
    struct webhook *w = calloc(1, sizeof(*w));
    struct osc_http_opts o = opts ? *opts : (struct osc_http_opts){0};

    if (!w || !(w->url = strdup(url))) {
        free(w);
        osc_err_set(err, OSC_ENOMEM, "out of memory");
        return NULL;
    }
    o.max_in_flight = IN_FLIGHT;
    o.max_response = 4096;
    if (!o.timeout_ms || o.timeout_ms > 10000)
        o.timeout_ms = 10000;
    if (!(w->h = osc_http_new(&o, err))) {
        free(w->url);
        free(w);
        return NULL;
    }
    for (int i = 0; i < IN_FLIGHT; i++) {
        w->slots[i].w = w;
        osc_http_response_init(&w->slots[i].resp);
    }
    return w;
}

void webhook_free(struct webhook *w)
{
    if (!w)
        return;
    osc_http_free(w->h); /* aborts transfers; their callbacks are not called */
    for (int i = 0; i < IN_FLIGHT; i++) {
        free(w->slots[i].r.doc);
        osc_http_response_free(&w->slots[i].resp);
    }
    for (size_t i = 0; i < w->n; i++)
        free(w->q[(w->head + i) % WEBHOOK_QUEUE_MAX].doc);
    free(w->url);
    free(w);
}

uint64_t webhook_failed(const struct webhook *w) { return w ? w->failed : 0; }
uint64_t webhook_delivered(const struct webhook *w) { return w ? w->delivered : 0; }

static void enqueue(struct webhook *w, struct report r)
{
    if (w->n == WEBHOOK_QUEUE_MAX) {
        struct report *old = &w->q[w->head];
        free(old->doc);
        w->head = (w->head + 1) % WEBHOOK_QUEUE_MAX;
        w->n--;
        w->failed++;
        OSC_LOG_WARN("webhook", "report queue full: the oldest report was dropped");
    }
    w->q[(w->head + w->n) % WEBHOOK_QUEUE_MAX] = r;
    w->n++;
}

void webhook_post(struct webhook *w, const char *doc, size_t len)
{
    struct report r = {NULL, len, 0, 0};

    if (!w || !(r.doc = malloc(len + 1)))
        return;
    memcpy(r.doc, doc, len);
    r.doc[len] = '\0';
    enqueue(w, r);
    webhook_pump(w);
}

static void on_done(void *ud, struct osc_http_response *resp)
{
    struct slot *s = ud;
    struct webhook *w = s->w;

    s->busy = 0;
    if (resp->outcome == OSC_HTTP_SENT) {
        w->delivered++;
        free(s->r.doc);
    } else if (s->r.attempts >= WEBHOOK_ATTEMPTS) {
        w->failed++;
        OSC_LOG_WARN("webhook", "%s: report not delivered after %u attempts (%s%ld%s%s)", w->url,
                     s->r.attempts, resp->status ? "HTTP " : "", resp->status,
                     resp->error[0] ? " " : "", resp->error);
        free(s->r.doc);
    } else {
        OSC_LOG_DEBUG("webhook", "%s: attempt %u failed; will retry", w->url, s->r.attempts);
        s->r.due = osc_clock_mono_ms(NULL) + RETRY_DELAY_MS * (int64_t)s->r.attempts;
        enqueue(w, s->r);
    }
    s->r.doc = NULL;
}

void webhook_pump(struct webhook *w)
{
    int64_t now;

    if (!w)
        return;
    osc_http_run(w->h, 0);
    now = osc_clock_mono_ms(NULL);
    for (int i = 0; i < IN_FLIGHT && w->n; i++) {
        struct slot *s = &w->slots[i];
        struct report *r = &w->q[w->head];
        static const char *const hdrs[] = {"Content-Type: application/json", NULL};
        struct osc_http_request req = {"POST", w->url, hdrs, OSC_HTTP_AUTH_NONE, NULL, NULL,
                                       0,      0,      0};
        if (s->busy)
            continue;
        if (r->due > now)
            break;
        s->r = *r;
        w->head = (w->head + 1) % WEBHOOK_QUEUE_MAX;
        w->n--;
        s->r.attempts++;
        req.body = s->r.doc;
        req.body_len = s->r.len;
        if (osc_http_submit(w->h, &req, &s->resp, on_done, s) != 0) {
            enqueue(w, s->r);
            s->r.doc = NULL;
            break;
        }
        s->busy = 1;
    }
}

void webhook_drain(struct webhook *w, int64_t deadline_ms)
{
    if (!w)
        return;
    for (;;) {
        int busy = 0;
        webhook_pump(w);
        for (int i = 0; i < IN_FLIGHT; i++)
            busy |= w->slots[i].busy;
        if (!busy && w->n == 0)
            return;
        if (osc_clock_mono_ms(NULL) >= deadline_ms) {
            if (w->n || busy)
                OSC_LOG_WARN("webhook", "%s: %zu report(s) not delivered before exit", w->url,
                             w->n + (size_t)busy);
            w->failed += w->n;
            return;
        }
        if (busy)
            osc_http_run(w->h, 50);
        else
            osc_clock_sleep_ms(20, NULL);
    }
}
