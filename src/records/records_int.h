/*
 * records_int.h - helpers shared inside src/records (not public).
 */
#ifndef OSC_RECORDS_INT_H
#define OSC_RECORDS_INT_H

#include <stddef.h>

#include "osc/records.h"

/* One key of an open object: its body in the input text (escapes kept). */
struct json_key {
    const char *k;
    size_t len;
    int esc; /* holds a backslash escape: compare unescaped */
};

/*
 * The key stack of the duplicate-key check: a caller keeps one across calls
 * so the hot path never allocates (it grows with the widest record seen,
 * bounded by the record cap). Zero-initialise; free with json_keys_free().
 */
struct json_keys {
    struct json_key *v;
    size_t n, cap;
    char why[128]; /* the last error that names a key */
};
void json_keys_free(struct json_keys *k);

/*
 * Validate and compact one JSON object at text into out (appended; out is
 * reserved once, so the field spans stay valid until out changes again),
 * indexing its top-level members into fields[max_fields]. Leading
 * whitespace is skipped; *used is how far the scan got. keys (may be NULL:
 * no duplicate-key check) is the caller's key stack. nul NULL makes \u0000
 * in a string an error; otherwise it is accepted and *nul set to 1 (a
 * dead letter's envelope may quote a NUL read from a CSV). Returns 0,
 * OSC_EDATA (*why says what is wrong, valid until keys is used again) or
 * OSC_ENOMEM/OSC_ETOOBIG.
 */
int json_compact_object(const char *text, size_t len, size_t *used, struct osc_buf *out,
                        struct osc_record_field *fields, size_t max_fields, size_t *nfields,
                        struct json_keys *keys, int *nul, const char **why);

#endif
