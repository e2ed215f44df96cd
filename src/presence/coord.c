/*
 * coord.c - which buildings this instance polls, agreed with the other
 * instances through KV leases (lease.h); see presence.h.
 *
 * Invariants: the lease (struct osc_lease) is used by the round thread
 * only, and by osc_presence_coord_stop() after that thread was joined;
 * held[] and gen are under mu. gen grows whenever a round gains a building,
 * so the presence loop can run a cycle at once instead of waiting for its
 * next grid slot. A round that fails keeps what lease.h says is still safe
 * to poll (leases written less than one lifetime ago).
 */
#include "osc/presence.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "osc/clock.h"
#include "osc/lease.h"
#include "osc/log.h"

#define MIN_PERIOD_MS      250
#define REQUEST_TIMEOUT_MS 1000

struct osc_presence_coord {
    struct osc_lease *lease;
    char **ids; /* copies of presence.buildings */
    size_t n;
    int64_t period_ms;
    /* what the config said, for osc_presence_coord_same() */
    int64_t interval_ms;
    char *url, *bucket, *creds_file, *token, *ca_file;
    int verify_tls;

    pthread_t thread;
    int started;
    pthread_mutex_t mu; /* guards held, gen, quit */
    pthread_cond_t cv;
    unsigned char *held;
    uint64_t gen;
    int quit;
    int failing; /* the last round failed (logged once) */
};

static int streq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

int osc_presence_coord_same(const struct osc_presence_coord *c, const struct osc_config *cfg)
{
    const struct osc_conf_coordination *k = &cfg->presence.coordination;

    if (!c || !k->meta.present || k->type != OSC_CONF_COORD_NATS ||
        c->n != cfg->presence.buildings.n || c->interval_ms != cfg->presence.interval_ms ||
        !streq(c->url, k->url) || !streq(c->bucket, k->bucket) ||
        !streq(c->creds_file, k->creds_file) || !streq(c->token, k->token) ||
        !streq(c->ca_file, k->ca_file) || c->verify_tls != k->verify_tls)
        return 0;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->ids[i], cfg->presence.buildings.v[i]) != 0)
            return 0;
    return 1;
}

/* Log the held set when it changed: "holding 3 of 6 building(s): A, B, C". */
static void log_held(const struct osc_presence_coord *c, const unsigned char *held)
{
    char list[1024];
    size_t len = 0, count = 0;

    list[0] = '\0';
    for (size_t i = 0; i < c->n; i++) {
        if (!held[i])
            continue;
        count++;
        if (len < sizeof(list))
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
                                    c->ids[i]);
    }
    OSC_LOG_INFO("presence", "holding %zu of %zu building(s)%s%s (%zu live instance(s))", count,
                 c->n, count ? ": " : "", list, osc_lease_live(c->lease));
}

/* One lease round; publishes the result. */
static void round_once(struct osc_presence_coord *c, unsigned char *tmp)
{
    struct osc_err err = {0};
    int rc = osc_lease_round(c->lease, (const char *const *)c->ids, c->n, tmp, &err);
    int changed = 0, gained = 0;

    if (rc && !c->failing)
        OSC_LOG_WARN("presence",
                     "coordination: %s; polling only the buildings whose lease is "
                     "still ours",
                     err.msg);
    else if (!rc && c->failing)
        OSC_LOG_INFO("presence", "coordination: lease rounds work again");
    c->failing = rc != 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        changed |= tmp[i] != c->held[i];
        gained |= tmp[i] && !c->held[i];
    }
    memcpy(c->held, tmp, c->n);
    if (gained)
        c->gen++;
    pthread_mutex_unlock(&c->mu);
    if (changed)
        log_held(c, tmp);
}

static void *rounds(void *arg)
{
    struct osc_presence_coord *c = arg;
    unsigned char *tmp = malloc(c->n ? c->n : 1);

    if (!tmp)
        return NULL;
    for (;;) {
        struct timespec ts;
        int quit;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(c->period_ms / 1000);
        ts.tv_nsec += (long)(c->period_ms % 1000) * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&c->mu);
        while (!c->quit && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
            ;
        quit = c->quit;
        pthread_mutex_unlock(&c->mu);
        if (quit)
            break;
        round_once(c, tmp);
    }
    free(tmp);
    return NULL;
}

static void coord_free(struct osc_presence_coord *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ids[i]);
    free(c->ids);
    free(c->held);
    free(c->url);
    free(c->bucket);
    free(c->creds_file);
    free(c->token);
    free(c->ca_file);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *oom = 1;
    return d;
}

int osc_presence_coord_start(const struct osc_config *cfg, struct osc_presence_coord **out,
                             struct osc_err *err)
{
    const struct osc_conf_coordination *k = &cfg->presence.coordination;
    struct osc_presence_coord *c = calloc(1, sizeof(*c));
    struct osc_lease_opts lo;
    char instance[300], host[200] = "host";
    unsigned char *tmp = NULL;
    int oom = 0, rc;

    if (!c)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->n = cfg->presence.buildings.n;
    c->interval_ms = cfg->presence.interval_ms;
    c->period_ms = c->interval_ms / 4 > MIN_PERIOD_MS ? c->interval_ms / 4 : MIN_PERIOD_MS;
    c->ids = calloc(c->n ? c->n : 1, sizeof(*c->ids));
    c->held = calloc(c->n ? c->n : 1, 1);
    tmp = calloc(c->n ? c->n : 1, 1);
    oom = !c->ids || !c->held || !tmp;
    for (size_t i = 0; !oom && i < c->n; i++)
        c->ids[i] = dup_or_null(cfg->presence.buildings.v[i], &oom);
    c->url = dup_or_null(k->url, &oom);
    c->bucket = dup_or_null(k->bucket, &oom);
    c->creds_file = dup_or_null(k->creds_file, &oom);
    c->token = dup_or_null(k->token, &oom);
    c->ca_file = dup_or_null(k->ca_file, &oom);
    c->verify_tls = k->verify_tls;
    if (oom) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto fail;
    }
    gethostname(host, sizeof(host) - 1);
    snprintf(instance, sizeof(instance), "%s-%ld", host, (long)getpid());
    memset(&lo, 0, sizeof(lo));
    lo.conn.url = c->url;
    lo.conn.creds_file = c->creds_file;
    lo.conn.token = c->token;
    lo.conn.ca_file = c->ca_file;
    lo.conn.no_verify_tls = !c->verify_tls;
    lo.conn.name = instance;
    lo.conn.connect_timeout_ms = 2000;
    /* a round must end well within the lease lifetime */
    lo.conn.request_timeout_ms = REQUEST_TIMEOUT_MS;
    lo.bucket = c->bucket;
    lo.instance = instance;
    lo.ttl_ms = c->interval_ms;
    if ((rc = osc_lease_open(&lo, &c->lease, err)))
        goto fail;
    OSC_LOG_INFO("presence",
                 "coordination: instance %s, bucket %s, leases of %.1fs renewed every %.2fs",
                 instance, c->bucket, (double)lo.ttl_ms / 1000.0, (double)c->period_ms / 1000.0);
    round_once(c, tmp);
    free(tmp);
    tmp = NULL;
    if (pthread_create(&c->thread, NULL, rounds, c) != 0) {
        rc = osc_err_set(err, OSC_ENOMEM, "cannot start the lease thread");
        goto fail;
    }
    c->started = 1;
    *out = c;
    return 0;
fail:
    free(tmp);
    osc_lease_close(c->lease);
    coord_free(c);
    return rc;
}

uint64_t osc_presence_coord_held(struct osc_presence_coord *c, unsigned char *held, size_t n)
{
    uint64_t gen;

    pthread_mutex_lock(&c->mu);
    memcpy(held, c->held, n < c->n ? n : c->n);
    if (n > c->n)
        memset(held + c->n, 0, n - c->n);
    gen = c->gen;
    pthread_mutex_unlock(&c->mu);
    return gen;
}

uint64_t osc_presence_coord_gen(struct osc_presence_coord *c)
{
    uint64_t gen;

    pthread_mutex_lock(&c->mu);
    gen = c->gen;
    pthread_mutex_unlock(&c->mu);
    return gen;
}

void osc_presence_coord_stop(struct osc_presence_coord *c)
{
    struct osc_err err = {0};

    if (!c)
        return;
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    if (osc_lease_release(c->lease, &err))
        OSC_LOG_WARN("presence", "coordination: %s (the leases expire on their own)", err.msg);
    else
        OSC_LOG_INFO("presence", "coordination: leases released");
    osc_lease_close(c->lease);
    coord_free(c);
}
