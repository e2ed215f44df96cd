/*
 * cmd_check.c - `osconnect check` (config validation; credential tests to come).
 */
#include <stdio.h>

#include "cli.h"

int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONG, {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_config *cfg = NULL;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        int r = cli_common_option(&common, opt, optarg);
        if (r <= 0)
            return cli_usage_error("check");
    }
    if (common.help) {
        printf("Usage: osconnect check -c FILE\n");
        return 0;
    }
    if ((rc = cli_load_config(&common, &cfg)))
        return rc;
    printf("config %s: ok\n", cfg->path);
    osc_config_free(cfg);
    return 0;
}
