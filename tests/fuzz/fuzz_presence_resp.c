/*
 * fuzz_presence_resp.c - libFuzzer harness for the OfficeSpace
 * createEmployeePresence answer parser.
 *
 * The first byte picks how many aliased items the request had (0..63); the
 * rest is the answer. Any answer must leave each item PENDING, ACCEPTED or
 * FAILED (FAILED with a reason), and a refused answer must change nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "osc/presence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct osc_presence_item items[64];
    struct osc_err err;
    size_t n;
    int rc;

    if (size < 1)
        return 0;
    n = data[0] & 63;
    memset(items, 0, sizeof(items));
    for (size_t i = 0; i < n; i++) {
        items[i].urn.type = (enum osc_urn_type)(i % OSC_URN__COUNT);
        items[i].urn.id = (int64_t)i + 1;
    }
    rc = osc_presence_push_parse((const char *)data + 1, size - 1, items, n, &err);
    for (size_t i = 0; i < 64; i++) {
        enum osc_presence_item_state st = items[i].state;
        if (st != OSC_PRESENCE_ITEM_PENDING && st != OSC_PRESENCE_ITEM_ACCEPTED &&
            st != OSC_PRESENCE_ITEM_FAILED)
            abort();
        if (i >= n && st != OSC_PRESENCE_ITEM_PENDING)
            abort(); /* beyond the request */
        if (rc && st != OSC_PRESENCE_ITEM_PENDING)
            abort(); /* a refused answer settles nothing */
        if (st == OSC_PRESENCE_ITEM_FAILED && !items[i].error[0])
            abort();
        if (memchr(items[i].error, '\0', sizeof(items[i].error)) == NULL)
            abort();
    }
    return 0;
}
