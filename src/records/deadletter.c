/*
 * deadletter.c - the dead-letter file: one JSON line per record that could
 * not be delivered, in a shape `osconnect send` reads back (it unwraps
 * "record").
 *
 * Invariants: the file is opened (append, created 0600) on the first
 * write, so a clean run leaves no file; each line is built whole in a
 * bounded buffer and written with one fwrite, then flushed, so a crash
 * never leaves half a line behind another process's view; response
 * excerpts are bounded (RESPONSE_MAX) and redacted.
 */
#include "osc/records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osc/log.h"

#define RESPONSE_MAX 1024
#define LINE_CAP     (8u * 1024 * 1024)

struct osc_deadletter {
    char *path;
    char *destination;
    FILE *f;
    uint64_t count;
    struct osc_buf line;
};

/* Caller frees with osc_deadletter_close(); NULL on ENOMEM. */
struct osc_deadletter *osc_deadletter_new(const char *path, const char *destination)
{
    struct osc_deadletter *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->path = strdup(path);
    d->destination = strdup(destination ? destination : "");
    osc_buf_init(&d->line, LINE_CAP);
    if (!d->path || !d->destination) {
        osc_deadletter_close(d);
        return NULL;
    }
    return d;
}

void osc_deadletter_close(struct osc_deadletter *d)
{
    if (!d)
        return;
    if (d->f)
        fclose(d->f);
    free(d->path);
    free(d->destination);
    osc_buf_free(&d->line);
    free(d);
}

uint64_t osc_deadletter_count(const struct osc_deadletter *d) { return d ? d->count : 0; }
const char *osc_deadletter_path(const struct osc_deadletter *d) { return d ? d->path : NULL; }

static int open_file(struct osc_deadletter *d, struct osc_err *err)
{
    int fd = open(d->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

    if (fd < 0 || !(d->f = fdopen(fd, "a"))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return osc_err_set(err, OSC_EIO, "cannot open dead-letter file %s: %s", d->path,
                           strerror(e));
    }
    return 0;
}

int osc_deadletter_write(struct osc_deadletter *d, const char *json, size_t json_len,
                         const char *raw, size_t raw_len, const char *file, uint64_t line,
                         uint64_t offset, long status, const char *response, size_t response_len,
                         const char *reason, unsigned attempts, struct osc_err *err)
{
    struct osc_buf *b = &d->line;
    char excerpt[RESPONSE_MAX + 1];
    int rc = 0;

    if (!d->f && (rc = open_file(d, err)))
        return rc;
    osc_buf_reset(b);
    rc |= osc_buf_adds(b, "{\"record\":");
    if (json)
        rc |= osc_buf_add(b, json, json_len);
    else
        rc |= osc_json_quote(b, raw ? raw : "", raw ? raw_len : 0);
    rc |= osc_buf_adds(b, ",\"destination\":");
    rc |= osc_json_quote(b, d->destination, strlen(d->destination));
    if (status > 0)
        rc |= osc_buf_printf(b, ",\"status\":%ld", status);
    else
        rc |= osc_buf_adds(b, ",\"status\":null");
    rc |= osc_buf_adds(b, ",\"response\":");
    if (response && response_len) {
        size_t n = response_len > RESPONSE_MAX ? RESPONSE_MAX : response_len;
        /* cut on a UTF-8 boundary so the excerpt stays valid text */
        while (n > 0 && n < response_len && ((unsigned char)response[n] & 0xC0) == 0x80)
            n--;
        memcpy(excerpt, response, n);
        excerpt[n] = '\0';
        osc_redact(excerpt, sizeof(excerpt));
        n = strlen(excerpt);
        if (!osc_json_utf8_valid(excerpt, n))
            rc |= osc_buf_adds(b, "\"(binary response)\"");
        else
            rc |= osc_json_quote(b, excerpt, n);
    } else {
        rc |= osc_buf_adds(b, "null");
    }
    rc |= osc_buf_adds(b, ",\"reason\":");
    rc |= osc_json_quote(b, reason ? reason : "", reason ? strlen(reason) : 0);
    rc |= osc_buf_printf(b, ",\"attempts\":%u,\"source\":{\"file\":", attempts);
    rc |= osc_json_quote(b, file ? file : "", file ? strlen(file) : 0);
    rc |= osc_buf_printf(b, ",\"line\":%llu,\"offset\":%llu}}\n", (unsigned long long)line,
                         (unsigned long long)offset);
    if (rc)
        return osc_err_set(err, OSC_ETOOBIG, "dead letter for %s:%llu is too large", file,
                           (unsigned long long)line);
    if (fwrite(b->data, 1, b->len, d->f) != b->len || fflush(d->f) != 0)
        return osc_err_set(err, OSC_EIO, "cannot write dead-letter file %s: %s", d->path,
                           strerror(errno));
    d->count++;
    return 0;
}
