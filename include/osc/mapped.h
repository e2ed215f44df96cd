/*
 * mapped.h - the Mapped GraphQL reader: discover OfficeSpace locations and
 * their occupancy points, and read the points' latest values.
 *
 * One query per building (Mapped does not paginate). A discovery query
 * asks for the building, its floors, the floors' spaces and zones, each
 * with its ExternalIdentity values and its occupancy points
 * (exactType in Occupancy_Status, Temporary_Occupancy_Status,
 * Occupancy_Count_Sensor, Occupancy_Sensor, PIR_Sensor) with
 * series(latest: true); a read query asks the same tree for point ids and
 * latest values only. Responses are walked with a streaming cursor, never
 * built into a tree, so a large building costs its response body plus the
 * topology, not a DOM several times the body's size.
 *
 * The topology is what discovery found: the OfficeSpace locations (one per
 * distinct URN), the points (one per Mapped point id) and the links between
 * them (a point linked once per location whose place lists it). Strings live
 * in the topology's arena; everything is freed by osc_mapped_topo_free().
 */
#ifndef OSC_MAPPED_H
#define OSC_MAPPED_H

#include <stddef.h>
#include <stdint.h>

#include "osc/buf.h"
#include "osc/config.h"
#include "osc/err.h"
#include "osc/http.h"
#include "osc/presence.h"
#include "osc/urn.h"

struct osc_mapped_loc {
    struct osc_urn urn;
    const char *place_id;   /* first Mapped place carrying the URN (arena) */
    const char *place_name; /* its name, "" if none (arena) */
    const char *place_kind; /* "Building", "Floor", "Space", "Zone" (static) */
    uint32_t nplaces;       /* Mapped places carrying this URN (>1 is reported) */
};

struct osc_mapped_point {
    const char *id; /* arena */
    enum osc_point_kind kind;
    int has_value; /* a finite latest value was read */
    double value;
    int64_t at_ms;       /* its timestamp */
    int linked;          /* a location uses it (a place with an identity lists it) */
    int bad_warned;      /* an unusable value was logged; quiet until a usable one is read */
    const char *bad_why; /* discovery: an unusable value, reported once the point is linked */
};

struct osc_mapped_link {
    uint32_t loc, point;
};

struct osc_mapped_topo {
    struct osc_mapped_loc *locs;
    size_t nlocs;
    struct osc_mapped_point *points;
    size_t npoints;
    struct osc_mapped_link *links; /* sorted by (loc, point), unique after _finish */
    size_t nlinks;
    size_t npoints_used; /* points linked to a location (after _finish) */
    /* discovery report */
    size_t places;             /* places seen */
    size_t invalid_identities; /* urn:officespace: values that do not parse */
    size_t conflicting_places; /* places with more than one distinct valid URN */
    size_t shared_urns;        /* URNs found on more than one place */
    /* last read; only points a location uses count (points of places without
     * an identity are read along but neither counted nor reported) */
    size_t values_read; /* points with a finite value */
    size_t bad_values;  /* NaN, infinite or non-numeric values */
    /* malformed parts of answers that were skipped (a place id that is not a string, a series
     * that is not a list, ...): counted per walk, each logged once per place and problem for
     * the topology's lifetime (and its successors', see osc_mapped_topo_keep_notes) */
    size_t malformed;
    /* private */
    size_t locs_cap, points_cap, links_cap;
    uint32_t *pt_hash, *loc_hash;
    size_t pt_hash_cap, loc_hash_cap;
    struct osc_mapped_arena *arena;
    uint64_t *notes; /* hashes of the malformed-part warnings already logged */
    size_t nnotes, notes_cap;
};

/* New empty topology; caller frees with osc_mapped_topo_free(). NULL on ENOMEM. */
struct osc_mapped_topo *osc_mapped_topo_new(void);
void osc_mapped_topo_free(struct osc_mapped_topo *t);
/* Move the warnings src already logged to dst (a new topology replacing src). */
void osc_mapped_topo_keep_notes(struct osc_mapped_topo *dst, struct osc_mapped_topo *src);
/* Forget every point's value (before a read). */
void osc_mapped_topo_clear_values(struct osc_mapped_topo *t);
/* Sort and de-duplicate the links; count the used points and their values (after discovery). */
void osc_mapped_topo_finish(struct osc_mapped_topo *t);
/* Point index by Mapped id, or -1. */
long osc_mapped_topo_point(const struct osc_mapped_topo *t, const char *id, size_t len);

/*
 * The HTTP body ({"query": "..."}) for the buildings ids[0..n) (one
 * buildings(filter: {id: {in: [...]}}) query). discover != 0 asks for names
 * and identities too. Returns 0, OSC_EINVAL (n is 0, or an id is empty, too
 * long, or contains a quote, backslash or control character) or
 * OSC_ENOMEM/OSC_ETOOBIG; out is reset first.
 */
int osc_mapped_query(const char *const *ids, size_t n, int discover, struct osc_buf *out);

/*
 * Walk one building response. discover != 0 adds locations, points, links
 * and values to t (reporting invalid and conflicting identities as WARN log
 * lines naming the Mapped id and the value, and counting them in t);
 * discover == 0 only sets the values of points t already knows. A part of
 * valid JSON with the wrong shape (a place or point id that is not a
 * non-empty string, a name, identity value or exactType that is not a
 * string, identities/points/floors/spaces/zones/series that are not lists,
 * list members or a row value that are not objects) is skipped with the
 * rest of what it belongs to, counted in t->malformed and logged (WARN) once
 * per place and problem, naming the place (its id, or its kind, position,
 * name and parent) and what is wrong. null where a list or object is
 * expected is normal in GraphQL and skipped silently. A top-level "errors"
 * array, a "buildings" that is not a list, and JSON syntax errors fail the
 * whole response. Returns 0, OSC_EPROTO (not JSON, GraphQL errors; err says
 * which) or OSC_ENOMEM. On failure t may hold part of the response; callers
 * discard it.
 */
int osc_mapped_parse(struct osc_mapped_topo *t, const char *json, size_t len, int discover,
                     struct osc_err *err);

/*
 * The number in one TimeseriesRowValue object (JSON text): the first
 * non-null of float64Value, float32Value, int64Value, int32Value,
 * uint64Value, uint32Value (numbers, or strings of digits for the 64-bit
 * ones), boolValue (0/1), stringValue (if it parses as a number).
 * Returns 0 and *out, OSC_ENOTFOUND when every member is null or absent,
 * or OSC_EDATA when the value is NaN, infinite or not a number.
 */
int osc_mapped_value_parse(const char *json, size_t len, double *out);

/*
 * Query the buildings ids[0..n) in one request and parse the answer into t
 * (see osc_mapped_parse).
 * Returns 0; OSC_EAUTH (401/403); OSC_EUNAVAIL (429, 5xx, transport:
 * *retry_after_ms set from Retry-After, or -1); OSC_EREJECTED (other
 * statuses); OSC_ETOOBIG (response larger than max_response); OSC_EPROTO.
 */
int osc_mapped_fetch(struct osc_http *h, const struct osc_conf_mapped *m, size_t max_response,
                     const char *const *ids, size_t n, int discover, struct osc_mapped_topo *t,
                     int64_t *retry_after_ms, struct osc_err *err);

#endif
