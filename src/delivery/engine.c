/*
 * engine.c - the delivery engine: composes the stages (see delivery_int.h)
 * and owns what is shared between them: the stats, the window of
 * unacknowledged batches and the stop flag.
 *
 * Invariants:
 * - Reading pauses while the oldest unfinished batch is `window` batches
 *   behind the newest (max_in_flight; when adaptive, twice the limit in use,
 *   at most 2 x max_in_flight_limit), so after a crash at most that many
 *   batches are sent again, however long one batch waits for its retries.
 * - Once stopped (the key was refused, a permanent transport error, a
 *   dead letter or a checkpoint that could not be written), no record is
 *   taken and nothing more is sent; the saved position stays before every
 *   record that is not done.
 */
#include "osc/delivery.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery_int.h"
#include "osc/clock.h"
#include "osc/log.h"

#define MAX_GROUPS_TEMPLATED 4
#define TICK_MS              250
#define WEBHOOK_DRAIN_MS     5000
#define PUMP_EVERY           64

static int64_t now_ms(const struct osc_delivery *d) { return osc_clock_mono_ms(d->opts.clock); }

/* ---- the stages' hooks --------------------------------------------------------- */

static void on_call(void *ud, struct dlv_batch *b, const struct osc_http_response *r,
                    enum osc_http_outcome o)
{
    struct osc_delivery *d = ud;
    dlv_outcome_call(&d->out, b, r, o);
}

static void on_final(void *ud, struct dlv_batch *b, enum dlv_final f, const char *reason)
{
    struct osc_delivery *d = ud;
    uint64_t rejected = d->st.rejected;

    if (f == DLV_AUTH || f == DLV_FATAL)
        d->stop = 1; /* first: the position must not move past what is dropped now */
    dlv_outcome_final(&d->out, b, f, reason);
    if (b->kind != DLV_DATA)
        return;
    if (f != DLV_ACCEPTED || d->st.rejected != rejected)
        d->failed_batches++;
    if (d->st.dead_letter_error)
        d->stop = 1;
    dlv_position_update(d, 0);
    if (d->st.cp_error)
        d->stop = 1;
}

static void tick(struct osc_delivery *d)
{
    int64_t now;

    if (!d->opts.tick)
        return;
    now = now_ms(d);
    if (now - d->last_tick >= TICK_MS) {
        d->last_tick = now;
        d->opts.tick(d->opts.ud);
    }
}

size_t dlv_pump(struct osc_delivery *d, long wait_ms)
{
    size_t busy;

    if (d->stop && !d->snd.stop)
        dlv_sender_stop(&d->snd);
    busy = dlv_sender_pump(&d->snd, wait_ms);
    webhook_pump(d->out.webhook);
    tick(d);
    return busy;
}

/* ---- setup ---------------------------------------------------------------------- */

void osc_delivery_free(struct osc_delivery *d)
{
    if (!d)
        return;
    dlv_sender_free(&d->snd); /* first: aborts transfers that point into batches */
    dlv_outcome_free(&d->out);
    dlv_batcher_free(&d->bt);
    dlv_request_free(&d->rq);
    dlv_shape_free(&d->shape);
    osc_buf_free(&d->enc);
    free(d->dl_path);
    free(d->cp_key);
    free(d);
}

/* The one active trigger_directory_import destination of t's source, or NULL. */
static const struct osc_conf_destination *only_trigger(const struct osc_config *cfg,
                                                       const struct osc_conf_destination *t)
{
    const struct osc_conf_destination *all = cfg->destinations.items, *found = NULL;

    for (size_t i = 0; i < cfg->destinations.n; i++)
        if (all[i].template_ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT && all[i].active &&
            strcmp(all[i].source_name, t->source_name) == 0) {
            if (found)
                return NULL;
            found = &all[i];
        }
    return found;
}

static int pick_commit(struct osc_delivery *d, const char *commit, struct osc_err *err)
{
    const struct osc_conf_destination *t = d->dest;

    if (!commit || !commit[0] || d->opts.single_request)
        return 0;
    if (!(d->commit = osc_config_destination(d->cfg, commit)))
        return osc_err_set(err, OSC_ECONFIG, "--commit: no destination '%s' in %s", commit,
                           d->cfg->path);
    if (d->commit->template_ != OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT)
        return osc_err_set(err, OSC_ECONFIG,
                           "commit destination %s must have template: trigger_directory_import",
                           commit);
    if (!d->commit->active)
        return osc_err_set(err, OSC_ECONFIG, "commit destination %s is inactive", commit);
    if (t->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES &&
        strcmp(d->commit->source_name, t->source_name) != 0)
        return osc_err_set(err, OSC_ECONFIG,
                           "destination %s stages source '%s' but commit destination %s triggers "
                           "source '%s'; set the same source_name on both",
                           t->name, t->source_name, commit, d->commit->source_name);
    return 0;
}

struct osc_delivery *osc_delivery_new(const struct osc_config *cfg, const char *dest_name,
                                      const struct osc_delivery_opts *opts, struct osc_err *err)
{
    const struct osc_conf_destination *t = osc_config_destination(cfg, dest_name);
    struct osc_delivery *d = NULL;
    struct osc_http_opts ho = {0};
    struct dlv_sender_hooks hooks = {on_call, on_final, NULL};
    size_t limit, groups;
    int rc;

    if (!t) {
        osc_err_set(err, OSC_ECONFIG, "no destination '%s' in %s", dest_name, cfg->path);
        return NULL;
    }
    if (!t->active && !(opts && opts->allow_inactive)) {
        osc_err_set(err, OSC_ECONFIG,
                    "destination %s is inactive (active: false in %s); preview and test work on "
                    "it, send needs active: true",
                    t->name, cfg->path);
        return NULL;
    }
    if (!(d = calloc(1, sizeof(*d))))
        goto nomem;
    d->cfg = cfg;
    d->dest = t;
    if (opts)
        d->opts = *opts;
    if (d->opts.preview)
        d->opts.dry_run = 1;
    osc_buf_init(&d->enc, 1u << 26);
    d->start_ms = d->last_tick = now_ms(d);
    if (pick_commit(d, d->opts.commit ? d->opts.commit : t->commit, err))
        goto fail;
    if (!d->opts.single_request) {
        d->stager = dlv_job_stager(cfg, t);
        d->has_job = d->stager != NULL;
        if (d->opts.commit_only && t->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES && !d->commit)
            d->commit = only_trigger(cfg, t);
        if (d->opts.commit_only && t->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES &&
            !d->commit) {
            osc_err_set(err, OSC_ECONFIG,
                        "destination %s has no commit: destination, and not exactly one "
                        "trigger_directory_import destination has its source (set commit:, or "
                        "--commit NAME)",
                        t->name);
            goto fail;
        }
    }
    if ((rc = dlv_request_init(
             &d->rq, cfg, t, d->opts.single_request, d->opts.payload != NULL,
             d->opts.seed ? d->opts.seed
                          : ((uint64_t)getpid() << 40 ^ (uint64_t)osc_clock_wall_ms(NULL)) | 1,
             err)) ||
        (rc = dlv_shape_init(&d->shape, t,
                             t->template_ == OSC_CONF_TEMPLATE_MANUAL &&
                                 t->format == OSC_CONF_FORMAT_FORM,
                             d->opts.payload, d->opts.payload_len, err)))
        goto fail;
    if (!(d->dl_path = dlv_dead_letter_path(cfg, t, d->opts.dead_letter)))
        goto nomem;
    ho.connect_timeout_ms = (long)cfg->officespace.connect_timeout_ms;
    ho.timeout_ms = (long)t->timeout_ms;
    ho.no_verify_tls = !cfg->officespace.verify_tls;
    ho.ca_file = cfg->officespace.ca_file;
    ho.conf_section = "officespace";
    if (dlv_outcome_init(&d->out, t, d->dl_path, d->opts.dry_run ? NULL : &ho,
                         !d->opts.dry_run && !d->opts.single_request, &d->st, err))
        goto fail;
    d->out.in_test = d->opts.single_request;
    d->out.max_errors = t->max_errors > 0 ? (uint64_t)t->max_errors : 0;
    d->out.on_call = d->opts.on_call;
    d->out.on_record = d->opts.on_record;
    d->out.ud = d->opts.ud;
    /* the window: max_in_flight, or the ceiling of the adaptive limit */
    limit = t->max_in_flight > 0         ? (size_t)t->max_in_flight
            : t->max_in_flight_limit > 0 ? (size_t)t->max_in_flight_limit
                                         : OSC_CC_LIMIT_MAX_DEFAULT;
    groups = d->rq.templated ? MAX_GROUPS_TEMPLATED : 1;
    d->window = t->max_in_flight > 0 ? limit : 2 * limit;
    if (dlv_batcher_init(&d->bt, d->window + groups + 1, groups,
                         d->opts.single_request ? 1 : (size_t)t->batch.size,
                         (size_t)t->batch.max_bytes))
        goto nomem;
    hooks.ud = d;
    if (dlv_sender_init(&d->snd, cfg, t, &d->opts, &d->rq, d->bt.pool, d->bt.npool, &hooks, err))
        goto fail;
    /* without a checkpoint (library use) the job lives in memory for this run */
    d->staged = !d->has_job || t->template_ != OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES ||
                !t->clear_staging || d->opts.commit_only || d->opts.append;
    d->next_line = 1;
    return d;
nomem:
    osc_err_set(err, OSC_ENOMEM, "out of memory");
fail:
    osc_delivery_free(d);
    return NULL;
}

const char *osc_delivery_dead_letter_path(const struct osc_delivery *d)
{
    return osc_deadletter_path(d->out.dl);
}

void osc_delivery_get_stats(const struct osc_delivery *d, struct osc_delivery_stats *out)
{
    *out = d->st;
    out->dead_lettered = osc_deadletter_count(d->out.dl);
    out->webhook_failed = webhook_failed(d->out.webhook);
    out->requests = d->snd.requests;
    out->retries = d->snd.retries;
    out->max_in_flight = d->snd.peak;
    out->seconds = (double)(now_ms(d) - d->start_ms) / 1000.0;
}

int osc_delivery_exit_code(const struct osc_delivery_stats *s)
{
    if (s->auth_failed)
        return 77; /* EX_NOPERM */
    if (s->dead_letter_error || s->cp_error)
        return 74; /* EX_IOERR */
    if (s->unavailable || s->commit == -2 || s->gave_up || s->fatal)
        return 69; /* EX_UNAVAILABLE: retries exhausted, or nothing can be sent */
    if (s->unsent || s->commit == -3)
        return 75; /* EX_TEMPFAIL: stopped early (run again to resume), or unknown outcome */
    if (s->rejected || s->malformed || s->invalid || s->commit == -1 || s->too_many_errors)
        return 65; /* EX_DATAERR: some records dead-lettered */
    return 0;
}

/* ---- records in ------------------------------------------------------------------- */

static int stop_code(const struct osc_delivery *d)
{
    return d->st.auth_failed         ? OSC_EAUTH
           : d->st.dead_letter_error ? OSC_EIO
           : d->st.cp_error          ? OSC_EDB
                                     : OSC_EUNAVAIL;
}

static int interrupted(const struct osc_delivery *d)
{
    return d->opts.interrupt && *d->opts.interrupt;
}

/* 1 when nothing is queued or in flight, only batches waiting for a retry. The position
 * already stands before the oldest of them, so stopping now loses nothing. */
static int only_retries_left(const struct osc_delivery *d)
{
    for (size_t i = 0; i < d->bt.npool; i++)
        if (d->bt.pool[i].state == DLV_READY || d->bt.pool[i].state == DLV_FLIGHT)
            return 0;
    return 1;
}

/* A record not taken (the destination stopped): its source keeps it. */
static void unsent_fate(struct osc_delivery *d, uint64_t tag)
{
    if (d->opts.on_record)
        d->opts.on_record(d->opts.ud, tag, OSC_DELIVERY_RETRY_LATER);
}

/* Close an OPEN batch: frame its body and queue it, or dead-letter it when it cannot be. */
static void close_batch(struct osc_delivery *d, struct dlv_batch *b)
{
    struct osc_err err = {0};

    if (b->nrecs == 0) {
        dlv_batch_reset(b);
        return;
    }
    if (dlv_request_close(&d->rq, b, &err)) {
        OSC_LOG_ERROR("delivery", "%s: %s", d->dest->name, err.msg);
        d->failed_batches++;
        b->state = DLV_FREE;
        dlv_outcome_final(&d->out, b, DLV_UNBUILT, err.msg);
        dlv_position_update(d, 0);
        return;
    }
    dlv_sender_queue(&d->snd, b, 0);
}

/*
 * How many batches may lie between the oldest unfinished one and the newest:
 * max_in_flight when fixed; when adaptive, twice the limit in use (a batch waiting for a
 * back-pressure retry does not stop the others, and no batch waits in memory long for a
 * slot it cannot get), at most 2 x max_in_flight_limit.
 */
static uint64_t window(const struct osc_delivery *d)
{
    uint64_t w;

    if (d->dest->max_in_flight > 0)
        return d->window;
    w = 2 * (uint64_t)osc_cc_limit(d->snd.cc);
    return w < d->window ? w : d->window;
}

/* A free batch for url, after the window allows one more; NULL once stopped. */
static struct dlv_batch *open_batch(struct osc_delivery *d, const char *url)
{
    struct dlv_batch *b = NULL, *fullest;
    const struct dlv_batch *oldest;
    size_t open;

    fullest = dlv_batcher_fullest(&d->bt, &open);
    if (open >= d->bt.max_groups && fullest)
        close_batch(d, fullest);
    /* the window: a crash re-sends at most what lies between the oldest and the newest. The
     * oldest may be a group still filling (a rare URL): it goes as it is, or it would hold
     * the window shut for good */
    while (!d->stop && d->bt.next_seq - dlv_batcher_oldest(&d->bt, &oldest) >= window(d)) {
        if (interrupted(d))
            return NULL; /* a batch waits for a long retry: a signal must not wait for it */
        if (oldest && oldest->state == DLV_OPEN)
            close_batch(d, (struct dlv_batch *)oldest);
        else
            dlv_pump(d, 100);
    }
    dlv_pump(d, 0);
    while (!d->stop && !(b = dlv_batcher_take(&d->bt))) {
        if (interrupted(d))
            return NULL;
        dlv_pump(d, 100);
    }
    if (d->stop)
        return NULL;
    if (dlv_batcher_open(&d->bt, b, url, now_ms(d)))
        return NULL;
    b->method = d->rq.method;
    b->auth = d->rq.auth;
    return b;
}

int dlv_add(struct osc_delivery *d, const struct osc_record *rec, uint32_t flags, uint64_t tag)
{
    struct dlv_batch *b;
    const char *url, *id, *email;
    size_t id_len, email_len;
    char why[512];
    uint64_t idx = d->next_idx++;
    int rc;

    d->st.records++;
    if (d->stop) {
        d->st.unsent++;
        unsent_fate(d, tag);
        return stop_code(d);
    }
    if (d->dest->template_ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT)
        return dlv_outcome_invalid(&d->out, rec,
                                   "a trigger_directory_import destination takes no records", tag);
    osc_buf_reset(&d->enc);
    if (dlv_shape_encode(&d->shape, rec, &d->enc, why, sizeof(why)))
        return dlv_outcome_invalid(&d->out, rec, why, tag);
    if (d->enc.len + d->rq.overhead > d->bt.max_bytes) {
        snprintf(why, sizeof(why), "encoded record is %zu bytes, more than batch.max_bytes (%zu)",
                 d->enc.len, d->bt.max_bytes);
        return dlv_outcome_invalid(&d->out, rec, why, tag);
    }
    if (dlv_request_url(&d->rq, rec, &url, why, sizeof(why)))
        return dlv_outcome_invalid(&d->out, rec, why, tag);
    /* the staging area is cleared once per import job, before its first batch */
    if (!d->staged && (rc = dlv_job_clear_staging(d))) {
        d->st.unsent++;
        unsent_fate(d, tag);
        return rc;
    }
    b = dlv_batcher_find(&d->bt, url);
    if (b && b->body.len + d->enc.len + d->rq.overhead + 1 > d->bt.max_bytes) {
        close_batch(d, b);
        b = NULL;
    }
    if (!b && !(b = open_batch(d, url))) {
        d->st.unsent++;
        unsent_fate(d, tag);
        if (d->stop)
            return stop_code(d);
        if (interrupted(d)) {
            d->st.interrupted = 1; /* the record stays before the saved position */
            return OSC_EINTERRUPTED;
        }
        return OSC_ENOMEM;
    }
    if (d->shape.emap && !d->opts.payload) {
        dlv_shape_last_keys(&d->shape, &id, &id_len, &email, &email_len);
        if (dlv_batcher_duplicate(b, d->bt.batch_size, id, id_len, email, email_len, rec->line, why,
                                  sizeof(why)))
            return dlv_outcome_invalid(&d->out, rec, why, tag);
    }
    if (dlv_batcher_note(b, rec, d->cur_input, idx, flags, tag))
        return dlv_outcome_invalid(&d->out, rec, "out of memory", tag);
    if (dlv_request_append(&d->rq, b, d->enc.data, d->enc.len)) {
        dlv_batcher_unnote(b);
        return dlv_outcome_invalid(&d->out, rec, "out of memory", tag);
    }
    /* drive the transfers when a batch is queued, and now and then in between:
     * a poll per record would cost more than the record */
    if (d->rq.one_per_request || b->nrecs >= d->bt.batch_size) {
        close_batch(d, b);
        dlv_pump(d, 0);
        d->since_pump = 0;
    } else if (++d->since_pump >= PUMP_EVERY) {
        dlv_pump(d, 0);
        d->since_pump = 0;
    }
    return d->stop ? stop_code(d) : 0;
}

int osc_delivery_add(struct osc_delivery *d, const struct osc_record *rec)
{
    return dlv_add(d, rec, 0, 0);
}

int osc_delivery_add_tagged(struct osc_delivery *d, const struct osc_record *rec, uint64_t tag)
{
    return dlv_add(d, rec, 0, tag);
}

size_t osc_delivery_poll(struct osc_delivery *d, long wait_ms)
{
    int64_t now = now_ms(d), next = INT64_MAX;
    size_t busy;

    for (size_t i = 0; d->opts.flush_interval_ms > 0 && i < d->bt.npool; i++) {
        struct dlv_batch *b = &d->bt.pool[i];
        if (b->state != DLV_OPEN)
            continue;
        if (now - b->opened_ms >= d->opts.flush_interval_ms)
            close_batch(d, b);
        else if (b->opened_ms + d->opts.flush_interval_ms < next)
            next = b->opened_ms + d->opts.flush_interval_ms;
    }
    busy = dlv_pump(d, wait_ms);
    /* nothing on the wire, a batch still filling: wait for its flush, not longer */
    if (!busy && wait_ms > 0 && next != INT64_MAX)
        osc_clock_sleep_ms(next - now < wait_ms ? next - now : wait_ms, d->opts.interrupt);
    return busy;
}

/* ---- the end ------------------------------------------------------------------------ */

/* Why the commit cannot follow this run, or NULL. */
static const char *run_blocks_commit(const struct osc_delivery *d)
{
    if (d->st.dead_letter_error)
        return "a dead letter could not be written";
    if (d->st.cp_error)
        return "the checkpoint could not be written";
    if (d->st.too_many_errors)
        return "more than max_errors records were malformed or unmappable";
    if (d->input_failed)
        return "an input could not be read completely";
    if (d->st.interrupted)
        return "the run was interrupted; run the same command again to resume";
    if (d->stop)
        return "the run was stopped before every record was sent";
    return NULL;
}

int osc_delivery_finish(struct osc_delivery *d)
{
    const char *blocked;
    int completed;

    if (osc_delivery_takes_no_records(d)) {
        if (!d->stop)
            dlv_job_commit(d);
        goto out;
    }
    for (size_t i = 0; i < d->bt.npool; i++)
        if (d->bt.pool[i].state == DLV_OPEN)
            close_batch(d, &d->bt.pool[i]);
    while (dlv_pump(d, 100) > 0)
        if (interrupted(d) && !d->stop && only_retries_left(d))
            d->stop = 1; /* stopping: do not wait for retries; they stay unsent (resumable) */
    dlv_outcome_flush_warnings(&d->out);
    OSC_LOG_DEBUG("delivery",
                  "%s: at most %llu request(s) in flight; the concurrency limit ended at %d",
                  d->dest->name, (unsigned long long)d->snd.peak, osc_cc_limit(d->snd.cc));
    /* a run that read every input (even one that ended early) and lost nothing is finished */
    completed = !d->stop && !d->st.interrupted && !d->st.dead_letter_error && !d->st.cp_error &&
                !d->st.too_many_errors && !d->st.unsent;
    blocked = run_blocks_commit(d);
    if (completed && !d->opts.dry_run)
        dlv_job_run_finished(d);
    else
        dlv_position_update(d, 1);
    if (d->commit) {
        if (blocked) {
            d->st.commit = -1;
            snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                     "directory import NOT triggered: %s", blocked);
            if (!d->st.interrupted)
                OSC_LOG_EV(
                    OSC_LOG_LEVEL_ERROR, "delivery", "commit_refused",
                    (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("reason", blocked)),
                    "%s: %s", d->dest->name, d->st.commit_reason);
        } else if (!d->st.cp_error) {
            dlv_job_commit(d);
        }
    }
out:
    if (d->out.webhook)
        webhook_drain(d->out.webhook, now_ms(d) + WEBHOOK_DRAIN_MS);
    if (d->st.auth_failed)
        return OSC_EAUTH;
    return d->st.dead_letter_error || d->st.cp_error ? OSC_EIO : 0;
}
