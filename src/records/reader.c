/*
 * reader.c - streaming record readers: JSON Lines, one JSON array, CSV
 * (RFC 4180, header row) and osconnect dead-letter files.
 *
 * Invariants: the input window win[start, end) holds unconsumed bytes; it
 * starts at WINDOW_INITIAL and grows only while one record does not fit,
 * never past max_record + WINDOW_SLACK, so memory is bounded whatever the
 * input size. `line` is the line number of win[start] and `base` the file
 * offset of win[0]. A record is framed first (its extent found, refilling
 * as needed: framing state lives in locals because a refill keeps the
 * bytes' positions relative to start), then parsed from memory into the
 * scratch buffer. After a malformed record the reader is positioned after
 * it, except for a broken JSON array structure, after which the rest of the
 * input cannot be framed and the reader reports the end.
 *
 * Line ends: CSV lines end in CRLF, LF or a lone CR, and lines are counted
 * so. JSON Lines are framed by LF until a lone CR shows in a line that does
 * not parse (an old Mac file), then by CR or LF. A dead letter's "record" is
 * unwrapped: an object is the record; a string is the raw text of a record
 * that could not be read, returned as malformed again with that raw text.
 */
#include "osc/records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "records_int.h"

#define WINDOW_INITIAL (256u * 1024)
#define WINDOW_SLACK   4096u
#define RAW_MAX        (64u * 1024) /* raw text kept for a dead letter */

struct osc_records_reader {
    int fd;
    int own_fd;
    char *name;
    enum osc_records_format fmt;
    int sniffed;  /* JSON Lines: dead-letter detection done */
    int cr_lines; /* JSON Lines: a lone CR ends a line too (seen in this input) */
    char *win;
    size_t alloc, start, end;
    size_t max_record;
    int eof;
    int done;               /* nothing more will be returned */
    int incomplete;         /* stopped before the end: the rest of the input was never read */
    struct osc_buf rawcopy; /* raw excerpt of a record the window no longer holds */
    uint64_t base;
    uint64_t line;
    int64_t size;
    int bom_checked;
    struct osc_buf scratch;
    struct osc_buf scratch2;
    struct osc_record_field *fields;
    struct osc_record_field *fields2;
    struct json_keys keys; /* the duplicate-key check's stack, reused record after record */
    /* JSON array */
    int arr_state; /* 0 before '[', 1 inside, 2 after ']' */
    int arr_first;
    /* CSV */
    int have_header;
    struct osc_buf hdr; /* header names as JSON string literals, NUL separated */
    size_t *hdr_off;
    size_t ncols;
};

int osc_records_format_parse(const char *s, enum osc_records_format *out)
{
    static const struct {
        const char *name;
        enum osc_records_format f;
    } m[] = {{"auto", OSC_RECORDS_AUTO},    {"jsonl", OSC_RECORDS_JSONL},
             {"ndjson", OSC_RECORDS_JSONL}, {"json", OSC_RECORDS_JSON},
             {"csv", OSC_RECORDS_CSV},      {"deadletter", OSC_RECORDS_DEADLETTER}};

    for (size_t i = 0; s && i < sizeof(m) / sizeof(m[0]); i++) {
        if (strcmp(s, m[i].name) == 0) {
            *out = m[i].f;
            return 0;
        }
    }
    return OSC_EINVAL;
}

const char *osc_records_format_name(enum osc_records_format f)
{
    static const char *const names[] = {"auto", "jsonl", "json", "csv", "deadletter"};
    return (unsigned)f < 5 ? names[f] : "?";
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static enum osc_records_format from_name(const char *path)
{
    if (!path)
        return OSC_RECORDS_AUTO;
    if (ends_with(path, ".dead.jsonl"))
        return OSC_RECORDS_DEADLETTER;
    if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson"))
        return OSC_RECORDS_JSONL;
    if (ends_with(path, ".json"))
        return OSC_RECORDS_JSON;
    if (ends_with(path, ".csv"))
        return OSC_RECORDS_CSV;
    return OSC_RECORDS_AUTO; /* sniffed from the first byte */
}

static struct osc_records_reader *reader_new(const char *name, enum osc_records_format format,
                                             size_t max_record)
{
    struct osc_records_reader *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->fd = -1;
    r->fmt = format;
    r->max_record = max_record ? max_record : OSC_RECORDS_DEFAULT_MAX_BYTES;
    r->line = 1;
    r->size = -1;
    r->arr_first = 1;
    osc_buf_init(&r->scratch, r->max_record * 2 + 64);
    osc_buf_init(&r->scratch2, r->max_record * 2 + 64);
    osc_buf_init(&r->hdr, r->max_record * 2 + 64);
    osc_buf_init(&r->rawcopy, RAW_MAX + 1);
    r->name = strdup(name);
    r->fields = calloc(OSC_RECORDS_MAX_FIELDS, sizeof(*r->fields));
    r->fields2 = calloc(OSC_RECORDS_MAX_FIELDS, sizeof(*r->fields2));
    if (!r->name || !r->fields || !r->fields2) {
        osc_records_close(r);
        return NULL;
    }
    return r;
}

struct osc_records_reader *osc_records_open(const char *path, enum osc_records_format format,
                                            size_t max_record, struct osc_err *err)
{
    int stdin_ = !path || strcmp(path, "-") == 0;
    struct osc_records_reader *r;
    struct stat st;

    if (format == OSC_RECORDS_AUTO && !stdin_)
        format = from_name(path);
    r = reader_new(stdin_ ? "<stdin>" : path, format, max_record);
    if (!r) {
        osc_err_set(err, OSC_ENOMEM, "out of memory opening %s", stdin_ ? "<stdin>" : path);
        return NULL;
    }
    if (stdin_) {
        r->fd = STDIN_FILENO;
    } else {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            osc_err_set(err, OSC_ENOINPUT, "cannot open %s: %s", path, strerror(errno));
            osc_records_close(r);
            return NULL;
        }
        r->own_fd = 1;
    }
    if (fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode))
        r->size = (int64_t)st.st_size;
    else if (!stdin_ && fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        osc_err_set(err, OSC_ENOINPUT, "%s is a directory", path);
        osc_records_close(r);
        return NULL;
    }
    if (!(r->win = malloc(WINDOW_INITIAL))) {
        osc_err_set(err, OSC_ENOMEM, "out of memory opening %s", r->name);
        osc_records_close(r);
        return NULL;
    }
    r->alloc = WINDOW_INITIAL;
    return r;
}

struct osc_records_reader *osc_records_open_mem(const char *data, size_t len, const char *name,
                                                enum osc_records_format format, struct osc_err *err)
{
    struct osc_records_reader *r;

    if (format == OSC_RECORDS_AUTO)
        format = from_name(name);
    r = reader_new(name ? name : "<memory>", format, len + 1);
    if (!r || !(r->win = malloc(len + 1))) {
        osc_records_close(r);
        osc_err_set(err, OSC_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(r->win, data, len);
    r->alloc = len + 1;
    r->end = len;
    r->eof = 1;
    r->size = (int64_t)len;
    return r;
}

void osc_records_close(struct osc_records_reader *r)
{
    if (!r)
        return;
    if (r->own_fd && r->fd >= 0)
        close(r->fd);
    free(r->name);
    free(r->win);
    free(r->fields);
    free(r->fields2);
    free(r->hdr_off);
    json_keys_free(&r->keys);
    osc_buf_free(&r->scratch);
    osc_buf_free(&r->scratch2);
    osc_buf_free(&r->hdr);
    osc_buf_free(&r->rawcopy);
    free(r);
}

uint64_t osc_records_bytes_read(const struct osc_records_reader *r) { return r->base + r->start; }
int64_t osc_records_size(const struct osc_records_reader *r) { return r->size; }
enum osc_records_format osc_records_format_of(const struct osc_records_reader *r) { return r->fmt; }
const char *osc_records_name(const struct osc_records_reader *r) { return r->name; }
uint64_t osc_records_line(const struct osc_records_reader *r) { return r->line; }
int osc_records_incomplete(const struct osc_records_reader *r) { return r->incomplete; }

int osc_records_seek(struct osc_records_reader *r, uint64_t offset, uint64_t line)
{
    /* only line-framed formats can start anywhere: CSV needs its header, JSON its '[' */
    if ((r->fmt != OSC_RECORDS_JSONL && r->fmt != OSC_RECORDS_DEADLETTER) || !r->own_fd ||
        r->base + r->end != 0 || (r->size >= 0 && offset > (uint64_t)r->size))
        return OSC_EINVAL;
    if (lseek(r->fd, (off_t)offset, SEEK_SET) != (off_t)offset)
        return OSC_EINVAL;
    r->base = offset;
    r->start = r->end = 0;
    r->line = line ? line : 1;
    r->bom_checked = offset > 0;
    return 0;
}

static volatile int *read_interrupt; /* osc_records_set_interrupt() */

void osc_records_set_interrupt(volatile int *flag) { read_interrupt = flag; }

static int interrupted(const struct osc_records_reader *r)
{
    /* a regular file never blocks: its reader stops between records, as the caller decides */
    return r->size < 0 && read_interrupt && *read_interrupt;
}

/*
 * Read more input behind the unconsumed bytes. Returns 1 when bytes were
 * added, 0 at end of input, OSC_ETOOBIG when the window is at its cap and
 * full, OSC_EIO on a read error, OSC_EINTERRUPTED when a pipe or terminal
 * read was interrupted (see osc_records_set_interrupt).
 */
static int refill(struct osc_records_reader *r)
{
    ssize_t n;

    if (r->eof)
        return 0;
    if (interrupted(r))
        return OSC_EINTERRUPTED;
    if (r->start > 0 && (r->end == r->alloc || r->start >= r->alloc / 2)) {
        memmove(r->win, r->win + r->start, r->end - r->start);
        r->base += r->start;
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->alloc) {
        size_t cap = r->max_record + WINDOW_SLACK, na = r->alloc * 2;
        char *nw;
        if (r->alloc >= cap)
            return OSC_ETOOBIG;
        if (na > cap)
            na = cap;
        if (!(nw = realloc(r->win, na)))
            return OSC_ENOMEM;
        r->win = nw;
        r->alloc = na;
    }
    do
        n = read(r->fd, r->win + r->end, r->alloc - r->end);
    while (n < 0 && errno == EINTR && !interrupted(r));
    if (n < 0)
        return errno == EINTR ? OSC_EINTERRUPTED : OSC_EIO;
    if (n == 0) {
        r->eof = 1;
        return 0;
    }
    r->end += (size_t)n;
    return 1;
}

static uint64_t count_nl(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *end = p + n;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        c++;
        p++;
    }
    return c;
}

/* Consume n bytes at start, keeping the line count. */
static void consume(struct osc_records_reader *r, size_t n)
{
    r->line += count_nl(r->win + r->start, n);
    r->start += n;
}

/*
 * Line ends in CSV: CRLF, LF, or a CR alone (old Mac files), mixed freely.
 * A CR is one line end on its own unless a LF follows it in the span (the
 * framing never cuts between the two).
 */
static uint64_t count_eol(const char *p, size_t n)
{
    uint64_t c = 0;

    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n' || (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')))
            c++;
    return c;
}

static void consume_csv(struct osc_records_reader *r, size_t n)
{
    r->line += count_eol(r->win + r->start, n);
    r->start += n;
}

/* The first CR or LF in p[0, n), or NULL. */
static const char *find_eol(const char *p, size_t n)
{
    const char *lf = memchr(p, '\n', n), *cr = memchr(p, '\r', lf ? (size_t)(lf - p) : n);
    return cr ? cr : lf;
}

static int need_bytes(struct osc_records_reader *r, size_t n)
{
    int rc;

    while (r->end - r->start < n)
        if ((rc = refill(r)) <= 0)
            return rc;
    return 1;
}

static void skip_bom(struct osc_records_reader *r)
{
    if (r->bom_checked)
        return;
    r->bom_checked = 1;
    if (need_bytes(r, 3) > 0 && memcmp(r->win + r->start, "\xEF\xBB\xBF", 3) == 0) {
        r->start += 3;
    }
}

static void set_raw(struct osc_records_reader *r, struct osc_record *rec, size_t len)
{
    rec->raw = r->win + r->start;
    rec->raw_len = len > RAW_MAX ? RAW_MAX : len;
}

/*
 * Keep rec->raw in reader-owned memory: skipping the rest of an oversized
 * record refills the window over the bytes rec->raw points at.
 */
static void keep_raw(struct osc_records_reader *r, struct osc_record *rec)
{
    osc_buf_reset(&r->rawcopy);
    if (rec->raw_len && osc_buf_add(&r->rawcopy, rec->raw, rec->raw_len) == 0) {
        rec->raw = r->rawcopy.data;
        return;
    }
    rec->raw = NULL; /* no excerpt beats a wrong one */
    rec->raw_len = 0;
}

static int malformed(struct osc_records_reader *r, struct osc_record *rec, struct osc_err *err,
                     const char *why)
{
    rec->json = NULL;
    rec->json_len = 0;
    rec->fields = NULL;
    rec->nfields = 0;
    return osc_err_set(err, OSC_EDATA, "%s:%llu: %s", r->name, (unsigned long long)rec->line, why);
}

/* A malformed record after which nothing more can be read from this input. */
static int malformed_end(struct osc_records_reader *r, struct osc_record *rec, struct osc_err *err,
                         const char *why)
{
    r->done = 1;
    r->incomplete = 1;
    return malformed(r, rec, err, why);
}

static int fatal(struct osc_records_reader *r, int rc, struct osc_err *err)
{
    r->done = 1;
    r->incomplete = 1;
    if (rc == OSC_ENOMEM)
        return osc_err_set(err, rc, "%s: out of memory", r->name);
    if (rc == OSC_EINTERRUPTED)
        return osc_err_set(err, rc, "%s: interrupted while waiting for input", r->name);
    return osc_err_set(err, OSC_EIO, "%s: read error: %s", r->name, strerror(errno));
}

/* ---- JSON objects (JSON Lines, array elements, dead letters) ------------ */

/*
 * Parse one record object. nul: NULL, or accept \u0000 in strings and set
 * *nul when one is seen (a dead letter's envelope, see next_jsonl).
 */
static int parse_object(struct osc_records_reader *r, struct osc_record *rec, const char *text,
                        size_t len, int *nul, struct osc_err *err)
{
    const char *why = NULL;
    size_t used = 0, nf = 0;
    int rc;

    osc_buf_reset(&r->scratch);
    rc = json_compact_object(text, len, &used, &r->scratch, r->fields, OSC_RECORDS_MAX_FIELDS, &nf,
                             &r->keys, nul, &why);
    if (rc == OSC_EDATA) {
        char msg[192];
        snprintf(msg, sizeof(msg), "%s (column %zu)", why, used + 1);
        return malformed(r, rec, err, msg);
    }
    if (rc)
        return malformed(r, rec, err, "record too large");
    while (used < len &&
           (text[used] == ' ' || text[used] == '\t' || text[used] == '\r' || text[used] == '\n'))
        used++;
    if (used < len) {
        char msg[96];
        snprintf(msg, sizeof(msg), "unexpected text after the record (column %zu)", used + 1);
        return malformed(r, rec, err, msg);
    }
    rec->json = r->scratch.data;
    rec->json_len = r->scratch.len;
    rec->fields = r->fields;
    rec->nfields = nf;
    return 1;
}

static int looks_like_deadletter(const struct osc_record *rec)
{
    const struct osc_record_field *f = osc_record_get(rec, "record");
    return f && osc_record_get(rec, "reason") && osc_record_get(rec, "destination") &&
           f->val_len > 0 && (f->val[0] == '{' || f->val[0] == '"');
}

/*
 * A dead letter's "record" is sent again: an object as it is; a string (the
 * raw text of input that could not be read) becomes a malformed record whose
 * raw text is that string's content, so dead-lettering it again writes the
 * same "record" value, never the whole line wrapped once more.
 */
static int unwrap_deadletter(struct osc_records_reader *r, struct osc_record *rec,
                             struct osc_err *err)
{
    const struct osc_record_field *f = osc_record_get(rec, "record");
    const char *why = NULL;
    size_t nf = 0;
    int rc;

    if (!f)
        return malformed(r, rec, err, "not an osconnect dead letter (no \"record\")");
    osc_buf_reset(&r->scratch2);
    if (f->val[0] == '"') {
        const struct osc_record_field *rs = osc_record_get(rec, "reason");
        char msg[256];
        /* the envelope was validated, so the string unescapes cleanly */
        if (osc_json_value_text(f->val, f->val_len, &r->scratch2) < 0)
            return malformed(r, rec, err, "record too large");
        rec->raw = r->scratch2.data ? r->scratch2.data : "";
        rec->raw_len = r->scratch2.len;
        if (rs && rs->val[0] == '"' && rs->val_len > 2)
            snprintf(msg, sizeof(msg),
                     "the dead letter holds input that was never a JSON object (%.*s); fix "
                     "it by hand",
                     (int)(rs->val_len - 2 > 160 ? 160 : rs->val_len - 2), rs->val + 1);
        else
            snprintf(msg, sizeof(msg),
                     "the dead letter holds input that was never a JSON object; fix it by hand");
        return malformed(r, rec, err, msg);
    }
    /* from here on a failure keeps the record's own text as its raw text, not the line */
    rec->raw = f->val;
    rec->raw_len = f->val_len;
    if (f->val[0] != '{')
        return malformed(r, rec, err, "the dead letter's \"record\" is not a JSON object");
    rc = json_compact_object(f->val, f->val_len, NULL, &r->scratch2, r->fields2,
                             OSC_RECORDS_MAX_FIELDS, &nf, &r->keys, NULL, &why);
    if (rc)
        return malformed(r, rec, err, why ? why : "record too large");
    rec->json = r->scratch2.data;
    rec->json_len = r->scratch2.len;
    rec->fields = r->fields2;
    rec->nfields = nf;
    return 1;
}

/* The end of the line at win[start + from...]: LF, or in a CR-lines input CR or LF. */
static const char *jsonl_eol(const struct osc_records_reader *r, size_t from)
{
    const char *p = r->win + r->start + from;
    size_t n = r->end - r->start - from;

    return r->cr_lines ? find_eol(p, n) : memchr(p, '\n', n);
}

/* 1 when p[0, n) holds a CR followed by something else than LF (old Mac line ends). */
static int has_lone_cr(const char *p, size_t n)
{
    const char *end = p + n, *q = p;

    while ((q = memchr(q, '\r', (size_t)(end - q))) != NULL && q + 1 < end) {
        if (q[1] != '\n')
            return 1;
        q++;
    }
    return 0;
}

static int next_jsonl(struct osc_records_reader *r, struct osc_record *rec, struct osc_err *err)
{
    for (;;) {
        size_t scanned = 0, len, eol = 0;
        const char *nl;
        int rc;

        for (;;) {
            if (!r->cr_lines) {
                nl = memchr(r->win + r->start + scanned, '\n', r->end - r->start - scanned);
                if (nl)
                    break;
            } else {
                nl = jsonl_eol(r, scanned);
                /* a CR read last may be the first half of a CRLF: read on to see */
                if (nl && !(*nl == '\r' && nl + 1 == r->win + r->end && !r->eof))
                    break;
            }
            scanned = nl ? (size_t)(nl - (r->win + r->start)) : r->end - r->start;
            rc = refill(r);
            if (rc == 0) {
                nl = jsonl_eol(r, scanned); /* the refill may have moved the window */
                break;
            }
            if (rc == OSC_ETOOBIG) {
                /* CR-only line ends: the "line" is the whole file; frame it again by CR */
                if (!r->cr_lines && has_lone_cr(r->win + r->start, r->end - r->start)) {
                    r->cr_lines = 1;
                    scanned = 0;
                    continue;
                }
                /* a line longer than the cap: report it, then skip to its end */
                rec->offset = r->base + r->start;
                rec->line = r->line;
                set_raw(r, rec, r->end - r->start);
                keep_raw(r, rec);
                rc = malformed(r, rec, err, "record is longer than the per-record limit");
                for (;;) {
                    nl = jsonl_eol(r, 0);
                    if (nl) {
                        r->start = (size_t)(nl - r->win) + 1;
                        break;
                    }
                    r->start = r->end;
                    int rr = refill(r);
                    if (rr < 0)
                        return fatal(r, rr, err);
                    if (rr == 0)
                        break;
                }
                r->line++;
                return rc;
            }
            if (rc < 0)
                return fatal(r, rc, err);
        }
        if (nl) {
            eol = 1;
            if (*nl == '\r' && nl + 1 < r->win + r->end && nl[1] == '\n')
                eol = 2;
            len = (size_t)(nl - (r->win + r->start)) + eol;
        } else {
            len = r->end - r->start;
        }
        if (len == 0)
            return 0;
        rec->offset = r->base + r->start;
        rec->line = r->line;
        {
            const char *p = r->win + r->start;
            size_t i = 0;
            while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
                i++;
            if (i == len) { /* blank line */
                r->start += len;
                r->line += nl ? 1 : 0;
                continue;
            }
            /* A dead letter may quote a NUL read from a CSV row in its "record" string:
             * the envelope accepts \u0000, the records themselves never do. */
            int nul = 0, lax = r->fmt == OSC_RECORDS_DEADLETTER || !r->sniffed;
            set_raw(r, rec, len - eol);
            rc = parse_object(r, rec, p, len, lax ? &nul : NULL, err);
            /* records ending in a lone CR (old Mac files): frame this input by CR too */
            if (rc == OSC_EDATA && !r->cr_lines && has_lone_cr(p, len)) {
                r->cr_lines = 1;
                continue;
            }
            if (rc == 1 && !r->sniffed) {
                r->sniffed = 1;
                if (r->fmt == OSC_RECORDS_JSONL && looks_like_deadletter(rec))
                    r->fmt = OSC_RECORDS_DEADLETTER;
            }
            if (rc == 1 && nul && r->fmt != OSC_RECORDS_DEADLETTER)
                rc = parse_object(r, rec, p, len, NULL, err); /* reports the NUL */
            if (rc == 1 && r->fmt == OSC_RECORDS_DEADLETTER)
                rc = unwrap_deadletter(r, rec, err);
            r->start += len;
            r->line += nl ? 1 : 0;
        }
        return rc;
    }
}

/* ---- one JSON array --------------------------------------------------------- */

/* Skip whitespace, refilling; returns the next byte, -1 at the end, or < -1 on error. */
static int peek_nonws(struct osc_records_reader *r)
{
    for (;;) {
        while (r->start < r->end) {
            char c = r->win[r->start];
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
                return (unsigned char)c;
            if (c == '\n')
                r->line++;
            r->start++;
        }
        int rc = refill(r);
        if (rc == 0)
            return -1;
        if (rc < 0)
            return rc - 1000;
    }
}

static int next_json_array(struct osc_records_reader *r, struct osc_record *rec,
                           struct osc_err *err)
{
    size_t scanned = 0, len;
    int c, depth = 0, in_str = 0, esc = 0, rc;

    if (r->arr_state == 2)
        goto after;
    c = peek_nonws(r);
    if (c < -1)
        return fatal(r, c + 1000, err);
    rec->offset = r->base + r->start;
    rec->line = r->line;
    rec->raw = NULL;
    rec->raw_len = 0;
    if (r->arr_state == 0) {
        if (c == -1)
            return 0; /* an empty file holds no records */
        if (c != '[')
            return malformed_end(r, rec, err, "expected a JSON array of records ('[')");
        r->start++;
        r->arr_state = 1;
        c = peek_nonws(r);
        if (c < -1)
            return fatal(r, c + 1000, err);
    }
    if (!r->arr_first && c == ',') {
        uint64_t coff = r->base + r->start, cline = r->line;
        r->start++;
        c = peek_nonws(r);
        if (c < -1)
            return fatal(r, c + 1000, err);
        if (c == ']') {
            /* [a,b,]: every record was read and the array still ends here */
            r->start++;
            r->arr_state = 2;
            rec->offset = coff;
            rec->line = cline;
            rec->raw = ",";
            rec->raw_len = 1;
            return malformed(r, rec, err, "trailing comma");
        }
    } else if (!r->arr_first && c != ']') {
        rec->offset = r->base + r->start;
        rec->line = r->line;
        return malformed_end(r, rec, err,
                             c == -1 ? "unterminated JSON array (missing ']')"
                                     : "expected ',' or ']' between records; the rest "
                                       "of the file cannot be read");
    }
    if (c == ']') {
        r->start++;
        r->arr_state = 2;
        goto after;
    }
    if (c == -1)
        return malformed_end(r, rec, err, "unterminated JSON array (missing ']')");
    r->arr_first = 0;
    rec->offset = r->base + r->start;
    rec->line = r->line;
    /* frame the element: up to the ',' or ']' that closes it at depth 0 */
    for (;;) {
        const char *p = r->win + r->start + scanned, *end = r->win + r->end;
        int found = 0;
        for (; p < end; p++) {
            char ch = *p;
            if (in_str) {
                if (esc)
                    esc = 0;
                else if (ch == '\\')
                    esc = 1;
                else if (ch == '"')
                    in_str = 0;
                continue;
            }
            if (ch == '"')
                in_str = 1;
            else if (ch == '{' || ch == '[')
                depth++;
            else if (ch == '}' || ch == ']') {
                if (depth == 0) {
                    found = 1;
                    break;
                }
                if (--depth == 0) { /* the element's container closed: it ends here */
                    p++;
                    found = 1;
                    break;
                }
            } else if (ch == ',' && depth == 0) {
                found = 1;
                break;
            }
        }
        scanned = (size_t)(p - (r->win + r->start));
        if (found)
            break;
        rc = refill(r);
        if (rc == 0) {
            set_raw(r, rec, r->end - r->start);
            return malformed_end(r, rec, err, "unterminated JSON array (missing ']')");
        }
        if (rc == OSC_ETOOBIG) {
            set_raw(r, rec, r->end - r->start);
            return malformed_end(r, rec, err,
                                 "record is longer than the per-record limit; the rest "
                                 "of the file cannot be read");
        }
        if (rc < 0)
            return fatal(r, rc, err);
    }
    len = scanned;
    set_raw(r, rec, len);
    rc = parse_object(r, rec, r->win + r->start, len, NULL, err);
    consume(r, len);
    return rc;

after:
    c = peek_nonws(r);
    if (c < -1)
        return fatal(r, c + 1000, err);
    if (c != -1) {
        rec->offset = r->base + r->start;
        rec->line = r->line;
        rec->raw = NULL;
        rec->raw_len = 0;
        return malformed_end(r, rec, err, "unexpected text after the JSON array");
    }
    return 0;
}

/* ---- CSV ------------------------------------------------------------------- */

/*
 * Frame one CSV record (a line, or several when a quoted field holds line
 * breaks). Returns its length including its line end (CRLF, LF or a lone
 * CR), 0 at the end, OSC_ETOOBIG, or another negative error. A quote opens
 * a quoted field only at the start of a field, as csv_fields() reads it:
 * `27" Monitor` is plain text and must not swallow the lines after it.
 */
static long frame_csv(struct osc_records_reader *r, int *too_big)
{
    enum { F_START, F_PLAIN, F_QUOTED, F_QUOTE_SEEN } st = F_START;
    size_t scanned = 0;
    int rc;

    *too_big = 0;
    for (;;) {
        const char *base = r->win + r->start, *p = base + scanned, *end = r->win + r->end;
        for (; p < end; p++) {
            char c = *p;
            if (st == F_QUOTED) {
                if (c == '"')
                    st = F_QUOTE_SEEN;
                continue;
            }
            if (c == '\n')
                return (long)(p - base) + 1;
            if (c == '\r') {
                if (p + 1 < end)
                    return (long)(p - base) + (p[1] == '\n' ? 2 : 1);
                break; /* the last byte read: whether a LF follows decides the length */
            }
            if (c == ',')
                st = F_START;
            else if (c == '"' && (st == F_START || st == F_QUOTE_SEEN))
                st = F_QUOTED; /* an opening quote, or the second of a doubled "" */
            else
                st = F_PLAIN;
        }
        scanned = (size_t)(p - base);
        rc = refill(r);
        if (rc == 0)
            return (long)(r->end - r->start);
        if (rc == OSC_ETOOBIG) {
            *too_big = 1;
            return (long)(r->end - r->start);
        }
        if (rc < 0)
            return rc;
    }
}

/*
 * Split text into fields, calling back with each unquoted value (quotes
 * and doubled quotes resolved into tmp). Returns the number of fields, or
 * -1 with *why set.
 */
static long csv_fields(const char *text, size_t len, struct osc_buf *tmp, size_t *offs, size_t max,
                       const char **why)
{
    const char *p = text, *end = text + len;
    size_t n = 0;

    /* strip the line ending */
    if (end > p && end[-1] == '\n')
        end--;
    if (end > p && end[-1] == '\r')
        end--;
    osc_buf_reset(tmp);
    for (;;) {
        if (n >= max) {
            *why = "too many fields";
            return -1;
        }
        offs[n] = tmp->len;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q) {
                    *why = "unterminated quoted field";
                    return -1;
                }
                if (osc_buf_add(tmp, p, (size_t)(q - p)))
                    goto nomem;
                if (q + 1 < end && q[1] == '"') {
                    if (osc_buf_addc(tmp, '"'))
                        goto nomem;
                    p = q + 2;
                    continue;
                }
                p = q + 1;
                break;
            }
            if (p < end && *p != ',') {
                *why = "text after a closing quote (quote it as \"\")";
                return -1;
            }
        } else {
            const char *q = memchr(p, ',', (size_t)(end - p));
            if (!q)
                q = end;
            if (osc_buf_add(tmp, p, (size_t)(q - p)))
                goto nomem;
            p = q;
        }
        if (osc_buf_addc(tmp, '\0'))
            goto nomem;
        n++;
        if (p >= end)
            break;
        p++; /* the comma */
    }
    offs[n] = tmp->len;
    return (long)n;
nomem:
    *why = "record too large";
    return -1;
}

/*
 * A row that cannot be read. A bad data row is dead-lettered and reading goes
 * on; a bad header ends the file: taking the next row as the header would
 * send every record under the wrong field names.
 */
static int bad_csv_row(struct osc_records_reader *r, struct osc_record *rec, struct osc_err *err,
                       const char *why)
{
    char msg[192];

    if (r->have_header)
        return malformed(r, rec, err, why);
    snprintf(msg, sizeof(msg), "the CSV header cannot be read (%s); the file cannot be read", why);
    return malformed_end(r, rec, err, msg);
}

static int next_csv(struct osc_records_reader *r, struct osc_record *rec, struct osc_err *err)
{
    size_t offs[OSC_RECORDS_MAX_FIELDS + 1];

    for (;;) {
        int too_big;
        long len = frame_csv(r, &too_big), n;
        const char *why = NULL;
        struct osc_buf *tmp = &r->scratch2;

        if (len < 0)
            return fatal(r, (int)len, err);
        if (len == 0)
            return 0;
        rec->offset = r->base + r->start;
        rec->line = r->line;
        set_raw(r, rec, (size_t)len);
        if (too_big) {
            int rc;
            keep_raw(r, rec);
            if (!r->have_header)
                return malformed_end(r, rec, err,
                                     "the CSV header is longer than the per-record limit; "
                                     "the file cannot be read");
            rc = malformed(r, rec, err, "record is longer than the per-record limit");
            /* skip to the end of this line (a read error comes back on the next call) */
            for (;;) {
                const char *e = find_eol(r->win + r->start, r->end - r->start);
                if (e) {
                    r->start = (size_t)(e - r->win) + 1;
                    if (*e == '\r' && need_bytes(r, 1) > 0 && r->win[r->start] == '\n')
                        r->start++;
                    break;
                }
                r->start = r->end;
                if (refill(r) <= 0)
                    break;
            }
            r->line++;
            return rc;
        }
        {
            const char *p = r->win + r->start;
            if ((len == 1 && (p[0] == '\n' || p[0] == '\r')) ||
                (len == 2 && p[0] == '\r' && p[1] == '\n')) {
                consume_csv(r, (size_t)len);
                continue; /* blank line */
            }
        }
        if (rec->raw_len && rec->raw[rec->raw_len - 1] == '\n')
            rec->raw_len--;
        if (rec->raw_len && rec->raw[rec->raw_len - 1] == '\r')
            rec->raw_len--;
        n = csv_fields(r->win + r->start, (size_t)len, tmp, offs, OSC_RECORDS_MAX_FIELDS, &why);
        consume_csv(r, (size_t)len);
        if (n < 0)
            return bad_csv_row(r, rec, err, why);
        for (long i = 0; i < n; i++) {
            const char *fv = tmp->data + offs[i];
            size_t fl = offs[i + 1] - offs[i] - 1;
            char msg[96];
            if (!osc_json_utf8_valid(fv, fl)) {
                snprintf(msg, sizeof(msg), "invalid UTF-8 in field %ld", i + 1);
                return bad_csv_row(r, rec, err, msg);
            }
            /* text with a NUL cannot be stored by the API; one bad row must not sink its batch */
            if (memchr(fv, '\0', fl)) {
                snprintf(msg, sizeof(msg), "NUL byte in field %ld", i + 1);
                return bad_csv_row(r, rec, err, msg);
            }
        }
        if (!r->have_header) {
            r->have_header = 1;
            r->ncols = (size_t)n;
            if (!(r->hdr_off = calloc((size_t)n + 1, sizeof(*r->hdr_off))))
                return fatal(r, OSC_ENOMEM, err);
            for (long i = 0; i < n; i++) {
                const char *name = tmp->data + offs[i];
                size_t nl = offs[i + 1] - offs[i] - 1;
                char alt[32];
                while (nl && (*name == ' ')) /* tolerate "a, b" headers */
                    name++, nl--;
                while (nl && name[nl - 1] == ' ')
                    nl--;
                if (nl == 0) {
                    snprintf(alt, sizeof(alt), "column%ld", i + 1);
                    name = alt;
                    nl = strlen(alt);
                }
                r->hdr_off[i] = r->hdr.len;
                if (osc_json_quote(&r->hdr, name, nl))
                    return fatal(r, OSC_ENOMEM, err);
                /* two columns of one name would make records with a duplicate key: which
                 * one is meant cannot be guessed, so nothing of this file can be framed */
                for (long j = 0; j < i; j++) {
                    size_t jl = r->hdr_off[j + 1] - r->hdr_off[j], il = r->hdr.len - r->hdr_off[i];
                    if (jl == il &&
                        memcmp(r->hdr.data + r->hdr_off[j], r->hdr.data + r->hdr_off[i], il) == 0) {
                        char msg[192];
                        snprintf(msg, sizeof(msg),
                                 "duplicate column name %.*s%s (columns %ld and %ld) in the CSV "
                                 "header; the file cannot be read",
                                 (int)(il > 66 ? 66 : il), r->hdr.data + r->hdr_off[i],
                                 il > 66 ? "...\"" : "", j + 1, i + 1);
                        return malformed_end(r, rec, err, msg);
                    }
                }
            }
            r->hdr_off[n] = r->hdr.len;
            continue;
        }
        if ((size_t)n != r->ncols) {
            char msg[128];
            snprintf(msg, sizeof(msg), "expected %zu fields (as in the header), got %ld", r->ncols,
                     n);
            return malformed(r, rec, err, msg);
        }
        /* build the compact JSON object and its field index */
        osc_buf_reset(&r->scratch);
        if (osc_buf_reserve(&r->scratch, r->hdr.len + tmp->len * 2 + 2 * (size_t)n + 16) ||
            osc_buf_addc(&r->scratch, '{'))
            return malformed(r, rec, err, "record too large");
        for (size_t i = 0; i < (size_t)n; i++) {
            struct osc_record_field *f = &r->fields[i];
            size_t koff, voff;
            if (i && osc_buf_addc(&r->scratch, ','))
                return malformed(r, rec, err, "record too large");
            koff = r->scratch.len + 1;
            if (osc_buf_add(&r->scratch, r->hdr.data + r->hdr_off[i],
                            r->hdr_off[i + 1] - r->hdr_off[i]) ||
                osc_buf_addc(&r->scratch, ':'))
                return malformed(r, rec, err, "record too large");
            voff = r->scratch.len;
            if (osc_json_quote(&r->scratch, tmp->data + offs[i], offs[i + 1] - offs[i] - 1))
                return malformed(r, rec, err, "record too large");
            f->key_len = r->hdr_off[i + 1] - r->hdr_off[i] - 2;
            f->val_len = r->scratch.len - voff;
            /* offsets now; pointers once the buffer stops moving */
            f->key = (const char *)(uintptr_t)koff;
            f->val = (const char *)(uintptr_t)voff;
        }
        if (osc_buf_addc(&r->scratch, '}'))
            return malformed(r, rec, err, "record too large");
        for (size_t i = 0; i < (size_t)n; i++) {
            r->fields[i].key = r->scratch.data + (uintptr_t)r->fields[i].key;
            r->fields[i].val = r->scratch.data + (uintptr_t)r->fields[i].val;
        }
        rec->json = r->scratch.data;
        rec->json_len = r->scratch.len;
        rec->fields = r->fields;
        rec->nfields = (size_t)n;
        return 1;
    }
}

/* ---- dispatch ---------------------------------------------------------------- */

int osc_records_next(struct osc_records_reader *r, struct osc_record *rec, struct osc_err *err)
{
    memset(rec, 0, sizeof(*rec));
    rec->file = r->name;
    if (r->done)
        return 0;
    skip_bom(r);
    if (r->fmt == OSC_RECORDS_AUTO) {
        int c = peek_nonws(r);
        if (c < -1)
            return fatal(r, c + 1000, err);
        r->fmt = c == '['              ? OSC_RECORDS_JSON
                 : c == '{' || c == -1 ? OSC_RECORDS_JSONL
                                       : OSC_RECORDS_CSV;
        /* peek_nonws consumed leading blank lines, harmless for every format */
    }
    switch (r->fmt) {
    case OSC_RECORDS_JSON: return next_json_array(r, rec, err);
    case OSC_RECORDS_CSV: return next_csv(r, rec, err);
    default: return next_jsonl(r, rec, err);
    }
}
