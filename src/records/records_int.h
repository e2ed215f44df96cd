/*
 * records_int.h - helpers shared inside src/records (not public).
 */
#ifndef OSC_RECORDS_INT_H
#define OSC_RECORDS_INT_H

#include <stddef.h>

#include "osc/records.h"

/*
 * Validate and compact one JSON object at text into out (appended; out is
 * reserved once, so the field spans stay valid until out changes again),
 * indexing its top-level members into fields[max_fields]. Leading
 * whitespace is skipped; *used is how far the scan got. Returns 0,
 * OSC_EDATA (*why says what is wrong) or OSC_ENOMEM/OSC_ETOOBIG.
 */
int json_compact_object(const char *text, size_t len, size_t *used, struct osc_buf *out,
                        struct osc_record_field *fields, size_t max_fields, size_t *nfields,
                        const char **why);

#endif
