/*
 * parse.h - bounded parsing of numbers, durations and sizes.
 *
 * Every function rejects empty strings, trailing garbage and values outside
 * [min, max] with OSC_EINVAL or OSC_ETOOBIG; *out is unchanged on failure.
 */
#ifndef OSC_PARSE_H
#define OSC_PARSE_H

#include <stdint.h>

int osc_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* "250ms", "30s", "15m", "2h", "1d"; a bare number means seconds. Result in ms. */
int osc_parse_duration_ms(const char *s, int64_t min, int64_t max, int64_t *out);
/* "512", "64k", "16KiB", "5MB", "1MiB", "1G": binary multiples (k = 1024). */
int osc_parse_size(const char *s, int64_t min, int64_t max, int64_t *out);
/* "true/false/yes/no/on/off/1/0". */
int osc_parse_bool(const char *s, int *out);

#endif
