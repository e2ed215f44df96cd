/*
 * outcome.c - where each record ends up: accepted, or a line in the
 * dead-letter file with the reason, the status and the API's answer; and a
 * report of every API call to the response webhook and the caller.
 *
 * Invariants: every record offered is counted exactly once in the stats
 * (sent, malformed, invalid, rejected, unavailable or unsent); nothing is
 * written by preview, dry runs or `test`; per-record and per-batch
 * warnings stop after WARN_MAX lines (the rest are counted and summed up
 * once), so a storm of bad input cannot flood the log.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_int.h"
#include "osc/log.h"

#define WARN_MAX         20
#define WEBHOOK_BODY_MAX 4096

int dlv_outcome_init(struct dlv_outcome *o, const struct osc_conf_destination *t,
                     const char *dl_path, const struct osc_http_opts *ho, int write_dead_letters,
                     struct osc_delivery_stats *st, struct osc_err *err)
{
    memset(o, 0, sizeof(*o));
    o->dest = t;
    o->st = st;
    o->write_dead_letters = write_dead_letters;
    o->max_errors = 1000;
    if (!(o->dl = osc_deadletter_new(dl_path, t->name)))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    if (ho && t->response_webhook && !(o->webhook = webhook_new(t->response_webhook, ho, err)))
        return err && err->code ? err->code : OSC_ENOMEM;
    return 0;
}

void dlv_outcome_free(struct dlv_outcome *o)
{
    webhook_free(o->webhook);
    osc_deadletter_close(o->dl);
    for (size_t i = 0; i < o->ninput_names; i++)
        free(o->input_names[i]);
    free(o->input_names);
    memset(o, 0, sizeof(*o));
}

int dlv_outcome_input_name(struct dlv_outcome *o, uint32_t i, const char *name)
{
    char **nn;

    if (i < o->ninput_names && o->input_names[i])
        return 0;
    if (i >= o->ninput_names) {
        if (!(nn = realloc(o->input_names, (i + 1) * sizeof(*nn))))
            return OSC_ENOMEM;
        while (o->ninput_names <= i)
            nn[o->ninput_names++] = NULL;
        o->input_names = nn;
    }
    return (o->input_names[i] = strdup(name)) ? 0 : OSC_ENOMEM;
}

static const char *input_name(const struct dlv_outcome *o, uint32_t i)
{
    return i < o->ninput_names && o->input_names[i] ? o->input_names[i] : "<input>";
}

/* 1 when one more warning may be logged; counts the ones that may not. */
static int may_warn(struct dlv_outcome *o)
{
    if (o->warnings < WARN_MAX) {
        o->warnings++;
        return 1;
    }
    if (o->st->warnings_dropped++ == 0)
        OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "delivery", "warnings_dropped",
                   (OSC_LF_STR("destination", o->dest->name)),
                   "%s: more than %d warnings: the rest are not shown (every record is in the "
                   "dead-letter file, with its reason)",
                   o->dest->name, WARN_MAX);
    return 0;
}

void dlv_outcome_flush_warnings(struct dlv_outcome *o)
{
    if (o->st->warnings_dropped)
        OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "delivery", "warnings_dropped",
                   (OSC_LF_STR("destination", o->dest->name),
                    OSC_LF_INT("warnings", o->st->warnings_dropped)),
                   "%s: %llu warning(s) were not shown", o->dest->name,
                   (unsigned long long)o->st->warnings_dropped);
}

/* The dead-letter file for a structured log field ("" when nothing is written). */
static const char *dl_field(const struct dlv_outcome *o)
{
    return o->write_dead_letters ? osc_deadletter_path(o->dl) : "";
}

/* Where the records just refused went: "dead-lettered to PATH", or why they were not. */
static const char *dl_where(const struct dlv_outcome *o, char *buf, size_t cap)
{
    if (o->write_dead_letters)
        snprintf(buf, cap, "dead-lettered to %s", osc_deadletter_path(o->dl));
    else
        snprintf(buf, cap, "not dead-lettered (%s writes no file)",
                 o->in_test ? "test" : "a dry run");
    return buf;
}

static int dead_letter(struct dlv_outcome *o, const char *json, size_t json_len, const char *raw,
                       size_t raw_len, const char *file, uint64_t line, uint64_t offset,
                       long status, const char *resp, size_t resp_len, const char *reason,
                       unsigned attempts)
{
    struct osc_err err = {0};
    int first;

    if (!o->write_dead_letters)
        return 0;
    first = osc_deadletter_count(o->dl) == 0;
    if (osc_deadletter_write(o->dl, json, json_len, raw, raw_len, file, line, offset, status, resp,
                             resp_len, reason, attempts, &err)) {
        if (!o->st->dead_letter_error)
            OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "delivery", "dead_letter_failed",
                       (OSC_LF_STR("destination", o->dest->name),
                        OSC_LF_STR("dead_letter", osc_deadletter_path(o->dl))),
                       "%s", err.msg);
        o->st->dead_letter_error = 1;
        return OSC_EIO;
    }
    /* once per run: where this run's dead letters go */
    if (first)
        OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "delivery", "dead_letter_file",
                   (OSC_LF_STR("destination", o->dest->name),
                    OSC_LF_STR("dead_letter", osc_deadletter_path(o->dl))),
                   "%s: writing dead letters to %s", o->dest->name, osc_deadletter_path(o->dl));
    return 0;
}

static int dead_letter_rec(struct dlv_outcome *o, struct dlv_batch *b, size_t i, long status,
                           const char *reason)
{
    const struct dlv_rec *r = &b->recs[i];

    return dead_letter(o, b->orig.data + r->off, r->len, NULL, 0, input_name(o, r->input), r->line,
                       r->offset, status, b->resp.body.data, b->resp.body.len, reason, b->attempts);
}

static int dead_letter_batch(struct dlv_outcome *o, struct dlv_batch *b, long status,
                             const char *reason)
{
    int rc = 0;
    for (size_t i = 0; i < b->nrecs; i++)
        rc |= dead_letter_rec(o, b, i, status, reason);
    return rc ? OSC_EIO : 0;
}

/*
 * A 2xx answer may still name rows it skipped. The REST reference documents
 * no batch-import result (OfficeSpace's scripts discard it); GraphQL's
 * employeeSeed reports skipped rows. osconnect reads the shape
 * {"errors": [{"index": N, "error": "..."}]} (N: 0-based row of the batch)
 * when it is there, dead-letters just those rows and counts the rest as
 * delivered. done[] marks them. Returns how many.
 */
static size_t partial_rejects(struct dlv_outcome *o, struct dlv_batch *b, unsigned char *done,
                              int *rc)
{
    const struct osc_http_response *r = &b->resp;
    json_t *root, *errs, *e;
    size_t i, n = 0;

    if (!r->body.len || r->body.data[0] != '{' ||
        !memmem(r->body.data, r->body.len, "\"errors\"", 8))
        return 0;
    if (!(root = json_loadb(r->body.data, r->body.len, 0, NULL)))
        return 0;
    errs = json_object_get(root, "errors");
    if (json_is_array(errs))
        json_array_foreach(errs, i, e)
        {
            json_t *idx = json_object_get(e, "index");
            const char *msg = json_string_value(json_object_get(e, "error"));
            char reason[512];
            json_int_t k;
            if (!json_is_integer(idx) || (k = json_integer_value(idx)) < 0 ||
                (size_t)k >= b->nrecs || done[k])
                continue;
            done[k] = 1;
            snprintf(reason, sizeof(reason), "rejected by the API (row %lld of the batch): %s",
                     (long long)k, msg ? msg : "no reason given");
            *rc |= dead_letter_rec(o, b, (size_t)k, r->status, reason);
            n++;
        }
    json_decref(root);
    return n;
}

static void fate_all(struct dlv_outcome *o, struct dlv_batch *b, enum osc_delivery_fate f)
{
    if (o->on_record)
        for (size_t i = 0; i < b->nrecs; i++)
            o->on_record(o->ud, b->recs[i].tag, f);
}

static void accepted(struct dlv_outcome *o, struct dlv_batch *b, int *rc)
{
    char where[4200];
    unsigned char *done = calloc(b->nrecs ? b->nrecs : 1, 1);
    size_t bad = done ? partial_rejects(o, b, done, rc) : 0;

    o->st->sent += b->nrecs - bad;
    for (size_t i = 0; i < b->nrecs; i++) {
        int refused = done && done[i];
        if ((b->recs[i].flags & DLV_REC_RESEND) && !refused)
            o->resolved++;
        if (o->on_record)
            o->on_record(o->ud, b->recs[i].tag,
                         refused ? OSC_DELIVERY_DEAD_LETTERED : OSC_DELIVERY_ACCEPTED);
    }
    free(done);
    if (bad) {
        o->st->rejected += bad;
        if (may_warn(o))
            OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "delivery", "rejected_rows",
                       (OSC_LF_STR("destination", o->dest->name),
                        OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("method", b->method),
                        OSC_LF_STR("url", b->url), OSC_LF_INT_NZ("status", b->resp.status),
                        OSC_LF_INT("records", bad), OSC_LF_INT("batch_records", b->nrecs),
                        OSC_LF_STR("dead_letter", dl_field(o))),
                       "%s: %s %s: the API skipped %zu of %zu record(s); %s", o->dest->name,
                       b->method, b->url, bad, b->nrecs, dl_where(o, where, sizeof(where)));
    }
    OSC_LOG_EV(OSC_LOG_LEVEL_DEBUG, "delivery", "accepted",
               (OSC_LF_STR("destination", o->dest->name), OSC_LF_STR("request_id", b->request_id),
                OSC_LF_STR("method", b->method), OSC_LF_STR("url", b->url),
                OSC_LF_INT_NZ("status", b->resp.status), OSC_LF_INT("records", b->nrecs),
                OSC_LF_INT("attempt", b->attempts)),
               "%s: %s %s -> %ld (%zu records)", o->dest->name, b->method, b->url, b->resp.status,
               b->nrecs);
}

/* A batch that was refused or given up: logged (event), dead-lettered, its fates told. */
static int refused(struct dlv_outcome *o, struct dlv_batch *b, int level, const char *event,
                   const char *reason)
{
    char where[4200];
    int rc;

    if (may_warn(o))
        OSC_LOG_EV(level, "delivery", event,
                   (OSC_LF_STR("destination", o->dest->name),
                    OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("method", b->method),
                    OSC_LF_STR("url", b->url), OSC_LF_INT_NZ("status", b->resp.status),
                    OSC_LF_INT("records", b->nrecs), OSC_LF_INT("attempt", b->attempts),
                    OSC_LF_STR("reason", reason), OSC_LF_STR("dead_letter", dl_field(o))),
                   "%s: %s %s: %s; %zu record(s) %s", o->dest->name, b->method, b->url, reason,
                   b->nrecs, dl_where(o, where, sizeof(where)));
    rc = dead_letter_batch(o, b, b->resp.status, reason);
    fate_all(o, b, rc ? OSC_DELIVERY_RETRY_LATER : OSC_DELIVERY_DEAD_LETTERED);
    return rc;
}

int dlv_outcome_final(struct dlv_outcome *o, struct dlv_batch *b, enum dlv_final f,
                      const char *reason)
{
    int rc = 0;

    if (b->kind != DLV_DATA && f != DLV_AUTH && f != DLV_FATAL)
        return 0; /* the import job judges its own requests */
    switch (f) {
    case DLV_ACCEPTED: accepted(o, b, &rc); break;
    case DLV_REJECTED:
        o->st->rejected += b->nrecs;
        rc = refused(o, b, OSC_LOG_LEVEL_WARN, "rejected", reason);
        break;
    case DLV_GAVE_UP:
        if (o->on_record) {
            /* a stream source redelivers it later (a JetStream nak): not a dead letter */
            o->st->unsent += b->nrecs;
            if (may_warn(o))
                OSC_LOG_ERROR("delivery",
                              "%s: %s %s: %s; %zu record(s) left to their source to redeliver",
                              o->dest->name, b->method, b->url, reason, b->nrecs);
            fate_all(o, b, OSC_DELIVERY_RETRY_LATER);
            break;
        }
        /* fall through */
    case DLV_UNBUILT:
        o->st->unavailable += b->nrecs;
        rc = refused(o, b, OSC_LOG_LEVEL_ERROR, "gave_up", reason);
        break;
    case DLV_AUTH:
        if (!o->st->auth_failed)
            OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "delivery", "auth_refused",
                       (OSC_LF_STR("destination", o->dest->name),
                        OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("url", b->url),
                        OSC_LF_INT_NZ("status", b->resp.status)),
                       "%s: OfficeSpace refused the API key (HTTP %ld from %s); check "
                       "officespace.api_key",
                       o->dest->name, b->resp.status, b->url);
        o->st->auth_failed = 1;
        o->st->unsent += b->nrecs;
        fate_all(o, b, OSC_DELIVERY_RETRY_LATER);
        break;
    case DLV_FATAL:
        if (!o->st->fatal)
            OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "delivery", "stopped",
                       (OSC_LF_STR("destination", o->dest->name),
                        OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("url", b->url),
                        OSC_LF_STR("reason", reason)),
                       "%s: %s; the destination is stopped: nothing more is sent (fix it, then "
                       "run the same command again)",
                       o->dest->name, reason);
        o->st->fatal = 1;
        o->st->unsent += b->nrecs;
        fate_all(o, b, OSC_DELIVERY_RETRY_LATER);
        break;
    case DLV_UNSENT:
        o->st->unsent += b->nrecs;
        fate_all(o, b, OSC_DELIVERY_RETRY_LATER);
        break;
    }
    return rc;
}

static int fate_one(struct dlv_outcome *o, uint64_t tag, int rc)
{
    if (o->on_record)
        o->on_record(o->ud, tag, rc ? OSC_DELIVERY_RETRY_LATER : OSC_DELIVERY_DEAD_LETTERED);
    return rc;
}

int dlv_outcome_invalid(struct dlv_outcome *o, const struct osc_record *rec, const char *why,
                        uint64_t tag)
{
    const char *file = rec->file ? rec->file : "<input>";

    o->st->invalid++;
    if (may_warn(o))
        OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "delivery", "unmappable",
                   (OSC_LF_STR("destination", o->dest->name), OSC_LF_STR("file", file),
                    OSC_LF_INT("line", rec->line), OSC_LF_STR("reason", why),
                    OSC_LF_STR("dead_letter", dl_field(o))),
                   "%s:%llu: %s: %s", file, (unsigned long long)rec->line, o->dest->name, why);
    return fate_one(o, tag,
                    dead_letter(o, rec->json, rec->json_len, rec->raw, rec->raw_len, file,
                                rec->line, rec->offset, 0, NULL, 0, why, 0));
}

int dlv_outcome_malformed(struct dlv_outcome *o, const struct osc_record *rec, const char *why,
                          uint64_t tag)
{
    o->st->records++;
    o->st->malformed++;
    if (may_warn(o))
        OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "input", "malformed",
                   (OSC_LF_STR("destination", o->dest->name),
                    OSC_LF_STR("file", rec->file ? rec->file : "<input>"),
                    OSC_LF_INT("line", rec->line), OSC_LF_STR("dead_letter", dl_field(o))),
                   "%s", why);
    return fate_one(o, tag,
                    dead_letter(o, NULL, 0, rec->raw, rec->raw_len,
                                rec->file ? rec->file : "<input>", rec->line, rec->offset, 0, NULL,
                                0, why, 0));
}

int dlv_outcome_over_budget(const struct dlv_outcome *o)
{
    return o->max_errors && o->st->malformed + o->st->invalid > o->max_errors;
}

/* The response headers ("Name: value" lines after the status line) as a JSON object. */
static json_t *headers_json(const struct osc_http_response *r)
{
    json_t *hdrs = json_object();
    const char *h = r->headers.data ? r->headers.data : "";

    while (*h) {
        const char *eol = strchr(h, '\n'), *colon = strchr(h, ':');
        size_t ll = eol ? (size_t)(eol - h) : strlen(h);
        if (colon && colon < h + ll) {
            char name[128];
            size_t nl = (size_t)(colon - h), vl;
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            vl = (size_t)(h + ll - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (nl < sizeof(name)) {
                for (size_t i = 0; i < nl; i++)
                    name[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
                name[nl] = '\0';
                json_object_set_new(hdrs, name, json_stringn_nocheck(v, vl));
            }
        }
        h += ll + (eol ? 1 : 0);
    }
    return hdrs;
}

static void webhook_report(struct dlv_outcome *o, struct dlv_batch *b,
                           const struct osc_http_response *r, enum osc_http_outcome oc)
{
    json_t *doc = json_object(), *bs;
    size_t bl = r->body.len > WEBHOOK_BODY_MAX ? WEBHOOK_BODY_MAX : r->body.len;
    char *s;

    json_object_set_new(doc, "request_id", json_string(b->request_id));
    json_object_set_new(doc, "destination", json_string(o->dest->name));
    json_object_set_new(doc, "url", json_string(b->url));
    json_object_set_new(doc, "method", json_string(b->method));
    json_object_set_new(doc, "status", r->status ? json_integer(r->status) : json_null());
    json_object_set_new(doc, "outcome", json_string(osc_http_outcome_name(oc)));
    json_object_set_new(doc, "attempt", json_integer(b->attempts));
    json_object_set_new(doc, "duration_ms", json_integer((json_int_t)(r->seconds * 1000)));
    json_object_set_new(doc, "records", json_integer((json_int_t)b->nrecs));
    if (r->error[0])
        json_object_set_new(doc, "error", json_string(r->error));
    json_object_set_new(doc, "response_headers", headers_json(r));
    bs = json_stringn(r->body.data ? r->body.data : "", bl);
    json_object_set_new(doc, "response_body", bs ? bs : json_string("(binary)"));
    json_object_set_new(doc, "response_truncated",
                        json_boolean(r->truncated || r->body.len > WEBHOOK_BODY_MAX));
    s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) {
        osc_redact(s, strlen(s) + 1);
        webhook_post(o->webhook, s, strlen(s));
    }
    free(s);
    json_decref(doc);
}

void dlv_outcome_call(struct dlv_outcome *o, struct dlv_batch *b, const struct osc_http_response *r,
                      enum osc_http_outcome oc)
{
    struct osc_delivery_call call = {b->request_id,
                                     o->dest->name,
                                     b->method,
                                     b->url,
                                     b->hdrs,
                                     b->body.data ? b->body.data : "",
                                     b->body.len,
                                     b->nrecs,
                                     b->attempts,
                                     r,
                                     oc};

    if (o->webhook && r)
        webhook_report(o, b, r, oc);
    if (o->on_call)
        o->on_call(o->ud, &call);
}
