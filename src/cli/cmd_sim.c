/*
 * cmd_sim.c - `osconnect sim`: run the OfficeSpace + Mapped simulator until
 * SIGINT/SIGTERM.
 *
 * The two URL lines on stdout are an interface (the test harness and
 * `osconnect demo` parse them): they are printed and flushed once both
 * ports are bound, and nothing else is ever written to stdout, because the
 * reader may close the pipe afterwards. Signals are blocked before the
 * server threads start, so only the main thread receives them (sigwait).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "osc/parse.h"
#include "osc/sim.h"

static void usage(void)
{
    printf(
        "Usage: osconnect sim [OPTIONS]\n"
        "\n"
        "Run a local OfficeSpace (REST /api/1 + GraphQL /graphql) and Mapped (GraphQL\n"
        "/graphql) simulator until SIGINT or SIGTERM. Once both ports are bound it prints\n"
        "  mapped http://127.0.0.1:PORT/graphql\n"
        "  officespace http://127.0.0.1:PORT\n"
        "on stdout. Both ports also serve the /_sim/... control endpoints (no auth).\n"
        "\n"
        "Options:\n"
        "      --mapped-port N          Mapped API port (default %d; 0 picks a free port)\n"
        "      --officespace-port N     OfficeSpace API port (default %d; 0 picks one)\n"
        "      --listen ADDR            address to bind (default 127.0.0.1)\n"
        "      --scenario FILE          scenario (.json, .yaml, .yml); default: built-in demo\n"
        "      --generate-locations N   generate a large scenario with N locations\n"
        "      --generate-points N      ...and N points (default 5 per location)\n"
        "      --faults RULES           fault rules, e.g. '429@0.1:retry-after=2,503x3,\n"
        "                               delay=300ms@0.2,reset@0.02,reset-after@0.01,timeout@0.01'\n"
        "      --seed N                 seed for faults and random point values (default 1)\n"
        "      --rate-limit N[/s]       requests per second per port; 429 beyond (default off)\n"
        "      --max-body SIZE          request body cap (default 64MiB)\n"
        "      --import-mode MODE       what a directory commit does with a source's staging:\n"
        "                               replace (default: the source's employees missing from\n"
        "                               it are deactivated) or upsert (nobody is deactivated)\n"
        "      --officespace-key K      REST key (default %s)\n"
        "      --graphql-key K          OfficeSpace GraphQL apikey (default: the REST key)\n"
        "      --mapped-token T         Mapped personal access token (default %s)\n"
        "      --dump-demo              print the built-in demo scenario (JSON) and exit\n"
        "  -h, --help                   this help\n"
        "\n"
        "docs/simulator.md describes the endpoints, the scenario format and the fault rules.\n"
        "Exit status: 0 clean stop, 64 usage, 65 bad scenario, 66 scenario not found,\n"
        "74 cannot bind a port.\n",
        OSC_SIM_DEFAULT_MAPPED_PORT, OSC_SIM_DEFAULT_OFFICESPACE_PORT,
        OSC_SIM_DEFAULT_OFFICESPACE_KEY, OSC_SIM_DEFAULT_MAPPED_TOKEN);
}

static int bad_value(const char *opt, const char *val)
{
    fprintf(stderr, "osconnect sim: bad value for --%s: \"%s\"\n", opt, val);
    return EX_USAGE;
}

/* "10", "2.5", "10/s" */
static int parse_rate(const char *s, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(s, &end);
    if (end == s || errno || (*end && strcmp(end, "/s") != 0) || !(d >= 0 && d <= 1e6))
        return -1;
    *out = d;
    return 0;
}

int cmd_sim(int argc, char **argv)
{
    enum {
        OPT_MPORT = CLI_OPT_FIRST_PRIVATE,
        OPT_OPORT,
        OPT_LISTEN,
        OPT_SCENARIO,
        OPT_GENLOC,
        OPT_GENPTS,
        OPT_FAULTS,
        OPT_SEED,
        OPT_RATE,
        OPT_MAXBODY,
        OPT_IMPORT,
        OPT_OSKEY,
        OPT_GQLKEY,
        OPT_MTOKEN,
        OPT_DUMP
    };
    static const struct option longopts[] = {
        {"mapped-port", required_argument, NULL, OPT_MPORT},
        {"officespace-port", required_argument, NULL, OPT_OPORT},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"scenario", required_argument, NULL, OPT_SCENARIO},
        {"generate-locations", required_argument, NULL, OPT_GENLOC},
        {"generate-points", required_argument, NULL, OPT_GENPTS},
        {"faults", required_argument, NULL, OPT_FAULTS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"rate-limit", required_argument, NULL, OPT_RATE},
        {"max-body", required_argument, NULL, OPT_MAXBODY},
        {"import-mode", required_argument, NULL, OPT_IMPORT},
        {"officespace-key", required_argument, NULL, OPT_OSKEY},
        {"graphql-key", required_argument, NULL, OPT_GQLKEY},
        {"mapped-token", required_argument, NULL, OPT_MTOKEN},
        {"dump-demo", no_argument, NULL, OPT_DUMP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct osc_sim_opts o;
    struct osc_sim *sim = NULL;
    struct osc_err err;
    sigset_t set;
    int opt, sig, rc, dump = 0;
    int64_t v;

    memset(&o, 0, sizeof(o));
    memset(&err, 0, sizeof(err));
    o.mapped_port = OSC_SIM_DEFAULT_MAPPED_PORT;
    o.officespace_port = OSC_SIM_DEFAULT_OFFICESPACE_PORT;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': usage(); return 0;
        case OPT_MPORT:
        case OPT_OPORT:
            if (osc_parse_int(optarg, 0, 65535, &v))
                return bad_value(opt == OPT_MPORT ? "mapped-port" : "officespace-port", optarg);
            *(opt == OPT_MPORT ? &o.mapped_port : &o.officespace_port) = (int)v;
            break;
        case OPT_LISTEN: o.listen = optarg; break;
        case OPT_SCENARIO: o.scenario_path = optarg; break;
        case OPT_GENLOC:
        case OPT_GENPTS:
            if (osc_parse_int(optarg, 0, opt == OPT_GENLOC ? 1000000 : 5000000, &v))
                return bad_value(opt == OPT_GENLOC ? "generate-locations" : "generate-points",
                                 optarg);
            *(opt == OPT_GENLOC ? &o.generate_locations : &o.generate_points) = (long)v;
            break;
        case OPT_FAULTS: o.faults = optarg; break;
        case OPT_SEED:
            if (osc_parse_int(optarg, 0, INT64_MAX, &v))
                return bad_value("seed", optarg);
            o.seed = (uint64_t)v;
            break;
        case OPT_RATE:
            if (parse_rate(optarg, &o.rate_limit))
                return bad_value("rate-limit", optarg);
            break;
        case OPT_MAXBODY:
            if (osc_parse_size(optarg, 1024, INT64_C(1) << 32, &o.max_body))
                return bad_value("max-body", optarg);
            break;
        case OPT_IMPORT:
            if (strcmp(optarg, "replace") == 0)
                o.import_mode = OSC_SIM_IMPORT_REPLACE;
            else if (strcmp(optarg, "upsert") == 0)
                o.import_mode = OSC_SIM_IMPORT_UPSERT;
            else
                return bad_value("import-mode", optarg);
            break;
        case OPT_OSKEY: o.officespace_key = optarg; break;
        case OPT_GQLKEY: o.graphql_key = optarg; break;
        case OPT_MTOKEN: o.mapped_token = optarg; break;
        case OPT_DUMP: dump = 1; break;
        default: return cli_usage_error("sim");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "osconnect sim: unexpected argument \"%s\"\n", argv[optind]);
        return EX_USAGE;
    }
    if (dump)
        return osc_sim_dump_demo(stdout) ? EX_IOERR : 0;
    if (o.generate_locations && o.scenario_path) {
        fprintf(stderr, "osconnect sim: --scenario and --generate-locations exclude each other\n");
        return EX_USAGE;
    }
    if (o.generate_points && !o.generate_locations) {
        fprintf(stderr, "osconnect sim: --generate-points needs --generate-locations\n");
        return EX_USAGE;
    }

    /* before any thread exists, so the server threads inherit the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = osc_sim_new(&o, &sim, &err)) || (rc = osc_sim_start(sim, &err))) {
        osc_sim_free(sim);
        return cli_fail("sim", rc, &err);
    }
    printf("mapped %s\nofficespace %s\n", osc_sim_mapped_url(sim), osc_sim_officespace_url(sim));
    fflush(stdout);
    while (sigwait(&set, &sig) != 0 || (sig != SIGINT && sig != SIGTERM))
        ;
    osc_sim_free(sim);
    return 0;
}
