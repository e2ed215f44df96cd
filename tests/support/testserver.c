/*
 * testserver.c - scripted HTTP server for tests; see testserver.h.
 *
 * One mutex (mu) guards the script, the log, the knobs and the figures;
 * it is never held while waiting. Waits (delays, holds) sleep on cv, which
 * ts_hold(s, 0) and ts_stop() broadcast.
 */
#include "testserver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SCRIPT 256
#define MAX_LOG    100000
#define MAX_BODY   (64 * 1024 * 1024)

struct owned_response {
    int status;
    char *headers;
    char *body;
    int delay_ms;
    int reset;
};

struct ts_server {
    struct MHD_Daemon *d;
    int port;
    char url[64];
    char *cert_pem, *key_pem; /* kept for the daemon's lifetime (TLS only) */
    pthread_mutex_t mu;
    struct owned_response script[MAX_SCRIPT];
    size_t head, tail;
    struct owned_response def;
    struct ts_request *log;
    size_t nlog;
    pthread_cond_t cv; /* with mu: delays and holds */
    int stopping, holding;
    int delay_ms, limit, retry_after_s;
    struct ts_stats st; /* requests is nlog, filled in ts_get_stats() */
};

struct conn {
    char *body;
    size_t len;
    int too_big;
};

static char *dupn(const char *s) { return s ? strdup(s) : NULL; }

static void own(struct owned_response *o, const struct ts_response *r)
{
    free(o->headers);
    free(o->body);
    o->status = r->status;
    o->headers = dupn(r->headers);
    o->body = dupn(r->body ? r->body : "");
    o->delay_ms = r->delay_ms;
    o->reset = r->reset;
}

static void disown(struct owned_response *o)
{
    free(o->headers);
    free(o->body);
    memset(o, 0, sizeof(*o));
}

struct reset_state {
    char *body;
    size_t len;
};

static ssize_t reset_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct reset_state *st = cls;
    size_t half = st->len / 2;

    if (pos >= half)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (max > half - pos)
        max = half - pos;
    memcpy(buf, st->body + pos, max);
    return (ssize_t)max;
}

static void reset_free(void *cls)
{
    struct reset_state *st = cls;
    free(st->body);
    free(st);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    char **acc = cls;
    size_t old = *acc ? strlen(*acc) : 0, add = strlen(key) + strlen(value) + 4;
    char *p = realloc(*acc, old + add);

    (void)kind;
    if (!p)
        return MHD_NO;
    for (size_t i = 0; key[i]; i++)
        p[old + i] = (char)tolower((unsigned char)key[i]);
    snprintf(p + old + strlen(key), add - strlen(key), ": %s\n", value);
    *acc = p;
    return MHD_YES;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    char **acc = cls;
    size_t old = strlen(*acc), add = strlen(key) + (value ? strlen(value) : 0) + 3;
    char *p = realloc(*acc, old + add);

    (void)kind;
    if (!p)
        return MHD_NO;
    snprintf(p + old, add, "%c%s%s%s", strchr(p, '?') ? '&' : '?', key, value ? "=" : "",
             value ? value : "");
    *acc = p;
    return MHD_YES;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * Wait until scripted_ms plus the server's delay have passed since start_ms
 * (mu held on entry and exit). The server's delay is read again on every
 * wake-up, so ts_set_delay() also shortens waits already running; returns
 * early when the server stops.
 */
static void wait_delay(struct ts_server *s, long long start_ms, int scripted_ms)
{
    for (;;) {
        long long end = start_ms + scripted_ms + s->delay_ms;
        struct timespec ts;
        if (s->stopping || now_ms() >= end)
            return;
        ts.tv_sec = (time_t)(end / 1000);
        ts.tv_nsec = (long)(end % 1000) * 1000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    struct ts_server *s = cls;
    struct conn *cn = *state;
    struct owned_response r = {0};
    struct MHD_Response *resp;
    struct ts_request rec = {0};
    enum MHD_Result ret;
    int limited = 0;

    (void)version;
    if (!cn) {
        cn = calloc(1, sizeof(*cn));
        *state = cn;
        return cn ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        if (cn->len + *upload_size > MAX_BODY) {
            cn->too_big = 1;
        } else {
            char *p = realloc(cn->body, cn->len + *upload_size + 1);
            if (!p)
                return MHD_NO;
            memcpy(p + cn->len, upload, *upload_size);
            cn->body = p;
            cn->len += *upload_size;
            cn->body[cn->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }

    snprintf(rec.method, sizeof(rec.method), "%s", method);
    rec.url = strdup(url);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &rec.url);
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &rec.headers);
    if (!rec.headers)
        rec.headers = strdup("");
    rec.body = cn->body ? cn->body : strdup("");
    rec.body_len = cn->len;
    cn->body = NULL;

    pthread_mutex_lock(&s->mu);
    s->st.requests++;
    if (s->nlog < MAX_LOG) {
        struct ts_request *nl = realloc(s->log, (s->nlog + 1) * sizeof(*nl));
        if (nl) {
            s->log = nl;
            s->log[s->nlog++] = rec;
            memset(&rec, 0, sizeof(rec));
        }
    }
    if (s->limit > 0 && s->st.in_flight >= (size_t)s->limit) {
        char ra[48];
        limited = 1;
        r.status = 429;
        r.body = strdup("{\"error\":\"too many requests in flight\"}");
        snprintf(ra, sizeof(ra), "Retry-After: %d\n", s->retry_after_s);
        r.headers = s->retry_after_s >= 0 ? strdup(ra) : NULL;
    } else if (s->head != s->tail) {
        r = s->script[s->head % MAX_SCRIPT];
        memset(&s->script[s->head % MAX_SCRIPT], 0, sizeof(r));
        s->head++;
    } else {
        r.status = s->def.status;
        r.headers = dupn(s->def.headers);
        r.body = dupn(s->def.body);
        r.delay_ms = s->def.delay_ms;
        r.reset = s->def.reset;
    }
    if (!limited) {
        if (++s->st.in_flight > s->st.max_in_flight)
            s->st.max_in_flight = s->st.in_flight;
        if (r.delay_ms == TS_HANG)
            while (!s->stopping) /* never answer: hold the request until ts_stop() */
                pthread_cond_wait(&s->cv, &s->mu);
        else
            wait_delay(s, now_ms(), r.delay_ms);
        while (s->holding && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    ts_request_free(&rec);

    if (r.delay_ms == TS_HANG) {
        disown(&r); /* never answered: the connection just closes at ts_stop() */
        return MHD_NO;
    }
    if (!r.body && !(r.body = strdup("")))
        return MHD_NO;
    if (r.reset) {
        struct reset_state *st = malloc(sizeof(*st));
        st->body = r.body;
        st->len = strlen(r.body);
        r.body = NULL;
        resp = MHD_create_response_from_callback(st->len, 1024, reset_reader, st, reset_free);
    } else {
        resp = MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_COPY);
    }
    for (char *line = r.headers; line && *line;) {
        char *nl = strchr(line, '\n'), *colon;
        if (nl)
            *nl = '\0';
        colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            MHD_add_response_header(resp, line, colon + 1 + (colon[1] == ' '));
        }
        line = nl ? nl + 1 : line + strlen(line);
    }
    ret = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    pthread_mutex_lock(&s->mu);
    if (!limited)
        s->st.in_flight--;
    if (r.status >= 200 && r.status < 300)
        s->st.answered_2xx++;
    else if (r.status == 429)
        s->st.answered_429++;
    pthread_mutex_unlock(&s->mu);
    disown(&r);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **state,
                      enum MHD_RequestTerminationCode toe)
{
    struct conn *cn = *state;

    (void)cls;
    (void)c;
    (void)toe;
    if (cn) {
        free(cn->body);
        free(cn);
    }
    *state = NULL;
}

static struct ts_server *start(const char *cert_pem, const char *key_pem)
{
    struct ts_server *s = calloc(1, sizeof(*s));
    const union MHD_DaemonInfo *info;
    struct sockaddr_in addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;

    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    s->retry_after_s = -1;
    s->def.status = 200;
    s->def.body = strdup("{}");
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (cert_pem) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES || !key_pem ||
            !(s->cert_pem = strdup(cert_pem)) || !(s->key_pem = strdup(key_pem))) {
            ts_stop(s);
            return NULL;
        }
        s->d = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
                                &addr, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                MHD_OPTION_HTTPS_MEM_CERT, s->cert_pem, MHD_OPTION_HTTPS_MEM_KEY,
                                s->key_pem, MHD_OPTION_END);
    } else {
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, &addr,
                                MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
    }
    if (!s->d) {
        ts_stop(s);
        return NULL;
    }
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d", cert_pem ? "https" : "http", s->port);
    return s;
}

struct ts_server *ts_start(void) { return start(NULL, NULL); }

struct ts_server *ts_start_tls(const char *cert_pem, const char *key_pem)
{
    return cert_pem ? start(cert_pem, key_pem) : NULL;
}

void ts_stop(struct ts_server *s)
{
    if (!s)
        return;
    /* release held and delayed requests first: MHD_stop_daemon joins their threads */
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->d)
        MHD_stop_daemon(s->d);
    for (size_t i = s->head; i != s->tail; i++)
        disown(&s->script[i % MAX_SCRIPT]);
    disown(&s->def);
    for (size_t i = 0; i < s->nlog; i++)
        ts_request_free(&s->log[i]);
    free(s->log);
    pthread_cond_destroy(&s->cv);
    free(s->cert_pem);
    free(s->key_pem);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int ts_port(const struct ts_server *s) { return s->port; }
const char *ts_url(const struct ts_server *s) { return s->url; }

void ts_push(struct ts_server *s, const struct ts_response *r)
{
    pthread_mutex_lock(&s->mu);
    if (s->tail - s->head < MAX_SCRIPT) {
        own(&s->script[s->tail % MAX_SCRIPT], r);
        s->tail++;
    }
    pthread_mutex_unlock(&s->mu);
}

void ts_set_default(struct ts_server *s, const struct ts_response *r)
{
    pthread_mutex_lock(&s->mu);
    own(&s->def, r);
    pthread_mutex_unlock(&s->mu);
}

void ts_set_delay(struct ts_server *s, int ms)
{
    pthread_mutex_lock(&s->mu);
    s->delay_ms = ms > 0 ? ms : 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ts_set_limit(struct ts_server *s, int n, int retry_after_s)
{
    pthread_mutex_lock(&s->mu);
    s->limit = n > 0 ? n : 0;
    s->retry_after_s = retry_after_s;
    pthread_mutex_unlock(&s->mu);
}

void ts_hold(struct ts_server *s, int on)
{
    pthread_mutex_lock(&s->mu);
    s->holding = on;
    if (!on)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ts_get_stats(struct ts_server *s, struct ts_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

size_t ts_count(struct ts_server *s)
{
    size_t n;
    pthread_mutex_lock(&s->mu);
    n = s->nlog;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int ts_get(struct ts_server *s, size_t i, struct ts_request *out)
{
    int rc = -1;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->mu);
    if (i < s->nlog) {
        const struct ts_request *r = &s->log[i];
        memcpy(out->method, r->method, sizeof(out->method));
        out->url = strdup(r->url);
        out->headers = strdup(r->headers);
        out->body = malloc(r->body_len + 1);
        if (out->body) {
            memcpy(out->body, r->body, r->body_len + 1);
            out->body_len = r->body_len;
        }
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void ts_request_free(struct ts_request *r)
{
    if (!r)
        return;
    free(r->url);
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int ts_header(const struct ts_request *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);

    for (const char *line = r->headers; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > n + 1 && strncmp(line, name, n) == 0 && line[n] == ':') {
            size_t vlen = len - n - 2;
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(out, line + n + 2, vlen);
            out[vlen] = '\0';
            return 0;
        }
        line = nl ? nl + 1 : line + len;
    }
    return -1;
}
