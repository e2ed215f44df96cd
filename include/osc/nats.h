/*
 * nats.h - a NATS JetStream durable pull consumer as a record source, and
 * the connection code the lease module shares.
 *
 * Design. One struct osc_nats is one connection (libnats, reconnecting
 * forever to any server of its URL list) bound to one stream and, when a
 * durable name is given, one durable pull consumer with explicit acks.
 * osc_nats_fetch() hands out up to N messages; each is a separate heap
 * object that stays unacked until the caller acks, naks or terms it, so a
 * delivery engine can keep one message per record in flight and ack each
 * when its batch was accepted. Acks are fire-and-forget publishes (that is
 * what JetStream acks are); osc_nats_flush() is one round trip that proves
 * the server received every ack sent before it. A message freed without an
 * ack, or held by a process that dies, is redelivered by the server after
 * ack_wait, to any instance bound to the same durable: that is the whole
 * scale-out story, and at-least-once is the guarantee (a duplicate is
 * possible when an ack is lost or arrives after ack_wait).
 *
 * The server stops delivering when max_ack_pending messages are unacked:
 * fetch then returns no message until some are acked (or time out).
 *
 * Threads. libnats runs its own threads (socket reader, flusher, timers);
 * osconnect installs no libnats callback, so none of its code runs there:
 * the owner reads the connection's state with natsConnection_Status()
 * (and async publish acks from a plain inbox subscription). osc_nats_fetch(),
 * osc_nats_flush(), osc_nats_info(), the publish calls and osc_nats_close()
 * are called from one thread (the owner); osc_nats_ack/nak/term/
 * in_progress and osc_nats_msg_free() may be called from any thread (the
 * list of outstanding messages is under a mutex, libnats publishing is
 * thread-safe), but never concurrently with osc_nats_close(). Logging
 * (connection lost / reconnected) happens in osc_nats_fetch(), on the
 * owner's thread.
 *
 * libnats 3.4.1 limits. nats_Close() must not be called: it frees
 * OpenSSL's compression-method stack, which OpenSSL 3 frees again at exit
 * (a crash in OPENSSL_cleanup). libnats' global threads and memory
 * therefore stay until the process exits (leak checkers see them as
 * reachable, not leaked).
 */
#ifndef OSC_NATS_H
#define OSC_NATS_H

#include <stddef.h>
#include <stdint.h>

#include "osc/err.h"

/* How to reach the servers; shared by the source and the lease module. */
struct osc_nats_conn_opts {
    const char *url;        /* "nats://h1:4222,nats://h2:4222" (tls:// turns TLS on); required */
    const char *creds_file; /* NATS credentials file (JWT + NKey seed), NULL for none */
    const char *token;      /* authorization token (secret), NULL for none */
    const char *ca_file;    /* PEM CA bundle to verify the server; setting it turns TLS on */
    int tls;                /* 1: require TLS even with a nats:// URL */
    int no_verify_tls;      /* 1: do not verify the server certificate (verify_tls: false) */
    const char *name;       /* connection name shown by the server (NULL: "osconnect") */
    int connect_timeout_ms; /* per server; 0: 5000 */
    int request_timeout_ms; /* JetStream API requests (stream info, publish acks); 0: 5000 */
};

struct osc_nats_opts {
    struct osc_nats_conn_opts conn;
    const char *stream;  /* stream name; required */
    const char *subject; /* consumer filter subject; NULL: every subject of the stream */
    const char *durable; /* durable consumer name; NULL: a publish-only handle */
    /*
     * create_stream: when the stream does not exist, create it (file
     * storage, limits retention) with these subjects (NULL or nsubjects 0:
     * { subject }) and this many replicas (0: 1). An existing stream is
     * never changed.
     */
    int create_stream;
    const char *const *subjects;
    size_t nsubjects;
    int replicas;
    int64_t ack_wait_ms;     /* 0: 30000 */
    int64_t max_ack_pending; /* 0: 1000 */
    int64_t max_deliver;     /* 0: unlimited */
};

struct osc_nats;
struct osc_nats_msg;

/*
 * Connect, check the stream (creating it when asked) and bind to the
 * durable pull consumer, creating it (deliver all, explicit ack) when it
 * does not exist and updating ack_wait / max_ack_pending / max_deliver
 * when they differ from opts (a running instance of another config keeps
 * its own view until it rebinds). Blocks for at most about
 * connect_timeout_ms per server plus a few request_timeout_ms.
 *
 * Returns 0 and *out (caller closes with osc_nats_close()), or, with err
 * saying which server / stream / consumer and what happened:
 *   OSC_EINVAL    missing url/stream, a bad durable name
 *   OSC_ENOINPUT  creds_file or ca_file cannot be read
 *   OSC_EUNAVAIL  no server reachable; JetStream not enabled there
 *   OSC_EAUTH     the server refused the credentials (or they lack a permission)
 *   OSC_ETRANSPORT TLS failed (handshake, certificate, TLS required/unavailable)
 *   OSC_ENOTFOUND the stream does not exist (and create_stream is 0)
 *   OSC_ECONFIG   the durable exists with another filter subject
 *   OSC_EPROTO    any other JetStream API error (its text in err)
 *   OSC_ENOMEM
 * Nothing is left open on failure.
 */
int osc_nats_open(const struct osc_nats_opts *opts, struct osc_nats **out, struct osc_err *err);

/*
 * Close the connection. Messages not yet freed are detached: their
 * payload is released, later ack/nak/term on them return OSC_EINVAL and
 * osc_nats_msg_free() still frees them; the server redelivers them after
 * ack_wait. Pending acks are flushed first (at most 2 s). Accepts NULL.
 */
void osc_nats_close(struct osc_nats *n);

/*
 * Fetch up to max messages (max >= 1) into out[0..*count-1]. Returns as
 * soon as some messages are available, or after timeout_ms with *count 0
 * (not an error). Blocks at most timeout_ms (plus a few ms), a wait for
 * a reconnect included. Each message
 * belongs to the caller: ack/nak/term it, then osc_nats_msg_free() it.
 * Returns 0, OSC_EINVAL (no durable: a publish-only handle),
 * OSC_EUNAVAIL (the connection is down and reconnecting; err says since
 * when: wait and call again), OSC_EPROTO (JetStream error, e.g. the
 * consumer was deleted), OSC_ENOMEM. *count is 0 on failure.
 */
int osc_nats_fetch(struct osc_nats *n, struct osc_nats_msg **out, size_t max, int timeout_ms,
                   size_t *count, struct osc_err *err);

/* Payload, borrowed until osc_nats_msg_free(); NULL (*len 0) once detached. */
const void *osc_nats_msg_data(const struct osc_nats_msg *m, size_t *len);
/* Subject it was published on, borrowed like the payload. */
const char *osc_nats_msg_subject(const struct osc_nats_msg *m);
/* Stream sequence (unique per stream), 1-based. */
uint64_t osc_nats_msg_seq(const struct osc_nats_msg *m);
/* How many times the server delivered it, this time included (1 = first). */
uint64_t osc_nats_msg_delivered(const struct osc_nats_msg *m);
/* Messages left in the consumer after this one, when it was delivered. */
uint64_t osc_nats_msg_pending(const struct osc_nats_msg *m);

/*
 * Acknowledge: processing is done, never deliver it again. Non-blocking
 * (queued on the connection; osc_nats_flush() confirms). The first of
 * ack/nak/term settles a message; later ones are no-ops returning 0.
 * Returns 0, OSC_EINVAL (detached) or OSC_EUNAVAIL (connection closed).
 */
int osc_nats_ack(struct osc_nats_msg *m, struct osc_err *err);
/* Negative ack: redeliver after delay_ms (0: at once). Same contract as ack. */
int osc_nats_nak(struct osc_nats_msg *m, int64_t delay_ms, struct osc_err *err);
/* Terminate: never redeliver, whatever max_deliver says. Same contract as ack. */
int osc_nats_term(struct osc_nats_msg *m, struct osc_err *err);
/*
 * Still working on it: restart the server's ack_wait timer (for a batch
 * that waits out a long Retry-After). Can be repeated; does not settle.
 */
int osc_nats_in_progress(struct osc_nats_msg *m, struct osc_err *err);
/* Free a message (settled or not: unsettled ones come back after ack_wait). Accepts NULL. */
void osc_nats_msg_free(struct osc_nats_msg *m);

/* Messages fetched and not yet freed. */
size_t osc_nats_outstanding(struct osc_nats *n);

/*
 * Round trip to the server: returns once it has received everything sent
 * before (acks included), or OSC_EUNAVAIL after timeout_ms.
 */
int osc_nats_flush(struct osc_nats *n, int timeout_ms, struct osc_err *err);

/* The durable consumer's state as the server sees it (one API request). */
struct osc_nats_info {
    uint64_t num_pending;    /* in the stream, not yet delivered */
    int64_t num_ack_pending; /* delivered, not yet acked */
    int64_t num_redelivered; /* delivered more than once and not yet acked */
    uint64_t delivered_seq;  /* last stream sequence delivered */
    uint64_t ack_floor_seq;  /* every stream sequence up to here is acked */
    int64_t num_waiting;     /* pull requests waiting */
    int64_t ack_wait_ms;     /* the consumer's configuration */
    int64_t max_ack_pending;
    int64_t max_deliver; /* -1: unlimited */
};
/* 0, OSC_EINVAL (no durable), OSC_EUNAVAIL or OSC_EPROTO. Blocks <= request_timeout_ms. */
int osc_nats_info(struct osc_nats *n, struct osc_nats_info *info, struct osc_err *err);

/*
 * Publish to JetStream and wait for the stream's ack (<= request_timeout_ms).
 * *seq (may be NULL) receives the stream sequence. 0, OSC_EUNAVAIL,
 * OSC_EPROTO (e.g. no stream takes the subject).
 */
int osc_nats_publish(struct osc_nats *n, const char *subject, const void *data, size_t len,
                     uint64_t *seq, struct osc_err *err);
/*
 * Publish without waiting (bulk loads, benches): at most 4096 unacked
 * publishes are in flight; past that the call waits for room. Call
 * osc_nats_publish_wait() to collect the outcome: it waits up to
 * timeout_ms for every ack and returns OSC_EIO (err: how many failed and
 * the first reason) when any publish since the last wait failed, or
 * OSC_EUNAVAIL when some acks did not come in time (those publishes are
 * then forgotten: they may or may not be in the stream).
 */
int osc_nats_publish_async(struct osc_nats *n, const char *subject, const void *data, size_t len,
                           struct osc_err *err);
int osc_nats_publish_wait(struct osc_nats *n, int timeout_ms, struct osc_err *err);

/* The URL the connection is on now (no user info), into buf. 0 or OSC_EUNAVAIL. */
int osc_nats_connected_url(struct osc_nats *n, char *buf, size_t cap);

#endif
