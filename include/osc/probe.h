/*
 * probe.h - credential tests: one cheap authenticated request per API.
 *
 * Used by `osconnect check`. Each probe fills a struct osc_probe_result
 * that says, in one line, what was asked and what came back; a refused
 * credential is OSC_EAUTH, so the caller can exit with EX_NOPERM.
 */
#ifndef OSC_PROBE_H
#define OSC_PROBE_H

#include "osc/config.h"
#include "osc/http.h"

struct osc_probe_result {
    const char *name; /* "officespace rest", "officespace graphql", "mapped" */
    char method[8];
    char url[512];
    int code;    /* 0 or OSC_E* */
    long status; /* HTTP status, 0 if none */
    double seconds;
    char detail[384]; /* "3 sites", "key refused (HTTP 401)", ... */
};

/* REST: GET {rest_base}/api/1/sites with Authorization: Token token=KEY. */
int osc_probe_officespace_rest(struct osc_http *h, const struct osc_config *cfg,
                               struct osc_probe_result *r);
/* GraphQL: query { sites { id name } } with apikey: KEY. */
int osc_probe_officespace_graphql(struct osc_http *h, const struct osc_config *cfg,
                                  struct osc_probe_result *r);
/* Mapped: the presence buildings by id (or sites when none are set). */
int osc_probe_mapped(struct osc_http *h, const struct osc_config *cfg, struct osc_probe_result *r);

#endif
