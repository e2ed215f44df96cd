/*
 * delivery_int.h - the stages of src/delivery and what flows between them
 * (not public).
 *
 * A record goes input.c -> shape.c (encoded bytes) -> request.c (its URL)
 * -> batcher.c (an open batch for that URL) -> request.c (the body framed,
 * headers) -> sender.c (sent, retried) -> outcome.c (accepted or
 * dead-lettered, checkpoint position, webhook). job.c runs the import job
 * around it (staging DELETE, commit). engine.c composes the stages: it owns
 * struct osc_delivery; shape, request, batcher, sender and outcome each own
 * one struct of their own and know nothing of the others but the batch.
 */
#ifndef OSC_DELIVERY_INT_H
#define OSC_DELIVERY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "concurrency.h"
#include "osc/buf.h"
#include "osc/checkpoint.h"
#include "osc/config.h"
#include "osc/delivery.h"
#include "osc/err.h"
#include "osc/http.h"
#include "osc/records.h"

#define DLV_MAX_USER_HEADERS 32
#define DLV_URL_MAX          8192

/* ---- the batch: what moves from the batcher to the sender and the outcome ---- */

enum dlv_bstate { DLV_FREE = 0, DLV_OPEN, DLV_READY, DLV_FLIGHT, DLV_WAIT };
enum dlv_bkind { DLV_DATA = 0, DLV_STAGING, DLV_COMMIT, DLV_QUERY };

struct dlv_sender;

#define DLV_REC_RESEND 1u /* a dead letter of a record the API refused, sent again */

/* One record of a batch: where it came from, and its original JSON in batch->orig. */
struct dlv_rec {
    uint64_t tag;          /* the source's (stream sources), for opts.on_record */
    uint64_t offset, line; /* where it starts in its input */
    uint64_t idx;          /* records offered before it in this run */
    uint32_t input;        /* index of its input */
    uint32_t flags;        /* DLV_REC_* */
    size_t off, len;
};

/* A key (hash of an EmployeeId or a lower-cased Email) seen in a batch, and its line. */
struct dlv_key_slot {
    uint64_t hash; /* 0: empty */
    uint64_t line;
};

struct dlv_batch {
    enum dlv_bstate state;
    enum dlv_bkind kind;
    uint64_t seq; /* order of opening (DLV_DATA): the window and the checkpoint position */
    struct osc_buf body;
    struct osc_buf orig;
    struct dlv_rec *recs;
    size_t nrecs, recs_alloc;
    char *url;
    const char *method;
    int auth;            /* send the OfficeSpace key with it */
    size_t max_response; /* 0: the client's */
    char ctype_line[160];
    char reqid_line[64];
    char request_id[40];
    const char *hdrs[DLV_MAX_USER_HEADERS + 3];
    unsigned attempts;
    int64_t opened_ms, first_ms, due_ms, sent_ms;
    struct osc_http_response resp;
    struct dlv_batch *next_ready;
    struct dlv_sender *snd;    /* while on the wire */
    uint64_t cc_ticket;        /* the concurrency controller's ticket of this attempt */
    int final;                 /* enum dlv_final, once it ended */
    struct dlv_key_slot *keys; /* upsert_employees: EmployeeIds and Emails in this batch */
    size_t keys_cap, nkeys;
};

/* ---- shape.c: a record as the destination wants it --------------------------- */

struct dlv_shape {
    const struct osc_conf_destination *dest;
    struct osc_employee_map *emap; /* upsert_employees */
    int form;                      /* key=value& of the top-level fields */
    const char *payload;           /* `test --payload`: this body (borrowed) */
    size_t payload_len;
    struct osc_buf filtered, tmp;
    struct osc_record_field *ffields; /* the fields of a filtered record */
};

int dlv_shape_init(struct dlv_shape *s, const struct osc_conf_destination *t, int form,
                   const char *payload, size_t payload_len, struct osc_err *err);
void dlv_shape_free(struct dlv_shape *s);
/*
 * Append rec, shaped (exclude, then the employee mapping or the format), to
 * out. Returns 0; OSC_EDATA with the reason in why when the record cannot
 * be delivered (no EmployeeId/Email, too large); out is then unchanged.
 */
int dlv_shape_encode(struct dlv_shape *s, const struct osc_record *rec, struct osc_buf *out,
                     char *why, size_t why_cap);
/* upsert_employees: the EmployeeId and Email of the last encoded record (JSON value text). */
void dlv_shape_last_keys(const struct dlv_shape *s, const char **id, size_t *id_len,
                         const char **email, size_t *email_len);

/* ---- request.c: URLs, who gets the key, bodies and headers ------------------- */

struct dlv_url_part {
    char *text; /* literal text, or the field name */
    int is_field;
};

struct dlv_request {
    const struct osc_config *cfg;
    const struct osc_conf_destination *dest;
    const char *method;
    struct dlv_url_part *parts;
    size_t nparts;
    int templated;   /* the URL has {field} parts: records are grouped by their URL */
    int auth;        /* the records' URL gets the key */
    char *fixed_url; /* the URL when not templated */
    char ctype_default[128];
    char *user_hdr[DLV_MAX_USER_HEADERS];
    size_t nuser_hdr;
    int user_ctype;
    char *prop_prefix; /* {"records":[ */
    char *prop_suffix; /* ],"other":1} */
    struct lua_batch *lua;
    int one_per_request; /* the record itself is the body */
    int ndjson;          /* format ndjson */
    int ndjson_lines;    /* ndjson without Lua: records joined by newlines */
    size_t overhead;     /* bytes a body adds around its records */
    uint64_t rng, seq;   /* request ids: osc-<run>-<seq> */
    uint32_t run;        /* drawn once: every request of one run shares it */
    struct osc_buf url, tmp;
};

/* Read the destination's request shape. 0, or OSC_ECONFIG/OSC_ENOMEM with err. */
int dlv_request_init(struct dlv_request *rq, const struct osc_config *cfg,
                     const struct osc_conf_destination *t, int single_request, int payload,
                     uint64_t seed, struct osc_err *err);
void dlv_request_free(struct dlv_request *rq);
/* The URL for rec (borrowed until the next call). OSC_EDATA with why when a field is missing. */
int dlv_request_url(struct dlv_request *rq, const struct osc_record *rec, const char **url,
                    char *why, size_t why_cap);
/* An absolute URL for a configured path or URL; caller frees. NULL on ENOMEM. */
char *dlv_request_abs_url(const struct dlv_request *rq, const char *path_or_url);
/* 1 when url (absolute) may receive the OfficeSpace key. */
int dlv_request_url_gets_key(const struct dlv_request *rq, const char *url);
/* Append one encoded record to b's body (all or nothing). 0 or OSC_ETOOBIG/OSC_ENOMEM. */
int dlv_request_append(struct dlv_request *rq, struct dlv_batch *b, const char *enc, size_t len);
/*
 * Finish b's body (closing bracket, property wrapper, or the Lua call),
 * give it a request id and its headers. 0, or OSC_ETOOBIG / OSC_EDATA
 * (err says what the Lua code did wrong): the batch cannot be sent.
 */
int dlv_request_close(struct dlv_request *rq, struct dlv_batch *b, struct osc_err *err);
/* A new request id and the headers for b (ctype NULL: none; user headers on data only). */
void dlv_request_prepare(struct dlv_request *rq, struct dlv_batch *b, const char *ctype);
/* Print b as it would be sent, every secret shown as ***. */
void dlv_request_preview(const struct dlv_request *rq, const struct dlv_batch *b, FILE *out);

/* ---- batcher.c: records into batches ----------------------------------------- */

struct dlv_batcher {
    struct dlv_batch *pool;
    size_t npool;
    size_t max_groups; /* open batches at once (one per URL) */
    size_t batch_size;
    size_t max_bytes;
    uint64_t next_seq;
    struct dlv_batch *last_open; /* the batch the previous record went to (a hint) */
};

/* npool batches, allocated once; their buffers are reused. 0 or OSC_ENOMEM. */
int dlv_batcher_init(struct dlv_batcher *bt, size_t npool, size_t max_groups, size_t batch_size,
                     size_t max_bytes);
void dlv_batcher_free(struct dlv_batcher *bt);
/* The open batch for url, or NULL. */
struct dlv_batch *dlv_batcher_find(struct dlv_batcher *bt, const char *url);
/* The open batch with the most records, and how many are open. */
struct dlv_batch *dlv_batcher_fullest(struct dlv_batcher *bt, size_t *open);
/* A free batch, reset, or NULL when all are in use. */
struct dlv_batch *dlv_batcher_take(struct dlv_batcher *bt);
/* Open b for url (a new sequence number). 0 or OSC_ENOMEM. */
int dlv_batcher_open(struct dlv_batcher *bt, struct dlv_batch *b, const char *url, int64_t now);
/* The smallest sequence number of a data batch not yet finished (next_seq when none). */
uint64_t dlv_batcher_oldest(const struct dlv_batcher *bt, const struct dlv_batch **oldest);
/*
 * 1 when b already holds a record for the same employee (id, or email
 * folded to lower case), with the reason in why; else the keys are noted.
 */
int dlv_batcher_duplicate(struct dlv_batch *b, size_t batch_size, const char *id, size_t id_len,
                          const char *email, size_t email_len, uint64_t line, char *why,
                          size_t why_cap);
/* Note rec (its position, its original JSON, its tag) in b. 0, or OSC_ENOMEM (b unchanged). */
int dlv_batcher_note(struct dlv_batch *b, const struct osc_record *rec, uint32_t input,
                     uint64_t idx, uint32_t flags, uint64_t tag);
/* Undo the last dlv_batcher_note() (its body could not be appended). */
void dlv_batcher_unnote(struct dlv_batch *b);
void dlv_batch_reset(struct dlv_batch *b);

/* ---- sender.c: requests on the wire ------------------------------------------ */

/* How a batch ended. */
enum dlv_final {
    DLV_ACCEPTED = 0, /* a 2xx */
    DLV_REJECTED,     /* refused by the API */
    DLV_GAVE_UP,      /* retries exhausted, or a Retry-After beyond max_retry_wait */
    DLV_UNSENT,       /* dropped: the destination was stopped */
    DLV_AUTH,         /* 401/403 before anything was accepted: the key is wrong */
    DLV_FATAL,        /* a permanent transport error (certificate, CA file, scheme) */
    DLV_UNBUILT       /* the request could not even be built */
};

struct dlv_sender_hooks {
    /* every API call (retries included), after it was classified */
    void (*call)(void *ud, struct dlv_batch *b, const struct osc_http_response *r,
                 enum osc_http_outcome o);
    /* a batch ended; reason is NULL for DLV_ACCEPTED */
    void (*final)(void *ud, struct dlv_batch *b, enum dlv_final f, const char *reason);
    void *ud;
};

struct dlv_sender {
    struct osc_http *http; /* NULL in dry runs */
    struct osc_cc *cc;
    const struct osc_conf_destination *dest;
    const char *secret;
    const struct osc_clock *clock;
    struct dlv_batch *pool; /* to find batches waiting for a retry */
    size_t npool;
    struct dlv_batch *ready_head, *ready_tail;
    int64_t paused_until;
    uint64_t rng;
    int dry_run;
    FILE *preview;
    const struct dlv_request *rq; /* for previews */
    int single_request;           /* `test`: no retries */
    int accepted;                 /* something was accepted: 401/403 no longer means "the key" */
    int stop;                     /* the destination was stopped: nothing more is submitted */
    uint64_t requests, retries, peak;
    struct dlv_sender_hooks hooks;
};

int dlv_sender_init(struct dlv_sender *s, const struct osc_config *cfg,
                    const struct osc_conf_destination *t, const struct osc_delivery_opts *opts,
                    const struct dlv_request *rq, struct dlv_batch *pool, size_t npool,
                    const struct dlv_sender_hooks *hooks, struct osc_err *err);
void dlv_sender_free(struct dlv_sender *s);
/* Queue a READY batch (front: a retry that is due goes before new work). */
void dlv_sender_queue(struct dlv_sender *s, struct dlv_batch *b, int front);
/*
 * Start what may start (due retries, queued batches, within the
 * concurrency limit and outside a pause), then drive transfers for at most
 * wait_ms. Returns the number of batches still busy (READY, FLIGHT, WAIT).
 */
size_t dlv_sender_pump(struct dlv_sender *s, long wait_ms);
/* Stop: drop what is queued or waiting (DLV_UNSENT); what is in flight finishes. */
void dlv_sender_stop(struct dlv_sender *s);
/*
 * Send b alone and wait for its final outcome, retrying by the policy
 * (retry != 0) or making exactly one attempt (retry == 0: *resp tells what
 * happened). Returns the final outcome.
 */
enum dlv_final dlv_sender_sync(struct dlv_sender *s, struct dlv_batch *b, int retry);

/* ---- outcome.c: where each record ends up ------------------------------------ */

struct dlv_outcome {
    const struct osc_conf_destination *dest;
    struct osc_deadletter *dl;
    struct webhook *webhook;
    int write_dead_letters; /* 0 in preview, dry run and `test` */
    int in_test;            /* `test`: say "not dead-lettered" instead of where to */
    uint64_t max_errors;
    uint64_t warnings; /* per-record warnings logged */
    struct osc_delivery_stats *st;
    uint64_t resolved; /* resent dead letters of API refusals that were accepted */
    void (*on_record)(void *ud, uint64_t tag, enum osc_delivery_fate fate);
    char **input_names;
    size_t ninput_names;
    void (*on_call)(void *ud, const struct osc_delivery_call *call);
    void *ud;
};

int dlv_outcome_init(struct dlv_outcome *o, const struct osc_conf_destination *t,
                     const char *dl_path, const struct osc_http_opts *ho, int write_dead_letters,
                     struct osc_delivery_stats *st, struct osc_err *err);
void dlv_outcome_free(struct dlv_outcome *o);
/* Remember the name of input i (for dead letters). 0 or OSC_ENOMEM. */
int dlv_outcome_input_name(struct dlv_outcome *o, uint32_t i, const char *name);
/* A batch ended (see enum dlv_final). Returns OSC_EIO when a dead letter failed. */
int dlv_outcome_final(struct dlv_outcome *o, struct dlv_batch *b, enum dlv_final f,
                      const char *reason);
/* Report one API call to the webhook and the caller's on_call. */
void dlv_outcome_call(struct dlv_outcome *o, struct dlv_batch *b, const struct osc_http_response *r,
                      enum osc_http_outcome oc);
/* A record that cannot be delivered (local), or cannot be read. 0 or OSC_EIO. */
int dlv_outcome_invalid(struct dlv_outcome *o, const struct osc_record *rec, const char *why,
                        uint64_t tag);
int dlv_outcome_malformed(struct dlv_outcome *o, const struct osc_record *rec, const char *why,
                          uint64_t tag);
/* 1 once malformed and unmappable records passed max_errors. */
int dlv_outcome_over_budget(const struct dlv_outcome *o);
/* Log how many warnings were not shown (once, at the end). */
void dlv_outcome_flush_warnings(struct dlv_outcome *o);

/* ---- the engine: the stages composed (engine.c, input.c, job.c) -------------- */

struct osc_delivery {
    const struct osc_config *cfg;
    const struct osc_conf_destination *dest;
    const struct osc_conf_destination *commit; /* the trigger destination; NULL: none */
    const struct osc_conf_destination *stager; /* the upsert_employees destination of the job */
    struct osc_delivery_opts opts;
    struct osc_delivery_stats st;
    char *dl_path;
    int64_t start_ms, last_tick;

    struct dlv_shape shape;
    struct dlv_request rq;
    struct dlv_batcher bt;
    struct dlv_sender snd;
    struct dlv_outcome out;
    struct osc_buf enc; /* the record being added, shaped */
    size_t window;      /* batches from the oldest unfinished one before reading pauses */
    unsigned since_pump;
    int stop;           /* no more records are taken (auth, fatal, dead letter, checkpoint) */
    int input_failed;   /* an input was not read to its end: the commit must not run */
    int failed_batches; /* batches not accepted in this run */

    /* inputs: the one being fed, and where the next unread record starts */
    struct osc_records_reader *reader;
    uint64_t bytes_done;
    uint32_t cur_input;
    uint64_t next_off, next_line, next_idx;

    /* checkpoint and import job (job.c) */
    struct osc_checkpoint *cp;
    char *cp_key;  /* this run's key; NULL: no run row */
    int cp_resume; /* positions are saved (not --no-checkpoint, not stdin) */
    struct osc_checkpoint_pos cp_pos, resume;
    int resuming;
    int has_job; /* upsert_employees with an import job (tracked in cp, or in memory) */
    struct osc_checkpoint_job job;
    int job_started; /* this run started the job: it clears the staging first */
    int staged;      /* the staging DELETE is done (or not needed) */
    int phase;       /* enum osc_delivery_phase, set by job.c */
};

/* input.c */
void dlv_position_update(struct osc_delivery *d, int force);

/* engine.c: offer one record (flags: DLV_REC_*). 0, or OSC_EAUTH / OSC_EUNAVAIL (the
 * destination was stopped), OSC_EIO (a dead letter failed), OSC_EDB (the checkpoint). */
int dlv_add(struct osc_delivery *d, const struct osc_record *rec, uint32_t flags, uint64_t tag);

/* job.c */
/* The dead-letter file of t: override, else dead_letter:, else NAME.dead.jsonl in the state
 * folder. Caller frees; NULL on ENOMEM. */
char *dlv_dead_letter_path(const struct osc_config *cfg, const struct osc_conf_destination *t,
                           const char *override);
int dlv_job_admit(struct osc_delivery *d, const char *const *paths, size_t n, int flags,
                  struct osc_err *err);
int dlv_job_clear_staging(struct osc_delivery *d);
void dlv_job_run_finished(struct osc_delivery *d);
void dlv_job_commit(struct osc_delivery *d);
const struct osc_conf_destination *dlv_job_stager(const struct osc_config *cfg,
                                                  const struct osc_conf_destination *t);

/* engine.c: drive transfers (and progress ticks) for at most wait_ms */
size_t dlv_pump(struct osc_delivery *d, long wait_ms);

/* ---- Lua grouping (lua_batch.c) ---------------------------------------- */

#define LUA_BATCH_MEM_LIMIT   (32u * 1024 * 1024)
#define LUA_BATCH_INSTR_LIMIT 50000000L

struct lua_batch;

/*
 * Load code (a chunk defining global function batch(records)) in a fresh
 * sandbox: base library without dofile/loadfile/load/require/collectgarbage,
 * string, table, math, utf8, plus json.encode/json.decode/json.null; no io,
 * os, package or debug. Memory and instructions are limited. Caller frees
 * with lua_batch_free(). NULL with err (OSC_ECONFIG) when the code does not
 * load or defines no batch function.
 */
struct lua_batch *lua_batch_new(const char *code, size_t len, const char *chunkname,
                                size_t mem_limit, long instr_limit, struct osc_err *err);
void lua_batch_free(struct lua_batch *lb);

/*
 * Call batch(records) with records decoded from the JSON array text
 * records_json. On success body receives the returned string and ctype the
 * returned content type ("application/json; charset=utf-8" when none, or
 * when a table is returned, which is JSON-encoded). Returns 0 or OSC_EDATA
 * (err says what the code did wrong) / OSC_ENOMEM.
 */
int lua_batch_run(struct lua_batch *lb, const char *records_json, size_t len, struct osc_buf *body,
                  char *ctype, size_t ctype_cap, struct osc_err *err);

/* ---- response webhook (webhook.c) --------------------------------------- */

#define WEBHOOK_QUEUE_MAX 256
#define WEBHOOK_ATTEMPTS  3

struct webhook;

/* POSTs JSON reports to url on its own HTTP client. NULL with err on failure. */
struct webhook *webhook_new(const char *url, const struct osc_http_opts *opts, struct osc_err *err);
void webhook_free(struct webhook *w);
/* Queue a copy of doc; when the queue is full the oldest report is dropped. */
void webhook_post(struct webhook *w, const char *doc, size_t len);
/* Start what can start and complete what finished; never blocks. */
void webhook_pump(struct webhook *w);
/* Wait until the queue is empty or deadline_ms (monotonic) passes. */
void webhook_drain(struct webhook *w, int64_t deadline_ms);
/* Reports given up (failed every attempt, or dropped from a full queue). */
uint64_t webhook_failed(const struct webhook *w);
uint64_t webhook_delivered(const struct webhook *w);

#endif
