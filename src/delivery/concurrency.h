/*
 * concurrency.h - how many requests a destination may have in flight
 * (placeholder until the adaptive controller lands: a fixed limit).
 */
#ifndef OSC_CONCURRENCY_H
#define OSC_CONCURRENCY_H

#include <stdint.h>

enum osc_cc_signal { OSC_CC_OK = 0, OSC_CC_BACKPRESSURE, OSC_CC_ERROR };

struct osc_cc {
    int fixed;     /* 0: adaptive */
    int limit_max; /* ceiling */
    double limit;
};

void osc_cc_init(struct osc_cc *cc, int fixed, int limit_max);
int osc_cc_limit(const struct osc_cc *cc);
void osc_cc_on_response(struct osc_cc *cc, int64_t now_ms, int64_t latency_ms,
                        enum osc_cc_signal sig);

#endif
