/*
 * store.h - SQLite state: the last presence OfficeSpace accepted per location.
 *
 * One file (presence.state), WAL journal, schema versioned with
 * PRAGMA user_version and migrated forward on open; a file written by a
 * newer osconnect (a higher version) is refused rather than guessed at.
 * Rows are keyed by (location type, id); a row is written only after
 * OfficeSpace accepted that location's push, so a restart resends only what
 * changed. The store is used from one thread.
 *
 * One process per state file: a writable store first takes the state file's
 * lock (osc_store_lock), so a second osconnect on the same file fails with
 * OSC_EBUSY before it reads or writes anything. Read-only stores (dry runs)
 * take no lock.
 */
#ifndef OSC_STORE_H
#define OSC_STORE_H

#include "osc/err.h"
#include "osc/presence.h"
#include "osc/urn.h"

#define OSC_STORE_SCHEMA_VERSION 2

struct osc_store;

/*
 * Open (creating and migrating) the state file at path, holding its lock
 * (see osc_store_lock) until osc_store_close(). readonly != 0 takes no lock
 * and opens an existing file read-only (schema version 1 or later, as it
 * is), and a missing one as an empty in-memory store (dry runs leave no file
 * behind). Caller closes with osc_store_close(). Returns 0, OSC_EBUSY
 * (another process holds the lock; err names the file and its pid), OSC_EDB
 * (not a regular file, or err says what SQLite said) or OSC_ENOMEM.
 */
int osc_store_open(const char *path, int readonly, struct osc_store **out, struct osc_err *err);
/* Close; accepts NULL. */
void osc_store_close(struct osc_store *s);

typedef int (*osc_store_row_fn)(void *ud, const struct osc_urn *urn,
                                const struct osc_presence_last *last);
/* Call fn for every row; a non-zero return from fn stops and is returned. */
int osc_store_each(struct osc_store *s, osc_store_row_fn fn, void *ud, struct osc_err *err);

/* Group writes in one transaction (one fsync per push request). */
int osc_store_begin(struct osc_store *s, struct osc_err *err);
int osc_store_commit(struct osc_store *s, struct osc_err *err);
/* Roll back an open transaction; safe to call when none is open. */
void osc_store_rollback(struct osc_store *s);

/* Insert or replace a location's last accepted state. 0 or OSC_EDB. */
int osc_store_put(struct osc_store *s, const struct osc_urn *urn,
                  const struct osc_presence_last *last, struct osc_err *err);
/* Number of rows (tests, status). Negative OSC_EDB on failure. */
long osc_store_count(struct osc_store *s);

struct osc_store_lock;

/*
 * Take the process lock of the state file at path: an exclusive flock(2)
 * on "PATH.lock" (created 0600 if missing, never removed), which then holds
 * this process's pid. The kernel releases it when the process ends, even
 * on SIGKILL. Taking it again in the process that holds it shares it (a
 * reference count: a reload opens the new store before closing the old).
 * Release with osc_store_unlock(). Returns 0, OSC_EBUSY when another
 * process holds it (err: "state database PATH is in use by another
 * osconnect (pid N holds PATH.lock)..."), OSC_EDB (the lock file cannot be
 * opened or locked) or OSC_ENOMEM. Not thread-safe (the store is used from
 * one thread).
 */
int osc_store_lock(const char *path, struct osc_store_lock **out, struct osc_err *err);
/* Drop one reference; the last one releases the lock. Accepts NULL. */
void osc_store_unlock(struct osc_store_lock *l);

#endif
