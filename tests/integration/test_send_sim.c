/*
 * test_send_sim.c - `osconnect send`, `preview` and `test` end to end: the
 * real binary against the simulator (`osconnect sim`). States what the
 * simulator received (/_sim/requests), what it holds afterwards
 * (/_sim/employees, /_sim/resources), the dead letters and exit codes, and
 * that the API key never reaches any output.
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
#include <unistd.h>

#include "harness.h"
#include "osc/buf.h"
#include "osc/clock.h"
#include "testserver.h"

static struct th_sim sim;
static char os_url[256];

static int group_setup(void **state)
{
    (void)state;
    if (th_sim_start(&sim, NULL) != 0)
        return -1;
    snprintf(os_url, sizeof(os_url), "%s", sim.officespace_url);
    return 0;
}

/* cmocka ignores a failing group teardown: keep the simulator's exit status
 * (a sanitizer report or a leak in it) for main() */
static int sim_exit;

static int group_teardown(void **state)
{
    (void)state;
    sim_exit = th_sim_stop(&sim);
    th_tmpdir_cleanup();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    return th_sim_reset(&sim);
}

static void set_faults(const char *rules)
{
    char url[300];
    snprintf(url, sizeof(url), "%s/_sim/faults", os_url);
    assert_int_equal(th_http("POST", url, rules, NULL), 200);
}

/* A config with the two templates plus `extra` destinations; dead letters in dl. */
static char *config(const char *extra, const char *dl, const char *key)
{
    char *text = NULL, *path;
    assert_true(
        asprintf(&text,
                 "officespace:\n  hostname: acme\n  base_url: %s\n  api_key: %s\n"
                 "destinations:\n"
                 "  employees:\n    template: upsert_employees\n    source_name: HRIS\n"
                 "    batch: {size: 20}\n    dead_letter: %s\n    max_in_flight: 1\n"
                 "    retry: {base: 5ms, cap: 50ms, max_attempts: 4}\n"
                 "  commit:\n    template: trigger_directory_import\n    source_name: HRIS\n"
                 "    retry: {base: 5ms, cap: 50ms, max_attempts: 4}\n"
                 "%s",
                 os_url, key ? key : TH_SIM_OS_KEY, dl, extra ? extra : "") > 0);
    path = th_write_file("send.yaml", text);
    free(text);
    return path;
}

static json_t *sim_json(const char *what)
{
    char url[300];
    snprintf(url, sizeof(url), "%s/_sim/%s", os_url, what);
    return th_get_json(url);
}

/* "METHOD path" of every request the simulator answered, one per line. */
static char *request_lines(void)
{
    json_t *j = sim_json("requests"), *r;
    size_t i, len = 0;
    char *out = calloc(1, 1 << 16);
    json_array_foreach(json_object_get(j, "requests"), i, r)
    {
        len += (size_t)snprintf(out + len, (1 << 16) - len, "%s %s %lld\n",
                                json_string_value(json_object_get(r, "method")),
                                json_string_value(json_object_get(r, "path")),
                                json_integer_value(json_object_get(r, "status")));
    }
    json_decref(j);
    return out;
}

static void assert_no_key(const struct th_result *res)
{
    assert_null(strstr(res->out, TH_SIM_OS_KEY));
    assert_null(strstr(res->err, TH_SIM_OS_KEY));
}

static size_t count_lines(const char *path)
{
    char *t = th_read_file(path);
    size_t n = 0;
    for (char *p = t; p && *p; p++)
        n += *p == '\n';
    free(t);
    return n;
}

static const char *sample_csv(void)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/delivery/hr-50.csv", getenv("OSC_FIXTURES"));
    return path;
}

/* How many directory imports of source HRIS the simulator applied, and how many it holds live. */
static void hris_counts(json_int_t *commits, json_int_t *live, json_int_t *deactivated)
{
    json_t *emp = sim_json("employees");
    json_t *src = json_object_get(json_object_get(emp, "sources"), "HRIS");
    *commits = json_integer_value(json_object_get(src, "commits"));
    *live = json_integer_value(json_object_get(src, "live"));
    *deactivated = json_integer_value(json_object_get(src, "deactivated"));
    json_decref(emp);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_upsert_and_commit(void **state)
{
    char *dl = th_write_file("a.dead.jsonl", ""), *cfg, *reqs;
    const char *argv[] = {"send", "-c", NULL, "-d", "employees", "--commit", "commit", NULL, NULL};
    struct th_result res;
    json_t *emp;
    (void)state;

    remove(dl);
    cfg = config(NULL, dl, NULL);
    argv[2] = cfg;
    argv[7] = sample_csv();
    assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
    assert_int_equal(res.status, 0);
    assert_no_key(&res);
    assert_non_null(strstr(res.err, "50 records read, 50 sent"));
    assert_non_null(strstr(res.err, "commit: directory import triggered for source 'HRIS'"));
    th_result_free(&res);
    /* DELETE once, three batches (20, 20, 10), then the form-encoded trigger */
    reqs = request_lines();
    assert_string_equal(reqs, "DELETE /api/1/employee_directory/HRIS 200\n"
                              "POST /api/1/employee_batch_imports 200\n"
                              "POST /api/1/employee_batch_imports 200\n"
                              "POST /api/1/employee_batch_imports 200\n"
                              "GET /api/1/employees 200\n" /* the commit guard's count */
                              "POST /api/1/employee_directory 200\n");
    free(reqs);
    emp = sim_json("employees");
    assert_int_equal(json_integer_value(json_object_get(emp, "staged_total")), 0);
    {
        json_t *e;
        size_t i, from_hris = 0;
        json_array_foreach(json_object_get(emp, "live"), i, e)
        {
            const char *src = json_string_value(json_object_get(e, "source"));
            if (src && strcmp(src, "HRIS") == 0) {
                from_hris++;
                if (strcmp(json_string_value(json_object_get(e, "client_employee_id")), "1001") ==
                    0) {
                    assert_string_equal(json_string_value(json_object_get(e, "first_name")),
                                        "Alice");
                    assert_string_equal(json_string_value(json_object_get(e, "email")),
                                        "alice.smith@example.com");
                    assert_string_equal(json_string_value(json_object_get(e, "title")),
                                        "Software Engineer");
                }
            }
        }
        assert_int_equal(from_hris, 50);
    }
    json_decref(emp);
    assert_int_equal(access(dl, F_OK), -1); /* a clean run leaves no dead-letter file */
    free(cfg);
    free(dl);
}

static void test_commit_suppressed(void **state)
{
    char *dl = th_write_file("b.dead.jsonl", ""), *cfg, *reqs;
    const char *argv[] = {"send", "-c", NULL, "-d", "employees", "--commit", "commit", NULL, NULL};
    struct th_result res;
    json_t *j, *first;
    (void)state;

    remove(dl);
    cfg = config(NULL, dl, NULL);
    argv[2] = cfg;
    argv[7] = sample_csv();
    set_faults("422x1:path=/api/1/employee_batch_imports");
    assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
    assert_int_equal(res.status, 65);
    assert_non_null(
        strstr(res.err, "directory import NOT triggered: 20 record(s) the API refused"));
    assert_no_key(&res);
    th_result_free(&res);
    reqs = request_lines();
    assert_null(strstr(reqs, "POST /api/1/employee_directory "));
    assert_non_null(strstr(reqs, "POST /api/1/employee_batch_imports 422\n"));
    free(reqs);
    /* the rejected batch (20 records) is in the dead-letter file, with where each came from */
    assert_int_equal(count_lines(dl), 20);
    {
        char *t = th_read_file(dl);
        *strchr(t, '\n') = '\0';
        first = json_loads(t, 0, NULL);
        free(t);
    }
    assert_non_null(first);
    assert_int_equal(json_integer_value(json_object_get(first, "status")), 422);
    assert_string_equal(json_string_value(json_object_get(first, "destination")), "employees");
    assert_non_null(json_object_get(json_object_get(first, "record"), "email"));
    j = json_object_get(first, "source");
    assert_non_null(strstr(json_string_value(json_object_get(j, "file")), "hr-50.csv"));
    assert_int_equal(json_integer_value(json_object_get(j, "line")), 2);
    assert_int_equal(json_integer_value(json_object_get(first, "attempts")), 1);
    json_decref(first);

    /* the dead-letter file is input again, added to the import it came from (issue 10,
     * defect 2: a resend that cleared the staging left 20 of 50 employees) */
    set_faults("");
    {
        const char *again[] = {"send", "-c", cfg, "-d", "employees", dl, NULL};
        assert_int_equal(th_run(again, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 64);
        assert_non_null(strstr(res.err, "is a dead-letter file"));
        assert_non_null(strstr(res.err, "--append"));
        th_result_free(&res);
    }
    {
        const char *again[] = {"send",     "-c",       cfg,      "-d", "employees",
                               "--append", "--commit", "commit", dl,   NULL};
        json_int_t commits, live, gone;
        assert_int_equal(th_run(again, NULL, 30000, &res), 0);
        if (res.status != 0)
            fail_msg("exit %d: %s", res.status, res.err);
        assert_non_null(strstr(res.err, "20 records read, 20 sent"));
        assert_non_null(strstr(res.err, "commit: directory import triggered"));
        th_result_free(&res);
        reqs = request_lines();
        assert_int_equal(count_of(reqs, "DELETE "), 1); /* the first run's, none since */
        free(reqs);
        hris_counts(&commits, &live, &gone);
        assert_int_equal(commits, 1);
        assert_int_equal(live, 50);
        assert_int_equal(gone, 0);
    }
    free(cfg);
    free(dl);
}

static void test_retry_after_storm(void **state)
{
    char *dl = th_write_file("c.dead.jsonl", ""), *cfg;
    const char *argv[] = {"send", "-c", NULL, "-d", "storm", "--dead-letter", NULL, NULL, NULL};
    struct th_result res;
    int64_t t0;
    json_t *j, *r;
    size_t i, n429 = 0, n200 = 0;
    (void)state;

    remove(dl);
    /* four batches in flight at once: the 429s pause all of them, not one */
    cfg = config(
        "  storm:\n    template: upsert_employees\n    source_name: HRIS\n"
        "    batch: {size: 20}\n    max_in_flight: 4\n"
        "    retry: {base: 5ms, cap: 50ms, max_attempts: 8}\n    dead_letter: c.dead.jsonl\n",
        dl, NULL);
    argv[2] = cfg;
    argv[6] = dl;
    argv[7] = sample_csv();
    set_faults("429x4:retry-after=1:path=/api/1/employee_batch_imports,503@0.3:path=/api/1/"
               "employee_batch_imports");
    t0 = osc_clock_mono_ms(NULL);
    assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    /* Retry-After paused the whole destination at least once for a second */
    assert_true(osc_clock_mono_ms(NULL) - t0 >= 950);
    assert_non_null(strstr(res.err, "50 sent"));
    th_result_free(&res);
    j = sim_json("requests");
    json_array_foreach(json_object_get(j, "requests"), i, r)
    {
        long st = (long)json_integer_value(json_object_get(r, "status"));
        if (strcmp(json_string_value(json_object_get(r, "path")), "/api/1/employee_batch_imports"))
            continue;
        n429 += st == 429;
        n200 += st == 200;
    }
    json_decref(j);
    assert_int_equal(n429, 4);
    assert_int_equal(n200, 3);
    set_faults("");
    free(cfg);
    free(dl);
}

static void test_preview_and_test(void **state)
{
    char *dl = th_write_file("d.dead.jsonl", ""), *cfg, *reqs, *payload;
    struct th_result res;
    char seat_yaml[512];
    (void)state;

    remove(dl);
    snprintf(seat_yaml, sizeof(seat_yaml),
             "  assets:\n    url: /api/1/seats/{seat_id}/assets\n    format: form\n"
             "    exclude: [seat_id]\n    headers: 'X-Source: osconnect'\n"
             "  off:\n    url: /api/1/widgets\n    active: false\n");
    cfg = config(seat_yaml, dl, NULL);

    {
        const char *argv[] = {"preview", "-c",       cfg,      "-d",         "employees", "-n",
                              "2",       "--commit", "commit", sample_csv(), NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 0);
        assert_no_key(&res);
        assert_non_null(strstr(res.out, "DELETE "));
        assert_non_null(
            strstr(res.out, "/api/1/employee_directory/HRIS\nAuthorization: Token token=***\n"));
        assert_non_null(strstr(res.out, "\"EmployeeId\": \"1001\""));
        assert_non_null(strstr(res.out, "\"EmployeeId\": \"1002\""));
        assert_null(strstr(res.out, "\"EmployeeId\": \"1003\""));
        assert_non_null(strstr(res.out, "Source=HRIS"));
        th_result_free(&res);
    }
    reqs = request_lines();
    assert_string_equal(reqs, ""); /* preview sends nothing */
    free(reqs);

    {
        /* test: one request of one record, no DELETE, no commit */
        const char *argv[] = {"test", "-c", cfg, "-d", "employees", sample_csv(), NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 0);
        assert_no_key(&res);
        assert_non_null(strstr(res.out, "< HTTP 200"));
        assert_non_null(strstr(res.out, "\"imported\""));
        th_result_free(&res);
        reqs = request_lines();
        assert_string_equal(reqs, "POST /api/1/employee_batch_imports 200\n");
        free(reqs);
    }
    {
        /* test --payload: the body verbatim; the URL from its fields */
        const char *argv[] = {"test", "-c", cfg, "-d", "assets", "--payload", NULL, NULL};
        payload = th_write_file("payload.json", "{\"seat_id\":\"999999\",\"name\":\"Dock\"}");
        argv[6] = payload;
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_non_null(strstr(res.out, "> POST "));
        assert_non_null(strstr(res.out, "/api/1/seats/999999/assets"));
        assert_non_null(strstr(res.out, "< HTTP 404")); /* no such seat in the simulator */
        assert_int_equal(res.status, 65);
        assert_no_key(&res);
        th_result_free(&res);
        free(payload);
    }
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "off", sample_csv(), NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 78);
        assert_non_null(strstr(res.err, "inactive"));
        th_result_free(&res);
    }
    free(cfg);
    free(dl);
}

static void test_bad_key_and_help(void **state)
{
    char *dl = th_write_file("e.dead.jsonl", ""), *cfg;
    struct th_result res;
    (void)state;

    remove(dl);
    cfg = config(NULL, dl, "wrong-key-0123456789abcdef0123");
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", sample_csv(), NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 77);
        assert_non_null(strstr(res.err, "refused the API key"));
        assert_null(strstr(res.err, "wrong-key-0123456789abcdef0123"));
        th_result_free(&res);
    }
    assert_int_equal(access(dl, F_OK), -1); /* nothing was dead-lettered: a rerun sends it all */
    for (int i = 0; i < 3; i++) {
        const char *cmds[] = {"send", "preview", "test"};
        const char *argv[] = {cmds[i], "--help", NULL};
        assert_int_equal(th_run(argv, NULL, 10000, &res), 0);
        assert_int_equal(res.status, 0);
        assert_non_null(strstr(res.out, "Usage: osconnect"));
        assert_non_null(strstr(res.out, "Exit status"));
        th_result_free(&res);
    }
    free(cfg);
    free(dl);
}

/* Malformed records in each format: reported with file and line, dead-lettered, the rest sent. */
static void test_malformed_inputs(void **state)
{
    static const struct {
        const char *name, *text, *reason;
        unsigned good, bad;
    } cases[] = {
        {"m.jsonl",
         "{\"email\":\"a@x.io\"}\n{\"email\": broken}\n{\"email\":\"b@x.io\"}\n\xff\xfe{\"x\":1}\n"
         "{\"email\":\"c@x.io\"}\n{\"email\":\"trunc@x.io\"",
         "line 2", 3, 3},
        {"m.json", "[{\"email\":\"a@x.io\"},{\"name\":\"No Id\"},{\"email\":\"b@x.io\"}]", "line 1",
         2, 1},
        {"m.csv", "email,first_name\na@x.io,A\n\"b@x.io,B\nc@x.io,C\n", "line", 1, 1},
        {"r.csv", "email,first_name\na@x.io,A\nb@x.io,B,extra\nc@x.io,C\n", "line 3", 2, 1},
    };
    struct th_result res;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *dl = th_write_file("m.dead.jsonl", ""), *cfg, *in;
        char want[64];
        /* each case is an import of its own: --restart discards the previous one */
        const char *argv[] = {"send", "-c", NULL, "-d", "employees", "--restart", NULL, NULL};
        remove(dl);
        cfg = config(NULL, dl, NULL);
        in = th_write_file(cases[i].name, cases[i].text);
        argv[2] = cfg;
        argv[6] = in;
        reset(NULL);
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        if (res.status != 65)
            fail_msg("%s: exit %d\n%s", cases[i].name, res.status, res.err);
        snprintf(want, sizeof(want), "%u sent", cases[i].good);
        if (!strstr(res.err, want))
            fail_msg("%s: want '%s' in\n%s", cases[i].name, want, res.err);
        assert_non_null(strstr(res.err, cases[i].name));
        assert_int_equal(count_lines(dl), cases[i].bad);
        th_result_free(&res);
        free(in);
        free(cfg);
        free(dl);
    }
}

/* A 2xx answer that names skipped rows: only those are dead-lettered, and the commit is vetoed. */
static void test_partial_rejects(void **state)
{
    char *dl = th_write_file("p.dead.jsonl", ""), *cfg, *in, *t;
    struct th_result res;
    json_t *j;
    (void)state;

    remove(dl);
    cfg = config("  raw:\n    url: /api/1/employee_batch_imports\n    commit: commit\n"
                 "    batch: {enabled: true}\n    dead_letter: p.dead.jsonl\n",
                 dl, NULL);
    in = th_write_file("raw.jsonl",
                       "{\"EmployeeId\":\"r1\",\"Source\":\"HRIS\",\"FirstName\":\"Ann\"}\n"
                       "{\"Source\":\"HRIS\",\"FirstName\":\"NoId\"}\n"
                       "{\"EmployeeId\":\"r3\",\"Source\":\"HRIS\",\"FirstName\":\"Cy\"}\n");
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "raw", "--dead-letter", dl, in, NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        if (res.status != 65)
            fail_msg("exit %d: %s", res.status, res.err);
        assert_non_null(strstr(res.err, "3 records read, 2 sent"));
        assert_non_null(strstr(res.err, "directory import NOT triggered"));
        th_result_free(&res);
    }
    assert_int_equal(count_lines(dl), 1);
    t = th_read_file(dl);
    j = json_loads(t, 0, NULL);
    free(t);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "record"), "FirstName")), "NoId");
    assert_non_null(strstr(json_string_value(json_object_get(j, "reason")), "row 1 of the batch"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "source"), "line")), 2);
    json_decref(j);
    j = sim_json("employees");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "staged_counts"), "HRIS")), 2);
    json_decref(j);
    free(in);
    free(cfg);
    free(dl);
}

/* data of every stored item of resource res in the simulator, as one JSON array text */
static char *resource_data(const char *res)
{
    json_t *j = sim_json("resources"), *items, *it, *arr = json_array();
    const char *k;
    char *out;
    items = json_object_get(json_object_get(j, "resources"), res);
    json_object_foreach(items, k, it) { json_array_append(arr, json_object_get(it, "data")); }
    out = json_dumps(arr, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(arr);
    json_decref(j);
    return out;
}

/* `test` shows the response as received, except that secrets become ***: an API that echoes
 * the key (in a header or the body) must not put it on the terminal. */
static void test_test_redacts_response(void **state)
{
    struct ts_server *ts = ts_start();
    char *dl = th_write_file("echo.dead.jsonl", ""), *cfg, *payload, extra[512];
    struct th_result res;
    (void)state;

    assert_non_null(ts);
    ts_push(ts, &(struct ts_response){200, "X-Echo: " TH_SIM_OS_KEY "\n",
                                      "{\"token\":\"" TH_SIM_OS_KEY "\"}", 0, 0});
    snprintf(extra, sizeof(extra), "  echo:\n    url: %s/echo\n", ts_url(ts));
    cfg = config(extra, dl, NULL);
    payload = th_write_file("echo.json", "{\"a\":1}");
    {
        const char *argv[] = {"test", "-c", cfg, "-d", "echo", "--payload", payload, NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 0);
        assert_non_null(strstr(res.out, "< HTTP 200"));
        assert_no_key(&res);
        assert_non_null(strstr(res.out, "X-Echo: ***"));
        assert_non_null(strstr(res.out, "{\"token\":\"***\"}"));
        th_result_free(&res);
    }
    assert_int_equal(ts_count(ts), 1);
    ts_stop(ts);
    free(payload);
    free(cfg);
    free(dl);
}

/* --json-summary is JSON whatever the dead-letter path holds (a quote, a backslash). */
static void test_json_summary_escapes(void **state)
{
    char *dl = th_write_file("q\"b\\s.dead.jsonl", ""), *cfg, *in;
    struct th_result res;
    json_t *j;
    (void)state;

    remove(dl);
    cfg = config(NULL, dl, NULL);
    in = th_write_file("js.jsonl", "{\"first_name\":\"NoId\"}\n");
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", "--json-summary", in, NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 65);
        j = json_loads(res.out, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "destination")), "employees");
        assert_string_equal(json_string_value(json_object_get(j, "dead_letter")), dl);
        assert_int_equal(json_integer_value(json_object_get(j, "invalid")), 1);
        assert_int_equal(json_integer_value(json_object_get(j, "exit")), 65);
        json_decref(j);
        th_result_free(&res);
    }
    remove(dl);
    free(in);
    free(cfg);
    free(dl);
}

/* An unavailable API (5xx) on the staging DELETE or the import trigger exits 69, as for a
 * batch; 65 says the data was wrong and sent the operator looking at the input. A failed
 * DELETE stages nothing; a trigger that certainly was not applied (503) leaves the import
 * ready to commit later; `test` never sends a trigger. */
static void test_unavailable_exit_codes(void **state)
{
    char *dl = th_write_file("u.dead.jsonl", ""), *cfg, *reqs;
    struct th_result res;
    json_int_t commits, live, gone;
    (void)state;

    remove(dl);
    reset(NULL);
    cfg = config(NULL, dl, NULL);
    set_faults("503x20:path=/api/1/employee_directory/HRIS");
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", sample_csv(), NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 69);
        assert_non_null(strstr(res.err, "nothing is staged"));
        assert_no_key(&res);
        th_result_free(&res);
    }
    reqs = request_lines();
    assert_null(strstr(reqs, "POST /api/1/employee_batch_imports"));
    assert_null(strstr(reqs, "POST /api/1/employee_directory 200"));
    free(reqs);
    set_faults("");
    {
        const char *argv[] = {"test", "-c", cfg, "-d", "commit", NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 64);
        assert_non_null(strstr(res.err, "would commit the staged import"));
        th_result_free(&res);
    }
    /* the same command again: the DELETE now (it never went through), then the records */
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", sample_csv(), NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 0);
        th_result_free(&res);
    }
    reqs = request_lines();
    assert_non_null(strstr(reqs, "DELETE /api/1/employee_directory/HRIS 200\n"
                                 "POST /api/1/employee_batch_imports 200\n"));
    free(reqs);
    set_faults("503x20:path=/api/1/employee_directory");
    {
        const char *argv[] = {"commit", "-c", cfg, "-d", "commit", NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 69);
        assert_non_null(
            strstr(res.err, "failed after 4 attempt(s) (HTTP 503); it was not applied"));
        th_result_free(&res);
    }
    set_faults("");
    {
        const char *argv[] = {"commit", "-c", cfg, "-d", "employees", NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        if (res.status != 0)
            fail_msg("commit: %d %s", res.status, res.err);
        assert_non_null(strstr(res.err, "commit: directory import triggered for source 'HRIS'"));
        th_result_free(&res);
    }
    hris_counts(&commits, &live, &gone);
    assert_int_equal(commits, 1);
    assert_int_equal(live, 50);
    assert_int_equal(gone, 0);
    /* done: the import is over, a second commit has nothing to commit */
    {
        const char *argv[] = {"commit", "-c", cfg, "-d", "employees", NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 65);
        assert_non_null(strstr(res.err, "there is no import of source 'HRIS'"));
        th_result_free(&res);
    }
    free(cfg);
    free(dl);
}

/* Issue 10, defect 1: the commit is sent at most once by itself. Its answer is lost (the
 * connection drops after the simulator applied it): osconnect says so and exits 75; the same
 * command again sends no second commit (no DELETE either, and skips nothing); only
 * `commit --force` sends it again. */
static void test_commit_unknown_outcome(void **state)
{
    char *dl = th_write_file("x.dead.jsonl", ""), *cfg, *reqs;
    const char *send[] = {"send", "-c", NULL, "-d", "employees", "--commit", "commit", NULL, NULL};
    const char *stage[] = {"send", "-c", NULL, "-d", "employees", NULL, NULL};
    struct th_result res;
    json_int_t commits, live, gone;
    (void)state;

    remove(dl);
    reset(NULL);
    cfg = config(NULL, dl, NULL);
    send[2] = stage[2] = cfg;
    send[7] = stage[5] = sample_csv();
    assert_int_equal(th_run(stage, NULL, 30000, &res), 0);
    assert_int_equal(res.status, 0);
    th_result_free(&res);
    set_faults("reset-afterx1:path=/api/1/employee_directory");
    {
        const char *c[] = {"commit", "-c", cfg, "-d", "employees", NULL};
        assert_int_equal(th_run(c, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 75);
        assert_non_null(strstr(res.err, "outcome is unknown"));
        th_result_free(&res);
    }
    set_faults("");
    hris_counts(&commits, &live, &gone);
    assert_int_equal(commits, 1); /* applied, though the answer was lost */
    /* the same command again: refused before anything is sent */
    assert_int_equal(th_run(send, NULL, 30000, &res), 0);
    assert_int_equal(res.status, 64);
    assert_non_null(strstr(res.err, "may already have been applied"));
    th_result_free(&res);
    {
        const char *c[] = {"commit", "-c", cfg, "-d", "employees", NULL};
        assert_int_equal(th_run(c, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 75);
        th_result_free(&res);
    }
    reqs = request_lines();
    assert_int_equal(count_of(reqs, "POST /api/1/employee_directory "), 1);
    assert_int_equal(count_of(reqs, "DELETE "), 1);
    free(reqs);
    hris_counts(&commits, &live, &gone);
    assert_int_equal(commits, 1);
    assert_int_equal(live, 50);
    /* --force sends it again, by the operator's decision */
    {
        const char *c[] = {"commit", "-c", cfg, "-d", "employees", "--force", NULL};
        assert_int_equal(th_run(c, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 0);
        th_result_free(&res);
    }
    hris_counts(&commits, &live, &gone);
    assert_int_equal(commits, 2);
    free(cfg);
    free(dl);
}

/* Issue 10: a malformed-input storm has a brake. max_errors stops the run (exit 65) once that
 * many records were malformed or unmappable, and per-record warnings stop after 20 (10 MB of
 * bad CSV made 1.2 GB of dead letters and 570 MB of warnings). */
static void test_malformed_storm_brake(void **state)
{
    char *dl = th_write_file("s.dead.jsonl", ""), *cfg, *in, extra[512];
    struct osc_buf b;
    struct th_result res;
    size_t warns = 0;
    (void)state;

    remove(dl);
    snprintf(extra, sizeof(extra),
             "  brake:\n    template: upsert_employees\n    source_name: BRAKE\n"
             "    max_errors: 100\n    dead_letter: %s\n",
             dl);
    cfg = config(extra, dl, NULL);
    osc_buf_init(&b, 1u << 24);
    osc_buf_adds(&b, "email,first_name\n");
    for (int i = 0; i < 5; i++)
        osc_buf_printf(&b, "ok%d@x.io,Ok\n", i);
    for (int i = 0; i < 50000; i++)
        osc_buf_printf(&b, "bad%d@x.io,Bad,extra,fields\n", i);
    in = th_write_file("storm.csv", osc_buf_str(&b));
    osc_buf_free(&b);
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "brake", in, NULL};
        assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
        if (res.status != 65)
            fail_msg("exit %d: %s", res.status, res.err);
        assert_non_null(strstr(res.err, "more than max_errors (100)"));
        for (const char *p = res.err; (p = strstr(p, "warn ")); p++)
            warns++;
        printf("# %zu warning lines for 101 malformed records\n", warns);
        assert_true(warns <= 22);
        assert_non_null(strstr(res.err, "81 warning(s) were not shown"));
        th_result_free(&res);
    }
    assert_int_equal(count_lines(dl), 101);
    free(in);
    free(cfg);
    free(dl);
}

/* Manual destinations against the simulator's generic store: URL partitioning, exclude,
 * headers, property and Lua grouping, form, the response webhook. */
static void test_manual_sim(void **state)
{
    struct ts_server *hook = ts_start();
    char *dl = th_write_file("man.dead.jsonl", ""), *cfg, *in, *data, extra[2048];
    struct th_result res;
    (void)state;

    remove(dl);
    snprintf(extra, sizeof(extra),
             "  part:\n    url: /api/1/{kind}\n    exclude: [kind, secret.pin]\n"
             "    headers: 'X-Tenant: acme, X-Trace: 7'\n    batch: {enabled: true, size: 2}\n"
             "    response_webhook: %s/hook\n    max_in_flight: 1\n"
             "  prop:\n    url: /api/1/props\n    batch: {enabled: true, grouping: property,"
             " property_name: records,"
             " other_props: {\"mode\": \"bulk\"}}\n"
             "  lua:\n    url: /api/1/luas\n    batch:\n      enabled: true\n      grouping: code\n"
             "      code: |\n"
             "        function batch(records)\n"
             "          return json.encode({count = #records, first = records[1].name}),"
             " 'application/json'\n"
             "        end\n"
             "  form:\n    url: /api/1/forms\n    format: form\n    max_in_flight: 1\n    exclude: "
             "[kind, secret]\n",
             ts_url(hook));
    cfg = config(extra, dl, NULL);
    in = th_write_file(
        "man.jsonl", "{\"kind\":\"widgets\",\"name\":\"w1\",\"secret\":{\"pin\":1,\"keep\":true}}\n"
                     "{\"kind\":\"gadgets\",\"name\":\"g1\"}\n"
                     "{\"kind\":\"widgets\",\"name\":\"w2\"}\n"
                     "{\"kind\":\"widgets\",\"name\":\"w3\"}\n"
                     "{\"name\":\"no kind\"}\n");
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "part", "--dead-letter", dl, in, NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        assert_int_equal(res.status, 65); /* the record without a kind */
        assert_non_null(strstr(res.err, "no value for {kind} in the url"));
        th_result_free(&res);
    }
    /* the simulator stores each element of an array body as one item */
    data = resource_data("widgets");
    assert_string_equal(data, "[{\"name\":\"w1\",\"secret\":{\"keep\":true}},{\"name\":\"w2\"},"
                              "{\"name\":\"w3\"}]");
    free(data);
    data = resource_data("gadgets");
    assert_string_equal(data, "[{\"name\":\"g1\"}]");
    free(data);
    {
        /* batches of 2, one URL per request: widgets 2+1, gadgets 1. The two
         * batches left open at the end of input may go in either order. */
        char *reqs = request_lines();
        assert_true(strncmp(reqs, "POST /api/1/widgets 201\n", 24) == 0);
        assert_true(strcmp(reqs + 24, "POST /api/1/gadgets 201\nPOST /api/1/widgets 201\n") == 0 ||
                    strcmp(reqs + 24, "POST /api/1/widgets 201\nPOST /api/1/gadgets 201\n") == 0);
        free(reqs);
    }
    {
        json_t *j = sim_json("requests"), *r;
        size_t i, n = 0;
        json_array_foreach(json_object_get(j, "requests"), i, r)
        {
            json_t *h = json_object_get(r, "headers");
            assert_string_equal(json_string_value(json_object_get(h, "x-tenant")), "acme");
            assert_string_equal(json_string_value(json_object_get(h, "x-trace")), "7");
            assert_string_equal(json_string_value(json_object_get(h, "authorization")),
                                "Token ***");
            n++;
        }
        assert_int_equal(n, 3);
        json_decref(j);
    }
    /* one webhook report per call, without the key */
    for (int i = 0; i < 100 && ts_count(hook) < 3; i++)
        usleep(20000);
    assert_int_equal(ts_count(hook), 3);
    for (size_t i = 0; i < 3; i++) {
        struct ts_request r;
        json_t *j;
        ts_get(hook, i, &r);
        assert_null(strstr(r.body, TH_SIM_OS_KEY));
        j = json_loads(r.body, 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
        assert_string_equal(json_string_value(json_object_get(j, "destination")), "part");
        json_decref(j);
        ts_request_free(&r);
    }
    free(in);

    in = th_write_file("p.jsonl", "{\"kind\":\"a\",\"name\":\"p1\"}\n{\"name\":\"p2 & co\"}\n");
    for (int k = 0; k < 3; k++) {
        const char *dest[] = {"prop", "lua", "form"};
        const char *argv[] = {"send", "-c", cfg, "-d", dest[k], "--dead-letter", dl, in, NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &res), 0);
        if (res.status != 0)
            fail_msg("%s: exit %d: %s", dest[k], res.status, res.err);
        th_result_free(&res);
    }
    data = resource_data("props");
    assert_string_equal(data, "[{\"mode\":\"bulk\",\"records\":[{\"kind\":\"a\",\"name\":\"p1\"},"
                              "{\"name\":\"p2 & co\"}]}]");
    free(data);
    data = resource_data("luas");
    assert_string_equal(data, "[{\"count\":2,\"first\":\"p1\"}]");
    free(data);
    data = resource_data("forms");
    assert_string_equal(data, "[{\"name\":\"p1\"},{\"name\":\"p2 & co\"}]");
    free(data);
    free(in);
    free(cfg);
    free(dl);
    ts_stop(hook);
}

static char *write_bin(const char *name, const char *data, size_t len)
{
    char *path = th_write_file(name, "");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* Reasons of the dead letters in path, one per line, in order. */
static char *dead_reasons(const char *path)
{
    char *t = th_read_file(path), *line, *save = NULL, *out = calloc(1, 1 << 16);
    size_t len = 0;
    for (line = t ? strtok_r(t, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, JSON_ALLOW_NUL, NULL); /* a NUL byte comes back as \u0000 */
        assert_non_null(j);
        len += (size_t)snprintf(
            out + len, (1 << 16) - len, "%lld: %s\n",
            json_integer_value(json_object_get(json_object_get(j, "source"), "line")),
            json_string_value(json_object_get(j, "reason")));
        json_decref(j);
    }
    free(t);
    return out;
}

/* Bad input never loses good input: each bad record gets a reason, every good one is sent. */
static void test_bad_input(void **state)
{
    struct osc_buf in;
    char *dl = th_write_file("bad.dead.jsonl", ""), *cfg, *path, *reasons;
    struct th_result res;
    json_t *emp;
    (void)state;

    remove(dl);
    cfg = config(NULL, dl, NULL);
    osc_buf_init(&in, 16u << 20);
    osc_buf_adds(&in, "{\"email\":\"g1@x.io\"}\n");
    osc_buf_adds(&in, "{\"email\":\"bad\xff\xfe@x.io\"}\n"); /* line 2: invalid UTF-8 */
    osc_buf_add(&in, "{\"email\":\"n\0l@x.io\"}\n", 21);     /* line 3: a NUL byte */
    osc_buf_adds(&in, "{\"email\":\"g2@x.io\"}\n");
    osc_buf_adds(&in, "{\"email\":\"big@x.io\",\"bio\":\""); /* line 5: 10 MB */
    for (int i = 0; i < 10 * 1024; i++)
        osc_buf_add(&in,
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                    1024);
    osc_buf_adds(&in, "\"}\n");
    osc_buf_adds(&in, "{\"email\":\"g3@x.io\"}\n");
    osc_buf_adds(&in, "{\"email\":\"G1@X.io\",\"first_name\":\"Again\"}\n"); /* line 7: duplicate */
    osc_buf_adds(&in, "{\"email\":\"g4@x.io\"}\n");
    osc_buf_adds(&in, "{\"email\":\"trunc@x.io\""); /* line 9: cut off */
    path = write_bin("bad.jsonl", in.data, in.len);
    osc_buf_free(&in);
    {
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", "--restart", path, NULL};
        assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
        if (res.status != 65)
            fail_msg("exit %d: %s", res.status, res.err);
        if (!strstr(res.err, "9 records read, 4 sent"))
            fail_msg("%s", res.err);
        th_result_free(&res);
    }
    reasons = dead_reasons(dl);
    printf("%s", reasons);
    assert_non_null(strstr(reasons, "2: "));
    assert_non_null(strstr(reasons, "UTF-8"));
    assert_non_null(strstr(reasons, "3: "));
    assert_non_null(strstr(reasons, "5: "));
    assert_non_null(strstr(reasons, "limit"));
    assert_non_null(
        strstr(reasons, "7: duplicate employee in one batch: 'G1@X.io' is also on line 1"));
    assert_non_null(strstr(reasons, "9: "));
    assert_int_equal(count_lines(dl), 5);
    free(reasons);
    emp = sim_json("employees");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(emp, "staged_counts"), "HRIS")), 4);
    json_decref(emp);
    free(path);
    remove(dl);

    /* CSV: a ragged row, invalid UTF-8, a NUL, an unterminated quote at the end */
    reset(NULL);
    {
        static const char csv[] = "email,first_name\n"
                                  "c1@x.io,A\n"
                                  "c2@x.io,B,extra\n"
                                  "c3@x.io,\xc3\x28\n"
                                  "c4@x.io,N\0L\n"
                                  "c5@x.io,E\n"
                                  "\"c6@x.io,unterminated\n";
        const char *argv[] = {"send", "-c", cfg, "-d", "employees", "--restart", NULL, NULL};
        path = write_bin("bad.csv", csv, sizeof(csv) - 1);
        argv[6] = path;
        assert_int_equal(th_run(argv, NULL, 60000, &res), 0);
        if (res.status != 65)
            fail_msg("exit %d: %s", res.status, res.err);
        if (!strstr(res.err, " 2 sent"))
            fail_msg("%s", res.err);
        th_result_free(&res);
        reasons = dead_reasons(dl);
        printf("%s", reasons);
        assert_non_null(strstr(reasons, "3: "));
        assert_non_null(strstr(reasons, "4: "));
        assert_non_null(strstr(reasons, "5: "));
        assert_non_null(strstr(reasons, "7: "));
        assert_int_equal(count_lines(dl), 4);
        free(reasons);
        free(path);
    }
    free(cfg);
    free(dl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_upsert_and_commit, reset),
        cmocka_unit_test_setup(test_commit_suppressed, reset),
        cmocka_unit_test_setup(test_retry_after_storm, reset),
        cmocka_unit_test_setup(test_preview_and_test, reset),
        cmocka_unit_test_setup(test_bad_key_and_help, reset),
        cmocka_unit_test_setup(test_malformed_inputs, reset),
        cmocka_unit_test_setup(test_partial_rejects, reset),
        cmocka_unit_test_setup(test_bad_input, reset),
        cmocka_unit_test_setup(test_manual_sim, reset),
        cmocka_unit_test_setup(test_test_redacts_response, reset),
        cmocka_unit_test_setup(test_json_summary_escapes, reset),
        cmocka_unit_test_setup(test_unavailable_exit_codes, reset),
        cmocka_unit_test_setup(test_commit_unknown_outcome, reset),
        cmocka_unit_test_setup(test_malformed_storm_brake, reset),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    if (sim_exit)
        fprintf(stderr, "the simulator exited with status %d\n", sim_exit);
    return failed || sim_exit;
}
