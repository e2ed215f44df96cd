/*
 * retry.c - retry classes and full-jitter backoff.
 */
#include "osc/retry.h"

#include <stdio.h>
#include <string.h>

enum osc_http_outcome osc_retry_classify(const struct osc_conf_retry *policy, long status,
                                         int transport)
{
    enum osc_http_outcome def = osc_http_classify(status, transport);
    char code[8], cls[8];
    int found_class = -1;

    if (!policy || transport || status < 100 || status > 599)
        return def;
    snprintf(code, sizeof(code), "%ld", status);
    snprintf(cls, sizeof(cls), "%cxx", code[0]);
    for (size_t i = 0; i < policy->classes.n; i++) {
        const char *v = policy->classes.vals[i];
        int o = strcmp(v, "sent") == 0    ? OSC_HTTP_SENT
                : strcmp(v, "retry") == 0 ? OSC_HTTP_RETRY
                                          : OSC_HTTP_REJECT;
        if (strcmp(policy->classes.keys[i], code) == 0)
            return (enum osc_http_outcome)o; /* an exact code wins over a class */
        if (strcmp(policy->classes.keys[i], cls) == 0)
            found_class = o;
    }
    return found_class >= 0 ? (enum osc_http_outcome)found_class : def;
}

uint64_t osc_retry_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int64_t osc_retry_backoff_ms(const struct osc_conf_retry *policy, unsigned attempt, uint64_t *rng)
{
    int64_t base = policy ? policy->base_ms : 500, cap = policy ? policy->cap_ms : 30000;
    int64_t ceiling = base;

    for (unsigned i = 1; i < attempt && ceiling < cap; i++)
        ceiling *= 2;
    if (ceiling > cap)
        ceiling = cap;
    return (int64_t)(osc_retry_rand(rng) % (uint64_t)(ceiling + 1));
}
