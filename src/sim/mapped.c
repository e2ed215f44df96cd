/*
 * mapped.c - the Mapped GraphQL schema (the subset in mapped.md §2) and
 * its resolvers over the simulated graph, plus the request-body handling
 * both GraphQL surfaces share.
 *
 * Modelling choices (documented in docs/simulator.md): `points` on a place
 * are the points attached to that place plus those of things located
 * directly there (not recursive); `things` on a place are the things
 * located there or anywhere below it; `series` returns the latest sample
 * (0 or 1 rows) whatever its arguments, filtered by startTime/endTime when
 * given. Values are read at one instant per request, so a row's timestamp
 * and value always agree.
 */
#include "sim_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gql.h"
#include "osc/clock.h"

/* ---- input types ------------------------------------------------------------ */

static const struct gql_itype t_string = {GQL_I_STRING, "String", NULL, NULL, NULL};
static const struct gql_itype t_boolean = {GQL_I_BOOLEAN, "Boolean", NULL, NULL, NULL};
static const struct gql_itype t_string_list = {GQL_I_LIST, NULL, &t_string, NULL, NULL};

static const struct gql_argdef id_filter_fields[] = {
    {"eq", &t_string}, {"in", &t_string_list}, {NULL, NULL}};
static const struct gql_itype t_id_filter = {GQL_I_INPUT, "IdFilterExpressionInput", NULL,
                                             id_filter_fields, NULL};
static const struct gql_argdef string_filter_fields[] = {{"eq", &t_string},
                                                         {"ne", &t_string},
                                                         {"in", &t_string_list},
                                                         {"contains", &t_string},
                                                         {NULL, NULL}};
static const struct gql_itype t_string_filter = {GQL_I_INPUT, "StringFilterExpressionInput", NULL,
                                                 string_filter_fields, NULL};
static const struct gql_argdef strarr_filter_fields[] = {
    {"eq", &t_string}, {"ne", &t_string}, {"in", &t_string_list}, {NULL, NULL}};
static const struct gql_itype t_strarr_filter = {GQL_I_INPUT, "StringArrayFilterExpressionInput",
                                                 NULL, strarr_filter_fields, NULL};
static const struct gql_argdef ts_filter_fields[] = {{"eq", &t_string},  {"gt", &t_string},
                                                     {"gte", &t_string}, {"lt", &t_string},
                                                     {"lte", &t_string}, {NULL, NULL}};
static const struct gql_itype t_ts_filter = {GQL_I_INPUT, "TimestampFilterExpressionInput", NULL,
                                             ts_filter_fields, NULL};
static const struct gql_argdef bool_filter_fields[] = {
    {"eq", &t_boolean}, {"ne", &t_boolean}, {NULL, NULL}};
static const struct gql_itype t_bool_filter = {GQL_I_INPUT, "BooleanFilterExpressionInput", NULL,
                                               bool_filter_fields, NULL};

/* FILTER(var, "Name", fields...): an input object with and/or/not of itself */
#define FILTER(var, gname, ...)                                                                    \
    static const struct gql_itype var;                                                             \
    static const struct gql_itype var##_list = {GQL_I_LIST, NULL, &var, NULL, NULL};               \
    static const struct gql_argdef var##_fields[] = {                                              \
        __VA_ARGS__,          {"dateCreated", &t_ts_filter}, {"dateUpdated", &t_ts_filter},        \
        {"and", &var##_list}, {"or", &var##_list},           {"not", &var},                        \
        {NULL, NULL}};                                                                             \
    static const struct gql_itype var = {GQL_I_INPUT, gname, NULL, var##_fields, NULL}

FILTER(t_site_filter, "SiteFilter", {"id", &t_id_filter}, {"name", &t_string_filter},
       {"exactType", &t_string_filter});
FILTER(t_building_filter, "BuildingFilter", {"id", &t_id_filter}, {"name", &t_string_filter});
FILTER(t_floor_filter, "FloorFilter", {"id", &t_string_filter}, {"name", &t_string_filter});
FILTER(t_space_filter, "SpaceFilter", {"id", &t_id_filter}, {"name", &t_string_filter},
       {"type", &t_strarr_filter});
FILTER(t_zone_filter, "ZoneFilter", {"id", &t_id_filter}, {"name", &t_string_filter});
FILTER(t_point_filter, "PointFilter", {"id", &t_id_filter}, {"exactType", &t_string_filter},
       {"type", &t_strarr_filter}, {"name", &t_string_filter}, {"mappingKey", &t_string_filter});
FILTER(t_thing_filter, "ThingFilter", {"id", &t_string_filter}, {"exactType", &t_string_filter},
       {"type", &t_strarr_filter}, {"name", &t_string_filter}, {"mappingKey", &t_string_filter},
       {"isVirtual", &t_bool_filter});

static const struct gql_itype *const mapped_inputs[] = {&t_id_filter,
                                                        &t_string_filter,
                                                        &t_strarr_filter,
                                                        &t_ts_filter,
                                                        &t_bool_filter,
                                                        &t_site_filter,
                                                        &t_building_filter,
                                                        &t_floor_filter,
                                                        &t_space_filter,
                                                        &t_zone_filter,
                                                        &t_point_filter,
                                                        &t_thing_filter,
                                                        NULL};

static const struct gql_argdef a_site[] = {{"filter", &t_site_filter}, {NULL, NULL}};
static const struct gql_argdef a_building[] = {{"filter", &t_building_filter}, {NULL, NULL}};
static const struct gql_argdef a_floor[] = {{"filter", &t_floor_filter}, {NULL, NULL}};
static const struct gql_itype t_int = {GQL_I_INT, "Int", NULL, NULL, NULL};
static const struct gql_argdef a_space[] = {
    {"filter", &t_space_filter}, {"childDepth", &t_int}, {NULL, NULL}};
static const struct gql_argdef a_zone[] = {{"filter", &t_zone_filter}, {NULL, NULL}};
static const struct gql_argdef a_point[] = {{"filter", &t_point_filter}, {NULL, NULL}};
static const struct gql_argdef a_thing[] = {{"filter", &t_thing_filter}, {NULL, NULL}};
static const struct gql_argdef a_series[] = {
    {"latest", &t_boolean}, {"startTime", &t_string}, {"endTime", &t_string}, {NULL, NULL}};

/* ---- output types ----------------------------------------------------------- */

enum {
    F_SITES = 1,
    F_BUILDINGS,
    F_FLOORS,
    F_SPACES,
    F_ZONES,
    F_POINTS,
    F_THINGS, /* lists */
    F_ID,
    F_NAME,
    F_DESC,
    F_EXACT,
    F_TYPE,
    F_DC,
    F_DU,
    F_IDENTS,
    F_LEVEL,
    F_BUILDING,
    F_FLOOR,
    F_HASPART,
    F_ISPARTOF,
    F_ISLOCATIONOF,
    F_HASPOINT,
    F_PARENTSPACE,
    F_ADDRESS,
    F_GEOSHAPE,
    F_MAPPINGKEY,
    F_UNIT,
    F_SERIES,
    F_ISPOINTOF,
    F_STATETEXTS,
    F_VALUEMAP,
    F_HASLOCATION,
    F_PLACES,
    F_ISVIRTUAL,
    F_FIRMWARE,
    F_ISFEDBY,
    F_UNIT_ID,
    F_UNIT_NAME,
    F_UNIT_DESC,
    F_ROW_TS,
    F_ROW_VALUE,
    F_V_BOOL,
    F_V_STRING,
    F_V_F32,
    F_V_F64,
    F_V_I32,
    F_V_U32,
    F_V_I64,
    F_V_U64,
    F_V_BYTES,
    F_V_GEO,
    F_V_JSON,
    F_V_EXC,
    F_IDENT_ID,
    F_IDENT_VALUE,
    F_IDENT_DC,
    F_IDENT_DU,
    F_NULL
};

#define END                                                                                        \
    {                                                                                              \
        NULL, NULL, 0, NULL, 0                                                                     \
    }
#define COMMON_PLACE                                                                               \
    {"id", "String", 0, NULL, F_ID}, {"name", "String", 0, NULL, F_NAME},                          \
        {"description", "String", 0, NULL, F_DESC}, {"exactType", "String", 0, NULL, F_EXACT},     \
        {"type", "String", 1, NULL, F_TYPE}, {"dateCreated", "DateTime", 0, NULL, F_DC},           \
        {"dateUpdated", "DateTime", 0, NULL, F_DU}, {"hasPart", "Place", 1, NULL, F_HASPART},      \
        {"isPartOf", "Place", 1, NULL, F_ISPARTOF},                                                \
        {"isLocationOf", "Thing", 1, NULL, F_ISLOCATIONOF},                                        \
        {"isFedBy", "Thing", 1, NULL, F_ISFEDBY}, {"hasPoint", "Point", 1, NULL, F_HASPOINT},      \
        {"points", "Point", 1, a_point, F_POINTS},                                                 \
    {                                                                                              \
        "things", "Thing", 1, a_thing, F_THINGS                                                    \
    }

static const struct gql_fielddef query_fields[] = {
    {"sites", "Site", 1, a_site, F_SITES},
    {"buildings", "Building", 1, a_building, F_BUILDINGS},
    {"floors", "Floor", 1, a_floor, F_FLOORS},
    {"spaces", "Space", 1, a_space, F_SPACES},
    {"zones", "Zone", 1, a_zone, F_ZONES},
    {"points", "Point", 1, a_point, F_POINTS},
    {"things", "Thing", 1, a_thing, F_THINGS},
    END};
static const struct gql_fielddef place_fields[] = {COMMON_PLACE, END};
static const struct gql_fielddef site_fields[] = {
    COMMON_PLACE,
    {"identities", "SiteIdentityUnion", 1, NULL, F_IDENTS},
    {"buildings", "Building", 1, a_building, F_BUILDINGS},
    END};
static const struct gql_fielddef building_fields[] = {
    COMMON_PLACE,
    {"identities", "BuildingIdentityUnion", 1, NULL, F_IDENTS},
    {"floors", "Floor", 1, a_floor, F_FLOORS},
    {"sites", "Site", 1, a_site, F_SITES},
    {"address", "Address", 0, NULL, F_ADDRESS},
    END};
static const struct gql_fielddef floor_fields[] = {
    COMMON_PLACE,
    {"identities", "FloorIdentityUnion", 1, NULL, F_IDENTS},
    {"level", "Int", 0, NULL, F_LEVEL},
    {"geoshape", "GeoJSON", 0, NULL, F_GEOSHAPE},
    {"building", "Building", 0, NULL, F_BUILDING},
    {"spaces", "Space", 1, a_space, F_SPACES},
    {"zones", "Zone", 1, a_zone, F_ZONES},
    END};
static const struct gql_fielddef space_fields[] = {
    COMMON_PLACE,
    {"identities", "SpaceIdentityUnion", 1, NULL, F_IDENTS},
    {"geoshape", "GeoJSON", 0, NULL, F_GEOSHAPE},
    {"parentSpaceId", "String", 0, NULL, F_PARENTSPACE},
    {"floor", "Floor", 0, NULL, F_FLOOR},
    END};
static const struct gql_fielddef zone_fields[] = {
    COMMON_PLACE,
    {"identities", "ZoneIdentityUnion", 1, NULL, F_IDENTS},
    {"geoshape", "GeoJSON", 0, NULL, F_GEOSHAPE},
    END};
static const struct gql_fielddef thing_fields[] = {
    {"id", "String", 0, NULL, F_ID},
    {"name", "String", 0, NULL, F_NAME},
    {"description", "String", 0, NULL, F_DESC},
    {"exactType", "String", 0, NULL, F_EXACT},
    {"type", "String", 1, NULL, F_TYPE},
    {"dateCreated", "DateTime", 0, NULL, F_DC},
    {"dateUpdated", "DateTime", 0, NULL, F_DU},
    {"mappingKey", "String", 0, NULL, F_MAPPINGKEY},
    {"firmwareVersion", "String", 0, NULL, F_FIRMWARE},
    {"isVirtual", "Boolean", 0, NULL, F_ISVIRTUAL},
    {"identities", "ThingIdentityUnion", 1, NULL, F_IDENTS},
    {"hasLocation", "Place", 0, NULL, F_HASLOCATION},
    {"places", "Place", 1, NULL, F_PLACES},
    {"isFedBy", "Thing", 1, NULL, F_ISFEDBY},
    {"hasPoint", "Point", 1, NULL, F_HASPOINT},
    {"points", "Point", 1, a_point, F_POINTS},
    END};
static const struct gql_fielddef point_fields[] = {
    {"id", "String", 0, NULL, F_ID},
    {"name", "String", 0, NULL, F_NAME},
    {"description", "String", 0, NULL, F_DESC},
    {"exactType", "String", 0, NULL, F_EXACT},
    {"type", "String", 1, NULL, F_TYPE},
    {"dateCreated", "DateTime", 0, NULL, F_DC},
    {"dateUpdated", "DateTime", 0, NULL, F_DU},
    {"mappingKey", "String", 0, NULL, F_MAPPINGKEY},
    {"unit", "Unit", 0, NULL, F_UNIT},
    {"identities", "PointIdentityUnion", 1, NULL, F_IDENTS},
    {"isPointOf", "IsPointOfUnion", 1, NULL, F_ISPOINTOF},
    {"stateTexts", "String", 1, NULL, F_STATETEXTS},
    {"valueMap", "Map", 0, NULL, F_VALUEMAP},
    {"series", "TimeseriesRow", 1, a_series, F_SERIES},
    END};
static const struct gql_fielddef unit_fields[] = {{"id", "String", 0, NULL, F_UNIT_ID},
                                                  {"name", "String", 0, NULL, F_UNIT_NAME},
                                                  {"description", "String", 0, NULL, F_UNIT_DESC},
                                                  END};
static const struct gql_fielddef row_fields[] = {
    {"timestamp", "DateTime", 0, NULL, F_ROW_TS},
    {"value", "TimeseriesRowValue", 0, NULL, F_ROW_VALUE},
    END};
static const struct gql_fielddef value_fields[] = {
    {"boolValue", "Boolean", 0, NULL, F_V_BOOL},
    {"stringValue", "String", 0, NULL, F_V_STRING},
    {"float32Value", "Float", 0, NULL, F_V_F32},
    {"float64Value", "Float", 0, NULL, F_V_F64},
    {"int32Value", "Int", 0, NULL, F_V_I32},
    {"uint32Value", "Int", 0, NULL, F_V_U32},
    {"int64Value", "Long", 0, NULL, F_V_I64},
    {"uint64Value", "Long", 0, NULL, F_V_U64},
    {"byteArrayValue", "String", 0, NULL, F_V_BYTES},
    {"geopointValue", "GeoPoint", 0, NULL, F_V_GEO},
    {"json", "GraphQLJSON", 0, NULL, F_V_JSON},
    {"numericalException", "TimeseriesNumericalException", 0, NULL, F_V_EXC},
    END};
static const struct gql_fielddef geopoint_fields[] = {
    {"type", "String", 0, NULL, F_NULL}, {"coordinates", "Float", 1, NULL, F_NULL}, END};
static const struct gql_fielddef address_fields[] = {{"id", "String", 0, NULL, F_NULL},
                                                     {"countryName", "String", 0, NULL, F_NULL},
                                                     {"locality", "String", 0, NULL, F_NULL},
                                                     {"postalCode", "String", 0, NULL, F_NULL},
                                                     {"region", "String", 0, NULL, F_NULL},
                                                     {"streetAddress", "String", 0, NULL, F_NULL},
                                                     {"dateCreated", "DateTime", 0, NULL, F_NULL},
                                                     {"dateUpdated", "DateTime", 0, NULL, F_NULL},
                                                     END};
static const struct gql_fielddef identity_fields[] = {
    {"id", "String", 0, NULL, F_IDENT_ID},
    {"value", "String", 0, NULL, F_IDENT_VALUE},
    {"dateCreated", "DateTime", 0, NULL, F_IDENT_DC},
    {"dateUpdated", "DateTime", 0, NULL, F_IDENT_DU},
    END};

#define IDENTITY_TYPES                                                                             \
    "BACnetObjectId", "BACnetVendorId", "EmailAddressIdentity", "EmailIdentity",                   \
        "ExternalIdentity", "FloorLevelIdentity", "GenericIdentity", "NameIdentity",               \
        "PostalAddressIdentity", "SpaceCode"
static const char *const identity_members[] = {IDENTITY_TYPES, NULL};
static const char *const place_members[] = {"Site", "Building", "Floor", "Space", "Zone", NULL};
static const char *const pointof_members[] = {"Building", "Floor", "Site", "Space",
                                              "Thing",    "Zone",  NULL};

#define IDENTITY_OBJ(n)                                                                            \
    {                                                                                              \
        n, GQL_O_OBJECT, identity_fields, NULL                                                     \
    }
#define IDENTITY_UNION(n)                                                                          \
    {                                                                                              \
        n, GQL_O_UNION, NULL, identity_members                                                     \
    }

static const struct gql_typedef mapped_types[] = {
    {"Query", GQL_O_OBJECT, query_fields, NULL},
    {"Place", GQL_O_INTERFACE, place_fields, place_members},
    {"Site", GQL_O_OBJECT, site_fields, NULL},
    {"Building", GQL_O_OBJECT, building_fields, NULL},
    {"Floor", GQL_O_OBJECT, floor_fields, NULL},
    {"Space", GQL_O_OBJECT, space_fields, NULL},
    {"Zone", GQL_O_OBJECT, zone_fields, NULL},
    {"Thing", GQL_O_OBJECT, thing_fields, NULL},
    {"Point", GQL_O_OBJECT, point_fields, NULL},
    {"Unit", GQL_O_OBJECT, unit_fields, NULL},
    {"TimeseriesRow", GQL_O_OBJECT, row_fields, NULL},
    {"TimeseriesRowValue", GQL_O_OBJECT, value_fields, NULL},
    {"GeoPoint", GQL_O_OBJECT, geopoint_fields, NULL},
    {"Address", GQL_O_OBJECT, address_fields, NULL},
    {"IsPointOfUnion", GQL_O_UNION, NULL, pointof_members},
    IDENTITY_OBJ("BACnetObjectId"),
    IDENTITY_OBJ("BACnetVendorId"),
    IDENTITY_OBJ("EmailAddressIdentity"),
    IDENTITY_OBJ("EmailIdentity"),
    IDENTITY_OBJ("ExternalIdentity"),
    IDENTITY_OBJ("FloorLevelIdentity"),
    IDENTITY_OBJ("GenericIdentity"),
    IDENTITY_OBJ("NameIdentity"),
    IDENTITY_OBJ("PostalAddressIdentity"),
    IDENTITY_OBJ("SpaceCode"),
    IDENTITY_UNION("SiteIdentityUnion"),
    IDENTITY_UNION("BuildingIdentityUnion"),
    IDENTITY_UNION("FloorIdentityUnion"),
    IDENTITY_UNION("SpaceIdentityUnion"),
    IDENTITY_UNION("ZoneIdentityUnion"),
    IDENTITY_UNION("PointIdentityUnion"),
    IDENTITY_UNION("ThingIdentityUnion"),
    {"String", GQL_O_SCALAR, NULL, NULL},
    {"Int", GQL_O_SCALAR, NULL, NULL},
    {"Float", GQL_O_SCALAR, NULL, NULL},
    {"Boolean", GQL_O_SCALAR, NULL, NULL},
    {"DateTime", GQL_O_SCALAR, NULL, NULL},
    {"Long", GQL_O_SCALAR, NULL, NULL},
    {"Map", GQL_O_SCALAR, NULL, NULL},
    {"GeoJSON", GQL_O_SCALAR, NULL, NULL},
    {"GraphQLJSON", GQL_O_SCALAR, NULL, NULL},
    {"TimeseriesNumericalException", GQL_O_ENUM, NULL, NULL},
    {NULL, 0, NULL, NULL}};

/* ---- resolving -------------------------------------------------------------- */

struct mctx {
    struct sim_graph *g;
    int64_t now_mono_ms;
};

enum cat { CAT_ROOT, CAT_PLACE, CAT_THING, CAT_POINT, CAT_IDENT };

static enum cat category(const char *type)
{
    switch (type[0]) {
    case 'Q': return CAT_ROOT;
    case 'S':
        return strcmp(type, "Site") == 0 || strcmp(type, "Space") == 0 ? CAT_PLACE : CAT_IDENT;
    case 'B': return strcmp(type, "Building") == 0 ? CAT_PLACE : CAT_IDENT;
    case 'F': return strcmp(type, "Floor") == 0 ? CAT_PLACE : CAT_IDENT;
    case 'Z': return CAT_PLACE;
    case 'T': return CAT_THING; /* Thing (TimeseriesRow* never reach category()) */
    case 'P': return strcmp(type, "Point") == 0 ? CAT_POINT : CAT_IDENT;
    default: return CAT_IDENT;
    }
}

/* What a filter can look at. */
struct view {
    const char *id, *name, *exact, *mkey, *date;
    const char *types[8];
    size_t ntypes;
    int is_virtual;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void add_type(struct view *v, const char *t)
{
    for (size_t i = 0; i < v->ntypes; i++)
        if (strcmp(v->types[i], t) == 0)
            return;
    if (v->ntypes < sizeof(v->types) / sizeof(v->types[0]))
        v->types[v->ntypes++] = t;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static void make_view(const struct sim_graph *g, struct gql_ref r, struct view *v)
{
    memset(v, 0, sizeof(*v));
    v->date = g->date_created;
    add_type(v, "Class");
    add_type(v, "Entity");
    switch (category(r.type)) {
    case CAT_PLACE: {
        const struct sim_place *p = r.obj;
        v->id = p->id;
        v->name = p->name;
        v->exact = p->exact_type;
        add_type(v, "Place");
        add_type(v, sim_kind_name(p->kind));
        break;
    }
    case CAT_THING: {
        const struct sim_thing *t = r.obj;
        v->id = t->id;
        v->name = t->name;
        v->exact = t->exact_type;
        v->mkey = t->mapping_key;
        add_type(v, "Equipment");
        break;
    }
    case CAT_POINT: {
        const struct sim_point *p = r.obj;
        v->id = p->id;
        v->name = p->name;
        v->exact = p->exact_type;
        v->mkey = p->mapping_key;
        add_type(v, "Point");
        if (ends_with(p->exact_type, "_Sensor"))
            add_type(v, "Sensor");
        if (ends_with(p->exact_type, "_Status"))
            add_type(v, "Status");
        break;
    }
    default: break;
    }
    if (v->exact)
        add_type(v, v->exact);
    qsort(v->types, v->ntypes, sizeof(v->types[0]), cmp_str);
}

static int in_list(json_t *list, const char *s)
{
    size_t i;
    json_t *it;

    if (!s)
        return 0;
    if (json_is_string(list))
        return strcmp(json_string_value(list), s) == 0;
    json_array_foreach(list, i, it)
    {
        if (json_is_string(it) && strcmp(json_string_value(it), s) == 0)
            return 1;
    }
    return 0;
}

/* One scalar field against {eq, ne, in, contains, gt, gte, lt, lte}. */
static int match_string(json_t *expr, const char *val)
{
    const char *k;
    json_t *x;

    json_object_foreach(expr, k, x)
    {
        const char *s = json_string_value(x);
        if (json_is_null(x))
            continue;
        if (strcmp(k, "eq") == 0 && !(val && s && strcmp(val, s) == 0))
            return 0;
        if (strcmp(k, "ne") == 0 && val && s && strcmp(val, s) == 0)
            return 0;
        if (strcmp(k, "in") == 0 && !in_list(x, val))
            return 0;
        if (strcmp(k, "contains") == 0 && !(val && s && strstr(val, s)))
            return 0;
        if (strcmp(k, "gt") == 0 && !(val && s && strcmp(val, s) > 0))
            return 0;
        if (strcmp(k, "gte") == 0 && !(val && s && strcmp(val, s) >= 0))
            return 0;
        if (strcmp(k, "lt") == 0 && !(val && s && strcmp(val, s) < 0))
            return 0;
        if (strcmp(k, "lte") == 0 && !(val && s && strcmp(val, s) <= 0))
            return 0;
    }
    return 1;
}

static int match_types(json_t *expr, const struct view *v)
{
    const char *k;
    json_t *x;

    json_object_foreach(expr, k, x)
    {
        int any = 0;
        if (json_is_null(x))
            continue;
        for (size_t i = 0; i < v->ntypes; i++)
            if (strcmp(k, "in") == 0
                    ? in_list(x, v->types[i])
                    : json_is_string(x) && strcmp(json_string_value(x), v->types[i]) == 0)
                any = 1;
        if ((strcmp(k, "ne") == 0) == any)
            return 0;
    }
    return 1;
}

static int match(json_t *f, const struct view *v, int depth)
{
    const char *k;
    json_t *x;

    if (!json_is_object(f) || depth > 64)
        return 1;
    json_object_foreach(f, k, x)
    {
        if (json_is_null(x))
            continue;
        if (strcmp(k, "and") == 0 || strcmp(k, "or") == 0) {
            size_t i;
            json_t *sub;
            int is_and = k[0] == 'a', any = 0;
            if (!json_is_array(x))
                x = json_pack("[O]", x);
            else
                json_incref(x);
            json_array_foreach(x, i, sub)
            {
                int m = match(sub, v, depth + 1);
                if (is_and && !m) {
                    json_decref(x);
                    return 0;
                }
                any |= m;
            }
            if (!is_and && json_array_size(x) && !any) {
                json_decref(x);
                return 0;
            }
            json_decref(x);
        } else if (strcmp(k, "not") == 0) {
            if (match(x, v, depth + 1))
                return 0;
        } else if (strcmp(k, "type") == 0) {
            if (!match_types(x, v))
                return 0;
        } else if (strcmp(k, "isVirtual") == 0) {
            json_t *eq = json_object_get(x, "eq"), *ne = json_object_get(x, "ne");
            if (json_is_boolean(eq) && json_is_true(eq) != v->is_virtual)
                return 0;
            if (json_is_boolean(ne) && json_is_true(ne) == v->is_virtual)
                return 0;
        } else {
            const char *val = strcmp(k, "id") == 0           ? v->id
                              : strcmp(k, "name") == 0       ? v->name
                              : strcmp(k, "exactType") == 0  ? v->exact
                              : strcmp(k, "mappingKey") == 0 ? v->mkey
                                                             : v->date;
            if (!match_string(x, val))
                return 0;
        }
    }
    return 1;
}

static int push_if(struct mctx *c, struct gql_out *out, json_t *args, const char *type,
                   const void *obj)
{
    json_t *f = json_object_get(args, "filter");
    struct view v;

    if (f && !json_is_null(f)) {
        make_view(c->g, (struct gql_ref){type, obj}, &v);
        if (!match(f, &v, 0))
            return 0;
    }
    return gql_out_push(out, type, obj);
}

static int push_place(struct mctx *c, struct gql_out *out, json_t *args, size_t idx, int want_kind)
{
    const struct sim_place *p = &c->g->places[idx];

    if (want_kind >= 0 && (int)p->kind != want_kind)
        return 0;
    return push_if(c, out, args, sim_kind_name(p->kind), p);
}

static int push_kids(struct mctx *c, struct gql_out *out, json_t *args, const struct sim_place *p,
                     int kind)
{
    for (size_t i = 0; i < p->nkids; i++)
        if (push_place(c, out, args, p->kids[i], kind))
            return -1;
    return 0;
}

static int push_place_points(struct mctx *c, struct gql_out *out, json_t *args,
                             const struct sim_place *p)
{
    for (size_t i = 0; i < p->npoints; i++)
        if (push_if(c, out, args, "Point", &c->g->points[p->points[i]]))
            return -1;
    for (size_t t = 0; t < p->nthings; t++) {
        const struct sim_thing *th = &c->g->things[p->things[t]];
        for (size_t i = 0; i < th->npoints; i++)
            if (push_if(c, out, args, "Point", &c->g->points[th->points[i]]))
                return -1;
    }
    return 0;
}

/* Things located at idx or below it. */
static int push_things_below(struct mctx *c, struct gql_out *out, json_t *args, size_t idx,
                             int depth)
{
    const struct sim_place *p = &c->g->places[idx];

    if (depth > 16)
        return 0;
    for (size_t t = 0; t < p->nthings; t++)
        if (push_if(c, out, args, "Thing", &c->g->things[p->things[t]]))
            return -1;
    for (size_t i = 0; i < p->nkids; i++)
        if (push_things_below(c, out, args, p->kids[i], depth + 1))
            return -1;
    return 0;
}

static size_t place_index(const struct sim_graph *g, const struct sim_place *p)
{
    return (size_t)(p - g->places);
}

static json_t *jstr_or_null(const char *s) { return s ? json_string(s) : NULL; }

static json_t *value_member(const struct sim_point *p, const struct sim_value *v, int fid)
{
    static const int member_of[] = {
        [SIM_V_FLOAT64] = F_V_F64, [SIM_V_FLOAT32] = F_V_F32,  [SIM_V_INT64] = F_V_I64,
        [SIM_V_INT32] = F_V_I32,   [SIM_V_UINT64] = F_V_U64,   [SIM_V_UINT32] = F_V_U32,
        [SIM_V_BOOL] = F_V_BOOL,   [SIM_V_STRING] = F_V_STRING};
    char buf[64];

    if (!v->has_value || member_of[p->vkind] != fid)
        return NULL;
    switch (p->vkind) {
    case SIM_V_FLOAT64: return json_real(v->num);
    case SIM_V_FLOAT32: return json_real((double)(float)v->num);
    case SIM_V_INT64:
    case SIM_V_INT32: return json_integer((json_int_t)llround(v->num));
    case SIM_V_UINT64:
    case SIM_V_UINT32: return json_integer(v->num < 0 ? 0 : (json_int_t)llround(v->num));
    case SIM_V_BOOL: return json_boolean(v->num != 0);
    case SIM_V_STRING:
        if (v->str)
            return json_string(v->str);
        snprintf(buf, sizeof(buf), "%g", v->num);
        return json_string(buf);
    }
    return NULL;
}

static int mapped_resolve(void *ud, struct gql_exec *x, struct gql_ref self,
                          const struct gql_fielddef *f, json_t *args, struct gql_out *out)
{
    struct mctx *c = ud;
    struct sim_graph *g = c->g;
    enum cat cat = category(self.type);
    const struct sim_place *pl = cat == CAT_PLACE ? self.obj : NULL;
    const struct sim_thing *th = cat == CAT_THING ? self.obj : NULL;
    const struct sim_point *pt = self.obj;
    const struct sim_identity *id = self.obj;
    const struct sim_idlist *ids = NULL;
    struct sim_value val;
    char ts[40];

    (void)x;
    switch (f->id) {
    case F_SITES:
    case F_BUILDINGS:
    case F_FLOORS:
    case F_SPACES:
    case F_ZONES: {
        int kind = f->id - F_SITES;
        if (cat == CAT_ROOT) {
            for (size_t i = 0; i < g->nplaces; i++)
                if (push_place(c, out, args, i, kind))
                    return -1;
            return 0;
        }
        if (f->id == F_SITES) { /* Building.sites: the enclosing site */
            return pl->parent != SIM_NONE ? push_place(c, out, args, pl->parent, SIM_SITE) : 0;
        }
        return push_kids(c, out, args, pl, kind);
    }
    case F_POINTS:
    case F_HASPOINT:
        if (f->id == F_HASPOINT)
            args = NULL;
        if (cat == CAT_ROOT) {
            for (size_t i = 0; i < g->npoints; i++)
                if (push_if(c, out, args, "Point", &g->points[i]))
                    return -1;
            return 0;
        }
        if (cat == CAT_THING) {
            for (size_t i = 0; i < th->npoints; i++)
                if (push_if(c, out, args, "Point", &g->points[th->points[i]]))
                    return -1;
            return 0;
        }
        return push_place_points(c, out, args, pl);
    case F_THINGS:
        if (cat == CAT_ROOT) {
            for (size_t i = 0; i < g->nthings; i++)
                if (push_if(c, out, args, "Thing", &g->things[i]))
                    return -1;
            return 0;
        }
        return push_things_below(c, out, args, place_index(g, pl), 0);
    case F_ISLOCATIONOF:
        for (size_t t = 0; t < pl->nthings; t++)
            if (gql_out_push(out, "Thing", &g->things[pl->things[t]]))
                return -1;
        return 0;
    case F_ISFEDBY:
    case F_STATETEXTS:
        if (f->id == F_STATETEXTS)
            out->scalar = json_array();
        return 0;
    case F_HASPART: return push_kids(c, out, NULL, pl, -1);
    case F_ISPARTOF:
        if (pl->parent != SIM_NONE)
            return push_place(c, out, NULL, pl->parent, -1);
        return 0;
    case F_BUILDING:
    case F_FLOOR:
        if (pl->parent != SIM_NONE) {
            const struct sim_place *p = &g->places[pl->parent];
            out->one.type = sim_kind_name(p->kind);
            out->one.obj = p;
        }
        return 0;
    case F_HASLOCATION:
    case F_PLACES:
        if (th->place != SIM_NONE) {
            const struct sim_place *p = &g->places[th->place];
            if (f->id == F_PLACES)
                return gql_out_push(out, sim_kind_name(p->kind), p);
            out->one.type = sim_kind_name(p->kind);
            out->one.obj = p;
        }
        return 0;
    case F_ISPOINTOF:
        if (pt->place != SIM_NONE)
            return gql_out_push(out, sim_kind_name(g->places[pt->place].kind),
                                &g->places[pt->place]);
        if (pt->thing != SIM_NONE)
            return gql_out_push(out, "Thing", &g->things[pt->thing]);
        return 0;
    case F_ID:
    case F_NAME:
    case F_EXACT:
    case F_DESC:
    case F_MAPPINGKEY: {
        const char *s = NULL;
        if (cat == CAT_PLACE)
            s = f->id == F_ID      ? pl->id
                : f->id == F_NAME  ? pl->name
                : f->id == F_EXACT ? pl->exact_type
                : f->id == F_DESC  ? pl->description
                                   : NULL;
        else if (cat == CAT_THING)
            s = f->id == F_ID      ? th->id
                : f->id == F_NAME  ? th->name
                : f->id == F_EXACT ? th->exact_type
                : f->id == F_DESC  ? th->description
                                   : th->mapping_key;
        else if (cat == CAT_POINT)
            s = f->id == F_ID      ? pt->id
                : f->id == F_NAME  ? pt->name
                : f->id == F_EXACT ? pt->exact_type
                : f->id == F_DESC  ? pt->description
                                   : pt->mapping_key;
        out->scalar = jstr_or_null(s);
        return 0;
    }
    case F_TYPE: {
        struct view v;
        make_view(g, self, &v);
        out->scalar = json_array();
        for (size_t i = 0; i < v.ntypes; i++)
            json_array_append_new(out->scalar, json_string(v.types[i]));
        return 0;
    }
    case F_DC:
    case F_DU: out->scalar = json_string(g->date_created); return 0;
    case F_LEVEL:
        if (pl->has_level)
            out->scalar = json_integer(pl->level);
        return 0;
    case F_ISVIRTUAL: out->scalar = json_false(); return 0;
    case F_IDENTS:
        ids = cat == CAT_PLACE ? &pl->ids : cat == CAT_THING ? &th->ids : &pt->ids;
        for (size_t i = 0; i < ids->n; i++)
            if (gql_out_push(out, ids->v[i].type, &ids->v[i]))
                return -1;
        return 0;
    case F_IDENT_ID: out->scalar = json_string(id->id); return 0;
    case F_IDENT_VALUE: out->scalar = json_string(id->value); return 0;
    case F_IDENT_DC:
    case F_IDENT_DU: out->scalar = json_string(g->date_created); return 0;
    case F_UNIT:
        out->one.type = "Unit";
        out->one.obj = pt;
        return 0;
    case F_UNIT_ID:
    case F_UNIT_NAME:
    case F_UNIT_DESC:
        if (!pt->unit)
            out->scalar = json_string(f->id == F_UNIT_ID ? "UNITLESS"
                                      : f->id == F_UNIT_NAME
                                          ? "Unitless"
                                          : "An explicit unit to say something has no units.");
        else
            out->scalar = f->id == F_UNIT_DESC ? NULL : json_string(pt->unit);
        return 0;
    case F_SERIES: {
        json_t *st = json_object_get(args, "startTime"), *et = json_object_get(args, "endTime");
        int64_t lim;
        sim_point_value(g, pt, c->now_mono_ms, &val);
        if (!val.has_value)
            return 0;
        if (json_is_string(st) && osc_clock_parse_iso8601(json_string_value(st), &lim) == 0 &&
            val.ts_ms < lim)
            return 0;
        if (json_is_string(et) && osc_clock_parse_iso8601(json_string_value(et), &lim) == 0 &&
            val.ts_ms > lim)
            return 0;
        return gql_out_push(out, "TimeseriesRow", pt);
    }
    case F_ROW_TS:
        sim_point_value(g, pt, c->now_mono_ms, &val);
        osc_clock_iso8601(val.ts_ms, ts, sizeof(ts));
        out->scalar = json_string(ts);
        return 0;
    case F_ROW_VALUE:
        out->one.type = "TimeseriesRowValue";
        out->one.obj = pt;
        return 0;
    case F_V_BOOL:
    case F_V_STRING:
    case F_V_F32:
    case F_V_F64:
    case F_V_I32:
    case F_V_U32:
    case F_V_I64:
    case F_V_U64:
        sim_point_value(g, pt, c->now_mono_ms, &val);
        out->scalar = value_member(pt, &val, f->id);
        return 0;
    default: /* fields that exist in the schema but are always null here */ return 0;
    }
}

static const struct gql_schema mapped_schema = {mapped_types, mapped_inputs, "Query", NULL,
                                                mapped_resolve};

/* ---- the HTTP body ------------------------------------------------------------ */

void sim_graphql_request(const struct gql_schema *schema, void *ud, const char *body, size_t len,
                         struct sim_reply *reply)
{
    json_error_t je;
    json_t *req = json_loadb(body, len, 0, &je), *q, *vars, *opn, *resp;
    char msg[300];

    if (!req || !json_is_object(req)) {
        snprintf(msg, sizeof(msg), "Invalid JSON body: %s (line %d, column %d)",
                 req ? "expected an object" : je.text, je.line, je.column);
        sim_reply_json(reply, 400, gql_error_body(msg));
        goto out;
    }
    q = json_object_get(req, "query");
    vars = json_object_get(req, "variables");
    opn = json_object_get(req, "operationName");
    if (!json_is_string(q)) {
        sim_reply_json(reply, 400, gql_error_body("No query string was present"));
        goto out;
    }
    if (vars && !json_is_null(vars) && !json_is_object(vars)) {
        sim_reply_json(reply, 400, gql_error_body("\"variables\" must be an object"));
        goto out;
    }
    if (opn && !json_is_null(opn) && !json_is_string(opn)) {
        sim_reply_json(reply, 400, gql_error_body("\"operationName\" must be a string"));
        goto out;
    }
    resp = gql_execute(schema, ud, NULL, json_string_value(q), json_string_length(q),
                       json_string_value(opn), json_is_object(vars) ? vars : NULL);
    sim_reply_json(reply, resp ? 200 : 500, resp ? resp : gql_error_body("out of memory"));
out:
    json_decref(req);
}

void sim_mapped_graphql(struct sim_graph *g, const char *body, size_t len, int64_t now_mono_ms,
                        struct sim_reply *reply)
{
    struct mctx c = {g, now_mono_ms};

    sim_graphql_request(&mapped_schema, &c, body, len, reply);
}
