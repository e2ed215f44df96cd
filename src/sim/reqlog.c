/*
 * reqlog.c - a bounded ring of the requests the simulator received.
 *
 * At most SIM_REQLOG_MAX entries and SIM_REQLOG_BYTES_MAX bytes of bodies
 * (each body cut at SIM_REQLOG_BODY_MAX); the oldest entries go first.
 * Header values of secrets are redacted by the caller before they get here.
 */
#include "sim_int.h"

#include <stdlib.h>
#include <string.h>

#include "osc/clock.h"

struct entry {
    int64_t seq;
    int64_t wall_ms;
    char server[16];
    char method[16];
    char *path;
    char *query;
    json_t *headers;
    char *body;
    size_t body_len; /* stored bytes */
    size_t full_len; /* received bytes */
    int status;
    char fault[16];
};

struct sim_reqlog {
    struct entry *ring; /* SIM_REQLOG_MAX slots */
    size_t head;        /* oldest */
    size_t n;
    size_t bytes;
    int64_t seq;
};

struct sim_reqlog *sim_reqlog_new(void)
{
    struct sim_reqlog *l = calloc(1, sizeof(*l));

    if (l && !(l->ring = calloc(SIM_REQLOG_MAX, sizeof(*l->ring)))) {
        free(l);
        return NULL;
    }
    return l;
}

static void entry_free(struct entry *e)
{
    free(e->path);
    free(e->query);
    free(e->body);
    json_decref(e->headers);
    memset(e, 0, sizeof(*e));
}

static void drop_oldest(struct sim_reqlog *l)
{
    struct entry *e = &l->ring[l->head];

    l->bytes -= e->body_len;
    entry_free(e);
    l->head = (l->head + 1) % SIM_REQLOG_MAX;
    l->n--;
}

void sim_reqlog_clear(struct sim_reqlog *l)
{
    while (l->n)
        drop_oldest(l);
    l->seq = 0; /* a reset simulator numbers requests from 1 again */
}

void sim_reqlog_free(struct sim_reqlog *l)
{
    if (!l)
        return;
    sim_reqlog_clear(l);
    free(l->ring);
    free(l);
}

int64_t sim_reqlog_add(struct sim_reqlog *l, const char *server, const char *method,
                       const char *path, const char *query, json_t *headers, const char *body,
                       size_t len, int64_t wall_ms)
{
    size_t keep = len > SIM_REQLOG_BODY_MAX ? SIM_REQLOG_BODY_MAX : len;
    struct entry *e;

    if (l->n == SIM_REQLOG_MAX)
        drop_oldest(l);
    while (l->n && l->bytes + keep > (size_t)SIM_REQLOG_BYTES_MAX)
        drop_oldest(l);
    e = &l->ring[(l->head + l->n) % SIM_REQLOG_MAX];
    l->n++;
    e->seq = ++l->seq;
    e->wall_ms = wall_ms;
    snprintf(e->server, sizeof(e->server), "%s", server);
    snprintf(e->method, sizeof(e->method), "%s", method);
    e->path = strdup(path ? path : "");
    e->query = strdup(query ? query : "");
    e->headers = headers;
    e->body = malloc(keep + 1);
    if (e->body) {
        if (keep)
            memcpy(e->body, body, keep);
        e->body[keep] = '\0';
        e->body_len = keep;
        l->bytes += keep;
    }
    e->full_len = len;
    return e->seq;
}

void sim_reqlog_status(struct sim_reqlog *l, int64_t seq, int status, const char *fault)
{
    for (size_t i = l->n; i-- > 0;) {
        struct entry *e = &l->ring[(l->head + i) % SIM_REQLOG_MAX];
        if (e->seq == seq) {
            e->status = status;
            if (fault)
                snprintf(e->fault, sizeof(e->fault), "%s", fault);
            return;
        }
        if (e->seq < seq)
            return;
    }
}

json_t *sim_reqlog_json(const struct sim_reqlog *l, int64_t since, const char *prefix)
{
    json_t *arr = json_array();
    char ts[40];

    for (size_t i = 0; arr && i < l->n; i++) {
        const struct entry *e = &l->ring[(l->head + i) % SIM_REQLOG_MAX];
        json_t *o, *body;
        if (e->seq <= since || (prefix && strncmp(e->path, prefix, strlen(prefix)) != 0))
            continue;
        osc_clock_iso8601(e->wall_ms, ts, sizeof(ts));
        body = json_stringn(e->body ? e->body : "", e->body_len);
        if (!body) /* not UTF-8: give the length only */
            body = json_null();
        o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:O,s:o,s:I,s:b,s:i}", "seq", (json_int_t)e->seq,
                      "time", ts, "server", e->server, "method", e->method, "path", e->path,
                      "query", e->query, "headers", e->headers ? e->headers : json_null(), "body",
                      body, "body_length", (json_int_t)e->full_len, "body_truncated",
                      e->full_len > e->body_len, "status", e->status);
        if (o && e->fault[0])
            json_object_set_new(o, "fault", json_string(e->fault));
        json_array_append_new(arr, o);
    }
    return json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(arr), "requests", arr);
}
