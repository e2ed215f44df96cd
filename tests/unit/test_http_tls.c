/*
 * test_http_tls.c - permanent transport errors against a real TLS server on
 * 127.0.0.1 (libmicrohttpd with GnuTLS) whose self-signed certificate for
 * 127.0.0.1/localhost is made at test time with the openssl CLI: without a
 * ca_file verification fails (permanent, REJECT, an actionable message),
 * with the certificate as ca_file the request succeeds, an unusable ca_file
 * is permanent, and ftp:// / file:// URLs fail before any byte is sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "osc/http.h"
#include "osc/log.h"
#include "testserver.h"

/* listed in tests/fixtures/test-secrets.txt */
#define URL_PASSWORD "tls-url-password-0123456789"
#define URL_TOKEN    "tls-url-token-0123456789"
#define DETAIL_KEY   "tls-detail-key-0123456789"

struct fixture {
    struct ts_server *s;
    char *cert_path, *key_path;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char *cert = NULL, *key = NULL;

    if (!f || th_make_cert(&f->cert_path, &f->key_path) != 0) {
        fprintf(stderr, "openssl could not make a test certificate\n");
        return -1;
    }
    cert = th_read_file(f->cert_path);
    key = th_read_file(f->key_path);
    if (cert && key)
        f->s = ts_start_tls(cert, key);
    free(cert);
    free(key);
    if (!f->s) {
        fprintf(stderr, "cannot start the TLS test server\n");
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f) {
        ts_stop(f->s);
        free(f->cert_path);
        free(f->key_path);
        free(f);
    }
    th_tmpdir_cleanup();
    osc_log_secret_clear();
    return 0;
}

/* GET url with a client made from ca_file; fills r (initialised by the caller). */
static int get(const char *url, const char *ca_file, struct osc_http_response *r,
               struct osc_err *err)
{
    struct osc_http_opts o = {0};
    struct osc_http *h;
    struct osc_http_request req = {"GET", url, NULL, OSC_HTTP_AUTH_NONE, NULL, NULL, 0, 0, 0};
    int rc;

    o.ca_file = ca_file;
    o.conf_section = "officespace";
    o.timeout_ms = 5000;
    h = osc_http_new(&o, NULL);
    assert_non_null(h);
    rc = osc_http_perform(h, &req, r, err);
    osc_http_free(h);
    return rc;
}

static void test_permanent_codes(void **state)
{
    static const int permanent[] = {CURLE_PEER_FAILED_VERIFICATION,
                                    CURLE_SSL_CACERT_BADFILE,
                                    CURLE_SSL_CERTPROBLEM,
                                    CURLE_SSL_ISSUER_ERROR,
                                    CURLE_SSL_PINNEDPUBKEYNOTMATCH,
                                    CURLE_UNSUPPORTED_PROTOCOL,
                                    CURLE_URL_MALFORMAT,
                                    CURLE_NOT_BUILT_IN,
                                    CURLE_SSL_INVALIDCERTSTATUS,
                                    CURLE_SSL_CRL_BADFILE,
                                    CURLE_SSL_CIPHER,
                                    CURLE_SSL_ENGINE_NOTFOUND};
    static const int transient[] = {CURLE_OK,
                                    CURLE_COULDNT_RESOLVE_HOST,
                                    CURLE_COULDNT_CONNECT,
                                    CURLE_OPERATION_TIMEDOUT,
                                    CURLE_SSL_CONNECT_ERROR,
                                    CURLE_SEND_ERROR,
                                    CURLE_RECV_ERROR,
                                    CURLE_GOT_NOTHING,
                                    CURLE_PARTIAL_FILE,
                                    CURLE_OUT_OF_MEMORY};

    (void)state;
    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++) {
        assert_true(osc_http_transport_permanent(permanent[i]));
        /* never RETRY, whatever the status */
        assert_int_equal(osc_http_classify(0, permanent[i]), OSC_HTTP_REJECT);
        assert_int_equal(osc_http_classify(503, permanent[i]), OSC_HTTP_REJECT);
    }
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        assert_false(osc_http_transport_permanent(transient[i]));
    assert_int_equal(osc_http_classify(0, CURLE_SSL_CONNECT_ERROR), OSC_HTTP_RETRY);
}

static void test_message_shows_origin_only(void **state)
{
    char out[512];

    (void)state;
    osc_log_secret_add(DETAIL_KEY);
    osc_http_transport_message(CURLE_PEER_FAILED_VERIFICATION,
                               "https://bob:" URL_PASSWORD
                               "@api.example.com:8443/api/1/x?token=" URL_TOKEN,
                               "SSL certificate problem: " DETAIL_KEY, "mapped", out, sizeof(out));
    assert_non_null(strstr(out, "TLS certificate verification failed for "
                                "https://api.example.com:8443: SSL certificate problem: ***; "
                                "set mapped.ca_file to "));
    assert_null(strstr(out, URL_PASSWORD));
    assert_null(strstr(out, URL_TOKEN));
    assert_null(strstr(out, "bob"));
    assert_null(strstr(out, "/api/1"));

    osc_http_transport_message(CURLE_UNSUPPORTED_PROTOCOL, "FTP://files.example.com/a?k=" URL_TOKEN,
                               NULL, NULL, out, sizeof(out));
    assert_string_equal(out, "unsupported URL scheme \"ftp\" in ftp://files.example.com: "
                             "osconnect sends only http:// and https:// requests; fix the URL");
    osc_http_transport_message(CURLE_URL_MALFORMAT, "https://exa mple.com/?" URL_TOKEN,
                               "URL rejected: Malformed input", NULL, out, sizeof(out));
    assert_null(strstr(out, URL_TOKEN));
    assert_non_null(strstr(out, "malformed URL (the URL)"));
    /* a small buffer is cut, still terminated */
    osc_http_transport_message(CURLE_SSL_CACERT_BADFILE, "https://a.example", "x", NULL, out, 16);
    assert_int_equal(strlen(out), 15);
    osc_log_secret_clear();
}

static void test_no_ca_file_fails_verification(void **state)
{
    struct fixture *f = *state;
    struct osc_http_response r;
    struct osc_err err = {0};
    char url[256], origin[64];
    size_t before = ts_count(f->s);

    osc_http_response_init(&r);
    snprintf(url, sizeof(url), "https://bob:%s@127.0.0.1:%d/api/1/x?token=%s", URL_PASSWORD,
             ts_port(f->s), URL_TOKEN);
    assert_int_equal(get(url, NULL, &r, &err), OSC_ETRANSPORT);
    assert_int_equal(r.transport, CURLE_PEER_FAILED_VERIFICATION);
    assert_true(osc_http_transport_permanent(r.transport));
    assert_int_equal(r.outcome, OSC_HTTP_REJECT);
    snprintf(origin, sizeof(origin), "for https://127.0.0.1:%d: ", ts_port(f->s));
    assert_non_null(strstr(r.error, "TLS certificate verification failed"));
    assert_non_null(strstr(r.error, origin));
    assert_non_null(strstr(r.error, "set officespace.ca_file to the CA"));
    /* the error is the sentence alone, without the URL's secrets */
    assert_string_equal(err.msg, r.error);
    assert_null(strstr(r.error, URL_PASSWORD));
    assert_null(strstr(r.error, URL_TOKEN));
    /* no request reached the handler */
    assert_int_equal(ts_count(f->s), before);
    osc_http_response_free(&r);
}

static void test_ca_file_verifies(void **state)
{
    struct fixture *f = *state;
    struct osc_http_response r;
    struct ts_response ok = {200, NULL, "{\"tls\":true}", 0, 0};
    char url[128];

    osc_http_response_init(&r);
    ts_push(f->s, &ok);
    snprintf(url, sizeof(url), "%s/ping", ts_url(f->s));
    assert_int_equal(strncmp(url, "https://127.0.0.1:", 18), 0);
    assert_int_equal(get(url, f->cert_path, &r, NULL), 0);
    assert_int_equal(r.transport, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.outcome, OSC_HTTP_SENT);
    assert_string_equal(osc_buf_str(&r.body), "{\"tls\":true}");
    /* localhost is in the certificate too */
    snprintf(url, sizeof(url), "https://localhost:%d/ping", ts_port(f->s));
    assert_int_equal(get(url, f->cert_path, &r, NULL), 0);
    assert_int_equal(r.status, 200);
    osc_http_response_free(&r);
}

static void test_bad_ca_file(void **state)
{
    struct fixture *f = *state;
    struct osc_http_response r;
    struct osc_err err = {0};
    char *not_pem = th_write_file("not-a-ca.pem", "this is not a certificate\n");
    char *missing = NULL;
    const char *files[2];

    assert_non_null(not_pem);
    assert_true(asprintf(&missing, "%s/no-such-ca.pem", th_tmpdir()) > 0);
    files[0] = not_pem;
    files[1] = missing;
    osc_http_response_init(&r);
    for (int i = 0; i < 2; i++) {
        size_t before = ts_count(f->s);
        assert_int_equal(get(ts_url(f->s), files[i], &r, &err), OSC_ETRANSPORT);
        assert_true(osc_http_transport_permanent(r.transport));
        assert_int_equal(r.outcome, OSC_HTTP_REJECT);
        assert_int_equal(r.transport, CURLE_SSL_CACERT_BADFILE);
        assert_non_null(strstr(r.error, "cannot load the CA file to verify https://127.0.0.1:"));
        assert_non_null(strstr(r.error, files[i]));
        assert_non_null(strstr(r.error, "officespace.ca_file must name a readable PEM file"));
        assert_int_equal(ts_count(f->s), before);
    }
    osc_http_response_free(&r);
    free(not_pem);
    free(missing);
}

/* A listening socket on 127.0.0.1:0 that no one serves; its port in *port. */
static int listener(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_other_schemes_refused(void **state)
{
    struct osc_http_response r;
    struct osc_err err = {0};
    char url[256];
    char *file = th_write_file("local.txt", "local file content\n");
    int port, fd = listener(&port);

    (void)state;
    osc_http_response_init(&r);
    snprintf(url, sizeof(url), "ftp://127.0.0.1:%d/upload", port);
    assert_int_equal(get(url, NULL, &r, &err), OSC_ETRANSPORT);
    assert_int_equal(r.transport, CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(r.outcome, OSC_HTTP_REJECT);
    assert_non_null(strstr(r.error, "unsupported URL scheme \"ftp\""));
    /* not even a connection: the listener has nothing to accept */
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(accept(fd, NULL, NULL), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    close(fd);

    snprintf(url, sizeof(url), "file://%s", file);
    assert_int_equal(get(url, NULL, &r, &err), OSC_ETRANSPORT);
    assert_int_equal(r.transport, CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(r.outcome, OSC_HTTP_REJECT);
    assert_int_equal(r.body.len, 0); /* the file was not read */
    assert_non_null(strstr(r.error, "unsupported URL scheme \"file\""));
    osc_http_response_free(&r);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permanent_codes),
        cmocka_unit_test(test_message_shows_origin_only),
        cmocka_unit_test(test_no_ca_file_fails_verification),
        cmocka_unit_test(test_ca_file_verifies),
        cmocka_unit_test(test_bad_ca_file),
        cmocka_unit_test(test_other_schemes_refused),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
