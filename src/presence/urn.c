/*
 * urn.c - parse and format urn:officespace:{type}:id:{id}; see urn.h.
 *
 * Invariant: a struct osc_urn that came out of osc_urn_parse() has a type
 * below OSC_URN__COUNT and an id in 1..OSC_URN_ID_MAX, so formatting it
 * back gives the one canonical spelling.
 */
#include "osc/urn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "osc/err.h"

#define PREFIX     "urn:officespace:"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

static const char *const type_names[OSC_URN__COUNT] = {"site", "floor", "room", "neighborhood",
                                                       "desk"};
static const char *const input_fields[OSC_URN__COUNT] = {"siteId", "floorId", "roomId",
                                                         "neighborhoodId", "seatId"};

int osc_urn_is_officespace(const char *s, size_t len)
{
    return s && len >= PREFIX_LEN && strncasecmp(s, PREFIX, PREFIX_LEN) == 0;
}

static int fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return OSC_EINVAL;
}

int osc_urn_parse(const char *s, size_t len, struct osc_urn *out, const char **why)
{
    const char *p, *end, *colon;
    size_t tlen;
    int type = -1;
    int64_t id = 0;

    if (!osc_urn_is_officespace(s, len))
        return fail(why, "does not start with urn:officespace:");
    p = s + PREFIX_LEN;
    end = s + len;
    colon = memchr(p, ':', (size_t)(end - p));
    if (!colon)
        return fail(why, "expected urn:officespace:{type}:id:{id}");
    tlen = (size_t)(colon - p);
    for (int t = 0; t < OSC_URN__COUNT; t++) {
        if (strlen(type_names[t]) == tlen && memcmp(p, type_names[t], tlen) == 0) {
            type = t;
            break;
        }
    }
    if (type < 0)
        return fail(why, "type is not one of site, floor, room, neighborhood, desk");
    p = colon + 1;
    if (end - p < 3 || memcmp(p, "id:", 3) != 0)
        return fail(why, "expected ':id:' after the type");
    p += 3;
    if (p == end)
        return fail(why, "the id is empty");
    if (*p == '0')
        return fail(why, "the id must be a positive integer without leading zeros");
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return fail(why, "the id must be a positive decimal integer");
        if (id > (OSC_URN_ID_MAX - (*p - '0')) / 10)
            return fail(why, "the id is too large");
        id = id * 10 + (*p - '0');
    }
    out->type = (enum osc_urn_type)type;
    out->id = id;
    return 0;
}

void osc_urn_format(const struct osc_urn *u, char *out, size_t cap)
{
    snprintf(out, cap, PREFIX "%s:id:%lld", osc_urn_type_name(u->type), (long long)u->id);
}

const char *osc_urn_type_name(enum osc_urn_type t)
{
    return (unsigned)t < OSC_URN__COUNT ? type_names[t] : "?";
}

int osc_urn_type_parse(const char *name, enum osc_urn_type *out)
{
    for (int t = 0; t < OSC_URN__COUNT; t++) {
        if (strcmp(name, type_names[t]) == 0) {
            *out = (enum osc_urn_type)t;
            return 0;
        }
    }
    return OSC_EINVAL;
}

const char *osc_urn_input_field(enum osc_urn_type t)
{
    return (unsigned)t < OSC_URN__COUNT ? input_fields[t] : "?";
}

int osc_urn_cmp(const struct osc_urn *a, const struct osc_urn *b)
{
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}
