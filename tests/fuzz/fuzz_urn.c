/*
 * fuzz_urn.c - libFuzzer harness for the OfficeSpace identity URN parser.
 *
 * Any bytes must either be refused with a reason or parse to a location
 * whose canonical spelling parses back to the same location; the prefix
 * test must agree with the parser about what is ours.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "osc/urn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *why = NULL;
    struct osc_urn u, back;
    char text[OSC_URN_STR_MAX];

    if (osc_urn_parse(s, size, &u, &why) != 0) {
        if (!why)
            abort(); /* every refusal says why */
        return 0;
    }
    if (!osc_urn_is_officespace(s, size) || (unsigned)u.type >= OSC_URN__COUNT || u.id < 1 ||
        u.id > OSC_URN_ID_MAX)
        abort();
    osc_urn_format(&u, text, sizeof(text));
    if (osc_urn_parse(text, strlen(text), &back, &why) != 0 || osc_urn_cmp(&u, &back) != 0)
        abort();
    if (osc_urn_input_field(u.type)[0] == '?')
        abort();
    return 0;
}
