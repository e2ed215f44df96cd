/*
 * clock.h - the one way code reads "now".
 *
 * Intervals use the monotonic clock; the wall clock is only for timestamps
 * sent to APIs. Code that schedules takes a const struct osc_clock * so a
 * test can step time instead of sleeping; NULL means the system clocks.
 */
#ifndef OSC_CLOCK_H
#define OSC_CLOCK_H

#include <stddef.h>
#include <stdint.h>

struct osc_clock {
    int64_t (*mono_ms)(void *ud); /* monotonic milliseconds */
    int64_t (*wall_ms)(void *ud); /* Unix epoch milliseconds */
    void *ud;
};

int64_t osc_clock_mono_ms(const struct osc_clock *c);
int64_t osc_clock_wall_ms(const struct osc_clock *c);

/* Format epoch milliseconds as ISO 8601 UTC "2026-01-07T10:30:00Z" (out >= 32). */
void osc_clock_iso8601(int64_t wall_ms, char *out, size_t cap);

/*
 * Parse an ISO 8601 / RFC 3339 timestamp ("2026-01-07T10:30:00Z",
 * "...00.123+02:00", or without a zone, taken as UTC) into epoch ms.
 * Returns 0 or OSC_EINVAL.
 */
int osc_clock_parse_iso8601(const char *s, int64_t *out_ms);

/* Sleep, restarting after signals until ms have passed or *stop becomes non-zero. */
void osc_clock_sleep_ms(int64_t ms, volatile int *stop);

#endif
