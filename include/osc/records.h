/*
 * records.h - streaming record readers (JSON Lines, JSON array, CSV, dead
 * letters), the compact JSON text they produce, and the dead-letter writer.
 *
 * A reader holds one fixed-size input window (it grows only up to the
 * record cap) and one scratch buffer, so memory stays constant whatever
 * the input size. Each record comes out as a compact JSON object (no
 * insignificant whitespace) with a field index pointing into that text:
 * consumers copy the raw value text instead of building a DOM, which is
 * what makes the hot path cheap. Records are only valid until the next
 * call on the reader.
 *
 * Every record carries where it came from (file, 1-based line, byte
 * offset of its first byte), including malformed ones, so nothing is ever
 * skipped silently and a later checkpoint can resume by offset.
 */
#ifndef OSC_RECORDS_H
#define OSC_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "osc/buf.h"
#include "osc/err.h"

enum osc_records_format {
    OSC_RECORDS_AUTO = 0,  /* from the file name, else JSON Lines */
    OSC_RECORDS_JSONL,     /* one JSON object per line */
    OSC_RECORDS_JSON,      /* one JSON array of objects */
    OSC_RECORDS_CSV,       /* RFC 4180 with a header row */
    OSC_RECORDS_DEADLETTER /* osconnect dead-letter lines: "record" is unwrapped */
};

#define OSC_RECORDS_MAX_FIELDS        512        /* top-level keys per record */
#define OSC_RECORDS_MAX_DEPTH         64         /* nesting of values */
#define OSC_RECORDS_DEFAULT_MAX_BYTES (1u << 20) /* one record's input text */

/* One top-level member; both spans point into osc_record.json. */
struct osc_record_field {
    const char *key; /* the key's JSON string body (escapes kept), not NUL-terminated */
    size_t key_len;
    const char *val; /* the compact JSON text of the value */
    size_t val_len;
};

struct osc_record {
    const char *file; /* input name for messages; borrowed from the reader */
    uint64_t offset;  /* byte offset of the record's first byte in the input */
    uint64_t line;    /* 1-based line where the record starts */
    const char *json; /* compact JSON object, NUL-terminated; NULL when malformed */
    size_t json_len;
    const struct osc_record_field *fields;
    size_t nfields;
    const char *raw; /* the input text of the record (bounded), for dead letters */
    size_t raw_len;
};

struct osc_records_reader;

/* "jsonl|json|csv|deadletter" (also "ndjson", "auto"); 0 or OSC_EINVAL. */
int osc_records_format_parse(const char *s, enum osc_records_format *out);
const char *osc_records_format_name(enum osc_records_format f);

/*
 * Open path ("-" or NULL: stdin, which is borrowed, not closed). format
 * AUTO picks from the extension (.jsonl/.ndjson, .json, .csv, .dead.jsonl)
 * and, for JSON Lines, switches to dead-letter unwrapping when the first
 * record looks like one. max_record caps one record's text (0: default).
 * Returns a reader the caller closes with osc_records_close(), or NULL with
 * err set (OSC_ENOINPUT when the file cannot be opened).
 */
struct osc_records_reader *osc_records_open(const char *path, enum osc_records_format format,
                                            size_t max_record, struct osc_err *err);
/* Same over memory (copied); name is used in messages. */
struct osc_records_reader *osc_records_open_mem(const char *data, size_t len, const char *name,
                                                enum osc_records_format format,
                                                struct osc_err *err);
void osc_records_close(struct osc_records_reader *r);

/*
 * Next record. Returns 1 with *rec filled, 0 at the end of the input,
 * OSC_EDATA for a malformed record (err says "file:line: reason"; rec has
 * file, line, offset and raw set, json NULL; the next call continues after
 * it), or OSC_EIO / OSC_ENOMEM / OSC_EINTERRUPTED (fatal: stop reading). rec stays valid
 * until the next call.
 */
int osc_records_next(struct osc_records_reader *r, struct osc_record *rec, struct osc_err *err);

/*
 * Make reads from a pipe or a terminal interruptible (process-wide): once
 * *flag is non-zero, a read waiting for input ends and osc_records_next()
 * returns OSC_EINTERRUPTED (the reader is then done, and incomplete). The
 * flag is set by a signal handler installed without SA_RESTART, so the
 * blocked read(2) returns EINTR. Regular files are not affected: their
 * reads do not block, and the caller stops between records. flag is
 * borrowed; NULL turns this off.
 */
void osc_records_set_interrupt(volatile int *flag);

/* Bytes consumed so far, and the input size (-1 when not a regular file). */
uint64_t osc_records_bytes_read(const struct osc_records_reader *r);
int64_t osc_records_size(const struct osc_records_reader *r);
/* The format in use (after auto-detection, which happens on the first record). */
enum osc_records_format osc_records_format_of(const struct osc_records_reader *r);
const char *osc_records_name(const struct osc_records_reader *r);
/* Line number of the next unread byte. */
uint64_t osc_records_line(const struct osc_records_reader *r);
/*
 * 1 once the reader stopped before the end of its input: a read error, or a
 * malformed structure after which nothing more can be framed (a broken JSON
 * array, an unreadable CSV header). What follows was never returned, so a
 * consumer must not treat the input as delivered in full.
 */
int osc_records_incomplete(const struct osc_records_reader *r);
/*
 * Before the first osc_records_next(): continue at byte offset (the start
 * of a record, from a checkpoint), counting lines from line. Only for JSON
 * Lines and dead-letter files opened by path; returns 0, or OSC_EINVAL
 * when the reader cannot seek (the caller then reads and skips instead).
 */
int osc_records_seek(struct osc_records_reader *r, uint64_t offset, uint64_t line);

/* ---- compact JSON text helpers ------------------------------------------ */

/* The value of the first field named key (plain ASCII name), or NULL. */
const struct osc_record_field *osc_record_get(const struct osc_record *rec, const char *key);

/*
 * Append the text of a JSON value to out: a string is unescaped, a number
 * or boolean is copied as written, null and an empty string append nothing.
 * Returns 1 when something was appended, 0 when empty/null, negative on
 * OSC_ETOOBIG / OSC_ENOMEM. Objects and arrays append their JSON text.
 */
int osc_json_value_text(const char *val, size_t len, struct osc_buf *out);

/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int osc_json_utf8_valid(const char *s, size_t len);

/* Append s as a JSON string literal (quotes included) to out; bytes that are not
 * valid UTF-8 become U+FFFD, so the result is always valid JSON. */
int osc_json_quote(struct osc_buf *out, const char *s, size_t len);

/*
 * Validate one JSON value at text and append it to out without
 * insignificant whitespace. *used is the number of bytes consumed (leading
 * whitespace included). Returns 0 or OSC_EDATA with err explaining (no
 * file or line: the caller adds them).
 */
int osc_json_compact(const char *text, size_t len, size_t *used, struct osc_buf *out,
                     struct osc_err *err);

/* ---- dead letters --------------------------------------------------------- */

struct osc_deadletter;

/*
 * A dead-letter file, opened on the first write, so a clean run leaves none.
 * path and destination are copied. Caller frees with osc_deadletter_close().
 * Returns NULL on ENOMEM.
 */
struct osc_deadletter *osc_deadletter_new(const char *path, const char *destination);
void osc_deadletter_close(struct osc_deadletter *d);

/*
 * Register a file the run reads (NULL or "-": stdin), by device and inode,
 * so dead letters never go to it: when the dead-letter path is that file (a
 * resend of NAME.dead.jsonl), the first write creates NAME.dead.N.jsonl
 * beside it instead (the first free N >= 2, O_EXCL), logs that once at WARN,
 * and osc_deadletter_path() names it. Call it for every input before the
 * first write; called once lines are written to that very file, the lines
 * after go to the new file. A path that cannot be stat'ed, or is not a
 * regular file, is ignored. Returns 0 or OSC_ENOMEM.
 */
int osc_deadletter_avoid_input(struct osc_deadletter *d, const char *input_path);

/*
 * Append one line: {"record": <json, or raw as a string when json is NULL>,
 * "destination", "status" (null when 0), "response" (excerpt, bounded),
 * "reason", "attempts", "source": {"file", "line", "offset"}}, with every
 * form of every registered secret replaced by *** (osc_redact() on the whole
 * line; should that break the JSON, every piece is redacted before it is
 * quoted and the record is written as a string).
 *
 * The first call opens the file (O_APPEND | O_NOFOLLOW, created 0600) and
 * fails with OSC_EIO, nothing written, when it is a symbolic link, not a
 * regular file, or an existing file group or others may access. A failed or
 * short write (ENOSPC, EFBIG) cuts the file back to its size before the line
 * and returns OSC_EIO, so the file always ends with a complete line.
 * Returns 0, OSC_EIO, OSC_ETOOBIG (line over 8 MiB) or OSC_ENOMEM; err says
 * why, naming the file.
 */
int osc_deadletter_write(struct osc_deadletter *d, const char *json, size_t json_len,
                         const char *raw, size_t raw_len, const char *file, uint64_t line,
                         uint64_t offset, long status, const char *response, size_t response_len,
                         const char *reason, unsigned attempts, struct osc_err *err);
/* Lines written so far, and the path of the file written (see avoid_input). */
uint64_t osc_deadletter_count(const struct osc_deadletter *d);
const char *osc_deadletter_path(const struct osc_deadletter *d);

#endif
