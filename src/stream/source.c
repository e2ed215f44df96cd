/*
 * source.c - the registry of continuous sources: one struct src per active
 * destination with a source:, its thread, its counters, and the status
 * server's view of them (metrics, /livez, /readyz); see source.h.
 *
 * Invariants: the array of sources is built once by osc_sources_new() and
 * never changes while threads run; each thread owns its kind's state
 * (src->kind) and its delivery; the status server reads only atomics and
 * the state text under src->mu. The queue of an http source is opened here
 * (before the status server can take a POST) and closed after the join.
 */
#include "osc/source.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "osc/clock.h"
#include "osc/log.h"
#include "source_int.h"

struct osc_sources {
    const struct osc_config *cfg;
    volatile int *stop;
    struct src *v;
    size_t n;
};

/* ---- what the kinds share --------------------------------------------------- */

int src_stopping(const struct src *s) { return *s->stop != 0; }

void src_beat(struct src *s) { atomic_store(&s->heartbeat_ms, osc_clock_mono_ms(NULL)); }

void src_set_state(struct src *s, int up, const char *fmt, ...)
{
    char text[SRC_STATE_MAX];
    int changed;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->mu);
    changed = s->up != up || strcmp(s->state, text) != 0;
    s->up = up;
    memcpy(s->state, text, sizeof(text));
    pthread_mutex_unlock(&s->mu);
    if (!changed)
        return;
    if (up || src_stopping(s))
        OSC_LOG_INFO("source", "%s (%s): %s", s->dest->name,
                     osc_conf_source_type_name(s->dest->source.type), text);
    else
        OSC_LOG_ERROR("source", "%s (%s): %s", s->dest->name,
                      osc_conf_source_type_name(s->dest->source.type), text);
}

void src_nap(struct src *s, int64_t ms)
{
    int64_t end = osc_clock_mono_ms(NULL) + ms;

    /* slices: the stop flag is set by a signal handler, which cannot signal a condvar */
    while (!src_stopping(s)) {
        int64_t left = end - osc_clock_mono_ms(NULL);
        struct timespec ts;
        if (left <= 0)
            break;
        if (left > 100)
            left = 100;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)left * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&s->wake_mu);
        if (!s->woken)
            pthread_cond_timedwait(&s->wake_cv, &s->wake_mu, &ts);
        if (s->woken) {
            s->woken = 0;
            pthread_mutex_unlock(&s->wake_mu);
            break;
        }
        pthread_mutex_unlock(&s->wake_mu);
        src_beat(s);
    }
    src_beat(s);
}

void src_wake(struct src *s)
{
    pthread_mutex_lock(&s->wake_mu);
    s->woken = 1;
    pthread_cond_signal(&s->wake_cv);
    pthread_mutex_unlock(&s->wake_mu);
}

int64_t src_backoff_ms(unsigned n)
{
    int64_t ms = SRC_BACKOFF_MIN_MS;

    while (n-- > 1 && ms < SRC_BACKOFF_MAX_MS)
        ms *= 2;
    return ms < SRC_BACKOFF_MAX_MS ? ms : SRC_BACKOFF_MAX_MS;
}

static void on_tick(void *ud)
{
    struct src *s = ud;

    src_beat(s);
    if (s->tick)
        s->tick(s);
}

static void on_record(void *ud, uint64_t tag, enum osc_delivery_fate f)
{
    struct src *s = ud;

    switch (f) {
    case OSC_DELIVERY_ACCEPTED: atomic_fetch_add(&s->n_accepted, 1); break;
    case OSC_DELIVERY_DEAD_LETTERED: atomic_fetch_add(&s->n_dead, 1); break;
    case OSC_DELIVERY_RETRY_LATER: atomic_fetch_add(&s->n_retried, 1); break;
    }
    if (s->fate)
        s->fate(s, tag, f);
}

void src_delivery_opts(struct src *s, int tagged, struct osc_delivery_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->flush_interval_ms = s->dest->flush_interval_ms;
    o->interrupt = s->stop;
    o->tick = on_tick;
    o->ud = s;
    if (tagged) {
        /* a stream has no end: it stages into the open import, never clears or commits it */
        o->on_record = on_record;
        o->append = 1;
        o->commit = "";
    }
}

/* ---- the registry ----------------------------------------------------------- */

static void src_init(struct src *s, struct osc_sources *reg, const struct osc_conf_destination *d)
{
    memset(s, 0, sizeof(*s));
    s->reg = reg;
    s->cfg = reg->cfg;
    s->dest = d;
    s->stop = reg->stop;
    atomic_init(&s->n_in, 0);
    atomic_init(&s->n_accepted, 0);
    atomic_init(&s->n_dead, 0);
    atomic_init(&s->n_retried, 0);
    atomic_init(&s->depth, 0);
    atomic_init(&s->heartbeat_ms, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->wake_mu, NULL);
    pthread_cond_init(&s->wake_cv, NULL);
    snprintf(s->state, sizeof(s->state), "not started");
}

int osc_sources_new(const struct osc_config *cfg, volatile int *stop, struct osc_sources **out,
                    struct osc_err *err)
{
    const struct osc_conf_destination *d = cfg->destinations.items;
    struct osc_sources *r = calloc(1, sizeof(*r));
    size_t n = 0;
    int rc = 0;

    if (!r)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    r->cfg = cfg;
    r->stop = stop;
    for (size_t i = 0; i < cfg->destinations.n; i++)
        n += d[i].active && d[i].source.type != OSC_CONF_SOURCE_NONE;
    if (n && !(r->v = calloc(n, sizeof(*r->v)))) {
        free(r);
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < cfg->destinations.n && rc == 0; i++) {
        struct src *s;
        if (!d[i].active || d[i].source.type == OSC_CONF_SOURCE_NONE)
            continue;
        s = &r->v[r->n++];
        src_init(s, r, &d[i]);
        if (d[i].source.type == OSC_CONF_SOURCE_SPOOL) {
            rc = src_spool_prepare(d[i].source.path, err);
        } else if (d[i].source.type == OSC_CONF_SOURCE_HTTP) {
            char *qp = src_ingest_queue_path(cfg, d[i].name);
            if (!qp) {
                rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
                break;
            }
            rc = osc_queue_open(qp, (uint64_t)d[i].source.queue_max_bytes, &s->queue, err);
            free(qp);
            if (rc == 0)
                atomic_store(&s->depth, osc_queue_count(s->queue, d[i].name));
        }
    }
    if (rc) {
        osc_sources_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

size_t osc_sources_count(const struct osc_sources *s) { return s ? s->n : 0; }

int osc_sources_has_ingest(const struct osc_sources *s)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].dest->source.type == OSC_CONF_SOURCE_HTTP)
            return 1;
    return 0;
}

int osc_sources_start(struct osc_sources *r, struct osc_err *err)
{
    for (size_t i = 0; i < r->n; i++) {
        struct src *s = &r->v[i];
        void *(*fn)(void *) = s->dest->source.type == OSC_CONF_SOURCE_SPOOL  ? src_spool_main
                              : s->dest->source.type == OSC_CONF_SOURCE_HTTP ? src_http_main
                                                                             : src_nats_main;
        src_beat(s);
        if (pthread_create(&s->thread, NULL, fn, s) != 0)
            return osc_err_set(err, OSC_ENOMEM, "cannot start the thread of source %s",
                               s->dest->name);
        s->started = 1;
    }
    return 0;
}

size_t osc_sources_join(struct osc_sources *r, int timeout_ms)
{
    struct timespec until;
    size_t left = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    for (size_t i = 0; r && i < r->n; i++) {
        if (!r->v[i].started)
            continue;
        if (pthread_timedjoin_np(r->v[i].thread, NULL, &until) == 0)
            r->v[i].started = 0;
        else
            left++;
    }
    return left;
}

void osc_sources_free(struct osc_sources *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct src *s = &r->v[i];
        osc_queue_close(s->queue);
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->wake_mu);
        pthread_cond_destroy(&s->wake_cv);
    }
    free(r->v);
    free(r);
}

static struct src *find_http(const struct osc_sources *r, const char *dest)
{
    for (size_t i = 0; r && dest && i < r->n; i++)
        if (r->v[i].dest->source.type == OSC_CONF_SOURCE_HTTP &&
            strcmp(r->v[i].dest->name, dest) == 0)
            return &r->v[i];
    return NULL;
}

int64_t osc_sources_ingest_limit(const struct osc_sources *r, const char *dest)
{
    const struct src *s = find_http(r, dest);
    return s ? s->dest->source.max_body : -1;
}

void osc_sources_ingest(struct osc_sources *r, const char *dest, const char *authorization,
                        const char *content_type, const char *body, size_t len,
                        struct osc_ingest_reply *reply)
{
    struct src *s = find_http(r, dest);

    memset(reply, 0, sizeof(*reply));
    if (!s) {
        reply->status = 404;
        snprintf(reply->body, sizeof(reply->body),
                 "no destination with an http source is named '%.200s'\n", dest ? dest : "");
        return;
    }
    src_ingest(s, authorization, content_type, body, len, reply);
}

/* ---- status: metrics, live, ready ------------------------------------------- */

/* name as a Prometheus label value: backslash, quote and newline escaped. */
static int label(struct osc_buf *b, const char *name)
{
    int rc = 0;
    for (const char *p = name; *p && rc == 0; p++)
        rc = *p == '\\'   ? osc_buf_adds(b, "\\\\")
             : *p == '"'  ? osc_buf_adds(b, "\\\"")
             : *p == '\n' ? osc_buf_adds(b, "\\n")
                          : osc_buf_addc(b, *p);
    return rc;
}

static int series(struct osc_buf *b, const char *metric, const struct src *s, const char *result,
                  long long v)
{
    int rc = osc_buf_printf(b, "osconnect_source_%s{destination=\"", metric);
    if (!rc)
        rc = label(b, s->dest->name);
    if (!rc)
        rc = osc_buf_printf(b, "\",source=\"%s\"", osc_conf_source_type_name(s->dest->source.type));
    if (!rc && result)
        rc = osc_buf_printf(b, ",result=\"%s\"", result);
    if (!rc)
        rc = osc_buf_printf(b, "} %lld\n", v);
    return rc;
}

int osc_sources_render(struct osc_sources *r, struct osc_buf *b)
{
    int rc = 0;

    if (!r || !r->n)
        return 0;
    rc = osc_buf_adds(b, "# HELP osconnect_source_records_total Records taken from a source, and "
                         "what became of them.\n# TYPE osconnect_source_records_total counter\n");
    for (size_t i = 0; i < r->n && !rc; i++) {
        struct src *s = &r->v[i];
        rc = series(b, "records_total", s, "in", (long long)atomic_load(&s->n_in));
        if (!rc)
            rc = series(b, "records_total", s, "accepted", (long long)atomic_load(&s->n_accepted));
        if (!rc)
            rc = series(b, "records_total", s, "dead_lettered", (long long)atomic_load(&s->n_dead));
        if (!rc)
            rc = series(b, "records_total", s, "retried", (long long)atomic_load(&s->n_retried));
    }
    if (!rc)
        rc = osc_buf_adds(b, "# HELP osconnect_source_queue_depth Work waiting at the source "
                             "(spool: files, http: bodies, nats: messages).\n"
                             "# TYPE osconnect_source_queue_depth gauge\n");
    for (size_t i = 0; i < r->n && !rc; i++)
        rc = series(b, "queue_depth", &r->v[i], NULL, (long long)atomic_load(&r->v[i].depth));
    if (!rc)
        rc = osc_buf_adds(b, "# HELP osconnect_source_up 1 while the source is connected and its "
                             "destination is sending.\n# TYPE osconnect_source_up gauge\n");
    for (size_t i = 0; i < r->n && !rc; i++) {
        int up;
        pthread_mutex_lock(&r->v[i].mu);
        up = r->v[i].up;
        pthread_mutex_unlock(&r->v[i].mu);
        rc = series(b, "up", &r->v[i], NULL, up);
    }
    return rc;
}

/* Append "; " (when not first) and the text to why. */
static void add_why(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_why(char *why, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(why);
    va_list ap;

    if (len + 3 >= cap)
        return;
    if (len) {
        memcpy(why + len, "; ", 3);
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(why + len, cap - len, fmt, ap);
    va_end(ap);
}

int osc_sources_live(struct osc_sources *r, int64_t now, char *why, size_t cap)
{
    int ok = 1;

    why[0] = '\0';
    if (!r || !r->n) {
        snprintf(why, cap, "no sources");
        return 1;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct src *s = &r->v[i];
        int64_t age = now - atomic_load(&s->heartbeat_ms);
        int64_t limit = SRC_LIVE_MS + s->dest->timeout_ms;
        if (age > limit)
            ok = 0;
        add_why(why, cap, "source %s %s %.1fs ago (limit %.0fs)", s->dest->name,
                age > limit ? "silent since" : "ticked", (double)age / 1000.0,
                (double)limit / 1000.0);
    }
    return ok;
}

int osc_sources_ready(struct osc_sources *r, int64_t now, char *why, size_t cap)
{
    int ok = 1;

    (void)now;
    why[0] = '\0';
    if (!r || !r->n) {
        snprintf(why, cap, "no sources");
        return 1;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct src *s = &r->v[i];
        pthread_mutex_lock(&s->mu);
        ok &= s->up;
        add_why(why, cap, "source %s (%s): %s", s->dest->name,
                osc_conf_source_type_name(s->dest->source.type), s->state);
        pthread_mutex_unlock(&s->mu);
    }
    return ok;
}
