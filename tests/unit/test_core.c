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

#include <jansson.h>

#include "osc/buf.h"
#include "osc/clock.h"
#include "osc/err.h"
#include "osc/http.h"
#include "osc/log.h"
#include "osc/parse.h"
#include "osc/records.h"

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

/* Redact buf (a copy of text) and check that nothing of the secret's form is left. */
static void assert_redacted(const char *text, const char *form, const char *want)
{
    char buf[512];

    snprintf(buf, sizeof(buf), "%s", text);
    assert_non_null(strstr(buf, form)); /* the form really is in the text */
    assert_true(osc_redact(buf, sizeof(buf)) >= 1);
    assert_null(strstr(buf, form));
    assert_string_equal(buf, want);
}

/*
 * Every form a secret takes in our output is masked: raw, JSON-escaped (as
 * osc_json_quote and jansson write it, also with JSON_ENSURE_ASCII),
 * percent-encoded (upper- and lower-case hex, '+' for a space). The forms
 * below are produced by the real encoders, not written by hand.
 */
static void test_redact_forms(void **state)
{
    /* a quote, a backslash, a space, a slash, a control character and non-ASCII */
    static const char secret[] = "k3y\"q\\uo te/\x01\xc3\xa9-0123456789";
    char text[512], *enc;
    struct osc_buf q;
    json_t *j;

    (void)state;
    assert_int_equal(osc_log_secret_add(secret), 0);
    assert_int_equal(osc_log_secret_add(secret), 0); /* known: no second entry */
    /* raw */
    snprintf(text, sizeof(text), "key=%s;", secret);
    assert_redacted(text, secret, "key=***;");
    /* osc_json_quote (lower-case \u0001) */
    osc_buf_init(&q, 1024);
    assert_int_equal(osc_json_quote(&q, secret, strlen(secret)), 0);
    snprintf(text, sizeof(text), "{\"reason\":%s}", q.data);
    assert_redacted(text, q.data + 1, "{\"reason\":\"***\"}");
    assert_non_null(strstr(q.data, "k3y\\\"q\\\\uo te/\\u0001\xc3\xa9-"));
    osc_buf_free(&q);
    /* jansson: upper-case hex, and \u00E9 with JSON_ENSURE_ASCII */
    j = json_pack("{s:s}", "response", secret);
    assert_non_null(j);
    for (int ascii = 0; ascii < 2; ascii++) {
        char *d = json_dumps(j, JSON_COMPACT | (ascii ? JSON_ENSURE_ASCII : 0));
        assert_non_null(d);
        assert_null(strstr(d, secret));
        assert_non_null(strstr(d, ascii ? "\\u00E9" : "\xc3\xa9"));
        snprintf(text, sizeof(text), "%s", d);
        assert_true(osc_redact(text, sizeof(text)) == 1);
        assert_string_equal(text, "{\"response\":\"***\"}");
        free(d);
    }
    json_decref(j);
    /* percent-encoded: as osc_http_urlencode writes it, in lower case, and form-encoded */
    enc = osc_http_urlencode(secret, strlen(secret));
    assert_non_null(enc);
    snprintf(text, sizeof(text), "/api?key=%s&x=1", enc);
    assert_redacted(text, enc, "/api?key=***&x=1");
    for (char *p = enc; *p; p++)
        if (p[0] == '%')
            p[1] = (char)(p[1] >= 'A' ? p[1] + 32 : p[1]),
            p[2] = (char)(p[2] >= 'A' ? p[2] + 32 : p[2]);
    snprintf(text, sizeof(text), "/api?key=%s&x=1", enc);
    assert_redacted(text, enc, "/api?key=***&x=1");
    free(enc);
    assert_redacted("key=k3y%22q%5Cuo+te%2F%01%C3%A9-0123456789", "+te%2F", "key=***");
    assert_redacted("key=k3y%22q%5cuo+te%2f%01%c3%a9-0123456789", "+te%2f", "key=***");
    /* an error message and a log line carry no form either */
    {
        struct osc_err err;
        osc_err_set(&err, OSC_EAUTH, "bad key k3y\\\"q\\\\uo te/\\u0001\xc3\xa9-0123456789!");
        assert_string_equal(err.msg, "bad key ***!");
    }
    osc_log_secret_clear();
    /* cleared: nothing is masked any more */
    snprintf(text, sizeof(text), "key=%s;", secret);
    assert_int_equal(osc_redact(text, sizeof(text)), 0);
}

/* A secret that holds another is masked whole, whatever the order they came in. */
static void test_redact_overlap(void **state)
{
    char s[128] = "a=abcd-0123456789 b=abcd";
    int rc = 0;

    (void)state;
    assert_int_equal(osc_log_secret_add("abcd"), 0);
    assert_int_equal(osc_log_secret_add("abcd-0123456789"), 0);
    assert_int_equal(osc_redact(s, sizeof(s)), 2);
    assert_string_equal(s, "a=*** b=***");
    osc_log_secret_clear();
    /* the cap counts distinct secrets, not their forms */
    for (int i = 0; i < 64 && rc == 0; i++) {
        char k[32];
        snprintf(k, sizeof(k), "cap \"%02d\" key", i); /* 4 forms each */
        rc = osc_log_secret_add(k);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(osc_log_secret_add("one-too-many"), OSC_ETOOBIG);
    snprintf(s, sizeof(s), "x cap%%20%%2263%%22%%20key y");
    assert_int_equal(osc_redact(s, sizeof(s)), 1);
    assert_string_equal(s, "x *** y");
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

/* Events: JSON lines carry the event and typed fields (redacted and sanitized, empty ones left
 * out), in order, msg last; the text line is the message alone. */
static void test_log_events(void **state)
{
    char *buf = NULL, *line2;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_t *o;
    json_error_t jerr;

    (void)state;
    assert_int_equal(osc_log_secret_add("EVENTSECRET-42"), 0);
    osc_log_set_stream(f);
    osc_log_set_format(OSC_LOG_FORMAT_JSON);
    OSC_LOG_EV(OSC_LOG_LEVEL_WARN, "delivery", "rejected",
               (OSC_LF_STR("destination", "employees"), OSC_LF_INT("status", 422),
                OSC_LF_INT_NZ("none", 0), OSC_LF_STR("empty", ""), OSC_LF_STR("null", NULL),
                OSC_LF_STR("url", "https://h/x?key=EVENTSECRET-42\nforged"),
                OSC_LF_REAL("seconds", 0.5), OSC_LF_INT("records", 100)),
               "employees: HTTP %d", 422);
    OSC_LOG_EV(OSC_LOG_LEVEL_DEBUG, "delivery", "hidden", (OSC_LF_INT("x", 1)), "not at info");
    osc_log_set_format(OSC_LOG_FORMAT_TEXT);
    OSC_LOG_EV(OSC_LOG_LEVEL_INFO, "presence", "cycle", (OSC_LF_INT("locations", 3)),
               "cycle: %d locations", 3);
    osc_log_set_stream(NULL);
    fclose(f);

    assert_null(strstr(buf, "EVENTSECRET-42"));
    assert_null(strstr(buf, "not at info"));
    line2 = strchr(buf, '\n');
    assert_non_null(line2);
    *line2++ = '\0';
    o = json_loads(buf, 0, &jerr);
    if (!o)
        fail_msg("not JSON: %s (%s)", buf, jerr.text);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "rejected");
    assert_string_equal(json_string_value(json_object_get(o, "destination")), "employees");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 422);
    assert_int_equal(json_integer_value(json_object_get(o, "records")), 100);
    assert_true(json_real_value(json_object_get(o, "seconds")) == 0.5);
    assert_string_equal(json_string_value(json_object_get(o, "url")), "https://h/x?key=***?forged");
    assert_null(json_object_get(o, "none"));
    assert_null(json_object_get(o, "empty"));
    assert_null(json_object_get(o, "null"));
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "employees: HTTP 422");
    /* time, level, module, event first; msg last */
    assert_true(strncmp(buf, "{\"time\":", 8) == 0);
    assert_non_null(strstr(buf, "\"module\":\"delivery\",\"event\":\"rejected\",\"destination\""));
    assert_non_null(strstr(buf, "\"msg\":\"employees: HTTP 422\"}"));
    json_decref(o);
    /* the text line: the message alone */
    assert_non_null(strstr(line2, " info  [presence] cycle: 3 locations\n"));
    assert_null(strstr(line2, "locations\":"));
    free(buf);
    osc_log_secret_clear();
}

struct hook_log {
    char seq[64];
    size_t n;
};

static void hook(void *ud, int before)
{
    struct hook_log *h = ud;
    if (h->n < sizeof(h->seq) - 1)
        h->seq[h->n++] = before ? 'B' : 'A';
}

/* The hook runs before and after every line written, the repeat summary included. */
static void test_log_hook(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct hook_log h = {{0}, 0};

    (void)state;
    osc_log_set_stream(f);
    osc_log_set_hook(hook, &h);
    OSC_LOG_WARN("h", "one");
    OSC_LOG_WARN("h", "one");
    OSC_LOG_WARN("h", "two");
    OSC_LOG_DEBUG("h", "not written");
    osc_log_set_hook(NULL, NULL);
    OSC_LOG_WARN("h", "three");
    osc_log_set_stream(NULL);
    fclose(f);
    /* one, the "repeated" summary, two: each wrapped; three after the hook was removed */
    assert_string_equal(h.seq, "BABABA");
    assert_non_null(strstr(buf, "three"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact),         cmocka_unit_test(test_log_repeats),
        cmocka_unit_test(test_log_events),     cmocka_unit_test(test_log_hook),
        cmocka_unit_test(test_log_sanitize),   cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_parse),          cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_redact_forms),
        cmocka_unit_test(test_redact_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
