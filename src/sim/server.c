/*
 * server.c - the simulator's HTTP side: two libmicrohttpd daemons (Mapped
 * and OfficeSpace), body accumulation under a cap, authentication, the
 * fault rules and the rate limit, routing to mapped.c / officespace.c, and
 * the /_sim control endpoints. Implements include/osc/sim.h.
 *
 * Invariants: one mutex (sim->lock) guards every piece of simulator state
 * (graph overrides, OfficeSpace state, faults, buckets, request log); it is
 * never held while sleeping, so a delayed or held request does not stall
 * the others (MHD runs a thread per connection). Sleeps wait on a
 * condition variable that osc_sim_stop() broadcasts, so stopping never
 * waits for a fault to run out. An API request is logged before anything
 * else happens to it; its effects are applied only when it is answered
 * normally (or by reset-after), never when a fault or the rate limit
 * answers it.
 */
#include "osc/sim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "gql.h"
#include "graph.h"
#include "osc/parse.h"
#include "sim_int.h"

#define DEFAULT_MAX_BODY (64L * 1024 * 1024)

enum { SRV_MAPPED = 0, SRV_OS = 1 };
static const char *const srv_names[] = {"mapped", "officespace"};

struct server {
    struct osc_sim *sim;
    int which;
    struct MHD_Daemon *d;
    int port;
    char url[160];
};

struct osc_sim {
    char *listen, *scenario_path, *faults_text, *os_key, *gql_key, *mapped_token;
    long gen_locations, gen_points;
    uint64_t seed;
    double rate;
    size_t max_body;
    enum osc_sim_import_mode import_mode;
    const struct osc_clock *clock;
    int want_port[2];

    pthread_mutex_t lock; /* guards everything below */
    json_t *scenario;     /* for GET /_sim/scenario */
    struct sim_graph *graph;
    struct sim_os *os;
    struct sim_faults faults;
    struct sim_bucket bucket[2];
    struct sim_reqlog *log;
    uint64_t
        generation; /* +1 per reset: a request that outlives one must not touch the new state */

    pthread_mutex_t wait_mu; /* with wait_cv: interruptible sleeps */
    pthread_cond_t wait_cv;
    int stopping; /* under wait_mu */

    struct server srv[2];
    int started;
};

/* Per-connection request state (con_cls), freed in request_done(). */
struct req {
    char *body;
    size_t len, alloc;
    int too_big;
};

/* ---- small helpers -------------------------------------------------------- */

static char *dup_opt(const char *s, const char *def)
{
    s = s ? s : def;
    return s ? strdup(s) : NULL;
}

/* Sleep up to ms; returns early when the simulator stops. */
static void sim_sleep(struct osc_sim *sim, int64_t ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sim->wait_mu);
    while (!sim->stopping)
        if (pthread_cond_timedwait(&sim->wait_cv, &sim->wait_mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&sim->wait_mu);
}

struct kv_ctx {
    json_t *obj;
    int redact;
};

static int is_secret_header(const char *name)
{
    static const char *const secret[] = {
        "authorization", "proxy-authorization", "apikey", "x-api-key", "cookie", "set-cookie"};
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        if (strcasecmp(name, secret[i]) == 0)
            return 1;
    return 0;
}

/* "Token token=abc" -> "Token ***": keep the scheme word so tests can check it. */
static void redact_value(const char *name, const char *value, char *out, size_t cap)
{
    size_t n = 0;

    if (strcasecmp(name, "authorization") == 0 || strcasecmp(name, "proxy-authorization") == 0) {
        while (value[n] && value[n] != ' ' && n < 32)
            n++;
        if (value[n] == ' ') {
            snprintf(out, cap, "%.*s ***", (int)n, value);
            return;
        }
    }
    snprintf(out, cap, "***");
}

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct kv_ctx *k = cls;
    char lower[128], red[64];
    size_t i;

    (void)kind;
    if (!key)
        return MHD_YES;
    for (i = 0; key[i] && i + 1 < sizeof(lower); i++)
        lower[i] = (char)tolower((unsigned char)key[i]);
    lower[i] = '\0';
    if (k->redact && is_secret_header(lower)) {
        redact_value(lower, value ? value : "", red, sizeof(red));
        json_object_set_new(k->obj, lower, json_string(red));
    } else if (value) {
        json_t *s = json_string(value);
        json_object_set_new(k->obj, k->redact ? lower : key, s ? s : json_string("?"));
    } else {
        json_object_set_new(k->obj, k->redact ? lower : key, json_string(""));
    }
    return MHD_YES;
}

static json_t *conn_values(struct MHD_Connection *c, enum MHD_ValueKind kind, int redact)
{
    struct kv_ctx k = {json_object(), redact};

    if (k.obj)
        MHD_get_connection_values(c, kind, collect_kv, &k);
    return k.obj;
}

/* The query arguments as "a=b&c=d" (decoded values; for the log only). */
static void query_text(json_t *q, char *out, size_t cap)
{
    const char *k;
    json_t *v;
    size_t n = 0;

    out[0] = '\0';
    json_object_foreach(q, k, v)
    {
        int w = snprintf(out + n, cap - n, "%s%s=%s", n ? "&" : "", k, json_string_value(v));
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- auth ------------------------------------------------------------------- */

static int mapped_auth_ok(struct osc_sim *sim, struct MHD_Connection *c)
{
    const char *h = header(c, "Authorization");

    if (!h || strncasecmp(h, "token ", 6) != 0)
        return 0;
    h += 6;
    while (*h == ' ')
        h++;
    return strcmp(h, sim->mapped_token) == 0;
}

/* Rails' authenticate_with_http_token: Token token=KEY or Token token="KEY". */
static int rest_auth_ok(struct osc_sim *sim, struct MHD_Connection *c)
{
    const char *h = header(c, "Authorization");
    size_t klen = strlen(sim->os_key);

    if (!h || strncasecmp(h, "Token ", 6) != 0)
        return 0;
    h += 6;
    while (*h == ' ')
        h++;
    if (strncmp(h, "token=", 6) != 0)
        return 0;
    h += 6;
    if (*h == '"') {
        h++;
        return strncmp(h, sim->os_key, klen) == 0 && h[klen] == '"' &&
               (h[klen + 1] == '\0' || h[klen + 1] == ',' || h[klen + 1] == ' ');
    }
    return strncmp(h, sim->os_key, klen) == 0 &&
           (h[klen] == '\0' || h[klen] == ',' || h[klen] == ' ');
}

static int apikey_ok(struct osc_sim *sim, struct MHD_Connection *c)
{
    const char *h = header(c, "apikey");
    return h && strcmp(h, sim->gql_key) == 0;
}

static void reply_gql_error(struct sim_reply *r, int status, const char *msg, const char *code)
{
    json_t *body = gql_error_body(msg);
    json_t *e = json_array_get(json_object_get(body, "errors"), 0);

    if (e && code)
        json_object_set_new(e, "extensions", json_pack("{s:s}", "code", code));
    sim_reply_json(r, status, body);
}

/* ---- /_sim ------------------------------------------------------------------ */

static int64_t arg_int(struct MHD_Connection *c, const char *name, int64_t def)
{
    const char *s = arg(c, name);
    int64_t v;

    return s && osc_parse_int(s, INT64_MIN, INT64_MAX, &v) == 0 ? v : def;
}

static int arg_flag(struct MHD_Connection *c, const char *name)
{
    const char *s = arg(c, name);
    int v = 0;

    return s && (!*s || osc_parse_bool(s, &v) == 0) && (!*s || v);
}

/* Rebuild the OfficeSpace state and forget overrides and requests (lock held). */
static int reset_state(struct osc_sim *sim, char *msg, size_t cap)
{
    struct sim_os *os = sim_os_new(sim->graph, sim->import_mode);

    if (!os) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    sim_os_free(sim->os);
    sim->os = os;
    sim_graph_reset(sim->graph);
    sim_reqlog_clear(sim->log);
    sim->generation++;
    if (sim_faults_parse(&sim->faults, sim->faults_text, msg, cap))
        return -1;
    sim->faults.rng = sim->seed;
    memset(sim->bucket, 0, sizeof(sim->bucket));
    sim->bucket[0].rate = sim->bucket[1].rate = sim->rate;
    return 0;
}

static void set_point(struct osc_sim *sim, const char *body, size_t len, struct sim_reply *r)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je), *v, *tsv;
    const char *id = json_string_value(json_object_get(j, "id"));
    size_t idx;
    int64_t ts = osc_clock_wall_ms(sim->clock);
    int rc;

    if (!json_is_object(j) || !id) {
        sim_reply_json(r, 400,
                       json_pack("{s:s}", "error", "expected {\"id\": POINT_ID, \"value\": N}"));
        goto out;
    }
    idx = sim_graph_find_point(sim->graph, id);
    if (idx == SIM_NONE) {
        sim_reply_json(r, 404, json_pack("{s:s,s:s}", "error", "no such point", "id", id));
        goto out;
    }
    tsv = json_object_get(j, "timestamp");
    if (json_is_string(tsv) && osc_clock_parse_iso8601(json_string_value(tsv), &ts)) {
        sim_reply_json(r, 400, json_pack("{s:s}", "error", "timestamp is not ISO 8601"));
        goto out;
    }
    v = json_object_get(j, "value");
    if (json_is_string(v))
        rc = sim_point_set(&sim->graph->points[idx], 1, strtod(json_string_value(v), NULL),
                           json_string_value(v), ts);
    else if (json_is_number(v) || json_is_boolean(v))
        rc = sim_point_set(&sim->graph->points[idx], 1,
                           json_is_boolean(v) ? (json_is_true(v) ? 1 : 0) : json_number_value(v),
                           NULL, ts);
    else if (!v || json_is_null(v))
        rc = sim_point_set(&sim->graph->points[idx], 0, 0, NULL, ts);
    else {
        sim_reply_json(
            r, 400, json_pack("{s:s}", "error", "value must be a number, boolean, string or null"));
        goto out;
    }
    if (rc)
        sim_reply_json(r, 500, json_pack("{s:s}", "error", "out of memory"));
    else
        sim_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "ok", "id", id));
out:
    json_decref(j);
}

static void serve_control(struct osc_sim *sim, struct MHD_Connection *c, const char *path,
                          const char *method, const char *body, size_t len, struct sim_reply *r)
{
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    char msg[300];

    if (get && strcmp(path, "/_sim/requests") == 0) {
        sim_reply_json(r, 200, sim_reqlog_json(sim->log, arg_int(c, "since", 0), arg(c, "path")));
    } else if (get && strcmp(path, "/_sim/presence") == 0) {
        sim_reply_json(r, 200, sim_os_presence(sim->os));
    } else if (get && strcmp(path, "/_sim/presence/log") == 0) {
        sim_reply_json(r, 200, sim_os_presence_log(sim->os, arg_int(c, "since", 0)));
    } else if (get && strcmp(path, "/_sim/employees") == 0) {
        sim_os_employees(sim->os, arg_flag(c, "summary") ? 0 : arg_flag(c, "ids") ? 1 : 2, r);
    } else if (get && strcmp(path, "/_sim/resources") == 0) {
        sim_reply_json(r, 200, sim_os_resources(sim->os));
    } else if (get && strcmp(path, "/_sim/faults") == 0) {
        sim_reply_json(r, 200, sim_faults_json(&sim->faults));
    } else if (post && strcmp(path, "/_sim/faults") == 0) {
        char *text = strndup(body ? body : "", len);
        if (!text) {
            sim_reply_json(r, 500, json_pack("{s:s}", "error", "out of memory"));
        } else if (sim_faults_parse(&sim->faults, text, msg, sizeof(msg))) {
            sim_reply_json(r, 400, json_pack("{s:s}", "error", msg));
        } else {
            sim->faults.rng = sim->seed;
            sim_reply_json(r, 200, sim_faults_json(&sim->faults));
        }
        free(text);
    } else if (post && strcmp(path, "/_sim/reset") == 0) {
        if (reset_state(sim, msg, sizeof(msg)))
            sim_reply_json(r, 500, json_pack("{s:s}", "error", msg));
        else
            sim_reply_json(r, 200, json_pack("{s:s}", "status", "reset"));
    } else if (post && strcmp(path, "/_sim/points") == 0) {
        set_point(sim, body, len, r);
    } else if (get && strcmp(path, "/_sim/scenario") == 0) {
        sim_reply_json(r, 200, json_incref(sim->scenario));
    } else if (get && (strcmp(path, "/_sim") == 0 || strcmp(path, "/_sim/") == 0)) {
        sim_reply_json(r, 200,
                       json_pack("{s:[s,s,s,s,s,s,s,s,s,s,s]}", "endpoints",
                                 "GET /_sim/requests?since=SEQ&path=PREFIX", "GET /_sim/presence",
                                 "GET /_sim/presence/log?since=SEQ",
                                 "GET /_sim/employees[?summary=1|?ids=1]", "GET /_sim/resources",
                                 "GET /_sim/faults", "POST /_sim/faults (body: rules)",
                                 "POST /_sim/reset", "POST /_sim/points {id, value[, timestamp]}",
                                 "GET /_sim/scenario", "GET /_sim"));
    } else {
        sim_reply_json(r, 404,
                       json_pack("{s:s,s:s}", "error", "no such control endpoint", "path", path));
    }
}

/* ---- the APIs ----------------------------------------------------------------- */

static void serve_api(struct osc_sim *sim, int which, struct MHD_Connection *c, const char *path,
                      const char *method, const char *body, size_t len, struct sim_batch *pre,
                      struct sim_reply *r)
{
    int post = strcmp(method, "POST") == 0;

    if (which == SRV_MAPPED) {
        if (strcmp(path, "/graphql") != 0) {
            reply_gql_error(r, 404, "Not Found", "NOT_FOUND");
        } else if (!mapped_auth_ok(sim, c)) {
            reply_gql_error(r, 401,
                            "Unauthorized: send a valid personal access token as "
                            "'Authorization: token <PAT>'",
                            "UNAUTHENTICATED");
        } else if (!post) {
            reply_gql_error(r, 405, "GraphQL requests must be POSTed as JSON", NULL);
            sim_reply_header(r, "Allow", "POST");
        } else {
            sim_mapped_graphql(sim->graph, body, len, osc_clock_mono_ms(sim->clock), r);
        }
        return;
    }
    if (strcmp(path, "/graphql") == 0) {
        if (!apikey_ok(sim, c)) {
            reply_gql_error(r, 401, "Invalid or missing API key (send it in the 'apikey' header)",
                            "UNAUTHENTICATED");
        } else if (!post) {
            reply_gql_error(r, 405, "GraphQL requests must be POSTed as JSON", NULL);
            sim_reply_header(r, "Allow", "POST");
        } else {
            sim_os_graphql(sim->os, body, len, osc_clock_wall_ms(sim->clock), r);
        }
        return;
    }
    if (strncmp(path, "/api/1/", 7) == 0) {
        if (!rest_auth_ok(sim, c)) {
            sim_reply_text(r, 401, "HTTP Token: Access denied.\n");
            sim_reply_header(r, "WWW-Authenticate", "Token realm=\"Application\"");
        } else {
            json_t *q = conn_values(c, MHD_GET_ARGUMENT_KIND, 0);
            sim_os_rest(sim->os, method, path + 7, q, header(c, "Content-Type"), body, len, pre,
                        osc_clock_wall_ms(sim->clock), r);
            json_decref(q);
        }
        return;
    }
    sim_reply_json(r, 404, json_pack("{s:s}", "error", "Not Found"));
}

/* ---- responses ----------------------------------------------------------------- */

struct partial {
    char *body;
    size_t limit; /* bytes sent before the connection is dropped */
};

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct partial *p = cls;
    size_t n;

    if (pos >= p->limit)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    n = p->limit - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, p->body + pos, n);
    return (ssize_t)n;
}

static void partial_free(void *cls)
{
    struct partial *p = cls;

    free(p->body);
    free(p);
}

/* Queue r (its body is taken over); cut: send only half of the body, then drop. */
static enum MHD_Result send_reply(struct MHD_Connection *c, struct sim_reply *r, int cut)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (cut) {
        struct partial *p = malloc(sizeof(*p));
        if (!p) {
            free(r->body);
            return MHD_NO;
        }
        p->body = r->body;
        p->limit = r->len / 2;
        resp = MHD_create_response_from_callback(r->len, 4096, partial_read, p, partial_free);
        if (!resp) {
            partial_free(p);
            return MHD_NO;
        }
    } else {
        resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (char *)"",
                                               r->body ? MHD_RESPMEM_MUST_FREE
                                                       : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(r->body);
            return MHD_NO;
        }
    }
    r->body = NULL;
    MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    for (int i = 0; i < 2; i++)
        if (r->hname[i][0])
            MHD_add_response_header(resp, r->hname[i], r->hval[i]);
    ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void fault_body(struct sim_reply *r, int graphql, int status, const char *why)
{
    char msg[160];

    snprintf(msg, sizeof(msg), "%s (HTTP %d)", why, status);
    if (graphql)
        reply_gql_error(r, status, msg, status == 429 ? "RATE_LIMITED" : "SIMULATED_FAULT");
    else
        sim_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

/* ---- the MHD callbacks -------------------------------------------------------- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    struct server *srv = cls;
    struct osc_sim *sim = srv->sim;
    struct req *rq = *con_cls;
    struct sim_reply r;
    struct sim_fault_action act;
    char qtext[512], rbuf[32];
    json_t *headers, *q;
    int64_t seq, wait;
    uint64_t gen;
    const char *fault = NULL;
    struct sim_batch *pre = NULL;

    (void)version;
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_len) {
        size_t n = *upload_len;
        *upload_len = 0;
        if (rq->too_big || rq->len + n > sim->max_body) {
            rq->too_big = 1;
            return MHD_YES; /* drain, answer 413 at the end */
        }
        if (rq->len + n + 1 > rq->alloc) {
            size_t na = rq->alloc ? rq->alloc : 4096;
            char *p;
            while (na < rq->len + n + 1)
                na *= 2;
            if (!(p = realloc(rq->body, na)))
                return MHD_NO;
            rq->body = p;
            rq->alloc = na;
        }
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }

    memset(&r, 0, sizeof(r));
    if (strcmp(url, "/_sim") == 0 || strncmp(url, "/_sim/", 6) == 0) {
        pthread_mutex_lock(&sim->lock);
        serve_control(sim, c, url, method, rq->body, rq->len, &r);
        pthread_mutex_unlock(&sim->lock);
        return send_reply(c, &r, 0);
    }

    headers = conn_values(c, MHD_HEADER_KIND, 1);
    q = conn_values(c, MHD_GET_ARGUMENT_KIND, 0);
    query_text(q, qtext, sizeof(qtext));
    json_decref(q);
    pthread_mutex_lock(&sim->lock);
    seq = sim_reqlog_add(sim->log, srv_names[srv->which], method, url, qtext, headers, rq->body,
                         rq->len, osc_clock_wall_ms(sim->clock));
    gen = sim->generation;
    wait = sim_bucket_take(&sim->bucket[srv->which], osc_clock_mono_ms(sim->clock));
    if (wait)
        memset(&act, 0, sizeof(act));
    else
        sim_faults_eval(&sim->faults, srv_names[srv->which], url, &act);
    pthread_mutex_unlock(&sim->lock);

    if (wait) {
        fault_body(&r, strcmp(url, "/graphql") == 0, 429, "rate limit exceeded");
        snprintf(rbuf, sizeof(rbuf), "%lld", (long long)wait);
        sim_reply_header(&r, "Retry-After", rbuf);
        fault = "rate-limit";
        goto answer;
    }
    sim_sleep(sim, act.delay_ms);
    if (act.hold_ms > 0 || act.reset == 1) {
        if (act.hold_ms > 0)
            sim_sleep(sim, act.hold_ms);
        pthread_mutex_lock(&sim->lock);
        if (gen == sim->generation)
            sim_reqlog_status(sim->log, seq, 0, act.hold_ms > 0 ? "timeout" : "reset");
        pthread_mutex_unlock(&sim->lock);
        return MHD_NO; /* close without a response */
    }
    if (act.status) {
        fault_body(&r, strcmp(url, "/graphql") == 0, act.status, "simulated fault");
        if (act.retry_after_s >= 0) {
            snprintf(rbuf, sizeof(rbuf), "%lld", (long long)act.retry_after_s);
            sim_reply_header(&r, "Retry-After", rbuf);
        }
        fault = "status";
        goto answer;
    }
    if (rq->too_big) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body larger than %zu bytes", sim->max_body);
        sim_reply_json(&r, 413, json_pack("{s:s}", "error", msg));
        goto answer;
    }
    /* the costly part of a batch import needs no state: do it before taking the lock */
    if (srv->which == SRV_OS && strcmp(method, "POST") == 0 &&
        strcmp(url, "/api/1/employee_batch_imports") == 0)
        pre = sim_batch_prepare(header(c, "Content-Type"), rq->body, rq->len);
    pthread_mutex_lock(&sim->lock);
    if (gen != sim->generation) {
        /* a reset came while this request was delayed: it belongs to the old state */
        fault_body(&r, strcmp(url, "/graphql") == 0, 503, "the simulator was reset meanwhile");
    } else {
        serve_api(sim, srv->which, c, url, method, rq->body, rq->len, pre, &r);
        sim_reqlog_status(sim->log, seq, r.status, act.reset == 2 ? "reset-after" : NULL);
    }
    pthread_mutex_unlock(&sim->lock);
    sim_batch_free(pre);
    return send_reply(c, &r, act.reset == 2);

answer:
    pthread_mutex_lock(&sim->lock);
    if (gen == sim->generation)
        sim_reqlog_status(sim->log, seq, r.status, fault);
    pthread_mutex_unlock(&sim->lock);
    return send_reply(c, &r, 0);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *rq = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* ---- life cycle ----------------------------------------------------------------- */

int osc_sim_new(const struct osc_sim_opts *opts, struct osc_sim **out, struct osc_err *err)
{
    struct osc_sim *sim = calloc(1, sizeof(*sim));
    struct osc_sim_opts none;
    char msg[300];
    int rc = OSC_ENOMEM;

    *out = NULL;
    if (!opts) {
        memset(&none, 0, sizeof(none));
        opts = &none;
    }
    if (!sim)
        return osc_err_set(err, OSC_ENOMEM, "simulator: out of memory");
    sim->listen = dup_opt(opts->listen, "127.0.0.1");
    sim->scenario_path = dup_opt(opts->scenario_path, NULL);
    sim->faults_text = dup_opt(opts->faults, "");
    sim->os_key = dup_opt(opts->officespace_key, OSC_SIM_DEFAULT_OFFICESPACE_KEY);
    sim->gql_key = dup_opt(opts->graphql_key, sim->os_key);
    sim->mapped_token = dup_opt(opts->mapped_token, OSC_SIM_DEFAULT_MAPPED_TOKEN);
    sim->gen_locations = opts->generate_locations;
    sim->gen_points = opts->generate_points;
    sim->seed = opts->seed ? opts->seed : 1;
    sim->rate = opts->rate_limit > 0 ? opts->rate_limit : 0;
    sim->max_body = opts->max_body > 0 ? (size_t)opts->max_body : (size_t)DEFAULT_MAX_BODY;
    sim->clock = opts->clock;
    sim->import_mode = opts->import_mode;
    sim->want_port[SRV_MAPPED] = opts->mapped_port;
    sim->want_port[SRV_OS] = opts->officespace_port;
    pthread_mutex_init(&sim->lock, NULL);
    pthread_mutex_init(&sim->wait_mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&sim->wait_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (!sim->listen || !sim->faults_text || !sim->os_key || !sim->gql_key || !sim->mapped_token ||
        (opts->scenario_path && !sim->scenario_path))
        goto fail;

    if (sim->gen_locations > 0) {
        json_t *gen = sim_scenario_generate(
            sim->gen_locations, sim->gen_points > 0 ? sim->gen_points : sim->gen_locations * 5,
            sim->seed);
        if (!gen)
            goto fail;
        rc = sim_graph_load(gen, sim->seed, sim->clock, &sim->graph, err);
        json_decref(gen);
        sim->scenario = json_pack(
            "{s:{s:I,s:I,s:I}}", "generate", "locations", (json_int_t)sim->gen_locations, "points",
            (json_int_t)(sim->gen_points > 0 ? sim->gen_points : sim->gen_locations * 5), "seed",
            (json_int_t)sim->seed);
    } else {
        if (sim->scenario_path)
            rc = sim_scenario_read(sim->scenario_path, &sim->scenario, err);
        else
            rc = (sim->scenario = sim_scenario_demo()) ? 0 : OSC_ENOMEM;
        if (rc == 0)
            rc = sim_graph_load(sim->scenario, sim->seed, sim->clock, &sim->graph, err);
    }
    if (rc)
        goto fail;
    rc = OSC_ENOMEM;
    if (!sim->scenario || !(sim->log = sim_reqlog_new()))
        goto fail;
    if (sim_faults_parse(&sim->faults, sim->faults_text, msg, sizeof(msg))) {
        rc = osc_err_set(err, OSC_EUSAGE, "--faults: %s", msg);
        goto fail;
    }
    sim->faults.rng = sim->seed;
    sim->bucket[0].rate = sim->bucket[1].rate = sim->rate;
    if (!(sim->os = sim_os_new(sim->graph, sim->import_mode)))
        goto fail;
    *out = sim;
    return 0;
fail:
    if (rc == OSC_ENOMEM && err && !err->code)
        osc_err_set(err, rc, "simulator: out of memory");
    osc_sim_free(sim);
    return rc;
}

/* Bind one daemon; the address family follows sim->listen. */
static int start_one(struct osc_sim *sim, int which, struct osc_err *err)
{
    struct server *srv = &sim->srv[which];
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    const union MHD_DaemonInfo *info;
    const char *host = sim->listen;
    char shown[80];
    int port = sim->want_port[which];

    memset(&v4, 0, sizeof(v4));
    memset(&v6, 0, sizeof(v6));
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (port < 0 || port > 65535)
        return osc_err_set(err, OSC_EUSAGE, "port %d out of range", port);
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&v4;
        snprintf(shown, sizeof(shown), "%s",
                 v4.sin_addr.s_addr == htonl(INADDR_ANY) ? "127.0.0.1" : host);
    } else if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&v6;
        flags |= MHD_USE_IPv6;
        snprintf(shown, sizeof(shown), "[%s]",
                 memcmp(&v6.sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0 ? "::1" : host);
    } else {
        return osc_err_set(err, OSC_EUSAGE, "--listen: \"%s\" is not an IPv4 or IPv6 address",
                           sim->listen);
    }
    srv->sim = sim;
    srv->which = which;
    srv->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR, sa,
                              MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                              MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    if (!srv->d)
        return osc_err_set(err, OSC_EIO, "cannot listen on %s port %d (%s API): %s", sim->listen,
                           port, srv_names[which], errno ? strerror(errno) : "bind failed");
    info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? (int)info->port : port;
    snprintf(srv->url, sizeof(srv->url), "http://%s:%d%s", shown, srv->port,
             which == SRV_MAPPED ? "/graphql" : "");
    return 0;
}

int osc_sim_start(struct osc_sim *sim, struct osc_err *err)
{
    int rc;

    if (sim->started)
        return 0;
    pthread_mutex_lock(&sim->wait_mu);
    sim->stopping = 0;
    pthread_mutex_unlock(&sim->wait_mu);
    if ((rc = start_one(sim, SRV_MAPPED, err)) || (rc = start_one(sim, SRV_OS, err))) {
        osc_sim_stop(sim);
        return rc;
    }
    sim->started = 1;
    return 0;
}

int osc_sim_mapped_port(const struct osc_sim *sim) { return sim->srv[SRV_MAPPED].port; }
int osc_sim_officespace_port(const struct osc_sim *sim) { return sim->srv[SRV_OS].port; }
const char *osc_sim_mapped_url(const struct osc_sim *sim) { return sim->srv[SRV_MAPPED].url; }
const char *osc_sim_officespace_url(const struct osc_sim *sim) { return sim->srv[SRV_OS].url; }

void osc_sim_stop(struct osc_sim *sim)
{
    if (!sim)
        return;
    /* release held and delayed requests first: MHD_stop_daemon joins their threads */
    pthread_mutex_lock(&sim->wait_mu);
    sim->stopping = 1;
    pthread_cond_broadcast(&sim->wait_cv);
    pthread_mutex_unlock(&sim->wait_mu);
    for (int i = 0; i < 2; i++)
        if (sim->srv[i].d) {
            MHD_stop_daemon(sim->srv[i].d);
            sim->srv[i].d = NULL;
        }
    sim->started = 0;
}

void osc_sim_free(struct osc_sim *sim)
{
    if (!sim)
        return;
    osc_sim_stop(sim);
    sim_os_free(sim->os);
    sim_graph_free(sim->graph);
    sim_faults_free(&sim->faults);
    sim_reqlog_free(sim->log);
    json_decref(sim->scenario);
    pthread_mutex_destroy(&sim->lock);
    pthread_mutex_destroy(&sim->wait_mu);
    pthread_cond_destroy(&sim->wait_cv);
    free(sim->listen);
    free(sim->scenario_path);
    free(sim->faults_text);
    free(sim->os_key);
    free(sim->gql_key);
    free(sim->mapped_token);
    free(sim);
}

int osc_sim_dump_demo(FILE *out)
{
    json_t *demo = sim_scenario_demo();
    int rc = OSC_EIO;

    if (!demo)
        return OSC_ENOMEM;
    if (json_dumpf(demo, out, JSON_INDENT(2)) == 0 && fputc('\n', out) != EOF && fflush(out) == 0)
        rc = 0;
    json_decref(demo);
    return rc;
}
