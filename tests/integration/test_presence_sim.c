/*
 * test_presence_sim.c - `osconnect presence` against the simulator: the
 * real binary, real HTTP on 127.0.0.1, real SQLite state.
 *
 * Scenario tests/fixtures/presence/sim_scenario.json: building BLDGtest1
 * holds locations with valid, invalid, conflicting, foreign and missing
 * identities and every occupancy point type with every value member;
 * BLDGtest2 holds room 104, whose URN OfficeSpace does not know (its
 * createEmployeePresence fails), and room 106. Each test gets a fresh
 * simulator and state file. What OfficeSpace received is read back from
 * /_sim/presence and /_sim/requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SCENARIO "presence/sim_scenario.json"

static struct th_sim sim;
static char *state_path;
static pid_t child; /* a background osconnect still running; killed by teardown if a test failed */

static int setup(void **state)
{
    const char *extra[] = {"--scenario", th_fixture(SCENARIO), "--seed", "7", NULL};
    (void)state;
    assert_int_equal(th_sim_start(&sim, extra), 0);
    assert_true(asprintf(&state_path, "%s/state.db", th_tmpdir()) > 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = 0;
    }
    assert_int_equal(th_sim_stop(&sim), 0);
    free(state_path);
    state_path = NULL;
    th_tmpdir_cleanup();
    return 0;
}

/*
 * The scenario's fixed readings (room 100: 2026-01-07) are older than any expire_after, so
 * configs turn expiry off unless the test sets it.
 */
static const char *no_expiry(const char *extra)
{
    return extra && strstr(extra, "expire_after") ? "" : "  expire_after: 0\n";
}

/*
 * Write a config for the running simulator; returns the malloc'd path.
 * token/key NULL: the simulator's; extra: more lines under presence:.
 */
static char *config(const char *name, const char *buildings, const char *token, const char *key,
                    const char *interval, const char *extra)
{
    char *yaml = NULL, *path;

    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: %s\n  graphql_url: %s/graphql\n"
                         "  timeout: 2s\n"
                         "mapped:\n  url: %s\n  token: %s\n  timeout: 2s\n"
                         "presence:\n  buildings: [%s]\n  interval: %s\n  state: %s\n"
                         "  retry:\n    max_attempts: 3\n    base: 20ms\n    cap: 50ms\n%s%s",
                         sim.officespace_url, key ? key : TH_SIM_OS_KEY, sim.officespace_url,
                         sim.mapped_url, token ? token : TH_SIM_MAPPED_TOKEN, buildings,
                         interval ? interval : "1s", state_path, no_expiry(extra),
                         extra ? extra : "") > 0);
    path = th_write_file(name, yaml);
    free(yaml);
    return path;
}

static int presence(const char *cfg, const char *flag, struct th_result *r)
{
    const char *argv[] = {"presence", "-c", cfg, "--once", flag, NULL};
    assert_int_equal(th_run(argv, NULL, 30000, r), 0);
    /* secrets never reach output */
    assert_null(strstr(r->out, TH_SIM_OS_KEY));
    assert_null(strstr(r->err, TH_SIM_OS_KEY));
    assert_null(strstr(r->out, TH_SIM_MAPPED_TOKEN));
    assert_null(strstr(r->err, TH_SIM_MAPPED_TOKEN));
    return r->status;
}

static json_t *sim_json(const char *path)
{
    char url[256];
    json_t *j;
    snprintf(url, sizeof(url), "%s%s", sim.officespace_url, path);
    j = th_get_json(url);
    assert_non_null(j);
    return j;
}

static void sim_point(const char *id, const char *value)
{
    char url[256], body[256];
    snprintf(url, sizeof(url), "%s/_sim/points", sim.officespace_url);
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"value\":%s}", id, value);
    assert_int_equal(th_http("POST", url, body, NULL), 200);
}

/* The simulator's presence for type:id (borrowed from p), or NULL. */
static json_t *loc(json_t *p, const char *type, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(p, "locations"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "type")), type) == 0 &&
            strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
            return v;
    }
    return NULL;
}

static void expect(json_t *p, const char *type, const char *id, const char *status, long count,
                   long updates)
{
    json_t *l = loc(p, type, id);
    if (!l)
        fail_msg("OfficeSpace has no presence for %s:%s", type, id);
    assert_string_equal(json_string_value(json_object_get(l, "occupancyStatus")), status);
    assert_int_equal(json_integer_value(json_object_get(l, "occupancyCount")), count);
    if (updates >= 0)
        assert_int_equal(json_integer_value(json_object_get(l, "updates")), updates);
}

static long counter(json_t *p, const char *name)
{
    return (long)json_integer_value(json_object_get(p, name));
}

/* Requests the simulator received on one API ("mapped"/"officespace") for path. */
static json_t *requests(const char *server, const char *path)
{
    json_t *all = sim_json("/_sim/requests"), *out = json_array(), *v;
    size_t i;
    json_array_foreach(json_object_get(all, "requests"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "server")), server) == 0 &&
            strcmp(json_string_value(json_object_get(v, "path")), path) == 0)
            json_array_append(out, v);
    }
    json_decref(all);
    return out;
}

static size_t nrequests(const char *server)
{
    json_t *r = requests(server, "/graphql");
    size_t n = json_array_size(r);
    json_decref(r);
    return n;
}

static const char *body_of(json_t *reqs, size_t i)
{
    return json_string_value(json_object_get(json_array_get(reqs, i), "body"));
}

/* ---- tests ----------------------------------------------------------------- */

static void test_dry_run_sends_nothing(void **state)
{
    struct th_result r;
    char *cfg = config("p.yaml", "BLDGtest1", NULL, NULL, NULL, NULL);
    json_t *p;

    (void)state;
    assert_int_equal(presence(cfg, "--dry-run", &r), 0);
    assert_non_null(strstr(r.out, "LOCATION"));
    assert_non_null(strstr(r.out, "room:100 "));
    assert_non_null(strstr(r.out, "Space SPCroom100 Room 100"));
    assert_non_null(strstr(r.out, "2026-01-07T10:31:00Z"));
    assert_non_null(strstr(r.out, "neighborhood:50"));
    assert_null(strstr(r.out, "room:103 ")); /* no reading: nothing to say */
    assert_non_null(strstr(
        r.out, "# dry run: 11 locations, 8 would be pushed (8 changed, 0 refresh, 0 expired), "
               "0 unchanged, 3 without readings; nothing was sent"));
    p = sim_json("/_sim/presence");
    assert_int_equal(counter(p, "accepted") + counter(p, "rejected"), 0);
    json_decref(p);
    assert_int_equal(nrequests("officespace"), 0);
    assert_int_equal(nrequests("mapped"), 1);
    assert_int_equal(access(state_path, F_OK), -1); /* no state written */
    th_result_free(&r);
    free(cfg);

    /* stale_after: room 100's readings (2026-01-07) are too old to count; a typo is reported */
    cfg = config("stale.yaml", "BLDGtest1, BLDGtypo", NULL, NULL, NULL, "  stale_after: 1h\n");
    assert_int_equal(presence(cfg, "--dry-run", &r), 0);
    assert_non_null(strstr(r.err, "building BLDGtypo: not found in Mapped"));
    assert_null(strstr(r.err, "building BLDGtest1: not found"));
    assert_null(strstr(r.out, "room:100 "));
    assert_non_null(strstr(r.out, "room:102 "));
    assert_non_null(strstr(
        r.out, "# dry run: 11 locations, 7 would be pushed (7 changed, 0 refresh, 0 expired), "
               "0 unchanged, 4 without readings; nothing was sent"));
    th_result_free(&r);
    free(cfg);
}

static void test_discovery_mapping_change_only(void **state)
{
    struct th_result r;
    char *cfg = config("p.yaml", "BLDGtest1", NULL, NULL, NULL, NULL);
    json_t *p, *reqs;
    char apikey[128];

    (void)state;
    /* cycle 1: discovery; every location with a reading is pushed */
    assert_int_equal(presence(cfg, NULL, &r), 0);
    assert_non_null(strstr(r.err, "SPCbadurn: invalid identity 'urn:officespace:room:id:abc'"));
    assert_non_null(strstr(r.err,
                           "SPCconflict: conflicting identities 'urn:officespace:room:id:300' "
                           "and 'urn:officespace:desk:id:301'"));
    assert_non_null(strstr(r.err, "PNTr105status: latest value is NaN"));
    assert_null(strstr(r.err, "SPCnoident"));
    assert_null(strstr(r.err, "SPCother"));
    assert_null(strstr(r.err, "PNTotherNaN")); /* no location uses it: not reported */
    assert_null(strstr(r.err, "999"));
    assert_non_null(strstr(r.err, "discovered 11 locations and 13 occupancy points in 16 places"));
    th_result_free(&r);

    p = sim_json("/_sim/presence");
    assert_int_equal(counter(p, "accepted"), 8);
    assert_int_equal(counter(p, "rejected"), 0);
    assert_int_equal(counter(p, "count"), 8);
    expect(p, "floor", "10", "PRESENCE", 12, 1);        /* uint64 count */
    expect(p, "room", "100", "PRESENCE", 4, 1);         /* float64 status + int64 count */
    expect(p, "room", "101", "NO_PRESENCE", 0, 1);      /* int32 temporary status 0 */
    expect(p, "room", "102", "PRESENCE", 1, 1);         /* numeric stringValue */
    expect(p, "desk", "200", "PASSIVE_PRESENCE", 1, 1); /* boolValue PIR */
    expect(p, "desk", "201", "NO_PRESENCE", 0, 1);      /* float32 occupancy sensor 0 */
    expect(p, "desk", "202", "PASSIVE_PRESENCE", 1, 1); /* uint32 1 beats int64 PIR 0 */
    expect(p, "neighborhood", "50", "PRESENCE", 3, 1);  /* count 2.6 rounds to 3 over PIR */
    /* the newest reading of the location is presenceDetectedAt */
    assert_string_equal(
        json_string_value(json_object_get(loc(p, "room", "100"), "presenceDetectedAt")),
        "2026-01-07T10:31:00Z");
    assert_null(loc(p, "site", "1"));   /* no points */
    assert_null(loc(p, "room", "103")); /* no reading yet */
    assert_null(loc(p, "room", "105")); /* NaN */
    assert_null(loc(p, "room", "300")); /* conflicting identities */
    assert_null(loc(p, "desk", "301"));
    assert_null(loc(p, "room", "999")); /* not an ExternalIdentity */
    json_decref(p);

    /* one aliased GraphQL request carried all eight, with the GraphQL key */
    reqs = requests("officespace", "/graphql");
    assert_int_equal(json_array_size(reqs), 1);
    assert_non_null(strstr(body_of(reqs, 0), "p0: createEmployeePresence(employeePresence: {"));
    assert_non_null(strstr(body_of(reqs, 0), "p7: createEmployeePresence"));
    assert_null(strstr(body_of(reqs, 0), "p8:"));
    assert_non_null(strstr(body_of(reqs, 0),
                           "roomId: \\\"100\\\", occupancyStatus: PRESENCE, occupancyCount: 4, "
                           "presenceDetectedAt: \\\"2026-01-07T10:31:00Z\\\""));
    assert_non_null(strstr(body_of(reqs, 0), "seatId: \\\"200\\\""));
    assert_non_null(strstr(body_of(reqs, 0), "neighborhoodId: \\\"50\\\""));
    assert_non_null(strstr(body_of(reqs, 0), "floorId: \\\"10\\\""));
    snprintf(apikey, sizeof(apikey), "%s",
             json_string_value(
                 json_object_get(json_object_get(json_array_get(reqs, 0), "headers"), "apikey")));
    assert_true(apikey[0] != '\0');
    json_decref(reqs);

    /* cycle 2, a new process: nothing changed, the state file says so, nothing is sent */
    assert_int_equal(presence(cfg, NULL, &r), 0);
    th_result_free(&r);
    assert_int_equal(nrequests("officespace"), 1);

    /* scripted changes: desk 200 empties, room 100 empties, neighborhood 50 grows, room 103 reports
     */
    sim_point("PNTd200pir", "false");
    sim_point("PNTr100status", "0");
    sim_point("PNTr100count", "0");
    sim_point("PNTn50count", "5");
    sim_point("PNTr103status", "1");
    assert_int_equal(presence(cfg, NULL, &r), 0);
    th_result_free(&r);
    p = sim_json("/_sim/presence");
    assert_int_equal(counter(p, "accepted"), 12);
    expect(p, "desk", "200", "NO_PRESENCE", 0, 2);
    expect(p, "room", "100", "NO_PRESENCE", 0, 2);
    expect(p, "neighborhood", "50", "PRESENCE", 5, 2);
    expect(p, "room", "103", "PRESENCE", 1, 1);
    expect(p, "floor", "10", "PRESENCE", 12, 1); /* unchanged: not resent */
    expect(p, "desk", "202", "PASSIVE_PRESENCE", 1, 1);
    json_decref(p);
    reqs = requests("officespace", "/graphql");
    assert_int_equal(json_array_size(reqs), 2);
    assert_null(strstr(body_of(reqs, 1), "floorId"));
    json_decref(reqs);

    /* cycle 4: a count change within PRESENCE is a change too; the status alone is not enough */
    sim_point("PNTfloorCount", "13");
    assert_int_equal(presence(cfg, NULL, &r), 0);
    th_result_free(&r);
    p = sim_json("/_sim/presence");
    expect(p, "floor", "10", "PRESENCE", 13, 2);
    assert_int_equal(counter(p, "accepted"), 13);
    json_decref(p);

    /* cycle 5, the count rules: status 1 with the count sensor at 0 is PRESENCE 1, and a count
     * of 0.4 (PIR quiet) is PRESENCE 1: the presence decision comes before the rounding */
    sim_point("PNTr100status", "1");
    sim_point("PNTr100count", "0");
    sim_point("PNTn50pir", "0");
    sim_point("PNTn50count", "0.4");
    assert_int_equal(presence(cfg, NULL, &r), 0);
    th_result_free(&r);
    p = sim_json("/_sim/presence");
    expect(p, "room", "100", "PRESENCE", 1, 3);
    expect(p, "neighborhood", "50", "PRESENCE", 1, 3);
    json_decref(p);
    free(cfg);
}

static void test_item_error_retried_next_cycle(void **state)
{
    struct th_result r;
    char *cfg = config("p.yaml", "BLDGtest1, BLDGtest2", NULL, NULL, NULL, NULL);
    json_t *p, *reqs;

    (void)state;
    assert_int_equal(presence(cfg, NULL, &r), 1); /* partial */
    assert_non_null(strstr(r.err, "OfficeSpace refused urn:officespace:room:id:104"));
    assert_non_null(strstr(r.err, "Room 104 not found"));
    th_result_free(&r);
    p = sim_json("/_sim/presence");
    assert_int_equal(counter(p, "accepted"), 9);
    assert_int_equal(counter(p, "rejected"), 1);
    expect(p, "room", "106", "PRESENCE", 7, 1); /* same request, accepted */
    assert_null(loc(p, "room", "104"));
    json_decref(p);

    /* next cycle: only the refused location is sent again */
    assert_int_equal(presence(cfg, NULL, &r), 1);
    th_result_free(&r);
    reqs = requests("officespace", "/graphql");
    assert_int_equal(json_array_size(reqs), 2);
    assert_non_null(strstr(body_of(reqs, 1), "roomId: \\\"104\\\""));
    assert_null(strstr(body_of(reqs, 1), "p1:"));
    json_decref(reqs);
    p = sim_json("/_sim/presence");
    assert_int_equal(counter(p, "accepted"), 9);
    assert_int_equal(counter(p, "rejected"), 2);
    json_decref(p);
    free(cfg);
}

static void test_once_exit_codes(void **state)
{
    struct th_result r;
    char *cfg;
    const char *usage[] = {"presence", "--bogus", NULL};

    (void)state;
    /* Mapped refuses the token: 77, said once, token not shown */
    cfg = config("bad-token.yaml", "BLDGtest1", "sim-mapped-token-WRONG-0000000000", NULL, NULL,
                 NULL);
    assert_int_equal(presence(cfg, NULL, &r), 77);
    assert_non_null(strstr(r.err, "Mapped refused the token (HTTP 401)"));
    assert_null(strstr(r.err, "WRONG"));
    th_result_free(&r);
    free(cfg);

    /* OfficeSpace refuses the GraphQL key: 77 */
    cfg = config("bad-key.yaml", "BLDGtest1", NULL, "sim-officespace-key-WRONG-000000000", NULL,
                 NULL);
    assert_int_equal(presence(cfg, NULL, &r), 77);
    assert_non_null(strstr(r.err, "OfficeSpace refused the GraphQL key"));
    th_result_free(&r);
    free(cfg);

    /* Mapped down (HTTP 503 on every try): 69, after bounded retries */
    {
        char url[256];
        snprintf(url, sizeof(url), "%s/_sim/faults", sim.officespace_url);
        size_t before = nrequests("mapped");
        assert_int_equal(th_http("POST", url, "503:server=mapped", NULL), 200);
        cfg = config("p.yaml", "BLDGtest1", NULL, NULL, NULL, NULL);
        assert_int_equal(presence(cfg, NULL, &r), 69);
        assert_non_null(strstr(r.err, "HTTP 503"));
        th_result_free(&r);
        assert_int_equal(nrequests("mapped") - before, 3); /* retry.max_attempts */
        assert_int_equal(nrequests("officespace"), 1);     /* the bad-key attempt only */
        assert_int_equal(th_http("POST", url, "", NULL), 200);
        /* and once it is back, the same command succeeds */
        assert_int_equal(presence(cfg, NULL, &r), 0);
        th_result_free(&r);
        free(cfg);
    }

    /* Mapped refuses the request itself (wrong path: 404): 69, not "OfficeSpace refused items" */
    {
        char *yaml, *at, *bad, url[160];
        cfg = config("p.yaml", "BLDGtest1", NULL, NULL, NULL, NULL);
        yaml = th_read_file(cfg);
        snprintf(url, sizeof(url), "%s\n", sim.mapped_url);
        at = strstr(yaml, url);
        assert_non_null(at);
        memcpy(at + strlen(sim.mapped_url) - 7, "/nope/x", 7); /* ".../graphql" -> ".../nope/x" */
        bad = th_write_file("404.yaml", yaml);
        assert_int_equal(presence(bad, NULL, &r), 69);
        assert_non_null(strstr(r.err, "Mapped answered HTTP 404"));
        th_result_free(&r);
        free(bad);
        free(yaml);
        free(cfg);
    }

    /* no presence: section: 78 */
    {
        char *bad = th_write_file("nopresence.yaml", "officespace:\n  hostname: x\n  api_key: k\n");
        const char *argv[] = {"presence", "-c", bad, "--once", NULL};
        assert_int_equal(th_run(argv, NULL, 30000, &r), 0);
        assert_int_equal(r.status, 78);
        th_result_free(&r);
        free(bad);
    }
    assert_int_equal(th_run(usage, NULL, 30000, &r), 0);
    assert_int_equal(r.status, 64);
    th_result_free(&r);
}

/* ---- continuous runs ------------------------------------------------------- */

struct proc {
    pid_t pid;
    char *err_path;
};

static void spawn(struct proc *pr, const char *const *argv)
{
    const char *bin = getenv("OSC_BIN");
    const char *av[16];
    size_t n = 0;

    assert_non_null(bin);
    assert_true(asprintf(&pr->err_path, "%s/stderr-%ld.txt", th_tmpdir(), th_now_ms()) > 0);
    av[n++] = bin;
    for (size_t i = 0; argv[i] && n < 15; i++)
        av[n++] = argv[i];
    av[n] = NULL;
    pr->pid = fork();
    assert_true(pr->pid >= 0);
    if (pr->pid == 0) {
        FILE *e = fopen(pr->err_path, "w");
        FILE *o = fopen("/dev/null", "w");
        if (!e || !o)
            _exit(127);
        dup2(fileno(e), 2);
        dup2(fileno(o), 1);
        execv(bin, (char *const *)av);
        _exit(127);
    }
    child = pr->pid;
}

/* Signal and wait (at most 15 s); the exit status. */
static int stop(struct proc *pr, int sig)
{
    int status = 0;
    long deadline = th_now_ms() + 15000;
    if (sig)
        kill(pr->pid, sig);
    while (waitpid(pr->pid, &status, WNOHANG) == 0) {
        if (th_now_ms() > deadline) {
            kill(pr->pid, SIGKILL);
            waitpid(pr->pid, &status, 0);
            child = 0;
            fail_msg("osconnect did not stop within 15 s");
        }
        th_nap_ms(20);
    }
    child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What the process wrote to stderr so far ("" before the child opened the file). */
static char *err_text(struct proc *pr)
{
    char *s = th_read_file(pr->err_path);
    if (!s)
        s = strdup("");
    assert_non_null(s);
    return s;
}

static size_t occurrences(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* Mapped 401: back off exponentially, one log line per step, no hammering. */
static void test_mapped_401_backoff(void **state)
{
    /* interval 200ms: without backoff 2.6 s would be 13 cycles */
    char *cfg =
        config("p.yaml", "BLDGtest1", "sim-mapped-token-WRONG-0000000000", NULL, "200ms", NULL);
    const char *argv[] = {"presence", "-c", cfg, NULL};
    struct proc pr;
    long start, deadline;
    char *err = NULL;
    size_t n;

    (void)state;
    spawn(&pr, argv);
    start = th_now_ms();
    deadline = start + 30000;
    while (th_now_ms() < deadline) {
        free(err);
        err = err_text(&pr);
        if (strstr(err, "(step 3)"))
            break;
        th_nap_ms(50);
    }
    assert_non_null(strstr(err, "(step 3)"));
    /* steps 1..3 waited 400 + 800 ms: at least 1.2 s passed, and only 4 requests were made */
    assert_true(th_now_ms() - start >= 1100);
    n = nrequests("mapped");
    assert_true(n >= 3 && n <= 4);
    assert_int_equal(stop(&pr, SIGTERM), 0);
    free(err);
    err = err_text(&pr);
    assert_int_equal(occurrences(err, "(step 1)"), 1);
    assert_int_equal(occurrences(err, "(step 2)"), 1);
    assert_int_equal(occurrences(err, "(step 3)"), 1);
    assert_non_null(strstr(err, "backing off: next attempt in 0.4s (step 1)"));
    /* one line per refused cycle, nothing else about it */
    assert_int_equal(occurrences(err, "Mapped refused the token"), occurrences(err, "backing off"));
    assert_null(strstr(err, "WRONG"));
    assert_int_equal(nrequests("officespace"), 0);
    free(err);
    free(pr.err_path);
    free(cfg);
}

/* What the sensors say after the scripted changes of round i (see test_faults_converge). */
static void round_values(int i)
{
    char v[32];
    snprintf(v, sizeof(v), "%d", i * 3);
    sim_point("PNTfloorCount", v);
    sim_point("PNTd200pir", i % 2 ? "true" : "false");
    sim_point("PNTr100status", i % 2 ? "0" : "1");
    snprintf(v, sizeof(v), "%d", i % 4);
    sim_point("PNTr100count", v);
    snprintf(v, sizeof(v), "%d.4", i);
    sim_point("PNTn50count", v);
    sim_point("PNTd201occ", i % 3 ? "1" : "0");
}

/* Requests to one API that a fault rule answered. */
static size_t faulted(const char *server)
{
    json_t *reqs = requests(server, "/graphql"), *v;
    size_t i, n = 0;
    json_array_foreach(reqs, i, v)
    {
        if (json_object_get(v, "fault"))
            n++;
    }
    json_decref(reqs);
    return n;
}

/*
 * Issue 6, presence half: under OfficeSpace 500s, connection resets (before
 * and after the mutation was applied) and Mapped 503s while the sensors
 * change, then with the faults cleared, OfficeSpace matches the sensors
 * after at most two cycles that started after the clear.
 */
static void test_faults_converge(void **state)
{
    char *cfg = config("p.yaml", "BLDGtest1", NULL, NULL, "250ms", "  resend_after: 1h\n");
    const char *argv[] = {"presence", "-c", cfg, NULL};
    char url[256];
    struct proc pr;
    json_t *reqs, *p;
    int64_t clear_seq;
    long deadline;
    int last = 0;

    (void)state;
    snprintf(url, sizeof(url), "%s/_sim/faults", sim.officespace_url);
    assert_int_equal(th_http("POST", url,
                             "reset-afterx1:server=officespace,500x1:server=officespace,"
                             "500@0.3:server=officespace,reset@0.15:server=officespace,"
                             "reset-after@0.15:server=officespace,"
                             "503x2:server=mapped,503@0.3:server=mapped:retry-after=0",
                             NULL),
                     200);
    spawn(&pr, argv);
    /* sensors change every 200 ms until the faults have hit both APIs (at least 8 rounds) */
    deadline = th_now_ms() + 60000;
    for (int i = 1;; i++) {
        round_values(i);
        last = i;
        th_nap_ms(200);
        if (i >= 8 && faulted("officespace") >= 2 && faulted("mapped") >= 2)
            break;
        assert_true(th_now_ms() < deadline);
    }
    /* faults cleared: remember the last request so far */
    assert_int_equal(th_http("POST", url, "", NULL), 200);
    reqs = sim_json("/_sim/requests");
    clear_seq = json_integer_value(
        json_object_get(json_array_get(json_object_get(reqs, "requests"),
                                       json_array_size(json_object_get(reqs, "requests")) - 1),
                        "seq"));
    json_decref(reqs);
    /* wait until a third Mapped read started after the clear: two whole cycles ended */
    deadline = th_now_ms() + 30000;
    for (;;) {
        size_t n = 0, i;
        json_t *v;
        reqs = requests("mapped", "/graphql");
        json_array_foreach(reqs, i, v)
        {
            if (json_integer_value(json_object_get(v, "seq")) > clear_seq)
                n++;
        }
        json_decref(reqs);
        if (n >= 3)
            break;
        assert_true(th_now_ms() < deadline);
        th_nap_ms(20);
    }
    assert_int_equal(stop(&pr, SIGTERM), 0);

    p = sim_json("/_sim/presence");
    assert_true(counter(p, "accepted") >= 8);
    expect(p, "floor", "10", "PRESENCE", last * 3, -1);
    expect(p, "desk", "200", last % 2 ? "PASSIVE_PRESENCE" : "NO_PRESENCE", last % 2, -1);
    /* room 100: status and count sensors; the count is the count sensor's, at least 1 (status 1
     * with the count sensor at 0 is PRESENCE with 1) */
    expect(p, "room", "100", "PRESENCE", last % 4 ? last % 4 : 1, -1);
    expect(p, "neighborhood", "50", "PRESENCE", last, -1);
    expect(p, "desk", "201", last % 3 ? "PASSIVE_PRESENCE" : "NO_PRESENCE", last % 3 ? 1 : 0, -1);
    expect(p, "room", "101", "NO_PRESENCE", 0, -1);
    expect(p, "room", "102", "PRESENCE", 1, -1);
    expect(p, "desk", "202", "PASSIVE_PRESENCE", 1, -1);
    json_decref(p);
    free(pr.err_path);
    free(cfg);
}

/* The simulator's presence for type:id: its status and updates (0 when absent). */
static long updates(const char *type, const char *id, char *status, size_t cap)
{
    json_t *p = sim_json("/_sim/presence"), *l = loc(p, type, id);
    long n = l ? (long)json_integer_value(json_object_get(l, "updates")) : 0;
    snprintf(status, cap, "%s", l ? json_string_value(json_object_get(l, "occupancyStatus")) : "");
    json_decref(p);
    return n;
}

/*
 * presence.expire_after: when a location's readings stop, it gets one NO_PRESENCE push, logged
 * as expired and remembered across processes; nothing more until a fresh reading comes.
 */
static void test_expire_after(void **state)
{
    /* 5 s: long enough that a reading set just before a `presence --once` is still fresh
     * when that process (slow under valgrind) reads it */
    char *cfg = config("p.yaml", "BLDGtest1", NULL, NULL, "200ms", "  expire_after: 5s\n");
    const char *argv[] = {"presence", "-c", cfg, NULL};
    struct proc pr;
    struct th_result r;
    char st[32], *err;
    long deadline;
    size_t n;

    (void)state;
    spawn(&pr, argv);
    /* desk 200 reads occupied now (again, until the daemon has pushed it) */
    deadline = th_now_ms() + 30000;
    do {
        sim_point("PNTd200pir", "true");
        assert_true(th_now_ms() < deadline);
        th_nap_ms(100);
    } while (updates("desk", "200", st, sizeof(st)) < 1);
    assert_string_equal(st, "PASSIVE_PRESENCE");
    /* no reading for 5 s: one NO_PRESENCE */
    while (updates("desk", "200", st, sizeof(st)) < 2) {
        assert_true(th_now_ms() < deadline);
        th_nap_ms(50);
    }
    assert_string_equal(st, "NO_PRESENCE");
    {
        json_t *p = sim_json("/_sim/presence");
        expect(p, "desk", "200", "NO_PRESENCE", 0, 2);
        json_decref(p);
    }
    /* and nothing more: ten more cycles later it is still the one push */
    n = nrequests("mapped");
    while (nrequests("mapped") < n + 10) {
        assert_true(th_now_ms() < deadline);
        th_nap_ms(50);
    }
    assert_int_equal(updates("desk", "200", st, sizeof(st)), 2);
    assert_int_equal(stop(&pr, SIGTERM), 0);
    err = err_text(&pr);
    assert_non_null(strstr(err, "urn:officespace:desk:id:200 (Space SPCdesk200) expired: no "
                                "fresh reading for 5s"));
    assert_non_null(strstr(err, "last pushed PASSIVE_PRESENCE 1); pushing NO_PRESENCE once"));
    assert_int_equal(occurrences(err, "urn:officespace:desk:id:200 (Space SPCdesk200) expired"), 1);
    free(err);

    /* a new process: the state remembers the expiry, nothing is sent */
    n = nrequests("officespace");
    assert_int_equal(presence(cfg, NULL, &r), 0);
    assert_null(strstr(r.err, "desk:id:200 (Space SPCdesk200) expired"));
    th_result_free(&r);
    assert_int_equal(nrequests("officespace"), n);

    /* a fresh reading brings it back at once */
    sim_point("PNTd200pir", "true");
    assert_int_equal(presence(cfg, NULL, &r), 0);
    th_result_free(&r);
    assert_int_equal(updates("desk", "200", st, sizeof(st)), 3);
    assert_string_equal(st, "PASSIVE_PRESENCE");
    free(pr.err_path);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dry_run_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_mapping_change_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_item_error_retried_next_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_once_exit_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapped_401_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_converge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_after, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
