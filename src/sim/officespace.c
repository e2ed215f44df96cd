/*
 * officespace.c - the simulated OfficeSpace tenant: locations, the
 * employee directory (staging + live), presence, and a generic resource
 * store; served as REST /api/1/... and GraphQL (createEmployeePresence).
 *
 * Locations come from the Mapped scenario: every valid identity
 * urn:officespace:{type}:id:{id} creates that site/floor/room/neighborhood/
 * seat here, linked to the nearest enclosing floor and site, so the ids the
 * connector reads from Mapped exist in OfficeSpace. The scenario's
 * "officespace" object can add more (and employees).
 *
 * All state is jansson objects keyed by the id as a decimal string, stored
 * in the REST shape (snake_case, relative *_url links), so REST answers are
 * copies and /_sim views are cheap. The caller holds the simulator mutex.
 */
#include "sim_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gql.h"
#include "osc/buf.h"
#include "osc/clock.h"
#include "osc/err.h"
#include "osc/parse.h"

#define PRESENCE_LOG_MAX     100000
#define RESOURCE_MAX_RECORDS 100000

struct sim_os {
    json_t *loc[5]; /* site, floor, room, neighborhood, seat: id -> record */
    json_t *directories;
    struct sim_dir *dir; /* employees: staging and live directory */
    json_t *presence;    /* "type:id" -> state */
    json_t *presence_log;
    json_int_t presence_seq;
    json_int_t presence_accepted, presence_rejected;
    json_t *resources; /* resource -> {id -> record} */
    json_int_t next_resource_id;
    int64_t now_wall_ms; /* of the request being served */
};

static const char *const loc_types[] = {"site", "floor", "room", "neighborhood", "desk"};
static const char *const loc_fields[] = {"siteId", "floorId", "roomId", "neighborhoodId", "seatId"};
static const char *const loc_labels[] = {"Site", "Floor", "Room", "Neighborhood", "Seat"};
static const char *const loc_paths[] = {"sites", "floors", "rooms", "neighborhoods", "seats"};

/* ---- replies -------------------------------------------------------------- */

void sim_reply_json(struct sim_reply *r, int status, json_t *j)
{
    r->status = status;
    r->ctype = "application/json; charset=utf-8";
    r->body = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!r->body) {
        r->status = 500;
        r->body = strdup("{\"error\":\"out of memory\"}");
    }
    r->len = r->body ? strlen(r->body) : 0;
    json_decref(j);
}

void sim_reply_text(struct sim_reply *r, int status, const char *text)
{
    r->status = status;
    r->ctype = "text/plain; charset=utf-8";
    r->body = strdup(text);
    r->len = r->body ? strlen(r->body) : 0;
}

void sim_reply_header(struct sim_reply *r, const char *name, const char *value)
{
    for (int i = 0; i < 2; i++)
        if (!r->hname[i][0]) {
            snprintf(r->hname[i], sizeof(r->hname[i]), "%s", name);
            snprintf(r->hval[i], sizeof(r->hval[i]), "%s", value);
            return;
        }
}

static void reply_error(struct sim_reply *r, int status, const char *msg)
{
    sim_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static char *url_decode(const char *s, size_t n)
{
    char *d = malloc(n + 1), *o = d;

    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return d;
}

json_t *sim_form_parse(const char *body, size_t len)
{
    json_t *o = json_object();
    size_t i = 0;

    while (o && i < len) {
        size_t e = i, eq;
        while (e < len && body[e] != '&')
            e++;
        for (eq = i; eq < e && body[eq] != '='; eq++)
            ;
        if (e > i) {
            char *k = url_decode(body + i, eq - i);
            char *v = url_decode(body + (eq < e ? eq + 1 : e), eq < e ? e - eq - 1 : 0);
            json_t *js = k && v && *k ? json_string(v) : NULL;
            if (k && v && *k) /* a value that is not UTF-8 becomes "" */
                json_object_set_new(o, k, js ? js : json_string(""));
            free(k);
            free(v);
        }
        i = e + 1;
    }
    return o;
}

/* ---- construction ----------------------------------------------------------- */

static void id_key(json_int_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%lld", (long long)id);
}

static json_t *ensure_loc(struct sim_os *os, int type, json_int_t id, const char *label)
{
    char key[32], url[64];
    json_t *r;

    id_key(id, key, sizeof(key));
    if ((r = json_object_get(os->loc[type], key)))
        return r;
    snprintf(url, sizeof(url), "/api/1/%s/%s", loc_paths[type], key);
    switch (type) {
    case 0: r = json_pack("{s:I,s:s,s:s}", "id", id, "name", label, "url", url); break;
    case 1:
        r = json_pack("{s:I,s:s,s:n,s:[s],s:s}", "id", id, "label", label, "site_id", "directories",
                      "/api/1/directories/1", "url", url);
        break;
    case 2:
        r = json_pack("{s:I,s:s,s:n,s:n,s:s}", "id", id, "label", label, "floor_id", "floor_url",
                      "url", url);
        break;
    case 3:
        r = json_pack("{s:I,s:s,s:n,s:n,s:s}", "id", id, "name", label, "floor_id", "floor_url",
                      "url", url);
        break;
    default:
        r = json_pack("{s:I,s:s,s:n,s:n,s:n,s:n,s:n,s:{s:s,s:n},s:s,s:b,s:b,s:n,s:s}", "id", id,
                      "label", label, "floor_id", "floor_url", "room_url", "neighborhood_id",
                      "employee_url", "occupancy", "occupied", "vacant", "employee_url", "utility",
                      "-1", "online", 1, "hot_desk", 0, "coordinates", "url", url);
        break;
    }
    if (!r || json_object_set_new(os->loc[type], key, r))
        return NULL;
    return r;
}

/* The OfficeSpace id of the nearest place at or above idx with an identity of `type`. */
static int find_up(const struct sim_graph *g, size_t idx, int type, json_int_t *out)
{
    for (; idx != SIM_NONE; idx = g->places[idx].parent) {
        const struct sim_place *p = &g->places[idx];
        for (size_t i = 0; i < p->ids.n; i++) {
            int t;
            int64_t id;
            if (p->ids.v[i].officespace && sim_urn_parse(p->ids.v[i].value, &t, &id) == 0 &&
                t == type) {
                *out = (json_int_t)id;
                return 1;
            }
        }
    }
    return 0;
}

static void set_link(json_t *r, const char *idkey, const char *urlkey, const char *path,
                     json_int_t id)
{
    char url[64];

    json_object_set_new(r, idkey, json_integer(id));
    if (urlkey) {
        snprintf(url, sizeof(url), "/api/1/%s/%lld", path, (long long)id);
        json_object_set_new(r, urlkey, json_string(url));
    }
}

static int seed_from_graph(struct sim_os *os, const struct sim_graph *g)
{
    for (size_t i = 0; i < g->nplaces; i++) {
        const struct sim_place *p = &g->places[i];
        for (size_t k = 0; k < p->ids.n; k++) {
            int t;
            int64_t id;
            json_int_t up;
            json_t *r;
            if (!p->ids.v[k].officespace || sim_urn_parse(p->ids.v[k].value, &t, &id))
                continue;
            if (!(r = ensure_loc(os, t, (json_int_t)id, p->name)))
                return -1;
            if (t == 1 && find_up(g, p->parent, 0, &up))
                set_link(r, "site_id", NULL, NULL, up);
            if (t >= 2 && find_up(g, p->parent, 1, &up))
                set_link(r, "floor_id", "floor_url", "floors", up);
            if (t == 4 && find_up(g, p->parent, 2, &up))
                set_link(r, "room_id", "room_url", "rooms", up);
            if (t == 4 && find_up(g, p->parent, 3, &up))
                set_link(r, "neighborhood_id", NULL, NULL, up);
        }
    }
    return 0;
}

static int seed_extra(struct sim_os *os, json_t *extra)
{
    for (int t = 0; t < 5 && extra; t++) {
        json_t *arr = json_object_get(extra, loc_paths[t]), *it;
        size_t i;
        json_array_foreach(arr, i, it)
        {
            json_t *idv = json_object_get(it, "id"), *r;
            const char *label =
                json_string_value(json_object_get(it, t == 0 || t == 3 ? "name" : "label"));
            if (!json_is_integer(idv))
                continue;
            if (!(r = ensure_loc(os, t, json_integer_value(idv), label ? label : "")))
                return -1;
            json_object_update(r, it);
        }
    }
    {
        json_t *arr = json_object_get(extra, "employees"), *it;
        size_t i;
        json_array_foreach(arr, i, it)
        {
            const char *src = json_string_value(json_object_get(it, "source"));
            if (json_is_object(it) && sim_dir_create(os->dir, it, src) < 0)
                return -1;
        }
    }
    return 0;
}

struct sim_os *sim_os_new(const struct sim_graph *g, enum osc_sim_import_mode mode)
{
    struct sim_os *os = calloc(1, sizeof(*os));

    if (!os)
        return NULL;
    for (int i = 0; i < 5; i++)
        os->loc[i] = json_object();
    os->directories = json_pack("{s:{s:i,s:s},s:{s:i,s:s}}", "1", "id", 1, "name",
                                "SYS: Make Public", "2", "id", 2, "name", "SYS: Make Private");
    os->dir = sim_dir_new(mode);
    os->presence = json_object();
    os->presence_log = json_array();
    os->resources = json_object();
    os->next_resource_id = 1;
    for (int i = 0; i < 5; i++)
        if (!os->loc[i])
            goto fail;
    if (!os->directories || !os->dir || !os->presence || !os->presence_log || !os->resources)
        goto fail;
    if (g && (seed_from_graph(os, g) || seed_extra(os, g->officespace)))
        goto fail;
    return os;
fail:
    sim_os_free(os);
    return NULL;
}

void sim_os_free(struct sim_os *os)
{
    if (!os)
        return;
    for (int i = 0; i < 5; i++)
        json_decref(os->loc[i]);
    json_decref(os->directories);
    sim_dir_free(os->dir);
    json_decref(os->presence);
    json_decref(os->presence_log);
    json_decref(os->resources);
    free(os);
}

/* ---- bodies ---------------------------------------------------------------- */

/*
 * The records in a body: a JSON array, a JSON object ({"record": {...}} is
 * unwrapped), NDJSON (one object a line) or a form. New array, or NULL
 * with *why set when the body cannot be read.
 */
static json_t *body_records(const char *ctype, const char *body, size_t len, const char **why)
{
    json_error_t je;
    json_t *j, *arr;

    *why = NULL;
    if (len == 0) {
        *why = "the body is empty";
        return NULL;
    }
    if (ctype && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)
        return json_pack("[o]", sim_form_parse(body, len));
    j = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (j) {
        if (json_is_array(j))
            return j;
        if (json_is_object(j)) {
            json_t *rec = json_object_get(j, "record");
            if (json_is_object(rec) && json_object_size(j) == 1) {
                json_incref(rec);
                json_decref(j);
                j = rec;
            }
            return json_pack("[o]", j);
        }
        json_decref(j);
        *why = "the body must be a JSON object or array";
        return NULL;
    }
    /* NDJSON */
    arr = json_array();
    for (size_t i = 0; arr && i < len;) {
        size_t e = i;
        while (e < len && body[e] != '\n')
            e++;
        if (e > i && !(e == i + 1 && body[i] == '\r')) {
            json_t *line = json_loadb(body + i, e - i, 0, &je);
            if (!json_is_object(line)) {
                json_decref(line);
                json_decref(arr);
                *why = "the body is neither JSON nor NDJSON";
                return NULL;
            }
            json_array_append_new(arr, line);
        }
        i = e + 1;
    }
    if (arr && json_array_size(arr) == 0 && len > 0) {
        /* not JSON, not NDJSON: try a form body */
        json_decref(arr);
        j = sim_form_parse(body, len);
        if (j && json_object_size(j) && memchr(body, '=', len))
            return json_pack("[o]", j);
        json_decref(j);
        *why = "the body is neither JSON, NDJSON nor a form";
        return NULL;
    }
    return arr;
}

/* ---- employees ------------------------------------------------------------- */

static const char *record_key(json_t *rec)
{
    const char *id = json_string_value(json_object_get(rec, "EmployeeId"));
    if (!id || !*id)
        id = json_string_value(json_object_get(rec, "Email"));
    return id && *id ? id : NULL;
}

/* A batch import body parsed and serialised ahead, outside the simulator lock. */
struct sim_batch {
    struct {
        char *src, *key, *json; /* json: NULL once handed to the directory */
    } * v;
    size_t n;
    json_t *errids, *errs; /* skipped records */
    json_int_t skipped;
    const char *why; /* the body cannot be read: why (static) */
};

void sim_batch_free(struct sim_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->v[i].src);
        free(b->v[i].key);
        free(b->v[i].json);
    }
    free(b->v);
    json_decref(b->errids);
    json_decref(b->errs);
    free(b);
}

struct sim_batch *sim_batch_prepare(const char *ctype, const char *body, size_t len)
{
    struct sim_batch *b = calloc(1, sizeof(*b));
    json_t *recs, *it;
    size_t i;

    if (!b)
        return NULL;
    b->errids = json_array();
    b->errs = json_array();
    recs = body_records(ctype, body, len, &b->why);
    if (!recs) {
        if (!b->why)
            b->why = "out of memory";
        return b;
    }
    b->v = calloc(json_array_size(recs) ? json_array_size(recs) : 1, sizeof(*b->v));
    if (!b->v || !b->errids || !b->errs) {
        json_decref(recs);
        sim_batch_free(b);
        return NULL;
    }
    json_array_foreach(recs, i, it)
    {
        const char *src, *key;
        if (!json_is_object(it) || !(key = record_key(it))) {
            char idx[32];
            snprintf(idx, sizeof(idx), "#%zu", i);
            json_array_append_new(b->errids, json_string(idx));
            json_array_append_new(b->errs, json_pack("{s:I,s:s}", "index", (json_int_t)i, "error",
                                                     "record has neither EmployeeId nor Email"));
            b->skipped++;
            continue;
        }
        src = json_string_value(json_object_get(it, "Source"));
        b->v[b->n].src = strdup(src && *src ? src : "API");
        b->v[b->n].key = strdup(key);
        b->v[b->n].json = json_dumps(it, JSON_COMPACT);
        b->n++;
        if (!b->v[b->n - 1].src || !b->v[b->n - 1].key || !b->v[b->n - 1].json) {
            json_decref(recs);
            sim_batch_free(b);
            return NULL;
        }
    }
    json_decref(recs);
    return b;
}

/* Stage a prepared batch, all or nothing. */
static void batch_import(struct sim_os *os, struct sim_batch *b, struct sim_reply *r)
{
    int rc;

    if (!b) {
        reply_error(r, 500, "out of memory");
        return;
    }
    if (b->why) {
        reply_error(r, 400, b->why);
        return;
    }
    if (sim_dir_begin(os->dir)) {
        reply_error(r, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        if ((rc = sim_dir_stage_text(os->dir, b->v[i].src, b->v[i].key, b->v[i].json))) {
            sim_dir_undo(os->dir); /* a refused batch stages nothing */
            reply_error(r, rc == OSC_ETOOBIG ? 413 : 500,
                        rc == OSC_ETOOBIG ? "too many staged records" : "out of memory");
            return;
        }
        b->v[i].json = NULL; /* the directory owns it now */
    }
    sim_dir_end(os->dir);
    sim_reply_json(r, 200,
                   json_pack("{s:I,s:I,s:O,s:O,s:s}", "imported", (json_int_t)b->n, "skipped",
                             b->skipped, "errorIds", b->errids, "errors", b->errs, "status",
                             "staged"));
}

static void directory_commit(struct sim_os *os, const char *body, size_t len, struct sim_reply *r)
{
    json_t *form = NULL;
    const char *src = NULL;
    struct sim_dir_counts c;
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    int rc;

    /* canonical: form Source=X; OfficeSpace's Python script posts {"Source": X} */
    if (json_is_object(j))
        src = json_string_value(json_object_get(j, "Source"));
    if (!src) {
        form = sim_form_parse(body, len);
        src = json_string_value(json_object_get(form, "Source"));
    }
    if (!src || !*src) {
        reply_error(r, 422, "Source is required (form body Source=<source>)");
        goto out;
    }
    rc = sim_dir_commit(os->dir, src, &c);
    if (rc)
        reply_error(r, 500, osc_strerror(rc));
    else
        sim_reply_json(r, 200,
                       json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "status", "ok", "source", src,
                                 "created", (json_int_t)c.created, "updated", (json_int_t)c.updated,
                                 "reactivated", (json_int_t)c.reactivated, "deactivated",
                                 (json_int_t)c.deactivated, "live",
                                 (json_int_t)sim_dir_live(os->dir)));
out:
    json_decref(j);
    json_decref(form);
}

/* ---- REST routing ------------------------------------------------------------ */

static json_t *list_of(json_t *map, const char *filter_key, const char *filter_val)
{
    json_t *arr = json_array(), *v;
    const char *k;

    json_object_foreach(map, k, v)
    {
        if (filter_key && filter_val) {
            json_t *f = json_object_get(v, filter_key);
            char buf[64];
            const char *s = json_string_value(f);
            if (json_is_integer(f)) {
                snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(f));
                s = buf;
            }
            if (!s || strcmp(s, filter_val) != 0)
                continue;
        }
        json_array_append(arr, v);
    }
    return json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(arr), "response", arr);
}

static void serve_collection(struct sim_reply *r, const char *method, json_t *map, const char *id,
                             const char *fkey, const char *fval)
{
    json_t *rec;

    if (strcmp(method, "GET") != 0) {
        reply_error(r, 405, "method not allowed");
        return;
    }
    if (!id) {
        sim_reply_json(r, 200, list_of(map, fkey, fval));
        return;
    }
    rec = json_object_get(map, id);
    if (!rec) {
        reply_error(r, 404, "Not Found");
        return;
    }
    sim_reply_json(r, 200, json_pack("{s:O}", "response", rec));
}

static void reply_buf(struct sim_reply *r, int rc, struct osc_buf *b)
{
    if (rc) {
        osc_buf_free(b);
        reply_error(r, 500, osc_strerror(rc));
        return;
    }
    r->status = 200;
    r->ctype = "application/json; charset=utf-8";
    r->len = b->len;
    r->body = osc_buf_steal(b);
    if (!r->body)
        r->body = strdup("");
}

static int64_t parse_id(const char *id)
{
    int64_t v;
    return id && osc_parse_int(id, 1, INT64_MAX, &v) == 0 ? v : -1;
}

static void serve_employees(struct sim_os *os, const char *method, const char *id, json_t *query,
                            const char *ctype, const char *body, size_t len, struct sim_reply *r)
{
    const char *why;
    json_t *recs, *e;
    int64_t n = parse_id(id);

    if (strcmp(method, "GET") == 0) {
        struct osc_buf b;
        if (id) {
            e = sim_dir_render(os->dir, n);
            if (!e)
                reply_error(r, 404, "Not Found");
            else
                sim_reply_json(r, 200, json_pack("{s:o}", "response", e));
            return;
        }
        osc_buf_init(&b, (size_t)1 << 32);
        reply_buf(r,
                  sim_dir_list(os->dir,
                               json_string_value(json_object_get(query, "client_employee_id")),
                               json_string_value(json_object_get(query, "source")), &b),
                  &b);
        return;
    }
    if (strcmp(method, "DELETE") == 0) {
        e = sim_dir_render(os->dir, n);
        if (!e || sim_dir_delete(os->dir, n)) {
            json_decref(e);
            reply_error(r, 404, "Not Found");
            return;
        }
        sim_reply_json(r, 200, json_pack("{s:o}", "response", e));
        return;
    }
    recs = body_records(ctype, body, len, &why);
    if (!recs || json_array_size(recs) != 1 || !json_is_object(json_array_get(recs, 0))) {
        reply_error(r, 400, why ? why : "expected one record: {\"record\": {...}}");
        json_decref(recs);
        return;
    }
    if (strcmp(method, "POST") == 0 && !id) {
        json_t *rec = json_array_get(recs, 0);
        const char *cid = json_string_value(json_object_get(rec, "client_employee_id"));
        if (cid && sim_dir_find(os->dir, cid) > 0) {
            reply_error(r, 422, "client_employee_id has already been taken");
        } else {
            n = sim_dir_create(os->dir, rec, NULL);
            if (n < 0)
                reply_error(r, 500, osc_strerror((int)n));
            else
                sim_reply_json(r, 201, json_pack("{s:o}", "response", sim_dir_render(os->dir, n)));
        }
    } else if ((strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) && id) {
        int rc = sim_dir_update(os->dir, n, json_array_get(recs, 0));
        if (rc == OSC_ENOTFOUND)
            reply_error(r, 404, "Not Found");
        else if (rc)
            reply_error(r, 500, osc_strerror(rc));
        else
            sim_reply_json(r, 200, json_pack("{s:o}", "response", sim_dir_render(os->dir, n)));
    } else {
        reply_error(r, 405, "method not allowed");
    }
    json_decref(recs);
}

/* Generic store: /api/1/<resource>[/<id>] with any body format. */
static void serve_generic(struct sim_os *os, const char *method, const char *resource,
                          const char *id, const char *ctype, const char *body, size_t len,
                          int64_t now, struct sim_reply *r)
{
    json_t *coll = json_object_get(os->resources, resource), *recs, *it, *out;
    const char *why;
    size_t i;
    char key[160], ts[40]; /* key: any path segment (the router caps them below this) */

    osc_clock_iso8601(now, ts, sizeof(ts));
    if (strcmp(method, "GET") == 0) {
        if (!coll && !id) {
            sim_reply_json(r, 200, json_pack("{s:i,s:[]}", "count", 0, "response"));
            return;
        }
        serve_collection(r, method, coll ? coll : os->resources, coll ? id : "\x01", NULL, NULL);
        return;
    }
    if (strcmp(method, "DELETE") == 0) {
        if (!id || !coll || !json_object_get(coll, id)) {
            reply_error(r, 404, "Not Found");
            return;
        }
        sim_reply_json(r, 200, json_pack("{s:O}", "response", json_object_get(coll, id)));
        json_object_del(coll, id);
        return;
    }
    recs = body_records(ctype, body, len, &why);
    if (!recs) {
        reply_error(r, 400, why);
        return;
    }
    if (!coll) {
        coll = json_object();
        json_object_set_new(os->resources, resource, coll);
    }
    out = json_array();
    json_array_foreach(recs, i, it)
    {
        json_t *rec;
        if (json_object_size(coll) >= RESOURCE_MAX_RECORDS)
            break;
        if (id && i == 0) {
            snprintf(key, sizeof(key), "%s", id);
        } else {
            id_key(os->next_resource_id++, key, sizeof(key));
        }
        rec = json_object_get(coll, key);
        if (rec && (strcmp(method, "PATCH") == 0 || strcmp(method, "POST") == 0) &&
            json_is_object(it)) {
            json_object_update(json_object_get(rec, "data"), it);
        } else {
            rec = json_pack("{s:s,s:s,s:O,s:s}", "id", key, "method", method, "data", it,
                            "created_at", ts);
            json_object_set_new(coll, key, rec);
        }
        json_object_set_new(rec, "updated_at", json_string(ts));
        json_array_append(out, rec);
    }
    json_decref(recs);
    if (json_array_size(out) == 1 && !id)
        sim_reply_json(r, strcmp(method, "POST") == 0 ? 201 : 200,
                       json_pack("{s:O}", "response", json_array_get(out, 0)));
    else if (id)
        sim_reply_json(r, 200,
                       json_pack("{s:O}", "response",
                                 json_array_size(out) ? json_array_get(out, 0) : json_null()));
    else
        sim_reply_json(
            r, strcmp(method, "POST") == 0 ? 201 : 200,
            json_pack("{s:I,s:O}", "count", (json_int_t)json_array_size(out), "response", out));
    json_decref(out);
}

void sim_os_rest(struct sim_os *os, const char *method, const char *rest, json_t *query,
                 const char *ctype, const char *body, size_t len, struct sim_batch *pre,
                 int64_t now_wall_ms, struct sim_reply *r)
{
    char seg[4][128];
    int nseg = 0;
    const char *p = rest;

    memset(seg, 0, sizeof(seg));
    while (*p && nseg < 4) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n >= sizeof(seg[0])) {
            reply_error(r, 404, "Not Found");
            return;
        }
        if (n) {
            memcpy(seg[nseg], p, n);
            seg[nseg][n] = '\0';
            nseg++;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    if (*p || nseg == 0) {
        reply_error(r, 404, "Not Found");
        return;
    }
    const char *res = seg[0], *id = nseg > 1 ? seg[1] : NULL;
    if (strcmp(res, "employee_batch_imports") == 0 && nseg == 1) {
        if (strcmp(method, "POST") != 0)
            reply_error(r, 405, "method not allowed");
        else {
            struct sim_batch *b = pre ? pre : sim_batch_prepare(ctype, body, len);
            batch_import(os, b, r);
            if (!pre)
                sim_batch_free(b);
        }
        return;
    }
    if (strcmp(res, "employee_directory") == 0 && nseg <= 2) {
        if (nseg == 2 && strcmp(method, "DELETE") == 0) {
            size_t n = sim_dir_clear(os->dir, id);
            sim_reply_json(
                r, 200,
                json_pack("{s:s,s:s,s:I}", "status", "ok", "source", id, "cleared", (json_int_t)n));
        } else if (nseg == 1 && strcmp(method, "POST") == 0) {
            directory_commit(os, body, len, r);
        } else {
            reply_error(r, 405, "method not allowed");
        }
        return;
    }
    if (strcmp(res, "employees") == 0 && nseg <= 2) {
        serve_employees(os, method, id, query, ctype, body, len, r);
        return;
    }
    for (int t = 0; t < 5; t++) {
        if (strcmp(res, loc_paths[t]) != 0)
            continue;
        if (t == 4 && nseg == 3 && strcmp(seg[2], "assets") == 0) {
            json_t *seat = json_object_get(os->loc[4], id), *form;
            char rname[160];
            if (strcmp(method, "POST") != 0) {
                if (!seat)
                    reply_error(r, 404, "Not Found");
                else
                    serve_generic(os, "GET", "seat_assets", NULL, ctype, body, len, now_wall_ms, r);
                return;
            }
            if (!seat) {
                reply_error(r, 404, "Not Found");
                return;
            }
            form = sim_form_parse(body, len);
            snprintf(rname, sizeof(rname), "seat_assets");
            json_decref(form);
            serve_generic(os, "POST", rname, NULL, ctype, body, len, now_wall_ms, r);
            if (r->status == 200 || r->status == 201) {
                /* annotate the stored asset with its seat */
                json_t *coll = json_object_get(os->resources, rname);
                char key[32];
                id_key(os->next_resource_id - 1, key, sizeof(key));
                json_object_set_new(json_object_get(coll, key), "seat_id", json_string(id));
                r->status = 201;
            }
            return;
        }
        if (t == 2 && nseg == 3 && strcmp(seg[2], "attributes") == 0) {
            if (!json_object_get(os->loc[2], id))
                reply_error(r, 404, "Not Found");
            else
                sim_reply_json(r, 200, json_pack("{s:i,s:[]}", "count", 0, "response"));
            return;
        }
        if (nseg > 2)
            break;
        serve_collection(
            r, method, os->loc[t], id,
            t == 4 || t == 2 || t == 3 ? "floor_id" : (t == 1 ? "site_id" : NULL),
            json_string_value(json_object_get(query, t == 1 ? "site_id" : "floor_id")));
        return;
    }
    if (strcmp(res, "directories") == 0 && nseg <= 2) {
        serve_collection(r, method, os->directories, id, NULL, NULL);
        return;
    }
    if (nseg > 2) {
        reply_error(r, 404, "Not Found");
        return;
    }
    serve_generic(os, method, res, id, ctype, body, len, now_wall_ms, r);
}

/* ---- GraphQL --------------------------------------------------------------- */

enum {
    OF_SITES = 1,
    OF_FLOORS,
    OF_ROOMS,
    OF_NEIGHBORHOODS,
    OF_SEATS,
    OF_ID,
    OF_NAME,
    OF_LABEL,
    OF_SITEID,
    OF_FLOORID,
    OF_NEIGHBORHOODID,
    OF_TIMEZONE,
    OF_SITE_FLOORS,
    OF_PRESENCE,
    OF_SUCCESS,
    OF_ERRORS,
    OF_ATTRIBUTE,
    OF_ERRLIST,
    OF_ERRLABEL,
    OF_SEED,
    OF_LOAD,
    OF_CANCEL,
    OF_FIELD /* a payload field read from its JSON object by name */
};

static const char *const presence_enum[] = {"PRESENCE", "NO_PRESENCE", "PASSIVE_PRESENCE", NULL};
static const char *const idtype_enum[] = {"INTERNAL_EMPLOYEE_ID", "EXTERNAL_EMPLOYEE_ID", NULL};
static const struct gql_itype it_string = {GQL_I_STRING, "String", NULL, NULL, NULL};
static const struct gql_itype it_string_nn = {GQL_I_NONNULL, NULL, &it_string, NULL, NULL};
static const struct gql_itype it_int = {GQL_I_INT, "Int", NULL, NULL, NULL};
static const struct gql_itype it_presence = {GQL_I_ENUM, "PresenceStatusEnum", NULL, NULL,
                                             presence_enum};
static const struct gql_itype it_idtype = {GQL_I_ENUM, "EmployeeIdTypeEnum", NULL, NULL,
                                           idtype_enum};
static const struct gql_argdef presence_fields[] = {{"employeeId", &it_string},
                                                    {"employeeIdType", &it_idtype},
                                                    {"occupancyStatus", &it_presence},
                                                    {"occupancyCount", &it_int},
                                                    {"seatId", &it_string},
                                                    {"roomId", &it_string},
                                                    {"neighborhoodId", &it_string},
                                                    {"floorId", &it_string},
                                                    {"siteId", &it_string},
                                                    {"presenceDetectedAt", &it_string_nn},
                                                    {NULL, NULL}};
static const struct gql_itype it_presence_input = {GQL_I_INPUT, "EmployeePresencesCreateInput",
                                                   NULL, presence_fields, NULL};
static const struct gql_itype it_presence_input_nn = {GQL_I_NONNULL, NULL, &it_presence_input, NULL,
                                                      NULL};
static const struct gql_argdef presence_args[] = {{"employeePresence", &it_presence_input_nn},
                                                  {NULL, NULL}};
/* employeeSeed's input: CreateEmployeeInput's fields, all optional, plus photos and a site */
static const struct gql_itype it_boolean = {GQL_I_BOOLEAN, "Boolean", NULL, NULL, NULL};
static const struct gql_argdef named_fields[] = {{"name", &it_string}, {NULL, NULL}};
static const struct gql_itype it_seating_need = {GQL_I_INPUT, "SeatingNeedInput", NULL,
                                                 named_fields, NULL};
static const struct gql_itype it_assigned_site = {GQL_I_INPUT, "AssignedSiteInput", NULL,
                                                  named_fields, NULL};
#define S(n)                                                                                       \
    {                                                                                              \
        n, &it_string                                                                              \
    }
static const struct gql_argdef seed_fields[] = {S("employeeId"),
                                                S("assignedSiteId"),
                                                S("bio"),
                                                S("building"),
                                                S("company"),
                                                S("costCenter"),
                                                S("department"),
                                                S("division"),
                                                S("email"),
                                                S("employeeType"),
                                                S("endDate"),
                                                S("extension"),
                                                S("firstName"),
                                                S("homeAddress"),
                                                S("homeOffice"),
                                                S("lastName"),
                                                S("location"),
                                                S("notes"),
                                                S("preferredName"),
                                                {"seatingNeed", &it_seating_need},
                                                {"showInVd", &it_boolean},
                                                S("source"),
                                                S("startDate"),
                                                S("supervisorEmail"),
                                                S("supervisorId"),
                                                S("supervisorName"),
                                                S("supervisorPhone"),
                                                S("team"),
                                                S("title"),
                                                S("workLocation"),
                                                S("workPhone"),
                                                S("imageData"),
                                                S("photo"),
                                                {"assignedSite", &it_assigned_site},
                                                S("udf0"),
                                                S("udf1"),
                                                S("udf2"),
                                                S("udf3"),
                                                S("udf4"),
                                                S("udf5"),
                                                S("udf6"),
                                                S("udf7"),
                                                S("udf8"),
                                                S("udf9"),
                                                S("udf10"),
                                                S("udf11"),
                                                S("udf12"),
                                                S("udf13"),
                                                S("udf14"),
                                                S("udf15"),
                                                S("udf16"),
                                                S("udf17"),
                                                S("udf18"),
                                                S("udf19"),
                                                S("udf20"),
                                                S("udf21"),
                                                S("udf22"),
                                                S("udf23"),
                                                S("udf24"),
                                                S("udf25"),
                                                S("udf26"),
                                                S("udf27"),
                                                S("udf28"),
                                                S("udf29"),
                                                S("udf30"),
                                                S("udf31"),
                                                S("udf32"),
                                                S("udf33"),
                                                S("udf34"),
                                                {NULL, NULL}};
#undef S
static const struct gql_itype it_seed_input = {GQL_I_INPUT, "EmployeeSeedInput", NULL, seed_fields,
                                               NULL};
static const struct gql_itype it_seed_input_nn = {GQL_I_NONNULL, NULL, &it_seed_input, NULL, NULL};
static const struct gql_itype it_seed_list = {GQL_I_LIST, NULL, &it_seed_input_nn, NULL, NULL};
static const struct gql_itype it_seed_list_nn = {GQL_I_NONNULL, NULL, &it_seed_list, NULL, NULL};
static const struct gql_argdef seed_args[] = {{"employees", &it_seed_list_nn}, {NULL, NULL}};
static const struct gql_argdef source_args[] = {{"source", &it_string_nn}, {NULL, NULL}};

static const struct gql_itype *const os_inputs[] = {
    &it_presence_input, &it_presence,      &it_idtype, &it_seed_input,
    &it_seating_need,   &it_assigned_site, NULL};

static const struct gql_fielddef os_query_fields[] = {
    {"sites", "Site", 1, NULL, OF_SITES},
    {"floors", "Floor", 1, NULL, OF_FLOORS},
    {"rooms", "Room", 1, NULL, OF_ROOMS},
    {"neighborhoods", "Neighborhood", 1, NULL, OF_NEIGHBORHOODS},
    {"seats", "Seat", 1, NULL, OF_SEATS},
    {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_mutation_fields[] = {
    {"createEmployeePresence", "CreateEmployeePresencePayload", 0, presence_args, OF_PRESENCE},
    {"employeeSeed", "EmployeeSeedPayload", 0, seed_args, OF_SEED},
    {"employeeLoad", "EmployeeLoadPayload", 0, source_args, OF_LOAD},
    {"cancelEmployeeLoad", "CancelEmployeeLoadPayload", 0, source_args, OF_CANCEL},
    {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_seed_payload_fields[] = {
    {"errorIds", "String", 1, NULL, OF_FIELD},
    {"imported", "Int", 0, NULL, OF_FIELD},
    {"skipped", "Int", 0, NULL, OF_FIELD},
    {"status", "String", 0, NULL, OF_FIELD},
    {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_load_payload_fields[] = {
    {"error", "String", 0, NULL, OF_FIELD},
    {"status", "String", 0, NULL, OF_FIELD},
    {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_cancel_payload_fields[] = {
    {"message", "String", 0, NULL, OF_FIELD},
    {"status", "String", 0, NULL, OF_FIELD},
    {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_site_fields[] = {{"id", "ID", 0, NULL, OF_ID},
                                                     {"name", "String", 0, NULL, OF_NAME},
                                                     {"timeZone", "String", 0, NULL, OF_TIMEZONE},
                                                     {"floors", "Floor", 1, NULL, OF_SITE_FLOORS},
                                                     {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_floor_fields[] = {{"id", "ID", 0, NULL, OF_ID},
                                                      {"label", "String", 0, NULL, OF_LABEL},
                                                      {"siteId", "ID", 0, NULL, OF_SITEID},
                                                      {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_room_fields[] = {{"id", "ID", 0, NULL, OF_ID},
                                                     {"label", "String", 0, NULL, OF_LABEL},
                                                     {"floorId", "ID", 0, NULL, OF_FLOORID},
                                                     {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_nb_fields[] = {{"id", "ID", 0, NULL, OF_ID},
                                                   {"name", "String", 0, NULL, OF_NAME},
                                                   {"floorId", "ID", 0, NULL, OF_FLOORID},
                                                   {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_seat_fields[] = {
    {"id", "ID", 0, NULL, OF_ID},
    {"label", "String", 0, NULL, OF_LABEL},
    {"floorId", "ID", 0, NULL, OF_FLOORID},
    {"neighborhoodId", "ID", 0, NULL, OF_NEIGHBORHOODID},
    {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_payload_fields[] = {{"success", "Boolean", 0, NULL, OF_SUCCESS},
                                                        {"errors", "Error", 1, NULL, OF_ERRORS},
                                                        {NULL, NULL, 0, NULL, 0}};
static const struct gql_fielddef os_error_fields[] = {
    {"attribute", "String", 0, NULL, OF_ATTRIBUTE},
    {"errors", "String", 1, NULL, OF_ERRLIST},
    {"label", "String", 0, NULL, OF_ERRLABEL},
    {NULL, NULL, 0, NULL, 0}};

static const struct gql_typedef os_types[] = {
    {"Query", GQL_O_OBJECT, os_query_fields, NULL},
    {"Mutation", GQL_O_OBJECT, os_mutation_fields, NULL},
    {"Site", GQL_O_OBJECT, os_site_fields, NULL},
    {"Floor", GQL_O_OBJECT, os_floor_fields, NULL},
    {"Room", GQL_O_OBJECT, os_room_fields, NULL},
    {"Neighborhood", GQL_O_OBJECT, os_nb_fields, NULL},
    {"Seat", GQL_O_OBJECT, os_seat_fields, NULL},
    {"CreateEmployeePresencePayload", GQL_O_OBJECT, os_payload_fields, NULL},
    {"Error", GQL_O_OBJECT, os_error_fields, NULL},
    {"EmployeeSeedPayload", GQL_O_OBJECT, os_seed_payload_fields, NULL},
    {"EmployeeLoadPayload", GQL_O_OBJECT, os_load_payload_fields, NULL},
    {"CancelEmployeeLoadPayload", GQL_O_OBJECT, os_cancel_payload_fields, NULL},
    {"String", GQL_O_SCALAR, NULL, NULL},
    {"ID", GQL_O_SCALAR, NULL, NULL},
    {"Boolean", GQL_O_SCALAR, NULL, NULL},
    {"Int", GQL_O_SCALAR, NULL, NULL},
    {NULL, 0, NULL, NULL}};

struct os_gql_ctx {
    struct sim_os *os;
    json_t *keep; /* payloads alive until the response is built */
};

static json_t *id_string(json_t *v)
{
    char buf[32];

    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return json_string(buf);
    }
    return json_is_string(v) ? json_incref(v) : NULL;
}

static void push_error(json_t *errs, const char *attr, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void push_error(json_t *errs, const char *attr, const char *label, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(
        errs, json_pack("{s:s,s:[s],s:s?}", "attribute", attr, "errors", msg, "label", label));
}

static json_t *create_presence(struct sim_os *os, json_t *in)
{
    json_t *errs = json_array(), *status = json_object_get(in, "occupancyStatus"),
           *count = json_object_get(in, "occupancyCount"), *emp = json_object_get(in, "employeeId");
    const char *at = json_string_value(json_object_get(in, "presenceDetectedAt"));
    int nloc = 0;
    int64_t ms;
    char ts[40];

    for (int t = 0; t < 5; t++) {
        json_t *v = json_object_get(in, loc_fields[t]);
        if (!v || json_is_null(v))
            continue;
        nloc++;
        if (!json_is_string(v)) /* validation makes this unreachable; stay safe anyway */
            push_error(errs, loc_fields[t], loc_labels[t], "must be a string");
        else if (!json_object_get(os->loc[t], json_string_value(v)))
            push_error(errs, loc_fields[t], loc_labels[t], "%s %s not found", loc_labels[t],
                       json_string_value(v));
    }
    if (json_is_string(emp)) {
        int internal = json_is_string(json_object_get(in, "employeeIdType")) &&
                       strcmp(json_string_value(json_object_get(in, "employeeIdType")),
                              "INTERNAL_EMPLOYEE_ID") == 0;
        if (internal ? !sim_dir_exists(os->dir, parse_id(json_string_value(emp)))
                     : sim_dir_find(os->dir, json_string_value(emp)) < 0)
            push_error(errs, "employeeId", "Employee", "Employee %s not found",
                       json_string_value(emp));
    } else if (nloc == 0) {
        push_error(
            errs, "base", NULL,
            "one of seatId, roomId, neighborhoodId, floorId, siteId or employeeId is required");
    }
    if (json_is_integer(count) && json_integer_value(count) < 0)
        push_error(errs, "occupancyCount", "Occupancy count", "must be greater than or equal to 0");
    if (!at || osc_clock_parse_iso8601(at, &ms))
        push_error(errs, "presenceDetectedAt", "Presence detected at",
                   "is not a valid ISO 8601 timestamp");
    if (json_array_size(errs)) {
        os->presence_rejected++;
        return json_pack("{s:b,s:o}", "success", 0, "errors", errs);
    }
    json_decref(errs);
    osc_clock_iso8601(os->now_wall_ms, ts, sizeof(ts));
    os->presence_accepted++;
    for (int t = 0; t < 5; t++) {
        json_t *v = json_object_get(in, loc_fields[t]), *st;
        char key[160];
        if (!json_is_string(v))
            continue;
        snprintf(key, sizeof(key), "%s:%s", loc_types[t], json_string_value(v));
        st = json_object_get(os->presence, key);
        if (!st) {
            st = json_pack("{s:s,s:s,s:I}", "type", loc_types[t], "id", json_string_value(v),
                           "updates", (json_int_t)0);
            json_object_set_new(os->presence, key, st);
        }
        if (status && !json_is_null(status))
            json_object_set(st, "occupancyStatus", status);
        if (count && !json_is_null(count))
            json_object_set(st, "occupancyCount", count);
        json_object_set_new(st, "presenceDetectedAt", json_string(at));
        json_object_set_new(st, "receivedAt", json_string(ts));
        json_object_set_new(st, "updates",
                            json_integer(json_integer_value(json_object_get(st, "updates")) + 1));
    }
    if (json_array_size(os->presence_log) >= PRESENCE_LOG_MAX)
        json_array_remove(os->presence_log, 0);
    {
        json_t *entry = json_deep_copy(in);
        json_object_set_new(entry, "seq", json_integer(++os->presence_seq));
        json_object_set_new(entry, "receivedAt", json_string(ts));
        json_array_append_new(os->presence_log, entry);
    }
    return json_pack("{s:b,s:n}", "success", 1, "errors");
}

/* employeeSeed: stage each record under its source (GraphQL twin of employee_batch_imports);
 * a record without employeeId or email is skipped. All or nothing like the REST call. */
static json_t *employee_seed(struct sim_os *os, json_t *list)
{
    json_t *errids = json_array(), *it;
    json_int_t imported = 0, skipped = 0;
    size_t i;

    if (!errids || sim_dir_begin(os->dir)) {
        json_decref(errids);
        return NULL;
    }
    json_array_foreach(list, i, it)
    {
        const char *key = json_string_value(json_object_get(it, "employeeId"));
        const char *src = json_string_value(json_object_get(it, "source"));
        if (!key || !*key)
            key = json_string_value(json_object_get(it, "email"));
        if (!key || !*key) {
            char idx[32];
            snprintf(idx, sizeof(idx), "#%zu", i);
            json_array_append_new(errids, json_string(idx));
            skipped++;
            continue;
        }
        if (sim_dir_stage(os->dir, src && *src ? src : "API", key, it)) {
            sim_dir_undo(os->dir);
            json_decref(errids);
            return json_pack("{s:[],s:i,s:i,s:s}", "errorIds", "imported", 0, "skipped", 0,
                             "status", "error");
        }
        imported++;
    }
    sim_dir_end(os->dir);
    return json_pack("{s:o,s:I,s:I,s:s}", "errorIds", errids, "imported", imported, "skipped",
                     skipped, "status", "success");
}

static json_t *employee_load(struct sim_os *os, json_t *source)
{
    struct sim_dir_counts c;
    int rc = json_is_string(source) ? sim_dir_commit(os->dir, json_string_value(source), &c)
                                    : OSC_EINVAL;

    if (rc)
        return json_pack("{s:s,s:s}", "error", osc_strerror(rc), "status", "error");
    return json_pack("{s:n,s:s}", "error", "status", "success");
}

static json_t *cancel_load(struct sim_os *os, json_t *source)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "Cleared %zu seed records",
             json_is_string(source) ? sim_dir_clear(os->dir, json_string_value(source)) : 0);
    return json_pack("{s:s,s:s}", "message", msg, "status", "success");
}

static int os_resolve(void *ud, struct gql_exec *x, struct gql_ref self,
                      const struct gql_fielddef *f, json_t *args, struct gql_out *out)
{
    struct os_gql_ctx *c = ud;
    json_t *o = (json_t *)self.obj, *v;
    const char *k;
    static const char *const list_types[] = {"Site", "Floor", "Room", "Neighborhood", "Seat"};

    (void)x;
    switch (f->id) {
    case OF_SITES:
    case OF_FLOORS:
    case OF_ROOMS:
    case OF_NEIGHBORHOODS:
    case OF_SEATS: {
        int t = f->id - OF_SITES;
        json_object_foreach(c->os->loc[t], k, v)
        {
            if (gql_out_push(out, list_types[t], v))
                return -1;
        }
        return 0;
    }
    case OF_SITE_FLOORS: {
        json_t *sid = json_object_get(o, "id");
        json_object_foreach(c->os->loc[1], k, v)
        {
            if (json_equal(json_object_get(v, "site_id"), sid) && gql_out_push(out, "Floor", v))
                return -1;
        }
        return 0;
    }
    case OF_ID: out->scalar = id_string(json_object_get(o, "id")); return 0;
    case OF_NAME:
    case OF_LABEL:
        out->scalar = json_incref(json_object_get(o, f->id == OF_NAME ? "name" : "label"));
        return 0;
    case OF_TIMEZONE: out->scalar = json_string("Etc/UTC"); return 0;
    case OF_SITEID: out->scalar = id_string(json_object_get(o, "site_id")); return 0;
    case OF_FLOORID: out->scalar = id_string(json_object_get(o, "floor_id")); return 0;
    case OF_NEIGHBORHOODID:
        out->scalar = id_string(json_object_get(o, "neighborhood_id"));
        return 0;
    case OF_PRESENCE: {
        json_t *p = create_presence(c->os, json_object_get(args, "employeePresence"));
        if (!p || json_array_append_new(c->keep, p))
            return -1;
        out->one.type = "CreateEmployeePresencePayload";
        out->one.obj = p;
        return 0;
    }
    case OF_SUCCESS: out->scalar = json_incref(json_object_get(o, "success")); return 0;
    case OF_ERRORS: {
        size_t i;
        /* the SDL's errors: [Error!] is null on success (graphql-ruby convention) */
        out->null_list = !json_is_array(json_object_get(o, "errors"));
        json_array_foreach(json_object_get(o, "errors"), i, v)
        {
            if (gql_out_push(out, "Error", v))
                return -1;
        }
        return 0;
    }
    case OF_ATTRIBUTE: out->scalar = json_incref(json_object_get(o, "attribute")); return 0;
    case OF_ERRLIST: out->scalar = json_incref(json_object_get(o, "errors")); return 0;
    case OF_ERRLABEL: out->scalar = json_incref(json_object_get(o, "label")); return 0;
    case OF_SEED:
    case OF_LOAD:
    case OF_CANCEL: {
        json_t *p = f->id == OF_SEED   ? employee_seed(c->os, json_object_get(args, "employees"))
                    : f->id == OF_LOAD ? employee_load(c->os, json_object_get(args, "source"))
                                       : cancel_load(c->os, json_object_get(args, "source"));
        if (!p || json_array_append_new(c->keep, p))
            return -1;
        out->one.type = f->type;
        out->one.obj = p;
        return 0;
    }
    case OF_FIELD: out->scalar = json_incref(json_object_get(o, f->name)); return 0;
    }
    return -1;
}

static const struct gql_schema os_schema = {os_types, os_inputs, "Query", "Mutation", os_resolve};

void sim_os_graphql(struct sim_os *os, const char *body, size_t len, int64_t now_wall_ms,
                    struct sim_reply *reply)
{
    struct os_gql_ctx c = {os, json_array()};

    os->now_wall_ms = now_wall_ms;
    sim_graphql_request(&os_schema, &c, body, len, reply);
    json_decref(c.keep);
}

/* ---- /_sim views -------------------------------------------------------------- */

json_t *sim_os_presence(const struct sim_os *os)
{
    json_t *arr = json_array(), *v;
    const char *k;

    json_object_foreach(os->presence, k, v) { json_array_append(arr, v); }
    return json_pack("{s:I,s:I,s:I,s:o}", "count", (json_int_t)json_array_size(arr), "accepted",
                     os->presence_accepted, "rejected", os->presence_rejected, "locations", arr);
}

json_t *sim_os_presence_log(const struct sim_os *os, int64_t since)
{
    json_t *arr = json_array(), *v;
    size_t i;

    json_array_foreach(os->presence_log, i, v)
    {
        if (json_integer_value(json_object_get(v, "seq")) > since)
            json_array_append(arr, v);
    }
    return json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(arr), "mutations", arr);
}

void sim_os_employees(const struct sim_os *os, int detail, struct sim_reply *reply)
{
    struct osc_buf b;

    osc_buf_init(&b, (size_t)1 << 32);
    reply_buf(reply, sim_dir_view(os->dir, detail, &b), &b);
}

json_t *sim_os_resources(const struct sim_os *os)
{
    json_t *out = json_object(), *locs = json_object();

    for (int t = 0; t < 5; t++)
        json_object_set_new(locs, loc_paths[t],
                            json_integer((json_int_t)json_object_size(os->loc[t])));
    json_object_set(out, "resources", os->resources);
    json_object_set_new(out, "locations", locs);
    return out;
}
