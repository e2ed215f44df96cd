/*
 * cmd_preview.c - `osconnect preview`: print the exact requests a
 * destination would send for the first records, and send nothing.
 *
 * The delivery library runs in preview mode (every request goes to stdout
 * instead of the network); the API key shows as ***.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "osc/delivery.h"
#include "osc/parse.h"

enum { OPT_COMMIT = CLI_OPT_FIRST_PRIVATE, OPT_INPUT_FORMAT };

static void usage(void)
{
    printf("Usage: osconnect preview -c FILE -d DEST [-n N] [INPUT]\n\n"
           "Print the requests DEST would send for the first N records of INPUT (stdin\n"
           "when absent): method, URL, headers (the API key as ***) and the body,\n"
           "pretty-printed when it is JSON. For upsert_employees the staging DELETE is\n"
           "shown too, and the commit trigger when one is configured. Nothing is sent.\n\n"
           "Options:\n"
           "  -d, --destination NAME  destination to preview\n"
           "  -n, --records N         records to use (default 3)\n"
           "      --commit NAME       show this trigger_directory_import destination as the\n"
           "                          commit step\n"
           "      --input-format FMT  jsonl, json, csv or deadletter\n" CLI_COMMON_HELP
           "\nExit status: 0 success; 64 usage; 65 some records were malformed or\n"
           "unmappable (reported on stderr); 66 input not found; 78 configuration error.\n");
}

int cmd_preview(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG,
        {"destination", required_argument, NULL, 'd'},
        {"records", required_argument, NULL, 'n'},
        {"commit", required_argument, NULL, OPT_COMMIT},
        {"input-format", required_argument, NULL, OPT_INPUT_FORMAT},
        {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_config *cfg = NULL;
    struct osc_delivery *d = NULL;
    struct osc_delivery_opts opts = {0};
    struct osc_delivery_stats st;
    struct osc_err err = {0};
    enum osc_records_format fmt = OSC_RECORDS_AUTO;
    const char *dest = NULL;
    int64_t n = 3;
    int opt, rc = 0;

    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "d:n:", longopts, NULL)) != -1) {
        int r = cli_common_option(&common, opt, optarg);
        if (r < 0)
            return cli_usage_error("preview");
        if (r)
            continue;
        switch (opt) {
        case 'd': dest = optarg; break;
        case 'n':
            if (osc_parse_int(optarg, 1, 1000000, &n)) {
                fprintf(stderr, "osconnect preview: -n takes a number from 1 to 1000000\n");
                return cli_usage_error("preview");
            }
            break;
        case OPT_COMMIT: opts.commit = optarg; break;
        case OPT_INPUT_FORMAT:
            if (osc_records_format_parse(optarg, &fmt))
                return cli_usage_error("preview");
            break;
        default: return cli_usage_error("preview");
        }
    }
    if (common.help) {
        usage();
        return 0;
    }
    if ((rc = cli_load_config(&common, &cfg)))
        return rc;
    if ((rc = cli_pick_destination("preview", cfg, &dest)))
        goto out;
    opts.preview = stdout;
    opts.allow_inactive = 1; /* configure, preview, test, then activate */
    if (!(d = osc_delivery_new(cfg, dest, &opts, &err))) {
        rc = cli_fail("preview", err.code ? err.code : OSC_ECONFIG, &err);
        goto out;
    }
    if (!osc_delivery_takes_no_records(d)) {
        rc = osc_delivery_feed(d, optind < argc ? argv[optind] : "-", fmt, (uint64_t)n, &err);
        if (rc) {
            rc = cli_fail("preview", rc, &err);
            goto out;
        }
    }
    osc_delivery_finish(d);
    osc_delivery_get_stats(d, &st);
    if (st.malformed || st.invalid) {
        fprintf(stderr, "osconnect preview: %llu of %llu records could not be used (see above)\n",
                (unsigned long long)(st.malformed + st.invalid), (unsigned long long)st.records);
        rc = EX_DATAERR;
    }
out:
    osc_delivery_free(d);
    osc_config_free(cfg);
    return rc;
}
