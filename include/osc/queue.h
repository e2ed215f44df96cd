/*
 * queue.h - the durable ingest queue: request bodies accepted by the HTTP
 * ingest endpoint and waiting for delivery, kept in SQLite.
 *
 * Design. One row per body (its bytes, format and destination name), in
 * append order. osc_queue_append() returns only after the row is on disk
 * (WAL journal, synchronous=FULL: the commit is fsync'd), so the HTTP layer
 * may answer 202 as soon as it returns. Delivery claims the oldest
 * unclaimed body of a destination, works on it, and deletes it once every
 * record of it was accepted or dead-lettered. Claims live in memory only:
 * after a restart every body not deleted is claimable again, oldest first
 * (at-least-once; a caller that wants to skip the records it already
 * delivered stores its own position with osc_queue_set_progress()).
 *
 * Bound: the bodies' bytes together never exceed max_bytes; an append
 * that would go past it returns OSC_EFULL (the HTTP layer answers 429 with
 * Retry-After) and one body larger than max_bytes on its own OSC_ETOOBIG.
 *
 * One process per file: the database is opened in SQLite's exclusive
 * locking mode and locked at open, so a second process (or a second open
 * in the same process) gets OSC_EBUSY. Schema versioned with PRAGMA
 * user_version.
 *
 * Threads: every function may be called from any thread (the HTTP ingest
 * runs on libmicrohttpd's threads, delivery on the main one); calls are
 * serialized by one mutex, held through append's fsync.
 */
#ifndef OSC_QUEUE_H
#define OSC_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "osc/err.h"
#include "osc/records.h"

#define OSC_QUEUE_SCHEMA_VERSION 1
#define OSC_QUEUE_DEST_MAX       256

struct osc_queue;

/* One queued body, owned by the caller of osc_queue_claim(). */
struct osc_queue_item {
    int64_t id;                     /* append order: a later body has a larger id */
    char *dest;                     /* destination name */
    enum osc_records_format format; /* how to read body */
    unsigned char *body;            /* len bytes, followed by a NUL that len does not count */
    size_t len;
    int64_t created_ms; /* wall clock (epoch ms) of the append */
    uint64_t progress;  /* the last osc_queue_set_progress() value, 0 at first */
};

/*
 * Open (creating and migrating) the queue at path and lock it. max_bytes
 * bounds the bodies' total size (0: no bound). Caller closes with
 * osc_queue_close(). Returns 0, OSC_EBUSY (another process has it: err
 * names the file), OSC_EDB (err says what SQLite said) or OSC_ENOMEM;
 * *out is untouched on failure.
 */
int osc_queue_open(const char *path, uint64_t max_bytes, struct osc_queue **out,
                   struct osc_err *err);
/* Close and unlock; claimed bodies stay queued. Accepts NULL. */
void osc_queue_close(struct osc_queue *q);

/*
 * Append one body (copied) for destination dest, durably: on return 0 it
 * survives a crash or power cut. *id (may be NULL) receives its id.
 * Returns 0, OSC_EFULL (the queue holds too much: nothing written),
 * OSC_ETOOBIG (len > max_bytes), OSC_EINVAL (dest empty or longer than
 * OSC_QUEUE_DEST_MAX, format AUTO/DEADLETTER), OSC_EDB or OSC_ENOMEM.
 * Blocks on one fsync.
 */
int osc_queue_append(struct osc_queue *q, const char *dest, enum osc_records_format format,
                     const void *body, size_t len, int64_t *id, struct osc_err *err);

/*
 * Claim the oldest unclaimed body of dest (NULL: of any destination):
 * *out receives it (caller frees with osc_queue_item_free()), or NULL when
 * there is none. It stays claimed until osc_queue_delete(),
 * osc_queue_release() or the queue is closed. 0, OSC_EDB or OSC_ENOMEM.
 */
int osc_queue_claim(struct osc_queue *q, const char *dest, struct osc_queue_item **out,
                    struct osc_err *err);
/* Free an item; accepts NULL. The row is not affected. */
void osc_queue_item_free(struct osc_queue_item *it);

/* Give a claimed body back (delivery will try it again, before later ones). 0 or OSC_ENOTFOUND. */
int osc_queue_release(struct osc_queue *q, int64_t id);

/*
 * Store a caller-defined position for body id (e.g. records already
 * delivered), durably; osc_queue_claim() returns it. 0, OSC_ENOTFOUND
 * (no such body) or OSC_EDB.
 */
int osc_queue_set_progress(struct osc_queue *q, int64_t id, uint64_t progress, struct osc_err *err);

/*
 * Delete body id (delivered), durably, freeing its bytes in the bound.
 * 0, OSC_ENOTFOUND (no such body) or OSC_EDB.
 */
int osc_queue_delete(struct osc_queue *q, int64_t id, struct osc_err *err);

/* Bytes of all queued bodies (what max_bytes bounds). */
uint64_t osc_queue_bytes(struct osc_queue *q);
/* Bodies queued for dest (NULL: all), claimed or not; negative OSC_EDB on failure. */
int64_t osc_queue_count(struct osc_queue *q, const char *dest);

#endif
