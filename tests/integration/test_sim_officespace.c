/*
 * test_sim_officespace.c - the simulated OfficeSpace over HTTP: REST auth
 * (both header forms, the 401 body), the three-step employee import, the
 * list shapes, the generic resource store, GraphQL createEmployeePresence
 * validation per mutation, and the /_sim control endpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_sim_util.h"

static struct th_sim sim;

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return th_sim_start(&sim, NULL);
}

/* The simulator's exit status: a leak or a sanitizer report in it fails the run. */
static int sim_exit;

static int teardown(void **state)
{
    (void)state;
    sim_exit = th_sim_stop(&sim);
    curl_global_cleanup();
    return sim_exit == 0 ? 0 : -1;
}

/* Each test starts from a fresh simulator state. */
static int reset(void **state)
{
    (void)state;
    return th_sim_reset(&sim);
}

static json_t *rest(const char *method, const char *path, const char *ctype, const char *body,
                    long *status)
{
    char url[512], ct[128];
    const char *hdrs[] = {REST_AUTH, ct, NULL};
    struct resp r;
    json_t *j;

    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json; charset=utf-8");
    http(method, url_of(url, sizeof(url), sim.officespace_url, path), hdrs, body, 0, &r);
    *status = r.status;
    j = resp_json(&r);
    resp_free(&r);
    return j;
}

static json_t *os_gql(const char *auth, const char *query, json_t *vars, long *st)
{
    char url[256];
    return gql(url_of(url, sizeof(url), sim.officespace_url, "/graphql"), auth, query, vars, st);
}

static json_t *sim_get(const char *path)
{
    char url[512];
    return th_get_json(url_of(url, sizeof(url), sim.officespace_url, path));
}

static void test_rest_auth(void **state)
{
    const char *good[] = {REST_AUTH, REST_AUTH_QUOTED, NULL};
    const char *bad[] = {NULL, "Authorization: Token token=nope",
                         "Authorization: Bearer " TH_SIM_OS_KEY, "apikey: " TH_SIM_OS_KEY};
    char url[256];
    struct resp r;
    (void)state;

    url_of(url, sizeof(url), sim.officespace_url, "/api/1/sites");
    for (size_t i = 0; good[i]; i++) {
        const char *h[] = {good[i], NULL};
        http("GET", url, h, NULL, 0, &r);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *h[] = {bad[i], NULL};
        http("GET", url, bad[i] ? h : NULL, NULL, 0, &r);
        assert_int_equal(r.status, 401);
        assert_string_equal(r.body, "HTTP Token: Access denied.\n");
        assert_string_equal(r.www_auth, "Token realm=\"Application\"");
        resp_free(&r);
    }
}

static void test_list_shapes(void **state)
{
    long st;
    json_t *j;
    const char *paths[] = {"/api/1/sites",      "/api/1/floors",        "/api/1/seats",
                           "/api/1/rooms",      "/api/1/neighborhoods", "/api/1/employees",
                           "/api/1/directories"};
    (void)state;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        j = rest("GET", paths[i], NULL, NULL, &st);
        assert_int_equal(st, 200);
        assert_true(json_is_integer(json_object_get(j, "count")));
        assert_int_equal(json_integer_value(json_object_get(j, "count")),
                         json_array_size(json_object_get(j, "response")));
        assert_true(json_integer_value(json_object_get(j, "count")) > 0);
        json_decref(j);
    }
    /* the demo's ids: seats of floor 101 carry relative links */
    j = rest("GET", "/api/1/seats?floor_id=101", NULL, NULL, &st);
    assert_int_equal(jint_at(j, "count"), 4);
    assert_string_equal(jstr_at(j, "response.0.floor_url"), "/api/1/floors/101");
    json_decref(j);
    j = rest("GET", "/api/1/floors/101", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint_at(j, "response.site_id"), 1);
    json_decref(j);
    j = rest("GET", "/api/1/floors/999999", NULL, NULL, &st);
    assert_int_equal(st, 404);
    json_decref(j);
}

static void test_employee_import(void **state)
{
    long st;
    json_t *j;
    (void)state;

    j = rest("DELETE", "/api/1/employee_directory/HR", NULL, NULL, &st);
    assert_int_equal(st, 200);
    json_decref(j);
    j = rest(
        "POST", "/api/1/employee_batch_imports", NULL,
        "[{\"EmployeeId\":\"E1\",\"Source\":\"HR\",\"FirstName\":\"Alice\",\"LastName\":\"Smith\","
        "\"WorkPhone\":\"+1 555\",\"Udf3\":\"x\"},"
        "{\"EmployeeId\":\"E2\",\"Source\":\"HR\",\"FirstName\":\"Bob\",\"LastName\":\"Jones\"}]",
        &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint_at(j, "imported"), 2);
    json_decref(j);
    /* a single object is accepted too */
    j = rest(
        "POST", "/api/1/employee_batch_imports", NULL,
        "{\"EmployeeId\":\"E3\",\"Source\":\"HR\",\"FirstName\":\"Cy\",\"LastName\":\"Young\"}",
        &st);
    assert_int_equal(st, 200);
    json_decref(j);
    j = rest("POST", "/api/1/employee_batch_imports", NULL, "[{\"EmployeeId\":", &st);
    assert_int_equal(st, 400);
    json_decref(j);

    j = sim_get("/_sim/employees?ids=1");
    assert_int_equal(jint_at(j, "staged_counts.HR"), 3);
    assert_string_equal(jstr_at(j, "staged.HR.2"), "E3");
    assert_int_equal(jint_at(j, "live_count"), 1); /* the demo's one employee */
    json_decref(j);

    j = rest("POST", "/api/1/employee_directory", "application/x-www-form-urlencoded", "Source=HR",
             &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint_at(j, "created"), 3);
    json_decref(j);

    /* the next import of HR: E1 again with a new title, and E4; the commit replaces HR's
       part of the directory, so E2 and E3 (not staged this time) are deactivated */
    j = rest("POST", "/api/1/employee_batch_imports", NULL,
             "[{\"EmployeeId\":\"E1\",\"Source\":\"HR\",\"Title\":\"CTO\"},"
             "{\"EmployeeId\":\"E4\",\"Source\":\"HR\",\"FirstName\":\"Di\",\"LastName\":\"Ng\"}]",
             &st);
    json_decref(j);
    j = rest("POST", "/api/1/employee_directory", "application/x-www-form-urlencoded", "Source=HR",
             &st);
    assert_int_equal(jint_at(j, "created"), 1);
    assert_int_equal(jint_at(j, "updated"), 1);
    assert_int_equal(jint_at(j, "deactivated"), 2);
    assert_int_equal(jint_at(j, "live"), 3);
    json_decref(j);

    j = rest("GET", "/api/1/employees", NULL, NULL, &st);
    assert_int_equal(jint_at(j, "count"), 3);
    assert_int_equal(json_array_size(json_object_get(j, "response")), 3);
    json_decref(j);
    j = rest("GET", "/api/1/employees?client_employee_id=E1", NULL, NULL, &st);
    assert_int_equal(jint_at(j, "count"), 1);
    assert_string_equal(jstr_at(j, "response.0.first_name"), "Alice");
    assert_string_equal(jstr_at(j, "response.0.title"), "CTO");
    assert_string_equal(jstr_at(j, "response.0.work_phone"), "+1 555");
    assert_string_equal(jstr_at(j, "response.0.udf3"), "x");
    {
        char path[64];
        long long id = jint_at(j, "response.0.id");
        json_decref(j);
        snprintf(path, sizeof(path), "/api/1/employees/%lld", id);
        j = rest("PUT", path, NULL, "{\"record\":{\"title\":\"Chief\"}}", &st);
        assert_int_equal(st, 200);
        assert_string_equal(jstr_at(j, "response.title"), "Chief");
        json_decref(j);
        j = rest("GET", path, NULL, NULL, &st);
        assert_string_equal(jstr_at(j, "response.title"), "Chief");
        assert_string_equal(jstr_at(j, "response.client_employee_id"), "E1");
        assert_string_equal(jstr_at(j, "response.seating.seated"), "not seated");
    }
    json_decref(j);
    j = rest("GET", "/api/1/employees/424242", NULL, NULL, &st);
    assert_int_equal(st, 404);
    json_decref(j);
    j = sim_get("/_sim/employees");
    assert_int_equal(jint_at(j, "live_count"), 3);
    assert_int_equal(json_array_size(jpath(j, "live")), 3);
    assert_int_equal(jint_at(j, "deactivated_count"), 2);
    assert_int_equal(json_array_size(jpath(j, "deactivated")), 2);
    assert_int_equal(jint_at(j, "staged_counts.HR"), 0);
    json_decref(j);
}

/* Stage a batch of {"EmployeeId": id, "Source": source} records (ids space-separated). */
static void stage(const struct th_sim *on, const char *source, const char *ids)
{
    char url[256], hdr[] = REST_AUTH;
    const char *hdrs[] = {hdr, "Content-Type: application/json; charset=utf-8", NULL};
    json_t *arr = json_array();
    char *copy = strdup(ids), *save = NULL, *body;
    struct resp r;

    for (char *k = strtok_r(copy, " ", &save); k; k = strtok_r(NULL, " ", &save))
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s}", "EmployeeId", k, "Source", source, "FirstName", k));
    body = json_dumps(arr, JSON_COMPACT);
    http("POST", url_of(url, sizeof(url), on->officespace_url, "/api/1/employee_batch_imports"),
         hdrs, body, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(body);
    free(copy);
    json_decref(arr);
}

/* POST /api/1/employee_directory Source=source: the answer (status in *st). */
static json_t *commit_on(const struct th_sim *on, const char *source, long *st)
{
    char url[256], body[128];
    const char *hdrs[] = {REST_AUTH, "Content-Type: application/x-www-form-urlencoded", NULL};
    struct resp r;
    json_t *j;

    snprintf(body, sizeof(body), "Source=%s", source);
    http("POST", url_of(url, sizeof(url), on->officespace_url, "/api/1/employee_directory"), hdrs,
         body, 0, &r);
    *st = r.status;
    j = resp_json(&r);
    resp_free(&r);
    return j;
}

static long long count_of(const char *path)
{
    long st;
    json_t *j = rest("GET", path, NULL, NULL, &st);
    long long n = jint_at(j, "count");

    assert_int_equal(st, 200);
    assert_int_equal(n, json_array_size(json_object_get(j, "response")));
    json_decref(j);
    return n;
}

/* Employees carry their import's source; a commit replaces that source's part of the
   directory (deactivating who is missing), GET /api/1/employees?source= counts one source,
   and /_sim/employees reports staged, live, deactivated and commits per source. */
static void test_import_replaces_source(void **state)
{
    long st;
    json_t *j;
    char path[64];
    long long h1;
    (void)state;

    /* created through the REST: no source, whatever the record says */
    j = rest("POST", "/api/1/employees", NULL,
             "{\"record\":{\"client_employee_id\":\"P1\",\"first_name\":\"Pat\",\"source\":"
             "\"API\"}}",
             &st);
    assert_int_equal(st, 201);
    assert_true(json_is_null(jpath(j, "response.source")));
    assert_true(json_is_true(jpath(j, "response.active")));
    json_decref(j);

    stage(&sim, "HR", "H1 H2 H3");
    stage(&sim, "AzureAD", "A1 A2");
    j = commit_on(&sim, "HR", &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint_at(j, "created"), 3);
    assert_int_equal(jint_at(j, "deactivated"), 0);
    json_decref(j);
    json_decref(commit_on(&sim, "AzureAD", &st));
    assert_int_equal(st, 200);

    assert_int_equal(count_of("/api/1/employees?source=HR"), 3);
    assert_int_equal(count_of("/api/1/employees?source=AzureAD"), 2);
    assert_int_equal(count_of("/api/1/employees?source=Nobody"), 0);
    assert_int_equal(count_of("/api/1/employees"), 7); /* + the demo's E900 and P1 */
    assert_int_equal(count_of("/api/1/employees?source=HR&client_employee_id=A1"), 0);
    assert_int_equal(count_of("/api/1/employees?source=AzureAD&client_employee_id=A1"), 1);
    j = rest("GET", "/api/1/employees?source=HR", NULL, NULL, &st);
    assert_string_equal(jstr_at(j, "response.0.source"), "HR");
    h1 = jint_at(j, "response.0.id");
    json_decref(j);
    j = sim_get("/_sim/employees?summary=1");
    assert_int_equal(jint_at(j, "sources.HR.staged"), 0);
    assert_int_equal(jint_at(j, "sources.HR.live"), 3);
    assert_int_equal(jint_at(j, "sources.HR.deactivated"), 0);
    assert_int_equal(jint_at(j, "sources.HR.commits"), 1);
    assert_string_equal(jstr_at(j, "import_mode"), "replace");
    json_decref(j);

    /* a commit over an empty staging: all of HR is deactivated, nobody else */
    j = commit_on(&sim, "HR", &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint_at(j, "created") + jint_at(j, "updated"), 0);
    assert_int_equal(jint_at(j, "deactivated"), 3);
    assert_int_equal(jint_at(j, "live"), 4);
    json_decref(j);
    assert_int_equal(count_of("/api/1/employees?source=HR"), 0);
    assert_int_equal(count_of("/api/1/employees?source=AzureAD"), 2);
    assert_int_equal(count_of("/api/1/employees?client_employee_id=H1"), 0);
    assert_int_equal(count_of("/api/1/employees?client_employee_id=P1"), 1);
    snprintf(path, sizeof(path), "/api/1/employees/%lld", h1);
    j = rest("GET", path, NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_true(json_is_false(jpath(j, "response.active")));
    assert_string_equal(jstr_at(j, "response.source"), "HR");
    json_decref(j);
    j = sim_get("/_sim/employees?summary=1");
    assert_int_equal(jint_at(j, "sources.HR.live"), 0);
    assert_int_equal(jint_at(j, "sources.HR.deactivated"), 3);
    assert_int_equal(jint_at(j, "sources.HR.commits"), 2);
    assert_int_equal(jint_at(j, "deactivated_count"), 3);
    json_decref(j);

    /* staged again, the same employee comes back */
    stage(&sim, "HR", "H1");
    j = commit_on(&sim, "HR", &st);
    assert_int_equal(jint_at(j, "updated"), 1);
    assert_int_equal(jint_at(j, "reactivated"), 1);
    json_decref(j);
    j = rest("GET", "/api/1/employees?source=HR", NULL, NULL, &st);
    assert_int_equal(jint_at(j, "count"), 1);
    assert_int_equal(jint_at(j, "response.0.id"), h1);
    assert_true(json_is_true(jpath(j, "response.0.active")));
    json_decref(j);

    /* a faulted commit is not applied and not counted */
    {
        char url[256];
        assert_int_equal(th_http("POST",
                                 url_of(url, sizeof(url), sim.officespace_url, "/_sim/faults"),
                                 "503x1:path=/api/1/employee_directory", NULL),
                         200);
    }
    json_decref(commit_on(&sim, "AzureAD", &st));
    assert_int_equal(st, 503);
    assert_int_equal(count_of("/api/1/employees?source=AzureAD"), 2);
    /* GraphQL employeeLoad replaces the same way */
    j = os_gql(GQL_AUTH, "mutation { employeeLoad(source: \"AzureAD\") { status } }", NULL, &st);
    assert_string_equal(jstr_at(j, "data.employeeLoad.status"), "success");
    json_decref(j);
    j = sim_get("/_sim/employees?summary=1");
    assert_int_equal(jint_at(j, "sources.AzureAD.live"), 0);
    assert_int_equal(jint_at(j, "sources.AzureAD.deactivated"), 2);
    assert_int_equal(jint_at(j, "sources.AzureAD.commits"), 2);
    assert_int_equal(jint_at(j, "live_count"), 3); /* E900, P1, H1 */
    json_decref(j);
}

/* --import-mode upsert: the old behaviour, nobody is ever deactivated. */
static void test_import_mode_upsert(void **state)
{
    const char *extra[] = {"--import-mode", "upsert", NULL};
    struct th_sim up;
    char url[256];
    long st;
    json_t *j;
    (void)state;

    assert_int_equal(th_sim_start(&up, extra), 0);
    stage(&up, "HR", "H1 H2 H3");
    json_decref(commit_on(&up, "HR", &st));
    assert_int_equal(st, 200);
    stage(&up, "HR", "H1");
    j = commit_on(&up, "HR", &st);
    assert_int_equal(jint_at(j, "updated"), 1);
    assert_int_equal(jint_at(j, "deactivated"), 0);
    json_decref(j);
    j = commit_on(&up, "HR", &st);
    assert_int_equal(jint_at(j, "deactivated"), 0);
    json_decref(j);
    j = th_get_json(url_of(url, sizeof(url), up.officespace_url, "/_sim/employees?summary=1"));
    assert_string_equal(jstr_at(j, "import_mode"), "upsert");
    assert_int_equal(jint_at(j, "sources.HR.live"), 3);
    assert_int_equal(jint_at(j, "sources.HR.deactivated"), 0);
    assert_int_equal(jint_at(j, "sources.HR.commits"), 3);
    json_decref(j);
    assert_int_equal(th_sim_stop(&up), 0);
}

/* A scenario's employee with a "source" belongs to that source; one without has none. */
static void test_seeded_source(void **state)
{
    char *path = th_write_file(
        "seeded.json", "{\"sites\": [{\"id\": \"SITEseed\"}], \"officespace\": {\"employees\": ["
                       "{\"client_employee_id\": \"S1\", \"source\": \"HRIS\"},"
                       "{\"client_employee_id\": \"S2\"}]}}");
    const char *extra[] = {"--scenario", path, NULL};
    struct th_sim seeded;
    char url[256];
    long st;
    json_t *j;
    (void)state;

    assert_int_equal(th_sim_start(&seeded, extra), 0);
    j = th_get_json(url_of(url, sizeof(url), seeded.officespace_url, "/_sim/employees?summary=1"));
    assert_int_equal(jint_at(j, "live_count"), 2);
    assert_int_equal(jint_at(j, "sources.HRIS.live"), 1);
    json_decref(j);
    j = commit_on(&seeded, "HRIS", &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint_at(j, "deactivated"), 1);
    assert_int_equal(jint_at(j, "live"), 1); /* S2 has no source: untouched */
    json_decref(j);
    assert_int_equal(th_sim_stop(&seeded), 0);
    free(path);
    th_tmpdir_cleanup();
}

static void test_generic_resources(void **state)
{
    long st;
    json_t *j;
    (void)state;

    j = rest("POST", "/api/1/moves", NULL, "{\"employee_id\":\"E1\",\"to_seat_id\":123}", &st);
    assert_int_equal(st, 201);
    assert_int_equal(jint_at(j, "response.data.to_seat_id"), 123);
    json_decref(j);
    j = rest("PUT", "/api/1/widgets/w1", NULL, "{\"record\":{\"color\":\"red\"}}", &st);
    assert_int_equal(st, 200);
    json_decref(j);
    j = rest("PATCH", "/api/1/widgets/w1", NULL, "{\"size\":3}", &st);
    assert_int_equal(st, 200);
    json_decref(j);
    j = rest("GET", "/api/1/widgets/w1", NULL, NULL, &st);
    assert_string_equal(jstr_at(j, "response.data.color"), "red");
    assert_int_equal(jint_at(j, "response.data.size"), 3);
    json_decref(j);
    j = rest("GET", "/api/1/widgets", NULL, NULL, &st);
    assert_int_equal(jint_at(j, "count"), 1);
    json_decref(j);
    j = rest("DELETE", "/api/1/widgets/w1", NULL, NULL, &st);
    assert_int_equal(st, 200);
    json_decref(j);
    j = rest("GET", "/api/1/widgets/w1", NULL, NULL, &st);
    assert_int_equal(st, 404);
    json_decref(j);
    j = sim_get("/_sim/resources");
    assert_non_null(jpath(j, "resources.moves"));
    json_decref(j);
}

static void test_graphql_auth_and_sites(void **state)
{
    long st;
    json_t *j;
    (void)state;

    j = os_gql(NULL, "query { sites { id name } }", NULL, &st);
    assert_int_equal(st, 401);
    assert_non_null(jstr_at(j, "errors.0.message"));
    json_decref(j);
    j = os_gql(REST_AUTH, "query { sites { id name } }", NULL, &st);
    assert_int_equal(st, 401);
    json_decref(j);
    j = os_gql(GQL_AUTH, "query { sites { id name } }", NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(jstr_at(j, "data.sites.0.id"), "1");
    assert_string_equal(jstr_at(j, "data.sites.0.name"), "Alpha Tower");
    json_decref(j);
}

/* Aliased mutations, each answered on its own with {success, errors}. */
static void test_presence_mutations(void **state)
{
    long st;
    json_t *j;
    (void)state;

    j = os_gql(
        GQL_AUTH,
        "mutation {\n"
        " ok: createEmployeePresence(employeePresence: {roomId: \"1011\", occupancyStatus: "
        "PRESENCE, occupancyCount: 2, presenceDetectedAt: \"2026-01-07T10:30:00Z\"}) "
        "{ success errors { attribute errors label } }\n"
        " unknown: createEmployeePresence(employeePresence: {seatId: \"424242\", occupancyStatus: "
        "NO_PRESENCE, presenceDetectedAt: \"2026-01-07T10:30:00Z\"}) { success errors { attribute "
        "errors } }\n"
        " wrongtype: createEmployeePresence(employeePresence: {floorId: \"1011\", "
        "presenceDetectedAt: \"2026-01-07T10:30:00Z\"}) { success errors { attribute } }\n"
        " negative: createEmployeePresence(employeePresence: {neighborhoodId: \"1018\", "
        "occupancyCount: -1, presenceDetectedAt: \"2026-01-07T10:30:00Z\"}) { success errors { "
        "attribute } }\n"
        " badtime: createEmployeePresence(employeePresence: {siteId: \"1\", occupancyStatus: "
        "PRESENCE, presenceDetectedAt: \"yesterday\"}) { success errors { attribute } }\n"
        "}",
        NULL, &st);
    assert_int_equal(st, 200);
    assert_null(json_object_get(j, "errors"));
    assert_true(json_is_true(jpath(j, "data.ok.success")));
    assert_true(json_is_null(jpath(j, "data.ok.errors")));
    assert_true(json_is_false(jpath(j, "data.unknown.success")));
    assert_string_equal(jstr_at(j, "data.unknown.errors.0.attribute"), "seatId");
    assert_non_null(jstr_at(j, "data.unknown.errors.0.errors.0"));
    assert_string_equal(jstr_at(j, "data.wrongtype.errors.0.attribute"), "floorId");
    assert_string_equal(jstr_at(j, "data.negative.errors.0.attribute"), "occupancyCount");
    assert_string_equal(jstr_at(j, "data.badtime.errors.0.attribute"), "presenceDetectedAt");
    json_decref(j);

    /* a value outside PresenceStatusEnum, or a location field that does not exist: the
       whole document is invalid, nothing is applied */
    j = os_gql(
        GQL_AUTH,
        "mutation { a: createEmployeePresence(employeePresence: {roomId: \"1012\", "
        "occupancyStatus: BUSY, presenceDetectedAt: \"2026-01-07T10:30:00Z\"}) { success } }",
        NULL, &st);
    assert_non_null(strstr(jstr_at(j, "errors.0.message"), "PresenceStatusEnum"));
    assert_null(json_object_get(j, "data"));
    json_decref(j);
    j = os_gql(GQL_AUTH,
               "mutation { a: createEmployeePresence(employeePresence: {chairId: \"1012\", "
               "presenceDetectedAt: \"2026-01-07T10:30:00Z\"}) { success } }",
               NULL, &st);
    assert_non_null(strstr(jstr_at(j, "errors.0.message"), "chairId"));
    json_decref(j);

    /* the reference's example request, with a variable */
    {
        json_t *vars = json_pack("{s:{s:s,s:s,s:i,s:s}}", "p", "roomId", "1012", "occupancyStatus",
                                 "PASSIVE_PRESENCE", "occupancyCount", 3, "presenceDetectedAt",
                                 "2026-01-07T10:31:00Z");
        j = os_gql(GQL_AUTH,
                   "mutation P($p: EmployeePresencesCreateInput!) { createEmployeePresence("
                   "employeePresence: $p) { success errors { attribute errors label } } }",
                   vars, &st);
        json_decref(vars);
        assert_true(json_is_true(jpath(j, "data.createEmployeePresence.success")));
        json_decref(j);
    }

    j = sim_get("/_sim/presence");
    assert_int_equal(jint_at(j, "count"), 2);
    assert_int_equal(jint_at(j, "accepted"), 2);
    assert_int_equal(jint_at(j, "rejected"), 4);
    for (size_t i = 0; i < 2; i++) {
        json_t *loc = jpath(j, i ? "locations.1" : "locations.0");
        assert_string_equal(jstr_at(loc, "type"), "room");
        if (strcmp(jstr_at(loc, "id"), "1011") == 0) {
            assert_string_equal(jstr_at(loc, "occupancyStatus"), "PRESENCE");
            assert_int_equal(jint_at(loc, "occupancyCount"), 2);
            assert_string_equal(jstr_at(loc, "presenceDetectedAt"), "2026-01-07T10:30:00Z");
            assert_int_equal(jint_at(loc, "updates"), 1);
        } else {
            assert_string_equal(jstr_at(loc, "id"), "1012");
            assert_string_equal(jstr_at(loc, "occupancyStatus"), "PASSIVE_PRESENCE");
        }
    }
    json_decref(j);
    j = sim_get("/_sim/presence/log?since=1");
    assert_int_equal(jint_at(j, "count"), 1);
    assert_string_equal(jstr_at(j, "mutations.0.roomId"), "1012");
    json_decref(j);
}

/* The GraphQL twins of the REST import: employeeSeed, employeeLoad, cancelEmployeeLoad. */
static void test_graphql_employee_load(void **state)
{
    long st;
    json_t *j;
    (void)state;

    j = os_gql(
        GQL_AUTH,
        "mutation { s: employeeSeed(employees: [{employeeId: \"G1\", firstName: \"Gail\", "
        "source: \"GQL\", udf7: \"seven\"}, {firstName: \"NoId\", source: \"GQL\"}, "
        "{email: \"g2@example.com\", source: \"GQL\"}]) { imported skipped errorIds status } }",
        NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint_at(j, "data.s.imported"), 2);
    assert_int_equal(jint_at(j, "data.s.skipped"), 1);
    assert_string_equal(jstr_at(j, "data.s.errorIds.0"), "#1");
    json_decref(j);
    j = os_gql(GQL_AUTH,
               "mutation { c: cancelEmployeeLoad(source: \"OTHER\") { message status } "
               "l: employeeLoad(source: \"GQL\") { error status } }",
               NULL, &st);
    assert_string_equal(jstr_at(j, "data.c.status"), "success");
    assert_string_equal(jstr_at(j, "data.l.status"), "success");
    assert_true(json_is_null(jpath(j, "data.l.error")));
    json_decref(j);
    j = rest("GET", "/api/1/employees?client_employee_id=G1", NULL, NULL, &st);
    assert_string_equal(jstr_at(j, "response.0.first_name"), "Gail");
    assert_string_equal(jstr_at(j, "response.0.udf7"), "seven");
    json_decref(j);
    j = rest("GET", "/api/1/employees?client_employee_id=g2@example.com", NULL, NULL, &st);
    assert_int_equal(jint_at(j, "count"), 1);
    json_decref(j);
    /* an unknown input field is a validation error: nothing staged */
    j = os_gql(GQL_AUTH,
               "mutation { employeeSeed(employees: [{employeeId: \"G3\", shoeSize: \"9\"}]) { "
               "imported } }",
               NULL, &st);
    assert_non_null(strstr(jstr_at(j, "errors.0.message"), "shoeSize"));
    json_decref(j);
    j = sim_get("/_sim/employees?summary=1");
    assert_int_equal(jint_at(j, "staged_total"), 0);
    json_decref(j);
}

static void test_request_log_redacts(void **state)
{
    long st;
    json_t *j, *reqs;
    size_t i;
    char *all;
    (void)state;

    json_decref(rest("GET", "/api/1/sites", NULL, NULL, &st));
    json_decref(os_gql(GQL_AUTH, "{ sites { id } }", NULL, &st));
    json_decref(
        rest("POST", "/api/1/employee_batch_imports", NULL, "[{\"EmployeeId\":\"Z\"}]", &st));
    j = sim_get("/_sim/requests");
    all = json_dumps(j, 0);
    assert_null(strstr(all, TH_SIM_OS_KEY));
    free(all);
    reqs = json_object_get(j, "requests");
    assert_int_equal(json_array_size(reqs), 3);
    assert_string_equal(jstr_at(reqs, "0.method"), "GET");
    assert_string_equal(jstr_at(reqs, "0.path"), "/api/1/sites");
    assert_string_equal(jstr_at(reqs, "0.headers.authorization"), "Token ***");
    assert_int_equal(jint_at(reqs, "0.status"), 200);
    assert_string_equal(jstr_at(reqs, "1.headers.apikey"), "***");
    assert_string_equal(jstr_at(reqs, "2.body"), "[{\"EmployeeId\":\"Z\"}]");
    json_decref(j);

    j = sim_get("/_sim/requests?path=/graphql");
    assert_int_equal(jint_at(j, "count"), 1);
    json_decref(j);
    j = sim_get("/_sim/requests?since=2");
    assert_int_equal(jint_at(j, "count"), 1);
    assert_string_equal(jstr_at(j, "requests.0.path"), "/api/1/employee_batch_imports");
    json_decref(j);
    (void)i;

    /* reset clears the log and the staging */
    assert_int_equal(reset(NULL), 0);
    j = sim_get("/_sim/requests");
    assert_int_equal(jint_at(j, "count"), 0);
    json_decref(j);
    j = sim_get("/_sim/employees?summary=1");
    assert_int_equal(jint_at(j, "staged_total"), 0);
    assert_null(json_object_get(j, "live"));
    json_decref(j);
}

static void test_control_misc(void **state)
{
    char url[256];
    long st;
    json_t *j;
    (void)state;

    j = th_get_json(url_of(url, sizeof(url), sim.officespace_url, "/_sim/scenario"));
    assert_string_equal(jstr_at(j, "sites.0.buildings.1.id"), "BLDGdemoBeta");
    json_decref(j);
    assert_int_equal(
        th_http("GET", url_of(url, sizeof(url), sim.officespace_url, "/_sim/nope"), NULL, NULL),
        404);
    j = rest("GET", "/nothing/here", NULL, NULL, &st);
    assert_int_equal(st, 404);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_rest_auth, reset),
        cmocka_unit_test_setup(test_list_shapes, reset),
        cmocka_unit_test_setup(test_employee_import, reset),
        cmocka_unit_test_setup(test_import_replaces_source, reset),
        cmocka_unit_test_setup(test_import_mode_upsert, reset),
        cmocka_unit_test_setup(test_seeded_source, reset),
        cmocka_unit_test_setup(test_generic_resources, reset),
        cmocka_unit_test_setup(test_graphql_auth_and_sites, reset),
        cmocka_unit_test_setup(test_presence_mutations, reset),
        cmocka_unit_test_setup(test_graphql_employee_load, reset),
        cmocka_unit_test_setup(test_request_log_redacts, reset),
        cmocka_unit_test_setup(test_control_misc, reset),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (sim_exit)
        fprintf(stderr, "the simulator exited with status %d\n", sim_exit);
    return failed || sim_exit;
}
