/*
 * lease.h - which osconnect instance polls which building, agreed through
 * a NATS JetStream key-value bucket whose keys expire after a TTL.
 *
 * Design. Every key in the bucket expires ttl_ms after its last write (the
 * bucket's max age), so a key that is not rewritten disappears by itself.
 * Two kinds of keys:
 *   i.<instance>  heartbeat, rewritten every round: the live instances are
 *                 the heartbeats present;
 *   b.<building>  lease, value = the holder's instance id.
 * One round (osc_lease_round(), run once per presence cycle) writes the
 * heartbeat, reads the bucket, renews this instance's leases (each a
 * compare-and-set on the revision it read: losing the race means someone
 * else holds it now), gives up the leases above the fair share
 * ceil(buildings / live instances) when more instances appear, and takes
 * free ones (absent, deleted, expired, or held by an instance whose
 * heartbeat is gone) up to the fair share, each take a create-if-absent /
 * compare-and-set so two instances can never both win one key.
 *
 * Guarantees. At most one instance holds a building at any time, as long
 * as every instance runs rounds more often than ttl_ms (the holder's own
 * view of its lease ends ttl_ms after the moment it sent its last
 * successful write, never later than the server's). A building whose
 * holder dies (or stops renewing) is free ttl_ms after its last renewal and
 * taken in the next round of a live instance with room: with rounds every
 * interval and ttl_ms = k intervals, a dead instance's buildings move
 * within k + 1 intervals of its last round. A building given up for
 * rebalancing is unpolled until the next round of an instance with room
 * (at most one interval). Instance ids must be unique among live
 * instances (e.g. "host-pid"); ids of any characters are allowed (they are
 * encoded into keys).
 *
 * Threads: one struct osc_lease is used from one thread. libnats' threads
 * run no osconnect code (no callbacks are installed).
 */
#ifndef OSC_LEASE_H
#define OSC_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "osc/err.h"
#include "osc/nats.h"

struct osc_lease_opts {
    struct osc_nats_conn_opts conn;
    const char *bucket;   /* KV bucket name ([A-Za-z0-9_-]); created when missing */
    const char *instance; /* this instance's id, unique among live instances */
    int64_t ttl_ms;       /* key lifetime: a few round intervals (>= 1000) */
    int replicas;         /* bucket replicas when creating it (0: 1) */
};

struct osc_lease;

/*
 * Connect and open the bucket, creating it (history 1, file storage, max
 * age ttl_ms) when missing; an existing bucket with another TTL gets this
 * one (the last instance started wins). Blocks about as long as
 * osc_nats_open(). Returns 0 and *out (caller closes with
 * osc_lease_close()), or the codes of osc_nats_open() (OSC_EINVAL for a
 * bad bucket name, empty instance id or ttl_ms < 1000).
 */
int osc_lease_open(const struct osc_lease_opts *o, struct osc_lease **out, struct osc_err *err);

/*
 * One round over the buildings ids[0..n-1] (the same list, in the same
 * order, on every instance; duplicates are not allowed). On return held[i]
 * is 1 when this instance holds ids[i] (and should poll it this cycle),
 * else 0. Blocks for a few JetStream requests per building this instance
 * touches, each at most the connection's request timeout.
 *
 * Returns 0, or OSC_EUNAVAIL / OSC_EPROTO / OSC_ENOMEM (err says which
 * step failed). held[] is meaningful on failure too: it then lists the
 * buildings whose lease this instance wrote successfully less than ttl_ms
 * ago (they cannot have been taken yet), so polling can go on through a
 * short outage without two instances polling one building.
 */
int osc_lease_round(struct osc_lease *l, const char *const *ids, size_t n, unsigned char *held,
                    struct osc_err *err);

/* Live instances seen in the last successful round (this one included), 0 before any. */
size_t osc_lease_live(const struct osc_lease *l);

/*
 * Clean shutdown: delete this instance's leases (each only if still its
 * own, by revision) and its heartbeat, so the others take the buildings at
 * their next round instead of after ttl_ms. 0, or OSC_EUNAVAIL / OSC_EPROTO
 * (what was not deleted expires after ttl_ms anyway).
 */
int osc_lease_release(struct osc_lease *l, struct osc_err *err);

/* Close the connection without releasing (the keys expire: like a crash). Accepts NULL. */
void osc_lease_close(struct osc_lease *l);

#endif
