/*
 * cmd_commit.c - `osconnect commit`: the directory import of a source, as
 * its own step (the same code `send --commit` runs at the end).
 *
 * Thin: the import job's rules live in the delivery library (src/delivery/
 * job.c); this file parses options and reports the outcome.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "osc/checkpoint.h"
#include "osc/delivery.h"

enum { OPT_FORCE = CLI_OPT_FIRST_PRIVATE, OPT_CHECKPOINT, OPT_COMMIT, OPT_DRY_RUN };

static void usage(void)
{
    printf("Usage: osconnect commit -c FILE -d DEST [--force] [--checkpoint FILE]\n\n"
           "Commit what the import job of DEST's source staged: POST\n"
           "/api/1/employee_directory with Source=<source_name>, which makes OfficeSpace\n"
           "replace that source's part of the directory with the staging. DEST is the\n"
           "upsert_employees destination (its commit: names the trigger) or the\n"
           "trigger_directory_import destination itself.\n\n"
           "The commit is refused when a send of the import did not finish, an input was\n"
           "not read to its end, records the API refused were not resent (send --append\n"
           "the dead-letter file), nothing was staged, or the import staged fewer than\n"
           "min_staged_ratio of the source's live employees. \"commit sent\" is recorded\n"
           "before the request leaves: when its answer is lost, no later run sends it\n"
           "again by itself.\n\n"
           "Options:\n"
           "  -d, --destination NAME  the destination whose import to commit\n"
           "      --commit NAME       the trigger_directory_import destination to use\n"
           "                          (default: DEST's commit:)\n"
           "      --force             commit even when a rule above refuses it (never an\n"
           "                          empty import), and send again a commit whose outcome\n"
           "                          is unknown\n"
           "      --checkpoint FILE   the checkpoint file holding the import job (default:\n"
           "                          the one `send` uses, next to the dead-letter file)\n"
           "      --dry-run           print the request, send nothing\n" CLI_COMMON_HELP
           "\nExit status: 0 the import was triggered; 64 usage; 65 a rule refused the\n"
           "commit (the message says which and what to do); 69 OfficeSpace refused or\n"
           "never took the trigger (it was not applied); 74 the checkpoint file cannot be\n"
           "written; 75 the trigger was sent but its outcome is unknown (check the\n"
           "directory, then --force); 77 the API key was refused; 78 configuration error.\n");
}

int cmd_commit(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG,
        {"destination", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, OPT_FORCE},
        {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
        {"commit", required_argument, NULL, OPT_COMMIT},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_config *cfg = NULL;
    struct osc_delivery *d = NULL;
    struct osc_delivery_opts opts = {0};
    struct osc_delivery_stats st;
    struct osc_checkpoint *cp = NULL;
    struct osc_err err = {0};
    const char *dest = NULL, *cp_path = NULL;
    char *cp_default = NULL;
    int opt, rc = 0;

    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "d:", longopts, NULL)) != -1) {
        int r = cli_common_option(&common, opt, optarg);
        if (r < 0)
            return cli_usage_error("commit");
        if (r)
            continue;
        switch (opt) {
        case 'd': dest = optarg; break;
        case OPT_FORCE: opts.force = 1; break;
        case OPT_CHECKPOINT: cp_path = optarg; break;
        case OPT_COMMIT: opts.commit = optarg; break;
        case OPT_DRY_RUN: opts.preview = stdout; break;
        default: return cli_usage_error("commit");
        }
    }
    if (common.help) {
        usage();
        return 0;
    }
    if (optind < argc) {
        fprintf(stderr, "osconnect commit: takes no input (%s)\n", argv[optind]);
        return cli_usage_error("commit");
    }
    if ((rc = cli_load_config(&common, &cfg)))
        return rc;
    if ((rc = cli_pick_destination("commit", cfg, &dest)))
        goto out;
    opts.commit_only = 1;
    if (!(d = osc_delivery_new(cfg, dest, &opts, &err))) {
        rc = cli_fail("commit", err.code ? err.code : OSC_ECONFIG, &err);
        goto out;
    }
    if (!opts.preview) {
        if (!cp_path && !(cp_path = cp_default = osc_delivery_checkpoint_path(cfg, dest, NULL))) {
            rc = cli_fail("commit", OSC_ENOMEM, NULL);
            goto out;
        }
        if (osc_checkpoint_open(cp_path, &cp, &err) ||
            osc_delivery_checkpoint(d, cp, NULL, 0, 0, &err) < 0) {
            rc = cli_fail("commit", err.code ? err.code : OSC_EDB, &err);
            goto out;
        }
    }
    osc_delivery_finish(d);
    osc_delivery_get_stats(d, &st);
    fprintf(stderr, "commit: %s\n", st.commit_reason[0] ? st.commit_reason : "nothing to do");
    rc = osc_delivery_exit_code(&st);
out:
    osc_delivery_free(d);
    osc_checkpoint_close_clean(cp);
    free(cp_default);
    osc_config_free(cfg);
    return rc;
}
