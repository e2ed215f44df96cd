/*
 * status.c - /livez, /readyz (/healthz), /metrics and POST /ingest/ over
 * libmicrohttpd; see status.h.
 *
 * MHD runs its own polling thread (a pool with ingest); handlers only read
 * the metrics (under their mutex) and build a fresh response per request,
 * so nothing is shared with the presence loop but struct osc_metrics. An
 * ingest body is collected per connection (struct upload) up to the
 * destination's max_body (the rest is read and dropped, then answered 413)
 * and handed whole to osc_sources_ingest().
 */
#include "osc/status.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "osc/buf.h"
#include "osc/clock.h"
#include "osc/log.h"
#include "osc/parse.h"
#include "osc/source.h"

#define INGEST_PREFIX  "/ingest/"
#define INGEST_THREADS 4

struct osc_status {
    struct MHD_Daemon *d;
    struct osc_metrics *m;       /* NULL: no presence loop */
    struct osc_sources *sources; /* NULL: none */
    int port;
    char addr[80];
};

/* One POST /ingest/ body being received. */
struct upload {
    struct osc_buf body;
    int64_t limit;
    int too_big;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    char *body = strdup(text);
    return body ? reply(c, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

static void upload_done(void *cls, struct MHD_Connection *c, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    struct upload *u = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (u) {
        osc_buf_free(&u->body);
        free(u);
        *con_cls = NULL;
    }
}

/* POST /ingest/{destination}: collect the body, then hand it to the sources. */
static enum MHD_Result ingest(struct osc_status *s, struct MHD_Connection *c, const char *dest,
                              const char *upload, size_t *upload_len, void **con_cls)
{
    struct upload *u = *con_cls;
    struct osc_ingest_reply r;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char *body;

    if (!u) {
        int64_t limit = osc_sources_ingest_limit(s->sources, dest);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        int64_t n;
        if (limit < 0) {
            osc_sources_ingest(s->sources, dest, NULL, NULL, NULL, 0, &r);
            return reply_text(c, (unsigned)r.status, r.body);
        }
        if (!(u = calloc(1, sizeof(*u))))
            return MHD_NO;
        u->limit = limit;
        /* a body declared too large is never collected; it is answered 413 at its end */
        u->too_big = cl && osc_parse_int(cl, 0, INT64_MAX, &n) == 0 && n > limit;
        osc_buf_init(&u->body, (size_t)limit + 1);
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_len) {
        if (!u->too_big && osc_buf_add(&u->body, upload, *upload_len))
            u->too_big = 1;
        *upload_len = 0;
        return MHD_YES;
    }
    if (u->too_big) {
        char text[160];
        snprintf(text, sizeof(text), "the body is larger than max_body (%lld bytes)\n",
                 (long long)u->limit);
        return reply_text(c, 413, text);
    }
    osc_sources_ingest(s->sources, dest,
                       MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                       MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
                       u->body.data, u->body.len, &r);
    if (!(body = strdup(r.body)))
        return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type",
                            r.status == 202 ? "application/json" : "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r.status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"osconnect\"");
    if (r.retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%d", r.retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    ret = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* /livez or /readyz over the presence loop (when it runs) and the sources. */
static int verdict(struct osc_status *s, int ready, struct osc_buf *b)
{
    char why[1024], swhy[2048];
    int64_t now = osc_clock_mono_ms(NULL);
    int ok = 1;

    why[0] = swhy[0] = '\0';
    if (s->m)
        ok = ready ? osc_metrics_ready(s->m, now, why, sizeof(why))
                   : osc_metrics_live(s->m, now, why, sizeof(why));
    if (s->sources && osc_sources_count(s->sources))
        ok &= ready ? osc_sources_ready(s->sources, now, swhy, sizeof(swhy))
                    : osc_sources_live(s->sources, now, swhy, sizeof(swhy));
    osc_buf_printf(b, "%s: %s%s%s\n",
                   ok      ? "ok"
                   : ready ? "not ready"
                           : "dead",
                   why, why[0] && swhy[0] ? "; " : "", swhy[0] || why[0] ? swhy : "nothing runs");
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    struct osc_status *s = cls;
    struct osc_buf b;
    int ok;

    (void)version;
    if (s->sources && strncmp(url, INGEST_PREFIX, sizeof(INGEST_PREFIX) - 1) == 0 &&
        strcmp(method, "POST") == 0)
        return ingest(s, c, url + sizeof(INGEST_PREFIX) - 1, upload, upload_len, con_cls);
    if (*upload_len)
        *upload_len = 0;
    osc_buf_init(&b, 1024 * 1024);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        size_t len;
        osc_buf_adds(&b, "method not allowed\n");
        len = b.len;
        return reply(c, 405, "text/plain", osc_buf_steal(&b), len);
    }
    if (strcmp(url, "/livez") == 0 || strcmp(url, "/readyz") == 0 || strcmp(url, "/healthz") == 0) {
        size_t len;
        /* /healthz is /readyz, kept for existing probes */
        ok = verdict(s, strcmp(url, "/livez") != 0, &b);
        len = b.len;
        return reply(c, ok ? 200 : 503, "text/plain; charset=utf-8", osc_buf_steal(&b), len);
    }
    if (strcmp(url, "/metrics") == 0) {
        size_t len;
        if ((s->m && osc_metrics_render(s->m, &b)) ||
            (s->sources && osc_sources_render(s->sources, &b))) {
            osc_buf_free(&b);
            return MHD_NO;
        }
        len = b.len;
        return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", osc_buf_steal(&b), len);
    }
    osc_buf_adds(&b, "not found: try /livez, /readyz, /healthz or /metrics\n");
    {
        size_t len = b.len;
        return reply(c, 404, "text/plain", osc_buf_steal(&b), len);
    }
}

/* Split "host:port" / "[v6]:port" into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sl,
                        struct osc_err *err)
{
    char host[64];
    const char *colon, *h = listen;
    size_t hlen;
    int64_t port;

    memset(ss, 0, sizeof(*ss));
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            goto bad;
        h = listen + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            goto bad;
        hlen = (size_t)(colon - listen);
    }
    if (hlen == 0 || hlen >= sizeof(host) || osc_parse_int(colon + 1, 0, 65535, &port))
        goto bad;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    {
        /* an address, or a name (resolved once, at start): the first address it has */
        struct addrinfo hints = {0}, *ai = NULL;
        char ps[8];
        snprintf(ps, sizeof(ps), "%d", (int)port);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG;
        if (getaddrinfo(host, ps, &hints, &ai) == 0 && ai && ai->ai_addrlen <= sizeof(*ss)) {
            memcpy(ss, ai->ai_addr, ai->ai_addrlen);
            *sl = (socklen_t)ai->ai_addrlen;
            freeaddrinfo(ai);
            return 0;
        }
        if (ai)
            freeaddrinfo(ai);
    }
bad:
    return osc_err_set(
        err, OSC_EINVAL,
        "status.listen '%s': expected HOST:PORT with an IP address (e.g. 127.0.0.1:9464)", listen);
}

int osc_status_start(const char *listen, struct osc_metrics *m, struct osc_status **out,
                     struct osc_err *err)
{
    struct osc_status_opts o = {listen, m, NULL};
    return osc_status_start_opts(&o, out, err);
}

int osc_status_start_opts(const struct osc_status_opts *o, struct osc_status **out,
                          struct osc_err *err)
{
    const char *listen = o->listen;
    struct osc_status *s = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    const union MHD_DaemonInfo *info;
    char host[64] = "?";
    int rc;

    if ((rc = parse_listen(listen, &ss, &sl, err)))
        return rc;
    if (!(s = calloc(1, sizeof(*s))))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    s->m = o->presence;
    s->sources = o->sources;
    /* ingest bodies wait for an fsync each: a small pool keeps /metrics answering meanwhile */
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
            (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
        MHD_OPTION_NOTIFY_COMPLETED, upload_done, NULL,
        /* a pool of 1 is refused with a warning: without ingest the limit is repeated instead */
        osc_sources_has_ingest(o->sources) ? MHD_OPTION_THREAD_POOL_SIZE
                                           : MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(osc_sources_has_ingest(o->sources) ? INGEST_THREADS : 64), MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return osc_err_set(err, OSC_EUNAVAIL, "status server cannot listen on %s", listen);
    }
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
    snprintf(s->addr, sizeof(s->addr), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
             s->port);
    *out = s;
    (void)sl;
    return 0;
}

int osc_status_port(const struct osc_status *s) { return s->port; }
const char *osc_status_address(const struct osc_status *s) { return s->addr; }

void osc_status_stop(struct osc_status *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
