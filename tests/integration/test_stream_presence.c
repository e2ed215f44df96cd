/*
 * test_stream_presence.c - presence sync shared by two `osconnect run` with
 * the same config and presence.coordination (src/presence/coord.c, the KV
 * leases of src/stream/lease.c), against a real `nats-server -js` and the
 * simulator with six buildings (tests/fixtures/presence/six_buildings.json).
 *
 *   - Once both run, each holds 3 of the 6 buildings (disjoint), and over
 *     three cycles every building is read from Mapped once per cycle (never
 *     by both), each Mapped request asking only for buildings of one holder.
 *   - After the second is SIGKILLed, all 6 buildings are read by the survivor
 *     within 2 intervals of the kill; SIGTERM then releases its leases.
 *   - The same `run` delivers a spool source beside presence sync (each instance
 *     has its own folder, under its $STATE_DIRECTORY).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "harness.h"
#include "natsserver.h"
#include "test_stream_util.h"

#define INTERVAL_MS 2000
#define NB          6

static struct th_nats server;
static struct th_sim sim;

static int group_setup(void **state)
{
    const char *extra[] = {"--scenario", th_fixture("presence/six_buildings.json"), NULL};
    (void)state;
    if (th_nats_start(&server, NULL))
        return -1;
    return th_sim_start(&sim, extra);
}

static int group_teardown(void **state)
{
    (void)state;
    kill_all();
    th_sim_stop(&sim);
    th_nats_stop(&server);
    th_tmpdir_cleanup();
    return 0;
}

static const char *bldg(int i)
{
    static char ids[NB][16];
    snprintf(ids[i], sizeof(ids[i]), "BLDGsix%d", i + 1);
    return ids[i];
}

/* The Mapped requests after seq since: for each, which buildings it names (mask) and its seq. */
struct mreq {
    long seq;
    unsigned mask;
};

static size_t mapped_requests(long since, struct mreq *out, size_t cap)
{
    char url[300], *base = strdup(sim.mapped_url), *g;
    json_t *j, *reqs, *r;
    size_t i, n = 0;

    assert_non_null(base);
    if ((g = strstr(base, "/graphql")) != NULL)
        *g = '\0';
    snprintf(url, sizeof(url), "%s/_sim/requests?since=%ld&path=/graphql", base, since);
    free(base);
    assert_non_null(j = th_get_json(url));
    reqs = json_object_get(j, "requests");
    json_array_foreach(reqs, i, r)
    {
        const char *server_name = json_string_value(json_object_get(r, "server"));
        const char *body = json_string_value(json_object_get(r, "body"));
        unsigned mask = 0;
        if (!server_name || strcmp(server_name, "mapped") != 0 || !body)
            continue;
        for (int b = 0; b < NB; b++)
            if (strstr(body, bldg(b)))
                mask |= 1u << b;
        if (n < cap) {
            out[n].seq = (long)json_integer_value(json_object_get(r, "seq"));
            out[n].mask = mask;
            n++;
        }
    }
    json_decref(j);
    return n;
}

static long last_seq(void)
{
    static struct mreq r[4096];
    size_t n = mapped_requests(0, r, sizeof(r) / sizeof(r[0]));
    return n ? r[n - 1].seq : 0;
}

/* The buildings the last "holding N of 6 building(s): ..." line of a log names. */
static unsigned held_mask(const char *log_path)
{
    char *t = slurp(log_path), *p = t, *last = NULL, *nl;
    unsigned mask = 0;

    while ((p = strstr(p, "holding ")) != NULL)
        last = p++;
    if (last) {
        if ((nl = strchr(last, '\n')) != NULL)
            *nl = '\0';
        for (int b = 0; b < NB; b++)
            if (strstr(last, bldg(b)))
                mask |= 1u << b;
    }
    free(t);
    return mask;
}

/* Cycles the instance ran (osconnect_presence_cycles_total over every result). */
static long cycles_of(const struct proc *pr)
{
    char url[256], *body = NULL, *p;
    long n = 0;

    status_url_n(pr, 1, url, sizeof(url) - 16);
    strcat(url, "/metrics");
    assert_int_equal(th_http("GET", url, NULL, &body), 200);
    for (p = body; (p = strstr(p, "osconnect_presence_cycles_total{")) != NULL; p++)
        n += strtol(strchr(p, '}') + 1, NULL, 10);
    free(body);
    return n;
}

/* Wait until the instance ran n cycles. */
static void wait_cycles(const struct proc *pr, long n)
{
    long deadline = now_ms() + 10L * n * INTERVAL_MS;
    while (cycles_of(pr) < n) {
        if (now_ms() > deadline)
            fail_msg("the instance did not run %ld cycles in time", n);
        nap_ms(50);
    }
}

static int popcount(unsigned m)
{
    int n = 0;
    for (; m; m &= m - 1)
        n++;
    return n;
}

static void test_two_instances_share_six_buildings(void **state)
{
    static struct mreq reqs[4096];
    struct proc a = {0}, b = {0};
    char *yaml = NULL, *cfg, sd[512];
    unsigned ma = 0, mb = 0, seen = 0;
    long since, killed_at, deadline, took;
    int counts[NB] = {0};
    size_t n;
    (void)state;

    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  api_key: " TH_SIM_OS_KEY "\n"
                         "  graphql_url: %s/graphql\n"
                         "mapped: {url: %s, token: " TH_SIM_MAPPED_TOKEN "}\n"
                         "status: {listen: 127.0.0.1:0}\n"
                         "presence:\n"
                         "  buildings: [BLDGsix1, BLDGsix2, BLDGsix3, BLDGsix4, BLDGsix5, "
                         "BLDGsix6]\n"
                         "  interval: %dms\n"
                         "  state: presence.db\n"
                         "  coordination: {type: nats, url: %s, bucket: six_test}\n"
                         "destinations:\n"
                         "  employees:\n"
                         "    template: upsert_employees\n"
                         "    source_name: SIXHR\n"
                         "    source: {type: spool, path: spool}\n",
                         sim.officespace_url, sim.officespace_url, sim.mapped_url, INTERVAL_MS,
                         server.url) > 0);
    cfg = th_write_file("six.yaml", yaml);
    free(yaml);

    snprintf(sd, sizeof(sd), "%s/a", th_tmpdir());
    spawn_run(&a, cfg, sd);
    wait_text(a.err_path, "holding 6 of 6 building(s)", 20000);
    snprintf(sd, sizeof(sd), "%s/b", th_tmpdir());
    spawn_run(&b, cfg, sd);
    /* the first gives up half, the second takes it */
    wait_text(b.err_path, "holding 3 of 6 building(s)", 20000);
    wait_text(a.err_path, "holding 3 of 6 building(s)", 20000);
    ma = held_mask(a.err_path);
    mb = held_mask(b.err_path);
    assert_int_equal(popcount(ma), 3);
    assert_int_equal(popcount(mb), 3);
    assert_int_equal(ma & mb, 0);
    assert_int_equal(ma | mb, (1u << NB) - 1);

    /* three cycles of each, from now on */
    since = last_seq();
    {
        long ca = cycles_of(&a), cb = cycles_of(&b);
        /* one cycle to finish what started before `since`, then three whole ones */
        wait_cycles(&a, ca + 4);
        wait_cycles(&b, cb + 4);
    }
    n = mapped_requests(since, reqs, sizeof(reqs) / sizeof(reqs[0]));
    for (size_t i = 0; i < n; i++) {
        /* one holder's buildings per request, never the other's */
        if ((reqs[i].mask & ma) && (reqs[i].mask & mb))
            fail_msg("a Mapped request names buildings of both instances (mask %x)", reqs[i].mask);
        for (int k = 0; k < NB; k++)
            counts[k] += (reqs[i].mask >> k) & 1;
    }
    for (int k = 0; k < NB; k++)
        if (counts[k] < 3 || counts[k] > 5)
            fail_msg("%s was read %d times in 4 cycles of each instance (once per cycle expected)",
                     bldg(k), counts[k]);

    /* kill the second: the survivor reads all six within 2 intervals */
    since = last_seq();
    kill(b.pid, SIGKILL);
    killed_at = now_ms();
    waitpid(b.pid, NULL, 0);
    track(0, b.pid);
    b.pid = 0;
    for (deadline = killed_at + 4 * INTERVAL_MS; seen != (1u << NB) - 1; nap_ms(20)) {
        n = mapped_requests(since, reqs, sizeof(reqs) / sizeof(reqs[0]));
        for (size_t i = 0; i < n; i++)
            seen |= reqs[i].mask;
        if (now_ms() > deadline)
            fail_msg("after the kill only buildings %x were read in %d ms", seen, 4 * INTERVAL_MS);
    }
    took = now_ms() - killed_at;
    print_message("all %d buildings read by the survivor %ld ms after the kill (interval %d ms)\n",
                  NB, took, INTERVAL_MS);
    if (took > 2 * INTERVAL_MS)
        fail_msg("the survivor read all buildings %ld ms after the kill: more than 2 intervals",
                 took);
    wait_text(a.err_path, "holding 6 of 6 building(s)", 1000);
    /* the source beside presence sync: a file renamed into the survivor's spool is delivered */
    {
        char dir[600], done[700];
        snprintf(dir, sizeof(dir), "%s/a/spool", th_tmpdir());
        write_rename(dir, "hr.csv",
                     "EmployeeId,FirstName,LastName,Email\nE7,Ada,Byron,ab@example.com\n");
        snprintf(done, sizeof(done), "%s/done/hr.csv", dir);
        wait_file(done, 20000);
    }
    assert_int_equal(stop_within(&a, SIGTERM, 2000), 0);
    wait_text(a.err_path, "leases released", 1000);
    proc_free(&a);
    proc_free(&b);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_instances_share_six_buildings),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
