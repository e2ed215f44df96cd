/*
 * testserver.h - a scripted HTTP server on 127.0.0.1 for tests (libmicrohttpd).
 *
 * It binds port 0 and answers requests from a queue of scripted responses
 * (status, extra headers, body, delay, connection reset mid-body); when the
 * queue is empty it answers the default response. Every request is recorded
 * (method, path with query, headers, body) so a test can state exactly what
 * the server received. Thread-safe: MHD serves on its own thread.
 *
 * Every connection has its own thread, so a delayed or held answer never
 * stalls the others. A request is "in flight" from the moment it has been
 * read whole until its answer is queued. With a concurrency limit N, a
 * request that arrives while N are in flight is answered 429 at once (it
 * is recorded, takes no scripted response and is not in flight itself).
 * ts_stop() releases held and delayed requests before it joins them.
 */
#ifndef OSC_TESTSERVER_H
#define OSC_TESTSERVER_H

#include <stddef.h>

#define TS_HANG (-1) /* ts_response.delay_ms: hold the request unanswered until ts_stop() */

struct ts_response {
    int status;
    const char *headers; /* "Name: value\n" lines, or NULL */
    const char *body;    /* NULL: "" */
    int delay_ms;        /* wait before answering; TS_HANG: never answer (until ts_stop) */
    int reset;           /* send half the body, then drop the connection */
};

struct ts_request {
    char method[16];
    char *url;     /* path and query */
    char *headers; /* "name: value\n" lines, names lower-case */
    char *body;
    size_t body_len;
};

struct ts_server;

/* Start on 127.0.0.1:0; NULL on failure. */
struct ts_server *ts_start(void);
/*
 * The same server speaking HTTPS (MHD with GnuTLS) with a PEM certificate
 * and private key (both copied); ts_url() is then "https://127.0.0.1:PORT".
 * NULL on failure, or when this libmicrohttpd has no TLS.
 */
struct ts_server *ts_start_tls(const char *cert_pem, const char *key_pem);
void ts_stop(struct ts_server *s);
int ts_port(const struct ts_server *s);
/* "http://127.0.0.1:PORT" (https:// for ts_start_tls) */
const char *ts_url(const struct ts_server *s);

/* Queue one response (copied). */
void ts_push(struct ts_server *s, const struct ts_response *r);
/* The response used when the queue is empty (copied); default 200 "{}". */
void ts_set_default(struct ts_server *s, const struct ts_response *r);

/* Every answer waits ms more (besides a scripted delay_ms); 0: none. Also
 * applies to requests already waiting (lowering it releases them). */
void ts_set_delay(struct ts_server *s, int ms);
/* n > 0: answer 429 (with "Retry-After: retry_after_s" when retry_after_s >= 0)
 * to a request arriving while n are in flight; n 0: no limit. */
void ts_set_limit(struct ts_server *s, int n, int retry_after_s);
/* on: requests admitted from now on stay in flight until ts_hold(s, 0) (or
 * ts_stop()), so a test can fill the server deterministically. */
void ts_hold(struct ts_server *s, int on);

struct ts_stats {
    size_t requests;      /* received (ts_count() until the log is full) */
    size_t in_flight;     /* now */
    size_t max_in_flight; /* the most seen at once since ts_start() */
    size_t answered_2xx;  /* answers queued with a 2xx status */
    size_t answered_429;  /* ... with 429 (the limit's and scripted ones) */
};
void ts_get_stats(struct ts_server *s, struct ts_stats *out);

/* Requests received so far. */
size_t ts_count(struct ts_server *s);
/* A copy of request i; free with ts_request_free(). */
int ts_get(struct ts_server *s, size_t i, struct ts_request *out);
void ts_request_free(struct ts_request *r);
/* Value of header name (lower-case) in r, copied into out; 0 if found. */
int ts_header(const struct ts_request *r, const char *name, char *out, size_t cap);

#endif
