/*
 * parse.c - bounded number parsing on strtoll, never atoi.
 */
#include "osc/parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "osc/err.h"

static int number_prefix(const char *s, int64_t *out, const char **rest)
{
    char *end;
    long long v;

    if (!s || !*s || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
        return OSC_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return OSC_ETOOBIG;
    if (end == s)
        return OSC_EINVAL;
    *out = v;
    *rest = end;
    return 0;
}

static int bounded(int64_t v, int64_t mult, int64_t min, int64_t max, int64_t *out)
{
    if (mult > 1 && (v > INT64_MAX / mult || v < INT64_MIN / mult))
        return OSC_ETOOBIG;
    v *= mult;
    if (v < min || v > max)
        return OSC_ETOOBIG;
    *out = v;
    return 0;
}

int osc_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    const char *rest;
    int64_t v;
    int rc = number_prefix(s, &v, &rest);

    if (rc)
        return rc;
    if (*rest)
        return OSC_EINVAL;
    return bounded(v, 1, min, max, out);
}

int osc_parse_duration_ms(const char *s, int64_t min, int64_t max, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    const char *rest;
    int64_t v;
    int rc = number_prefix(s, &v, &rest);

    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(rest, units[i].unit) == 0)
            return bounded(v, units[i].ms, min, max, out);
    return OSC_EINVAL;
}

int osc_parse_size(const char *s, int64_t min, int64_t max, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {
        {"", 1},           {"b", 1},           {"k", 1024},         {"kb", 1024},
        {"kib", 1024},     {"m", 1048576},     {"mb", 1048576},     {"mib", 1048576},
        {"g", 1073741824}, {"gb", 1073741824}, {"gib", 1073741824},
    };
    const char *rest;
    int64_t v;
    int rc = number_prefix(s, &v, &rest);

    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(rest, units[i].unit) == 0)
            return bounded(v, units[i].mult, min, max, out);
    return OSC_EINVAL;
}

int osc_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    if (!s)
        return OSC_EINVAL;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return OSC_EINVAL;
}
