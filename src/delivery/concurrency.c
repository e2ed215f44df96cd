/* concurrency.c - placeholder: a fixed limit, or 4 when adaptive. */
#include "concurrency.h"

void osc_cc_init(struct osc_cc *cc, int fixed, int limit_max)
{
    cc->fixed = fixed;
    cc->limit_max = limit_max > 0 ? limit_max : 64;
    cc->limit = fixed > 0 ? fixed : 4;
}

int osc_cc_limit(const struct osc_cc *cc) { return (int)cc->limit; }

void osc_cc_on_response(struct osc_cc *cc, int64_t now_ms, int64_t latency_ms,
                        enum osc_cc_signal sig)
{
    (void)cc, (void)now_ms, (void)latency_ms, (void)sig;
}
