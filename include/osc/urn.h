/*
 * urn.h - OfficeSpace location identities: urn:officespace:{type}:id:{id}.
 *
 * Mapped places carry ExternalIdentity values; those of the form
 * urn:officespace:{site|floor|room|neighborhood|desk}:id:{positive integer}
 * name the OfficeSpace location whose presence the place reports. The parser
 * is strict (exact lower-case type names, decimal id without sign or leading
 * zeros, nothing after the id) so that one location has one spelling; the
 * "urn:officespace:" prefix itself is matched case-insensitively (RFC 8141
 * namespace ids are case-insensitive). It never allocates.
 */
#ifndef OSC_URN_H
#define OSC_URN_H

#include <stddef.h>
#include <stdint.h>

enum osc_urn_type {
    OSC_URN_SITE = 0,
    OSC_URN_FLOOR,
    OSC_URN_ROOM,
    OSC_URN_NEIGHBORHOOD,
    OSC_URN_DESK,
    OSC_URN__COUNT
};

/* Largest id accepted: 2^53 - 1, so ids survive any JSON consumer. */
#define OSC_URN_ID_MAX 9007199254740991LL
/* Longest URN osc_urn_format() writes, including the NUL. */
#define OSC_URN_STR_MAX 64

struct osc_urn {
    enum osc_urn_type type;
    int64_t id; /* 1 .. OSC_URN_ID_MAX */
};

/*
 * Does s (len bytes, need not be NUL-terminated) start with
 * "urn:officespace:"? Such identities are ours: if they do not parse they
 * are reported as invalid; other identities are ignored.
 */
int osc_urn_is_officespace(const char *s, size_t len);

/*
 * Parse s (len bytes). Returns 0 and fills *out, or OSC_EINVAL with *why
 * (if not NULL) set to a static phrase saying what is wrong; *out is
 * unchanged on failure.
 */
int osc_urn_parse(const char *s, size_t len, struct osc_urn *out, const char **why);

/* "urn:officespace:room:id:42" into out (cap >= OSC_URN_STR_MAX is enough). */
void osc_urn_format(const struct osc_urn *u, char *out, size_t cap);

/* "site", "floor", "room", "neighborhood", "desk"; "?" when out of range. */
const char *osc_urn_type_name(enum osc_urn_type t);
/* Type from its name; 0 or OSC_EINVAL. */
int osc_urn_type_parse(const char *name, enum osc_urn_type *out);
/* The createEmployeePresence input field: siteId, floorId, roomId, neighborhoodId, seatId. */
const char *osc_urn_input_field(enum osc_urn_type t);

/* Order locations by (type, id): <0, 0, >0. */
int osc_urn_cmp(const struct osc_urn *a, const struct osc_urn *b);

#endif
