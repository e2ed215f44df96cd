/*
 * source.h - continuous delivery for `osconnect run`: every active
 * destination with a source: gets one thread that takes records from its
 * source and feeds them to the delivery engine (batching, retries, dead
 * letters, webhook), sending a partial batch after flush_interval.
 *
 *   spool  a file renamed into source.path is delivered like `osconnect
 *          send` delivers it (one import job per file for upsert_employees,
 *          committed when the destination has commit:; a checkpoint, so a
 *          file half delivered when the process died resumes), then moved
 *          to path/done/, or to path/failed/ with its dead letters beside it
 *          (NAME.dead.jsonl). Only regular files whose names do not start
 *          with '.' are picked, oldest first: a file still being written
 *          elsewhere and renamed in later is never read half-written.
 *   http   POST /ingest/{destination} on the status listener: a body (JSON,
 *          JSON Lines or CSV) is read whole, every record is checked, and it
 *          is appended to a SQLite queue (NAME.ingest.db in the state folder)
 *          before the answer 202: a 202 survives a crash. The source thread
 *          claims the queued bodies, delivers their records and deletes a
 *          body once each of its records was accepted or dead-lettered; a
 *          record OfficeSpace could not take now is offered again after a
 *          backoff. Each body's settled prefix is stored, so a restart does
 *          not send it again.
 *   nats   a JetStream durable pull consumer (source.durable, shared by every
 *          instance of the config): one message is one record (a JSON
 *          object) or several (JSON Lines, a JSON array). A message is
 *          acked once OfficeSpace accepted the batch of every record in it,
 *          term'ed once all were dead-lettered, nak'ed with the retry
 *          backoff when some could not be delivered now. Acks are flushed
 *          after each batch; unacked messages stay below max_ack_pending;
 *          a message held longer than a third of ack_wait is marked in
 *          progress, so it is not redelivered to another instance while a
 *          retry waits.
 *
 * Stopping: when *stop becomes non-zero every source stops taking records,
 * lets the requests in flight finish for at most about a second, and
 * leaves what is not done where it can be found again (the spool file and
 * its checkpoint, the queued body, the unacked message: nak'ed at once so
 * another instance takes it), so nothing is lost: at most the records of
 * the unfinished batches are delivered twice.
 *
 * Threads: one per source, each with its own delivery. The ingest entry
 * point and the render/live/ready functions may be called from any thread
 * (the status server's); they touch only the queue (thread-safe) and
 * counters under the registry's locks.
 */
#ifndef OSC_SOURCE_H
#define OSC_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "osc/buf.h"
#include "osc/config.h"
#include "osc/err.h"

struct osc_sources;

/*
 * Prepare the sources of cfg's active destinations (cfg borrowed: it must
 * outlive the registry; stop borrowed too). Opens the ingest queues (one
 * process per queue file: OSC_EBUSY names the file) and creates the spool
 * folders (path, done/, failed/). No thread is started. Returns 0 and *out
 * (caller frees with osc_sources_free(), after osc_sources_join()), or
 * OSC_EBUSY / OSC_EDB / OSC_EIO (a folder) / OSC_ENOMEM with err set.
 */
int osc_sources_new(const struct osc_config *cfg, volatile int *stop, struct osc_sources **out,
                    struct osc_err *err);
/* Sources prepared (0: the config has none). */
size_t osc_sources_count(const struct osc_sources *s);
/* 1 when some source is http (the status listener must run). */
int osc_sources_has_ingest(const struct osc_sources *s);
/* Start one thread per source. 0, or OSC_ENOMEM (threads started so far keep running). */
int osc_sources_start(struct osc_sources *s, struct osc_err *err);
/*
 * Wait for the threads (after *stop was set), at most timeout_ms. Each
 * finishes its requests in flight for about a second, then leaves the rest
 * to its source. Returns how many threads are still running: a request or a
 * NATS call that blocks longer; the caller must then not free the registry
 * (or the config) and should exit: nothing those threads hold is lost,
 * since what they did not finish is still at its source. Accepts NULL.
 */
size_t osc_sources_join(struct osc_sources *s, int timeout_ms);
/* Free (after osc_sources_join() returned 0); accepts NULL. */
void osc_sources_free(struct osc_sources *s);

/* What POST /ingest/{destination} answers. */
struct osc_ingest_reply {
    int status;        /* 202, 400, 401, 404, 413, 415, 429, 503 */
    int retry_after_s; /* 429 and 503: the Retry-After header; 0: none */
    char body[OSC_ERR_MSG_MAX + 128];
};

/*
 * The largest body destination dest accepts (source.max_body), or -1 when
 * it has no http source (the status server answers 404 before reading).
 */
int64_t osc_sources_ingest_limit(const struct osc_sources *s, const char *dest);

/*
 * Take one POST /ingest/{dest} body (borrowed) with its Authorization and
 * Content-Type headers (NULL when absent): check the bearer token (401),
 * the size (413), the type (application/json: a JSON array, or JSON Lines
 * when the body starts with '{'; application/x-ndjson, application/jsonl:
 * JSON Lines; text/csv: CSV with a header row; none: sniffed from the
 * first character), every record (400 naming the line and what is wrong;
 * nothing is queued), then append it durably (202 {"records": N}; 429
 * with Retry-After when the queue is full; 503 when it cannot be written).
 * Thread-safe.
 */
void osc_sources_ingest(struct osc_sources *s, const char *dest, const char *authorization,
                        const char *content_type, const char *body, size_t len,
                        struct osc_ingest_reply *reply);

/*
 * Prometheus text for the sources (osconnect_source_*), appended to out:
 *   records_total{destination,source,result}  counter  in|accepted|dead_lettered|retried
 *   queue_depth{destination,source}           gauge    spool: files waiting; http: bodies
 *                                                      queued; nats: messages not yet
 *                                                      delivered to this consumer
 *   up{destination,source}                    gauge    1 while the source is connected and
 *                                                      its destination is sending
 * 0, OSC_ENOMEM or OSC_ETOOBIG.
 */
int osc_sources_render(struct osc_sources *s, struct osc_buf *out);

/*
 * /livez: 1 when every source thread showed a sign of life within a minute
 * (plus its destination's timeout). /readyz: 1 when every source is up (its
 * NATS consumer bound, its queue or folder usable, its destination not
 * stopped by a refused key or a permanent transport error). why (cap
 * bytes) lists each source's state. With no source: 1, "no sources".
 */
int osc_sources_live(struct osc_sources *s, int64_t now_mono_ms, char *why, size_t cap);
int osc_sources_ready(struct osc_sources *s, int64_t now_mono_ms, char *why, size_t cap);

#endif
