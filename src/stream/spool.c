/*
 * spool.c - the spool source: files renamed into a folder are delivered one
 * at a time, the way `osconnect send FILE` delivers them, then moved to
 * done/ or failed/; see source.h.
 *
 * Invariants: a file is picked only when it is a regular file (lstat: not a
 * symbolic link) in the folder itself whose name does not start with '.',
 * oldest modification first (then by name); a file leaves the folder only
 * after its delivery finished (every record accepted or dead-lettered, and
 * the commit step run when the destination has one), so a file still in the
 * folder is never half-forgotten: its checkpoint (the destination's, as for
 * `send`) says where its next delivery resumes. A stop never waits for the
 * end of a file: what is in flight gets SRC_STOP_GRACE_MS, the rest is
 * resumed from the checkpoint by the next start.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "osc/checkpoint.h"
#include "osc/clock.h"
#include "osc/log.h"
#include "source_int.h"

#define SCAN_EVERY_MS 500
#define MAX_NAME      1024

static int make_dir(const char *path, struct osc_err *err)
{
    struct stat st;

    if (mkdir(path, 0750) == 0)
        return 0;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return osc_err_set(err, OSC_EIO, "spool folder %s: %s", path,
                       errno == EEXIST ? "exists and is not a folder" : strerror(errno));
}

int src_spool_prepare(const char *path, struct osc_err *err)
{
    char sub[4096];
    int rc;

    if ((rc = make_dir(path, err)))
        return rc;
    snprintf(sub, sizeof(sub), "%s/done", path);
    if ((rc = make_dir(sub, err)))
        return rc;
    snprintf(sub, sizeof(sub), "%s/failed", path);
    return make_dir(sub, err);
}

/* The oldest file waiting in dir into name (cap bytes); *waiting counts them. 1 found, 0 none,
 * -1 the folder cannot be read (errno). */
static int oldest_file(const char *dir, char *name, size_t cap, int64_t *waiting)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct timespec best = {0, 0};
    int found = 0;

    *waiting = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.' || strlen(e->d_name) >= cap)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        (*waiting)++;
        if (!found || st.st_mtim.tv_sec < best.tv_sec ||
            (st.st_mtim.tv_sec == best.tv_sec &&
             (st.st_mtim.tv_nsec < best.tv_nsec ||
              (st.st_mtim.tv_nsec == best.tv_nsec && strcmp(e->d_name, name) < 0)))) {
            best = st.st_mtim;
            snprintf(name, cap, "%s", e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* Move dir/name into dir/sub/, as name or name.N when that is taken. 0 or -1 (logged). */
static int move_to(struct src *s, const char *dir, const char *name, const char *sub)
{
    char from[4096], to[4096];
    struct stat st;

    snprintf(from, sizeof(from), "%s/%s", dir, name);
    snprintf(to, sizeof(to), "%s/%s/%s", dir, sub, name);
    for (unsigned i = 2; lstat(to, &st) == 0 && i < 100000; i++)
        snprintf(to, sizeof(to), "%s/%s/%s.%u", dir, sub, name, i);
    if (rename(from, to) != 0) {
        OSC_LOG_ERROR("source", "%s: cannot move %s to %s: %s", s->dest->name, from, to,
                      strerror(errno));
        return -1;
    }
    return 0;
}

/* Let the requests in flight finish for a moment (a stop): what finishes moves the checkpoint. */
static void drain(struct osc_delivery *d)
{
    int64_t end = osc_clock_mono_ms(NULL) + SRC_STOP_GRACE_MS;

    while (osc_delivery_poll(d, 50) > 0 && osc_clock_mono_ms(NULL) < end)
        ;
}

enum file_outcome {
    FILE_DONE,   /* every record accepted: to done/ */
    FILE_FAILED, /* finished with dead letters, or it cannot be delivered at all: to failed/ */
    FILE_KEEP,   /* stopped: stays, resumed from the checkpoint */
    FILE_RETRY   /* the destination cannot take it now (refused key, checkpoint): stays, later */
};

static struct osc_delivery *new_delivery(struct src *s, const char *dl_path, struct osc_err *err)
{
    struct osc_delivery_opts o;

    src_delivery_opts(s, 0, &o);
    o.dead_letter = dl_path;
    return osc_delivery_new(s->cfg, s->dest->name, &o, err);
}

static enum file_outcome deliver(struct src *s, struct osc_checkpoint *cp, const char *dir,
                                 const char *name)
{
    char path[4096], dl[4096];
    const char *inputs[1] = {path};
    struct osc_delivery *d = NULL;
    struct osc_delivery_stats st;
    struct osc_err err = {0};
    enum file_outcome out = FILE_RETRY;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(dl, sizeof(dl), "%s/failed/%s.dead.jsonl", dir, name);
    if (!(d = new_delivery(s, dl, &err))) {
        src_set_state(s, 0, "%s", err.msg);
        goto out;
    }
    rc = osc_delivery_checkpoint(d, cp, inputs, 1, 0, &err);
    if (rc == OSC_EUSAGE) {
        /* a new file is a new import job: the one an earlier file left open gives way */
        OSC_LOG_WARN("source", "%s: %s: %s; starting a new import job for this file", s->dest->name,
                     name, err.msg);
        osc_delivery_free(d);
        osc_err_clear(&err);
        if (!(d = new_delivery(s, dl, &err))) {
            src_set_state(s, 0, "%s", err.msg);
            goto out;
        }
        rc = osc_delivery_checkpoint(d, cp, inputs, 1, OSC_DELIVERY_RESTART, &err);
        if (rc == OSC_EUSAGE) {
            OSC_LOG_ERROR("source", "%s: %s: %s", s->dest->name, name, err.msg);
            out = FILE_FAILED;
            goto out;
        }
    }
    if (rc < 0) {
        src_set_state(s, 0, "checkpoint %s: %s", osc_checkpoint_path(cp), err.msg);
        goto out;
    }
    if (rc == 1)
        OSC_LOG_INFO("source", "%s: resuming %s from its checkpoint", s->dest->name, name);
    else
        OSC_LOG_INFO("source", "%s: delivering %s", s->dest->name, name);
    rc = osc_delivery_feed(d, path, OSC_RECORDS_AUTO, 0, &err);
    if (rc == OSC_EINTERRUPTED || src_stopping(s)) {
        drain(d);
        out = FILE_KEEP;
        goto out;
    }
    if (rc == OSC_ENOINPUT || rc == OSC_EUSAGE) {
        OSC_LOG_ERROR("source", "%s: %s", s->dest->name, err.msg);
        out = FILE_FAILED;
        goto out;
    }
    osc_delivery_finish(d);
    osc_delivery_get_stats(d, &st);
    atomic_fetch_add(&s->n_in, st.records);
    atomic_fetch_add(&s->n_accepted, st.sent);
    atomic_fetch_add(&s->n_dead, st.dead_lettered);
    if (st.auth_failed || st.fatal || st.cp_error || st.dead_letter_error || st.unsent ||
        st.interrupted) {
        if (st.auth_failed || st.fatal || st.cp_error || st.dead_letter_error)
            src_set_state(s, 0, "%s: %s; it stays in the folder and is resumed later", name,
                          st.auth_failed ? "OfficeSpace refused the API key"
                          : st.fatal     ? "a permanent transport error stopped the delivery"
                          : st.cp_error  ? "the checkpoint cannot be written"
                                         : "the dead-letter file cannot be written");
        out = src_stopping(s) ? FILE_KEEP : FILE_RETRY;
        goto out;
    }
    OSC_LOG_INFO(
        "source",
        "%s: %s: %llu records, %llu sent, %llu dead-lettered%s%s; %llu requests, %.2fs%s%s",
        s->dest->name, name, (unsigned long long)st.records, (unsigned long long)st.sent,
        (unsigned long long)st.dead_lettered, st.dead_lettered ? " to " : "",
        st.dead_lettered ? osc_delivery_dead_letter_path(d) : "", (unsigned long long)st.requests,
        st.seconds, st.commit ? "; commit: " : "", st.commit ? st.commit_reason : "");
    out = st.dead_lettered || st.commit < 0 || st.too_many_errors ? FILE_FAILED : FILE_DONE;
out:
    osc_delivery_free(d);
    return out;
}

void *src_spool_main(void *arg)
{
    struct src *s = arg;
    const char *dir = s->dest->source.path;
    struct osc_checkpoint *cp = NULL;
    struct osc_err err = {0};
    char *cp_path = osc_delivery_checkpoint_path(s->cfg, s->dest->name, NULL);
    char name[MAX_NAME];
    unsigned failures = 0;

    src_beat(s);
    while (!src_stopping(s)) {
        int64_t waiting = 0;
        int found;
        enum file_outcome o;
        if (!cp) {
            if (!cp_path || osc_checkpoint_open(cp_path, &cp, &err)) {
                src_set_state(s, 0, "%s", cp_path ? err.msg : "out of memory");
                src_nap(s, src_backoff_ms(++failures));
                continue;
            }
        }
        found = oldest_file(dir, name, sizeof(name), &waiting);
        atomic_store(&s->depth, waiting);
        if (found < 0) {
            src_set_state(s, 0, "cannot read the spool folder %s: %s", dir, strerror(errno));
            src_nap(s, src_backoff_ms(++failures));
            continue;
        }
        if (!found) {
            failures = 0;
            src_set_state(s, 1, "watching %s", dir);
            src_nap(s, SCAN_EVERY_MS);
            continue;
        }
        o = deliver(s, cp, dir, name);
        if (o == FILE_DONE || o == FILE_FAILED) {
            failures = 0;
            if (move_to(s, dir, name, o == FILE_DONE ? "done" : "failed") != 0) {
                /* the next scan would deliver it again: wait rather than loop */
                src_set_state(s, 0, "cannot move %s out of %s", name, dir);
                src_nap(s, src_backoff_ms(++failures));
            } else {
                src_set_state(s, 1, "watching %s", dir);
            }
        } else if (o == FILE_RETRY) {
            src_nap(s, src_backoff_ms(++failures));
        }
    }
    osc_checkpoint_close_clean(cp);
    free(cp_path);
    src_set_state(s, 0, "stopped");
    return NULL;
}
