/*
 * job.c - the import job of an employee directory source: clear its
 * staging once, stage records over one or more runs, commit exactly once.
 *
 * OfficeSpace's directory import replaces a source's part of the directory
 * with what is staged for it, so a commit over the wrong staging
 * deactivates employees. The rules that prevent it:
 * - One job per source, kept in the checkpoint file. Its staging DELETE is
 *   sent once per job (never on a resume, never by --append), before its
 *   first batch; a run that cannot clear the staging stages nothing.
 * - A new job for a source whose job staged records and was not committed
 *   is refused unless --restart (start over) or --append (add to it);
 *   dead-letter files are only ever appended.
 * - The commit runs only when no run of the job is unfinished, every input
 *   was read to its end, no record the API refused is left unresent, the
 *   job staged at least one record, and (the guard) it staged at least
 *   min_staged_ratio of the source's live employees. --force overrides all
 *   but the empty import.
 * - "commit sent" is written durably before the commit leaves. A commit
 *   whose answer is unknown (a timeout, a reset, a 5xx other than 503) is
 *   never sent again by itself: only `commit --force` does. A commit that
 *   certainly was not applied (429, 503, no connection, a 4xx) returns the
 *   job to staging.
 * Without a checkpoint file (library use) the job lives in memory for one run.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery_int.h"
#include "osc/clock.h"
#include "osc/config_paths.h"
#include "osc/log.h"
#include "osc/retry.h"

#define GUARD_MAX_RESPONSE (64u * 1024 * 1024)

const struct osc_conf_destination *dlv_job_stager(const struct osc_config *cfg,
                                                  const struct osc_conf_destination *t)
{
    const struct osc_conf_destination *all = cfg->destinations.items, *found = NULL;

    if (t->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES)
        return t;
    if (t->template_ != OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT)
        return NULL;
    /* the destination whose commit: is t, else the only one staging t's source */
    for (size_t i = 0; i < cfg->destinations.n; i++)
        if (all[i].template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES && all[i].commit &&
            strcmp(all[i].commit, t->name) == 0)
            return &all[i];
    for (size_t i = 0; i < cfg->destinations.n; i++)
        if (all[i].template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES &&
            strcmp(all[i].source_name, t->source_name) == 0) {
            if (found)
                return NULL;
            found = &all[i];
        }
    return found;
}

char *dlv_dead_letter_path(const struct osc_config *cfg, const struct osc_conf_destination *t,
                           const char *override)
{
    char *name = NULL, *out;

    if (override)
        return strdup(override);
    if (t->dead_letter)
        return strdup(t->dead_letter); /* already resolved by the loader */
    if (asprintf(&name, "%s.dead.jsonl", t->name) < 0)
        return NULL;
    out = osc_config_state_path(cfg, name);
    free(name);
    return out;
}

char *osc_delivery_checkpoint_path(const struct osc_config *cfg, const char *dest,
                                   const char *dead_letter)
{
    const struct osc_conf_destination *t = osc_config_destination(cfg, dest), *s;
    char *dl = NULL, *out = NULL;
    size_t n;

    if (!t)
        return NULL;
    if ((s = dlv_job_stager(cfg, t)) && s != t)
        t = s, dead_letter = NULL;
    if (!(dl = dlv_dead_letter_path(cfg, t, dead_letter)))
        return NULL;
    /* next to the dead-letter file: NAME.dead.jsonl -> NAME.checkpoint.db */
    n = strlen(dl);
    if (n > 11 && strcmp(dl + n - 11, ".dead.jsonl") == 0)
        n -= 11;
    else if (n > 6 && strcmp(dl + n - 6, ".jsonl") == 0)
        n -= 6;
    if (asprintf(&out, "%.*s.checkpoint.db", (int)n, dl) < 0)
        out = NULL;
    free(dl);
    return out;
}

static const char *source_of(const struct osc_delivery *d)
{
    return d->stager ? d->stager->source_name : d->dest->source_name;
}

static void when(int64_t unix_s, char *out, size_t cap)
{
    osc_clock_iso8601(unix_s * 1000, out, cap);
}

static const char *answer_text(const struct osc_http_response *r, char *buf, size_t cap)
{
    if (r->status)
        snprintf(buf, cap, "HTTP %ld", r->status);
    else
        snprintf(buf, cap, "%s", r->error[0] ? r->error : "no answer");
    return buf;
}

/* ---- admission: which job a run belongs to ------------------------------------ */

static int build_key(struct osc_delivery *d, const char *const *paths, size_t n,
                     struct osc_buf *key, struct osc_err *err)
{
    char id[OSC_CHECKPOINT_ID_MAX];

    if (osc_buf_adds(key, d->dest->name))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct osc_err ierr = {0};
        if (strcmp(paths[i], "-") != 0 && access(paths[i], R_OK) != 0)
            return 0; /* reading it will report why */
        if (osc_checkpoint_input_id(paths[i], id, sizeof(id), &ierr)) {
            OSC_LOG_INFO("delivery", "%s: %s; a killed run starts over (with --restart)",
                         d->dest->name, ierr.msg);
            return 0;
        }
        if (osc_buf_printf(key, "\n%s", id))
            return osc_err_set(err, OSC_ETOOBIG, "too many inputs for a checkpoint");
    }
    return 1;
}

/* 1 when the file at path is a dead-letter file (by name or by its first record). */
static int is_dead_letter_file(const char *path)
{
    struct osc_records_reader *r;
    struct osc_record rec;
    struct osc_err err = {0};
    int dl;

    if (strcmp(path, "-") == 0 || !(r = osc_records_open(path, OSC_RECORDS_AUTO, 0, &err)))
        return 0;
    osc_records_next(r, &rec, &err);
    dl = osc_records_format_of(r) == OSC_RECORDS_DEADLETTER;
    osc_records_close(r);
    return dl;
}

static int refuse(struct osc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct osc_err *err, const char *fmt, ...)
{
    char msg[OSC_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return osc_err_set(err, OSC_EUSAGE, "%s", msg);
}

static int start_job(struct osc_delivery *d, struct osc_err *err)
{
    int rc = osc_checkpoint_job_start(d->cp, source_of(d), &d->job, err);

    if (rc)
        return rc;
    d->job_started = 1;
    d->staged = !d->dest->clear_staging; /* the DELETE comes before the first batch */
    return 0;
}

static int unknown_commit(const struct osc_delivery *d, struct osc_err *err)
{
    char at[40];

    when(d->job.commit_at, at, sizeof(at));
    return refuse(err,
                  "the directory import of source '%s' was sent at %s and its outcome is "
                  "unknown: it may already have been applied. Check the directory, then run "
                  "`osconnect commit --force` to send it again, or `osconnect send --restart` to "
                  "stage everything again from the start",
                  source_of(d), at);
}

/* A run of an upsert_employees destination: decide its job, or refuse with why. */
static int admit_job(struct osc_delivery *d, const char *const *paths, size_t n, int flags,
                     int resumable, struct osc_err *err)
{
    struct osc_checkpoint_pos pos;
    uint64_t runs = 0;
    char at[40];
    int had, rc;

    for (size_t i = 0; i < n && !d->opts.append; i++)
        if (is_dead_letter_file(paths[i]))
            return refuse(
                err,
                "%s is a dead-letter file: resending it must add to the import it came "
                "from, not clear that import's staging; run the same command with --append",
                paths[i]);
    if ((had = osc_checkpoint_job_get(d->cp, source_of(d), &d->job, err)) < 0)
        return had;
    if (flags & OSC_DELIVERY_RESTART) {
        if (had)
            OSC_LOG_INFO("delivery",
                         "%s: --restart: the earlier import of source '%s' (%llu records staged) "
                         "is discarded; its staging is cleared",
                         d->dest->name, source_of(d), (unsigned long long)d->job.staged);
        return start_job(d, err);
    }
    if (had && d->job.state == OSC_JOB_COMMIT_SENT)
        return unknown_commit(d, err);
    if (resumable && had && (rc = osc_checkpoint_load(d->cp, d->cp_key, &pos, err)) != 0) {
        if (rc < 0)
            return rc;
        if (pos.job == d->job.id) {
            d->resume = pos;
            d->cp_pos = pos;
            d->resuming = 1;
            /* never clear what an earlier run of this job staged; but a job whose DELETE
             * never went through staged nothing, and still needs it */
            d->staged = d->job.cleared || !d->dest->clear_staging;
            d->st.resumed = 1;
            d->st.skipped = pos.done;
            if (pos.finished) {
                OSC_LOG_INFO("delivery",
                             "%s: this run completed earlier (%llu records); nothing is sent again",
                             d->dest->name, (unsigned long long)pos.done);
                return 1;
            }
            OSC_LOG_INFO("delivery",
                         "%s: resuming at input %u, line %llu (offset %llu): %llu records were "
                         "done by earlier runs",
                         d->dest->name, pos.input + 1, (unsigned long long)pos.line,
                         (unsigned long long)pos.offset, (unsigned long long)pos.done);
            return 1;
        }
    }
    if (d->opts.append) {
        if (!had) {
            OSC_LOG_INFO("delivery",
                         "%s: --append: no open import of source '%s'; staging into what "
                         "OfficeSpace holds for it, without clearing it",
                         d->dest->name, source_of(d));
            if ((rc = osc_checkpoint_job_start(d->cp, source_of(d), &d->job, err)))
                return rc;
            /* a job started by --append never clears the staging it adds to */
            d->job.cleared = 1;
            if ((rc = osc_checkpoint_job_put(d->cp, source_of(d), &d->job, err)))
                return rc;
        }
        d->staged = 1;
        return 0;
    }
    if (!had)
        return start_job(d, err);
    if ((rc = osc_checkpoint_job_runs(d->cp, d->job.id, &runs, err)))
        return rc;
    if (d->job.staged == 0 && d->job.unresolved == 0 && runs == 0)
        return start_job(d, err); /* nothing of it would be lost */
    when(d->job.started_at, at, sizeof(at));
    return refuse(err,
                  "source '%s' has an import started %s that staged %llu record(s)%s and was "
                  "not committed. Commit it with `osconnect commit`, add to it with `send "
                  "--append`, or discard it and stage again from the start with `send --restart`",
                  source_of(d), at, (unsigned long long)d->job.staged,
                  runs ? " (a run of it did not finish)" : "");
}

int osc_delivery_checkpoint(struct osc_delivery *d, struct osc_checkpoint *c,
                            const char *const *paths, size_t n, int flags, struct osc_err *err)
{
    struct osc_buf key;
    struct osc_checkpoint_pos pos;
    int rc = 0, resumable;

    /* every input, before anything is written: a dead-letter file among them is never
     * appended to while a later input reads it */
    for (size_t i = 0; i < n; i++)
        if (osc_deadletter_avoid_input(d->out.dl, paths[i]))
            return osc_err_set(err, OSC_ENOMEM, "out of memory");
    if (!c || d->opts.dry_run || d->opts.single_request)
        return 0;
    d->cp = c;
    if (osc_delivery_takes_no_records(d)) {
        /* the commit step: the job is read when it runs */
        if (d->has_job && (rc = osc_checkpoint_job_get(c, source_of(d), &d->job, err)) > 0)
            rc = 0;
        return rc;
    }
    osc_buf_init(&key, 1u << 20);
    if ((resumable = build_key(d, paths, n, &key, err)) < 0) {
        rc = resumable;
        goto out;
    }
    resumable = resumable && !(flags & OSC_DELIVERY_NO_RESUME);
    if (!resumable) {
        if (!d->has_job)
            goto out; /* nothing to keep */
        /* a row nobody asks for again: it tells the job that this run has not finished */
        uint64_t nonce = osc_retry_rand(&d->rq.rng);
        osc_buf_reset(&key);
        osc_buf_printf(&key, "%s\nonce:%016llx", d->dest->name, (unsigned long long)nonce);
    }
    d->cp_key = osc_buf_steal(&key);
    d->cp_resume = resumable;
    if (d->has_job) {
        rc = admit_job(d, paths, n, flags, resumable, err);
    } else if (flags & OSC_DELIVERY_RESTART) {
        rc = osc_checkpoint_clear(c, d->cp_key, err);
    } else if ((rc = osc_checkpoint_load(c, d->cp_key, &pos, err)) == 1) {
        d->resume = pos;
        d->cp_pos = pos;
        d->resuming = 1;
        d->st.resumed = 1;
        d->st.skipped = pos.done;
        OSC_LOG_INFO("delivery",
                     "%s: resuming at input %u, line %llu (offset %llu): %llu records were done by "
                     "earlier runs",
                     d->dest->name, pos.input + 1, (unsigned long long)pos.line,
                     (unsigned long long)pos.offset, (unsigned long long)pos.done);
    }
    if (rc < 0)
        goto out;
    d->next_line = 1;
    if (rc == 0 && d->cp_key) {
        /* the run exists from now on: an unfinished one keeps its job from committing */
        struct osc_checkpoint_pos start = {0};
        start.job = d->job.id;
        start.line = 1;
        if (osc_checkpoint_save(c, d->cp_key, &start, err)) {
            rc = OSC_EDB;
            goto out;
        }
        d->cp_pos = start;
    }
out:
    osc_buf_free(&key);
    if (rc < 0) {
        free(d->cp_key);
        d->cp_key = NULL;
        d->cp = NULL;
    }
    return rc;
}

/* ---- the staging DELETE ----------------------------------------------------- */

enum osc_delivery_phase osc_delivery_phase(const struct osc_delivery *d)
{
    return (enum osc_delivery_phase)d->phase;
}

/* A new phase: the caller's progress line shows it at once (no tick runs in a sync request). */
static void set_phase(struct osc_delivery *d, enum osc_delivery_phase p)
{
    d->phase = (int)p;
    if (d->opts.tick)
        d->opts.tick(d->opts.ud);
}

static struct dlv_batch *special(struct osc_delivery *d, enum dlv_bkind kind, const char *method)
{
    struct dlv_batch *b;

    while (!(b = dlv_batcher_take(&d->bt)) && !d->stop)
        dlv_pump(d, 100);
    if (b) {
        b->kind = kind;
        b->method = method;
    }
    return b;
}

static int clear_staging(struct osc_delivery *d)
{
    struct dlv_batch *b = special(d, DLV_STAGING, "DELETE");
    char *enc = osc_http_urlencode(source_of(d), strlen(source_of(d)));
    struct osc_err err = {0};
    enum dlv_final f;

    d->staged = 1;
    if (!b || !enc ||
        asprintf(&b->url, "%s/api/1/employee_directory/%s", d->cfg->officespace.rest_base, enc) <
            0) {
        free(enc);
        if (b)
            b->url = NULL, dlv_batch_reset(b);
        return d->stop ? OSC_EAUTH : OSC_ENOMEM;
    }
    free(enc);
    dlv_request_prepare(&d->rq, b, NULL);
    f = dlv_sender_sync(&d->snd, b, 1);
    dlv_batch_reset(b);
    if (f == DLV_AUTH || f == DLV_FATAL) {
        d->stop = 1;
        return f == DLV_AUTH ? OSC_EAUTH : OSC_EUNAVAIL;
    }
    if (f != DLV_ACCEPTED) {
        /* nothing was staged: the next run of this job clears it again */
        OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "delivery", "staging_failed",
                   (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", source_of(d))),
                   "%s: clearing the staging area of source '%s' failed; nothing is staged (run "
                   "the same command again)",
                   d->dest->name, source_of(d));
        d->st.gave_up = 1;
        d->stop = 1;
        return OSC_EUNAVAIL;
    }
    d->job.cleared = 1;
    OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "delivery", "staging_cleared",
               (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", source_of(d))),
               "%s: cleared the staging area of source '%s'", d->dest->name, source_of(d));
    if (d->cp && osc_checkpoint_job_put(d->cp, source_of(d), &d->job, &err)) {
        OSC_LOG_ERROR("delivery", "%s: %s", d->dest->name, err.msg);
        d->st.cp_error = 1;
        d->stop = 1;
        return OSC_EDB;
    }
    return 0;
}

int dlv_job_clear_staging(struct osc_delivery *d)
{
    int rc;

    set_phase(d, OSC_DELIVERY_PHASE_CLEARING);
    rc = clear_staging(d);
    set_phase(d, OSC_DELIVERY_PHASE_SENDING);
    return rc;
}

/* ---- the end of a run ---------------------------------------------------------- */

void dlv_job_run_finished(struct osc_delivery *d)
{
    struct osc_checkpoint_pos end = d->cp_pos;
    struct osc_err err = {0};
    uint64_t refused = d->resume.refused + d->st.rejected + d->st.unavailable;
    uint64_t resolved = d->resume.resolved + d->out.resolved;
    int rc;

    /* a finished run resumed (the same command again) added its counters the first time */
    if (d->has_job && !d->resume.finished) {
        d->job.staged += d->resume.sent + d->st.sent;
        d->job.unresolved += refused;
        d->job.unresolved = d->job.unresolved > resolved ? d->job.unresolved - resolved : 0;
        if (d->input_failed)
            d->job.incomplete++;
    }
    if (!d->cp || !d->cp_key)
        return;
    if (!d->has_job) {
        rc = osc_checkpoint_clear(d->cp, d->cp_key, &err);
    } else if (!d->job.staged && !d->job.unresolved && !d->job.incomplete) {
        /* a job that holds nothing is no job: the next one may start afresh */
        rc = osc_checkpoint_run_finish(d->cp, d->cp_key, NULL, source_of(d), NULL, &err);
    } else {
        /* past the last input: the same command again skips everything, to the commit */
        end.input = d->cur_input;
        end.offset = 0;
        end.line = 1;
        end.done = d->resume.done + d->next_idx;
        end.sent = d->resume.sent + d->st.sent;
        end.refused = refused;
        end.resolved = resolved;
        end.job = d->job.id;
        end.finished = 1;
        /* a run that cannot resume leaves no row: nothing would ever find it */
        rc = osc_checkpoint_run_finish(d->cp, d->cp_key, d->cp_resume ? &end : NULL, source_of(d),
                                       &d->job, &err);
    }
    if (rc) {
        OSC_LOG_ERROR("delivery", "%s: %s", d->dest->name, err.msg);
        d->st.cp_error = 1;
    }
}

/* ---- the commit ------------------------------------------------------------------ */

static void commit_refused(struct osc_delivery *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void commit_refused(struct osc_delivery *d, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                 "directory import NOT triggered: ");
    va_start(ap, fmt);
    vsnprintf(d->st.commit_reason + n, sizeof(d->st.commit_reason) - (size_t)n, fmt, ap);
    va_end(ap);
    d->st.commit = -1;
    OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "delivery", "commit_refused",
               (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", source_of(d))),
               "%s: %s", d->dest->name, d->st.commit_reason);
}

/*
 * The live employees of source: GET /api/1/employees?source=S and count the
 * entries whose "source" is S. The REST reference documents neither the
 * filter nor the field: when no entry carries a source, every entry counts;
 * when the list is too long to read whole, the answer's "count" does. Both
 * err on the side of a larger count (a stricter guard). -1 when unknown.
 */
static int64_t live_count(struct osc_delivery *d, char *why, size_t cap)
{
    struct dlv_batch *b = special(d, DLV_QUERY, "GET");
    const char *src = source_of(d);
    char *enc = osc_http_urlencode(src, strlen(src));
    json_t *root = NULL, *list;
    int64_t n = -1;
    enum dlv_final f;

    if (!b || !enc ||
        asprintf(&b->url, "%s/api/1/employees?source=%s", d->cfg->officespace.rest_base, enc) < 0) {
        if (b)
            b->url = NULL;
        snprintf(why, cap, "out of memory");
        goto out;
    }
    dlv_request_prepare(&d->rq, b, NULL);
    b->max_response = GUARD_MAX_RESPONSE;
    f = dlv_sender_sync(&d->snd, b, 1);
    if (f != DLV_ACCEPTED) {
        char ans[300];
        snprintf(why, cap, "GET %s: %s", b->url, answer_text(&b->resp, ans, sizeof(ans)));
        goto out;
    }
    if (!b->resp.truncated && (root = json_loadb(b->resp.body.data, b->resp.body.len, 0, NULL)) &&
        json_is_array(list = json_object_get(root, "response"))) {
        size_t i, with_source = 0, match = 0;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            json_t *s = json_object_get(e, "source");
            if (!s)
                s = json_object_get(e, "Source");
            if (s)
                with_source++;
            if (json_is_string(s) && strcmp(json_string_value(s), src) == 0)
                match++;
        }
        n = (int64_t)(with_source ? match : json_array_size(list));
    } else {
        /* too long to read whole: the leading "count" is an upper bound */
        const char *p = b->resp.body.data ? strstr(b->resp.body.data, "\"count\"") : NULL;
        long long c;
        if (p && sscanf(p + 7, " : %lld", &c) == 1 && c >= 0)
            n = c;
        else
            snprintf(why, cap, "GET %s: the answer is not a list of employees", b->url);
    }
out:
    json_decref(root);
    free(enc);
    if (b)
        dlv_batch_reset(b);
    return n;
}

/* The commit rules; 1 when it may be sent. */
static int may_commit(struct osc_delivery *d)
{
    double ratio = d->stager ? d->stager->min_staged_ratio : 0.6;
    uint64_t runs = 0;
    struct osc_err err = {0};
    char why[512] = "";
    int64_t live;
    int force = d->opts.force;

    if (d->cp) {
        if (!d->job.id) {
            commit_refused(
                d, "there is no import of source '%s' in %s: nothing was staged by osconnect",
                source_of(d), osc_checkpoint_path(d->cp));
            return 0;
        }
        if (osc_checkpoint_job_runs(d->cp, d->job.id, &runs, &err)) {
            commit_refused(d, "%s", err.msg);
            d->st.cp_error = 1;
            return 0;
        }
    }
    if (d->job.state == OSC_JOB_COMMIT_SENT && !force) {
        char at[40];
        when(d->job.commit_at, at, sizeof(at));
        snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                 "the directory import of source '%s' was sent at %s and its outcome is unknown: "
                 "it may already have been applied; check the directory, then run `osconnect "
                 "commit --force` to send it again, or `osconnect send --restart` to stage again",
                 source_of(d), at);
        d->st.commit = -3;
        OSC_LOG_EV(OSC_LOG_LEVEL_ERROR, "delivery", "commit_unknown",
                   (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", source_of(d))),
                   "%s: %s", d->dest->name, d->st.commit_reason);
        return 0;
    }
    if (runs) {
        commit_refused(d, "a send of this import did not finish; run it again to resume it (or "
                          "start over with --restart)");
        return 0;
    }
    if (d->job.staged == 0) {
        commit_refused(
            d, "no records were staged (the import would empty the directory of source '%s')",
            source_of(d));
        return 0;
    }
    if (d->job.incomplete && !force) {
        commit_refused(d, "an input of this import was not read to its end (see the errors above); "
                          "fix it and stage again with --restart, or commit anyway with --force");
        return 0;
    }
    if (d->job.unresolved && !force) {
        commit_refused(d,
                       "%llu record(s) the API refused or gave up on are not staged; resend the "
                       "dead letters with `send --append`, or commit anyway with --force",
                       (unsigned long long)d->job.unresolved);
        return 0;
    }
    if (force)
        return 1;
    /* the guard: OfficeSpace's own import script refuses below 60 % for the same reason */
    if ((live = live_count(d, why, sizeof(why))) < 0) {
        commit_refused(d,
                       "cannot read the live employee count of source '%s' (%s); --force commits "
                       "without the check",
                       source_of(d), why);
        return 0;
    }
    if ((double)d->job.staged < ratio * (double)live) {
        commit_refused(
            d,
            "the import staged %llu record(s), fewer than min_staged_ratio (%.0f%%) of the %lld "
            "live employees of source '%s'; check the input, or commit anyway with --force",
            (unsigned long long)d->job.staged, ratio * 100, (long long)live, source_of(d));
        return 0;
    }
    return 1;
}

/* 1 when the answer proves the commit was not applied (so it may be sent again). */
static int not_applied(const struct osc_http_response *r)
{
    if (r->transport)
        return r->transport == CURLE_COULDNT_CONNECT ||
               r->transport == CURLE_COULDNT_RESOLVE_HOST ||
               r->transport == CURLE_COULDNT_RESOLVE_PROXY;
    return r->status == 429 || r->status == 503 || (r->status >= 400 && r->status < 500);
}

static void job_state(struct osc_delivery *d, int state)
{
    struct osc_err err = {0};

    d->job.state = state;
    d->job.commit_at = state == OSC_JOB_COMMIT_SENT ? (int64_t)time(NULL) : 0;
    if (d->cp && osc_checkpoint_job_put(d->cp, source_of(d), &d->job, &err)) {
        OSC_LOG_ERROR("delivery", "%s: %s", d->dest->name, err.msg);
        d->st.cp_error = 1;
    }
}

static void committed(struct osc_delivery *d, const struct osc_conf_destination *trig,
                      const struct dlv_batch *b)
{
    struct osc_err err = {0};

    d->st.commit = 1;
    snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
             "directory import triggered for source '%s'", trig->source_name);
    OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "delivery", "commit_triggered",
               (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", trig->source_name),
                OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("url", b->url),
                OSC_LF_INT_NZ("status", b->resp.status), OSC_LF_INT("attempt", b->attempts)),
               "%s: directory import triggered for source '%s' (HTTP %ld)", d->dest->name,
               trig->source_name, b->resp.status);
    if (d->cp && osc_checkpoint_job_end(d->cp, source_of(d), &err)) {
        OSC_LOG_ERROR("delivery", "%s: %s (the import WAS triggered: do not run it again)",
                      d->dest->name, err.msg);
        d->st.cp_error = 1;
    }
}

void dlv_job_commit(struct osc_delivery *d)
{
    const struct osc_conf_destination *trig = d->commit ? d->commit : d->dest;
    const struct osc_conf_retry *rp = &trig->retry;
    struct dlv_batch *b = NULL;
    char *path = NULL, *enc = NULL, ans[300];
    enum dlv_final f;

    set_phase(d, OSC_DELIVERY_PHASE_COMMITTING);
    if (!d->opts.dry_run && !may_commit(d))
        return;
    if (!(b = special(d, DLV_COMMIT, "POST")) ||
        !(path =
              dlv_request_abs_url(&d->rq, trig->url ? trig->url : "/api/1/employee_directory")) ||
        !(enc = osc_http_urlencode(trig->source_name, strlen(trig->source_name))) ||
        osc_buf_adds(&b->body, "Source=") || osc_buf_adds(&b->body, enc)) {
        snprintf(d->st.commit_reason, sizeof(d->st.commit_reason), "out of memory");
        d->st.commit = -2;
        goto out;
    }
    b->url = path;
    path = NULL;
    dlv_request_prepare(&d->rq, b, "application/x-www-form-urlencoded");
    if (d->opts.dry_run) {
        dlv_sender_sync(&d->snd, b, 0);
        d->st.commit = 1;
        snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                 "directory import would be triggered for source '%s'", trig->source_name);
        goto out;
    }
    job_state(d, OSC_JOB_COMMIT_SENT);
    OSC_LOG_EV(OSC_LOG_LEVEL_DEBUG, "delivery", "commit_sent",
               (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", trig->source_name),
                OSC_LF_STR("url", b->url)),
               "%s: sending the directory import of source '%s' (recorded as sent first)",
               d->dest->name, trig->source_name);
    if (d->st.cp_error) {
        commit_refused(d, "the checkpoint could not record that the commit is being sent");
        goto out;
    }
    for (;;) {
        int64_t delay;
        f = dlv_sender_sync(&d->snd, b, 0);
        if (f == DLV_ACCEPTED) {
            committed(d, trig, b);
            break;
        }
        if (!not_applied(&b->resp)) {
            /* it may have been applied: never sent again without --force */
            d->st.commit = -3;
            snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                     "the directory import of source '%s' was sent and its outcome is unknown "
                     "(%s): it may have been applied; check the directory, then run `osconnect "
                     "commit --force` to send it again",
                     trig->source_name, answer_text(&b->resp, ans, sizeof(ans)));
            OSC_LOG_EV(
                OSC_LOG_LEVEL_ERROR, "delivery", "commit_unknown",
                (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", trig->source_name),
                 OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("url", b->url),
                 OSC_LF_INT_NZ("status", b->resp.status), OSC_LF_INT("attempt", b->attempts)),
                "%s: %s", d->dest->name, d->st.commit_reason);
            break;
        }
        delay = b->resp.retry_after_ms >= 0 ? b->resp.retry_after_ms
                                            : osc_retry_backoff_ms(rp, b->attempts, &d->snd.rng);
        if (f == DLV_AUTH || f == DLV_FATAL || f == DLV_UNBUILT ||
            (b->resp.status >= 400 && b->resp.status < 500 && b->resp.status != 429) ||
            (int64_t)b->attempts >= rp->max_attempts || delay > trig->max_retry_wait_ms) {
            job_state(d, OSC_JOB_STAGING); /* certainly not applied: the job can commit later */
            d->st.commit = -2;
            if (f == DLV_AUTH)
                d->st.auth_failed = 1;
            if (f == DLV_FATAL)
                d->st.fatal = 1;
            snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                     "the directory import trigger for source '%s' failed after %u attempt(s) "
                     "(%s); it was not applied",
                     trig->source_name, b->attempts, answer_text(&b->resp, ans, sizeof(ans)));
            OSC_LOG_EV(
                OSC_LOG_LEVEL_ERROR, "delivery", "commit_failed",
                (OSC_LF_STR("destination", d->dest->name), OSC_LF_STR("source", trig->source_name),
                 OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("url", b->url),
                 OSC_LF_INT_NZ("status", b->resp.status), OSC_LF_INT("attempt", b->attempts)),
                "%s: %s", d->dest->name, d->st.commit_reason);
            break;
        }
        OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "delivery", "commit_retry",
                   (OSC_LF_STR("destination", d->dest->name),
                    OSC_LF_STR("source", trig->source_name),
                    OSC_LF_STR("request_id", b->request_id), OSC_LF_STR("url", b->url),
                    OSC_LF_INT_NZ("status", b->resp.status), OSC_LF_INT("attempt", b->attempts),
                    OSC_LF_INT("delay_ms", delay)),
                   "%s: the commit was not applied (%s); retry %u in %lld ms", d->dest->name,
                   answer_text(&b->resp, ans, sizeof(ans)), b->attempts, (long long)delay);
        osc_clock_sleep_ms(delay, NULL);
        b->resp.retry_after_ms = -1;
    }
out:
    free(path);
    free(enc);
    if (b)
        dlv_batch_reset(b);
}
