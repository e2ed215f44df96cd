/*
 * request.c - how a destination's requests look: the URL (fixed, or a
 * template filled from each record), whether that URL may receive the
 * OfficeSpace key, the body framing (a JSON array, a property wrapper, Lua,
 * newline-joined records, or one record as the body) and the headers.
 *
 * Invariants: the key goes only to the REST base or an
 * officespacesoftware.com host, decided before any record is read for a
 * template (its literal start must hold the whole host); appending a
 * record to a body is all or nothing; everything a preview prints passes
 * through redaction.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery_int.h"
#include "osc/log.h"
#include "osc/retry.h"
#include "osc/url.h"

static int fail_cfg(struct osc_err *err, const char *dest, const char *fmt, const char *what)
{
    char msg[OSC_ERR_MSG_MAX];
    snprintf(msg, sizeof(msg), fmt, what);
    return osc_err_set(err, OSC_ECONFIG, "destination %s: %s", dest, msg);
}

static int is_absolute(const char *u)
{
    return strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0;
}

/* Split a URL template into literal and {field} parts. */
static int parse_url(struct dlv_request *rq, const char *tmpl, struct osc_err *err)
{
    const char *p = tmpl;
    size_t cap = 1;

    for (const char *q = tmpl; *q; q++)
        cap += *q == '{';
    if (!(rq->parts = calloc(cap * 2 + 1, sizeof(*rq->parts))))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    while (*p) {
        const char *open = strchr(p, '{'), *close;
        struct dlv_url_part *u = &rq->parts[rq->nparts];
        if (!open) {
            if (!(u->text = strdup(p)))
                return osc_err_set(err, OSC_ENOMEM, "out of memory");
            rq->nparts++;
            break;
        }
        if (open > p) {
            if (!(u->text = strndup(p, (size_t)(open - p))))
                return osc_err_set(err, OSC_ENOMEM, "out of memory");
            rq->nparts++;
            u = &rq->parts[rq->nparts];
        }
        close = strchr(open, '}');
        if (!close || close == open + 1)
            return fail_cfg(err, rq->dest->name, "url: unbalanced or empty {} in '%s'", tmpl);
        if (close - open - 1 == 8 && strncmp(open + 1, "hostname", 8) == 0) {
            if (!rq->cfg->officespace.hostname)
                return fail_cfg(err, rq->dest->name,
                                "url uses {hostname} but officespace.hostname is not set%s", "");
            if (!(u->text = strdup(rq->cfg->officespace.hostname)))
                return osc_err_set(err, OSC_ENOMEM, "out of memory");
        } else {
            if (!(u->text = strndup(open + 1, (size_t)(close - open - 1))))
                return osc_err_set(err, OSC_ENOMEM, "out of memory");
            u->is_field = 1;
            rq->templated = 1;
        }
        rq->nparts++;
        p = close + 1;
    }
    return 0;
}

char *dlv_request_abs_url(const struct dlv_request *rq, const char *path_or_url)
{
    const char *base = rq->cfg->officespace.rest_base;
    char *out = NULL;

    if (is_absolute(path_or_url))
        return strdup(path_or_url);
    if (asprintf(&out, "%s%s%s", base, path_or_url[0] == '/' ? "" : "/", path_or_url) < 0)
        return NULL;
    return out;
}

/*
 * Send the key only to OfficeSpace: under the REST base, or an
 * officespacesoftware.com host (officespacesoftware.com itself or a name
 * ending in .officespacesoftware.com; x.officespacesoftware.co or
 * evilofficespacesoftware.com are not), never with user info. url is a
 * complete URL, or a path under the base. libcurl's URL parser decides,
 * the same that sends the request, so both agree on the host.
 */
int dlv_request_url_gets_key(const struct dlv_request *rq, const char *url)
{
    struct osc_url u = {0}, base = {0};
    int rc = 0;

    if (!is_absolute(url))
        return 1;
    if (osc_url_parse(url, &u, NULL) == 0 &&
        osc_url_parse(rq->cfg->officespace.rest_base, &base, NULL) == 0)
        rc = osc_url_gets_officespace_key(&u, &base);
    osc_url_free(&u);
    osc_url_free(&base);
    return rc;
}

/*
 * The key decision for a URL template: only its literal start is known before
 * the records fill it in, so that start must hold the whole host (a '/' after
 * the authority). {hostname} is config, substituted into the literal parts;
 * a template relative to the base stays under the base whatever the fields.
 */
static int template_gets_key(struct dlv_request *rq)
{
    struct osc_buf pre;
    const char *host;
    int rc = 0;

    osc_buf_init(&pre, DLV_URL_MAX);
    for (size_t i = 0; i < rq->nparts && !rq->parts[i].is_field; i++)
        if (osc_buf_adds(&pre, rq->parts[i].text))
            goto out;
    /* the same test as dlv_request_url's, which puts the base in front of a relative template */
    if (!rq->nparts || !is_absolute(rq->parts[0].text)) {
        rc = 1;
        goto out;
    }
    if (rq->parts[0].is_field)
        goto out; /* {http://x} is a field name: the record would supply scheme and host */
    host = strstr(osc_buf_str(&pre), "://") + 3;
    if (host[strcspn(host, "/?#")] == '\0')
        goto out; /* a field could still extend the host: no key */
    rc = dlv_request_url_gets_key(rq, osc_buf_str(&pre));
out:
    osc_buf_free(&pre);
    return rc;
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

/* grouping: property: the text around the records, {"name":[ ... ],other} */
static int property_frame(struct dlv_request *rq, const struct osc_conf_batch *bc,
                          struct osc_err *err)
{
    struct osc_buf b;
    char *other = NULL;

    osc_buf_init(&b, 1u << 20);
    osc_buf_addc(&b, '{');
    osc_json_quote(&b, bc->property_name, strlen(bc->property_name));
    osc_buf_adds(&b, ":[");
    rq->prop_prefix = osc_buf_steal(&b);
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
    rq->prop_suffix = osc_buf_steal(&b);
    if (!rq->prop_prefix || !rq->prop_suffix)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    return 0;
}

static int load_lua(struct dlv_request *rq, const struct osc_conf_batch *bc, struct osc_err *err)
{
    size_t len = 0;
    char *code = bc->code_file ? read_code_file(bc->code_file, &len, err) : strdup(bc->code);

    if (!code)
        return err && err->code ? err->code : OSC_ENOMEM;
    if (!bc->code_file)
        len = strlen(code);
    rq->lua = lua_batch_new(code, len, bc->code_file ? bc->code_file : "batch.code", 0, 0, err);
    free(code);
    if (!rq->lua) {
        char m[OSC_ERR_MSG_MAX];
        snprintf(m, sizeof(m), "%s", err ? err->msg : "");
        return osc_err_set(err, OSC_ECONFIG, "destination %s: %s", rq->dest->name, m);
    }
    return 0;
}

static int user_headers(struct dlv_request *rq, const struct osc_conf_destination *t,
                        struct osc_err *err)
{
    for (size_t i = 0; i < t->headers.n; i++) {
        if (rq->nuser_hdr >= DLV_MAX_USER_HEADERS)
            return fail_cfg(err, t->name, "more than %s headers", "32");
        if (strpbrk(t->headers.keys[i], "\r\n:") || strpbrk(t->headers.vals[i], "\r\n"))
            return fail_cfg(err, t->name, "header '%s' has a newline or colon in its name",
                            t->headers.keys[i]);
        if (strcasecmp(t->headers.keys[i], "content-type") == 0)
            rq->user_ctype = 1;
        if (asprintf(&rq->user_hdr[rq->nuser_hdr], "%s: %s", t->headers.keys[i],
                     t->headers.vals[i]) < 0)
            return osc_err_set(err, OSC_ENOMEM, "out of memory");
        rq->nuser_hdr++;
    }
    return 0;
}

int dlv_request_init(struct dlv_request *rq, const struct osc_config *cfg,
                     const struct osc_conf_destination *t, int single_request, int payload,
                     uint64_t seed, struct osc_err *err)
{
    const struct osc_conf_batch *bc = &t->batch;
    int fmt = t->format, grouping = bc->grouping, rc;
    const char *url = t->url;

    memset(rq, 0, sizeof(*rq));
    rq->cfg = cfg;
    rq->dest = t;
    rq->rng = seed;
    osc_buf_init(&rq->url, DLV_URL_MAX);
    osc_buf_init(&rq->tmp, 1u << 26);
    rq->method = osc_conf_method_name(t->method);
    rq->one_per_request = !bc->enabled || payload;
    (void)single_request;
    if (t->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES) {
        rq->method = "POST";
        fmt = OSC_CONF_FORMAT_JSON;
        grouping = OSC_CONF_GROUPING_ARRAY;
        rq->one_per_request = payload; /* a batch import is always an array */
        url = url ? url : "/api/1/employee_batch_imports";
    } else if (t->template_ == OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT) {
        rq->method = "POST";
        fmt = OSC_CONF_FORMAT_FORM;
        url = url ? url : "/api/1/employee_directory";
    }
    if ((rc = parse_url(rq, url, err)))
        return rc;
    if (rq->templated) {
        rq->auth = template_gets_key(rq);
    } else {
        struct osc_buf u;
        osc_buf_init(&u, DLV_URL_MAX);
        for (size_t i = 0; i < rq->nparts; i++)
            osc_buf_adds(&u, rq->parts[i].text);
        rq->fixed_url = dlv_request_abs_url(rq, osc_buf_str(&u));
        osc_buf_free(&u);
        if (!rq->fixed_url)
            return osc_err_set(err, OSC_ENOMEM, "out of memory");
        rq->auth = dlv_request_url_gets_key(rq, rq->fixed_url);
    }
    if (!rq->auth)
        OSC_LOG_INFO("delivery",
                     "%s: %s is not the OfficeSpace REST base; the API key is not sent to it",
                     t->name, url);
    if (t->template_ == OSC_CONF_TEMPLATE_MANUAL) {
        if (fmt == OSC_CONF_FORMAT_FORM && !rq->one_per_request) {
            OSC_LOG_DEBUG("delivery", "%s: format form sends one record per request", t->name);
            rq->one_per_request = 1;
        }
        if (grouping == OSC_CONF_GROUPING_PROPERTY && !rq->one_per_request &&
            (rc = property_frame(rq, bc, err)))
            return rc;
        if (grouping == OSC_CONF_GROUPING_CODE && !rq->one_per_request &&
            (rc = load_lua(rq, bc, err)))
            return rc;
    }
    rq->ndjson = fmt == OSC_CONF_FORMAT_NDJSON;
    rq->ndjson_lines = rq->ndjson && !rq->lua;
    rq->overhead = 2 + (rq->prop_prefix ? strlen(rq->prop_prefix) + strlen(rq->prop_suffix) : 0);
    snprintf(rq->ctype_default, sizeof(rq->ctype_default), "%s",
             fmt == OSC_CONF_FORMAT_FORM     ? "application/x-www-form-urlencoded"
             : fmt == OSC_CONF_FORMAT_NDJSON ? "application/x-ndjson"
                                             : "application/json; charset=utf-8");
    return user_headers(rq, t, err);
}

void dlv_request_free(struct dlv_request *rq)
{
    for (size_t i = 0; i < rq->nuser_hdr; i++)
        free(rq->user_hdr[i]);
    free(rq->prop_prefix);
    free(rq->prop_suffix);
    for (size_t i = 0; i < rq->nparts; i++)
        free(rq->parts[i].text);
    free(rq->parts);
    free(rq->fixed_url);
    lua_batch_free(rq->lua);
    osc_buf_free(&rq->url);
    osc_buf_free(&rq->tmp);
    memset(rq, 0, sizeof(*rq));
}

static int url_encode_into(struct osc_buf *out, const char *s, size_t n)
{
    char *e = osc_http_urlencode(s, n);
    int rc = e ? osc_buf_adds(out, e) : OSC_ENOMEM;
    free(e);
    return rc;
}

int dlv_request_url(struct dlv_request *rq, const struct osc_record *rec, const char **url,
                    char *why, size_t why_cap)
{
    struct osc_buf *u = &rq->url;
    int rc = 0;

    if (!rq->templated) {
        *url = rq->fixed_url;
        return 0;
    }
    osc_buf_reset(u);
    if (!is_absolute(rq->parts[0].text)) {
        rc = osc_buf_adds(u, rq->cfg->officespace.rest_base);
        if (!rc && rq->parts[0].text[0] != '/')
            rc = osc_buf_addc(u, '/');
    }
    for (size_t i = 0; i < rq->nparts && !rc; i++) {
        const struct dlv_url_part *p = &rq->parts[i];
        const struct osc_record_field *f;
        if (!p->is_field) {
            rc = osc_buf_adds(u, p->text);
            continue;
        }
        f = osc_record_get(rec, p->text);
        osc_buf_reset(&rq->tmp);
        if (!f || osc_json_value_text(f->val, f->val_len, &rq->tmp) <= 0) {
            snprintf(why, why_cap, "no value for {%s} in the url", p->text);
            return OSC_EDATA;
        }
        rc = url_encode_into(u, rq->tmp.data, rq->tmp.len);
    }
    if (rc) {
        snprintf(why, why_cap, "url longer than %d bytes", DLV_URL_MAX);
        return OSC_EDATA;
    }
    *url = u->data;
    return 0;
}

int dlv_request_append(struct dlv_request *rq, struct dlv_batch *b, const char *enc, size_t len)
{
    size_t at = b->body.len;
    int rc = 0;

    /* the body is empty before its first record (a record is never empty) */
    if (at == 0 && !rq->one_per_request && !rq->ndjson_lines)
        rc = osc_buf_adds(&b->body, rq->prop_prefix ? rq->prop_prefix : "[");
    else if (at > 0 && !rq->ndjson_lines)
        rc = osc_buf_addc(&b->body, ',');
    rc = rc ? rc : osc_buf_add(&b->body, enc, len);
    if (!rc && rq->ndjson && (rq->ndjson_lines || rq->one_per_request))
        rc = osc_buf_addc(&b->body, '\n');
    if (rc) {
        /* all or nothing: half a record in the body would be sent and dead-lettered too */
        b->body.len = at;
        if (b->body.data)
            b->body.data[at] = '\0';
    }
    return rc;
}

void dlv_request_prepare(struct dlv_request *rq, struct dlv_batch *b, const char *ctype)
{
    size_t n = 0;

    /* one id per run, then a sequence: the requests of one run are easy to find in a
     * server's log (and a test can tell which run sent what) */
    if (!rq->run)
        rq->run = (uint32_t)(osc_retry_rand(&rq->rng) >> 32) | 1;
    rq->seq++;
    snprintf(b->request_id, sizeof(b->request_id), "osc-%08x-%06llu", (unsigned)rq->run,
             (unsigned long long)rq->seq);
    snprintf(b->reqid_line, sizeof(b->reqid_line), "X-Request-Id: %s", b->request_id);
    if (ctype && !(b->kind == DLV_DATA && rq->user_ctype)) {
        snprintf(b->ctype_line, sizeof(b->ctype_line), "Content-Type: %s", ctype);
        b->hdrs[n++] = b->ctype_line;
    }
    if (b->kind == DLV_DATA)
        for (size_t i = 0; i < rq->nuser_hdr; i++)
            b->hdrs[n++] = rq->user_hdr[i];
    /* the same id is in the webhook report: one call can be followed on both sides */
    b->hdrs[n++] = b->reqid_line;
    b->hdrs[n] = NULL;
    if (b->kind == DLV_DATA) {
        b->method = rq->method;
        b->auth = rq->auth;
    } else {
        b->auth = dlv_request_url_gets_key(rq, b->url);
    }
}

int dlv_request_close(struct dlv_request *rq, struct dlv_batch *b, struct osc_err *err)
{
    char ctype[128];

    snprintf(ctype, sizeof(ctype), "%s", rq->ctype_default);
    if (!rq->one_per_request && !rq->ndjson_lines) {
        if (osc_buf_adds(&b->body, rq->prop_suffix ? rq->prop_suffix : "]"))
            return osc_err_set(err, OSC_ETOOBIG, "batch body larger than batch.max_bytes");
        if (rq->lua) {
            int rc;
            osc_buf_reset(&rq->tmp);
            if (osc_buf_add(&rq->tmp, b->body.data, b->body.len))
                return osc_err_set(err, OSC_ETOOBIG, "batch body too large for the Lua code");
            if ((rc = lua_batch_run(rq->lua, rq->tmp.data, rq->tmp.len, &b->body, ctype,
                                    sizeof(ctype), err)))
                return rc;
        }
    }
    dlv_request_prepare(rq, b, ctype);
    return 0;
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
void dlv_request_preview(const struct dlv_request *rq, const struct dlv_batch *b, FILE *out)
{
    char *text = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&text, &len);
    json_t *j;

    (void)rq;
    if (!o)
        return;
    fprintf(o, "%s %s\n", b->method, b->url);
    if (b->auth)
        fprintf(o, "Authorization: Token token=***\n");
    for (size_t i = 0; b->hdrs[i]; i++)
        if (strncmp(b->hdrs[i], "X-Request-Id:", 13) != 0)
            fprintf(o, "%s\n", b->hdrs[i]);
    if (b->body.len && strcmp(b->method, "DELETE") != 0 && strcmp(b->method, "GET") != 0) {
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
        fput_redacted(out, text, len);
    free(text);
}
