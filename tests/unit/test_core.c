/*
 * test_core.c - redaction, bounded buffers, number/duration/size parsing,
 * ISO 8601, error table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/buf.h"
#include "osc/clock.h"
#include "osc/err.h"
#include "osc/log.h"
#include "osc/parse.h"

static void test_redact(void **state)
{
    char s[128] = "Authorization: Token token=SECRETKEY123 and again SECRETKEY123.";
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    struct osc_err err;

    (void)state;
    assert_int_equal(osc_log_secret_add("SECRETKEY123"), 0);
    assert_int_equal(osc_log_secret_add("ab"), 0); /* too short: ignored */
    assert_int_equal(osc_redact(s, sizeof(s)), 2);
    assert_string_equal(s, "Authorization: Token token=*** and again ***.");

    f = open_memstream(&buf, &len);
    osc_log_set_stream(f);
    OSC_LOG_ERROR("test", "key is %s", "SECRETKEY123");
    OSC_LOG_DEBUG("test", "not printed at info %s", "x");
    osc_log_set_format(OSC_LOG_FORMAT_JSON);
    OSC_LOG_WARN("test", "json %s", "SECRETKEY123");
    osc_log_set_format(OSC_LOG_FORMAT_TEXT);
    osc_log_set_stream(NULL);
    fclose(f);
    assert_null(strstr(buf, "SECRETKEY123"));
    assert_non_null(strstr(buf, "key is ***"));
    assert_null(strstr(buf, "not printed"));
    assert_non_null(strstr(buf, "\"level\":\"warn\""));
    free(buf);

    osc_err_set(&err, OSC_EAUTH, "bad key SECRETKEY123");
    assert_string_equal(err.msg, "bad key ***");
    osc_log_secret_clear();
}

static void test_log_repeats(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    osc_log_set_stream(f);
    for (int i = 0; i < 5; i++)
        OSC_LOG_WARN("rep", "same line");
    OSC_LOG_WARN("rep", "other line");
    osc_log_set_stream(NULL);
    fclose(f);
    assert_non_null(strstr(buf, "last message repeated 4 more times"));
    assert_non_null(strstr(buf, "other line"));
    free(buf);
}

/* Outside text cannot forge a log line, and a JSON line survives bad UTF-8. */
static void test_log_sanitize(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    osc_log_set_stream(f);
    OSC_LOG_WARN("san", "id '%s'", "urn:x\n2026-01-01T00:00:00.000Z error [fake] forged");
    osc_log_set_format(OSC_LOG_FORMAT_JSON);
    OSC_LOG_WARN("san", "bad utf8 \xff\xc3 and caf\xc3\xa9 and \xed\xa0\x80");
    osc_log_set_format(OSC_LOG_FORMAT_TEXT);
    osc_log_set_stream(NULL);
    fclose(f);
    assert_non_null(strstr(buf, "urn:x?2026-01-01T00:00:00.000Z error [fake] forged'\n"));
    assert_non_null(strstr(buf, "\"msg\":\"bad utf8 ?? and caf\\u00E9 and ???\"}\n"));
    /* exactly two lines */
    assert_non_null(strchr(buf, '\n'));
    assert_null(strchr(strchr(strchr(buf, '\n') + 1, '\n') + 1, '\n'));
    free(buf);
}

static void test_buf_cap(void **state)
{
    struct osc_buf b;

    (void)state;
    osc_buf_init(&b, 8);
    assert_int_equal(osc_buf_adds(&b, "12345"), 0);
    assert_int_equal(osc_buf_adds(&b, "6789"), OSC_ETOOBIG);
    assert_string_equal(osc_buf_str(&b), "12345");
    assert_int_equal(osc_buf_printf(&b, "%d", 678), 0);
    assert_string_equal(osc_buf_str(&b), "12345678");
    assert_int_equal(osc_buf_addc(&b, 'x'), OSC_ETOOBIG);
    osc_buf_free(&b);
    osc_buf_free(NULL);
}

static void test_parse(void **state)
{
    int64_t v = 0;
    int b;

    (void)state;
    assert_int_equal(osc_parse_int("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(osc_parse_int("42x", 0, 100, &v), OSC_EINVAL);
    assert_int_equal(osc_parse_int("101", 0, 100, &v), OSC_ETOOBIG);
    assert_int_equal(osc_parse_int("", 0, 100, &v), OSC_EINVAL);
    assert_int_equal(osc_parse_int("99999999999999999999", 0, INT64_MAX, &v), OSC_ETOOBIG);
    assert_int_equal(osc_parse_duration_ms("250ms", 0, INT64_MAX, &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(osc_parse_duration_ms("15m", 0, INT64_MAX, &v), 0);
    assert_int_equal(v, 900000);
    assert_int_equal(osc_parse_duration_ms("7", 0, INT64_MAX, &v), 0);
    assert_int_equal(v, 7000);
    assert_int_equal(osc_parse_duration_ms("7 weeks", 0, INT64_MAX, &v), OSC_EINVAL);
    assert_int_equal(osc_parse_size("5MiB", 0, INT64_MAX, &v), 0);
    assert_int_equal(v, 5 * 1024 * 1024);
    assert_int_equal(osc_parse_size("16k", 0, INT64_MAX, &v), 0);
    assert_int_equal(v, 16384);
    assert_int_equal(osc_parse_bool("Yes", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(osc_parse_bool("nah", &b), OSC_EINVAL);
}

static void test_iso8601(void **state)
{
    int64_t ms;
    char out[32];

    (void)state;
    assert_int_equal(osc_clock_parse_iso8601("2026-01-07T10:30:00Z", &ms), 0);
    assert_int_equal(ms, 1767781800000LL);
    osc_clock_iso8601(ms, out, sizeof(out));
    assert_string_equal(out, "2026-01-07T10:30:00Z");
    assert_int_equal(osc_clock_parse_iso8601("2026-01-07T12:30:00.250+02:00", &ms), 0);
    assert_int_equal(ms, 1767781800250LL);
    assert_int_equal(osc_clock_parse_iso8601("2023-04-05T06:29:52.356", &ms), 0);
    assert_int_equal(osc_clock_parse_iso8601("yesterday", &ms), OSC_EINVAL);
    assert_int_equal(osc_clock_parse_iso8601("2026-13-07T10:30:00Z", &ms), OSC_EINVAL);
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(osc_strerror(OSC_ENOMEM), "out of memory");
    assert_string_equal(osc_errname(OSC_ECONFIG), "OSC_ECONFIG");
    assert_int_equal(osc_err_exit_code(OSC_ECONFIG), 78);
    assert_int_equal(osc_err_exit_code(OSC_EAUTH), 77);
    assert_int_equal(osc_err_exit_code(0), 0);
    assert_string_equal(osc_strerror(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact),       cmocka_unit_test(test_log_repeats),
        cmocka_unit_test(test_log_sanitize), cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_parse),        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
