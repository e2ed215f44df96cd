/*
 * deadletter.c - the dead-letter file: one JSON line per record that could
 * not be delivered, in a shape `osconnect send` reads back (it unwraps
 * "record").
 *
 * Invariants:
 * - The file is opened on the first write, so a clean run leaves none, with
 *   O_APPEND | O_NOFOLLOW and created 0600. A symbolic link, a file that is
 *   not regular, and an existing file that group or others may access are
 *   refused: dead letters hold personal data.
 * - It is never a file this run reads (same device and inode as an input
 *   registered with osc_deadletter_avoid_input()): a resend whose records
 *   fail again would append to the file it is reading and feed on itself.
 *   Such a run writes to a new NAME.dead.N.jsonl beside it instead.
 * - Each line is built whole in a bounded buffer (each string redacted
 *   before it is quoted), redacted again as a whole (every form of every
 *   secret, see osc_redact()), and appended with write(2) under an exclusive
 *   flock(). A failed or short write is cut back (ftruncate) to the size
 *   before the line, so the file always ends with a complete line; a file
 *   found ending mid-line gets a newline first.
 * - Response excerpts are bounded (RESPONSE_MAX), redacted before they are
 *   cut, so a cut cannot leave part of a secret behind.
 */
#include "osc/records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "osc/log.h"
#include "records_int.h"

#define RESPONSE_MAX 1024
#define REDACT_SLACK 4096 /* response bytes past the cut read for redaction */
#define LINE_CAP     (8u * 1024 * 1024)
#define MAX_BESIDE   9999 /* NAME.dead.2.jsonl .. NAME.dead.9999.jsonl */

struct file_id {
    dev_t dev;
    ino_t ino;
};

struct osc_deadletter {
    char *path;        /* as configured */
    char *used;        /* the file written instead of path (self-feeding), or NULL */
    char *destination; /* for the "destination" member */
    int fd;            /* -1 until the first write */
    struct file_id open_id;
    struct file_id *inputs; /* files this run reads */
    size_t ninputs;
    uint64_t count;
    struct osc_buf line;
    struct osc_buf check; /* scratch of the post-redaction check */
    struct osc_buf piece; /* scratch of one redacted piece (fallback line) */
    char *excerpt;        /* RESPONSE_MAX + REDACT_SLACK + 1 */
};

/* Caller frees with osc_deadletter_close(); NULL on ENOMEM. */
struct osc_deadletter *osc_deadletter_new(const char *path, const char *destination)
{
    struct osc_deadletter *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->fd = -1;
    d->path = strdup(path);
    d->destination = strdup(destination ? destination : "");
    d->excerpt = malloc(RESPONSE_MAX + REDACT_SLACK + 1);
    osc_buf_init(&d->line, LINE_CAP);
    osc_buf_init(&d->check, LINE_CAP);
    osc_buf_init(&d->piece, LINE_CAP);
    if (!d->path || !d->destination || !d->excerpt) {
        osc_deadletter_close(d);
        return NULL;
    }
    return d;
}

void osc_deadletter_close(struct osc_deadletter *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d->path);
    free(d->used);
    free(d->destination);
    free(d->inputs);
    free(d->excerpt);
    osc_buf_free(&d->line);
    osc_buf_free(&d->check);
    osc_buf_free(&d->piece);
    free(d);
}

uint64_t osc_deadletter_count(const struct osc_deadletter *d) { return d ? d->count : 0; }

const char *osc_deadletter_path(const struct osc_deadletter *d)
{
    return d ? (d->used ? d->used : d->path) : NULL;
}

/* ---- opening ------------------------------------------------------------------ */

static int is_input(const struct osc_deadletter *d, const struct stat *st)
{
    for (size_t i = 0; i < d->ninputs; i++)
        if (d->inputs[i].dev == st->st_dev && d->inputs[i].ino == st->st_ino)
            return 1;
    return 0;
}

/*
 * A file that ends mid-line (a crash of another writer) gets a newline, so
 * our first line is not glued to its torn one.
 */
static int end_line(int fd, off_t size)
{
    char c;

    if (size <= 0 || pread(fd, &c, 1, size - 1) != 1 || c == '\n')
        return 0;
    return write(fd, "\n", 1) == 1 ? 0 : -1;
}

/*
 * NAME.dead.jsonl -> NAME.dead.N.jsonl (NAME.jsonl -> NAME.N.jsonl, other
 * names get .N), the first N >= 2 that does not exist yet: O_EXCL makes the
 * file new, so it cannot be an input. Sets d->used and d->fd.
 */
static int open_beside(struct osc_deadletter *d, struct osc_err *err)
{
    size_t plen = strlen(d->path), stem = plen;
    const char *ext = "";
    char *name;
    int fd = -1;

    if (plen > 6 && strcmp(d->path + plen - 6, ".jsonl") == 0) {
        stem = plen - 6;
        ext = ".jsonl";
    }
    if (!(name = malloc(plen + 16)))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    for (int n = 2; n <= MAX_BESIDE; n++) {
        snprintf(name, plen + 16, "%.*s.%d%s", (int)stem, d->path, n, ext);
        fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int rc = osc_err_set(err, OSC_EIO,
                             "dead-letter file %s is an input of this run, and no new file "
                             "beside it can be created (%s): choose another dead-letter file",
                             d->path, errno == EEXIST ? "all names taken" : strerror(errno));
        free(name);
        return rc;
    }
    {
        struct stat st;
        if (fstat(fd, &st) == 0) {
            d->open_id.dev = st.st_dev;
            d->open_id.ino = st.st_ino;
        }
    }
    OSC_LOG_WARN("deadletter",
                 "dead-letter file %s is an input of this run; writing dead letters to %s "
                 "instead, so records that fail again are not read again",
                 d->path, name);
    free(d->used);
    d->used = name;
    d->fd = fd;
    return 0;
}

static int open_file(struct osc_deadletter *d, struct osc_err *err)
{
    /* O_NONBLOCK: opening a FIFO must not hang; it is refused below. O_RDWR: end_line()
     * reads the last byte. */
    int fd = open(d->path, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    struct stat st;
    int rc = 0, fl;

    if (fd < 0) {
        if (errno == ELOOP)
            return osc_err_set(err, OSC_EIO,
                               "dead-letter file %s is a symbolic link; it is not followed: "
                               "give the file itself",
                               d->path);
        if (errno == ENXIO)
            return osc_err_set(err, OSC_EIO, "dead-letter file %s is not a regular file", d->path);
        return osc_err_set(err, OSC_EIO, "cannot open dead-letter file %s: %s", d->path,
                           strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rc = osc_err_set(err, OSC_EIO, "cannot open dead-letter file %s: %s", d->path,
                         strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = osc_err_set(err, OSC_EIO, "dead-letter file %s is not a regular file", d->path);
        goto out;
    }
    if (is_input(d, &st)) {
        close(fd);
        return open_beside(d, err);
    }
    if (st.st_mode & 077) {
        rc = osc_err_set(err, OSC_EIO,
                         "dead-letter file %s has mode %04o; it holds personal data: chmod 600 "
                         "%s or choose another file",
                         d->path, (unsigned)(st.st_mode & 07777), d->path);
        goto out;
    }
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
        end_line(fd, st.st_size) != 0) {
        rc = osc_err_set(err, OSC_EIO, "cannot open dead-letter file %s: %s", d->path,
                         strerror(errno));
        goto out;
    }
    d->open_id.dev = st.st_dev;
    d->open_id.ino = st.st_ino;
    d->fd = fd;
    return 0;
out:
    close(fd);
    return rc;
}

int osc_deadletter_avoid_input(struct osc_deadletter *d, const char *input_path)
{
    struct file_id *v;
    struct stat st;
    int rc;

    rc = !input_path || strcmp(input_path, "-") == 0 ? fstat(STDIN_FILENO, &st)
                                                     : stat(input_path, &st);
    /* a file that cannot be read is no input; only a regular file can be the dead letters */
    if (rc != 0 || !S_ISREG(st.st_mode) || is_input(d, &st))
        return 0;
    if (!(v = realloc(d->inputs, (d->ninputs + 1) * sizeof(*v))))
        return OSC_ENOMEM;
    d->inputs = v;
    d->inputs[d->ninputs].dev = st.st_dev;
    d->inputs[d->ninputs].ino = st.st_ino;
    d->ninputs++;
    if (d->fd >= 0 && d->open_id.dev == st.st_dev && d->open_id.ino == st.st_ino) {
        /* already writing to it: the next write opens again and goes to a new file */
        close(d->fd);
        d->fd = -1;
    }
    return 0;
}

/* ---- one line --------------------------------------------------------------- */

/*
 * Redact the len bytes at buf (buf[len] is NUL) piece by piece, since a raw
 * record may hold NUL bytes and osc_redact() stops at one. Returns the new
 * length (redaction only shortens); *hits counts replacements.
 */
static size_t redact_bytes(char *buf, size_t len, size_t *hits)
{
    size_t i = 0;

    while (i <= len) {
        size_t seg = strlen(buf + i), now;
        *hits += osc_redact(buf + i, seg + 1);
        now = strlen(buf + i);
        memmove(buf + i + now, buf + i + seg, len - (i + seg) + 1);
        len -= seg - now;
        i += now + 1;
    }
    return len;
}

/*
 * Append text as a JSON string, redacted first: text from outside (an API's
 * answer, a line that could not be read) may hold a secret already
 * JSON-escaped, which quoting would escape once more, past what the
 * whole-line redaction knows. uform (the fallback line): every '"', '\\' and
 * control character is written as \u00XX, so no escape of ours can combine
 * with the text after it into a form of a secret (as "\n" + "abc..." reads
 * "nabc...").
 */
static int quote_redacted(struct osc_deadletter *d, struct osc_buf *b, const char *text, size_t len,
                          int uform)
{
    struct osc_buf *q = &d->check; /* free while the line is built */
    size_t hits = 0;
    int rc;

    osc_buf_reset(&d->piece);
    osc_buf_reset(q);
    if ((rc = osc_buf_add(&d->piece, text, len)))
        return rc;
    d->piece.len = redact_bytes(d->piece.data, d->piece.len, &hits);
    if (!uform)
        return osc_json_quote(b, d->piece.data, d->piece.len);
    if ((rc = osc_json_quote(q, d->piece.data, d->piece.len)))
        return rc;
    for (size_t i = 0; i < q->len && rc == 0; i++) {
        const char *u = NULL;
        if (q->data[i] != '\\') {
            rc = osc_buf_addc(b, q->data[i]);
            continue;
        }
        switch (q->data[++i]) {
        case '"': u = "\\u0022"; break;
        case '\\': u = "\\u005c"; break;
        case 'n': u = "\\u000a"; break;
        case 'r': u = "\\u000d"; break;
        case 't': u = "\\u0009"; break;
        default: u = NULL; /* \u00XX already */
        }
        rc = u ? osc_buf_add(b, u, 6) : osc_buf_add(b, q->data + i - 1, 2);
    }
    return rc;
}

/* 1 when text[0, len) is one JSON value and nothing else (a NUL escape allowed). */
static int json_valid(struct osc_deadletter *d, const char *text, size_t len)
{
    const char *why = NULL;
    size_t used = 0;
    int nul = 0;

    osc_buf_reset(&d->check);
    return json_compact_object(text, len, &used, &d->check, NULL, 0, NULL, NULL, &nul, &why) == 0 &&
           used == len;
}

/*
 * The record in the fallback line: its JSON redacted on its own stays the
 * record when it is still JSON; otherwise it becomes a string.
 */
static int fallback_record(struct osc_deadletter *d, struct osc_buf *b, const char *json,
                           size_t len)
{
    size_t hits = 0;
    int rc;

    osc_buf_reset(&d->piece);
    if ((rc = osc_buf_add(&d->piece, json, len)))
        return rc;
    d->piece.len = redact_bytes(d->piece.data, d->piece.len, &hits);
    if (json_valid(d, d->piece.data, d->piece.len))
        return osc_buf_add(b, d->piece.data, d->piece.len);
    return quote_redacted(d, b, json, len, 1);
}

struct dl_line {
    const char *json, *raw, *file, *response, *reason;
    size_t json_len, raw_len, response_len;
    uint64_t line, offset;
    long status;
    unsigned attempts;
};

/*
 * Build the line into d->line: every string piece redacted before it is
 * quoted, the record's JSON as it is (the whole line is redacted after).
 * uform 1 (the fallback, when redacting the whole line broke its JSON: a
 * form of a secret spanning JSON syntax): the record is written as a
 * string and every string \u-quoted, so the line is valid whatever the
 * secrets look like.
 */
static int build_line(struct osc_deadletter *d, const struct dl_line *l, int uform)
{
    struct osc_buf *b = &d->line;
    const char *resp = d->excerpt;
    size_t rlen = 0;
    int rc = 0;

    if (l->response && l->response_len) {
        /* redact a window past the cut, then cut: no half secret is left at the end */
        size_t n = l->response_len > RESPONSE_MAX + REDACT_SLACK ? RESPONSE_MAX + REDACT_SLACK
                                                                 : l->response_len;
        memcpy(d->excerpt, l->response, n);
        d->excerpt[n] = '\0';
        osc_redact(d->excerpt, n + 1);
        rlen = strlen(d->excerpt); /* a NUL ends the excerpt */
        if (rlen > RESPONSE_MAX) {
            rlen = RESPONSE_MAX;
            /* cut on a UTF-8 boundary so the excerpt stays valid text */
            while (rlen > 0 && ((unsigned char)resp[rlen] & 0xC0) == 0x80)
                rlen--;
        }
    }
    osc_buf_reset(b);
    rc |= osc_buf_adds(b, "{\"record\":");
    if (l->json && !uform)
        rc |= osc_buf_add(b, l->json, l->json_len);
    else if (l->json)
        rc |= fallback_record(d, b, l->json, l->json_len);
    else
        rc |= quote_redacted(d, b, l->raw ? l->raw : "", l->raw ? l->raw_len : 0, uform);
    rc |= osc_buf_adds(b, ",\"destination\":");
    rc |= quote_redacted(d, b, d->destination, strlen(d->destination), uform);
    if (l->status > 0)
        rc |= osc_buf_printf(b, ",\"status\":%ld", l->status);
    else
        rc |= osc_buf_adds(b, ",\"status\":null");
    rc |= osc_buf_adds(b, ",\"response\":");
    if (rlen && !osc_json_utf8_valid(resp, rlen))
        rc |= osc_buf_adds(b, "\"(binary response)\"");
    else if (rlen)
        rc |= quote_redacted(d, b, resp, rlen, uform);
    else
        rc |= osc_buf_adds(b, "null");
    rc |= osc_buf_adds(b, ",\"reason\":");
    rc |=
        quote_redacted(d, b, l->reason ? l->reason : "", l->reason ? strlen(l->reason) : 0, uform);
    rc |= osc_buf_printf(b, ",\"attempts\":%u,\"source\":{\"file\":", l->attempts);
    rc |= quote_redacted(d, b, l->file ? l->file : "", l->file ? strlen(l->file) : 0, uform);
    rc |= osc_buf_printf(b, ",\"line\":%llu,\"offset\":%llu}}\n", (unsigned long long)l->line,
                         (unsigned long long)l->offset);
    return rc;
}

/* 1 when the line (newline included) is one JSON value and nothing else. */
static int line_valid(struct osc_deadletter *d)
{
    return json_valid(d, d->line.data, d->line.len - 1);
}

/*
 * Append buf[0, n) whole or not at all: a failed or short write (ENOSPC,
 * EFBIG) cuts the file back to its size before the line.
 */
static int append(struct osc_deadletter *d, const char *p, size_t n, struct osc_err *err)
{
    const char *name = osc_deadletter_path(d);
    int locked = flock(d->fd, LOCK_EX) == 0, rc = 0;
    struct stat st;

    if (fstat(d->fd, &st) != 0) {
        rc = osc_err_set(err, OSC_EIO, "cannot write dead-letter file %s: %s", name,
                         strerror(errno));
        goto out;
    }
    while (n > 0) {
        ssize_t w = write(d->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            if (ftruncate(d->fd, st.st_size) != 0)
                rc = osc_err_set(err, OSC_EIO,
                                 "cannot write dead-letter file %s: %s; cutting back the "
                                 "partial line failed too (%s)",
                                 name, strerror(e), strerror(errno));
            else
                rc = osc_err_set(err, OSC_EIO, "cannot write dead-letter file %s: %s", name,
                                 strerror(e));
            goto out;
        }
        p += w;
        n -= (size_t)w;
    }
out:
    if (locked)
        flock(d->fd, LOCK_UN);
    return rc;
}

int osc_deadletter_write(struct osc_deadletter *d, const char *json, size_t json_len,
                         const char *raw, size_t raw_len, const char *file, uint64_t line,
                         uint64_t offset, long status, const char *response, size_t response_len,
                         const char *reason, unsigned attempts, struct osc_err *err)
{
    const struct dl_line l = {json,    raw,          file, response, reason, json_len,
                              raw_len, response_len, line, offset,   status, attempts};
    struct osc_buf *b = &d->line;
    int rc;

    if (d->fd < 0 && (rc = open_file(d, err)))
        return rc;
    if (build_line(d, &l, 0))
        goto too_big;
    /* no NUL inside: every string was quoted (a NUL is \u0000) and json is JSON text */
    if (osc_redact(b->data, b->len + 1) > 0) {
        b->len = strlen(b->data);
        if (!line_valid(d)) {
            if (build_line(d, &l, 1))
                goto too_big;
            /* cannot happen with the pieces redacted and \u-quoted; never write it anyway */
            if (osc_redact(b->data, b->len + 1) > 0 && (b->len = strlen(b->data), !line_valid(d)))
                return osc_err_set(err, OSC_EIO,
                                   "dead letter for %s:%llu not written: it cannot be shown "
                                   "without a secret",
                                   file ? file : "<input>", (unsigned long long)line);
        }
    }
    if ((rc = append(d, b->data, b->len, err)))
        return rc;
    d->count++;
    return 0;
too_big:
    return osc_err_set(err, OSC_ETOOBIG, "dead letter for %s:%llu is too large",
                       file ? file : "<input>", (unsigned long long)line);
}
