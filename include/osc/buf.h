/*
 * buf.h - a growable byte buffer with a hard cap (after curl's dynbuf).
 *
 * Every buffer that grows with outside input has a cap; appending past it
 * fails with OSC_ETOOBIG and leaves the contents unchanged. The data is
 * always NUL-terminated (the NUL is not counted in len), so text can be
 * used as a C string.
 */
#ifndef OSC_BUF_H
#define OSC_BUF_H

#include <stddef.h>

struct osc_buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;   /* bytes used, excluding the NUL */
    size_t alloc; /* bytes allocated */
    size_t cap;   /* hard limit on len */
};

/* Initialise an empty buffer that may hold at most cap bytes. */
void osc_buf_init(struct osc_buf *b, size_t cap);
/* Release the memory; the buffer may be reused after osc_buf_init(). Accepts NULL. */
void osc_buf_free(struct osc_buf *b);
/* Forget the contents, keep the allocation. */
void osc_buf_reset(struct osc_buf *b);

/* Append; 0, OSC_ENOMEM, or OSC_ETOOBIG (contents unchanged on failure). */
int osc_buf_add(struct osc_buf *b, const void *data, size_t len);
int osc_buf_adds(struct osc_buf *b, const char *s);
int osc_buf_addc(struct osc_buf *b, char c);
int osc_buf_printf(struct osc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make room for n more bytes without changing len. */
int osc_buf_reserve(struct osc_buf *b, size_t n);

/* Take the data: the caller frees it with free(); the buffer is left empty. */
char *osc_buf_steal(struct osc_buf *b);

/* Pointer to the text; "" for an empty buffer, never NULL. */
const char *osc_buf_str(const struct osc_buf *b);

#endif
