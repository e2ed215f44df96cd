/*
 * graph.h - the simulated Mapped graph: places, things, points and how
 * point values evolve over time (private to src/sim).
 *
 * A graph is loaded from a scenario (JSON object; docs/simulator.md has the
 * format), from the compiled-in demo, or from the large-scenario generator.
 * After loading it is immutable except for the per-point override set at
 * run time (POST /_sim/points); the caller serialises access with its own
 * mutex. Values are a pure function of (scenario, seed, elapsed time,
 * override), so two runs with the same seed and clock see the same series.
 */
#ifndef OSC_SIM_GRAPH_H
#define OSC_SIM_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "osc/clock.h"
#include "osc/err.h"

#define SIM_NONE ((size_t)-1)

enum sim_kind { SIM_SITE = 0, SIM_BUILDING, SIM_FLOOR, SIM_SPACE, SIM_ZONE };

enum sim_vkind {
    SIM_V_FLOAT64 = 0,
    SIM_V_FLOAT32,
    SIM_V_INT64,
    SIM_V_INT32,
    SIM_V_UINT64,
    SIM_V_UINT32,
    SIM_V_BOOL,
    SIM_V_STRING
};

enum sim_behave { SIM_B_FIXED = 0, SIM_B_STEPS, SIM_B_CYCLE, SIM_B_RANDOM };

struct sim_identity {
    char *type; /* union member: "ExternalIdentity", "NameIdentity", ... */
    char *id;
    char *value;
    int officespace; /* 0: a valid URN whose entity must NOT exist in OfficeSpace */
};

struct sim_idlist {
    struct sim_identity *v;
    size_t n;
};

struct sim_place {
    enum sim_kind kind;
    char *id, *name, *description, *exact_type;
    long level;
    int has_level;
    size_t parent; /* index in places, SIM_NONE for none */
    struct sim_idlist ids;
    size_t *kids, nkids;     /* child places */
    size_t *points, npoints; /* points attached here */
    size_t *things, nthings; /* things located here */
};

struct sim_sample {
    int64_t at_ms; /* offset from start (steps) */
    int has_value;
    double num;
    char *str;
};

struct sim_value {
    int has_value;
    double num;
    const char *str; /* STRING points; borrowed from the graph */
    int64_t ts_ms;   /* wall clock */
};

struct sim_point {
    char *id, *name, *description, *exact_type, *mapping_key, *unit;
    enum sim_vkind vkind;
    enum sim_behave behave;
    struct sim_sample fixed;  /* FIXED (at_ms: timestamp offset) */
    struct sim_sample *steps; /* STEPS and CYCLE values */
    size_t nsteps;
    int64_t loop_ms;  /* STEPS: repeat period; 0 = no repeat */
    int64_t every_ms; /* CYCLE and RANDOM period */
    double min, max;  /* RANDOM */
    int random_float; /* RANDOM: real numbers instead of integers */
    uint64_t seed;    /* RANDOM: per point */
    int has_override;
    struct sim_sample override; /* at_ms is the absolute wall time */
    size_t place, thing;        /* owner (one of them), SIM_NONE otherwise */
    struct sim_idlist ids;
};

struct sim_thing {
    char *id, *name, *description, *exact_type, *mapping_key;
    size_t place;
    size_t *points, npoints;
    struct sim_idlist ids;
};

struct sim_graph {
    struct sim_place *places;
    size_t nplaces;
    struct sim_point *points;
    size_t npoints;
    struct sim_thing *things;
    size_t nthings;
    uint64_t seed;
    int64_t start_wall_ms;
    int64_t start_mono_ms;
    char *date_created;
    json_t *officespace; /* the scenario's "officespace" object (owned), or NULL */
};

/*
 * Build a graph from a scenario JSON object (borrowed). seed is used when
 * the scenario has none. clock may be NULL (system clocks). Returns 0 and
 * *out (caller frees with sim_graph_free()), or OSC_EDATA / OSC_ENOMEM with
 * err naming the offending element; *out is NULL then.
 */
int sim_graph_load(json_t *scenario, uint64_t seed, const struct osc_clock *clock,
                   struct sim_graph **out, struct osc_err *err);
void sim_graph_free(struct sim_graph *g);

/* Read a scenario file (.json, or .yaml/.yml via libyaml) into a new JSON value. */
int sim_scenario_read(const char *path, json_t **out, struct osc_err *err);
/* The compiled-in demo scenario (new reference). */
json_t *sim_scenario_demo(void);
/* A large scenario: about `locations` floors/spaces/zones and `points` points. */
json_t *sim_scenario_generate(long locations, long points, uint64_t seed);

/* Current latest value of a point at monotonic time now_mono_ms. */
void sim_point_value(const struct sim_graph *g, const struct sim_point *p, int64_t now_mono_ms,
                     struct sim_value *out);

/* Look up by id; SIM_NONE when absent. */
size_t sim_graph_find_point(const struct sim_graph *g, const char *id);

/* Set (has_value 1) or clear (0) a point's override; str may be NULL. 0 or OSC_ENOMEM. */
int sim_point_set(struct sim_point *p, int has_value, double num, const char *str, int64_t ts_ms);
/* Drop every override. */
void sim_graph_reset(struct sim_graph *g);

const char *sim_kind_name(enum sim_kind k);
const char *sim_vkind_name(enum sim_vkind k);
int sim_vkind_parse(const char *s, enum sim_vkind *out);

/* Parse "urn:officespace:{type}:id:{id}": 0 with type index (0 site, 1 floor,
 * 2 room, 3 neighborhood, 4 desk) and *id, or -1 when not a valid URN. */
int sim_urn_parse(const char *value, int *type, int64_t *id);

#endif
