/*
 * checkpoint.h - where a `send` run got to, kept in SQLite so a run killed
 * at any moment can be resumed by running the same command again.
 *
 * A run is keyed by the destination and the identity of every input (its
 * resolved path, device, inode, size and a hash of the first 4 KiB): the
 * same command over the same, unchanged files finds its row; a changed
 * file is a new run. The
 * row holds the position before which every record is accepted or
 * dead-lettered (input index, byte offset, line), whether the staging area
 * was already cleared, and whether some batch already failed (so a resumed
 * run never clears what an earlier run staged, and never triggers the
 * directory import when an earlier run lost a batch). The row is written
 * only after the API acknowledged (or the dead-letter file took) every
 * record before the position, and deleted when the run completes.
 *
 * One file, WAL journal, synchronous=NORMAL: a process crash (kill -9)
 * loses nothing that was committed (a power cut may lose the last saves,
 * which only means resending). Opened with an exclusive lock: one send per
 * checkpoint file at a time. Schema versioned with PRAGMA user_version.
 * Used from one thread.
 */
#ifndef OSC_CHECKPOINT_H
#define OSC_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "osc/err.h"

#define OSC_CHECKPOINT_SCHEMA_VERSION 1
#define OSC_CHECKPOINT_ID_MAX         128

/* A position in a run's inputs, and the flags a resumed run needs. */
struct osc_checkpoint_pos {
    uint32_t input;  /* index of the input file (0-based) */
    uint64_t offset; /* every record starting before this byte offset is done */
    uint64_t line;   /* line at offset (for messages) */
    int staged;      /* the staging DELETE was accepted */
    int failed;      /* some batch was not accepted: the commit must not run */
    uint64_t sent;   /* records accepted so far, over every run */
    uint64_t dead;   /* records dead-lettered so far, over every run */
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

/*
 * The identity of the input file at path ("pathhash:dev:ino:size:headhash")
 * into out
 * (cap >= OSC_CHECKPOINT_ID_MAX). Returns 0, or OSC_ENOINPUT when the file
 * cannot be read or is not a regular file (stdin, a pipe: no resume).
 */
int osc_checkpoint_input_id(const char *path, char *out, size_t cap, struct osc_err *err);

/*
 * The saved position of run key (any string, copied by SQLite) into *pos.
 * Returns 1 when a row was found, 0 when none (*pos zeroed), or OSC_EDB.
 */
int osc_checkpoint_load(struct osc_checkpoint *c, const char *key, struct osc_checkpoint_pos *pos,
                        struct osc_err *err);
/* Write (insert or replace) the position of run key. 0 or OSC_EDB. */
int osc_checkpoint_save(struct osc_checkpoint *c, const char *key,
                        const struct osc_checkpoint_pos *pos, struct osc_err *err);
/* Forget run key (the run completed, or --restart). 0 or OSC_EDB. */
int osc_checkpoint_clear(struct osc_checkpoint *c, const char *key, struct osc_err *err);

/*
 * Close c, and remove its file (and WAL files) when it holds no saved run,
 * so a completed run leaves nothing behind. Accepts NULL.
 */
void osc_checkpoint_close_clean(struct osc_checkpoint *c);

#endif
