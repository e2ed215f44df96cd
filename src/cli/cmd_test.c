/*
 * cmd_test.c - `osconnect test`: send one sample request to a destination
 * and show what came back (status, response headers, body).
 *
 * The request is built from the first input record exactly as `send` would
 * build it (a batch of one), or the --payload file is the body, verbatim.
 * No staging DELETE, no commit, no dead letters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "osc/delivery.h"
#include "osc/log.h"
#include "osc/records.h"

enum { OPT_PAYLOAD = CLI_OPT_FIRST_PRIVATE, OPT_INPUT_FORMAT };

#define PAYLOAD_MAX (16u * 1024 * 1024)

struct shown {
    int calls;
    long status;
    int outcome;
};

static void usage(void)
{
    printf("Usage: osconnect test -c FILE -d DEST [--payload FILE] [INPUT]\n\n"
           "Send one sample request to DEST and print the response status, headers and\n"
           "body. The request is built from the first record of INPUT (stdin when absent)\n"
           "as `send` would build it, or --payload FILE is sent verbatim as the body.\n"
           "For a trigger_directory_import destination the trigger itself is sent.\n\n"
           "Options:\n"
           "  -d, --destination NAME  destination to test\n"
           "      --payload FILE      request body to send as is\n"
           "      --input-format FMT  jsonl, json, csv or deadletter\n" CLI_COMMON_HELP
           "\nExit status: 0 the API accepted the request (2xx); 65 the API refused it\n"
           "(4xx) or the record could not be used; 66 input not found; 69 the API\n"
           "answered 5xx/429; 75 no answer (network); 77 the API key was refused;\n"
           "78 configuration error.\n");
}

/*
 * Print text[0, len) with every registered secret shown as ***: an API may
 * echo the key (or a record holding it) in its headers or body. osc_redact()
 * stops at a NUL, so each NUL-separated piece is redacted on its own.
 */
static void put_redacted(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    size_t i = 0;

    if (!copy)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    while (i < len) {
        size_t seg = strlen(copy + i);
        osc_redact(copy + i, seg + 1);
        fputs(copy + i, stdout);
        i += seg;
        if (i < len) {
            putchar('\0');
            i++;
        }
    }
    free(copy);
}

static void on_call(void *ud, const struct osc_delivery_call *c)
{
    struct shown *s = ud;
    const struct osc_http_response *r = c->resp;
    char *line = NULL;
    int n;

    s->calls++;
    n = asprintf(&line, "> %s %s (%zu bytes, %zu record%s, request id %s, attempt %u)\n", c->method,
                 c->url, c->body_len, c->records, c->records == 1 ? "" : "s", c->request_id,
                 c->attempt);
    if (n > 0)
        put_redacted(line, (size_t)n);
    free(line);
    if (!r)
        return;
    s->status = r->status;
    s->outcome = (int)c->outcome;
    if (r->transport) {
        fputs("< no response: ", stdout);
        put_redacted(r->error, strlen(r->error));
        printf(" (%s)\n\n", osc_http_outcome_name(c->outcome));
        return;
    }
    printf("< HTTP %ld in %.3fs (%s)\n", r->status, r->seconds, osc_http_outcome_name(c->outcome));
    if (r->headers.len) {
        /* the header block as received, minus the status line */
        const char *h = memchr(r->headers.data, '\n', r->headers.len);
        if (h)
            put_redacted(h + 1, r->headers.len - (size_t)(h + 1 - r->headers.data));
    }
    if (r->body.len) {
        put_redacted(r->body.data, r->body.len);
        if (r->body.data[r->body.len - 1] != '\n')
            putchar('\n');
        if (r->truncated)
            printf("(response truncated)\n");
    }
    putchar('\n');
}

static char *slurp(const char *path, size_t *len, struct osc_err *err)
{
    FILE *f = fopen(path, "rb");
    struct osc_buf b;
    char chunk[8192];
    size_t n;

    osc_buf_init(&b, PAYLOAD_MAX);
    if (!f) {
        osc_err_set(err, OSC_ENOINPUT, "cannot open payload %s", path);
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (osc_buf_add(&b, chunk, n)) {
            fclose(f);
            osc_buf_free(&b);
            osc_err_set(err, OSC_ETOOBIG, "payload %s is larger than 16 MiB", path);
            return NULL;
        }
    }
    fclose(f);
    *len = b.len;
    if (!b.data)
        osc_buf_addc(&b, '\0'), b.len = 0;
    return osc_buf_steal(&b);
}

int cmd_test(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG,
        {"destination", required_argument, NULL, 'd'},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {"input-format", required_argument, NULL, OPT_INPUT_FORMAT},
        {NULL, 0, NULL, 0}};
    struct cli_common common = {0};
    struct osc_config *cfg = NULL;
    struct osc_delivery *d = NULL;
    struct osc_delivery_opts opts = {0};
    struct osc_delivery_stats st;
    struct osc_err err = {0};
    struct osc_records_reader *r = NULL;
    struct shown shown = {0};
    enum osc_records_format fmt = OSC_RECORDS_AUTO;
    const char *dest = NULL, *payload_path = NULL;
    char *payload = NULL;
    size_t payload_len = 0;
    int opt, rc = 0;

    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "d:", longopts, NULL)) != -1) {
        int x = cli_common_option(&common, opt, optarg);
        if (x < 0)
            return cli_usage_error("test");
        if (x)
            continue;
        switch (opt) {
        case 'd': dest = optarg; break;
        case OPT_PAYLOAD: payload_path = optarg; break;
        case OPT_INPUT_FORMAT:
            if (osc_records_format_parse(optarg, &fmt))
                return cli_usage_error("test");
            break;
        default: return cli_usage_error("test");
        }
    }
    if (common.help) {
        usage();
        return 0;
    }
    if ((rc = cli_load_config(&common, &cfg)))
        return rc;
    if ((rc = cli_pick_destination("test", cfg, &dest)))
        goto out;
    if (payload_path && !(payload = slurp(payload_path, &payload_len, &err))) {
        rc = cli_fail("test", err.code, &err);
        goto out;
    }
    opts.single_request = 1;
    opts.allow_inactive = 1;
    opts.payload = payload;
    opts.payload_len = payload_len;
    opts.on_call = on_call;
    opts.ud = &shown;
    if (!(d = osc_delivery_new(cfg, dest, &opts, &err))) {
        rc = cli_fail("test", err.code ? err.code : OSC_ECONFIG, &err);
        goto out;
    }
    if (osc_delivery_takes_no_records(d)) {
        /* a test of the trigger would be the import itself: never as a side effect of a test */
        fprintf(stderr,
                "osconnect test: %s is a trigger_directory_import destination: sending it would "
                "commit the staged import of its source. See the request with `osconnect commit "
                "--dry-run -d %s`; commit with `osconnect commit -d %s`\n",
                dest, dest, dest);
        rc = EX_USAGE;
        goto out;
    } else if (payload) {
        /* the payload is the body; as a record it only fills {field} placeholders */
        struct osc_record rec;
        struct osc_err rerr = {0};
        r = osc_records_open_mem(payload, payload_len, payload_path, OSC_RECORDS_JSONL, &rerr);
        if (!r || osc_records_next(r, &rec, &rerr) != 1) {
            osc_records_close(r);
            r = osc_records_open_mem("{}", 2, payload_path, OSC_RECORDS_JSONL, &rerr);
            if (!r || osc_records_next(r, &rec, &rerr) != 1) {
                rc = cli_fail("test", OSC_ENOMEM, NULL);
                goto out;
            }
        }
        osc_delivery_add(d, &rec);
    } else if ((rc = osc_delivery_feed(d, optind < argc ? argv[optind] : "-", fmt, 1, &err))) {
        rc = cli_fail("test", rc, &err);
        goto out;
    }
    osc_delivery_finish(d);
    osc_delivery_get_stats(d, &st);
    if (st.auth_failed) {
        fprintf(stderr, "osconnect test: OfficeSpace refused the API key (HTTP %ld)\n",
                shown.status);
        rc = EX_NOPERM;
    } else if (st.malformed || st.invalid) {
        fprintf(stderr, "osconnect test: the first record cannot be sent (see above)\n");
        rc = EX_DATAERR;
    } else if (st.records == 0 && !osc_delivery_takes_no_records(d)) {
        fprintf(stderr, "osconnect test: the input holds no record to build a request from\n");
        rc = EX_DATAERR;
    } else if (st.unavailable || st.gave_up || (shown.calls && shown.status == 0)) {
        rc = shown.status ? EX_UNAVAILABLE : EX_TEMPFAIL;
    } else if (st.rejected || st.commit == -2) {
        rc = EX_DATAERR; /* the API refused the request: retrying cannot help */
    }
out:
    osc_records_close(r);
    osc_delivery_free(d);
    osc_config_free(cfg);
    free(payload);
    return rc;
}
