/*
 * conn.c - connecting to NATS and mapping libnats errors; see stream_int.h.
 *
 * Invariants: no libnats callback is installed, so no osconnect code runs
 * on libnats' threads and no closure can outlive its owner; the state of a
 * connection is read with natsConnection_Status() by the owner instead.
 * URLs appear in messages only without their user info.
 */
#include "stream_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS        32
#define SYSTEM_CA_BUNDLE   "/etc/ssl/certs/ca-certificates.crt"
#define DEFAULT_TIMEOUT_MS 5000

int64_t osc_stream_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libnats' last error text of this thread, without its "(file.c:123): " prefix. */
static const char *last_text(natsStatus s)
{
    const char *t = nats_GetLastError(NULL);
    const char *p;

    if (!t || !*t)
        return natsStatus_GetText(s);
    if (t[0] == '(' && (p = strstr(t, "): ")) != NULL)
        t = p + 3;
    return t;
}

static int map_status(natsStatus s, int jerr)
{
    switch (jerr) {
    case 0: break;
    case JSStreamNotFoundErr:
    case JSConsumerNotFoundErr: return OSC_ENOTFOUND;
    case JSNotEnabledErr:
    case JSNotEnabledForAccountErr:
    case JSClusterNotAvailErr:
    case JSClusterNotLeaderErr:
    case JSClusterNoPeersErr: return OSC_EUNAVAIL;
    default: return OSC_EPROTO;
    }
    switch (s) {
    case NATS_NO_MEMORY: return OSC_ENOMEM;
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED: return OSC_EAUTH;
    case NATS_SSL_ERROR:
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_SECURE_CONNECTION_REQUIRED: return OSC_ETRANSPORT;
    case NATS_NO_SERVER:
    case NATS_TIMEOUT:
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_IO_ERROR:
    case NATS_STALE_CONNECTION:
    case NATS_NOT_YET_CONNECTED:
    case NATS_DRAINING: return OSC_EUNAVAIL;
    case NATS_NOT_FOUND: return OSC_ENOTFOUND;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_ADDRESS_MISSING: return OSC_EINVAL;
    default: return OSC_EPROTO;
    }
}

int osc_stream_fail(struct osc_err *err, natsStatus s, int jerr, const char *what)
{
    int code = map_status(s, jerr);

    if (s == NATS_NO_RESPONDERS)
        return osc_err_set(err, code, "%s: no responder (is JetStream enabled on the server?)",
                           what);
    if (s == NATS_TIMEOUT)
        return osc_err_set(err, code, "%s: no answer in time", what);
    return osc_err_set(err, code, "%s: %s", what, last_text(s));
}

/* Append url to out without "user:pass@". */
static void add_display(char *out, size_t cap, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strchr(host, '@');
    size_t len = strlen(out);

    if (at)
        host = at + 1;
    snprintf(out + len, cap - len, "%s%.*s%s", len ? "," : "", scheme ? (int)(scheme + 3 - url) : 0,
             url, host);
}

static int readable(const char *path, const char *key, struct osc_err *err)
{
    FILE *f = fopen(path, "rb");

    if (!f)
        return osc_err_set(err, OSC_ENOINPUT, "NATS %s %s: %s", key, path, strerror(errno));
    fclose(f);
    return 0;
}

static int opt(natsStatus s, const char *what, struct osc_err *err)
{
    return s == NATS_OK ? 0 : osc_stream_fail(err, s, 0, what);
}

int osc_stream_connect(const struct osc_nats_conn_opts *o, natsConnection **nc, char *display,
                       size_t cap, struct osc_err *err)
{
    natsOptions *no = NULL;
    const char *servers[MAX_SERVERS];
    char *copy = NULL, *save = NULL, *tok;
    int n = 0, secure = o->tls || (o->ca_file && *o->ca_file), rc = 0;
    int timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
    natsStatus s;

    *nc = NULL;
    display[0] = '\0';
    if (!o->url || !*o->url)
        return osc_err_set(err, OSC_EINVAL, "NATS: no server URL given");
    if (!(copy = strdup(o->url)))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (n == MAX_SERVERS) {
            rc = osc_err_set(err, OSC_EINVAL, "NATS: more than %d server URLs", MAX_SERVERS);
            goto out;
        }
        if (strncmp(tok, "tls://", 6) == 0)
            secure = 1;
        servers[n++] = tok;
        add_display(display, cap, tok);
    }
    if (n == 0) {
        rc = osc_err_set(err, OSC_EINVAL, "NATS: no server URL given");
        goto out;
    }
    if ((o->creds_file && (rc = readable(o->creds_file, "creds_file", err))) ||
        (o->ca_file && *o->ca_file && (rc = readable(o->ca_file, "ca_file", err))))
        goto out;
    if ((rc = opt(natsOptions_Create(&no), "NATS options", err)) ||
        (rc = opt(natsOptions_SetServers(no, servers, n), "NATS server URLs", err)) ||
        (rc = opt(natsOptions_SetName(no, o->name ? o->name : "osconnect"), "NATS name", err)) ||
        (rc = opt(natsOptions_SetTimeout(no, timeout), "NATS timeout", err)) ||
        (rc = opt(natsOptions_SetAllowReconnect(no, true), "NATS reconnect", err)) ||
        (rc = opt(natsOptions_SetMaxReconnect(no, -1), "NATS reconnect", err)) ||
        (rc = opt(natsOptions_SetReconnectWait(no, 1000), "NATS reconnect", err)) ||
        (rc = opt(natsOptions_SetPingInterval(no, 5000), "NATS ping", err)) ||
        (rc = opt(natsOptions_SetMaxPingsOut(no, 3), "NATS ping", err)) ||
        (rc = opt(natsOptions_SetFailRequestsOnDisconnect(no, true), "NATS requests", err)))
        goto out;
    if (o->token && *o->token && (rc = opt(natsOptions_SetToken(no, o->token), "NATS token", err)))
        goto out;
    if (o->creds_file && (rc = opt(natsOptions_SetUserCredentialsFromFiles(no, o->creds_file, NULL),
                                   "NATS creds_file", err)))
        goto out;
    if (secure) {
        const char *ca = o->ca_file && *o->ca_file ? o->ca_file : NULL;
        if (!ca && access(SYSTEM_CA_BUNDLE, R_OK) == 0)
            ca = SYSTEM_CA_BUNDLE;
        if ((rc = opt(natsOptions_SetSecure(no, true), "NATS TLS", err)))
            goto out;
        if (ca && (s = natsOptions_LoadCATrustedCertificates(no, ca)) != NATS_OK) {
            rc = osc_err_set(err, OSC_ETRANSPORT, "NATS ca_file %s: %s", ca, last_text(s));
            goto out;
        }
    }
    /* also for a nats:// URL: the server may ask for TLS, and libnats follows */
    if (o->no_verify_tls &&
        (rc = opt(natsOptions_SkipServerVerification(no, true), "NATS TLS", err)))
        goto out;
    s = natsConnection_Connect(nc, no);
    if (s != NATS_OK) {
        char what[512];
        *nc = NULL;
        switch (map_status(s, 0)) {
        case OSC_EAUTH:
            snprintf(what, sizeof(what), "NATS server at %s refused the credentials", display);
            break;
        case OSC_ETRANSPORT:
            snprintf(what, sizeof(what), "TLS with NATS at %s failed", display);
            break;
        case OSC_EUNAVAIL:
            snprintf(what, sizeof(what), "NATS server unreachable at %s", display);
            break;
        default: snprintf(what, sizeof(what), "connecting to NATS at %s", display); break;
        }
        rc = osc_stream_fail(err, s, 0, what);
    }
out:
    natsOptions_Destroy(no);
    free(copy);
    return rc;
}

int osc_stream_js(natsConnection *nc, const struct osc_nats_conn_opts *o, jsCtx **js,
                  struct osc_err *err)
{
    jsOptions jo;
    natsStatus s;

    jsOptions_Init(&jo);
    jo.Wait = o->request_timeout_ms > 0 ? o->request_timeout_ms : DEFAULT_TIMEOUT_MS;
    s = natsConnection_JetStream(js, nc, &jo);
    return s == NATS_OK ? 0 : osc_stream_fail(err, s, 0, "JetStream context");
}

int osc_stream_wait_connected(natsConnection *nc, int timeout_ms)
{
    int64_t deadline = osc_stream_now_ms() + timeout_ms;

    for (;;) {
        natsConnStatus st = natsConnection_Status(nc);
        struct timespec ts = {0, 20 * 1000000L};
        if (st == NATS_CONN_STATUS_CONNECTED)
            return 1;
        if (st == NATS_CONN_STATUS_CLOSED || osc_stream_now_ms() >= deadline)
            return 0;
        nanosleep(&ts, NULL);
    }
}
