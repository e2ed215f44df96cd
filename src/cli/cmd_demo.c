/*
 * cmd_demo.c - `osconnect demo`: the whole connector against the simulator.
 *
 * Starts `osconnect sim` on free ports (a child of this same binary), writes
 * a config that points every URL at it, then runs check, send (the HR
 * export compiled into the binary, written to the demo directory, staged
 * and committed) and three presence cycles as children
 * too, exactly as a user would type them, and finally prints what the
 * simulated OfficeSpace received. Only the documented interfaces are used:
 * the commands' command lines and the simulator's /_sim endpoints.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "osc/clock.h"
#include "osc/http.h"

#define SIM_REST_KEY     "sim-officespace-key-0123456789abcdef"
#define SIM_MAPPED_TOKEN "sim-mapped-token-0123456789abcdef"

struct demo {
    char self[4096];
    char dir[64];
    char config[128];
    char sample[128];
    char mapped[160];
    char officespace[160];
    pid_t sim;
    struct osc_http *http;
    const char *data;
    int cycles;
    long interval_ms;
};

static void usage(void)
{
    printf("Usage: osconnect demo [--data FILE] [--cycles N] [--interval DURATION] [--keep]\n\n"
           "Start the simulator, then run check, send (an HR export into the employee\n"
           "directory, committed with the directory import) and presence sync against it,\n"
           "and show what OfficeSpace received.\n\n"
           "Options:\n"
           "      --data FILE          HR export to import (default: the 300-row sample\n"
           "                           examples/hr-sample.csv, built into osconnect)\n"
           "      --cycles N           presence cycles (default 3)\n"
           "      --interval DURATION  time between cycles (default 2s)\n"
           "      --keep               keep the demo directory (config, state, dead letters)\n"
           "  -h, --help               this help\n\n" CLI_EXIT_HELP);
}

static int start_sim(struct demo *d)
{
    int out[2];
    char buf[2048];
    size_t len = 0;
    int64_t deadline = osc_clock_mono_ms(NULL) + 15000;

    if (pipe(out))
        return -1;
    d->sim = fork();
    if (d->sim < 0)
        return -1;
    if (d->sim == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(d->self, d->self, "sim", "--mapped-port", "0", "--officespace-port", "0", "--seed",
              "7", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    while (!(d->mapped[0] && d->officespace[0])) {
        struct pollfd p = {out[0], POLLIN, 0};
        int64_t left = deadline - osc_clock_mono_ms(NULL);
        char *nl;
        ssize_t n;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0 ||
            (n = read(out[0], buf + len, sizeof(buf) - 1 - len)) <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            if (strncmp(buf, "mapped ", 7) == 0)
                snprintf(d->mapped, sizeof(d->mapped), "%s", buf + 7);
            else if (strncmp(buf, "officespace ", 12) == 0)
                snprintf(d->officespace, sizeof(d->officespace), "%s", buf + 12);
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len + 1);
        }
    }
    close(out[0]);
    return d->mapped[0] && d->officespace[0] ? 0 : -1;
}

static void stop_sim(struct demo *d)
{
    int status;
    if (d->sim <= 0)
        return;
    kill(d->sim, SIGTERM);
    waitpid(d->sim, &status, 0);
    d->sim = 0;
}

/* Run this binary with args; returns its exit status. */
static int run_child(struct demo *d, const char *const *args)
{
    const char *argv[32];
    size_t n = 0;
    int status = 0;
    pid_t pid;

    argv[n++] = d->self;
    printf("$ osconnect");
    for (size_t i = 0; args[i] && n < 31; i++) {
        argv[n++] = args[i];
        printf(" %s", args[i]);
    }
    argv[n] = NULL;
    printf("\n");
    fflush(stdout);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(d->self, (char *const *)argv);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* POST/GET to the simulator; returns the parsed JSON body or NULL. */
static json_t *sim_json(struct demo *d, const char *method, const char *url, const char *body,
                        enum osc_http_auth auth, const char *secret)
{
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    struct osc_http_request req = {
        method, url, hdrs, auth, secret, body, body ? strlen(body) : 0, 10000, 64 * 1024 * 1024};
    struct osc_http_response resp;
    json_t *j = NULL;

    osc_http_response_init(&resp);
    if (osc_http_perform(d->http, &req, &resp, NULL) == 0 && resp.status == 200)
        j = json_loadb(osc_buf_str(&resp.body), resp.body.len, 0, NULL);
    osc_http_response_free(&resp);
    return j;
}

static int write_config(struct demo *d, const json_t *buildings)
{
    FILE *f = fopen(d->config, "w");
    size_t i;
    json_t *b;

    if (!f)
        return -1;
    fprintf(f,
            "# written by `osconnect demo`: every URL points at the simulator\n"
            "officespace:\n"
            "  hostname: demo\n"
            "  base_url: %s\n"
            "  api_key: ${OSC_DEMO_KEY}\n"
            "  graphql_url: %s/graphql\n"
            "mapped:\n"
            "  url: %s\n"
            "  token: ${OSC_DEMO_TOKEN}\n"
            "presence:\n"
            "  interval: %lldms\n"
            "  state: %s/state.db\n"
            "  buildings:\n",
            d->officespace, d->officespace, d->mapped, (long long)d->interval_ms, d->dir);
    json_array_foreach(buildings, i, b)
        fprintf(f, "    - %s\n", json_string_value(json_object_get(b, "id")));
    fprintf(f,
            "destinations:\n"
            "  employees:\n"
            "    template: upsert_employees\n"
            "    source_name: osconnect-demo\n"
            "    dead_letter: %s/employees.dead.jsonl\n"
            "  commit:\n"
            "    template: trigger_directory_import\n"
            "    source_name: osconnect-demo\n",
            d->dir);
    return fclose(f);
}

static size_t live_count(json_t *emp)
{
    json_t *live = json_object_get(emp, "live");
    json_t *count = json_object_get(emp, "live_count");
    if (json_is_integer(count))
        return (size_t)json_integer_value(count);
    return json_is_array(live) ? json_array_size(live) : 0;
}

static const char *str_of(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (!v && k2)
        v = json_object_get(o, k2);
    return json_is_string(v) ? json_string_value(v) : "";
}

static long long int_of(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (!v && k2)
        v = json_object_get(o, k2);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static void print_presence(json_t *p)
{
    json_t *list = json_is_array(p) ? p : json_object_get(p, "locations");
    size_t i, counts[3] = {0, 0, 0};
    json_t *loc;

    if (!json_is_array(list) || json_array_size(list) == 0) {
        printf("OfficeSpace has received no presence.\n");
        return;
    }
    printf("%-13s %-7s %-17s %5s  %-21s %7s\n", "LOCATION", "ID", "STATUS", "COUNT", "DETECTED AT",
           "UPDATES");
    json_array_foreach(list, i, loc)
    {
        const char *status = str_of(loc, "occupancyStatus", "status");
        printf("%-13s %-7s %-17s %5lld  %-21s %7lld\n", str_of(loc, "type", NULL),
               str_of(loc, "id", NULL), status, int_of(loc, "occupancyCount", "count"),
               str_of(loc, "presenceDetectedAt", "detectedAt"), int_of(loc, "updates", NULL));
        counts[strcmp(status, "PRESENCE") == 0           ? 0
               : strcmp(status, "PASSIVE_PRESENCE") == 0 ? 1
                                                         : 2]++;
    }
    printf("%zu locations: %zu PRESENCE, %zu PASSIVE_PRESENCE, %zu NO_PRESENCE\n",
           json_array_size(list), counts[0], counts[1], counts[2]);
}

/* Write the built-in HR sample into the demo directory; 0 or -1 (errno). */
static int write_sample(struct demo *d)
{
    FILE *f;

    snprintf(d->sample, sizeof(d->sample), "%s/hr-sample.csv", d->dir);
    if (!(f = fopen(d->sample, "w")))
        return -1;
    if (fwrite(cli_hr_sample, 1, cli_hr_sample_len, f) != cli_hr_sample_len) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

static int rm_tree(const char *dir)
{
    char cmd[256];
    /* the directory is ours (mkdtemp); a plain rm keeps this short */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

int cmd_demo(int argc, char **argv)
{
    enum { OPT_DATA = CLI_OPT_FIRST_PRIVATE, OPT_CYCLES, OPT_INTERVAL, OPT_KEEP };
    static const struct option longopts[] = {{"data", required_argument, NULL, OPT_DATA},
                                             {"cycles", required_argument, NULL, OPT_CYCLES},
                                             {"interval", required_argument, NULL, OPT_INTERVAL},
                                             {"keep", no_argument, NULL, OPT_KEEP},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    struct demo d;
    json_t *buildings = NULL, *resp = NULL;
    char url[256];
    int opt, rc = 0, keep = 0;
    ssize_t n;

    memset(&d, 0, sizeof(d));
    d.cycles = 3;
    d.interval_ms = 2000;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'h': usage(); return 0;
        case OPT_DATA: d.data = optarg; break;
        case OPT_CYCLES:
            d.cycles = (int)strtol(optarg, &end, 10);
            if (*end || d.cycles < 1 || d.cycles > 100)
                return cli_usage_error("demo");
            break;
        case OPT_INTERVAL:
            d.interval_ms = strtol(optarg, &end, 10) * (strcmp(end, "ms") == 0 ? 1 : 1000);
            if ((*end && strcmp(end, "s") && strcmp(end, "ms")) || d.interval_ms < 100)
                return cli_usage_error("demo");
            break;
        case OPT_KEEP: keep = 1; break;
        default: return cli_usage_error("demo");
        }
    }
    if ((n = readlink("/proc/self/exe", d.self, sizeof(d.self) - 1)) <= 0) {
        fprintf(stderr, "osconnect demo: cannot find my own binary: %s\n", strerror(errno));
        return EX_OSERR;
    }
    d.self[n] = '\0';
    if (d.data && access(d.data, R_OK) != 0) {
        fprintf(stderr, "osconnect demo: cannot read %s: %s\n", d.data, strerror(errno));
        return EX_NOINPUT;
    }
    snprintf(d.dir, sizeof(d.dir), "/tmp/osconnect-demo-XXXXXX");
    if (!mkdtemp(d.dir)) {
        perror("osconnect demo: mkdtemp");
        return EX_CANTCREAT;
    }
    if (!d.data) {
        if (write_sample(&d) != 0) {
            fprintf(stderr, "osconnect demo: cannot write %s: %s\n", d.sample, strerror(errno));
            rm_tree(d.dir);
            return EX_CANTCREAT;
        }
        d.data = d.sample;
    }
    snprintf(d.config, sizeof(d.config), "%s/osconnect.yaml", d.dir);
    setenv("OSC_DEMO_KEY", SIM_REST_KEY, 1);
    setenv("OSC_DEMO_TOKEN", SIM_MAPPED_TOKEN, 1);

    printf("== 1. start the simulator (OfficeSpace and Mapped, demo scenario)\n");
    if (start_sim(&d) != 0 || !(d.http = osc_http_new(NULL, NULL))) {
        fprintf(stderr, "osconnect demo: the simulator did not start\n");
        rc = EX_SOFTWARE;
        goto out;
    }
    printf("mapped       %s\nofficespace  %s\n", d.mapped, d.officespace);
    resp = sim_json(&d, "POST", d.mapped, "{\"query\":\"query { buildings { id name } }\"}",
                    OSC_HTTP_AUTH_MAPPED, SIM_MAPPED_TOKEN);
    buildings = json_incref(json_object_get(json_object_get(resp, "data"), "buildings"));
    json_decref(resp);
    resp = NULL;
    if (!json_is_array(buildings) || json_array_size(buildings) == 0 ||
        write_config(&d, buildings)) {
        fprintf(stderr, "osconnect demo: cannot list the simulated buildings\n");
        rc = EX_SOFTWARE;
        goto out;
    }
    printf("config       %s (%zu buildings)\n\n", d.config, json_array_size(buildings));

    printf("== 2. check the configuration and the credentials\n");
    {
        const char *a[] = {"check", "-c", d.config, NULL};
        if ((rc = run_child(&d, a)) != 0)
            goto out;
    }

    printf("\n== 3. import an HR export into the employee directory, then commit it\n");
    {
        const char *a[] = {"send",     "-c",     d.config, "-d", "employees",
                           "--commit", "commit", d.data,   NULL};
        size_t before;
        snprintf(url, sizeof(url), "%s/_sim/employees", d.officespace);
        resp = sim_json(&d, "GET", url, NULL, OSC_HTTP_AUTH_NONE, NULL);
        before = live_count(resp);
        json_decref(resp);
        rc = run_child(&d, a);
        resp = sim_json(&d, "GET", url, NULL, OSC_HTTP_AUTH_NONE, NULL);
        printf("OfficeSpace's live directory: %zu employee(s) before the import, %zu now.\n",
               before, live_count(resp));
        json_decref(resp);
        resp = NULL;
        if (rc)
            goto out;
    }

    printf("\n== 4. presence sync: %d cycle(s), %lld ms apart\n", d.cycles,
           (long long)d.interval_ms);
    for (int i = 0; i < d.cycles; i++) {
        const char *a[] = {"presence", "-c", d.config, "--once", NULL};
        if (i > 0)
            osc_clock_sleep_ms(d.interval_ms, NULL);
        if ((rc = run_child(&d, a)) != 0)
            goto out;
    }

    printf("\n== 5. what OfficeSpace received\n");
    snprintf(url, sizeof(url), "%s/_sim/presence", d.officespace);
    resp = sim_json(&d, "GET", url, NULL, OSC_HTTP_AUTH_NONE, NULL);
    print_presence(resp);
out:
    json_decref(resp);
    json_decref(buildings);
    osc_http_free(d.http);
    stop_sim(&d);
    if (keep)
        printf("\ndemo files kept in %s\n", d.dir);
    else
        rm_tree(d.dir);
    if (rc)
        fprintf(stderr, "osconnect demo: a step failed (exit %d)\n", rc);
    return rc;
}
