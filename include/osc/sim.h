/*
 * sim.h - the local OfficeSpace + Mapped simulator, embeddable in-process.
 *
 * One struct osc_sim serves two HTTP ports (libmicrohttpd, a thread per
 * connection): the Mapped GraphQL API (POST /graphql) and the OfficeSpace
 * REST (/api/1/...) + GraphQL (POST /graphql) APIs. Both ports also serve
 * the /_sim/... control endpoints (no auth). docs/simulator.md describes
 * the endpoints, the scenario format and the fault grammar.
 *
 * Life cycle: osc_sim_new() -> osc_sim_start() -> (ports known) ->
 * osc_sim_stop() -> osc_sim_free(). osc_sim_stop() may be called from any
 * thread except an MHD one; it waits for every connection to finish (held
 * requests are released at once). The simulator never logs from its server
 * threads and never touches process-wide state (signals, stdout).
 */
#ifndef OSC_SIM_H
#define OSC_SIM_H

#include <stdint.h>
#include <stdio.h>

#include "osc/clock.h"
#include "osc/err.h"

/* Default credentials (tests and other tools rely on these exact values). */
#define OSC_SIM_DEFAULT_OFFICESPACE_KEY  "sim-officespace-key-0123456789abcdef"
#define OSC_SIM_DEFAULT_MAPPED_TOKEN     "sim-mapped-token-0123456789abcdef"
#define OSC_SIM_DEFAULT_MAPPED_PORT      18080
#define OSC_SIM_DEFAULT_OFFICESPACE_PORT 18081

/*
 * What POST /api/1/employee_directory (and GraphQL employeeLoad) does with
 * a source's staging. REPLACE (the default): the staging becomes the
 * source's whole part of the directory; its employees missing from the
 * staging are deactivated. UPSERT: staged records are upserted, nobody is
 * deactivated. Both are guesses (officespace.md §1.3, §8).
 */
enum osc_sim_import_mode { OSC_SIM_IMPORT_REPLACE = 0, OSC_SIM_IMPORT_UPSERT = 1 };

struct osc_sim_opts {
    const char *listen;                   /* address to bind; NULL: 127.0.0.1 */
    int mapped_port;                      /* 0: pick a free port */
    int officespace_port;                 /* 0: pick a free port */
    const char *scenario_path;            /* .json/.yaml; NULL: the built-in demo */
    long generate_locations;              /* >0: generate a large scenario instead */
    long generate_points;                 /* with generate_locations (0: 5 per location) */
    const char *faults;                   /* fault rules (see docs); NULL: none */
    uint64_t seed;                        /* faults and random values; 0 means 1 */
    double rate_limit;                    /* requests per second per port; 0: unlimited */
    const char *officespace_key;          /* NULL: OSC_SIM_DEFAULT_OFFICESPACE_KEY */
    const char *graphql_key;              /* NULL: the officespace key */
    const char *mapped_token;             /* NULL: OSC_SIM_DEFAULT_MAPPED_TOKEN */
    int64_t max_body;                     /* request body cap in bytes; 0: 64 MiB */
    const struct osc_clock *clock;        /* NULL: system clocks; borrowed for the sim's life */
    enum osc_sim_import_mode import_mode; /* 0: OSC_SIM_IMPORT_REPLACE */
};

struct osc_sim;

/*
 * Load the scenario and prepare (nothing is bound yet). Strings in opts
 * are copied. Returns 0 and *out (free with osc_sim_free()), or
 * OSC_ENOINPUT / OSC_EDATA (bad scenario), OSC_EUSAGE (bad fault rules),
 * OSC_ENOMEM; err says what is wrong; *out is NULL on failure.
 */
int osc_sim_new(const struct osc_sim_opts *opts, struct osc_sim **out, struct osc_err *err);

/* Bind both ports and start serving. 0, or OSC_EIO with err (port taken...). */
int osc_sim_start(struct osc_sim *sim, struct osc_err *err);

/* The bound ports (valid after a successful start). */
int osc_sim_mapped_port(const struct osc_sim *sim);
int osc_sim_officespace_port(const struct osc_sim *sim);
/* The URLs as printed by `osconnect sim` (valid after start; owned by sim). */
const char *osc_sim_mapped_url(const struct osc_sim *sim);
const char *osc_sim_officespace_url(const struct osc_sim *sim);

/* Stop serving; safe to call twice or before start. */
void osc_sim_stop(struct osc_sim *sim);
/* Stop if needed and free everything. Accepts NULL. */
void osc_sim_free(struct osc_sim *sim);

/* Write the built-in demo scenario (JSON) to the stream; 0 or OSC_EIO. */
int osc_sim_dump_demo(FILE *out);

#endif
