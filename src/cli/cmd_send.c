/*
 * cmd_send.c - `osconnect send`: deliver records from files or stdin to a
 * destination, with a progress line on a terminal and a summary.
 *
 * Thin: everything happens in the delivery library (include/osc/delivery.h);
 * this file parses options, prints progress and the summary, and maps the
 * outcome to an exit status.
 *
 * The progress line owns the bottom line of stderr: it is cleared before
 * anything else is written there (log lines through the log hook, messages
 * and the summary here) and drawn again after a log line, so nothing glues
 * onto it. Signals: the first SIGINT/SIGTERM only sets a flag (reading
 * stops, what was read is delivered, the checkpoint is saved); it is
 * installed without SA_RESTART so a read waiting on a terminal or a pipe
 * returns. The second ends the process at once, by the signal.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "osc/checkpoint.h"
#include "osc/clock.h"
#include "osc/delivery.h"
#include "osc/log.h"
#include "osc/metrics.h"

enum {
    OPT_COMMIT = CLI_OPT_FIRST_PRIVATE,
    OPT_NO_COMMIT,
    OPT_INPUT_FORMAT,
    OPT_DRY_RUN,
    OPT_JSON_SUMMARY,
    OPT_NO_PROGRESS,
    OPT_PROGRESS,
    OPT_DEAD_LETTER,
    OPT_RESTART,
    OPT_CHECKPOINT,
    OPT_NO_CHECKPOINT,
    OPT_APPEND,
    OPT_METRICS_FILE
};

/* set by SIGINT/SIGTERM: stop reading, deliver what was read, keep the checkpoint */
static volatile int interrupted;
/* a progress line may be on screen: the second signal clears it before it ends the process */
static volatile sig_atomic_t progress_drawn;

static void on_signal(int sig)
{
    if (!interrupted) {
        interrupted = 1;
        return;
    }
    /* the second signal: end at once, by the signal (the shell sees 128 + sig) */
    if (progress_drawn && write(STDERR_FILENO, "\r\033[K", 4) < 0)
        progress_drawn = 0;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = 0; /* no SA_RESTART: a read blocked on a terminal must return */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

struct progress {
    struct osc_delivery *d;
    const char *dest;
    int on;          /* draw the line (a terminal, or --progress) */
    int tty;         /* stderr is a terminal: cut the line to its width */
    int finishing;   /* every input was read: waiting for the last answers */
    int told;        /* the interruption was reported */
    int64_t total;   /* bytes of all inputs; -1 unknown (stdin, a pipe) */
    int64_t t0_ms;   /* the first tick that saw bytes: the rate's origin */
    uint64_t bytes0; /* bytes read by then (a resumed run starts past 0) */
    char line[512];  /* the line on screen, drawn again after a log line */
};

static void usage(void)
{
    printf(
        "Usage: osconnect send -c FILE -d DEST [OPTIONS] [INPUT...]\n\n"
        "Deliver records to destination DEST. INPUT files are read in turn; with none,\n"
        "or '-', records come from stdin. The format comes from the extension (.jsonl,\n"
        ".ndjson, .json, .csv, .dead.jsonl) or --input-format. Unreadable and rejected\n"
        "records go to the dead-letter file, which send accepts as input again.\n\n"
        "Options:\n"
        "  -d, --destination NAME  destination to send to (required when the config\n"
        "                          has more than one)\n"
        "      --commit NAME       after every batch was accepted, run the\n"
        "                          trigger_directory_import destination NAME\n"
        "      --no-commit         do not run the destination's commit: step\n"
        "      --input-format FMT  jsonl, json, csv or deadletter (default: from the\n"
        "                          file name, else sniffed)\n"
        "      --dead-letter FILE  dead-letter file (default: the destination's\n"
        "                          dead_letter, else DEST.dead.jsonl)\n"
        "      --checkpoint FILE   checkpoint file (default: next to the dead-letter\n"
        "                          file, DEST.checkpoint.db); a run that is killed\n"
        "                          resumes when the same command is run again\n"
        "      --restart           ignore a saved checkpoint and start from the top;\n"
        "                          for upsert_employees, discard the source's import\n"
        "                          that was not committed and clear its staging again\n"
        "      --append            upsert_employees: add to the source's open import\n"
        "                          without clearing its staging (how dead letters\n"
        "                          are resent)\n"
        "      --no-checkpoint     keep no position (a killed run cannot resume; the\n"
        "                          import job is still recorded)\n"
        "      --dry-run           read, map and batch everything, send nothing\n"
        "      --progress          progress line on stderr (default: when a terminal)\n"
        "      --no-progress       no progress line, even on a terminal\n"
        "      --json-summary      print the summary as JSON on stdout\n"
        "      --metrics-file FILE write the run's metrics (Prometheus text, for\n"
        "                          node_exporter's textfile collector) to FILE,\n"
        "                          atomically (a temporary file, then a rename)\n" CLI_COMMON_HELP
        "\nExit status: 0 every record delivered; 64 usage, or the import job refuses\n"
        "the run (a dead-letter file without --append, an import that was not\n"
        "committed, a commit whose outcome is unknown: the message says what to run);\n"
        "65 some records were malformed, unmappable or rejected by the API (all in the\n"
        "dead-letter file), more than max_errors were, or a rule refused the commit;\n"
        "66 input not found; 69 the API stayed unavailable (retries exhausted), the\n"
        "commit failed, or a permanent transport error (certificate, CA file, scheme);\n"
        "74 dead-letter or checkpoint file not writable; 75 interrupted (run the same\n"
        "command again to resume), or the commit's outcome is unknown; 77 the API key\n"
        "was refused (401/403 on the first request); 78 configuration error\n"
        "(including an inactive destination).\n");
}

/* Take the progress line off the screen (before anything else is written to stderr). */
static void progress_clear(struct progress *p)
{
    (void)p;
    if (progress_drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        progress_drawn = 0;
    }
}

static void progress_draw(struct progress *p)
{
    struct winsize ws;
    size_t len = strlen(p->line);

    if (!p->on || !len)
        return;
    /* a line wider than the terminal wraps, and \r then clears only its last row */
    if (p->tty && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && len >= ws.ws_col) {
        len = ws.ws_col - 1;
        while (len > 0 && ((unsigned char)p->line[len] & 0xC0) == 0x80)
            len--; /* never half a UTF-8 character */
    }
    fprintf(stderr, "\r\033[K%.*s", (int)len, p->line);
    fflush(stderr);
    progress_drawn = 1;
}

/* The log hook: a log line goes on a line of its own, then the progress line comes back. */
static void progress_log_hook(void *ud, int before)
{
    struct progress *p = ud;

    if (before)
        progress_clear(p);
    else
        progress_draw(p);
}

/* Say once that the run was interrupted, and what happens now. */
static void tell_interrupted(struct progress *p)
{
    if (p->told)
        return;
    p->told = 1;
    progress_clear(p);
    p->line[0] = '\0'; /* what it said is over: the next tick draws the line again */
    fprintf(stderr, "osconnect send: interrupted: no more records are read; the requests in "
                    "flight finish and the checkpoint is saved (run the same command again to "
                    "resume; a second Ctrl-C stops at once)\n");
}

/* "12 s", "3 min 20 s", "1 h 05 min" */
static void fmt_eta(double s, char *out, size_t cap)
{
    long n = (long)(s + 0.5);

    if (n < 1)
        n = 1; /* never "0 s": something is still to do */
    if (n < 60)
        snprintf(out, cap, ", ETA %ld s", n);
    else if (n < 3600)
        snprintf(out, cap, ", ETA %ld min %02ld s", n / 60, n % 60);
    else
        snprintf(out, cap, ", ETA %ld h %02ld min", n / 3600, n / 60 % 60);
}

static void progress_tick(void *ud)
{
    struct progress *p = ud;
    struct osc_delivery_stats st;
    uint64_t bytes;
    int64_t size, now;
    double rate;
    char pct[16] = "", eta[40] = "";

    if (interrupted)
        tell_interrupted(p);
    if (!p->on || !p->d)
        return;
    osc_delivery_get_stats(p->d, &st);
    osc_delivery_progress(p->d, &bytes, &size);
    now = osc_clock_mono_ms(NULL);
    switch (osc_delivery_phase(p->d)) {
    case OSC_DELIVERY_PHASE_CLEARING:
        snprintf(p->line, sizeof(p->line), "%s: clearing the staging area of the import...",
                 p->dest);
        break;
    case OSC_DELIVERY_PHASE_COMMITTING:
        snprintf(p->line, sizeof(p->line),
                 "%s: committing (%llu records sent): triggering the directory import...", p->dest,
                 (unsigned long long)st.sent);
        break;
    case OSC_DELIVERY_PHASE_SENDING:
        rate = st.seconds > 0 ? (double)st.records / st.seconds : 0;
        if (p->total > 0 && !p->finishing && !interrupted) {
            snprintf(pct, sizeof(pct), " (%d%%)",
                     bytes >= (uint64_t)p->total ? 100 : (int)(bytes * 100 / (uint64_t)p->total));
            if (!p->t0_ms && bytes > 0) {
                p->t0_ms = now;
                p->bytes0 = bytes;
            }
            /* from bytes, once there is a rate to go by */
            if (p->t0_ms && now - p->t0_ms >= 1000 && bytes > p->bytes0 &&
                bytes < (uint64_t)p->total)
                fmt_eta((double)(now - p->t0_ms) / 1000.0 * (double)((uint64_t)p->total - bytes) /
                            (double)(bytes - p->bytes0),
                        eta, sizeof(eta));
        }
        if (p->finishing || interrupted)
            snprintf(p->line, sizeof(p->line), "%s: %s: %llu of %llu records sent, %llu requests",
                     p->dest,
                     interrupted ? "interrupted, finishing the requests in flight"
                                 : "waiting for the last answers",
                     (unsigned long long)st.sent, (unsigned long long)st.records,
                     (unsigned long long)st.requests);
        else
            snprintf(p->line, sizeof(p->line),
                     "%s: sending: %llu records%s, %llu sent, %llu requests, %.0f records/s%s",
                     p->dest, (unsigned long long)st.records, pct, (unsigned long long)st.sent,
                     (unsigned long long)st.requests, rate, eta);
        break;
    }
    progress_draw(p);
}

/* Bytes of all inputs, or -1 when one of them is not a regular file (stdin, a pipe). */
static int64_t inputs_size(char **paths, int n)
{
    int64_t total = 0;
    struct stat sb;

    if (n == 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (strcmp(paths[i], "-") == 0 || stat(paths[i], &sb) != 0 || !S_ISREG(sb.st_mode))
            return -1;
        total += (int64_t)sb.st_size;
    }
    return total;
}

/* --metrics-file: the run's metrics for node_exporter's textfile collector. */
static void write_metrics(const char *path, const char *dest, const struct osc_delivery_stats *st,
                          int exit_code)
{
    struct osc_buf b;
    struct osc_err err = {0};
    int rc;

    osc_buf_init(&b, 1u << 20);
    rc = osc_metrics_render_send(dest ? dest : "", st, exit_code, osc_clock_wall_ms(NULL), &b);
    if (rc)
        osc_err_set(&err, rc, "cannot render the metrics: %s", osc_strerror(rc));
    else
        rc = osc_metrics_write_file(path, b.data, b.len, &err);
    if (rc)
        fprintf(stderr, "osconnect send: --metrics-file: %s\n", osc_err_text(&err, rc));
    osc_buf_free(&b);
}

static void print_summary(const char *dest, const char *dl_path,
                          const struct osc_delivery_stats *st, int dry_run, int json)
{
    if (json) {
        /* built with jansson: the destination name and the path may hold any character */
        json_t *o = json_object();
        char *text;
        json_object_set_new(o, "destination", json_string(dest));
        json_object_set_new(o, "records", json_integer((json_int_t)st->records));
        json_object_set_new(o, "sent", json_integer((json_int_t)st->sent));
        json_object_set_new(o, "malformed", json_integer((json_int_t)st->malformed));
        json_object_set_new(o, "invalid", json_integer((json_int_t)st->invalid));
        json_object_set_new(o, "rejected", json_integer((json_int_t)st->rejected));
        json_object_set_new(o, "unavailable", json_integer((json_int_t)st->unavailable));
        json_object_set_new(o, "unsent", json_integer((json_int_t)st->unsent));
        json_object_set_new(o, "dead_lettered", json_integer((json_int_t)st->dead_lettered));
        json_object_set_new(o, "requests", json_integer((json_int_t)st->requests));
        json_object_set_new(o, "retries", json_integer((json_int_t)st->retries));
        json_object_set_new(o, "max_in_flight", json_integer((json_int_t)st->max_in_flight));
        json_object_set_new(o, "seconds",
                            json_real((double)(long long)(st->seconds * 1000) / 1000));
        json_object_set_new(o, "dry_run", json_boolean(dry_run));
        json_object_set_new(o, "auth_failed", json_boolean(st->auth_failed));
        json_object_set_new(o, "skipped", json_integer((json_int_t)st->skipped));
        json_object_set_new(o, "commit",
                            json_string(st->commit == 1    ? "triggered"
                                        : st->commit == -1 ? "suppressed"
                                        : st->commit == -2 ? "failed"
                                        : st->commit == -3 ? "unknown"
                                                           : "none"));
        if (st->dead_lettered && dl_path)
            json_object_set_new(o, "dead_letter", json_string(dl_path));
        json_object_set_new(o, "exit", json_integer(osc_delivery_exit_code(st)));
        /* a NULL from json_string (not UTF-8) leaves the key out; the rest still prints */
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    }
    fprintf(stderr,
            "%s%s: %llu records read, %llu %s, %llu rejected (%llu malformed, %llu unmappable, "
            "%llu by the API, %llu after retries), %llu dead-lettered%s%s; %llu requests, "
            "%llu retries, %.2fs\n",
            dry_run ? "dry run: " : "", dest, (unsigned long long)st->records,
            (unsigned long long)st->sent, dry_run ? "would be sent" : "sent",
            (unsigned long long)(st->malformed + st->invalid + st->rejected + st->unavailable),
            (unsigned long long)st->malformed, (unsigned long long)st->invalid,
            (unsigned long long)st->rejected, (unsigned long long)st->unavailable,
            (unsigned long long)st->dead_lettered, st->dead_lettered ? " to " : "",
            st->dead_lettered ? dl_path : "", (unsigned long long)st->requests,
            (unsigned long long)st->retries, st->seconds);
    if (st->resumed)
        fprintf(stderr,
                "resumed from a checkpoint: the %llu records before it were done by earlier "
                "runs and not read again\n",
                (unsigned long long)st->skipped);
    if (st->too_many_errors)
        fprintf(stderr, "stopped: more than max_errors records were malformed or unmappable\n");
    if (st->unsent)
        fprintf(stderr, "%llu records were not sent.\n", (unsigned long long)st->unsent);
    if (st->commit)
        fprintf(stderr, "commit: %s\n", st->commit_reason);
    if (st->auth_failed)
        fprintf(stderr, "OfficeSpace refused the API key (HTTP 401/403 on the first request): "
                        "check officespace.api_key. Nothing more was sent.\n");
}

int cmd_send(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG,
        {"destination", required_argument, NULL, 'd'},
        {"commit", required_argument, NULL, OPT_COMMIT},
        {"no-commit", no_argument, NULL, OPT_NO_COMMIT},
        {"input-format", required_argument, NULL, OPT_INPUT_FORMAT},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json-summary", no_argument, NULL, OPT_JSON_SUMMARY},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"dead-letter", required_argument, NULL, OPT_DEAD_LETTER},
        {"restart", no_argument, NULL, OPT_RESTART},
        {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
        {"no-checkpoint", no_argument, NULL, OPT_NO_CHECKPOINT},
        {"append", no_argument, NULL, OPT_APPEND},
        {"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
        {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_config *cfg = NULL;
    struct osc_delivery *d = NULL;
    struct osc_delivery_opts opts = {0};
    struct osc_delivery_stats st;
    struct osc_err err = {0};
    enum osc_records_format fmt = OSC_RECORDS_AUTO;
    struct progress prog = {0};
    struct osc_checkpoint *cp = NULL;
    const char *dest = NULL, *cp_path = NULL, *metrics_path = NULL;
    char *cp_default = NULL;
    int opt, rc = 0, json_summary = 0, no_progress = 0, progress = 0, restart = 0, no_cp = 0;
    int reads_stdin;

    memset(&st, 0, sizeof(st));
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "d:", longopts, NULL)) != -1) {
        int r = cli_common_option(&common, opt, optarg);
        if (r < 0)
            return cli_usage_error("send");
        if (r)
            continue;
        switch (opt) {
        case 'd': dest = optarg; break;
        case OPT_COMMIT: opts.commit = optarg; break;
        case OPT_NO_COMMIT: opts.commit = ""; break;
        case OPT_INPUT_FORMAT:
            if (osc_records_format_parse(optarg, &fmt)) {
                fprintf(stderr,
                        "osconnect send: --input-format takes jsonl, json, csv or "
                        "deadletter, not '%s'\n",
                        optarg);
                return cli_usage_error("send");
            }
            break;
        case OPT_DRY_RUN: opts.dry_run = 1; break;
        case OPT_JSON_SUMMARY: json_summary = 1; break;
        case OPT_NO_PROGRESS: no_progress = 1; break;
        case OPT_PROGRESS: progress = 1; break;
        case OPT_DEAD_LETTER: opts.dead_letter = optarg; break;
        case OPT_RESTART: restart = 1; break;
        case OPT_CHECKPOINT: cp_path = optarg; break;
        case OPT_NO_CHECKPOINT: no_cp = 1; break;
        case OPT_APPEND: opts.append = 1; break;
        case OPT_METRICS_FILE: metrics_path = optarg; break;
        default: return cli_usage_error("send");
        }
    }
    if (common.help) {
        usage();
        return 0;
    }
    if ((rc = cli_load_config(&common, &cfg)))
        goto out;
    if ((rc = cli_pick_destination("send", cfg, &dest)))
        goto out;
    prog.dest = dest;
    prog.tty = isatty(STDERR_FILENO);
    prog.on = !no_progress && (progress || (!common.quiet && prog.tty));
    prog.total = inputs_size(argv + optind, argc - optind);
    opts.tick = progress_tick;
    opts.ud = &prog;
    opts.interrupt = &interrupted;
    if (!(d = osc_delivery_new(cfg, dest, &opts, &err))) {
        rc = cli_fail("send", err.code ? err.code : OSC_ECONFIG, &err);
        goto out;
    }
    prog.d = d;
    if (prog.on)
        osc_log_set_hook(progress_log_hook, &prog);
    if (!opts.dry_run) {
        static const char *const stdin_only[] = {"-"};
        const char *const *inputs = optind < argc ? (const char *const *)argv + optind : stdin_only;
        size_t ninputs = optind < argc ? (size_t)(argc - optind) : 1;
        /* an import job is always recorded; --no-checkpoint only drops the position */
        if (!cp_path &&
            !(cp_path = cp_default = osc_delivery_checkpoint_path(cfg, dest, opts.dead_letter))) {
            rc = cli_fail("send", OSC_ENOMEM, NULL);
            goto out;
        }
        if ((osc_checkpoint_open(cp_path, &cp, &err) ||
             osc_delivery_checkpoint(d, cp, inputs, ninputs,
                                     (restart ? OSC_DELIVERY_RESTART : 0) |
                                         (no_cp ? OSC_DELIVERY_NO_RESUME : 0),
                                     &err) < 0)) {
            rc = cli_fail("send", err.code ? err.code : OSC_EDB, &err);
            goto out;
        }
    }
    catch_signals();
    osc_records_set_interrupt(&interrupted);
    reads_stdin = optind >= argc;
    for (int i = optind; i < argc; i++)
        reads_stdin |= strcmp(argv[i], "-") == 0;
    if (osc_delivery_takes_no_records(d)) {
        if (optind < argc)
            fprintf(stderr,
                    "osconnect send: %s is a trigger_directory_import destination; "
                    "the input is not read\n",
                    dest);
    } else {
        int typing = reads_stdin && isatty(STDIN_FILENO), on = prog.on;
        /* a send that waits on the keyboard with no word looks hung; and while records are
         * typed, a progress line would be drawn into what is typed */
        if (typing && !common.quiet)
            fprintf(stderr, "osconnect send: reading records from the terminal; end with Ctrl-D, "
                            "or name a file\n");
        if (typing)
            prog.on = 0;
        if (optind >= argc)
            rc = osc_delivery_feed(d, "-", fmt, 0, &err);
        for (int i = optind; i < argc && rc == 0; i++)
            rc = osc_delivery_feed(d, argv[i], fmt, 0, &err);
        prog.on = on;
    }
    prog.finishing = 1;
    if (rc == OSC_EINTERRUPTED) {
        tell_interrupted(&prog);
        osc_delivery_finish(d);
        progress_clear(&prog);
        osc_delivery_get_stats(d, &st);
        print_summary(dest, osc_delivery_dead_letter_path(d), &st, opts.dry_run, json_summary);
        /* a refused key or a dead letter that was lost matters more than the interruption */
        rc = osc_delivery_exit_code(&st);
        if (rc != EX_NOPERM && rc != EX_IOERR)
            rc = EX_TEMPFAIL;
        goto out;
    }
    if (rc == OSC_ENOINPUT || (rc && rc != OSC_EAUTH)) {
        int code;
        progress_clear(&prog);
        code = cli_fail("send", rc, &err);
        /* what was already read is still delivered and summarised */
        osc_delivery_finish(d);
        progress_clear(&prog);
        osc_delivery_get_stats(d, &st);
        print_summary(dest, osc_delivery_dead_letter_path(d), &st, opts.dry_run, json_summary);
        rc = code;
        goto out;
    }
    osc_delivery_finish(d);
    progress_clear(&prog);
    osc_delivery_get_stats(d, &st);
    print_summary(dest, osc_delivery_dead_letter_path(d), &st, opts.dry_run, json_summary);
    rc = osc_delivery_exit_code(&st);
out:
    progress_clear(&prog);
    osc_log_set_hook(NULL, NULL);
    osc_records_set_interrupt(NULL);
    if (metrics_path)
        write_metrics(metrics_path, dest, &st, rc);
    osc_delivery_free(d);
    osc_checkpoint_close_clean(cp);
    free(cp_default);
    osc_config_free(cfg);
    return rc;
}
