/*
 * fuzz_gql.c - libFuzzer harness for the simulator's GraphQL engine: any
 * bytes are parsed (must give a document or a positioned syntax error), and
 * when they are valid UTF-8 they also go through validation and execution
 * over a small Mapped graph and the OfficeSpace schema (queries and the
 * createEmployeePresence mutation), as a request body's "query" would.
 * Never a crash, a leak, or unbounded work.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/sim/gql.h"
#include "../../src/sim/sim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char scenario[] =
    "{\"buildings\": [{\"id\": \"B1\", \"name\": \"B\", \"identities\": "
    "[\"urn:officespace:site:id:1\","
    " {\"type\": \"NameIdentity\", \"value\": \"n\"}], \"floors\": [{\"id\": \"F1\", \"level\": 1,"
    " \"spaces\": [{\"id\": \"S1\", \"points\": [{\"id\": \"P1\", \"exactType\": "
    "\"Occupancy_Status\","
    " \"value\": 1}, {\"id\": \"P2\", \"valueType\": \"int32\", \"steps\": [{\"at\": \"0s\", "
    "\"value\": 2}]}]}],"
    " \"zones\": [{\"id\": \"Z1\"}]}]}],"
    " \"things\": [{\"id\": \"T1\", \"location\": \"F1\", \"points\": [{\"id\": \"P3\", \"value\": "
    "\"x\"}]}]}";

static struct sim_graph *graph;
static struct sim_os *os;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gql_doc *doc = NULL;
    struct gql_error err;
    json_t *q, *body;
    char *text;

    if (!graph) {
        json_t *sc = json_loads(scenario, 0, NULL);
        struct osc_err e;
        memset(&e, 0, sizeof(e));
        if (!sc || sim_graph_load(sc, 1, NULL, &graph, &e))
            abort();
        json_decref(sc);
        if (!(os = sim_os_new(graph, OSC_SIM_IMPORT_REPLACE)))
            abort();
    }
    if (gql_parse((const char *)data, size, &doc, &err) == 0) {
        if (!doc)
            abort();
        gql_doc_free(doc);
    } else if (err.line == 0 || err.col == 0 || !err.msg[0]) {
        abort(); /* every syntax error says what and where */
    }
    q = json_stringn((const char *)data, size);
    if (!q)
        return 0; /* not UTF-8: no JSON body can carry it */
    body = json_pack("{s:o,s:{s:[s]}}", "query", q, "variables", "ids", "B1");
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (text) {
        struct sim_reply r;
        memset(&r, 0, sizeof(r));
        sim_mapped_graphql(graph, text, strlen(text), 0, &r);
        if (r.status != 200 && r.status != 400)
            abort();
        free(r.body);
        memset(&r, 0, sizeof(r));
        sim_os_graphql(os, text, strlen(text), 1700000000000LL, &r);
        if (r.status != 200 && r.status != 400)
            abort();
        free(r.body);
    }
    free(text);
    json_decref(body);
    return 0;
}
