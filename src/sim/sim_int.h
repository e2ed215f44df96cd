/*
 * sim_int.h - what the simulator's modules share (private to src/sim):
 * the reply a handler fills, the OfficeSpace state, the employee directory,
 * the Mapped surface, fault rules, the rate limiter and the request log.
 * server.c ties them to HTTP.
 *
 * Locking: the server holds one mutex (struct osc_sim.lock) around every
 * call into these modules; none of them locks on its own.
 */
#ifndef OSC_SIM_INT_H
#define OSC_SIM_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "graph.h"
#include "osc/sim.h"

/* A response. body is owned (malloc'd) and freed by the server. */
struct sim_reply {
    int status;
    char *body;
    size_t len;
    const char *ctype; /* static string */
    char hname[2][48]; /* extra headers ("" when unused) */
    char hval[2][128];
};

/* Serialise j into reply (takes the reference); status as given. */
void sim_reply_json(struct sim_reply *r, int status, json_t *j);
/* A plain-text reply (copied). */
void sim_reply_text(struct sim_reply *r, int status, const char *text);
void sim_reply_header(struct sim_reply *r, const char *name, const char *value);

/* Parse a form body "a=1&b=x%20y" into a new JSON object of strings. */
json_t *sim_form_parse(const char *body, size_t len);

/* ---- OfficeSpace (officespace.c) ---------------------------------------- */

struct sim_os;

/* New state seeded from the graph's identities and its "officespace" section;
 * mode is what a directory commit does. Caller frees with sim_os_free().
 * NULL when out of memory. */
struct sim_os *sim_os_new(const struct sim_graph *g, enum osc_sim_import_mode mode);
void sim_os_free(struct sim_os *os);

/*
 * An employee_batch_imports body, parsed and serialised without touching any
 * state, so the server can do that work outside its lock. Never NULL unless
 * out of memory; a body that cannot be read gives a batch that answers 400.
 * Caller frees with sim_batch_free() (accepts NULL).
 */
struct sim_batch;
struct sim_batch *sim_batch_prepare(const char *ctype, const char *body, size_t len);
void sim_batch_free(struct sim_batch *b);

/*
 * Serve a REST request under /api/1/ (rest: the path after "/api/1/",
 * query: object of query arguments, borrowed; body may be binary; pre: the
 * prepared batch of a POST employee_batch_imports, borrowed, or NULL).
 * now_wall_ms is for timestamps.
 */
void sim_os_rest(struct sim_os *os, const char *method, const char *rest, json_t *query,
                 const char *ctype, const char *body, size_t len, struct sim_batch *pre,
                 int64_t now_wall_ms, struct sim_reply *reply);
/* Serve POST /graphql (already authenticated). */
void sim_os_graphql(struct sim_os *os, const char *body, size_t len, int64_t now_wall_ms,
                    struct sim_reply *reply);

/* /_sim views (new references). */
json_t *sim_os_presence(const struct sim_os *os);
json_t *sim_os_presence_log(const struct sim_os *os, int64_t since);
/* GET /_sim/employees: detail 0 counts only, 1 ids only, 2 full records. */
void sim_os_employees(const struct sim_os *os, int detail, struct sim_reply *reply);
json_t *sim_os_resources(const struct sim_os *os);

/* ---- employee directory (directory.c) ------------------------------------ */

struct sim_dir;
struct osc_buf;

/* What one commit did: created + updated = the records it applied. */
struct sim_dir_counts {
    size_t created, updated;
    size_t reactivated; /* of updated: were deactivated before */
    size_t deactivated; /* replace mode: the source's employees missing from its staging */
};

/* New empty directory whose commits work as mode says (caller frees with
 * sim_dir_free()); NULL when out of memory. */
struct sim_dir *sim_dir_new(enum osc_sim_import_mode mode);
void sim_dir_free(struct sim_dir *d);
/* Append rec (borrowed; serialised) to source's staging under key (its
 * EmployeeId). 0, OSC_ENOMEM or OSC_ETOOBIG; nothing staged on failure. */
int sim_dir_stage(struct sim_dir *d, const char *source, const char *key, json_t *rec);
/* The same with the record already serialised: json is taken over on success only. */
int sim_dir_stage_text(struct sim_dir *d, const char *source, const char *key, char *json);
/* A batch is all or nothing: sim_dir_begin() (0 or OSC_ENOMEM) marks the
 * staging, sim_dir_undo() drops everything staged since, sim_dir_end() keeps it.
 * Nothing but staging may happen between begin and end/undo. */
int sim_dir_begin(struct sim_dir *d);
void sim_dir_undo(struct sim_dir *d);
void sim_dir_end(struct sim_dir *d);
/* Drop source's staged records; returns how many there were. */
size_t sim_dir_clear(struct sim_dir *d, const char *source);
/*
 * Commit source's staging: upsert each staged record into the live
 * directory by client_employee_id (a deactivated employee comes back), make
 * it the source's, and empty the staging. In replace mode, then deactivate
 * the source's active employees that were not in the staging (all of them
 * when it was empty). Fills *c. 0, or OSC_ENOMEM / OSC_ETOOBIG: then the
 * records before the failure are applied, nobody is deactivated, the
 * commit is not counted, and the staging is emptied all the same.
 */
int sim_dir_commit(struct sim_dir *d, const char *source, struct sim_dir_counts *c);
size_t sim_dir_staged(const struct sim_dir *d);
/* Active employees. */
size_t sim_dir_live(const struct sim_dir *d);
/* Employee id (active or not) by client_employee_id, or -1. */
int64_t sim_dir_find(const struct sim_dir *d, const char *cid);
/* Employee id exists (active or deactivated). */
int sim_dir_exists(const struct sim_dir *d, int64_t id);
/* Create an active employee from a record (PascalCase or snake_case;
 * borrowed; its Source/source keys are ignored) belonging to source (NULL:
 * none): the new id, or OSC_E* (< 0). */
int64_t sim_dir_create(struct sim_dir *d, json_t *rec, const char *source);
/* Merge rec into employee id (its source and active flag do not change).
 * 0, OSC_ENOTFOUND or OSC_ENOMEM (unchanged then). */
int sim_dir_update(struct sim_dir *d, int64_t id, json_t *rec);
int sim_dir_delete(struct sim_dir *d, int64_t id);
/* The REST shape of employee id, with "source" (null when none) and
 * "active" (new reference), NULL when absent. */
json_t *sim_dir_render(const struct sim_dir *d, int64_t id);
/* Append {"count":N,"response":[...]} of the active employees, filtered by
 * client_employee_id cid and by source when not NULL. */
int sim_dir_list(const struct sim_dir *d, const char *cid, const char *source, struct osc_buf *out);
/* Append the /_sim/employees view: detail 0 counts, 1 ids, 2 full records. */
int sim_dir_view(const struct sim_dir *d, int detail, struct osc_buf *out);

/* ---- Mapped (mapped.c) --------------------------------------------------- */

/* Serve POST /graphql (already authenticated) over g at now_mono_ms. */
void sim_mapped_graphql(struct sim_graph *g, const char *body, size_t len, int64_t now_mono_ms,
                        struct sim_reply *reply);
/* Run one GraphQL request body {query, variables, operationName} through
 * schema; shared by both surfaces. Fills reply (400 for a bad body). */
struct gql_schema;
void sim_graphql_request(const struct gql_schema *schema, void *ud, const char *body, size_t len,
                         struct sim_reply *reply);

/* ---- faults and rate limit (faults.c) -------------------------------------- */

enum sim_fault_kind {
    SIM_FAULT_STATUS = 0,
    SIM_FAULT_DELAY,
    SIM_FAULT_RESET,       /* close before applying: no response at all */
    SIM_FAULT_RESET_AFTER, /* apply, then close mid-body */
    SIM_FAULT_TIMEOUT
};

struct sim_fault_rule {
    enum sim_fault_kind kind;
    int status;            /* STATUS */
    int64_t delay_ms;      /* DELAY: the delay; TIMEOUT: how long to hold */
    double prob;           /* 0..1; 1 when not given */
    long count;            /* >0: applies to the next `count` matching requests; -1: unlimited */
    int64_t retry_after_s; /* -1: no Retry-After header */
    char path[128];        /* prefix; "" = all */
    char server[16];       /* "mapped", "officespace" or "" */
};

struct sim_faults {
    struct sim_fault_rule *v;
    size_t n;
    uint64_t rng;
    char text[1024]; /* the rule string, for /_sim/faults */
};

/* What the rules decided for one request. */
struct sim_fault_action {
    int64_t delay_ms;      /* wait this long first (0: none) */
    int status;            /* answer with this status (0: serve normally) */
    int64_t retry_after_s; /* -1: none */
    int reset;             /* 1: close before applying; 2: apply, then close mid-body */
    int64_t hold_ms;       /* >0: timeout rule, hold the request this long */
};

/* Parse rules into a new list (old contents replaced only on success).
 * Returns 0 or OSC_EINVAL with msg (cap bytes) saying what is wrong. */
int sim_faults_parse(struct sim_faults *f, const char *text, char *msg, size_t cap);
void sim_faults_free(struct sim_faults *f);
void sim_faults_eval(struct sim_faults *f, const char *server, const char *path,
                     struct sim_fault_action *out);
/* The rules as JSON (new reference). */
json_t *sim_faults_json(const struct sim_faults *f);

struct sim_bucket {
    double rate; /* tokens per second; 0 = unlimited */
    double tokens;
    int64_t last_ms;
    int started; /* last_ms is valid (a test clock may read 0) */
};
/* Take one token at now_ms; 0 when allowed, else the seconds to wait (>= 1). */
int64_t sim_bucket_take(struct sim_bucket *b, int64_t now_ms);

/* ---- request log (reqlog.c) ----------------------------------------------- */

#define SIM_REQLOG_MAX       10000
#define SIM_REQLOG_BODY_MAX  (64 * 1024)
#define SIM_REQLOG_BYTES_MAX (64L * 1024 * 1024)

struct sim_reqlog;

struct sim_reqlog *sim_reqlog_new(void);
void sim_reqlog_free(struct sim_reqlog *l);
/* Forget every entry; numbering restarts at 1. */
void sim_reqlog_clear(struct sim_reqlog *l);
/* Record a request (headers: object, taken over; body copied up to the cap).
 * Returns the request's sequence number. */
int64_t sim_reqlog_add(struct sim_reqlog *l, const char *server, const char *method,
                       const char *path, const char *query, json_t *headers, const char *body,
                       size_t len, int64_t wall_ms);
/* Set the status answered to request seq (if still in the ring). */
void sim_reqlog_status(struct sim_reqlog *l, int64_t seq, int status, const char *fault);
/* {"count":n,"requests":[...]} for seq > since and path starting with prefix (may be NULL). */
json_t *sim_reqlog_json(const struct sim_reqlog *l, int64_t since, const char *prefix);

#endif
