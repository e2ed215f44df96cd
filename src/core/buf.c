/*
 * buf.c - bounded dynamic buffer. Grows by doubling, never past cap + 1
 * (the NUL).
 */
#include "osc/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/err.h"

#define MIN_ALLOC 64

void osc_buf_init(struct osc_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void osc_buf_free(struct osc_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void osc_buf_reset(struct osc_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int osc_buf_reserve(struct osc_buf *b, size_t n)
{
    size_t need, want;
    char *p;

    if (n > b->cap || b->len > b->cap - n)
        return OSC_ETOOBIG;
    need = b->len + n + 1;
    if (need <= b->alloc)
        return 0;
    want = b->alloc ? b->alloc : MIN_ALLOC;
    while (want < need)
        want = want > ((size_t)-1) / 2 ? need : want * 2;
    if (want > b->cap + 1)
        want = b->cap + 1;
    p = realloc(b->data, want);
    if (!p)
        return OSC_ENOMEM;
    b->data = p;
    b->alloc = want;
    return 0;
}

int osc_buf_add(struct osc_buf *b, const void *data, size_t len)
{
    int rc = osc_buf_reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int osc_buf_adds(struct osc_buf *b, const char *s) { return osc_buf_add(b, s, strlen(s)); }

int osc_buf_addc(struct osc_buf *b, char c) { return osc_buf_add(b, &c, 1); }

int osc_buf_printf(struct osc_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return OSC_EINVAL;
    rc = osc_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *osc_buf_steal(struct osc_buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

const char *osc_buf_str(const struct osc_buf *b) { return b->data ? b->data : ""; }
