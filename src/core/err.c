/*
 * err.c - the error table generated from OSC_ERRNO_MAP.
 */
#include "osc/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "osc/log.h"

#define IDX(code)   ((code)-OSC_E__FIRST - 1)
#define VALID(code) ((code) > OSC_E__FIRST && (code) < OSC_E__LAST)

static const char *const messages[] = {
#define X(name, ex, msg) msg,
    OSC_ERRNO_MAP(X)
#undef X
};

static const char *const names[] = {
#define X(name, ex, msg) "OSC_E" #name,
    OSC_ERRNO_MAP(X)
#undef X
};

static const int exits[] = {
#define X(name, ex, msg) ex,
    OSC_ERRNO_MAP(X)
#undef X
};

const char *osc_strerror(int code)
{
    if (code == 0)
        return "success";
    return VALID(code) ? messages[IDX(code)] : "unknown error";
}

const char *osc_errname(int code)
{
    if (code == 0)
        return "OSC_OK";
    return VALID(code) ? names[IDX(code)] : "OSC_EUNKNOWN";
}

int osc_err_exit_code(int code)
{
    if (code == 0)
        return 0;
    return VALID(code) ? exits[IDX(code)] : 70;
}

int osc_err_set(struct osc_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    osc_redact(err->msg, sizeof(err->msg));
    return code;
}

void osc_err_clear(struct osc_err *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

const char *osc_err_text(const struct osc_err *err, int code)
{
    if (err && err->msg[0])
        return err->msg;
    return osc_strerror(code);
}
