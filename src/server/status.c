/*
 * status.c - /livez, /readyz (/healthz) and /metrics over libmicrohttpd; see status.h.
 *
 * MHD runs its own polling thread; handlers only read the metrics (under
 * their mutex) and build a fresh response per request, so nothing is
 * shared with the presence loop but struct osc_metrics.
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

struct osc_status {
    struct MHD_Daemon *d;
    struct osc_metrics *m;
    int port;
    char addr[80];
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

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    struct osc_status *s = cls;
    struct osc_buf b;
    char why[256];
    int ok;

    (void)version;
    (void)upload;
    (void)con_cls;
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
        if (strcmp(url, "/livez") == 0) {
            ok = osc_metrics_live(s->m, osc_clock_mono_ms(NULL), why, sizeof(why));
            osc_buf_printf(&b, "%s: %s\n", ok ? "ok" : "dead", why);
        } else {
            /* /healthz is /readyz, kept for existing probes */
            ok = osc_metrics_ready(s->m, osc_clock_mono_ms(NULL), why, sizeof(why));
            osc_buf_printf(&b, "%s: %s\n", ok ? "ok" : "not ready", why);
        }
        len = b.len;
        return reply(c, ok ? 200 : 503, "text/plain; charset=utf-8", osc_buf_steal(&b), len);
    }
    if (strcmp(url, "/metrics") == 0) {
        size_t len;
        if (osc_metrics_render(s->m, &b)) {
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
    s->m = m;
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                                (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                            0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
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
