/*
 * store.h - SQLite state: the last presence OfficeSpace accepted per location.
 *
 * One file (presence.state), WAL journal, schema versioned with
 * PRAGMA user_version and migrated forward on open; a file written by a
 * newer osconnect (a higher version) is refused rather than guessed at.
 * Rows are keyed by (location type, id); a row is written only after
 * OfficeSpace accepted that location's push, so a restart resends only what
 * changed. The store is used from one thread.
 */
#ifndef OSC_STORE_H
#define OSC_STORE_H

#include "osc/err.h"
#include "osc/presence.h"
#include "osc/urn.h"

#define OSC_STORE_SCHEMA_VERSION 1

struct osc_store;

/*
 * Open (creating and migrating) the state file at path. readonly != 0 opens
 * an existing file read-only, and a missing one as an empty in-memory store
 * (dry runs leave no file behind). Caller closes with osc_store_close().
 * Returns 0, OSC_EDB (err says what SQLite said) or OSC_ENOMEM.
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

#endif
