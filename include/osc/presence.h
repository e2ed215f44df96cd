/*
 * presence.h - presence sync: Mapped occupancy points -> OfficeSpace presence.
 *
 * The pure rules (no I/O) come first: point types, the point -> status
 * mapping, per-location aggregation, the push decision (diff) and the cycle
 * scheduler. They are what the unit tests pin down. The engine that runs a
 * cycle (discover, read, map, aggregate, diff, push, remember) and the loop
 * that schedules cycles follow.
 *
 * Statuses are ordered so that the strongest wins with a plain max():
 * NO_PRESENCE < PASSIVE_PRESENCE < PRESENCE.
 */
#ifndef OSC_PRESENCE_H
#define OSC_PRESENCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "osc/buf.h"
#include "osc/clock.h"
#include "osc/config.h"
#include "osc/err.h"
#include "osc/urn.h"

enum osc_presence_status {
    OSC_PRESENCE_NO = 0,      /* NO_PRESENCE */
    OSC_PRESENCE_PASSIVE = 1, /* PASSIVE_PRESENCE */
    OSC_PRESENCE_YES = 2      /* PRESENCE */
};

enum osc_point_kind {
    OSC_POINT_OCCUPANCY_STATUS = 0,
    OSC_POINT_TEMPORARY_OCCUPANCY_STATUS,
    OSC_POINT_OCCUPANCY_COUNT_SENSOR,
    OSC_POINT_OCCUPANCY_SENSOR,
    OSC_POINT_PIR_SENSOR,
    OSC_POINT__COUNT
};

/* "PRESENCE", "PASSIVE_PRESENCE", "NO_PRESENCE" (the GraphQL enum values). */
const char *osc_presence_status_name(enum osc_presence_status s);
/* Mapped exactType ("Occupancy_Status", ...) of a kind, and back (0 or OSC_EINVAL). */
const char *osc_presence_kind_name(enum osc_point_kind k);
int osc_presence_kind_parse(const char *exact_type, size_t len, enum osc_point_kind *out);

/* One point's reading turned into presence. */
struct osc_presence_obs {
    enum osc_presence_status status;
    int64_t count;    /* occupants: the rounded count, or 1/0 for other kinds */
    int count_sensor; /* the reading came from an Occupancy_Count_Sensor */
    int64_t at_ms;    /* reading timestamp, Unix epoch ms */
};

/*
 * Map a finite reading v of a point of kind k:
 *   Occupancy_Status, Temporary_Occupancy_Status: v >= 1 -> PRESENCE, else NO_PRESENCE
 *   Occupancy_Count_Sensor: v > 0 -> PRESENCE with count max(1, round(v)) (the presence
 *     decision is made on v, the rounding after it: 0.4 is PRESENCE 1), else NO_PRESENCE, 0
 *   Occupancy_Sensor, PIR_Sensor: v > 0 -> PASSIVE_PRESENCE, else NO_PRESENCE
 * Non-count kinds get count 1 when the status is not NO_PRESENCE, else 0.
 */
void osc_presence_map(enum osc_point_kind k, double v, int64_t at_ms, struct osc_presence_obs *out);

/*
 * Per-location aggregation of observations: the strongest status wins
 * (PRESENCE > PASSIVE_PRESENCE > NO_PRESENCE); the count is 0 for
 * NO_PRESENCE, else the largest count-sensor count when any count sensor
 * contributed and it is above 1, else 1 (a present location always carries
 * a count >= 1); the time is the newest reading's.
 */
struct osc_presence_agg {
    unsigned n; /* observations added; 0 means "nothing to say" */
    enum osc_presence_status status;
    int has_count_sensor;
    int64_t max_count;
    int64_t at_ms;
};

void osc_presence_agg_init(struct osc_presence_agg *a);
void osc_presence_agg_add(struct osc_presence_agg *a, const struct osc_presence_obs *o);
/* The location's count under the rule above (valid when a->n > 0). */
int64_t osc_presence_agg_count(const struct osc_presence_agg *a);

/* The last accepted push of a location (from the state store). */
struct osc_presence_last {
    int known; /* 0: never accepted */
    enum osc_presence_status status;
    int64_t count;
    int64_t at_ms;   /* presenceDetectedAt that was sent */
    int64_t sent_ms; /* wall clock when OfficeSpace accepted it */
    int expired;     /* it was the NO_PRESENCE of presence.expire_after */
};

enum osc_presence_why {
    OSC_PRESENCE_SKIP = 0, /* unchanged and recently sent */
    OSC_PRESENCE_CHANGED,  /* status or count differs from the last accepted push, or none,
                              or the last accepted push was an expiry (readings returned) */
    OSC_PRESENCE_REFRESH,  /* unchanged, but last accepted resend_after_ms ago or longer */
    OSC_PRESENCE_EXPIRE    /* no fresh reading for expire_after: one NO_PRESENCE, count 0 */
};

/* "unchanged", "changed", "refresh", "expired". */
const char *osc_presence_why_name(enum osc_presence_why w);

/*
 * Should this location, which has a fresh reading, be pushed now?
 * resend_after_ms <= 0 disables refreshes.
 */
enum osc_presence_why osc_presence_diff(const struct osc_presence_last *last,
                                        enum osc_presence_status status, int64_t count,
                                        int64_t now_wall_ms, int64_t resend_after_ms);

/*
 * The expiry rule (presence.expire_after): 1 when a location without a
 * fresh reading (has_fresh == 0: its newest usable reading, newest_ms, is
 * expire_after_ms old or older, or it has no reading at all: newest_ms 0)
 * must get its one NO_PRESENCE push: expire_after_ms > 0, OfficeSpace last
 * accepted a status other than NO_PRESENCE from us (last known, not
 * expired), and the newest reading known (newest_ms, or the last push's
 * presenceDetectedAt when that is newer) is at least expire_after_ms old.
 */
int osc_presence_expired(const struct osc_presence_last *last, int has_fresh, int64_t newest_ms,
                         int64_t now_wall_ms, int64_t expire_after_ms);

/*
 * The cycle scheduler (monotonic ms). Cycles start on a fixed grid
 * start0 + k * interval; a cycle that overruns makes the next one start at
 * the next grid slot after it ended (slots in between are skipped and
 * counted), so cycles never overlap and never drift. A backoff (after auth
 * failures) pushes the next start further out.
 */
struct osc_presence_sched {
    int64_t interval_ms;
    int64_t next_ms;  /* monotonic time of the next start */
    uint64_t skipped; /* grid slots skipped because a cycle overran */
};

void osc_presence_sched_init(struct osc_presence_sched *s, int64_t interval_ms, int64_t now_ms);
/* Milliseconds until the next cycle is due (0 when due). */
int64_t osc_presence_sched_delay(const struct osc_presence_sched *s, int64_t now_ms);
/*
 * A cycle that started at the scheduled time has just ended at now_ms.
 * Moves next_ms to the first grid slot after now_ms that is at least
 * min_delay_ms away (0: none) and returns the delay until it.
 */
int64_t osc_presence_sched_done(struct osc_presence_sched *s, int64_t now_ms, int64_t min_delay_ms);
/* Change the interval (config reload); the grid restarts at the next start. */
void osc_presence_sched_set_interval(struct osc_presence_sched *s, int64_t interval_ms);

/*
 * Exponential backoff after consecutive auth failures: step n (1-based)
 * waits interval * 2^n, capped at max_ms. 0 for n == 0.
 */
int64_t osc_presence_auth_backoff_ms(int64_t interval_ms, unsigned n, int64_t max_ms);

/* ---- the OfficeSpace push (src/officespace/presence_push.c) ------------ */

enum osc_presence_item_state {
    OSC_PRESENCE_ITEM_PENDING = 0, /* not sent, or no answer yet */
    OSC_PRESENCE_ITEM_ACCEPTED,    /* data.pI.success is the boolean true */
    OSC_PRESENCE_ITEM_FAILED,      /* success: false, or a GraphQL error naming its alias */
    OSC_PRESENCE_ITEM_UNACKED      /* answered, but not under its alias with a boolean success */
};

/* One location's createEmployeePresence. */
struct osc_presence_item {
    struct osc_urn urn;
    enum osc_presence_status status;
    int64_t count;
    int64_t at_ms;                      /* presenceDetectedAt */
    enum osc_presence_item_state state; /* set by osc_presence_push_parse() */
    char error[200];                    /* why it failed, for the log */
};

/*
 * The GraphQL request body ({"query": "mutation { p0: createEmployeePresence(
 * employeePresence: {roomId: \"42\", occupancyStatus: PRESENCE,
 * occupancyCount: 3, presenceDetectedAt: \"...Z\"}) { success errors {
 * attribute errors label } } p1: ... }"}) for items[0..n): alias pI is
 * items[I]. Values are written as literals (ids are digits, statuses enum
 * names, times generated here), so nothing user-controlled is spliced in.
 * out is reset first. 0, OSC_ENOMEM or OSC_ETOOBIG.
 */
int osc_presence_push_body(const struct osc_presence_item *items, size_t n, struct osc_buf *out);

/*
 * Apply a GraphQL answer to items[0..n) (PENDING ones; a settled item keeps
 * its state): data.pI.success true -> ACCEPTED; success false (with payload
 * errors) or a top-level error whose path starts with "pI" -> FAILED;
 * anything else -> UNACKED: data.pI null, not an object, without success or
 * with a success that is not a boolean, or no data.pI at all (aliases that
 * do not match what was sent, an error without a path). error says why,
 * naming the alias. Returns 0 with every item settled, or OSC_EPROTO (not
 * JSON / no data and no errors; items unchanged).
 */
int osc_presence_push_parse(const char *json, size_t len, struct osc_presence_item *items, size_t n,
                            struct osc_err *err);

/* ---- the engine: one cycle (src/presence/engine.c) --------------------- */

struct osc_metrics;
struct osc_metrics_cycle;
struct osc_presence;

struct osc_presence_opts {
    const struct osc_clock *clock; /* NULL: the system clocks */
    struct osc_metrics *metrics;   /* API errors are counted here; may be NULL */
    int dry_run;                   /* print what would be pushed; send and store nothing */
    FILE *dry_out;                 /* where the dry-run table goes; NULL: stdout */
    volatile int *stop; /* non-zero (signals): abort the requests in flight, start no new one,
                           skip retry waits; may be NULL */
};

/*
 * New engine for cfg (borrowed: it must outlive the engine). Opens the
 * state store (read-only in a dry run) and loads the last accepted state.
 * A writable store holds the state file's lock (store.h) until
 * osc_presence_free(). Caller frees with osc_presence_free(). Returns 0,
 * OSC_ECONFIG (no presence section), OSC_EBUSY (another process holds the
 * state file), OSC_EDB or OSC_ENOMEM; *out untouched on failure.
 */
int osc_presence_new(const struct osc_config *cfg, const struct osc_presence_opts *opts,
                     struct osc_presence **out, struct osc_err *err);
void osc_presence_free(struct osc_presence *p);

/*
 * Run one cycle: rediscover when the topology is older than
 * presence.topology_refresh (or missing), read the latest values, map and
 * aggregate per location, push what changed, is due for refresh or has
 * expired (presence.expire_after), record what OfficeSpace accepted (and
 * nothing else). Retries inside the cycle stop before deadline_mono_ms; a
 * stop (opts.stop) aborts the request in flight and starts no other.
 * rep (required) is filled with what happened.
 * Returns 0 (rep->result ok), OSC_EREJECTED (partial: some locations were
 * refused or not acknowledged by OfficeSpace), OSC_EAUTH (a credential was
 * refused), OSC_EUNAVAIL / OSC_EHTTP / OSC_EPROTO / OSC_ETOOBIG (Mapped
 * could not be read, or OfficeSpace could not be reached), OSC_EINTERRUPTED
 * (stopped), OSC_EDB; err says why.
 */
int osc_presence_cycle(struct osc_presence *p, int64_t deadline_mono_ms,
                       struct osc_metrics_cycle *rep, struct osc_err *err);

/* Force a rediscovery at the next cycle. */
void osc_presence_invalidate(struct osc_presence *p);

/*
 * Poll only some buildings: held[i] (i < presence.buildings.n) says whether
 * building i is this instance's (copied); NULL polls every building (the
 * default). A changed set forces a rediscovery of the held ones. While
 * a set is held, a location OfficeSpace has from us that the topology no
 * longer lists is expired only when it was last seen in a building still
 * held (a building another instance took is not "gone"); with nothing held
 * a cycle reads nothing and succeeds. 0 or OSC_ENOMEM.
 */
int osc_presence_hold(struct osc_presence *p, const unsigned char *held);

/* ---- coordination among instances (src/presence/coord.c) ----------------- */

struct osc_presence_coord;

/*
 * Share cfg->presence.buildings with every other instance of the same
 * presence.coordination (NATS JetStream KV leases, see lease.h): each
 * building is held by one live instance. The lease lifetime is one
 * presence.interval; a thread runs a lease round every quarter interval
 * (at least 250 ms), independently of the cycles, so a cycle that takes
 * the whole interval does not let a lease lapse. A dead instance's
 * buildings are free one interval after its last round and taken at the
 * next round of a live instance. The first round runs before this
 * returns. The instance id is "HOST-PID". cfg is copied from (not kept).
 * Returns 0 and *out (stop with osc_presence_coord_stop()), or the codes
 * of osc_lease_open() with err saying what failed.
 */
int osc_presence_coord_start(const struct osc_config *cfg, struct osc_presence_coord **out,
                             struct osc_err *err);
/*
 * The buildings held now: held[i] for presence.buildings[i] (n of them).
 * Returns a generation number that changes whenever the set gains a
 * building (a cycle should run soon: the building is unpolled until then).
 */
uint64_t osc_presence_coord_held(struct osc_presence_coord *c, unsigned char *held, size_t n);
/* The generation alone (cheap, for waits). */
uint64_t osc_presence_coord_gen(struct osc_presence_coord *c);
/* 1 when c was started for the same buildings, interval and coordination as cfg has. */
int osc_presence_coord_same(const struct osc_presence_coord *c, const struct osc_config *cfg);
/*
 * Stop the rounds, give up every lease (the others take them at their next
 * round) and disconnect. Accepts NULL.
 */
void osc_presence_coord_stop(struct osc_presence_coord *c);

/* ---- the loop (src/presence/loop.c) ------------------------------------- */

struct osc_presence_loop_opts {
    const char *config_path; /* reloaded on *reload (copied: may point into *cfg) */
    int once;                /* one cycle, then return its code */
    int dry_run;
    FILE *dry_out;
    struct osc_metrics *metrics; /* required: cycles are recorded here */
    volatile int *stop;          /* SIGTERM/SIGINT: abort the cycle in flight, return 0 */
    volatile int *reload;        /* SIGHUP: reload config_path between cycles */
    const struct osc_clock *clock;
    /* Optional (NULL: none), on the loop's thread: after each cycle with its
     * report, and with NULL at least every 100 ms while the loop waits. A cycle
     * in progress does not tick (it ends before the next grid slot). */
    void (*tick)(void *arg, const struct osc_metrics_cycle *done);
    void *tick_arg;
    /* with presence.coordination (osconnect run): poll only the buildings this instance
     * holds, and run a cycle at once when it takes over a building */
    int coordinate;
};

/*
 * Run cycles every presence.interval until *stop (or once). *cfg is owned
 * by the caller before and after; on a successful reload the loop frees
 * the old config and stores the new one in *cfg. A bad file keeps the old
 * config (logged). Mapped/OfficeSpace auth failures back off exponentially
 * between cycles (interval * 2^n, at most an hour). The loop ticks
 * o->metrics (osc_metrics_tick) while it waits. Returns 0 after a stop;
 * with once, the cycle's code (0, OSC_EREJECTED, OSC_EAUTH, ...;
 * OSC_EINTERRUPTED when a stop cut the cycle short).
 */
int osc_presence_loop(struct osc_config **cfg, const struct osc_presence_loop_opts *o,
                      struct osc_err *err);

#endif
