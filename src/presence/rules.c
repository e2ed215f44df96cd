/*
 * rules.c - the pure presence rules: point kinds, point -> status mapping,
 * aggregation, the push decision and the cycle scheduler; see presence.h.
 *
 * Nothing here does I/O or reads a clock: callers pass "now", so unit tests
 * step time by hand.
 */
#include "osc/presence.h"

#include <math.h>
#include <string.h>

#include "osc/err.h"

static const char *const kind_names[OSC_POINT__COUNT] = {
    "Occupancy_Status", "Temporary_Occupancy_Status", "Occupancy_Count_Sensor", "Occupancy_Sensor",
    "PIR_Sensor"};

const char *osc_presence_status_name(enum osc_presence_status s)
{
    switch (s) {
    case OSC_PRESENCE_YES: return "PRESENCE";
    case OSC_PRESENCE_PASSIVE: return "PASSIVE_PRESENCE";
    case OSC_PRESENCE_NO: return "NO_PRESENCE";
    }
    return "?";
}

const char *osc_presence_kind_name(enum osc_point_kind k)
{
    return (unsigned)k < OSC_POINT__COUNT ? kind_names[k] : "?";
}

int osc_presence_kind_parse(const char *exact_type, size_t len, enum osc_point_kind *out)
{
    for (int k = 0; k < OSC_POINT__COUNT; k++) {
        if (strlen(kind_names[k]) == len && memcmp(exact_type, kind_names[k], len) == 0) {
            *out = (enum osc_point_kind)k;
            return 0;
        }
    }
    return OSC_EINVAL;
}

void osc_presence_map(enum osc_point_kind k, double v, int64_t at_ms, struct osc_presence_obs *out)
{
    memset(out, 0, sizeof(*out));
    out->at_ms = at_ms;
    switch (k) {
    case OSC_POINT_OCCUPANCY_STATUS:
    case OSC_POINT_TEMPORARY_OCCUPANCY_STATUS:
        out->status = v >= 1 ? OSC_PRESENCE_YES : OSC_PRESENCE_NO;
        break;
    case OSC_POINT_OCCUPANCY_COUNT_SENSOR: {
        /* presence is decided on the raw value (0.4 people is someone), the count is rounded
         * after, never below 1 for a present location, and bounded so a wild reading cannot
         * overflow the conversion */
        double r = v > 1e9 ? 1e9 : round(v);
        out->count_sensor = 1;
        if (v > 0) {
            out->status = OSC_PRESENCE_YES;
            out->count = r < 1 ? 1 : (int64_t)r;
        } else {
            out->status = OSC_PRESENCE_NO;
            out->count = 0;
        }
        return;
    }
    case OSC_POINT_OCCUPANCY_SENSOR:
    case OSC_POINT_PIR_SENSOR:
    default: out->status = v > 0 ? OSC_PRESENCE_PASSIVE : OSC_PRESENCE_NO; break;
    }
    out->count = out->status != OSC_PRESENCE_NO;
}

void osc_presence_agg_init(struct osc_presence_agg *a) { memset(a, 0, sizeof(*a)); }

void osc_presence_agg_add(struct osc_presence_agg *a, const struct osc_presence_obs *o)
{
    if (a->n == 0 || o->status > a->status)
        a->status = o->status;
    if (o->count_sensor) {
        if (!a->has_count_sensor || o->count > a->max_count)
            a->max_count = o->count;
        a->has_count_sensor = 1;
    }
    if (a->n == 0 || o->at_ms > a->at_ms)
        a->at_ms = o->at_ms;
    a->n++;
}

int64_t osc_presence_agg_count(const struct osc_presence_agg *a)
{
    /* a present location always carries someone: a count sensor at 0 next to a status
     * sensor at 1 is a count the status sensor contradicts, not an empty room */
    if (a->status == OSC_PRESENCE_NO)
        return 0;
    if (a->has_count_sensor && a->max_count > 1)
        return a->max_count;
    return 1;
}

const char *osc_presence_why_name(enum osc_presence_why w)
{
    switch (w) {
    case OSC_PRESENCE_CHANGED: return "changed";
    case OSC_PRESENCE_REFRESH: return "refresh";
    case OSC_PRESENCE_SKIP: return "unchanged";
    case OSC_PRESENCE_EXPIRE: return "expired";
    }
    return "?";
}

enum osc_presence_why osc_presence_diff(const struct osc_presence_last *last,
                                        enum osc_presence_status status, int64_t count,
                                        int64_t now_wall_ms, int64_t resend_after_ms)
{
    /* after an expiry, a fresh reading is news whatever it says: OfficeSpace hears it once */
    if (!last || !last->known || last->expired || last->status != status || last->count != count)
        return OSC_PRESENCE_CHANGED;
    /* a clock stepped backwards (sent_ms in the future) also counts as due */
    if (resend_after_ms > 0 &&
        (now_wall_ms - last->sent_ms >= resend_after_ms || now_wall_ms < last->sent_ms))
        return OSC_PRESENCE_REFRESH;
    return OSC_PRESENCE_SKIP;
}

int osc_presence_expired(const struct osc_presence_last *last, int has_fresh, int64_t newest_ms,
                         int64_t now_wall_ms, int64_t expire_after_ms)
{
    int64_t newest;

    if (expire_after_ms <= 0 || has_fresh || !last || !last->known || last->expired ||
        last->status == OSC_PRESENCE_NO)
        return 0;
    /* without any reading left, the newest one known is the one last pushed */
    newest = newest_ms > last->at_ms ? newest_ms : last->at_ms;
    return now_wall_ms - newest >= expire_after_ms;
}

void osc_presence_sched_init(struct osc_presence_sched *s, int64_t interval_ms, int64_t now_ms)
{
    memset(s, 0, sizeof(*s));
    s->interval_ms = interval_ms > 0 ? interval_ms : 1;
    s->next_ms = now_ms;
}

int64_t osc_presence_sched_delay(const struct osc_presence_sched *s, int64_t now_ms)
{
    return s->next_ms > now_ms ? s->next_ms - now_ms : 0;
}

int64_t osc_presence_sched_done(struct osc_presence_sched *s, int64_t now_ms, int64_t min_delay_ms)
{
    int64_t earliest = now_ms + (min_delay_ms > 0 ? min_delay_ms : 0);

    s->next_ms += s->interval_ms;
    if (s->next_ms < earliest) {
        /* jump over the missed slots in one step, not a loop per slot */
        int64_t missed = (earliest - s->next_ms + s->interval_ms - 1) / s->interval_ms;
        if (min_delay_ms <= 0)
            s->skipped += (uint64_t)missed;
        s->next_ms += missed * s->interval_ms;
    }
    return s->next_ms - now_ms;
}

void osc_presence_sched_set_interval(struct osc_presence_sched *s, int64_t interval_ms)
{
    s->interval_ms = interval_ms > 0 ? interval_ms : 1;
}

int64_t osc_presence_auth_backoff_ms(int64_t interval_ms, unsigned n, int64_t max_ms)
{
    int64_t d = interval_ms;

    if (n == 0)
        return 0;
    for (unsigned i = 0; i < n && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}
