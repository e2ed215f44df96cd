/*
 * json_text.c - validate and compact JSON text in one pass, and the small
 * helpers that read and write JSON strings without building a DOM.
 *
 * Invariants: compact output is never longer than its input, so the
 * destination is reserved once and written through a raw pointer; strings
 * are checked for escapes, control characters and UTF-8 validity; nesting
 * is bounded by OSC_RECORDS_MAX_DEPTH.
 */
#include "osc/records.h"

#include <string.h>

#include "records_int.h"

struct scan {
    const char *p, *end;
    char *o;
    const char *why;
    struct osc_record_field *fields; /* top-level members of a depth-0 object, or NULL */
    size_t max_fields, nfields;
};

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

/* s->p is at the opening quote; copies the literal including quotes. */
static int scan_string(struct scan *s)
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
                    s->why = "\\u0000 (a NUL character) in a string";
                    return -1;
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

static int scan_container(struct scan *s, int depth, char close)
{
    int first = 1;

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
        if (*s->p == close && first) {
            *s->o++ = *s->p++;
            return 0;
        }
        if (!first) {
            if (*s->p == close) {
                *s->o++ = *s->p++;
                return 0;
            }
            if (*s->p != ',') {
                s->why =
                    close == '}' ? "expected , or } in an object" : "expected , or ] in an array";
                return -1;
            }
            *s->o++ = *s->p++;
            skip_ws(s);
        }
        first = 0;
        if (close == '}') {
            char *key = s->o + 1;
            if (s->p >= s->end || *s->p != '"') {
                s->why = "expected a quoted key";
                return -1;
            }
            if (scan_string(s))
                return -1;
            if (depth == 0 && s->fields) {
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
            if (depth == 0 && s->fields) {
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
    case '"': return scan_string(s);
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
                        const char **why)
{
    struct scan s = {text, text + len, NULL, NULL, fields, max_fields, 0};
    int rc;

    if ((rc = osc_buf_reserve(out, len + 1))) {
        *why = "record too large";
        return rc;
    }
    s.o = out->data + out->len;
    skip_ws(&s);
    if (fields && (s.p >= s.end || *s.p != '{')) {
        *why = s.p >= s.end ? "empty record" : "expected a JSON object";
        if (used)
            *used = (size_t)(s.p - text);
        return OSC_EDATA;
    }
    if (scan_value(&s, 0)) {
        *why = s.why;
        if (used)
            *used = (size_t)(s.p - text);
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
    struct scan s = {text, text + len, NULL, NULL, NULL, 0, 0};
    int rc;

    if ((rc = osc_buf_reserve(out, len + 1)))
        return osc_err_set(err, rc, "record too large");
    s.o = out->data + out->len;
    if (scan_value(&s, 0)) {
        if (used)
            *used = (size_t)(s.p - text);
        return osc_err_set(err, OSC_EDATA, "%s at byte %zu", s.why, (size_t)(s.p - text) + 1);
    }
    out->len = (size_t)(s.o - out->data);
    out->data[out->len] = '\0';
    if (used)
        *used = (size_t)(s.p - text);
    return 0;
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
             * is always valid JSON (a dead letter of a mis-encoded line stays readable) */
            size_t n = utf8_len((const unsigned char *)q, (const unsigned char *)end);
            rc = n ? osc_buf_add(out, q, n) : osc_buf_add(out, "\\ufffd", 6);
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
