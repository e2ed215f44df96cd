/*
 * ingest.c - the http source: POST /ingest/{destination} bodies checked and
 * queued durably (on the status server's threads), then delivered from the
 * queue by the source's thread; see source.h.
 *
 * Invariants: a 202 is answered only after osc_queue_append() returned 0
 * (the body is on disk). A queued body is deleted only once every record
 * of it was accepted or dead-lettered; its progress (records at its start
 * that are settled) is stored when a retry is due and at a stop, so a
 * restart sends at most what was unsettled. The thread keeps up to
 * MAX_BODIES bodies (and about MAX_BYTES of them) claimed at once; a record
 * is offered with the tag (slot << 32 | record index), and its fate lands
 * in that slot; a slot is settled only when no record of it is pending.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "osc/clock.h"
#include "osc/log.h"
#include "osc/records.h"
#include "osc/retry.h"
#include "source_int.h"

#define MAX_BODIES       1024
#define MAX_BYTES        (64u * 1024 * 1024)
#define FULL_RETRY_AFTER 5 /* seconds: what a 429 or 503 asks the client to wait */
#define PROGRESS_EVERY   2000

/* ---- the queue file --------------------------------------------------------- */

char *src_ingest_queue_path(const struct osc_config *cfg, const char *name)
{
    char *cp = osc_delivery_checkpoint_path(cfg, name, NULL), *out = NULL;
    size_t n;

    if (!cp)
        return NULL;
    /* next to the destination's checkpoint: NAME.checkpoint.db -> NAME.ingest.db */
    n = strlen(cp);
    if (n > 14 && strcmp(cp + n - 14, ".checkpoint.db") == 0)
        n -= 14;
    if (asprintf(&out, "%.*s.ingest.db", (int)n, cp) < 0)
        out = NULL;
    free(cp);
    return out;
}

/* ---- POST /ingest/{destination} --------------------------------------------- */

/* Equal strings, in time that depends on the lengths only. */
static int same_secret(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char diff = alen != blen;

    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
    return diff == 0;
}

static int authorized(const struct src *s, const char *h)
{
    const char *t;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    for (t = h + 7; *t == ' '; t++)
        ;
    return same_secret(t, strcspn(t, " \t\r\n"), s->dest->source.ingest_token);
}

static char first_char(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
            return body[i];
    return 0;
}

/* The records format of a body: 0, or -1 with the 415/400 answer in r. */
static int body_format(const char *ctype, const char *body, size_t len,
                       enum osc_records_format *fmt, struct osc_ingest_reply *r)
{
    char c = first_char(body, len);
    size_t n = ctype ? strcspn(ctype, ";") : 0;

    while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
#define IS(t) (n == sizeof(t) - 1 && strncasecmp(ctype, t, n) == 0)
    if (IS("text/csv")) {
        *fmt = OSC_RECORDS_CSV;
        return 0;
    }
    if (IS("application/x-ndjson") || IS("application/ndjson") || IS("application/jsonl") ||
        IS("application/x-jsonlines") || IS("application/jsonlines")) {
        *fmt = OSC_RECORDS_JSONL;
        return 0;
    }
    if (n && !IS("application/json")) {
        r->status = 415;
        snprintf(r->body, sizeof(r->body),
                 "Content-Type %.*s is not taken: use application/json (a JSON array or JSON "
                 "Lines), application/x-ndjson or text/csv\n",
                 (int)(n > 100 ? 100 : n), ctype);
        return -1;
    }
#undef IS
    /* application/json, or no type: the first character tells an array from JSON Lines */
    if (c == '[' || c == '{') {
        *fmt = c == '[' ? OSC_RECORDS_JSON : OSC_RECORDS_JSONL;
        return 0;
    }
    r->status = n ? 400 : 415;
    snprintf(r->body, sizeof(r->body),
             n ? "the body is not JSON: expected a JSON array of objects or JSON Lines\n"
               : "set Content-Type (application/json, application/x-ndjson or text/csv): the body "
                 "is neither a JSON array nor JSON Lines\n");
    return -1;
}

void src_ingest(struct src *s, const char *authorization, const char *content_type,
                const char *body, size_t len, struct osc_ingest_reply *r)
{
    enum osc_records_format fmt;
    struct osc_records_reader *rd = NULL;
    struct osc_record rec;
    struct osc_err err = {0};
    char name[300];
    uint64_t n = 0;
    int64_t id = 0;
    int got, rc;

    if (!authorized(s, authorization)) {
        r->status = 401;
        snprintf(r->body, sizeof(r->body),
                 "send the destination's ingest_token as Authorization: Bearer TOKEN\n");
        return;
    }
    if ((int64_t)len > s->dest->source.max_body) {
        r->status = 413;
        snprintf(r->body, sizeof(r->body), "the body is larger than max_body (%lld bytes)\n",
                 (long long)s->dest->source.max_body);
        return;
    }
    if (body_format(content_type, body, len, &fmt, r))
        return;
    snprintf(name, sizeof(name), "POST /ingest/%s", s->dest->name);
    if (!(rd = osc_records_open_mem(body ? body : "", len, name, fmt, &err))) {
        r->status = 503;
        r->retry_after_s = FULL_RETRY_AFTER;
        snprintf(r->body, sizeof(r->body), "%s\n", err.msg);
        return;
    }
    /* every record must be readable: a body is taken whole or not at all */
    while ((got = osc_records_next(rd, &rec, &err)) == 1)
        n++;
    if (got < 0 || osc_records_incomplete(rd)) {
        r->status = got == OSC_ENOMEM ? 503 : 400;
        snprintf(r->body, sizeof(r->body), "%s; nothing was queued\n",
                 got < 0 ? err.msg : "the body ends early");
        goto out;
    }
    if (n == 0) {
        r->status = 400;
        snprintf(r->body, sizeof(r->body), "%s: the body holds no record\n", name);
        goto out;
    }
    rc = osc_queue_append(s->queue, s->dest->name, fmt, body, len, &id, &err);
    if (rc == OSC_EFULL) {
        r->status = 429;
        r->retry_after_s = FULL_RETRY_AFTER;
        snprintf(r->body, sizeof(r->body),
                 "the ingest queue of %s is full (queue_max_bytes %lld); retry later\n",
                 s->dest->name, (long long)s->dest->source.queue_max_bytes);
    } else if (rc == OSC_ETOOBIG) {
        r->status = 413;
        snprintf(r->body, sizeof(r->body), "the body is larger than queue_max_bytes\n");
    } else if (rc) {
        r->status = 503;
        r->retry_after_s = FULL_RETRY_AFTER;
        OSC_LOG_ERROR("source", "%s: %s", s->dest->name, err.msg);
        snprintf(r->body, sizeof(r->body), "the body could not be queued: %s\n", osc_strerror(rc));
    } else {
        r->status = 202;
        snprintf(r->body, sizeof(r->body), "{\"queued\":%llu,\"id\":%lld}\n", (unsigned long long)n,
                 (long long)id);
        atomic_fetch_add(&s->depth, 1);
        src_wake(s);
    }
out:
    osc_records_close(rd);
}

/* ---- the delivery thread ---------------------------------------------------- */

struct slot {
    int used;
    struct osc_queue_item *it;
    uint32_t nrec;       /* records in the body (known once fed) */
    unsigned char *done; /* per record: accepted or dead-lettered */
    size_t done_cap;
    uint32_t ndone;   /* how many are */
    uint32_t pending; /* offered, fate not known yet */
    uint64_t saved;   /* the progress stored in the queue */
    int fed;          /* every unsettled record was offered */
    int64_t due_ms;   /* a retry: offer the unsettled records again then (0: none) */
    unsigned attempts;
    int64_t saved_ms;
};

struct hsrc {
    struct slot slots[MAX_BODIES];
    size_t used;
    uint64_t bytes;
    uint64_t rng;
};

static void on_fate(struct src *s, uint64_t tag, enum osc_delivery_fate f)
{
    struct hsrc *h = s->kind;
    struct slot *sl = &h->slots[(tag >> 32) % MAX_BODIES];
    uint32_t i = (uint32_t)tag;

    if (!sl->used || i >= sl->nrec || !sl->pending)
        return;
    sl->pending--;
    if (f != OSC_DELIVERY_RETRY_LATER && !sl->done[i]) {
        sl->done[i] = 1;
        sl->ndone++;
    }
}

/* Records at the start of the body that are settled. */
static uint64_t prefix(const struct slot *sl)
{
    uint64_t p = 0;
    while (p < sl->nrec && sl->done[p])
        p++;
    return p;
}

static void save_progress(struct src *s, struct slot *sl)
{
    uint64_t p = prefix(sl);
    struct osc_err err = {0};

    if (p <= sl->saved)
        return;
    if (osc_queue_set_progress(s->queue, sl->it->id, p, &err) == 0)
        sl->saved = p;
    else
        OSC_LOG_WARN("source", "%s: %s", s->dest->name, err.msg);
    sl->saved_ms = osc_clock_mono_ms(NULL);
}

static void slot_free(struct hsrc *h, struct slot *sl)
{
    h->bytes -= sl->it ? sl->it->len : 0;
    osc_queue_item_free(sl->it);
    free(sl->done);
    memset(sl, 0, sizeof(*sl));
    h->used--;
}

/*
 * Offer the unsettled records of slot k to d (all of them the first time; the
 * records before the stored progress were settled before a restart). Returns 0,
 * or the delivery's stop code (the rest stays unsettled).
 */
static int feed(struct src *s, struct osc_delivery *d, size_t k)
{
    struct hsrc *h = s->kind;
    struct slot *sl = &h->slots[k];
    struct osc_records_reader *rd;
    struct osc_record rec;
    struct osc_err err = {0};
    char name[300];
    uint32_t i = 0;
    int got, rc = 0;

    snprintf(name, sizeof(name), "POST /ingest/%s #%lld", s->dest->name, (long long)sl->it->id);
    if (!(rd = osc_records_open_mem((const char *)sl->it->body, sl->it->len, name, sl->it->format,
                                    &err)))
        return OSC_ENOMEM;
    sl->fed = 0;
    sl->due_ms = 0;
    while ((got = osc_records_next(rd, &rec, &err)) == 1 || got == OSC_EDATA) {
        uint64_t tag = ((uint64_t)k << 32) | i;
        if (i >= sl->nrec) {
            /* the first pass learns the count */
            if ((size_t)i >= sl->done_cap) {
                size_t ncap = sl->done_cap ? sl->done_cap * 2 : 256;
                unsigned char *nd = realloc(sl->done, ncap);
                if (!nd) {
                    rc = OSC_ENOMEM;
                    break;
                }
                sl->done = nd;
                sl->done_cap = ncap;
            }
            sl->done[i] = i < sl->it->progress;
            sl->ndone += sl->done[i];
            sl->nrec = i + 1;
        }
        if (!sl->done[i]) {
            atomic_fetch_add(&s->n_in, 1);
            sl->pending++;
            rc = got == 1 ? osc_delivery_add_tagged(d, &rec, tag)
                          : osc_delivery_malformed_tagged(d, &rec, err.msg, tag);
            if (rc)
                break;
        }
        i++;
        if ((i & 255) == 0)
            src_beat(s);
    }
    if (rc == 0 && got < 0 && got != OSC_EDATA)
        rc = got;
    osc_records_close(rd);
    sl->fed = rc == 0;
    return rc;
}

/* Settle what can be: delete bodies that are done, schedule retries, save progress. */
static void settle(struct src *s)
{
    struct hsrc *h = s->kind;
    int64_t now = osc_clock_mono_ms(NULL);
    int deleted = 0;

    for (size_t k = 0; k < MAX_BODIES; k++) {
        struct slot *sl = &h->slots[k];
        struct osc_err err = {0};
        if (!sl->used || !sl->fed || sl->pending)
            continue;
        if (sl->ndone == sl->nrec) {
            if (osc_queue_delete(s->queue, sl->it->id, &err) != 0) {
                OSC_LOG_ERROR("source", "%s: %s", s->dest->name, err.msg);
                continue;
            }
            slot_free(h, sl);
            deleted = 1;
        } else if (!sl->due_ms) {
            sl->due_ms = now + osc_retry_backoff_ms(&s->dest->retry, ++sl->attempts, &h->rng);
            save_progress(s, sl);
        }
    }
    for (size_t k = 0; k < MAX_BODIES; k++)
        if (h->slots[k].used && h->slots[k].pending && now - h->slots[k].saved_ms > PROGRESS_EVERY)
            save_progress(s, &h->slots[k]);
    if (deleted)
        atomic_store(&s->depth, osc_queue_count(s->queue, s->dest->name));
}

/* Everything offered to a delivery that is going away comes back unsettled. */
static void forget_pending(struct hsrc *h, int64_t due)
{
    for (size_t k = 0; k < MAX_BODIES; k++)
        if (h->slots[k].used) {
            h->slots[k].pending = 0;
            h->slots[k].fed = 1;
            h->slots[k].due_ms = due;
        }
}

/* Claim bodies while there is room. 1 when something new was claimed. */
static int claim(struct src *s, struct osc_delivery *d, int *stopped)
{
    struct hsrc *h = s->kind;
    int any = 0;

    while (!*stopped && h->used < MAX_BODIES && (h->used == 0 || h->bytes < MAX_BYTES) &&
           !src_stopping(s)) {
        struct osc_queue_item *it = NULL;
        struct osc_err err = {0};
        size_t k;
        int rc;
        if (osc_queue_claim(s->queue, s->dest->name, &it, &err) != 0) {
            src_set_state(s, 0, "%s", err.msg);
            break;
        }
        if (!it)
            break;
        for (k = 0; h->slots[k].used; k++)
            ;
        memset(&h->slots[k], 0, sizeof(h->slots[k]));
        h->slots[k].used = 1;
        h->slots[k].it = it;
        h->slots[k].saved = it->progress;
        h->slots[k].saved_ms = osc_clock_mono_ms(NULL);
        h->used++;
        h->bytes += it->len;
        any = 1;
        if ((rc = feed(s, d, k)) != 0)
            *stopped = rc;
    }
    return any;
}

static void drain(struct osc_delivery *d)
{
    int64_t end = osc_clock_mono_ms(NULL) + SRC_STOP_GRACE_MS;

    while (osc_delivery_poll(d, 50) > 0 && osc_clock_mono_ms(NULL) < end)
        ;
}

void *src_http_main(void *arg)
{
    struct src *s = arg;
    struct hsrc *h = calloc(1, sizeof(*h));
    struct osc_delivery *d = NULL;
    unsigned failures = 0;

    src_beat(s);
    if (!h) {
        src_set_state(s, 0, "out of memory");
        return NULL;
    }
    h->rng = (uint64_t)osc_clock_wall_ms(NULL) | 1;
    s->kind = h;
    s->fate = on_fate;
    while (!src_stopping(s)) {
        struct osc_delivery_opts o;
        struct osc_delivery_stats st;
        struct osc_err err = {0};
        int stopped = 0, fresh;
        size_t busy;
        int64_t now = osc_clock_mono_ms(NULL);

        src_beat(s);
        if (!d) {
            src_delivery_opts(s, 1, &o);
            if (!(d = osc_delivery_new(s->cfg, s->dest->name, &o, &err))) {
                src_set_state(s, 0, "%s", err.msg);
                src_nap(s, src_backoff_ms(++failures));
                continue;
            }
        }
        for (size_t k = 0; k < MAX_BODIES && !stopped; k++)
            if (h->slots[k].used && h->slots[k].due_ms && h->slots[k].due_ms <= now) {
                int rc = feed(s, d, k);
                if (rc)
                    stopped = rc;
            }
        fresh = claim(s, d, &stopped);
        busy = osc_delivery_poll(d, 0);
        settle(s);
        osc_delivery_get_stats(d, &st);
        if (stopped || st.auth_failed || st.fatal || st.dead_letter_error) {
            /* the destination stopped: start over with a new delivery after a backoff */
            src_set_state(s, 0, "%s; records stay queued and are sent again in %.0fs",
                          st.auth_failed ? "OfficeSpace refused the API key"
                          : st.fatal     ? "a permanent transport error stopped the delivery"
                          : st.dead_letter_error ? "the dead-letter file cannot be written"
                                                 : osc_strerror(stopped),
                          (double)src_backoff_ms(failures + 1) / 1000.0);
            drain(d);
            settle(s);
            osc_delivery_free(d);
            d = NULL;
            forget_pending(h, 0);
            src_nap(s, src_backoff_ms(++failures));
            continue;
        }
        failures = 0;
        src_set_state(s, 1, "taking POST /ingest/%s", s->dest->name);
        if (!fresh && !busy)
            /* nothing on the wire: wait for a new body, a retry, or a batch's flush */
            h->used ? (void)osc_delivery_poll(d, 50) : src_nap(s, 200);
        else if (busy)
            osc_delivery_poll(d, 20);
    }
    if (d) {
        drain(d);
        settle(s);
        osc_delivery_free(d);
    }
    for (size_t k = 0; k < MAX_BODIES; k++)
        if (h->slots[k].used) {
            save_progress(s, &h->slots[k]);
            slot_free(h, &h->slots[k]);
        }
    free(h);
    s->kind = NULL;
    src_set_state(s, 0, "stopped");
    return NULL;
}
