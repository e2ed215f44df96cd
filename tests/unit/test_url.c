/*
 * test_url.c - URL facts from curl_url(): parts, loopback, and which URLs
 * get the OfficeSpace key (the decisions the config and the engine share).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "osc/url.h"

static void test_parts(void **state)
{
    struct osc_url u;
    struct osc_err err = {0};

    (void)state;
    assert_int_equal(osc_url_parse("HTTPS://Acme.Example.com:8443/a/b?q=1#f", &u, &err), 0);
    assert_string_equal(u.scheme, "https");
    assert_string_equal(u.host, "Acme.Example.com");
    assert_int_equal(u.port, 8443);
    assert_string_equal(u.path, "/a/b");
    assert_false(u.has_userinfo);
    osc_url_free(&u);

    assert_int_equal(osc_url_parse("https://h.example", &u, &err), 0);
    assert_int_equal(u.port, 443); /* the scheme's default */
    assert_string_equal(u.path, "/");
    assert_true(osc_url_is_http(&u));
    osc_url_free(&u);

    assert_int_equal(osc_url_parse("https://user:pw@h.example/x", &u, &err), 0);
    assert_true(u.has_userinfo);
    assert_string_equal(u.host, "h.example");
    osc_url_free(&u);

    /* other schemes parse, so the caller can say which one it refuses */
    assert_int_equal(osc_url_parse("ftp://files.example/x", &u, &err), 0);
    assert_string_equal(u.scheme, "ftp");
    assert_false(osc_url_is_http(&u));
    osc_url_free(&u);

    /* errors say what curl objected to and never echo the URL */
    assert_int_equal(osc_url_parse("not a url", &u, &err), OSC_EINVAL);
    assert_non_null(strstr(err.msg, "not a URL ("));
    assert_null(strstr(err.msg, "not a url"));
    assert_null(u.scheme);
    assert_int_equal(osc_url_parse("https://", &u, &err), OSC_EINVAL);
    assert_int_equal(osc_url_parse("", &u, &err), OSC_EINVAL);
    assert_int_equal(osc_url_parse("/api/1/x", &u, &err), OSC_EINVAL);
    osc_url_free(NULL);
}

static int loopback(const char *url)
{
    struct osc_url u;
    int r;

    assert_int_equal(osc_url_parse(url, &u, NULL), 0);
    r = osc_url_is_loopback(&u);
    osc_url_free(&u);
    return r;
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(loopback("http://127.0.0.1:8080/x"));
    assert_true(loopback("http://127.255.0.9/"));
    assert_true(loopback("http://[::1]:9/"));
    assert_true(loopback("http://[::ffff:127.0.0.1]/"));
    assert_true(loopback("http://LOCALHOST/"));
    assert_false(loopback("http://128.0.0.1/"));
    assert_false(loopback("http://127.0.0.1.example.com/"));
    assert_false(loopback("http://localhost.example.com/"));
    assert_false(loopback("http://[::2]/"));
    assert_false(loopback("http://localhost@evil.example/"));
    assert_false(loopback("http://evil.example#@127.0.0.1/"));
}

static int gets_key(const char *url, const char *base)
{
    struct osc_url u, b;
    int r;

    assert_int_equal(osc_url_parse(url, &u, NULL), 0);
    assert_int_equal(osc_url_parse(base, &b, NULL), 0);
    r = osc_url_gets_officespace_key(&u, &b);
    osc_url_free(&u);
    osc_url_free(&b);
    return r;
}

static void test_gets_officespace_key(void **state)
{
    const char *os = "https://acme.officespacesoftware.com";
    const char *local = "http://127.0.0.1:8080/os";

    (void)state;
    assert_true(gets_key("https://acme.officespacesoftware.com/api/1/x", os));
    assert_true(gets_key("https://ACME.OfficeSpaceSoftware.com/api/1/x", os));
    assert_true(gets_key("https://other.officespacesoftware.com/api/1/x", os));
    assert_true(gets_key("https://officespacesoftware.com/api/1/x", os));
    assert_false(gets_key("https://x.officespacesoftware.co/api/1/x", os));
    assert_false(gets_key("https://evilofficespacesoftware.com/api/1/x", os));
    assert_false(gets_key("https://acme.officespacesoftware.com@evil.example/x", os));
    assert_false(gets_key("https://acme.officespacesoftware.com.evil.example/x", os));
    assert_false(gets_key("https://u:p@acme.officespacesoftware.com/x", os));
    /* a local base: same scheme, host, port, and a path under the base's */
    assert_true(gets_key("http://127.0.0.1:8080/os/api/1/x", local));
    assert_true(gets_key("http://127.0.0.1:8080/os", local));
    assert_false(gets_key("http://127.0.0.1:8080/osx/api", local));
    assert_false(gets_key("http://127.0.0.1:8081/os/api", local));
    assert_false(gets_key("https://127.0.0.1:8080/os/api", local));
    assert_false(gets_key("http://127.0.0.2:8080/os/api", local));
    assert_true(gets_key("http://127.0.0.1:8080/anything", "http://127.0.0.1:8080/"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_gets_officespace_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
