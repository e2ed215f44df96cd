/*
 * delivery.h - deliver records to one destination, and run the import job
 * of an employee directory (staging, commit).
 *
 * Records flow through stages, one file each in src/delivery/:
 *   input.c    positions in the inputs, resume, malformed records, error budget
 *   shape.c    exclude, employee mapping (upsert_employees), form encoding
 *   batcher.c  open batches per URL (one request never mixes URLs), max_bytes,
 *              duplicates in a batch, the window of unacknowledged batches
 *   request.c  URL templates, which host gets the key, body framing (array,
 *              property, Lua, ndjson), headers, preview
 *   sender.c   libcurl multi, adaptive concurrency, retries, Retry-After pauses
 *   outcome.c  accepted / dead-lettered, checkpoint position, webhook reports
 *   job.c      the import job: staging DELETE once per job, the commit exactly
 *              once, the commit guard
 *
 * Outcomes come from osc_retry_classify(): sent (a 2xx; rows the answer
 * names as skipped, {"errors":[{"index":N}]}, are dead-lettered alone);
 * retry (408, 429, 5xx, transport errors: capped full-jitter backoff,
 * Retry-After honoured up to max_retry_wait, beyond which the batch is
 * dead-lettered; a 429/503 with Retry-After pauses the whole destination;
 * retry.max_attempts and retry.max_elapsed bound each batch); reject (other
 * statuses: the batch's records go to the dead-letter file). 401/403 before
 * anything was accepted, and a permanent transport error (certificate,
 * CA file, scheme), stop the destination: what was not sent stays unsent.
 *
 * Memory: at most window + open-group batches exist; each keeps its body
 * and the compact original records (for dead letters). Not thread-safe.
 */
#ifndef OSC_DELIVERY_H
#define OSC_DELIVERY_H

#include <stdint.h>
#include <stdio.h>

#include "osc/checkpoint.h"
#include "osc/clock.h"
#include "osc/config.h"
#include "osc/err.h"
#include "osc/http.h"
#include "osc/records.h"

/* One API call, as reported to the response webhook and to opts.on_call. */
struct osc_delivery_call {
    const char *request_id;
    const char *destination;
    const char *method;
    const char *url;
    const char *const *headers; /* the non-auth request headers, NULL-terminated */
    const char *body;
    size_t body_len;
    size_t records;
    unsigned attempt;                     /* 1 for the first try */
    const struct osc_http_response *resp; /* NULL in preview and dry-run */
    enum osc_http_outcome outcome;
};

/* What became of one record offered with osc_delivery_add_tagged() (stream sources). */
enum osc_delivery_fate {
    OSC_DELIVERY_ACCEPTED = 0,  /* the API took it (a 2xx for its batch) */
    OSC_DELIVERY_DEAD_LETTERED, /* refused or not deliverable; its dead letter is written */
    OSC_DELIVERY_RETRY_LATER    /* not delivered for now (unavailable, stopped): redeliver it */
};

struct osc_delivery_opts {
    int dry_run;         /* build every request, send none */
    FILE *preview;       /* print each request here instead of sending (implies dry_run) */
    const char *commit;  /* overrides the destination's commit: ("" = none) */
    int single_request;  /* `test`: one record per request, no staging, no commit */
    const char *payload; /* `test --payload`: this body, verbatim (borrowed) */
    size_t payload_len;
    const struct osc_clock *clock; /* NULL: the system clocks */
    uint64_t seed;                 /* backoff jitter; 0: from the clock */
    /* called for every API call (after the webhook is queued); may be NULL */
    void (*on_call)(void *ud, const struct osc_delivery_call *call);
    /* called from waits at most every 250 ms (progress lines); may be NULL */
    void (*tick)(void *ud);
    void *ud;
    const char *dead_letter; /* overrides the destination's dead_letter path */
    /* stop reading when *interrupt becomes non-zero (a signal); may be NULL */
    volatile int *interrupt;
    int append;         /* upsert_employees: stage into the open job, never clear staging */
    int force;          /* commit: override the guard, unresolved records, an unknown outcome */
    int commit_only;    /* run only the commit step of the destination's import job */
    int allow_inactive; /* preview and test may use an inactive destination */
    /*
     * Stream sources (osc_delivery_add_tagged()): called once per tagged record when its fate
     * is known, from the thread that drives the delivery. With it set, a batch that gives up
     * after its retries is not dead-lettered: its records are RETRY_LATER (the source
     * redelivers them, e.g. a JetStream nak). May be NULL.
     */
    void (*on_record)(void *ud, uint64_t tag, enum osc_delivery_fate fate);
    int64_t flush_interval_ms; /* osc_delivery_poll() sends a batch open this long (0: never) */
};

struct osc_delivery_stats {
    uint64_t records;       /* records offered (valid and malformed) */
    uint64_t malformed;     /* unreadable input records */
    uint64_t invalid;       /* readable, but not deliverable (no EmployeeId/Email, URL field...) */
    uint64_t sent;          /* accepted by the API */
    uint64_t rejected;      /* refused by the API (4xx) */
    uint64_t unavailable;   /* given up after retries */
    uint64_t unsent;        /* never sent (the run was stopped) */
    uint64_t dead_lettered; /* lines written to the dead-letter file */
    uint64_t requests;      /* API calls made, retries included */
    uint64_t retries;
    uint64_t max_in_flight; /* most requests that were in flight at once */
    uint64_t webhook_failed;
    int auth_failed; /* 401/403 on the first request */
    int fatal;       /* a permanent transport error stopped the destination */
    /* 0 none, 1 triggered, -1 refused (a rule: nothing was sent), -2 the trigger failed
     * (refused or given up: not applied), -3 its outcome is unknown (may be applied) */
    int commit;
    char commit_reason[512];
    int cp_error;              /* the checkpoint could not be written */
    int too_many_errors;       /* malformed and unmappable records passed max_errors */
    uint64_t warnings_dropped; /* per-record warnings not logged (after the first 20) */
    int dead_letter_error;     /* the dead-letter file could not be written */
    int interrupted;           /* reading stopped early (a signal); the checkpoint stays */
    uint64_t skipped; /* records before the checkpoint: done by earlier runs, not read again */
    int resumed;      /* a checkpoint was found and used */
    int gave_up;      /* the staging DELETE or the import trigger was given up after retries */
    double seconds;
};

struct osc_delivery;

/*
 * Prepare delivery to destination dest_name of cfg (both borrowed for the
 * life of the delivery). Returns a delivery the caller frees with
 * osc_delivery_free(), or NULL with err set: OSC_ECONFIG (unknown or
 * inactive destination, bad URL template, Lua code that does not load),
 * OSC_ENOMEM.
 */
struct osc_delivery *osc_delivery_new(const struct osc_config *cfg, const char *dest_name,
                                      const struct osc_delivery_opts *opts, struct osc_err *err);
void osc_delivery_free(struct osc_delivery *d);

/*
 * Offer one valid record (from osc_records_next(); copied as needed). May
 * wait for a free batch while requests are in flight. Returns 0 (the
 * record was queued, or rejected locally and dead-lettered), OSC_EAUTH when
 * the API refused the key (stop reading), OSC_EUNAVAIL when the destination
 * was stopped (a permanent transport error), OSC_EIO / OSC_EDB when the
 * dead-letter file or the checkpoint cannot be written, or OSC_EINTERRUPTED
 * when opts.interrupt was set while it waited (the record was not taken).
 */
int osc_delivery_add(struct osc_delivery *d, const struct osc_record *rec);

/* Report an unreadable record (rec from osc_records_next() == OSC_EDATA). */
int osc_delivery_malformed(struct osc_delivery *d, const struct osc_record *rec,
                           const char *reason);

/*
 * osc_delivery_add() and osc_delivery_malformed() for a record whose fate the caller
 * wants to hear (opts.on_record) with tag, e.g. to acknowledge a stream message only once
 * OfficeSpace accepted it.
 */
int osc_delivery_add_tagged(struct osc_delivery *d, const struct osc_record *rec, uint64_t tag);
int osc_delivery_malformed_tagged(struct osc_delivery *d, const struct osc_record *rec,
                                  const char *reason, uint64_t tag);

/*
 * For a delivery fed continuously (osconnect run): send the batches that were open longer
 * than opts.flush_interval_ms, then drive transfers for at most wait_ms. Returns the
 * number of batches still queued, in flight or waiting for a retry.
 */
size_t osc_delivery_poll(struct osc_delivery *d, long wait_ms);

/*
 * Send what is still open, wait for every request (retries included; once
 * opts.interrupt is set, not for retries: they stay unsent, and a rerun
 * resumes them), then run the commit step if one is configured and every
 * batch was accepted.
 * For a trigger_directory_import destination this sends the trigger. The
 * webhook queue is drained for at most a few seconds. Returns 0 or
 * OSC_EAUTH / OSC_EIO.
 */
int osc_delivery_finish(struct osc_delivery *d);

/*
 * Read path ("-" or NULL: stdin) with osc_records_open() and offer each
 * record to d: valid ones to osc_delivery_add(), malformed ones to
 * osc_delivery_malformed(). Stops after max_records records when it is not
 * 0. Returns 0; OSC_ENOINPUT (err set) when the input cannot be opened;
 * OSC_EAUTH / OSC_EIO when delivery must stop; OSC_EIO on a read error.
 */
int osc_delivery_feed(struct osc_delivery *d, const char *path, enum osc_records_format format,
                      uint64_t max_records, struct osc_err *err);
#define OSC_DELIVERY_RESTART   1 /* forget a saved position; start a new import job */
#define OSC_DELIVERY_NO_RESUME 2 /* keep no position (the import job is still kept) */

/*
 * Before the first feed: take the checkpoint file c (borrowed until
 * osc_delivery_free()) for a run over inputs paths[0..n) (in feed order;
 * "-" is stdin). The run key is the destination plus every input's
 * identity; a saved position of the same run in the same import job is
 * resumed: inputs and records before it are skipped.
 *
 * For upsert_employees this is also where the import job is decided, and
 * refused (OSC_EUSAGE, err says why and what to run instead) when: an input
 * is a dead-letter file and opts.append is not set (resending dead letters
 * must not clear the staging they belong to); the source's job has its
 * commit sent with an unknown outcome (unless RESTART); or the source's job
 * staged records that were never committed and this is another run of it
 * (unless RESTART, or opts.append, which adds to that job).
 *
 * Returns 1 when resuming, 0 when starting fresh, OSC_EUSAGE, OSC_EDB.
 */
int osc_delivery_checkpoint(struct osc_delivery *d, struct osc_checkpoint *c,
                            const char *const *paths, size_t n, int flags, struct osc_err *err);

/*
 * The default checkpoint file of destination dest: next to its dead-letter
 * file (NAME.dead.jsonl -> NAME.checkpoint.db; dead_letter overrides the
 * configured one). A trigger_directory_import destination shares the file
 * of the upsert_employees destination that stages its source. Caller frees.
 * NULL on ENOMEM or when dest is unknown.
 */
char *osc_delivery_checkpoint_path(const struct osc_config *cfg, const char *dest,
                                   const char *dead_letter);

/* What a delivery is doing (progress lines); the opts.tick hook runs when it changes. */
enum osc_delivery_phase {
    OSC_DELIVERY_PHASE_SENDING = 0, /* reading, batching and sending records */
    OSC_DELIVERY_PHASE_CLEARING,    /* the import job's staging DELETE */
    OSC_DELIVERY_PHASE_COMMITTING   /* the commit step: its checks, then the trigger */
};
enum osc_delivery_phase osc_delivery_phase(const struct osc_delivery *d);

/* Progress of the input being fed: bytes read and its size (-1 unknown). */
void osc_delivery_progress(const struct osc_delivery *d, uint64_t *bytes, int64_t *size);
/* 1 when the destination takes no records (trigger_directory_import). */
int osc_delivery_takes_no_records(const struct osc_delivery *d);

void osc_delivery_get_stats(const struct osc_delivery *d, struct osc_delivery_stats *out);
/* Dead-letter file path (even when nothing was written). */
const char *osc_delivery_dead_letter_path(const struct osc_delivery *d);

/*
 * The exit status (sysexits) for a finished run: 0 all delivered; 77 the
 * key was refused; 74 the dead-letter file or the checkpoint could not be
 * written; 69 some records gave up after retries, the staging DELETE or the
 * commit gave up or was refused, or a permanent transport error stopped the
 * destination; 75 the run stopped before every record was sent (resume by
 * running it again), or the commit's outcome is unknown; 65 some records
 * were malformed, unmappable or rejected (all dead-lettered), more than
 * max_errors were, or the commit was refused by a rule.
 */
int osc_delivery_exit_code(const struct osc_delivery_stats *s);

#endif
