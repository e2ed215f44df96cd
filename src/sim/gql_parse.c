/*
 * gql_parse.c - GraphQL lexer and recursive-descent parser (executable
 * documents only: operations and fragments).
 *
 * Every node and string lives in one arena, so a failed parse frees
 * everything in one call and no node has its own owner. Bounds: the text is
 * at most GQL_MAX_DOCUMENT bytes, the arena at most GQL_MAX_ARENA bytes,
 * and selection sets, lists, objects and type references nest at most
 * GQL_MAX_DEPTH deep, so recursion stays shallow whatever the input.
 * Positions are 1-based; columns count characters (UTF-8 continuation
 * bytes are not counted), as graphql-js reports them.
 */
#include "gql.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena -------------------------------------------------------------- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    max_align_t data[];
};

struct gql_arena {
    struct arena_chunk *head;
    size_t total;
};

static void *arena_alloc(struct gql_arena *a, size_t n)
{
    struct arena_chunk *c = a->head;
    size_t align = sizeof(max_align_t);

    n = (n + align - 1) / align * align;
    if (!c || c->size - c->used < n) {
        size_t size = n > 16384 ? n : 16384;
        if (a->total + size > GQL_MAX_ARENA)
            return NULL;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->size = size;
        a->head = c;
        a->total += size;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static void arena_free(struct gql_arena *a)
{
    struct arena_chunk *c, *next;

    if (!a)
        return;
    for (c = a->head; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

/* ---- lexer -------------------------------------------------------------- */

enum tok {
    T_EOF = 0,
    T_PUNCT, /* one of ! $ & ( ) : = @ [ ] { | } and "..." */
    T_NAME,
    T_INT,
    T_FLOAT,
    T_STRING,
    T_BLOCKSTRING
};

struct parser {
    const char *s, *end;
    const char *p;
    unsigned line, col;
    /* current token */
    enum tok t;
    char punct;         /* for T_PUNCT; '.' means "..." */
    const char *tstart; /* raw text of names and numbers */
    size_t tlen;
    char *sval; /* decoded string (arena) */
    unsigned tline, tcol;
    int depth;
    struct gql_arena *arena;
    struct gql_error *err;
    int failed;
};

static int fail(struct parser *ps, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct parser *ps, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;

    if (ps->failed)
        return -1;
    ps->failed = 1;
    va_start(ap, fmt);
    vsnprintf(ps->err->msg, sizeof(ps->err->msg), fmt, ap);
    va_end(ap);
    ps->err->line = line;
    ps->err->col = col;
    return -1;
}

static int oom(struct parser *ps)
{
    return fail(ps, ps->tline, ps->tcol, "Document too large: out of parser memory.");
}

static void advance_char(struct parser *ps)
{
    unsigned char c = (unsigned char)*ps->p;

    if (c == '\n') {
        ps->line++;
        ps->col = 1;
    } else if (c == '\r') {
        if (ps->p + 1 < ps->end && ps->p[1] == '\n') {
            ps->p++; /* \r\n is one line break */
        }
        ps->line++;
        ps->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        ps->col++;
    }
    ps->p++;
}

static char *arena_strndup(struct parser *ps, const char *s, size_t n)
{
    char *d = arena_alloc(ps->arena, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void describe_token(const struct parser *ps, char *out, size_t cap)
{
    switch (ps->t) {
    case T_EOF: snprintf(out, cap, "<EOF>"); break;
    case T_PUNCT:
        if (ps->punct == '.')
            snprintf(out, cap, "\"...\"");
        else
            snprintf(out, cap, "\"%c\"", ps->punct);
        break;
    case T_NAME:
        snprintf(out, cap, "Name \"%.*s\"", (int)(ps->tlen > 64 ? 64 : ps->tlen), ps->tstart);
        break;
    case T_INT:
        snprintf(out, cap, "Int \"%.*s\"", (int)(ps->tlen > 64 ? 64 : ps->tlen), ps->tstart);
        break;
    case T_FLOAT:
        snprintf(out, cap, "Float \"%.*s\"", (int)(ps->tlen > 64 ? 64 : ps->tlen), ps->tstart);
        break;
    case T_STRING:
    case T_BLOCKSTRING: snprintf(out, cap, "String"); break;
    }
}

static void put_utf8(char *d, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        d[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        d[(*n)++] = (char)(0xC0 | (cp >> 6));
        d[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        d[(*n)++] = (char)(0xE0 | (cp >> 12));
        d[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        d[(*n)++] = (char)(0xF0 | (cp >> 18));
        d[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        d[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char *p, const char *end, uint32_t *out)
{
    uint32_t v = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* A "..." string: decode escapes into the arena. */
static int lex_string(struct parser *ps)
{
    const char *q = ps->p + 1;
    size_t cap, n = 0;
    char *d;

    /* the decoded text is never longer than the raw text */
    for (cap = 0; q + cap < ps->end && q[cap] != '"' && q[cap] != '\n' && q[cap] != '\r'; cap++)
        if (q[cap] == '\\' && q + cap + 1 < ps->end)
            cap++;
    d = arena_alloc(ps->arena, cap + 1);
    if (!d)
        return oom(ps);
    advance_char(ps); /* opening quote */
    for (;;) {
        if (ps->p >= ps->end || *ps->p == '\n' || *ps->p == '\r')
            return fail(ps, ps->line, ps->col, "Syntax Error: Unterminated string.");
        char c = *ps->p;
        if (c == '"') {
            advance_char(ps);
            break;
        }
        if ((unsigned char)c < 0x20 && c != '\t')
            return fail(ps, ps->line, ps->col,
                        "Syntax Error: Invalid character within String: \"\\u%04X\".",
                        (unsigned)(unsigned char)c);
        if (c != '\\') {
            d[n++] = c;
            advance_char(ps);
            continue;
        }
        unsigned eline = ps->line, ecol = ps->col;
        advance_char(ps);
        if (ps->p >= ps->end)
            return fail(ps, eline, ecol, "Syntax Error: Unterminated string.");
        c = *ps->p;
        switch (c) {
        case '"': d[n++] = '"'; break;
        case '\\': d[n++] = '\\'; break;
        case '/': d[n++] = '/'; break;
        case 'b': d[n++] = '\b'; break;
        case 'f': d[n++] = '\f'; break;
        case 'n': d[n++] = '\n'; break;
        case 'r': d[n++] = '\r'; break;
        case 't': d[n++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(ps->p + 1, ps->end, &cp))
                return fail(ps, eline, ecol, "Syntax Error: Invalid Unicode escape sequence.");
            for (int i = 0; i < 4; i++)
                advance_char(ps);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->end - ps->p >= 7 && ps->p[1] == '\\' && ps->p[2] == 'u' &&
                    hex4(ps->p + 3, ps->end, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    for (int i = 0; i < 6; i++)
                        advance_char(ps);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    return fail(ps, eline, ecol, "Syntax Error: Invalid Unicode escape sequence.");
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(ps, eline, ecol, "Syntax Error: Invalid Unicode escape sequence.");
            }
            /* \uXXXX is 6 raw bytes and decodes to at most 4 */
            put_utf8(d, &n, cp);
            break;
        }
        default: return fail(ps, eline, ecol, "Syntax Error: Invalid character escape sequence.");
        }
        advance_char(ps);
    }
    d[n] = '\0';
    ps->sval = d;
    ps->t = T_STRING;
    return 0;
}

static int is_blank_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

/* A """block string""": raw text, \""" escape, common indentation removed. */
static int lex_block_string(struct parser *ps)
{
    const char *start;
    size_t cap = 0, n = 0, common = SIZE_MAX;
    char *raw, *d;

    for (int i = 0; i < 3; i++)
        advance_char(ps);
    start = ps->p;
    for (;;) {
        if (ps->p >= ps->end)
            return fail(ps, ps->line, ps->col, "Syntax Error: Unterminated string.");
        if (ps->end - ps->p >= 3 && memcmp(ps->p, "\"\"\"", 3) == 0)
            break;
        if (ps->end - ps->p >= 4 && memcmp(ps->p, "\\\"\"\"", 4) == 0) {
            for (int i = 0; i < 4; i++)
                advance_char(ps);
            continue;
        }
        advance_char(ps);
    }
    cap = (size_t)(ps->p - start);
    for (int i = 0; i < 3; i++)
        advance_char(ps);
    raw = arena_alloc(ps->arena, cap + 1);
    d = arena_alloc(ps->arena, cap + 1);
    if (!raw || !d)
        return oom(ps);
    /* unescape \""" and normalise line breaks to \n */
    for (size_t i = 0; i < cap; i++) {
        if (cap - i >= 4 && memcmp(start + i, "\\\"\"\"", 4) == 0) {
            memcpy(raw + n, "\"\"\"", 3);
            n += 3;
            i += 3;
        } else if (start[i] == '\r') {
            raw[n++] = '\n';
            if (i + 1 < cap && start[i + 1] == '\n')
                i++;
        } else {
            raw[n++] = start[i];
        }
    }
    raw[n] = '\0';
    /* common indentation of every line but the first */
    {
        const char *l = raw, *e = raw + n;
        int first = 1;
        while (l <= e) {
            const char *nl = memchr(l, '\n', (size_t)(e - l));
            size_t len = nl ? (size_t)(nl - l) : (size_t)(e - l);
            if (!first && !is_blank_line(l, len)) {
                size_t ind = 0;
                while (ind < len && (l[ind] == ' ' || l[ind] == '\t'))
                    ind++;
                if (ind < common)
                    common = ind;
            }
            first = 0;
            if (!nl)
                break;
            l = nl + 1;
        }
    }
    /* rebuild: strip indentation, drop leading and trailing blank lines */
    {
        const char *l = raw, *e = raw + n;
        int first = 1;
        size_t out = 0, last_nonblank_end = 0;
        int any = 0;
        while (l <= e) {
            const char *nl = memchr(l, '\n', (size_t)(e - l));
            size_t len = nl ? (size_t)(nl - l) : (size_t)(e - l);
            const char *text = l;
            if (!first && common != SIZE_MAX) {
                size_t cut = len < common ? len : common;
                text += cut;
                len -= cut;
            }
            if (!any && is_blank_line(text, len)) {
                /* leading blank line: skipped */
            } else {
                if (any)
                    d[out++] = '\n';
                memcpy(d + out, text, len);
                out += len;
                any = 1;
                if (!is_blank_line(text, len))
                    last_nonblank_end = out;
            }
            first = 0;
            if (!nl)
                break;
            l = nl + 1;
        }
        d[last_nonblank_end] = '\0';
    }
    ps->sval = d;
    ps->t = T_BLOCKSTRING;
    return 0;
}

static int is_name_start(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int lex_number(struct parser *ps)
{
    const char *st = ps->p;
    int is_float = 0;

    if (*ps->p == '-')
        advance_char(ps);
    if (ps->p < ps->end && *ps->p == '0') {
        advance_char(ps);
        if (ps->p < ps->end && is_digit(*ps->p))
            return fail(ps, ps->line, ps->col,
                        "Syntax Error: Invalid number, unexpected digit after 0: \"%c\".", *ps->p);
    } else {
        if (ps->p >= ps->end || !is_digit(*ps->p))
            return fail(ps, ps->line, ps->col, "Syntax Error: Invalid number, expected digit.");
        while (ps->p < ps->end && is_digit(*ps->p))
            advance_char(ps);
    }
    if (ps->p < ps->end && *ps->p == '.') {
        is_float = 1;
        advance_char(ps);
        if (ps->p >= ps->end || !is_digit(*ps->p))
            return fail(ps, ps->line, ps->col, "Syntax Error: Invalid number, expected digit.");
        while (ps->p < ps->end && is_digit(*ps->p))
            advance_char(ps);
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        is_float = 1;
        advance_char(ps);
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            advance_char(ps);
        if (ps->p >= ps->end || !is_digit(*ps->p))
            return fail(ps, ps->line, ps->col, "Syntax Error: Invalid number, expected digit.");
        while (ps->p < ps->end && is_digit(*ps->p))
            advance_char(ps);
    }
    if (ps->p < ps->end && (is_name_start(*ps->p) || *ps->p == '.'))
        return fail(ps, ps->line, ps->col, "Syntax Error: Invalid number, expected digit.");
    ps->t = is_float ? T_FLOAT : T_INT;
    ps->tstart = st;
    ps->tlen = (size_t)(ps->p - st);
    return 0;
}

/* Read the next token into ps; -1 on a lexical error. */
static int next(struct parser *ps)
{
    for (;;) {
        if (ps->p >= ps->end)
            break;
        unsigned char c = (unsigned char)*ps->p;
        if (c == ' ' || c == '\t' || c == ',' || c == '\n' || c == '\r') {
            advance_char(ps);
        } else if (c == 0xEF && ps->end - ps->p >= 3 && (unsigned char)ps->p[1] == 0xBB &&
                   (unsigned char)ps->p[2] == 0xBF) {
            ps->p += 3; /* BOM */
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n' && *ps->p != '\r')
                advance_char(ps);
        } else {
            break;
        }
    }
    ps->tline = ps->line;
    ps->tcol = ps->col;
    ps->tstart = ps->p;
    ps->tlen = 0;
    if (ps->p >= ps->end) {
        ps->t = T_EOF;
        return 0;
    }
    char c = *ps->p;
    if (strchr("!$&():=@[]{}|", c) && c != '\0') {
        ps->t = T_PUNCT;
        ps->punct = c;
        advance_char(ps);
        return 0;
    }
    if (c == '.') {
        if (ps->end - ps->p >= 3 && ps->p[1] == '.' && ps->p[2] == '.') {
            ps->t = T_PUNCT;
            ps->punct = '.';
            for (int i = 0; i < 3; i++)
                advance_char(ps);
            return 0;
        }
        return fail(ps, ps->line, ps->col, "Syntax Error: Unexpected \".\".");
    }
    if (is_name_start(c)) {
        while (ps->p < ps->end && (is_name_start(*ps->p) || is_digit(*ps->p)))
            advance_char(ps);
        ps->t = T_NAME;
        ps->tlen = (size_t)(ps->p - ps->tstart);
        return 0;
    }
    if (c == '-' || is_digit(c))
        return lex_number(ps);
    if (c == '"') {
        if (ps->end - ps->p >= 3 && ps->p[1] == '"' && ps->p[2] == '"')
            return lex_block_string(ps);
        return lex_string(ps);
    }
    if ((unsigned char)c < 0x20 || c == 0x7F)
        return fail(ps, ps->line, ps->col, "Syntax Error: Invalid character: U+%04X.",
                    (unsigned)(unsigned char)c);
    return fail(ps, ps->line, ps->col, "Syntax Error: Unexpected character: \"%c\".",
                (unsigned char)c < 0x80 ? c : '?');
}

/* ---- parser helpers ----------------------------------------------------- */

static int peek_punct(const struct parser *ps, char p)
{
    return ps->t == T_PUNCT && ps->punct == p;
}

static int peek_keyword(const struct parser *ps, const char *kw)
{
    size_t n = strlen(kw);
    return ps->t == T_NAME && ps->tlen == n && memcmp(ps->tstart, kw, n) == 0;
}

static int unexpected(struct parser *ps, const char *expected)
{
    char found[96];

    describe_token(ps, found, sizeof(found));
    if (expected)
        return fail(ps, ps->tline, ps->tcol, "Syntax Error: Expected %s, found %s.", expected,
                    found);
    return fail(ps, ps->tline, ps->tcol, "Syntax Error: Unexpected %s.", found);
}

static int expect_punct(struct parser *ps, char p)
{
    char what[8];

    if (!peek_punct(ps, p)) {
        if (p == '.')
            snprintf(what, sizeof(what), "\"...\"");
        else
            snprintf(what, sizeof(what), "\"%c\"", p);
        return unexpected(ps, what);
    }
    return next(ps);
}

/* Take a Name token; *out is an arena copy. */
static int expect_name(struct parser *ps, const char **out)
{
    if (ps->t != T_NAME)
        return unexpected(ps, "Name");
    *out = arena_strndup(ps, ps->tstart, ps->tlen);
    if (!*out)
        return oom(ps);
    return next(ps);
}

static int enter(struct parser *ps)
{
    if (++ps->depth > GQL_MAX_DEPTH)
        return fail(ps, ps->tline, ps->tcol,
                    "Syntax Error: Document nested too deeply (more than %d levels).",
                    GQL_MAX_DEPTH);
    return 0;
}

static void leave(struct parser *ps) { ps->depth--; }

/* ---- grammar ------------------------------------------------------------ */

static int parse_value(struct parser *ps, int is_const, struct gql_value **out);

static int parse_value(struct parser *ps, int is_const, struct gql_value **out)
{
    struct gql_value *v = arena_alloc(ps->arena, sizeof(*v));
    int rc = 0;

    if (!v)
        return oom(ps);
    v->line = ps->tline;
    v->col = ps->tcol;
    *out = v;
    if (peek_punct(ps, '$')) {
        if (is_const)
            return unexpected(ps, NULL);
        v->kind = GQL_V_VAR;
        if (next(ps))
            return -1;
        return expect_name(ps, &v->str);
    }
    if (peek_punct(ps, '[') || peek_punct(ps, '{')) {
        int is_list = peek_punct(ps, '[');
        struct gql_value **tail = &v->items;
        v->kind = is_list ? GQL_V_LIST : GQL_V_OBJECT;
        if (enter(ps) || next(ps))
            return -1;
        while (!peek_punct(ps, is_list ? ']' : '}')) {
            struct gql_value *item;
            if (ps->t == T_EOF)
                return unexpected(ps, NULL);
            if (is_list) {
                if (parse_value(ps, is_const, &item))
                    return -1;
            } else {
                const char *key;
                unsigned kl = ps->tline, kc = ps->tcol;
                if (expect_name(ps, &key) || expect_punct(ps, ':') ||
                    parse_value(ps, is_const, &item))
                    return -1;
                item->key = key;
                item->line = kl;
                item->col = kc;
            }
            *tail = item;
            tail = &item->next;
        }
        leave(ps);
        return next(ps);
    }
    switch (ps->t) {
    case T_INT:
    case T_FLOAT:
        v->kind = ps->t == T_INT ? GQL_V_INT : GQL_V_FLOAT;
        v->str = arena_strndup(ps, ps->tstart, ps->tlen);
        if (!v->str)
            return oom(ps);
        return next(ps);
    case T_STRING:
    case T_BLOCKSTRING:
        v->kind = GQL_V_STRING;
        v->str = ps->sval;
        return next(ps);
    case T_NAME:
        if (peek_keyword(ps, "true") || peek_keyword(ps, "false")) {
            v->kind = GQL_V_BOOL;
            v->boolean = peek_keyword(ps, "true");
        } else if (peek_keyword(ps, "null")) {
            v->kind = GQL_V_NULL;
        } else {
            v->kind = GQL_V_ENUM;
        }
        v->str = arena_strndup(ps, ps->tstart, ps->tlen);
        if (!v->str)
            return oom(ps);
        return next(ps);
    default: rc = unexpected(ps, NULL);
    }
    return rc;
}

static int parse_arguments(struct parser *ps, int is_const, struct gql_arg **out)
{
    struct gql_arg **tail = out;

    *out = NULL;
    if (!peek_punct(ps, '('))
        return 0;
    if (next(ps))
        return -1;
    if (peek_punct(ps, ')'))
        return unexpected(ps, "Name");
    while (!peek_punct(ps, ')')) {
        struct gql_arg *a = arena_alloc(ps->arena, sizeof(*a));
        if (!a)
            return oom(ps);
        a->line = ps->tline;
        a->col = ps->tcol;
        if (expect_name(ps, &a->name) || expect_punct(ps, ':') ||
            parse_value(ps, is_const, &a->value))
            return -1;
        *tail = a;
        tail = &a->next;
    }
    return next(ps);
}

static int parse_directives(struct parser *ps, int is_const, struct gql_directive **out)
{
    struct gql_directive **tail = out;

    *out = NULL;
    while (peek_punct(ps, '@')) {
        struct gql_directive *d = arena_alloc(ps->arena, sizeof(*d));
        if (!d)
            return oom(ps);
        d->line = ps->tline;
        d->col = ps->tcol;
        if (next(ps) || expect_name(ps, &d->name) || parse_arguments(ps, is_const, &d->args))
            return -1;
        *tail = d;
        tail = &d->next;
    }
    return 0;
}

static int parse_selection_set(struct parser *ps, struct gql_sel **out);

static int parse_selection(struct parser *ps, struct gql_sel **out)
{
    struct gql_sel *s = arena_alloc(ps->arena, sizeof(*s));

    if (!s)
        return oom(ps);
    *out = s;
    s->line = ps->tline;
    s->col = ps->tcol;
    if (peek_punct(ps, '.')) {
        if (next(ps))
            return -1;
        if (ps->t == T_NAME && !peek_keyword(ps, "on")) {
            s->kind = GQL_S_SPREAD;
            return expect_name(ps, &s->name) || parse_directives(ps, 0, &s->dirs) ? -1 : 0;
        }
        s->kind = GQL_S_INLINE;
        if (peek_keyword(ps, "on")) {
            if (next(ps) || expect_name(ps, &s->type_cond))
                return -1;
        }
        if (parse_directives(ps, 0, &s->dirs))
            return -1;
        s->has_sub = 1;
        return parse_selection_set(ps, &s->sub);
    }
    s->kind = GQL_S_FIELD;
    if (expect_name(ps, &s->name))
        return -1;
    if (peek_punct(ps, ':')) {
        s->alias = s->name;
        if (next(ps) || expect_name(ps, &s->name))
            return -1;
    }
    if (parse_arguments(ps, 0, &s->args) || parse_directives(ps, 0, &s->dirs))
        return -1;
    if (peek_punct(ps, '{')) {
        s->has_sub = 1;
        return parse_selection_set(ps, &s->sub);
    }
    return 0;
}

static int parse_selection_set(struct parser *ps, struct gql_sel **out)
{
    struct gql_sel **tail = out;

    *out = NULL;
    if (enter(ps) || expect_punct(ps, '{'))
        return -1;
    if (peek_punct(ps, '}'))
        return unexpected(ps, "Name");
    while (!peek_punct(ps, '}')) {
        struct gql_sel *s = NULL;
        if (ps->t == T_EOF)
            return unexpected(ps, "Name");
        if (parse_selection(ps, &s))
            return -1;
        *tail = s;
        tail = &s->next;
    }
    leave(ps);
    return next(ps);
}

static int parse_type(struct parser *ps, struct gql_typeref **out)
{
    struct gql_typeref *t = arena_alloc(ps->arena, sizeof(*t));

    if (!t)
        return oom(ps);
    t->line = ps->tline;
    t->col = ps->tcol;
    if (peek_punct(ps, '[')) {
        t->kind = GQL_T_LIST;
        if (enter(ps) || next(ps) || parse_type(ps, &t->of) || expect_punct(ps, ']'))
            return -1;
        leave(ps);
    } else {
        t->kind = GQL_T_NAMED;
        if (expect_name(ps, &t->name))
            return -1;
    }
    if (peek_punct(ps, '!')) {
        struct gql_typeref *nn = arena_alloc(ps->arena, sizeof(*nn));
        if (!nn)
            return oom(ps);
        nn->kind = GQL_T_NONNULL;
        nn->of = t;
        nn->line = t->line;
        nn->col = t->col;
        t = nn;
        if (next(ps))
            return -1;
    }
    *out = t;
    return 0;
}

static int parse_variable_defs(struct parser *ps, struct gql_vardef **out)
{
    struct gql_vardef **tail = out;

    *out = NULL;
    if (!peek_punct(ps, '('))
        return 0;
    if (next(ps))
        return -1;
    if (peek_punct(ps, ')'))
        return unexpected(ps, "\"$\"");
    while (!peek_punct(ps, ')')) {
        struct gql_vardef *v = arena_alloc(ps->arena, sizeof(*v));
        struct gql_directive *dirs;
        if (!v)
            return oom(ps);
        v->line = ps->tline;
        v->col = ps->tcol;
        if (expect_punct(ps, '$') || expect_name(ps, &v->name) || expect_punct(ps, ':') ||
            parse_type(ps, &v->type))
            return -1;
        if (peek_punct(ps, '=')) {
            if (next(ps) || parse_value(ps, 1, &v->def))
                return -1;
        }
        if (parse_directives(ps, 1, &dirs))
            return -1;
        *tail = v;
        tail = &v->next;
    }
    return next(ps);
}

static int parse_definition(struct parser *ps, struct gql_doc *doc, struct gql_op ***op_tail,
                            struct gql_frag ***frag_tail)
{
    if (peek_punct(ps, '{')) {
        struct gql_op *op = arena_alloc(ps->arena, sizeof(*op));
        if (!op)
            return oom(ps);
        op->kind = GQL_OP_QUERY;
        op->line = ps->tline;
        op->col = ps->tcol;
        if (parse_selection_set(ps, &op->sel))
            return -1;
        **op_tail = op;
        *op_tail = &op->next;
        return 0;
    }
    if (peek_keyword(ps, "query") || peek_keyword(ps, "mutation") ||
        peek_keyword(ps, "subscription")) {
        struct gql_op *op = arena_alloc(ps->arena, sizeof(*op));
        if (!op)
            return oom(ps);
        op->kind = peek_keyword(ps, "query")      ? GQL_OP_QUERY
                   : peek_keyword(ps, "mutation") ? GQL_OP_MUTATION
                                                  : GQL_OP_SUBSCRIPTION;
        op->line = ps->tline;
        op->col = ps->tcol;
        if (next(ps))
            return -1;
        if (ps->t == T_NAME && expect_name(ps, &op->name))
            return -1;
        if (parse_variable_defs(ps, &op->vars) || parse_directives(ps, 0, &op->dirs) ||
            parse_selection_set(ps, &op->sel))
            return -1;
        **op_tail = op;
        *op_tail = &op->next;
        return 0;
    }
    if (peek_keyword(ps, "fragment")) {
        struct gql_frag *f = arena_alloc(ps->arena, sizeof(*f));
        struct gql_directive *dirs;
        if (!f)
            return oom(ps);
        f->line = ps->tline;
        f->col = ps->tcol;
        if (next(ps))
            return -1;
        if (peek_keyword(ps, "on"))
            return unexpected(ps, NULL);
        if (expect_name(ps, &f->name))
            return -1;
        if (!peek_keyword(ps, "on"))
            return unexpected(ps, "\"on\"");
        if (next(ps) || expect_name(ps, &f->type_cond) || parse_directives(ps, 0, &dirs) ||
            parse_selection_set(ps, &f->sel))
            return -1;
        **frag_tail = f;
        *frag_tail = &f->next;
        return 0;
    }
    (void)doc;
    if (ps->t == T_NAME &&
        (peek_keyword(ps, "schema") || peek_keyword(ps, "type") || peek_keyword(ps, "scalar") ||
         peek_keyword(ps, "interface") || peek_keyword(ps, "union") || peek_keyword(ps, "enum") ||
         peek_keyword(ps, "input") || peek_keyword(ps, "directive") || peek_keyword(ps, "extend")))
        return fail(ps, ps->tline, ps->tcol,
                    "Syntax Error: type system definitions are not executable.");
    return unexpected(ps, NULL);
}

int gql_parse(const char *text, size_t len, struct gql_doc **out, struct gql_error *err)
{
    struct parser ps;
    struct gql_doc *doc = NULL;
    struct gql_op **op_tail;
    struct gql_frag **frag_tail;
    int rc = -1;

    *out = NULL;
    memset(&ps, 0, sizeof(ps));
    memset(err, 0, sizeof(*err));
    ps.err = err;
    if (len > GQL_MAX_DOCUMENT) {
        snprintf(err->msg, sizeof(err->msg),
                 "Syntax Error: Document too large (more than %u bytes).", GQL_MAX_DOCUMENT);
        err->line = 1;
        err->col = 1;
        return -1;
    }
    ps.arena = calloc(1, sizeof(*ps.arena));
    if (!ps.arena) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -1;
    }
    ps.s = ps.p = text ? text : "";
    ps.end = ps.s + (text ? len : 0);
    ps.line = ps.col = 1;
    doc = arena_alloc(ps.arena, sizeof(*doc));
    if (!doc) {
        oom(&ps);
        goto out;
    }
    op_tail = &doc->ops;
    frag_tail = &doc->frags;
    if (next(&ps))
        goto out;
    if (ps.t == T_EOF) {
        unexpected(&ps, "Name"); /* graphql-js: Syntax Error: Unexpected <EOF>. */
        snprintf(err->msg, sizeof(err->msg), "Syntax Error: Unexpected <EOF>.");
        goto out;
    }
    while (ps.t != T_EOF)
        if (parse_definition(&ps, doc, &op_tail, &frag_tail))
            goto out;
    doc->arena = ps.arena;
    *out = doc;
    ps.arena = NULL;
    rc = 0;
out:
    arena_free(ps.arena);
    return rc;
}

void gql_doc_free(struct gql_doc *doc)
{
    if (doc)
        arena_free(doc->arena); /* doc itself lives in the arena */
}
