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
