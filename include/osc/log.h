/*
 * log.h - leveled, module-tagged logging with secret redaction.
 *
 * The level is tested before any formatting happens, so a DEBUG line in a
 * hot path costs one comparison. Every line passes through osc_redact(),
 * which replaces each registered secret with "***": API keys and tokens are
 * registered when the config is loaded and can then never reach a log line,
 * an error message or a preview, whatever code formats them.
 *
 * Lines are bounded (OSC_LOG_LINE_MAX). A line identical to the previous
 * one is counted, not printed, and summarised when a different line comes.
 * Logging is not thread-safe; osconnect logs from one thread.
 *
 * Events: OSC_LOG_EV() logs a line that also carries an event name and
 * typed fields (destination, status, records, request_id, ...). The text
 * format prints the message alone, as OSC_LOG_*() do; the JSON format adds
 * "event" and every field as a key of the line, so a log shipper can
 * filter on them without parsing the message. String fields are redacted
 * and sanitized like the message.
 */
#ifndef OSC_LOG_H
#define OSC_LOG_H

#include <stddef.h>
#include <stdio.h>

enum osc_log_level {
    OSC_LOG_LEVEL_ERROR = 0,
    OSC_LOG_LEVEL_WARN,
    OSC_LOG_LEVEL_INFO,
    OSC_LOG_LEVEL_DEBUG
};

enum osc_log_format { OSC_LOG_FORMAT_TEXT = 0, OSC_LOG_FORMAT_JSON };

#define OSC_LOG_LINE_MAX 2048

extern int osc_log_level_current;

#define OSC_LOG_AT(lvl, mod, ...)                                                                  \
    do {                                                                                           \
        if ((lvl) <= osc_log_level_current)                                                        \
            osc_log_write((lvl), (mod), __VA_ARGS__);                                              \
    } while (0)

#define OSC_LOG_ERROR(mod, ...) OSC_LOG_AT(OSC_LOG_LEVEL_ERROR, mod, __VA_ARGS__)
#define OSC_LOG_WARN(mod, ...)  OSC_LOG_AT(OSC_LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define OSC_LOG_INFO(mod, ...)  OSC_LOG_AT(OSC_LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define OSC_LOG_DEBUG(mod, ...) OSC_LOG_AT(OSC_LOG_LEVEL_DEBUG, mod, __VA_ARGS__)

/* Format and write one line (use the macros, which test the level first). */
void osc_log_write(enum osc_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- events: a line with structured fields ---------------------------------- */

enum osc_log_ftype {
    OSC_LOG_F_STR = 0, /* s; NULL or "" leaves the field out */
    OSC_LOG_F_INT,     /* i */
    OSC_LOG_F_INT_NZ,  /* i; left out when 0 (an HTTP status when there was no answer) */
    OSC_LOG_F_REAL     /* r */
};

struct osc_log_field {
    const char *key; /* not time, level, module, event or msg */
    enum osc_log_ftype type;
    const char *s;
    long long i;
    double r;
};

#define OSC_LF_STR(k, v)                                                                           \
    {                                                                                              \
        (k), OSC_LOG_F_STR, (v), 0, 0.0                                                            \
    }
#define OSC_LF_INT(k, v)                                                                           \
    {                                                                                              \
        (k), OSC_LOG_F_INT, NULL, (long long)(v), 0.0                                              \
    }
#define OSC_LF_INT_NZ(k, v)                                                                        \
    {                                                                                              \
        (k), OSC_LOG_F_INT_NZ, NULL, (long long)(v), 0.0                                           \
    }
#define OSC_LF_REAL(k, v)                                                                          \
    {                                                                                              \
        (k), OSC_LOG_F_REAL, NULL, 0, (double)(v)                                                  \
    }

#define OSC_LOG_UNPAREN_(...) __VA_ARGS__
/*
 * Log event `event` at lvl with fields, a parenthesised list of at least one
 * OSC_LF_*() (evaluated only when the level is on), and a printf message:
 *   OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "delivery", "rejected",
 *              (OSC_LF_STR("destination", name), OSC_LF_INT("status", 422)),
 *              "%s: rejected by the API: HTTP %d", name, 422);
 */
#define OSC_LOG_EV(lvl, mod, event, fields, ...)                                                   \
    do {                                                                                           \
        if ((lvl) <= osc_log_level_current) {                                                      \
            const struct osc_log_field osc_log_f_[] = {OSC_LOG_UNPAREN_ fields};                   \
            osc_log_event((lvl), (mod), (event), osc_log_f_,                                       \
                          sizeof(osc_log_f_) / sizeof(osc_log_f_[0]), __VA_ARGS__);                \
        }                                                                                          \
    } while (0)

/* Write one event line (use OSC_LOG_EV). fields[0..n) are borrowed for the call. */
void osc_log_event(enum osc_log_level level, const char *module, const char *event,
                   const struct osc_log_field *fields, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/*
 * A status line on the same terminal (send's progress) must be cleared before
 * a log line is written and drawn again after it, or the two glue together:
 * hook(ud, 1) is called before every line goes to the log stream and
 * hook(ud, 0) after it was flushed. One hook at a time; NULL removes it. The
 * hook must not log. ud is borrowed until the hook is removed.
 */
void osc_log_set_hook(void (*hook)(void *ud, int before), void *ud);

void osc_log_set_level(enum osc_log_level level);
void osc_log_set_format(enum osc_log_format format);
/* Where lines go; NULL means stderr. The stream is borrowed. */
void osc_log_set_stream(FILE *stream);
/* Parse "error|warn|info|debug" / "text|json"; 0 or OSC_EINVAL. */
int osc_log_level_parse(const char *s, enum osc_log_level *out);
int osc_log_format_parse(const char *s, enum osc_log_format *out);
/* Print the pending "repeated N times" summary, if any. */
void osc_log_flush(void);

/*
 * Register a secret to redact everywhere, in every form it can take in
 * osconnect's output: as is; JSON-escaped as osc_json_quote() and jansson's
 * json_dumps() write it (with and without JSON_ENSURE_ASCII); and
 * percent-encoded (upper- and lower-case hex, and form encoding with '+' for
 * a space). The string is copied. Values shorter than 4 bytes are ignored
 * (they would mangle ordinary text). Returns 0 or OSC_ENOMEM / OSC_ETOOBIG
 * (more than 64 distinct secrets); on failure nothing is registered.
 */
int osc_log_secret_add(const char *secret);
/* Forget all secrets (tests, config reload). */
void osc_log_secret_clear(void);

/*
 * Replace, in place, every form of every registered secret in the
 * NUL-terminated string buf (capacity cap) with "***", longest form first.
 * The result stays NUL-terminated and never grows past cap. Returns the
 * number of replacements.
 */
size_t osc_redact(char *buf, size_t cap);

#endif
