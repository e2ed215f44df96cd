/*
 * mapped.c - Mapped GraphQL queries and the streaming response walker;
 * see mapped.h.
 *
 * Invariants: every string in the topology points into its arena, which
 * only grows until osc_mapped_topo_free(); pt_hash and loc_hash are open
 * addressing tables of (index + 1), 0 meaning empty, kept at most half full.
 * Places are walked recursively (building > floors > spaces/zones); the
 * cursor bounds the depth. A place's points are linked only once the whole
 * place object has been read, because its identities may come after them.
 * Valid JSON of the wrong shape is skipped part by part (malformed()), so
 * one odd place costs only itself; JSON syntax errors fail the answer.
 */
#include "osc/mapped.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jcur.h"
#include "osc/clock.h"
#include "osc/log.h"

#define ARENA_BLOCK      (64 * 1024)
#define MAX_ID_LEN       1024
#define MAX_IDENTITY_LEN 512
#define MAX_REPORTED     4 /* invalid values kept per place for the report */

static const char *const POINT_FILTER =
    "points(filter: {exactType: {in: [\"Occupancy_Status\", \"Temporary_Occupancy_Status\", "
    "\"Occupancy_Count_Sensor\", \"Occupancy_Sensor\", \"PIR_Sensor\"]}})";
static const char *const SERIES =
    "series(latest: true) { timestamp value { float64Value float32Value int64Value int32Value "
    "uint64Value uint32Value boolValue stringValue } }";
static const char *const IDENTITIES = "identities { __typename ... on ExternalIdentity { value } }";

/* ---- arena ------------------------------------------------------------- */

struct osc_mapped_arena {
    struct osc_mapped_arena *next;
    size_t used, cap;
    char data[];
};

/* A NUL-terminated copy of s[0..len) owned by the topology's arena; NULL on ENOMEM. */
static const char *arena_strdup(struct osc_mapped_topo *t, const char *s, size_t len)
{
    struct osc_mapped_arena *a = t->arena;
    char *p;

    if (!a || a->cap - a->used < len + 1) {
        size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;
        a = malloc(sizeof(*a) + cap);
        if (!a)
            return NULL;
        a->used = 0;
        a->cap = cap;
        a->next = t->arena;
        t->arena = a;
    }
    p = a->data + a->used;
    memcpy(p, s, len);
    p[len] = '\0';
    a->used += len + 1;
    return p;
}

/* ---- topology ---------------------------------------------------------- */

struct osc_mapped_topo *osc_mapped_topo_new(void)
{
    return calloc(1, sizeof(struct osc_mapped_topo));
}

void osc_mapped_topo_free(struct osc_mapped_topo *t)
{
    if (!t)
        return;
    while (t->arena) {
        struct osc_mapped_arena *a = t->arena;
        t->arena = a->next;
        free(a);
    }
    free(t->locs);
    free(t->points);
    free(t->links);
    free(t->pt_hash);
    free(t->loc_hash);
    free(t->notes);
    free(t);
}

void osc_mapped_topo_clear_values(struct osc_mapped_topo *t)
{
    for (size_t i = 0; i < t->npoints; i++) {
        t->points[i].has_value = 0;
        t->points[i].bad_why = NULL;
    }
    t->values_read = 0;
    t->bad_values = 0;
    t->malformed = 0;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t hash_urn(const struct osc_urn *u)
{
    uint64_t h = (uint64_t)u->id * 0x9E3779B97F4A7C15ULL ^ (uint64_t)u->type;
    return h ^ (h >> 29);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *p;

    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > UINT32_MAX - 1)
        return OSC_ETOOBIG;
    if (!(p = realloc(*arr, ncap * elem)))
        return OSC_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

#define MAX_NOTES                                                                                  \
    65536 /* warnings remembered; past it, malformed parts are counted, not logged                 \
           */

/* 1 if the warning hashed h was logged already (or cannot be remembered); else remember it. */
static int noted(struct osc_mapped_topo *t, uint64_t h)
{
    size_t i, mask;

    h = h ? h : 1; /* 0 marks an empty slot */
    if ((t->nnotes + 1) * 2 > t->notes_cap) {
        size_t ncap = t->notes_cap ? t->notes_cap * 2 : 64;
        uint64_t *nv;
        if (t->nnotes >= MAX_NOTES || !(nv = calloc(ncap, sizeof(*nv))))
            return 1;
        for (size_t k = 0; k < t->notes_cap; k++) {
            if (!t->notes[k])
                continue;
            for (i = t->notes[k] & (ncap - 1); nv[i]; i = (i + 1) & (ncap - 1))
                ;
            nv[i] = t->notes[k];
        }
        free(t->notes);
        t->notes = nv;
        t->notes_cap = ncap;
    }
    mask = t->notes_cap - 1;
    for (i = h & mask; t->notes[i]; i = (i + 1) & mask)
        if (t->notes[i] == h)
            return 1;
    t->notes[i] = h;
    t->nnotes++;
    return 0;
}

void osc_mapped_topo_keep_notes(struct osc_mapped_topo *dst, struct osc_mapped_topo *src)
{
    free(dst->notes);
    dst->notes = src->notes;
    dst->nnotes = src->nnotes;
    dst->notes_cap = src->notes_cap;
    src->notes = NULL;
    src->nnotes = src->notes_cap = 0;
}

long osc_mapped_topo_point(const struct osc_mapped_topo *t, const char *id, size_t len)
{
    size_t mask, i;

    if (!t->pt_hash_cap)
        return -1;
    mask = t->pt_hash_cap - 1;
    for (i = hash_bytes(id, len) & mask; t->pt_hash[i]; i = (i + 1) & mask) {
        const struct osc_mapped_point *p = &t->points[t->pt_hash[i] - 1];
        if (strncmp(p->id, id, len) == 0 && p->id[len] == '\0')
            return (long)t->pt_hash[i] - 1;
    }
    return -1;
}

static int rehash_points(struct osc_mapped_topo *t, size_t cap)
{
    uint32_t *h = calloc(cap, sizeof(*h));
    if (!h)
        return OSC_ENOMEM;
    for (size_t k = 0; k < t->npoints; k++) {
        const char *id = t->points[k].id;
        size_t i = hash_bytes(id, strlen(id)) & (cap - 1);
        while (h[i])
            i = (i + 1) & (cap - 1);
        h[i] = (uint32_t)k + 1;
    }
    free(t->pt_hash);
    t->pt_hash = h;
    t->pt_hash_cap = cap;
    return 0;
}

/* Index of point id (added with kind if new) in *idx. */
static int add_point(struct osc_mapped_topo *t, const char *id, size_t len,
                     enum osc_point_kind kind, uint32_t *idx)
{
    long found = osc_mapped_topo_point(t, id, len);
    struct osc_mapped_point *p;
    size_t i;
    int rc;

    if (found >= 0) {
        *idx = (uint32_t)found;
        return 0;
    }
    if ((t->npoints + 1) * 2 > t->pt_hash_cap &&
        (rc = rehash_points(t, t->pt_hash_cap ? t->pt_hash_cap * 2 : 256)))
        return rc;
    if ((rc = grow((void **)&t->points, &t->points_cap, t->npoints + 1, sizeof(*t->points))))
        return rc;
    p = &t->points[t->npoints];
    memset(p, 0, sizeof(*p));
    if (!(p->id = arena_strdup(t, id, len)))
        return OSC_ENOMEM;
    p->kind = kind;
    for (i = hash_bytes(id, len) & (t->pt_hash_cap - 1); t->pt_hash[i];
         i = (i + 1) & (t->pt_hash_cap - 1))
        ;
    t->pt_hash[i] = (uint32_t)t->npoints + 1;
    *idx = (uint32_t)t->npoints++;
    return 0;
}

static long find_loc(const struct osc_mapped_topo *t, const struct osc_urn *u)
{
    size_t mask, i;

    if (!t->loc_hash_cap)
        return -1;
    mask = t->loc_hash_cap - 1;
    for (i = hash_urn(u) & mask; t->loc_hash[i]; i = (i + 1) & mask)
        if (osc_urn_cmp(&t->locs[t->loc_hash[i] - 1].urn, u) == 0)
            return (long)t->loc_hash[i] - 1;
    return -1;
}

static int rehash_locs(struct osc_mapped_topo *t, size_t cap)
{
    uint32_t *h = calloc(cap, sizeof(*h));
    if (!h)
        return OSC_ENOMEM;
    for (size_t k = 0; k < t->nlocs; k++) {
        size_t i = hash_urn(&t->locs[k].urn) & (cap - 1);
        while (h[i])
            i = (i + 1) & (cap - 1);
        h[i] = (uint32_t)k + 1;
    }
    free(t->loc_hash);
    t->loc_hash = h;
    t->loc_hash_cap = cap;
    return 0;
}

static int add_link(struct osc_mapped_topo *t, uint32_t loc, uint32_t point)
{
    int rc = grow((void **)&t->links, &t->links_cap, t->nlinks + 1, sizeof(*t->links));
    if (rc)
        return rc;
    t->links[t->nlinks].loc = loc;
    t->links[t->nlinks].point = point;
    t->nlinks++;
    return 0;
}

static int link_cmp(const void *a, const void *b)
{
    const struct osc_mapped_link *x = a, *y = b;
    if (x->loc != y->loc)
        return x->loc < y->loc ? -1 : 1;
    return x->point < y->point ? -1 : x->point > y->point;
}

void osc_mapped_topo_finish(struct osc_mapped_topo *t)
{
    size_t n = 0;

    t->npoints_used = 0;
    t->values_read = 0;
    for (size_t i = 0; i < t->npoints; i++) {
        t->npoints_used += t->points[i].linked != 0;
        t->values_read += t->points[i].linked && t->points[i].has_value;
    }
    if (!t->nlinks)
        return;
    qsort(t->links, t->nlinks, sizeof(*t->links), link_cmp);
    for (size_t i = 1; i < t->nlinks; i++)
        if (link_cmp(&t->links[i], &t->links[n]) != 0)
            t->links[++n] = t->links[i];
    t->nlinks = n + 1;
}

/* ---- query ------------------------------------------------------------- */

int osc_mapped_query(const char *const *ids, size_t n, int discover, struct osc_buf *out)
{
    struct osc_buf q, list;
    json_t *body = NULL;
    char *text = NULL;
    const char *pfields = discover ? "id exactType" : "id";
    const char *placef = discover ? "id name" : "id";
    const char *ident = discover ? IDENTITIES : "";
    int rc;

    osc_buf_reset(out);
    if (n == 0)
        return OSC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!ids[i][0] || strlen(ids[i]) > MAX_ID_LEN)
            return OSC_EINVAL;
        for (const char *p = ids[i]; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
                return OSC_EINVAL;
    }
    /* GraphQL text first; jansson JSON-escapes it into the body */
    osc_buf_init(&q, 64 * 1024 + n * (MAX_ID_LEN + 4));
    osc_buf_init(&list, n * (MAX_ID_LEN + 4));
    for (size_t i = 0; i < n; i++)
        if ((rc = osc_buf_printf(&list, "%s\"%s\"", i ? ", " : "", ids[i])))
            goto out;
    rc = osc_buf_printf(&q,
                        "query { buildings(filter: {id: {in: [%s]}}) { %s %s %s { %s %s } "
                        "floors { %s %s %s { %s %s } "
                        "spaces { %s %s %s { %s %s } } "
                        "zones { %s %s %s { %s %s } } } } }",
                        osc_buf_str(&list), placef, ident, POINT_FILTER, pfields, SERIES, placef,
                        ident, POINT_FILTER, pfields, SERIES, placef, ident, POINT_FILTER, pfields,
                        SERIES, placef, ident, POINT_FILTER, pfields, SERIES);
    if (rc)
        goto out;
    body = json_pack("{s:s}", "query", osc_buf_str(&q));
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    rc = text ? osc_buf_adds(out, text) : OSC_ENOMEM;
out:
    free(text);
    json_decref(body);
    osc_buf_free(&q);
    osc_buf_free(&list);
    return rc;
}

/* ---- values ------------------------------------------------------------ */

/* Value members in order of preference; the index is the rank. */
static const char *const members[] = {"float64Value", "float32Value", "int64Value", "int32Value",
                                      "uint64Value",  "uint32Value",  "boolValue",  "stringValue"};
#define NMEMBERS (sizeof(members) / sizeof(members[0]))

/* A number written as a JSON string: optional sign, digits, optional fraction/exponent. */
static int string_number(const struct jc_str *s, int integer_only, double *out)
{
    char tmp[128];
    char *end;
    long n;

    if (s->len == 0 || s->len >= sizeof(tmp))
        return OSC_EDATA;
    if ((n = jc_unescape(s, tmp, sizeof(tmp))) <= 0)
        return OSC_EDATA;
    if (integer_only) {
        for (long i = 0; i < n; i++)
            if (!(tmp[i] >= '0' && tmp[i] <= '9') && !(i == 0 && tmp[i] == '-'))
                return OSC_EDATA;
    }
    *out = strtod(tmp, &end);
    while (*end == ' ')
        end++;
    if (end == tmp || *end)
        return OSC_EDATA;
    return 0;
}

/* Walk a value object at the cursor. 0 with *out, OSC_ENOTFOUND, OSC_EDATA, OSC_EPROTO. */
static int parse_value(struct jcur *c, double *out)
{
    struct jc_str key, s;
    size_t best = NMEMBERS;
    double v = 0, best_v = 0;
    int best_rc = 0, r;

    if (jc_peek(c) == JC_NULL)
        return jc_lit(c) ? OSC_EPROTO : OSC_ENOTFOUND;
    if (jc_obj_enter(c))
        return OSC_EPROTO;
    while ((r = jc_obj_key(c, &key)) == 1) {
        size_t m;
        int vrc = 0;
        enum jc_type ty;
        for (m = 0; m < NMEMBERS; m++)
            if (jc_eq(&key, members[m]))
                break;
        ty = jc_peek(c);
        if (m == NMEMBERS || ty == JC_NULL || m > best) {
            if (jc_skip(c))
                return OSC_EPROTO;
            continue;
        }
        if (ty == JC_NUM && m != 6 && m != 7) {
            if (jc_num(c, &v))
                return OSC_EPROTO;
        } else if (ty == JC_STR && (m == 2 || m == 4 || m == 7)) {
            if (jc_str(c, &s))
                return OSC_EPROTO;
            vrc = string_number(&s, m != 7, &v);
        } else if ((ty == JC_TRUE || ty == JC_FALSE) && m == 6) {
            v = ty == JC_TRUE;
            if (jc_lit(c))
                return OSC_EPROTO;
        } else {
            /* a member of the wrong JSON type: not a usable number */
            if (jc_skip(c))
                return OSC_EPROTO;
            vrc = OSC_EDATA;
        }
        best = m;
        best_v = v;
        best_rc = vrc;
    }
    if (r < 0)
        return OSC_EPROTO;
    if (best == NMEMBERS)
        return OSC_ENOTFOUND;
    if (best_rc)
        return best_rc;
    if (!isfinite(best_v))
        return OSC_EDATA;
    *out = best_v;
    return 0;
}

int osc_mapped_value_parse(const char *json, size_t len, double *out)
{
    struct jcur c;
    double v;
    int rc;

    jc_init(&c, json, len);
    rc = parse_value(&c, &v);
    if (rc == OSC_EPROTO)
        return OSC_EDATA;
    if (rc == 0)
        *out = v;
    return rc;
}

/* ---- response walker --------------------------------------------------- */

struct walk {
    struct osc_mapped_topo *t;
    int discover;
    struct osc_err *err;
    struct jcur c;
};

struct place {
    const char *kind;
    const struct place *parent; /* NULL for a building */
    size_t index;               /* position in its list, for places without a usable id */
    struct jc_str id, name;
    int has_id, has_name;
    int nvalid; /* distinct valid URNs */
    struct osc_urn urn;
    struct osc_urn other; /* a second distinct URN, for the conflict report */
    unsigned ninvalid;
    char invalid[MAX_REPORTED][160];
    const char *why[MAX_REPORTED];
    uint32_t *pts; /* points listed by the place (owned, freed at its end) */
    size_t npts, pts_cap;
};

/* "an object", "a list", ... for the value at the cursor. */
static const char *jtype(struct jcur *c)
{
    switch (jc_peek(c)) {
    case JC_OBJ: return "an object";
    case JC_ARR: return "a list";
    case JC_STR: return "a string";
    case JC_NUM: return "a number";
    case JC_TRUE:
    case JC_FALSE: return "a boolean";
    case JC_NULL: return "null";
    default: return "not JSON";
    }
}

/* "Space SPC1", or for a place without a usable id "Space #3 \"Room 1\" in Floor FLR1". */
static void place_label(const struct place *pl, char *out, size_t cap)
{
    char up[256];

    if (!pl) {
        snprintf(out, cap, "the answer");
        return;
    }
    if (pl->has_id) {
        snprintf(out, cap, "%s %.*s", pl->kind, (int)(pl->id.len > 120 ? 120 : pl->id.len),
                 pl->id.s);
        return;
    }
    if (pl->parent)
        place_label(pl->parent, up, sizeof(up));
    else
        snprintf(up, sizeof(up), "the buildings list");
    snprintf(out, cap, "%s #%zu%s%.*s%s in %s", pl->kind, pl->index + 1, pl->has_name ? " \"" : "",
             pl->has_name ? (int)(pl->name.len > 60 ? 60 : pl->name.len) : 0,
             pl->has_name ? pl->name.s : "", pl->has_name ? "\"" : "", up);
}

/*
 * A malformed part of the answer that is skipped: counted, and logged once per place and
 * problem (the full text is the key), so a read every cycle does not repeat it.
 */
static void malformed(struct walk *w, const struct place *pl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void malformed(struct walk *w, const struct place *pl, const char *fmt, ...)
{
    char label[300], what[300], full[640];
    va_list ap;

    w->t->malformed++;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    place_label(pl, label, sizeof(label));
    snprintf(full, sizeof(full), "%s: %s", label, what);
    if (!noted(w->t, hash_bytes(full, strlen(full))))
        OSC_LOG_WARN("presence", "Mapped answer: %s", full);
}

static int proto(struct walk *w, const char *what)
{
    if (w->c.err)
        return osc_err_set(w->err, OSC_EPROTO, "Mapped response: %s at byte %zu (%s)", w->c.err,
                           w->c.err_off, what);
    return osc_err_set(w->err, OSC_EPROTO, "Mapped response: %s", what);
}

/* Skip a value of the wrong shape at the cursor (after malformed() said so). */
static int skip_bad(struct walk *w, const char *what)
{
    return jc_skip(&w->c) ? proto(w, what) : 0;
}

/*
 * An unusable reading of p: counted and logged (once until it reads well
 * again, not once per cycle) if a location uses the point; during a
 * discovery, before that is known, kept in bad_why for finish_place().
 */
static void bad_value(struct osc_mapped_topo *t, struct osc_mapped_point *p, const char *why)
{
    if (!p->linked) {
        p->bad_why = why;
        return;
    }
    t->bad_values++;
    if (!p->bad_warned)
        OSC_LOG_WARN("presence", "point %s: %s; ignored", p->id, why);
    p->bad_warned = 1;
}

/* One series row (the idx-th): keeps the newest timestamp's value in *p. */
static int walk_row(struct walk *w, const struct place *pl, struct osc_mapped_point *p, size_t idx,
                    int *seen_ts, int64_t *best_ts)
{
    struct jc_str key, ts = {0};
    double v = 0;
    int have_ts = 0, vrc = OSC_ENOTFOUND, r;
    int64_t at = 0;

    if (jc_peek(&w->c) == JC_NULL)
        return jc_lit(&w->c) ? proto(w, "series row") : 0;
    if (jc_peek(&w->c) != JC_OBJ) {
        malformed(w, pl, "point %s: series[%zu] is %s, not an object; ignored", p->id, idx,
                  jtype(&w->c));
        return skip_bad(w, "series row");
    }
    if (jc_obj_enter(&w->c))
        return proto(w, "series row");
    while ((r = jc_obj_key(&w->c, &key)) == 1) {
        if (jc_eq(&key, "timestamp") && jc_peek(&w->c) == JC_STR) {
            char tmp[64];
            if (jc_str(&w->c, &ts))
                return proto(w, "timestamp");
            have_ts =
                jc_unescape(&ts, tmp, sizeof(tmp)) > 0 && osc_clock_parse_iso8601(tmp, &at) == 0;
        } else if (jc_eq(&key, "value") && jc_peek(&w->c) != JC_OBJ && jc_peek(&w->c) != JC_NULL) {
            malformed(w, pl, "point %s: series[%zu].value is %s, not an object; ignored", p->id,
                      idx, jtype(&w->c));
            if (skip_bad(w, "series value"))
                return OSC_EPROTO;
        } else if (jc_eq(&key, "value")) {
            vrc = parse_value(&w->c, &v);
            if (vrc == OSC_EPROTO)
                return proto(w, "series value");
        } else if (jc_skip(&w->c)) {
            return proto(w, "series row");
        }
    }
    if (r < 0)
        return proto(w, "series row");
    if (vrc == OSC_ENOTFOUND)
        return 0; /* no value yet */
    if (!have_ts) {
        bad_value(w->t, p, "latest value has no valid timestamp");
        return 0;
    }
    if (*seen_ts && at <= *best_ts)
        return 0;
    *seen_ts = 1;
    *best_ts = at;
    if (vrc == OSC_EDATA) {
        p->has_value = 0;
        bad_value(w->t, p, "latest value is NaN, infinite or not a number");
        return 0;
    }
    p->bad_warned = 0;
    p->bad_why = NULL;
    p->has_value = 1;
    p->value = v;
    p->at_ms = at;
    return 0;
}

/* A point id's problem, or NULL when it is usable. */
static const char *bad_id(const struct jc_str *id)
{
    if (id->len == 0)
        return "is empty";
    if (id->escaped)
        return "has escape sequences";
    if (id->len > MAX_ID_LEN)
        return "is longer than 1024 bytes";
    return NULL;
}

static int walk_point(struct walk *w, struct place *pl, size_t pos)
{
    struct jc_str key, id = {0}, type = {0};
    const char *series_at = NULL, *id_type = NULL, *type_type = NULL, *series_type = NULL;
    int has_id = 0, has_type = 0, r, rc;
    struct osc_mapped_point *p = NULL;
    enum osc_point_kind kind = OSC_POINT_OCCUPANCY_STATUS;
    uint32_t idx;

    if (jc_peek(&w->c) == JC_NULL)
        return jc_lit(&w->c) ? proto(w, "point") : 0;
    if (jc_peek(&w->c) != JC_OBJ) {
        malformed(w, pl, "points[%zu] is %s, not an object; skipped", pos, jtype(&w->c));
        return skip_bad(w, "point");
    }
    if (jc_obj_enter(&w->c))
        return proto(w, "point");
    /*
     * Fields arrive in query order (id, exactType, series), but a reordered
     * answer must work too: remember where series starts and come back.
     */
    while ((r = jc_obj_key(&w->c, &key)) == 1) {
        if (jc_eq(&key, "id") && jc_peek(&w->c) == JC_STR) {
            if (jc_str(&w->c, &id))
                return proto(w, "point id");
            has_id = 1;
        } else if (jc_eq(&key, "id")) {
            id_type = jtype(&w->c);
            if (jc_skip(&w->c))
                return proto(w, "point id");
        } else if (jc_eq(&key, "exactType") && jc_peek(&w->c) == JC_STR) {
            if (jc_str(&w->c, &type))
                return proto(w, "point exactType");
            has_type = 1;
        } else if (jc_eq(&key, "exactType")) {
            type_type = jtype(&w->c);
            if (jc_skip(&w->c))
                return proto(w, "point exactType");
        } else if (jc_eq(&key, "series")) {
            if (jc_peek(&w->c) == JC_ARR)
                series_at = w->c.p;
            else if (jc_peek(&w->c) != JC_NULL)
                series_type = jtype(&w->c);
            if (jc_skip(&w->c))
                return proto(w, "series");
        } else if (jc_skip(&w->c)) {
            return proto(w, "point");
        }
    }
    if (r < 0)
        return proto(w, "point");
    if (!has_id || bad_id(&id)) {
        if (has_id)
            malformed(w, pl, "points[%zu]: id %s; the point is skipped", pos, bad_id(&id));
        else if (id_type)
            malformed(w, pl, "points[%zu]: id is %s, not a string; the point is skipped", pos,
                      id_type);
        else
            malformed(w, pl, "points[%zu] has no id; the point is skipped", pos);
        return 0;
    }
    if (series_type) {
        /* the point is known (in a discovery, added), but it has no reading this time */
        malformed(w, pl, "point %.*s: series is %s, not a list; its value is ignored",
                  (int)(id.len > 120 ? 120 : id.len), id.s, series_type);
    }
    if (w->discover) {
        if (type_type && strcmp(type_type, "null") != 0) {
            malformed(w, pl, "point %.*s: exactType is %s, not a string; the point is skipped",
                      (int)(id.len > 120 ? 120 : id.len), id.s, type_type);
            return 0;
        }
        if (!has_type || osc_presence_kind_parse(type.s, type.len, &kind)) {
            OSC_LOG_DEBUG("presence",
                          "point %.*s: exactType %.*s is not an occupancy type; skipped",
                          (int)id.len, id.s, (int)type.len, has_type ? type.s : "");
            return 0;
        }
        if ((rc = add_point(w->t, id.s, id.len, kind, &idx)))
            return osc_err_set(w->err, rc, "cannot grow the topology: %s", osc_strerror(rc));
        if (pl) {
            rc = grow((void **)&pl->pts, &pl->pts_cap, pl->npts + 1, sizeof(*pl->pts));
            if (rc)
                return osc_err_set(w->err, rc, "cannot grow the topology: %s", osc_strerror(rc));
            pl->pts[pl->npts++] = idx;
        }
    } else {
        long found = osc_mapped_topo_point(w->t, id.s, id.len);
        if (found < 0)
            return 0; /* not discovered (yet): picked up at the next topology refresh */
        idx = (uint32_t)found;
    }
    p = &w->t->points[idx];
    if (series_at) {
        /* a second cursor over the remembered series array */
        struct jcur sc = w->c;
        struct jcur saved = w->c;
        int seen = 0, had = p->has_value;
        int64_t best = 0;

        sc.p = series_at;
        sc.depth = 0;
        w->c = sc;
        if (jc_arr_enter(&w->c))
            return proto(w, "series");
        for (size_t k = 0; (r = jc_arr_next(&w->c)) == 1; k++)
            if ((rc = walk_row(w, pl, p, k, &seen, &best)))
                return rc;
        if (r < 0)
            return proto(w, "series");
        w->c = saved;
        if (p->has_value && !had && p->linked)
            w->t->values_read++;
    }
    return 0;
}

static int walk_points(struct walk *w, struct place *pl)
{
    int r, rc;

    if (jc_peek(&w->c) == JC_NULL)
        return jc_lit(&w->c) ? proto(w, "points") : 0;
    if (jc_peek(&w->c) != JC_ARR) {
        malformed(w, pl, "points is %s, not a list; skipped", jtype(&w->c));
        return skip_bad(w, "points");
    }
    if (jc_arr_enter(&w->c))
        return proto(w, "points");
    for (size_t k = 0; (r = jc_arr_next(&w->c)) == 1; k++)
        if ((rc = walk_point(w, pl, k)))
            return rc;
    return r < 0 ? proto(w, "points") : 0;
}

static void note_identity(struct walk *w, struct place *pl, const struct jc_str *v)
{
    char tmp[MAX_IDENTITY_LEN];
    long n = jc_unescape(v, tmp, sizeof(tmp));
    struct osc_urn u;
    const char *why = NULL;

    if (n < 0) {
        if (!osc_urn_is_officespace(v->s, v->len))
            return;
        why = "too long or badly escaped";
    } else if (!osc_urn_is_officespace(tmp, (size_t)n)) {
        return; /* some other system's identity */
    } else if (osc_urn_parse(tmp, (size_t)n, &u, &why) == 0) {
        if (pl->nvalid == 0) {
            pl->urn = u;
            pl->nvalid = 1;
        } else if (osc_urn_cmp(&pl->urn, &u) != 0) {
            if (pl->nvalid == 1)
                pl->other = u;
            pl->nvalid++;
        }
        return;
    }
    w->t->invalid_identities++;
    if (pl->ninvalid < MAX_REPORTED) {
        snprintf(pl->invalid[pl->ninvalid], sizeof(pl->invalid[0]), "%.*s",
                 (int)(n < 0 ? (long)(v->len > 150 ? 150 : v->len) : (n > 150 ? 150 : n)),
                 n < 0 ? v->s : tmp);
        pl->why[pl->ninvalid] = why;
    }
    pl->ninvalid++;
}

static int walk_identities(struct walk *w, struct place *pl)
{
    struct jc_str key, v;
    int r, r2;

    if (jc_peek(&w->c) == JC_NULL)
        return jc_lit(&w->c) ? proto(w, "identities") : 0;
    if (jc_peek(&w->c) != JC_ARR) {
        malformed(w, pl, "identities is %s, not a list; ignored", jtype(&w->c));
        return skip_bad(w, "identities");
    }
    if (jc_arr_enter(&w->c))
        return proto(w, "identities");
    for (size_t k = 0; (r = jc_arr_next(&w->c)) == 1; k++) {
        if (jc_peek(&w->c) != JC_OBJ) {
            if (jc_peek(&w->c) != JC_NULL)
                malformed(w, pl, "identities[%zu] is %s, not an object; ignored", k, jtype(&w->c));
            if (jc_skip(&w->c))
                return proto(w, "identities");
            continue;
        }
        if (jc_obj_enter(&w->c))
            return proto(w, "identity");
        while ((r2 = jc_obj_key(&w->c, &key)) == 1) {
            if (jc_eq(&key, "value") && jc_peek(&w->c) == JC_STR) {
                if (jc_str(&w->c, &v))
                    return proto(w, "identity value");
                if (w->discover)
                    note_identity(w, pl, &v);
            } else if (jc_eq(&key, "value") && jc_peek(&w->c) != JC_NULL) {
                malformed(w, pl, "identities[%zu].value is %s, not a string; ignored", k,
                          jtype(&w->c));
                if (jc_skip(&w->c))
                    return proto(w, "identity");
            } else if (jc_skip(&w->c)) {
                return proto(w, "identity");
            }
        }
        if (r2 < 0)
            return proto(w, "identity");
    }
    return r < 0 ? proto(w, "identities") : 0;
}

static int walk_places(struct walk *w, const char *list, const char *kind,
                       const struct place *parent);

/* Decide whether the place takes part, report what is wrong, link its points. */
static int finish_place(struct walk *w, struct place *pl)
{
    struct osc_mapped_topo *t = w->t;
    char a[OSC_URN_STR_MAX], b[OSC_URN_STR_MAX];
    int idlen = pl->has_id ? (int)(pl->id.len > 200 ? 200 : pl->id.len) : 1;
    const char *ids = pl->has_id ? pl->id.s : "?";
    long loc;
    int rc;

    t->places++;
    for (unsigned i = 0; i < pl->ninvalid && i < MAX_REPORTED; i++)
        OSC_LOG_WARN("presence", "%s %.*s: invalid identity '%s': %s", pl->kind, idlen, ids,
                     pl->invalid[i], pl->why[i]);
    if (pl->ninvalid > MAX_REPORTED)
        OSC_LOG_WARN("presence", "%s %.*s: %u more invalid identities", pl->kind, idlen, ids,
                     pl->ninvalid - MAX_REPORTED);
    if (pl->nvalid > 1) {
        osc_urn_format(&pl->urn, a, sizeof(a));
        osc_urn_format(&pl->other, b, sizeof(b));
        OSC_LOG_WARN("presence",
                     "%s %.*s: conflicting identities '%s' and '%s'%s; the place is skipped",
                     pl->kind, idlen, ids, a, b, pl->nvalid > 2 ? " (and more)" : "");
        t->conflicting_places++;
        t->invalid_identities++;
        return 0;
    }
    if (pl->nvalid == 0 || !pl->has_id)
        return 0;
    loc = find_loc(t, &pl->urn);
    if (loc < 0) {
        struct osc_mapped_loc *l;
        if ((t->nlocs + 1) * 2 > t->loc_hash_cap &&
            (rc = rehash_locs(t, t->loc_hash_cap ? t->loc_hash_cap * 2 : 64)))
            return osc_err_set(w->err, rc, "cannot grow the topology");
        if ((rc = grow((void **)&t->locs, &t->locs_cap, t->nlocs + 1, sizeof(*t->locs))))
            return osc_err_set(w->err, rc, "cannot grow the topology");
        l = &t->locs[t->nlocs];
        memset(l, 0, sizeof(*l));
        l->urn = pl->urn;
        l->place_kind = pl->kind;
        l->place_id = arena_strdup(t, pl->id.s, pl->id.len);
        if (pl->has_name && pl->name.escaped) {
            char tmp[1100];
            long n = jc_unescape(&pl->name, tmp, sizeof(tmp));
            l->place_name = arena_strdup(t, n < 0 ? "" : tmp, n < 0 ? 0 : (size_t)n);
        } else {
            l->place_name = pl->has_name ? arena_strdup(t, pl->name.s, pl->name.len) : "";
        }
        if (!l->place_id || !l->place_name)
            return osc_err_set(w->err, OSC_ENOMEM, "cannot grow the topology");
        {
            size_t mask = t->loc_hash_cap - 1, i = hash_urn(&l->urn) & mask;
            while (t->loc_hash[i])
                i = (i + 1) & mask;
            t->loc_hash[i] = (uint32_t)t->nlocs + 1;
        }
        loc = (long)t->nlocs++;
    } else if (t->locs[loc].nplaces == 1) {
        osc_urn_format(&pl->urn, a, sizeof(a));
        OSC_LOG_WARN("presence", "identity '%s' is on both %s and %.*s; their points are combined",
                     a, t->locs[loc].place_id, idlen, ids);
        t->shared_urns++;
    }
    t->locs[loc].nplaces++;
    for (size_t i = 0; i < pl->npts; i++) {
        struct osc_mapped_point *p = &t->points[pl->pts[i]];
        if ((rc = add_link(t, (uint32_t)loc, pl->pts[i])))
            return osc_err_set(w->err, rc, "cannot grow the topology");
        if (!p->linked) {
            p->linked = 1;
            if (p->bad_why)
                bad_value(t, p, p->bad_why);
        }
    }
    return 0;
}

static int walk_place(struct walk *w, const char *list, const char *kind,
                      const struct place *parent, size_t pos)
{
    struct place pl;
    struct jc_str key;
    const char *id_type = NULL, *id_bad = NULL;
    int r, rc = 0;

    memset(&pl, 0, sizeof(pl));
    pl.kind = kind;
    pl.parent = parent;
    pl.index = pos;
    if (jc_peek(&w->c) == JC_NULL)
        return jc_lit(&w->c) ? proto(w, kind) : 0;
    if (jc_peek(&w->c) != JC_OBJ) {
        malformed(w, parent, "%s[%zu] is %s, not an object; skipped", list, pos, jtype(&w->c));
        return skip_bad(w, kind);
    }
    if (jc_obj_enter(&w->c))
        return proto(w, kind);
    while ((r = jc_obj_key(&w->c, &key)) == 1) {
        if (jc_eq(&key, "id") && jc_peek(&w->c) == JC_STR) {
            if (jc_str(&w->c, &pl.id)) {
                rc = proto(w, "place id");
                goto out;
            }
            id_bad = bad_id(&pl.id);
            pl.has_id = id_bad == NULL;
        } else if (jc_eq(&key, "id")) {
            id_type = jtype(&w->c);
            if ((rc = skip_bad(w, "place id")))
                goto out;
        } else if (jc_eq(&key, "name") && jc_peek(&w->c) == JC_STR) {
            if (jc_str(&w->c, &pl.name)) {
                rc = proto(w, "place name");
                goto out;
            }
            pl.has_name = pl.name.len <= 256;
        } else if (jc_eq(&key, "name") && jc_peek(&w->c) != JC_NULL) {
            malformed(w, &pl, "name is %s, not a string; ignored", jtype(&w->c));
            if ((rc = skip_bad(w, "place name")))
                goto out;
        } else if (jc_eq(&key, "identities")) {
            if ((rc = walk_identities(w, &pl)))
                goto out;
        } else if (jc_eq(&key, "points")) {
            if ((rc = walk_points(w, &pl)))
                goto out;
        } else if (jc_eq(&key, "floors")) {
            if ((rc = walk_places(w, "floors", "Floor", &pl)))
                goto out;
        } else if (jc_eq(&key, "spaces")) {
            if ((rc = walk_places(w, "spaces", "Space", &pl)))
                goto out;
        } else if (jc_eq(&key, "zones")) {
            if ((rc = walk_places(w, "zones", "Zone", &pl)))
                goto out;
        } else if (jc_skip(&w->c)) {
            rc = proto(w, kind);
            goto out;
        }
    }
    if (r < 0) {
        rc = proto(w, kind);
        goto out;
    }
    /* only a discovery needs the place's own id (a read matches points by theirs) */
    if (w->discover && !pl.has_id) {
        if (id_bad)
            malformed(w, &pl, "id %s; the place is skipped", id_bad);
        else if (id_type)
            malformed(w, &pl, "id is %s, not a string; the place is skipped", id_type);
        else
            malformed(w, &pl, "has no id; the place is skipped");
    }
    if (w->discover)
        rc = finish_place(w, &pl);
out:
    free(pl.pts);
    return rc;
}

/* The list `list` of places of kind under parent (NULL: the buildings). */
static int walk_places(struct walk *w, const char *list, const char *kind,
                       const struct place *parent)
{
    int r, rc;

    if (jc_peek(&w->c) == JC_NULL)
        return jc_lit(&w->c) ? proto(w, kind) : 0;
    if (jc_peek(&w->c) != JC_ARR && parent) {
        malformed(w, parent, "%s is %s, not a list; skipped", list, jtype(&w->c));
        return skip_bad(w, list);
    }
    if (jc_arr_enter(&w->c))
        return proto(w, kind);
    for (size_t k = 0; (r = jc_arr_next(&w->c)) == 1; k++)
        if ((rc = walk_place(w, list, kind, parent, k)))
            return rc;
    return r < 0 ? proto(w, kind) : 0;
}

/* The first message of a top-level "errors" array into err. */
static int walk_errors(struct walk *w, int *had)
{
    struct jc_str key, msg;
    char text[300] = "";
    int r, r2, n = 0;

    if (jc_peek(&w->c) == JC_NULL)
        return jc_lit(&w->c) ? proto(w, "errors") : 0;
    if (jc_arr_enter(&w->c))
        return proto(w, "errors");
    while ((r = jc_arr_next(&w->c)) == 1) {
        n++;
        if (jc_peek(&w->c) != JC_OBJ) {
            if (jc_skip(&w->c))
                return proto(w, "errors");
            continue;
        }
        if (jc_obj_enter(&w->c))
            return proto(w, "errors");
        while ((r2 = jc_obj_key(&w->c, &key)) == 1) {
            if (jc_eq(&key, "message") && jc_peek(&w->c) == JC_STR && !text[0]) {
                if (jc_str(&w->c, &msg) || jc_unescape(&msg, text, sizeof(text)) < 0)
                    snprintf(text, sizeof(text), "(unreadable message)");
            } else if (jc_skip(&w->c)) {
                return proto(w, "errors");
            }
        }
        if (r2 < 0)
            return proto(w, "errors");
    }
    if (r < 0)
        return proto(w, "errors");
    if (n) {
        *had = 1;
        osc_err_set(w->err, OSC_EPROTO, "Mapped GraphQL error: %s%s",
                    text[0] ? text : "(no message)", n > 1 ? " (and more)" : "");
    }
    return 0;
}

int osc_mapped_parse(struct osc_mapped_topo *t, const char *json, size_t len, int discover,
                     struct osc_err *err)
{
    struct walk w;
    struct jc_str key, k2;
    int r, r2, rc = 0, had_errors = 0, had_data = 0;

    memset(&w, 0, sizeof(w));
    w.t = t;
    w.discover = discover;
    w.err = err;
    jc_init(&w.c, json, len);
    if (jc_obj_enter(&w.c))
        return proto(&w, "not a JSON object");
    while ((r = jc_obj_key(&w.c, &key)) == 1) {
        if (jc_eq(&key, "errors")) {
            if ((rc = walk_errors(&w, &had_errors)))
                return rc;
        } else if (jc_eq(&key, "data") && jc_peek(&w.c) == JC_OBJ) {
            had_data = 1;
            if (jc_obj_enter(&w.c))
                return proto(&w, "data");
            while ((r2 = jc_obj_key(&w.c, &k2)) == 1) {
                if (jc_eq(&k2, "buildings")) {
                    if ((rc = walk_places(&w, "buildings", "Building", NULL)))
                        return rc;
                } else if (jc_skip(&w.c)) {
                    return proto(&w, "data");
                }
            }
            if (r2 < 0)
                return proto(&w, "data");
        } else if (jc_skip(&w.c)) {
            return proto(&w, "response");
        }
    }
    if (r < 0)
        return proto(&w, "response");
    if (jc_peek(&w.c) != JC_END)
        return proto(&w, "trailing data after the JSON object");
    if (had_errors)
        return OSC_EPROTO; /* err was filled by walk_errors */
    if (!had_data)
        return osc_err_set(err, OSC_EPROTO, "Mapped response has no data");
    return 0;
}

/* ---- fetch ------------------------------------------------------------- */

int osc_mapped_fetch(struct osc_http *h, const struct osc_conf_mapped *m, size_t max_response,
                     const char *const *ids, size_t n, int discover, struct osc_mapped_topo *t,
                     int64_t *retry_after_ms, struct osc_err *err)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          "Accept: application/json", NULL};
    struct osc_http_request req = {0};
    struct osc_http_response resp;
    struct osc_buf body;
    char what[160];
    int rc;

    *retry_after_ms = -1;
    osc_buf_init(&body, 1024 * 1024);
    osc_http_response_init(&resp);
    if (n == 1)
        snprintf(what, sizeof(what), "building %.120s", ids[0]);
    else
        snprintf(what, sizeof(what), "%zu buildings", n);
    if ((rc = osc_mapped_query(ids, n, discover, &body))) {
        osc_err_set(err, rc, "%s: a building id cannot be put in a query", what);
        goto out;
    }
    req.method = "POST";
    req.url = m->url;
    req.headers = headers;
    req.auth = OSC_HTTP_AUTH_MAPPED;
    req.secret = m->token;
    req.body = body.data;
    req.body_len = body.len;
    req.timeout_ms = m->timeout_ms;
    req.max_response = max_response;
    rc = osc_http_perform(h, &req, &resp, err);
    *retry_after_ms = resp.retry_after_ms;
    if (rc) {
        rc = resp.outcome == OSC_HTTP_RETRY ? OSC_EUNAVAIL : OSC_EREJECTED;
        err->code = rc;
        goto out;
    }
    if (resp.status == 401 || resp.status == 403) {
        rc = osc_err_set(err, OSC_EAUTH, "Mapped refused the token (HTTP %ld): check mapped.token",
                         resp.status);
        err->status = (int)resp.status;
        goto out;
    }
    if (resp.outcome != OSC_HTTP_SENT) {
        rc = osc_err_set(err, resp.outcome == OSC_HTTP_RETRY ? OSC_EUNAVAIL : OSC_EREJECTED,
                         "Mapped answered HTTP %ld for %s", resp.status, what);
        err->status = (int)resp.status;
        OSC_LOG_DEBUG("presence", "Mapped body: %.300s", osc_buf_str(&resp.body));
        goto out;
    }
    if (resp.truncated) {
        rc = osc_err_set(err, OSC_ETOOBIG,
                         "Mapped response for %s exceeds presence.max_response (%zu bytes)", what,
                         max_response);
        goto out;
    }
    rc = osc_mapped_parse(t, resp.body.data ? resp.body.data : "", resp.body.len, discover, err);
out:
    osc_http_response_free(&resp);
    osc_buf_free(&body);
    return rc;
}
