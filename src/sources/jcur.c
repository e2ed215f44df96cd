/*
 * jcur.c - the pull JSON cursor; see jcur.h.
 *
 * Invariants: p never passes end; depth is the number of containers
 * entered and not yet left, first[depth] says whether the next member is
 * the first one (no comma expected). Once err is set, every call fails.
 */
#include "jcur.h"

#include <stdlib.h>
#include <math.h>
#include <string.h>

static int fail(struct jcur *c, const char *msg)
{
    if (!c->err) {
        c->err = msg;
        c->err_off = (size_t)(c->p - c->start);
    }
    return -1;
}

static void ws(struct jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

void jc_init(struct jcur *c, const char *text, size_t len)
{
    memset(c, 0, sizeof(*c));
    c->p = c->start = text;
    c->end = text + len;
}

enum jc_type jc_peek(struct jcur *c)
{
    if (c->err)
        return JC_ERR;
    ws(c);
    if (c->p >= c->end)
        return JC_END;
    switch (*c->p) {
    case '{': return JC_OBJ;
    case '[': return JC_ARR;
    case '"': return JC_STR;
    case 't': return JC_TRUE;
    case 'f': return JC_FALSE;
    case 'n': return JC_NULL;
    default: return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) ? JC_NUM : JC_ERR;
    }
}

static int enter(struct jcur *c, char open)
{
    if (jc_peek(c) == JC_ERR || c->p >= c->end || *c->p != open)
        return fail(c, open == '{' ? "expected an object" : "expected an array");
    if (c->depth >= JC_MAX_DEPTH)
        return fail(c, "nested too deeply");
    c->p++;
    c->depth++;
    c->first[c->depth] = 1;
    return 0;
}

int jc_obj_enter(struct jcur *c) { return enter(c, '{'); }
int jc_arr_enter(struct jcur *c) { return enter(c, '['); }

/* Shared by objects and arrays: 1 another member follows, 0 closed, -1 error. */
static int next_member(struct jcur *c, char close)
{
    if (c->err)
        return -1;
    ws(c);
    if (c->p >= c->end)
        return fail(c, "unexpected end of input");
    if (*c->p == close) {
        c->p++;
        c->depth--;
        return 0;
    }
    if (c->first[c->depth]) {
        c->first[c->depth] = 0;
        return 1;
    }
    if (*c->p != ',')
        return fail(c, "expected ',' between members");
    c->p++;
    return 1;
}

int jc_obj_key(struct jcur *c, struct jc_str *key)
{
    int r = next_member(c, '}');

    if (r <= 0)
        return r;
    if (jc_str(c, key))
        return -1;
    ws(c);
    if (c->p >= c->end || *c->p != ':')
        return fail(c, "expected ':' after a key");
    c->p++;
    return 1;
}

int jc_arr_next(struct jcur *c) { return next_member(c, ']'); }

int jc_str(struct jcur *c, struct jc_str *out)
{
    const char *s;

    if (jc_peek(c) != JC_STR)
        return fail(c, "expected a string");
    s = ++c->p;
    out->escaped = 0;
    for (;;) {
        /* memchr-style scan for the two bytes that matter */
        while (c->p < c->end && *c->p != '"' && *c->p != '\\') {
            if ((unsigned char)*c->p < 0x20)
                return fail(c, "control character in a string");
            c->p++;
        }
        if (c->p >= c->end)
            return fail(c, "unterminated string");
        if (*c->p == '"')
            break;
        out->escaped = 1;
        c->p += 2; /* the escape's first byte; \u digits are scanned as plain bytes */
        if (c->p > c->end)
            return fail(c, "unterminated string");
    }
    out->s = s;
    out->len = (size_t)(c->p - s);
    c->p++;
    return 0;
}

int jc_num(struct jcur *c, double *out)
{
    const char *q, *s;
    char tmp[64];
    size_t n;

    if (jc_peek(c) != JC_NUM)
        return fail(c, "expected a number");
    s = q = c->p;
    if (*q == '-')
        q++;
    if (q >= c->end || *q < '0' || *q > '9')
        return fail(c, "malformed number");
    if (*q == '0')
        q++;
    else
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    if (q < c->end && *q == '.') {
        q++;
        if (q >= c->end || *q < '0' || *q > '9')
            return fail(c, "malformed number");
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < c->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < c->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= c->end || *q < '0' || *q > '9')
            return fail(c, "malformed number");
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    }
    n = (size_t)(q - s);
    c->p = q;
    if (n >= sizeof(tmp)) {
        /* cutting it could drop the exponent: not a usable number (NaN is
         * refused per value, the rest of the answer still counts) */
        *out = NAN;
        return 0;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    return 0;
}

int jc_lit(struct jcur *c)
{
    static const char *const lits[] = {"true", "false", "null"};
    enum jc_type t = jc_peek(c);
    const char *w = t == JC_TRUE    ? lits[0]
                    : t == JC_FALSE ? lits[1]
                    : t == JC_NULL  ? lits[2]
                                    : NULL;
    size_t n;

    if (!w)
        return fail(c, "expected true, false or null");
    n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return fail(c, "malformed literal");
    c->p += n;
    return 0;
}

/* Recursion is bounded: jc_obj_enter/jc_arr_enter refuse past JC_MAX_DEPTH. */
int jc_skip(struct jcur *c)
{
    struct jc_str s;
    double d;
    int r;

    switch (jc_peek(c)) {
    case JC_OBJ:
        if (jc_obj_enter(c))
            return -1;
        while ((r = jc_obj_key(c, &s)) == 1)
            if (jc_skip(c))
                return -1;
        return r;
    case JC_ARR:
        if (jc_arr_enter(c))
            return -1;
        while ((r = jc_arr_next(c)) == 1)
            if (jc_skip(c))
                return -1;
        return r;
    case JC_STR: return jc_str(c, &s);
    case JC_NUM: return jc_num(c, &d);
    case JC_TRUE:
    case JC_FALSE:
    case JC_NULL: return jc_lit(c);
    default: return fail(c, "expected a value");
    }
}

int jc_eq(const struct jc_str *span, const char *s)
{
    size_t n = strlen(s);
    return span->len == n && memcmp(span->s, s, n) == 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

long jc_unescape(const struct jc_str *span, char *out, size_t cap)
{
    const char *p = span->s, *end = span->s + span->len;
    size_t n = 0;

    while (p < end) {
        unsigned cp;
        char ch = *p++;
        if (ch != '\\') {
            if (n + 1 >= cap)
                return -1;
            out[n++] = ch;
            continue;
        }
        if (p >= end)
            return -1;
        ch = *p++;
        switch (ch) {
        case '"':
        case '\\':
        case '/': cp = (unsigned char)ch; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (end - p < 4 || hex4(p, &cp))
                return -1;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return -1;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            break;
        default: return -1;
        }
        if (n + 5 >= cap)
            return -1;
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | (cp >> 6));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | (cp >> 12));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | (cp >> 18));
            out[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (n >= cap)
        return -1;
    out[n] = '\0';
    return (long)n;
}
