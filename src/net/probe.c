/*
 * probe.c - credential tests for `osconnect check`.
 *
 * Each probe sends the request named at the top of shared/api/officespace.md
 * (or the smallest Mapped query) and classifies the answer: 401/403 means
 * the credential was refused; a 2xx must also have the documented shape,
 * so a wrong URL that happens to answer 200 is not reported as success.
 */
#include "osc/probe.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "osc/buf.h"

#define GRAPHQL_CT "Content-Type: application/json"

static void start(struct osc_probe_result *r, const char *name, const char *method, const char *url)
{
    memset(r, 0, sizeof(*r));
    r->name = name;
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->url, sizeof(r->url), "%s", url);
}

/* Common status handling; returns 1 when the body should be inspected. */
static int judge(struct osc_probe_result *r, int rc, const struct osc_http_response *resp,
                 const struct osc_err *err)
{
    r->status = resp->status;
    r->seconds = resp->seconds;
    if (rc) {
        r->code = OSC_ETRANSPORT;
        snprintf(r->detail, sizeof(r->detail), "cannot reach the server: %s",
                 resp->error[0] ? resp->error : osc_err_text(err, rc));
        return 0;
    }
    if (resp->status == 401 || resp->status == 403) {
        r->code = OSC_EAUTH;
        snprintf(r->detail, sizeof(r->detail), "credential refused (HTTP %ld)", resp->status);
        return 0;
    }
    if (resp->status < 200 || resp->status >= 300) {
        r->code = resp->outcome == OSC_HTTP_RETRY ? OSC_EUNAVAIL : OSC_EHTTP;
        snprintf(r->detail, sizeof(r->detail), "HTTP %ld", resp->status);
        return 0;
    }
    return 1;
}

static json_t *parse_body(struct osc_probe_result *r, const struct osc_http_response *resp)
{
    json_error_t jerr;
    json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &jerr);

    if (!j) {
        r->code = OSC_EPROTO;
        snprintf(r->detail, sizeof(r->detail), "HTTP %ld but the body is not JSON: %s",
                 resp->status, jerr.text);
    }
    return j;
}

/* A GraphQL body: 0 and *data, or the first error message in r. */
static json_t *graphql_data(struct osc_probe_result *r, json_t *body)
{
    json_t *errors = json_object_get(body, "errors");
    json_t *data = json_object_get(body, "data");

    if (json_is_array(errors) && json_array_size(errors) > 0) {
        const char *msg = json_string_value(json_object_get(json_array_get(errors, 0), "message"));
        r->code = OSC_EPROTO;
        snprintf(r->detail, sizeof(r->detail), "GraphQL error: %s", msg ? msg : "(no message)");
        return NULL;
    }
    if (!json_is_object(data)) {
        r->code = OSC_EPROTO;
        snprintf(r->detail, sizeof(r->detail), "GraphQL answer without data");
        return NULL;
    }
    return data;
}

int osc_probe_officespace_rest(struct osc_http *h, const struct osc_config *cfg,
                               struct osc_probe_result *r)
{
    const char *hdrs[] = {"Accept: application/json", NULL};
    struct osc_http_request req = {0};
    struct osc_http_response resp;
    struct osc_err err = {0};
    json_t *body = NULL, *list;
    char url[512];
    int rc;

    snprintf(url, sizeof(url), "%s/api/1/sites", cfg->officespace.rest_base);
    start(r, "officespace rest", "GET", url);
    req.method = "GET";
    req.url = url;
    req.headers = hdrs;
    req.auth = OSC_HTTP_AUTH_OS_TOKEN;
    req.secret = cfg->officespace.api_key;
    req.timeout_ms = cfg->officespace.timeout_ms;
    osc_http_response_init(&resp);
    rc = osc_http_perform(h, &req, &resp, &err);
    if (!judge(r, rc, &resp, &err) || !(body = parse_body(r, &resp)))
        goto out;
    list = json_object_get(body, "response");
    if (!json_is_array(list)) {
        r->code = OSC_EPROTO;
        snprintf(r->detail, sizeof(r->detail),
                 "HTTP %ld but no \"response\" list: is base_url right?", resp.status);
        goto out;
    }
    snprintf(r->detail, sizeof(r->detail), "%zu site%s", json_array_size(list),
             json_array_size(list) == 1 ? "" : "s");
out:
    json_decref(body);
    osc_http_response_free(&resp);
    return r->code;
}

int osc_probe_officespace_graphql(struct osc_http *h, const struct osc_config *cfg,
                                  struct osc_probe_result *r)
{
    static const char query[] = "{\"query\":\"query { sites { id name } }\"}";
    const char *hdrs[] = {GRAPHQL_CT, "Accept: application/json", NULL};
    struct osc_http_request req = {0};
    struct osc_http_response resp;
    struct osc_err err = {0};
    json_t *body = NULL, *data, *sites;
    int rc;

    start(r, "officespace graphql", "POST", cfg->officespace.graphql_url);
    req.method = "POST";
    req.url = cfg->officespace.graphql_url;
    req.headers = hdrs;
    req.auth = OSC_HTTP_AUTH_OS_APIKEY;
    req.secret = cfg->officespace.graphql_api_key;
    req.body = query;
    req.body_len = sizeof(query) - 1;
    req.timeout_ms = cfg->officespace.timeout_ms;
    osc_http_response_init(&resp);
    rc = osc_http_perform(h, &req, &resp, &err);
    if (!judge(r, rc, &resp, &err) || !(body = parse_body(r, &resp)) ||
        !(data = graphql_data(r, body)))
        goto out;
    sites = json_object_get(data, "sites");
    if (!json_is_array(sites)) {
        r->code = OSC_EPROTO;
        snprintf(r->detail, sizeof(r->detail), "no sites list in the answer");
        goto out;
    }
    snprintf(r->detail, sizeof(r->detail), "%zu site%s", json_array_size(sites),
             json_array_size(sites) == 1 ? "" : "s");
out:
    json_decref(body);
    osc_http_response_free(&resp);
    return r->code;
}

int osc_probe_mapped(struct osc_http *h, const struct osc_config *cfg, struct osc_probe_result *r)
{
    const char *hdrs[] = {GRAPHQL_CT, "Accept: application/json", NULL};
    const struct osc_strlist *want = &cfg->presence.buildings;
    struct osc_http_request req = {0};
    struct osc_http_response resp;
    struct osc_err err = {0};
    struct osc_buf q;
    json_t *body = NULL, *data, *list, *ids = json_array(), *wrapper = NULL;
    char *text = NULL;
    int rc;

    osc_buf_init(&q, 64 * 1024);
    start(r, "mapped", "POST", cfg->mapped.url);
    /* ids go through jansson so any character in them is escaped correctly */
    for (size_t i = 0; i < want->n; i++)
        json_array_append_new(ids, json_string(want->v[i]));
    text = json_dumps(ids, JSON_COMPACT);
    if (want->n)
        rc = osc_buf_printf(&q, "query { buildings(filter: {id: {in: %s}}) { id name } }", text);
    else
        rc = osc_buf_adds(&q, "query { sites { id name } }");
    wrapper = json_pack("{s:s}", "query", osc_buf_str(&q));
    free(text);
    text = wrapper ? json_dumps(wrapper, JSON_COMPACT) : NULL;
    if (rc || !text) {
        r->code = OSC_ENOMEM;
        snprintf(r->detail, sizeof(r->detail), "cannot build the query");
        goto out;
    }
    req.method = "POST";
    req.url = cfg->mapped.url;
    req.headers = hdrs;
    req.auth = OSC_HTTP_AUTH_MAPPED;
    req.secret = cfg->mapped.token;
    req.body = text;
    req.body_len = strlen(text);
    req.timeout_ms = cfg->mapped.timeout_ms;
    osc_http_response_init(&resp);
    rc = osc_http_perform(h, &req, &resp, &err);
    if (!judge(r, rc, &resp, &err) || !(body = parse_body(r, &resp)) ||
        !(data = graphql_data(r, body)))
        goto out_resp;
    list = json_object_get(data, want->n ? "buildings" : "sites");
    if (!json_is_array(list)) {
        r->code = OSC_EPROTO;
        snprintf(r->detail, sizeof(r->detail), "no %s list in the answer",
                 want->n ? "buildings" : "sites");
        goto out_resp;
    }
    if (!want->n) {
        snprintf(r->detail, sizeof(r->detail), "%zu site%s", json_array_size(list),
                 json_array_size(list) == 1 ? "" : "s");
        goto out_resp;
    }
    snprintf(r->detail, sizeof(r->detail), "%zu of %zu buildings found", json_array_size(list),
             want->n);
    for (size_t i = 0; i < want->n; i++) {
        int found = 0;
        size_t j;
        json_t *b;
        json_array_foreach(list, j, b) found |=
            json_is_string(json_object_get(b, "id")) &&
            strcmp(json_string_value(json_object_get(b, "id")), want->v[i]) == 0;
        if (!found) {
            size_t len = strlen(r->detail);
            r->code = OSC_ECONFIG; /* the config names a building Mapped does not have */
            snprintf(r->detail + len, sizeof(r->detail) - len, "%s %s",
                     strstr(r->detail, "missing:") ? "," : "; missing:", want->v[i]);
        }
    }
out_resp:
    osc_http_response_free(&resp);
out:
    json_decref(body);
    json_decref(ids);
    json_decref(wrapper);
    free(text);
    osc_buf_free(&q);
    return r->code;
}
