/*
 * engine.c - one presence cycle: discover, read, map, aggregate, diff,
 * push, remember; see presence.h.
 *
 * Invariants: p->last holds, per OfficeSpace location, exactly what the
 * state store holds (it is loaded from it at start and updated only after
 * the store write of an accepted push committed), so the diff never needs
 * the database. p->topo is replaced only by a discovery that read every
 * building. Monotonic time drives deadlines and the topology age; the wall
 * clock only stamps accepted pushes (they must survive restarts, which the
 * monotonic clock does not).
 */
#include "osc/presence.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osc/http.h"
#include "osc/log.h"
#include "osc/mapped.h"
#include "osc/metrics.h"
#include "osc/retry.h"
#include "osc/store.h"

/* ---- last accepted state per location (open addressing) ---------------- */

struct last_entry {
    struct osc_urn urn;
    struct osc_presence_last last; /* last.known == 0: empty slot */
    uint64_t seen;                 /* the cycle that last found the location in the topology */
    uint32_t bldg;                 /* 1 + the building it was last seen in; 0: not seen yet */
};

struct last_map {
    struct last_entry *v;
    size_t n, cap;
};

static size_t urn_slot(const struct osc_urn *u, size_t cap)
{
    uint64_t h = (uint64_t)u->id * 0x9E3779B97F4A7C15ULL ^ (uint64_t)u->type;
    return (size_t)(h ^ (h >> 31)) & (cap - 1);
}

static struct last_entry *entry_get(const struct last_map *m, const struct osc_urn *u)
{
    if (!m->cap)
        return NULL;
    for (size_t i = urn_slot(u, m->cap); m->v[i].last.known; i = (i + 1) & (m->cap - 1))
        if (osc_urn_cmp(&m->v[i].urn, u) == 0)
            return &m->v[i];
    return NULL;
}

static struct osc_presence_last *last_get(const struct last_map *m, const struct osc_urn *u)
{
    struct last_entry *e = entry_get(m, u);
    return e ? &e->last : NULL;
}

static int last_put(struct last_map *m, const struct osc_urn *u, const struct osc_presence_last *l)
{
    struct osc_presence_last *cur = last_get(m, u);
    size_t i;

    if (cur) {
        *cur = *l;
        cur->known = 1;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 256;
        struct last_entry *nv = calloc(ncap, sizeof(*nv));
        if (!nv)
            return OSC_ENOMEM;
        for (size_t k = 0; k < m->cap; k++) {
            if (!m->v[k].last.known)
                continue;
            for (i = urn_slot(&m->v[k].urn, ncap); nv[i].last.known; i = (i + 1) & (ncap - 1))
                ;
            nv[i] = m->v[k];
        }
        free(m->v);
        m->v = nv;
        m->cap = ncap;
    }
    for (i = urn_slot(u, m->cap); m->v[i].last.known; i = (i + 1) & (m->cap - 1))
        ;
    m->v[i].urn = *u;
    m->v[i].last = *l;
    m->v[i].last.known = 1;
    m->n++;
    return 0;
}

static int load_row(void *ud, const struct osc_urn *urn, const struct osc_presence_last *last)
{
    return last_put(ud, urn, last);
}

/* ---- the engine -------------------------------------------------------- */

struct osc_presence {
    const struct osc_config *cfg;
    struct osc_presence_opts opts;
    struct osc_http *mapped_http, *os_http;
    struct osc_store *store;
    struct last_map last;
    struct osc_mapped_topo *topo;
    int64_t discovered_at; /* monotonic */
    /* Retry-After that outlasted a cycle, per API: no request before this (monotonic) */
    int64_t pause_until[OSC_METRICS__NAPI];
    int need_discovery;
    uint64_t rng;
    uint64_t ncycles; /* cycles run, for last_entry.seen */
    /* osc_presence_hold(): the buildings this instance polls (NULL: all) */
    unsigned char *held;
    const char **held_ids; /* the ids of the held ones, in config order */
    size_t nheld;
    uint32_t *loc_bldg; /* per topology location: 1 + the building its discovery found it in */
};

static int stopping(const struct osc_presence *p) { return p->opts.stop && *p->opts.stop; }

int osc_presence_new(const struct osc_config *cfg, const struct osc_presence_opts *opts,
                     struct osc_presence **out, struct osc_err *err)
{
    struct osc_presence *p = NULL;
    struct osc_http_opts mo = {0}, oo = {0};
    int rc = 0;

    if (!cfg->presence.meta.present || cfg->presence.buildings.n == 0)
        return osc_err_set(err, OSC_ECONFIG, "%s: a presence: section with buildings is required",
                           cfg->path);
    if (!(p = calloc(1, sizeof(*p)))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out;
    }
    p->cfg = cfg;
    if (opts)
        p->opts = *opts;
    p->need_discovery = 1;
    p->rng = (uint64_t)osc_clock_wall_ms(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x5DEECE66DULL;
    if (!p->rng)
        p->rng = 1;

    mo.timeout_ms = (long)cfg->mapped.timeout_ms;
    mo.no_verify_tls = !cfg->mapped.verify_tls;
    mo.ca_file = cfg->mapped.ca_file;
    mo.conf_section = "mapped";
    mo.max_response = (size_t)cfg->presence.max_response;
    mo.max_in_flight = 1;
    mo.abort = p->opts.stop; /* a stop aborts what is in flight (nothing is recorded from it) */
    oo.timeout_ms = (long)cfg->officespace.timeout_ms;
    oo.connect_timeout_ms = (long)cfg->officespace.connect_timeout_ms;
    oo.no_verify_tls = !cfg->officespace.verify_tls;
    oo.ca_file = cfg->officespace.ca_file;
    oo.conf_section = "officespace";
    oo.max_in_flight = 1;
    oo.abort = p->opts.stop;
    if (!(p->mapped_http = osc_http_new(&mo, err)) || !(p->os_http = osc_http_new(&oo, err))) {
        rc = OSC_ENOMEM;
        goto out;
    }
    if ((rc = osc_store_open(cfg->presence.state, p->opts.dry_run, &p->store, err)))
        goto out;
    if ((rc = osc_store_each(p->store, load_row, &p->last, err)))
        goto out;
    OSC_LOG_DEBUG("presence", "state %s: %zu locations remembered", cfg->presence.state, p->last.n);
out:
    if (rc) {
        osc_presence_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void osc_presence_free(struct osc_presence *p)
{
    if (!p)
        return;
    osc_http_free(p->mapped_http);
    osc_http_free(p->os_http);
    osc_store_close(p->store);
    osc_mapped_topo_free(p->topo);
    free(p->last.v);
    free(p->held);
    free(p->held_ids);
    free(p->loc_bldg);
    free(p);
}

void osc_presence_invalidate(struct osc_presence *p) { p->need_discovery = 1; }

int osc_presence_hold(struct osc_presence *p, const unsigned char *held)
{
    const struct osc_strlist *b = &p->cfg->presence.buildings;
    size_t n = 0;

    if (!held) {
        if (p->held)
            p->need_discovery = 1;
        free(p->held);
        free(p->held_ids);
        p->held = NULL;
        p->held_ids = NULL;
        p->nheld = 0;
        return 0;
    }
    if (!p->held) {
        if (!(p->held = calloc(b->n ? b->n : 1, 1)) ||
            !(p->held_ids = calloc(b->n ? b->n : 1, sizeof(*p->held_ids))))
            return OSC_ENOMEM;
        p->need_discovery = 1;
    }
    for (size_t i = 0; i < b->n; i++) {
        /* a building gained has no topology yet; one given up must leave it (its locations
         * would look unread, and expire, while another instance polls them) */
        if ((held[i] != 0) != p->held[i])
            p->need_discovery = 1;
        p->held[i] = held[i] != 0;
        if (held[i])
            p->held_ids[n++] = b->v[i];
    }
    p->nheld = n;
    return 0;
}

/* Building i is polled by this instance. */
static int polls(const struct osc_presence *p, size_t i) { return !p->held || p->held[i]; }

/* A sign of life for /livez before each request (a request is the longest silence). */
static void tick(struct osc_presence *p)
{
    osc_metrics_tick(p->opts.metrics, osc_clock_mono_ms(p->opts.clock));
}

static void api_error(struct osc_presence *p, enum osc_metrics_api api, enum osc_metrics_class c)
{
    if (p->opts.metrics)
        osc_metrics_api_error(p->opts.metrics, api, c);
}

/* One HTTP call to api, started at t0 (monotonic ms), into the request-duration histogram. */
static void observe(struct osc_presence *p, enum osc_metrics_api api, int64_t t0)
{
    osc_metrics_observe_request(p->opts.metrics, api,
                                (double)(osc_clock_mono_ms(p->opts.clock) - t0) / 1000.0);
}

#define RETRY_AFTER_MAX_MS (3600 * 1000)

/*
 * Wait before retry number `attempt`, unless that would pass the deadline
 * or a stop was asked. 1 if the caller may retry, 0 if not. A Retry-After
 * that reaches past the deadline is kept for the next cycles (see paused()).
 */
static int retry_wait(struct osc_presence *p, enum osc_metrics_api api, unsigned attempt,
                      int64_t retry_after_ms, int64_t deadline)
{
    const struct osc_conf_retry *pol = &p->cfg->presence.retry;
    int64_t wait =
        retry_after_ms >= 0 ? retry_after_ms : osc_retry_backoff_ms(pol, attempt, &p->rng);
    int64_t now = osc_clock_mono_ms(p->opts.clock);

    /* a server's Retry-After is honoured up to an hour: one odd header (a
     * year, a date far ahead) must not silence an API until a restart */
    if (retry_after_ms > RETRY_AFTER_MAX_MS) {
        OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "presence", "retry_after_capped",
                   (OSC_LF_STR("api", api == OSC_METRICS_MAPPED ? "mapped" : "officespace"),
                    OSC_LF_INT("retry_after_ms", retry_after_ms),
                    OSC_LF_INT("delay_ms", RETRY_AFTER_MAX_MS)),
                   "%s asked to wait %llds (Retry-After); waiting %ds at most",
                   api == OSC_METRICS_MAPPED ? "Mapped" : "OfficeSpace",
                   (long long)(retry_after_ms / 1000), RETRY_AFTER_MAX_MS / 1000);
        retry_after_ms = RETRY_AFTER_MAX_MS;
        wait = retry_after_ms;
    }
    if (retry_after_ms >= 0 && now + retry_after_ms >= deadline) {
        p->pause_until[api] = now + retry_after_ms;
        OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "presence", "paused",
                   (OSC_LF_STR("api", api == OSC_METRICS_MAPPED ? "mapped" : "officespace"),
                    OSC_LF_INT("delay_ms", retry_after_ms)),
                   "%s asked to wait %.1fs (Retry-After): no request to it before then",
                   api == OSC_METRICS_MAPPED ? "Mapped" : "OfficeSpace",
                   (double)retry_after_ms / 1000.0);
    }
    if (attempt >= (unsigned)pol->max_attempts || stopping(p) || now + wait >= deadline)
        return 0;
    OSC_LOG_DEBUG("presence", "retry %u in %lldms", attempt, (long long)wait);
    osc_clock_sleep_ms(wait, p->opts.stop);
    return !stopping(p);
}

/* 1 (with err set) while the API's Retry-After from an earlier cycle still holds. */
static int paused(struct osc_presence *p, enum osc_metrics_api api, struct osc_err *err)
{
    int64_t left = p->pause_until[api] - osc_clock_mono_ms(p->opts.clock);

    if (left <= 0)
        return 0;
    osc_err_set(err, OSC_EUNAVAIL,
                "%s asked to wait (Retry-After): %.1fs left; no request this cycle",
                api == OSC_METRICS_MAPPED ? "Mapped" : "OfficeSpace", (double)left / 1000.0);
    return 1;
}

/* Buildings ids[0..n) from Mapped in one request, retried within the cycle on 429/5xx/transport. */
static int fetch_buildings(struct osc_presence *p, const char *const *ids, size_t n, int discover,
                           struct osc_mapped_topo *t, int64_t deadline,
                           struct osc_metrics_cycle *rep, struct osc_err *err)
{
    int64_t ra, t0;
    int rc;

    if (paused(p, OSC_METRICS_MAPPED, err))
        return OSC_EUNAVAIL;
    for (unsigned attempt = 1;; attempt++) {
        if (stopping(p))
            return osc_err_set(err, OSC_EINTERRUPTED, "stopping: Mapped was not read");
        tick(p);
        osc_err_clear(err);
        rep->mapped_requests++;
        t0 = osc_clock_mono_ms(p->opts.clock);
        rc = osc_mapped_fetch(p->mapped_http, &p->cfg->mapped,
                              (size_t)p->cfg->presence.max_response, ids, n, discover, t, &ra, err);
        observe(p, OSC_METRICS_MAPPED, t0);
        if (rc == 0)
            return 0;
        if (stopping(p)) /* the read was aborted, or failed while stopping: no retry */
            return osc_err_set(err, OSC_EINTERRUPTED, "stopping: Mapped was not read");
        switch (rc) {
        case OSC_EAUTH: api_error(p, OSC_METRICS_MAPPED, OSC_METRICS_AUTH); return rc;
        case OSC_ETOOBIG: api_error(p, OSC_METRICS_MAPPED, OSC_METRICS_TOO_BIG); return rc;
        case OSC_EPROTO: api_error(p, OSC_METRICS_MAPPED, OSC_METRICS_GRAPHQL); return rc;
        case OSC_EUNAVAIL:
            api_error(p, OSC_METRICS_MAPPED, osc_metrics_class_of(err->status));
            break;
        default:
            api_error(p, OSC_METRICS_MAPPED, osc_metrics_class_of(err->status));
            /* a refused Mapped request (404, bad URL) is not OfficeSpace refusing items */
            if (rc == OSC_EREJECTED)
                rc = err->code = OSC_EHTTP;
            return rc;
        }
        OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "presence", "mapped_failed",
                   (OSC_LF_STR("api", "mapped"), OSC_LF_STR("url", p->cfg->mapped.url),
                    OSC_LF_INT_NZ("status", err->status), OSC_LF_INT("attempt", attempt)),
                   "%s", osc_err_text(err, rc));
        /* only HTTP-level failures get here: t was not touched, retrying is safe */
        if (!retry_wait(p, OSC_METRICS_MAPPED, attempt, ra, deadline))
            return rc;
    }
}

/* Discover every building into a new topology; adopt it only when all were read. */
static int discover(struct osc_presence *p, int64_t deadline, struct osc_metrics_cycle *rep,
                    struct osc_err *err)
{
    struct osc_mapped_topo *t = osc_mapped_topo_new();
    uint32_t *lb = NULL; /* per location of t: 1 + its building */
    size_t lb_cap = 0;
    int rc = 0;

    if (!t)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    /* a malformed part warned about once stays quiet in the new topology (given back below
     * if the discovery fails) */
    if (p->topo)
        osc_mapped_topo_keep_notes(t, p->topo);
    for (size_t i = 0; i < p->cfg->presence.buildings.n; i++) {
        const char *b = p->cfg->presence.buildings.v[i];
        size_t before = t->nlocs, places = t->places;
        if (!polls(p, i))
            continue;
        if ((rc = fetch_buildings(p, &b, 1, 1, t, deadline, rep, err)))
            goto out;
        if (t->nlocs > lb_cap) {
            size_t ncap = t->nlocs * 2;
            uint32_t *nb = realloc(lb, ncap * sizeof(*nb));
            if (!nb) {
                rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
                goto out;
            }
            lb = nb;
            lb_cap = ncap;
        }
        for (size_t l = before; l < t->nlocs; l++)
            lb[l] = (uint32_t)i + 1;
        /* Mapped answers an unknown id with an empty list: say so, a typo is likely */
        if (t->places == places)
            OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "presence", "building_not_found",
                       (OSC_LF_STR("building", b)),
                       "building %s: not found in Mapped (check presence.buildings)", b);
        OSC_LOG_DEBUG("presence", "building %s: %zu locations", b, t->nlocs - before);
    }
    osc_mapped_topo_finish(t);
    OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "presence", "discovered",
               (OSC_LF_INT("locations", t->nlocs), OSC_LF_INT("points", t->npoints_used),
                OSC_LF_INT("places", t->places),
                OSC_LF_INT("buildings", p->held ? p->nheld : p->cfg->presence.buildings.n),
                OSC_LF_INT("invalid_identities", t->invalid_identities)),
               "discovered %zu locations and %zu occupancy points in %zu places of %zu "
               "building(s); %zu invalid or conflicting identities",
               t->nlocs, t->npoints_used, t->places,
               p->held ? p->nheld : p->cfg->presence.buildings.n, t->invalid_identities);
    osc_mapped_topo_free(p->topo);
    p->topo = t;
    t = NULL;
    free(p->loc_bldg);
    p->loc_bldg = lb;
    lb = NULL;
    p->need_discovery = 0;
    p->discovered_at = osc_clock_mono_ms(p->opts.clock);
    rep->discovered = 1;
    rep->invalid_identities = p->topo->invalid_identities;
out:
    if (t && p->topo)
        osc_mapped_topo_keep_notes(p->topo, t);
    osc_mapped_topo_free(t);
    free(lb);
    return rc;
}

/*
 * Latest values of the known points, every building in one request (the
 * topology is known, so the answer is small: ids and values only); if that
 * answer is larger than presence.max_response, one request per building.
 * On failure no point has a value and nothing is pushed this cycle.
 */
static int read_values(struct osc_presence *p, int64_t deadline, struct osc_metrics_cycle *rep,
                       struct osc_err *err)
{
    const struct osc_conf_presence *pc = &p->cfg->presence;
    const char *const *ids = p->held ? p->held_ids : (const char *const *)pc->buildings.v;
    size_t n = p->held ? p->nheld : pc->buildings.n;
    int rc;

    osc_mapped_topo_clear_values(p->topo);
    rc = fetch_buildings(p, ids, n, 0, p->topo, deadline, rep, err);
    if (rc == OSC_ETOOBIG && n > 1) {
        OSC_LOG_INFO("presence", "%s; reading one building per request", osc_err_text(err, rc));
        osc_mapped_topo_clear_values(p->topo);
        rc = 0;
        for (size_t i = 0; i < n && !rc; i++)
            rc = fetch_buildings(p, &ids[i], 1, 0, p->topo, deadline, rep, err);
    }
    if (rc)
        osc_mapped_topo_clear_values(p->topo); /* a half-read answer is not a reading */
    return rc;
}

static const char *place_of(const struct osc_mapped_loc *l)
{
    return l ? l->place_id : "(no longer in Mapped)";
}

static void print_table_head(FILE *f)
{
    fprintf(f, "%-28s %-40s %-16s %5s  %-20s  %s\n", "LOCATION", "MAPPED PLACE", "STATUS", "COUNT",
            "DETECTED AT", "WHY");
}

static void print_row(FILE *f, const struct osc_mapped_loc *l, const struct osc_presence_item *it,
                      enum osc_presence_why why)
{
    char urn[32], place[48], when[32];

    snprintf(urn, sizeof(urn), "%s:%lld", osc_urn_type_name(it->urn.type), (long long)it->urn.id);
    if (l)
        snprintf(place, sizeof(place), "%s %s%s%.20s", l->place_kind, l->place_id,
                 l->place_name[0] ? " " : "", l->place_name);
    else
        snprintf(place, sizeof(place), "%s", place_of(l));
    osc_clock_iso8601(it->at_ms, when, sizeof(when));
    fprintf(f, "%-28s %-40s %-16s %5lld  %-20s  %s\n", urn, place,
            osc_presence_status_name(it->status), (long long)it->count, when,
            osc_presence_why_name(why));
}

static void accepted_as(const struct osc_presence_item *it, enum osc_presence_why why,
                        int64_t now_wall, struct osc_presence_last *l)
{
    memset(l, 0, sizeof(*l));
    l->known = 1;
    l->status = it->status;
    l->count = it->count;
    l->at_ms = it->at_ms;
    l->sent_ms = now_wall;
    l->expired = why == OSC_PRESENCE_EXPIRE;
}

/*
 * Record the ACCEPTED items of a chunk (why[i] says which were expiries):
 * store first, memory after the commit. Nothing else is ever recorded.
 */
static int remember(struct osc_presence *p, const struct osc_presence_item *items,
                    const enum osc_presence_why *why, size_t n, int64_t now_wall,
                    struct osc_err *err)
{
    struct osc_presence_last l;
    int rc;

    if ((rc = osc_store_begin(p->store, err)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (items[i].state != OSC_PRESENCE_ITEM_ACCEPTED)
            continue;
        accepted_as(&items[i], why[i], now_wall, &l);
        if ((rc = osc_store_put(p->store, &items[i].urn, &l, err))) {
            osc_store_rollback(p->store);
            return rc;
        }
    }
    if ((rc = osc_store_commit(p->store, err)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (items[i].state != OSC_PRESENCE_ITEM_ACCEPTED)
            continue;
        accepted_as(&items[i], why[i], now_wall, &l);
        if ((rc = last_put(&p->last, &items[i].urn, &l)))
            return osc_err_set(err, rc, "out of memory");
    }
    return 0;
}

/*
 * Push one chunk, retrying the request within the cycle. Returns 0 when an
 * answer was applied (every item ACCEPTED, FAILED or UNACKED as it said),
 * OSC_EAUTH, or OSC_EUNAVAIL/OSC_EPROTO when no usable answer came (items
 * PENDING; also when a stop aborted the request in flight).
 */
static int push_chunk(struct osc_presence *p, struct osc_presence_item *items, size_t n,
                      int64_t deadline, struct osc_metrics_cycle *rep, struct osc_err *err)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          "Accept: application/json", NULL};
    struct osc_http_request req = {0};
    struct osc_http_response resp;
    struct osc_buf body;
    int rc;

    osc_buf_init(&body, 16 * 1024 * 1024);
    osc_http_response_init(&resp);
    if ((rc = osc_presence_push_body(items, n, &body))) {
        osc_err_set(err, rc, "cannot build the presence request: %s", osc_strerror(rc));
        goto out;
    }
    req.method = "POST";
    req.url = p->cfg->officespace.graphql_url;
    req.headers = headers;
    req.auth = OSC_HTTP_AUTH_OS_APIKEY;
    req.secret = p->cfg->officespace.graphql_api_key;
    req.body = body.data;
    req.body_len = body.len;
    for (unsigned attempt = 1;; attempt++) {
        enum osc_http_outcome oc;
        int64_t t0;
        tick(p);
        osc_err_clear(err);
        rep->push_requests++;
        t0 = osc_clock_mono_ms(p->opts.clock);
        rc = osc_http_perform(p->os_http, &req, &resp, err);
        observe(p, OSC_METRICS_OFFICESPACE, t0);
        if (rc && stopping(p)) {
            /* aborted in flight: no answer, nothing is recorded, the items stay unsent */
            rc = osc_err_set(err, OSC_EINTERRUPTED, "stopping: the presence push was aborted");
            goto out;
        }
        oc = osc_retry_classify(&p->cfg->presence.retry, resp.status, resp.transport);
        if (rc == 0 && (resp.status == 401 || resp.status == 403)) {
            api_error(p, OSC_METRICS_OFFICESPACE, OSC_METRICS_AUTH);
            rc = osc_err_set(err, OSC_EAUTH,
                             "OfficeSpace refused the GraphQL key (HTTP %ld): check "
                             "officespace.graphql_api_key",
                             resp.status);
            goto out;
        }
        if (oc == OSC_HTTP_SENT || (rc == 0 && oc == OSC_HTTP_REJECT)) {
            rc = osc_presence_push_parse(resp.body.data ? resp.body.data : "", resp.body.len, items,
                                         n, err);
            if (oc == OSC_HTTP_REJECT) {
                api_error(p, OSC_METRICS_OFFICESPACE, OSC_METRICS_CLIENT);
                /* a refused request with no usable answer: nothing was acknowledged */
                for (size_t i = 0; i < n; i++)
                    if (items[i].state == OSC_PRESENCE_ITEM_PENDING) {
                        items[i].state = OSC_PRESENCE_ITEM_UNACKED;
                        snprintf(items[i].error, sizeof(items[i].error), "HTTP %ld", resp.status);
                    }
                rc = 0;
            } else if (rc) {
                api_error(p, OSC_METRICS_OFFICESPACE, OSC_METRICS_GRAPHQL);
            }
            goto out;
        }
        api_error(p, OSC_METRICS_OFFICESPACE, osc_metrics_class_of(rc ? 0 : resp.status));
        if (rc && osc_http_transport_permanent(resp.transport)) {
            /* a certificate or URL problem: no retry; err says what to fix */
            rc = err->code = OSC_EHTTP;
            goto out;
        }
        if (rc == 0)
            osc_err_set(err, OSC_EUNAVAIL, "OfficeSpace answered HTTP %ld", resp.status);
        rc = OSC_EUNAVAIL;
        err->code = rc;
        OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "presence", "push_failed",
                   (OSC_LF_STR("api", "officespace"), OSC_LF_STR("url", req.url),
                    OSC_LF_INT_NZ("status", resp.status), OSC_LF_INT("attempt", attempt),
                    OSC_LF_INT("locations", n)),
                   "presence push: %s", osc_err_text(err, rc));
        if (!retry_wait(p, OSC_METRICS_OFFICESPACE, attempt, resp.retry_after_ms, deadline))
            goto out;
    }
out:
    osc_http_response_free(&resp);
    osc_buf_free(&body);
    return rc;
}

/* Log what OfficeSpace said about the items of a chunk that it did not accept. */
static void report_chunk(struct osc_presence *p, const struct osc_presence_item *chunk, size_t n,
                         struct osc_mapped_loc *const *locs)
{
    char u[OSC_URN_STR_MAX];

    for (size_t i = 0; i < n; i++) {
        if (chunk[i].state != OSC_PRESENCE_ITEM_FAILED &&
            chunk[i].state != OSC_PRESENCE_ITEM_UNACKED)
            continue;
        osc_urn_format(&chunk[i].urn, u, sizeof(u));
        if (chunk[i].state == OSC_PRESENCE_ITEM_FAILED) {
            OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "presence", "push_refused",
                       (OSC_LF_STR("location", u),
                        OSC_LF_STR("presence", osc_presence_status_name(chunk[i].status)),
                        OSC_LF_INT("count", chunk[i].count), OSC_LF_STR("place", place_of(locs[i])),
                        OSC_LF_STR("reason", chunk[i].error)),
                       "OfficeSpace refused %s (%s %s): %s", u,
                       osc_presence_status_name(chunk[i].status), place_of(locs[i]),
                       chunk[i].error);
            api_error(p, OSC_METRICS_OFFICESPACE, OSC_METRICS_ITEM);
        } else {
            OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "presence", "push_unacknowledged",
                       (OSC_LF_STR("location", u),
                        OSC_LF_STR("presence", osc_presence_status_name(chunk[i].status)),
                        OSC_LF_INT("count", chunk[i].count), OSC_LF_STR("place", place_of(locs[i])),
                        OSC_LF_STR("reason", chunk[i].error)),
                       "OfficeSpace did not acknowledge %s (%s %s): %s; sent again next cycle", u,
                       osc_presence_status_name(chunk[i].status), place_of(locs[i]),
                       chunk[i].error);
            api_error(p, OSC_METRICS_OFFICESPACE, OSC_METRICS_UNACKNOWLEDGED);
        }
    }
}

/* The expiry push of a location (l NULL: no longer in the topology). */
static void log_expiry(const struct osc_urn *urn, const struct osc_mapped_loc *l,
                       const struct osc_presence_last *last, int64_t newest, int64_t expire_ms)
{
    char u[OSC_URN_STR_MAX], when[40];

    osc_urn_format(urn, u, sizeof(u));
    osc_clock_iso8601(newest > last->at_ms ? newest : last->at_ms, when, sizeof(when));
    OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "presence", "expired",
               (OSC_LF_STR("location", u), OSC_LF_STR("place", place_of(l)),
                OSC_LF_STR("newest", when),
                OSC_LF_STR("last_presence", osc_presence_status_name(last->status)),
                OSC_LF_INT("last_count", last->count), OSC_LF_INT("expire_after_ms", expire_ms)),
               "%s (%s %s) expired: no fresh reading for %llds (newest %s; last pushed %s %lld); "
               "pushing NO_PRESENCE once",
               u, l ? l->place_kind : "place", place_of(l), (long long)(expire_ms / 1000), when,
               osc_presence_status_name(last->status), (long long)last->count);
}

int osc_presence_cycle(struct osc_presence *p, int64_t deadline, struct osc_metrics_cycle *rep,
                       struct osc_err *err)
{
    const struct osc_conf_presence *pc = &p->cfg->presence;
    int64_t start = osc_clock_mono_ms(p->opts.clock), now_wall;
    struct osc_presence_item *items = NULL;
    struct osc_mapped_loc **item_locs = NULL;
    enum osc_presence_why *item_why = NULL;
    struct osc_mapped_topo *t;
    size_t nitems = 0, cap, li = 0, changed = 0, refresh = 0, expired = 0, unchanged = 0;
    int rc = 0, push_rc = 0, auth = 0;
    struct osc_err perr = {0};
    FILE *out = p->opts.dry_out ? p->opts.dry_out : stdout;
    uint64_t cyc = ++p->ncycles;

    memset(rep, 0, sizeof(*rep));
    osc_err_clear(err);

    if (p->held && p->nheld == 0) {
        /* the other instances hold every building: nothing to read, nothing to push */
        OSC_LOG_DEBUG("presence", "cycle: no building held by this instance");
        rep->mapped_read = 1;
        goto done;
    }
    /* 1-2. discover (with values) or read values */
    if (p->need_discovery || !p->topo || start - p->discovered_at >= pc->topology_refresh_ms) {
        /* on failure the loop logs the cycle once (a refused credential with its backoff step) */
        if ((rc = discover(p, deadline, rep, err)))
            goto done;
    } else {
        if ((rc = read_values(p, deadline, rep, err)))
            goto done;
    }
    t = p->topo;
    rep->mapped_read = 1;
    rep->locations_discovered = t->nlocs;
    rep->points = t->npoints_used;
    rep->points_read = t->values_read;
    rep->invalid_values = t->bad_values;

    /* 3-5. map, aggregate, diff; expire what has had no fresh reading for expire_after */
    now_wall = osc_clock_wall_ms(p->opts.clock);
    cap = t->nlocs + p->last.n;
    if (cap &&
        (!(items = calloc(cap, sizeof(*items))) || !(item_locs = calloc(cap, sizeof(*item_locs))) ||
         !(item_why = calloc(cap, sizeof(*item_why))))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t l = 0; l < t->nlocs; l++) {
        struct osc_presence_agg agg;
        struct last_entry *e = entry_get(&p->last, &t->locs[l].urn);
        const struct osc_presence_last *last = e ? &e->last : NULL;
        enum osc_presence_why why;
        int64_t count;
        int fresh;

        if (e) {
            e->seen = cyc;
            e->bldg = p->loc_bldg ? p->loc_bldg[l] : 0;
        }
        osc_presence_agg_init(&agg);
        for (; li < t->nlinks && t->links[li].loc == l; li++) {
            const struct osc_mapped_point *pt = &t->points[t->links[li].point];
            struct osc_presence_obs obs;
            if (!pt->has_value)
                continue;
            if (pc->stale_after_ms > 0 && now_wall - pt->at_ms > pc->stale_after_ms)
                continue;
            osc_presence_map(pt->kind, pt->value, pt->at_ms, &obs);
            osc_presence_agg_add(&agg, &obs);
        }
        fresh =
            agg.n > 0 && (pc->expire_after_ms <= 0 || now_wall - agg.at_ms < pc->expire_after_ms);
        if (!fresh) {
            rep->locations_unknown++;
            if (!osc_presence_expired(last, 0, agg.n ? agg.at_ms : 0, now_wall,
                                      pc->expire_after_ms))
                continue;
            log_expiry(&t->locs[l].urn, &t->locs[l], last, agg.n ? agg.at_ms : 0,
                       pc->expire_after_ms);
            items[nitems].urn = t->locs[l].urn;
            items[nitems].status = OSC_PRESENCE_NO;
            items[nitems].count = 0;
            items[nitems].at_ms = now_wall;
            item_locs[nitems] = &t->locs[l];
            item_why[nitems++] = OSC_PRESENCE_EXPIRE;
            expired++;
            continue;
        }
        count = osc_presence_agg_count(&agg);
        rep->locations_by_status[agg.status]++;
        why = osc_presence_diff(last, agg.status, count, now_wall, pc->resend_after_ms);
        if (why == OSC_PRESENCE_SKIP) {
            unchanged++;
            continue;
        }
        if (why == OSC_PRESENCE_CHANGED)
            changed++;
        else
            refresh++;
        items[nitems].urn = t->locs[l].urn;
        items[nitems].status = agg.status;
        items[nitems].count = count;
        items[nitems].at_ms = agg.at_ms;
        item_locs[nitems] = &t->locs[l];
        item_why[nitems] = why;
        nitems++;
    }
    /* locations OfficeSpace has from us that Mapped no longer lists (identity or place gone,
     * building dropped from the config): they have no reading at all */
    for (size_t k = 0; k < p->last.cap; k++) {
        struct last_entry *e = &p->last.v[k];
        if (!e->last.known || e->seen == cyc ||
            !osc_presence_expired(&e->last, 0, 0, now_wall, pc->expire_after_ms))
            continue;
        /* with coordination, a location is gone only from a building this instance polls */
        if (p->held && (!e->bldg || !p->held[e->bldg - 1]))
            continue;
        log_expiry(&e->urn, NULL, &e->last, 0, pc->expire_after_ms);
        items[nitems].urn = e->urn;
        items[nitems].status = OSC_PRESENCE_NO;
        items[nitems].count = 0;
        items[nitems].at_ms = now_wall;
        item_locs[nitems] = NULL;
        item_why[nitems++] = OSC_PRESENCE_EXPIRE;
        expired++;
    }

    if (p->opts.dry_run) {
        print_table_head(out);
        for (size_t i = 0; i < nitems; i++)
            print_row(out, item_locs[i], &items[i], item_why[i]);
        fprintf(out,
                "# dry run: %zu locations, %zu would be pushed (%zu changed, %zu refresh, "
                "%zu expired), %zu unchanged, %llu without readings; nothing was sent\n",
                t->nlocs, nitems, changed, refresh, expired, unchanged,
                (unsigned long long)rep->locations_unknown);
        fflush(out);
        goto done;
    }

    /* 5. push in chunks of mutations_per_request */
    for (size_t off = 0; off < nitems; off += (size_t)pc->mutations_per_request) {
        size_t n = nitems - off < (size_t)pc->mutations_per_request
                       ? nitems - off
                       : (size_t)pc->mutations_per_request;
        struct osc_presence_item *chunk = items + off;
        int r;

        if (paused(p, OSC_METRICS_OFFICESPACE, &perr)) {
            push_rc = OSC_EUNAVAIL;
            OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "presence", "push_deferred",
                       (OSC_LF_INT("locations", nitems - off)),
                       "%zu locations left for the next cycle: %s", nitems - off,
                       osc_err_text(&perr, push_rc));
            break;
        }
        /* a stop starts no new request; the one in flight is aborted (its items stay unsent) */
        if (stopping(p)) {
            push_rc = osc_err_set(&perr, OSC_EINTERRUPTED, "stopping: %zu locations left unsent",
                                  nitems - off);
            break;
        }
        r = push_chunk(p, chunk, n, deadline, rep, &perr);
        if (r == OSC_EAUTH || r == OSC_EHTTP) { /* the next chunks would fail alike */
            auth = r == OSC_EAUTH;
            push_rc = r;
            break;
        }
        if (r) {
            if (!push_rc)
                push_rc = r;
            OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "presence", "push_deferred",
                       (OSC_LF_INT("locations", n)), "%zu locations left for the next cycle: %s", n,
                       osc_err_text(&perr, r));
            if (osc_clock_mono_ms(p->opts.clock) >= deadline || stopping(p))
                break;
            continue;
        }
        report_chunk(p, chunk, n, item_locs + off);
        if ((r = remember(p, chunk, item_why + off, n, osc_clock_wall_ms(p->opts.clock), &perr))) {
            push_rc = r;
            OSC_LOG_ERROR("presence", "%s", osc_err_text(&perr, r));
            break;
        }
    }
    for (size_t i = 0; i < nitems; i++) {
        switch (items[i].state) {
        case OSC_PRESENCE_ITEM_ACCEPTED: rep->pushes_accepted++; break;
        case OSC_PRESENCE_ITEM_FAILED: rep->pushes_failed++; break;
        case OSC_PRESENCE_ITEM_UNACKED: rep->pushes_unacked++; break;
        case OSC_PRESENCE_ITEM_PENDING: rep->pushes_unsent++; break;
        }
    }
    if (push_rc) {
        rc = push_rc;
        if (err)
            *err = perr;
    } else if (rep->pushes_failed || rep->pushes_unacked) {
        rc = osc_err_set(err, OSC_EREJECTED,
                         "OfficeSpace refused %llu and did not acknowledge %llu of %zu locations",
                         (unsigned long long)rep->pushes_failed,
                         (unsigned long long)rep->pushes_unacked, nitems);
    }
    OSC_LOG_EV(
        OSC_LOG_LEVEL_INFO, "presence", "cycle",
        (OSC_LF_INT("locations", t->nlocs),
         OSC_LF_INT("locations_presence", rep->locations_by_status[OSC_PRESENCE_YES]),
         OSC_LF_INT("locations_passive_presence", rep->locations_by_status[OSC_PRESENCE_PASSIVE]),
         OSC_LF_INT("locations_no_presence", rep->locations_by_status[OSC_PRESENCE_NO]),
         OSC_LF_INT("locations_unknown", rep->locations_unknown), OSC_LF_INT("pushed", nitems),
         OSC_LF_INT("changed", changed), OSC_LF_INT("refresh", refresh),
         OSC_LF_INT("expired", expired), OSC_LF_INT("accepted", rep->pushes_accepted),
         OSC_LF_INT("refused", rep->pushes_failed),
         OSC_LF_INT("unacknowledged", rep->pushes_unacked),
         OSC_LF_INT("unsent", rep->pushes_unsent), OSC_LF_INT("requests", rep->push_requests),
         OSC_LF_INT("duration_ms", osc_clock_mono_ms(p->opts.clock) - start)),
        "cycle: %zu locations (%llu PRESENCE, %llu PASSIVE_PRESENCE, %llu NO_PRESENCE, "
        "%llu without fresh readings); pushed %zu (%zu changed, %zu refresh, %zu "
        "expired): %llu accepted, %llu refused, %llu unacknowledged, %llu unsent; %llu "
        "request(s)",
        t->nlocs, (unsigned long long)rep->locations_by_status[OSC_PRESENCE_YES],
        (unsigned long long)rep->locations_by_status[OSC_PRESENCE_PASSIVE],
        (unsigned long long)rep->locations_by_status[OSC_PRESENCE_NO],
        (unsigned long long)rep->locations_unknown, nitems, changed, refresh, expired,
        (unsigned long long)rep->pushes_accepted, (unsigned long long)rep->pushes_failed,
        (unsigned long long)rep->pushes_unacked, (unsigned long long)rep->pushes_unsent,
        (unsigned long long)rep->push_requests);
done:
    if (rc == OSC_EAUTH || auth)
        rep->result = OSC_METRICS_AUTH_FAILED;
    else if (rc == OSC_EREJECTED)
        rep->result = OSC_METRICS_PARTIAL;
    else if (rc)
        rep->result = OSC_METRICS_FAILED;
    else
        rep->result = OSC_METRICS_OK;
    rep->duration_ms = osc_clock_mono_ms(p->opts.clock) - start;
    free(items);
    free(item_locs);
    free(item_why);
    return rc;
}
