/*
 * test_metrics_prom.c - the Prometheus exposition, checked by Prometheus'
 * own linter (`promtool check metrics`, Debian's prometheus package):
 * `osconnect run`'s /metrics after a presence cycle (build info, process
 * metrics, request-duration histograms fed by the cycle's requests), and
 * `send --metrics-file` (the final metrics of a run, written atomically for
 * node_exporter's textfile collector). Skipped, with a message, when
 * promtool is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct th_sim sim;
static int sim_exit;
static pid_t child;

static int have_promtool(void) { return system("promtool --version >/dev/null 2>&1") == 0; }

static int group_setup(void **state)
{
    const char *extra[] = {"--scenario", th_fixture("presence/sim_scenario.json"), NULL};
    (void)state;
    return th_sim_start(&sim, extra);
}

static int group_teardown(void **state)
{
    (void)state;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    sim_exit = th_sim_stop(&sim);
    th_tmpdir_cleanup();
    return 0;
}

/* `promtool check metrics < path`: its exit status; what it said goes to the test log. */
static int promtool(const char *path)
{
    char *cmd = NULL;
    int st;

    assert_true(asprintf(&cmd, "promtool check metrics < '%s' 2>&1", path) > 0);
    st = system(cmd);
    free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The value of the series line that starts with `series ` in text, or fail. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p += n;
    }
    fail_msg("no series %s in:\n%s", series, text);
    return 0;
}

static void test_run_metrics(void **state)
{
    const char *bin = getenv("OSC_BIN");
    char *yaml = NULL, *cfg, *out_path, *m_path, *body = NULL, url[256] = "";
    long deadline = th_now_ms() + 30000;
    int status;

    (void)state;
    if (!have_promtool()) {
        print_message("promtool is not installed (Debian package prometheus): skipped\n");
        skip();
    }
    assert_true(asprintf(&yaml,
                         "officespace:\n  base_url: %s\n  graphql_url: %s/graphql\n"
                         "  graphql_api_key: %s\n"
                         "mapped:\n  url: %s\n  token: %s\n"
                         "status:\n  listen: 127.0.0.1:0\n"
                         "presence:\n  buildings: [BLDGtest1, BLDGtest2]\n  interval: 1s\n"
                         "  expire_after: 0\n  state: %s/state.db\n",
                         sim.officespace_url, sim.officespace_url, TH_SIM_OS_KEY, sim.mapped_url,
                         TH_SIM_MAPPED_TOKEN, th_tmpdir()) > 0);
    cfg = th_write_file("run.yaml", yaml);
    free(yaml);
    assert_true(asprintf(&out_path, "%s/run-out.txt", th_tmpdir()) > 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        FILE *o = fopen(out_path, "w");
        if (!o || !freopen("/dev/null", "w", stderr))
            _exit(127);
        dup2(fileno(o), 1);
        execl(bin, bin, "run", "-c", cfg, (char *)NULL);
        _exit(127);
    }
    /* the status address, then a first cycle in the metrics */
    for (;;) {
        char *out = th_read_file(out_path), *s, *nl;
        if (out && (s = strstr(out, "status http://")) && (nl = strchr(s, '\n'))) {
            *nl = '\0';
            snprintf(url, sizeof(url), "%s/metrics", s + 7);
            free(out);
            free(body);
            body = NULL;
            if (th_http("GET", url, NULL, &body) == 200 &&
                strstr(body, "osconnect_presence_cycles_total{result=\"partial\"} 1"))
                break;
        } else {
            free(out);
        }
        if (th_now_ms() > deadline)
            fail_msg("no presence cycle in /metrics within 30 s:\n%s", body ? body : "");
        th_nap_ms(50);
    }
    kill(child, SIGTERM);
    waitpid(child, &status, 0);
    child = 0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    m_path = th_write_file("metrics.txt", body);
    assert_int_equal(promtool(m_path), 0);
    /* the build, the process, and the histograms fed by the cycle's requests */
    assert_non_null(
        strstr(body, "# TYPE osconnect_build_info gauge\nosconnect_build_info{version=\""));
    assert_non_null(strstr(body, ",curl=\""));
    assert_true(value(body, "process_cpu_seconds_total") >= 0);
    assert_true(value(body, "process_resident_memory_bytes") > 1e6);
    assert_true(value(body, "process_virtual_memory_bytes") > 1e6);
    assert_true(value(body, "process_open_fds") >= 3);
    assert_true(value(body, "process_max_fds") >= value(body, "process_open_fds"));
    assert_true(value(body, "process_start_time_seconds") > 1.5e9);
    assert_true(value(body, "process_start_time_seconds") <= (double)time(NULL) + 1);
    assert_non_null(strstr(body, "# TYPE osconnect_http_request_duration_seconds histogram\n"));
    /* one discovery per building (Mapped), one push (OfficeSpace) */
    assert_true(value(body, "osconnect_http_request_duration_seconds_count{api=\"mapped\"}") == 2);
    assert_true(
        value(body, "osconnect_http_request_duration_seconds_bucket{api=\"mapped\",le=\"+Inf\"}") ==
        2);
    assert_true(value(body, "osconnect_http_request_duration_seconds_count{api=\"officespace\"}") ==
                value(body, "osconnect_presence_push_requests_total"));
    assert_true(value(body, "osconnect_http_request_duration_seconds_sum{api=\"officespace\"}") >=
                0);
    free(body);
    free(m_path);
    free(out_path);
    free(cfg);
}

/* No temporary file is left in dir. */
static void no_temporary(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp."))
            fail_msg("temporary file %s left in %s", e->d_name, dir);
    closedir(d);
}

static void test_send_metrics_file(void **state)
{
    char *yaml = NULL, *cfg, *csv, *prom, *text, *dir;
    struct th_result r;
    struct stat sb;

    (void)state;
    if (!have_promtool()) {
        print_message("promtool is not installed (Debian package prometheus): skipped\n");
        skip();
    }
    assert_true(asprintf(&dir, "%s/textfile", th_tmpdir()) > 0);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_true(asprintf(&prom, "%s/osconnect-employees.prom", dir) > 0);
    assert_true(
        asprintf(&yaml,
                 "officespace:\n  base_url: %s\n  api_key: %s\n"
                 "destinations:\n"
                 "  \"emp\\\"loyees\":\n    template: upsert_employees\n"
                 "    source_name: PROM\n    batch: {size: 2}\n"
                 "    dead_letter: %s/emp.dead.jsonl\n    max_in_flight: 1\n"
                 "    retry: {base: 5ms, cap: 20ms, max_attempts: 3}\n"
                 "  commit:\n    template: trigger_directory_import\n    source_name: PROM\n",
                 sim.officespace_url, TH_SIM_OS_KEY, th_tmpdir()) > 0);
    cfg = th_write_file("prom.yaml", yaml);
    free(yaml);
    csv = th_write_file("prom.csv", "employee_id,email\n1,a@example.com\n2,b@example.com\n"
                                    "3,c@example.com\n,\n");
    {
        const char *argv[] = {"send",        "-c",       cfg,      "-d",
                              "emp\"loyees", "--commit", "commit", "--metrics-file",
                              prom,          csv,        NULL};
        assert_int_equal(th_run(argv, NULL, 60000, &r), 0);
    }
    /* the empty row is unmappable: 65, and the commit is triggered (a local reject) */
    assert_int_equal(r.status, 65);
    th_result_free(&r);
    assert_int_equal(promtool(prom), 0);
    assert_int_equal(stat(prom, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    no_temporary(dir);
    text = th_read_file(prom);
    assert_non_null(text);
    /* the destination's name is escaped in the label */
    assert_true(value(text, "osconnect_send_records{destination=\"emp\\\"loyees\"}") == 4);
    assert_true(value(text, "osconnect_send_records_sent{destination=\"emp\\\"loyees\"}") == 3);
    assert_true(value(text, "osconnect_send_records_rejected{destination=\"emp\\\"loyees\","
                            "reason=\"unmappable\"}") == 1);
    assert_true(value(text, "osconnect_send_records_rejected{destination=\"emp\\\"loyees\","
                            "reason=\"api\"}") == 0);
    assert_true(
        value(text, "osconnect_send_records_dead_lettered{destination=\"emp\\\"loyees\"}") == 1);
    /* the staging DELETE, two batches, the guard's count of live employees, the trigger */
    assert_true(value(text, "osconnect_send_requests{destination=\"emp\\\"loyees\"}") == 5);
    assert_true(value(text, "osconnect_send_exit_code{destination=\"emp\\\"loyees\"}") == 65);
    assert_true(value(text, "osconnect_send_commit{destination=\"emp\\\"loyees\","
                            "outcome=\"triggered\"}") == 1);
    assert_true(value(text, "osconnect_send_commit{destination=\"emp\\\"loyees\","
                            "outcome=\"none\"}") == 0);
    assert_true(value(text, "osconnect_send_duration_seconds{destination=\"emp\\\"loyees\"}") >= 0);
    assert_true(
        value(text, "osconnect_send_last_run_timestamp_seconds{destination=\"emp\\\"loyees\"}") >
        1.5e9);
    free(text);

    /* the next run replaces the file: a refused key, nothing sent */
    {
        const char *argv[] = {"send",           "-c", cfg, "-d", "emp\"loyees", "--restart",
                              "--metrics-file", prom, csv, NULL};
        char *cfg2;
        text = th_read_file(cfg);
        assert_non_null(text);
        {
            char *k = strstr(text, TH_SIM_OS_KEY);
            assert_non_null(k);
            memcpy(k, "wrong", 5);
        }
        cfg2 = th_write_file("bad.yaml", text);
        free(text);
        argv[2] = cfg2;
        assert_int_equal(th_run(argv, NULL, 60000, &r), 0);
        assert_int_equal(r.status, 77);
        th_result_free(&r);
        free(cfg2);
    }
    assert_int_equal(promtool(prom), 0);
    no_temporary(dir);
    text = th_read_file(prom);
    assert_true(value(text, "osconnect_send_exit_code{destination=\"emp\\\"loyees\"}") == 77);
    assert_true(value(text, "osconnect_send_records_sent{destination=\"emp\\\"loyees\"}") == 0);
    free(text);

    /* a folder that cannot be written: the run says so, and its exit status stands */
    {
        const char *argv[] = {"send",
                              "-c",
                              cfg,
                              "-d",
                              "emp\"loyees",
                              "--restart",
                              "--metrics-file",
                              "/nonexistent-dir/x.prom",
                              csv,
                              NULL};
        assert_int_equal(th_run(argv, NULL, 60000, &r), 0);
        assert_int_equal(r.status, 65);
        assert_non_null(strstr(r.err, "osconnect send: --metrics-file: cannot create "
                                      "/nonexistent-dir/x.prom.tmp."));
        th_result_free(&r);
    }
    free(csv);
    free(cfg);
    free(prom);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_metrics),
        cmocka_unit_test(test_send_metrics_file),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return rc ? rc : sim_exit;
}
