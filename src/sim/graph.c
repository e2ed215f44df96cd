/*
 * graph.c - the simulated Mapped graph: scenario loading (JSON or YAML),
 * point value evolution, the built-in demo and the large generator.
 *
 * The loader copies everything it keeps out of the scenario JSON, so the
 * graph owns all its strings and arrays (freed by sim_graph_free()). Places,
 * points and things refer to each other by index, never by pointer, so the
 * arrays may grow while loading.
 */
#include "graph.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "osc/parse.h"

#define MAX_SCENARIO_BYTES (256L * 1024 * 1024)
#define YAML_MAX_DEPTH     64

static const char *const kind_names[] = {"Site", "Building", "Floor", "Space", "Zone"};
static const char *const vkind_names[] = {"float64", "float32", "int64", "int32",
                                          "uint64",  "uint32",  "bool",  "string"};
static const char *const urn_types[] = {"site", "floor", "room", "neighborhood", "desk"};

const char *sim_kind_name(enum sim_kind k) { return kind_names[k]; }
const char *sim_vkind_name(enum sim_vkind k) { return vkind_names[k]; }

int sim_vkind_parse(const char *s, enum sim_vkind *out)
{
    static const struct {
        const char *name;
        enum sim_vkind k;
    } alias[] = {
        {"double", SIM_V_FLOAT64},
        {"float", SIM_V_FLOAT32},
        {"int", SIM_V_INT64},
        {"boolean", SIM_V_BOOL},
        {"float64Value", SIM_V_FLOAT64},
        {"float32Value", SIM_V_FLOAT32},
        {"int64Value", SIM_V_INT64},
        {"int32Value", SIM_V_INT32},
        {"uint64Value", SIM_V_UINT64},
        {"uint32Value", SIM_V_UINT32},
        {"boolValue", SIM_V_BOOL},
        {"stringValue", SIM_V_STRING},
    };
    for (size_t i = 0; i < sizeof(vkind_names) / sizeof(vkind_names[0]); i++)
        if (strcasecmp(s, vkind_names[i]) == 0) {
            *out = (enum sim_vkind)i;
            return 0;
        }
    for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
        if (strcasecmp(s, alias[i].name) == 0) {
            *out = alias[i].k;
            return 0;
        }
    return -1;
}

int sim_urn_parse(const char *value, int *type, int64_t *id)
{
    static const char prefix[] = "urn:officespace:";
    const char *p, *colon;

    if (!value || strncmp(value, prefix, sizeof(prefix) - 1) != 0)
        return -1;
    p = value + sizeof(prefix) - 1;
    colon = strchr(p, ':');
    if (!colon || strncmp(colon, ":id:", 4) != 0)
        return -1;
    for (int i = 0; i < 5; i++)
        if (strlen(urn_types[i]) == (size_t)(colon - p) &&
            strncmp(p, urn_types[i], (size_t)(colon - p)) == 0) {
            const char *d = colon + 4;
            size_t n = strlen(d);
            if (n == 0 || n > 18 || strspn(d, "0123456789") != n)
                return -1;
            if (osc_parse_int(d, 1, INT64_MAX, id))
                return -1;
            *type = i;
            return 0;
        }
    return -1;
}

/* ---- small helpers ------------------------------------------------------ */

static int idx_push(size_t **arr, size_t *n, size_t v)
{
    if (*n == 0 || (*n & (*n - 1)) == 0) {
        size_t na = *n < 4 ? 4 : *n * 2;
        size_t *p = realloc(*arr, na * sizeof(*p));
        if (!p)
            return OSC_ENOMEM;
        *arr = p;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* Grow an array of structs so index n is valid; elements are zeroed. */
static int grow(void **arr, size_t *alloc, size_t n, size_t size)
{
    if (n < *alloc)
        return 0;
    size_t na = *alloc ? *alloc * 2 : 64;
    while (na <= n)
        na *= 2;
    char *p = realloc(*arr, na * size);
    if (!p)
        return OSC_ENOMEM;
    memset(p + *alloc * size, 0, (na - *alloc) * size);
    *arr = p;
    *alloc = na;
    return 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static const char *jget_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A duration given as "30s"/"250ms" or a number of seconds. */
static int jget_duration(json_t *o, const char *key, int64_t def, int64_t *out)
{
    json_t *v = json_object_get(o, key);

    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (s < -1e9 || s > 1e9)
            return -1;
        *out = (int64_t)(s * 1000.0);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (*s == '-') {
            int64_t ms;
            if (osc_parse_duration_ms(s + 1, 0, INT64_C(1) << 40, &ms))
                return -1;
            *out = -ms;
            return 0;
        }
        return osc_parse_duration_ms(s, 0, INT64_C(1) << 40, out) ? -1 : 0;
    }
    return -1;
}

static int sample_from_json(json_t *v, struct sim_sample *s)
{
    s->has_value = 0;
    s->num = 0;
    free(s->str);
    s->str = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        s->num = json_number_value(v);
    } else if (json_is_boolean(v)) {
        s->num = json_is_true(v) ? 1 : 0;
    } else if (json_is_string(v)) {
        s->str = strdup(json_string_value(v));
        if (!s->str)
            return OSC_ENOMEM;
        s->num = strtod(s->str, NULL);
    } else {
        return OSC_EDATA;
    }
    s->has_value = 1;
    return 0;
}

static void idlist_free(struct sim_idlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].type);
        free(l->v[i].id);
        free(l->v[i].value);
    }
    free(l->v);
}

/* ---- loading ------------------------------------------------------------ */

struct loader {
    struct sim_graph *g;
    size_t place_alloc, point_alloc, thing_alloc;
    json_t *point_index; /* id -> index, detects duplicates */
    size_t ident_seq;
    struct osc_err *err;
};

static int load_identities(struct loader *L, json_t *arr, struct sim_idlist *out, const char *owner)
{
    size_t i;
    json_t *it;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return osc_err_set(L->err, OSC_EDATA, "scenario: %s: identities must be a list", owner);
    out->v = calloc(json_array_size(arr) ? json_array_size(arr) : 1, sizeof(*out->v));
    if (!out->v)
        return OSC_ENOMEM;
    json_array_foreach(arr, i, it)
    {
        struct sim_identity *id = &out->v[out->n];
        const char *type = "ExternalIdentity", *value;
        char buf[48];
        if (json_is_string(it)) {
            value = json_string_value(it);
            id->officespace = 1;
        } else if (json_is_object(it) && jget_str(it, "value")) {
            value = jget_str(it, "value");
            if (jget_str(it, "type"))
                type = jget_str(it, "type");
            id->officespace = !json_is_false(json_object_get(it, "officespace"));
        } else {
            return osc_err_set(L->err, OSC_EDATA,
                               "scenario: %s: identity %zu must be a string or {type, value}",
                               owner, i);
        }
        {
            static const char *const known[] = {"BACnetObjectId",        "BACnetVendorId",
                                                "EmailAddressIdentity",  "EmailIdentity",
                                                "ExternalIdentity",      "FloorLevelIdentity",
                                                "GenericIdentity",       "NameIdentity",
                                                "PostalAddressIdentity", "SpaceCode"};
            size_t k;
            for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
                if (strcmp(known[k], type) == 0)
                    break;
            if (k == sizeof(known) / sizeof(known[0]))
                return osc_err_set(L->err, OSC_EDATA, "scenario: %s: unknown identity type \"%s\"",
                                   owner, type);
        }
        snprintf(buf, sizeof(buf), "IDNT%06zu", ++L->ident_seq);
        id->type = strdup(type);
        id->value = strdup(value);
        id->id = strdup(json_string_value(json_object_get(it, "id")) ? jget_str(it, "id") : buf);
        out->n++;
        if (!id->type || !id->value || !id->id)
            return OSC_ENOMEM;
    }
    return 0;
}

static int load_point(struct loader *L, json_t *o, size_t place, size_t thing)
{
    struct sim_graph *g = L->g;
    struct sim_point *p;
    const char *id = jget_str(o, "id"), *vt;
    json_t *v;
    size_t idx = g->npoints;
    int rc;

    if (!json_is_object(o) || !id)
        return osc_err_set(L->err, OSC_EDATA, "scenario: every point needs an \"id\"");
    if (json_object_get(L->point_index, id))
        return osc_err_set(L->err, OSC_EDATA, "scenario: duplicate point id \"%s\"", id);
    if ((rc = grow((void **)&g->points, &L->point_alloc, idx, sizeof(*g->points))))
        return rc;
    g->npoints++;
    p = &g->points[idx];
    p->place = place;
    p->thing = thing;
    p->id = strdup(id);
    p->name = strdup(jget_str(o, "name") ? jget_str(o, "name") : id);
    p->exact_type = strdup(jget_str(o, "exactType") ? jget_str(o, "exactType") : "Point");
    p->description = dup_or_null(jget_str(o, "description"));
    p->mapping_key = dup_or_null(jget_str(o, "mappingKey"));
    p->unit = dup_or_null(jget_str(o, "unit"));
    if (!p->id || !p->name || !p->exact_type)
        return OSC_ENOMEM;
    if (json_object_set_new(L->point_index, id, json_integer((json_int_t)idx)))
        return OSC_ENOMEM;
    vt = jget_str(o, "valueType");
    p->vkind = SIM_V_FLOAT64;
    if (vt && sim_vkind_parse(vt, &p->vkind))
        return osc_err_set(L->err, OSC_EDATA, "scenario: point %s: unknown valueType \"%s\"", id,
                           vt);
    if ((rc = load_identities(L, json_object_get(o, "identities"), &p->ids, id)))
        return rc;
    p->seed = g->seed ^ (0x9E3779B97F4A7C15ULL * (idx + 1));
    if ((v = json_object_get(o, "random"))) {
        json_t *mn = json_object_get(v, "min"), *mx = json_object_get(v, "max");
        p->behave = SIM_B_RANDOM;
        p->min = json_is_number(mn) ? json_number_value(mn) : 0;
        p->max = json_is_number(mx) ? json_number_value(mx) : 1;
        p->random_float = json_is_true(json_object_get(v, "float"));
        if (jget_duration(v, "every", 30000, &p->every_ms) || p->every_ms <= 0 || p->max < p->min)
            return osc_err_set(L->err, OSC_EDATA,
                               "scenario: point %s: random needs min <= max and every > 0", id);
    } else if ((v = json_object_get(o, "cycle"))) {
        json_t *vals = json_object_get(v, "values"), *it;
        size_t i;
        p->behave = SIM_B_CYCLE;
        if (!json_is_array(vals) || json_array_size(vals) == 0 ||
            jget_duration(v, "every", 30000, &p->every_ms) || p->every_ms <= 0)
            return osc_err_set(L->err, OSC_EDATA,
                               "scenario: point %s: cycle needs values [..] and every > 0", id);
        p->steps = calloc(json_array_size(vals), sizeof(*p->steps));
        if (!p->steps)
            return OSC_ENOMEM;
        json_array_foreach(vals, i, it)
        {
            p->nsteps++;
            if ((rc = sample_from_json(it, &p->steps[i])))
                return rc == OSC_EDATA
                           ? osc_err_set(L->err, rc, "scenario: point %s: bad cycle value", id)
                           : rc;
        }
    } else if ((v = json_object_get(o, "steps"))) {
        json_t *it;
        size_t i;
        p->behave = SIM_B_STEPS;
        if (!json_is_array(v) || json_array_size(v) == 0)
            return osc_err_set(L->err, OSC_EDATA, "scenario: point %s: steps must be a list", id);
        p->steps = calloc(json_array_size(v), sizeof(*p->steps));
        if (!p->steps)
            return OSC_ENOMEM;
        json_array_foreach(v, i, it)
        {
            p->nsteps++;
            if (jget_duration(it, "at", 0, &p->steps[i].at_ms) ||
                (i > 0 && p->steps[i].at_ms < p->steps[i - 1].at_ms))
                return osc_err_set(L->err, OSC_EDATA,
                                   "scenario: point %s: step %zu needs a non-decreasing \"at\"", id,
                                   i);
            if ((rc = sample_from_json(json_object_get(it, "value"), &p->steps[i])))
                return rc == OSC_EDATA
                           ? osc_err_set(L->err, rc, "scenario: point %s: bad step value", id)
                           : rc;
        }
        if (jget_duration(o, "loop", 0, &p->loop_ms) || p->loop_ms < 0)
            return osc_err_set(L->err, OSC_EDATA, "scenario: point %s: bad loop", id);
    } else {
        const char *ts = jget_str(o, "timestamp");
        p->behave = SIM_B_FIXED;
        if ((rc = sample_from_json(json_object_get(o, "value"), &p->fixed)))
            return rc == OSC_EDATA ? osc_err_set(L->err, rc, "scenario: point %s: bad value", id)
                                   : rc;
        if (ts) {
            int64_t ms;
            if (osc_clock_parse_iso8601(ts, &ms))
                return osc_err_set(L->err, OSC_EDATA, "scenario: point %s: bad timestamp", id);
            p->fixed.at_ms = ms - g->start_wall_ms;
        } else if (jget_duration(o, "age", 0, &p->fixed.at_ms)) {
            return osc_err_set(L->err, OSC_EDATA, "scenario: point %s: bad age", id);
        } else {
            p->fixed.at_ms = -p->fixed.at_ms;
        }
    }
    if (place != SIM_NONE)
        return idx_push(&g->places[place].points, &g->places[place].npoints, idx);
    return idx_push(&g->things[thing].points, &g->things[thing].npoints, idx);
}

static int load_points(struct loader *L, json_t *arr, size_t place, size_t thing)
{
    size_t i;
    json_t *it;
    int rc;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return osc_err_set(L->err, OSC_EDATA, "scenario: points must be a list");
    json_array_foreach(arr, i, it)
    {
        if ((rc = load_point(L, it, place, thing)))
            return rc;
    }
    return 0;
}

static int load_place(struct loader *L, json_t *o, enum sim_kind kind, size_t parent, int depth);

static int load_children(struct loader *L, json_t *o, const char *key, enum sim_kind kind,
                         size_t parent, int depth)
{
    json_t *arr = json_object_get(o, key), *it;
    size_t i;
    int rc;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return osc_err_set(L->err, OSC_EDATA, "scenario: \"%s\" must be a list", key);
    json_array_foreach(arr, i, it)
    {
        if ((rc = load_place(L, it, kind, parent, depth + 1)))
            return rc;
    }
    return 0;
}

static int load_place(struct loader *L, json_t *o, enum sim_kind kind, size_t parent, int depth)
{
    struct sim_graph *g = L->g;
    struct sim_place *pl;
    const char *id = jget_str(o, "id");
    size_t idx = g->nplaces;
    json_t *level;
    int rc;

    if (depth > 8)
        return osc_err_set(L->err, OSC_EDATA, "scenario: places nested too deeply");
    if (!json_is_object(o) || !id)
        return osc_err_set(L->err, OSC_EDATA, "scenario: every %s needs an \"id\"",
                           kind_names[kind]);
    if ((rc = grow((void **)&g->places, &L->place_alloc, idx, sizeof(*g->places))))
        return rc;
    g->nplaces++;
    pl = &g->places[idx];
    pl->kind = kind;
    pl->parent = parent;
    pl->id = strdup(id);
    pl->name = strdup(jget_str(o, "name") ? jget_str(o, "name") : id);
    pl->description = dup_or_null(jget_str(o, "description"));
    pl->exact_type = strdup(jget_str(o, "exactType") ? jget_str(o, "exactType") : kind_names[kind]);
    if (!pl->id || !pl->name || !pl->exact_type)
        return OSC_ENOMEM;
    level = json_object_get(o, "level");
    if (json_is_integer(level)) {
        pl->level = (long)json_integer_value(level);
        pl->has_level = 1;
    }
    if (parent != SIM_NONE &&
        (rc = idx_push(&g->places[parent].kids, &g->places[parent].nkids, idx)))
        return rc;
    if ((rc = load_identities(L, json_object_get(o, "identities"), &g->places[idx].ids, id)))
        return rc;
    if ((rc = load_points(L, json_object_get(o, "points"), idx, SIM_NONE)))
        return rc;
    switch (kind) {
    case SIM_SITE: return load_children(L, o, "buildings", SIM_BUILDING, idx, depth);
    case SIM_BUILDING: return load_children(L, o, "floors", SIM_FLOOR, idx, depth);
    case SIM_FLOOR:
        if ((rc = load_children(L, o, "spaces", SIM_SPACE, idx, depth)))
            return rc;
        return load_children(L, o, "zones", SIM_ZONE, idx, depth);
    default: return 0;
    }
}

static size_t find_place(const struct sim_graph *g, const char *id)
{
    for (size_t i = 0; id && i < g->nplaces; i++)
        if (strcmp(g->places[i].id, id) == 0)
            return i;
    return SIM_NONE;
}

static int load_things(struct loader *L, json_t *arr)
{
    struct sim_graph *g = L->g;
    size_t i;
    json_t *it;
    int rc;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return osc_err_set(L->err, OSC_EDATA, "scenario: things must be a list");
    json_array_foreach(arr, i, it)
    {
        const char *id = jget_str(it, "id"), *loc = jget_str(it, "location");
        struct sim_thing *t;
        size_t idx = g->nthings;
        if (!id)
            return osc_err_set(L->err, OSC_EDATA, "scenario: every thing needs an \"id\"");
        if ((rc = grow((void **)&g->things, &L->thing_alloc, idx, sizeof(*g->things))))
            return rc;
        g->nthings++;
        t = &g->things[idx];
        t->id = strdup(id);
        t->name = strdup(jget_str(it, "name") ? jget_str(it, "name") : id);
        t->exact_type = strdup(jget_str(it, "exactType") ? jget_str(it, "exactType") : "Thing");
        t->description = dup_or_null(jget_str(it, "description"));
        t->mapping_key = dup_or_null(jget_str(it, "mappingKey"));
        if (!t->id || !t->name || !t->exact_type)
            return OSC_ENOMEM;
        t->place = find_place(g, loc);
        if (loc && t->place == SIM_NONE)
            return osc_err_set(L->err, OSC_EDATA, "scenario: thing %s: unknown location \"%s\"", id,
                               loc);
        if (t->place != SIM_NONE &&
            (rc = idx_push(&g->places[t->place].things, &g->places[t->place].nthings, idx)))
            return rc;
        if ((rc = load_identities(L, json_object_get(it, "identities"), &g->things[idx].ids, id)))
            return rc;
        if ((rc = load_points(L, json_object_get(it, "points"), SIM_NONE, idx)))
            return rc;
    }
    return 0;
}

int sim_graph_load(json_t *scenario, uint64_t seed, const struct osc_clock *clock,
                   struct sim_graph **out, struct osc_err *err)
{
    struct loader L;
    struct sim_graph *g = calloc(1, sizeof(*g));
    json_t *gen, *generated = NULL, *seedv;
    const char *dc;
    int rc = OSC_ENOMEM;

    *out = NULL;
    memset(&L, 0, sizeof(L));
    L.err = err;
    L.g = g;
    L.point_index = json_object();
    if (!g || !L.point_index)
        goto out;
    if (!json_is_object(scenario)) {
        rc = osc_err_set(err, OSC_EDATA, "scenario: the top level must be an object");
        goto out;
    }
    seedv = json_object_get(scenario, "seed");
    g->seed = json_is_integer(seedv) ? (uint64_t)json_integer_value(seedv) : seed;
    g->start_wall_ms = osc_clock_wall_ms(clock);
    g->start_mono_ms = osc_clock_mono_ms(clock);
    dc = jget_str(scenario, "dateCreated");
    g->date_created = strdup(dc ? dc : "2024-01-15T08:00:00.000");
    if (!g->date_created)
        goto out;
    gen = json_object_get(scenario, "generate");
    if (json_is_object(gen)) {
        json_t *l = json_object_get(gen, "locations"), *p = json_object_get(gen, "points");
        generated =
            sim_scenario_generate(json_is_integer(l) ? (long)json_integer_value(l) : 1000,
                                  json_is_integer(p) ? (long)json_integer_value(p) : 5000, g->seed);
        if (!generated)
            goto out;
        scenario = generated;
    }
    if ((rc = load_children(&L, scenario, "sites", SIM_SITE, SIM_NONE, 0)) ||
        (rc = load_children(&L, scenario, "buildings", SIM_BUILDING, SIM_NONE, 0)) ||
        (rc = load_things(&L, json_object_get(scenario, "things"))))
        goto out;
    if (json_is_object(json_object_get(scenario, "officespace")))
        g->officespace = json_deep_copy(json_object_get(scenario, "officespace"));
    *out = g;
    g = NULL;
    rc = 0;
out:
    if (rc == OSC_ENOMEM && err && !err->code)
        osc_err_set(err, rc, "scenario: out of memory");
    sim_graph_free(g);
    json_decref(L.point_index);
    json_decref(generated);
    return rc;
}

void sim_graph_free(struct sim_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nplaces; i++) {
        struct sim_place *p = &g->places[i];
        free(p->id);
        free(p->name);
        free(p->description);
        free(p->exact_type);
        idlist_free(&p->ids);
        free(p->kids);
        free(p->points);
        free(p->things);
    }
    for (size_t i = 0; i < g->npoints; i++) {
        struct sim_point *p = &g->points[i];
        free(p->id);
        free(p->name);
        free(p->description);
        free(p->exact_type);
        free(p->mapping_key);
        free(p->unit);
        free(p->fixed.str);
        for (size_t k = 0; k < p->nsteps; k++)
            free(p->steps[k].str);
        free(p->steps);
        free(p->override.str);
        idlist_free(&p->ids);
    }
    for (size_t i = 0; i < g->nthings; i++) {
        struct sim_thing *t = &g->things[i];
        free(t->id);
        free(t->name);
        free(t->description);
        free(t->exact_type);
        free(t->mapping_key);
        free(t->points);
        idlist_free(&t->ids);
    }
    free(g->places);
    free(g->points);
    free(g->things);
    free(g->date_created);
    json_decref(g->officespace);
    free(g);
}

/* ---- values ------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void from_sample(const struct sim_sample *s, int64_t ts, struct sim_value *out)
{
    out->has_value = s->has_value;
    out->num = s->num;
    out->str = s->str;
    out->ts_ms = ts;
}

void sim_point_value(const struct sim_graph *g, const struct sim_point *p, int64_t now_mono_ms,
                     struct sim_value *out)
{
    int64_t el = now_mono_ms - g->start_mono_ms;

    memset(out, 0, sizeof(*out));
    if (el < 0)
        el = 0;
    if (p->has_override) {
        from_sample(&p->override, p->override.at_ms, out);
        return;
    }
    switch (p->behave) {
    case SIM_B_FIXED: from_sample(&p->fixed, g->start_wall_ms + p->fixed.at_ms, out); return;
    case SIM_B_CYCLE: {
        int64_t k = el / p->every_ms;
        from_sample(&p->steps[(size_t)(k % (int64_t)p->nsteps)], g->start_wall_ms + k * p->every_ms,
                    out);
        return;
    }
    case SIM_B_RANDOM: {
        int64_t k = el / p->every_ms;
        uint64_t r = mix64(p->seed ^ mix64((uint64_t)k));
        double v;
        if (p->random_float) {
            v = p->min + (p->max - p->min) * ((double)(r >> 11) / 9007199254740992.0);
            v = round(v * 100.0) / 100.0;
        } else {
            double span = floor(p->max) - ceil(p->min) + 1;
            v = ceil(p->min) + (double)(r % (uint64_t)(span < 1 ? 1 : span));
        }
        out->has_value = 1;
        out->num = v;
        out->ts_ms = g->start_wall_ms + k * p->every_ms;
        return;
    }
    case SIM_B_STEPS: {
        int64_t base = 0, t = el;
        const struct sim_sample *hit = NULL;
        if (p->loop_ms > 0) {
            base = (el / p->loop_ms) * p->loop_ms;
            t = el - base;
        }
        for (size_t i = 0; i < p->nsteps && p->steps[i].at_ms <= t; i++)
            hit = &p->steps[i];
        if (!hit && p->loop_ms > 0 && base > 0) {
            hit = &p->steps[p->nsteps - 1]; /* still the previous loop's last step */
            base -= p->loop_ms;
        }
        if (hit)
            from_sample(hit, g->start_wall_ms + base + hit->at_ms, out);
        return;
    }
    }
}

size_t sim_graph_find_point(const struct sim_graph *g, const char *id)
{
    for (size_t i = 0; id && i < g->npoints; i++)
        if (strcmp(g->points[i].id, id) == 0)
            return i;
    return SIM_NONE;
}

int sim_point_set(struct sim_point *p, int has_value, double num, const char *str, int64_t ts_ms)
{
    char *s = NULL;

    if (str && !(s = strdup(str)))
        return OSC_ENOMEM;
    free(p->override.str);
    p->override.str = s;
    p->override.has_value = has_value;
    p->override.num = num;
    p->override.at_ms = ts_ms;
    p->has_override = 1;
    return 0;
}

void sim_graph_reset(struct sim_graph *g)
{
    for (size_t i = 0; i < g->npoints; i++) {
        struct sim_point *p = &g->points[i];
        free(p->override.str);
        memset(&p->override, 0, sizeof(p->override));
        p->has_override = 0;
    }
}

/* ---- reading scenario files ------------------------------------------- */

static json_t *yaml_scalar(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    char *end;

    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0)
            return json_null();
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0)
            return json_true();
        if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0)
            return json_false();
        errno = 0;
        long long ll = strtoll(s, &end, 10);
        if (*end == '\0' && errno == 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
            return json_integer(ll);
        double d = strtod(s, &end);
        if (*end == '\0' && errno == 0 &&
            (s[0] == '-' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')))
            return json_real(d);
    }
    return json_stringn(s, len);
}

static json_t *yaml_to_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    json_t *j;

    if (!n || depth > YAML_MAX_DEPTH)
        return NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE: return yaml_scalar(n);
    case YAML_SEQUENCE_NODE:
        j = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             j && it < n->data.sequence.items.top; it++) {
            json_t *c = yaml_to_json(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!c || json_array_append_new(j, c)) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    case YAML_MAPPING_NODE:
        j = json_object();
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
             j && pr < n->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(doc, pr->key);
            json_t *c;
            if (!k || k->type != YAML_SCALAR_NODE) {
                json_decref(j);
                return NULL;
            }
            c = yaml_to_json(doc, yaml_document_get_node(doc, pr->value), depth + 1);
            if (!c || json_object_set_new(j, (const char *)k->data.scalar.value, c)) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    default: return NULL;
    }
}

int sim_scenario_read(const char *path, json_t **out, struct osc_err *err)
{
    size_t n = strlen(path);
    int is_yaml = (n > 5 && strcmp(path + n - 5, ".yaml") == 0) ||
                  (n > 4 && strcmp(path + n - 4, ".yml") == 0);
    FILE *f = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    int parser_init = 0, doc_init = 0, rc = OSC_EDATA;

    *out = NULL;
    if (!is_yaml) {
        json_error_t je;
        *out = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        if (!*out)
            return osc_err_set(err, strstr(je.text, "unable to open") ? OSC_ENOINPUT : OSC_EDATA,
                               "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return 0;
    }
    f = fopen(path, "rb");
    if (!f)
        return osc_err_set(err, OSC_ENOINPUT, "%s: %s", path, strerror(errno));
    if (!yaml_parser_initialize(&parser)) {
        rc = OSC_ENOMEM;
        goto out;
    }
    parser_init = 1;
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = osc_err_set(err, OSC_EDATA, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
                         parser.problem_mark.column + 1,
                         parser.problem ? parser.problem : "YAML error");
        goto out;
    }
    doc_init = 1;
    *out = yaml_to_json(&doc, yaml_document_get_root_node(&doc), 0);
    if (!*out) {
        rc = osc_err_set(err, OSC_EDATA, "%s: empty, too deep or unsupported YAML", path);
        goto out;
    }
    rc = 0;
out:
    if (doc_init)
        yaml_document_delete(&doc);
    if (parser_init)
        yaml_parser_delete(&parser);
    if (f)
        fclose(f);
    return rc;
}

/* ---- the demo ------------------------------------------------------------ */

static const char *const demo_vkinds[] = {"int64",  "float64", "int32", "float32",
                                          "uint32", "uint64",  "bool",  "string"};

static json_t *demo_point(const char *id, const char *name, const char *exact, int *rot,
                          json_t *behaviour)
{
    json_t *p = json_pack("{s:s,s:s,s:s,s:s}", "id", id, "name", name, "exactType", exact,
                          "valueType", demo_vkinds[(*rot)++ % 8]);
    if (p && behaviour)
        json_object_update(p, behaviour);
    json_decref(behaviour);
    return p;
}

/* Values change every few seconds, so a demo with short poll intervals shows movement. */
json_t *sim_scenario_demo(void)
{
    static const struct {
        const char *code, *id, *name;
        int os_site;
        int floors;
    } blds[] = {
        {"A", "BLDGdemoAlpha", "Alpha Tower", 1, 3},
        {"B", "BLDGdemoBeta", "Beta House", 2, 2},
    };
    json_t *sc = json_object(), *site, *buildings = json_array(), *things = json_array();
    int rot = 0;
    char id[64], name[96], urn[80], every[16];

    site = json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "id", "SITEdemoCampus", "name", "Demo Campus",
                     "identities", "type", "NameIdentity", "value", "Demo Campus");
    for (size_t b = 0; b < 2; b++) {
        json_t *floors = json_array(), *bld;
        snprintf(urn, sizeof(urn), "urn:officespace:site:id:%d", blds[b].os_site);
        bld = json_pack("{s:s,s:s,s:[s,{s:s,s:s}]}", "id", blds[b].id, "name", blds[b].name,
                        "identities", urn, "type", "PostalAddressIdentity", "value",
                        b == 0 ? "1 Demo Way" : "2 Demo Way");
        for (int f = 1; f <= blds[b].floors; f++) {
            int osf = blds[b].os_site * 100 + f;
            json_t *spaces = json_array(), *zones = json_array(), *fl, *pts = json_array();
            snprintf(id, sizeof(id), "FLRdemo%s%d", blds[b].code, f);
            snprintf(name, sizeof(name), "%s Floor %d", blds[b].name, f);
            snprintf(urn, sizeof(urn), "urn:officespace:floor:id:%d", osf);
            fl = json_pack("{s:s,s:s,s:i,s:[s,{s:s,s:s}]}", "id", id, "name", name, "level", f,
                           "identities", urn, "type", "FloorLevelIdentity", "value", name);
            snprintf(id, sizeof(id), "PNTdemo%s%dtemp", blds[b].code, f);
            json_array_append_new(pts, json_pack("{s:s,s:s,s:s,s:s,s:f,s:s}", "id", id, "name",
                                                 "Zone air temperature", "exactType",
                                                 "Zone_Air_Temperature_Sensor", "valueType",
                                                 "float64", "value", 21.5, "unit", "DEG_C"));
            snprintf(id, sizeof(id), "PNTdemo%s%dunclassified", blds[b].code, f);
            json_array_append_new(pts, json_pack("{s:s,s:s,s:s,s:i}", "id", id, "name",
                                                 "Unclassified point", "exactType", "Point",
                                                 "value", 7));
            json_object_set_new(fl, "points", pts);
            /* six rooms */
            for (int r = 1; r <= 6; r++) {
                json_t *sp, *ids = json_array(), *sp_pts = json_array();
                char pid[64];
                snprintf(id, sizeof(id), "SPCdemo%s%dR%d", blds[b].code, f, r);
                snprintf(name, sizeof(name), "Room %s%d.%d", blds[b].code, f, r);
                snprintf(urn, sizeof(urn), "urn:officespace:room:id:%d", osf * 10 + r);
                if (b == 0 && f == 3 && r == 6)
                    json_array_append_new(ids, json_string("urn:officespace:room:id:"));
                else if (b == 1 && f == 2 && r == 5)
                    json_array_append_new(ids, json_string("urn:officespace:chair:id:7"));
                else
                    json_array_append_new(ids, json_string(urn));
                json_array_append_new(
                    ids, json_pack("{s:s,s:s}", "type", "SpaceCode", "value", name + 5));
                snprintf(pid, sizeof(pid), "PNTdemo%s%dR%dstatus", blds[b].code, f, r);
                snprintf(every, sizeof(every), "%ds", 2 + r % 3);
                json_array_append_new(sp_pts,
                                      demo_point(pid, "Occupancy status", "Occupancy_Status", &rot,
                                                 json_pack("{s:{s:i,s:i,s:s}}", "random", "min", 0,
                                                           "max", 1, "every", every)));
                if (r % 2) {
                    snprintf(pid, sizeof(pid), "PNTdemo%s%dR%dcount", blds[b].code, f, r);
                    json_array_append_new(
                        sp_pts, demo_point(pid, "People count", "Occupancy_Count_Sensor", &rot,
                                           json_pack("{s:{s:i,s:i,s:s}}", "random", "min", 0, "max",
                                                     8, "every", "3s")));
                }
                sp = json_pack("{s:s,s:s,s:o,s:o}", "id", id, "name", name, "identities", ids,
                               "points", sp_pts);
                json_array_append_new(spaces, sp);
            }
            /* three desks */
            for (int d = 1; d <= 3; d++) {
                json_t *ids = json_array(), *sp_pts = json_array();
                char pid[64];
                snprintf(id, sizeof(id), "SPCdemo%s%dD%d", blds[b].code, f, d);
                snprintf(name, sizeof(name), "Desk %s%d.%d", blds[b].code, f, d);
                snprintf(urn, sizeof(urn), "urn:officespace:desk:id:%d", osf * 100 + d);
                if (b == 0 && f == 2 && d == 3)
                    json_array_append_new(ids, json_string("urn:other:desk:id:5"));
                else
                    json_array_append_new(ids, json_string(urn));
                snprintf(pid, sizeof(pid), "PNTdemo%s%dD%dpir", blds[b].code, f, d);
                if (b == 0 && f == 1 && d == 3)
                    json_array_append_new(sp_pts,
                                          demo_point(pid, "Desk PIR (never reported)", "PIR_Sensor",
                                                     &rot, json_pack("{s:n}", "value")));
                else if (d == 2)
                    json_array_append_new(
                        sp_pts, demo_point(pid, "Desk occupancy", "Occupancy_Sensor", &rot,
                                           json_pack("{s:{s:[i,i,i],s:s}}", "cycle", "values", 1, 1,
                                                     0, "every", "4s")));
                else
                    json_array_append_new(sp_pts,
                                          demo_point(pid, "Desk PIR", "PIR_Sensor", &rot,
                                                     json_pack("{s:{s:[i,i],s:s}}", "cycle",
                                                               "values", 1, 0, "every", "5s")));
                json_array_append_new(spaces, json_pack("{s:s,s:s,s:s,s:o,s:o}", "id", id, "name",
                                                        name, "exactType", "Workspace",
                                                        "identities", ids, "points", sp_pts));
            }
            /* two neighborhoods */
            for (int n = 1; n <= 2; n++) {
                json_t *zp = json_array();
                char pid[64];
                snprintf(id, sizeof(id), "ZONEdemo%s%dN%d", blds[b].code, f, n);
                snprintf(name, sizeof(name), "Neighborhood %s%d-%c", blds[b].code, f, 'a' + n - 1);
                snprintf(urn, sizeof(urn), "urn:officespace:neighborhood:id:%d", osf * 10 + 7 + n);
                snprintf(pid, sizeof(pid), "PNTdemo%s%dN%dtemp", blds[b].code, f, n);
                json_array_append_new(
                    zp, demo_point(pid, "Temporary occupancy", "Temporary_Occupancy_Status", &rot,
                                   json_pack("{s:[{s:s,s:i},{s:s,s:i},{s:s,s:i}],s:s}", "steps",
                                             "at", "0s", "value", 0, "at", "3s", "value", 1, "at",
                                             "9s", "value", 0, "loop", "12s")));
                snprintf(pid, sizeof(pid), "PNTdemo%s%dN%dcount", blds[b].code, f, n);
                json_array_append_new(zp, demo_point(pid, "Neighborhood count",
                                                     "Occupancy_Count_Sensor", &rot,
                                                     json_pack("{s:{s:i,s:i,s:s}}", "random", "min",
                                                               0, "max", 12, "every", "4s")));
                json_array_append_new(zones, json_pack("{s:s,s:s,s:[s],s:o}", "id", id, "name",
                                                       name, "identities", urn, "points", zp));
            }
            json_object_set_new(fl, "spaces", spaces);
            json_object_set_new(fl, "zones", zones);
            json_array_append_new(floors, fl);
            /* a people counter located on the floor */
            {
                char tid[64], pid[64], fid[64];
                snprintf(tid, sizeof(tid), "THGdemo%s%dcounter", blds[b].code, f);
                snprintf(pid, sizeof(pid), "PNTdemo%s%dfloorcount", blds[b].code, f);
                snprintf(fid, sizeof(fid), "FLRdemo%s%d", blds[b].code, f);
                json_array_append_new(
                    things,
                    json_pack("{s:s,s:s,s:s,s:s,s:[o]}", "id", tid, "name", "People counter",
                              "exactType", "People_Counter", "location", fid, "points",
                              demo_point(pid, "Floor people count", "Occupancy_Count_Sensor", &rot,
                                         json_pack("{s:{s:i,s:i,s:s}}", "random", "min", 0, "max",
                                                   40, "every", "6s"))));
            }
        }
        json_object_set_new(bld, "floors", floors);
        json_array_append_new(buildings, bld);
    }
    json_object_set_new(site, "buildings", buildings);
    json_object_set_new(sc, "sites", json_pack("[o]", site));
    json_object_set_new(sc, "things", things);
    json_object_set_new(sc, "officespace",
                        json_pack("{s:[{s:i,s:s,s:i}],s:[{s:i,s:s,s:s,s:s}]}", "seats", "id", 99001,
                                  "label", "Unsensored desk", "floor_id", 101, "employees", "id", 1,
                                  "client_employee_id", "E001", "first_name", "Ada", "last_name",
                                  "Lovelace"));
    return sc;
}

/* ---- the generator -------------------------------------------------------- */

json_t *sim_scenario_generate(long locations, long points, uint64_t seed)
{
    static const char *const occ[] = {"Occupancy_Status", "Temporary_Occupancy_Status",
                                      "Occupancy_Count_Sensor", "Occupancy_Sensor", "PIR_Sensor"};
    json_t *sc = json_object(), *buildings = json_array();
    json_t **locs = NULL; /* borrowed: every generated floor/space/zone, for point placement */
    json_t *bld = NULL, *floors = NULL, *fl = NULL, *temp_rand = NULL, *occ_rand[46][2];
    long nloc = 0, nfloor = 0;
    char id[64], urn[80], name[64];

    if (locations < 1)
        locations = 1;
    if (locations > 1000000)
        locations = 1000000;
    if (points < 0)
        points = 0;
    if (points > 5000000)
        points = 5000000;
    memset(occ_rand, 0, sizeof(occ_rand));
    locs = calloc((size_t)locations, sizeof(*locs));
    if (!sc || !buildings || !locs)
        goto fail;
    for (long k = 0; k < locations; k++) {
        long in_block = k % 50;
        json_t *loc;
        if (in_block == 0) {
            if (nfloor % 20 == 0) {
                long b = nfloor / 20;
                snprintf(id, sizeof(id), "BLDGgen%ld", b);
                snprintf(urn, sizeof(urn), "urn:officespace:site:id:%ld", b + 1);
                snprintf(name, sizeof(name), "Generated building %ld", b + 1);
                bld = json_pack("{s:s,s:s,s:[s]}", "id", id, "name", name, "identities", urn);
                floors = json_array();
                json_object_set_new(bld, "floors", floors);
                json_array_append_new(buildings, bld);
            }
            snprintf(id, sizeof(id), "FLRgen%ld", nfloor);
            snprintf(urn, sizeof(urn), "urn:officespace:floor:id:%ld", 1000 + nfloor);
            snprintf(name, sizeof(name), "Floor %ld", nfloor % 20 + 1);
            fl = json_pack("{s:s,s:s,s:i,s:[s],s:[],s:[]}", "id", id, "name", name, "level",
                           (int)(nfloor % 20 + 1), "identities", urn, "spaces", "zones");
            json_array_append_new(floors, fl);
            nfloor++;
            loc = fl;
        } else if (in_block <= 40) {
            int desk = in_block % 4 == 0;
            snprintf(id, sizeof(id), "SPCgen%ld", k);
            snprintf(urn, sizeof(urn), "urn:officespace:%s:id:%ld", desk ? "desk" : "room",
                     (desk ? 200000 : 100000) + k);
            snprintf(name, sizeof(name), "%s %ld", desk ? "Desk" : "Room", k);
            loc = json_pack("{s:s,s:s,s:[s]}", "id", id, "name", name, "identities", urn);
            json_array_append_new(json_object_get(fl, "spaces"), loc);
        } else {
            snprintf(id, sizeof(id), "ZONEgen%ld", k);
            snprintf(urn, sizeof(urn), "urn:officespace:neighborhood:id:%ld", 300000 + k);
            snprintf(name, sizeof(name), "Neighborhood %ld", k);
            loc = json_pack("{s:s,s:s,s:[s]}", "id", id, "name", name, "identities", urn);
            json_array_append_new(json_object_get(fl, "zones"), loc);
        }
        if (!loc)
            goto fail;
        locs[nloc++] = loc;
    }
    /* behaviours are shared by reference: a million points must not mean a million copies */
    temp_rand = json_pack("{s:i,s:i,s:b,s:s}", "min", 18, "max", 25, "float", 1, "every", "60s");
    for (int k = 0; k < 46; k++) {
        char every[16];
        snprintf(every, sizeof(every), "%ds", 15 + k);
        occ_rand[k][0] = json_pack("{s:i,s:i,s:s}", "min", 0, "max", 1, "every", every);
        occ_rand[k][1] = json_pack("{s:i,s:i,s:s}", "min", 0, "max", 10, "every", every);
        if (!occ_rand[k][0] || !occ_rand[k][1])
            goto fail;
    }
    if (!temp_rand)
        goto fail;
    for (long j = 0; j < points; j++) {
        json_t *loc = locs[j % nloc], *pts = json_object_get(loc, "points"), *p;
        uint64_t r = mix64(seed ^ (uint64_t)j);
        if (!pts) {
            pts = json_array();
            json_object_set_new(loc, "points", pts);
        }
        snprintf(id, sizeof(id), "PNTgen%ld", j);
        if (j % 10 == 9) {
            p = json_pack("{s:s,s:s,s:s,s:O}", "id", id, "name", "Temperature", "exactType",
                          "Zone_Air_Temperature_Sensor", "random", temp_rand);
        } else {
            const char *t = occ[j % 5];
            p = json_pack("{s:s,s:s,s:s,s:s,s:O}", "id", id, "name", t, "exactType", t, "valueType",
                          (r >> 8) % 2 ? "int64" : "float64", "random",
                          occ_rand[r % 46][strcmp(t, "Occupancy_Count_Sensor") == 0]);
        }
        if (!p || json_array_append_new(pts, p))
            goto fail;
    }
    json_object_set_new(sc, "sites",
                        json_pack("[{s:s,s:s,s:o}]", "id", "SITEgen", "name", "Generated site",
                                  "buildings", buildings));
    free(locs);
    json_decref(temp_rand);
    for (int k = 0; k < 46; k++) {
        json_decref(occ_rand[k][0]);
        json_decref(occ_rand[k][1]);
    }
    return sc;
fail:
    free(locs);
    json_decref(temp_rand);
    for (int k = 0; k < 46; k++) {
        json_decref(occ_rand[k][0]);
        json_decref(occ_rand[k][1]);
    }
    json_decref(sc);
    json_decref(buildings);
    return NULL;
}
