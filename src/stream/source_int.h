/*
 * source_int.h - what the continuous sources share (not public): the
 * registry's per-source record (counters, state for /readyz, the stop
 * flag) and the delivery set-up every source uses. source.c owns the
 * registry; spool.c, ingest.c and natssrc.c each run one kind of source
 * thread.
 *
 * Counters are C11 atomics (the status server reads them from its own
 * thread); the state text is under the source's mutex.
 */
#ifndef OSC_SOURCE_INT_H
#define OSC_SOURCE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "osc/config.h"
#include "osc/delivery.h"
#include "osc/queue.h"
#include "osc/source.h"

#define SRC_STATE_MAX 256
/* a source silent this long (plus its destination's timeout) is not live */
#define SRC_LIVE_MS 60000
/* how long a stopping source lets its requests in flight finish */
#define SRC_STOP_GRACE_MS 1000
/* the backoff after a source or its destination failed (a refused key, NATS down) */
#define SRC_BACKOFF_MIN_MS 1000
#define SRC_BACKOFF_MAX_MS 60000

struct src {
    struct osc_sources *reg;
    const struct osc_config *cfg;
    const struct osc_conf_destination *dest;
    volatile int *stop; /* the registry's: set by the caller */
    pthread_t thread;
    int started;

    /* counters and gauges for /metrics */
    atomic_uint_fast64_t n_in, n_accepted, n_dead, n_retried;
    atomic_int_fast64_t depth;
    atomic_int_fast64_t heartbeat_ms; /* monotonic; 0 before the thread ran */

    pthread_mutex_t mu; /* guards up and state */
    int up;
    char state[SRC_STATE_MAX];

    /* http: the durable queue (opened by the registry; thread-safe) and the wake-up */
    struct osc_queue *queue;
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    int woken;

    /* the kind's fate handler for tagged records (called on the source's thread) */
    void (*fate)(struct src *s, uint64_t tag, enum osc_delivery_fate f);
    /* the kind's chores while the delivery waits (every 250 ms at most); may be NULL */
    void (*tick)(struct src *s);
    void *kind; /* the kind's own state, owned by its thread */
};

/* 1 once the source must stop. */
int src_stopping(const struct src *s);
/* A sign of life (the thread's loop and the delivery's waits call it). */
void src_beat(struct src *s);
/* Set the state shown by /readyz (up 0 or 1); logs a change at INFO (up) or ERROR (down). */
void src_set_state(struct src *s, int up, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sleep up to ms, waking early on stop (and, for http, on a new body). */
void src_nap(struct src *s, int64_t ms);
/* Wake an http source's thread (a body was queued). */
void src_wake(struct src *s);

/*
 * Delivery options every source uses: flush_interval, the stop flag, the
 * tick (a sign of life), the fate hook (when tagged, for stream sources:
 * records are staged into the open import with no commit and no staging
 * DELETE). o is reset first.
 */
void src_delivery_opts(struct src *s, int tagged, struct osc_delivery_opts *o);

/*
 * The exponential backoff for step n (1-based) of consecutive failures,
 * from SRC_BACKOFF_MIN_MS doubling up to SRC_BACKOFF_MAX_MS.
 */
int64_t src_backoff_ms(unsigned n);

/* The threads of each kind; arg is the struct src. */
void *src_spool_main(void *arg);
void *src_http_main(void *arg);
void *src_nats_main(void *arg);

/* spool.c: create path, path/done and path/failed. 0 or OSC_EIO (err names the folder). */
int src_spool_prepare(const char *path, struct osc_err *err);
/* ingest.c: the queue file of destination name (caller frees), NULL on ENOMEM. */
char *src_ingest_queue_path(const struct osc_config *cfg, const char *name);
/* ingest.c: the POST handler (see osc_sources_ingest()). */
void src_ingest(struct src *s, const char *authorization, const char *content_type,
                const char *body, size_t len, struct osc_ingest_reply *r);

#endif
