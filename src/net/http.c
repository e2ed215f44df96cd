/*
 * http.c - libcurl multi driver, response capture and outcome classification.
 *
 * Invariants: a struct xfer is either on the free list (easy handle idle,
 * owned by the pool) or in flight (added to the multi, resp and callback
 * attached). Easy handles are reset and reused so connections, DNS and TLS
 * sessions stay cached in the multi handle. Request bodies are never copied:
 * libcurl reads them from the caller's memory (CURLOPT_POSTFIELDS), which
 * the caller keeps alive until the callback. Every handle is limited to http
 * and https; a permanent transport error's text is the actionable sentence.
 */
#include "osc/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "osc/clock.h"
#include "osc/log.h"
#include "osc/version.h"

#define DEFAULT_CONNECT_MS   10000L
#define DEFAULT_TIMEOUT_MS   30000L
#define DEFAULT_MAX_RESPONSE (1024 * 1024)
#define DEFAULT_IN_FLIGHT    4
#define MAX_HEADER_BYTES     (16 * 1024)
#define ABORT_SLICE_MS       100L /* longest poll while an abort flag is set */

struct xfer {
    struct osc_http *h;
    CURL *easy;
    struct curl_slist *hdrs;
    struct osc_http_response *resp;
    osc_http_done_fn done;
    void *ud;
    size_t max_response;
    char errbuf[CURL_ERROR_SIZE];
    struct xfer *next; /* free list, or the active list while in flight */
};

struct osc_http {
    CURLM *multi;
    struct osc_http_opts opts;
    char *ca_file;
    char *conf_section;
    struct xfer *free_list;
    struct xfer *active; /* in flight, so osc_http_free() can abort them */
    int in_flight;
};

/* ---- classification ---------------------------------------------------- */

int osc_http_transport_permanent(int curlcode)
{
    switch (curlcode) {
    /* the server's certificate: the same certificate fails the same way */
    case CURLE_PEER_FAILED_VERIFICATION: /* untrusted issuer, wrong name (was SSL_CACERT) */
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    /* local TLS settings: files and options read the same way every time */
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    /* the URL, or what this libcurl can do */
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_FUNCTION_NOT_FOUND:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION: return 1;
    default: return 0;
    }
}

enum osc_http_outcome osc_http_classify(long status, int transport)
{
    if (transport != CURLE_OK)
        /* refused, reset, timed out, DNS, a broken handshake: the next try may work */
        return osc_http_transport_permanent(transport) ? OSC_HTTP_REJECT : OSC_HTTP_RETRY;
    if (status >= 200 && status < 300)
        return OSC_HTTP_SENT;
    if (status == 408 || status == 429 || status >= 500)
        return OSC_HTTP_RETRY;
    return OSC_HTTP_REJECT;
}

/*
 * "scheme://host[:port]" of url into out, never its user, password, path or
 * query (they may hold a token). scheme gets the scheme alone (lower case).
 * An unparsable URL gives "the URL" and an empty scheme.
 */
static void url_origin(const char *url, char *out, size_t cap, char *scheme, size_t scap)
{
    CURLU *u = url ? curl_url() : NULL;
    char *sch = NULL, *host = NULL, *port = NULL;

    snprintf(out, cap, "the URL");
    scheme[0] = '\0';
    if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &sch, 0) != CURLUE_OK)
        goto out;
    snprintf(scheme, scap, "%s", sch);
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        host = NULL;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
        port = NULL;
    snprintf(out, cap, "%s://%s%s%s", sch, host ? host : "", port ? ":" : "", port ? port : "");
out:
    curl_free(sch);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

const char *osc_http_transport_message(int curlcode, const char *url, const char *detail,
                                       const char *conf_section, char *out, size_t cap)
{
    char origin[300], scheme[32], key[64];
    const char *what = detail && *detail ? detail : curl_easy_strerror((CURLcode)curlcode);

    if (!cap)
        return out;
    url_origin(url, origin, sizeof(origin), scheme, sizeof(scheme));
    if (conf_section)
        snprintf(key, sizeof(key), "%s.ca_file", conf_section);
    else
        snprintf(key, sizeof(key), "ca_file (officespace.ca_file, mapped.ca_file)");
    switch (curlcode) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
        snprintf(out, cap,
                 "TLS certificate verification failed for %s: %s; set %s to the CA that signed "
                 "the server's certificate (a private CA) or fix the server's certificate",
                 origin, what, key);
        break;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(out, cap,
                 "cannot load the CA file to verify %s: %s; %s must name a readable PEM file of "
                 "CA certificates",
                 origin, what, key);
        break;
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(out, cap, "the public key of %s is not the pinned one: %s", origin, what);
        break;
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
        snprintf(out, cap, "the local TLS setup for %s is unusable: %s; check the TLS settings",
                 origin, what);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        if (scheme[0] && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
            snprintf(out, cap,
                     "unsupported URL scheme \"%s\" in %s: osconnect sends only http:// and "
                     "https:// requests; fix the URL",
                     scheme, origin);
        else
            snprintf(out, cap,
                     "%s does not answer HTTP: %s; check the URL's scheme (http or https) and port",
                     origin, what);
        break;
    case CURLE_URL_MALFORMAT:
        snprintf(out, cap, "malformed URL (%s): %s; fix the URL in the configuration", origin,
                 what);
        break;
    case CURLE_NOT_BUILT_IN:
    case CURLE_FUNCTION_NOT_FOUND:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
        snprintf(out, cap, "this libcurl cannot make the request to %s: %s", origin, what);
        break;
    default: snprintf(out, cap, "%s: %s", origin, what); break;
    }
    osc_redact(out, cap);
    return out;
}

const char *osc_http_outcome_name(enum osc_http_outcome o)
{
    static const char *const names[] = {"sent", "retry", "reject"};
    return o <= OSC_HTTP_REJECT ? names[o] : "?";
}

int64_t osc_http_retry_after_ms(const char *value, int64_t now_wall_ms)
{
    const char *p = value;
    int64_t secs = 0;
    time_t when;

    if (!value)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p >= '0' && *p <= '9') {
        while (*p >= '0' && *p <= '9') {
            if (secs > INT64_MAX / 10000)
                return -1;
            secs = secs * 10 + (*p++ - '0');
        }
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        return *p ? -1 : secs * 1000;
    }
    when = curl_getdate(p, NULL);
    if (when == (time_t)-1)
        return -1;
    secs = (int64_t)when * 1000 - now_wall_ms;
    return secs > 0 ? secs : 0;
}

char *osc_http_urlencode(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(len * 3 + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- responses --------------------------------------------------------- */

void osc_http_response_init(struct osc_http_response *r)
{
    memset(r, 0, sizeof(*r));
    osc_buf_init(&r->body, DEFAULT_MAX_RESPONSE);
    osc_buf_init(&r->headers, MAX_HEADER_BYTES);
    r->retry_after_ms = -1;
}

void osc_http_response_free(struct osc_http_response *r)
{
    if (!r)
        return;
    osc_buf_free(&r->body);
    osc_buf_free(&r->headers);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    size_t room = x->max_response > x->resp->body.len ? x->max_response - x->resp->body.len : 0;

    /* keep reading past the cap (so the connection stays reusable), keep nothing */
    if (len > room) {
        x->resp->truncated = 1;
        if (room && osc_buf_add(&x->resp->body, data, room))
            return 0;
        return len;
    }
    return osc_buf_add(&x->resp->body, data, len) ? 0 : len;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), vlen;
    const char *v;

    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    v = line + nlen + 1;
    vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= cap)
        vlen = cap - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    struct osc_http_response *r = x->resp;
    size_t len = size * n;
    char retry_after[128] = "";

    /* a new status line (after 100-continue or a redirect) starts a new block */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        osc_buf_reset(&r->headers);
        r->content_type[0] = '\0';
        r->retry_after_ms = -1;
    }
    (void)osc_buf_add(&r->headers, data, len); /* past the cap, later lines are dropped */
    header_value(data, len, "content-type", r->content_type, sizeof(r->content_type));
    header_value(data, len, "retry-after", retry_after, sizeof(retry_after));
    if (retry_after[0])
        r->retry_after_ms = osc_http_retry_after_ms(retry_after, osc_clock_wall_ms(NULL));
    return len;
}

/* ---- the client -------------------------------------------------------- */

struct osc_http *osc_http_new(const struct osc_http_opts *opts, struct osc_err *err)
{
    struct osc_http *h = calloc(1, sizeof(*h));

    if (!h)
        goto nomem;
    if (opts)
        h->opts = *opts;
    if (!h->opts.connect_timeout_ms)
        h->opts.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (!h->opts.timeout_ms)
        h->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!h->opts.max_response)
        h->opts.max_response = DEFAULT_MAX_RESPONSE;
    if (h->opts.max_in_flight <= 0)
        h->opts.max_in_flight = DEFAULT_IN_FLIGHT;
    if (opts && opts->ca_file && !(h->ca_file = strdup(opts->ca_file)))
        goto nomem;
    h->opts.ca_file = h->ca_file;
    if (opts && opts->conf_section && !(h->conf_section = strdup(opts->conf_section)))
        goto nomem;
    h->opts.conf_section = h->conf_section;
    if (!(h->multi = curl_multi_init()))
        goto nomem;
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->opts.max_in_flight * 2);
    return h;
nomem:
    osc_http_free(h);
    osc_err_set(err, OSC_ENOMEM, "cannot create the HTTP client");
    return NULL;
}

static void xfer_destroy(struct xfer *x)
{
    if (!x)
        return;
    curl_slist_free_all(x->hdrs);
    if (x->easy)
        curl_easy_cleanup(x->easy);
    free(x);
}

void osc_http_free(struct osc_http *h)
{
    if (!h)
        return;
    while (h->active) {
        struct xfer *x = h->active;
        h->active = x->next;
        curl_multi_remove_handle(h->multi, x->easy);
        xfer_destroy(x);
    }
    while (h->free_list) {
        struct xfer *x = h->free_list;
        h->free_list = x->next;
        xfer_destroy(x);
    }
    if (h->multi)
        curl_multi_cleanup(h->multi);
    free(h->ca_file);
    free(h->conf_section);
    free(h);
}

int osc_http_in_flight(const struct osc_http *h) { return h->in_flight; }
int osc_http_max_in_flight(const struct osc_http *h) { return h->opts.max_in_flight; }

static int add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (!n)
        return OSC_ENOMEM;
    *list = n;
    return 0;
}

static int auth_header(struct curl_slist **list, enum osc_http_auth auth, const char *secret)
{
    char line[4200];
    int rc;

    if (auth == OSC_HTTP_AUTH_NONE)
        return 0;
    if (!secret || strlen(secret) > 4096 || strpbrk(secret, "\r\n"))
        return OSC_EINVAL;
    osc_log_secret_add(secret);
    if (auth == OSC_HTTP_AUTH_OS_TOKEN)
        snprintf(line, sizeof(line), "Authorization: Token token=%s", secret);
    else if (auth == OSC_HTTP_AUTH_OS_APIKEY)
        snprintf(line, sizeof(line), "apikey: %s", secret);
    else
        snprintf(line, sizeof(line), "Authorization: token %s", secret);
    rc = add_header(list, line);
    memset(line, 0, sizeof(line));
    return rc;
}

static int setup(struct osc_http *h, struct xfer *x, const struct osc_http_request *req)
{
    CURL *e = x->easy;
    long timeout = req->timeout_ms ? req->timeout_ms : h->opts.timeout_ms;
    int rc;

    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    /* ftp://, file://, ... fail as CURLE_UNSUPPORTED_PROTOCOL before any connection;
     * a libcurl that cannot restrict must not be used at all */
    if (curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK)
        return OSC_EINVAL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, OSC_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* answers are small; a smaller receive buffer per transfer in flight saves memory */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->opts.no_verify_tls ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->opts.no_verify_tls ? 0L : 2L);
    if (h->opts.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->opts.ca_file);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);

    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "POST") == 0 || req->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }

    /* no "Expect: 100-continue" round trip for bodies over 1 KiB */
    if ((rc = add_header(&x->hdrs, "Expect:")))
        return rc;
    for (const char *const *hd = req->headers; hd && *hd; hd++)
        if ((rc = add_header(&x->hdrs, *hd)))
            return rc;
    if ((rc = auth_header(&x->hdrs, req->auth, req->secret)))
        return rc;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    return 0;
}

int osc_http_submit(struct osc_http *h, const struct osc_http_request *req,
                    struct osc_http_response *resp, osc_http_done_fn done, void *ud)
{
    struct xfer *x;
    int rc;

    if (!req || !req->url || !req->method || !resp)
        return OSC_EINVAL;
    if (h->in_flight >= h->opts.max_in_flight)
        return OSC_EBUSY;
    if (h->free_list) {
        x = h->free_list;
        h->free_list = x->next;
    } else {
        if (!(x = calloc(1, sizeof(*x))))
            return OSC_ENOMEM;
        if (!(x->easy = curl_easy_init())) {
            free(x);
            return OSC_ENOMEM;
        }
        x->h = h;
    }
    x->next = NULL;
    x->resp = resp;
    x->done = done;
    x->ud = ud;
    x->errbuf[0] = '\0';
    x->max_response = req->max_response ? req->max_response : h->opts.max_response;
    resp->body.cap = x->max_response;
    osc_buf_reset(&resp->body);
    osc_buf_reset(&resp->headers);
    resp->status = 0;
    resp->transport = 0;
    resp->truncated = 0;
    resp->error[0] = '\0';
    resp->content_type[0] = '\0';
    resp->retry_after_ms = -1;

    if ((rc = setup(h, x, req)) != 0 || curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
        curl_slist_free_all(x->hdrs);
        x->hdrs = NULL;
        x->next = h->free_list;
        h->free_list = x;
        return rc ? rc : OSC_ENOMEM;
    }
    x->next = h->active;
    h->active = x;
    h->in_flight++;
    OSC_LOG_DEBUG("http", "%s %s (%zu bytes)", req->method, req->url, req->body_len);
    return 0;
}

/* Complete x with result (an aborted transfer: CURLE_ABORTED_BY_CALLBACK, no status). */
static void finish(struct osc_http *h, struct xfer *x, CURLcode result)
{
    struct osc_http_response *r;
    double secs = 0;

    r = x->resp;
    r->transport = (int)result;
    if (result == CURLE_ABORTED_BY_CALLBACK)
        r->status = 0; /* whatever arrived is not an answer */
    else
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &secs);
    r->seconds = secs;
    if (result == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(r->error, sizeof(r->error), "aborted: stopping");
    } else if (r->transport != CURLE_OK) {
        const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(result);
        char *url = NULL;
        if (osc_http_transport_permanent(r->transport)) {
            /* the sentence a person acts on; the effective URL is the request's */
            curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
            osc_http_transport_message(r->transport, url, detail, h->opts.conf_section, r->error,
                                       sizeof(r->error));
        } else {
            snprintf(r->error, sizeof(r->error), "%s", detail);
            osc_redact(r->error, sizeof(r->error));
        }
    }
    r->outcome = osc_http_classify(r->status, r->transport);
    curl_multi_remove_handle(h->multi, x->easy);
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    for (struct xfer **pp = &h->active; *pp; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    }
    h->in_flight--;
    OSC_LOG_DEBUG("http", "-> %ld %s in %.3fs%s%s", r->status, osc_http_outcome_name(r->outcome),
                  secs, r->error[0] ? ": " : "", r->error);

    /* back to the pool before the callback, which may submit again */
    x->next = h->free_list;
    h->free_list = x;
    if (x->done)
        x->done(x->ud, r);
}

static int aborting(const struct osc_http *h) { return h->opts.abort && *h->opts.abort; }

/* Complete every transfer in flight as aborted (their callbacks may submit again). */
static void abort_all(struct osc_http *h)
{
    struct xfer *list = h->active, *next;

    for (struct xfer *x = list; x; x = next) {
        next = x->next;
        OSC_LOG_DEBUG("http", "aborting a transfer in flight (stopping)");
        finish(h, x, CURLE_ABORTED_BY_CALLBACK);
    }
}

int osc_http_run(struct osc_http *h, long wait_ms)
{
    CURLMsg *msg;
    int running = 0, left;

    /* with an abort flag, wait in short slices so a stop ends a hung transfer promptly */
    if (h->opts.abort && wait_ms > ABORT_SLICE_MS)
        wait_ms = ABORT_SLICE_MS;
    if (aborting(h)) {
        abort_all(h);
        return h->in_flight;
    }
    curl_multi_perform(h->multi, &running);
    if (running > 0 && wait_ms > 0) {
        curl_multi_poll(h->multi, NULL, 0, (int)wait_ms, NULL);
        curl_multi_perform(h->multi, &running);
    }
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            struct xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            finish(h, x, msg->data.result);
        }
    }
    if (aborting(h))
        abort_all(h);
    return h->in_flight;
}

struct perform_state {
    int done;
};

static void perform_done(void *ud, struct osc_http_response *resp)
{
    (void)resp;
    ((struct perform_state *)ud)->done = 1;
}

int osc_http_perform(struct osc_http *h, const struct osc_http_request *req,
                     struct osc_http_response *resp, struct osc_err *err)
{
    struct perform_state st = {0};
    int rc = osc_http_submit(h, req, resp, perform_done, &st);

    if (rc)
        return osc_err_set(err, rc, "cannot start %s %s: %s", req->method, req->url,
                           osc_strerror(rc));
    while (!st.done)
        osc_http_run(h, 1000);
    if (resp->transport && osc_http_transport_permanent(resp->transport))
        return osc_err_set(err, OSC_ETRANSPORT, "%s", resp->error);
    if (resp->transport)
        return osc_err_set(err, OSC_ETRANSPORT, "%s %s: %s", req->method, req->url, resp->error);
    return 0;
}
