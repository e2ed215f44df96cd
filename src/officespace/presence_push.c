/*
 * presence_push.c - the createEmployeePresence request and its answer;
 * see presence.h.
 *
 * Many locations go in one HTTP request as aliased mutations p0..pN-1, so
 * one alias maps back to one item by its index. An item's state only moves
 * from PENDING to ACCEPTED, FAILED or UNACKED, once. Only data.pI.success
 * being the JSON boolean true under the item's own alias accepts it: a
 * parsed answer settles every item, and anything short of that is FAILED
 * (refused under its alias) or UNACKED (sent again next cycle either way).
 */
#include "osc/presence.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/clock.h"

#define BODY_CAP (8 * 1024 * 1024)

int osc_presence_push_body(const struct osc_presence_item *items, size_t n, struct osc_buf *out)
{
    char when[40];
    int rc;

    osc_buf_reset(out);
    if ((rc = osc_buf_adds(out, "{\"query\":\"mutation {")))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const struct osc_presence_item *it = &items[i];
        osc_clock_iso8601(it->at_ms, when, sizeof(when));
        rc = osc_buf_printf(out,
                            " p%zu: createEmployeePresence(employeePresence: {%s: \\\"%lld\\\", "
                            "occupancyStatus: %s, occupancyCount: %lld, presenceDetectedAt: "
                            "\\\"%s\\\"}) { success errors { attribute errors label } }",
                            i, osc_urn_input_field(it->urn.type), (long long)it->urn.id,
                            osc_presence_status_name(it->status), (long long)it->count, when);
        if (rc)
            return rc;
    }
    return osc_buf_adds(out, " }\"}");
}

/* Alias "p<digits>" -> index, or -1. */
static long alias_index(const char *s, size_t n)
{
    long v = 0;

    if (!s || s[0] != 'p' || !s[1] || (s[1] == '0' && s[2]))
        return -1;
    for (const char *p = s + 1; *p; p++) {
        if (*p < '0' || *p > '9' || v > 1000000)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return (size_t)v < n ? v : -1;
}

/* Settle a PENDING item as st with why; a settled item keeps its first verdict. */
static void settle(struct osc_presence_item *it, enum osc_presence_item_state st, const char *why)
{
    if (it->state != OSC_PRESENCE_ITEM_PENDING)
        return;
    it->state = st;
    snprintf(it->error, sizeof(it->error), "%s", why ? why : "");
}

/* "attribute: message; ..." from a payload errors array. */
static void payload_errors(json_t *errs, char *out, size_t cap)
{
    size_t i, off = 0;
    json_t *e;

    out[0] = '\0';
    json_array_foreach(errs, i, e)
    {
        const char *attr = json_string_value(json_object_get(e, "attribute"));
        json_t *msgs = json_object_get(e, "errors");
        const char *msg = json_string_value(json_array_get(msgs, 0));
        int w = snprintf(out + off, cap - off, "%s%s%s%s", off ? "; " : "", attr ? attr : "",
                         attr ? ": " : "", msg ? msg : "error");
        if (w < 0 || (size_t)w >= cap - off)
            break;
        off += (size_t)w;
    }
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* One data.pI value: ACCEPTED only for an object whose success is the boolean true. */
static void apply_alias(struct osc_presence_item *it, const char *alias, json_t *v)
{
    char why[200];
    json_t *ok;

    if (!json_is_object(v)) {
        snprintf(why, sizeof(why), "data.%s is %s, not an acknowledgement", alias, json_kind(v));
        settle(it, OSC_PRESENCE_ITEM_UNACKED, why);
        return;
    }
    ok = json_object_get(v, "success");
    if (json_is_true(ok)) {
        settle(it, OSC_PRESENCE_ITEM_ACCEPTED, "");
    } else if (json_is_false(ok)) {
        payload_errors(json_object_get(v, "errors"), why, sizeof(why));
        settle(it, OSC_PRESENCE_ITEM_FAILED, why[0] ? why : "success: false");
    } else {
        if (ok)
            snprintf(why, sizeof(why), "data.%s.success is %s, not a boolean", alias,
                     json_kind(ok));
        else
            snprintf(why, sizeof(why), "data.%s has no success field", alias);
        settle(it, OSC_PRESENCE_ITEM_UNACKED, why);
    }
}

int osc_presence_push_parse(const char *json, size_t len, struct osc_presence_item *items, size_t n,
                            struct osc_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr), *data, *errs, *v, *e;
    const char *key, *general = NULL, *stray = NULL;
    char why[200];
    size_t i;
    int rc = 0;

    if (!root || !json_is_object(root)) {
        rc = osc_err_set(err, OSC_EPROTO, "OfficeSpace GraphQL answer is not a JSON object");
        goto out;
    }
    data = json_object_get(root, "data");
    errs = json_object_get(root, "errors");
    if (!json_is_object(data) && !json_is_array(errs)) {
        rc = osc_err_set(err, OSC_EPROTO, "OfficeSpace GraphQL answer has neither data nor errors");
        goto out;
    }
    /* errors naming an alias first: they explain a null data.pI */
    json_array_foreach(errs, i, e)
    {
        json_t *path = json_object_get(e, "path");
        const char *msg = json_string_value(json_object_get(e, "message"));
        long idx = alias_index(json_string_value(json_array_get(path, 0)), n);
        if (idx >= 0)
            settle(&items[idx], OSC_PRESENCE_ITEM_FAILED, msg && *msg ? msg : "GraphQL error");
        else if (!general)
            general = msg ? msg : "GraphQL error";
    }
    json_object_foreach(data, key, v)
    {
        long idx = alias_index(key, n);
        if (idx >= 0)
            apply_alias(&items[idx], key, v);
        else if (!stray)
            stray = key;
    }
    /* what is left was not acknowledged under its own alias: the request's fate is unknown */
    for (size_t k = 0; k < n; k++) {
        if (items[k].state != OSC_PRESENCE_ITEM_PENDING)
            continue;
        if (general)
            snprintf(why, sizeof(why), "no answer under alias p%zu; GraphQL error: %.120s", k,
                     general);
        else if (stray)
            snprintf(why, sizeof(why), "no answer under alias p%zu (the answer has alias '%.60s')",
                     k, stray);
        else
            snprintf(why, sizeof(why), "no answer under alias p%zu", k);
        settle(&items[k], OSC_PRESENCE_ITEM_UNACKED, why);
    }
out:
    json_decref(root);
    return rc;
}
