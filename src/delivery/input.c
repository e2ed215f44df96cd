/*
 * input.c - the first stage: records read from the inputs in turn, where
 * the next unread record starts, resuming from a checkpoint, malformed
 * records, and the error budget (max_errors).
 *
 * Invariants: every record offered gets the next index of the run
 * (next_idx); the saved position is the first record of the oldest
 * unfinished batch, or where reading stopped, so every record before it is
 * accepted or dead-lettered; it never moves backwards, and it freezes once
 * the destination was stopped or a dead letter or a save failed (records
 * dropped then are not done).
 */
#include <stdlib.h>
#include <string.h>

#include "delivery_int.h"
#include "osc/log.h"

static int pos_before(uint32_t ia, uint64_t oa, uint32_t ib, uint64_t ob)
{
    return ia < ib || (ia == ib && oa < ob);
}

void dlv_position_update(struct osc_delivery *d, int force)
{
    struct osc_checkpoint_pos p = d->cp_pos;
    const struct dlv_batch *oldest;
    struct osc_err err = {0};

    if (!d->cp || !d->cp_key || !d->cp_resume || d->st.cp_error || d->stop ||
        d->st.dead_letter_error)
        return;
    dlv_batcher_oldest(&d->bt, &oldest);
    if (oldest) {
        p.input = oldest->recs[0].input;
        p.offset = oldest->recs[0].offset;
        p.line = oldest->recs[0].line;
        p.done = d->resume.done + oldest->recs[0].idx;
    } else {
        p.input = d->cur_input;
        p.offset = d->next_off;
        p.line = d->next_line;
        p.done = d->resume.done + d->next_idx;
    }
    if (pos_before(p.input, p.offset, d->cp_pos.input, d->cp_pos.offset)) {
        p.input = d->cp_pos.input;
        p.offset = d->cp_pos.offset;
        p.line = d->cp_pos.line;
        p.done = d->cp_pos.done;
    }
    p.sent = d->resume.sent + d->st.sent;
    p.refused = d->resume.refused + d->st.rejected + d->st.unavailable;
    p.resolved = d->resume.resolved + d->out.resolved;
    p.job = d->job.id;
    if (!force && p.input == d->cp_pos.input && p.offset == d->cp_pos.offset)
        return;
    if (osc_checkpoint_save(d->cp, d->cp_key, &p, &err)) {
        /* the row keeps the last position that was written: never past an unfinished record */
        OSC_LOG_ERROR("delivery", "%s: %s; stopping (run the same command again to resume)",
                      d->dest->name, err.msg);
        d->st.cp_error = 1;
        return;
    }
    d->cp_pos = p;
}

int osc_delivery_takes_no_records(const struct osc_delivery *d)
{
    return d->dest->template_ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT || d->opts.commit_only;
}

void osc_delivery_progress(const struct osc_delivery *d, uint64_t *bytes, int64_t *size)
{
    *bytes = d->bytes_done + (d->reader ? osc_records_bytes_read(d->reader) : 0);
    *size = d->reader ? osc_records_size(d->reader) : -1;
}

int osc_delivery_malformed_tagged(struct osc_delivery *d, const struct osc_record *rec,
                                  const char *reason, uint64_t tag)
{
    d->next_idx++;
    return dlv_outcome_malformed(&d->out, rec, reason, tag);
}

int osc_delivery_malformed(struct osc_delivery *d, const struct osc_record *rec, const char *reason)
{
    return osc_delivery_malformed_tagged(d, rec, reason, 0);
}

/* A dead-letter file staged without --append would clear the staging its records belong to. */
static int refuse_dead_letters(const char *path, struct osc_err *err)
{
    return osc_err_set(err, OSC_EUSAGE,
                       "%s is a dead-letter file: resending it must add to the import it came "
                       "from, not clear its staging; run the same command with --append",
                       path);
}

int osc_delivery_feed(struct osc_delivery *d, const char *path, enum osc_records_format format,
                      uint64_t max_records, struct osc_err *err)
{
    struct osc_records_reader *r = NULL;
    struct osc_record rec;
    struct osc_err rerr = {0};
    uint64_t n = 0, skip_below = 0, invalid_before;
    uint32_t flags = 0;
    int rc = 0, first = 1;

    if (d->resuming && d->cur_input < d->resume.input) {
        OSC_LOG_INFO("delivery", "%s: %s was completed by an earlier run; skipped", d->dest->name,
                     path);
        goto next_input;
    }
    /* a resend of the dead-letter file itself must not append to what it reads */
    if (osc_deadletter_avoid_input(d->out.dl, path)) {
        d->input_failed = 1;
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    }
    if (!(r = osc_records_open(path, format, 0, err))) {
        d->input_failed = 1;
        return err && err->code ? err->code : OSC_ENOINPUT;
    }
    d->reader = r;
    if (dlv_outcome_input_name(&d->out, d->cur_input, osc_records_name(r))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out;
    }
    if (d->resuming && d->cur_input == d->resume.input && d->resume.offset > 0 &&
        osc_records_seek(r, d->resume.offset, d->resume.line) != 0)
        skip_below = d->resume.offset; /* cannot seek: read and skip what is done */
    d->next_off = osc_records_bytes_read(r);
    d->next_line = osc_records_line(r);
    while (!max_records || n < max_records) {
        int got;
        if (d->opts.interrupt && *d->opts.interrupt) {
            d->st.interrupted = 1;
            rc = osc_err_set(err, OSC_EINTERRUPTED, "interrupted while reading %s", path);
            break;
        }
        got = osc_records_next(r, &rec, &rerr);
        if (got == 0)
            break;
        if (first && (got == 1 || got == OSC_EDATA)) {
            first = 0;
            /* the format is known once the first record was read (it may be sniffed) */
            if (osc_records_format_of(r) == OSC_RECORDS_DEADLETTER) {
                if (d->has_job && !d->opts.append && !d->opts.dry_run && !d->opts.single_request) {
                    d->input_failed = 1;
                    rc = refuse_dead_letters(path, err);
                    break;
                }
                flags = DLV_REC_RESEND;
            }
        }
        if ((got == 1 || got == OSC_EDATA) && rec.offset < skip_below)
            continue;
        n++;
        invalid_before = d->st.invalid;
        if (got == 1) {
            rc = dlv_add(d, &rec, flags, 0);
        } else if (got == OSC_EDATA) {
            rc = osc_delivery_malformed(d, &rec, rerr.msg);
        } else {
            if (got == OSC_EINTERRUPTED)
                d->st.interrupted = 1; /* a signal ended a read that was waiting (a terminal) */
            else
                d->input_failed = 1; /* a read error: the rest of this input is unknown */
            rc = osc_err_set(err, got, "%s", rerr.msg);
            break;
        }
        if (rc == OSC_EINTERRUPTED) {
            /* a signal while the window was shut: this record was not taken */
            osc_err_set(err, rc, "interrupted while reading %s", path);
            break;
        }
        if (rc) {
            /* the position stays before this record: it may not be done (its dead letter
             * failed); after a refused key the run stops and the commit is blocked anyway */
            d->input_failed = 1;
            osc_err_set(err, rc, "%s",
                        rc == OSC_EAUTH      ? "OfficeSpace refused the API key"
                        : rc == OSC_EUNAVAIL ? "the destination was stopped"
                        : rc == OSC_EDB      ? "cannot write the checkpoint"
                        : rc == OSC_EIO      ? "cannot write the dead-letter file"
                        : rc == OSC_EDATA    ? "too many malformed or unmappable records"
                                             : "out of memory");
            break;
        }
        d->next_off = osc_records_bytes_read(r);
        d->next_line = osc_records_line(r);
        if (dlv_outcome_over_budget(&d->out)) {
            d->st.too_many_errors = 1;
            d->input_failed = 1;
            rc = osc_err_set(err, OSC_EDATA,
                             "more than max_errors (%llu) records were malformed or unmappable; "
                             "stopped reading at %s line %llu (all of them are in %s)",
                             (unsigned long long)d->out.max_errors, osc_records_name(r),
                             (unsigned long long)d->next_line, d->dl_path);
            break;
        }
        /* a local reject is done at once: it may move the position without a batch */
        if (got != 1 || d->st.invalid != invalid_before)
            dlv_position_update(d, 0);
    }
    /* a broken JSON array or CSV header ends the input early: what follows was never sent */
    if (osc_records_incomplete(r))
        d->input_failed = 1;
out:
    d->bytes_done += osc_records_bytes_read(r);
    d->reader = NULL;
    osc_records_close(r);
    if (rc)
        return rc;
next_input:
    d->cur_input++;
    d->next_off = 0;
    d->next_line = 1;
    dlv_position_update(d, 0);
    return 0;
}
