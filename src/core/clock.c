/*
 * clock.c - system clocks and ISO 8601 conversion.
 */
#include "osc/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "osc/err.h"

int64_t osc_clock_mono_ms(const struct osc_clock *c)
{
    struct timespec ts;

    if (c && c->mono_ms)
        return c->mono_ms(c->ud);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t osc_clock_wall_ms(const struct osc_clock *c)
{
    struct timespec ts;

    if (c && c->wall_ms)
        return c->wall_ms(c->ud);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void osc_clock_iso8601(int64_t wall_ms, char *out, size_t cap)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int osc_clock_parse_iso8601(const char *s, int64_t *out_ms)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, ms = 0, off = 0;
    const char *p = s;

    if (!s)
        return OSC_EINVAL;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        return OSC_EINVAL;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return OSC_EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return OSC_EINVAL;
    if (*p == '.') {
        int scale = 100;
        p++;
        if (*p < '0' || *p > '9')
            return OSC_EINVAL;
        while (*p >= '0' && *p <= '9') {
            ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(&p, 2, &oh))
            return OSC_EINVAL;
        if (*p == ':')
            p++;
        if (digits(&p, 2, &om))
            return OSC_EINVAL;
        off = sign * (oh * 60 + om);
    }
    if (*p != '\0')
        return OSC_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return OSC_EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out_ms = ((int64_t)timegm(&tm) - (int64_t)off * 60) * 1000 + ms;
    return 0;
}

void osc_clock_sleep_ms(int64_t ms, volatile int *stop)
{
    struct timespec ts;

    /* sleep in slices so a signal handler setting *stop is seen quickly */
    while (ms > 0 && !(stop && *stop)) {
        int64_t slice = ms > 100 ? 100 : ms;
        ts.tv_sec = (time_t)(slice / 1000);
        ts.tv_nsec = (long)(slice % 1000) * 1000000L;
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !(stop && *stop))
            ;
        ms -= slice;
    }
}
