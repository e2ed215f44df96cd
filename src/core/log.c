/*
 * log.c - the logger and the secret registry behind osc_redact().
 *
 * Invariant: no byte leaves this file (or osc_err_set) without having been
 * passed through osc_redact(). The secret registry is a small fixed array:
 * a process has a handful of credentials, and a fixed size keeps redaction
 * allocation-free. Each secret is stored in every form it can take in our
 * output (raw, JSON-escaped, URL-encoded), computed once when it is added,
 * so redaction stays one strstr() per distinct form: a secret of letters,
 * digits and "-._~" has a single form.
 */
#include "osc/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "osc/err.h"

#define MAX_SECRETS 64 /* distinct secrets; each adds up to MAX_FORMS forms */
#define MAX_FORMS   8
#define MIN_SECRET  4
#define MASK        "***"

int osc_log_level_current = OSC_LOG_LEVEL_INFO;

static enum osc_log_format log_format = OSC_LOG_FORMAT_TEXT;
static FILE *log_stream;
/* `run` redacts from several threads while a SIGHUP reload may register secrets: readers share
 * the registry, a writer has it alone */
static pthread_rwlock_t secrets_lock = PTHREAD_RWLOCK_INITIALIZER;
static char *secrets[MAX_SECRETS]; /* as registered, for de-duplication and the cap */
static size_t nsecrets;
/* Every distinct form of every secret, longest first: a secret that holds another
 * one (or another's form) is masked whole before the shorter one can cut it. */
struct form {
    char *s;
    size_t len;
};
static struct form forms[MAX_SECRETS * MAX_FORMS];
static size_t nforms;

/* repeat suppression */
static char last_line[OSC_LOG_LINE_MAX];
static enum osc_log_level last_level;
static char last_module[32];
static unsigned long repeats;
static int last_event; /* the last line was an event: never folded */

static void (*log_hook)(void *ud, int before);
static void *log_hook_ud;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void osc_log_set_level(enum osc_log_level level) { osc_log_level_current = (int)level; }
void osc_log_set_format(enum osc_log_format format) { log_format = format; }
void osc_log_set_stream(FILE *stream) { log_stream = stream; }

int osc_log_level_parse(const char *s, enum osc_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum osc_log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = OSC_LOG_LEVEL_WARN;
        return 0;
    }
    return OSC_EINVAL;
}

int osc_log_format_parse(const char *s, enum osc_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = OSC_LOG_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = OSC_LOG_FORMAT_JSON;
    else
        return OSC_EINVAL;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n, i;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* ---- the forms of a secret ------------------------------------------------- */

/*
 * The body of s as a JSON string literal, as osc_json_quote writes it
 * (jansson 0: lower-case \u00xx for control characters but \n \r \t) or as
 * jansson's json_dumps does (1: \b \f too, upper-case hex; 2: also every
 * non-ASCII character as \uXXXX, JSON_ENSURE_ASCII). Invalid UTF-8 is
 * written as osc_json_quote does (U+FFFD; \uFFFD in style 2). Caller frees;
 * NULL on ENOMEM.
 * src/core cannot call src/records, so this is the same rule, kept here.
 */
static char *json_form(const char *s, size_t len, int style)
{
    static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
    const char *hex = style ? up : lo;
    char *out = malloc(len * 12 + 1), *o = out; /* a 4-byte character: two \uXXXX */
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    if (!out)
        return NULL;
    while (p < end) {
        unsigned c = *p;
        if (c >= 0x80) {
            size_t n = utf8_seq(p); /* s is NUL-terminated */
            if (n == 0) {
                if (style < 2)
                    memcpy(o, "\xEF\xBF\xBD", 3), o += 3;
                else
                    memcpy(o, "\\uFFFD", 6), o += 6;
                p++;
                continue;
            }
            if (style < 2) {
                memcpy(o, p, n), o += n, p += n;
                continue;
            }
            {
                unsigned cp = n == 2   ? (c & 0x1Fu) << 6 | (p[1] & 0x3Fu)
                              : n == 3 ? (c & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu)
                                       : (c & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 |
                                             (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
                unsigned u[2] = {cp, 0};
                int nu = 1;
                if (cp >= 0x10000) {
                    u[0] = 0xD800 + ((cp - 0x10000) >> 10);
                    u[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
                    nu = 2;
                }
                for (int i = 0; i < nu; i++) {
                    *o++ = '\\', *o++ = 'u';
                    *o++ = up[u[i] >> 12 & 15], *o++ = up[u[i] >> 8 & 15];
                    *o++ = up[u[i] >> 4 & 15], *o++ = up[u[i] & 15];
                }
                p += n;
            }
            continue;
        }
        switch (c) {
        case '"': *o++ = '\\', *o++ = '"'; break;
        case '\\': *o++ = '\\', *o++ = '\\'; break;
        case '\n': *o++ = '\\', *o++ = 'n'; break;
        case '\r': *o++ = '\\', *o++ = 'r'; break;
        case '\t': *o++ = '\\', *o++ = 't'; break;
        case '\b':
        case '\f':
            if (style) {
                *o++ = '\\', *o++ = c == '\b' ? 'b' : 'f';
                break;
            }
            /* fall through */
        default:
            if (c < 0x20) {
                memcpy(o, "\\u00", 4), o += 4;
                *o++ = hex[c >> 4], *o++ = hex[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
        p++;
    }
    *o = '\0';
    return out;
}

/*
 * s percent-encoded as osc_http_urlencode() and curl_easy_escape() do
 * (everything but A-Z a-z 0-9 - . _ ~), with upper- or lower-case hex, and
 * with a space as '+' when form is set (application/x-www-form-urlencoded).
 * Caller frees; NULL on ENOMEM.
 */
static char *url_form(const char *s, size_t len, int lower, int form)
{
    const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
    char *out = malloc(len * 3 + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else if (c == ' ' && form) {
            *o++ = '+';
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Insert form f (taken) unless already known, keeping forms[] longest first. */
static void add_form(char *f)
{
    size_t len = strlen(f), i;

    for (i = 0; i < nforms; i++) {
        if (strcmp(forms[i].s, f) == 0) {
            free(f);
            return;
        }
    }
    for (i = nforms; i > 0 && forms[i - 1].len < len; i--)
        forms[i] = forms[i - 1];
    forms[i].s = f;
    forms[i].len = len;
    nforms++;
}

static int secret_add(const char *secret)
{
    char *f[MAX_FORMS] = {NULL};
    size_t len;
    int rc = 0;

    if (!secret || (len = strlen(secret)) < MIN_SECRET)
        return 0;
    for (size_t i = 0; i < nsecrets; i++)
        if (strcmp(secrets[i], secret) == 0)
            return 0;
    if (nsecrets == MAX_SECRETS)
        return OSC_ETOOBIG;
    f[0] = strdup(secret);
    f[1] = json_form(secret, len, 0);
    f[2] = json_form(secret, len, 1);
    f[3] = json_form(secret, len, 2);
    f[4] = url_form(secret, len, 0, 0);
    f[5] = url_form(secret, len, 1, 0);
    f[6] = url_form(secret, len, 0, 1);
    f[7] = url_form(secret, len, 1, 1);
    if (!(secrets[nsecrets] = strdup(secret)))
        rc = OSC_ENOMEM;
    for (size_t i = 0; i < MAX_FORMS; i++)
        if (!f[i])
            rc = OSC_ENOMEM;
    if (rc) {
        free(secrets[nsecrets]);
        for (size_t i = 0; i < MAX_FORMS; i++)
            free(f[i]);
        return rc;
    }
    nsecrets++;
    /* room is certain: at most MAX_FORMS per secret */
    for (size_t i = 0; i < MAX_FORMS; i++)
        add_form(f[i]);
    return 0;
}

int osc_log_secret_add(const char *secret)
{
    int rc;

    pthread_rwlock_wrlock(&secrets_lock);
    rc = secret_add(secret);
    pthread_rwlock_unlock(&secrets_lock);
    return rc;
}

void osc_log_secret_clear(void)
{
    pthread_rwlock_wrlock(&secrets_lock);
    for (size_t i = 0; i < nsecrets; i++)
        free(secrets[i]);
    for (size_t i = 0; i < nforms; i++)
        free(forms[i].s);
    nsecrets = 0;
    nforms = 0;
    pthread_rwlock_unlock(&secrets_lock);
}

size_t osc_redact(char *buf, size_t cap)
{
    size_t n = 0;

    if (!buf || cap == 0)
        return 0;
    pthread_rwlock_rdlock(&secrets_lock);
    for (size_t i = 0; i < nforms; i++) {
        size_t slen = forms[i].len;
        char *p = buf;
        while ((p = strstr(p, forms[i].s)) != NULL) {
            /* every form is >= 4 bytes and the mask is 3, so this only shrinks */
            size_t tail = strlen(p + slen);
            memcpy(p, MASK, sizeof(MASK) - 1);
            memmove(p + sizeof(MASK) - 1, p + slen, tail + 1);
            p += sizeof(MASK) - 1;
            n++;
        }
    }
    pthread_rwlock_unlock(&secrets_lock);
    return n;
}

static void timestamp(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
}

/*
 * Messages carry text from the outside (API answers, input files): make each
 * one a single line of valid UTF-8, so a value cannot forge a log line and a
 * JSON log line is never dropped. Control bytes and invalid UTF-8 become '?'
 * (a cut at the line cap may also split a character).
 */
static void sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7F))) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/*
 * A field's string value as it may be logged: redacted, sanitized, bounded.
 * Returns out.
 */
static const char *clean_value(const char *v, char *out, size_t cap)
{
    size_t n = strlen(v);

    if (n >= cap) {
        memcpy(out, v, cap - 4);
        memcpy(out + cap - 4, "...", 4);
    } else {
        memcpy(out, v, n + 1);
    }
    osc_redact(out, cap);
    sanitize(out);
    return out;
}

static json_t *field_json(const struct osc_log_field *f)
{
    char v[OSC_LOG_LINE_MAX / 2];

    switch (f->type) {
    case OSC_LOG_F_STR: return f->s && *f->s ? json_string(clean_value(f->s, v, sizeof(v))) : NULL;
    case OSC_LOG_F_INT: return json_integer((json_int_t)f->i);
    case OSC_LOG_F_INT_NZ: return f->i ? json_integer((json_int_t)f->i) : NULL;
    case OSC_LOG_F_REAL: return json_real(f->r);
    }
    return NULL;
}

static void emit(enum osc_log_level level, const char *module, const char *event,
                 const struct osc_log_field *fields, size_t nfields, const char *msg)
{
    FILE *out = log_stream ? log_stream : stderr;
    char ts[96];

    timestamp(ts, sizeof(ts));
    if (log_hook)
        log_hook(log_hook_ud, 1);
    if (log_format == OSC_LOG_FORMAT_JSON) {
        /* time, level, module, event, the fields, msg: in that order */
        json_t *o = json_object();
        char *s;
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "level", json_string(level_names[level]));
        json_object_set_new(o, "module", json_string(module));
        if (event)
            json_object_set_new(o, "event", json_string(event));
        for (size_t i = 0; i < nfields; i++) {
            json_t *v = field_json(&fields[i]);
            if (v)
                json_object_set_new(o, fields[i].key, v);
        }
        json_object_set_new(o, "msg", json_string(msg));
        s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
        if (s) {
            /* a secret split over escapes in a field still has its escaped form here */
            osc_redact(s, strlen(s) + 1);
            fprintf(out, "%s\n", s);
        }
        free(s);
        json_decref(o);
    } else {
        fprintf(out, "%s %-5s [%s] %s\n", ts, level_names[level], module, msg);
    }
    fflush(out);
    if (log_hook)
        log_hook(log_hook_ud, 0);
}

/* `run` logs from several threads (presence, sources): the repeat state and the lines are
 * shared, so writing is serialized */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

static void flush_locked(void)
{
    if (repeats > 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "last message repeated %lu more time%s", repeats,
                 repeats == 1 ? "" : "s");
        emit(last_level, last_module, NULL, NULL, 0, msg);
        repeats = 0;
    }
}

void osc_log_flush(void)
{
    pthread_mutex_lock(&write_mu);
    flush_locked();
    pthread_mutex_unlock(&write_mu);
}

void osc_log_set_hook(void (*hook)(void *ud, int before), void *ud)
{
    log_hook = hook;
    log_hook_ud = ud;
}

static void vlog(enum osc_log_level level, const char *module, const char *event,
                 const struct osc_log_field *fields, size_t nfields, const char *fmt, va_list ap)
{
    char line[OSC_LOG_LINE_MAX];
    int n;

    n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        memcpy(line + sizeof(line) - 4, "...", 4);
    osc_redact(line, sizeof(line));
    sanitize(line);

    pthread_mutex_lock(&write_mu);
    /* an event line repeats only with the same event (its fields may differ: JSON shows
     * them, so those lines are never folded) */
    if (level == last_level && !event && !last_event && strcmp(module, last_module) == 0 &&
        strcmp(line, last_line) == 0) {
        repeats++;
        pthread_mutex_unlock(&write_mu);
        return;
    }
    flush_locked();
    emit(level, module, event, fields, nfields, line);
    last_level = level;
    last_event = event != NULL;
    snprintf(last_module, sizeof(last_module), "%s", module);
    memcpy(last_line, line, sizeof(line));
    pthread_mutex_unlock(&write_mu);
}

void osc_log_write(enum osc_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(level, module, NULL, NULL, 0, fmt, ap);
    va_end(ap);
}

void osc_log_event(enum osc_log_level level, const char *module, const char *event,
                   const struct osc_log_field *fields, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(level, module, event, fields, n, fmt, ap);
    va_end(ap);
}
