/*
 * directory.c - the simulated OfficeSpace employee directory: per-source
 * staging (REST employee_batch_imports) and the live directory it is
 * committed into (POST employee_directory), upserting by EmployeeId.
 *
 * Every employee belongs to at most one source: the source of the commit
 * that created or last updated it (none for employees created through
 * POST /api/1/employees or seeded without one). In replace mode (the
 * default) a commit makes the source's staging its whole part of the
 * directory: employees of that source missing from the staging are
 * deactivated (kept, with their id, but no longer listed); a later commit
 * that stages them again reactivates them. In upsert mode a commit never
 * deactivates anyone.
 *
 * Sized for a million records: staged and live records are kept as compact
 * JSON text (not jansson trees, which cost about five times more), the
 * live directory is an array indexed by id - 1, and client_employee_id ->
 * id is an open-addressing hash table, so staging, commit and look-ups are
 * O(record). A live record holds only the fields that were set, in the
 * REST's snake_case; sim_dir_render() adds the fixed REST shape around it.
 * Caps (SIM_DIR_MAX_*) bound memory; past them calls fail with OSC_ETOOBIG
 * and change nothing. The caller holds the simulator mutex.
 */
#include "sim_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/buf.h"
#include "osc/err.h"

#define SIM_DIR_MAX_STAGED  20000000u
#define SIM_DIR_MAX_LIVE    20000000u
#define SIM_DIR_MAX_SOURCES 1000u

struct staged_rec {
    char *key;  /* EmployeeId (or Email) */
    char *json; /* the record as received, compact */
};

struct source {
    char *name;
    struct staged_rec *v;
    size_t n, alloc;
    size_t commits; /* commits applied for this source */
};

struct emp {
    char *cid;      /* client_employee_id; NULL when unset */
    char *fields;   /* compact JSON object of the set fields; NULL: deleted */
    uint32_t stamp; /* the commit that last touched it (see sim_dir_commit) */
    uint16_t src;   /* 1 + index into sim_dir.src; 0: no source */
    uint8_t active; /* 0: deactivated by a replacing commit */
};

struct slot {
    const char *key; /* borrowed from emps[id - 1].cid; NULL empty; TOMB deleted */
    size_t id;
};

struct sim_dir {
    enum osc_sim_import_mode mode;
    uint32_t commit_seq; /* stamps of the commits so far */
    struct source *src;
    size_t nsrc;
    size_t staged_total;
    struct emp *emps;
    size_t nemps, emps_alloc, live; /* live: active employees */
    struct slot *tab;
    size_t tab_size, tab_used, tab_live; /* used counts tombstones, live does not */
    size_t *mark;                        /* sim_dir_begin(): staged count per source */
    size_t mark_nsrc, mark_total;
};

static const char TOMB_MARK;
#define TOMB (&TOMB_MARK)

/* ---- hash table ------------------------------------------------------------ */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

/* The slot holding key, or NULL. */
static struct slot *tab_lookup(const struct sim_dir *d, const char *key)
{
    size_t mask = d->tab_size - 1;

    if (!d->tab_size)
        return NULL;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        struct slot *s = &d->tab[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && strcmp(s->key, key) == 0)
            return s;
    }
}

/* Where key goes: its slot, else the first tombstone or empty slot on its probe path. */
static struct slot *tab_place(struct sim_dir *d, const char *key)
{
    size_t mask = d->tab_size - 1;
    struct slot *tomb = NULL;

    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        struct slot *s = &d->tab[i];
        if (!s->key)
            return tomb ? tomb : s;
        if (s->key == TOMB) {
            if (!tomb)
                tomb = s;
        } else if (strcmp(s->key, key) == 0) {
            return s;
        }
    }
}

/* Rehash into a table at least four times the live entries (drops tombstones). */
static int tab_grow(struct sim_dir *d)
{
    size_t ns = 1024, os = d->tab_size;
    struct slot *old = d->tab, *nt;

    while (ns < (d->tab_live + 1) * 4)
        ns *= 2;
    nt = calloc(ns, sizeof(*nt));
    if (!nt)
        return OSC_ENOMEM;
    d->tab = nt;
    d->tab_size = ns;
    d->tab_used = 0;
    for (size_t i = 0; i < os; i++)
        if (old[i].key && old[i].key != TOMB) {
            struct slot *s = tab_place(d, old[i].key);
            *s = old[i];
            d->tab_used++;
        }
    free(old);
    return 0;
}

/* Map key (borrowed: it must outlive the entry) to id, replacing any mapping. */
static int tab_put(struct sim_dir *d, const char *key, size_t id)
{
    struct slot *s;

    if ((d->tab_used + 1) * 2 > d->tab_size && tab_grow(d))
        return OSC_ENOMEM;
    s = tab_place(d, key);
    if (!s->key)
        d->tab_used++;
    if (!s->key || s->key == TOMB)
        d->tab_live++;
    s->key = key;
    s->id = id;
    return 0;
}

/* Forget key if it maps to id. */
static void tab_del(struct sim_dir *d, const char *key, size_t id)
{
    struct slot *s = tab_lookup(d, key);

    if (s && s->id == id) {
        s->key = TOMB;
        d->tab_live--;
    }
}

/* ---- life cycle ------------------------------------------------------------- */

struct sim_dir *sim_dir_new(enum osc_sim_import_mode mode)
{
    struct sim_dir *d = calloc(1, sizeof(struct sim_dir));

    if (d)
        d->mode = mode;
    return d;
}

static void source_clear(struct source *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].key);
        free(s->v[i].json);
    }
    free(s->v);
    s->v = NULL;
    s->n = s->alloc = 0;
}

void sim_dir_free(struct sim_dir *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nsrc; i++) {
        source_clear(&d->src[i]);
        free(d->src[i].name);
    }
    free(d->src);
    for (size_t i = 0; i < d->nemps; i++) {
        free(d->emps[i].cid);
        free(d->emps[i].fields);
    }
    free(d->emps);
    free(d->tab);
    free(d->mark);
    free(d);
}

/* ---- staging -------------------------------------------------------------------- */

static struct source *find_source(struct sim_dir *d, const char *name, int create)
{
    struct source *p;

    for (size_t i = 0; i < d->nsrc; i++)
        if (strcmp(d->src[i].name, name) == 0)
            return &d->src[i];
    if (!create || d->nsrc >= SIM_DIR_MAX_SOURCES)
        return NULL;
    p = realloc(d->src, (d->nsrc + 1) * sizeof(*p));
    if (!p)
        return NULL;
    d->src = p;
    p = &d->src[d->nsrc];
    memset(p, 0, sizeof(*p));
    if (!(p->name = strdup(name)))
        return NULL;
    d->nsrc++;
    return p;
}

int sim_dir_stage_text(struct sim_dir *d, const char *source, const char *key, char *json)
{
    struct source *s;
    char *k;

    if (d->staged_total >= SIM_DIR_MAX_STAGED)
        return OSC_ETOOBIG;
    if (!(s = find_source(d, source, 1)))
        return OSC_ENOMEM;
    if (s->n == s->alloc) {
        size_t na = s->alloc ? s->alloc * 2 : 256;
        struct staged_rec *p = realloc(s->v, na * sizeof(*p));
        if (!p)
            return OSC_ENOMEM;
        s->v = p;
        s->alloc = na;
    }
    if (!(k = strdup(key)))
        return OSC_ENOMEM;
    s->v[s->n].key = k;
    s->v[s->n].json = json;
    s->n++;
    d->staged_total++;
    return 0;
}

int sim_dir_stage(struct sim_dir *d, const char *source, const char *key, json_t *rec)
{
    char *j = json_dumps(rec, JSON_COMPACT);
    int rc = j ? sim_dir_stage_text(d, source, key, j) : OSC_ENOMEM;

    if (rc)
        free(j);
    return rc;
}

int sim_dir_begin(struct sim_dir *d)
{
    free(d->mark);
    d->mark = malloc((d->nsrc ? d->nsrc : 1) * sizeof(*d->mark));
    if (!d->mark)
        return OSC_ENOMEM;
    for (size_t i = 0; i < d->nsrc; i++)
        d->mark[i] = d->src[i].n;
    d->mark_nsrc = d->nsrc;
    d->mark_total = d->staged_total;
    return 0;
}

void sim_dir_undo(struct sim_dir *d)
{
    if (!d->mark)
        return;
    for (size_t i = 0; i < d->nsrc; i++) {
        struct source *s = &d->src[i];
        size_t keep = i < d->mark_nsrc ? d->mark[i] : 0;
        for (size_t k = keep; k < s->n; k++) {
            free(s->v[k].key);
            free(s->v[k].json);
        }
        s->n = keep;
        if (i >= d->mark_nsrc) {
            source_clear(s);
            free(s->name);
        }
    }
    d->nsrc = d->mark_nsrc;
    d->staged_total = d->mark_total;
    sim_dir_end(d);
}

void sim_dir_end(struct sim_dir *d)
{
    free(d->mark);
    d->mark = NULL;
}

size_t sim_dir_clear(struct sim_dir *d, const char *source)
{
    struct source *s = find_source(d, source, 0);
    size_t n = s ? s->n : 0;

    if (s) {
        d->staged_total -= s->n;
        source_clear(s);
    }
    return n;
}

size_t sim_dir_staged(const struct sim_dir *d) { return d->staged_total; }
size_t sim_dir_live(const struct sim_dir *d) { return d->live; }

/* ---- live records ------------------------------------------------------------------ */

/* "WorkPhone" -> "work_phone", "Udf3" -> "udf3", "imageData" -> "image_data". */
static void snake(const char *k, char *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; k[i] && n + 2 < cap; i++) {
        unsigned char c = (unsigned char)k[i];
        if (isupper(c)) {
            if (i > 0 && n > 0 && out[n - 1] != '_' && !isupper((unsigned char)k[i - 1]))
                out[n++] = '_';
            out[n++] = (char)tolower(c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
}

/*
 * Merge a batch record (PascalCase) or a REST record (snake_case) into
 * fields. Source is not a field: it is the employee's membership (struct
 * emp.src), set by commits only.
 */
static void apply(json_t *fields, json_t *rec)
{
    const char *k;
    json_t *v;

    json_object_foreach(rec, k, v)
    {
        char sk[96];
        if (strcmp(k, "EmployeeId") == 0 || strcmp(k, "employeeId") == 0) {
            snprintf(sk, sizeof(sk), "client_employee_id");
        } else if (strcmp(k, "ImageData") == 0 || strcmp(k, "imageData") == 0 ||
                   strcmp(k, "image_data") == 0) {
            /* photos are large: keep their size, not their bytes */
            json_object_set_new(
                fields, "image_data_bytes",
                json_integer(json_is_string(v) ? (json_int_t)json_string_length(v) : 0));
            continue;
        } else if (strcmp(k, "id") == 0 || strcmp(k, "url") == 0 || strcmp(k, "active") == 0 ||
                   strcmp(k, "Source") == 0 || strcmp(k, "source") == 0) {
            continue;
        } else {
            snake(k, sk, sizeof(sk));
        }
        json_object_set(fields, sk, v);
    }
    if (!json_is_string(json_object_get(fields, "client_employee_id")) &&
        json_is_string(json_object_get(fields, "email")))
        json_object_set(fields, "client_employee_id", json_object_get(fields, "email"));
}

/* 1 + the index of source name, or 0 when there is no such source. */
static uint16_t source_ref(const struct sim_dir *d, const char *name)
{
    for (size_t i = 0; name && i < d->nsrc; i++)
        if (strcmp(d->src[i].name, name) == 0)
            return (uint16_t)(i + 1);
    return 0;
}

int64_t sim_dir_find(const struct sim_dir *d, const char *cid)
{
    const struct slot *s = cid ? tab_lookup(d, cid) : NULL;

    return s ? (int64_t)s->id : -1;
}

int sim_dir_exists(const struct sim_dir *d, int64_t id)
{
    return id >= 1 && (size_t)id <= d->nemps && d->emps[id - 1].fields;
}

/* Store fields (JSON object) as employee id's record; keeps the index in step. */
static int store(struct sim_dir *d, size_t id, json_t *fields)
{
    struct emp *e = &d->emps[id - 1];
    const char *cid = json_string_value(json_object_get(fields, "client_employee_id"));
    char *text = json_dumps(fields, JSON_COMPACT), *c = NULL;

    if (!text || (cid && !(c = strdup(cid)))) {
        free(text);
        return OSC_ENOMEM;
    }
    if (e->cid)
        tab_del(d, e->cid, id);
    if (c && tab_put(d, c, id)) {
        /* the old key was dropped from the index; put it back as it was */
        if (e->cid)
            tab_put(d, e->cid, id);
        free(text);
        free(c);
        return OSC_ENOMEM;
    }
    free(e->cid);
    free(e->fields);
    e->cid = c;
    e->fields = text;
    return 0;
}

/* Create an active employee of source ref (0: none): its id, or OSC_E* (< 0). */
static int64_t create(struct sim_dir *d, json_t *rec, uint16_t ref)
{
    json_t *fields;
    int rc;

    if (d->nemps >= SIM_DIR_MAX_LIVE)
        return OSC_ETOOBIG;
    if (d->nemps == d->emps_alloc) {
        size_t na = d->emps_alloc ? d->emps_alloc * 2 : 1024;
        struct emp *p = realloc(d->emps, na * sizeof(*p));
        if (!p)
            return OSC_ENOMEM;
        d->emps = p;
        d->emps_alloc = na;
    }
    if (!(fields = json_object()))
        return OSC_ENOMEM;
    apply(fields, rec);
    memset(&d->emps[d->nemps], 0, sizeof(d->emps[0]));
    d->nemps++;
    if ((rc = store(d, d->nemps, fields))) {
        d->nemps--;
        json_decref(fields);
        return rc;
    }
    d->emps[d->nemps - 1].src = ref;
    d->emps[d->nemps - 1].active = 1;
    d->live++;
    json_decref(fields);
    return (int64_t)d->nemps;
}

int64_t sim_dir_create(struct sim_dir *d, json_t *rec, const char *source)
{
    uint16_t ref = 0;

    if (source) {
        struct source *s = find_source(d, source, 1);
        if (!s)
            return OSC_ENOMEM;
        ref = (uint16_t)(s - d->src + 1);
    }
    return create(d, rec, ref);
}

int sim_dir_update(struct sim_dir *d, int64_t id, json_t *rec)
{
    json_t *fields;
    int rc;

    if (!sim_dir_exists(d, id))
        return OSC_ENOTFOUND;
    fields = json_loads(d->emps[id - 1].fields, 0, NULL);
    if (!fields)
        return OSC_ENOMEM;
    apply(fields, rec);
    rc = store(d, (size_t)id, fields);
    json_decref(fields);
    return rc;
}

int sim_dir_delete(struct sim_dir *d, int64_t id)
{
    struct emp *e;

    if (!sim_dir_exists(d, id))
        return OSC_ENOTFOUND;
    e = &d->emps[id - 1];
    if (e->cid)
        tab_del(d, e->cid, (size_t)id);
    free(e->cid);
    free(e->fields);
    e->cid = e->fields = NULL;
    if (e->active)
        d->live--;
    e->active = 0;
    e->src = 0;
    return 0;
}

/*
 * Upsert every staged record, each one stamped with this commit; then, in
 * replace mode and only when every upsert worked, deactivate the source's
 * active employees that carry an older stamp (not in this staging).
 */
int sim_dir_commit(struct sim_dir *d, const char *source, struct sim_dir_counts *c)
{
    struct source *s = find_source(d, source, 1);
    uint16_t ref;
    uint32_t stamp;
    int rc = 0;

    memset(c, 0, sizeof(*c));
    if (!s)
        return OSC_ETOOBIG; /* past SIM_DIR_MAX_SOURCES: nothing applied */
    ref = (uint16_t)(s - d->src + 1);
    stamp = ++d->commit_seq;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        json_t *rec = json_loads(s->v[i].json, 0, NULL);
        int64_t id = sim_dir_find(d, s->v[i].key);
        if (!rec) {
            rc = OSC_ENOMEM;
            break;
        }
        if (id > 0) {
            struct emp *e = &d->emps[id - 1];
            rc = sim_dir_update(d, id, rec);
            if (rc == 0 && !e->active) {
                e->active = 1;
                d->live++;
                c->reactivated++;
            }
            c->updated++;
        } else {
            id = create(d, rec, ref);
            rc = id < 0 ? (int)id : 0;
            c->created++;
        }
        if (rc == 0) {
            d->emps[id - 1].src = ref;
            d->emps[id - 1].stamp = stamp;
        }
        json_decref(rec);
    }
    if (rc == 0 && d->mode == OSC_SIM_IMPORT_REPLACE)
        for (size_t i = 0; i < d->nemps; i++) {
            struct emp *e = &d->emps[i];
            if (e->fields && e->active && e->src == ref && e->stamp != stamp) {
                e->active = 0;
                d->live--;
                c->deactivated++;
            }
        }
    if (rc == 0)
        s->commits++;
    /* committed records leave staging, as the trigger "migrates" them */
    d->staged_total -= s->n;
    source_clear(s);
    return rc;
}

json_t *sim_dir_render(const struct sim_dir *d, int64_t id)
{
    char url[64];
    const struct emp *x;
    json_t *e, *fields;

    if (!sim_dir_exists(d, id))
        return NULL;
    x = &d->emps[id - 1];
    fields = json_loads(x->fields, 0, NULL);
    snprintf(url, sizeof(url), "/api/1/employees/%lld", (long long)id);
    e = json_pack("{s:I,s:n,s:s,s:s,s:n,s:n,s:n,s:n,s:n}", "id", (json_int_t)id,
                  "client_employee_id", "first_name", "", "last_name", "", "email", "title",
                  "department", "bio", "image_source_fingerprint");
    if (!e || !fields) {
        json_decref(e);
        json_decref(fields);
        return NULL;
    }
    json_object_update(e, fields);
    json_decref(fields);
    json_object_set_new(e, "source", x->src ? json_string(d->src[x->src - 1].name) : json_null());
    json_object_set_new(e, "active", json_boolean(x->active));
    json_object_set_new(e, "seating", json_pack("{s:s,s:[]}", "seated", "not seated", "seat_urls"));
    json_object_set_new(e, "online_seating", json_pack("{s:[]}", "seat_urls"));
    json_object_set_new(e, "url", json_string(url));
    return e;
}

static int add_rendered(const struct sim_dir *d, size_t id, struct osc_buf *out)
{
    json_t *e = sim_dir_render(d, (int64_t)id);
    char *t = e ? json_dumps(e, JSON_COMPACT) : NULL;
    int rc = t ? osc_buf_adds(out, t) : OSC_ENOMEM;

    free(t);
    json_decref(e);
    return rc;
}

/* Does employee i (0-based) pass the list filters? ref 0 matches any source. */
static int listed(const struct sim_dir *d, size_t i, int by_source, uint16_t ref)
{
    const struct emp *e = &d->emps[i];

    return e->fields && e->active && (!by_source || (ref && e->src == ref));
}

int sim_dir_list(const struct sim_dir *d, const char *cid, const char *source, struct osc_buf *out)
{
    uint16_t ref = source_ref(d, source);
    size_t n = 0, total = 0;
    int rc;

    if (cid) {
        int64_t id = sim_dir_find(d, cid);
        if (id < 0 || !listed(d, (size_t)id - 1, source != NULL, ref))
            return osc_buf_adds(out, "{\"count\":0,\"response\":[]}");
        if ((rc = osc_buf_adds(out, "{\"count\":1,\"response\":[")) ||
            (rc = add_rendered(d, (size_t)id, out)))
            return rc;
        return osc_buf_adds(out, "]}");
    }
    if (!source)
        total = d->live;
    else
        for (size_t i = 0; i < d->nemps; i++)
            total += (size_t)listed(d, i, 1, ref);
    if ((rc = osc_buf_printf(out, "{\"count\":%zu,\"response\":[", total)))
        return rc;
    for (size_t i = 0; i < d->nemps && n < total; i++) {
        if (!listed(d, i, source != NULL, ref))
            continue;
        if ((n++ && (rc = osc_buf_addc(out, ','))) || (rc = add_rendered(d, i + 1, out)))
            return rc;
    }
    return osc_buf_adds(out, "]}");
}

static int add_json_string(struct osc_buf *out, const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    int rc = t ? osc_buf_adds(out, t) : OSC_ENOMEM;

    free(t);
    json_decref(j);
    return rc;
}

/* "name":[...] of the employees whose active flag is active: ids or rendered. */
static int add_employees(const struct sim_dir *d, const char *name, int active, int detail,
                         struct osc_buf *out)
{
    int rc;

    if ((rc = osc_buf_printf(out, ",\"%s\":[", name)))
        return rc;
    for (size_t i = 1, n = 0; i <= d->nemps; i++) {
        const struct emp *e = &d->emps[i - 1];
        if (!e->fields || e->active != active)
            continue;
        if ((n++ && (rc = osc_buf_addc(out, ','))) ||
            (rc = detail == 1 ? add_json_string(out, e->cid) : add_rendered(d, i, out)))
            return rc;
    }
    return osc_buf_addc(out, ']');
}

/* ,"sources":{name:{staged, live, deactivated, commits}} */
static int add_sources(const struct sim_dir *d, struct osc_buf *out)
{
    size_t *cnt = calloc(2 * (d->nsrc ? d->nsrc : 1), sizeof(*cnt));
    int rc;

    if (!cnt)
        return OSC_ENOMEM;
    for (size_t i = 0; i < d->nemps; i++) {
        const struct emp *e = &d->emps[i];
        if (e->fields && e->src)
            cnt[2 * (e->src - 1) + (e->active ? 0 : 1)]++;
    }
    rc = osc_buf_adds(out, ",\"sources\":{");
    for (size_t i = 0; i < d->nsrc && rc == 0; i++)
        if ((i && (rc = osc_buf_addc(out, ','))) || (rc = add_json_string(out, d->src[i].name)) ||
            (rc = osc_buf_printf(
                 out, ":{\"staged\":%zu,\"live\":%zu,\"deactivated\":%zu,\"commits\":%zu}",
                 d->src[i].n, cnt[2 * i], cnt[2 * i + 1], d->src[i].commits)))
            break;
    if (rc == 0)
        rc = osc_buf_addc(out, '}');
    free(cnt);
    return rc;
}

int sim_dir_view(const struct sim_dir *d, int detail, struct osc_buf *out)
{
    size_t deactivated = 0;
    int rc;

    for (size_t i = 0; i < d->nemps; i++)
        deactivated += d->emps[i].fields && !d->emps[i].active;
    if ((rc = osc_buf_printf(out,
                             "{\"import_mode\":\"%s\",\"live_count\":%zu,\"deactivated_count\":%zu,"
                             "\"staged_total\":%zu,\"staged_counts\":{",
                             d->mode == OSC_SIM_IMPORT_REPLACE ? "replace" : "upsert", d->live,
                             deactivated, d->staged_total)))
        return rc;
    for (size_t i = 0; i < d->nsrc; i++)
        if ((i && (rc = osc_buf_addc(out, ','))) || (rc = add_json_string(out, d->src[i].name)) ||
            (rc = osc_buf_printf(out, ":%zu", d->src[i].n)))
            return rc;
    if ((rc = osc_buf_adds(out, "}")) || (rc = add_sources(d, out)))
        return rc;
    if (detail == 0)
        return osc_buf_adds(out, "}");
    if ((rc = osc_buf_adds(out, ",\"staged\":{")))
        return rc;
    for (size_t i = 0; i < d->nsrc; i++) {
        const struct source *s = &d->src[i];
        if ((i && (rc = osc_buf_addc(out, ','))) || (rc = add_json_string(out, s->name)) ||
            (rc = osc_buf_adds(out, ":[")))
            return rc;
        for (size_t k = 0; k < s->n; k++)
            if ((k && (rc = osc_buf_addc(out, ','))) ||
                (rc = detail == 1 ? add_json_string(out, s->v[k].key)
                                  : osc_buf_adds(out, s->v[k].json)))
                return rc;
        if ((rc = osc_buf_addc(out, ']')))
            return rc;
    }
    if ((rc = osc_buf_addc(out, '}')) || (rc = add_employees(d, "live", 1, detail, out)) ||
        (rc = add_employees(d, "deactivated", 0, detail, out)))
        return rc;
    return osc_buf_addc(out, '}');
}
