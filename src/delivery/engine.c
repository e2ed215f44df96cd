/*
 * engine.c - the delivery engine: batches, the send loop, retries, the
 * destination pause, dead letters and the staging/commit steps.
 *
 * Invariants:
 * - A batch is FREE, OPEN (filling; one per distinct URL, at most
 *   max_groups), READY (closed, queued in `ready` FIFO order), FLIGHT (on
 *   the HTTP client) or WAIT (due for a retry at batch->due). The pool has
 *   max_in_flight + max_groups batches, allocated once; their buffers are
 *   reused, so memory does not grow with the input.
 * - A batch owns its body, its URL and the compact original records it
 *   carries (with file offset and line), so any outcome can be written to
 *   the dead-letter file record by record.
 * - Nothing is submitted before paused_until (a 429/503 with Retry-After
 *   pauses the whole destination); other retries only delay their batch.
 * - The staging DELETE is sent, synchronously, before the first batch; the
 *   commit trigger only after every batch was accepted.
 */
#include "osc/delivery.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "delivery_int.h"
#include "osc/employee.h"
#include "osc/log.h"
#include "osc/retry.h"

#define MAX_GROUPS_TEMPLATED 4
#define MAX_USER_HEADERS     32
#define URL_MAX              8192
#define TICK_MS              250
#define WEBHOOK_BODY_MAX     4096
#define WEBHOOK_DRAIN_MS     5000
#define PUMP_EVERY           64

enum bstate { B_FREE = 0, B_OPEN, B_READY, B_FLIGHT, B_WAIT };
enum bkind { K_DATA = 0, K_STAGING, K_COMMIT };

struct rec_ref {
    uint64_t offset, line;
    uint32_t input;  /* index of the input it came from */
    size_t off, len; /* in batch->orig */
};

/* A key (hash of an EmployeeId or a lower-cased Email) seen in a batch, and its line. */
struct key_slot {
    uint64_t hash; /* 0: empty */
    uint64_t line;
};

struct batch {
    struct osc_delivery *d;
    enum bstate state;
    enum bkind kind;
    struct osc_buf body;
    struct osc_buf orig;
    struct rec_ref *recs;
    size_t nrecs, recs_alloc;
    char *url;
    char ctype_line[160];
    char reqid_line[64];
    char request_id[40];
    const char *hdrs[MAX_USER_HEADERS + 3];
    unsigned attempts;
    int64_t first_ms, due_ms;
    struct osc_http_response resp;
    struct batch *next_ready;
    struct key_slot *keys; /* upsert_employees: EmployeeIds and Emails in this batch */
    size_t keys_cap, nkeys;
};

struct url_part {
    char *text; /* literal text, or the field name */
    int is_field;
};

struct osc_delivery {
    const struct osc_config *cfg;
    const struct osc_conf_destination *dest;
    const struct osc_conf_destination *commit; /* NULL: no commit step */
    struct osc_delivery_opts opts;
    struct osc_http *http;
    struct webhook *webhook;
    struct osc_employee_map *emap;
    struct lua_batch *lua;
    struct osc_deadletter *dl;
    char *dl_path;

    /* request shape */
    const char *method;
    int templ;
    int fmt;
    int grouping;
    int one_per_request;
    int ndjson_lines; /* ndjson without code: records joined by newlines */
    size_t batch_size, max_bytes;
    char ctype_default[128];
    char *user_hdr[MAX_USER_HEADERS];
    size_t nuser_hdr;
    int user_ctype;
    char *prop_prefix; /* {"records":[ */
    char *prop_suffix; /* ],"other":1} */
    struct url_part *url_parts;
    size_t nurl_parts;
    int url_templated;
    int url_auth; /* send the OfficeSpace key to this URL */
    char *fixed_url;

    /* batches */
    struct batch *pool;
    size_t npool, max_groups;
    struct batch *ready_head, *ready_tail;
    int64_t paused_until;
    uint64_t rng;
    int staged;       /* staging DELETE done (or not needed) */
    int staged_ok;    /* the staging DELETE was accepted */
    int input_failed; /* an input could not be read: the commit must not run */
    int accepted;     /* some request was accepted: 401/403 is no longer "the key" */
    int stop;
    int failed_batches;
    uint64_t req_seq;
    int64_t start_ms, last_tick;
    unsigned since_pump;     /* records added since transfers were last driven */
    struct batch *last_open; /* the batch the previous record went to (a hint) */
    size_t overhead;         /* bytes a batch body adds around its records */

    /* the input being fed, for progress */
    struct osc_records_reader *reader;
    uint64_t bytes_done;

    /* checkpoint: cp_pos is what the file holds; inputs before cur_input are consumed */
    struct osc_checkpoint *cp;
    char *cp_key;
    struct osc_checkpoint_pos cp_pos, resume;
    int resuming;
    uint32_t cur_input;
    uint64_t next_off, next_line; /* where the next unread record of cur_input starts */
    char **input_names;           /* per input index, for dead letters */
    size_t ninput_names;
    int cp_error;

    /* scratch */
    struct osc_buf enc;
    struct osc_buf filtered;
    struct osc_buf url;
    struct osc_buf tmp;
    struct osc_delivery_stats st;
};

static int64_t now_ms(const struct osc_delivery *d) { return osc_clock_mono_ms(d->opts.clock); }

/* ---- setup ---------------------------------------------------------------- */

static int fail_cfg(struct osc_err *err, const char *dest, const char *fmt, const char *what)
{
    char msg[OSC_ERR_MSG_MAX];
    snprintf(msg, sizeof(msg), fmt, what);
    return osc_err_set(err, OSC_ECONFIG, "destination %s: %s", dest, msg);
}

/* Split a URL template into literal and {field} parts. */
static int parse_url(struct osc_delivery *d, const char *tmpl, struct osc_err *err)
{
    const char *p = tmpl;
    size_t cap = 1;

    for (const char *q = tmpl; *q; q++)
        cap += *q == '{';
    d->url_parts = calloc(cap * 2 + 1, sizeof(*d->url_parts));
    if (!d->url_parts)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    while (*p) {
        const char *open = strchr(p, '{');
        struct url_part *u = &d->url_parts[d->nurl_parts];
        if (!open) {
            if (!(u->text = strdup(p)))
                return OSC_ENOMEM;
            d->nurl_parts++;
            break;
        }
        if (open > p) {
            if (!(u->text = strndup(p, (size_t)(open - p))))
                return OSC_ENOMEM;
            d->nurl_parts++;
            u = &d->url_parts[d->nurl_parts];
        }
        const char *close = strchr(open, '}');
        if (!close || close == open + 1)
            return fail_cfg(err, d->dest->name, "url: unbalanced or empty {} in '%s'", tmpl);
        if (close - open - 1 == 8 && strncmp(open + 1, "hostname", 8) == 0) {
            if (!d->cfg->officespace.hostname)
                return fail_cfg(err, d->dest->name,
                                "url uses {hostname} but officespace.hostname is not set%s", "");
            if (!(u->text = strdup(d->cfg->officespace.hostname)))
                return OSC_ENOMEM;
        } else {
            if (!(u->text = strndup(open + 1, (size_t)(close - open - 1))))
                return OSC_ENOMEM;
            u->is_field = 1;
            d->url_templated = 1;
        }
        d->nurl_parts++;
        p = close + 1;
    }
    return 0;
}

static int make_fixed_url(struct osc_delivery *d, const char *path_or_url, char **out)
{
    const char *base = d->cfg->officespace.rest_base;

    if (strncmp(path_or_url, "http://", 7) == 0 || strncmp(path_or_url, "https://", 8) == 0)
        *out = strdup(path_or_url);
    else if (asprintf(out, "%s%s%s", base, path_or_url[0] == '/' ? "" : "/", path_or_url) < 0)
        *out = NULL;
    return *out ? 0 : OSC_ENOMEM;
}

static int is_absolute(const char *u)
{
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

#define OS_DOMAIN ".officespacesoftware.com"

/*
 * Send the key only to OfficeSpace: the REST base, or an officespacesoftware.com
 * host (officespacesoftware.com itself or a name ending in .officespacesoftware.com;
 * x.officespacesoftware.co or evilofficespacesoftware.com are not). url is a
 * complete URL, or a path under the base.
 */
static int url_gets_key(const struct osc_delivery *d, const char *url)
{
    const char *base = d->cfg->officespace.rest_base, *host, *end;
    size_t bl = strlen(base), sl = strlen(OS_DOMAIN), hl;

    if (!is_absolute(url))
        return 1;
    if (strncmp(url, base, bl) == 0 && (url[bl] == '/' || url[bl] == '\0'))
        return 1;
    host = strstr(url, "://") + 3;
    end = host + strcspn(host, "/?#");
    if (memchr(host, '@', (size_t)(end - host)))
        return 0; /* user info: what looks like the host may not be it */
    end = host + strcspn(host, "/:?#");
    hl = (size_t)(end - host);
    if (hl == sl - 1 && strncasecmp(host, OS_DOMAIN + 1, hl) == 0)
        return 1;
    return hl > sl && strncasecmp(end - sl, OS_DOMAIN, sl) == 0;
}

/*
 * The key decision for a URL template: only its literal start is known before
 * the records fill it in, so that start must hold the whole host (a '/' after
 * the authority). {hostname} is config, substituted into the literal parts;
 * a template relative to the base stays under the base whatever the fields.
 */
static int template_gets_key(struct osc_delivery *d)
{
    struct osc_buf pre;
    const char *host;
    int rc = 0;

    osc_buf_init(&pre, URL_MAX);
    for (size_t i = 0; i < d->nurl_parts && !d->url_parts[i].is_field; i++)
        if (osc_buf_adds(&pre, d->url_parts[i].text))
            goto out;
    /* the same test as resolve_url's, which puts the base in front of a relative template */
    if (!d->nurl_parts || !is_absolute(d->url_parts[0].text)) {
        rc = 1;
        goto out;
    }
    if (d->url_parts[0].is_field)
        goto out; /* {http://x} is a field name: the record would supply scheme and host */
    host = strstr(osc_buf_str(&pre), "://") + 3;
    if (host[strcspn(host, "/?#")] == '\0')
        goto out; /* a field could still extend the host: no key */
    rc = url_gets_key(d, osc_buf_str(&pre));
out:
    osc_buf_free(&pre);
    return rc;
}

static void batch_reset(struct batch *b)
{
    osc_buf_reset(&b->body);
    osc_buf_reset(&b->orig);
    b->nrecs = 0;
    free(b->url);
    b->url = NULL;
    b->attempts = 0;
    b->first_ms = b->due_ms = 0;
    b->next_ready = NULL;
    b->kind = K_DATA;
    b->state = B_FREE;
    if (b->nkeys)
        memset(b->keys, 0, b->keys_cap * sizeof(*b->keys));
    b->nkeys = 0;
}

void osc_delivery_free(struct osc_delivery *d)
{
    if (!d)
        return;
    osc_http_free(d->http); /* first: aborts transfers that point into batches */
    webhook_free(d->webhook);
    for (size_t i = 0; d->pool && i < d->npool; i++) {
        struct batch *b = &d->pool[i];
        osc_buf_free(&b->body);
        osc_buf_free(&b->orig);
        free(b->recs);
        free(b->keys);
        free(b->url);
        osc_http_response_free(&b->resp);
    }
    free(d->pool);
    osc_employee_map_free(d->emap);
    lua_batch_free(d->lua);
    osc_deadletter_close(d->dl);
    free(d->dl_path);
    for (size_t i = 0; i < d->nuser_hdr; i++)
        free(d->user_hdr[i]);
    free(d->prop_prefix);
    free(d->prop_suffix);
    for (size_t i = 0; i < d->nurl_parts; i++)
        free(d->url_parts[i].text);
    free(d->url_parts);
    free(d->fixed_url);
    free(d->cp_key);
    for (size_t i = 0; i < d->ninput_names; i++)
        free(d->input_names[i]);
    free(d->input_names);
    osc_buf_free(&d->enc);
    osc_buf_free(&d->filtered);
    osc_buf_free(&d->url);
    osc_buf_free(&d->tmp);
    free(d);
}

static char *read_code_file(const char *path, size_t *len, struct osc_err *err)
{
    FILE *f = fopen(path, "rb");
    struct osc_buf b;
    char chunk[4096];
    size_t n;

    osc_buf_init(&b, 1u << 20);
    if (!f) {
        osc_err_set(err, OSC_ECONFIG, "cannot read batch.code_file %s", path);
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (osc_buf_add(&b, chunk, n)) {
            fclose(f);
            osc_buf_free(&b);
            osc_err_set(err, OSC_ECONFIG, "batch.code_file %s is larger than 1 MiB", path);
            return NULL;
        }
    }
    fclose(f);
    *len = b.len;
    if (!b.data && osc_buf_addc(&b, '\0') == 0)
        b.len = 0;
    return osc_buf_steal(&b);
}

static int setup_shape(struct osc_delivery *d, struct osc_err *err)
{
    const struct osc_conf_destination *t = d->dest;
    const struct osc_conf_batch *bc = &t->batch;
    int rc;

    d->templ = t->template_;
    d->fmt = t->format;
    d->grouping = bc->grouping;
    d->method = osc_conf_method_name(t->method);
    d->batch_size = (size_t)bc->size;
    d->max_bytes = (size_t)bc->max_bytes;
    d->one_per_request = !bc->enabled || d->opts.payload;
    if (d->opts.single_request)
        d->batch_size = 1;

    if (d->templ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES) {
        d->method = "POST";
        d->fmt = OSC_CONF_FORMAT_JSON;
        d->grouping = OSC_CONF_GROUPING_ARRAY;
        d->one_per_request = d->opts.payload != NULL; /* a batch import is always an array */
        if ((rc = make_fixed_url(d, t->url ? t->url : "/api/1/employee_batch_imports",
                                 &d->fixed_url)))
            return rc;
        d->url_auth = url_gets_key(d, d->fixed_url);
        if (!(d->emap = osc_employee_map_new(&t->fields, t->source_name, t->name, err)))
            return OSC_ENOMEM;
    } else if (d->templ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT) {
        d->method = "POST";
        d->fmt = OSC_CONF_FORMAT_FORM;
        if ((rc = make_fixed_url(d, t->url ? t->url : "/api/1/employee_directory", &d->fixed_url)))
            return rc;
        d->url_auth = url_gets_key(d, d->fixed_url);
    } else {
        if ((rc = parse_url(d, t->url, err)))
            return rc == OSC_ENOMEM ? osc_err_set(err, rc, "out of memory") : rc;
        if (!d->url_templated) {
            struct osc_buf u;
            osc_buf_init(&u, URL_MAX);
            for (size_t i = 0; i < d->nurl_parts; i++)
                osc_buf_adds(&u, d->url_parts[i].text);
            rc = make_fixed_url(d, osc_buf_str(&u), &d->fixed_url);
            osc_buf_free(&u);
            if (rc)
                return rc;
            d->url_auth = url_gets_key(d, d->fixed_url);
        } else {
            d->url_auth = template_gets_key(d);
        }
        if (!d->url_auth)
            OSC_LOG_INFO("delivery",
                         "%s: %s is not the OfficeSpace REST base; the API key is "
                         "not sent to it",
                         t->name, t->url);
        if (d->fmt == OSC_CONF_FORMAT_FORM && !d->one_per_request) {
            OSC_LOG_DEBUG("delivery", "%s: format form sends one record per request", t->name);
            d->one_per_request = 1;
        }
        if (d->grouping == OSC_CONF_GROUPING_PROPERTY && !d->one_per_request) {
            struct osc_buf b;
            char *other = NULL;
            osc_buf_init(&b, 1u << 20);
            osc_buf_addc(&b, '{');
            osc_json_quote(&b, bc->property_name, strlen(bc->property_name));
            osc_buf_adds(&b, ":[");
            d->prop_prefix = osc_buf_steal(&b);
            osc_buf_init(&b, 1u << 20);
            osc_buf_addc(&b, ']');
            if (bc->other_props && json_object_size(bc->other_props) > 0) {
                other = json_dumps(bc->other_props, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (other) {
                    osc_buf_addc(&b, ',');
                    osc_buf_add(&b, other + 1, strlen(other) - 2); /* without the braces */
                }
                free(other);
            }
            osc_buf_addc(&b, '}');
            d->prop_suffix = osc_buf_steal(&b);
            if (!d->prop_prefix || !d->prop_suffix)
                return osc_err_set(err, OSC_ENOMEM, "out of memory");
        }
        if (d->grouping == OSC_CONF_GROUPING_CODE && !d->one_per_request) {
            size_t len = 0;
            char *code =
                bc->code_file ? read_code_file(bc->code_file, &len, err) : strdup(bc->code);
            if (!code)
                return err && err->code ? err->code : OSC_ENOMEM;
            if (!bc->code_file)
                len = strlen(code);
            d->lua =
                lua_batch_new(code, len, bc->code_file ? bc->code_file : "batch.code", 0, 0, err);
            free(code);
            if (!d->lua) {
                char m[OSC_ERR_MSG_MAX];
                snprintf(m, sizeof(m), "%s", err ? err->msg : "");
                return osc_err_set(err, OSC_ECONFIG, "destination %s: %s", t->name, m);
            }
        }
    }
    d->ndjson_lines = d->fmt == OSC_CONF_FORMAT_NDJSON && !d->lua;
    d->overhead = 2 + (d->prop_prefix ? strlen(d->prop_prefix) + strlen(d->prop_suffix) : 0);
    switch (d->fmt) {
    case OSC_CONF_FORMAT_FORM:
        snprintf(d->ctype_default, sizeof(d->ctype_default), "application/x-www-form-urlencoded");
        break;
    case OSC_CONF_FORMAT_NDJSON:
        snprintf(d->ctype_default, sizeof(d->ctype_default), "application/x-ndjson");
        break;
    default:
        snprintf(d->ctype_default, sizeof(d->ctype_default), "application/json; charset=utf-8");
    }
    for (size_t i = 0; i < t->headers.n; i++) {
        if (d->nuser_hdr >= MAX_USER_HEADERS)
            return fail_cfg(err, t->name, "more than %s headers", "32");
        if (strpbrk(t->headers.keys[i], "\r\n:") || strpbrk(t->headers.vals[i], "\r\n"))
            return fail_cfg(err, t->name, "header '%s' has a newline or colon in its name",
                            t->headers.keys[i]);
        if (strcasecmp(t->headers.keys[i], "content-type") == 0)
            d->user_ctype = 1;
        if (asprintf(&d->user_hdr[d->nuser_hdr], "%s: %s", t->headers.keys[i], t->headers.vals[i]) <
            0)
            return osc_err_set(err, OSC_ENOMEM, "out of memory");
        d->nuser_hdr++;
    }
    return 0;
}

struct osc_delivery *osc_delivery_new(const struct osc_config *cfg, const char *dest_name,
                                      const struct osc_delivery_opts *opts, struct osc_err *err)
{
    struct osc_delivery *d = NULL;
    const struct osc_conf_destination *t = osc_config_destination(cfg, dest_name);
    struct osc_http_opts ho = {0};
    const char *commit;

    if (!t) {
        osc_err_set(err, OSC_ECONFIG, "no destination '%s' in %s", dest_name, cfg->path);
        return NULL;
    }
    if (!t->active) {
        osc_err_set(err, OSC_ECONFIG,
                    "destination %s is inactive (active: false in %s); "
                    "set active: true to send to it",
                    t->name, cfg->path);
        return NULL;
    }
    if (!(d = calloc(1, sizeof(*d))))
        goto nomem;
    d->cfg = cfg;
    d->dest = t;
    if (opts)
        d->opts = *opts;
    if (d->opts.preview)
        d->opts.dry_run = 1;
    osc_buf_init(&d->enc, 1u << 26);
    osc_buf_init(&d->filtered, 1u << 26);
    osc_buf_init(&d->url, URL_MAX);
    osc_buf_init(&d->tmp, 1u << 26);
    d->start_ms = d->last_tick = now_ms(d);
    d->rng = d->opts.seed ? d->opts.seed : (uint64_t)osc_clock_wall_ms(NULL) | 1;

    commit = d->opts.commit ? d->opts.commit : t->commit;
    if (commit && commit[0] && !d->opts.single_request) {
        if (!(d->commit = osc_config_destination(cfg, commit))) {
            osc_err_set(err, OSC_ECONFIG, "--commit: no destination '%s' in %s", commit, cfg->path);
            goto fail;
        }
        if (d->commit->template_ != OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT) {
            osc_err_set(err, OSC_ECONFIG,
                        "commit destination %s must have template: "
                        "trigger_directory_import",
                        commit);
            goto fail;
        }
        if (!d->commit->active) {
            osc_err_set(err, OSC_ECONFIG, "commit destination %s is inactive", commit);
            goto fail;
        }
        if (t->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES &&
            strcmp(d->commit->source_name, t->source_name) != 0) {
            osc_err_set(err, OSC_ECONFIG,
                        "destination %s stages source '%s' but commit "
                        "destination %s triggers source '%s'; set the same source_name on both",
                        t->name, t->source_name, commit, d->commit->source_name);
            goto fail;
        }
    }
    if (setup_shape(d, err))
        goto fail;
    if (!d->opts.dry_run) {
        ho.connect_timeout_ms = (long)cfg->officespace.connect_timeout_ms;
        ho.timeout_ms = (long)t->timeout_ms;
        ho.no_verify_tls = !cfg->officespace.verify_tls;
        ho.ca_file = cfg->officespace.ca_file;
        ho.max_in_flight = (int)t->max_in_flight;
        if (!(d->http = osc_http_new(&ho, err)))
            goto fail;
        if (t->response_webhook && !(d->webhook = webhook_new(t->response_webhook, &ho, err)))
            goto fail;
    }
    {
        const char *dl = d->opts.dead_letter ? d->opts.dead_letter : t->dead_letter;
        if (dl ? !(d->dl_path = strdup(dl)) : asprintf(&d->dl_path, "%s.dead.jsonl", t->name) < 0)
            goto nomem;
        if (!(d->dl = osc_deadletter_new(d->dl_path, t->name)))
            goto nomem;
    }
    d->max_groups = d->url_templated ? MAX_GROUPS_TEMPLATED : 1;
    d->npool = (size_t)t->max_in_flight + d->max_groups;
    if (!(d->pool = calloc(d->npool, sizeof(*d->pool))))
        goto nomem;
    for (size_t i = 0; i < d->npool; i++) {
        struct batch *b = &d->pool[i];
        b->d = d;
        osc_buf_init(&b->body, d->max_bytes + 64);
        osc_buf_init(&b->orig, (size_t)1 << 30);
        osc_http_response_init(&b->resp);
    }
    d->staged = d->templ != OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES || !t->clear_staging ||
                d->opts.single_request;
    return d;
nomem:
    osc_err_set(err, OSC_ENOMEM, "out of memory");
fail:
    osc_delivery_free(d);
    return NULL;
}

const char *osc_delivery_dead_letter_path(const struct osc_delivery *d) { return d->dl_path; }

void osc_delivery_get_stats(const struct osc_delivery *d, struct osc_delivery_stats *out)
{
    *out = d->st;
    out->dead_lettered = osc_deadletter_count(d->dl);
    out->webhook_failed = webhook_failed(d->webhook);
    out->seconds = (double)(now_ms(d) - d->start_ms) / 1000.0;
}

int osc_delivery_exit_code(const struct osc_delivery_stats *s)
{
    if (s->auth_failed)
        return 77; /* EX_NOPERM */
    if (s->dead_letter_error)
        return 74; /* EX_IOERR */
    if (s->unavailable || s->commit == -2 || s->gave_up)
        return 69; /* EX_UNAVAILABLE: retries exhausted */
    if (s->unsent)
        return 75; /* EX_TEMPFAIL: stopped early; run again to resume */
    if (s->rejected || s->malformed || s->invalid || s->commit == -1)
        return 65; /* EX_DATAERR: some records dead-lettered */
    return 0;
}

/* ---- dead letters --------------------------------------------------------- */

static int dead_letter(struct osc_delivery *d, const char *json, size_t json_len, const char *raw,
                       size_t raw_len, const char *file, uint64_t line, uint64_t offset,
                       long status, const char *resp, size_t resp_len, const char *reason,
                       unsigned attempts)
{
    struct osc_err err = {0};

    /* preview, dry-run and test report; they never write the file */
    if (d->opts.dry_run || d->opts.single_request)
        return 0;
    if (osc_deadletter_write(d->dl, json, json_len, raw, raw_len, file, line, offset, status, resp,
                             resp_len, reason, attempts, &err)) {
        if (!d->st.dead_letter_error)
            OSC_LOG_ERROR("delivery", "%s", err.msg);
        d->st.dead_letter_error = 1;
        return OSC_EIO;
    }
    return 0;
}

static const char *cur_file(struct osc_delivery *d, const char *f)
{
    (void)d;
    return f ? f : "<input>";
}

static const char *input_name(const struct osc_delivery *d, uint32_t input)
{
    return input < d->ninput_names && d->input_names[input] ? d->input_names[input] : "<input>";
}

/* Dead-letter record i of b. */
static void dead_letter_rec(struct osc_delivery *d, struct batch *b, size_t i, long status,
                            const char *reason)
{
    const struct rec_ref *r = &b->recs[i];

    dead_letter(d, b->orig.data + r->off, r->len, NULL, 0, input_name(d, r->input), r->line,
                r->offset, status, b->resp.body.data, b->resp.body.len, reason, b->attempts);
}

/* Dead-letter every record of b with one reason. */
static void dead_letter_batch(struct osc_delivery *d, struct batch *b, long status,
                              const char *reason)
{
    for (size_t i = 0; i < b->nrecs; i++)
        dead_letter_rec(d, b, i, status, reason);
}

/*
 * A 2xx answer may still name rows it skipped. The REST reference documents
 * no batch-import result (OfficeSpace's scripts discard it); GraphQL's
 * employeeSeed reports skipped rows. osconnect reads the shape
 * {"errors": [{"index": N, "error": "..."}]} (N: 0-based row of the batch)
 * when it is there, dead-letters just those rows and counts the rest as
 * delivered. Returns the number of rows dead-lettered.
 */
static size_t partial_rejects(struct osc_delivery *d, struct batch *b,
                              const struct osc_http_response *r)
{
    json_t *root, *errs, *e;
    unsigned char *done;
    size_t i, n = 0;

    if (!r->body.len || r->body.data[0] != '{' ||
        !memmem(r->body.data, r->body.len, "\"errors\"", 8))
        return 0;
    if (!(root = json_loadb(r->body.data, r->body.len, 0, NULL)))
        return 0;
    errs = json_object_get(root, "errors");
    if (!json_is_array(errs) || !(done = calloc(b->nrecs ? b->nrecs : 1, 1))) {
        json_decref(root);
        return 0;
    }
    json_array_foreach(errs, i, e)
    {
        json_t *idx = json_object_get(e, "index");
        const char *msg = json_string_value(json_object_get(e, "error"));
        char reason[512];
        json_int_t k;
        if (!json_is_integer(idx) || (k = json_integer_value(idx)) < 0 || (size_t)k >= b->nrecs ||
            done[k])
            continue;
        done[k] = 1;
        snprintf(reason, sizeof(reason), "rejected by the API (row %lld of the batch): %s",
                 (long long)k, msg ? msg : "no reason given");
        dead_letter_rec(d, b, (size_t)k, r->status, reason);
        n++;
    }
    free(done);
    json_decref(root);
    return n;
}

int osc_delivery_malformed(struct osc_delivery *d, const struct osc_record *rec, const char *reason)
{
    d->st.records++;
    d->st.malformed++;
    OSC_LOG_WARN("input", "%s", reason);
    return dead_letter(d, NULL, 0, rec->raw, rec->raw_len, cur_file(d, rec->file), rec->line,
                       rec->offset, 0, NULL, 0, reason, 0);
}

static int reject_local(struct osc_delivery *d, const struct osc_record *rec, const char *why)
{
    d->st.invalid++;
    OSC_LOG_WARN("delivery", "%s:%llu: %s: %s", cur_file(d, rec->file),
                 (unsigned long long)rec->line, d->dest->name, why);
    return dead_letter(d, rec->json, rec->json_len, rec->raw, rec->raw_len, cur_file(d, rec->file),
                       rec->line, rec->offset, 0, NULL, 0, why, 0);
}

/* ---- checkpoint ------------------------------------------------------------ */

static int pos_before(uint32_t ia, uint64_t oa, uint32_t ib, uint64_t ob)
{
    return ia < ib || (ia == ib && oa < ob);
}

/*
 * Save the position before which every record is done: the first record of
 * the earliest batch still open, queued, in flight or waiting for a retry,
 * else where reading stopped. Records of a batch are in input order, so its
 * first record is its earliest. Never moves backwards; frozen once the run
 * was stopped (records dropped then are not done) or a dead letter failed
 * (that record is not done either). force writes even when only the
 * counters changed.
 */
static void cp_update(struct osc_delivery *d, int force)
{
    struct osc_checkpoint_pos p = d->cp_pos;
    struct osc_err err = {0};

    /* a record whose dead letter failed is not done: the position must stay before it */
    if (!d->cp || d->cp_error || d->stop || d->st.dead_letter_error)
        return;
    p.input = d->cur_input;
    p.offset = d->next_off;
    p.line = d->next_line;
    for (size_t i = 0; i < d->npool; i++) {
        const struct batch *b = &d->pool[i];
        if (b->state != B_FREE && b->kind == K_DATA && b->nrecs &&
            pos_before(b->recs[0].input, b->recs[0].offset, p.input, p.offset)) {
            p.input = b->recs[0].input;
            p.offset = b->recs[0].offset;
            p.line = b->recs[0].line;
        }
    }
    if (pos_before(p.input, p.offset, d->cp_pos.input, d->cp_pos.offset)) {
        p.input = d->cp_pos.input;
        p.offset = d->cp_pos.offset;
        p.line = d->cp_pos.line;
    }
    p.staged = d->staged_ok;
    p.failed = d->failed_batches > 0;
    p.sent = d->resume.sent + d->st.sent;
    p.dead = d->resume.dead + osc_deadletter_count(d->dl);
    if (!force && p.input == d->cp_pos.input && p.offset == d->cp_pos.offset &&
        p.staged == d->cp_pos.staged && p.failed == d->cp_pos.failed)
        return;
    if (osc_checkpoint_save(d->cp, d->cp_key, &p, &err)) {
        OSC_LOG_ERROR("delivery",
                      "%s: %s; continuing without a checkpoint (an interrupted run "
                      "will start over)",
                      d->dest->name, err.msg);
        d->cp_error = 1;
        return;
    }
    d->cp_pos = p;
}

int osc_delivery_checkpoint(struct osc_delivery *d, struct osc_checkpoint *c,
                            const char *const *paths, size_t n, int restart, struct osc_err *err)
{
    struct osc_buf key;
    char id[OSC_CHECKPOINT_ID_MAX];
    struct osc_checkpoint_pos pos;
    int rc = 0;

    if (!c || d->opts.dry_run || d->opts.single_request || osc_delivery_takes_no_records(d))
        return 0;
    osc_buf_init(&key, 1u << 20);
    if (osc_buf_adds(&key, d->dest->name)) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct osc_err ierr = {0};
        if (strcmp(paths[i], "-") != 0 && access(paths[i], R_OK) != 0)
            goto out; /* reading it will report why */
        if (osc_checkpoint_input_id(paths[i], id, sizeof(id), &ierr)) {
            OSC_LOG_INFO("delivery",
                         "%s: %s: no checkpoint is kept (an interrupted run starts over)",
                         d->dest->name, ierr.msg);
            goto out;
        }
        if (osc_buf_printf(&key, "\n%s", id)) {
            rc = osc_err_set(err, OSC_ETOOBIG, "too many inputs for a checkpoint");
            goto out;
        }
    }
    if (restart) {
        if ((rc = osc_checkpoint_clear(c, key.data, err)))
            goto out;
    } else if ((rc = osc_checkpoint_load(c, key.data, &pos, err)) < 0) {
        goto out;
    } else if (rc == 1) {
        d->resume = pos;
        d->cp_pos = pos;
        d->resuming = 1;
        d->st.resumed = 1;
        d->st.skipped = pos.sent + pos.dead;
        d->failed_batches = pos.failed;
        d->staged = 1; /* never clear what an earlier run staged */
        d->staged_ok = pos.staged;
        OSC_LOG_INFO("delivery",
                     "%s: resuming at input %u, line %llu (offset %llu): %llu "
                     "records accepted and %llu dead-lettered by earlier runs%s",
                     d->dest->name, pos.input + 1, (unsigned long long)pos.line,
                     (unsigned long long)pos.offset, (unsigned long long)pos.sent,
                     (unsigned long long)pos.dead,
                     pos.failed ? "; a batch failed then, so the commit will not run" : "");
    }
    d->cp = c;
    d->cp_key = osc_buf_steal(&key);
    d->next_line = 1;
out:
    osc_buf_free(&key);
    return rc;
}

/* ---- encoding --------------------------------------------------------------- */

/* Remove a dotted path (a.b.c) from a JSON object. */
static void json_del_path(json_t *obj, const char *path)
{
    const char *dot = strchr(path, '.');
    char key[256];

    if (!json_is_object(obj))
        return;
    if (!dot) {
        json_object_del(obj, path);
        return;
    }
    if ((size_t)(dot - path) >= sizeof(key))
        return;
    memcpy(key, path, (size_t)(dot - path));
    key[dot - path] = '\0';
    json_del_path(json_object_get(obj, key), dot + 1);
}

/*
 * rec minus the exclude list, as compact JSON in d->filtered; *json and *len
 * point at the result (or at the record itself when nothing is excluded).
 */
static int apply_exclude(struct osc_delivery *d, const struct osc_record *rec, const char **json,
                         size_t *len)
{
    const struct osc_strlist *ex = &d->dest->exclude;
    int any = 0, rc = 0;

    *json = rec->json;
    *len = rec->json_len;
    if (ex->n == 0)
        return 0;
    osc_buf_reset(&d->filtered);
    rc |= osc_buf_addc(&d->filtered, '{');
    for (size_t i = 0; i < rec->nfields; i++) {
        const struct osc_record_field *f = &rec->fields[i];
        int drop = 0;
        json_t *sub = NULL;
        for (size_t j = 0; j < ex->n && !drop; j++) {
            const char *e = ex->v[j];
            size_t n = strlen(e);
            if (n == f->key_len && memcmp(e, f->key, n) == 0)
                drop = 1;
            else if (n > f->key_len && e[f->key_len] == '.' && memcmp(e, f->key, f->key_len) == 0 &&
                     f->val[0] == '{') {
                if (!sub)
                    sub = json_loadb(f->val, f->val_len, 0, NULL);
                json_del_path(sub, e + f->key_len + 1);
            }
        }
        if (drop) {
            json_decref(sub);
            continue;
        }
        if (any)
            rc |= osc_buf_addc(&d->filtered, ',');
        any = 1;
        rc |= osc_buf_addc(&d->filtered, '"');
        rc |= osc_buf_add(&d->filtered, f->key, f->key_len);
        rc |= osc_buf_add(&d->filtered, "\":", 2);
        if (sub) {
            char *s = json_dumps(sub, JSON_COMPACT | JSON_PRESERVE_ORDER);
            rc |= s ? osc_buf_adds(&d->filtered, s) : OSC_ENOMEM;
            free(s);
            json_decref(sub);
        } else {
            rc |= osc_buf_add(&d->filtered, f->val, f->val_len);
        }
    }
    rc |= osc_buf_addc(&d->filtered, '}');
    *json = d->filtered.data;
    *len = d->filtered.len;
    return rc ? OSC_ETOOBIG : 0;
}

static int url_encode_into(struct osc_buf *out, const char *s, size_t n)
{
    char *e = osc_http_urlencode(s, n);
    int rc = e ? osc_buf_adds(out, e) : OSC_ENOMEM;
    free(e);
    return rc;
}

/* form body: key=value&... with top-level members (nested values as JSON text). */
static int encode_form(struct osc_delivery *d, const char *json, size_t len, struct osc_buf *out)
{
    struct osc_record tmp = {0};
    struct osc_record_field fields[OSC_RECORDS_MAX_FIELDS];
    struct osc_records_reader *r;
    struct osc_err err;
    int rc = 0, n;

    /* re-index the (possibly filtered) object: parse it as a one-record input */
    r = osc_records_open_mem(json, len, "form", OSC_RECORDS_JSONL, &err);
    if (!r)
        return OSC_ENOMEM;
    n = osc_records_next(r, &tmp, &err);
    if (n != 1) {
        osc_records_close(r);
        return OSC_EDATA;
    }
    memcpy(fields, tmp.fields, tmp.nfields * sizeof(*fields));
    for (size_t i = 0; i < tmp.nfields && !rc; i++) {
        if (i)
            rc = osc_buf_addc(out, '&');
        osc_buf_reset(&d->tmp);
        osc_json_value_text(fields[i].key - 1, fields[i].key_len + 2, &d->tmp);
        rc = rc ? rc : url_encode_into(out, d->tmp.data ? d->tmp.data : "", d->tmp.len);
        rc = rc ? rc : osc_buf_addc(out, '=');
        osc_buf_reset(&d->tmp);
        if (osc_json_value_text(fields[i].val, fields[i].val_len, &d->tmp) < 0)
            rc = OSC_ETOOBIG;
        rc = rc ? rc : url_encode_into(out, d->tmp.data ? d->tmp.data : "", d->tmp.len);
    }
    osc_records_close(r);
    return rc;
}

/* The URL for rec in d->url; OSC_EDATA with *why when a placeholder is missing. */
static int resolve_url(struct osc_delivery *d, const struct osc_record *rec, char *why,
                       size_t why_cap)
{
    struct osc_buf *u = &d->url;
    int rc = 0;

    osc_buf_reset(u);
    if (!d->url_templated)
        return 0; /* the caller uses d->fixed_url */
    if (!is_absolute(d->url_parts[0].text)) {
        rc = osc_buf_adds(u, d->cfg->officespace.rest_base);
        if (!rc && d->url_parts[0].text[0] != '/')
            rc = osc_buf_addc(u, '/');
    }
    for (size_t i = 0; i < d->nurl_parts && !rc; i++) {
        const struct url_part *p = &d->url_parts[i];
        const struct osc_record_field *f;
        if (!p->is_field) {
            rc = osc_buf_adds(u, p->text);
            continue;
        }
        f = osc_record_get(rec, p->text);
        osc_buf_reset(&d->tmp);
        if (!f || osc_json_value_text(f->val, f->val_len, &d->tmp) <= 0) {
            snprintf(why, why_cap, "no value for {%s} in the url", p->text);
            return OSC_EDATA;
        }
        rc = url_encode_into(u, d->tmp.data, d->tmp.len);
    }
    if (rc)
        snprintf(why, why_cap, "url longer than %d bytes", URL_MAX);
    return rc ? OSC_EDATA : 0;
}

/* ---- duplicate keys in one batch --------------------------------------------- */

#define KEYS_MAX 8192

static uint64_t key_hash(char tag, const char *s, size_t n, int fold)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (unsigned char)tag;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (fold && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h = (h ^ c) * 0x100000001b3ULL;
    }
    return h ? h : 1;
}

/* The table of b, allocated on first use; NULL when full or out of memory (nothing checked). */
static struct key_slot *key_table(struct batch *b, size_t batch_size)
{
    if (!b->keys) {
        size_t cap = 64;
        while (cap < 4 * batch_size && cap < KEYS_MAX)
            cap *= 2;
        if (!(b->keys = calloc(cap, sizeof(*b->keys))))
            return NULL;
        b->keys_cap = cap;
    }
    return b->nkeys + 2 > b->keys_cap / 2 ? NULL : b->keys;
}

/* Line of an earlier record with key hash in b, or 0. */
static uint64_t key_find(const struct batch *b, uint64_t hash)
{
    for (size_t i = hash & (b->keys_cap - 1); b->keys[i].hash; i = (i + 1) & (b->keys_cap - 1))
        if (b->keys[i].hash == hash)
            return b->keys[i].line;
    return 0;
}

static void key_add(struct batch *b, uint64_t hash, uint64_t line)
{
    size_t i = hash & (b->keys_cap - 1);
    while (b->keys[i].hash && b->keys[i].hash != hash)
        i = (i + 1) & (b->keys_cap - 1);
    if (!b->keys[i].hash)
        b->nkeys++;
    b->keys[i].hash = hash;
    b->keys[i].line = line;
}

/*
 * One batch must not hold two records for the same employee (same
 * EmployeeId, or same Email ignoring case): what the API does with both is
 * undefined. The first is kept; the later one gets a reason in *why.
 * Returns 1 for a duplicate. Batches beyond KEYS_MAX/2 records are checked
 * only up to that many keys.
 */
static int duplicate_in_batch(struct osc_delivery *d, struct batch *b, const struct osc_record *rec,
                              char *why, size_t cap)
{
    const char *id, *email;
    size_t id_len, email_len;
    uint64_t hid, hem = 0, at;
    struct osc_buf *t = &d->tmp;

    osc_employee_last_keys(d->emap, &id, &id_len, &email, &email_len);
    if (!id_len || !key_table(b, d->batch_size))
        return 0;
    hid = key_hash('i', id, id_len, 0);
    if (email_len)
        hem = key_hash('e', email, email_len, 1);
    if (!(at = key_find(b, hid)) && (!hem || !(at = key_find(b, hem)))) {
        key_add(b, hid, rec->line ? rec->line : 1);
        if (hem)
            key_add(b, hem, rec->line ? rec->line : 1);
        return 0;
    }
    osc_buf_reset(t);
    osc_json_value_text(at == key_find(b, hid) ? id : email,
                        at == key_find(b, hid) ? id_len : email_len, t);
    snprintf(why, cap,
             "duplicate employee in one batch: '%.*s' is also on line %llu, which was "
             "sent; this record was not (fix the input and send it again)",
             (int)(t->len > 200 ? 200 : t->len), osc_buf_str(t), (unsigned long long)at);
    return 1;
}

/* ---- batches ---------------------------------------------------------------- */

static void ready_push(struct osc_delivery *d, struct batch *b, int front)
{
    b->state = B_READY;
    b->next_ready = NULL;
    if (front) {
        b->next_ready = d->ready_head;
        d->ready_head = b;
        if (!d->ready_tail)
            d->ready_tail = b;
        return;
    }
    if (d->ready_tail)
        d->ready_tail->next_ready = b;
    else
        d->ready_head = b;
    d->ready_tail = b;
}

static struct batch *ready_pop(struct osc_delivery *d)
{
    struct batch *b = d->ready_head;
    if (b) {
        d->ready_head = b->next_ready;
        if (!d->ready_head)
            d->ready_tail = NULL;
        b->next_ready = NULL;
    }
    return b;
}

static void new_request_id(struct osc_delivery *d, struct batch *b)
{
    uint64_t r = osc_retry_rand(&d->rng);
    d->req_seq++;
    snprintf(b->request_id, sizeof(b->request_id), "osc-%08llx-%06llu",
             (unsigned long long)(r >> 32), (unsigned long long)d->req_seq);
    snprintf(b->reqid_line, sizeof(b->reqid_line), "X-Request-Id: %s", b->request_id);
}

static void build_headers(struct osc_delivery *d, struct batch *b, const char *ctype)
{
    size_t n = 0;

    if (ctype && !d->user_ctype) {
        snprintf(b->ctype_line, sizeof(b->ctype_line), "Content-Type: %s", ctype);
        b->hdrs[n++] = b->ctype_line;
    }
    if (b->kind == K_DATA)
        for (size_t i = 0; i < d->nuser_hdr; i++)
            b->hdrs[n++] = d->user_hdr[i];
    /* the same id is in the webhook report: one call can be followed on both sides */
    b->hdrs[n++] = b->reqid_line;
    b->hdrs[n] = NULL;
}

/* Close an OPEN batch: finish the body and queue it. Returns 0 or the Lua failure. */
static void batch_close(struct osc_delivery *d, struct batch *b)
{
    struct osc_err err = {0};
    char ctype[128];

    if (b->nrecs == 0) {
        batch_reset(b);
        return;
    }
    snprintf(ctype, sizeof(ctype), "%s", d->ctype_default);
    if (!d->one_per_request && !d->ndjson_lines) {
        if (osc_buf_adds(&b->body, d->prop_suffix ? d->prop_suffix : "]")) {
            d->st.invalid += b->nrecs;
            d->failed_batches++;
            dead_letter_batch(d, b, 0, "batch body larger than batch.max_bytes");
            batch_reset(b);
            return;
        }
        if (d->lua) {
            osc_buf_reset(&d->tmp);
            osc_buf_add(&d->tmp, b->body.data, b->body.len);
            if (lua_batch_run(d->lua, d->tmp.data, d->tmp.len, &b->body, ctype, sizeof(ctype),
                              &err)) {
                OSC_LOG_ERROR("delivery", "%s: %s", d->dest->name, err.msg);
                d->st.invalid += b->nrecs;
                d->failed_batches++;
                dead_letter_batch(d, b, 0, err.msg);
                batch_reset(b);
                return;
            }
        }
    }
    new_request_id(d, b);
    build_headers(d, b, ctype);
    ready_push(d, b, 0);
}

static void emit_call(struct osc_delivery *d, struct batch *b, const struct osc_http_response *r,
                      enum osc_http_outcome outcome)
{
    const char *body = b->body.data ? b->body.data : "";
    struct osc_delivery_call call = {b->request_id,
                                     d->dest->name,
                                     b->kind == K_STAGING  ? "DELETE"
                                     : b->kind == K_COMMIT ? "POST"
                                                           : d->method,
                                     b->url,
                                     b->hdrs,
                                     body,
                                     b->body.len,
                                     b->nrecs,
                                     b->attempts,
                                     r,
                                     outcome};

    if (d->webhook && r) {
        json_t *doc = json_object(), *hdrs = json_object();
        const char *h = r->headers.data ? r->headers.data : "";
        char *s;
        size_t bl = r->body.len > WEBHOOK_BODY_MAX ? WEBHOOK_BODY_MAX : r->body.len;
        /* response headers: "Name: value" lines after the status line */
        while (*h) {
            const char *eol = strchr(h, '\n'), *colon = strchr(h, ':');
            size_t ll = eol ? (size_t)(eol - h) : strlen(h);
            if (colon && colon < h + ll) {
                char name[128];
                size_t nl = (size_t)(colon - h), vl;
                const char *v = colon + 1;
                while (*v == ' ')
                    v++;
                vl = (size_t)(h + ll - v);
                while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                    vl--;
                if (nl < sizeof(name)) {
                    for (size_t i = 0; i < nl; i++)
                        name[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
                    name[nl] = '\0';
                    json_object_set_new(hdrs, name, json_stringn_nocheck(v, vl));
                }
            }
            h += ll + (eol ? 1 : 0);
        }
        json_object_set_new(doc, "request_id", json_string(b->request_id));
        json_object_set_new(doc, "destination", json_string(d->dest->name));
        json_object_set_new(doc, "url", json_string(b->url));
        json_object_set_new(doc, "method", json_string(call.method));
        json_object_set_new(doc, "status", r->status ? json_integer(r->status) : json_null());
        json_object_set_new(doc, "outcome", json_string(osc_http_outcome_name(outcome)));
        json_object_set_new(doc, "attempt", json_integer(b->attempts));
        json_object_set_new(doc, "duration_ms", json_integer((json_int_t)(r->seconds * 1000)));
        json_object_set_new(doc, "records", json_integer((json_int_t)b->nrecs));
        if (r->error[0])
            json_object_set_new(doc, "error", json_string(r->error));
        json_object_set_new(doc, "response_headers", hdrs);
        {
            json_t *bs = json_stringn(r->body.data ? r->body.data : "", bl);
            json_object_set_new(doc, "response_body", bs ? bs : json_string("(binary)"));
        }
        json_object_set_new(doc, "response_truncated",
                            json_boolean(r->truncated || r->body.len > WEBHOOK_BODY_MAX));
        s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s) {
            osc_redact(s, strlen(s) + 1);
            webhook_post(d->webhook, s, strlen(s));
        }
        free(s);
        json_decref(doc);
    }
    if (d->opts.on_call)
        d->opts.on_call(d->opts.ud, &call);
}

static void on_done(void *ud, struct osc_http_response *r);

/* The trigger's and staging's URLs are configured too: the same rule as for records. */
static int batch_gets_key(const struct osc_delivery *d, const struct batch *b)
{
    return b->kind == K_DATA ? d->url_auth : url_gets_key(d, b->url);
}

/*
 * Write buf[0, len) (buf[len] is NUL) with every registered secret shown as
 * ***. osc_redact() stops at a NUL, so each NUL-separated piece is redacted
 * on its own; redaction only shortens a piece, never moves the NUL after it.
 */
static void fput_redacted(FILE *o, char *buf, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t seg = strlen(buf + i);
        osc_redact(buf + i, seg + 1);
        fputs(buf + i, o);
        i += seg;
        if (i < len) {
            fputc('\0', o);
            i++;
        }
    }
}

/*
 * The request as it would be sent. Everything (URL, user headers, body,
 * JSON or not) goes through redaction: a record or a header may hold the
 * key, and the preview is meant to be pasted into tickets.
 */
static void preview_print(struct osc_delivery *d, struct batch *b, const char *method)
{
    char *text = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&text, &len);
    json_t *j;

    if (!o)
        return;
    fprintf(o, "%s %s\n", method, b->url);
    if (batch_gets_key(d, b))
        fprintf(o, "Authorization: Token token=***\n");
    for (size_t i = 0; b->hdrs[i]; i++)
        if (strncmp(b->hdrs[i], "X-Request-Id:", 13) != 0)
            fprintf(o, "%s\n", b->hdrs[i]);
    if (b->body.len && strcmp(method, "DELETE") != 0) {
        fputc('\n', o);
        j = b->body.data[0] == '{' || b->body.data[0] == '['
                ? json_loadb(b->body.data, b->body.len, 0, NULL)
                : NULL;
        if (j) {
            json_dumpf(j, o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            fputc('\n', o);
            json_decref(j);
        } else {
            fwrite(b->body.data, 1, b->body.len, o);
            if (b->body.data[b->body.len - 1] != '\n')
                fputc('\n', o);
        }
    }
    fputc('\n', o);
    if (fclose(o) == 0 && text)
        fput_redacted(d->opts.preview, text, len);
    free(text);
}

/*
 * The request could not even be built (a header HTTP cannot carry, out of
 * memory). Sending it again would fail the same way, and requeueing it
 * looped forever: the batch is given up at once, like a transport failure
 * after its last attempt.
 */
static void submit_failed(struct osc_delivery *d, struct batch *b, int rc)
{
    char why[256];

    snprintf(why, sizeof(why), "gave up: the request could not be sent: %s%s", osc_strerror(rc),
             rc == OSC_EINVAL ? " (a header or the API key holds a character HTTP cannot carry)"
                              : "");
    OSC_LOG_ERROR("delivery", "%s: %s: %s; %zu record(s) dead-lettered to %s", d->dest->name,
                  b->url, why, b->nrecs, d->dl_path);
    d->failed_batches++;
    if (b->kind == K_DATA) {
        d->st.unavailable += b->nrecs;
        dead_letter_batch(d, b, 0, why);
    }
    b->state = B_FREE;
    if (b->kind == K_DATA)
        cp_update(d, 0);
}

/*
 * Hand b to the HTTP client (or to the preview/dry-run sink). Returns 0, or
 * OSC_EBUSY when the client is full (b stays as it was: queue it again). A
 * request that cannot be built is given up here (b is FREE after).
 */
static int submit(struct osc_delivery *d, struct batch *b)
{
    const char *method = b->kind == K_STAGING ? "DELETE" : b->kind == K_COMMIT ? "POST" : d->method;
    struct osc_http_request req = {method,
                                   b->url,
                                   b->hdrs,
                                   batch_gets_key(d, b) ? OSC_HTTP_AUTH_OS_TOKEN
                                                        : OSC_HTTP_AUTH_NONE,
                                   d->cfg->officespace.api_key,
                                   NULL,
                                   0,
                                   0,
                                   0};
    int rc;

    if (b->body.len && strcmp(method, "DELETE") != 0) {
        req.body = b->body.data;
        req.body_len = b->body.len;
    }
    b->attempts++;
    if (!b->first_ms)
        b->first_ms = now_ms(d);
    if (d->opts.dry_run) {
        if (d->opts.preview)
            preview_print(d, b, method);
        b->state = B_FLIGHT;
        b->resp.status = 0;
        b->resp.outcome = OSC_HTTP_SENT;
        on_done(b, &b->resp);
        return 0;
    }
    rc = osc_http_submit(d->http, &req, &b->resp, on_done, b);
    if (rc == 0)
        b->state = B_FLIGHT;
    else if (rc != OSC_EBUSY)
        submit_failed(d, b, rc);
    return rc == OSC_EBUSY ? rc : 0;
}

static void on_done(void *ud, struct osc_http_response *r)
{
    struct batch *b = ud;
    struct osc_delivery *d = b->d;
    enum osc_http_outcome o = d->opts.dry_run
                                  ? OSC_HTTP_SENT
                                  : osc_retry_classify(&d->dest->retry, r->status, r->transport);
    char reason[512];
    int64_t now = now_ms(d);

    if (!d->opts.dry_run)
        d->st.requests++;
    emit_call(d, b, d->opts.dry_run ? NULL : r, o);
    if (o == OSC_HTTP_SENT) {
        d->accepted = 1;
        if (b->kind == K_DATA) {
            size_t bad = partial_rejects(d, b, r);
            d->st.sent += b->nrecs - bad;
            if (bad) {
                /* a commit would drop these employees from the directory */
                d->st.rejected += bad;
                d->failed_batches++;
                OSC_LOG_WARN("delivery",
                             "%s: %s %s: the API skipped %zu of %zu record(s); "
                             "dead-lettered to %s",
                             d->dest->name, d->method, b->url, bad, b->nrecs, d->dl_path);
            }
        }
        OSC_LOG_DEBUG("delivery", "%s: %s %s -> %ld (%zu records)", d->dest->name,
                      b->kind == K_STAGING ? "DELETE" : d->method, b->url, r->status, b->nrecs);
        b->state = B_FREE;
        if (b->kind == K_DATA)
            cp_update(d, 0);
        return;
    }
    if (o == OSC_HTTP_REJECT) {
        if ((r->status == 401 || r->status == 403) && !d->accepted) {
            if (!d->st.auth_failed)
                OSC_LOG_ERROR("delivery",
                              "%s: OfficeSpace refused the API key (HTTP %ld from %s); "
                              "check officespace.api_key",
                              d->dest->name, r->status, b->url);
            d->st.auth_failed = 1;
            d->stop = 1;
            d->st.unsent += b->nrecs;
            b->state = B_FREE;
            return;
        }
        snprintf(reason, sizeof(reason), "rejected by the API: HTTP %ld", r->status);
        if (r->transport)
            snprintf(reason, sizeof(reason), "rejected: %s", r->error);
        OSC_LOG_WARN("delivery", "%s: %s %s: %s; %zu record(s) dead-lettered to %s", d->dest->name,
                     d->method, b->url, reason, b->nrecs, d->dl_path);
        d->failed_batches++;
        if (b->kind == K_DATA) {
            d->st.rejected += b->nrecs;
            dead_letter_batch(d, b, r->status, reason);
        }
        b->state = B_FREE;
        if (b->kind == K_DATA)
            cp_update(d, 0);
        return;
    }
    /* retry */
    {
        const struct osc_conf_retry *rp = &d->dest->retry;
        int64_t delay;
        if (r->transport)
            snprintf(reason, sizeof(reason), "%s", r->error);
        else
            snprintf(reason, sizeof(reason), "HTTP %ld", r->status);
        if (d->stop) {
            /* the key was refused: not done, so a rerun (from the checkpoint) sends it */
            d->st.unsent += b->nrecs;
            b->state = B_FREE;
            return;
        }
        if (r->retry_after_ms >= 0) {
            delay = r->retry_after_ms;
            if (delay > d->dest->max_retry_wait_ms) {
                snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason),
                         " with Retry-After %llds, longer than max_retry_wait (%llds)",
                         (long long)(delay / 1000), (long long)(d->dest->max_retry_wait_ms / 1000));
                delay = -1; /* give up below */
            } else if ((r->status == 429 || r->status == 503) && now + delay > d->paused_until) {
                /* the server asked everyone to wait: pause the whole destination */
                d->paused_until = now + delay;
                OSC_LOG_INFO("delivery",
                             "%s: HTTP %ld with Retry-After: pausing the destination "
                             "for %lld ms",
                             d->dest->name, r->status, (long long)delay);
            }
        } else {
            delay = osc_retry_backoff_ms(rp, b->attempts, &d->rng);
        }
        if (delay < 0 || (int64_t)b->attempts >= rp->max_attempts ||
            now + delay - b->first_ms > rp->max_elapsed_ms || d->stop || d->opts.single_request) {
            char why[700];
            if (delay >= 0 && (int64_t)b->attempts < rp->max_attempts && !d->stop &&
                !d->opts.single_request)
                snprintf(why, sizeof(why),
                         "gave up after %u attempt(s) (retry.max_elapsed "
                         "%llds would pass): %s",
                         b->attempts, (long long)(rp->max_elapsed_ms / 1000), reason);
            else
                snprintf(why, sizeof(why), "gave up after %u attempt(s): %s", b->attempts, reason);
            OSC_LOG_ERROR("delivery", "%s: %s %s: %s; %zu record(s) dead-lettered to %s",
                          d->dest->name, d->method, b->url, why, b->nrecs, d->dl_path);
            d->failed_batches++;
            if (b->kind == K_DATA) {
                d->st.unavailable += b->nrecs;
                dead_letter_batch(d, b, r->status, why);
            } else {
                d->st.gave_up = 1; /* the API was unavailable, not the data wrong */
            }
            b->state = B_FREE;
            if (b->kind == K_DATA)
                cp_update(d, 0);
            return;
        }
        d->st.retries++;
        OSC_LOG_INFO("delivery", "%s: %s %s: %s; retry %u in %lld ms", d->dest->name, d->method,
                     b->url, reason, b->attempts, (long long)delay);
        b->due_ms = now + delay;
        b->state = B_WAIT;
    }
}

static void tick(struct osc_delivery *d)
{
    int64_t now;
    if (!d->opts.tick)
        return;
    now = now_ms(d);
    if (now - d->last_tick >= TICK_MS) {
        d->last_tick = now;
        d->opts.tick(d->opts.ud);
    }
}

/*
 * Move due retries to the front of the queue, submit what may go, drive
 * transfers for at most wait_ms. Returns the number of batches still busy
 * (READY, FLIGHT or WAIT).
 */
static size_t pump(struct osc_delivery *d, long wait_ms)
{
    int64_t now = now_ms(d), next = INT64_MAX;
    size_t busy = 0;

    if (now >= d->paused_until) {
        for (size_t i = 0; i < d->npool; i++) {
            struct batch *b = &d->pool[i];
            if (b->state == B_WAIT && b->due_ms <= now)
                ready_push(d, b, 1);
        }
        while (d->ready_head && !d->stop) {
            struct batch *b = d->ready_head;
            if (!d->opts.dry_run && osc_http_in_flight(d->http) >= osc_http_max_in_flight(d->http))
                break;
            ready_pop(d);
            if (submit(d, b) != 0) {
                ready_push(d, b, 1);
                break;
            }
        }
    }
    for (size_t i = 0; i < d->npool; i++) {
        struct batch *b = &d->pool[i];
        if (b->state == B_WAIT) {
            int64_t due = b->due_ms > d->paused_until ? b->due_ms : d->paused_until;
            if (due < next)
                next = due;
        }
        if (b->state == B_READY || b->state == B_FLIGHT || b->state == B_WAIT)
            busy++;
    }
    if (d->ready_head && d->paused_until > now && d->paused_until < next)
        next = d->paused_until;
    if (d->stop) {
        /* the key was refused: drop what is queued, let what is in flight finish */
        struct batch *b;
        while ((b = ready_pop(d)) != NULL) {
            d->st.unsent += b->nrecs;
            b->state = B_FREE;
        }
        for (size_t i = 0; i < d->npool; i++)
            if (d->pool[i].state == B_WAIT) {
                d->st.unsent += d->pool[i].nrecs;
                d->pool[i].state = B_FREE;
            }
    }
    if (wait_ms > 0 && next != INT64_MAX && next - now < wait_ms)
        wait_ms = next - now > 0 ? (long)(next - now) : 0;
    if (d->http && osc_http_in_flight(d->http) > 0)
        osc_http_run(d->http, wait_ms);
    else if (wait_ms > 0 && busy)
        osc_clock_sleep_ms(wait_ms, NULL);
    webhook_pump(d->webhook);
    tick(d);
    return busy;
}

static struct batch *get_free(struct osc_delivery *d)
{
    for (;;) {
        for (size_t i = 0; i < d->npool; i++) {
            if (d->pool[i].state == B_FREE) {
                batch_reset(&d->pool[i]);
                return &d->pool[i];
            }
        }
        if (d->stop)
            return NULL;
        pump(d, 100);
    }
}

/* A blocking request with the destination's retry policy (staging DELETE, commit trigger). */
static enum osc_http_outcome sync_request(struct osc_delivery *d, struct batch *b)
{
    for (;;) {
        if (submit(d, b) != 0)
            return OSC_HTTP_REJECT; /* busy: cannot happen, nothing else is in flight */
        while (b->state == B_FLIGHT)
            osc_http_run(d->http, 100);
        if (b->state == B_FREE)
            return d->stop || d->failed_batches ? OSC_HTTP_REJECT : OSC_HTTP_SENT;
        /* B_WAIT: sleep until due */
        {
            int64_t due = b->due_ms > d->paused_until ? b->due_ms : d->paused_until;
            int64_t wait = due - now_ms(d);
            if (wait > 0)
                osc_clock_sleep_ms(wait, NULL);
        }
    }
}

static int staging_delete(struct osc_delivery *d)
{
    struct batch *b = get_free(d);
    char *enc;
    int failed_before = d->failed_batches;
    enum osc_http_outcome o;

    if (!b)
        return OSC_EAUTH;
    b->kind = K_STAGING;
    enc = osc_http_urlencode(d->dest->source_name, strlen(d->dest->source_name));
    if (!enc || asprintf(&b->url, "%s/api/1/employee_directory/%s", d->cfg->officespace.rest_base,
                         enc) < 0) {
        free(enc);
        b->url = NULL;
        return OSC_ENOMEM;
    }
    free(enc);
    new_request_id(d, b);
    build_headers(d, b, NULL);
    d->staged = 1;
    o = sync_request(d, b);
    b->state = B_FREE;
    if (d->stop)
        return OSC_EAUTH;
    if (o != OSC_HTTP_SENT || d->failed_batches > failed_before) {
        OSC_LOG_ERROR("delivery",
                      "%s: clearing the staging area for source '%s' failed; "
                      "the directory import will not be triggered",
                      d->dest->name, d->dest->source_name);
        d->failed_batches++;
    } else {
        d->staged_ok = 1;
    }
    cp_update(d, 1);
    return 0;
}

/* Append the encoded record in d->enc to batch b, with the original record for dead letters.
 * On failure b is left as it was. */
static int batch_append(struct osc_delivery *d, struct batch *b, const struct osc_record *rec)
{
    struct rec_ref *r;
    size_t body_len = b->body.len, orig_len = b->orig.len;
    int rc = 0;

    if (b->nrecs == b->recs_alloc) {
        size_t na = b->recs_alloc ? b->recs_alloc * 2 : 128;
        struct rec_ref *n = realloc(b->recs, na * sizeof(*n));
        if (!n)
            return OSC_ENOMEM;
        b->recs = n;
        b->recs_alloc = na;
    }
    if (b->nrecs == 0 && !d->one_per_request && !d->ndjson_lines)
        rc = osc_buf_adds(&b->body, d->prop_prefix ? d->prop_prefix : "[");
    else if (b->nrecs > 0 && !d->ndjson_lines)
        rc = osc_buf_addc(&b->body, ',');
    rc = rc ? rc : osc_buf_add(&b->body, d->enc.data, d->enc.len);
    if (!rc && d->fmt == OSC_CONF_FORMAT_NDJSON && (d->ndjson_lines || d->one_per_request))
        rc = osc_buf_addc(&b->body, '\n');
    r = &b->recs[b->nrecs];
    r->offset = rec->offset;
    r->line = rec->line;
    r->input = d->cur_input;
    r->off = b->orig.len;
    r->len = rec->json_len;
    rc = rc ? rc : osc_buf_add(&b->orig, rec->json, rec->json_len);
    if (rc) {
        /* all or nothing: half a record in the body would be sent and dead-lettered too */
        b->body.len = body_len;
        b->orig.len = orig_len;
        if (b->body.data)
            b->body.data[body_len] = '\0';
        if (b->orig.data)
            b->orig.data[orig_len] = '\0';
        return rc;
    }
    b->nrecs++;
    return 0;
}

static size_t overhead(const struct osc_delivery *d) { return d->overhead; }

int osc_delivery_add(struct osc_delivery *d, const struct osc_record *rec)
{
    struct batch *b = NULL;
    char why[256];
    const char *json, *url;
    size_t len;
    struct osc_err err = {0};
    int rc;

    d->st.records++;
    if (d->stop) {
        d->st.unsent++;
        return OSC_EAUTH;
    }
    if (d->templ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT) {
        return reject_local(d, rec, "a trigger_directory_import destination takes no records");
    }
    /* encode */
    osc_buf_reset(&d->enc);
    if (d->opts.payload) {
        rc = osc_buf_add(&d->enc, d->opts.payload, d->opts.payload_len);
    } else if (d->emap) {
        rc = osc_employee_encode(d->emap, rec, &d->enc, &err);
        if (rc == OSC_EDATA)
            return reject_local(d, rec, err.msg);
    } else {
        if ((rc = apply_exclude(d, rec, &json, &len)) == 0) {
            if (d->fmt == OSC_CONF_FORMAT_FORM)
                rc = encode_form(d, json, len, &d->enc);
            else
                rc = osc_buf_add(&d->enc, json, len);
        }
    }
    if (rc)
        return reject_local(d, rec, "record too large to encode");
    if (d->enc.len + overhead(d) > d->max_bytes) {
        snprintf(why, sizeof(why), "encoded record is %zu bytes, more than batch.max_bytes (%zu)",
                 d->enc.len, d->max_bytes);
        return reject_local(d, rec, why);
    }
    if (resolve_url(d, rec, why, sizeof(why)))
        return reject_local(d, rec, why);

    /* the staging area is cleared once, before the first batch */
    if (!d->staged && (rc = staging_delete(d)))
        return rc;
    if (d->stop)
        return OSC_EAUTH;

    url = d->url_templated ? d->url.data : d->fixed_url;
    if (d->last_open && d->last_open->state == B_OPEN &&
        (!d->url_templated || strcmp(d->last_open->url, url) == 0))
        b = d->last_open; /* the common case: the same batch as the previous record */
    else
        for (size_t i = 0; i < d->npool; i++)
            if (d->pool[i].state == B_OPEN && strcmp(d->pool[i].url, url) == 0)
                b = &d->pool[i];
    if (b && b->body.len + d->enc.len + overhead(d) + 1 > d->max_bytes) {
        batch_close(d, b);
        b = NULL;
    }
    if (!b) {
        size_t open = 0;
        struct batch *fullest = NULL;
        for (size_t i = 0; i < d->npool; i++)
            if (d->pool[i].state == B_OPEN) {
                open++;
                if (!fullest || d->pool[i].nrecs > fullest->nrecs)
                    fullest = &d->pool[i];
            }
        if (open >= d->max_groups && fullest)
            batch_close(d, fullest);
        pump(d, 0);
        if (!(b = get_free(d)))
            return OSC_EAUTH;
        if (!(b->url = strdup(url)))
            return OSC_ENOMEM;
        b->state = B_OPEN;
    }
    d->last_open = b;
    if (d->emap && !d->opts.payload && duplicate_in_batch(d, b, rec, why, sizeof(why)))
        return reject_local(d, rec, why);
    if ((rc = batch_append(d, b, rec)))
        return reject_local(d, rec, "out of memory");
    /* drive the transfers when a batch is queued, and now and then in between:
     * a poll per record would cost more than the record */
    if (d->one_per_request || b->nrecs >= d->batch_size) {
        batch_close(d, b);
        pump(d, 0);
        d->since_pump = 0;
    } else if (++d->since_pump >= PUMP_EVERY) {
        pump(d, 0);
        d->since_pump = 0;
    }
    return d->st.dead_letter_error ? OSC_EIO : 0;
}

static void send_commit(struct osc_delivery *d)
{
    const struct osc_conf_destination *c =
        d->templ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT ? d->dest : d->commit;
    struct batch *b = get_free(d);
    int failed_before = d->failed_batches;

    if (!b)
        return;
    b->kind = K_COMMIT;
    if (make_fixed_url(d, c->url ? c->url : "/api/1/employee_directory", &b->url) ||
        osc_buf_adds(&b->body, "Source=") ||
        url_encode_into(&b->body, c->source_name, strlen(c->source_name))) {
        d->st.commit = -2;
        snprintf(d->st.commit_reason, sizeof(d->st.commit_reason), "out of memory");
        b->state = B_FREE;
        return;
    }
    new_request_id(d, b);
    build_headers(d, b, "application/x-www-form-urlencoded");
    if (sync_request(d, b) == OSC_HTTP_SENT && d->failed_batches == failed_before) {
        d->st.commit = 1;
        snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                 "directory import triggered for source '%s'", c->source_name);
    } else {
        d->st.commit = -2;
        snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                 "the directory import trigger for source '%s' failed", c->source_name);
        d->failed_batches++;
    }
    b->state = B_FREE;
}

int osc_delivery_finish(struct osc_delivery *d)
{
    for (size_t i = 0; i < d->npool; i++)
        if (d->pool[i].state == B_OPEN)
            batch_close(d, &d->pool[i]);
    while (pump(d, 100) > 0)
        ;
    if ((d->input_failed || d->st.dead_letter_error) && d->commit) {
        d->st.commit = -1;
        snprintf(d->st.commit_reason, sizeof(d->st.commit_reason), "%s",
                 d->st.dead_letter_error
                     ? "directory import NOT triggered: a dead letter could not be written"
                     : "directory import NOT triggered: an input could not be read completely");
        OSC_LOG_ERROR("delivery", "%s: %s", d->dest->name, d->st.commit_reason);
    } else if (d->st.interrupted) {
        if (d->commit) {
            d->st.commit = -1;
            snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                     "directory import NOT triggered: the run was interrupted; run the same "
                     "command again to resume");
        }
    } else if (d->templ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT && !d->stop) {
        send_commit(d);
    } else if (d->commit && !d->stop) {
        const char *why = NULL;
        if (d->failed_batches)
            why = d->resuming && d->resume.failed
                      ? "not every batch was accepted (in an earlier, interrupted run)"
                      : "not every batch was accepted";
        else if (d->st.sent + d->resume.sent == 0)
            why = "no records were staged (triggering would empty the directory)";
        if (why) {
            d->st.commit = -1;
            snprintf(d->st.commit_reason, sizeof(d->st.commit_reason),
                     "directory import NOT triggered: %s", why);
            OSC_LOG_ERROR("delivery", "%s: %s", d->dest->name, d->st.commit_reason);
        } else {
            send_commit(d);
        }
    }
    if (d->cp) {
        struct osc_err err = {0};
        if (d->stop || d->st.interrupted || d->input_failed || d->st.dead_letter_error ||
            d->cp_error) {
            cp_update(d, 1);
        } else if (osc_checkpoint_clear(d->cp, d->cp_key, &err)) {
            OSC_LOG_WARN("delivery", "%s: %s", d->dest->name, err.msg);
        }
    }
    if (d->webhook)
        webhook_drain(d->webhook, now_ms(d) + WEBHOOK_DRAIN_MS);
    if (d->st.auth_failed)
        return OSC_EAUTH;
    return d->st.dead_letter_error ? OSC_EIO : 0;
}

/* ---- feeding inputs ------------------------------------------------------------ */

int osc_delivery_takes_no_records(const struct osc_delivery *d)
{
    return d->templ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT;
}

void osc_delivery_progress(const struct osc_delivery *d, uint64_t *bytes, int64_t *size)
{
    *bytes = d->bytes_done + (d->reader ? osc_records_bytes_read(d->reader) : 0);
    *size = d->reader ? osc_records_size(d->reader) : -1;
}

int osc_delivery_feed(struct osc_delivery *d, const char *path, enum osc_records_format format,
                      uint64_t max_records, struct osc_err *err)
{
    struct osc_records_reader *r = NULL;
    struct osc_record rec;
    struct osc_err rerr = {0};
    uint64_t n = 0, skip_below = 0, invalid_before;
    int rc = 0;

    if (d->resuming && d->cur_input < d->resume.input) {
        OSC_LOG_INFO("delivery", "%s: %s was completed by an earlier run; skipped", d->dest->name,
                     path);
        goto next_input;
    }
    if (!(r = osc_records_open(path, format, 0, err))) {
        d->input_failed = 1;
        return err && err->code ? err->code : OSC_ENOINPUT;
    }
    d->reader = r;
    if (d->ninput_names <= d->cur_input) {
        char **nn = realloc(d->input_names, (d->cur_input + 1) * sizeof(*nn));
        if (!nn || !(nn[d->cur_input] = strdup(osc_records_name(r)))) {
            if (nn)
                d->input_names = nn;
            osc_records_close(r);
            d->reader = NULL;
            return osc_err_set(err, OSC_ENOMEM, "out of memory");
        }
        while (d->ninput_names < d->cur_input)
            nn[d->ninput_names++] = NULL;
        d->input_names = nn;
        d->ninput_names = d->cur_input + 1;
    }
    if (d->resuming && d->cur_input == d->resume.input && d->resume.offset > 0 &&
        osc_records_seek(r, d->resume.offset, d->resume.line) != 0)
        skip_below = d->resume.offset; /* cannot seek: read and skip what is done */
    d->next_off = osc_records_bytes_read(r);
    d->next_line = osc_records_line(r);
    while (!max_records || n < max_records) {
        int got;
        if (d->opts.interrupt && *d->opts.interrupt) {
            d->st.interrupted = 1;
            rc = osc_err_set(err, OSC_EINTERRUPTED, "interrupted while reading %s", path);
            break;
        }
        got = osc_records_next(r, &rec, &rerr);
        if (got == 0)
            break;
        if ((got == 1 || got == OSC_EDATA) && rec.offset < skip_below)
            continue;
        n++;
        invalid_before = d->st.invalid;
        if (got == 1) {
            rc = osc_delivery_add(d, &rec);
        } else if (got == OSC_EDATA) {
            rc = osc_delivery_malformed(d, &rec, rerr.msg);
        } else {
            d->input_failed = 1; /* a read error: the rest of this input is unknown */
            rc = osc_err_set(err, got, "%s", rerr.msg);
            break;
        }
        if (rc == OSC_EAUTH || rc == OSC_EIO || rc == OSC_ENOMEM) {
            /* the position stays before this record: it may not be done (its dead letter
             * failed); after a refused key the run stops and the commit is blocked anyway */
            if (rc != OSC_EAUTH)
                d->input_failed = 1;
            osc_err_set(err, rc, "%s",
                        rc == OSC_EAUTH ? "OfficeSpace refused the API key"
                        : rc == OSC_EIO ? "cannot write the dead-letter file"
                                        : "out of memory");
            break;
        }
        d->next_off = osc_records_bytes_read(r);
        d->next_line = osc_records_line(r);
        rc = 0;
        /* a local reject is done at once: it may move the position without a batch */
        if (d->cp && (got != 1 || d->st.invalid != invalid_before))
            cp_update(d, 0);
    }
    /* a broken JSON array or CSV header ends the input early: what follows was never sent */
    if (osc_records_incomplete(r))
        d->input_failed = 1;
    d->bytes_done += osc_records_bytes_read(r);
    d->reader = NULL;
    osc_records_close(r);
    if (rc)
        return rc;
next_input:
    d->cur_input++;
    d->next_off = 0;
    d->next_line = 1;
    cp_update(d, 0);
    return 0;
}
