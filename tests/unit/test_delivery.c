/*
 * test_delivery.c - the delivery engine in-process against the scripted
 * test server: what the server receives (method, path, headers, exact
 * body) for each template and manual option, grouping (array, property,
 * Lua, including the sandbox), URL partitioning, max_bytes, retries with
 * Retry-After, the commit flow, the auth stop, dead letters, the response
 * webhook (also when it fails) and preview output.
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
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "osc/clock.h"
#include "osc/config.h"
#include "osc/delivery.h"
#include "osc/log.h"
#include "testserver.h"

#define KEY "unit-key-SECRET-0123456789abcdef"

struct fx {
    struct ts_server *ts;
    struct osc_config *cfg;
    struct osc_delivery *d;
    struct osc_delivery_stats st;
    char *dl_path;
};

static void setup_cfg(struct fx *f, const char *dest_yaml)
{
    char *text = NULL;
    struct osc_err err = {0};

    f->ts = ts_start();
    assert_non_null(f->ts);
    /* a 2xx for every batch, and an empty directory for the commit guard's count */
    ts_set_default(f->ts, &(struct ts_response){200, NULL, "{\"count\":0,\"response\":[]}", 0, 0});
    f->dl_path = th_write_file("out.dead.jsonl", "");
    remove(f->dl_path);
    assert_true(asprintf(&text,
                         "officespace:\n  hostname: acme\n  base_url: %s\n  api_key: " KEY "\n"
                         "destinations:\n%s",
                         ts_url(f->ts), dest_yaml) > 0);
    {
        /* every destination that takes records writes its dead letters to one known
         * file (a trigger_directory_import takes none, and refuses dead_letter) */
        char *p = text, *out = NULL;
        size_t n = 0;
        FILE *m = open_memstream(&out, &n);
        int in_dest = 0;
        for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n")) {
            fprintf(m, "%s\n", line);
            if (strcmp(line, "destinations:") == 0)
                in_dest = 1;
            if (in_dest && strncmp(line, "  ", 2) == 0 && line[2] != ' ' &&
                line[strlen(line) - 1] == ':') {
                const char *next = line + strlen(line) + 1, *end = strstr(next, "\n  ");
                const char *trig = strstr(next, "template: trigger_directory_import");
                while (end && end[3] == ' ')
                    end = strstr(end + 1, "\n  ");
                if (!trig || (end && trig > end))
                    fprintf(m, "    dead_letter: %s\n", f->dl_path);
            }
        }
        fclose(m);
        free(text);
        text = out;
    }
    if (osc_config_load_string(text, strlen(text), "t.yaml", &f->cfg, &err))
        fail_msg("%s\n%s", err.msg, text);
    free(text);
}

static int deliver(struct fx *f, const char *dest, const char *input, const char *name,
                   const struct osc_delivery_opts *opts)
{
    struct osc_err err = {0};
    char *path = NULL;
    int rc = 0;

    f->d = osc_delivery_new(f->cfg, dest, opts, &err);
    if (!f->d)
        fail_msg("%s", err.msg);
    if (input) {
        path = th_write_file(name, input);
        rc = osc_delivery_feed(f->d, path, OSC_RECORDS_AUTO, 0, &err);
        free(path);
    }
    osc_delivery_finish(f->d);
    osc_delivery_get_stats(f->d, &f->st);
    return rc;
}

static void teardown_fx(struct fx *f)
{
    osc_delivery_free(f->d);
    osc_config_free(f->cfg);
    ts_stop(f->ts);
    free(f->dl_path);
    th_tmpdir_cleanup();
    osc_log_secret_clear();
}

/* Assert request i: method, url, body (NULL: any), content type (NULL: not checked). */
static void expect_req(struct fx *f, size_t i, const char *method, const char *url,
                       const char *body, const char *ctype)
{
    struct ts_request r;
    char v[512];

    assert_int_equal(ts_get(f->ts, i, &r), 0);
    assert_string_equal(r.method, method);
    assert_string_equal(r.url, url);
    if (body)
        assert_string_equal(r.body ? r.body : "", body);
    if (ctype) {
        assert_int_equal(ts_header(&r, "content-type", v, sizeof(v)), 0);
        assert_string_equal(v, ctype);
    }
    ts_request_free(&r);
}

static void expect_auth(struct fx *f, size_t i, int present)
{
    struct ts_request r;
    char v[512];

    assert_int_equal(ts_get(f->ts, i, &r), 0);
    if (present) {
        assert_int_equal(ts_header(&r, "authorization", v, sizeof(v)), 0);
        assert_string_equal(v, "Token token=" KEY);
    } else {
        assert_int_equal(ts_header(&r, "authorization", v, sizeof(v)), -1);
    }
    ts_request_free(&r);
}

static json_t *dead_letters(struct fx *f)
{
    char *text = th_read_file(f->dl_path);
    json_t *arr = json_array();
    char *line, *save = NULL;

    for (line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
        json_array_append_new(arr, json_loads(line, 0, NULL));
    free(text);
    return arr;
}

#define EMP_DEST                                                                                   \
    "  employees:\n    template: upsert_employees\n    source_name: HR\n    commit: commit\n"      \
    "    retry: {base: 5ms, cap: 20ms, max_attempts: 3}\n    max_in_flight: 1\n"                   \
    "  commit:\n    template: trigger_directory_import\n    source_name: HR\n"

static void test_upsert_and_commit(void **state)
{
    struct fx f = {0};
    json_t *dl;
    (void)state;

    setup_cfg(&f, EMP_DEST);
    assert_int_equal(deliver(&f, "employees",
                             "employee_id,first_name,last_name,email\n"
                             "1,Alice,Smith,alice@example.com\n"
                             ",Bob,NoId,\n"
                             ",Carol,Jones,carol@example.com\n",
                             "hr.csv", NULL),
                     0);
    assert_int_equal(ts_count(f.ts), 4);
    expect_req(&f, 0, "DELETE", "/api/1/employee_directory/HR", "", NULL);
    expect_auth(&f, 0, 1);
    expect_req(
        &f, 1, "POST", "/api/1/employee_batch_imports",
        "[{\"EmployeeId\":\"1\",\"Source\":\"HR\",\"FirstName\":\"Alice\",\"LastName\":\"Smith\","
        "\"Email\":\"alice@example.com\"},"
        "{\"EmployeeId\":\"carol@example.com\",\"Source\":\"HR\",\"FirstName\":\"Carol\","
        "\"LastName\":\"Jones\",\"Email\":\"carol@example.com\"}]",
        "application/json; charset=utf-8");
    expect_auth(&f, 1, 1);
    /* the commit guard reads the source's live count first */
    expect_req(&f, 2, "GET", "/api/1/employees?source=HR", "", NULL);
    expect_req(&f, 3, "POST", "/api/1/employee_directory", "Source=HR",
               "application/x-www-form-urlencoded");
    expect_auth(&f, 3, 1);
    assert_int_equal(f.st.records, 3);
    assert_int_equal(f.st.sent, 2);
    assert_int_equal(f.st.invalid, 1);
    assert_int_equal(f.st.dead_lettered, 1);
    assert_int_equal(f.st.commit, 1);
    assert_int_equal(osc_delivery_exit_code(&f.st), 65);
    dl = dead_letters(&f);
    assert_int_equal(json_array_size(dl), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(dl, 0), "record"), "first_name")),
                        "Bob");
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(dl, 0), "reason")),
                           "no EmployeeId or Email"));
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(json_array_get(dl, 0), "source"), "line")),
                     3);
    json_decref(dl);
    teardown_fx(&f);
}

static void test_batches_and_failed_commit(void **state)
{
    struct fx f = {0};
    struct osc_buf in;
    struct ts_response bad = {422, "Content-Type: application/json\n", "{\"error\":\"invalid\"}", 0,
                              0};
    json_t *dl;
    (void)state;

    setup_cfg(&f, EMP_DEST);
    osc_buf_init(&in, 1 << 20);
    for (int i = 0; i < 250; i++)
        osc_buf_printf(&in, "{\"email\":\"u%d@x.io\"}\n", i);
    ts_push(f.ts, &(struct ts_response){200, NULL, "{}", 0, 0}); /* DELETE */
    ts_push(f.ts, &(struct ts_response){200, NULL, "{}", 0, 0});
    ts_push(f.ts, &bad);
    assert_int_equal(deliver(&f, "employees", osc_buf_str(&in), "u.jsonl",
                             &(struct osc_delivery_opts){.seed = 1}),
                     0);
    osc_buf_free(&in);
    /* DELETE, three batches (100, 100, 50), no trigger */
    assert_int_equal(ts_count(f.ts), 4);
    expect_req(&f, 0, "DELETE", "/api/1/employee_directory/HR", NULL, NULL);
    for (size_t i = 1; i < 4; i++) {
        struct ts_request r;
        json_t *j;
        ts_get(f.ts, i, &r);
        assert_string_equal(r.url, "/api/1/employee_batch_imports");
        j = json_loads(r.body, 0, NULL);
        assert_int_equal(json_array_size(j), i == 3 ? 50 : 100);
        json_decref(j);
        ts_request_free(&r);
    }
    assert_int_equal(f.st.sent, 150);
    assert_int_equal(f.st.rejected, 100);
    assert_int_equal(f.st.commit, -1);
    assert_non_null(strstr(f.st.commit_reason, "100 record(s) the API refused"));
    assert_int_equal(osc_delivery_exit_code(&f.st), 65);
    dl = dead_letters(&f);
    assert_int_equal(json_array_size(dl), 100);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(dl, 0), "status")), 422);
    assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 0), "response")),
                        "{\"error\":\"invalid\"}");
    assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 0), "destination")),
                        "employees");
    json_decref(dl);
    teardown_fx(&f);
}

/* 1 when the server saw the directory import trigger. */
static int saw_trigger(struct fx *f)
{
    int found = 0;

    for (size_t i = 0; i < ts_count(f->ts); i++) {
        struct ts_request r;
        assert_int_equal(ts_get(f->ts, i, &r), 0);
        if (strcmp(r.method, "POST") == 0 && strcmp(r.url, "/api/1/employee_directory") == 0)
            found = 1;
        ts_request_free(&r);
    }
    return found;
}

static void deliver_fixture(struct fx *f, const char *fixture, const char *name)
{
    char *text = th_read_file(th_fixture(fixture));

    assert_non_null(text);
    deliver(f, "employees", text, name, NULL);
    free(text);
}

/* An input that stops early (broken array, unreadable CSV header) or a dead letter that cannot
 * be written must block the import trigger: it would delete everyone not yet staged. */
static void test_incomplete_input_blocks_commit(void **state)
{
    struct fx f = {0};
    char *dir;
    (void)state;

    setup_cfg(&f, EMP_DEST);
    deliver_fixture(&f, "delivery/array-missing-comma.json", "hr.json");
    assert_int_equal(f.st.sent, 1);
    assert_int_equal(f.st.malformed, 1);
    assert_false(saw_trigger(&f));
    assert_int_equal(f.st.commit, -1);
    assert_non_null(strstr(f.st.commit_reason, "could not be read completely"));
    assert_int_equal(osc_delivery_exit_code(&f.st), 65);
    teardown_fx(&f);

    setup_cfg(&f, EMP_DEST);
    deliver_fixture(&f, "delivery/csv-bad-header.csv", "hr.csv");
    assert_int_equal(f.st.sent, 0);
    assert_int_equal(f.st.malformed, 1);
    assert_false(saw_trigger(&f));
    assert_int_equal(f.st.commit, -1);
    teardown_fx(&f);

    /* the dead-letter path is a directory: the invalid row cannot be recorded */
    setup_cfg(&f, EMP_DEST);
    dir = strdup(f.dl_path);
    assert_int_equal(mkdir(dir, 0700), 0);
    deliver(&f, "employees", "employee_id,first_name,email\n2,Bob,b@example.com\n,NoId,\n",
            "hr.csv", NULL);
    assert_int_equal(f.st.dead_letter_error, 1);
    assert_int_equal(f.st.sent, 1);
    assert_false(saw_trigger(&f));
    assert_int_equal(f.st.commit, -1);
    assert_non_null(strstr(f.st.commit_reason, "dead letter could not be written"));
    assert_int_equal(osc_delivery_exit_code(&f.st), 74);
    rmdir(dir);
    free(dir);
    teardown_fx(&f);
}

/* A request that cannot be built (here: a key longer than any header may carry) is given up
 * and dead-lettered; it was requeued forever. */
static void test_submit_error_gives_up(void **state)
{
    struct fx f = {0};
    struct osc_err err = {0};
    char *yaml = NULL, *path;
    json_t *dl;
    char key[5001];
    (void)state;

    alarm(120);
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    f.ts = ts_start();
    assert_non_null(f.ts);
    f.dl_path = th_write_file("out.dead.jsonl", "");
    remove(f.dl_path);
    assert_true(asprintf(&yaml,
                         "officespace:\n  hostname: acme\n  base_url: %s\n  api_key: %s\n"
                         "destinations:\n  d:\n    url: /api/1/things\n    dead_letter: %s\n"
                         "    retry: {base: 5ms, cap: 20ms}\n",
                         ts_url(f.ts), key, f.dl_path) > 0);
    if (osc_config_load_string(yaml, strlen(yaml), "t.yaml", &f.cfg, &err))
        fail_msg("%s", err.msg);
    free(yaml);
    f.d = osc_delivery_new(f.cfg, "d", NULL, &err);
    assert_non_null(f.d);
    path = th_write_file("in.jsonl", "{\"id\":1}\n{\"id\":2}\n");
    assert_int_equal(osc_delivery_feed(f.d, path, OSC_RECORDS_AUTO, 0, &err), 0);
    free(path);
    osc_delivery_finish(f.d);
    osc_delivery_get_stats(f.d, &f.st);
    alarm(0);
    assert_int_equal(ts_count(f.ts), 0);
    assert_int_equal(f.st.unavailable, 2);
    assert_int_equal(osc_delivery_exit_code(&f.st), 69);
    dl = dead_letters(&f);
    assert_int_equal(json_array_size(dl), 2);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(dl, 0), "reason")),
                           "could not be sent"));
    json_decref(dl);
    teardown_fx(&f);
}

static void test_retry_and_retry_after(void **state)
{
    struct fx f = {0};
    int64_t t0;
    (void)state;

    setup_cfg(&f, "  d:\n    url: /api/1/things\n    retry: {base: 5ms, cap: 20ms}\n"
                  "    batch: {enabled: true}\n");
    ts_push(f.ts, &(struct ts_response){500, NULL, "oops", 0, 0});
    ts_push(f.ts,
            &(struct ts_response){200, NULL, "{\"accepted\":true,\"padding\":\"xxxxxxxxxxxxxxxx\"}",
                                  0, 1}); /* reset mid-body */
    ts_push(f.ts, &(struct ts_response){429, "Retry-After: 1\n", "slow down", 0, 0});
    t0 = osc_clock_mono_ms(NULL);
    deliver(&f, "d", "{\"a\":1}\n{\"a\":2}\n", "a.jsonl", NULL);
    /* the pause asked by Retry-After was honoured */
    assert_true(osc_clock_mono_ms(NULL) - t0 >= 950);
    assert_int_equal(ts_count(f.ts), 4);
    for (size_t i = 0; i < 4; i++)
        expect_req(&f, i, "POST", "/api/1/things", "[{\"a\":1},{\"a\":2}]",
                   "application/json; charset=utf-8");
    assert_int_equal(f.st.sent, 2);
    assert_int_equal(f.st.retries, 3);
    assert_int_equal(f.st.requests, 4);
    assert_int_equal(osc_delivery_exit_code(&f.st), 0);
    teardown_fx(&f);

    /* a 503 storm exhausts the attempts: dead letters, exit 69 */
    setup_cfg(&f,
              "  d:\n    url: /api/1/things\n    retry: {base: 1ms, cap: 2ms, max_attempts: 3}\n");
    ts_set_default(f.ts, &(struct ts_response){503, NULL, "down", 0, 0});
    deliver(&f, "d", "{\"a\":1}\n", "a.jsonl", NULL);
    assert_int_equal(ts_count(f.ts), 3);
    assert_int_equal(f.st.unavailable, 1);
    assert_int_equal(f.st.dead_lettered, 1);
    assert_int_equal(osc_delivery_exit_code(&f.st), 69);
    teardown_fx(&f);
}

static void test_auth_refused(void **state)
{
    struct fx f = {0};
    struct osc_buf in;
    (void)state;

    setup_cfg(&f, EMP_DEST);
    ts_set_default(f.ts,
                   &(struct ts_response){401, "WWW-Authenticate: Token realm=\"Application\"\n",
                                         "HTTP Token: Access denied.", 0, 0});
    osc_buf_init(&in, 1 << 20);
    for (int i = 0; i < 500; i++)
        osc_buf_printf(&in, "{\"email\":\"u%d@x.io\"}\n", i);
    assert_int_equal(deliver(&f, "employees", osc_buf_str(&in), "u.jsonl", NULL), OSC_EAUTH);
    osc_buf_free(&in);
    /* the staging DELETE was refused: nothing else was sent */
    assert_int_equal(ts_count(f.ts), 1);
    expect_req(&f, 0, "DELETE", "/api/1/employee_directory/HR", NULL, NULL);
    assert_true(f.st.auth_failed);
    assert_int_equal(f.st.sent, 0);
    assert_int_equal(f.st.dead_lettered, 0);
    assert_int_equal(osc_delivery_exit_code(&f.st), 77);
    teardown_fx(&f);
}

static char urls_seen[1024];

static void note_url(void *ud, const struct osc_delivery_call *call)
{
    (void)ud;
    if (strlen(urls_seen) + strlen(call->url) + 2 < sizeof(urls_seen)) {
        strcat(urls_seen, call->url);
        strcat(urls_seen, "\n");
    }
}

static void test_manual_options(void **state)
{
    struct fx f = {0};
    struct ts_request r;
    char v[128];
    json_t *dl;
    (void)state;

    setup_cfg(&f, "  d:\n    url: /api/1/employees/{id}\n    method: PUT\n    max_in_flight: 1\n"
                  "    batch: {enabled: false}\n    exclude: [id, secret.pin]\n"
                  "    headers: 'X-Tenant: acme, X-Trace:1'\n");
    urls_seen[0] = '\0';
    deliver(&f, "d",
            "{\"id\":\"a b/1\",\"title\":\"T\",\"secret\":{\"pin\":1234,\"keep\":true}}\n"
            "{\"title\":\"no id\"}\n"
            "{\"id\":7,\"title\":\"U\"}\n",
            "m.jsonl", &(struct osc_delivery_opts){.on_call = note_url});
    assert_int_equal(ts_count(f.ts), 2);
    /* the field value is percent-encoded in the URL sent (the server sees it decoded) */
    assert_non_null(strstr(urls_seen, "/api/1/employees/a%20b%2F1\n"));
    expect_req(&f, 0, "PUT", "/api/1/employees/a b/1",
               "{\"title\":\"T\",\"secret\":{\"keep\":true}}", "application/json; charset=utf-8");
    expect_req(&f, 1, "PUT", "/api/1/employees/7", "{\"title\":\"U\"}", NULL);
    ts_get(f.ts, 0, &r);
    assert_int_equal(ts_header(&r, "x-tenant", v, sizeof(v)), 0);
    assert_string_equal(v, "acme");
    assert_int_equal(ts_header(&r, "x-trace", v, sizeof(v)), 0);
    assert_string_equal(v, "1");
    ts_request_free(&r);
    expect_auth(&f, 0, 1);
    dl = dead_letters(&f);
    assert_int_equal(json_array_size(dl), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 0), "reason")),
                        "no value for {id} in the url");
    json_decref(dl);
    teardown_fx(&f);

    /* form and ndjson, DELETE without a body, an absolute foreign URL gets no key */
    setup_cfg(
        &f, "  form:\n    url: /api/1/seats/{seat}/assets\n    format: form\n    exclude: [seat]\n"
            "  nd:\n    url: http://127.0.0.1:1/never\n    format: ndjson\n"
            "  del:\n    url: /api/1/employees/{id}\n    method: DELETE\n    batch: {enabled: "
            "false}\n");
    deliver(&f, "form", "{\"seat\":5,\"name\":\"Desk phone & dock\",\"n\":1}\n", "f.jsonl", NULL);
    expect_req(&f, 0, "POST", "/api/1/seats/5/assets", "name=Desk%20phone%20%26%20dock&n=1",
               "application/x-www-form-urlencoded");
    osc_delivery_free(f.d);
    deliver(&f, "del", "{\"id\":9}\n", "d.jsonl", NULL);
    expect_req(&f, 1, "DELETE", "/api/1/employees/9", "", NULL);
    teardown_fx(&f);

    setup_cfg(&f, "  nd:\n    url: PLACEHOLDER/ingest\n    format: ndjson\n");
    {
        /* an absolute URL on another host: ndjson body, no API key */
        char *text = NULL;
        struct osc_err err;
        struct ts_server *other = ts_start();
        osc_config_free(f.cfg);
        assert_true(asprintf(&text,
                             "officespace: {hostname: acme, base_url: http://127.0.0.1:9, "
                             "api_key: " KEY "}\ndestinations:\n  nd:\n    url: %s/ingest\n"
                             "    format: ndjson\n    batch: {enabled: true}\n"
                             "    dead_letter: %s\n",
                             ts_url(other), f.dl_path) > 0);
        assert_int_equal(osc_config_load_string(text, strlen(text), "t.yaml", &f.cfg, &err), 0);
        free(text);
        ts_stop(f.ts);
        f.ts = other;
    }
    deliver(&f, "nd", "{\"a\":1}\n{\"b\":2}\n", "n.jsonl", NULL);
    expect_req(&f, 0, "POST", "/ingest", "{\"a\":1}\n{\"b\":2}\n", "application/x-ndjson");
    expect_auth(&f, 0, 0);
    teardown_fx(&f);
}

static void test_partition_and_max_bytes(void **state)
{
    struct fx f = {0};
    (void)state;

    setup_cfg(&f,
              "  d:\n    url: /api/1/sites/{site}/things\n    batch: {enabled: true, size: 10}\n");
    deliver(&f, "d",
            "{\"site\":\"A\",\"n\":1}\n{\"site\":\"B\",\"n\":2}\n{\"site\":\"A\",\"n\":3}\n"
            "{\"site\":\"C\",\"n\":4}\n{\"site\":\"B\",\"n\":5}\n",
            "p.jsonl", NULL);
    assert_int_equal(ts_count(f.ts), 3);
    {
        int seen = 0;
        for (size_t i = 0; i < 3; i++) {
            struct ts_request r;
            ts_get(f.ts, i, &r);
            if (strcmp(r.url, "/api/1/sites/A/things") == 0)
                assert_string_equal(r.body, "[{\"site\":\"A\",\"n\":1},{\"site\":\"A\",\"n\":3}]"),
                    seen |= 1;
            else if (strcmp(r.url, "/api/1/sites/B/things") == 0)
                assert_string_equal(r.body, "[{\"site\":\"B\",\"n\":2},{\"site\":\"B\",\"n\":5}]"),
                    seen |= 2;
            else if (strcmp(r.url, "/api/1/sites/C/things") == 0)
                assert_string_equal(r.body, "[{\"site\":\"C\",\"n\":4}]"), seen |= 4;
            ts_request_free(&r);
        }
        assert_int_equal(seen, 7);
    }
    teardown_fx(&f);

    /* max_bytes cuts batches before they grow past it; a record larger than it is rejected */
    setup_cfg(&f, "  d:\n    url: /x\n    batch: {enabled: true, size: 100, max_bytes: 256}\n");
    {
        struct osc_buf in;
        osc_buf_init(&in, 1 << 20);
        for (int i = 0; i < 10; i++)
            osc_buf_printf(&in, "{\"pad\":\"%060d\"}\n", i);
        osc_buf_printf(&in, "{\"pad\":\"%0300d\"}\n", 1);
        deliver(&f, "d", osc_buf_str(&in), "b.jsonl", NULL);
        osc_buf_free(&in);
    }
    assert_int_equal(f.st.sent, 10);
    assert_int_equal(f.st.invalid, 1);
    assert_int_equal(ts_count(f.ts), 4); /* 3 + 3 + 3 + 1 records of 71 bytes */
    for (size_t i = 0; i < ts_count(f.ts); i++) {
        struct ts_request r;
        ts_get(f.ts, i, &r);
        assert_true(r.body_len <= 256);
        ts_request_free(&r);
    }
    teardown_fx(&f);
}

static void test_grouping(void **state)
{
    struct fx f = {0};
    json_t *dl;
    (void)state;

    setup_cfg(
        &f,
        "  prop:\n    url: /p\n    batch:\n      enabled: true\n      grouping: property\n      "
        "property_name: records\n"
        "      other_props: {mode: upsert, n: 3}\n"
        "  lua:\n    url: /l\n    batch:\n      enabled: true\n      grouping: code\n      code: "
        "|\n"
        "        function batch(records)\n"
        "          local ids = {}\n"
        "          for i, r in ipairs(records) do ids[i] = string.upper(r.id) end\n"
        "          return json.encode({count = #records, ids = ids}), 'application/vnd.x+json'\n"
        "        end\n"
        "  evil:\n    url: /e\n    batch:\n      enabled: true\n      grouping: code\n      code: "
        "|\n"
        "        function batch(records) return os.execute('touch /tmp/osc-pwned') end\n"
        "  spin:\n    url: /s\n    batch:\n      enabled: true\n      grouping: code\n      code: "
        "|\n"
        "        function batch(records) while true do end end\n");
    deliver(&f, "prop", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n", "g.jsonl", NULL);
    expect_req(&f, 0, "POST", "/p",
               "{\"records\":[{\"id\":\"a\"},{\"id\":\"b\"}],\"mode\":\"upsert\",\"n\":3}",
               "application/json; charset=utf-8");
    osc_delivery_free(f.d);
    deliver(&f, "lua", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n", "g.jsonl", NULL);
    assert_int_equal(ts_count(f.ts), 2);
    {
        struct ts_request r;
        json_t *j;
        ts_get(f.ts, 1, &r);
        assert_string_equal(r.url, "/l");
        j = json_loads(r.body, 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(j, "count")), 2);
        assert_string_equal(json_string_value(json_array_get(json_object_get(j, "ids"), 1)), "B");
        json_decref(j);
        ts_request_free(&r);
        expect_req(&f, 1, "POST", "/l", NULL, "application/vnd.x+json");
    }
    osc_delivery_free(f.d);
    /* the sandbox has no os: the batch fails, nothing is sent, records are dead-lettered */
    deliver(&f, "evil", "{\"id\":\"a\"}\n", "g.jsonl", NULL);
    osc_delivery_free(f.d);
    deliver(&f, "spin", "{\"id\":\"z\"}\n", "g.jsonl", NULL);
    assert_int_equal(ts_count(f.ts), 2);
    assert_int_equal(access("/tmp/osc-pwned", F_OK), -1);
    dl = dead_letters(&f);
    assert_int_equal(json_array_size(dl), 2);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(dl, 0), "reason")), "global 'os'"));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(dl, 1), "reason")),
                           "instruction limit"));
    json_decref(dl);
    teardown_fx(&f);

    /* io, require and load are not there either: code that needs them at load time is refused */
    {
        struct osc_config *cfg;
        struct osc_err err = {0};
        const char *y =
            "officespace: {hostname: acme, api_key: " KEY "}\ndestinations:\n"
            "  x:\n    url: /x\n    batch: {enabled: true, grouping: code, code: \"local f = "
            "io.open('/etc/passwd')\"}\n"
            "  y:\n    url: /y\n    batch: {enabled: true, grouping: code, code: "
            "\"require('os')\"}\n";
        assert_int_equal(osc_config_load_string(y, strlen(y), "t.yaml", &cfg, &err), 0);
        assert_null(osc_delivery_new(cfg, "x", NULL, &err));
        assert_int_equal(err.code, OSC_ECONFIG);
        assert_non_null(strstr(err.msg, "global 'io'"));
        assert_null(osc_delivery_new(cfg, "y", NULL, &err));
        assert_non_null(strstr(err.msg, "global 'require'"));
        osc_config_free(cfg);
        osc_log_secret_clear();
    }
}

#define LUA_DEST(name, extra, code)                                                                \
    "  " name ":\n    url: /" name                                                                 \
    "\n    batch:\n      enabled: true\n      grouping: code\n" extra "      code: |\n" code

/* Dead letter i's reason. */
static const char *dl_reason(json_t *dl, size_t i)
{
    const char *s = json_string_value(json_object_get(json_array_get(dl, i), "reason"));
    return s ? s : "";
}

/* The sandbox holds whatever the code does: no escape from the instruction limit (a pcall
 * loop, a finalizer), no crash on deep tables, odd error values or a full state. */
static void test_lua_sandbox_limits(void **state)
{
    struct fx f = {0};
    struct osc_buf in, want;
    json_t *dl;
    (void)state;

    alarm(300); /* an escape from the limit would hang: fail instead */
    setup_cfg(&f, LUA_DEST("pcallspin", "",
                           "        function batch(r)\n"
                           "          while true do pcall(function() while true do end end) end\n"
                           "        end\n") LUA_DEST("gc", "",
                                                     "        function batch(r)\n"
                                                     "          setmetatable({}, {__gc = "
                                                     "function() while true do end end})\n"
                                                     "          return '[]'\n"
                                                     "        end\n")
                      LUA_DEST("deep", "",
                               "        function batch(r)\n"
                               "          local t = {}\n"
                               "          for i = 1, 30 do t = {k = {t}} end\n"
                               "          return t\n"
                               "        end\n") LUA_DEST("deeper", "",
                                                         "        function batch(r)\n"
                                                         "          local t = {}\n"
                                                         "          for i = 1, 200 do t = {k = t} "
                                                         "end\n"
                                                         "          return t\n"
                                                         "        end\n")
                          LUA_DEST("errtab", "", "        function batch(r) error({}) end\n")
                              LUA_DEST("hog", "      size: 1\n",
                                       "        keep = {}\n"
                                       "        function batch(r)\n"
                                       "          keep[#keep + 1] = r\n"
                                       "          return '[]'\n"
                                       "        end\n"));
    deliver(&f, "pcallspin", "{\"id\":\"a\"}\n", "g.jsonl", NULL);
    osc_delivery_free(f.d);
    deliver(&f, "gc", "{\"id\":\"b\"}\n", "g.jsonl", NULL);
    osc_delivery_free(f.d);
    deliver(&f, "errtab", "{\"id\":\"c\"}\n", "g.jsonl", NULL);
    osc_delivery_free(f.d);
    deliver(&f, "deeper", "{\"id\":\"d\"}\n", "g.jsonl", NULL);
    osc_delivery_free(f.d);
    assert_int_equal(ts_count(f.ts), 0);
    dl = dead_letters(&f);
    assert_int_equal(json_array_size(dl), 4);
    assert_non_null(strstr(dl_reason(dl, 0), "instruction limit exceeded"));
    assert_non_null(strstr(dl_reason(dl, 1), "__gc metamethods are not allowed"));
    assert_non_null(strstr(dl_reason(dl, 2), "not a string"));
    assert_non_null(strstr(dl_reason(dl, 3), "nested too deeply"));
    json_decref(dl);

    /* 61 levels (90 Lua stack slots) while converting: the exact body arrives */
    deliver(&f, "deep", "{\"id\":\"e\"}\n", "g.jsonl", NULL);
    osc_delivery_free(f.d);
    osc_buf_init(&want, 1 << 16);
    for (int i = 0; i < 30; i++)
        osc_buf_adds(&want, "{\"k\":[");
    osc_buf_adds(&want, "{}");
    for (int i = 0; i < 30; i++)
        osc_buf_adds(&want, "]}");
    expect_req(&f, 0, "POST", "/deep", osc_buf_str(&want), NULL);
    osc_buf_free(&want);

    /* records kept across calls fill the state's 32 MiB: passing the next ones fails
     * cleanly (dead-lettered), it does not abort the process */
    osc_buf_init(&in, 64u << 20);
    for (int i = 0; i < 120; i++) {
        osc_buf_printf(&in, "{\"id\":\"%d\",\"pad\":\"", i);
        for (int k = 0; k < 300000; k++)
            osc_buf_addc(&in, 'x');
        osc_buf_adds(&in, "\"}\n");
    }
    deliver(&f, "hog", osc_buf_str(&in), "h.jsonl", NULL);
    osc_buf_free(&in);
    assert_true(f.st.sent > 0);
    assert_true(f.st.sent < 120);
    dl = dead_letters(&f);
    assert_non_null(strstr(dl_reason(dl, json_array_size(dl) - 1), "memory"));
    json_decref(dl);
    alarm(0);
    teardown_fx(&f);
}

static void test_webhook(void **state)
{
    struct fx f = {0};
    struct ts_server *hook = ts_start();
    char yaml[512];
    struct ts_request r;
    json_t *j;
    (void)state;

    snprintf(yaml, sizeof(yaml),
             "  d:\n    url: /api/1/things\n    response_webhook: %s/hook\n"
             "    retry: {base: 1ms, cap: 2ms}\n",
             ts_url(hook));
    setup_cfg(&f, yaml);
    ts_push(f.ts, &(struct ts_response){503, "X-Why: busy\n", "busy", 0, 0});
    ts_push(f.ts,
            &(struct ts_response){201, "Content-Type: application/json\n", "{\"ok\":1}", 0, 0});
    deliver(&f, "d", "{\"a\":1}\n", "w.jsonl", NULL);
    assert_int_equal(f.st.sent, 1);
    assert_int_equal(ts_count(hook), 2);
    /* two reports may be in flight at once: find the one for the accepted attempt */
    ts_get(hook, 1, &r);
    if (!strstr(r.body, "\"status\":201")) {
        ts_request_free(&r);
        ts_get(hook, 0, &r);
    }
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.url, "/hook");
    assert_null(strstr(r.body, KEY));
    assert_int_equal(ts_header(&r, "authorization", (char[8]){0}, 8), -1);
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "destination")), "d");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_non_null(strstr(json_string_value(json_object_get(j, "url")), "/api/1/things"));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
    assert_int_equal(json_integer_value(json_object_get(j, "records")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "response_body")), "{\"ok\":1}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "response_headers"), "content-type")),
        "application/json");
    assert_non_null(strstr(json_string_value(json_object_get(j, "request_id")), "osc-"));
    assert_true(json_is_integer(json_object_get(j, "duration_ms")));
    json_decref(j);
    ts_request_free(&r);
    ts_get(hook, 0, &r);
    if (!strstr(r.body, "\"status\":503")) {
        ts_request_free(&r);
        ts_get(hook, 1, &r);
    }
    j = json_loads(r.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 503);
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), "retry");
    json_decref(j);
    ts_request_free(&r);
    teardown_fx(&f);

    /* a failing webhook: every delivery still goes through */
    ts_set_default(hook, &(struct ts_response){500, NULL, "hook down", 0, 0});
    snprintf(yaml, sizeof(yaml),
             "  d:\n    url: /api/1/things\n    response_webhook: %s/hook\n"
             "    batch: {enabled: true, size: 1}\n",
             ts_url(hook));
    setup_cfg(&f, yaml);
    deliver(&f, "d", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n", "w.jsonl", NULL);
    assert_int_equal(f.st.sent, 3);
    assert_int_equal(ts_count(f.ts), 3);
    assert_int_equal(f.st.webhook_failed, 3);
    assert_int_equal(osc_delivery_exit_code(&f.st), 0);
    teardown_fx(&f);
    ts_stop(hook);
}

/* 1 when the preview of destination dest shows the key being sent. */
static int preview_has_key(struct fx *f, const char *dest, const char *input)
{
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    struct osc_delivery_opts o = {.preview = m};
    int has;

    deliver(f, dest, input, "k.jsonl", &o);
    osc_delivery_free(f->d);
    f->d = NULL;
    fclose(m);
    assert_non_null(strstr(out, "POST "));
    has = strstr(out, "Authorization: Token token=***") != NULL;
    free(out);
    return has;
}

/* The key goes to OfficeSpace hosts only, decided on the whole host name and, for a URL
 * template, on the part fixed before any record field. */
static void test_key_only_to_officespace(void **state)
{
    struct fx f = {0};
    (void)state;

    setup_cfg(&f, "  real:\n    url: https://acme.officespacesoftware.com/api/1/x\n"
                  "  realtmpl:\n    url: https://{hostname}.officespacesoftware.com/api/1/x/{id}\n"
                  "  bare:\n    url: https://officespacesoftware.com/api/1/x\n"
                  "  upper:\n    url: https://ACME.OfficeSpaceSoftware.com/api/1/x\n"
                  "  typo:\n    url: https://x.officespacesoftware.co/api/1/x\n"
                  "  glued:\n    url: https://evilofficespacesoftware.com/api/1/x\n"
                  "  userinfo:\n    url: https://acme.officespacesoftware.com@evil.example/x\n"
                  "  fieldhost:\n    url: https://{id}.officespacesoftware.com/api/1/x\n"
                  "  fieldtail:\n    url: https://acme.officespacesoftware.co{id}/x\n"
                  "  relative:\n    url: /api/1/x/{id}\n");
    assert_true(preview_has_key(&f, "real", "{\"id\":\"1\"}\n"));
    assert_true(preview_has_key(&f, "realtmpl", "{\"id\":\"1\"}\n"));
    assert_true(preview_has_key(&f, "bare", "{\"id\":\"1\"}\n"));
    assert_true(preview_has_key(&f, "upper", "{\"id\":\"1\"}\n"));
    assert_true(preview_has_key(&f, "relative", "{\"id\":\"1\"}\n"));
    assert_false(preview_has_key(&f, "typo", "{\"id\":\"1\"}\n"));
    assert_false(preview_has_key(&f, "glued", "{\"id\":\"1\"}\n"));
    assert_false(preview_has_key(&f, "userinfo", "{\"id\":\"1\"}\n"));
    /* a record could choose the host: evil.example/x?.officespacesoftware.com */
    assert_false(preview_has_key(&f, "fieldhost", "{\"id\":\"1\"}\n"));
    assert_false(preview_has_key(&f, "fieldtail", "{\"id\":\"m\"}\n"));
    teardown_fx(&f);

    /* a trigger on another host than the REST base does not get the key either */
    {
        struct osc_err err = {0};
        char *yaml = NULL;
        f.ts = ts_start();
        assert_non_null(f.ts);
        ts_set_default(f.ts,
                       &(struct ts_response){200, NULL, "{\"count\":0,\"response\":[]}", 0, 0});
        f.dl_path = th_write_file("out.dead.jsonl", "");
        remove(f.dl_path);
        assert_true(
            asprintf(&yaml,
                     "officespace:\n  hostname: acme\n  base_url: %s\n  api_key: " KEY "\n"
                     "destinations:\n"
                     "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                     "    commit: commit\n    dead_letter: %s\n"
                     "  commit:\n    template: trigger_directory_import\n    source_name: HR\n"
                     "    url: http://localhost:%d/api/1/employee_directory\n",
                     ts_url(f.ts), f.dl_path, ts_port(f.ts)) > 0);
        if (osc_config_load_string(yaml, strlen(yaml), "t.yaml", &f.cfg, &err))
            fail_msg("%s", err.msg);
        free(yaml);
        deliver(&f, "employees", "{\"employee_id\":\"1\",\"email\":\"a@example.com\"}\n", "e.jsonl",
                NULL);
        assert_int_equal(ts_count(f.ts), 4);
        expect_req(&f, 0, "DELETE", "/api/1/employee_directory/HR", NULL, NULL);
        expect_auth(&f, 0, 1);
        expect_auth(&f, 1, 1);
        expect_req(&f, 2, "GET", "/api/1/employees?source=HR", NULL, NULL);
        expect_auth(&f, 2, 1);
        expect_req(&f, 3, "POST", "/api/1/employee_directory", "Source=HR", NULL);
        expect_auth(&f, 3, 0);
        assert_int_equal(f.st.commit, 1);
        teardown_fx(&f);
    }
}

/* Whatever holds the key (a record field in the URL or the JSON body, a header) is shown as *** */
static void test_preview_redacts(void **state)
{
    struct fx f = {0};
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    struct osc_delivery_opts o = {.preview = m};
    (void)state;

    setup_cfg(&f, "  echo:\n    url: /x/{id}\n    headers: {X-Copy: \"" KEY "\"}\n");
    deliver(&f, "echo", "{\"id\":\"" KEY "\",\"note\":\"key " KEY "\"}\n", "r.jsonl", &o);
    fclose(m);
    assert_int_equal(ts_count(f.ts), 0);
    assert_non_null(strstr(out, "POST "));
    assert_null(strstr(out, KEY));
    assert_non_null(strstr(out, "/x/***"));
    assert_non_null(strstr(out, "X-Copy: ***"));
    assert_non_null(strstr(out, "\"key ***\""));
    free(out);
    teardown_fx(&f);
}

static void test_preview_and_inactive(void **state)
{
    struct fx f = {0};
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    struct osc_delivery_opts o = {.preview = m};
    struct osc_err err;
    (void)state;

    setup_cfg(&f, EMP_DEST "  off:\n    url: /x\n    active: false\n");
    deliver(&f, "employees", "{\"employee_id\":\"1\",\"name\":\"Ann Lee\"}\n", "p.jsonl", &o);
    fclose(m);
    assert_int_equal(ts_count(f.ts), 0);
    assert_null(strstr(out, KEY));
    assert_non_null(strstr(out, "DELETE "));
    {
        char want[1024];
        snprintf(
            want, sizeof(want),
            "DELETE %s/api/1/employee_directory/HR\nAuthorization: Token token=***\n\n"
            "POST %s/api/1/employee_batch_imports\nAuthorization: Token token=***\n"
            "Content-Type: application/json; charset=utf-8\n\n[\n  {\n    \"EmployeeId\": \"1\",\n"
            "    \"Source\": \"HR\",\n    \"FirstName\": \"Ann\",\n    \"LastName\": \"Lee\"\n  "
            "}\n]\n\n"
            "POST %s/api/1/employee_directory\nAuthorization: Token token=***\n"
            "Content-Type: application/x-www-form-urlencoded\n\nSource=HR\n\n",
            ts_url(f.ts), ts_url(f.ts), ts_url(f.ts));
        assert_string_equal(out, want);
    }
    free(out);
    assert_null(osc_delivery_new(f.cfg, "off", NULL, &err));
    assert_int_equal(err.code, OSC_ECONFIG);
    assert_non_null(strstr(err.msg, "inactive"));
    /* configure, preview and test, then activate: preview and test may use it */
    {
        struct osc_delivery_opts po = {.preview = stderr, .allow_inactive = 1};
        struct osc_delivery *d = osc_delivery_new(f.cfg, "off", &po, &err);
        assert_non_null(d);
        osc_delivery_free(d);
    }
    teardown_fx(&f);
}

/* Issue 10: a TLS certificate that cannot be verified is not a network blip. The destination
 * stops at the first attempt (400 records took 139 s of retries, every one dead-lettered):
 * nothing is dead-lettered, nothing more is tried, exit 69. */
static void test_permanent_tls_stops(void **state)
{
    struct fx f = {0};
    char *cert = NULL, *key = NULL, *cpem, *kpem, *yaml = NULL;
    struct osc_buf in;
    struct osc_err err = {0};
    (void)state;

    assert_int_equal(th_make_cert(&cert, &key), 0);
    cpem = th_read_file(cert);
    kpem = th_read_file(key);
    f.ts = ts_start_tls(cpem, kpem);
    assert_non_null(f.ts);
    f.dl_path = th_write_file("out.dead.jsonl", "");
    remove(f.dl_path);
    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: " KEY "\n"
                         "destinations:\n"
                         "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                         "    dead_letter: %s\n    retry: {base: 2s, cap: 2s, max_attempts: 10}\n",
                         ts_url(f.ts), f.dl_path) > 0);
    if (osc_config_load_string(yaml, strlen(yaml), "t.yaml", &f.cfg, &err))
        fail_msg("%s", err.msg);
    free(yaml);
    osc_buf_init(&in, 1 << 20);
    for (int i = 0; i < 400; i++)
        osc_buf_printf(&in, "{\"email\":\"u%d@x.io\"}\n", i);
    assert_int_equal(deliver(&f, "employees", osc_buf_str(&in), "u.jsonl", NULL), OSC_EUNAVAIL);
    osc_buf_free(&in);
    assert_int_equal(f.st.fatal, 1);
    assert_int_equal(f.st.requests, 1); /* the staging DELETE, once: never retried */
    assert_int_equal(f.st.retries, 0);
    assert_int_equal(f.st.sent, 0);
    assert_int_equal(f.st.dead_lettered, 0);
    assert_int_equal(ts_count(f.ts), 0); /* the handshake failed: no request got through */
    assert_int_equal(osc_delivery_exit_code(&f.st), 69);
    assert_int_equal(access(f.dl_path, F_OK), -1);
    free(cpem);
    free(kpem);
    free(cert);
    free(key);
    teardown_fx(&f);
}

/* Issue 10: adaptive concurrency (max_in_flight: auto, the default) against a server that
 * answers 429 (no Retry-After) to every request beyond 8 in flight: every record goes through,
 * and osconnect never has more than 2 x 8 requests in flight. */
static void test_adaptive_respects_a_limit(void **state)
{
    struct fx f = {0};
    struct osc_buf in;
    struct ts_stats ss;
    (void)state;

    setup_cfg(&f, "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                  "    retry: {base: 10ms, cap: 100ms, max_attempts: 30}\n");
    ts_set_limit(f.ts, 8, -1);
    ts_set_delay(f.ts, 20);
    osc_buf_init(&in, 1 << 22);
    for (int i = 0; i < 20000; i++)
        osc_buf_printf(&in, "{\"employee_id\":\"%d\",\"email\":\"u%d@x.io\"}\n", i, i);
    assert_int_equal(deliver(&f, "employees", osc_buf_str(&in), "u.jsonl", NULL), 0);
    osc_buf_free(&in);
    ts_get_stats(f.ts, &ss);
    printf("# 201 requests through a limit of 8: osconnect had at most %llu in flight; "
           "%llu answered 429, %llu retries\n",
           (unsigned long long)f.st.max_in_flight, (unsigned long long)ss.answered_429,
           (unsigned long long)f.st.retries);
    assert_int_equal(f.st.sent, 20000);
    assert_int_equal(osc_delivery_exit_code(&f.st), 0);
    assert_true(f.st.max_in_flight <= 16);
    assert_true(f.st.max_in_flight >= 4);
    assert_true(ss.max_in_flight <= 8);
    teardown_fx(&f);
}

/* upsert_employees uses exclude: the listed columns are not sent, the dead letter keeps all. */
static void test_exclude_upsert(void **state)
{
    struct fx f = {0};
    (void)state;

    setup_cfg(&f, "  employees:\n    template: upsert_employees\n    source_name: HR\n"
                  "    exclude: [title, department]\n");
    deliver(&f, "employees",
            "{\"employee_id\":\"1\",\"email\":\"a@x.io\",\"title\":\"CEO\",\"department\":"
            "\"Ops\",\"first_name\":\"Ann\"}\n",
            "e.jsonl", NULL);
    assert_int_equal(ts_count(f.ts), 2);
    expect_req(&f, 1, "POST", "/api/1/employee_batch_imports",
               "[{\"EmployeeId\":\"1\",\"Source\":\"HR\",\"FirstName\":\"Ann\","
               "\"Email\":\"a@x.io\"}]",
               NULL);
    teardown_fx(&f);
}

struct fates {
    unsigned accepted, dead, retry;
    uint64_t tags;
};

static void count_fate(void *ud, uint64_t tag, enum osc_delivery_fate fate)
{
    struct fates *f = ud;
    f->tags += tag;
    if (fate == OSC_DELIVERY_ACCEPTED)
        f->accepted++;
    else if (fate == OSC_DELIVERY_DEAD_LETTERED)
        f->dead++;
    else
        f->retry++;
}

/* Stream sources: every tagged record hears its fate once; a partial batch goes after
 * flush_interval without more input; a batch that gives up is left to the source. */
static void test_tagged_fates_and_flush(void **state)
{
    struct fx f = {0};
    struct fates fates = {0};
    struct osc_delivery_opts o = {.on_record = count_fate, .ud = &fates, .flush_interval_ms = 1};
    struct osc_records_reader *r;
    struct osc_record rec;
    struct osc_err err = {0};
    const char *in = "{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"x\":1}\n{\"id\":\"4\"}\n";
    uint64_t tag = 0;
    (void)state;

    setup_cfg(&f, "  things:\n    url: /api/1/things/{id}\n    batch: {enabled: true, size: 10}\n"
                  "    retry: {base: 1ms, cap: 2ms, max_attempts: 2}\n");
    f.d = osc_delivery_new(f.cfg, "things", &o, &err);
    assert_non_null(f.d);
    /* two answers 200, then 503 for ever: one of the three batches gives up */
    ts_set_default(f.ts, &(struct ts_response){503, NULL, "{}", 0, 0});
    ts_push(f.ts, &(struct ts_response){200, NULL, "{}", 0, 0});
    ts_push(f.ts, &(struct ts_response){200, NULL, "{}", 0, 0});
    r = osc_records_open_mem(in, strlen(in), "s", OSC_RECORDS_JSONL, &err);
    while (osc_records_next(r, &rec, &err) == 1)
        assert_int_equal(osc_delivery_add_tagged(f.d, &rec, ++tag), 0);
    osc_records_close(r);
    /* record 3 has no {id}: dead-lettered at once; the others wait in open batches */
    assert_int_equal(fates.dead, 1);
    assert_int_equal(ts_count(f.ts), 0);
    for (int i = 0; i < 200 && fates.accepted + fates.retry < 3; i++)
        osc_delivery_poll(f.d, 10);
    /* three URLs, three batches: two accepted, one given up after 2 attempts */
    assert_int_equal(fates.accepted, 2);
    assert_int_equal(fates.retry, 1);
    assert_int_equal(ts_count(f.ts), 4);
    assert_int_equal(fates.tags, 1 + 2 + 3 + 4);
    osc_delivery_finish(f.d);
    osc_delivery_get_stats(f.d, &f.st);
    assert_int_equal(f.st.dead_lettered, 1); /* only the local reject: the source keeps the rest */
    teardown_fx(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsert_and_commit),
        cmocka_unit_test(test_batches_and_failed_commit),
        cmocka_unit_test(test_incomplete_input_blocks_commit),
        cmocka_unit_test(test_submit_error_gives_up),
        cmocka_unit_test(test_retry_and_retry_after),
        cmocka_unit_test(test_auth_refused),
        cmocka_unit_test(test_manual_options),
        cmocka_unit_test(test_partition_and_max_bytes),
        cmocka_unit_test(test_grouping),
        cmocka_unit_test(test_lua_sandbox_limits),
        cmocka_unit_test(test_webhook),
        cmocka_unit_test(test_key_only_to_officespace),
        cmocka_unit_test(test_preview_redacts),
        cmocka_unit_test(test_preview_and_inactive),
        cmocka_unit_test(test_permanent_tls_stops),
        cmocka_unit_test(test_adaptive_respects_a_limit),
        cmocka_unit_test(test_exclude_upsert),
        cmocka_unit_test(test_tagged_fates_and_flush),
    };
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
