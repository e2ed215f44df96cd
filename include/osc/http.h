/*
 * http.h - the HTTP client on libcurl's multi interface.
 *
 * One struct osc_http owns a CURLM (and so the connection cache: requests
 * to the same host reuse keep-alive connections) and a pool of easy handles
 * that are recycled. Requests can be submitted asynchronously, at most
 * max_in_flight at once, and driven with osc_http_run(); osc_http_perform()
 * is the blocking form of the same thing.
 *
 * Every response is reduced to one outcome (sent / retry / reject) by
 * osc_http_classify(), the only place where that decision is made.
 * Credentials are passed as (auth, secret) and turned into the header here;
 * the secret never reaches a log line (it is registered for redaction).
 * Only http:// and https:// URLs are used (redirects included): any other
 * scheme fails as CURLE_UNSUPPORTED_PROTOCOL before a connection is made.
 */
#ifndef OSC_HTTP_H
#define OSC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "osc/buf.h"
#include "osc/err.h"

enum osc_http_outcome {
    OSC_HTTP_SENT = 0, /* 2xx: the server took it */
    OSC_HTTP_RETRY,    /* 408, 429, 5xx, transient transport errors: try again later */
    OSC_HTTP_REJECT    /* other statuses, permanent transport errors: retrying cannot help */
};

enum osc_http_auth {
    OSC_HTTP_AUTH_NONE = 0,
    OSC_HTTP_AUTH_OS_TOKEN,  /* OfficeSpace REST: Authorization: Token token=KEY */
    OSC_HTTP_AUTH_OS_APIKEY, /* OfficeSpace GraphQL: apikey: KEY */
    OSC_HTTP_AUTH_MAPPED     /* Mapped: Authorization: token PAT */
};

struct osc_http_opts {
    long connect_timeout_ms; /* 0: 10 s */
    long timeout_ms;         /* 0: 30 s */
    size_t max_response;     /* 0: 1 MiB; larger bodies are truncated */
    int no_verify_tls;       /* 1 turns certificate checks off */
    const char *ca_file;     /* copied */
    int max_in_flight;       /* 0: 4 */
    /* Config section whose verify_tls/ca_file apply ("officespace", "mapped"),
     * named in the advice of TLS errors; copied; NULL: both are named. */
    const char *conf_section;
    /* non-zero (a signal flag, borrowed) aborts every transfer in flight: osc_http_run()
     * then waits at most 100 ms per call and completes them with transport
     * CURLE_ABORTED_BY_CALLBACK, status 0, error "aborted: stopping", outcome retry;
     * transfers submitted while it is set end the same way. NULL: never. */
    volatile int *abort;
};

/* Everything is borrowed until the request completes. */
struct osc_http_request {
    const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    enum osc_http_auth auth;
    const char *secret;
    const char *body; /* may be NULL */
    size_t body_len;
    long timeout_ms;     /* 0: the client's */
    size_t max_response; /* 0: the client's */
};

struct osc_http_response {
    long status;            /* 0 when no response arrived */
    int transport;          /* CURLcode; 0 when the exchange completed */
    char error[512];        /* transport error text; for a permanent one the
                               osc_http_transport_message() sentence */
    struct osc_buf body;    /* up to max_response bytes */
    int truncated;          /* the body was longer than max_response */
    struct osc_buf headers; /* raw response header lines (bounded) */
    char content_type[128];
    int64_t retry_after_ms; /* from Retry-After; -1 when absent or invalid */
    double seconds;         /* total time of the transfer */
    enum osc_http_outcome outcome;
};

struct osc_http;

typedef void (*osc_http_done_fn)(void *ud, struct osc_http_response *resp);

/* New client; caller frees with osc_http_free(). NULL on failure (err set). */
struct osc_http *osc_http_new(const struct osc_http_opts *opts, struct osc_err *err);
/* Abort what is in flight (callbacks are not called) and free. Accepts NULL. */
void osc_http_free(struct osc_http *h);

void osc_http_response_init(struct osc_http_response *r);
/* Free the buffers; the struct may be reused after osc_http_response_init(). */
void osc_http_response_free(struct osc_http_response *r);

/*
 * Start req. resp (caller-owned, initialised) is filled and done(ud, resp)
 * called from osc_http_run() when the transfer ends, whatever its outcome.
 * Returns 0, OSC_EBUSY when max_in_flight transfers are running (nothing
 * started), OSC_EINVAL, or OSC_ENOMEM.
 */
int osc_http_submit(struct osc_http *h, const struct osc_http_request *req,
                    struct osc_http_response *resp, osc_http_done_fn done, void *ud);
/*
 * Drive transfers: wait up to wait_ms for activity, then complete what
 * finished (calling the callbacks). Returns the number still in flight.
 */
int osc_http_run(struct osc_http *h, long wait_ms);
int osc_http_in_flight(const struct osc_http *h);
int osc_http_max_in_flight(const struct osc_http *h);

/*
 * Blocking request. Returns 0 when a response arrived (whatever its status;
 * see resp->status and resp->outcome) or OSC_ETRANSPORT with err saying why
 * (resp->outcome tells whether retrying may help; for a permanent transport
 * error err->msg is the resp->error sentence alone).
 */
int osc_http_perform(struct osc_http *h, const struct osc_http_request *req,
                     struct osc_http_response *resp, struct osc_err *err);

/*
 * The outcome of a status (0 if none) and a CURLcode (0 if none). A
 * transport error is RETRY unless osc_http_transport_permanent() says
 * otherwise, then REJECT.
 */
enum osc_http_outcome osc_http_classify(long status, int transport);

/*
 * 1 when transport error curlcode (a CURLcode) is one retrying cannot fix,
 * because the same request fails the same way until a person changes the
 * configuration or the server: the server's certificate failed verification
 * (untrusted issuer, wrong host name, bad OCSP status), the CA file cannot
 * be loaded, a client certificate, CRL, cipher or TLS engine setting is
 * wrong, the pinned key differs, the URL is malformed or its scheme is not
 * http/https (also a server that does not speak HTTP: curl reports an
 * HTTP/0.9 answer the same way), or this libcurl lacks a needed feature.
 * 0 for everything else (refused, reset, timed out, DNS, a TLS handshake
 * that broke off), and for 0.
 */
int osc_http_transport_permanent(int curlcode);

/*
 * A sentence for a person about transport error curlcode on url: what
 * failed, curl's detail text (may be NULL) and, for a permanent error, what
 * to change, e.g. "TLS certificate verification failed for
 * https://HOST:PORT: <detail>; set officespace.ca_file to ...". Only the
 * URL's scheme, host and port are shown (never its user, password, path or
 * query, which may hold a token), and registered secrets are redacted.
 * conf_section as in struct osc_http_opts. Writes at most cap bytes
 * (NUL-terminated) into out and returns out.
 */
const char *osc_http_transport_message(int curlcode, const char *url, const char *detail,
                                       const char *conf_section, char *out, size_t cap);
const char *osc_http_outcome_name(enum osc_http_outcome o);

/*
 * Delay asked by a Retry-After value: delta-seconds or an HTTP-date
 * (relative to now_wall_ms). -1 when the value is not valid. Never negative
 * otherwise (a date in the past means 0).
 */
int64_t osc_http_retry_after_ms(const char *value, int64_t now_wall_ms);

/* Percent-encode s (RFC 3986 unreserved kept); caller frees; NULL on ENOMEM. */
char *osc_http_urlencode(const char *s, size_t len);

#endif
