/*
 * jcur.h - a pull JSON cursor over a NUL-terminated buffer (internal to
 * src/sources).
 *
 * Mapped answers a building query with one document that can be tens of
 * megabytes; building a jansson tree of it would cost several times its
 * size. The cursor walks the text once, in place, and lets the reader
 * descend only into what it needs and skip the rest. Strings are returned
 * as spans into the buffer (escapes left as they are; jc_unescape() decodes
 * them when a copy is needed). Nesting is bounded by JC_MAX_DEPTH; any
 * syntax error makes every later call fail, with c->err set.
 */
#ifndef OSC_SOURCES_JCUR_H
#define OSC_SOURCES_JCUR_H

#include <stddef.h>

#define JC_MAX_DEPTH 64

enum jc_type { JC_ERR = 0, JC_OBJ, JC_ARR, JC_STR, JC_NUM, JC_TRUE, JC_FALSE, JC_NULL, JC_END };

struct jc_str {
    const char *s; /* borrowed from the buffer; not NUL-terminated */
    size_t len;
    int escaped; /* contains a backslash escape */
};

struct jcur {
    const char *p, *end, *start;
    int depth;
    unsigned char first[JC_MAX_DEPTH + 1]; /* no member read yet at this level */
    const char *err;                       /* static text, NULL while fine */
    size_t err_off;
};

void jc_init(struct jcur *c, const char *text, size_t len);
/* Type of the next value without consuming it (JC_END at the end of input). */
enum jc_type jc_peek(struct jcur *c);
/* Consume '{' / '['. 0 or -1. */
int jc_obj_enter(struct jcur *c);
int jc_arr_enter(struct jcur *c);
/* Next key of the current object: 1 and *key, or 0 after consuming '}', -1 on error. */
int jc_obj_key(struct jcur *c, struct jc_str *key);
/* Is there another element in the current array? 1, 0 after consuming ']', -1 on error. */
int jc_arr_next(struct jcur *c);
int jc_str(struct jcur *c, struct jc_str *out);
/* A JSON number (grammar checked) into *out. */
int jc_num(struct jcur *c, double *out);
/* Consume true/false/null. */
int jc_lit(struct jcur *c);
/* Skip one value of any type. */
int jc_skip(struct jcur *c);
/* Does span equal the NUL-terminated s? */
int jc_eq(const struct jc_str *span, const char *s);
/*
 * Decode span (escapes, \uXXXX with surrogates to UTF-8) into out (cap
 * bytes, NUL-terminated). Returns the length, or -1 if it does not fit or
 * is malformed.
 */
long jc_unescape(const struct jc_str *span, char *out, size_t cap);

#endif
