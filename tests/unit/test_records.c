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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "osc/buf.h"
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
    assert_string_equal(q.data,
                        "\"a\xef\xbf\xbd\xef\xbf\xbd(\\\"\\n\\u0001\xe2\x82\xac\"");
    osc_buf_free(&q);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
