/*
 * json_text.c - validate and compact JSON text in one pass, and the small
 * helpers that read and write JSON strings without building a DOM.
 *
 * Invariants: compact output is never longer than its input, so the
 * destination is reserved once and written through a raw pointer; strings
 * are checked for escapes, control characters and UTF-8 validity; nesting
 * is bounded by OSC_RECORDS_MAX_DEPTH; an object holds each key once
 * (compared after unescaping, so "a" and "\u0061" are the same key) and no
 * container ends in a trailing comma.
 *
 * Duplicate keys: every key of the objects still open is pushed on one key
 * stack (input pointers, so the error can point at the key); when an object
 * closes, its keys are compared, pairwise when there are few (the usual
 * record: a handful of length compares), sorted when there are many, and
 * popped. The stack lives in the caller (a reader keeps one across records),
 * so the hot path allocates nothing.
 */
#include "osc/records.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records_int.h"

struct scan {
    const char *p, *end;
    char *o;
    const char *why;
    struct osc_record_field *fields; /* top-level members of a depth-0 object, or NULL */
    size_t max_fields, nfields;
    struct json_keys *keys; /* keys of the open objects */
    int *nul;               /* NULL: \u0000 is an error; else set to 1 when one is seen */
    int nomem;
};

#define PAIRWISE_MAX 16 /* up to this many keys, compare pairwise; beyond, sort */

static inline void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 1 for bytes that pass through a string unchanged: printable ASCII but '"' and '\\'. */
/* clang-format off */
static const unsigned char plain_ascii[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),                                 /* 0x00-0x1f: control characters */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f: '"' is 0x22 */
    R16(1), R16(1),                                 /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f: '\\' is 0x5c */
    R16(1), R16(1),                                 /* 0x60-0x7f */
#undef R16
};
/* clang-format on */

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned cp;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* s->p is at the opening quote; copies the literal including quotes. Returns
 * 0, or -1 when it is not valid. *esc (esc may be NULL) is set to 1 when the
 * string holds a backslash escape. */
static int scan_string(struct scan *s, int *esc)
{
    const char *p = s->p + 1, *end = s->end;
    char *o = s->o;

    *o++ = '"';
    for (;;) {
        unsigned char c;
        /* fast path: a run of plain ASCII, found by table and copied at once */
        {
            const char *q = p;
            while (q < end && plain_ascii[(unsigned char)*q])
                q++;
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            p = q;
        }
        if (p >= end) {
            s->why = "unterminated string";
            return -1;
        }
        c = (unsigned char)*p;
        if (c == '"') {
            *o++ = '"';
            s->p = p + 1;
            s->o = o;
            return 0;
        }
        if (c == '\\') {
            if (esc)
                *esc = 1;
            if (end - p < 2) {
                s->why = "unterminated string";
                return -1;
            }
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                *o++ = '\\';
                *o++ = p[1];
                p += 2;
                break;
            case 'u':
                if (end - p < 6 || hexval(p[2]) < 0 || hexval(p[3]) < 0 || hexval(p[4]) < 0 ||
                    hexval(p[5]) < 0) {
                    s->why = "bad \\u escape in a string";
                    return -1;
                }
                /* valid JSON, but no API stores a NUL in text: one bad record must not
                 * get its whole batch refused */
                if (memcmp(p + 2, "0000", 4) == 0) {
                    if (!s->nul) {
                        s->why = "\\u0000 (a NUL character) in a string";
                        return -1;
                    }
                    *s->nul = 1;
                }
                {
                    /* UTF-16 surrogates come in pairs, high then low; a lone one is not text */
                    unsigned u = (unsigned)(hexval(p[2]) << 12 | hexval(p[3]) << 8 |
                                            hexval(p[4]) << 4 | hexval(p[5]));
                    if (u >= 0xDC00 && u <= 0xDFFF) {
                        s->why = "lone low surrogate (\\uDC00-\\uDFFF) in a string";
                        return -1;
                    }
                    if (u >= 0xD800 && u <= 0xDBFF) {
                        unsigned lo;
                        if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hexval(p[8]) < 0 ||
                            hexval(p[9]) < 0 || hexval(p[10]) < 0 || hexval(p[11]) < 0 ||
                            (lo = (unsigned)(hexval(p[8]) << 12 | hexval(p[9]) << 8 |
                                             hexval(p[10]) << 4 | hexval(p[11]))) < 0xDC00 ||
                            lo > 0xDFFF) {
                            s->why = "lone high surrogate (\\uD800-\\uDBFF) in a string";
                            return -1;
                        }
                        memcpy(o, p, 12);
                        o += 12;
                        p += 12;
                        break;
                    }
                }
                memcpy(o, p, 6);
                o += 6;
                p += 6;
                break;
            default: s->why = "bad escape in a string"; return -1;
            }
            continue;
        }
        if (c < 0x20) {
            s->why = "control character in a string";
            return -1;
        }
        {
            size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)end);
            if (!n) {
                s->why = "invalid UTF-8 in a string";
                return -1;
            }
            memcpy(o, p, n);
            o += n;
            p += n;
        }
    }
}

static int scan_number(struct scan *s)
{
    const char *p = s->p, *end = s->end, *start = p;

    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        s->why = "bad number";
        return -1;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            s->why = "bad number";
            return -1;
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9') {
            s->why = "bad number";
            return -1;
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    memcpy(s->o, start, (size_t)(p - start));
    s->o += p - start;
    s->p = p;
    return 0;
}

static int scan_word(struct scan *s, const char *w, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) {
        s->why = "unexpected character";
        return -1;
    }
    memcpy(s->o, w, n);
    s->o += n;
    s->p += n;
    return 0;
}

static int scan_value(struct scan *s, int depth);

/* ---- duplicate keys ---------------------------------------------------------- */

void json_keys_free(struct json_keys *k)
{
    if (!k)
        return;
    free(k->v);
    k->v = NULL;
    k->n = k->cap = 0;
}

/* Grow the key stack (cold: a reader's stack soon fits its widest record). */
static int keys_grow(struct scan *s)
{
    struct json_keys *k = s->keys;
    /* bounded by the text: a key takes at least 4 bytes ("":0) */
    size_t cap = k->cap ? k->cap * 2 : 64;
    struct json_key *v = realloc(k->v, cap * sizeof(*v));

    if (!v) {
        s->nomem = 1;
        s->why = "record too large";
        return -1;
    }
    k->v = v;
    k->cap = cap;
    return 0;
}

static inline int keys_push(struct scan *s, const char *key, size_t len, int esc)
{
    struct json_keys *k = s->keys;

    if (k->n == k->cap && keys_grow(s))
        return -1;
    k->v[k->n].k = key;
    k->v[k->n].len = len;
    k->v[k->n].esc = esc;
    k->n++;
    return 0;
}

/*
 * The bytes of a key body as text, escapes resolved (validated input: every
 * escape is complete, surrogates come in pairs). One byte per call, -1 at
 * the end.
 */
struct key_iter {
    const unsigned char *p, *end;
    unsigned char pend[4];
    int npend, ipend;
};

static int key_next(struct key_iter *it)
{
    unsigned cp;

    if (it->ipend < it->npend)
        return it->pend[it->ipend++];
    if (it->p >= it->end)
        return -1;
    if (*it->p != '\\')
        return *it->p++;
    switch (it->p[1]) {
    case 'b': it->p += 2; return '\b';
    case 'f': it->p += 2; return '\f';
    case 'n': it->p += 2; return '\n';
    case 'r': it->p += 2; return '\r';
    case 't': it->p += 2; return '\t';
    case 'u': break;
    default: it->p += 2; return it->p[-1]; /* \" \\ \/ */
    }
    cp = (unsigned)(hexval((char)it->p[2]) << 12 | hexval((char)it->p[3]) << 8 |
                    hexval((char)it->p[4]) << 4 | hexval((char)it->p[5]));
    it->p += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo = (unsigned)(hexval((char)it->p[2]) << 12 | hexval((char)it->p[3]) << 8 |
                                 hexval((char)it->p[4]) << 4 | hexval((char)it->p[5]));
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        it->p += 6;
    }
    it->ipend = 0;
    if (cp < 0x80)
        return (int)cp;
    if (cp < 0x800) {
        it->pend[0] = (unsigned char)(0x80 | (cp & 0x3F));
        it->npend = 1;
        return (int)(0xC0 | cp >> 6);
    }
    if (cp < 0x10000) {
        it->pend[0] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        it->pend[1] = (unsigned char)(0x80 | (cp & 0x3F));
        it->npend = 2;
        return (int)(0xE0 | cp >> 12);
    }
    it->pend[0] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    it->pend[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    it->pend[2] = (unsigned char)(0x80 | (cp & 0x3F));
    it->npend = 3;
    return (int)(0xF0 | cp >> 18);
}

/* Order of two keys by their text (escapes resolved); bytewise like memcmp. */
static int key_cmp(const struct json_key *a, const struct json_key *b)
{
    if (!a->esc && !b->esc) {
        int c = memcmp(a->k, b->k, a->len < b->len ? a->len : b->len);
        return c ? c : (a->len > b->len) - (a->len < b->len);
    }
    {
        struct key_iter
            x = {(const unsigned char *)a->k, (const unsigned char *)a->k + a->len, {0}, 0, 0},
            y = {(const unsigned char *)b->k, (const unsigned char *)b->k + b->len, {0}, 0, 0};
        for (;;) {
            int cx = key_next(&x), cy = key_next(&y);
            if (cx != cy || cx < 0)
                return cx - cy;
        }
    }
}

static int key_eq(const struct json_key *a, const struct json_key *b)
{
    if (!a->esc && !b->esc)
        return a->len == b->len && memcmp(a->k, b->k, a->len) == 0;
    return key_cmp(a, b) == 0;
}

/* qsort order: by text, then by position, so the first of equal keys comes first. */
static int key_sort_cmp(const void *pa, const void *pb)
{
    const struct json_key *a = pa, *b = pb;
    int c = key_cmp(a, b);
    return c ? c : (a->k > b->k) - (a->k < b->k);
}

/*
 * Where the top-level object's keys are: in the output (s->fields), which is
 * the input without its whitespace, so an output position maps back to the
 * input by walking both from the object's '{'.
 */
struct top_map {
    const char *in, *out;
};

static const char *map_to_input(const struct top_map *m, const char *out_pos)
{
    const char *p = m->in;
    size_t k = 0, target = (size_t)(out_pos - m->out);
    int in_str = 0, esc = 0;

    while (k < target) {
        char c = *p++;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        } else if (c == '"') {
            in_str = 1;
        }
        k++;
    }
    return p;
}

/*
 * Fail with why naming the key k[0, len) as written, and s->p at it: k is
 * in the input, or (map set) in the output of the top-level object.
 */
static int key_dup(struct scan *s, const char *k, size_t len, const struct top_map *map)
{
    size_t n = len;

    if (n > 64) { /* cut on a character boundary */
        n = 64;
        while (n > 0 && ((unsigned char)k[n] & 0xC0) == 0x80)
            n--;
    }
    snprintf(s->keys->why, sizeof(s->keys->why), "duplicate key \"%.*s\"%s", (int)n, k,
             n < len ? "..." : "");
    s->why = s->keys->why;
    s->p = (map ? map_to_input(map, k) : k) - 1; /* the error column is the repeated key's */
    return -1;
}

/*
 * The object whose keys are keys->v[base, n) just closed, and it holds an
 * escaped key or more than PAIRWISE_MAX: find the key that repeats an
 * earlier one soonest, if any, and pop the object's keys. Returns 0, or -1
 * with why naming the key (and s->p at it when the keys point into the
 * input, in_text).
 */
static int keys_check(struct scan *s, size_t base, const struct top_map *map)
{
    struct json_key *v = s->keys->v + base;
    size_t n = s->keys->n - base;
    const struct json_key *dup = NULL;

    s->keys->n = base;
    if (n <= PAIRWISE_MAX) {
        for (size_t j = 1; j < n && !dup; j++)
            for (size_t i = 0; i < j; i++)
                if (key_eq(&v[i], &v[j])) {
                    dup = &v[j];
                    break;
                }
    } else {
        /* the popped entries are free to reorder */
        qsort(v, n, sizeof(*v), key_sort_cmp);
        for (size_t i = 1; i < n; i++)
            if (key_cmp(&v[i - 1], &v[i]) == 0 && (!dup || v[i].k < dup->k))
                dup = &v[i];
    }
    return dup ? key_dup(s, dup->k, dup->len, map) : 0;
}

/* ---- containers ---------------------------------------------------------------- */

/*
 * The keys of a record's top level are in s->fields already (their text in
 * the output is the input's, byte for byte): they are compared there and
 * pushed on the key stack only when keys_check() needs them.
 */
static int top_check(struct scan *s, size_t base, const struct top_map *map)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const struct osc_record_field *f = &s->fields[i];
        if (keys_push(s, f->key, f->key_len, memchr(f->key, '\\', f->key_len) != NULL))
            return -1;
    }
    return keys_check(s, base, map);
}

/*
 * The top level closed: its keys are compared in one tight pass over
 * s->fields (a bit per key from its length and first byte; only a key whose
 * bit is taken is compared), or by keys_check() when one is escaped or
 * there are many.
 */
static int top_dups(struct scan *s, size_t base, int esc, const struct top_map *map)
{
    const struct osc_record_field *f = s->fields;
    size_t nf = s->nfields;
    uint64_t seen = 0;

    if (esc || nf > PAIRWISE_MAX)
        return top_check(s, base, map);
    for (size_t i = 0; i < nf; i++) {
        size_t len = f[i].key_len;
        uint64_t bit = (uint64_t)1 << ((len + 7u * (unsigned char)f[i].key[0]) & 63);
        if (seen & bit)
            for (size_t j = 0; j < i; j++)
                if (f[j].key_len == len && memcmp(f[j].key, f[i].key, len) == 0)
                    return key_dup(s, f[i].key, len, map);
        seen |= bit;
    }
    return 0;
}

static int scan_container(struct scan *s, int depth, char close)
{
    size_t base = s->keys ? s->keys->n : 0;
    uint64_t seen = 0;        /* one bit per key, from its length and first byte */
    int first = 1, check = 0; /* check: compare all keys when the object closes */
    int top = depth == 0 && s->fields;
    const char *in_open = s->p, *out_open = s->o;

    if (depth >= OSC_RECORDS_MAX_DEPTH) {
        s->why = "nested too deeply";
        return -1;
    }
    *s->o++ = *s->p++;
    for (;;) {
        skip_ws(s);
        if (s->p >= s->end) {
            s->why = close == '}' ? "unterminated object" : "unterminated array";
            return -1;
        }
        if (*s->p == close) {
            *s->o++ = *s->p++;
            if (close == '}' && s->keys) {
                if (top) {
                    const struct top_map map = {in_open, out_open};
                    return top_dups(s, base, check, &map);
                }
                if (check)
                    return keys_check(s, base, NULL);
                s->keys->n = base;
            }
            return 0;
        }
        if (!first) {
            if (*s->p != ',') {
                s->why =
                    close == '}' ? "expected , or } in an object" : "expected , or ] in an array";
                return -1;
            }
            *s->o++ = *s->p++;
            skip_ws(s);
            /* in an object, the missing key below tells a trailing comma */
            if (close == ']' && s->p < s->end && *s->p == ']') {
                s->why = "trailing comma";
                return -1;
            }
        }
        first = 0;
        if (close == '}') {
            char *key = s->o + 1;
            const char *in_key = s->p + 1;
            int esc;
            if (s->p >= s->end || *s->p != '"') {
                s->why = s->p < s->end && *s->p == '}' ? "trailing comma" : "expected a quoted key";
                return -1;
            }
            esc = 0;
            if (scan_string(s, &esc))
                return -1;
            if (top) {
                check |= esc; /* top_dups() does the rest */
            } else if (s->keys) {
                /* A few plain keys are checked as they come: only a key whose bit
                 * (length and first byte) is taken is compared, and then mostly by
                 * length. An escaped key, or many, leave it to keys_check() at the end. */
                size_t klen = (size_t)(s->p - 1 - in_key);
                size_t n = s->keys->n - base;
                if (esc || n >= PAIRWISE_MAX) {
                    check = 1;
                } else if (!check) {
                    uint64_t bit = (uint64_t)1 << ((klen + 7u * (unsigned char)in_key[0]) & 63);
                    if (seen & bit) {
                        const struct json_key *v = s->keys->v + base;
                        for (size_t i = 0; i < n; i++)
                            if (v[i].len == klen && memcmp(v[i].k, in_key, klen) == 0)
                                return key_dup(s, in_key, klen, NULL);
                    }
                    seen |= bit;
                }
                if (keys_push(s, in_key, klen, esc))
                    return -1;
            }
            if (top) {
                if (s->nfields >= s->max_fields) {
                    s->why = "too many fields";
                    return -1;
                }
                s->fields[s->nfields].key = key;
                s->fields[s->nfields].key_len = (size_t)(s->o - 1 - key);
            }
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') {
                s->why = "expected : after a key";
                return -1;
            }
            *s->o++ = *s->p++;
            if (top) {
                struct osc_record_field *f = &s->fields[s->nfields];
                skip_ws(s);
                f->val = s->o;
                if (scan_value(s, depth + 1))
                    return -1;
                f->val_len = (size_t)(s->o - f->val);
                s->nfields++;
                continue;
            }
        }
        if (scan_value(s, depth + 1))
            return -1;
    }
}

static int scan_value(struct scan *s, int depth)
{
    skip_ws(s);
    if (s->p >= s->end) {
        s->why = "missing value";
        return -1;
    }
    switch (*s->p) {
    case '{': return scan_container(s, depth, '}');
    case '[': return scan_container(s, depth, ']');
    case '"': return scan_string(s, NULL);
    case 't': return scan_word(s, "true", 4);
    case 'f': return scan_word(s, "false", 5);
    case 'n': return scan_word(s, "null", 4);
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s);
        s->why = "unexpected character";
        return -1;
    }
}

int json_compact_object(const char *text, size_t len, size_t *used, struct osc_buf *out,
                        struct osc_record_field *fields, size_t max_fields, size_t *nfields,
                        struct json_keys *keys, int *nul, const char **why)
{
    struct scan s = {text, text + len, NULL, NULL, fields, max_fields, 0, keys, nul, 0};
    int rc;

    if ((rc = osc_buf_reserve(out, len + 1))) {
        *why = "record too large";
        return rc;
    }
    if (keys)
        keys->n = 0;
    s.o = out->data + out->len;
    skip_ws(&s);
    if (fields && (s.p >= s.end || *s.p != '{')) {
        *why = s.p >= s.end ? "empty record" : "expected a JSON object";
        if (used)
            *used = (size_t)(s.p - text);
        return OSC_EDATA;
    }
    if (scan_value(&s, 0)) {
        if (used)
            *used = (size_t)(s.p - text);
        if (s.nomem) {
            *why = "record too large";
            return OSC_ENOMEM;
        }
        *why = s.why; /* may be keys->why */
        return OSC_EDATA;
    }
    out->len = (size_t)(s.o - out->data);
    out->data[out->len] = '\0';
    if (used)
        *used = (size_t)(s.p - text);
    if (nfields)
        *nfields = s.nfields;
    return 0;
}

int osc_json_compact(const char *text, size_t len, size_t *used, struct osc_buf *out,
                     struct osc_err *err)
{
    struct json_keys keys = {0};
    struct scan s = {text, text + len, NULL, NULL, NULL, 0, 0, &keys, NULL, 0};
    int rc;

    if ((rc = osc_buf_reserve(out, len + 1)))
        return osc_err_set(err, rc, "record too large");
    s.o = out->data + out->len;
    if (scan_value(&s, 0)) {
        if (used)
            *used = (size_t)(s.p - text);
        rc = s.nomem
                 ? osc_err_set(err, OSC_ENOMEM, "out of memory")
                 : osc_err_set(err, OSC_EDATA, "%s at byte %zu", s.why, (size_t)(s.p - text) + 1);
        goto out;
    }
    out->len = (size_t)(s.o - out->data);
    out->data[out->len] = '\0';
    if (used)
        *used = (size_t)(s.p - text);
out:
    json_keys_free(&keys);
    return rc;
}

int osc_json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = utf8_len(p, end);
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

/* ---- string helpers ------------------------------------------------------- */

static int put_utf8(struct osc_buf *out, unsigned cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80)
        b[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xC0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xE0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        b[0] = (char)(0xF0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    return osc_buf_add(out, b, n);
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

int osc_json_value_text(const char *val, size_t len, struct osc_buf *out)
{
    const char *p, *end;
    size_t before = out->len;
    int rc;

    if (len == 0 || (len == 4 && memcmp(val, "null", 4) == 0))
        return 0;
    if (val[0] != '"') {
        if ((rc = osc_buf_add(out, val, len)))
            return rc;
        return 1;
    }
    p = val + 1;
    end = val + len - 1; /* the closing quote */
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '\\')
            q++;
        if (q > p && (rc = osc_buf_add(out, p, (size_t)(q - p))))
            return rc;
        if (q >= end)
            break;
        /* validated text: an escape is complete */
        switch (q[1]) {
        case 'b': rc = osc_buf_addc(out, '\b'); break;
        case 'f': rc = osc_buf_addc(out, '\f'); break;
        case 'n': rc = osc_buf_addc(out, '\n'); break;
        case 'r': rc = osc_buf_addc(out, '\r'); break;
        case 't': rc = osc_buf_addc(out, '\t'); break;
        case 'u': {
            unsigned cp = hex4(q + 2);
            p = q + 6;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = hex4(p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD;
            if ((rc = put_utf8(out, cp)))
                return rc;
            continue;
        }
        default: rc = osc_buf_addc(out, q[1]); break;
        }
        if (rc)
            return rc;
        p = q + 2;
    }
    return out->len > before ? 1 : 0;
}

int osc_json_quote(struct osc_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const char *p = s, *end = s + len;
    int rc;

    if ((rc = osc_buf_reserve(out, len + 2)) || (rc = osc_buf_addc(out, '"')))
        return rc;
    while (p < end) {
        const char *q = p;
        while (q < end && plain_ascii[(unsigned char)*q])
            q++;
        if (q > p && (rc = osc_buf_add(out, p, (size_t)(q - p))))
            return rc;
        if (q >= end)
            break;
        if ((unsigned char)*q >= 0x80) {
            /* valid UTF-8 passes; a byte that is not becomes U+FFFD, so the output
             * is always valid JSON (a dead letter of a mis-encoded line stays readable).
             * U+FFFD is written as the character, not as \\ufffd: quoting the unquoted
             * text again then gives the same bytes (a dead letter re-sent and refused
             * again keeps its "record" value) */
            size_t n = utf8_len((const unsigned char *)q, (const unsigned char *)end);
            rc = n ? osc_buf_add(out, q, n) : osc_buf_add(out, "\xEF\xBF\xBD", 3);
            if (rc)
                return rc;
            p = q + (n ? n : 1);
            continue;
        }
        switch (*q) {
        case '"': rc = osc_buf_add(out, "\\\"", 2); break;
        case '\\': rc = osc_buf_add(out, "\\\\", 2); break;
        case '\n': rc = osc_buf_add(out, "\\n", 2); break;
        case '\r': rc = osc_buf_add(out, "\\r", 2); break;
        case '\t': rc = osc_buf_add(out, "\\t", 2); break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[((unsigned char)*q) >> 4], hex[*q & 15]};
            rc = osc_buf_add(out, e, 6);
        }
        }
        if (rc)
            return rc;
        p = q + 1;
    }
    return osc_buf_addc(out, '"');
}

const struct osc_record_field *osc_record_get(const struct osc_record *rec, const char *key)
{
    size_t n = strlen(key);

    for (size_t i = 0; i < rec->nfields; i++)
        if (rec->fields[i].key_len == n && memcmp(rec->fields[i].key, key, n) == 0)
            return &rec->fields[i];
    return NULL;
}
