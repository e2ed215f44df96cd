/*
 * fuzz_mapped.c - libFuzzer harness for the streaming Mapped response
 * walker (discovery and read) and the TimeseriesRowValue parser.
 *
 * Any bytes must give a topology or an error, never a crash, an over-read
 * or a leak; a topology must hold its invariants (links sorted, unique and
 * in range; values finite).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "osc/log.h"
#include "osc/mapped.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct osc_mapped_topo *t)
{
    for (size_t i = 0; i < t->nlinks; i++) {
        const struct osc_mapped_link *l = &t->links[i];
        if (l->loc >= t->nlocs || l->point >= t->npoints)
            abort();
        if (i && (t->links[i - 1].loc > l->loc ||
                  (t->links[i - 1].loc == l->loc && t->links[i - 1].point >= l->point)))
            abort();
    }
    for (size_t i = 0; i < t->npoints; i++)
        if (t->points[i].has_value && !isfinite(t->points[i].value))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct osc_mapped_topo *t;
    struct osc_err err;
    double v;

    osc_log_set_level(OSC_LOG_LEVEL_ERROR); /* invalid identities are WARN lines */
    if (osc_mapped_value_parse(s, size, &v) == 0 && !isfinite(v))
        abort();
    if (!(t = osc_mapped_topo_new()))
        return 0;
    if (osc_mapped_parse(t, s, size, 1, &err) == 0) {
        osc_mapped_topo_finish(t);
        check(t);
        /* the same bytes as a read answer against what discovery found */
        osc_mapped_topo_clear_values(t);
        (void)osc_mapped_parse(t, s, size, 0, &err);
        check(t);
    }
    osc_mapped_topo_free(t);
    return 0;
}
