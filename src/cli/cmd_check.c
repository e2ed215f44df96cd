/*
 * cmd_check.c - `osconnect check`: validate a config, then test its credentials.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "osc/http.h"
#include "osc/probe.h"

enum { OPT_PRINT = CLI_OPT_FIRST_PRIVATE, OPT_OFFLINE };

static void usage(void)
{
    printf("Usage: osconnect check -c FILE [--offline] [--print-config]\n\n"
           "Validate the configuration (unknown keys, types, bounds, URLs, secrets and CA\n"
           "files, keys a template does not use), then test each credential the config uses\n"
           "with one request: OfficeSpace REST (GET /api/1/sites) when a destination sends to\n"
           "OfficeSpace; OfficeSpace GraphQL (query { sites { id name } }) and Mapped (the\n"
           "presence buildings by id) when presence: is configured. One line per result.\n\n"
           "Options:\n" CLI_COMMON_HELP
           "      --offline          validate the file only; send nothing\n"
           "      --print-config     print the effective configuration (secrets as "
           "***)\n\n" CLI_EXIT_HELP);
}

static int worst(int a, int b)
{
    /* an authentication failure is the most useful thing to report */
    if (a == OSC_EAUTH || b == OSC_EAUTH)
        return OSC_EAUTH;
    return a ? a : b;
}

static int report(const struct osc_probe_result *r)
{
    printf("%-20s %s %s: %s, %s (%.2fs)\n", r->name, r->method, r->url, r->code ? "FAILED" : "ok",
           r->detail, r->seconds);
    return r->code;
}

int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONG,
                                             {"print-config", no_argument, NULL, OPT_PRINT},
                                             {"offline", no_argument, NULL, OPT_OFFLINE},
                                             {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_config *cfg = NULL;
    struct osc_http *http = NULL, *mhttp = NULL;
    struct osc_http_opts hopts = {0}, mopts = {0};
    struct osc_probe_result r;
    int opt, rc, print = 0, offline = 0, failed = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        if (opt == OPT_PRINT)
            print = 1;
        else if (opt == OPT_OFFLINE)
            offline = 1;
        else if (cli_common_option(&common, opt, optarg) <= 0)
            return cli_usage_error("check");
    }
    if (common.help) {
        usage();
        return 0;
    }
    if (optind < argc) {
        fprintf(stderr, "osconnect check: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_error("check");
    }
    if ((rc = cli_load_config(&common, &cfg)))
        return rc;
    printf("%-20s %s: ok (%zu destination%s%s)\n", "config", cfg->path, cfg->destinations.n,
           cfg->destinations.n == 1 ? "" : "s",
           cfg->presence.meta.present ? ", presence sync configured" : "");
    if (print)
        osc_config_dump(cfg, stdout);
    if (offline)
        goto out;

    if (!cfg->uses_rest && !cfg->presence.meta.present) {
        printf("%-20s no destination sends to OfficeSpace and presence is not configured: "
               "nothing to test\n",
               "credentials");
        goto out;
    }
    hopts.connect_timeout_ms = cfg->officespace.connect_timeout_ms;
    hopts.timeout_ms = cfg->officespace.timeout_ms;
    hopts.no_verify_tls = !cfg->officespace.verify_tls;
    hopts.ca_file = cfg->officespace.ca_file;
    /* Mapped is another server: its own TLS settings */
    mopts.connect_timeout_ms = cfg->officespace.connect_timeout_ms;
    mopts.timeout_ms = cfg->mapped.timeout_ms;
    mopts.no_verify_tls = !cfg->mapped.verify_tls;
    mopts.ca_file = cfg->mapped.ca_file;
    if (!(http = osc_http_new(&hopts, NULL)) || !(mhttp = osc_http_new(&mopts, NULL))) {
        failed = OSC_ENOMEM;
        goto out;
    }
    /* only what the config uses: a presence-only setup has no REST key to test, a
     * delivery-only one no GraphQL key and no Mapped token */
    if (cfg->uses_rest)
        failed = worst(failed, report((osc_probe_officespace_rest(http, cfg, &r), &r)));
    if (cfg->presence.meta.present) {
        failed = worst(failed, report((osc_probe_officespace_graphql(http, cfg, &r), &r)));
        failed = worst(failed, report((osc_probe_mapped(mhttp, cfg, &r), &r)));
    }
out:
    osc_http_free(http);
    osc_http_free(mhttp);
    osc_config_free(cfg);
    if (failed)
        fprintf(stderr, "osconnect check: %s\n", osc_strerror(failed));
    return osc_err_exit_code(failed);
}
