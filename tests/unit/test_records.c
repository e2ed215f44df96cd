/*
 * test_records.c - the record readers: JSON Lines, JSON array, CSV, dead
 * letters; positions (line, offset) of every record; malformed records
 * reported with file:line and skipped while the rest continues; records
 * that span the read window; the dead-letter writer's line shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "osc/buf.h"
#include "osc/log.h"
#include "osc/records.h"

struct got {
    char json[64][512];
    uint64_t line[64], offset[64];
    int ok[64];
    char err[64][256];
    int n;
};

static void read_all(struct osc_records_reader *r, struct got *g)
{
    struct osc_record rec;
    struct osc_err err;
    int rc;

    memset(g, 0, sizeof(*g));
    while (g->n < 64 && (rc = osc_records_next(r, &rec, &err)) != 0) {
        g->line[g->n] = rec.line;
        g->offset[g->n] = rec.offset;
        if (rc == 1) {
            g->ok[g->n] = 1;
            snprintf(g->json[g->n], sizeof(g->json[0]), "%s", rec.json);
        } else {
            assert_int_equal(rc, OSC_EDATA);
            snprintf(g->err[g->n], sizeof(g->err[0]), "%s", err.msg);
        }
        g->n++;
    }
}

static void read_mem(const char *text, const char *name, enum osc_records_format f, struct got *g)
{
    struct osc_records_reader *r = osc_records_open_mem(text, strlen(text), name, f, NULL);
    assert_non_null(r);
    read_all(r, g);
    osc_records_close(r);
}

static void test_jsonl(void **state)
{
    struct got g;
    (void)state;
    read_mem("{\"a\": 1, \"b\" : [1, 2, {\"c\": \"x y\"}]}\n"
             "\n"
             "  {\"e\":\"\\u00e9\\n\",\"n\":null,\"t\":true,\"f\":-1.5e3}\r\n"
             "{\"bad\": }\n"
             "[1,2]\n"
             "{\"tail\":\"no newline\"}",
             "in.jsonl", OSC_RECORDS_AUTO, &g);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.json[0], "{\"a\":1,\"b\":[1,2,{\"c\":\"x y\"}]}");
    assert_int_equal(g.line[0], 1);
    assert_int_equal(g.offset[0], 0);
    assert_string_equal(g.json[1], "{\"e\":\"\\u00e9\\n\",\"n\":null,\"t\":true,\"f\":-1.5e3}");
    assert_int_equal(g.line[1], 3);
    assert_int_equal(g.offset[1], 38);
    assert_false(g.ok[2]);
    assert_int_equal(g.line[2], 4);
    assert_non_null(strstr(g.err[2], "in.jsonl:4: unexpected character"));
    assert_false(g.ok[3]);
    assert_non_null(strstr(g.err[3], "in.jsonl:5: expected a JSON object"));
    assert_string_equal(g.json[4], "{\"tail\":\"no newline\"}");
    assert_int_equal(g.line[4], 6);
}

static void test_json_errors(void **state)
{
    struct got g;
    (void)state;
    read_mem("{\"a\":\"\x01\"}\n{\"a\":\"\xff\"}\n{\"a\":01}\n{\"a\":1} x\n{\"a\":\"\\q\"}\n",
             "e.jsonl", OSC_RECORDS_JSONL, &g);
    assert_int_equal(g.n, 5);
    assert_non_null(strstr(g.err[0], "e.jsonl:1: control character"));
    assert_non_null(strstr(g.err[1], "e.jsonl:2: invalid UTF-8"));
    assert_non_null(strstr(g.err[2], "e.jsonl:3:"));
    assert_non_null(strstr(g.err[3], "e.jsonl:4: unexpected text after the record"));
    assert_non_null(strstr(g.err[4], "e.jsonl:5: bad escape"));
}

static void test_json_array(void **state)
{
    struct got g;
    (void)state;
    read_mem(
        "\xEF\xBB\xBF[\n  {\"a\": 1},\n  {\"b\": \"],}\"},\n  {\"c\": [1,\n 2]},\n  {\"d\": }, \n"
        "  {\"e\": 5}\n]\n",
        "in.json", OSC_RECORDS_AUTO, &g);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.json[0], "{\"a\":1}");
    assert_int_equal(g.line[0], 2);
    assert_string_equal(g.json[1], "{\"b\":\"],}\"}");
    assert_int_equal(g.line[1], 3);
    assert_string_equal(g.json[2], "{\"c\":[1,2]}");
    assert_int_equal(g.line[2], 4);
    assert_false(g.ok[3]);
    assert_non_null(strstr(g.err[3], "in.json:6:"));
    assert_string_equal(g.json[4], "{\"e\":5}");
    assert_int_equal(g.line[4], 7);

    read_mem("[{\"a\":1} {\"b\":2}]", "bad.json", OSC_RECORDS_JSON, &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.json[0], "{\"a\":1}");
    assert_non_null(strstr(g.err[1], "bad.json:1: expected ',' or ']'"));
    read_mem("[{\"a\":1}\n\"x\" {\"b\":2}]", "bad2.json", OSC_RECORDS_JSON, &g);
    assert_int_equal(g.n, 2);
    assert_true(g.ok[0]);
    assert_non_null(strstr(g.err[1], "bad2.json:2: expected ',' or ']'"));
    read_mem("[{\"a\":1},", "cut.json", OSC_RECORDS_JSON, &g);
    assert_int_equal(g.n, 2);
    assert_non_null(strstr(g.err[1], "unterminated JSON array"));
    read_mem("  ", "empty.json", OSC_RECORDS_JSON, &g);
    assert_int_equal(g.n, 0);
}

static void test_csv(void **state)
{
    struct got g;
    (void)state;
    read_mem("\xEF\xBB\xBF"
             "employee_id,name,note\r\n"
             "1,\"Smith, Alice\",\"said \"\"hi\"\"\"\r\n"
             "\r\n"
             "2,Bob,\"two\nlines\"\n"
             "3,short\n"
             "4,\"bad\"x,z\n"
             "5,Éva,ünï\n",
             "hr.csv", OSC_RECORDS_AUTO, &g);
    assert_int_equal(g.n, 5);
    assert_string_equal(
        g.json[0],
        "{\"employee_id\":\"1\",\"name\":\"Smith, Alice\",\"note\":\"said \\\"hi\\\"\"}");
    assert_int_equal(g.line[0], 2);
    assert_int_equal(g.offset[0], 26);
    assert_string_equal(g.json[1],
                        "{\"employee_id\":\"2\",\"name\":\"Bob\",\"note\":\"two\\nlines\"}");
    assert_int_equal(g.line[1], 4);
    assert_non_null(strstr(g.err[2], "hr.csv:6: expected 3 fields (as in the header), got 2"));
    assert_non_null(strstr(g.err[3], "hr.csv:7: text after a closing quote"));
    assert_string_equal(g.json[4], "{\"employee_id\":\"5\",\"name\":\"Éva\",\"note\":\"ünï\"}");
    assert_int_equal(g.line[4], 8);

    read_mem("a,b\n1,\"open\n", "q.csv", OSC_RECORDS_CSV, &g);
    assert_int_equal(g.n, 1);
    assert_non_null(strstr(g.err[0], "q.csv:2: unterminated quoted field"));
    read_mem("a,b\n1,\xc3\x28\n", "u.csv", OSC_RECORDS_CSV, &g);
    assert_non_null(strstr(g.err[0], "u.csv:2: invalid UTF-8 in field 2"));
}

static void test_sniff_and_fields(void **state)
{
    struct osc_records_reader *r;
    struct osc_record rec;
    struct osc_err err;
    char out[64];
    struct osc_buf b;
    (void)state;

    r = osc_records_open_mem("x,y\n1,2\n", 3 + 5, "-", OSC_RECORDS_AUTO, NULL);
    assert_int_equal(osc_records_next(r, &rec, &err), 1);
    assert_int_equal(osc_records_format_of(r), OSC_RECORDS_CSV);
    assert_int_equal(rec.nfields, 2);
    assert_non_null(osc_record_get(&rec, "y"));
    assert_null(osc_record_get(&rec, "z"));
    osc_records_close(r);

    r = osc_records_open_mem("{\"k\":\"a\\\"b\\u00e9\\ud83d\\ude00\",\"n\":42}", 37, "-",
                             OSC_RECORDS_AUTO, NULL);
    assert_int_equal(osc_records_next(r, &rec, &err), 1);
    osc_buf_init(&b, 1024);
    assert_int_equal(osc_json_value_text(rec.fields[0].val, rec.fields[0].val_len, &b), 1);
    snprintf(out, sizeof(out), "%s", osc_buf_str(&b));
    assert_string_equal(out, "a\"b\xc3\xa9\xf0\x9f\x98\x80");
    osc_buf_reset(&b);
    assert_int_equal(osc_json_value_text(rec.fields[1].val, rec.fields[1].val_len, &b), 1);
    assert_string_equal(osc_buf_str(&b), "42");
    osc_buf_reset(&b);
    assert_int_equal(osc_json_quote(&b, "a\"\n\x01", 4), 0);
    assert_string_equal(osc_buf_str(&b), "\"a\\\"\\n\\u0001\"");
    osc_buf_free(&b);
    osc_records_close(r);
}

/* Records that straddle the 256 KiB read window, from a real file. */
static void test_window_and_offsets(void **state)
{
    char *path, line[128];
    FILE *f;
    struct osc_records_reader *r;
    struct osc_record rec;
    struct osc_err err;
    uint64_t off = 0, n = 0;
    (void)state;

    path = th_write_file("big.jsonl", "");
    f = fopen(path, "w");
    for (int i = 0; i < 20000; i++)
        fprintf(f, "{\"id\":%d,\"pad\":\"%0*d\"}\n", i, 10 + i % 50, i);
    fclose(f);
    r = osc_records_open(path, OSC_RECORDS_AUTO, 0, &err);
    assert_non_null(r);
    while (osc_records_next(r, &rec, &err) == 1) {
        int len = snprintf(line, sizeof(line), "{\"id\":%d,\"pad\":\"%0*d\"}", (int)n,
                           10 + (int)n % 50, (int)n);
        assert_int_equal(rec.offset, off);
        assert_int_equal(rec.line, n + 1);
        assert_string_equal(rec.json, line);
        off += (uint64_t)len + 1;
        n++;
    }
    assert_int_equal(n, 20000);
    assert_int_equal(osc_records_bytes_read(r), off);
    assert_int_equal(osc_records_size(r), (int64_t)off);
    osc_records_close(r);

    /* a record over the cap is reported and skipped; the next one is read */
    f = fopen(path, "w");
    fprintf(f, "{\"a\":\"");
    for (int i = 0; i < 300000; i++)
        fputc('x', f);
    fprintf(f, "\"}\n{\"b\":1}\n");
    fclose(f);
    r = osc_records_open(path, OSC_RECORDS_JSONL, 1000, &err);
    assert_int_equal(osc_records_next(r, &rec, &err), OSC_EDATA);
    assert_non_null(strstr(err.msg, "big.jsonl:1: record is longer than the per-record limit"));
    /* the excerpt for the dead letter is the record's own start, not the bytes the skip read
     * over it */
    assert_non_null(rec.raw);
    assert_true(rec.raw_len >= 16);
    assert_memory_equal(rec.raw, "{\"a\":\"xxxxxxxxxx", 16);
    assert_int_equal(osc_records_next(r, &rec, &err), 1);
    assert_string_equal(rec.json, "{\"b\":1}");
    assert_int_equal(rec.line, 2);
    assert_int_equal(osc_records_next(r, &rec, &err), 0);
    osc_records_close(r);
    free(path);

    assert_null(osc_records_open("/nonexistent/x.csv", OSC_RECORDS_AUTO, 0, &err));
    assert_int_equal(err.code, OSC_ENOINPUT);
    th_tmpdir_cleanup();
}

static void test_deadletter_roundtrip(void **state)
{
    struct osc_deadletter *dl;
    struct osc_err err;
    char *path, *text;
    struct got g;
    json_t *j;
    (void)state;

    path = th_write_file("x.dead.jsonl", "");
    remove(path);
    dl = osc_deadletter_new(path, "employees");
    assert_int_equal(osc_deadletter_write(dl, "{\"email\":\"a@x\"}", 15, NULL, 0, "hr.csv", 7, 120,
                                          422, "{\"error\":\"bad\"}", 15,
                                          "rejected by the API: HTTP 422", 1, &err),
                     0);
    assert_int_equal(osc_deadletter_write(dl, NULL, 0, "{broken", 7, "hr.jsonl", 9, 300, 0, NULL, 0,
                                          "hr.jsonl:9: missing value", 0, &err),
                     0);
    assert_int_equal(osc_deadletter_count(dl), 2);
    osc_deadletter_close(dl);
    text = th_read_file(path);
    j = json_loadb(text, strchr(text, '\n') - text, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "record"), "email")),
                        "a@x");
    assert_string_equal(json_string_value(json_object_get(j, "destination")), "employees");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 422);
    assert_string_equal(json_string_value(json_object_get(j, "response")), "{\"error\":\"bad\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "source"), "line")), 7);
    json_decref(j);
    /* fed back: the first line unwraps to the record, the second cannot */
    read_mem(text, "x.dead.jsonl", OSC_RECORDS_AUTO, &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.json[0], "{\"email\":\"a@x\"}");
    assert_false(g.ok[1]);
    assert_non_null(strstr(g.err[1], "never a JSON object"));
    /* auto-detected from the content too */
    read_mem(text, "retry.jsonl", OSC_RECORDS_AUTO, &g);
    assert_string_equal(g.json[0], "{\"email\":\"a@x\"}");
    free(text);
    free(path);
    th_tmpdir_cleanup();
}

/* Reading that cannot go on says so: what follows was never returned. */
static int incomplete_after(const char *fixture, enum osc_records_format fmt, struct got *g)
{
    struct osc_records_reader *r = osc_records_open(th_fixture(fixture), fmt, 0, NULL);
    int inc;

    assert_non_null(r);
    assert_int_equal(osc_records_incomplete(r), 0);
    read_all(r, g);
    inc = osc_records_incomplete(r);
    osc_records_close(r);
    return inc;
}

static void test_incomplete_and_csv_framing(void **state)
{
    struct got g;
    (void)state;

    /* a missing comma: one record, the error, then nothing: the reader must say so */
    assert_int_equal(incomplete_after("delivery/array-missing-comma.json", OSC_RECORDS_AUTO, &g),
                     1);
    assert_int_equal(g.n, 2);
    assert_true(g.ok[0]);
    assert_non_null(strstr(g.err[1], "expected ',' or ']'"));
    /* a bad header ends the file: the first data row must not become the header */
    assert_int_equal(incomplete_after("delivery/csv-bad-header.csv", OSC_RECORDS_AUTO, &g), 1);
    assert_int_equal(g.n, 1);
    assert_false(g.ok[0]);
    assert_int_equal(g.line[0], 1);
    assert_non_null(strstr(g.err[0], "csv-bad-header.csv:1: the CSV header cannot be read"));
    /* a quote inside an unquoted field is text; it must not swallow the lines after it */
    assert_int_equal(incomplete_after("delivery/csv-inch-quote.csv", OSC_RECORDS_AUTO, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(
        g.json[0],
        "{\"employee_id\":\"1\",\"asset\":\"27\\\" Monitor\",\"email\":\"a@example.com\"}");
    assert_int_equal(g.line[1], 3);
    assert_string_equal(g.json[1],
                        "{\"employee_id\":\"2\",\"asset\":\"Desk\",\"email\":\"b@example.com\"}");
    assert_string_equal(g.json[2], "{\"employee_id\":\"3\",\"asset\":\"Chair, red\",\"email\":"
                                   "\"c@example.com\"}");
    /* a complete input is not incomplete; nor is a bad data row */
    assert_int_equal(incomplete_after("delivery/fuzz-csv-nul.csv", OSC_RECORDS_CSV, &g), 0);
    /* CSV header with a quote that opens mid-field, then a quoted newline further on */
    read_mem("a,b\nx\"y,\"1\n2\"\nz,3\n", "m.csv", OSC_RECORDS_CSV, &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.json[0], "{\"a\":\"x\\\"y\",\"b\":\"1\\n2\"}");
    assert_string_equal(g.json[1], "{\"a\":\"z\",\"b\":\"3\"}");
}

/* Inputs the fuzzer found (tests/fixtures/delivery/fuzz-*): each must stay a per-record error. */
static void test_fuzz_fixtures(void **state)
{
    struct got g;
    struct osc_records_reader *r;
    struct osc_buf q;
    (void)state;

    /* a lone UTF-16 high surrogate passed as valid: jansson (and APIs) refuse such text */
    r = osc_records_open(th_fixture("delivery/fuzz-lone-surrogate.jsonl"), OSC_RECORDS_JSONL, 0,
                         NULL);
    assert_non_null(r);
    read_all(r, &g);
    osc_records_close(r);
    assert_int_equal(g.n, 3);
    assert_false(g.ok[0]);
    assert_non_null(strstr(g.err[0], "lone high surrogate"));
    assert_false(g.ok[1]);
    assert_false(g.ok[2]);
    /* a proper pair is fine; a lone low surrogate and \u0000 are not */
    read_mem("{\"a\":\"\\ud83d\\ude00\"}\n{\"a\":\"\\ude00\"}\n{\"a\":\"x\\u0000\"}\n", "s.jsonl",
             OSC_RECORDS_JSONL, &g);
    assert_int_equal(g.n, 3);
    assert_true(g.ok[0]);
    assert_string_equal(g.json[0], "{\"a\":\"\\ud83d\\ude00\"}");
    assert_non_null(strstr(g.err[1], "lone low surrogate"));
    assert_non_null(strstr(g.err[2], "NUL"));

    /* NUL bytes in a CSV field: that row is refused, the header and quoting survive */
    r = osc_records_open(th_fixture("delivery/fuzz-csv-nul.csv"), OSC_RECORDS_CSV, 0, NULL);
    assert_non_null(r);
    read_all(r, &g);
    osc_records_close(r);
    assert_int_equal(g.n, 1);
    assert_false(g.ok[0]);
    assert_int_equal(g.line[0], 2);

    /* quoting any bytes gives valid JSON (invalid UTF-8 as U+FFFD) */
    osc_buf_init(&q, 1024);
    assert_int_equal(osc_json_quote(&q, "a\xff\xc3\x28\"\n\x01\xe2\x82\xac", 10), 0);
    assert_string_equal(q.data, "\"a\xef\xbf\xbd\xef\xbf\xbd(\\\"\\n\\u0001\xe2\x82\xac\"");
    osc_buf_free(&q);
}

/* CSV line ends: CR alone (old Mac), CRLF and LF, mixed in one file; quoted fields span lines. */
static void test_csv_line_ends(void **state)
{
    struct got g;
    (void)state;

    assert_int_equal(incomplete_after("delivery/csv-cr-only.csv", OSC_RECORDS_AUTO, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.json[0],
                        "{\"employee_id\":\"1\",\"name\":\"Alice\",\"note\":\"two\\rlines\"}");
    assert_int_equal(g.line[0], 2);
    assert_int_equal(g.offset[0], 22);
    assert_string_equal(g.json[1], "{\"employee_id\":\"2\",\"name\":\"Bob\",\"note\":\"plain\"}");
    assert_int_equal(g.line[1], 4);
    assert_int_equal(g.offset[1], 42);
    assert_string_equal(g.json[2], "{\"employee_id\":\"3\",\"name\":\"Smith, C\",\"note\":\"x\"}");
    assert_int_equal(g.line[2], 6);

    assert_int_equal(incomplete_after("delivery/csv-mixed-eol.csv", OSC_RECORDS_AUTO, &g), 0);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.json[0], "{\"employee_id\":\"1\",\"name\":\"Alice\"}");
    assert_int_equal(g.line[0], 2);
    assert_string_equal(g.json[1], "{\"employee_id\":\"2\",\"name\":\"Bob\"}");
    assert_int_equal(g.line[1], 3);
    assert_string_equal(g.json[2], "{\"employee_id\":\"3\",\"name\":\"Carol\"}");
    assert_int_equal(g.line[2], 4);
    assert_string_equal(g.json[3],
                        "{\"employee_id\":\"4\",\"name\":\"multi\\r\\nline\\nnote\\rend\"}");
    assert_int_equal(g.line[3], 6);
    assert_string_equal(g.json[4], "{\"employee_id\":\"5\",\"name\":\"Eve\"}");
    assert_int_equal(g.line[4], 10);

    /* a bad row after CR-only lines is reported on its own line */
    read_mem("a,b\r1,2\r3\r4,5\r", "cr.csv", OSC_RECORDS_CSV, &g);
    assert_int_equal(g.n, 3);
    assert_non_null(strstr(g.err[1], "cr.csv:3: expected 2 fields"));
    assert_string_equal(g.json[2], "{\"a\":\"4\",\"b\":\"5\"}");
    assert_int_equal(g.line[2], 4);
}

/* A CRLF cut in two by the read window is one line end, not a line and a blank one. */
static void test_csv_crlf_at_window_edge(void **state)
{
    char *path = th_write_file("edge.csv", "");
    FILE *f = fopen(path, "w");
    struct osc_records_reader *r;
    struct osc_record rec;
    struct osc_err err;
    long pos;
    int n = 0, rows = 0;
    (void)state;

    assert_non_null(f);
    fputs("id,v\n", f);
    /* rows of all three line ends up to just before the 256 KiB window edge */
    while ((pos = ftell(f)) < 262144 - 64) {
        static const char *const eol[] = {"\r\n", "\r", "\n"};
        fprintf(f, "%d,x%s", rows + 1, eol[rows % 3]);
        rows++;
    }
    /* one row whose CR is the window's last byte and its LF the next read's first */
    {
        char num[16];
        int dl = snprintf(num, sizeof(num), "%d", rows + 1);
        fprintf(f, "%s,%0*d\r\n", num, (int)(262143 - pos - dl - 1), 0);
    }
    assert_int_equal(ftell(f), 262145);
    rows++;
    for (int i = 0; i < 100; i++, rows++)
        fprintf(f, "%d,y\r", rows + 1);
    fclose(f);

    r = osc_records_open(path, OSC_RECORDS_CSV, 0, &err);
    assert_non_null(r);
    while (osc_records_next(r, &rec, &err) == 1) {
        n++;
        assert_int_equal(rec.line, (uint64_t)n + 1);
    }
    assert_int_equal(n, rows);
    assert_int_equal(osc_records_incomplete(r), 0);
    osc_records_close(r);
    free(path);
    th_tmpdir_cleanup();
}

/* Duplicate keys, at any depth, are a malformed record naming the key. */
static void test_duplicate_keys(void **state)
{
    struct got g;
    struct osc_records_reader *r;
    struct osc_buf b;
    struct osc_err err;
    (void)state;

    r = osc_records_open(th_fixture("delivery/json-dup-keys.jsonl"), OSC_RECORDS_AUTO, 0, NULL);
    assert_non_null(r);
    read_all(r, &g);
    osc_records_close(r);
    assert_int_equal(g.n, 9);
    assert_non_null(strstr(g.err[0], "json-dup-keys.jsonl:1: duplicate key \"email\" (column 37)"));
    assert_non_null(strstr(g.err[1], "json-dup-keys.jsonl:2: duplicate key \"email\" (column 44)"));
    /* one name in sibling and nested objects, and K beside k, is no duplicate */
    assert_true(g.ok[2]);
    assert_string_equal(g.json[2],
                        "{\"id\":2,\"list\":[{\"k\":1},{\"k\":2,\"x\":{\"k\":3}}],\"k\":4,\"K\":5,"
                        "\"kk\":6}");
    /* compared after unescaping: \u0065mail is email */
    assert_non_null(strstr(g.err[3], "json-dup-keys.jsonl:4: duplicate key \"email\" (column 31)"));
    /* many keys (sorted, not compared pairwise), at the top and nested */
    assert_non_null(strstr(g.err[4], "json-dup-keys.jsonl:5: duplicate key \"c\" (column 111)"));
    assert_non_null(strstr(g.err[5], "json-dup-keys.jsonl:6: duplicate key \"\""));
    assert_non_null(strstr(g.err[6], "json-dup-keys.jsonl:7: duplicate key \"a\" (column 123)"));
    assert_non_null(strstr(g.err[7], "json-dup-keys.jsonl:8: duplicate key \"\xc3\xa9\""));
    assert_true(g.ok[8]);
    for (int i = 0; i < 8; i++)
        if (i != 2)
            assert_false(g.ok[i]);

    /* the column is the input's, whitespace and all */
    read_mem("{ \"a\" : 1 ,  \"b\":\"x y\", \"a\" :3}\n", "w.jsonl", OSC_RECORDS_JSONL, &g);
    assert_non_null(strstr(g.err[0], "w.jsonl:1: duplicate key \"a\" (column 25)"));

    /* in a JSON array and through the value helper too */
    read_mem("[{\"a\":1,\"a\":2},{\"b\":{\"c\":1,\"c\":1}},{\"d\":1}]", "d.json", OSC_RECORDS_JSON,
             &g);
    assert_int_equal(g.n, 3);
    assert_non_null(strstr(g.err[0], "d.json:1: duplicate key \"a\""));
    assert_non_null(strstr(g.err[1], "d.json:1: duplicate key \"c\""));
    assert_string_equal(g.json[2], "{\"d\":1}");
    osc_buf_init(&b, 1024);
    assert_int_equal(osc_json_compact("[{\"x\":1,\"y\":{\"x\":2},\"x\":3}]", 27, NULL, &b, &err),
                     OSC_EDATA);
    assert_non_null(strstr(err.msg, "duplicate key \"x\" at byte 21"));
    osc_buf_reset(&b);
    assert_int_equal(osc_json_compact("{\"x\":1,\"y\":{\"x\":2}}", 19, NULL, &b, &err), 0);
    osc_buf_free(&b);
}

/* A duplicate CSV column cannot be framed: the file stops at its header. */
static void test_csv_duplicate_header(void **state)
{
    struct got g;
    (void)state;

    assert_int_equal(incomplete_after("delivery/csv-dup-header.csv", OSC_RECORDS_AUTO, &g), 1);
    assert_int_equal(g.n, 1);
    assert_false(g.ok[0]);
    assert_int_equal(g.line[0], 1);
    assert_non_null(strstr(g.err[0], "csv-dup-header.csv:1: duplicate column name \"email\" "
                                     "(columns 2 and 4) in the CSV header; the file cannot be "
                                     "read"));
    /* an empty name becomes columnN, which may repeat a real one */
    read_mem("a,,column2\n1,2,3\n", "e.csv", OSC_RECORDS_CSV, &g);
    assert_int_equal(g.n, 1);
    assert_non_null(strstr(g.err[0], "duplicate column name \"column2\" (columns 2 and 3)"));
    /* names differing in case are two columns */
    read_mem("Email,email\n1,2\n", "c.csv", OSC_RECORDS_CSV, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.json[0], "{\"Email\":\"1\",\"email\":\"2\"}");
}

/* Trailing commas are malformed records; the array framing and the records after survive. */
static void test_trailing_commas(void **state)
{
    struct got g;
    (void)state;

    assert_int_equal(incomplete_after("delivery/json-trailing-comma.json", OSC_RECORDS_AUTO, &g),
                     0);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.json[0], "{\"a\":1}");
    assert_non_null(strstr(g.err[1], "json-trailing-comma.json:3: trailing comma"));
    assert_non_null(strstr(g.err[2], "json-trailing-comma.json:4: trailing comma"));
    assert_string_equal(g.json[3], "{\"d\":4}");
    assert_int_equal(g.line[3], 5);
    /* the comma before ']' is the last "record": where it is, and why */
    assert_false(g.ok[4]);
    assert_int_equal(g.line[4], 5);
    assert_non_null(strstr(g.err[4], "json-trailing-comma.json:5: trailing comma"));

    read_mem("{\"a\":1,}\n{\"a\":[1,2,]}\n{\"a\":1,,\"b\":2}\n{\"a\":[1,,2]}\n{\"a\":[,]}\n"
             "{\"ok\":[1,2]}\n",
             "t.jsonl", OSC_RECORDS_JSONL, &g);
    assert_int_equal(g.n, 6);
    assert_non_null(strstr(g.err[0], "t.jsonl:1: trailing comma (column 8)"));
    assert_non_null(strstr(g.err[1], "t.jsonl:2: trailing comma (column 11)"));
    assert_non_null(strstr(g.err[2], "t.jsonl:3: expected a quoted key"));
    assert_non_null(strstr(g.err[3], "t.jsonl:4: unexpected character"));
    assert_non_null(strstr(g.err[4], "t.jsonl:5: unexpected character"));
    assert_string_equal(g.json[5], "{\"ok\":[1,2]}");

    /* an empty element between two commas is one malformed record; the next is read */
    read_mem("[{\"a\":1},,{\"b\":2},]", "e.json", OSC_RECORDS_JSON, &g);
    assert_int_equal(g.n, 4);
    assert_true(g.ok[0]);
    assert_non_null(strstr(g.err[1], "empty record"));
    assert_string_equal(g.json[2], "{\"b\":2}");
    assert_non_null(strstr(g.err[3], "trailing comma"));
}

/* ---- dead letters ------------------------------------------------------------ */

/* The "record" value of a dead-letter line: its bytes as written. */
static size_t record_value(const char *line, const char **val)
{
    const char *p = line + 10, *q = p;
    int depth = 0, in_str = 0, esc = 0;

    assert_memory_equal(line, "{\"record\":", 10);
    *val = p;
    do {
        char c = *q++;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{') {
            depth++;
        } else if (c == '}') {
            depth--;
        }
        assert_true(c != '\0' && c != '\n');
    } while (in_str || depth > 0);
    return (size_t)(q - p);
}

/* Lines of a file as an array of malloc'd strings (NULL-terminated); *n is the count. */
static char **file_lines(const char *path, size_t *n)
{
    char *text = th_read_file(path), *p, **v = calloc(64, sizeof(*v));

    assert_non_null(text);
    *n = 0;
    for (p = text; *p && *n < 63;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl); /* every line is complete */
        v[(*n)++] = strndup(p, (size_t)(nl - p));
        p = nl + 1;
    }
    free(text);
    return v;
}

static void free_lines(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* Read a dead-letter file as input and dead-letter every record again, as a resend whose
 * records all fail again would. Returns the records read. */
static int resend_all(const char *in, const char *out, struct osc_deadletter **dlp)
{
    struct osc_records_reader *r = osc_records_open(in, OSC_RECORDS_AUTO, 0, NULL);
    struct osc_deadletter *dl = dlp && *dlp ? *dlp : osc_deadletter_new(out, "employees");
    struct osc_record rec;
    struct osc_err err;
    int rc, n = 0;

    assert_non_null(r);
    assert_int_equal(osc_deadletter_avoid_input(dl, in), 0);
    while ((rc = osc_records_next(r, &rec, &err)) != 0) {
        assert_true(rc == 1 || rc == OSC_EDATA);
        assert_int_equal(osc_deadletter_write(dl, rec.json, rec.json_len, rec.raw, rec.raw_len,
                                              rec.file, rec.line, rec.offset, rc == 1 ? 422 : 0,
                                              NULL, 0, rc == 1 ? "rejected again" : err.msg, 1,
                                              &err),
                         0);
        n++;
    }
    osc_records_close(r);
    if (dlp)
        *dlp = dl;
    else
        osc_deadletter_close(dl);
    return n;
}

/*
 * Resent dead letters keep their "record": an object is sent again; a string (input that
 * was never a record) comes back as a malformed record whose raw text is the string's
 * content, so dead-lettering it again writes the same value, never the line wrapped again.
 */
static void test_deadletter_resend_roundtrip(void **state)
{
    static const char odd[] = "\"q\" \\ \n\t\x01 \xff nul:\0: \xc3\xa9 \\u0041 end";
    struct osc_deadletter *dl;
    struct osc_records_reader *r;
    struct osc_record rec;
    struct osc_err err;
    char *p1, *p2, **l1, **l2;
    size_t n1, n2;
    (void)state;

    p1 = th_write_file("first.dead.jsonl", "");
    p2 = th_write_file("second.dead.jsonl", "");
    remove(p1);
    remove(p2);
    dl = osc_deadletter_new(p1, "employees");
    assert_int_equal(osc_deadletter_write(dl, "{\"email\":\"a@x\",\"n\":\"\\u00e9 \\\"q\\\"\"}", 34,
                                          NULL, 0, "hr.jsonl", 1, 0, 422, "{}", 2, "HTTP 422", 1,
                                          &err),
                     0);
    assert_int_equal(osc_deadletter_write(dl, NULL, 0, "{broken", 7, "hr.jsonl", 2, 40, 0, NULL, 0,
                                          "hr.jsonl:2: missing value", 0, &err),
                     0);
    assert_int_equal(osc_deadletter_write(dl, NULL, 0, odd, sizeof(odd) - 1, "hr.csv", 3, 50, 0,
                                          NULL, 0, "hr.csv:3: NUL byte in field 2", 0, &err),
                     0);
    assert_int_equal(osc_deadletter_write(dl, NULL, 0, "a,b,c\r", 6, "hr.csv", 4, 90, 0, NULL, 0,
                                          "hr.csv:4: expected 2 fields", 0, &err),
                     0);
    osc_deadletter_close(dl);

    /* the string's content is the raw text (an invalid byte is U+FFFD by now) */
    r = osc_records_open(p1, OSC_RECORDS_AUTO, 0, NULL);
    assert_int_equal(osc_records_next(r, &rec, &err), 1);
    assert_string_equal(rec.json, "{\"email\":\"a@x\",\"n\":\"\\u00e9 \\\"q\\\"\"}");
    assert_int_equal(osc_records_next(r, &rec, &err), OSC_EDATA);
    assert_int_equal(rec.raw_len, 7);
    assert_memory_equal(rec.raw, "{broken", 7);
    assert_non_null(strstr(err.msg, "first.dead.jsonl:2: the dead letter holds input that was "
                                    "never a JSON object (hr.jsonl:2: missing value)"));
    assert_int_equal(osc_records_next(r, &rec, &err), OSC_EDATA);
    assert_int_equal(rec.raw_len, sizeof(odd) - 1 + 2);
    assert_memory_equal(rec.raw, "\"q\" \\ \n\t\x01 \xef\xbf\xbd nul:\0:", 20);
    assert_int_equal(osc_records_next(r, &rec, &err), OSC_EDATA);
    assert_int_equal(osc_records_next(r, &rec, &err), 0);
    osc_records_close(r);

    /* dead-lettered again: the same "record" values, byte for byte */
    assert_int_equal(resend_all(p1, p2, NULL), 4);
    l1 = file_lines(p1, &n1);
    l2 = file_lines(p2, &n2);
    assert_int_equal(n1, 4);
    assert_int_equal(n2, 4);
    for (size_t i = 0; i < n1; i++) {
        const char *v1, *v2;
        size_t len1 = record_value(l1[i], &v1), len2 = record_value(l2[i], &v2);
        assert_int_equal(len1, len2);
        assert_memory_equal(v1, v2, len1);
        assert_null(strstr(l2[i], "\\\"destination\\\"")); /* never wrapped */
        /* and each line is JSON that jansson reads (NUL allowed in strings) */
        for (int k = 0; k < 2; k++) {
            json_t *j = json_loads(k ? l2[i] : l1[i], JSON_ALLOW_NUL, NULL);
            assert_non_null(j);
            json_decref(j);
        }
    }
    free_lines(l1);
    free_lines(l2);
    free(p1);
    free(p2);
    th_tmpdir_cleanup();
}

/* Write one small dead letter to path; returns the result, err filled. */
static int dl_write_one(const char *path, struct osc_err *err)
{
    struct osc_deadletter *dl = osc_deadletter_new(path, "employees");
    int rc;

    assert_non_null(dl);
    rc = osc_deadletter_write(dl, "{\"a\":1}", 7, NULL, 0, "in.jsonl", 1, 0, 422, NULL, 0,
                              "HTTP 422", 1, err);
    osc_deadletter_close(dl);
    return rc;
}

/* Dead letters hold personal data: no symlink, no special file, no file others can read. */
static void test_deadletter_file_safety(void **state)
{
    char *target, *link_path, *fifo, *open_file, *torn, *fresh, *text, want[512];
    struct osc_err err;
    struct stat st;
    (void)state;

    target = th_write_file("target.jsonl", "");
    link_path = th_write_file("link.dead.jsonl", "");
    assert_int_equal(chmod(target, 0600), 0);
    remove(link_path);
    assert_int_equal(symlink(target, link_path), 0);
    assert_int_equal(dl_write_one(link_path, &err), OSC_EIO);
    snprintf(want, sizeof(want),
             "dead-letter file %s is a symbolic link; it is not followed: give the file itself",
             link_path);
    assert_string_equal(err.msg, want);
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 0);

    /* a FIFO nobody reads: refused at once, not a hang */
    fifo = th_write_file("fifo.dead.jsonl", "");
    remove(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(dl_write_one(fifo, &err), OSC_EIO);
    assert_non_null(strstr(err.msg, "is not a regular file"));
    assert_int_equal(dl_write_one("/dev/null", &err), OSC_EIO);
    assert_string_equal(err.msg, "dead-letter file /dev/null is not a regular file");

    /* an existing file group or others may read is left alone */
    open_file = th_write_file("open.dead.jsonl", "{\"old\":1}\n");
    for (int i = 0; i < 2; i++) {
        mode_t m = i ? 0640 : 0644;
        assert_int_equal(chmod(open_file, m), 0);
        assert_int_equal(dl_write_one(open_file, &err), OSC_EIO);
        snprintf(want, sizeof(want),
                 "dead-letter file %s has mode %04o; it holds personal data: chmod 600 %s or "
                 "choose another file",
                 open_file, (unsigned)m, open_file);
        assert_string_equal(err.msg, want);
    }
    text = th_read_file(open_file);
    assert_string_equal(text, "{\"old\":1}\n");
    free(text);
    assert_int_equal(chmod(open_file, 0600), 0);
    assert_int_equal(dl_write_one(open_file, &err), 0);

    /* a new file is 0600; a torn last line from a crash is ended before ours */
    fresh = th_write_file("fresh.dead.jsonl", "");
    remove(fresh);
    assert_int_equal(dl_write_one(fresh, &err), 0);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    torn = th_write_file("torn.dead.jsonl", "{\"record\":{\"a\"");
    assert_int_equal(chmod(torn, 0600), 0);
    assert_int_equal(dl_write_one(torn, &err), 0);
    text = th_read_file(torn);
    assert_memory_equal(text, "{\"record\":{\"a\"\n{\"record\":{\"a\":1},", 32);
    free(text);

    free(target);
    free(link_path);
    free(fifo);
    free(open_file);
    free(fresh);
    free(torn);
    th_tmpdir_cleanup();
}

/*
 * A write that fails part-way (here EFBIG from RLIMIT_FSIZE, as ENOSPC would) leaves the
 * file as it was before that line: it always ends with a complete line. Run in a child, as
 * the limit and SIGXFSZ are per process.
 */
static void test_deadletter_short_write(void **state)
{
    char *path = th_write_file("full.dead.jsonl", ""), pad[150], **lines;
    size_t n;
    struct stat st;
    int status;
    pid_t pid;
    (void)state;

    remove(path);
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {1000, 1000};
        struct osc_deadletter *dl;
        struct osc_err err;
        int ok = 0;
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0 || !(dl = osc_deadletter_new(path, "employees")))
            _exit(100);
        for (int i = 0; i < 20; i++) {
            char json[256];
            int len = snprintf(json, sizeof(json), "{\"pad\":\"%s\"}", pad);
            if (osc_deadletter_write(dl, json, (size_t)len, NULL, 0, "in.jsonl", 1, 0, 422, NULL, 0,
                                     "HTTP 422", 1, &err) != 0) {
                _exit(err.code == OSC_EIO && strstr(err.msg, "File too large") ? ok : 101);
            }
            ok++;
        }
        _exit(102);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    /* 3 lines of about 300 bytes fit under 1000; the 4th was cut off and cut back */
    assert_int_equal(WEXITSTATUS(status), 3);
    assert_int_equal(stat(path, &st), 0);
    lines = file_lines(path, &n);
    assert_int_equal(n, 3);
    assert_int_equal((size_t)st.st_size, 3 * (strlen(lines[0]) + 1));
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(lines[i], 0, NULL);
        assert_non_null(j);
        json_decref(j);
    }
    free_lines(lines);
    free(path);
    th_tmpdir_cleanup();
}

/*
 * A resend whose input is the dead-letter file itself writes to a new file beside it: the
 * input does not grow, and reading ends.
 */
static void test_deadletter_self_feeding(void **state)
{
    char *dead, *second, *third, *hard, *before, *after, *log = NULL;
    size_t loglen = 0, n;
    struct osc_deadletter *dl = NULL;
    struct osc_err err;
    FILE *lf;
    char **lines;
    (void)state;

    dead = th_write_file("employees.dead.jsonl", "");
    second = th_write_file("employees.dead.2.jsonl", "");
    third = th_write_file("employees.dead.3.jsonl", "");
    remove(dead);
    remove(second);
    remove(third);
    dl = osc_deadletter_new(dead, "employees");
    for (int i = 0; i < 3; i++)
        assert_int_equal(osc_deadletter_write(dl, "{\"email\":\"a@x\"}", 15, NULL, 0, "hr.csv",
                                              (uint64_t)i + 2, 0, 422, NULL, 0, "HTTP 422", 1,
                                              &err),
                         0);
    osc_deadletter_close(dl);
    dl = NULL;
    before = th_read_file(dead);

    lf = open_memstream(&log, &loglen);
    osc_log_set_stream(lf);
    assert_int_equal(resend_all(dead, dead, &dl), 3);
    osc_log_set_stream(NULL);
    fclose(lf);
    assert_string_equal(osc_deadletter_path(dl), second);
    assert_int_equal(osc_deadletter_count(dl), 3);
    osc_deadletter_close(dl);
    after = th_read_file(dead);
    assert_string_equal(after, before); /* the input is untouched */
    lines = file_lines(second, &n);
    assert_int_equal(n, 3);
    free_lines(lines);
    /* one warning, naming both files */
    assert_non_null(strstr(log, "warn "));
    assert_non_null(strstr(log, dead));
    assert_non_null(strstr(log, second));
    assert_null(strstr(strstr(log, "warn ") + 1, "warn "));
    free(log);

    /* the same file by another name (a hard link) is the same input; .2 is taken: .3 */
    hard = th_write_file("resend-me.jsonl", "");
    remove(hard);
    assert_int_equal(link(dead, hard), 0);
    dl = NULL;
    assert_int_equal(resend_all(hard, dead, &dl), 3);
    assert_string_equal(osc_deadletter_path(dl), third);
    osc_deadletter_close(dl);
    free(after);
    after = th_read_file(dead);
    assert_string_equal(after, before);

    /* registered after lines went to it: the lines after go to a new file */
    free(after);
    remove(third);
    dl = osc_deadletter_new(dead, "employees");
    assert_int_equal(osc_deadletter_write(dl, "{\"b\":1}", 7, NULL, 0, "x.csv", 2, 0, 422, NULL, 0,
                                          "HTTP 422", 1, &err),
                     0);
    assert_string_equal(osc_deadletter_path(dl), dead);
    assert_int_equal(osc_deadletter_avoid_input(dl, dead), 0);
    assert_int_equal(osc_deadletter_write(dl, "{\"c\":1}", 7, NULL, 0, "x.csv", 3, 0, 422, NULL, 0,
                                          "HTTP 422", 1, &err),
                     0);
    assert_string_equal(osc_deadletter_path(dl), third);
    osc_deadletter_close(dl);
    lines = file_lines(third, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(lines[0], "{\"record\":{\"c\":1}"));
    free_lines(lines);
    /* inputs that are not regular files, or do not exist, are no concern */
    dl = osc_deadletter_new(dead, "employees");
    assert_int_equal(osc_deadletter_avoid_input(dl, "/nonexistent/x.csv"), 0);
    assert_int_equal(osc_deadletter_avoid_input(dl, "/dev/null"), 0);
    osc_deadletter_close(dl);

    free(before);
    free(dead);
    free(second);
    free(third);
    free(hard);
    th_tmpdir_cleanup();
}

/*
 * No form of a secret reaches a dead letter: not in the record, the raw text, the reason or
 * the response, raw, JSON-escaped (once or twice) or URL-encoded, even cut at the excerpt's
 * end. The secret holds '"' and '\', whose escaped forms differ from the raw one.
 */
static void test_deadletter_redaction(void **state)
{
    static const char secret[] = "dl-key\"quote\\back-0123456789";
    char *path, *text, resp[2048], **lines;
    struct osc_deadletter *dl;
    struct osc_err err;
    size_t n, stars = 0;
    json_t *j;
    (void)state;

    assert_int_equal(osc_log_secret_add(secret), 0);
    assert_int_equal(osc_log_secret_add("nabcdefgh1234"), 0);
    path = th_write_file("secret.dead.jsonl", "");
    remove(path);
    dl = osc_deadletter_new(path, "employees");
    /* a record holding it (JSON-escaped in the record's text), echoed by the API in both
     * forms, and named in the reason as it is */
    snprintf(resp, sizeof(resp),
             "{\"error\":\"bad key dl-key\\\"quote\\\\back-0123456789\",\"url\":\"/x?key="
             "dl-key%%22quote%%5Cback-0123456789&k2=dl-key%%22quote%%5cback-0123456789\"}");
    assert_int_equal(osc_deadletter_write(dl, "{\"note\":\"dl-key\\\"quote\\\\back-0123456789\"}",
                                          41, NULL, 0, "hr.jsonl", 1, 0, 401, resp, strlen(resp),
                                          "refused: key dl-key\"quote\\back-0123456789 is wrong", 1,
                                          &err),
                     0);
    /* input that could not be read, holding the escaped form */
    assert_int_equal(osc_deadletter_write(dl, NULL, 0,
                                          "{\"key\":\"dl-key\\\"quote\\\\back-0123456789", 38,
                                          "hr.jsonl", 2, 50, 0, NULL, 0, "unterminated", 0, &err),
                     0);
    /* a response whose 1 KiB cut falls inside the secret */
    memset(resp, 'x', 1015);
    snprintf(resp + 1015, sizeof(resp) - 1015, "%s and more", secret);
    assert_int_equal(osc_deadletter_write(dl, "{\"a\":1}", 7, NULL, 0, "hr.jsonl", 3, 90, 500, resp,
                                          strlen(resp), "HTTP 500", 3, &err),
                     0);
    /* text whose escape reads like a secret once escaped ("\n" + "abcdefgh1234"): the line
     * must stay JSON and keep the text */
    assert_int_equal(osc_deadletter_write(dl, "{\"a\":2}", 7, NULL, 0, "hr.jsonl", 4, 99, 422, NULL,
                                          0, "x\nabcdefgh1234 y", 1, &err),
                     0);
    osc_deadletter_close(dl);
    osc_log_secret_clear();

    text = th_read_file(path);
    assert_null(strstr(text, "dl-key"));
    assert_null(strstr(text, "back-0123456789"));
    assert_null(strstr(text, "nabcdefgh1234"));
    for (const char *p = text; (p = strstr(p, "***")) != NULL; p += 3)
        stars++;
    assert_true(stars >= 7);
    free(text);
    lines = file_lines(path, &n);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        j = json_loads(lines[i], 0, NULL);
        assert_non_null(j);
        if (i == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "reason")),
                                "refused: key *** is wrong");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(j, "record"), "note")), "***");
        }
        if (i == 2) /* redacted, then cut at 1 KiB */
            assert_string_equal(json_string_value(json_object_get(j, "response")) + 1015,
                                "*** and m");
        if (i == 3) {
            assert_string_equal(json_string_value(json_object_get(j, "reason")),
                                "x\nabcdefgh1234 y");
            assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "record"), "a")),
                             2);
        }
        json_decref(j);
    }
    free_lines(lines);
    free(path);
    th_tmpdir_cleanup();
}

/* JSON Lines with CR-only line ends (old Mac), or mixed: every record is read, on its line. */
static void test_jsonl_cr_lines(void **state)
{
    struct got g;
    char *path;
    FILE *f;
    struct osc_records_reader *r;
    struct osc_record rec;
    struct osc_err err;
    int n = 0;
    (void)state;

    read_mem("{\"a\":1}\r{\"b\":2}\r\r{\"c\":3}", "cr.jsonl", OSC_RECORDS_AUTO, &g);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.json[0], "{\"a\":1}");
    assert_string_equal(g.json[1], "{\"b\":2}");
    assert_int_equal(g.line[1], 2);
    assert_int_equal(g.offset[1], 8);
    assert_string_equal(g.json[2], "{\"c\":3}");
    assert_int_equal(g.line[2], 4);
    read_mem("{\"a\":1}\n{\"b\":2}\r{\"c\":\n3}\r\n{\"d\":4}\n", "mixed.jsonl", OSC_RECORDS_JSONL,
             &g);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.json[1], "{\"b\":2}");
    assert_int_equal(g.line[1], 2);
    assert_false(g.ok[2]); /* a record still cannot span lines */
    assert_false(g.ok[3]);
    assert_string_equal(g.json[4], "{\"d\":4}");
    assert_int_equal(g.line[4], 5);

    /* a CR-only file longer than the read window and the record cap */
    path = th_write_file("cr-big.jsonl", "");
    f = fopen(path, "w");
    for (int i = 0; i < 20000; i++)
        fprintf(f, "{\"id\":%d,\"pad\":\"%030d\"}\r", i, i);
    fclose(f);
    r = osc_records_open(path, OSC_RECORDS_JSONL, 1000, &err);
    assert_non_null(r);
    while (osc_records_next(r, &rec, &err) == 1) {
        assert_int_equal(rec.line, (uint64_t)n + 1);
        n++;
    }
    assert_int_equal(n, 20000);
    assert_int_equal(osc_records_incomplete(r), 0);
    osc_records_close(r);
    free(path);
    th_tmpdir_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_json_array),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_sniff_and_fields),
        cmocka_unit_test(test_window_and_offsets),
        cmocka_unit_test(test_deadletter_roundtrip),
        cmocka_unit_test(test_fuzz_fixtures),
        cmocka_unit_test(test_incomplete_and_csv_framing),
        cmocka_unit_test(test_csv_line_ends),
        cmocka_unit_test(test_csv_crlf_at_window_edge),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_csv_duplicate_header),
        cmocka_unit_test(test_trailing_commas),
        cmocka_unit_test(test_jsonl_cr_lines),
        cmocka_unit_test(test_deadletter_resend_roundtrip),
        cmocka_unit_test(test_deadletter_file_safety),
        cmocka_unit_test(test_deadletter_short_write),
        cmocka_unit_test(test_deadletter_self_feeding),
        cmocka_unit_test(test_deadletter_redaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
