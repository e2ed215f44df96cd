/*
 * checkpoint.h - the send checkpoint file: where each run got to, and the
 * import job each source is in, kept in SQLite so a run killed at any
 * moment can be resumed and an import is never cleared or committed twice.
 *
 * Runs. A run is keyed by the destination and the identity of every input
 * (resolved path, device, inode, size, a hash of the first 4 KiB): the same
 * command over the same, unchanged files finds its row; a changed file is a
 * new run. The row holds the position before which every record is
 * accepted or dead-lettered (input index, byte offset, line, and how many
 * records lie before it), the import job it stages into, and its counters.
 * A row is written only after the API acknowledged (or the dead-letter
 * file took) every record before its position, and removed when the run
 * completes. A run that cannot resume (stdin, --no-checkpoint) still has a
 * row, under a key nobody will ask for again, so that its import job knows
 * a run of it never finished.
 *
 * Import jobs (upsert_employees). One row per source: the job's id, whether
 * its staging DELETE was accepted, how many records finished runs staged,
 * how many the API refused (they block the commit until resent), and
 * whether the commit was sent. A job ends when its commit is acknowledged
 * (the row is deleted). Job writes are fsync'd (synchronous=FULL); run
 * positions use synchronous=NORMAL: a process crash loses nothing
 * committed, a power cut may lose the last position saves (more records
 * are resent, none are skipped).
 *
 * One file, WAL journal, exclusive lock: one process per file at a time.
 * Schema versioned with PRAGMA user_version. Used from one thread.
 */
#ifndef OSC_CHECKPOINT_H
#define OSC_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "osc/err.h"

#define OSC_CHECKPOINT_SCHEMA_VERSION 2
#define OSC_CHECKPOINT_ID_MAX         128

/* A run's position in its inputs, and its counters. */
struct osc_checkpoint_pos {
    uint32_t input;    /* index of the input file (0-based) */
    uint64_t offset;   /* every record starting before this byte offset is done */
    uint64_t line;     /* line at offset (for messages) */
    uint64_t done;     /* records before the position, over every resume of the run */
    uint64_t sent;     /* records the API accepted, over every resume */
    uint64_t refused;  /* records the API refused or gave up on, over every resume */
    uint64_t resolved; /* dead letters of API refusals this run delivered again */
    int64_t job;       /* the import job the run stages into; 0: none */
    int finished;      /* the run completed; its job was not committed yet */
};

enum osc_job_state {
    OSC_JOB_STAGING = 1, /* staging; not committed */
    OSC_JOB_COMMIT_SENT  /* the commit was sent and its outcome is not known */
};

/* An import job (one per source). */
struct osc_checkpoint_job {
    int64_t id;
    int state;           /* enum osc_job_state */
    int cleared;         /* its staging needs no DELETE any more: the DELETE was accepted, or
                          * the job was started by --append (which never clears) */
    uint64_t staged;     /* records accepted into staging by its finished runs */
    uint64_t unresolved; /* records the API refused or gave up on, not delivered again since */
    uint64_t incomplete; /* finished runs that did not read an input to its end */
    int64_t started_at;  /* Unix seconds */
    int64_t commit_at;   /* when the commit was sent (OSC_JOB_COMMIT_SENT) */
};

struct osc_checkpoint;

/*
 * Open (creating and migrating) the checkpoint file at path. Caller closes
 * with osc_checkpoint_close(). Returns 0, OSC_EDB (err says what SQLite
 * said) or OSC_ENOMEM; *out is untouched on failure.
 */
int osc_checkpoint_open(const char *path, struct osc_checkpoint **out, struct osc_err *err);
/* Close; accepts NULL. */
void osc_checkpoint_close(struct osc_checkpoint *c);
/* The path it was opened with (borrowed). */
const char *osc_checkpoint_path(const struct osc_checkpoint *c);

/*
 * The identity of the input file at path ("pathhash:dev:ino:size:headhash")
 * into out (cap >= OSC_CHECKPOINT_ID_MAX). Returns 0, or OSC_ENOINPUT when
 * the file cannot be read or is not a regular file (stdin, a pipe).
 */
int osc_checkpoint_input_id(const char *path, char *out, size_t cap, struct osc_err *err);

/*
 * The saved position of run key into *pos. Returns 1 when a row was found,
 * 0 when none (*pos zeroed), or OSC_EDB.
 */
int osc_checkpoint_load(struct osc_checkpoint *c, const char *key, struct osc_checkpoint_pos *pos,
                        struct osc_err *err);
/* Write (insert or replace) the position of run key. 0 or OSC_EDB. */
int osc_checkpoint_save(struct osc_checkpoint *c, const char *key,
                        const struct osc_checkpoint_pos *pos, struct osc_err *err);
/* Forget run key (completed, or --restart). 0 or OSC_EDB. */
int osc_checkpoint_clear(struct osc_checkpoint *c, const char *key, struct osc_err *err);

/* ---- import jobs ----------------------------------------------------------- */

/* The job of source into *job: 1 found, 0 none (*job zeroed), OSC_EDB. */
int osc_checkpoint_job_get(struct osc_checkpoint *c, const char *source,
                           struct osc_checkpoint_job *job, struct osc_err *err);
/* Write the job of source, durably (fsync'd before it returns). 0 or OSC_EDB. */
int osc_checkpoint_job_put(struct osc_checkpoint *c, const char *source,
                           const struct osc_checkpoint_job *job, struct osc_err *err);
/*
 * A new job for source: a fresh id, state STAGING, every counter 0. The
 * previous job's row and the rows of its runs are removed in the same
 * durable transaction. 0 or OSC_EDB; *job holds the new job.
 */
int osc_checkpoint_job_start(struct osc_checkpoint *c, const char *source,
                             struct osc_checkpoint_job *job, struct osc_err *err);
/* End the job of source (its commit was acknowledged): durably remove it and its runs. */
int osc_checkpoint_job_end(struct osc_checkpoint *c, const char *source, struct osc_err *err);
/* Runs of job id that have not finished, into *n. 0 or OSC_EDB. */
int osc_checkpoint_job_runs(struct osc_checkpoint *c, int64_t id, uint64_t *n, struct osc_err *err);
/*
 * A run of the job of source finished: write its final position end (with
 * finished set: the same command again only resumes to the commit), or
 * remove run key when end is NULL; and write the job (already updated with
 * the run's counters by the caller; NULL: remove the job, it holds
 * nothing) — in one durable transaction, so a crash leaves either the run
 * or its effect, never both or neither. 0 or OSC_EDB (nothing changed).
 */
int osc_checkpoint_run_finish(struct osc_checkpoint *c, const char *key,
                              const struct osc_checkpoint_pos *end, const char *source,
                              const struct osc_checkpoint_job *job, struct osc_err *err);

/*
 * Close c, and remove its file (and WAL files) when it holds no run and no
 * job, so a completed import leaves nothing behind. Accepts NULL.
 */
void osc_checkpoint_close_clean(struct osc_checkpoint *c);

#endif
