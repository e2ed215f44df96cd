/*
 * err.h - error codes and the error detail that travels with them.
 *
 * Fallible functions return 0 or a negative OSC_E* code. When the caller
 * wants to know more, it passes a struct osc_err that is filled once, at the
 * place where the failure is understood (which file, line, record, status).
 * The code list is one X-macro so the enum, osc_strerror() and osc_errname()
 * can never disagree.
 */
#ifndef OSC_ERR_H
#define OSC_ERR_H

#include <stddef.h>

/* X(name, sysexits exit code, message) */
#define OSC_ERRNO_MAP(X)                                                                           \
    X(NOMEM, 71, "out of memory")                                                                  \
    X(INVAL, 70, "invalid argument")                                                               \
    X(USAGE, 64, "usage error")                                                                    \
    X(CONFIG, 78, "configuration error")                                                           \
    X(DATA, 65, "malformed input")                                                                 \
    X(NOINPUT, 66, "cannot open input")                                                            \
    X(IO, 74, "input/output error")                                                                \
    X(TOOBIG, 65, "value exceeds its limit")                                                       \
    X(AUTH, 77, "authentication failed")                                                           \
    X(HTTP, 69, "HTTP request failed")                                                             \
    X(TRANSPORT, 75, "network transfer failed")                                                    \
    X(REJECTED, 65, "request rejected by the server")                                              \
    X(PROTO, 76, "unexpected response from the server")                                            \
    X(UNAVAIL, 69, "service unavailable")                                                          \
    X(DB, 74, "state database error")                                                              \
    X(NOTFOUND, 66, "not found")                                                                   \
    X(EXISTS, 73, "already exists")                                                                \
    X(PERM, 77, "permission denied")                                                               \
    X(INTERRUPTED, 75, "interrupted")                                                              \
    X(BUSY, 75, "too many requests in flight")                                                     \
    X(INTERNAL, 70, "internal error")                                                              \
    X(FULL, 75, "queue is full")

enum osc_errno {
    OSC_OK = 0,
#define OSC_ERR_ENUM(name, ex, msg) OSC_E##name,
    OSC_E__FIRST = -1000,
    OSC_ERRNO_MAP(OSC_ERR_ENUM)
#undef OSC_ERR_ENUM
        OSC_E__LAST
};

#define OSC_ERR_MSG_MAX 512

/*
 * Detail of one failure. msg is a complete sentence for a person (no
 * secrets: osc_err_set() redacts registered secrets). line/col are 1-based,
 * 0 when not applicable; status is the HTTP status, 0 when none.
 */
struct osc_err {
    int code;
    int status;
    unsigned line;
    unsigned col;
    char msg[OSC_ERR_MSG_MAX];
};

/* Message for a code ("out of memory"); never NULL. */
const char *osc_strerror(int code);
/* Symbolic name ("OSC_ENOMEM"); never NULL. */
const char *osc_errname(int code);
/* sysexits.h exit status that fits a code (0 for OSC_OK). */
int osc_err_exit_code(int code);

/*
 * Fill err (if not NULL) and return code, so callers can write
 * `return osc_err_set(err, OSC_EDATA, "%s:%u: ...", ...)`. The formatted
 * message is truncated to fit and redacted of registered secrets.
 */
int osc_err_set(struct osc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset err to "no error". Accepts NULL. */
void osc_err_clear(struct osc_err *err);

/* err->msg if set, else osc_strerror(code). */
const char *osc_err_text(const struct osc_err *err, int code);

#endif
