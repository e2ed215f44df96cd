/*
 * testserver.h - a scripted HTTP server on 127.0.0.1 for tests (libmicrohttpd).
 *
 * It binds port 0 and answers requests from a queue of scripted responses
 * (status, extra headers, body, delay, connection reset mid-body); when the
 * queue is empty it answers the default response. Every request is recorded
 * (method, path with query, headers, body) so a test can state exactly what
 * the server received. Thread-safe: MHD serves on its own thread.
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
void ts_stop(struct ts_server *s);
int ts_port(const struct ts_server *s);
/* "http://127.0.0.1:PORT" */
const char *ts_url(const struct ts_server *s);

/* Queue one response (copied). */
void ts_push(struct ts_server *s, const struct ts_response *r);
/* The response used when the queue is empty (copied); default 200 "{}". */
void ts_set_default(struct ts_server *s, const struct ts_response *r);

/* Requests received so far. */
size_t ts_count(struct ts_server *s);
/* A copy of request i; free with ts_request_free(). */
int ts_get(struct ts_server *s, size_t i, struct ts_request *out);
void ts_request_free(struct ts_request *r);
/* Value of header name (lower-case) in r, copied into out; 0 if found. */
int ts_header(const struct ts_request *r, const char *name, char *out, size_t cap);

#endif
